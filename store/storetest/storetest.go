// Package storetest is the conformance suite every store backend passes:
// the guarantees the service relies on (one transaction per step, dedupe,
// timers in due order and fired once, outbox order and delivery,
// escalation ladders, invites, erasure), written once and run against the
// bbolt store and the PostgreSQL store alike.
//
// A backend supplies Backend.Open; Run does the rest. Tests that need two
// instances on one database ask Backend.Instances; a backend that allows
// one process per database (bbolt) hands the same store out twice, which
// still proves the guarantees hold under concurrent callers.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// Store is what the suite needs of a backend: the service's store and a
// few reads for checking.
type Store interface {
	service.Store
	// Timers returns a patient's pending timers.
	Timers(id engine.PatientID) (map[string]time.Time, error)
	// EscalationTimers returns an escalation's pending timers.
	EscalationTimers(id uint64) (map[string]time.Time, error)
	// OutboxAll lists queued messages without claiming them.
	OutboxAll(limit int) ([]engine.Outbound, error)
	PatientIDs(platform string) ([]engine.PatientID, error)
	ReadMarks(platform string) (map[engine.PatientID]string, error)
	SetReadMarks(marks map[engine.PatientID]string) error
	// Indexes are the patient indexes (last activity, visit date).
	Indexes
}

// Backend is one store implementation under test.
type Backend struct {
	// Name names the backend in test output ("bbolt", "postgres").
	Name string
	// Instances returns n stores on one new, empty database, as n
	// instances of the program would hold them; all are closed when the
	// test ends. A backend that allows one holder per database returns
	// the same store n times.
	Instances func(t *testing.T, n int) []Store
	// Deadlocks, when set, counts the transactions the backend ran again
	// after the server broke a deadlock, over the given instances: the
	// concurrency case asserts none (locks taken in one order).
	Deadlocks func(insts []Store) uint64
}

// Run runs the suite against b, one subtest per guarantee.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"ApplyCommitsStepTogetherAndDedupes", testApplyDedupe},
		{"FailedStepCommitsNothing", testFailedStep},
		{"SkippedStepCommitsNothing", testSkippedStep},
		{"TimersOrderedRescheduledAndFiredOnce", testTimers},
		{"TimerFiresOnceAcrossInstances", testTimerOnceAcrossInstances},
		{"PatientStepsSerialAcrossInstances", testPatientSerial},
		{"StaffCommandAppliedOncePerUpdate", testStaffOnce},
		{"OutboxPriorityDeliveryAndRetry", testOutbox},
		{"EscalationLadderStepsOnce", testEscalation},
		{"TimerOwnersKeptApart", testTimerOwners},
		{"InvitesUsedOnce", testInvites},
		{"EraseRemovesOnePatientOnly", testErase},
		{"IdentityAndClinicRepliesKeptThenErased", testIdentity},
		{"DeskSignInLinksSingleUse", testDeskLogins},
		{"DeskListsStatesAndOpenInvites", testDeskLists},
		{"DeskSessionsSharedTouchedDeletedPruned", testDeskSessions},
		{"PruneDedupe", testPruneDedupe},
		{"PreparedResultOnlyWhenStateUnchanged", testPrepared},
		{"ReadMarksOnlyForStoredPatients", testReadMarks},
		{"AuditAppendedInOrder", testAudit},
		{"LastActivityIndexFollowsSteps", testActivityIndex},
		{"VisitDateIndexListsRecentVisits", testVisitIndex},
		{"PurgeReadsOnlyWhatExpires", testPurgeByIndex},
		{"ManyPatientsTwoInstancesOnceInOrder", testManyPatientsTwoInstances},
		{"PoisonedStepFailsAlone", testPoisonedStep},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func one(t *testing.T, b Backend) Store { return b.Instances(t, 1)[0] }

func step(id engine.PatientID, dedupe string) store.Step {
	return store.Step{Patient: id, Dedupe: dedupe, Now: t0}
}

func result(st engine.State, msgs int, timers ...engine.Timer) engine.Result {
	st.Handled++
	r := engine.Result{State: st, Timers: timers}
	for i := 0; i < msgs; i++ {
		r.Messages = append(r.Messages, engine.Outbound{To: st.Patient, Kind: engine.KindReply, Text: "hello", Created: t0})
	}
	return r
}

// put stores a patient with one step (and its timers).
func put(t *testing.T, s Store, id engine.PatientID, msgs int, timers ...engine.Timer) {
	t.Helper()
	if _, err := s.Apply(context.Background(), step(id, ""), func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = id
		return result(st, msgs, timers...), nil
	}); err != nil {
		t.Fatal(err)
	}
}

func testApplyDedupe(t *testing.T, b Backend) {
	s := one(t, b)
	ctx := context.Background()
	for i := 0; i < 3; i++ { // the same update three times
		ok, err := s.Apply(ctx, step("telegram:1", "telegram:update:7"), func(in store.Input) (engine.Result, error) {
			if in.Found {
				t.Error("fn called for an update already applied")
			}
			st := in.State
			st.Patient = "telegram:1"
			return result(st, 2, engine.Timer{Key: "checkin:24", At: t0.Add(24 * time.Hour)}), nil
		})
		if err != nil || ok != (i == 0) {
			t.Fatalf("apply %d: ok=%v err=%v", i, ok, err)
		}
	}
	st, found, _ := s.State("telegram:1")
	if !found || st.Handled != 1 {
		t.Fatalf("state %+v found %v", st, found)
	}
	out, _ := s.Outbox("telegram", 10)
	if len(out) != 2 || out[0].ID >= out[1].ID {
		t.Fatalf("outbox %+v", out)
	}
	due, ok, _ := s.NextDue()
	if !ok || due.Key != "checkin:24" || due.Patient != "telegram:1" || !due.At.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("next due %+v", due)
	}
}

func testFailedStep(t *testing.T, b Backend) {
	s := one(t, b)
	boom := errors.New("boom")
	_, err := s.Apply(context.Background(), step("p", "k"), func(in store.Input) (engine.Result, error) {
		return engine.Result{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want the fn's error", err)
	}
	if _, found, _ := s.State("p"); found {
		t.Fatal("state written by a failed step")
	}
	n := 0
	s.Patients(func(engine.State) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d patients after a failed step", n)
	}
	// The dedupe key was not recorded: a retry applies.
	ok, err := s.Apply(context.Background(), step("p", "k"), func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = "p"
		return result(st, 1), nil
	})
	if !ok || err != nil {
		t.Fatalf("retry: %v %v", ok, err)
	}
}

func testSkippedStep(t *testing.T, b Backend) {
	s := one(t, b)
	ok, err := s.Apply(context.Background(), step("telegram:5", "k"), func(in store.Input) (engine.Result, error) {
		return engine.Result{}, store.ErrSkip
	})
	if ok || err != nil {
		t.Fatalf("skipped step: ok=%v err=%v", ok, err)
	}
	if _, found, _ := s.State("telegram:5"); found {
		t.Fatal("a skipped step left a state")
	}
	if ids, _ := s.PatientIDs("telegram"); len(ids) != 0 {
		t.Fatalf("a skipped step left a patient: %v", ids)
	}
}

func fire(t *testing.T, s Store, d store.Due) bool {
	t.Helper()
	ok, err := s.Apply(context.Background(), store.Step{Patient: d.Patient, Due: &d, Now: t0}, func(in store.Input) (engine.Result, error) {
		return result(in.State, 1), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func testTimers(t *testing.T, b Backend) {
	s := one(t, b)
	for i, id := range []engine.PatientID{"c", "a", "b"} {
		put(t, s, id, 0, engine.Timer{Key: "checkin:24", At: t0.Add(time.Duration(3-i) * time.Hour)})
	}
	// Reschedule "a" later: the old entry must go.
	put(t, s, "a", 0, engine.Timer{Key: "checkin:24", At: t0.Add(10 * time.Hour)})
	// Two timers of one patient at the same time sort by key.
	put(t, s, "d", 0, engine.Timer{Key: "y", At: t0.Add(4 * time.Hour)}, engine.Timer{Key: "x", At: t0.Add(4 * time.Hour)})
	due, err := s.DueBefore(t0.Add(5*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range due {
		got = append(got, fmt.Sprintf("%s/%s@%s", d.Patient, d.Key, d.At.Sub(t0)))
	}
	if want := "b/checkin:24@1h0m0s c/checkin:24@3h0m0s d/x@4h0m0s d/y@4h0m0s"; strings.Join(got, " ") != want {
		t.Fatalf("due %v, want %s", got, want)
	}
	if limited, _ := s.DueBefore(t0.Add(5*time.Hour), 1); len(limited) != 1 || limited[0].Patient != "b" {
		t.Fatalf("limit 1: %+v", limited)
	}
	if !fire(t, s, due[0]) || fire(t, s, due[0]) {
		t.Fatal("a timer fired zero or two times")
	}
	if tm, _ := s.Timers("b"); len(tm) != 0 {
		t.Fatalf("fired timer still pending: %v", tm)
	}
	// A stale Due (rescheduled since) does not fire.
	stale := store.Due{Owner: store.PatientOwner("a"), Key: "checkin:24", At: t0.Add(1 * time.Hour)}
	if fire(t, s, stale) {
		t.Fatal("a rescheduled timer fired at its old time")
	}
	// Cancelling with a zero time removes it.
	put(t, s, "d", 0, engine.Timer{Key: "y"})
	if tm, _ := s.Timers("d"); len(tm) != 1 || !tm["x"].Equal(t0.Add(4*time.Hour)) {
		t.Fatalf("after cancelling d/y: %v", tm)
	}
	next, ok, _ := s.NextDue()
	if !ok || next.Patient != "c" {
		t.Fatalf("next %+v", next)
	}
}

// testTimerOnceAcrossInstances fires 40 due timers from two instances,
// each with four workers scanning and firing at once: every timer is
// applied exactly once.
func testTimerOnceAcrossInstances(t *testing.T, b Backend) {
	insts := b.Instances(t, 2)
	const n = 40
	for i := 0; i < n; i++ {
		put(t, insts[0], engine.PatientID(fmt.Sprintf("telegram:%d", i)), 0, engine.Timer{Key: "checkin:24", At: t0.Add(time.Duration(i) * time.Minute)})
	}
	var mu sync.Mutex
	fired := map[engine.PatientID]int{}
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := 0; w < 8; w++ {
		s := insts[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				due, err := s.DueBefore(t0.Add(time.Hour), 7)
				if err != nil {
					errc <- err
					return
				}
				if len(due) == 0 {
					return
				}
				for _, d := range due {
					ok, err := s.Apply(context.Background(), store.Step{Patient: d.Patient, Due: &d, Now: t0}, func(in store.Input) (engine.Result, error) {
						return result(in.State, 1), nil
					})
					if err != nil {
						errc <- err
						return
					}
					if ok {
						mu.Lock()
						fired[d.Patient]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if len(fired) != n {
		t.Fatalf("%d of %d timers fired", len(fired), n)
	}
	for p, c := range fired {
		if c != 1 {
			t.Errorf("%s fired %d times", p, c)
		}
	}
	out, _ := insts[1].OutboxAll(1000)
	if len(out) != n {
		t.Fatalf("%d messages queued, want %d (one per timer)", len(out), n)
	}
}

// testPatientSerial applies 60 steps to one patient from two instances at
// once; each step reads the state the previous one wrote, so none is lost.
func testPatientSerial(t *testing.T, b Backend) {
	insts := b.Instances(t, 2)
	const n = 60
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		s := insts[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Apply(context.Background(), step("telegram:1", fmt.Sprintf("u%d", i)), func(in store.Input) (engine.Result, error) {
				st := in.State
				st.Patient = "telegram:1"
				return result(st, 0), nil
			})
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, _, err := insts[1].State("telegram:1")
	if err != nil || st.Handled != n {
		t.Fatalf("handled %d (%v), want %d: a step did not see the one before it", st.Handled, err, n)
	}
}

// linkAlerts is the suite's Step.OnEscalation: it ties the step's alerts
// to the new escalation with a button of its own naming, as the service
// does with its wording, and starts no timers.
func linkAlerts(e engine.Escalation, ms []engine.Outbound) []engine.Timer {
	for i, m := range ms {
		if m.Kind == engine.KindAlert {
			ms[i].EscalationID = e.ID
			ms[i].Choices = append(append([]engine.Choice(nil), m.Choices...), engine.Choice{ID: fmt.Sprintf("test-ack:%d", e.ID), Label: "OK"})
		}
	}
	return nil
}

func testOutbox(t *testing.T, b Backend) {
	s := one(t, b)
	st := step("telegram:1", "")
	st.OnEscalation = linkAlerts
	s.Apply(context.Background(), st, func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = "telegram:1"
		return engine.Result{State: st, Messages: []engine.Outbound{
			{To: "telegram:1", Kind: engine.KindCheckin, Text: "c"},
			{To: "telegram:1", Kind: engine.KindReply, Text: "r"},
			{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindAlert, Level: engine.Urgent, Text: "a"},
			{To: "discord:9", Kind: engine.KindReply, Text: "d"},
		}, Escalation: &engine.Escalation{Patient: "telegram:1", Level: engine.Urgent, Status: "open"}}, nil
	})
	out, _ := s.Outbox("telegram", 10)
	if len(out) != 3 || out[0].Kind != engine.KindAlert || out[1].Kind != engine.KindReply || out[2].Kind != engine.KindCheckin {
		t.Fatalf("order %v", out)
	}
	if out[0].EscalationID == 0 || len(out[0].Choices) != 1 || out[0].Choices[0].ID != fmt.Sprintf("test-ack:%d", out[0].EscalationID) {
		t.Fatalf("alert not linked to its escalation by OnEscalation: %+v", out[0])
	}
	if out[1].EscalationID != 0 || len(out[1].Choices) != 0 {
		t.Fatalf("store changed a message OnEscalation left alone: %+v", out[1])
	}
	if d, _ := s.Outbox("discord", 10); len(d) != 1 || d[0].Text != "d" {
		t.Fatalf("discord outbox %v", d)
	}
	// skip sees destinations and keeps the order of the rest.
	skipped, _ := s.OutboxScan("telegram", 10, 100, func(p engine.PatientID) bool { return p == "telegram:-100" })
	if len(skipped) != 2 || skipped[0].Kind != engine.KindReply {
		t.Fatalf("scan skipping the staff chat: %v", skipped)
	}
	if err := s.Delivered(out[0], out[1]); err != nil {
		t.Fatal(err)
	}
	out[2].Attempts = 2
	out[2].NotBefore = t0.Add(time.Minute)
	if err := s.Retry(out[2]); err != nil {
		t.Fatal(err)
	}
	left, _ := s.Outbox("telegram", 10)
	if len(left) != 1 || left[0].Attempts != 2 || !left[0].NotBefore.Equal(t0.Add(time.Minute)) || left[0].ID != out[2].ID {
		t.Fatalf("left %+v", left)
	}
	// Retry of a delivered message does not bring it back.
	if err := s.Retry(out[0]); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.OutboxAll(10); len(all) != 2 {
		t.Fatalf("outbox after retrying a delivered message: %v", all)
	}
	if err := s.Enqueue(engine.Outbound{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindNotice, Text: "n"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Outbox("telegram", 10); len(got) != 2 || got[0].Kind != engine.KindNotice {
		t.Fatalf("after enqueue %v", got)
	}
	if es, _ := s.Escalations(); len(es) != 1 || es[0].Status != "open" || es[0].ID != out[0].EscalationID {
		t.Fatalf("escalations %+v", es)
	}
}

// escalate stores a patient step that opens an escalation whose
// OnEscalation starts its ladder timer, and returns the escalation's ID.
func escalate(t *testing.T, s Store, p engine.PatientID) uint64 {
	t.Helper()
	stp := step(p, "")
	stp.OnEscalation = func(e engine.Escalation, ms []engine.Outbound) []engine.Timer {
		linkAlerts(e, ms)
		return []engine.Timer{{Key: "ladder:1", At: t0.Add(10 * time.Minute)}}
	}
	if _, err := s.Apply(context.Background(), stp, func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = p
		return engine.Result{State: st,
			Escalation: &engine.Escalation{Patient: p, Level: engine.Urgent, Status: "open", At: t0},
			Messages:   []engine.Outbound{{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindAlert, Patient: p, Text: "alert"}},
			Audit:      []engine.Audit{{At: t0, Actor: "system", Action: "escalated", Patient: p}},
		}, nil
	}); err != nil {
		t.Fatal(err)
	}
	es, err := s.Escalations()
	if err != nil || len(es) == 0 {
		t.Fatalf("escalations %v %v", es, err)
	}
	return es[len(es)-1].ID
}

func testEscalation(t *testing.T, b Backend) {
	s := one(t, b)
	ctx := context.Background()
	id := escalate(t, s, "telegram:1")
	tm, _ := s.EscalationTimers(id)
	if len(tm) != 1 || !tm["ladder:1"].Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("ladder timers %v", tm)
	}
	if tm, _ := s.Timers("telegram:1"); len(tm) != 0 {
		t.Fatalf("the escalation's timer filed under its patient: %v", tm)
	}
	due, _ := s.DueBefore(t0.Add(time.Hour), 10)
	if len(due) != 1 || due[0].Owner != store.EscalationOwner(id) || due[0].Key != "ladder:1" {
		t.Fatalf("due %+v, want escalation %d's ladder:1", due, id)
	}
	d := due[0]
	calls := 0
	stepLadder := func() (bool, error) {
		return s.ApplyEscalation(ctx, id, &d, t0.Add(10*time.Minute), func(e *engine.Escalation) (store.EscalationUpdate, error) {
			calls++
			e.Steps++
			return store.EscalationUpdate{Changed: true,
				Timers:   []engine.Timer{{Key: "ladder:2", At: t0.Add(20 * time.Minute)}},
				Messages: []engine.Outbound{{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindAlert, Text: "again", EscalationID: id}},
				Audit:    []engine.Audit{{At: t0, Actor: "system", Action: "realerted", Patient: "telegram:1"}},
			}, nil
		})
	}
	if ok, err := stepLadder(); !ok || err != nil {
		t.Fatalf("ladder step: %v %v", ok, err)
	}
	if ok, err := stepLadder(); ok || err != nil || calls != 1 {
		t.Fatalf("ladder step applied twice: ok=%v err=%v calls=%d", ok, err, calls)
	}
	if tm, _ := s.EscalationTimers(id); len(tm) != 1 || tm["ladder:2"].IsZero() {
		t.Fatalf("ladder timers after step 1: %v", tm)
	}
	// Acknowledging stops the ladder.
	if ok, err := s.ApplyEscalation(ctx, id, nil, t0, func(e *engine.Escalation) (store.EscalationUpdate, error) {
		e.Status, e.AckBy = "acknowledged", "nurse"
		return store.EscalationUpdate{Changed: true, StopLadder: true}, nil
	}); !ok || err != nil {
		t.Fatalf("ack: %v %v", ok, err)
	}
	if tm, _ := s.EscalationTimers(id); len(tm) != 0 {
		t.Fatalf("ladder timers after ack: %v", tm)
	}
	es, _ := s.Escalations()
	if len(es) != 1 || es[0].Status != "acknowledged" || es[0].Steps != 1 {
		t.Fatalf("escalation %+v", es)
	}
	if _, err := s.ApplyEscalation(ctx, id+100, nil, t0, func(*engine.Escalation) (store.EscalationUpdate, error) {
		return store.EscalationUpdate{}, nil
	}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown escalation: %v, want ErrNotFound", err)
	}
	out, _ := s.OutboxAll(10)
	if len(out) != 2 || out[1].Text != "again" {
		t.Fatalf("outbox %v", out)
	}
}

// testTimerOwners: a timer's owner is kept as given. A patient whose ID
// reads like an escalation's old pseudo patient ("escalation:<id>") keeps
// its timers, and the escalation its own; cancelling one owner's timers
// leaves the other's.
func testTimerOwners(t *testing.T, b Backend) {
	s := one(t, b)
	ctx := context.Background()
	id := escalate(t, s, "telegram:1")
	look := engine.PatientID(fmt.Sprintf("escalation:%d", id))
	put(t, s, look, 0, engine.Timer{Key: "ladder:1", At: t0.Add(5 * time.Minute)})
	due, err := s.DueBefore(t0.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range due {
		got = append(got, fmt.Sprintf("%s %q %s/%s", d.Kind, d.Patient, d.Owner, d.Key))
	}
	want := []string{
		fmt.Sprintf("patient %q %s/ladder:1", look, look),
		fmt.Sprintf("escalation \"\" escalation %d/ladder:1", id),
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("due:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ok, err := s.ApplyEscalation(ctx, id, nil, t0, func(*engine.Escalation) (store.EscalationUpdate, error) {
		return store.EscalationUpdate{StopLadder: true}, nil
	}); !ok || err != nil {
		t.Fatalf("stop ladder: %v %v", ok, err)
	}
	if tm, _ := s.Timers(look); len(tm) != 1 {
		t.Fatalf("stopping escalation %d's ladder cancelled patient %s's timer: %v", id, look, tm)
	}
	// A patient's step cannot fire an escalation's timer, nor another
	// patient's.
	for _, d := range []store.Due{
		{Owner: store.EscalationOwner(id), Key: "ladder:1", At: t0.Add(10 * time.Minute)},
		{Owner: store.PatientOwner("telegram:1"), Key: "ladder:1", At: t0.Add(5 * time.Minute)},
	} {
		ok, err := s.Apply(ctx, store.Step{Patient: look, Due: &d, Now: t0}, func(in store.Input) (engine.Result, error) {
			return result(in.State, 0), nil
		})
		if ok || !errors.Is(err, store.ErrOwner) {
			t.Errorf("patient %s's step firing %s's timer: %v, %v; want store.ErrOwner", look, d.Owner, ok, err)
		}
	}
	if tm, _ := s.EscalationTimers(id); len(tm) != 0 {
		t.Fatalf("ladder not stopped: %v", tm)
	}
}

func testInvites(t *testing.T, b Backend) {
	s := one(t, b)
	ctx := context.Background()
	visit := engine.Visit{At: t0.Add(-time.Hour), Treatment: engine.DryNeedling}
	if err := s.PutInvite(engine.Invite{Token: "tok", Visit: visit, Created: t0, Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutInvite(engine.Invite{Token: "tok", Created: t0, Expires: t0.Add(time.Hour)}); err == nil {
		t.Fatal("an existing invite token was overwritten")
	}
	s.PutInvite(engine.Invite{Token: "old", Visit: visit, Created: t0.Add(-48 * time.Hour), Expires: t0.Add(-time.Hour)})
	present := func(p engine.PatientID, token string) engine.InviteResult {
		t.Helper()
		var got engine.InviteResult
		if _, err := s.Apply(ctx, store.Step{Patient: p, Invite: token, Now: t0}, func(in store.Input) (engine.Result, error) {
			got = in.Invite
			st := in.State
			st.Patient = p
			r := result(st, 0)
			r.InviteUsed = in.Invite.Status == engine.InviteOK
			return r, nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if r := present("telegram:1", "tok"); r.Status != engine.InviteOK || r.Visit == nil || r.Visit.Treatment != engine.DryNeedling {
		t.Fatalf("first use %+v", r)
	}
	if r := present("telegram:2", "tok"); r.Status != engine.InviteUsed {
		t.Fatalf("second use %+v, want used", r)
	}
	if r := present("telegram:2", "old"); r.Status != engine.InviteExpired {
		t.Fatalf("expired %+v", r)
	}
	if r := present("telegram:2", "nope"); r.Status != engine.InviteUnknown {
		t.Fatalf("unknown %+v", r)
	}
}

func testErase(t *testing.T, b Backend) {
	s := one(t, b)
	ctx := context.Background()
	escIDs := map[engine.PatientID]uint64{}
	for _, p := range []engine.PatientID{"telegram:1", "telegram:2"} {
		if _, err := s.Apply(ctx, step(p, "visit-"+string(p)), func(in store.Input) (engine.Result, error) {
			st := in.State
			st.Patient = p
			st.Visit = &engine.Visit{At: t0, Treatment: engine.Acupuncture}
			r := result(st, 1, engine.Timer{Key: "checkin:24", At: t0.Add(24 * time.Hour)})
			r.Audit = []engine.Audit{{At: t0, Actor: "clinic", Action: "visit_recorded", Patient: p}}
			r.VisitRecorded = true
			return r, nil
		}); err != nil {
			t.Fatal(err)
		}
		escIDs[p] = escalate(t, s, p)
	}
	s.PutInvite(engine.Invite{Token: "t1", Created: t0, Expires: t0.Add(time.Hour)})
	s.Apply(ctx, store.Step{Patient: "telegram:1", Invite: "t1", Now: t0}, func(in store.Input) (engine.Result, error) {
		return engine.Result{State: in.State, InviteUsed: true}, nil
	})
	s.SetReadMarks(map[engine.PatientID]string{"telegram:1": "m1", "telegram:2": "m2"})

	if r, err := s.PatientRecord("telegram:1"); err != nil || len(r.Visits) != 1 || len(r.Escalations) != 1 || len(r.Audit) != 2 {
		t.Fatalf("record before erasure: %+v %v", r, err)
	}
	if ok, err := s.Apply(ctx, step("telegram:1", "erase"), func(in store.Input) (engine.Result, error) {
		return engine.Result{Erase: true}, nil
	}); !ok || err != nil {
		t.Fatalf("erase: %v %v", ok, err)
	}
	if _, found, _ := s.State("telegram:1"); found {
		t.Fatal("state kept")
	}
	if _, err := s.PatientRecord("telegram:1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record after erasure: %v, want ErrNotFound", err)
	}
	if tm, _ := s.Timers("telegram:1"); len(tm) != 0 {
		t.Fatalf("timers kept: %v", tm)
	}
	es, _ := s.Escalations()
	if len(es) != 1 || es[0].Patient != "telegram:2" {
		t.Fatalf("escalations after erasure %+v", es)
	}
	due, _ := s.DueBefore(t0.Add(48*time.Hour), 100)
	for _, d := range due {
		if d.Owner == store.PatientOwner("telegram:1") || d.Owner == store.EscalationOwner(escIDs["telegram:1"]) {
			t.Fatalf("a timer of the erased patient is left: %+v", d)
		}
	}
	if len(due) != 2 { // telegram:2's check-in and ladder
		t.Fatalf("due after erasure %+v", due)
	}
	out, _ := s.OutboxAll(100)
	for _, m := range out {
		if m.To == "telegram:1" || m.Patient == "telegram:1" {
			t.Fatalf("a message about the erased patient is queued: %+v", m)
		}
	}
	if len(out) != 2 {
		t.Fatalf("outbox after erasure %v", out)
	}
	as, _ := s.Audit()
	for _, a := range as {
		if a.Patient == "telegram:1" {
			t.Fatalf("audit line of the erased patient kept: %+v", a)
		}
	}
	if as[len(as)-1].Action != "erased" {
		t.Fatalf("erasure not audited: %+v", as[len(as)-1])
	}
	if marks, _ := s.ReadMarks("telegram"); len(marks) != 1 || marks["telegram:2"] != "m2" {
		t.Fatalf("read marks after erasure %v", marks)
	}
	if r, err := s.PatientRecord("telegram:2"); err != nil || len(r.Visits) != 1 || len(r.Escalations) != 1 {
		t.Fatalf("the other patient's record: %+v %v", r, err)
	}
	// The dedupe key of an erased patient's update still holds.
	if ok, _ := s.Apply(ctx, step("telegram:1", "visit-telegram:1"), func(in store.Input) (engine.Result, error) {
		return result(in.State, 0), nil
	}); ok {
		t.Fatal("an update applied before the erasure applied again")
	}
}

func testPruneDedupe(t *testing.T, b Backend) {
	s := one(t, b)
	for i, at := range []time.Time{t0, t0.Add(48 * time.Hour), t0.Add(96 * time.Hour)} {
		st := store.Step{Patient: "p", Dedupe: "k" + string(rune('0'+i)), Now: at}
		s.Apply(context.Background(), st, func(in store.Input) (engine.Result, error) {
			in.State.Patient = "p"
			return engine.Result{State: in.State}, nil
		})
	}
	n, err := s.PruneDedupe(t0.Add(72 * time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2", n, err)
	}
	ok0, _ := s.Apply(context.Background(), store.Step{Patient: "p", Dedupe: "k0", Now: t0}, func(in store.Input) (engine.Result, error) {
		return engine.Result{State: in.State}, nil
	})
	ok2, _ := s.Apply(context.Background(), store.Step{Patient: "p", Dedupe: "k2", Now: t0}, func(in store.Input) (engine.Result, error) {
		return engine.Result{State: in.State}, nil
	})
	if !ok0 || ok2 {
		t.Fatalf("after pruning: k0 applied %v (want true), k2 applied %v (want false)", ok0, ok2)
	}
}

func testPrepared(t *testing.T, b Backend) {
	s := one(t, b)
	ctx := context.Background()
	mk := func(handled int, text string) *store.Prepared {
		st := engine.State{Patient: "p", Handled: handled}
		b, _ := json.Marshal(st)
		return &store.Prepared{Result: engine.Result{State: st, Messages: []engine.Outbound{{To: "p", Kind: engine.KindReply, Text: text}}}, State: b}
	}
	fnCalls := 0
	fn := func(in store.Input) (engine.Result, error) {
		fnCalls++
		in.State.Patient = "p"
		in.State.Handled++
		return engine.Result{State: in.State, Messages: []engine.Outbound{{To: "p", Kind: engine.KindReply, Text: "recomputed"}}}, nil
	}
	if ok, err := s.Apply(ctx, store.Step{Patient: "p", Prepared: mk(1, "prepared-1")}, fn); !ok || err != nil || fnCalls != 0 {
		t.Fatalf("first: %v %v calls %d", ok, err, fnCalls)
	}
	_, raw, _ := s.StateRaw("p")
	if ok, _ := s.Apply(ctx, store.Step{Patient: "p", Prepared: mk(2, "stale")}, fn); !ok || fnCalls != 1 {
		t.Fatalf("stale prepared result was committed (fn calls %d)", fnCalls)
	}
	_, raw2, _ := s.StateRaw("p")
	p := mk(3, "prepared-3")
	p.From = raw2
	s.Apply(ctx, store.Step{Patient: "p", Prepared: p}, fn)
	if fnCalls != 1 || bytes.Equal(raw, raw2) {
		t.Fatalf("fresh prepared result not used (fn calls %d)", fnCalls)
	}
	var texts []string
	out, _ := s.OutboxAll(10)
	for _, m := range out {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, ",") != "prepared-1,recomputed,prepared-3" {
		t.Fatalf("committed %v", texts)
	}
}

func testReadMarks(t *testing.T, b Backend) {
	s := one(t, b)
	put(t, s, "discord:1", 0)
	put(t, s, "discord:2", 0)
	put(t, s, "telegram:1", 0)
	if err := s.SetReadMarks(map[engine.PatientID]string{"discord:1": "10/11", "discord:2": "20/21", "discord:3": "30/31"}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.PatientIDs("discord")
	if err != nil || len(ids) != 2 || ids[0] != "discord:1" || ids[1] != "discord:2" {
		t.Fatalf("PatientIDs = %v, %v", ids, err)
	}
	marks, err := s.ReadMarks("discord")
	if err != nil || len(marks) != 2 || marks["discord:1"] != "10/11" || marks["discord:2"] != "20/21" {
		t.Fatalf("marks = %v, %v; want those of the two stored patients", marks, err)
	}
}

func testAudit(t *testing.T, b Backend) {
	s := one(t, b)
	for i := 0; i < 3; i++ {
		if err := s.AppendAudit(context.Background(), engine.Audit{At: t0, Actor: "staff", Action: fmt.Sprintf("read%d", i), Patient: "telegram:1"}); err != nil {
			t.Fatal(err)
		}
	}
	as, err := s.Audit()
	if err != nil || len(as) != 3 || as[0].Action != "read0" || as[2].Action != "read2" {
		t.Fatalf("audit %+v %v", as, err)
	}
	var n int
	s.Patients(func(engine.State) error { n++; return nil })
	if n != 0 {
		t.Fatalf("audit lines made %d patients", n)
	}
}

// testStaffOnce: a staff command's invite, answer and update key commit
// together, once per key, even when two instances race on a redelivery.
func testStaffOnce(t *testing.T, b Backend) {
	ss := b.Instances(t, 2)
	ctx := context.Background()
	var wg sync.WaitGroup
	applied := make([]bool, 2)
	for i := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := ss[i].ApplyStaff(ctx, store.StaffStep{Dedupe: "telegram:update:77", Now: t0,
				Invite:   &engine.Invite{Token: fmt.Sprintf("tok%d", i), Created: t0, Expires: t0.Add(time.Hour)},
				Messages: []engine.Outbound{{To: engine.StaffAddress, Kind: engine.KindNotice, Text: "invite", Created: t0}}})
			if err != nil {
				t.Error(err)
			}
			applied[i] = ok
		}()
	}
	wg.Wait()
	if applied[0] == applied[1] {
		t.Fatalf("applied %v: want exactly one", applied)
	}
	if ok, err := ss[0].Applied("telegram:update:77"); !ok || err != nil {
		t.Fatalf("key not recorded: %v %v", ok, err)
	}
	ms, err := ss[0].OutboxAll(10)
	if err != nil || len(ms) != 1 {
		t.Fatalf("outbox %d messages, %v; want 1", len(ms), err)
	}
}

// testIdentity: the staff-only identity entered with a visit is kept with
// the state and the visit history, a message written by staff is kept in
// the transcript as the clinic team's, and erasing the patient (the
// desk's erase or /forget) removes all of it.
func testIdentity(t *testing.T, b Backend) {
	s := one(t, b)
	ctx := context.Background()
	p := engine.PatientID("telegram:31")
	id := &engine.Identity{Name: "Jane Quinlan", Chart: "C-20417", Phone: "+1-555-0142"}
	if _, err := s.Apply(ctx, step(p, "visit"), func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = p
		st.Visit = &engine.Visit{At: t0, Treatment: engine.Acupuncture, Identity: id}
		r := result(st, 0)
		r.VisitRecorded = true
		r.Messages = []engine.Outbound{{To: p, Kind: engine.KindReply, Text: "Message from the clinic team:\nhello", Staff: "Ana Ruiz", Created: t0}}
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	r, err := s.PatientRecord(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.State.Visit == nil || r.State.Visit.Identity == nil || *r.State.Visit.Identity != *id {
		t.Fatalf("identity in the state: %+v", r.State.Visit)
	}
	if len(r.Visits) != 1 || r.Visits[0].Identity == nil || r.Visits[0].Identity.Chart != id.Chart {
		t.Fatalf("identity in the visit history: %+v", r.Visits)
	}
	if n := len(r.Transcript); n != 1 || r.Transcript[0].From != store.FromClinic || r.Transcript[0].Staff != "Ana Ruiz" {
		t.Fatalf("transcript %+v, want the clinic team's line by Ana Ruiz", r.Transcript)
	}
	if _, err := s.Apply(ctx, step(p, "erase"), func(in store.Input) (engine.Result, error) {
		return engine.Result{Erase: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PatientRecord(p); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record after erasure: %v, want ErrNotFound", err)
	}
	if _, found, _ := s.State(p); found {
		t.Fatal("state with the identity kept")
	}
}

// DeskStore is what the staff desk needs of a store beyond the service's;
// every backend implements it, so the desk runs on either.
type DeskStore interface {
	PatientStatesRaw(fn func(id engine.PatientID, raw []byte) error) error
	PutDeskLogin(ctx context.Context, hash []byte, l store.DeskLogin, now time.Time) error
	UseDeskLogin(ctx context.Context, hash []byte, now time.Time) (store.DeskLogin, error)
	OpenInvites(now time.Time) ([]engine.Invite, error)
}

func deskStore(t *testing.T, s Store) DeskStore {
	t.Helper()
	d, ok := s.(DeskStore)
	if !ok {
		t.Fatalf("%T does not implement the desk's store methods", s)
	}
	return d
}

// testDeskLogins: a sign-in link works once, not after it expired, not
// when unknown; two instances racing with one link cannot both use it;
// links expired more than a day are pruned when a new one is stored.
func testDeskLogins(t *testing.T, b Backend) {
	ss := b.Instances(t, 2)
	d0, d1 := deskStore(t, ss[0]), deskStore(t, ss[1])
	ctx := context.Background()
	l := store.DeskLogin{Staff: "telegram:1", Name: "Ana", Created: t0, Expires: t0.Add(10 * time.Minute)}
	if err := d0.PutDeskLogin(ctx, []byte("h1"), l, t0); err != nil {
		t.Fatal(err)
	}
	if err := d0.PutDeskLogin(ctx, []byte("h1"), l, t0); err == nil {
		t.Fatal("a link hash was stored twice")
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, d := range []DeskStore{d0, d1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = d.UseDeskLogin(ctx, []byte("h1"), t0.Add(time.Minute))
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("two uses of one link: %v, %v; want exactly one to succeed", errs[0], errs[1])
	}
	for _, e := range errs {
		if e != nil && !errors.Is(e, store.ErrLoginUsed) {
			t.Fatalf("second use: %v, want ErrLoginUsed", e)
		}
	}
	if err := d0.PutDeskLogin(ctx, []byte("h2"), l, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.UseDeskLogin(ctx, []byte("h2"), t0.Add(10*time.Minute)); !errors.Is(err, store.ErrLoginExpired) {
		t.Fatalf("expired link: %v", err)
	}
	if _, err := d1.UseDeskLogin(ctx, []byte("nope"), t0); !errors.Is(err, store.ErrLoginUnknown) {
		t.Fatalf("unknown link: %v", err)
	}
	// A day and more later, storing a link prunes the old ones.
	later := t0.Add(48 * time.Hour)
	if err := d0.PutDeskLogin(ctx, []byte("h3"), store.DeskLogin{Staff: "telegram:1", Created: later, Expires: later.Add(time.Minute)}, later); err != nil {
		t.Fatal(err)
	}
	if _, err := d0.UseDeskLogin(ctx, []byte("h2"), later); !errors.Is(err, store.ErrLoginUnknown) {
		t.Fatalf("a link expired two days ago: %v, want it pruned (unknown)", err)
	}
}

// testDeskLists: the desk's walk lists every patient's stored state and no
// escalation ladder; open invites are the unused, unexpired ones.
func testDeskLists(t *testing.T, b Backend) {
	s := one(t, b)
	d := deskStore(t, s)
	ctx := context.Background()
	put(t, s, "telegram:2", 0)
	put(t, s, "telegram:1", 0)
	escalate(t, s, "telegram:1")
	var ids []string
	if err := d.PatientStatesRaw(func(id engine.PatientID, raw []byte) error {
		st, err := store.DecodeState(raw) // each store's own encoding
		if err != nil || st.Patient != id {
			t.Errorf("state of %s: %q (%v)", id, raw, err)
		}
		ids = append(ids, string(id))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "telegram:1,telegram:2" {
		t.Fatalf("states walked: %v, want the two patients in ID order", ids)
	}
	v := engine.Visit{At: t0, Treatment: engine.Acupuncture, Identity: &engine.Identity{Name: "Jo"}}
	for _, inv := range []engine.Invite{
		{Token: "open", Visit: v, Created: t0, Expires: t0.Add(time.Hour)},
		{Token: "expired", Visit: v, Created: t0.Add(-2 * time.Hour), Expires: t0.Add(-time.Hour)},
		{Token: "used", Visit: v, Created: t0, Expires: t0.Add(time.Hour)},
	} {
		if err := s.PutInvite(inv); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply(ctx, store.Step{Patient: "telegram:3", Invite: "used", Now: t0}, func(in store.Input) (engine.Result, error) {
		return engine.Result{State: engine.State{Patient: "telegram:3"}, InviteUsed: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	invs, err := d.OpenInvites(t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 1 || invs[0].Token != "open" || invs[0].Visit.Identity == nil || invs[0].Visit.Identity.Name != "Jo" {
		t.Fatalf("open invites %+v", invs)
	}
}

// SessionStore is what the staff desk keeps its sign-in sessions in; every
// backend implements it, so a session started on one instance is known to
// all.
type SessionStore interface {
	PutDeskSession(ctx context.Context, hash []byte, ds store.DeskSession) error
	DeskSession(ctx context.Context, hash []byte) (store.DeskSession, error)
	TouchDeskSession(ctx context.Context, hash []byte, seen time.Time) error
	DeleteDeskSession(ctx context.Context, hash []byte) error
	DeleteStaffDeskSessions(ctx context.Context, staff string) (int, error)
	PruneDeskSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int, error)
}

func sessionStore(t *testing.T, s Store) SessionStore {
	t.Helper()
	d, ok := s.(SessionStore)
	if !ok {
		t.Fatalf("%T does not implement the desk's session methods", s)
	}
	return d
}

// testDeskSessions: a session stored through one instance is read through
// another, exactly (times to the nanosecond); a hash is stored once;
// touching only moves the last-seen time forward and never brings back a
// deleted session; deleting on one instance deletes it for all; one staff
// member's sessions are erased together; pruning drops the idle and the
// too old, and keeps a session seen exactly at the limit.
func testDeskSessions(t *testing.T, b Backend) {
	ss := b.Instances(t, 2)
	d0, d1 := sessionStore(t, ss[0]), sessionStore(t, ss[1])
	ctx := context.Background()
	created := t0.Add(123 * time.Nanosecond)
	ana := store.DeskSession{Staff: "telegram:1", Name: "Ana", CSRF: "csrf-1", Created: created, Seen: created}
	if err := d0.PutDeskSession(ctx, []byte("s1"), ana); err != nil {
		t.Fatal(err)
	}
	if err := d1.PutDeskSession(ctx, []byte("s1"), ana); err == nil {
		t.Fatal("a session hash was stored twice")
	}
	got, err := d1.DeskSession(ctx, []byte("s1"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Staff != ana.Staff || got.Name != ana.Name || got.CSRF != ana.CSRF || !got.Created.Equal(created) || !got.Seen.Equal(created) {
		t.Fatalf("session read through the other instance: %+v, want %+v", got, ana)
	}
	if _, err := d1.DeskSession(ctx, []byte("nope")); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("unknown session: %v, want ErrSessionUnknown", err)
	}

	for _, tc := range []struct {
		name     string
		touch    time.Time
		wantSeen time.Time
		through  SessionStore
		readFrom SessionStore
	}{
		{"forward", created.Add(5 * time.Minute), created.Add(5 * time.Minute), d1, d0},
		{"backward is ignored", created.Add(time.Minute), created.Add(5 * time.Minute), d0, d1},
		{"forward again", created.Add(7 * time.Minute), created.Add(7 * time.Minute), d0, d1},
	} {
		if err := tc.through.TouchDeskSession(ctx, []byte("s1"), tc.touch); err != nil {
			t.Fatalf("touch %s: %v", tc.name, err)
		}
		got, err := tc.readFrom.DeskSession(ctx, []byte("s1"))
		if err != nil || !got.Seen.Equal(tc.wantSeen) || !got.Created.Equal(created) {
			t.Fatalf("touch %s: seen %v created %v (%v), want seen %v", tc.name, got.Seen, got.Created, err, tc.wantSeen)
		}
	}

	// A session idle past any limit is still returned until it is pruned
	// or deleted: the desk, not the store, refuses it.
	if got, err := d0.DeskSession(ctx, []byte("s1")); err != nil || !got.Seen.Equal(created.Add(7*time.Minute)) {
		t.Fatalf("stale session: %+v %v", got, err)
	}

	if err := d1.DeleteDeskSession(ctx, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	if _, err := d0.DeskSession(ctx, []byte("s1")); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("session deleted on the other instance: %v, want ErrSessionUnknown", err)
	}
	if err := d0.DeleteDeskSession(ctx, []byte("s1")); err != nil {
		t.Fatalf("deleting a deleted session: %v", err)
	}
	if err := d0.TouchDeskSession(ctx, []byte("s1"), created.Add(8*time.Minute)); err != nil {
		t.Fatalf("touching a deleted session: %v", err)
	}
	if _, err := d1.DeskSession(ctx, []byte("s1")); !errors.Is(err, store.ErrSessionUnknown) {
		t.Fatalf("a touch brought a deleted session back: %v", err)
	}

	// Erase all sessions of one staff member, on every browser.
	lee := store.DeskSession{Staff: "telegram:2", Name: "Dr Lee", CSRF: "csrf-l", Created: t0, Seen: t0}
	for h, s := range map[string]store.DeskSession{"a1": ana, "a2": ana, "l1": lee} {
		if err := d0.PutDeskSession(ctx, []byte(h), s); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := d1.DeleteStaffDeskSessions(ctx, "telegram:1"); err != nil || n != 2 {
		t.Fatalf("erase Ana's sessions: %d (%v), want 2", n, err)
	}
	for h, alive := range map[string]bool{"a1": false, "a2": false, "l1": true} {
		_, err := d0.DeskSession(ctx, []byte(h))
		if (err == nil) != alive || (err != nil && !errors.Is(err, store.ErrSessionUnknown)) {
			t.Errorf("after erasing Ana's sessions, %s: %v, want alive %v", h, err, alive)
		}
	}
	if n, err := d1.DeleteStaffDeskSessions(ctx, "telegram:1"); err != nil || n != 0 {
		t.Fatalf("erase again: %d (%v), want 0", n, err)
	}

	// Prune at now: idle limit 30 minutes, absolute 12 hours.
	now := t0.Add(13 * time.Hour)
	seenBefore, createdBefore := now.Add(-30*time.Minute), now.Add(-12*time.Hour)
	prune := []struct {
		hash          string
		created, seen time.Time
		kept          bool
	}{
		{"fresh", now.Add(-time.Hour), now.Add(-time.Minute), true},
		{"seen at the limit", now.Add(-time.Hour), seenBefore, true},
		{"idle", now.Add(-time.Hour), seenBefore.Add(-time.Nanosecond), false},
		{"too old but active", createdBefore.Add(-time.Second), now, false},
		{"l1", t0, t0, false}, // Dr Lee's, stored above: idle
	}
	for _, tc := range prune[:len(prune)-1] {
		if err := d0.PutDeskSession(ctx, []byte(tc.hash), store.DeskSession{Staff: "telegram:3", Name: "Sam", CSRF: "c", Created: tc.created, Seen: tc.seen}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := d1.PruneDeskSessions(ctx, seenBefore, createdBefore); err != nil || n != 3 {
		t.Fatalf("pruned %d (%v), want 3", n, err)
	}
	for _, tc := range prune {
		_, err := d0.DeskSession(ctx, []byte(tc.hash))
		if (err == nil) != tc.kept {
			t.Errorf("after pruning, %s: %v, want kept %v", tc.hash, err, tc.kept)
		}
	}
}
