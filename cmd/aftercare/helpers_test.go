package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a
// running Main's logger and the test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startMain runs m in the background, as the binary would, and waits until
// it has started. stop cancels it and waits for Run to return (once; later
// calls do nothing), reporting an error Run returned. logs, when not nil, is
// shown if Run gives up before starting.
func startMain(t testing.TB, m *Main, logs fmt.Stringer) (run *Running, stop func()) {
	t.Helper()
	started := make(chan *Running, 1)
	m.Started = func(r *Running) { started <- r }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Main.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Main.Run did not return after cancel")
		}
	}
	select {
	case run = <-started:
		return run, stop
	case err := <-done:
		cancel()
		if logs != nil {
			t.Fatalf("Main.Run returned early: %v\n%s", err, logs.String())
		}
		t.Fatalf("Main.Run returned early: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("Main did not start")
	}
	return nil, nil
}
