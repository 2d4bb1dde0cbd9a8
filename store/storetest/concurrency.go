package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// The concurrency cases: both stores commit concurrent steps of different
// patients together (group commit), so these check that grouping never
// costs a step its order, its once-only application, or its independence
// from a bad neighbour.

// testManyPatientsTwoInstances applies many patients' steps from two
// instances at once, each patient's steps in turn, alternating between
// the instances, so both instances' groups hold overlapping sets of
// patients, arriving in no particular order (a store that locked them in
// arrival order would deadlock). Every step is delivered a second time
// with its key, to the other instance, at once. Each step checks it sees
// the previous one, queues one message and moves a timer: at the end
// every patient has every step once, in order, and one timer at its last
// time.
func testManyPatientsTwoInstances(t *testing.T, b Backend) {
	insts := b.Instances(t, 2)
	const patients, steps = 48, 12
	ctx := context.Background()
	id := func(p int) engine.PatientID { return engine.PatientID(fmt.Sprintf("telegram:%03d", p)) }
	var errMu sync.Mutex
	var errs []string
	fail := func(format string, args ...any) {
		errMu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		errMu.Unlock()
	}
	apply := func(s Store, p, j int) (bool, error) {
		st := store.Step{Patient: id(p), Dedupe: fmt.Sprintf("telegram:update:%d:%d", p, j), Now: t0}
		return s.Apply(ctx, st, func(in store.Input) (engine.Result, error) {
			if in.State.Handled != j {
				return engine.Result{}, fmt.Errorf("%s step %d saw %d steps before it", id(p), j, in.State.Handled)
			}
			next := in.State
			next.Patient = id(p)
			next.Handled++
			return engine.Result{State: next,
				Messages: []engine.Outbound{{To: id(p), Kind: engine.KindReply, Text: fmt.Sprintf("%d", j), Created: t0}},
				Timers:   []engine.Timer{{Key: "checkin:24", At: t0.Add(time.Duration(j+1) * time.Minute)}},
			}, nil
		})
	}
	var wg sync.WaitGroup
	for p := 0; p < patients; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < steps; j++ {
				// Step j goes to instance j%2, its copy to the other.
				var copies sync.WaitGroup
				oks := make([]bool, 2)
				for r := range 2 {
					copies.Add(1)
					go func() {
						defer copies.Done()
						ok, err := apply(insts[(j+r)%2], p, j)
						if err != nil {
							fail("%s step %d (copy %d): %v", id(p), j, r, err)
						}
						oks[r] = ok
					}()
				}
				copies.Wait()
				if oks[0] == oks[1] {
					fail("%s step %d: applied %v and %v, want exactly one of the two copies", id(p), j, oks[0], oks[1])
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d failures, first: %s", len(errs), strings.Join(errs[:min(5, len(errs))], "; "))
	}
	out, err := insts[1].OutboxAll(patients * steps * 2)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[engine.PatientID][]string{}
	for _, m := range out {
		texts[m.To] = append(texts[m.To], m.Text)
	}
	for p := 0; p < patients; p++ {
		st, found, err := insts[0].State(id(p))
		if err != nil || !found || st.Handled != steps {
			t.Errorf("%s: handled %d (found %v, %v), want %d", id(p), st.Handled, found, err, steps)
		}
		want := make([]string, steps)
		for j := range want {
			want[j] = fmt.Sprint(j)
		}
		if got := strings.Join(texts[id(p)], ","); got != strings.Join(want, ",") {
			t.Errorf("%s: messages queued %s, want %s (each step once, in order)", id(p), got, strings.Join(want, ","))
		}
		ts, err := insts[1].Timers(id(p))
		if err != nil || len(ts) != 1 || !ts["checkin:24"].Equal(t0.Add(steps*time.Minute)) {
			t.Errorf("%s: timers %v (%v), want checkin:24 at the last step's time", id(p), ts, err)
		}
	}
	if b.Deadlocks != nil {
		if n := b.Deadlocks(insts); n != 0 {
			t.Errorf("%d transactions ran again after a deadlock: patients must be locked in one order", n)
		}
	}
}

// testPoisonedStep applies many patients' steps at once with a few bad
// ones among them: a step whose fn fails, one whose fn panics, and one
// with a NUL byte in its dedupe key, which PostgreSQL's text cannot hold.
// Each bad step fails (or, where the backend can store it, commits) on
// its own; every other step of its group commits.
func testPoisonedStep(t *testing.T, b Backend) {
	s := one(t, b)
	ctx := context.Background()
	boom := errors.New("boom")
	const n = 64
	kinds := map[int]string{10: "error", 20: "panic", 30: "nul", 40: "error"}
	errs := make([]error, n)
	oks := make([]bool, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := engine.PatientID(fmt.Sprintf("telegram:%d", i))
			st := store.Step{Patient: p, Dedupe: fmt.Sprintf("telegram:update:%d", i), Now: t0}
			if kinds[i] == "nul" {
				st.Dedupe = "telegram:update:\x00"
			}
			oks[i], errs[i] = s.Apply(ctx, st, func(in store.Input) (engine.Result, error) {
				switch kinds[i] {
				case "error":
					return engine.Result{}, boom
				case "panic":
					panic("a bad record")
				}
				next := in.State
				next.Patient = p
				return result(next, 1), nil
			})
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		p := engine.PatientID(fmt.Sprintf("telegram:%d", i))
		_, found, _ := s.State(p)
		switch kinds[i] {
		case "error":
			if !errors.Is(errs[i], boom) || oks[i] || found {
				t.Errorf("step %d (fn fails): ok=%v err=%v stored=%v, want its own error and nothing stored", i, oks[i], errs[i], found)
			}
		case "panic":
			if errs[i] == nil || oks[i] || found {
				t.Errorf("step %d (fn panics): ok=%v err=%v stored=%v, want an error and nothing stored", i, oks[i], errs[i], found)
			}
		case "nul":
			if (errs[i] == nil) != (oks[i] && found) {
				t.Errorf("step %d (NUL in key): ok=%v err=%v stored=%v, want committed or failed, not half", i, oks[i], errs[i], found)
			}
		default:
			if errs[i] != nil || !oks[i] || !found {
				t.Errorf("step %d: ok=%v err=%v stored=%v: a good step failed beside a bad one", i, oks[i], errs[i], found)
			}
		}
	}
	out, _ := s.OutboxAll(2 * n)
	want := n - len(kinds)
	if errs[30] == nil {
		want++
	}
	if len(out) != want {
		t.Errorf("%d messages queued, want %d (one per committed step)", len(out), want)
	}
}
