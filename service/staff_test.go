package service_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/staffgate"
	"github.com/aftercare-clinic/aftercare/store"
)

func newStaffHarness(t *testing.T, contacts ...engine.PatientID) *harness {
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "a.db"), clock: clock.NewFake(t0)}
	st, err := store.Open(h.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := service.New(service.Config{Engine: enginetest.New(), Store: st, Clock: h.clock,
		StaffChannels: []engine.PatientID{"console:staff"}, EscalationContacts: contacts,
		StaffGate: staffgate.New(staffgate.Rules{Users: []string{"telegram:42"}}), Retention: 90 * 24 * time.Hour,
		InviteLinks: func(tok string) []string { return []string{"https://t.me/clinic_bot?start=" + tok} }})
	if err != nil {
		t.Fatal(err)
	}
	h.store, h.svc = st, svc
	return h
}

func (h *harness) staff(text string) string {
	h.t.Helper()
	if err := h.svc.ReceiveStaff(context.Background(), service.StaffInbound{Staff: "telegram:42", Channel: "console:staff", Text: text}); err != nil {
		h.t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range h.drain() {
		if m.Kind == engine.KindNotice {
			b.WriteString(m.Text + "\n")
		}
	}
	return b.String()
}

func TestEscalationLadderUntilAcknowledged(t *testing.T) {
	h := newStaffHarness(t, "telegram:777", "webhook:sms")
	ctx := context.Background()
	h.svc.RecordVisit(ctx, "telegram:1", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:1", Text: "having palpitations"})
	first := h.drain()
	var alert engine.Outbound
	for _, m := range first {
		if m.Kind == engine.KindAlert {
			alert = m
		}
	}
	if alert.EscalationID == 0 || len(alert.Choices) != 1 || alert.Choices[0].ID != "ack:1" {
		t.Fatalf("alert must carry an Acknowledge button: %+v", alert)
	}
	alertsTo := func(ms []engine.Outbound) []string {
		var out []string
		for _, m := range ms {
			if m.Kind == engine.KindAlert {
				out = append(out, string(m.Destination()))
			}
		}
		return out
	}
	h.clock.Add(10 * time.Minute)
	h.svc.DeliverDue(ctx)
	if got := alertsTo(h.drain()); strings.Join(got, ",") != "console:staff" {
		t.Fatalf("after 10 min: alerts to %v, want staff again", got)
	}
	h.clock.Add(10 * time.Minute)
	h.svc.DeliverDue(ctx)
	if got := alertsTo(h.drain()); strings.Join(got, ",") != "console:staff,telegram:777" {
		t.Fatalf("after 20 min: alerts to %v, want the first contact", got)
	}
	// Acknowledge with the button: the ladder stops, everyone is told.
	if err := h.svc.ReceiveStaff(ctx, service.StaffInbound{Staff: "telegram:42", Channel: "console:staff", Choice: "ack:1"}); err != nil {
		t.Fatal(err)
	}
	ack := h.drain()
	if len(ack) != 1 || !strings.Contains(ack[0].Text, "acknowledged by telegram:42") {
		t.Fatalf("ack notice: %+v", ack)
	}
	h.clock.Add(2 * time.Hour)
	h.svc.DeliverDue(ctx)
	if got := alertsTo(h.drain()); len(got) != 0 {
		t.Fatalf("alerts after acknowledgement: %v", got)
	}
	e, _ := h.store.Escalation(1)
	if e.Status != "acknowledged" || e.AckBy != "telegram:42" || e.Steps != 2 {
		t.Fatalf("record %+v", e)
	}
	var steps int
	as, _ := h.store.Audit()
	for _, a := range as {
		if strings.HasPrefix(a.Action, "alert_") || a.Action == "escalation_acknowledged" {
			steps++
		}
	}
	if steps != 4 { // resent to staff, forwarded (2 channels), acknowledged
		t.Fatalf("audited ladder steps %d, want 4", steps)
	}
	if out := h.staff("/resolve 1 called the patient, fine"); out == "" {
		t.Fatal("no answer to /resolve")
	}
	if e, _ := h.store.Escalation(1); e.Status != "resolved" || e.Note != "called the patient, fine" {
		t.Fatalf("resolve: %+v", e)
	}
}

func TestWatchLevelHasNoLadder(t *testing.T) {
	h := newStaffHarness(t)
	ctx := context.Background()
	h.svc.RecordVisit(ctx, "telegram:1", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:1", Text: "big bruise on my arm"})
	h.drain()
	h.clock.Add(time.Hour)
	h.svc.DeliverDue(ctx)
	for _, m := range h.drain() {
		if m.Kind == engine.KindAlert {
			t.Fatal("watch alerts are follow-ups, not re-sent")
		}
	}
}

func TestStaffCommands(t *testing.T) {
	h := newStaffHarness(t)
	ctx := context.Background()
	h.svc.RecordVisit(ctx, "telegram:1", engine.Visit{At: t0, Treatment: engine.DryNeedling, Area: "neck", Consent: true})
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:1", Text: "I fainted"})
	h.drain()
	if out := h.staff("/open"); !strings.Contains(out, "#1 EMERGENCY telegram:1") {
		t.Fatalf("/open: %s", out)
	}
	h.clock.Add(25 * time.Hour)
	h.svc.DeliverDue(ctx)
	h.drain()
	if out := h.staff("/today"); !strings.Contains(out, "telegram:1: dry needling") || !strings.Contains(out, "24h") {
		t.Fatalf("/today: %s", out)
	}
	if out := h.staff("/patient telegram:1"); !strings.Contains(out, "escalation #1 emergency") || !strings.Contains(out, "visit: dry needling, neck") {
		t.Fatalf("/patient: %s", out)
	}
	if out := h.staff("/pause telegram:1"); !strings.Contains(out, "paused") {
		t.Fatalf("/pause: %s", out)
	}
	if st, _, _ := h.store.State("telegram:1"); !st.Paused {
		t.Fatal("not paused")
	}
	out := h.staff("/visit dry_needling lower back acute ago=1h tz=America/Chicago")
	if !strings.Contains(out, "https://t.me/clinic_bot?start=") {
		t.Fatalf("/visit: %s", out)
	}
	if out := h.staff("/visit cupping back"); !strings.Contains(out, "unknown treatment") {
		t.Fatalf("/visit bad: %s", out)
	}
	if out := h.staff("/ack 99"); !strings.Contains(out, "no escalation #99") {
		t.Fatalf("/ack 99: %s", out)
	}
	if out := h.staff("/audit 5"); strings.Count(strings.TrimSpace(out), "\n") != 4 {
		t.Fatalf("/audit 5: %q", out)
	}
	if out := h.staff("/whatever"); !strings.Contains(out, "/open") {
		t.Fatalf("help: %s", out)
	}
	// Someone not configured as staff is refused.
	h.svc.ReceiveStaff(ctx, service.StaffInbound{Staff: "telegram:666", Channel: "console:staff", Text: "/open"})
	if ms := h.drain(); len(ms) != 1 || !strings.Contains(ms[0].Text, "only the clinic's staff") {
		t.Fatalf("non-staff: %+v", ms)
	}
}

func TestForgetErasesEverything(t *testing.T) {
	h := newStaffHarness(t)
	ctx := context.Background()
	p := engine.PatientID("telegram:1")
	h.svc.RecordVisit(ctx, p, engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.svc.Receive(ctx, service.Inbound{Patient: p, Text: "having palpitations"})
	h.svc.Receive(ctx, service.Inbound{Patient: p, Text: "/forget"})
	h.svc.Receive(ctx, service.Inbound{Patient: p, Choice: "yes"})
	r, err := h.store.PatientRecord(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.State.Visit != nil || len(r.Visits) != 0 || len(r.Escalations) != 0 || len(r.Audit) != 0 {
		t.Fatalf("left after erasure: %+v", r)
	}
	if tm, _ := h.store.Timers(p); len(tm) != 0 {
		t.Fatalf("timers left: %v", tm)
	}
	if tm, _ := h.store.EscalationTimers(1); len(tm) != 0 {
		t.Fatalf("ladder left: %v", tm)
	}
	as, _ := h.store.Audit()
	erased := 0
	for _, a := range as {
		if a.Patient == p || strings.Contains(a.Detail, "palpitations") {
			t.Fatalf("audit still names the patient: %+v", a)
		}
		if a.Action == "erased" {
			erased++
		}
	}
	if erased != 1 {
		t.Fatalf("want one anonymous erasure entry, got %d", erased)
	}
	ms, _ := h.store.OutboxAll(100)
	for _, m := range ms {
		if m.To == p && !strings.Contains(m.Text, "deleted") {
			t.Fatalf("a queued message to the erased patient survived: %q", m.Text)
		}
	}
}

func TestRetentionPurge(t *testing.T) {
	h := newStaffHarness(t)
	ctx := context.Background()
	h.svc.RecordVisit(ctx, "telegram:old", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.clock.Add(80 * 24 * time.Hour)
	h.svc.RecordVisit(ctx, "telegram:new", engine.Visit{At: h.clock.Now(), Treatment: engine.Acupuncture, Consent: true})
	h.clock.Add(11 * 24 * time.Hour)
	n, err := h.svc.Purge(ctx)
	if err != nil || n != 1 {
		t.Fatalf("purged %d (%v), want 1", n, err)
	}
	if _, found, _ := h.store.State("telegram:old"); found {
		t.Fatal("old patient kept past retention")
	}
	if _, found, _ := h.store.State("telegram:new"); !found {
		t.Fatal("recent patient purged")
	}
}

// TestStaffUpdateRedeliveredAppliesOnce delivers the same staff update
// twice, one after the other and concurrently, as a platform does after a
// lost confirmation or a restart: the command runs once, so a /visit makes
// one invite and one answer.
func TestStaffUpdateRedeliveredAppliesOnce(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		concurrent bool
	}{
		{"visit, redelivered", "/visit dry_needling lower back", false},
		{"visit, delivered twice at once", "/visit acupuncture neck", true},
		{"open, redelivered", "/open", false},
	}
	tokenRE := regexp.MustCompile(`start=([A-Za-z0-9_-]{22})`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newStaffHarness(t)
			ctx := context.Background()
			in := service.StaffInbound{Staff: "telegram:42", Channel: "console:staff", Text: tt.text, DedupeKey: "telegram:update:4711"}
			errs := make(chan error, 2)
			deliver := func() { errs <- h.svc.ReceiveStaff(ctx, in) }
			if tt.concurrent {
				go deliver()
				go deliver()
			} else {
				deliver()
				deliver()
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			var answers []string
			for _, m := range h.drain() {
				answers = append(answers, m.Text)
			}
			if len(answers) != 1 {
				t.Fatalf("%d answers to one staff update, want 1: %q", len(answers), answers)
			}
			if !strings.HasPrefix(tt.text, "/visit") {
				return
			}
			tokens := tokenRE.FindAllStringSubmatch(answers[0], -1)
			if len(tokens) != 1 {
				t.Fatalf("answer holds %d invites, want 1: %q", len(tokens), answers[0])
			}
			// The one invite is stored and works.
			if err := h.svc.Receive(ctx, service.Inbound{Patient: "telegram:5", Text: "/start " + tokens[0][1], Invite: tokens[0][1], DedupeKey: "telegram:update:4712"}); err != nil {
				t.Fatal(err)
			}
			if st, _, _ := h.store.State("telegram:5"); st.Visit == nil {
				t.Fatal("the invite did not enroll the patient")
			}
			// A new update with the same command is a new command.
			in.DedupeKey = "telegram:update:4713"
			if err := h.svc.ReceiveStaff(ctx, in); err != nil {
				t.Fatal(err)
			}
			var again strings.Builder
			for _, m := range h.drain() {
				again.WriteString(m.Text)
			}
			if n := len(tokenRE.FindAllString(again.String(), -1)); n != 1 {
				t.Fatalf("a second /visit update made %d invites, want 1", n)
			}
		})
	}
}

// TestSilentPatientInToday lets two patients go through both check-ins,
// one answering and one silent: staff get one watch-level alert about the
// silent one, and /today shows who it is.
func TestSilentPatientInToday(t *testing.T) {
	h := newStaffHarness(t)
	ctx := context.Background()
	for _, p := range []engine.PatientID{"telegram:1", "telegram:2"} {
		if err := h.svc.RecordVisit(ctx, p, engine.Visit{At: t0, Treatment: engine.DryNeedling, Area: "back", Consent: true}); err != nil {
			t.Fatal(err)
		}
	}
	h.tick(24*time.Hour+time.Minute, time.Minute)
	if err := h.svc.Receive(ctx, service.Inbound{Patient: "telegram:2", Choice: "better", DedupeKey: "telegram:update:1"}); err != nil {
		t.Fatal(err)
	}
	h.tick(40*time.Hour, 10*time.Minute)
	var reports []engine.Outbound
	for _, m := range h.sent {
		if m.To == engine.StaffAddress && strings.Contains(m.Text, "No answer to") {
			reports = append(reports, m)
		}
	}
	if len(reports) != 1 || reports[0].Patient != "telegram:1" || reports[0].Level != engine.Watch || reports[0].Kind != engine.KindAlert {
		t.Fatalf("silence reports %+v, want one watch alert about telegram:1", reports)
	}
	out := h.staff("/today")
	var silent, answered string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "telegram:1:"):
			silent = line
		case strings.HasPrefix(line, "telegram:2:"):
			answered = line
		}
	}
	if !strings.Contains(silent, "NO ANSWER to any check-in (staff alerted") || strings.Contains(answered, "NO ANSWER to any") {
		t.Fatalf("/today does not single out the silent patient:\n%s", out)
	}
}

// TestEveryStaffCommandImplemented: each command staffgate lists (and so
// adapters route to the service as staff) has an answer of its own here,
// never the help text an unknown command gets; and an unlisted one gets it.
func TestEveryStaffCommandImplemented(t *testing.T) {
	h := newStaffHarness(t)
	help := staffgate.Help() + "\n"
	for _, c := range staffgate.Commands {
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			if got := h.staff("/" + n); got == help || got == "" {
				t.Errorf("/%s answered %q; want an answer of its own", n, got)
			}
		}
	}
	if got := h.staff("/frobnicate"); got != help {
		t.Errorf("/frobnicate answered %q; want the help", got)
	}
}

// TestStaffGateRefusesOthers: the service's second gate refuses a command
// from someone staffgate does not call staff, even when an adapter passed
// it on.
func TestStaffGateRefusesOthers(t *testing.T) {
	h := newStaffHarness(t)
	if err := h.svc.ReceiveStaff(context.Background(), service.StaffInbound{Staff: "telegram:666", Channel: "console:staff", Text: "/open"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range h.drain() {
		got = append(got, m.Text)
	}
	if len(got) != 1 || !strings.Contains(got[0], "only the clinic's staff") {
		t.Fatalf("answers to a non-staff /open: %q", got)
	}
}
