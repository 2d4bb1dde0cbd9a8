package service_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// staffObs records what the service reports about staff destinations.
type staffObs struct {
	mu   sync.Mutex
	down map[string]bool
}

func (o *staffObs) Received(string)            {}
func (o *staffObs) Step(time.Duration)         {}
func (o *staffObs) Escalated(engine.Level)     {}
func (o *staffObs) CheckinFired(time.Duration) {}
func (o *staffObs) Sent(string, engine.Kind)   {}
func (o *staffObs) SendFailed(string, bool)    {}
func (o *staffObs) StaffDestination(key string, reachable bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down[key] = !reachable
}

// newStaffService opens a service with two staff channels (a Telegram
// group and a webhook) and two escalation contacts.
func newStaffService(t *testing.T, clk clock.Clock, obs service.Observer) (*store.Store, *service.Service) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "aftercare.db"), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := service.New(service.Config{Engine: enginetest.New(), Store: st, Clock: clk, Observer: obs,
		StaffChannels:      []engine.PatientID{"telegram:-100", "webhook:sms"},
		EscalationContacts: []engine.PatientID{"telegram:777", "webhook:sms"},
		StaffKeys: map[engine.PatientID]string{"telegram:-100": "telegram.staff_chat_id", "webhook:sms": "webhooks[0]",
			"telegram:777": "escalation.contacts[0]"}})
	if err != nil {
		t.Fatal(err)
	}
	return st, svc
}

// TestStaffChatRefusedKeepsAlert: Telegram answers 403 for the staff group.
// The alert must stay queued (and be retried), go at once to the
// escalation contact that did not have it, raise the metric and name the
// config key (not the chat id) among the staff problems; once the group
// accepts again the alert is delivered and the problem clears.
func TestStaffChatRefusedKeepsAlert(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	obs := &staffObs{down: map[string]bool{}}
	st, svc := newStaffService(t, clk, obs)
	if err := svc.Receive(ctx, service.Inbound{Patient: "telegram:5", Text: "I fainted"}); err != nil {
		t.Fatal(err)
	}
	kicked := fmt.Errorf("telegram: chat -100: %w: Forbidden: bot was kicked from the group chat", service.ErrUnreachable)
	s := &fakeSender{platform: "telegram", fail: map[string][]error{"telegram:-100": {kicked}}}
	d := svc.NewDispatcher(s, service.Pace{PerSecond: 1000})
	d.Clock = clk
	if _, err := d.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	q, _ := st.Outbox("telegram", 10)
	var kept, contact bool
	for _, m := range q {
		kept = kept || (m.Channel == "telegram:-100" && m.Kind == engine.KindAlert && m.Attempts == 1)
	}
	for _, m := range s.got {
		contact = contact || (m.Channel == "telegram:777" && m.Kind == engine.KindAlert)
	}
	if !kept {
		t.Errorf("the alert refused by the staff group left the outbox: %v", q)
	}
	if !contact {
		t.Errorf("the escalation contact did not get the alert at once; sent %v", s.got)
	}
	if hooks, _ := st.Outbox("webhook", 10); len(hooks) != 1 {
		t.Errorf("webhook copies = %d, want the one queued with the alert (no duplicate)", len(hooks))
	}
	probs := svc.StaffProblems()
	if len(probs) != 1 || !contains(probs[0], "telegram.staff_chat_id") || contains(probs[0], "-100") {
		t.Errorf("staff problems %q: want one naming telegram.staff_chat_id and no chat id", probs)
	}
	obs.mu.Lock()
	if !obs.down["telegram.staff_chat_id"] {
		t.Error("the unreachable metric was not raised")
	}
	obs.mu.Unlock()
	if st, _, _ := st.State("telegram:5"); st.Unreachable {
		t.Error("a refused staff chat marked the patient unreachable")
	}

	// The group accepts again after the urgent retry interval.
	clk.Add(3 * time.Second)
	if _, err := d.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if q, _ := st.Outbox("telegram", 10); len(q) != 0 {
		t.Errorf("alert still queued after the group accepted again: %v", q)
	}
	if p := svc.StaffProblems(); len(p) != 0 {
		t.Errorf("staff problems after recovery: %q", p)
	}
	copies := 0
	for _, m := range s.got {
		if m.Kind == engine.KindAlert && m.Channel == "telegram:777" {
			copies++
		}
	}
	if copies != 1 {
		t.Errorf("the contact got %d copies of the alert, want 1", copies)
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && stringIndex(s, sub) >= 0
}

func stringIndex(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// staffChecker answers CheckStaff from a table.
type staffChecker map[engine.PatientID]error

func (c staffChecker) CheckStaff(_ context.Context, d engine.PatientID) error { return c[d] }

// TestCheckStaffAtStartup: a refused destination is named by its config
// key; a check that could not run is not counted as a refusal.
func TestCheckStaffAtStartup(t *testing.T) {
	_, svc := newStaffService(t, clock.NewFake(t0), nil)
	err := svc.CheckStaff(context.Background(), map[string]service.StaffChecker{"telegram": staffChecker{
		"telegram:-100": fmt.Errorf("getChat: %w", service.ErrUnreachable),
		"telegram:777":  errors.New("network down"),
	}})
	if err == nil || !contains(err.Error(), "telegram.staff_chat_id") || contains(err.Error(), "contacts") {
		t.Fatalf("err = %v, want one naming telegram.staff_chat_id only", err)
	}
	if p := svc.StaffProblems(); len(p) != 1 {
		t.Fatalf("problems %q", p)
	}
}

// stepClock is a wall clock a test can step back, as an operator's
// mistaken date command or a bad NTP server would.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *stepClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
func (c *stepClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Now().Add(d) // Pass never waits in these tests (PerSecond 1000)
	return ch
}

// TestUrgentRetryIsShortAndIgnoresClockSteps: after a failure (an outage),
// an escalation is retried after the fixed urgent interval, however many
// attempts failed before, while a check-in backs off; a step of the clock
// back by an hour does not hold the escalation for an hour.
func TestUrgentRetryIsShortAndIgnoresClockSteps(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	clk := &stepClock{now: t0}
	outage := errors.New("502 bad gateway")
	var fails []error
	for range 8 {
		fails = append(fails, outage)
	}
	h.store.Enqueue(
		engine.Outbound{To: "telegram:1", Kind: engine.KindEscalation, Level: engine.Emergency, Text: "call 911"},
		engine.Outbound{To: "telegram:2", Kind: engine.KindCheckin, Text: "how are you?"},
	)
	s := &fakeSender{platform: "telegram", fail: map[string][]error{"telegram:1": fails, "telegram:2": append([]error(nil), fails...)}}
	d := h.svc.NewDispatcher(s, service.Pace{PerSecond: 1000})
	d.Clock = clk
	// Eight failed attempts, each retried 3 s (the default) later.
	for i := range 8 {
		if _, err := d.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		if i < 7 {
			clk.Add(3 * time.Second)
		}
	}
	if q, _ := h.store.Outbox("telegram", 10); len(q) != 2 || q[0].Attempts != 8 {
		t.Fatalf("after 8 passes 3 s apart the escalation has %d attempts, want 8 (a fixed 3 s interval): %+v", q[0].Attempts, q)
	}
	// The system clock steps back an hour just after that attempt (the
	// dispatcher reads its clock at least once a second, so it sees the
	// step); 3 s later the escalation goes.
	clk.Add(-time.Hour)
	if _, err := d.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(3 * time.Second)
	if _, err := d.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if len(s.got) != 1 || s.got[0].To != "telegram:1" {
		t.Fatalf("sent %v 3 s after the clock stepped back an hour; want the escalation (and the check-in still backing off)", s.got)
	}
}

// TestRedFlagGoesAheadOfThePage: a red flag that arrives while the
// dispatcher is sending a full page of check-ins is sent next, not after
// the page. The red flag is received from inside the first check-in's
// Send, so the order is fixed without any timing.
func TestRedFlagGoesAheadOfThePage(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const page = 8 // a pass's page at PerSecond 8
	var ms []engine.Outbound
	for i := range 3 * page {
		ms = append(ms, engine.Outbound{To: engine.PatientID(fmt.Sprintf("telegram:%d", 100+i)), Kind: engine.KindCheckin, Text: "how are you?"})
	}
	if err := h.store.Enqueue(ms...); err != nil {
		t.Fatal(err)
	}
	s := &hookSender{platform: "telegram"}
	s.before = func(m engine.Outbound) {
		if len(s.got) == 0 {
			if err := h.svc.Receive(ctx, service.Inbound{Patient: "telegram:9", Text: "I fainted"}); err != nil {
				t.Error(err)
			}
		}
	}
	d := h.svc.NewDispatcher(s, service.Pace{PerSecond: page}) // real clock: the page paces at 8/s
	if _, err := d.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if len(s.got) < 2 || s.got[0].Kind != engine.KindCheckin || s.got[1].Kind != engine.KindEscalation {
		kinds := []engine.Kind{}
		for _, m := range s.got {
			kinds = append(kinds, m.Kind)
		}
		t.Fatalf("sent %v; want the check-in in flight, then the escalation", kinds)
	}
}

// hookSender accepts everything and calls before ahead of each send.
type hookSender struct {
	platform string
	before   func(engine.Outbound)
	got      []engine.Outbound
}

func (s *hookSender) Platform() string { return s.platform }

func (s *hookSender) Send(_ context.Context, m engine.Outbound) error {
	if s.before != nil {
		s.before(m)
	}
	s.got = append(s.got, m)
	return nil
}
