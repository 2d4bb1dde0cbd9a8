package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/handoff"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// TestCutKeepsPatientOrder checks how the committer cuts a group from the
// steps waiting: a patient's steps never share a group or overtake each
// other, a patient with a step being committed waits, invite steps go one
// per group, a dedupe key appears once per group, and steps whose callers
// gave up are dropped.
func TestCutKeepsPatientOrder(t *testing.T) {
	type in struct {
		name, patient, key, invite string
		abandoned                  bool
	}
	tests := []struct {
		name  string
		max   int
		busy  []string
		steps []in
		group string // names, in order
		rest  string // held back or left in the queue, in order
	}{
		{name: "two steps of one patient: the second waits", max: 10,
			steps: []in{{name: "a", patient: "p1"}, {name: "b", patient: "p2"}, {name: "c", patient: "p1"}},
			group: "a,b", rest: "c"},
		{name: "a busy patient waits, with every later step of theirs", max: 10, busy: []string{"p1"},
			steps: []in{{name: "a", patient: "p1"}, {name: "b", patient: "p2"}, {name: "c", patient: "p1"}, {name: "d", patient: "p3"}},
			group: "b,d", rest: "a,c"},
		{name: "one invite step per group", max: 10,
			steps: []in{{name: "a", patient: "p1", invite: "x"}, {name: "b", patient: "p2", invite: "y"}, {name: "c", patient: "p3"}},
			group: "a,c", rest: "b"},
		{name: "a dedupe key once per group", max: 10,
			steps: []in{{name: "a", patient: "p1", key: "k"}, {name: "b", patient: "p2", key: "k"}, {name: "c", patient: "p3", key: "j"}},
			group: "a,c", rest: "b"},
		{name: "a full group leaves the rest in order", max: 2,
			steps: []in{{name: "a", patient: "p1"}, {name: "b", patient: "p2"}, {name: "c", patient: "p3"}, {name: "d", patient: "p4"}},
			group: "a,b", rest: "c,d"},
		{name: "abandoned steps are dropped", max: 10,
			steps: []in{{name: "a", patient: "p1", abandoned: true}, {name: "b", patient: "p1"}},
			group: "b", rest: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, viaQueue := range []bool{false, true} {
				c := &committer{max: tc.max}
				busy := map[engine.PatientID]bool{}
				for _, p := range tc.busy {
					busy[engine.PatientID(p)] = true
				}
				names := map[*apply]string{}
				var held []*apply
				queue := make(chan *apply, len(tc.steps))
				for _, s := range tc.steps {
					a := &apply{st: storage.Step{Patient: engine.PatientID(s.patient), Dedupe: s.key, Invite: s.invite}, t: handoff.NewTicket()}
					if s.abandoned {
						a.t.Withdraw()
					}
					names[a] = s.name
					if viaQueue {
						queue <- a
					} else {
						held = append(held, a)
					}
				}
				g, rest, q := c.cut(held, queue, busy)
				if q != queue {
					t.Fatal("cut dropped an open queue")
				}
				join := func(as []*apply) string {
					var ns []string
					for _, a := range as {
						ns = append(ns, names[a])
					}
					return strings.Join(ns, ",")
				}
				if got := join(g); got != tc.group {
					t.Errorf("via queue %v: group %q, want %q", viaQueue, got, tc.group)
				}
				// What a full group left in the queue waits there, after
				// what was held back.
				close(queue)
				for a := range queue {
					rest = append(rest, a)
				}
				if got := join(rest); got != tc.rest {
					t.Errorf("via queue %v: left waiting %q, want %q", viaQueue, got, tc.rest)
				}
				for _, a := range g {
					if !a.t.Taken() {
						t.Errorf("%s in the group but not marked taken", names[a])
					}
				}
				for _, a := range rest {
					if !a.t.Waiting() {
						t.Errorf("%s held back but not queued: its caller could no longer withdraw it", names[a])
					}
				}
			}
		})
	}
}

// TestGroupFailuresStayTheirOwn runs one group directly with bad steps
// among good ones: a step whose fn fails and one whose fn panics are
// taken out and fail alone; a NUL byte in a dedupe key, which the server
// refuses for the whole group's write, is found by halving the group and
// fails alone. Every other step commits, in groups.
func TestGroupFailuresStayTheirOwn(t *testing.T) {
	s, err := Open(context.Background(), Options{DSN: pgtest.DSN(t), Committers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("boom")
	bad := map[int]string{3: "error", 6: "panic", 11: "nul"}
	var g []*apply
	for i := range 16 {
		p := engine.PatientID(fmt.Sprintf("telegram:%d", i))
		st := storage.Step{Patient: p, Dedupe: fmt.Sprintf("u%d", i), Now: time.Unix(0, 0)}
		if bad[i] == "nul" {
			st.Dedupe = "u\x00"
		}
		g = append(g, &apply{st: st, t: handoff.NewTicket(), fn: func(in storage.Input) (engine.Result, error) {
			switch bad[i] {
			case "error":
				return engine.Result{}, boom
			case "panic":
				panic("bad record")
			}
			next := in.State
			next.Patient = p
			return engine.Result{State: next, Messages: []engine.Outbound{{To: p, Kind: engine.KindReply, Text: "hi"}}}, nil
		}})
		g[i].t.Take()
	}
	before := s.GroupStats()
	s.group.run(append([]*apply(nil), g...))
	for i, a := range g {
		err := <-a.t.Outcome()
		_, found, _ := s.State(a.st.Patient)
		switch bad[i] {
		case "":
			if err != nil || !a.applied || !found {
				t.Errorf("step %d: err %v applied %v stored %v: a good step failed beside a bad one", i, err, a.applied, found)
			}
		case "error":
			if !errors.Is(err, boom) || a.applied || found {
				t.Errorf("step %d: err %v applied %v stored %v, want its own error", i, err, a.applied, found)
			}
		default:
			if err == nil || a.applied || found {
				t.Errorf("step %d (%s): err %v applied %v stored %v, want an error and nothing stored", i, bad[i], err, a.applied, found)
			}
		}
	}
	after := s.GroupStats()
	// 16 steps, 3 bad: far fewer transactions than one per step.
	if n := after.Groups - before.Groups; n >= 16 {
		t.Errorf("%d transactions for 16 steps: the good ones were not kept in groups", n)
	}
	if after.Split == before.Split {
		t.Error("no step was split out, yet three failed")
	}
}

// TestUrgentSteps checks which steps start a group at once: those whose
// prepared result raises an escalation or sends an alert.
func TestUrgentSteps(t *testing.T) {
	tests := []struct {
		name string
		pr   *storage.Prepared
		want bool
	}{
		{"not prepared", nil, false},
		{"a reply", &storage.Prepared{Result: engine.Result{Messages: []engine.Outbound{{Kind: engine.KindReply}}}}, false},
		{"an escalation", &storage.Prepared{Result: engine.Result{Escalation: &engine.Escalation{Level: engine.Urgent}}}, true},
		{"an alert", &storage.Prepared{Result: engine.Result{Messages: []engine.Outbound{{Kind: engine.KindReply}, {Kind: engine.KindAlert}}}}, true},
	}
	for _, tc := range tests {
		if got := urgent(storage.Step{Prepared: tc.pr}); got != tc.want {
			t.Errorf("%s: urgent %v, want %v", tc.name, got, tc.want)
		}
	}
}
