package service_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// t0 is 10:00 in Chicago.
var t0 = time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)

type harness struct {
	t     *testing.T
	path  string
	clock *clock.Fake
	store *store.Store
	svc   *service.Service
	sent  []engine.Outbound // everything drained from the outbox
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "aftercare.db"), clock: clock.NewFake(t0)}
	h.open()
	t.Cleanup(func() { h.store.Close() })
	return h
}

func (h *harness) open() {
	h.t.Helper()
	st, err := store.Open(h.path, store.Options{Timeout: time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	svc, err := service.New(service.Config{Engine: enginetest.New(), Store: st, Clock: h.clock, StaffChannels: []engine.PatientID{"console:staff"}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.store, h.svc = st, svc
}

// restart closes and reopens the store and service, like a process restart.
func (h *harness) restart() {
	h.t.Helper()
	if err := h.store.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

// drain moves everything queued into h.sent, as a sender would.
func (h *harness) drain() []engine.Outbound {
	h.t.Helper()
	ms, err := h.store.OutboxAll(10000)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.Delivered(ms...); err != nil {
		h.t.Fatal(err)
	}
	h.sent = append(h.sent, ms...)
	return ms
}

func (h *harness) tick(d time.Duration, step time.Duration) {
	h.t.Helper()
	end := h.clock.Now().Add(d)
	for h.clock.Now().Before(end) {
		h.clock.Add(step)
		if _, err := h.svc.DeliverDue(context.Background()); err != nil {
			h.t.Fatal(err)
		}
		h.drain()
	}
}

func count(ms []engine.Outbound, kind engine.Kind) int {
	n := 0
	for _, m := range ms {
		if m.Kind == kind {
			n++
		}
	}
	return n
}

func TestCheckinsExactlyOnceAcrossRestarts(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := h.svc.RecordVisit(ctx, engine.PatientID(fmt.Sprintf("console:p%d", i)), engine.Visit{At: t0, Treatment: engine.DryNeedling, Area: "neck", Consent: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Run three days in 30-minute steps, restarting every 7 hours.
	for hour := 0; hour < 72; hour += 7 {
		h.tick(7*time.Hour, 30*time.Minute)
		h.restart()
	}
	if got := count(h.sent, engine.KindCheckin); got != 10 {
		t.Fatalf("check-ins sent %d, want exactly 10 (2 per patient)", got)
	}
	per := map[engine.PatientID]int{}
	for _, m := range h.sent {
		if m.Kind == engine.KindCheckin {
			per[m.To]++
		}
	}
	for p, n := range per {
		if n != 2 {
			t.Errorf("%s got %d check-ins", p, n)
		}
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.svc.RecordVisit(ctx, "console:p", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true}); err != nil {
		t.Fatal(err)
	}
	h.store.Close()
	// Down for 50 hours: both check-ins fall due meanwhile. Back at 12:00 Chicago.
	h.clock.Add(50 * time.Hour)
	h.open()
	n, err := h.svc.DeliverDue(ctx)
	if err != nil || n != 2 {
		t.Fatalf("catch-up fired %d (err %v), want 2", n, err)
	}
	ms := h.drain()
	if count(ms, engine.KindCheckin) != 2 {
		t.Fatalf("want both overdue check-ins, got %d", count(ms, engine.KindCheckin))
	}
	if !strings.Contains(ms[1].Text, "wasn't answered") || !strings.Contains(ms[0].Text, "late") {
		t.Fatalf("late check-ins should say so: %q / %q", ms[0].Text, ms[1].Text)
	}
	// Nothing fires twice after another restart.
	h.restart()
	if n, _ := h.svc.DeliverDue(ctx); n != 0 {
		t.Fatalf("fired %d again after restart", n)
	}
}

func TestCatchUpRespectsQuietHours(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.svc.RecordVisit(ctx, "console:p", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.store.Close()
	h.clock.Add(24*time.Hour + 13*time.Hour) // back at 23:00 Chicago: quiet
	h.open()
	h.svc.DeliverDue(ctx)
	if ms := h.drain(); count(ms, engine.KindCheckin) != 0 {
		t.Fatal("check-in sent during quiet hours")
	}
	h.tick(10*time.Hour, 30*time.Minute) // until 09:00
	if count(h.sent, engine.KindCheckin) != 1 {
		t.Fatalf("deferred check-in not delivered in the morning: %d", count(h.sent, engine.KindCheckin))
	}
}

func TestConcurrentMessagesForOnePatient(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.svc.RecordVisit(ctx, "console:p", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	var wg sync.WaitGroup
	const n = 40
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := h.svc.Receive(ctx, service.Inbound{Patient: "console:p", Text: "thanks", DedupeKey: fmt.Sprintf("k%d", i)}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	st, _, _ := h.store.State("console:p")
	if st.Handled != n+1 {
		t.Fatalf("handled %d, want %d: a concurrent step was lost", st.Handled, n+1)
	}
	if got := count(h.drain(), engine.KindReply); got < n {
		t.Fatalf("replies %d, want at least %d", got, n)
	}
}

func TestOrderIsArrivalOrderPerPatient(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.svc.RecordVisit(ctx, "console:p", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.drain()
	// Readiness answers must be applied in order even from one goroutine each.
	for _, s := range []string{"can I go for a run?", "energized", "smoother", "none", "better"} {
		if err := h.svc.Receive(ctx, service.Inbound{Patient: "console:p", Text: s}); err != nil {
			t.Fatal(err)
		}
	}
	ms := h.drain()
	last := ms[len(ms)-1].Text
	if !strings.HasPrefix(last, "Normal training") {
		t.Fatalf("advice %q", last)
	}
}

func TestTwoPatientsInterleaved(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	a, b := engine.PatientID("console:a"), engine.PatientID("console:b")
	h.svc.RecordVisit(ctx, a, engine.Visit{At: t0, Treatment: engine.DryNeedling, Consent: true})
	h.svc.RecordVisit(ctx, b, engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	say := func(p engine.PatientID, s string) {
		if err := h.svc.Receive(ctx, service.Inbound{Patient: p, Text: s}); err != nil {
			t.Fatal(err)
		}
	}
	say(a, "can I lift?")
	say(b, "can I lift?")
	for _, s := range []string{"energized", "smoother", "none", "better"} {
		say(a, s)
		say(b, s)
	}
	var lastA, lastB string
	for _, m := range h.drain() {
		switch m.To {
		case a:
			lastA = m.Text
		case b:
			lastB = m.Text
		}
	}
	if !strings.HasPrefix(lastA, "Light activity") || !strings.HasPrefix(lastB, "Normal training") {
		t.Fatalf("a: %q\nb: %q", lastA, lastB)
	}
}

func TestEscalationFansOutToEveryStaffChannel(t *testing.T) {
	dir := t.TempDir()
	st, _ := store.Open(filepath.Join(dir, "a.db"), store.Options{})
	defer st.Close()
	svc, _ := service.New(service.Config{Engine: enginetest.New(), Store: st, Clock: clock.NewFake(t0),
		StaffChannels: []engine.PatientID{"telegram:-100", "discord:555"}})
	if err := svc.Receive(context.Background(), service.Inbound{Patient: "telegram:1", Text: "I fainted"}); err != nil {
		t.Fatal(err)
	}
	tg, _ := st.Outbox("telegram", 10)
	dc, _ := st.Outbox("discord", 10)
	if len(dc) != 1 || dc[0].Kind != engine.KindAlert || dc[0].Channel != "discord:555" {
		t.Fatalf("discord staff: %+v", dc)
	}
	if len(tg) < 2 || tg[0].Kind != engine.KindAlert && tg[0].Kind != engine.KindEscalation {
		t.Fatalf("telegram: %+v", tg)
	}
	es, _ := st.Escalations()
	if len(es) != 1 || es[0].Level != engine.Emergency || es[0].Status != "open" {
		t.Fatalf("escalation record %+v", es)
	}
	if _, err := service.New(service.Config{Engine: enginetest.New(), Store: st, Clock: clock.NewFake(t0)}); err == nil {
		t.Fatal("a service with no staff channel must be refused")
	}
}

// fakeSender fails in scripted ways, then accepts.
type fakeSender struct {
	mu       sync.Mutex
	platform string
	fail     map[string][]error // by destination: errors to return first
	got      []engine.Outbound
}

func (f *fakeSender) Platform() string { return f.platform }

func (f *fakeSender) Send(_ context.Context, m engine.Outbound) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := string(m.Destination())
	if errs := f.fail[d]; len(errs) > 0 {
		f.fail[d] = errs[1:]
		return errs[0]
	}
	if errors.Is(f.fail2(d), service.ErrUnreachable) {
		return fmt.Errorf("blocked: %w", service.ErrUnreachable)
	}
	f.got = append(f.got, m)
	return nil
}

func (f *fakeSender) fail2(d string) error {
	if strings.HasSuffix(d, ":blocked") {
		return service.ErrUnreachable
	}
	return nil
}

func TestDispatcherRetriesAndMarksUnreachable(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	s := &fakeSender{platform: "telegram", fail: map[string][]error{
		"telegram:1": {&service.RetryAfterError{After: 20 * time.Millisecond, Err: errors.New("429")}, errors.New("502 bad gateway")},
	}}
	h.svc.RecordVisit(ctx, "telegram:1", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.svc.RecordVisit(ctx, "telegram:blocked", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:1", Text: "thanks"})
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:blocked", Text: "thanks"})
	d := h.svc.NewDispatcher(s, service.Pace{PerSecond: 1000})
	// The dispatcher's own clock, moved on by exactly the wait each pass
	// asks for (the 429's retry-after, then the 502's backoff): no real
	// time passes and no wait is guessed.
	dclk := clock.NewFake(t0)
	d.Clock = dclk
	for pass := 0; pass < 20; pass++ {
		wait, err := d.Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if q, _ := h.store.Outbox("telegram", 10); len(q) == 0 {
			break
		}
		dclk.Add(wait)
	}
	if q, _ := h.store.Outbox("telegram", 10); len(q) != 0 {
		t.Fatalf("outbox not drained: %v", q)
	}
	var toOne int
	for _, m := range s.got {
		if m.To == "telegram:1" {
			toOne++
		}
	}
	if toOne != 1 {
		t.Fatalf("messages to telegram:1 = %d, want 1 (retried, not lost, not doubled)", toOne)
	}
	st, _, _ := h.store.State("telegram:blocked")
	if !st.Unreachable {
		t.Fatal("blocked patient not marked unreachable")
	}
	notices, _ := h.store.Outbox("console", 10)
	if len(notices) != 1 || notices[0].Kind != engine.KindNotice || notices[0].Patient != "telegram:blocked" {
		t.Fatalf("staff not told: %+v", notices)
	}
}

func TestDispatcherPriority(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		h.svc.RecordVisit(ctx, engine.PatientID(fmt.Sprintf("telegram:%d", i)), engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	}
	h.clock.Add(24 * time.Hour)
	h.svc.DeliverDue(ctx) // five check-ins queued
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:9", Text: "I fainted"})
	s := &fakeSender{platform: "telegram"}
	d := h.svc.NewDispatcher(s, service.Pace{PerSecond: 1000})
	d.Pass(ctx)
	if len(s.got) != 7 || s.got[0].Kind != engine.KindEscalation {
		t.Fatalf("first sent %v of %d, want the escalation first", s.got[0].Kind, len(s.got))
	}
}

func TestInviteLinksVisitOnceAndExpires(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	inv, err := h.svc.CreateInvite(ctx, engine.Visit{At: t0, Treatment: engine.DryNeedling, Area: "shoulder"}, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Token) < 22 || strings.Contains(inv.Token, "shoulder") {
		t.Fatalf("token %q: want >=128 bits and nothing about the patient", inv.Token)
	}
	h.clock.Add(time.Hour)
	if err := h.svc.Receive(ctx, service.Inbound{Patient: "telegram:1", Text: "/start " + inv.Token, Invite: inv.Token}); err != nil {
		t.Fatal(err)
	}
	st, _, _ := h.store.State("telegram:1")
	if st.Visit == nil || st.Visit.Treatment != engine.DryNeedling || !st.Visit.At.Equal(t0) {
		t.Fatalf("visit not linked: %+v", st.Visit)
	}
	if tm, _ := h.store.Timers("telegram:1"); len(tm) != 0 {
		t.Fatalf("check-ins scheduled before the patient agreed: %v", tm)
	}
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:1", Choice: "yes", Text: "Yes, check in with me"})
	ms := h.drain()
	if len(ms) == 0 || !strings.Contains(ms[len(ms)-1].Text, "check in") {
		t.Fatalf("greeting with check-in times missing: %v", ms)
	}
	if tm, _ := h.store.Timers("telegram:1"); len(tm) != 2 {
		t.Fatalf("check-ins not scheduled: %v", tm)
	}
	// Second use, unknown and expired tokens are refused politely.
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:2", Text: "/start " + inv.Token, Invite: inv.Token})
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:3", Text: "/start AAAAAAAAAAAAAAAAAAAAAA", Invite: "AAAAAAAAAAAAAAAAAAAAAA"})
	old, _ := h.svc.CreateInvite(ctx, engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true}, time.Hour)
	h.clock.Add(2 * time.Hour)
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:4", Text: "/start " + old.Token, Invite: old.Token})
	for _, p := range []engine.PatientID{"telegram:2", "telegram:3", "telegram:4"} {
		st, _, _ := h.store.State(p)
		if st.Visit != nil {
			t.Errorf("%s linked with a used, unknown or expired invite", p)
		}
	}
	refused := map[engine.PatientID]bool{}
	for _, m := range h.drain() {
		if strings.Contains(m.Text, "didn't work") {
			refused[m.To] = true
		}
	}
	if len(refused) != 3 || refused["telegram:1"] {
		t.Fatalf("polite refusals sent to %v, want telegram:2, 3 and 4", refused)
	}
}

// TestReceiveTakesTheInviteFromTheAdapter checks that Receive resolves
// Inbound.Invite and never reads an invite out of the text: a "/start TOKEN"
// without Invite is a message like any other, and an Invite that is no
// token is ignored, its text read by triage first. An invite that was not
// presented stays unused.
func TestReceiveTakesTheInviteFromTheAdapter(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		in         func(token string) service.Inbound
		enrolled   bool
		escalation bool
	}{
		{"invite field", func(tok string) service.Inbound {
			return service.Inbound{Text: "hello", Invite: tok}
		}, true, false},
		{"token only in the text", func(tok string) service.Inbound {
			return service.Inbound{Text: "/start " + tok}
		}, false, false},
		{"invite that is no token", func(string) service.Inbound {
			return service.Inbound{Text: "I fainted and can't breathe", Invite: "ab$c"}
		}, false, true},
		{"invite too long", func(string) service.Inbound {
			return service.Inbound{Text: "/start " + strings.Repeat("a", 65), Invite: strings.Repeat("a", 65)}
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			inv, err := h.svc.CreateInvite(ctx, engine.Visit{At: t0, Treatment: engine.Acupuncture, Area: "neck"}, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			in := tt.in(inv.Token)
			in.Patient = "telegram:9"
			if err := h.svc.Receive(ctx, in); err != nil {
				t.Fatal(err)
			}
			st, _, _ := h.store.State("telegram:9")
			if got := st.Visit != nil; got != tt.enrolled {
				t.Fatalf("enrolled = %v, want %v", got, tt.enrolled)
			}
			ms := h.drain()
			esc := false
			for _, m := range ms {
				esc = esc || (m.To == "telegram:9" && m.Kind == engine.KindEscalation)
			}
			if esc != tt.escalation {
				t.Errorf("escalated = %v, want %v: %q", esc, tt.escalation, texts(ms))
			}
			if tt.enrolled {
				return
			}
			// Not presented, so not used: it still enrolls whoever does.
			if err := h.svc.Receive(ctx, service.Inbound{Patient: "telegram:10", Text: "/start " + inv.Token, Invite: inv.Token}); err != nil {
				t.Fatal(err)
			}
			if st, _, _ := h.store.State("telegram:10"); st.Visit == nil {
				t.Error("the invite was used up without being presented")
			}
		})
	}
}

// TestStartInvite is the typed form adapters read an invite from.
func TestStartInvite(t *testing.T) {
	tests := []struct{ text, want string }{
		{"/start abc", "abc"},
		{"  /start   Ab_9-z  ", "Ab_9-z"},
		{"/start", ""},
		{"/start ", ""},
		{"/start ab$c", ""},
		{"/start two words", ""},
		{"/start " + strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"/start " + strings.Repeat("a", 65), ""},
		{"/START abc", ""},
		{"/stop abc", ""},
		{"/startabc", ""},
		{"hello /start abc", ""},
		{"/start\tabc", ""},
		{"/start héllo", ""},
	}
	for _, tt := range tests {
		if got := service.StartInvite(tt.text); got != tt.want {
			t.Errorf("StartInvite(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

// FuzzStartInvite checks that whatever a patient types, StartInvite returns
// nothing or a well-formed token taken from the text, and that a token typed
// after "/start " always comes back whole.
func FuzzStartInvite(f *testing.F) {
	for _, s := range []string{"/start abc", "/start", "/start ab$c", "/start  x ", "/start \xff", "hi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := service.StartInvite(text)
		if got != "" && (!service.IsInviteToken(got) || !strings.Contains(text, got)) {
			t.Fatalf("StartInvite(%q) = %q: not a token of the text", text, got)
		}
		if service.IsInviteToken(text) && service.StartInvite("/start "+text) != text {
			t.Fatalf("token %q typed after /start not found", text)
		}
	})
}

// TestDispatcherBusyChatDoesNotStarveOthers queues many alerts for the
// staff chat (paced at 1/s) ahead of a patient's reply: the reply must go
// out in the first pass, and a pass that can send nothing must ask to wait
// instead of spinning.
func TestDispatcherBusyChatDoesNotStarveOthers(t *testing.T) {
	h := newHarness(t)
	var ms []engine.Outbound
	for i := 0; i < 60; i++ {
		ms = append(ms, engine.Outbound{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindAlert, Level: engine.Urgent, Text: "alert"})
	}
	ms = append(ms, engine.Outbound{To: "telegram:1", Kind: engine.KindReply, Text: "reply"})
	if err := h.store.Enqueue(ms...); err != nil {
		t.Fatal(err)
	}
	s := &fakeSender{platform: "telegram"}
	d := h.svc.NewDispatcher(s, service.Pace{PerSecond: 25, PerChatPerSecond: 1, PerChatBurst: 3})
	ctx := context.Background()
	if _, err := d.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	gotReply := false
	for _, m := range s.got {
		gotReply = gotReply || m.To == "telegram:1"
	}
	if !gotReply || len(s.got) != 4 {
		t.Fatalf("first pass sent %d messages (reply sent: %v); want the staff chat's burst of 3 and the reply", len(s.got), gotReply)
	}
	wait, err := d.Pass(ctx)
	if err != nil || wait <= 0 {
		t.Fatalf("a pass that can send nothing must wait, got %v (%v)", wait, err)
	}
}

// TestRateLimitHoldsOnlyThatChat: a 429 for the staff group must not hold
// back a patient's reply.
func TestRateLimitHoldsOnlyThatChat(t *testing.T) {
	h := newHarness(t)
	h.store.Enqueue(
		engine.Outbound{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindAlert, Level: engine.Urgent, Text: "alert"},
		engine.Outbound{To: "telegram:1", Kind: engine.KindReply, Text: "reply"},
	)
	s := &fakeSender{platform: "telegram", fail: map[string][]error{
		"telegram:-100": {&service.RetryAfterError{After: 30 * time.Second, Err: errors.New("429")}},
	}}
	d := h.svc.NewDispatcher(s, service.Pace{PerSecond: 1000})
	if _, err := d.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s.got) != 1 || s.got[0].To != "telegram:1" {
		t.Fatalf("sent %+v; the reply must go out while the staff chat waits", s.got)
	}
	if wait, _ := d.Pass(context.Background()); wait <= 0 || wait > time.Second {
		t.Fatalf("with only the held chat left, a pass must wait, got %v", wait)
	}
	if q, _ := h.store.Outbox("telegram", 10); len(q) != 1 || q[0].Attempts != 1 {
		t.Fatalf("the rate-limited alert must stay queued for retry: %+v", q)
	}
}

// TestStaleCachedStateIsNotCommitted changes a patient's stored state
// behind the service's back (as another writer could) and checks that the
// next step starts from the stored state, not from the state the service
// last committed and kept in memory.
func TestStaleCachedStateIsNotCommitted(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const p = engine.PatientID("console:p")
	if err := h.svc.RecordVisit(ctx, p, engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Receive(ctx, service.Inbound{Patient: p, Text: "thanks", DedupeKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	before, _, _ := h.store.State(p)
	_, err := h.store.Apply(ctx, store.Step{Patient: p, Now: t0}, func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Handled += 10
		return engine.Result{State: st}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Receive(ctx, service.Inbound{Patient: p, Text: "thanks", DedupeKey: "k2"}); err != nil {
		t.Fatal(err)
	}
	after, _, _ := h.store.State(p)
	if want := before.Handled + 11; after.Handled != want {
		t.Fatalf("handled %d after the outside change, want %d: a stale in-memory state was committed", after.Handled, want)
	}
	// And the next step builds on that result again.
	if err := h.svc.Receive(ctx, service.Inbound{Patient: p, Text: "thanks", DedupeKey: "k3"}); err != nil {
		t.Fatal(err)
	}
	if last, _, _ := h.store.State(p); last.Handled != after.Handled+1 {
		t.Fatalf("handled %d, want %d", last.Handled, after.Handled+1)
	}
}

// TestCatchUpManyPatientsConcurrently brings back 300 patients with both
// check-ins overdue (more than one DueBefore page, more patients than
// workers): every check-in fires exactly once, and each patient's fire in
// due order, the 24 h one first.
func TestCatchUpManyPatientsConcurrently(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const n = 300
	for i := range n {
		p := engine.PatientID(fmt.Sprintf("console:%d", i))
		if err := h.svc.RecordVisit(ctx, p, engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true}); err != nil {
			t.Fatal(err)
		}
	}
	h.drain()
	h.store.Close()
	h.clock.Add(50 * time.Hour)
	h.open()
	fired, err := h.svc.DeliverDue(ctx)
	if err != nil || fired != 2*n {
		t.Fatalf("catch-up fired %d (err %v), want %d", fired, err, 2*n)
	}
	byPatient := map[engine.PatientID][]string{}
	for _, m := range h.drain() {
		if m.Kind == engine.KindCheckin {
			byPatient[m.To] = append(byPatient[m.To], m.Text)
		}
	}
	if len(byPatient) != n {
		t.Fatalf("%d patients got check-ins, want %d", len(byPatient), n)
	}
	for p, texts := range byPatient {
		if len(texts) != 2 || !strings.Contains(texts[0], "late") || !strings.Contains(texts[1], "wasn't answered") {
			t.Fatalf("%s: check-ins out of order or not exactly two: %q", p, texts)
		}
	}
	if again, _ := h.svc.DeliverDue(ctx); again != 0 {
		t.Fatalf("fired %d again", again)
	}
}

// flakyDelivered is the store with Delivered failing the first failures
// times, as when a commit fails (disk full, I/O error) right after the
// platform accepted a message.
type flakyDelivered struct {
	*store.Store
	mu       sync.Mutex
	failures int
}

func (f *flakyDelivered) Delivered(ms ...engine.Outbound) error {
	f.mu.Lock()
	fail := f.failures > 0
	if fail {
		f.failures--
	}
	f.mu.Unlock()
	if fail {
		return errors.New("commit failed: input/output error")
	}
	return f.Store.Delivered(ms...)
}

// TestDeliveredFailureDoesNotResend: when removing a sent message from the
// outbox fails, the next passes must retry the removal, not the send, so
// the patient sees the message once.
func TestDeliveredFailureDoesNotResend(t *testing.T) {
	for _, failures := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d failed removals", failures), func(t *testing.T) {
			h := newHarness(t)
			st := &flakyDelivered{Store: h.store, failures: failures}
			svc, err := service.New(service.Config{Engine: enginetest.New(), Store: st, Clock: h.clock, StaffChannels: []engine.PatientID{"console:staff"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Enqueue(engine.Outbound{To: "telegram:1", Kind: engine.KindCheckin, Text: "check-in"}); err != nil {
				t.Fatal(err)
			}
			s := &fakeSender{platform: "telegram"}
			d := svc.NewDispatcher(s, service.Pace{PerSecond: 1000})
			ctx := context.Background()
			errs := 0
			// Each failed removal costs one pass; then one pass succeeds.
			for pass := 0; pass <= failures; pass++ {
				if _, err := d.Pass(ctx); err != nil {
					errs++
				}
			}
			if errs != failures {
				t.Errorf("%d passes reported an error, want %d (one per failed removal)", errs, failures)
			}
			if q, _ := h.store.Outbox("telegram", 10); len(q) != 0 {
				t.Fatalf("the sent message is still queued: %+v", q)
			}
			if len(s.got) != 1 {
				t.Fatalf("the platform got the message %d times, want 1", len(s.got))
			}
		})
	}
}

func texts(ms []engine.Outbound) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}
