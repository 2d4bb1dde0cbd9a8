package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/backoff"
)

type fixedReady bool

func (r fixedReady) Ready() bool { return bool(r) }

// TestSuperviseKeepsAPlatformsFailureToItself: a platform whose Run gives
// up is reported down by name and started again after the backoff; one
// that may not be restarted stays down with its reason; neither returns an
// error that would stop the process.
func TestSuperviseKeepsAPlatformsFailureToItself(t *testing.T) {
	p := newParts()
	p.add("telegram", fixedReady(true))
	p.add("discord", fixedReady(true))
	p.add("other", fixedReady(false))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	retry := backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}

	calls := make(chan int, 10)
	n := 0
	tg := supervise("telegram", p, log, retry, true, func(ctx context.Context) error {
		n++
		calls <- n
		if n < 3 {
			return errors.New("webhook could not be registered")
		}
		<-ctx.Done()
		return nil
	})
	dcStopped := make(chan struct{})
	dc := supervise("discord", p, log, retry, false, func(context.Context) error {
		defer close(dcStopped)
		return errors.New("token rejected")
	})
	errs := make(chan error, 2)
	go func() { errs <- tg(ctx) }()
	go func() { errs <- dc(ctx) }()
	for want := 1; want <= 3; want++ {
		if got := <-calls; got != want {
			t.Fatalf("telegram Run call %d, want %d", got, want)
		}
	}
	<-dcStopped
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if err = p.down(); err != nil && !strings.Contains(err.Error(), "telegram") && strings.Contains(err.Error(), "discord: down (token rejected)") {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "discord: down (token rejected)") || !strings.Contains(err.Error(), "other: not connected") || strings.Contains(err.Error(), "telegram") {
		t.Errorf("down() = %v; want discord down with its reason and other not connected, telegram up again", err)
	}
	cancel()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("supervised Run returned %v; want nil (the process stays up)", err)
		}
	}
}
