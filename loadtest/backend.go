package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
)

// DB is what a pipeline needs of its store, whichever the backend: the
// service's store, and the reads that verify a run.
type DB interface {
	service.Store
	OutboxAll(limit int) ([]engine.Outbound, error)
	Close() error
}

var (
	_ DB = (*store.Store)(nil)
	_ DB = (*postgres.Store)(nil)
)

// OpenFunc opens one instance's store.
type OpenFunc func(ctx context.Context) (DB, error)

// Backend is a store other than the default bbolt file: each scenario run
// on it gets a fresh, empty database, and any number of instances may open
// it (see Instances). Create one with PostgresBackend; Close it at the end.
type Backend struct {
	// Name names the backend in results ("postgres").
	Name string
	// DSN is the server's connection string (the administrative database
	// that scenario databases are created from).
	DSN string
	// PoolSize is each instance's connection pool size.
	PoolSize int

	srv *pgtest.Server // the throwaway server, when the backend started one
	n   atomic.Int64
	dbs []string
}

// PostgresBackend returns a PostgreSQL backend. With dsn set
// (AFTERCARE_POSTGRES_DSN), scenarios create databases on that server,
// named aftercare_load_N (the role needs CREATEDB), and drop them at
// Close. Without it, it starts a throwaway server from Debian's postgresql
// binaries as pgtest does, but durable (fsync and synchronous commit on),
// on a unix socket only, and removes it at Close.
func PostgresBackend(dsn string) (*Backend, error) {
	b := &Backend{Name: "postgres", DSN: dsn, PoolSize: 64}
	if dsn == "" {
		srv, err := pgtest.StartDurable()
		if err != nil {
			return nil, err
		}
		b.srv, b.DSN = srv, srv.DSN("postgres")
	}
	return b, nil
}

// Close drops the scenario databases and stops the throwaway server.
func (b *Backend) Close() error {
	if b.srv != nil {
		return b.srv.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var errs []error
	for _, db := range b.dbs {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NewDatabase creates an empty database and returns its connection
// string.
func (b *Backend) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("aftercare_load_%d_%d", os.Getpid(), b.n.Add(1))
	conn, err := pgx.Connect(ctx, b.DSN)
	if err != nil {
		return "", fmt.Errorf("loadtest: connect to %s: %w", postgres.DSNEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("loadtest: create a scenario database (the role needs CREATEDB): %w", err)
	}
	b.dbs = append(b.dbs, name)
	return withParam(b.DSN, "dbname", name), nil
}

// withParam sets one connection parameter of a DSN, URL or key=value form.
func withParam(dsn, key, value string) string {
	if strings.Contains(dsn, "://") {
		if key == "dbname" {
			// postgres://user@host:port/db?query: replace the path.
			scheme, rest, _ := strings.Cut(dsn, "://")
			hostPart, query, hasQuery := strings.Cut(rest, "?")
			if i := strings.Index(hostPart, "/"); i >= 0 {
				hostPart = hostPart[:i]
			}
			dsn = scheme + "://" + hostPart + "/" + value
			if hasQuery {
				dsn += "?" + query
			}
			return dsn
		}
		if strings.Contains(dsn, "?") {
			return dsn + "&" + key + "=" + value
		}
		return dsn + "?" + key + "=" + value
	}
	return dsn + " " + key + "=" + value
}

// Instances creates one new database and returns a function that opens
// an instance's store on it: each call a new instance with its own
// connection pool and claim name, as another process would be.
func (b *Backend) Instances(ctx context.Context) (OpenFunc, error) {
	dsn, err := b.NewDatabase(ctx)
	if err != nil {
		return nil, err
	}
	dsn = withParam(dsn, "pool_max_conns", fmt.Sprint(b.PoolSize))
	n := atomic.Int64{}
	return func(ctx context.Context) (DB, error) {
		return postgres.Open(ctx, postgres.Options{DSN: dsn, Instance: fmt.Sprintf("load-%d", n.Add(1))})
	}, nil
}

// open returns the OpenFunc for a scenario's single instance on a fresh
// database: nil on a nil Backend, so Start opens the bbolt file. A
// database that cannot be created fails at the first open.
func (b *Backend) open() OpenFunc {
	if b == nil {
		return nil
	}
	var open OpenFunc
	return func(ctx context.Context) (DB, error) {
		if open == nil {
			var err error
			if open, err = b.Instances(ctx); err != nil {
				return nil, err
			}
		}
		return open(ctx)
	}
}

// commitStats returns the bbolt committer's figures, zero on another store.
func commitStats(p *Pipeline) store.CommitStats {
	if p.Store == nil {
		return store.CommitStats{}
	}
	return p.Store.CommitStats()
}
