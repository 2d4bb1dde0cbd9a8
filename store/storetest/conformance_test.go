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
		}, Deadlocks: func(insts []storetest.Store) uint64 {
			var n uint64
			for _, s := range insts {
				n += s.(*postgres.Store).GroupStats().Retries
			}
			return n
		}},
	}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { storetest.Run(t, b) })
	}
}

// BenchmarkDeskSession measures what admitting a desk request costs each
// backend (read: every request) and what writing the last-seen time costs
// (touch: at most once a minute per session, so rarely paid), with fsync
// on for bbolt, as in production.
func BenchmarkDeskSession(b *testing.B) {
	ctx := context.Background()
	hash := []byte("0123456789abcdef0123456789abcdef")
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for _, be := range []struct {
		name string
		open func(b *testing.B) desk.SessionStore
	}{
		{"bbolt", func(b *testing.B) desk.SessionStore {
			s, err := store.Open(filepath.Join(b.TempDir(), "a.db"), store.Options{Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) desk.SessionStore {
			s, err := postgres.Open(ctx, postgres.Options{DSN: pgtest.DSN(b)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			if err := s.PutDeskSession(ctx, hash, store.DeskSession{Staff: "telegram:1", Name: "Ana", CSRF: "c", Created: t0, Seen: t0}); err != nil {
				b.Fatal(err)
			}
			b.Run("read", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.DeskSession(ctx, hash); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("touch", func(b *testing.B) {
				seen := t0
				for b.Loop() {
					seen = seen.Add(time.Minute)
					if err := s.TouchDeskSession(ctx, hash, seen); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
