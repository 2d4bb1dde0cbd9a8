package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
)

// TestCheckinSignsGate: the check-in asks one yes/no about warning signs
// (listed in its text) before showing their buttons, and every answer
// reads exactly as it did on the full list: same outcome, escalation and
// staff alert as a protocol without the gate.
func TestCheckinSignsGate(t *testing.T) {
	run := func(gate bool, hours time.Duration, presses []string) (engine.Result, engine.State, *convo) {
		p := engine.DefaultProtocol()
		if !gate {
			p.Checkin.SignsGate = engine.Question{}
		}
		e, err := engine.New(p, enginetest.Triage{}, enginetest.Clinic)
		if err != nil {
			t.Fatal(err)
		}
		c := &convo{t: t, e: e, id: "p1", now: t0, timers: map[string]time.Time{}}
		c.visit(engine.Acupuncture)
		c.st.Greeted = true
		c.advance(hours)
		var r engine.Result
		for _, id := range presses {
			r = c.press(id)
		}
		return r, c.st, c
	}
	q := engine.DefaultProtocol().Checkin.Questions[2]
	if q.ID != "signs" {
		t.Fatalf("question 2 is %q, want signs", q.ID)
	}
	for _, h := range []time.Duration{24*time.Hour + time.Minute, 48*time.Hour + time.Minute} {
		for _, ch := range q.Choices {
			for _, path := range [][]string{{"yes", ch.ID}, {ch.ID}} {
				if ch.ID == "none" && path[0] == "yes" {
					path = []string{"no"}
				}
				name := h.String() + "/" + strings.Join(path, ">")
				t.Run(name, func(t *testing.T) {
					_, _, c := run(true, h, []string{"better", "5"})
					if c.st.Step != engine.StepCheckinGate {
						t.Fatalf("after soreness: step %v, want the gate", c.st.Step)
					}
					if n := len(c.last.Messages); n == 0 || len(c.last.Messages[n-1].Choices) != 2 || !strings.Contains(c.last.Messages[n-1].Text, "Palpitations") {
						t.Fatalf("gate question: want two buttons and the signs listed, got %+v", c.last.Messages)
					}
					got, gst, _ := run(true, h, append([]string{"better", "5"}, path...))
					want, wst, _ := run(false, h, []string{"better", "5", ch.ID})
					if kinds(got) != kinds(want) || texts(got) != texts(want) {
						t.Errorf("with the gate:\n%s\nwithout:\n%s", texts(got), texts(want))
					}
					gc, wc := gst.Checkins[len(gst.Checkins)-1], wst.Checkins[len(wst.Checkins)-1]
					if gc.Outcome != wc.Outcome || gc.Signs != wc.Signs {
						t.Errorf("check-in %+v, want %+v", gc, wc)
					}
				})
			}
		}
	}
}
