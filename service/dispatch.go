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
// before the next pass (until the next retry or pace slot, at most a
// second; zero when it made progress and more is queued).
//
// It sends at most about one second's worth of messages, so an escalation
// queued during a burst is picked up within a second. Messages to a chat
// the pace holds back keep their order and are skipped; when a whole page
// is held back, Pass reads deeper (up to maxScan messages) so that one
// busy chat, such as a staff chat collecting alerts, cannot starve the
// others, and it never spins re-reading a page it cannot send from.
func (d *Dispatcher) Pass(ctx context.Context) (time.Duration, error) {
	platform := d.sender.Platform()
	batch := max(8, int(d.pace.PerSecond))
	wait := time.Second
	blocked := map[engine.PatientID]bool{} // keep order within a chat
	handled := map[uint64]bool{}
	progress, sent := false, 0
	now := time.Now()
	for limit := batch; ; limit *= 4 {
		msgs, err := d.svc.store.Outbox(platform, limit)
		if err != nil {
			return time.Second, err
		}
		for _, m := range msgs {
			if ctx.Err() != nil {
				return 0, nil
			}
			dest := m.Destination()
			if handled[m.ID] || blocked[dest] {
				continue
			}
			handled[m.ID] = true
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
			if sent >= batch {
				return 0, nil // a second's worth sent; look for escalations again
			}
			if err := d.global.Wait(ctx); err != nil {
				return 0, nil
			}
			done, pause, err := d.deliver(ctx, m)
			if err != nil {
				return time.Second, err
			}
			if pause > 0 {
				return pause, nil // the platform asked us to slow down
			}
			if done {
				progress = true
				sent++
			} else {
				blocked[dest] = true // failed: retried after its backoff (at least 0.5 s)
				wait = min(wait, time.Second/2)
			}
		}
		if len(msgs) < limit || limit >= maxScan {
			break // read everything there is (or all we may)
		}
		if progress && sent >= batch {
			break
		}
	}
	if progress {
		return 0, nil // more may have been queued meanwhile
	}
	return max(wait, 10*time.Millisecond), nil
}

// maxScan bounds how deep one pass reads past held-back messages.
const maxScan = 4096

// deliver sends one message and records the outcome. done is true when
// the message left the outbox (sent, or dropped for an unreachable
// recipient); pause is set when the platform asked to slow down.
func (d *Dispatcher) deliver(ctx context.Context, m engine.Outbound) (done bool, pause time.Duration, err error) {
	platform := d.sender.Platform()
	dest := m.Destination()
	serr := d.sender.Send(ctx, m)
	var ra *engine.RetryAfterError
	switch {
	case serr == nil:
		d.Sent++
		d.svc.cfg.Observer.Sent(platform, m.Kind)
		return true, 0, d.svc.store.Delivered(m)
	case errors.Is(serr, engine.ErrUnreachable):
		d.svc.log.Warn("recipient unreachable; message dropped", "platform", platform, "to", dest, "kind", m.Kind, "id", m.ID)
		if err := d.svc.store.Delivered(m); err != nil {
			return false, 0, err
		}
		if m.Channel == "" && m.To != engine.StaffAddress {
			if err := d.svc.MarkUnreachable(ctx, m.To); err != nil {
				return false, 0, err
			}
			if d.OnUnreachable != nil {
				d.OnUnreachable(m.To)
			}
		}
		return true, 0, nil
	case errors.As(serr, &ra):
		d.svc.cfg.Observer.SendFailed(platform, true)
		m.Attempts++
		m.NotBefore = time.Now().Add(ra.After)
		d.svc.log.Warn("rate limited by platform", "platform", platform, "retry_after", ra.After, "id", m.ID)
		return false, max(ra.After, time.Millisecond), d.svc.store.Retry(m)
	default:
		d.svc.cfg.Observer.SendFailed(platform, false)
		m.Attempts++
		back := backoff(m.Attempts)
		m.NotBefore = time.Now().Add(back)
		d.svc.log.Warn("send failed; will retry", "platform", platform, "id", m.ID, "attempt", m.Attempts, "retry_in", back, "err", serr)
		return false, 0, d.svc.store.Retry(m)
	}
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
