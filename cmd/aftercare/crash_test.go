package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

var crashFull = flag.Bool("crash.full", false, "run the crash test at full size (400 patients, 60 kills)")

// fakeBotAPI is a minimal Telegram Bot API server: getMe, getUpdates with
// offset confirmation, sendMessage (recorded), and ok for the rest. It can
// be taken down (502) to simulate a platform outage.
type fakeBotAPI struct {
	mu        sync.Mutex
	updates   []map[string]any
	nextID    int
	confirmed int // every update_id below this was confirmed
	sent      []sentMsg
	sentAt    []time.Time     // when each of sent arrived
	refused   map[sentMsg]int // sendMessage answered 502 while down
	polls     int             // getUpdates calls
	down      bool
	msgID     int
}

type sentMsg struct {
	chat int64
	text string
}

// delivered sorts what the fake Bot API accepted into what the crash and
// failover tests look for, per chat: the 24 h and 48 h check-ins ("24h",
// "48h"), emergency instructions ("911"), and the staff chat's emergency
// alert about a patient ("alert", keyed by the patient's chat).
func delivered(sent []sentMsg) map[sentMsg]bool {
	have := map[sentMsg]bool{}
	for _, s := range sent {
		switch {
		case strings.Contains(s.text, "about a day since your session"):
			have[sentMsg{s.chat, "24h"}] = true
		case strings.Contains(s.text, "about two days since your session"):
			have[sentMsg{s.chat, "48h"}] = true
		case strings.Contains(s.text, "Call 911 now"):
			have[sentMsg{s.chat, "911"}] = true
		case s.chat == -100 && strings.HasPrefix(s.text, "[EMERGENCY] telegram:"):
			id, _ := strconv.ParseInt(strings.TrimPrefix(strings.Fields(s.text)[1], "telegram:"), 10, 64)
			have[sentMsg{id, "alert"}] = true
		}
	}
	return have
}

func (f *fakeBotAPI) push(chat int64, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.updates = append(f.updates, map[string]any{
		"update_id": f.nextID,
		"message": map[string]any{"message_id": f.nextID, "date": time.Now().Unix(), "text": text,
			"from": map[string]any{"id": chat, "is_bot": false, "first_name": "P"},
			"chat": map[string]any{"id": chat, "type": "private"}},
	})
}

func (f *fakeBotAPI) allConfirmed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.confirmed > f.nextID
}

func (f *fakeBotAPI) sends() []sentMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentMsg(nil), f.sent...)
}

// firstSent returns when the first message to chat containing sub
// arrived, if one did.
func (f *fakeBotAPI) firstSent(chat int64, sub string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.sent {
		if s.chat == chat && strings.Contains(s.text, sub) {
			return f.sentAt[i], true
		}
	}
	return time.Time{}, false
}

// wasRefused reports whether a message to chat containing sub was
// refused during an outage.
func (f *fakeBotAPI) wasRefused(chat int64, sub string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.refused {
		if s.chat == chat && strings.Contains(s.text, sub) {
			return true
		}
	}
	return false
}

func (f *fakeBotAPI) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

func (f *fakeBotAPI) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeBotAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	method := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	ok := func(result any) { json.NewEncoder(w).Encode(map[string]any{"ok": true, "result": result}) }
	f.mu.Lock()
	defer f.mu.Unlock()
	switch method {
	case "getMe":
		ok(map[string]any{"id": 1, "is_bot": true, "first_name": "Clinic", "username": "clinic_bot"})
	case "getUpdates":
		f.polls++
		off, _ := strconv.Atoi(r.Form.Get("offset"))
		if off > f.confirmed {
			f.confirmed = off
			keep := f.updates[:0]
			for _, u := range f.updates {
				if u["update_id"].(int) >= off {
					keep = append(keep, u)
				}
			}
			f.updates = keep
		}
		limit, _ := strconv.Atoi(r.Form.Get("limit"))
		if limit <= 0 || limit > 100 {
			limit = 100
		}
		out := f.updates
		if len(out) > limit {
			out = out[:limit]
		}
		ok(out)
	case "sendMessage":
		chat, _ := strconv.ParseInt(r.Form.Get("chat_id"), 10, 64)
		if f.down {
			if f.refused == nil {
				f.refused = map[sentMsg]int{}
			}
			f.refused[sentMsg{chat: chat, text: r.Form.Get("text")}]++
			w.WriteHeader(http.StatusBadGateway)
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "error_code": 502, "description": "Bad Gateway"})
			return
		}
		f.sent = append(f.sent, sentMsg{chat: chat, text: r.Form.Get("text")})
		f.sentAt = append(f.sentAt, time.Now())
		f.msgID++
		ok(map[string]any{"message_id": f.msgID, "date": time.Now().Unix(), "text": r.Form.Get("text"),
			"chat": map[string]any{"id": chat, "type": "private"}})
	default:
		ok(true)
	}
}

func newServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

// botProcess runs the real aftercare binary and restarts it after kills.
type botProcess struct {
	t    *testing.T
	bin  string
	args []string
	env  []string
	log  *os.File
	cmd  *exec.Cmd
}

func (p *botProcess) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

func (p *botProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *botProcess) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		return fmt.Errorf("did not stop within 20 s of SIGTERM")
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "aftercare")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestCrashSafety runs the real binary against a fake Telegram on a fast
// virtual clock, kills it with SIGKILL at random moments and restarts it,
// and checks from the fake's records that every check-in and every red
// flag got through, that no update was applied twice, and that duplicate
// sends stay within one per kill. An hour of platform outage sits in the
// middle: sendMessage fails for real seconds while the virtual clock runs
// through the hour, so the dispatcher's retries and their backoff run, and
// every escalation queued meanwhile must reach the patient and the staff
// chat within a bound after recovery that follows from the retry schedule
// (service.MaxRetryWait) and the configured request timeout and pacing.
func TestCrashSafety(t *testing.T) {
	patients, wantKills := 60, 30
	if *crashFull {
		patients, wantKills = 400, 60
	}
	dir := t.TempDir()
	api := &fakeBotAPI{}
	srv := newServer(api)
	defer srv.Close()
	t0 := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	// The settings the recovery bound is derived from. The adapter's own
	// immediate retries are off (send_retries -1): every failed attempt
	// goes back to the dispatcher, whose retry schedule is the one the
	// outage exercises (bot/telegram's tests cover the adapter's retries).
	const (
		requestTimeout = 2 * time.Second
		perSecond      = 1000
		perChat        = 100
	)
	clockFile := filepath.Join(dir, "now")
	clock.SetFile(clockFile, t0)
	cfg := fmt.Sprintf(`{
  "clinic": {"name": "Crash Test Clinic", "phone": "+1 312 555 2368", "emergency_number": "911", "time_zone": "America/Chicago",
             "quiet_hours": {"start": "00:00", "end": "00:00"}},
  "data_dir": %q,
  "escalation": {"ack_timeout": "100h"},
  "telegram": {"api_endpoint": %q, "staff_chat_id": -100, "poll_interval": "5ms", "poll_timeout": "0s", "request_timeout": %q, "send_retries": -1},
  "pacing": {"telegram": {"per_second": %d, "per_chat_per_second": %d}},
  "log": {"level": "info", "format": "json"}
}`, filepath.Join(dir, "data"), srv.URL+"/bot%s/%s", requestTimeout.String(), perSecond, perChat)
	cfgPath := filepath.Join(dir, "config.json")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	logf, _ := os.Create(filepath.Join(dir, "bot.log"))
	defer logf.Close()
	p := &botProcess{t: t, bin: buildBinary(t), args: []string{"--config", cfgPath}, log: logf,
		env: append(os.Environ(), EnvTelegramToken+"=123:crash-test", EnvTestClockFile+"="+clockFile)}
	p.start()

	// Kill the bot at random moments until enough kills happened. Each
	// process first polls twice (the second poll comes after it handled
	// what the first returned), so however slow the machine, every life
	// makes progress: a restart slower than the kill interval cannot
	// starve the bot.
	var mu sync.Mutex
	kills := 0
	paused := false // no kills while set (the outage and its recovery)
	stopKilling := make(chan struct{})
	killerDone := make(chan struct{})
	rng := rand.New(rand.NewPCG(1, 2))
	go func() {
		defer close(killerDone)
		started := 0
		for {
			for api.pollCount() < started+2 {
				select {
				case <-stopKilling:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			select {
			case <-stopKilling:
				return
			case <-time.After(time.Duration(100+rng.IntN(400)) * time.Millisecond):
			}
			mu.Lock()
			if !paused {
				p.kill()
				kills++
				started = api.pollCount()
				p.start()
			}
			mu.Unlock()
		}
	}()

	// A test that fails half-way must not leave the killer or the bot
	// running.
	var stopOnce sync.Once
	stopKiller := func() { stopOnce.Do(func() { close(stopKilling); <-killerDone }) }
	t.Cleanup(func() {
		stopKiller()
		p.cmd.Process.Kill() // an error only says it has exited already
	})

	chat := func(i int) int64 { return int64(100000 + i) }
	// waitUntil polls for a condition the bot brings about; the limit only
	// keeps a stuck bot from hanging the test, nothing is timed with it.
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				api.mu.Lock()
				refused := map[int64]int{}
				for k, n := range api.refused {
					refused[k.chat] += n
				}
				t.Logf("down %v, polls %d, confirmed %d of %d, refused sends per chat %v", api.down, api.polls, api.confirmed, api.nextID, refused)
				api.mu.Unlock()
				if b, err := os.ReadFile(logf.Name()); err == nil {
					lines := strings.Split(strings.TrimSpace(string(b)), "\n")
					t.Logf("last lines of the bot's log:\n%s", strings.Join(lines[max(0, len(lines)-25):], "\n"))
				}
				t.Fatalf("%s: not within 2 minutes; see %s", what, logf.Name())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitConfirmed := func() { t.Helper(); waitUntil("updates confirmed", api.allConfirmed) }
	intake := []string{"hi", "just now", "Acupuncture", "neck", "No", "No, for me", "Yes, check in with me"}
	for _, msg := range intake {
		for i := 0; i < patients; i++ {
			api.push(chat(i), msg)
		}
	}
	waitConfirmed()
	red := func(i int) bool { return i%4 == 0 }
	outage := func(i int) bool { return i%7 == 3 }
	const (
		urgentReply = "Please call Crash Test Clinic now"
		urgentAlert = "[URGENT] telegram:%d"
	)
	// The outage: sendMessage answers 502 for outageHold of real time
	// while the virtual clock runs through the hour; halfway, the patients
	// in outage(i) report palpitations. Kills pause meanwhile, so the time
	// after recovery measures the retry path, not restarts.
	const outageHold = 3 * time.Second
	var recoveryLate time.Duration
	outagePhase := func(now time.Time) time.Time {
		mu.Lock()
		paused = true
		mu.Unlock()
		api.setDown(true)
		began := time.Now()
		const steps = 30
		for k := 1; k <= steps; k++ {
			time.Sleep(outageHold / steps) // the outage's length: scenario, not a wait
			now = now.Add(time.Hour / steps)
			clock.SetFile(clockFile, now)
			if k == steps/2 {
				for i := 0; i < patients; i++ {
					if outage(i) {
						api.push(chat(i), "having heart palpitations")
					}
				}
			}
		}
		// Stay down until the palpitations were handled and every chat
		// that must get an escalation has failed at least once, so the
		// recovery runs the retry path for every one of them. A chat keeps
		// its order while it fails: the staff chat tries only its head,
		// and an escalation waits out the backoff of an earlier failed
		// message to its chat, so the condition is on chats, not texts.
		waitConfirmed()
		waitUntil("every chat with an escalation refused during the outage", func() bool {
			if !api.wasRefused(-100, "") {
				return false
			}
			for i := 0; i < patients; i++ {
				if outage(i) && !api.wasRefused(chat(i), "") {
					return false
				}
			}
			return true
		})
		api.setDown(false)
		recovered := time.Now()
		// After recovery: the retry each message drew before it (at most
		// MaxRetryWait of the outage's real length), one request that may
		// take the whole request timeout, and the pacing of the queued
		// escalations (all of them through the platform limit, the alerts
		// one after another through the staff chat's).
		queued := 0
		for i := 0; i < patients; i++ {
			if outage(i) {
				queued++
			}
		}
		bound := service.MaxRetryWait(recovered.Sub(began)) + requestTimeout +
			time.Duration(float64(2*queued)/perSecond*float64(time.Second)) + time.Duration(float64(queued)/perChat*float64(time.Second))
		// Poll until all arrived or the bound passed; what is missing then
		// is late.
		for time.Since(recovered) <= bound {
			all := true
			for i := 0; i < patients && all; i++ {
				if outage(i) {
					_, replied := api.firstSent(chat(i), urgentReply)
					_, alerted := api.firstSent(-100, fmt.Sprintf(urgentAlert, chat(i)))
					all = replied && alerted
				}
			}
			if all {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i := 0; i < patients; i++ {
			if !outage(i) {
				continue
			}
			replied, ok1 := api.firstSent(chat(i), urgentReply)
			alerted, ok2 := api.firstSent(-100, fmt.Sprintf(urgentAlert, chat(i)))
			for who, at := range map[string]time.Time{"patient": replied, "staff": alerted} {
				if (who == "patient" && !ok1) || (who == "staff" && !ok2) {
					t.Errorf("patient %d: the urgent message to the %s had not arrived %s after recovery (bound)", i, who, bound.Round(time.Millisecond))
					continue
				}
				late := at.Sub(recovered)
				recoveryLate = max(recoveryLate, late)
				if late > bound {
					t.Errorf("patient %d: the urgent message to the %s arrived %s after recovery, bound %s", i, who, late.Round(time.Millisecond), bound)
				}
			}
		}
		t.Logf("outage held %s of real time; escalations reached patients and staff at most %s after recovery (bound %s)",
			recovered.Sub(began).Round(time.Millisecond), recoveryLate.Round(time.Millisecond), bound.Round(time.Millisecond))
		mu.Lock()
		paused = false
		mu.Unlock()
		return now
	}
	now := t0
	for step := 0; now.Before(t0.Add(75 * time.Hour)); step++ {
		now = now.Add(30 * time.Minute)
		clock.SetFile(clockFile, now)
		h := now.Sub(t0)
		switch h {
		case 25 * time.Hour: // answer the 24 h check-in
			for _, msg := range []string{"Better", "2", "None of these"} {
				for i := 0; i < patients; i++ {
					api.push(chat(i), msg)
				}
			}
		case 30 * time.Hour:
			for i := 0; i < patients; i++ {
				if red(i) {
					api.push(chat(i), "I fainted on the stairs")
				}
			}
		case 40 * time.Hour:
			now = outagePhase(now) // returns at 41 h, the platform back
		}
		time.Sleep(20 * time.Millisecond)
		waitConfirmed()
	}
	for {
		mu.Lock()
		k := kills
		mu.Unlock()
		if k >= wantKills {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopKiller()
	waitConfirmed()

	// Let everything drain: first what the checks below look for (a
	// condition, however slow the machine), then no new send for two of
	// the dispatcher's longest idle waits (a pass waits at most a second),
	// for the replies nobody waits on.
	waitUntil("every check-in and emergency delivered", func() bool {
		api.mu.Lock()
		defer api.mu.Unlock()
		have := delivered(api.sent)
		for i := 0; i < patients; i++ {
			for _, k := range []string{"24h", "48h"} {
				if !have[sentMsg{chat(i), k}] {
					return false
				}
			}
			if red(i) && (!have[sentMsg{chat(i), "911"}] || !have[sentMsg{chat(i), "alert"}]) {
				return false
			}
		}
		return true
	})
	last, stable := -1, time.Now()
	for time.Since(stable) < 2*time.Second {
		if n := len(api.sends()); n != last {
			last, stable = n, time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}

	sends := api.sends()
	by, distinct := tallySends(sends)
	count := countContaining
	staff := strings.Join(by[-100], "\n")
	for i := 0; i < patients; i++ {
		got := by[chat(i)]
		if count(got, "about a day since your session") == 0 || count(got, "about two days since your session") == 0 {
			t.Errorf("patient %d missed a check-in (24h: %d, 48h: %d)", i, count(got, "about a day since"), count(got, "about two days"))
		}
		checkAppliedOnceAndEscalated(t, i, got, staff, chat(i), red(i))
		if outage(i) {
			if count(got, urgentReply) == 0 {
				t.Errorf("patient %d: urgent instructions queued during the outage never arrived", i)
			}
			if !strings.Contains(staff, fmt.Sprintf(urgentAlert, chat(i))) {
				t.Errorf("staff never got the urgent alert for patient %d queued during the outage", i)
			}
		}
	}
	dups := 0
	for _, n := range distinct {
		dups += n - 1
	}
	t.Logf("patients %d, kills %d, updates %d, messages sent %d, duplicate sends %d", patients, kills, api.nextID, len(sends), dups)
	if dups > kills {
		t.Errorf("%d duplicate sends for %d kills; at most one per kill is allowed", dups, kills)
	}

	// From the database: every check-in recorded exactly once.
	st, err := store.Open(filepath.Join(dir, "data", "aftercare.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	st.Patients(func(s engine.State) error {
		n++
		if len(s.Checkins) != 2 {
			t.Errorf("%s: %d check-ins recorded, want 2", s.Patient, len(s.Checkins))
		}
		return nil
	})
	if n != patients {
		t.Errorf("%d patients stored, want %d", n, patients)
	}
	if depth, _ := st.OutboxDepth(); depth != 0 {
		t.Errorf("%d messages left in the outbox", depth)
	}
}
