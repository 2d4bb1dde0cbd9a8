package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
)

var failoverFull = flag.Bool("failover.full", false, "run the failover test at full size (200 patients, 60 kills)")

// livesAPI is the fake Bot API as several instances see it: each life of
// each instance (one start of its process) has its own endpoint,
// /life/<n>/bot<token>/<method>, so the fake knows who polled and when.
type livesAPI struct {
	api *fakeBotAPI

	mu    sync.Mutex
	polls []lifePoll
}

type lifePoll struct {
	life int
	at   time.Time
}

func (l *livesAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/getUpdates") {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/life/"), "/", 2)
		n, _ := strconv.Atoi(parts[0])
		l.mu.Lock()
		l.polls = append(l.polls, lifePoll{life: n, at: time.Now()})
		l.mu.Unlock()
	}
	l.api.ServeHTTP(w, r)
}

// pollsSince returns the polls at or after t.
func (l *livesAPI) pollsSince(t time.Time) []lifePoll {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.polls), func(i int) bool { return !l.polls[i].at.Before(t) })
	return append([]lifePoll(nil), l.polls[i:]...)
}

// lastPoller returns the life that polled last, or 0.
func (l *livesAPI) lastPoller() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.polls) == 0 {
		return 0
	}
	return l.polls[len(l.polls)-1].life
}

// instance is one of the aftercare processes; each start is a new life.
type instance struct {
	botProcess
	cfgPath string
	config  func(life int) string
	life    int
}

// start writes the config of this life and starts the binary on it; kill
// and stop are botProcess's.
func (p *instance) start(life int) {
	p.t.Helper()
	p.life = life
	if err := os.WriteFile(p.cfgPath, []byte(p.config(life)), 0o600); err != nil {
		p.t.Fatal(err)
	}
	p.args = []string{"--config", p.cfgPath}
	p.botProcess.start()
}

// TestFailover runs three real aftercare processes on one PostgreSQL
// against a fake Telegram on a virtual clock, and kills them with SIGKILL
// one at a time (every other kill the instance holding the Telegram
// polling lease), restarting each. From the fake's records and the
// database it checks that every 24 h and 48 h check-in reached its patient
// once, every red flag was escalated and alerted, no update was applied
// twice, duplicate sends stay within one per kill, the polling lease moved
// to a live instance within the bound that follows from the configured
// lease ttl and renew interval (at most 15 s), and that no two instances
// ever polled at once.
func TestFailover(t *testing.T) {
	patients, wantKills := 30, 20
	if *failoverFull {
		patients, wantKills = 200, 60
	}
	// The settings the bounds follow from. A dead holder's lease expires
	// at most ttl after its last renewal; every other instance tries every
	// renew interval, after one more interval per lease it already holds
	// (the housekeeping lease, at most); then it calls deleteWebhook and
	// getUpdates. One more interval is room for a busy machine.
	const (
		ttl        = 2 * time.Second
		renew      = 400 * time.Millisecond
		claimLease = time.Second
		moveBound  = ttl + 3*renew
	)
	if moveBound > 15*time.Second {
		t.Fatalf("lease settings allow %s to move a lease; the requirement is 15 s", moveBound)
	}
	dir := t.TempDir()
	dsn := pgtest.DSN(t)
	lives := &livesAPI{api: &fakeBotAPI{}}
	api := lives.api
	srv := newServer(lives)
	defer srv.Close()
	t0 := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	clockFile := filepath.Join(dir, "now")
	clock.SetFile(clockFile, t0)
	bin := buildBinary(t)
	const n = 3
	insts := make([]*instance, n)
	for i := range insts {
		data := filepath.Join(dir, fmt.Sprintf("i%d", i))
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("i%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		insts[i] = &instance{botProcess: botProcess{t: t, bin: bin, log: logf, env: append(os.Environ(), EnvTelegramToken+"=123:failover-test", EnvTestClockFile+"="+clockFile, EnvPostgresDSN+"="+dsn)}, cfgPath: filepath.Join(dir, fmt.Sprintf("i%d.json", i)),

			config: func(life int) string {
				return fmt.Sprintf(`{
  "clinic": {"name": "Failover Clinic", "phone": "+1 312 555 2368", "emergency_number": "911", "time_zone": "America/Chicago",
             "quiet_hours": {"start": "00:00", "end": "00:00"}},
  "data_dir": %q,
  "store": {"backend": "postgres", "claim_lease": %q, "leases": {"ttl": %q, "renew": %q}},
  "escalation": {"ack_timeout": "100h"},
  "telegram": {"api_endpoint": %q, "staff_chat_id": -100, "poll_interval": "5ms", "poll_timeout": "0s", "request_timeout": "2s", "send_retries": -1},
  "pacing": {"telegram": {"per_second": 1000, "per_chat_per_second": 100}},
  "log": {"level": "info", "format": "json"}
}`, data, claimLease.String(), ttl.String(), renew.String(), fmt.Sprintf("%s/life/%d/bot%%s/%%s", srv.URL, life))
			}}
	}
	life := 0
	for _, p := range insts {
		life++
		p.start(life)
	}
	t.Cleanup(func() {
		for _, p := range insts {
			p.cmd.Process.Kill() // an error only says it has exited already
		}
	})
	dumpLogs := func() {
		for i, p := range insts {
			if b, err := os.ReadFile(p.log.Name()); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("instance %d, last lines of its log:\n%s", i, strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		}
	}
	// waitUntil polls for a condition the instances bring about; the limit
	// only keeps a stuck run from hanging the test, nothing is timed by it.
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				dumpLogs()
				t.Fatalf("%s: not within 2 minutes", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// The killer: every other kill hits the instance whose life polled
	// last (the holder of the polling lease), the others a random other
	// instance. After killing the holder it waits until another life
	// polls, which is the lease moving, and measures that from the kill.
	var (
		mu         sync.Mutex
		kills      int
		holderHits int
		moves      []time.Duration
		killErrs   []string
	)
	stopKilling := make(chan struct{})
	killerDone := make(chan struct{})
	rng := rand.New(rand.NewPCG(3, 4))
	go func() {
		defer close(killerDone)
		for k := 0; ; k++ {
			select {
			case <-stopKilling:
				return
			case <-time.After(time.Duration(100+rng.IntN(300)) * time.Millisecond): // the scenario's pacing
			}
			holder := lives.lastPoller()
			if holder == 0 {
				continue
			}
			victim := -1
			for i, p := range insts {
				if p.life == holder {
					victim = i
				}
			}
			hitHolder := victim >= 0 && k%2 == 0
			if !hitHolder {
				victim = rng.IntN(n)
				hitHolder = insts[victim].life == holder
			}
			p := insts[victim]
			dead := p.life
			p.kill()
			killed := time.Now()
			if hitHolder {
				// The lease moves to a survivor: wait for a poll by another
				// life after the kill (the limit only catches a stuck run).
				moved := false
				for !moved && time.Since(killed) < 2*time.Minute {
					for _, q := range lives.pollsSince(killed) {
						if q.life != dead {
							moved = true
							break
						}
					}
					if !moved {
						time.Sleep(2 * time.Millisecond)
					}
				}
				mu.Lock()
				if moved {
					moves = append(moves, time.Since(killed))
				} else {
					killErrs = append(killErrs, fmt.Sprintf("kill %d: the polling lease never moved", k))
				}
				mu.Unlock()
			}
			mu.Lock()
			kills++
			if hitHolder {
				holderHits++
			}
			life++
			p.start(life)
			mu.Unlock()
		}
	}()
	var stopOnce sync.Once
	stopKiller := func() { stopOnce.Do(func() { close(stopKilling); <-killerDone }) }
	t.Cleanup(stopKiller)

	chat := func(i int) int64 { return int64(200000 + i) }
	waitConfirmed := func() { t.Helper(); waitUntil("updates confirmed", api.allConfirmed) }
	for _, msg := range []string{"hi", "just now", "Acupuncture", "neck", "No", "No, for me", "Yes, check in with me"} {
		for i := 0; i < patients; i++ {
			api.push(chat(i), msg)
		}
	}
	waitConfirmed()
	red := func(i int) bool { return i%4 == 0 }
	now := t0
	for now.Before(t0.Add(75 * time.Hour)) {
		now = now.Add(30 * time.Minute)
		clock.SetFile(clockFile, now)
		switch now.Sub(t0) {
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
		}
		time.Sleep(20 * time.Millisecond) // the virtual clock's pace
		waitConfirmed()
	}
	waitUntil("enough kills", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return kills >= wantKills
	})
	stopKiller()
	waitConfirmed()
	waitUntil("every check-in and emergency delivered", func() bool {
		api.mu.Lock()
		defer api.mu.Unlock()
		have := delivered(api.sent)
		for i := 0; i < patients; i++ {
			if !have[sentMsg{chat(i), "24h"}] || !have[sentMsg{chat(i), "48h"}] {
				return false
			}
			if red(i) && (!have[sentMsg{chat(i), "911"}] || !have[sentMsg{chat(i), "alert"}]) {
				return false
			}
		}
		return true
	})
	// Messages a killed instance had claimed go out once its claims'
	// lease ran out: wait for no new send over two claim leases.
	last, stable := -1, time.Now()
	for time.Since(stable) < 2*claimLease {
		if n := len(api.sends()); n != last {
			last, stable = n, time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	leases, err := st.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range insts {
		if err := p.stop(); err != nil {
			t.Errorf("graceful stop: %v", err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, e := range killErrs {
		t.Error(e)
	}
	if holderHits < wantKills/3 {
		t.Errorf("only %d of %d kills hit the lease holder", holderHits, kills)
	}
	worst := time.Duration(0)
	for _, d := range moves {
		worst = max(worst, d)
	}
	if worst > moveBound {
		t.Errorf("the polling lease took %s to move after its holder was killed; bound %s (ttl %s + 3 × renew %s)", worst, moveBound, ttl, renew)
	}
	// One consumer at a time: while one life polls (polls less than half
	// a ttl apart, so it cannot have lost the lease and won it back in
	// between), no other life polls.
	lastOf := map[int]time.Time{}
	overlaps := 0
	for _, q := range lives.pollsSince(time.Time{}) {
		prev, ok := lastOf[q.life]
		if ok && q.at.Sub(prev) < ttl/2 {
			for other, at := range lastOf {
				if other != q.life && at.After(prev) {
					overlaps++
					if overlaps <= 3 {
						t.Errorf("life %d polled at %s, between two polls of life %d %s apart: two consumers at once",
							other, at.Format("15:04:05.000"), q.life, q.at.Sub(prev))
					}
				}
			}
		}
		lastOf[q.life] = q.at
	}
	var tgLease postgres.LeaseHolder
	for _, l := range leases {
		if l.Name == "clinic/default/telegram" {
			tgLease = l
		}
	}
	// Every move is a new grant: the epoch counts at least the holder kills.
	if tgLease.Epoch < int64(holderHits)+1 || !tgLease.Live {
		t.Errorf("telegram lease %+v after %d holder kills; want a live lease with epoch above that", tgLease, holderHits)
	}

	sends := api.sends()
	by, distinct := tallySends(sends)
	count := countContaining
	staff := strings.Join(by[-100], "\n")
	dups := 0
	for _, c := range distinct {
		dups += c - 1
	}
	for i := 0; i < patients; i++ {
		got := by[chat(i)]
		for _, ci := range []string{"about a day since your session", "about two days since your session"} {
			// Once, or twice only as a counted duplicate send (a kill
			// between the send and its commit).
			if c := count(got, ci); c == 0 || c > 2 {
				t.Errorf("patient %d got the check-in %q %d times", i, ci, c)
			}
		}
		checkAppliedOnceAndEscalated(t, i, got, staff, chat(i), red(i))
	}
	t.Logf("patients %d, kills %d (%d of the lease holder), updates %d, messages sent %d, duplicate sends %d, lease moved in at most %s (bound %s), lease epoch %d",
		patients, kills, holderHits, api.nextID, len(sends), dups, worst.Round(time.Millisecond), moveBound, tgLease.Epoch)
	if dups > kills {
		t.Errorf("%d duplicate sends for %d kills; at most one per kill is allowed", dups, kills)
	}
	// From the database: every check-in recorded exactly once, nothing left
	// to send, and the escalations there.
	np, esc := 0, 0
	st.Patients(func(s engine.State) error {
		np++
		if len(s.Checkins) != 2 {
			t.Errorf("%s: %d check-ins recorded, want 2", s.Patient, len(s.Checkins))
		}
		return nil
	})
	if np != patients {
		t.Errorf("%d patients stored, want %d", np, patients)
	}
	if es, err := st.Escalations(); err == nil {
		esc = len(es)
	}
	if want := (patients + 3) / 4; esc != want {
		t.Errorf("%d escalations stored, want %d (one per fainting patient)", esc, want)
	}
	if depth, _ := st.OutboxDepth(); depth != 0 {
		t.Errorf("%d messages left in the outbox", depth)
	}
}
