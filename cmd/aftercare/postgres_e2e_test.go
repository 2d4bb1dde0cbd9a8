package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestPostgresBackendRunsTheConsole runs the program with "store":
// {"backend": "postgres"}: a red flag typed on the console is escalated and
// alerted, and the escalation is in PostgreSQL, not in a bbolt file.
func TestPostgresBackendRunsTheConsole(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"store": {"backend": "postgres"}}`), 0o600)
	dsn := pgtest.DSN(t)
	env := map[string]string{EnvDataDir: dir, EnvPostgresDSN: dsn}
	out, _, err := runMain(t, "hi\nI fainted\n", env, "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "STAFF ALERT EMERGENCY") {
		t.Fatalf("no alert on the console:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "aftercare.db")); !os.IsNotExist(err) {
		t.Fatalf("a bbolt file was created with the postgres backend: %v", err)
	}
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if es, err := st.Escalations(); err != nil || len(es) != 1 {
		t.Fatalf("escalations in PostgreSQL: %v %v", es, err)
	}
}

// TestPostgresBackendErrorsNameTheSetting checks that a missing or
// unreachable connection string stops start-up with an error naming
// AFTERCARE_POSTGRES_DSN.
func TestPostgresBackendErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"store": {"backend": "postgres"}}`), 0o600)
	for _, dsn := range []string{"", "host=" + filepath.Join(dir, "nowhere") + " user=x dbname=x sslmode=disable"} {
		_, _, err := runMain(t, "", map[string]string{EnvDataDir: dir, EnvPostgresDSN: dsn}, "--config", cfg)
		if err == nil || !strings.Contains(err.Error(), EnvPostgresDSN) {
			t.Errorf("DSN %q: err %v, want it to name %s", dsn, err, EnvPostgresDSN)
		}
	}
	os.WriteFile(cfg, []byte(`{"store": {"backend": "mysql"}}`), 0o600)
	if _, _, err := runMain(t, "", map[string]string{EnvDataDir: dir}, "--config", cfg); err == nil || !strings.Contains(err.Error(), "store.backend") {
		t.Errorf("unknown backend: %v, want it to name store.backend", err)
	}
}

// TestMigrateCopiesTheBboltDatabase runs the console on bbolt, then
// `aftercare migrate` twice (idempotent), then the console on PostgreSQL:
// the escalation made on bbolt is there.
func TestMigrateCopiesTheBboltDatabase(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{EnvDataDir: dir}
	if _, _, err := runMain(t, "hi\nI fainted\n", env); err != nil {
		t.Fatal(err)
	}
	env[EnvPostgresDSN] = pgtest.DSN(t)
	for i := 0; i < 2; i++ {
		out, _, err := runMain(t, "", env, "migrate")
		if err != nil || !strings.Contains(out, "every count matches") || !strings.Contains(out, "escalations  bbolt 1  postgres 1") {
			t.Fatalf("migrate run %d: %v\n%s", i, err, out)
		}
	}
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: env[EnvPostgresDSN]})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if es, _ := st.Escalations(); len(es) != 1 {
		t.Fatalf("escalations after migrate: %v", es)
	}
}
