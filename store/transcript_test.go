package store_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// say commits a step in which patient p writes text and the bot answers.
func say(t *testing.T, s *store.Store, p engine.PatientID, text string) {
	t.Helper()
	st := store.Step{Patient: p, Now: t0, Heard: &store.TranscriptLine{At: t0, From: store.FromPatient, Text: text}}
	if _, err := s.Apply(t.Context(), st, func(in store.Input) (engine.Result, error) {
		in.State.Patient = p
		r := result(in.State, 0)
		r.Messages = []engine.Outbound{{To: p, Kind: engine.KindReply, Text: "re " + text, Created: t0}}
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// texts returns the texts of p's transcript, at most the last limit.
func texts(t *testing.T, s *store.Store, p engine.PatientID, limit int) []string {
	t.Helper()
	tr, err := s.Transcript(p, limit)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range tr {
		out = append(out, l.Text)
	}
	return out
}

func eraseStep(t *testing.T, s *store.Store, p engine.PatientID) {
	t.Helper()
	if _, err := s.Apply(t.Context(), store.Step{Patient: p, Now: t0}, func(store.Input) (engine.Result, error) {
		return engine.Result{Erase: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func checkClean(t *testing.T, path string) store.Report {
	t.Helper()
	r, err := store.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 {
		t.Fatalf("check: %v", r.Problems)
	}
	return r
}

// TestTranscriptChains: the lines of patients writing at the same time
// interleave in the log, and each patient's transcript is their own, in
// order, whatever the limit; erasing one patient removes exactly their
// lines; a state set aside as unreadable keeps its chain, so the desk
// still shows the conversation and the erasure still finds every line,
// also when the damage took the head with it.
func TestTranscriptChains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s := open(t, path)
	for i := range 3 {
		say(t, s, "telegram:1", fmt.Sprint("a", i))
		say(t, s, "telegram:2", fmt.Sprint("b", i))
	}
	tests := []struct {
		p     engine.PatientID
		limit int
		want  []string
	}{
		{"telegram:1", 0, []string{"a0", "re a0", "a1", "re a1", "a2", "re a2"}},
		{"telegram:2", 0, []string{"b0", "re b0", "b1", "re b1", "b2", "re b2"}},
		{"telegram:1", 3, []string{"re a1", "a2", "re a2"}},
		{"telegram:2", 1, []string{"re b2"}},
		{"telegram:3", 0, nil},
	}
	for _, tc := range tests {
		if got := texts(t, s, tc.p, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("Transcript(%s, %d) = %v, want %v", tc.p, tc.limit, got, tc.want)
		}
	}
	if r, err := s.PatientRecord("telegram:2"); err != nil || len(r.Transcript) != 6 {
		t.Fatalf("export: %d lines, %v", len(r.Transcript), err)
	}
	s.Close()
	checkClean(t, path)

	// telegram:1's state becomes unreadable, its head intact.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("states"))
		raw := b.Get([]byte("telegram:1"))
		return b.Put([]byte("telegram:1"), append(slices.Clone(raw[:9]), "\x7fgarbage"...))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = open(t, path)
	noticeTo(s)
	// The desk's walk sets it aside before any step does.
	if err := s.Patients(func(engine.State) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, s, "telegram:1", 0); len(got) != 6 {
		t.Fatalf("transcript with the state set aside: %v", got)
	}
	say(t, s, "telegram:1", "a3")
	if got, want := texts(t, s, "telegram:1", 0), []string{"a0", "re a0", "a1", "re a1", "a2", "re a2", "a3", "re a3"}; !slices.Equal(got, want) {
		t.Fatalf("transcript after the fresh state: %v, want %v", got, want)
	}
	eraseStep(t, s, "telegram:1")
	if got := texts(t, s, "telegram:1", 0); len(got) != 0 {
		t.Fatalf("transcript after erasure: %v", got)
	}
	if got := texts(t, s, "telegram:2", 0); len(got) != 6 {
		t.Fatalf("the other patient's transcript after the erasure: %v", got)
	}
	s.Close()
	if r := checkClean(t, path); r.Counts["transcript"] != 6 {
		t.Fatalf("transcript records after the erasure: %d, want telegram:2's 6", r.Counts["transcript"])
	}

	// telegram:2's whole record is damaged, its head with it: the head is
	// found again from the log.
	poison(t, path, "states", []byte("telegram:2"), []byte("{not json"))
	s = open(t, path)
	noticeTo(s)
	say(t, s, "telegram:2", "b3")
	if got, want := texts(t, s, "telegram:2", 0), []string{"b0", "re b0", "b1", "re b1", "b2", "re b2", "b3", "re b3"}; !slices.Equal(got, want) {
		t.Fatalf("transcript after a damaged head: %v, want %v", got, want)
	}
	s.Close()
	checkClean(t, path)
	s = open(t, path)
	eraseStep(t, s, "telegram:2")
	s.Close()
	if r := checkClean(t, path); r.Counts["transcript"] != 0 {
		t.Fatalf("transcript records after erasing everyone: %d", r.Counts["transcript"])
	}
}

// TestCheckFindsTranscriptOffItsChain: a line its patient's chain does
// not reach (the desk would not show it, an erasure would leave it) is a
// problem for `aftercare check`.
func TestCheckFindsTranscriptOffItsChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s := open(t, path)
	say(t, s, "telegram:1", "hello")
	s.Close()
	line := append(make([]byte, 8), 10)
	line = append(append(line, "telegram:1"...), `{"at":"2026-01-05T10:00:00Z","from":"patient","text":"lost"}`...)
	poison(t, path, "transcript", binary.BigEndian.AppendUint64(nil, 99), line)
	r, err := store.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 {
		t.Fatalf("check problems: %v, want the line off the chain", r.Problems)
	}
}

// TestOpenUpgradesTranscript4: a schema 4 file's transcript (patient |
// 0x00 | seq keys) is rewritten as the chained log on open: every line
// keeps its patient and order, a malformed key is set aside in
// quarantine, later steps continue the chains, an erasure removes the
// upgraded lines, and the file is schema 5 and clean.
func TestOpenUpgradesTranscript4(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	s := open(t, path)
	s.Close()
	line := func(text string) []byte {
		b, _ := json.Marshal(store.TranscriptLine{At: t0, From: store.FromPatient, Text: text})
		return b
	}
	old := func(p string, seq uint64) []byte {
		return binary.BigEndian.AppendUint64(append([]byte(p), 0), seq)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, 4)); err != nil {
			return err
		}
		for _, p := range []engine.PatientID{"telegram:1", "telegram:2"} {
			raw, err := store.EncodeState(engine.State{Patient: p, Handled: 1})
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte("states")).Put([]byte(p), raw); err != nil {
				return err
			}
		}
		tr := tx.Bucket([]byte("transcript"))
		for k, v := range map[string][]byte{
			string(old("telegram:1", 1)): line("a0"),
			string(old("telegram:2", 2)): line("b0"),
			string(old("telegram:1", 3)): line("a1"),
			"garbage":                    line("?"),
		} {
			if err := tr.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return tr.SetSequence(3)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = open(t, path)
	if got, want := texts(t, s, "telegram:1", 0), []string{"a0", "a1"}; !slices.Equal(got, want) {
		t.Fatalf("telegram:1 after the upgrade: %v, want %v", got, want)
	}
	if got, want := texts(t, s, "telegram:2", 0), []string{"b0"}; !slices.Equal(got, want) {
		t.Fatalf("telegram:2 after the upgrade: %v, want %v", got, want)
	}
	if q, _ := s.Quarantine(); len(q) != 1 || string(q[0].Key) != "garbage" {
		t.Fatalf("quarantine after the upgrade: %+v, want the malformed key", q)
	}
	say(t, s, "telegram:1", "a2")
	if got, want := texts(t, s, "telegram:1", 0), []string{"a0", "a1", "a2", "re a2"}; !slices.Equal(got, want) {
		t.Fatalf("telegram:1 after a step: %v, want %v", got, want)
	}
	eraseStep(t, s, "telegram:2")
	s.Close()
	r := checkClean(t, path)
	if r.Schema != 5 || r.Counts["transcript"] != 4 {
		t.Fatalf("after the upgrade: schema %d, %d transcript records; want 5 and telegram:1's 4", r.Schema, r.Counts["transcript"])
	}
}
