package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

func TestApplyCommitsStepTogetherAndDedupes(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "a.db"))
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 3; i++ { // the same update three times
		ok, err := s.Apply(ctx, step("telegram:1", "telegram:update:7"), func(in store.Input) (engine.Result, error) {
			st, found := in.State, in.Found
			if found {
				t.Fatal("fn called for an update already applied")
			}
			st.Patient = "telegram:1"
			return result(st, 2, engine.Timer{Key: "checkin:24", At: t0.Add(24 * time.Hour)}), nil
		})
		if err != nil || ok != (i == 0) {
			t.Fatalf("apply %d: ok=%v err=%v", i, ok, err)
		}
	}
	st, found, _ := s.State("telegram:1")
	if !found || st.Handled != 1 {
		t.Fatalf("state %+v", st)
	}
	out, _ := s.Outbox("telegram", 10)
	if len(out) != 2 || out[0].ID >= out[1].ID {
		t.Fatalf("outbox %+v", out)
	}
	due, ok, _ := s.NextDue()
	if !ok || due.Key != "checkin:24" || due.Patient != "telegram:1" || !due.At.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("next due %+v", due)
	}
}

func TestFailedStepCommitsNothing(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "a.db"))
	defer s.Close()
	boom := errors.New("boom")
	_, err := s.Apply(context.Background(), step("p", "k"), func(in store.Input) (engine.Result, error) {
		return engine.Result{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if _, found, _ := s.State("p"); found {
		t.Fatal("state written by a failed step")
	}
	// The dedupe key was not recorded: a retry applies.
	ok, err := s.Apply(context.Background(), step("p", "k"), func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = "p"
		return result(st, 1), nil
	})
	if !ok || err != nil {
		t.Fatalf("retry: %v %v", ok, err)
	}
}

func TestTimersOrderedRescheduledAndFiredOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s := open(t, path)
	ctx := context.Background()
	for i, id := range []engine.PatientID{"c", "a", "b"} {
		_, err := s.Apply(ctx, step(id, ""), func(in store.Input) (engine.Result, error) {
			st := in.State
			st.Patient = id
			return result(st, 0, engine.Timer{Key: "checkin:24", At: t0.Add(time.Duration(3-i) * time.Hour)}), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Reschedule "a" later: the old entry must go.
	s.Apply(ctx, step("a", ""), func(in store.Input) (engine.Result, error) {
		st := in.State
		return result(st, 0, engine.Timer{Key: "checkin:24", At: t0.Add(10 * time.Hour)}), nil
	})
	due, _ := s.DueBefore(t0.Add(5*time.Hour), 10)
	if len(due) != 2 || due[0].Patient != "b" || due[1].Patient != "c" {
		t.Fatalf("due %+v", due)
	}
	s.Close()
	s = open(t, path) // survives a restart
	defer s.Close()
	fire := func(d store.Due) bool {
		ok, err := s.Apply(ctx, store.Step{Patient: d.Patient, Due: &d, Now: t0}, func(in store.Input) (engine.Result, error) {
			st := in.State
			return result(st, 1), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !fire(due[0]) || fire(due[0]) {
		t.Fatal("a timer fired zero or two times")
	}
	if tm, _ := s.Timers("b"); len(tm) != 0 {
		t.Fatalf("fired timer still indexed: %v", tm)
	}
	next, _, _ := s.NextDue()
	if next.Patient != "c" {
		t.Fatalf("next %+v", next)
	}
}

func TestOutboxPriorityAndDelivery(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "a.db"))
	defer s.Close()
	s.Apply(context.Background(), step("telegram:1", ""), func(in store.Input) (engine.Result, error) {
		st := in.State
		st.Patient = "telegram:1"
		return engine.Result{State: st, Messages: []engine.Outbound{
			{To: "telegram:1", Kind: engine.KindCheckin, Text: "c"},
			{To: "telegram:1", Kind: engine.KindReply, Text: "r"},
			{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindAlert, Level: engine.Urgent, Text: "a"},
		}, Escalation: &engine.Escalation{Patient: "telegram:1", Level: engine.Urgent, Status: "open"}}, nil
	})
	out, _ := s.Outbox("telegram", 10)
	if len(out) != 3 || out[0].Kind != engine.KindAlert || out[1].Kind != engine.KindReply || out[2].Kind != engine.KindCheckin {
		t.Fatalf("order %v", out)
	}
	if out[0].EscalationID == 0 {
		t.Fatal("alert not linked to its escalation")
	}
	if err := s.Delivered(out[0], out[1]); err != nil {
		t.Fatal(err)
	}
	out[2].Attempts = 2
	if err := s.Retry(out[2]); err != nil {
		t.Fatal(err)
	}
	left, _ := s.Outbox("telegram", 10)
	if len(left) != 1 || left[0].Attempts != 2 {
		t.Fatalf("left %v", left)
	}
	if es, _ := s.Escalations(); len(es) != 1 || es[0].Status != "open" {
		t.Fatalf("escalations %+v", es)
	}
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

func TestPruneDedupe(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "a.db"))
	defer s.Close()
	for i, at := range []time.Time{t0, t0.Add(48 * time.Hour), t0.Add(96 * time.Hour)} {
		st := store.Step{Patient: "p", Dedupe: "k" + string(rune('0'+i)), Now: at}
		s.Apply(context.Background(), st, func(in store.Input) (engine.Result, error) {
			in.State.Patient = "p"
			return engine.Result{State: in.State}, nil
		})
	}
	n, err := s.PruneDedupe(t0.Add(72 * time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2", n, err)
	}
	// A pruned key applies again; a kept one does not.
	ok0, _ := s.Apply(context.Background(), store.Step{Patient: "p", Dedupe: "k0", Now: t0}, func(in store.Input) (engine.Result, error) {
		return engine.Result{State: in.State}, nil
	})
	ok2, _ := s.Apply(context.Background(), store.Step{Patient: "p", Dedupe: "k2", Now: t0}, func(in store.Input) (engine.Result, error) {
		return engine.Result{State: in.State}, nil
	})
	if !ok0 || ok2 {
		t.Fatalf("after pruning: k0 applied %v (want true), k2 applied %v (want false)", ok0, ok2)
	}
}

func TestPreparedResultOnlyWhenStateUnchanged(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "a.db"))
	defer s.Close()
	ctx := context.Background()
	mk := func(handled int, text string) *store.Prepared {
		st := engine.State{Patient: "p", Handled: handled}
		b, _ := json.Marshal(st)
		return &store.Prepared{Result: engine.Result{State: st, Messages: []engine.Outbound{{To: "p", Kind: engine.KindReply, Text: text}}}, State: b}
	}
	fnCalls := 0
	fn := func(in store.Input) (engine.Result, error) {
		fnCalls++
		in.State.Patient = "p"
		in.State.Handled++
		return engine.Result{State: in.State, Messages: []engine.Outbound{{To: "p", Kind: engine.KindReply, Text: "recomputed"}}}, nil
	}
	// A new patient: prepared from "nothing stored" is used.
	if ok, err := s.Apply(ctx, store.Step{Patient: "p", Prepared: mk(1, "prepared-1")}, fn); !ok || err != nil || fnCalls != 0 {
		t.Fatalf("first: %v %v calls %d", ok, err, fnCalls)
	}
	_, raw, _ := s.StateRaw("p")
	// Prepared from a stale state (nil = not stored) is refused: fn recomputes.
	if ok, _ := s.Apply(ctx, store.Step{Patient: "p", Prepared: mk(2, "stale")}, fn); !ok || fnCalls != 1 {
		t.Fatalf("stale prepared result was committed (fn calls %d)", fnCalls)
	}
	// Prepared from the bytes now stored is used.
	_, raw2, _ := s.StateRaw("p")
	p := mk(3, "prepared-3")
	p.From = raw2
	s.Apply(ctx, store.Step{Patient: "p", Prepared: p}, fn)
	if fnCalls != 1 || bytes.Equal(raw, raw2) {
		t.Fatalf("fresh prepared result not used (fn calls %d)", fnCalls)
	}
	var texts []string
	out, _ := s.OutboxAll(10)
	for _, m := range out {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, ",") != "prepared-1,recomputed,prepared-3" {
		t.Fatalf("committed %v", texts)
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
