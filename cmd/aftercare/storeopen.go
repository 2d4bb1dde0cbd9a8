package main

import (
	"context"
	"os"

	"aftercare/engine"
	"aftercare/service"
	"aftercare/store"
	"aftercare/store/postgres"
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
		st, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
		if err != nil {
			return nil, nil, err
		}
		return st, nil, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, &ConfigError{File: cfgPath, Key: "data_dir", Msg: err.Error()}
	}
	st, err := store.Open(dbPath(cfg), store.Options{})
	if err != nil {
		return nil, nil, err
	}
	return st, st, nil
}
