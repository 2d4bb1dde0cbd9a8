package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// ExampleStore_Apply commits one step of a conversation: the new state, a
// check-in timer, a reply and the platform update's key, in one
// transaction. The same update delivered again commits nothing, and the
// timer comes back from the schedule with its typed owner.
func ExampleStore_Apply() {
	dir, err := os.MkdirTemp("", "aftercare-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "aftercare.db"), store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	p := engine.PatientID("telegram:42")
	step := func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = p
		st.Handled++
		return engine.Result{
			State:    st,
			Timers:   []engine.Timer{{Key: "checkin:24", At: now.Add(24 * time.Hour)}},
			Messages: []engine.Outbound{{To: p, Kind: engine.KindReply, Text: "Thanks, noted.", Created: now}},
		}, nil
	}
	for range 2 { // the platform delivers update 7 twice
		applied, err := s.Apply(ctx, store.Step{Patient: p, Dedupe: "telegram:update:7", Now: now}, step)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("applied:", applied)
	}

	st, _, _ := s.State(p)
	fmt.Println("steps handled:", st.Handled)
	out, _ := s.Outbox("telegram", 10)
	fmt.Printf("queued: %d %q\n", len(out), out[0].Text)
	due, _ := s.DueBefore(now.Add(48*time.Hour), 10)
	for _, d := range due {
		fmt.Printf("timer: %s of %s, key %s, due %s\n", d.Kind, d.Owner, d.Key, d.At.Format(time.RFC3339))
	}
	// Output:
	// applied: true
	// applied: false
	// steps handled: 1
	// queued: 1 "Thanks, noted."
	// timer: patient of telegram:42, key checkin:24, due 2026-01-06T10:00:00Z
}

// ExampleStep_onEscalation shows what the store leaves to its caller when
// a step raises an escalation: it stores the record and gives it an ID,
// then OnEscalation (the service's ladder, in service/ladder.go) ties the
// alert to it, adds the button, and returns the escalation's own timer,
// which the store keeps under a typed owner without reading it.
func ExampleStep_onEscalation() {
	dir, err := os.MkdirTemp("", "aftercare-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "aftercare.db"), store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	p := engine.PatientID("telegram:42")
	st := store.Step{Patient: p, Now: now,
		OnEscalation: func(e engine.Escalation, ms []engine.Outbound) []engine.Timer {
			for i := range ms {
				if ms[i].Kind == engine.KindAlert {
					ms[i].EscalationID = e.ID
					ms[i].Choices = []engine.Choice{{ID: fmt.Sprintf("ack:%d", e.ID), Label: "Acknowledge"}}
				}
			}
			return []engine.Timer{{Key: "ladder:1", At: now.Add(10 * time.Minute)}}
		}}
	if _, err := s.Apply(context.Background(), st, func(in store.Input) (engine.Result, error) {
		state := in.State
		state.Patient = p
		return engine.Result{State: state,
			Escalation: &engine.Escalation{Patient: p, Level: engine.Urgent, Status: "open", At: now},
			Messages:   []engine.Outbound{{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindAlert, Level: engine.Urgent, Patient: p, Text: "[URGENT] ...", Created: now}},
		}, nil
	}); err != nil {
		log.Fatal(err)
	}

	out, _ := s.Outbox("telegram", 10)
	fmt.Printf("alert: escalation %d, button %s\n", out[0].EscalationID, out[0].Choices[0].ID)
	due, _ := s.DueBefore(now.Add(time.Hour), 10)
	fmt.Printf("timer: %s, key %s\n", due[0].Owner, due[0].Key)
	pt, _ := s.Timers(p)
	fmt.Println("patient's timers:", len(pt))
	// Output:
	// alert: escalation 1, button ack:1
	// timer: escalation 1, key ladder:1
	// patient's timers: 0
}
