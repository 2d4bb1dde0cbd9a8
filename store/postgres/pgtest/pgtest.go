// Package pgtest runs a throwaway PostgreSQL server for tests, from the
// binaries of Debian's postgresql package: initdb into a temporary
// directory, a server listening only on a unix socket in that directory,
// a fresh database per test, and the server stopped at the end.
//
// Tests that need PostgreSQL fail (never skip) when the binaries are
// missing: CI installs the package (.ci/run), and a skipped test would
// hide that the PostgreSQL store went untested.
//
// PostgreSQL refuses to run as root. When the tests run as root, the
// server runs as the user "nobody" (through runuser), owning its data
// directory.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Package is the Debian package that provides the server binaries.
const Package = "postgresql"

// Server is a running throwaway PostgreSQL server.
type Server struct {
	dir   string // socket directory; the data directory is dir/data
	bin   string
	runAs string // "" or the user to run the server as
	n     atomic.Int64
}

// Start initialises a database cluster in a new temporary directory and
// starts a server on a unix socket there. pg_ctl -w waits until the server
// accepts connections, so no test guesses how long start-up takes. The
// server does not sync to disk (fsync, synchronous_commit and
// full_page_writes off): right for tests, wrong for measuring.
func Start() (*Server, error) { return start(false) }

// StartDurable is Start with PostgreSQL's durable defaults (fsync,
// synchronous_commit and full_page_writes on), so a commit returns only
// once its WAL is on disk: what a load measurement must run on.
func StartDurable() (*Server, error) { return start(true) }

func start(durable bool) (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "aftercare-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL refuses root: no user nobody to run it as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.runAs = "nobody"
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories='%s' -c max_connections=200", dir)
	if !durable {
		opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	if out, err := s.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "120", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return s, nil
}

// findBin returns the bin directory of the newest installed PostgreSQL.
func findBin() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("pgtest: PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): install Debian's %q package (apt-get install -y %s); .ci/run installs it", Package, Package)
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	return filepath.Dir(found[0]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	prog := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.runAs, "--", prog}, args...)...)
	} else {
		cmd = exec.Command(prog, args...)
	}
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

// Stop stops the server at once and removes its directory.
func (s *Server) Stop() error {
	out, err := s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
	os.RemoveAll(s.dir)
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// DSN returns the connection string of database db on the server.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s user=postgres dbname=%s sslmode=disable", s.dir, db)
}

// NewDatabase creates an empty database and returns its connection string.
func (s *Server) NewDatabase() (string, error) {
	name := "t" + strconv.FormatInt(s.n.Add(1), 10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.DSN(name), nil
}

// Shared is the server a test binary's TestMain started with Main.
var shared struct {
	srv *Server
	err error
}

// Main starts a server, runs the tests and stops it; call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// When the server cannot start, the tests still run, and every test that
// asks for a database (DSN) fails with the reason.
func Main(m *testing.M) int {
	shared.srv, shared.err = Start()
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// DSN returns the connection string of a new, empty database on the
// server Main started, failing t when there is none.
func DSN(t testing.TB) string {
	t.Helper()
	if shared.srv == nil {
		err := shared.err
		if err == nil {
			err = errors.New("pgtest: no server: call pgtest.Main from TestMain")
		}
		t.Fatal(err)
	}
	dsn, err := shared.srv.NewDatabase()
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return dsn
}
