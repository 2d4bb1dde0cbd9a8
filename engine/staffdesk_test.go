package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
)

func clinicConvo(t *testing.T, c engine.Clinic) *convo {
	t.Helper()
	e, err := engine.New(engine.DefaultProtocol(), enginetest.Triage{}, c)
	if err != nil {
		t.Fatal(err)
	}
	return &convo{t: t, e: e, id: "p1", now: t0, timers: map[string]time.Time{}}
}

func staffReply(c *convo, text string) engine.Result {
	c.t.Helper()
	return c.apply(engine.Event{Kind: engine.EventStaff, Action: "reply", Actor: "Ana Ruiz", Text: text})
}

// sentAt returns when the first message of kind k went out among rs, or
// the zero time.
func sentAt(rs []engine.Result, k engine.Kind) time.Time {
	for _, r := range rs {
		for _, m := range r.Messages {
			if m.Kind == k && m.To != engine.StaffAddress {
				return m.Created
			}
		}
	}
	return time.Time{}
}

// TestStaffReplyHoldsFollowups: a check-in falling due while a person at
// the clinic is talking with the patient waits until the hold ends after
// the last staff reply (each reply extends it), then goes out; with the
// hold off it goes out on time.
func TestStaffReplyHoldsFollowups(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hold    time.Duration
		replies []time.Duration // after the session, each a staff reply
		want    time.Duration   // when the 24 h check-in goes out, after the session
	}{
		{"default hold of 30 min", 0, []time.Duration{23*time.Hour + 50*time.Minute}, 24*time.Hour + 20*time.Minute},
		{"each reply extends it", 10 * time.Minute, []time.Duration{23*time.Hour + 55*time.Minute, 24*time.Hour + 3*time.Minute}, 24*time.Hour + 13*time.Minute},
		{"reply long before: no effect", 0, []time.Duration{20 * time.Hour}, 24 * time.Hour},
		{"hold off", -1, []time.Duration{23*time.Hour + 50*time.Minute}, 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := enginetest.Clinic
			cl.StaffHold = tc.hold
			c := clinicConvo(t, cl)
			c.visit(engine.Acupuncture)
			session := c.now
			var rs []engine.Result
			for _, at := range tc.replies {
				rs = append(rs, c.advance(session.Add(at).Sub(c.now))...)
				r := staffReply(c, "Message from the clinic team:\nHow are you?")
				if len(r.Messages) != 1 || r.Messages[0].Staff != "Ana Ruiz" || r.Messages[0].To != c.id || r.Messages[0].Kind != engine.KindReply {
					t.Fatalf("staff reply sent %+v", r.Messages)
				}
				if len(r.Audit) != 1 || r.Audit[0].Action != "staff_reply" || r.Audit[0].Actor != "Ana Ruiz" || strings.Contains(r.Audit[0].Detail, "How are you") {
					t.Fatalf("staff reply audited %+v", r.Audit)
				}
			}
			rs = append(rs, c.advance(session.Add(25*time.Hour).Sub(c.now))...)
			got := sentAt(rs, engine.KindCheckin)
			if got.IsZero() {
				t.Fatal("the check-in never went out")
			}
			if d := got.Sub(session); d != tc.want {
				t.Errorf("check-in sent %v after the session, want %v", d, tc.want)
			}
		})
	}
}

// TestStaffHoldDefersNudge: the nudge of an unanswered check-in is a
// follow-up too and waits for the hold.
func TestStaffHoldDefersNudge(t *testing.T) {
	c := clinicConvo(t, enginetest.Clinic)
	c.visit(engine.Acupuncture)
	c.advance(24*time.Hour + time.Minute) // check-in sent, unanswered
	nudgeDue := c.timers["nudge:24"]
	if nudgeDue.IsZero() {
		t.Fatal("no nudge scheduled")
	}
	c.advance(nudgeDue.Add(-5 * time.Minute).Sub(c.now))
	staffReply(c, "Message from the clinic team:\nI'll call you in a minute.")
	rs := c.advance(20 * time.Minute)
	if at := sentAt(rs, engine.KindNudge); !at.IsZero() {
		t.Fatalf("nudge sent at %v during the hold", at)
	}
	rs = c.advance(time.Hour)
	if at := sentAt(rs, engine.KindNudge); !at.Equal(c.st.HeldUntil) {
		t.Errorf("nudge sent at %v, want when the hold ended (%v)", at, c.st.HeldUntil)
	}
}

// TestRedFlagDuringStaffHoldEscalatesAtOnce: the hold is on automatic
// follow-ups only; a red flag the patient reports while staff are talking
// with them is triaged and escalated in that same step.
func TestRedFlagDuringStaffHoldEscalatesAtOnce(t *testing.T) {
	c := clinicConvo(t, enginetest.Clinic)
	c.visit(engine.DryNeedling)
	c.advance(3 * time.Hour)
	staffReply(c, "Message from the clinic team:\nHow is the back?")
	if !c.st.HeldUntil.After(c.now) {
		t.Fatal("the reply set no hold; the test proves nothing")
	}
	c.advance(time.Minute)
	r := c.say("I fainted just now")
	if r.Escalation == nil || r.Escalation.Level != engine.Emergency {
		t.Fatalf("red flag during the hold: escalation %+v", r.Escalation)
	}
	if k := kinds(r); !strings.Contains(k, "escalation/emergency") || !strings.Contains(k, "staff:alert/emergency") {
		t.Errorf("messages %s: want the patient told and staff alerted in this step", k)
	}
}

// TestAlertIdentity: staff alerts in chat show the clinic-entered
// identity only as configured: nothing by default, else the chart
// number or the initials; never the name or phone.
func TestAlertIdentity(t *testing.T) {
	id := &engine.Identity{Name: "Jane van Quinlan", Chart: "C-20417", Phone: "+1-555-0142"}
	for _, tc := range []struct {
		mode, want string
	}{
		{engine.AlertIdentityNone, "] p1: "},
		{engine.AlertIdentityChart, "] p1 (chart C-20417): "},
		{engine.AlertIdentityInitials, "] p1 (J.V.Q.): "},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cl := enginetest.Clinic
			cl.AlertIdentity = tc.mode
			c := clinicConvo(t, cl)
			c.apply(engine.Event{Kind: engine.EventVisit, Visit: &engine.Visit{At: c.now, Treatment: engine.Acupuncture, Consent: true, Identity: id}})
			r := c.say("I fainted")
			var alert string
			for _, m := range r.Messages {
				if m.To == engine.StaffAddress && m.Kind == engine.KindAlert {
					alert = m.Text
				}
			}
			if !strings.Contains(alert, tc.want) {
				t.Errorf("alert %q: want %q", alert, tc.want)
			}
			for _, secret := range []string{"Jane", "Quinlan", "555-0142"} {
				if strings.Contains(alert, secret) {
					t.Errorf("alert %q holds %q", alert, secret)
				}
			}
			if tc.mode == "" && strings.Contains(alert, "C-20417") {
				t.Errorf("alert %q shows the chart number with the option off", alert)
			}
		})
	}
	if _, err := engine.New(engine.DefaultProtocol(), enginetest.Triage{}, engine.Clinic{TimeZone: "UTC", AlertIdentity: "name"}); err == nil {
		t.Error("alert identity \"name\" accepted")
	}
}

// TestStaffErase: the desk's erase asks the store to erase everything,
// the state included (unlike /forget, no conversation goes on), with an
// audit line naming the staff member but not the patient.
func TestStaffErase(t *testing.T) {
	c := clinicConvo(t, enginetest.Clinic)
	c.apply(engine.Event{Kind: engine.EventVisit, Visit: &engine.Visit{At: c.now, Treatment: engine.Acupuncture, Consent: true, Identity: &engine.Identity{Name: "Jane Q"}}})
	r := c.apply(engine.Event{Kind: engine.EventStaff, Action: "erase", Actor: "Ana Ruiz"})
	if !r.Erase || r.State.Visit != nil || r.State.Consent != "" || r.State.Patient != "" {
		t.Fatalf("erase: Erase=%v state %+v", r.Erase, r.State)
	}
	if len(r.Audit) != 1 || r.Audit[0].Actor != "Ana Ruiz" || r.Audit[0].Action != "erase" || r.Audit[0].Patient != "" {
		t.Errorf("audit %+v", r.Audit)
	}
}

func TestIdentityClean(t *testing.T) {
	for _, tc := range []struct {
		in   engine.Identity
		want *engine.Identity
	}{
		{engine.Identity{}, nil},
		{engine.Identity{Name: "  ", Chart: "\t"}, nil},
		{engine.Identity{Name: " Jane\u202eQ ", Chart: " 42 "}, &engine.Identity{Name: "Jane Q", Chart: "42"}},
	} {
		got := tc.in.Clean()
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("Clean(%+v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestEarlierScoresKeptAcrossVisits: a new visit keeps the earlier visit's
// soreness scores (for the desk's chart), at most MaxEarlierScores.
func TestEarlierScoresKeptAcrossVisits(t *testing.T) {
	c := clinicConvo(t, enginetest.Clinic)
	five, three := 5, 3
	c.st = engine.State{Patient: c.id, Current: -1, Visit: &engine.Visit{At: t0, Treatment: engine.Acupuncture},
		Checkins: []engine.Checkin{{Hours: 24, Soreness: &five, Outcome: "ok"}, {Hours: 48, Outcome: "unanswered"}, {Hours: 72, Soreness: &three, Outcome: "ok"}}}
	for range engine.MaxEarlierScores {
		c.st.EarlierScores = append(c.st.EarlierScores, engine.EarlierScore{Visit: t0.Add(-time.Hour), Hours: 24, Soreness: 1})
	}
	r := c.apply(engine.Event{Kind: engine.EventVisit, Visit: &engine.Visit{At: t0.Add(96 * time.Hour), Treatment: engine.DryNeedling}})
	got := r.State.EarlierScores
	if len(got) != engine.MaxEarlierScores {
		t.Fatalf("%d earlier scores, want the newest %d", len(got), engine.MaxEarlierScores)
	}
	last := got[len(got)-2:]
	if last[0] != (engine.EarlierScore{Visit: t0, Hours: 24, Soreness: 5}) || last[1] != (engine.EarlierScore{Visit: t0, Hours: 72, Soreness: 3}) {
		t.Errorf("newest earlier scores %+v", last)
	}
	if len(r.State.Checkins) != 0 {
		t.Errorf("the new visit kept the old check-ins: %+v", r.State.Checkins)
	}
}
