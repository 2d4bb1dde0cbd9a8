package engine_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
)

// t0 is 10:00 in Chicago, outside quiet hours.
var t0 = time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)

func newEngine(t testing.TB) *engine.Engine {
	t.Helper()
	return enginetest.New()
}

// convo drives one patient through the engine like the service would.
type convo struct {
	t      testing.TB
	e      *engine.Engine
	id     engine.PatientID
	st     engine.State
	now    time.Time
	timers map[string]time.Time
	last   engine.Result
	esc    []engine.Escalation
	// onResult, when set, sees every result, timers' included.
	onResult func(engine.Result)
}

func newConvo(t testing.TB) *convo {
	return &convo{t: t, e: newEngine(t), id: "p1", now: t0, timers: map[string]time.Time{}}
}

func (c *convo) apply(ev engine.Event) engine.Result {
	c.t.Helper()
	r := c.e.Step(c.id, c.st, ev, c.now)
	c.st = r.State
	for _, tm := range r.Timers {
		if tm.At.IsZero() {
			delete(c.timers, tm.Key)
		} else {
			c.timers[tm.Key] = tm.At
		}
	}
	if r.Escalation != nil {
		c.esc = append(c.esc, *r.Escalation)
	}
	for _, m := range r.Messages {
		if n := utf8.RuneCountInString(m.Text); n > 4096 || n == 0 {
			c.t.Fatalf("message of %d runes: %q", n, m.Text)
		}
		if !utf8.ValidString(m.Text) {
			c.t.Fatalf("invalid UTF-8 sent")
		}
	}
	c.last = r
	if c.onResult != nil {
		c.onResult(r)
	}
	return r
}

func (c *convo) say(text string) engine.Result {
	c.t.Helper()
	return c.apply(engine.Event{Kind: engine.EventMessage, Text: text})
}

func (c *convo) press(id string) engine.Result {
	c.t.Helper()
	return c.apply(engine.Event{Kind: engine.EventMessage, Choice: id})
}

// advance moves time to t, firing timers in order as the scheduler would.
func (c *convo) advance(d time.Duration) []engine.Result {
	c.t.Helper()
	end := c.now.Add(d)
	var out []engine.Result
	for {
		key, at := "", time.Time{}
		for k, v := range c.timers {
			if !v.After(end) && (key == "" || v.Before(at)) {
				key, at = k, v
			}
		}
		if key == "" {
			break
		}
		delete(c.timers, key)
		if at.After(c.now) {
			c.now = at
		}
		out = append(out, c.apply(engine.Event{Kind: engine.EventDue, Timer: key}))
	}
	c.now = end
	return out
}

func (c *convo) visit(tr engine.Treatment) {
	c.t.Helper()
	c.apply(engine.Event{Kind: engine.EventVisit, Visit: &engine.Visit{At: c.now, Treatment: tr, Area: "lower back", TZ: "America/Chicago", Consent: true}})
}

func kinds(r engine.Result) string {
	var ks []string
	for _, m := range r.Messages {
		k := string(m.Kind)
		if m.Level != engine.None {
			k += "/" + m.Level.String()
		}
		if m.To == engine.StaffAddress {
			k = "staff:" + k
		}
		ks = append(ks, k)
	}
	return strings.Join(ks, ",")
}

func allText(r engine.Result) string {
	var b strings.Builder
	for _, m := range r.Messages {
		b.WriteString(m.Text)
		b.WriteString("\n")
	}
	return b.String()
}

func TestDefaultProtocolLoads(t *testing.T) {
	p := engine.DefaultProtocol()
	if len(p.Readiness.Questions) < 3 || len(p.Checkin.Questions) != 3 || len(p.FAQ) < 8 {
		t.Fatalf("default protocol looks incomplete: %d readiness, %d check-in questions, %d FAQ", len(p.Readiness.Questions), len(p.Checkin.Questions), len(p.FAQ))
	}
}

// TestRedFlagInEveryState checks that an emergency interrupts whatever
// question is open and escalates at once, with the numbers in the text.
func TestRedFlagInEveryState(t *testing.T) {
	setups := map[string]func(c *convo){
		"new patient":      func(c *convo) {},
		"intake.when":      func(c *convo) { c.say("hi") },
		"intake.treatment": func(c *convo) { c.say("hi"); c.say("an hour ago") },
		"intake.area":      func(c *convo) { c.say("hi"); c.say("an hour ago"); c.press("dry_needling") },
		"intake.acute":     func(c *convo) { c.say("hi"); c.say("an hour ago"); c.press("dry_needling"); c.say("calf") },
		"intake.child": func(c *convo) {
			c.say("hi")
			c.say("an hour ago")
			c.press("dry_needling")
			c.say("calf")
			c.press("no")
		},
		"idle with visit": func(c *convo) { c.visit(engine.Acupuncture) },
		"readiness.0":     func(c *convo) { c.visit(engine.Acupuncture); c.say("can I go for a run?") },
		"readiness.2": func(c *convo) {
			c.visit(engine.Acupuncture)
			c.say("can I go for a run?")
			c.press("energized")
			c.press("smoother")
		},
		"checkin.0": func(c *convo) { c.visit(engine.DryNeedling); c.advance(24 * time.Hour) },
		"checkin.2": func(c *convo) {
			c.visit(engine.DryNeedling)
			c.advance(24 * time.Hour)
			c.press("better")
			c.press("2")
		},
		"clarify pending": func(c *convo) { c.visit(engine.Acupuncture); c.say("I feel dizzy") },
		"stopped":         func(c *convo) { c.visit(engine.Acupuncture); c.say("STOP") },
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			c := newConvo(t)
			setup(c)
			c.now = c.now.Add(time.Minute)
			r := c.say("I fainted in the shower")
			if r.Escalation == nil || r.Escalation.Level != engine.Emergency {
				t.Fatalf("no emergency escalation: %+v", r.Escalation)
			}
			if got := kinds(r); !strings.Contains(got, "escalation/emergency") || !strings.Contains(got, "staff:alert/emergency") {
				t.Fatalf("messages %s, want escalation and staff alert", got)
			}
			txt := allText(r)
			if !strings.Contains(txt, "911") || !strings.Contains(txt, "+1-555-0100") {
				t.Fatalf("escalation text lacks the numbers: %s", txt)
			}
			if c.st.Step != "" && !strings.HasPrefix(string(c.st.Step), "intake.") {
				t.Fatalf("flow not interrupted: step %q", c.st.Step)
			}
			if c.st.Clarify != nil {
				t.Fatal("pending clarification survived an emergency")
			}
		})
	}
}

func TestUrgentAndWatchLevels(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	r := c.say("having palpitations")
	if r.Escalation == nil || r.Escalation.Level != engine.Urgent || !strings.Contains(allText(r), "+1-555-0100") {
		t.Fatalf("urgent: %+v %s", r.Escalation, kinds(r))
	}
	if strings.Contains(r.Messages[0].Text, "Call 911 now") {
		t.Fatal("urgent told to call the emergency number first")
	}
	r = c.say("there's a big bruise on my thigh")
	if r.Escalation == nil || r.Escalation.Level != engine.Watch || !strings.Contains(kinds(r), "staff:alert/watch") {
		t.Fatalf("watch: %+v %s", r.Escalation, kinds(r))
	}
	for _, m := range r.Messages {
		if m.To == engine.StaffAddress && (!strings.Contains(m.Text, "lower back") || !strings.Contains(m.Text, "big bruise")) {
			t.Fatalf("staff alert lacks visit or words: %s", m.Text)
		}
	}
}

func TestNormalAfterEffectIsReassured(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	r := c.say("my leg twitched a couple of times")
	if r.Escalation != nil || !strings.Contains(strings.ToLower(allText(r)), "twitching") {
		t.Fatalf("want reassurance about twitching, got %s: %s", kinds(r), allText(r))
	}
}

func TestClarifyAnsweredAndTimedOut(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	c.say("hello")
	r := c.say("I feel dizzy")
	if r.Escalation != nil || len(r.Messages) != 1 || len(r.Messages[0].Choices) != 2 {
		t.Fatalf("want one clarifying question with 2 choices, got %s", kinds(r))
	}
	r = c.press("clarify:passes")
	if r.Escalation != nil || c.st.Clarify != nil {
		t.Fatalf("passing dizziness escalated: %s", kinds(r))
	}
	if _, ok := c.timers["clarify"]; ok {
		t.Fatal("clarify timer not cancelled")
	}
	c.say("I feel dizzy")
	rs := c.advance(30 * time.Minute)
	var got *engine.Escalation
	for _, r := range rs {
		if r.Escalation != nil {
			got = r.Escalation
		}
	}
	if got == nil || got.Level != engine.Urgent {
		t.Fatalf("unanswered clarification must escalate at its fallback level, got %+v", got)
	}
}

func TestIntakeSchedulesCheckins(t *testing.T) {
	c := newConvo(t)
	r := c.say("hi")
	if !strings.Contains(allText(r), "not an emergency service") && !strings.Contains(allText(r), "I'm not an emergency service") {
		t.Fatalf("greeting must say it is not an emergency service: %s", allText(r))
	}
	c.say("2 hours ago")
	c.press("dry_needling")
	c.say("left calf")
	c.press("yes")
	r = c.press("no")
	if len(c.timers) != 0 || c.st.Step != "intake.consent" {
		t.Fatalf("check-ins scheduled before consent: %v (step %q)", c.timers, c.st.Step)
	}
	r = c.press("yes")
	if c.st.Visit == nil || c.st.Visit.Treatment != engine.DryNeedling || !c.st.Visit.Acute || c.st.Visit.Area != "left calf" {
		t.Fatalf("visit %+v", c.st.Visit)
	}
	if !c.st.Visit.At.Equal(t0.Add(-2 * time.Hour)) {
		t.Fatalf("session time %v", c.st.Visit.At)
	}
	if len(c.timers) != 2 {
		t.Fatalf("timers %v", c.timers)
	}
	if !strings.Contains(allText(r), "tomorrow") {
		t.Fatalf("confirmation should say when: %s", allText(r))
	}
}

func TestReadinessAdvice(t *testing.T) {
	cases := []struct {
		name      string
		treatment engine.Treatment
		after     time.Duration
		answers   []string
		want      string
	}{
		{"acupuncture all ready", engine.Acupuncture, 2 * time.Hour, []string{"energized", "smoother", "none", "better"}, "Normal training"},
		{"dry needling capped first day", engine.DryNeedling, 2 * time.Hour, []string{"energized", "smoother", "none", "better"}, "Light activity"},
		{"dry needling day two", engine.DryNeedling, 30 * time.Hour, []string{"energized", "smoother", "none", "better"}, "Moderate"},
		{"one wait sign", engine.Acupuncture, 2 * time.Hour, []string{"tired", "smoother", "none", "better"}, "Moderate"},
		{"two wait signs rest", engine.Acupuncture, 2 * time.Hour, []string{"tired", "stiff", "none", "better"}, "Rest"},
		{"exhausted rest", engine.Electroacupuncture, 2 * time.Hour, []string{"exhausted", "smoother", "none", "better"}, "Rest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newConvo(t)
			c.visit(tc.treatment)
			c.now = c.now.Add(tc.after)
			c.timers = map[string]time.Time{}
			r := c.say("can I lift weights tonight?")
			if !strings.HasPrefix(string(c.st.Step), "readiness.") {
				t.Fatalf("readiness not started: %s", allText(r))
			}
			for _, a := range tc.answers {
				r = c.press(a)
			}
			txt := allText(r)
			if !strings.HasPrefix(txt, tc.want) {
				t.Fatalf("advice %q, want %s", txt, tc.want)
			}
			if !strings.Contains(txt, "Stop and call") || !strings.Contains(txt, "+1-555-0100") {
				t.Fatalf("advice lacks stop-and-call: %s", txt)
			}
		})
	}
}

func TestReadinessStrongDizzinessEscalates(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	c.say("can I go to the gym?")
	c.press("usual")
	c.press("same")
	r := c.press("strong")
	if r.Escalation == nil || r.Escalation.Level != engine.Urgent {
		t.Fatalf("strong dizziness: %s", kinds(r))
	}
}

func TestCheckinsCompareAnswers(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.DryNeedling)
	rs := c.advance(24 * time.Hour)
	if len(rs) != 1 || kinds(rs[0]) != "checkin" {
		t.Fatalf("24h: %d results", len(rs))
	}
	c.press("same")
	c.say("4/10")
	r := c.press("none")
	if r.Escalation != nil || c.st.Checkins[0].Outcome != "ok" {
		t.Fatalf("24h with moderate soreness should be ok: %s", kinds(r))
	}
	if got := checkinsIn(c.advance(24 * time.Hour)); got != 1 {
		t.Fatalf("48h check-ins sent: %d, want 1", got)
	}
	c.press("same")
	c.say("5")
	r = c.press("none")
	if r.Escalation == nil || r.Escalation.Level != engine.Watch {
		t.Fatalf("soreness persisting at 48h must be watch: %s", kinds(r))
	}
}

func TestCheckinFatigueAfter24h(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Electroacupuncture)
	c.advance(24 * time.Hour)
	c.press("same")
	c.press("1")
	r := c.press("fatigue")
	if r.Escalation != nil {
		t.Fatal("tiredness at 24h is normal")
	}
	c.advance(24 * time.Hour)
	c.press("same")
	c.press("1")
	r = c.press("fatigue")
	if r.Escalation == nil || r.Escalation.Level != engine.Watch {
		t.Fatalf("fatigue at 48h must be watch: %s", kinds(r))
	}
}

func TestSevereSorenessEscalates(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.DryNeedling)
	c.advance(24 * time.Hour)
	c.press("worse")
	r := c.say("9")
	if r.Escalation == nil || r.Escalation.Level < engine.Urgent {
		t.Fatalf("9/10 soreness: %s", kinds(r))
	}
}

func TestStopAndStart(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	r := c.say("STOP")
	if !c.st.Stopped || !strings.Contains(allText(r), "START") {
		t.Fatalf("stop: %s", allText(r))
	}
	if rs := c.advance(25 * time.Hour); len(rs) != 1 || len(rs[0].Messages) != 0 {
		t.Fatalf("check-in sent while stopped: %v", rs)
	}
	// "stop" inside a sentence is not a command.
	c.say("start")
	if c.st.Stopped {
		t.Fatal("START did not resume")
	}
	c.say("the ache won't stop")
	if c.st.Stopped {
		t.Fatal("a sentence containing 'stop' unsubscribed the patient")
	}
	rs := c.advance(24 * time.Hour)
	if len(rs) == 0 || kinds(rs[len(rs)-1]) != "checkin" {
		t.Fatalf("48h check-in after START: %v", rs)
	}
	// Escalation still works while stopped.
	c.say("stop messages")
	r = c.say("I fainted")
	if r.Escalation == nil {
		t.Fatal("red flag ignored while stopped")
	}
}

func TestQuietHoursMoveCheckins(t *testing.T) {
	c := newConvo(t)
	// 22:30 in Chicago (CST, UTC-6) on 2 March.
	c.now = time.Date(2026, 3, 3, 4, 30, 0, 0, time.UTC)
	c.visit(engine.Acupuncture)
	at := c.timers["checkin:24"]
	loc, _ := time.LoadLocation("America/Chicago")
	if got := at.In(loc); got.Hour() != 8 || got.Minute() != 0 || got.Day() != 4 {
		t.Fatalf("24h check-in at %v, want 08:00 on 4 March", got)
	}
}

func TestQuietHoursAcrossDST(t *testing.T) {
	loc, _ := time.LoadLocation("America/Chicago")
	c := engine.Clinic{QuietStart: 21 * 60, QuietEnd: 8 * 60}
	cases := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		// Spring forward: 8 March 2026, 02:00 CST -> 03:00 CDT.
		{"night before spring forward", time.Date(2026, 3, 7, 23, 0, 0, 0, loc), time.Date(2026, 3, 8, 8, 0, 0, 0, loc)},
		{"in the skipped hour", time.Date(2026, 3, 8, 9, 30, 0, 0, time.UTC), time.Date(2026, 3, 8, 8, 0, 0, 0, loc)},
		// Fall back: 1 November 2026, 02:00 CDT -> 01:00 CST.
		{"night before fall back", time.Date(2026, 10, 31, 22, 0, 0, 0, loc), time.Date(2026, 11, 1, 8, 0, 0, 0, loc)},
		{"daytime untouched", time.Date(2026, 11, 1, 12, 0, 0, 0, loc), time.Date(2026, 11, 1, 12, 0, 0, 0, loc)},
	}
	for _, tc := range cases {
		got := c.Allowed(tc.in, loc)
		if !got.Equal(tc.want) {
			t.Errorf("%s: Allowed(%v) = %v, want %v", tc.name, tc.in.In(loc), got.In(loc), tc.want)
		}
		if h := got.In(loc).Hour(); tc.name != "daytime untouched" && h != 8 {
			t.Errorf("%s: local hour %d, want 8", tc.name, h)
		}
	}
	// The UTC offset differs on the two sides: wall-clock 08:00 both times.
	a := c.Allowed(time.Date(2026, 3, 6, 22, 0, 0, 0, loc), loc)
	b := c.Allowed(time.Date(2026, 3, 7, 22, 0, 0, 0, loc), loc)
	if b.Sub(a) != 23*time.Hour {
		t.Errorf("the spring-forward day has 23 hours between 08:00s, got %v", b.Sub(a))
	}
}

func TestHostileInput(t *testing.T) {
	inputs := map[string]string{
		"empty":         "",
		"spaces":        "   \t  ",
		"huge":          strings.Repeat("a", 20000),
		"huge red flag": strings.Repeat("blah ", 3000) + " I fainted",
		"invalid utf8":  "\xff\xfe\xfd sore",
		"control chars": "\x00\x01\x1b[31mhello\x07",
		"rtl override":  "\u202egnihtemos",
		"only emoji":    "😵‍💫😵‍💫",
		"null bytes":    strings.Repeat("\x00", 100),
		"markdown":      "_x*[a](http://b)`",
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			c := newConvo(t)
			c.visit(engine.Acupuncture)
			r := c.say(in)
			patient := 0
			for _, m := range r.Messages {
				if m.To == c.id {
					patient++
				}
			}
			if patient == 0 {
				t.Fatal("no reply to the patient")
			}
		})
	}
}

func TestEveryMessageGetsAnAnswer(t *testing.T) {
	msgs := []string{"hello", "thanks", "what?", "asdfgh", "yes", "no", "help", "is ice or heat better?", "can I drink coffee?",
		"how long does soreness last?", "my back is a bit sore", "/start", "/start abc123", "START", "?"}
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	for _, m := range msgs {
		r := c.say(m)
		if len(r.Messages) == 0 {
			t.Errorf("%q got no answer", m)
		}
	}
}

func TestFAQAnswers(t *testing.T) {
	cases := map[string]string{
		"should I use ice or heat?":        "Heat",
		"can I have a coffee?":             "caffeine",
		"is it ok to drink wine tonight?":  "alcohol",
		"can I drive home?":                "drive",
		"how long does the soreness last?": "24 hours",
		"is it normal that I cried?":       "tearful",
	}
	for q, want := range cases {
		c := newConvo(t)
		c.visit(engine.Acupuncture)
		r := c.say(q)
		if !strings.Contains(allText(r), want) {
			t.Errorf("%q: answer %q lacks %q", q, allText(r), want)
		}
	}
}

func TestUnreachableNotifiesStaffOnce(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	r := c.apply(engine.Event{Kind: engine.EventUnreachable, Platform: "telegram"})
	if kinds(r) != "staff:notice" {
		t.Fatalf("unreachable: %s", kinds(r))
	}
	if r := c.apply(engine.Event{Kind: engine.EventUnreachable, Platform: "telegram"}); len(r.Messages) != 0 {
		t.Fatal("second unreachable notified again")
	}
	if rs := c.advance(25 * time.Hour); len(rs) != 1 || len(rs[0].Messages) != 0 {
		t.Fatal("check-in queued to an unreachable patient")
	}
}

func TestLateCheckinSupersedes(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	c.advance(24 * time.Hour) // 24h sent, never answered
	rs := c.advance(24 * time.Hour)
	var ck engine.Result
	for _, r := range rs {
		if kinds(r) == "checkin" {
			ck = r
		}
	}
	if !strings.Contains(allText(ck), "wasn't answered") {
		t.Fatalf("48h check-in should mention the unanswered one: %s", allText(ck))
	}
	if c.st.Checkins[0].Outcome != "unanswered" {
		t.Fatalf("24h outcome %q", c.st.Checkins[0].Outcome)
	}
}

func checkinsIn(rs []engine.Result) int {
	n := 0
	for _, r := range rs {
		for _, m := range r.Messages {
			if m.Kind == engine.KindCheckin {
				n++
			}
		}
	}
	return n
}

func TestConsentDeclinedMeansNoCheckins(t *testing.T) {
	c := newConvo(t)
	for _, m := range []string{"hi", "just now", "acupuncture", "neck", "no", "no"} {
		c.say(m)
	}
	r := c.say("no thanks")
	if c.st.Consent != "no" || len(c.timers) != 0 || !strings.Contains(allText(r), "START") {
		t.Fatalf("consent %q timers %v: %s", c.st.Consent, c.timers, allText(r))
	}
	if rs := c.advance(50 * time.Hour); checkinsIn(rs) != 0 {
		t.Fatal("check-in sent without consent")
	}
	c.say("start")
	if c.st.Consent != "yes" {
		t.Fatal("START did not give consent")
	}
}

func TestInviteAsksConsentFirst(t *testing.T) {
	c := newConvo(t)
	v := &engine.Visit{At: c.now, Treatment: engine.DryNeedling, Area: "calf"}
	r := c.apply(engine.Event{Kind: engine.EventMessage, Text: "/start tok", Invite: engine.InviteResult{Status: engine.InviteOK, Visit: v}})
	if !r.InviteUsed || c.st.Step != "intake.consent" || len(c.timers) != 0 {
		t.Fatalf("invite: used %v step %q timers %v", r.InviteUsed, c.st.Step, c.timers)
	}
	if !strings.Contains(allText(r), "not an emergency service") || !strings.Contains(allText(r), "STOP") {
		t.Fatalf("first message must explain the bot, that it is no emergency service, and how to stop: %s", allText(r))
	}
	c.press("yes")
	if len(c.timers) != 2 {
		t.Fatalf("timers after consent: %v", c.timers)
	}
	r = c.apply(engine.Event{Kind: engine.EventMessage, Text: "/start old", Invite: engine.InviteResult{Status: engine.InviteExpired}})
	if r.InviteUsed || !strings.Contains(allText(r), "didn't work") {
		t.Fatalf("expired invite: %s", allText(r))
	}
}

func TestForgetNeedsConfirmation(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	r := c.say("delete my data")
	if r.Erase || c.st.Step != "forget" {
		t.Fatalf("erased without confirmation (step %q)", c.st.Step)
	}
	r = c.press("no")
	if r.Erase || c.st.Visit == nil {
		t.Fatal("kept data was erased")
	}
	c.say("/forget")
	r = c.press("yes")
	if !r.Erase || c.st.Visit != nil || len(c.st.Checkins) != 0 || !strings.Contains(allText(r), "deleted") {
		t.Fatalf("erase: %v %+v", r.Erase, c.st)
	}
}

func TestStaffPauseAndResume(t *testing.T) {
	c := newConvo(t)
	c.visit(engine.Acupuncture)
	c.apply(engine.Event{Kind: engine.EventStaff, Action: "pause", Actor: "telegram:42"})
	if rs := c.advance(25 * time.Hour); checkinsIn(rs) != 0 {
		t.Fatal("check-in sent while paused")
	}
	r := c.apply(engine.Event{Kind: engine.EventStaff, Action: "resume", Actor: "telegram:42"})
	if len(r.Audit) == 0 || r.Audit[0].Actor != "telegram:42" {
		t.Fatalf("staff action not audited with its actor: %+v", r.Audit)
	}
	if rs := c.advance(24 * time.Hour); checkinsIn(rs) != 1 {
		t.Fatal("48h check-in not sent after resume")
	}
}

func TestClosedClinicSaysSoPlainly(t *testing.T) {
	cl := enginetest.Clinic
	cl.Hours = map[time.Weekday][2]int{time.Monday: {8 * 60, 18 * 60}}
	cl.AfterHoursPhone = "+1-555-0199"
	e, err := engine.New(engine.DefaultProtocol(), enginetest.Triage{}, cl)
	if err != nil {
		t.Fatal(err)
	}
	open := e.Step("p", engine.State{}, engine.Event{Kind: engine.EventMessage, Text: "palpitations"}, t0) // Monday 10:00
	closed := e.Step("p", engine.State{}, engine.Event{Kind: engine.EventMessage, Text: "palpitations"}, t0.Add(12*time.Hour))
	if strings.Contains(allText(open), "closed") {
		t.Fatalf("open clinic said closed: %s", allText(open))
	}
	if txt := allText(closed); !strings.Contains(txt, "closed right now") || !strings.Contains(txt, "+1-555-0199") || !strings.Contains(txt, "911") {
		t.Fatalf("closed-clinic escalation: %s", txt)
	}
}
