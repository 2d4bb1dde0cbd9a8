package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// TestGroupCommit checks the committer: concurrent steps share commits,
// every one is applied, a failing or panicking step gets its own error
// without taking the others down, and writes after Close are refused.
func TestGroupCommit(t *testing.T) {
	tests := []struct {
		name     string
		maxBatch int
		grouped  bool // expect fewer commits than writes
	}{
		{"group commit", 0, true},
		{"one transaction per write", 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{MaxBatchSize: tc.maxBatch})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			const n = 200
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := engine.PatientID(fmt.Sprintf("console:%d", i))
					_, errs[i] = s.Apply(ctx, step(id, fmt.Sprintf("k%d", i)), func(in store.Input) (engine.Result, error) {
						switch i {
						case 7:
							return engine.Result{}, errors.New("step 7 fails")
						case 11:
							panic("step 11 panics")
						}
						st := in.State
						st.Patient = id
						return result(st, 1), nil
					})
				}()
			}
			wg.Wait()
			for i, err := range errs {
				switch i {
				case 7:
					if err == nil || !strings.Contains(err.Error(), "step 7 fails") {
						t.Errorf("step 7: err = %v, want its own error", err)
					}
				case 11:
					if err == nil || !strings.Contains(err.Error(), "panic") {
						t.Errorf("step 11: err = %v, want the panic as an error", err)
					}
				default:
					if err != nil {
						t.Errorf("step %d: %v (a failing neighbour must not fail it)", i, err)
					}
				}
			}
			for i := range n {
				st, found, err := s.State(engine.PatientID(fmt.Sprintf("console:%d", i)))
				if err != nil {
					t.Fatal(err)
				}
				if want := i != 7 && i != 11; found != want || (want && st.Handled != 1) {
					t.Errorf("patient %d: found=%v handled=%d, want found=%v handled=1", i, found, st.Handled, want)
				}
			}
			out, err := s.OutboxAll(1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != n-2 {
				t.Errorf("outbox holds %d messages, want %d", len(out), n-2)
			}
			seen := map[uint64]bool{}
			for _, m := range out {
				if m.ID == 0 || seen[m.ID] {
					t.Errorf("outbox ID %d missing or repeated", m.ID)
				}
				seen[m.ID] = true
			}
			cs := s.CommitStats()
			if cs.Writes < n {
				t.Errorf("CommitStats counts %d writes, want at least %d", cs.Writes, n)
			}
			if tc.grouped && cs.Commits >= cs.Writes {
				t.Errorf("%d commits for %d concurrent writes: nothing was grouped", cs.Commits, cs.Writes)
			}
			if !tc.grouped && cs.Commits != cs.Writes {
				t.Errorf("%d commits for %d writes, want one each", cs.Commits, cs.Writes)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = s.Apply(ctx, step("console:late", ""), func(in store.Input) (engine.Result, error) {
				return result(engine.State{Patient: "console:late"}, 0), nil
			})
			if !errors.Is(err, store.ErrClosed) {
				t.Errorf("Apply after Close: err = %v, want ErrClosed", err)
			}
		})
	}
}
