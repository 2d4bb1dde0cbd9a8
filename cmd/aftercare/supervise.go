package main

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/backoff"
)

// parts knows which parts of the running bot are up, for /readyz: each
// platform starts, fails and recovers on its own, so "not ready" must say
// which one is down rather than take the process down with it.
type parts struct {
	mu      sync.Mutex
	checks  map[string]readiness // platform -> its own report
	stopped map[string]string    // platform -> why its Run gave up
}

func newParts() *parts {
	return &parts{checks: map[string]readiness{}, stopped: map[string]string{}}
}

// add registers a platform whose Ready reports whether it is connected.
func (p *parts) add(name string, r readiness) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks[name] = r
}

func (p *parts) setStopped(name, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if why == "" {
		delete(p.stopped, name)
		return
	}
	p.stopped[name] = why
}

// down returns an error naming every platform that is down, or nil.
func (p *parts) down() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name, r := range p.checks {
		switch why, stopped := p.stopped[name]; {
		case stopped:
			out = append(out, name+": down ("+why+")")
		case !r.Ready():
			out = append(out, name+": not connected")
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	return errors.New(strings.Join(out, "; "))
}

// supervise returns a function that runs a platform's Run until ctx ends.
// Run only returns early when the platform could not start or stopped for
// good (a webhook that cannot be registered, a token Discord rejects);
// then the platform is reported down and, when restart is set, started
// again after a backoff (capped and jittered). Nothing else in the process
// stops with it. A platform whose Run may not be called twice (restart
// false) stays down, with its reason on /readyz, until the process restarts.
func supervise(name string, p *parts, log *slog.Logger, retry backoff.Policy, restart bool, run func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		for n := 1; ; n++ {
			started := time.Now()
			err := run(ctx)
			if ctx.Err() != nil {
				return nil
			}
			why := "stopped"
			if err != nil {
				why = err.Error()
			}
			p.setStopped(name, why)
			if time.Since(started) > time.Minute {
				n = 1 // it ran a good while: a new failure, not a repeat
			}
			if !restart {
				log.Error("platform stopped; the rest of aftercare runs on", "platform", name, "err", err)
				<-ctx.Done()
				return nil
			}
			wait := retry.Delay(n)
			log.Error("platform stopped; restarting it", "platform", name, "err", err, "retry_in", wait, "failures", n)
			if !sleep(ctx, wait) {
				return nil
			}
			p.setStopped(name, "")
		}
	}
}

// sleep waits d or until ctx is done; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
