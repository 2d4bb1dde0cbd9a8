package handoff_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aftercare-clinic/aftercare/store/handoff"
)

var errClosed = errors.New("closed")

// TestWithdrawOrOutcome covers the one race the package settles: a caller
// whose context ends while its work is queued withdraws it (the committer
// then drops it), and one whose work was already taken gets the outcome.
func TestWithdrawOrOutcome(t *testing.T) {
	tests := []struct {
		name    string
		take    bool // the committer takes the work before the caller gives up
		wantErr error
	}{
		{"queued work is withdrawn", false, context.Canceled},
		{"taken work reports its outcome", true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := handoff.NewQueue[*handoff.Ticket](1)
			ctx, cancel := context.WithCancel(context.Background())
			tk := handoff.NewTicket()
			res := make(chan error, 1)
			go func() { res <- q.Do(ctx, tk, tk, errClosed) }()
			got := <-q.Items() // the work is queued
			if tc.take {
				if !got.Take() {
					t.Fatal("Take on queued work reported it abandoned")
				}
				cancel()
				got.Finish(nil)
			} else {
				cancel()
				if err := <-res; !errors.Is(err, tc.wantErr) {
					t.Fatalf("Do = %v, want %v", err, tc.wantErr)
				}
				if got.Take() || !got.Abandoned() {
					t.Fatal("withdrawn work could still be taken")
				}
				return
			}
			if err := <-res; err != tc.wantErr {
				t.Fatalf("Do = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestClosed shows that a closed queue refuses new work with the caller's
// error and still hands over what was queued before.
func TestClosed(t *testing.T) {
	q := handoff.NewQueue[int](2)
	tk := handoff.NewTicket()
	done := make(chan error, 1)
	go func() { done <- q.Do(context.Background(), 7, tk, errClosed) }()
	if v := <-q.Items(); v != 7 || !tk.Take() {
		t.Fatalf("got %d (taken %v), want 7 taken", v, tk.Taken())
	}
	q.Close()
	q.Close() // a second Close does nothing
	tk.Finish(nil)
	if err := <-done; err != nil {
		t.Fatalf("Do = %v", err)
	}
	if err := q.Do(context.Background(), 8, handoff.NewTicket(), errClosed); !errors.Is(err, errClosed) {
		t.Fatalf("Do after Close = %v, want errClosed", err)
	}
	if _, ok := <-q.Items(); ok {
		t.Fatal("Items still open after Close")
	}
}
