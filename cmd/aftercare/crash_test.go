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

	"aftercare/clock"
	"aftercare/engine"
	"aftercare/store"
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
	down      bool
	msgID     int
}

type sentMsg struct {
	chat int64
	text string
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
		if f.down {
			w.WriteHeader(http.StatusBadGateway)
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "error_code": 502, "description": "Bad Gateway"})
			return
		}
		chat, _ := strconv.ParseInt(r.Form.Get("chat_id"), 10, 64)
		f.sent = append(f.sent, sentMsg{chat: chat, text: r.Form.Get("text")})
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
// sends stay within one per kill. A simulated hour of platform outage sits
// in the middle.
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
	clockFile := filepath.Join(dir, "now")
	clock.SetFile(clockFile, t0)
	cfg := fmt.Sprintf(`{
  "clinic": {"name": "Crash Test Clinic", "phone": "+1 312 555 2368", "emergency_number": "911", "time_zone": "America/Chicago",
             "quiet_hours": {"start": "00:00", "end": "00:00"}},
  "data_dir": %q,
  "escalation": {"ack_timeout": "100h"},
  "telegram": {"api_endpoint": %q, "staff_chat_id": -100, "poll_interval": "5ms", "poll_timeout": "0s", "request_timeout": "2s"},
  "pacing": {"telegram": {"per_second": 1000, "per_chat_per_second": 100}},
  "log": {"level": "info", "format": "json"}
}`, filepath.Join(dir, "data"), srv.URL+"/bot%s/%s")
	cfgPath := filepath.Join(dir, "config.json")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	logf, _ := os.Create(filepath.Join(dir, "bot.log"))
	defer logf.Close()
	p := &botProcess{t: t, bin: buildBinary(t), args: []string{"--config", cfgPath}, log: logf,
		env: append(os.Environ(), EnvTelegramToken+"=123:crash-test", EnvTestClockFile+"="+clockFile)}
	p.start()

	// Kill the bot at random moments until enough kills happened.
	var mu sync.Mutex
	kills := 0
	stopKilling := make(chan struct{})
	killerDone := make(chan struct{})
	rng := rand.New(rand.NewPCG(1, 2))
	go func() {
		defer close(killerDone)
		for {
			select {
			case <-stopKilling:
				return
			case <-time.After(time.Duration(100+rng.IntN(400)) * time.Millisecond):
			}
			mu.Lock()
			p.kill()
			kills++
			p.start()
			mu.Unlock()
		}
	}()

	chat := func(i int) int64 { return int64(100000 + i) }
	waitConfirmed := func() {
		deadline := time.Now().Add(2 * time.Minute)
		for !api.allConfirmed() {
			if time.Now().After(deadline) {
				t.Fatalf("updates not confirmed within 2 minutes; see %s", logf.Name())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	intake := []string{"hi", "just now", "Acupuncture", "neck", "No", "No, for me", "Yes, check in with me"}
	for _, msg := range intake {
		for i := 0; i < patients; i++ {
			api.push(chat(i), msg)
		}
	}
	waitConfirmed()
	red := func(i int) bool { return i%4 == 0 }
	outage := func(i int) bool { return i%7 == 3 }
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
			api.mu.Lock()
			api.down = true
			api.mu.Unlock()
		case 40*time.Hour + 30*time.Minute:
			for i := 0; i < patients; i++ {
				if outage(i) {
					api.push(chat(i), "having heart palpitations")
				}
			}
		case 41 * time.Hour:
			api.mu.Lock()
			api.down = false
			api.mu.Unlock()
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
	close(stopKilling)
	<-killerDone
	waitConfirmed()

	// Let everything drain: no new send for 2 s.
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
	by := map[int64][]string{}
	distinct := map[sentMsg]int{}
	for _, s := range sends {
		by[s.chat] = append(by[s.chat], s.text)
		distinct[s]++
	}
	count := func(texts []string, sub string) int {
		n := 0
		for _, x := range texts {
			if strings.Contains(x, sub) {
				n++
			}
		}
		return n
	}
	staff := strings.Join(by[-100], "\n")
	for i := 0; i < patients; i++ {
		got := by[chat(i)]
		if count(got, "about a day since your session") == 0 || count(got, "about two days since your session") == 0 {
			t.Errorf("patient %d missed a check-in (24h: %d, 48h: %d)", i, count(got, "about a day since"), count(got, "about two days"))
		}
		for _, bad := range []string{"I didn't catch", "didn't quite get that", "couldn't read that time"} {
			if n := count(got, bad); n > 0 {
				t.Errorf("patient %d got %q %d times: an update was applied twice", i, bad, n)
			}
		}
		if red(i) {
			if count(got, "Call 911 now") == 0 {
				t.Errorf("patient %d reported fainting but got no emergency instructions", i)
			}
			if !strings.Contains(staff, fmt.Sprintf("[EMERGENCY] telegram:%d", chat(i))) {
				t.Errorf("staff were not alerted about patient %d", i)
			}
		}
		if outage(i) {
			if count(got, "Please call Crash Test Clinic now") == 0 {
				t.Errorf("patient %d: urgent instructions queued during the outage never arrived", i)
			}
			if !strings.Contains(staff, fmt.Sprintf("[URGENT] telegram:%d", chat(i))) {
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
