package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path, store.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func step(id engine.PatientID, dedupe string) store.Step {
	return store.Step{Patient: id, Dedupe: dedupe, Now: t0}
}

func result(st engine.State, msgs int, timers ...engine.Timer) engine.Result {
	st.Handled++
	r := engine.Result{State: st, Timers: timers}
	for i := 0; i < msgs; i++ {
		r.Messages = append(r.Messages, engine.Outbound{To: st.Patient, Kind: engine.KindReply, Text: "hello", Created: t0})
	}
	return r
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	s := open(t, path)
	if _, err := store.Open(path, store.Options{Timeout: 50 * time.Millisecond}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	s.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte("this is not a database, just some text that is long enough to look like a page header"), 0o600)
	if _, err := store.Open(garbage, store.Options{}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("garbage: %v, want ErrCorrupt", err)
	}
	// A real database with its meta pages overwritten.
	broken := filepath.Join(dir, "broken.db")
	b := open(t, broken)
	b.Close()
	data, _ := os.ReadFile(broken)
	for i := 0; i < 8192 && i < len(data); i++ {
		data[i] ^= 0x5a
	}
	os.WriteFile(broken, data, 0o600)
	if _, err := store.Open(broken, store.Options{}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("broken: %v, want ErrCorrupt", err)
	}
}

func TestBackupIsAConsistentCopy(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "a.db"))
	defer s.Close()
	s.Apply(context.Background(), step("p", ""), func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = "p"
		return result(st, 1), nil
	})
	bk := filepath.Join(dir, "backup.db")
	if err := s.BackupFile(bk); err != nil {
		t.Fatal(err)
	}
	c := open(t, bk)
	defer c.Close()
	if st, found, _ := c.State("p"); !found || st.Handled != 1 {
		t.Fatalf("backup state %+v", st)
	}
}

// TestReadMarksKeptForKnownPatientsAndErasedWithThem checks that read marks
// are kept only for stored patients, listed per platform, survive a reopen,
// and go when the patient's data is erased.
func TestReadMarksKeptForKnownPatientsAndErasedWithThem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s := open(t, path)
	ctx := context.Background()
	put := func(p engine.PatientID, erase bool) {
		t.Helper()
		if _, err := s.Apply(ctx, step(p, ""), func(in store.Input) (engine.Result, error) {
			st := in.State
			st.Patient = p
			r := result(st, 0)
			if erase {
				r = engine.Result{Erase: true}
			}
			return r, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("discord:1", false)
	put("discord:2", false)
	put("telegram:1", false)
	if err := s.SetReadMarks(map[engine.PatientID]string{"discord:1": "10/11", "discord:2": "20/21", "discord:3": "30/31"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	ids, err := s.PatientIDs("discord")
	if err != nil || len(ids) != 2 || ids[0] != "discord:1" || ids[1] != "discord:2" {
		t.Fatalf("PatientIDs = %v, %v", ids, err)
	}
	marks, err := s.ReadMarks("discord")
	if err != nil || len(marks) != 2 || marks["discord:1"] != "10/11" || marks["discord:2"] != "20/21" {
		t.Fatalf("marks = %v, %v; want those of the two stored patients", marks, err)
	}
	put("discord:2", true)
	if marks, _ := s.ReadMarks("discord"); len(marks) != 1 || marks["discord:2"] != "" {
		t.Fatalf("after erasing discord:2, marks = %v", marks)
	}
}

// TestTimerSetAgain: setting a timer again at the time it is already due
// keeps it due once (the store writes nothing for it), at a new time
// moves it, and at the zero time removes it.
func TestTimerSetAgain(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "a.db"))
	defer s.Close()
	p := engine.PatientID("telegram:1")
	at := t0.Add(24 * time.Hour)
	tests := []struct {
		name string
		set  time.Time
		want []time.Time // due times of the patient's timers, in order
	}{
		{"set", at, []time.Time{at}},
		{"same time again", at, []time.Time{at}},
		{"moved", at.Add(time.Hour), []time.Time{at.Add(time.Hour)}},
		{"same again after the move", at.Add(time.Hour), []time.Time{at.Add(time.Hour)}},
		{"removed", time.Time{}, nil},
	}
	for _, tc := range tests {
		if _, err := s.Apply(t.Context(), step(p, ""), func(in store.Input) (engine.Result, error) {
			in.State.Patient = p
			return result(in.State, 0, engine.Timer{Key: "checkin:24", At: tc.set}), nil
		}); err != nil {
			t.Fatal(err)
		}
		due, err := s.DueBefore(at.Add(48*time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []time.Time
		for _, d := range due {
			got = append(got, d.At)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: due %v, want %v", tc.name, got, tc.want)
		}
		if tm, _ := s.Timers(p); len(tm) != len(tc.want) || (len(tc.want) == 1 && !tm["checkin:24"].Equal(tc.want[0])) {
			t.Errorf("%s: index says %v", tc.name, tm)
		}
	}
}
