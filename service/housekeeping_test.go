package service_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
	"github.com/aftercare-clinic/aftercare/service"
)

// TestHousekeepingRunsOnlyWhereAllowed: with several instances only the
// holder of the housekeeping lease runs the retention purge. The scheduler
// asks Housekeeping each time the daily pass is due; while it says no,
// nothing is erased, and once it says yes, the pass runs.
func TestHousekeepingRunsOnlyWhereAllowed(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var allowed atomic.Bool
	var asked atomic.Int32
	svc, err := service.New(service.Config{Engine: enginetest.New(), Store: h.store, Clock: h.clock,
		StaffChannels: []engine.PatientID{"console:staff"}, Retention: 24 * time.Hour,
		Housekeeping: func() bool { asked.Add(1); return allowed.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	svc.RecordVisit(ctx, "telegram:old", engine.Visit{At: t0, Treatment: engine.Acupuncture, Consent: true})
	h.clock.Add(3 * 24 * time.Hour)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.RunScheduler(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The first pass is due an hour after the scheduler starts: move the
	// clock on by the hour until the scheduler has asked twice (so it went
	// past the question at least once and came back).
	for hours := 0; asked.Load() < 2; hours++ {
		if hours > 24*30 {
			t.Fatal("a month went by and the scheduler never asked Housekeeping")
		}
		h.clock.Add(time.Hour)
		svc.Wake()
		time.Sleep(time.Millisecond)
	}
	if _, found, _ := h.store.State("telegram:old"); !found {
		t.Fatal("the purge ran although Housekeeping said no")
	}
	allowed.Store(true)
	for hours := 0; ; hours++ {
		if hours > 24*30 {
			t.Fatal("a month went by and the allowed purge never ran")
		}
		h.clock.Add(time.Hour)
		svc.Wake()
		if _, found, _ := h.store.State("telegram:old"); !found {
			break
		}
		time.Sleep(time.Millisecond)
	}
}
