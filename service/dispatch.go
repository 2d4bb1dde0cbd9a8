package service

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"golang.org/x/time/rate"

	"aftercare/engine"
)

// Pace is how fast a platform accepts messages.
type Pace struct {
	// PerSecond is the total rate for the platform (Telegram: about 25/s by
	// default; Discord: 50 requests/s).
	PerSecond float64
	// PerChatPerSecond is the rate for one chat (Telegram: about 1/s).
	// Zero means no per-chat limit.
	PerChatPerSecond float64
	// PerChatBurst lets a short reply of two or three messages go out at once.
	PerChatBurst int
}

// Dispatcher drains one platform's outbox through its Sender. Messages are
// taken in priority order (escalations and alerts, then replies, then
// check-ins), paced to the platform's limits, and deleted from the outbox
// only once the platform accepted them: a crash between sending and
// deleting resends at most the messages in flight, never loses one.
type Dispatcher struct {
	svc    *Service
	sender Sender
	pace   Pace
	global *rate.Limiter
	chats  map[engine.PatientID]*rate.Limiter
	// OnUnreachable is called after a patient is marked unreachable (tests, metrics).
	OnUnreachable func(engine.PatientID)
	// Sent counts messages accepted by the platform (read after Run returns, or in tests).
	Sent int
}

// NewDispatcher returns a dispatcher for one platform.
func (s *Service) NewDispatcher(sender Sender, pace Pace) *Dispatcher {
	if pace.PerSecond <= 0 {
		pace.PerSecond = 25
	}
	if pace.PerChatBurst <= 0 {
		pace.PerChatBurst = 3
	}
	return &Dispatcher{
		svc: s, sender: sender, pace: pace,
		global: rate.NewLimiter(rate.Limit(pace.PerSecond), max(1, int(pace.PerSecond/5))),
		chats:  map[engine.PatientID]*rate.Limiter{},
	}
}

func (s *Service) kickChan(platform string) chan struct{} {
	v, _ := s.out.LoadOrStore(platform, make(chan struct{}, 1))
	return v.(chan struct{})
}

// kick wakes the platform's dispatcher.
func (s *Service) kick(platform string) {
	select {
	case s.kickChan(platform) <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled.
func (d *Dispatcher) Run(ctx context.Context) error {
	wake := d.svc.kickChan(d.sender.Platform())
	for {
		wait, err := d.Pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.svc.log.Error("outbox pass failed", "platform", d.sender.Platform(), "err", err)
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Pass sends what is ready in the outbox and returns how long to wait
// before the next pass (until the next retry falls due, at most a second).
func (d *Dispatcher) Pass(ctx context.Context) (time.Duration, error) {
	platform := d.sender.Platform()
	// Take about one second's worth: an escalation queued during a burst
	// of check-ins is then picked up at the next pass, within a second.
	batch := max(8, int(d.pace.PerSecond))
	msgs, err := d.svc.store.Outbox(platform, batch)
	if err != nil {
		return time.Second, err
	}
	wait := time.Second
	blocked := map[engine.PatientID]bool{} // keep order within a chat
	now := time.Now()
	for _, m := range msgs {
		if ctx.Err() != nil {
			return 0, nil
		}
		dest := m.Destination()
		if blocked[dest] {
			continue
		}
		if !m.NotBefore.IsZero() && m.NotBefore.After(now) {
			blocked[dest] = true
			wait = min(wait, m.NotBefore.Sub(now))
			continue
		}
		if lim := d.chat(dest); lim != nil && !lim.Allow() {
			blocked[dest] = true
			wait = min(wait, time.Duration(float64(time.Second)/d.pace.PerChatPerSecond))
			continue
		}
		if err := d.global.Wait(ctx); err != nil {
			return 0, nil
		}
		err := d.sender.Send(ctx, m)
		var ra *engine.RetryAfterError
		switch {
		case err == nil:
			d.Sent++
			d.svc.cfg.Observer.Sent(platform, m.Kind)
			if err := d.svc.store.Delivered(m); err != nil {
				return time.Second, err
			}
		case errors.Is(err, engine.ErrUnreachable):
			d.svc.log.Warn("recipient unreachable; message dropped", "platform", platform, "to", dest, "kind", m.Kind, "id", m.ID)
			if err := d.svc.store.Delivered(m); err != nil {
				return time.Second, err
			}
			if m.Channel == "" && m.To != engine.StaffAddress {
				if err := d.svc.MarkUnreachable(ctx, m.To); err != nil {
					return time.Second, err
				}
				if d.OnUnreachable != nil {
					d.OnUnreachable(m.To)
				}
			}
		case errors.As(err, &ra):
			d.svc.cfg.Observer.SendFailed(platform, true)
			m.Attempts++
			m.NotBefore = time.Now().Add(ra.After)
			d.svc.log.Warn("rate limited by platform", "platform", platform, "retry_after", ra.After, "id", m.ID)
			if err := d.svc.store.Retry(m); err != nil {
				return time.Second, err
			}
			// The platform asked us to slow down: hold everything back.
			return ra.After, nil
		default:
			d.svc.cfg.Observer.SendFailed(platform, false)
			m.Attempts++
			back := backoff(m.Attempts)
			m.NotBefore = time.Now().Add(back)
			blocked[dest] = true
			wait = min(wait, back)
			d.svc.log.Warn("send failed; will retry", "platform", platform, "id", m.ID, "attempt", m.Attempts, "retry_in", back, "err", err)
			if err := d.svc.store.Retry(m); err != nil {
				return time.Second, err
			}
		}
	}
	if len(msgs) == batch && len(blocked) < len(msgs) {
		wait = 0 // more may be ready
	}
	return max(wait, 0), nil
}

func (d *Dispatcher) chat(dest engine.PatientID) *rate.Limiter {
	if d.pace.PerChatPerSecond <= 0 {
		return nil
	}
	l := d.chats[dest]
	if l == nil {
		if len(d.chats) > 10000 {
			d.chats = map[engine.PatientID]*rate.Limiter{} // bounded memory; limits reset
		}
		l = rate.NewLimiter(rate.Limit(d.pace.PerChatPerSecond), d.pace.PerChatBurst)
		d.chats[dest] = l
	}
	return l
}

// backoff grows from 1 s to 5 min with jitter; messages are never dropped
// for transient errors.
func backoff(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 9)
	d = min(d, 5*time.Minute)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
