package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// # Migrations
//
// The schema is a list of embedded SQL files, migrations/NNNN_name.sql,
// applied in order on Open inside one transaction that first takes a
// transaction-level advisory lock, so instances starting together apply
// each file once and none sees a half-migrated schema. The applied
// versions are rows of aftercare_schema.
//
// Why not a migration library: golang-migrate brings a driver registry and
// many dependencies for what is here forty lines, and tern's migrate
// package brings template libraries; neither gives more than this for a
// forward-only list of files. A file once released is never edited, only
// followed by a new one.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key held while migrating ("aftercare"
// as a number, so other applications sharing the server are unlikely to
// use it).
const migrationLock int64 = 0x61667465726361

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version and '_'", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must run 1, 2, 3... without gaps", m.name)
		}
	}
	return out, nil
}

// SchemaVersion is the newest schema version this program knows.
var SchemaVersion = func() int {
	ms, err := migrations()
	if err != nil {
		panic(err) // the embedded files are part of the binary: a test catches this
	}
	return len(ms)
}()

// migrate brings the schema up to SchemaVersion, or fails with ErrSchema
// when the database was migrated by a newer program. A named schema is
// created first, under the same lock, so instances starting together do
// not race to create it; db's connections must have it as search_path.
func migrate(ctx context.Context, db beginner, schema string) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if schema != "" {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
				return fmt.Errorf("create schema %s: %w", schema, err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS aftercare_schema (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM aftercare_schema`).Scan(&have); err != nil {
			return err
		}
		if have > len(ms) {
			return fmt.Errorf("%w: the database has schema version %d, this program knows up to %d (upgrade aftercare, or point %s at another database)", ErrSchema, have, len(ms), DSNEnv)
		}
		for _, m := range ms[have:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO aftercare_schema (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

// ErrSchema means the database was migrated by a newer Aftercare.
var ErrSchema = errors.New("database schema is newer than this program")

// beginner starts transactions (a pool or a connection).
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}
