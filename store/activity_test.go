package store_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// oldBuckets are the buckets a file older than schema 4 has: no patient
// indexes.
var oldBuckets = []string{"meta", "states", "timers", "timer_idx", "outbox", "escalations", "visits", "audit",
	"dedupe", "invites", "read_marks", "quarantine", "transcript", "desk_logins"}

// writeOldLayout writes a file as aftercare with schema 1 or 3 left it:
// the states and records, and no index buckets. Schema 1 states are JSON;
// a schema 3 file holds binary states (EncodeState) beside JSON ones not
// rewritten since its upgrade from 2, so every other state is binary.
func writeOldLayout(t *testing.T, path string, schema uint64, states []engine.State, raw map[string][]byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range oldBuckets {
			if _, err := tx.CreateBucket([]byte(b)); err != nil {
				return err
			}
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, schema)
		if err := tx.Bucket([]byte("meta")).Put([]byte("schema"), v); err != nil {
			return err
		}
		sb := tx.Bucket([]byte("states"))
		for i, st := range states {
			b, err := json.Marshal(st)
			if schema >= 3 && i%2 == 0 {
				b, err = store.EncodeState(st)
			}
			if err != nil {
				return err
			}
			if err := sb.Put([]byte(st.Patient), b); err != nil {
				return err
			}
		}
		for k, v := range raw {
			if err := sb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		// Records naming telegram:1 in their values, and one naming nobody.
		seq := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
		for k, v := range map[string][]byte{
			"audit\x001":       []byte(`{"actor":"clinic","action":"visit_recorded","patient":"telegram:1"}`),
			"audit\x002":       []byte(`{"actor":"system","action":"started"}`),
			"escalations\x001": []byte(`{"patient":"telegram:1","level":"urgent","status":"open"}`),
		} {
			bucket, n, _ := strings.Cut(k, "\x00")
			if err := tx.Bucket([]byte(bucket)).Put(seq(uint64(n[0]-'0')), v); err != nil {
				return err
			}
		}
		// As the store numbers them: the sequences are past the records.
		if err := tx.Bucket([]byte("audit")).SetSequence(2); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("escalations")).SetSequence(1); err != nil {
			return err
		}
		return tx.Bucket([]byte("invites")).Put([]byte("tok"), []byte(`{"token":"tok","used_by":"telegram:1"}`))
	}); err != nil {
		t.Fatal(err)
	}
}

func schemaOf(t *testing.T, path string) uint64 {
	t.Helper()
	r, err := store.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 { // the unreadable state written on purpose
		t.Fatalf("check after upgrade: %v", r.Problems)
	}
	return r.Schema
}

// TestOpenBuildsIndexes opens files of the layouts before the patient
// indexes (schema 1, JSON states; schema 3, binary and JSON states): Open
// builds the indexes from the states and records and moves the file to
// schema 4, and the index reads then find the old patients as a scan
// would.
func TestOpenBuildsIndexes(t *testing.T) {
	for _, schema := range []uint64{1, 3} {
		t.Run(fmt.Sprintf("schema%d", schema), func(t *testing.T) { testOpenBuildsIndexes(t, schema) })
	}
}

func testOpenBuildsIndexes(t *testing.T, schema uint64) {
	path := filepath.Join(t.TempDir(), "old.db")
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	writeOldLayout(t, path, schema, []engine.State{
		{Patient: "telegram:1", LastActive: h(1), Visit: &engine.Visit{At: h(0)}},
		{Patient: "telegram:2", LastActive: h(2), Visit: &engine.Visit{At: h(5)}},
		{Patient: "telegram:3", LastActive: h(9)},
		{Patient: "telegram:4"}, // never active: never expires
	}, map[string][]byte{"telegram:bad": []byte("{not json")})

	s := open(t, path)
	inactive, err := s.InactiveBefore(h(10), 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []engine.PatientID{"telegram:1", "telegram:2", "telegram:3"}; !slices.Equal(inactive, want) {
		t.Fatalf("InactiveBefore after the upgrade = %v, want %v", inactive, want)
	}
	var visited []engine.PatientID
	if err := s.VisitedSince(h(0), func(st engine.State) error { visited = append(visited, st.Patient); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []engine.PatientID{"telegram:1", "telegram:2"}; !slices.Equal(visited, want) {
		t.Fatalf("VisitedSince after the upgrade = %v, want %v", visited, want)
	}
	// The upgraded index is maintained like a new one.
	if _, err := s.Apply(t.Context(), step("telegram:3", ""), func(in store.Input) (engine.Result, error) {
		in.State.LastActive = h(20)
		return result(in.State, 0), nil
	}); err != nil {
		t.Fatal(err)
	}
	if inactive, _ = s.InactiveBefore(h(10), 10); !slices.Equal(inactive, []engine.PatientID{"telegram:1", "telegram:2"}) {
		t.Fatalf("after a step on an upgraded file: %v", inactive)
	}
	// Erasing an upgraded patient finds their records through the index
	// built on open, and leaves the line naming nobody.
	if _, err := s.Apply(t.Context(), step("telegram:1", ""), func(in store.Input) (engine.Result, error) {
		return engine.Result{Erase: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if es, _ := s.Escalations(); len(es) != 0 {
		t.Fatalf("escalations after erasing their patient: %+v", es)
	}
	as, _ := s.Audit()
	for _, a := range as {
		if a.Patient == "telegram:1" {
			t.Fatalf("audit line of the erased patient kept: %+v", a)
		}
	}
	if len(as) != 2 || as[0].Action != "started" { // "started", then "erased"
		t.Fatalf("audit after erasure: %+v", as)
	}
	if inactive, _ = s.InactiveBefore(h(10), 10); !slices.Equal(inactive, []engine.PatientID{"telegram:2"}) {
		t.Fatalf("after erasing telegram:1: %v", inactive)
	}
	s.Close()
	if v := schemaOf(t, path); v != store.SchemaVersion {
		t.Fatalf("schema %d after the upgrade, want %d", v, store.SchemaVersion)
	}
	// Opening again does not rebuild (the step's change is kept).
	s = open(t, path)
	defer s.Close()
	if inactive, _ = s.InactiveBefore(h(10), 10); !slices.Equal(inactive, []engine.PatientID{"telegram:2"}) {
		t.Fatalf("after reopening: %v", inactive)
	}
}

// TestIndexesLeftOutOfCounts: the index buckets are derived, so the counts
// a copy must match (aftercare migrate) leave them out.
func TestIndexesLeftOutOfCounts(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "a.db"))
	defer s.Close()
	if _, err := s.Apply(t.Context(), step("telegram:1", ""), func(in store.Input) (engine.Result, error) {
		return result(engine.State{Patient: "telegram:1", LastActive: t0, Visit: &engine.Visit{At: t0}}, 0), nil
	}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"activity", "visit_dates", "patient_idx", "timer_idx", "meta"} {
		if _, ok := c[b]; ok {
			t.Errorf("Counts lists the derived bucket %s", b)
		}
	}
	if c["states"] != 1 {
		t.Errorf("Counts: %v", c)
	}
}

// activityKeys returns the activity index's entries of the closed file at
// path, as the time each names.
func activityKeys(t *testing.T, path string) []time.Time {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []time.Time
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("activity")).ForEach(func(k, _ []byte) error {
			out = append(out, time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC())
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestActivityIndexedByTheHour: a patient's last activity is indexed
// rounded up to the hour, so the messages of one hour move the entry once,
// and the purge's read lists a patient late by less than an hour, never
// early.
func TestActivityIndexedByTheHour(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s := open(t, path)
	at := func(d time.Duration) {
		t.Helper()
		if _, err := s.Apply(t.Context(), step("telegram:1", ""), func(in store.Input) (engine.Result, error) {
			st := in.State
			st.Patient, st.LastActive = "telegram:1", t0.Add(d)
			return result(st, 0), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	at(10 * time.Minute)
	tests := []struct {
		name   string
		before time.Time
		want   int
	}{
		{"not early: active at 10:10, cut at 10:20", t0.Add(20 * time.Minute), 0},
		{"the entry is 11:00, the cut exclusive", t0.Add(time.Hour), 0},
		{"listed from just after 11:00", t0.Add(time.Hour + time.Nanosecond), 1},
	}
	for _, tc := range tests {
		got, err := s.InactiveBefore(tc.before, 10)
		if err != nil || len(got) != tc.want {
			t.Errorf("%s: InactiveBefore = %v, %v; want %d patients", tc.name, got, err, tc.want)
		}
	}
	at(40 * time.Minute) // same hour
	at(time.Hour)        // on the hour: still 11:00
	s.Close()
	if got, want := activityKeys(t, path), []time.Time{t0.Add(time.Hour)}; !slices.Equal(got, want) {
		t.Fatalf("activity entries after three steps in one hour: %v, want %v", got, want)
	}
	s = open(t, path)
	at(time.Hour + 5*time.Minute)
	s.Close()
	if got, want := activityKeys(t, path), []time.Time{t0.Add(2 * time.Hour)}; !slices.Equal(got, want) {
		t.Fatalf("activity entries after a step in the next hour: %v, want %v", got, want)
	}
}
