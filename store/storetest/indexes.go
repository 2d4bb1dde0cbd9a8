package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// Indexes are the reads the periodic jobs and staff lists make through
// the patient indexes instead of reading every state.
type Indexes interface {
	// InactiveBefore lists up to limit patients whose store.LastActivity
	// is before t, least recently active first. A backend may index the
	// time rounded up (bbolt: to the hour, store.ActivityGrain), listing a
	// patient that much later, never earlier; the cases here use whole
	// hours.
	InactiveBefore(t time.Time, limit int) ([]engine.PatientID, error)
	// VisitedSince calls fn with every patient whose visit is at or after
	// t, oldest visit first.
	VisitedSince(t time.Time, fn func(engine.State) error) error
}

// setTimes commits a step that gives patient p these times (zero: unset).
func setTimes(t *testing.T, s Store, p engine.PatientID, lastActive, visit time.Time) {
	t.Helper()
	if _, err := s.Apply(context.Background(), step(p, ""), func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient, st.LastActive, st.Visit = p, lastActive, nil
		if !visit.IsZero() {
			st.Visit = &engine.Visit{At: visit, Treatment: engine.Acupuncture}
		}
		return result(st, 0), nil
	}); err != nil {
		t.Fatal(err)
	}
}

func inactive(t *testing.T, s Store, before time.Time, limit int) []engine.PatientID {
	t.Helper()
	ids, err := s.InactiveBefore(before, limit)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func testActivityIndex(t *testing.T, b Backend) {
	s := one(t, b)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	// Last activity is the later of the last message and the visit.
	for _, c := range []struct {
		p            engine.PatientID
		last, visit  time.Time
		wantActivity time.Time
	}{
		{"telegram:a", h(5), h(1), h(5)},
		{"telegram:b", h(2), h(3), h(3)},
		{"telegram:c", time.Time{}, h(4), h(4)},
		{"telegram:d", h(1), time.Time{}, h(1)},
		{"telegram:e", time.Time{}, time.Time{}, time.Time{}}, // never expires
	} {
		setTimes(t, s, c.p, c.last, c.visit)
		st, _, _ := s.State(c.p)
		if got := store.LastActivity(st); !got.Equal(c.wantActivity) {
			t.Fatalf("%s: LastActivity %v, want %v", c.p, got, c.wantActivity)
		}
	}
	tests := []struct {
		name   string
		before time.Time
		limit  int
		want   []engine.PatientID
	}{
		{"none before the oldest", h(1), 10, nil},
		{"the cutoff is exclusive", h(3), 10, []engine.PatientID{"telegram:d"}},
		{"oldest first", h(6), 10, []engine.PatientID{"telegram:d", "telegram:b", "telegram:c", "telegram:a"}},
		{"limit", h(6), 2, []engine.PatientID{"telegram:d", "telegram:b"}},
	}
	for _, tc := range tests {
		if got := inactive(t, s, tc.before, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("%s: InactiveBefore(%v, %d) = %v, want %v", tc.name, tc.before, tc.limit, got, tc.want)
		}
	}
	// A step that moves the activity moves the entry: d wrote again.
	setTimes(t, s, "telegram:d", h(10), time.Time{})
	if got, want := inactive(t, s, h(6), 10), []engine.PatientID{"telegram:b", "telegram:c", "telegram:a"}; !slices.Equal(got, want) {
		t.Fatalf("after d wrote: %v, want %v", got, want)
	}
	if got := inactive(t, s, h(11), 10); len(got) != 5-1 || got[3] != "telegram:d" {
		t.Fatalf("d listed once, at its new time: %v", got)
	}
	// A step that changes nothing indexed keeps the entry as it was.
	if _, err := s.Apply(context.Background(), step("telegram:b", ""), func(in store.Input) (engine.Result, error) {
		return result(in.State, 1), nil
	}); err != nil {
		t.Fatal(err)
	}
	// Erasure removes the entries.
	if _, err := s.Apply(context.Background(), step("telegram:b", ""), func(in store.Input) (engine.Result, error) {
		return engine.Result{Erase: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := inactive(t, s, h(11), 10), []engine.PatientID{"telegram:c", "telegram:a", "telegram:d"}; !slices.Equal(got, want) {
		t.Fatalf("after erasing b: %v, want %v", got, want)
	}
	// A failed step leaves the index as it was.
	s.Apply(context.Background(), step("telegram:c", ""), func(in store.Input) (engine.Result, error) {
		return engine.Result{}, fmt.Errorf("engine failed")
	})
	if got := inactive(t, s, h(5), 10); !slices.Equal(got, []engine.PatientID{"telegram:c"}) {
		t.Fatalf("after a failed step: %v", got)
	}
}

func testVisitIndex(t *testing.T, b Backend) {
	s := one(t, b)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	setTimes(t, s, "telegram:old", h(20), h(0))
	setTimes(t, s, "telegram:new", h(1), h(30))
	setTimes(t, s, "telegram:mid", time.Time{}, h(10))
	setTimes(t, s, "telegram:none", h(40), time.Time{})
	visited := func(since time.Time) []engine.PatientID {
		t.Helper()
		var out []engine.PatientID
		if err := s.VisitedSince(since, func(st engine.State) error {
			if st.Visit == nil || st.Visit.At.Before(since) {
				t.Errorf("%s listed with visit %+v", st.Patient, st.Visit)
			}
			out = append(out, st.Patient)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		since time.Time
		want  []engine.PatientID
	}{
		{h(0), []engine.PatientID{"telegram:old", "telegram:mid", "telegram:new"}},
		{h(10), []engine.PatientID{"telegram:mid", "telegram:new"}},
		{h(31), nil},
	} {
		if got := visited(tc.since); !slices.Equal(got, tc.want) {
			t.Errorf("VisitedSince(%v) = %v, want %v", tc.since, got, tc.want)
		}
	}
	// A new visit moves the patient; erasure removes them.
	setTimes(t, s, "telegram:old", h(20), h(35))
	if got := visited(h(31)); !slices.Equal(got, []engine.PatientID{"telegram:old"}) {
		t.Fatalf("after a new visit: %v", got)
	}
	s.Apply(context.Background(), step("telegram:old", ""), func(in store.Input) (engine.Result, error) {
		return engine.Result{Erase: true}, nil
	})
	if got := visited(h(0)); !slices.Equal(got, []engine.PatientID{"telegram:mid", "telegram:new"}) {
		t.Fatalf("after erasure: %v", got)
	}
}

// testPurgeByIndex runs the service's retention purge over the backend:
// only the patients past retention are erased, and the purge reads them
// from the index (more than one batch of them), leaving the others.
func testPurgeByIndex(t *testing.T, b Backend) {
	s := one(t, b)
	const retention = 30 * 24 * time.Hour
	now := t0.Add(retention + 100*time.Hour)
	const expired, kept = 1100, 20 // more expired than one index read returns
	for i := range expired {
		setTimes(t, s, engine.PatientID(fmt.Sprintf("telegram:x%04d", i)), t0.Add(time.Duration(i)*time.Minute), t0)
	}
	for i := range kept {
		setTimes(t, s, engine.PatientID(fmt.Sprintf("telegram:k%02d", i)), t0, now.Add(-time.Hour))
	}
	svc := newService(t, s, now, retention)
	n, err := svc.Purge(context.Background())
	if err != nil || n != expired {
		t.Fatalf("purged %d (%v), want %d", n, err, expired)
	}
	if left := inactive(t, s, now, 10000); len(left) != kept {
		t.Fatalf("%d patients left in the index, want %d", len(left), kept)
	}
	if _, found, _ := s.State("telegram:x0000"); found {
		t.Fatal("an expired patient was kept")
	}
	if _, found, _ := s.State("telegram:k00"); !found {
		t.Fatal("a recent patient was erased")
	}
	if n, err := svc.Purge(context.Background()); err != nil || n != 0 {
		t.Fatalf("second pass purged %d (%v), want 0", n, err)
	}
}

func newService(t *testing.T, s Store, now time.Time, retention time.Duration) *service.Service {
	t.Helper()
	svc, err := service.New(service.Config{Engine: enginetest.New(), Store: s, Clock: clock.NewFake(now), Retention: retention, StaffChannels: []engine.PatientID{"console:staff"}})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
