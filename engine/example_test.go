package engine_test

import (
	"fmt"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
)

// ExampleEngine_Step shows the contract: state, one event and the time in;
// the next state and everything the event causes out, as data. Nothing is
// sent or stored by Step itself: the service commits the result in one
// transaction, then the dispatcher delivers the messages.
func ExampleEngine_Step() {
	e := enginetest.New()
	now := time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC) // 10:00 in Chicago

	// The clinic records a visit: the patient consented in person.
	r := e.Step("p1", engine.State{}, engine.Event{Kind: engine.EventVisit,
		Visit: &engine.Visit{At: now, Treatment: engine.DryNeedling, Area: "calf", Consent: true}}, now)
	for _, t := range r.Timers {
		if t.At.IsZero() {
			fmt.Println("cancel", t.Key) // a zero time cancels a timer
			continue
		}
		fmt.Println("timer", t.Key, t.At.Sub(now))
	}

	// An hour later the patient reports a red flag.
	r = e.Step("p1", r.State, engine.Event{Kind: engine.EventMessage, Text: "I fainted"}, now.Add(time.Hour))
	for _, m := range r.Messages {
		fmt.Println(m.To, m.Kind, m.Level)
	}
	fmt.Println("escalation:", r.Escalation.Level)
	// Output:
	// cancel silent
	// timer checkin:24 24h0m0s
	// timer checkin:48 48h0m0s
	// p1 reply none
	// p1 escalation emergency
	// staff alert emergency
	// escalation: emergency
}
