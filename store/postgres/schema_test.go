package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

func openSchema(t *testing.T, dsn, schema string, maxConns int32) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Schema: schema, MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func count(t *testing.T, dsn, sql string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSchemaPerStore: stores opened on one database with different schemas
// share nothing: each schema is created and migrated on open, and what one
// store writes (a patient's step and its queued message, a desk session)
// the others never read, the default schema included.
func TestSchemaPerStore(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := openSchema(t, dsn, "clinic_a", 2)
	b := openSchema(t, dsn, "clinic_b", 2)
	pub := open(t, dsn, "public-instance")
	ctx := context.Background()
	queue(t, a, "telegram:4242", 1)
	if err := a.PutDeskSession(ctx, []byte("h"), storage.DeskSession{Staff: "telegram:7", Created: t0, Seen: t0}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		s       *postgres.Store
		patient bool
	}{{"a", a, true}, {"b", b, false}, {"public", pub, false}} {
		_, err := tc.s.PatientRecord("telegram:4242")
		if got := err == nil; got != tc.patient {
			t.Errorf("%s: patient found %v (err %v), want %v", tc.name, got, err, tc.patient)
		}
		n, err := tc.s.OutboxDepth()
		if err != nil || (n == 1) != tc.patient {
			t.Errorf("%s: outbox depth %d %v", tc.name, n, err)
		}
		_, err = tc.s.DeskSession(ctx, []byte("h"))
		if got := err == nil; got != tc.patient {
			t.Errorf("%s: desk session found %v (err %v)", tc.name, got, err)
		}
		if !tc.patient && !errors.Is(err, storage.ErrSessionUnknown) {
			t.Errorf("%s: desk session error %v, want ErrSessionUnknown", tc.name, err)
		}
	}
	for _, schema := range []string{"clinic_a", "clinic_b", "public"} {
		if n := count(t, dsn, `SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('patients', 'outbox', 'leases', 'aftercare_schema')`, schema); n != 4 {
			t.Errorf("schema %s has %d of the 4 tables checked", schema, n)
		}
	}
	// Opening again finds the schema migrated and changes nothing.
	again := openSchema(t, dsn, "clinic_a", 2)
	if _, err := again.PatientRecord("telegram:4242"); err != nil {
		t.Fatalf("reopened schema lost its patient: %v", err)
	}
	if n := count(t, dsn, `SELECT count(*) FROM clinic_a.aftercare_schema`); n != postgres.SchemaVersion {
		t.Fatalf("clinic_a migrated %d times, want %d versions", n, postgres.SchemaVersion)
	}
	for _, bad := range []string{"Clinic", "clinic-a", "a;drop", ""} {
		if bad == "" {
			continue
		}
		if _, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Schema: bad}); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("schema %q: %v", bad, err)
		}
	}
}

// TestSchemaPoolsStaySmall measures the connections many per-clinic
// stores hold: each opens as it needs, up to MaxConns, so 40 clinics that
// each commit one step hold about one connection each, not pgx's default
// of four or more.
func TestSchemaPoolsStaySmall(t *testing.T) {
	dsn := pgtest.DSN(t)
	const clinics = 40
	before := count(t, dsn, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()`)
	for i := range clinics {
		s := openSchema(t, dsn, fmt.Sprintf("clinic_%d", i), 2)
		queue(t, s, engine.PatientID(fmt.Sprintf("telegram:%d", i)), 1)
	}
	held := count(t, dsn, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()`) - before - 1
	t.Logf("%d clinic stores hold %d connections", clinics, held)
	if held > 2*clinics {
		t.Fatalf("%d clinic stores hold %d connections; want at most %d", clinics, held, 2*clinics)
	}
}
