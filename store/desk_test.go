package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// TestTranscriptKeptAndErased: a step's message and replies go into the
// transcript, in order, a staff member's message as the clinic team's;
// erasing the patient erases the transcript.
func TestTranscriptKeptAndErased(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)
	p := engine.PatientID("telegram:1")
	step := store.Step{Patient: p, Now: now, Heard: &store.TranscriptLine{At: now, From: store.FromPatient, Text: "hello"}}
	if _, err := st.Apply(ctx, step, func(in store.Input) (engine.Result, error) {
		return engine.Result{State: engine.State{Patient: p}, Messages: []engine.Outbound{
			{To: p, Kind: engine.KindReply, Text: "hi there", Created: now},
			{To: p, Kind: engine.KindReply, Text: "from us", Staff: "Ana", Created: now},
			{To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindNotice, Text: "staff only", Created: now},
		}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	tr, err := st.Transcript(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range tr {
		got = append(got, l.From+":"+l.Text)
		if l.From == store.FromClinic && l.Staff != "Ana" {
			t.Errorf("clinic line by %q, want Ana", l.Staff)
		}
	}
	if want := []string{"patient:hello", "bot:hi there", "clinic:from us"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("transcript %v, want %v", got, want)
	}
	if last, _ := st.Transcript(p, 1); len(last) != 1 || last[0].Text != "from us" {
		t.Fatalf("last line %+v", last)
	}
	if _, err := st.Apply(ctx, store.Step{Patient: p, Now: now}, func(store.Input) (engine.Result, error) {
		return engine.Result{Erase: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if tr, _ := st.Transcript(p, 0); len(tr) != 0 {
		t.Fatalf("transcript after erasure: %+v", tr)
	}
}

func TestDeskLoginSingleUse(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)
	h := []byte("0123456789abcdef0123456789abcdef")
	if err := st.PutDeskLogin(ctx, h, store.DeskLogin{Staff: "telegram:1", Expires: now.Add(10 * time.Minute)}, now); err != nil {
		t.Fatal(err)
	}
	if l, err := st.UseDeskLogin(ctx, h, now.Add(time.Minute)); err != nil || l.Staff != "telegram:1" {
		t.Fatalf("first use: %+v %v", l, err)
	}
	if _, err := st.UseDeskLogin(ctx, h, now.Add(2*time.Minute)); !errors.Is(err, store.ErrLoginUsed) {
		t.Fatalf("second use: %v", err)
	}
	if _, err := st.UseDeskLogin(ctx, []byte("other"), now); !errors.Is(err, store.ErrLoginUnknown) {
		t.Fatalf("unknown: %v", err)
	}
}

// TestStatesVersionMovesWithEveryStateChange: the desk keeps its lists
// while StatesVersion stands still, so it must move with every write and
// erasure of a state, and not with writes that leave states alone.
func TestStatesVersionMovesWithEveryStateChange(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)
	version := func() uint64 {
		t.Helper()
		v, err := st.StatesVersion()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	apply := func(p engine.PatientID, res engine.Result) {
		t.Helper()
		if _, err := st.Apply(ctx, store.Step{Patient: p, Now: now}, func(store.Input) (engine.Result, error) { return res, nil }); err != nil {
			t.Fatal(err)
		}
	}
	v0 := version()
	apply("telegram:1", engine.Result{State: engine.State{Patient: "telegram:1"}})
	v1 := version()
	if v1 == v0 {
		t.Fatal("a new state did not move the version")
	}
	if err := st.AppendAudit(ctx, engine.Audit{At: now, Actor: "Ana", Action: "desk_inbox_viewed"}); err != nil {
		t.Fatal(err)
	}
	if version() != v1 {
		t.Error("an audit line moved the states version")
	}
	apply("telegram:1", engine.Result{State: engine.State{Patient: "telegram:1", Handled: 2}})
	v2 := version()
	if v2 == v1 {
		t.Fatal("a changed state did not move the version")
	}
	apply("telegram:1", engine.Result{Erase: true})
	if version() == v2 {
		t.Fatal("an erasure did not move the version")
	}
}
