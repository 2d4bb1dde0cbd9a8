package storetest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/desk"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
	"github.com/aftercare-clinic/aftercare/store/storetest"
)

// Both backends implement the service's store, and each small interface
// a part of the service declares, unchanged.
var (
	_ service.Store           = (*store.Store)(nil)
	_ service.Store           = (*postgres.Store)(nil)
	_ service.StepStore       = (*postgres.Store)(nil)
	_ service.TimerStore      = (*postgres.Store)(nil)
	_ service.OutboxStore     = (*postgres.Store)(nil)
	_ service.EscalationStore = (*postgres.Store)(nil)
	_ service.RetentionStore  = (*postgres.Store)(nil)
	_ service.StaffStore      = (*postgres.Store)(nil)
	_ service.InviteStore     = (*postgres.Store)(nil)
	_ service.RecordReader    = (*postgres.Store)(nil)
	_ desk.SessionStore       = (*store.Store)(nil)
	_ desk.SessionStore       = (*postgres.Store)(nil)
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestConformance runs the one suite over every backend. PostgreSQL runs
// on a throwaway server (pgtest); without its binaries the test fails,
// naming the package to install.
func TestConformance(t *testing.T) {
	backends := []storetest.Backend{
		{Name: "bbolt", Instances: func(t *testing.T, n int) []storetest.Store {
			s, err := store.Open(filepath.Join(t.TempDir(), "a.db"), store.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			out := make([]storetest.Store, n)
			for i := range out {
				out[i] = s // bbolt: one holder per file
			}
			return out
		}},
		{Name: "postgres", Instances: func(t *testing.T, n int) []storetest.Store {
			dsn := pgtest.DSN(t)
			out := make([]storetest.Store, n)
			for i := range out {
				s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				out[i] = s
			}
			return out
		}},
	}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { storetest.Run(t, b) })
	}
}
