package postgres_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// TestImportCopiesBboltAndIsIdempotent copies a bbolt database with every
// kind of record, twice: the counts match after each run, the second adds
// nothing, and the copy works on (a ladder step fires, new IDs continue
// after the copied ones). A database holding other data is refused.
func TestImportCopiesBboltAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	src, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := engine.PatientID("telegram:1")
	src.PutInvite(engine.Invite{Token: "tok", Created: t0, Expires: t0.Add(time.Hour)})
	ladder := func(engine.Escalation, []engine.Outbound) []engine.Timer {
		return []engine.Timer{{Key: "ladder:1", At: t0.Add(10 * time.Minute)}}
	}
	if _, err := src.Apply(ctx, storage.Step{Patient: p, Dedupe: "u1", Invite: "tok", Now: t0, OnEscalation: ladder}, func(in storage.Input) (engine.Result, error) {
		st := in.State
		st.Patient = p
		st.Visit = &engine.Visit{At: t0, Treatment: engine.Acupuncture}
		return engine.Result{State: st, InviteUsed: true,
			Timers:        []engine.Timer{{Key: "checkin:24", At: t0.Add(24 * time.Hour)}},
			Escalation:    &engine.Escalation{Patient: p, Level: engine.Urgent, Status: "open"},
			Messages:      []engine.Outbound{{To: p, Kind: engine.KindReply, Text: "hi"}, {To: engine.StaffAddress, Channel: "telegram:-1", Kind: engine.KindAlert, Patient: p, Text: "alert"}},
			Audit:         []engine.Audit{{At: t0, Actor: "clinic", Action: "visit_recorded", Patient: p}},
			VisitRecorded: true,
		}, nil
	}); err != nil {
		t.Fatal(err)
	}
	src.SetReadMarks(map[engine.PatientID]string{p: "m"})
	sess := storage.DeskSession{Staff: "telegram:9", Name: "Ana", CSRF: "c", Created: t0, Seen: t0.Add(time.Minute)}
	if err := src.PutDeskSession(ctx, []byte("session-hash"), sess); err != nil {
		t.Fatal(err)
	}

	dst := open(t, pgtest.DSN(t), "a")
	for run := 0; run < 2; run++ {
		rep, err := dst.Import(ctx, src)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for _, kind := range []string{"states", "timers", "outbox", "escalations", "visits", "audit", "dedupe", "invites", "read_marks", "desk_sessions"} {
			if rep.Source[kind] == 0 || rep.Target[kind] != rep.Source[kind] {
				t.Fatalf("run %d: %s: bbolt %d, postgres %d\n%s", run, kind, rep.Source[kind], rep.Target[kind], rep)
			}
		}
	}
	// bbolt keeps states in binary, PostgreSQL in JSON: the copy holds the
	// same state, re-encoded.
	want, _, _ := src.StateRaw(p)
	if got, raw, _ := dst.StateRaw(p); !reflect.DeepEqual(got, want) || !json.Valid(raw) {
		t.Fatalf("state changed in the copy: %+v (%q), want %+v", got, raw, want)
	}
	// Staff signed in on the desk stay signed in.
	if got, err := dst.DeskSession(ctx, []byte("session-hash")); err != nil || got.Staff != sess.Staff || !got.Seen.Equal(sess.Seen) {
		t.Fatalf("desk session after the copy: %+v %v", got, err)
	}
	// The ladder of the copied escalation steps once.
	due, _ := dst.DueBefore(t0.Add(time.Hour), 10)
	if len(due) != 1 || due[0].Owner != storage.EscalationOwner(1) || due[0].Key != "ladder:1" {
		t.Fatalf("due %+v", due)
	}
	if ok, err := dst.ApplyEscalation(ctx, 1, &due[0], t0, func(e *engine.Escalation) (storage.EscalationUpdate, error) {
		return storage.EscalationUpdate{StopLadder: true}, nil
	}); !ok || err != nil {
		t.Fatalf("ladder step on the copy: %v %v", ok, err)
	}
	// Dedupe keys came along; new rows number after the copied ones.
	if ok, _ := dst.Apply(ctx, storage.Step{Patient: p, Dedupe: "u1", Now: t0}, func(in storage.Input) (engine.Result, error) {
		return engine.Result{State: in.State}, nil
	}); ok {
		t.Fatal("an update applied in bbolt applied again after the copy")
	}
	dst.Enqueue(engine.Outbound{To: p, Kind: engine.KindReply, Text: "new"})
	out, _ := dst.OutboxAll(10)
	if len(out) != 3 || out[2].ID <= out[1].ID {
		t.Fatalf("outbox after the copy %+v", out)
	}
	// Now the database holds more than the bbolt file: the copy is refused.
	if _, err := dst.Import(ctx, src); err == nil || !strings.Contains(err.Error(), "outbox") {
		t.Fatalf("import into a database with other data: %v", err)
	}
}

// TestImportVerifiesChecksums: after a copy every kind's checksum matches
// the bbolt file's; a row changed since (same counts, other bytes) makes
// the next run fail, naming the kind and committing nothing; undone, the
// copy verifies again.
func TestImportVerifiesChecksums(t *testing.T) {
	ctx := context.Background()
	src, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, p := range []engine.PatientID{"telegram:1", "telegram:2"} {
		if _, err := src.Apply(ctx, storage.Step{Patient: p, Dedupe: "u-" + string(p), Now: t0}, func(in storage.Input) (engine.Result, error) {
			return engine.Result{State: engine.State{Patient: p, LastActive: t0},
				Timers:   []engine.Timer{{Key: "checkin:24", At: t0.Add(24 * time.Hour)}},
				Messages: []engine.Outbound{{To: p, Kind: engine.KindReply, Text: "hi"}},
				Audit:    []engine.Audit{{At: t0, Actor: "system", Action: "test", Patient: p}},
			}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	dsn := pgtest.DSN(t)
	dst := open(t, dsn, "a")
	rep, err := dst.Import(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"states", "timers", "outbox", "audit", "dedupe", "transcript"} {
		if rep.SourceSum[kind] == "" || rep.SourceSum[kind] != rep.TargetSum[kind] || rep.SourceSum[kind] == (rep.SourceSum["invites"]) {
			t.Fatalf("%s: checksum bbolt %q postgres %q (empty kinds: %q)", kind, rep.SourceSum[kind], rep.TargetSum[kind], rep.SourceSum["invites"])
		}
	}
	if !strings.Contains(rep.String(), "checksum "+rep.SourceSum["states"]) {
		t.Fatalf("report without checksums:\n%s", rep)
	}
	tests := []struct {
		name, kind, tamper, undo string
	}{
		{"a state's bytes changed", "states",
			`UPDATE patients SET state = convert_to('{"patient":"telegram:1"}', 'UTF8') WHERE id = 'telegram:1'`, ""},
		{"a timer moved", "timers",
			`UPDATE timers SET due_ns = due_ns + 1 WHERE owner = 'telegram:2'`, `UPDATE timers SET due_ns = due_ns - 1 WHERE owner = 'telegram:2'`},
		{"an audit line's bytes changed", "audit",
			`UPDATE audit SET body = body || ' '::bytea WHERE id = 1`, `UPDATE audit SET body = substring(body from 1 for length(body) - 1) WHERE id = 1`},
	}
	for _, tc := range tests {
		exec(t, dsn, tc.tamper)
		rep, err := dst.Import(ctx, src)
		if err == nil || !strings.Contains(err.Error(), tc.kind+" has the same number of records") {
			t.Fatalf("%s: import after tampering: %v\n%s", tc.name, err, rep)
		}
		if tc.undo == "" {
			// Put the copied bytes back: the next case starts verified.
			// Walk hands the copy a binary state as JSON (the state
			// decoded and encoded again), so that is what goes back.
			st, _, _ := src.StateRaw("telegram:1")
			raw, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			exec(t, dsn, `UPDATE patients SET state = $1 WHERE id = 'telegram:1'`, raw)
		} else {
			exec(t, dsn, tc.undo)
		}
		if _, err := dst.Import(ctx, src); err != nil {
			t.Fatalf("%s: import after undoing: %v", tc.name, err)
		}
	}
}
