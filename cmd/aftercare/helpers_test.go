package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
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

// tallySends groups what the fake Bot API delivered by chat, and counts
// each distinct message, for the crash and failover tests' checks of
// "delivered once" and "at most one duplicate per kill".
func tallySends(sends []sentMsg) (by map[int64][]string, distinct map[sentMsg]int) {
	by, distinct = map[int64][]string{}, map[sentMsg]int{}
	for _, s := range sends {
		by[s.chat] = append(by[s.chat], s.text)
		distinct[s]++
	}
	return by, distinct
}

// countContaining counts the texts that contain sub.
func countContaining(texts []string, sub string) int {
	n := 0
	for _, x := range texts {
		if strings.Contains(x, sub) {
			n++
		}
	}
	return n
}

// checkAppliedOnceAndEscalated is what the crash and failover tests assert
// of each patient's messages after the kills: no answer that only an update
// applied twice produces, and for a patient who reported fainting the
// emergency instructions and the staff alert (staff is the staff chat's
// messages joined).
func checkAppliedOnceAndEscalated(t *testing.T, i int, got []string, staff string, chatID int64, red bool) {
	t.Helper()
	for _, bad := range []string{"I didn't catch", "didn't quite get that", "couldn't read that time"} {
		if n := countContaining(got, bad); n > 0 {
			t.Errorf("patient %d got %q %d times: an update was applied twice", i, bad, n)
		}
	}
	if red {
		if countContaining(got, "Call 911 now") == 0 {
			t.Errorf("patient %d reported fainting but got no emergency instructions", i)
		}
		if !strings.Contains(staff, fmt.Sprintf("[EMERGENCY] telegram:%d", chatID)) {
			t.Errorf("staff were not alerted about patient %d", i)
		}
	}
}
