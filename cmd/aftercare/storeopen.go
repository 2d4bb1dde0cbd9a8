package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/postgres"
)

// EnvPostgresDSN holds the PostgreSQL connection string when
// "store": {"backend": "postgres"} (a secret: never in the file).
const EnvPostgresDSN = postgres.DSNEnv

// appStore is what the running program needs of its store, whichever the
// backend: the service's store, the gauges /metrics shows, Discord's read
// marks and Close.
type appStore interface {
	service.Store
	OutboxDepth() (int, error)
	PatientIDs(platform string) ([]engine.PatientID, error)
	ReadMarks(platform string) (map[engine.PatientID]string, error)
	SetReadMarks(marks map[engine.PatientID]string) error
	Close() error
}

var (
	_ appStore = (*store.Store)(nil)
	_ appStore = (*postgres.Store)(nil)
)

// openStore opens the configured store. With bbolt it also returns the
// *store.Store itself (backups, check), nil with PostgreSQL.
func (m *Main) openStore(ctx context.Context, cfg Config, cfgPath string) (appStore, *store.Store, error) {
	if cfg.Store.Backend == "postgres" {
		dsn := m.Getenv(EnvPostgresDSN)
		if dsn == "" {
			return nil, nil, &ConfigError{File: cfgPath, Key: "store.backend", Msg: "\"postgres\" needs the connection string in " + EnvPostgresDSN + ", e.g. postgres://aftercare@db.internal/aftercare"}
		}
		st, err := postgres.Open(ctx, pgOptions(cfg, dsn))
		if err != nil {
			return nil, nil, err
		}
		return st, nil, nil
	}
	if err := os.MkdirAll(clinicDir(cfg), 0o700); err != nil {
		return nil, nil, &ConfigError{File: cfgPath, Key: "data_dir", Msg: err.Error()}
	}
	st, err := store.Open(dbPath(cfg), store.Options{})
	if err != nil {
		return nil, nil, err
	}
	return st, st, nil
}

// pgSchema is a clinic's PostgreSQL schema: the server's default for
// "default" (where a one-clinic deployment's tables always were), else
// clinic_<id> with '-' as '_' (ids have no '_', so no two clinics meet).
func pgSchema(cfg Config) string {
	if cfg.ClinicID == "" || cfg.ClinicID == DefaultClinicID {
		return ""
	}
	return "clinic_" + strings.ReplaceAll(cfg.ClinicID, "-", "_")
}

// perClinicConns caps each listed clinic's pool: connections open when
// the clinic needs them and close after a minute idle (see the README's
// "Several clinics" for the counts).
const perClinicConns = 4

// pgOptions opens a clinic's store in its own schema.
func pgOptions(cfg Config, dsn string) postgres.Options {
	o := postgres.Options{DSN: dsn, Lease: time.Duration(cfg.Store.ClaimLease), Schema: pgSchema(cfg)}
	if cfg.listed {
		o.MaxConns = perClinicConns
	}
	return o
}

// openLeaseTable opens the deployment-wide lease table of a PostgreSQL
// deployment of several clinics: the server's default schema, which every
// instance shares whatever its clinics.
func (m *Main) openLeaseTable(ctx context.Context) (*postgres.Store, error) {
	return postgres.Open(ctx, postgres.Options{DSN: m.Getenv(EnvPostgresDSN), MaxConns: 2})
}

// migrate copies the bbolt database of data_dir into the PostgreSQL
// database named by EnvPostgresDSN (see postgres.Store.Import) and prints
// the counts it verified. The bot must be stopped: the bbolt file's lock
// makes sure nothing changes during the copy.
func (m *Main) migrate(ctx context.Context, args []string) error {
	fs, cfgPath, err := m.flags("migrate", args, 0)
	if err != nil {
		return err
	}
	cfg, err := m.loadClinic(fs, *cfgPath)
	if err != nil {
		return err
	}
	dsn := m.Getenv(EnvPostgresDSN)
	if dsn == "" {
		return &ConfigError{File: *cfgPath, Key: "store", Msg: "migrate copies into PostgreSQL: set " + EnvPostgresDSN + " to its connection string"}
	}
	src, err := store.Open(dbPath(cfg), store.Options{Timeout: 300 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("migrate: %w: stop the bot before copying its database", err)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, pgOptions(cfg, dsn))
	if err != nil {
		return err
	}
	defer dst.Close()
	rep, err := dst.Import(ctx, src)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "copied %s into PostgreSQL; every count matches and every checksum matches:\n%s", dbPath(cfg), rep)
	fmt.Fprintln(m.Stdout, `next: set "store": {"backend": "postgres"} in the config and start the bot`)
	return nil
}
