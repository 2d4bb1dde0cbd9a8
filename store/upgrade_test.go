package store_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// writeSchema1Timers writes a database as schema 1 laid it out: timers
// keyed by a bare owner, an escalation's ladder under the pseudo patient
// "escalation:<id>", a malformed timer key an older bug left behind, and
// no patient indexes.
func writeSchema1Timers(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	timer := func(at time.Time, owner, key string) (k, idx []byte) {
		idx = append(append([]byte(owner), 0), key...)
		return append(u64(uint64(at.UnixNano())), idx...), idx
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"meta", "states", "timers", "timer_idx", "escalations"} {
			if _, err := tx.CreateBucket([]byte(b)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte("schema"), u64(1)); err != nil {
			return err
		}
		st, _ := json.Marshal(engine.State{Patient: "telegram:1", LastActive: t0})
		if err := tx.Bucket([]byte("states")).Put([]byte("telegram:1"), st); err != nil {
			return err
		}
		e, _ := json.Marshal(engine.Escalation{ID: 3, Patient: "telegram:1", Level: engine.Urgent, Status: "open", At: t0})
		if err := tx.Bucket([]byte("escalations")).Put(u64(3), e); err != nil {
			return err
		}
		for _, tm := range []struct {
			at         time.Time
			owner, key string
		}{
			{t0.Add(24 * time.Hour), "telegram:1", "checkin:24"},
			{t0.Add(20 * time.Minute), "escalation:3", "ladder:2"},
		} {
			k, idx := timer(tm.at, tm.owner, tm.key)
			if err := tx.Bucket([]byte("timers")).Put(k, nil); err != nil {
				return err
			}
			if err := tx.Bucket([]byte("timer_idx")).Put(idx, k[:8]); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("timers")).Put(append(u64(uint64(t0.UnixNano())), "garbage"...), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenUpgradesSchema1: a file written by schema 1 goes through every
// upgrade step on open: its timers come back with typed owners (the ladder
// as escalation 3's, not as a patient's), the ladder still steps once, the
// patient indexes of schema 4 are built (retention finds the patient, and
// erasing them finds their escalation and its ladder through by_patient),
// and the file is schema 5 after.
func TestOpenUpgradesSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	writeSchema1Timers(t, path)
	s := open(t, path)
	noticeTo(s)
	due, err := s.DueBefore(t0.Add(48*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range due {
		got = append(got, fmt.Sprintf("%s %s %s@%s", d.Kind, d.Owner, d.Key, d.At.Sub(t0)))
	}
	want := "escalation escalation 3 ladder:2@20m0s; patient telegram:1 checkin:24@24h0m0s"
	if strings.Join(got, "; ") != want {
		t.Fatalf("due after upgrade:\n %s\nwant\n %s", strings.Join(got, "; "), want)
	}
	if tm, _ := s.Timers("telegram:1"); len(tm) != 1 || !tm["checkin:24"].Equal(t0.Add(24*time.Hour)) {
		t.Errorf("patient timers after upgrade: %v", tm)
	}
	if tm, _ := s.Timers("escalation:3"); len(tm) != 0 {
		t.Errorf("ladder still filed under a pseudo patient: %v", tm)
	}
	if q, _ := s.Quarantine(); len(q) != 1 || q[0].Kind != store.QuarantineTimer {
		t.Errorf("quarantine = %+v; want the malformed timer key set aside", q)
	}
	ctx := context.Background()
	d := due[0]
	step := func() (bool, error) {
		return s.ApplyEscalation(ctx, 3, &d, t0.Add(20*time.Minute), func(e *engine.Escalation) (store.EscalationUpdate, error) {
			e.Steps = 2
			return store.EscalationUpdate{Changed: true, Timers: []engine.Timer{{Key: "ladder:3", At: t0.Add(30 * time.Minute)}}}, nil
		})
	}
	if ok, err := step(); !ok || err != nil {
		t.Fatalf("upgraded ladder step: %v %v", ok, err)
	}
	if ok, err := step(); ok || err != nil {
		t.Fatalf("upgraded ladder step applied twice: %v %v", ok, err)
	}
	if tm, _ := s.EscalationTimers(3); len(tm) != 1 || !tm["ladder:3"].Equal(t0.Add(30*time.Minute)) {
		t.Errorf("ladder after its step: %v", tm)
	}
	if inactive, err := s.InactiveBefore(t0.Add(time.Hour), 10); err != nil || len(inactive) != 1 || inactive[0] != "telegram:1" {
		t.Fatalf("InactiveBefore after the upgrade = %v, %v; want telegram:1", inactive, err)
	}
	if _, err := s.Apply(ctx, store.Step{Patient: "telegram:1", Now: t0.Add(time.Hour)}, func(store.Input) (engine.Result, error) {
		return engine.Result{Erase: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if es, _ := s.Escalations(); len(es) != 0 {
		t.Errorf("escalations after erasing their patient: %+v", es)
	}
	if tm, _ := s.EscalationTimers(3); len(tm) != 0 {
		t.Errorf("ladder of an erased patient's escalation kept: %v", tm)
	}
	if inactive, _ := s.InactiveBefore(t0.Add(time.Hour), 10); len(inactive) != 0 {
		t.Errorf("InactiveBefore after the erasure = %v", inactive)
	}
	s.Close()
	r, err := store.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Schema != store.SchemaVersion || store.SchemaVersion != 5 || len(r.Problems) != 0 {
		t.Fatalf("after upgrade: schema %d (want %d), problems %v", r.Schema, store.SchemaVersion, r.Problems)
	}
}
