package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// TestMigration3TypesTimerOwners builds a database at schema 2 (the first
// two migration files, as a release with them left it), with a patient's
// check-in and an escalation's ladder rung filed as schema 2 filed it (the
// pseudo patient "escalation:<id>"). Open migrates it: the rung comes back
// as escalation 3's own timer and steps once; the check-in stays the
// patient's.
func TestMigration3TypesTimerOwners(t *testing.T) {
	dsn := pgtest.DSN(t)
	exec(t, dsn, `CREATE TABLE aftercare_schema (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`)
	for i, name := range []string{"0001_init.sql", "0002_desk.sql"} {
		b, err := os.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		exec(t, dsn, string(b))
		exec(t, dsn, `INSERT INTO aftercare_schema (version, name) VALUES ($1, $2)`, i+1, name)
	}
	exec(t, dsn, `INSERT INTO patients (id, state) VALUES ('telegram:1', '{"patient":"telegram:1"}')`)
	exec(t, dsn, `INSERT INTO escalations (id, patient, body) VALUES (3, 'telegram:1', $1)`,
		[]byte(`{"id":3,"patient":"telegram:1","level":"urgent","status":"open"}`))
	exec(t, dsn, `INSERT INTO timers (owner, key, due_ns) VALUES ('telegram:1', 'checkin:24', $1), ('escalation:3', 'ladder:1', $2)`,
		t0.Add(24*time.Hour).UnixNano(), t0.Add(10*time.Minute).UnixNano())

	s := open(t, dsn, "a")
	due, err := s.DueBefore(t0.Add(48*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range due {
		got = append(got, fmt.Sprintf("%s %s %s", d.Kind, d.Owner, d.Key))
	}
	if want := "escalation escalation 3 ladder:1; patient telegram:1 checkin:24"; strings.Join(got, "; ") != want {
		t.Fatalf("due after migration: %s\nwant %s", strings.Join(got, "; "), want)
	}
	ctx := context.Background()
	d := due[0]
	step := func() (bool, error) {
		return s.ApplyEscalation(ctx, 3, &d, t0, func(*engine.Escalation) (storage.EscalationUpdate, error) {
			return storage.EscalationUpdate{}, nil
		})
	}
	if ok, err := step(); !ok || err != nil {
		t.Fatalf("migrated rung: %v %v", ok, err)
	}
	if ok, err := step(); ok || err != nil {
		t.Fatalf("migrated rung stepped twice: %v %v", ok, err)
	}
	if tm, _ := s.Timers("telegram:1"); len(tm) != 1 {
		t.Fatalf("patient timers after migration: %v", tm)
	}
}
