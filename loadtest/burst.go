package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"aftercare/bot/telegram"
	"aftercare/clock"
	"aftercare/engine"
	"aftercare/service"
)

// BurstConfig sizes scenario e. Zero values take the defaults.
type BurstConfig struct {
	// Dir holds the database file (required).
	Dir string
	// Checkins is the number of check-ins falling due at once (default
	// 10,000; at 25/s that takes 400 s).
	Checkins int
	// Pace is the dispatcher's pace (default TelegramPace).
	Pace service.Pace
	// Limits are what the fake Bot API enforces (default TelegramLimits).
	Limits Limits
}

// Burst is scenario e: Checkins patients' 24 h check-ins fall due at the
// same moment, and the service's scheduler and dispatcher deliver them
// through the real Telegram adapter to a fake Bot API that answers 429 as
// soon as a limit is exceeded. It measures the rate the burst leaves at,
// from the moment it fell due to the last message accepted, and counts the
// 429s.
func Burst(ctx context.Context, c BurstConfig) (Result, error) {
	if c.Checkins <= 0 {
		c.Checkins = 10000
	}
	if c.Pace == (service.Pace{}) {
		c.Pace = TelegramPace
	}
	if c.Limits == (Limits{}) {
		c.Limits = TelegramLimits
	}
	r := Result{Scenario: "e", Name: "burst of check-ins due at once, Telegram limits", Count: c.Checkins}
	if c.Dir == "" {
		return r, errors.New("loadtest: Dir is required")
	}
	path := filepath.Join(c.Dir, "e.db")
	if err := removeDB(path); err != nil {
		return r, err
	}
	api := NewBotAPI(c.Limits)
	defer api.Close()
	clk := clock.NewOffset(clock.Real{})
	obs := &firedObserver{}
	p, err := Start(ctx, Options{
		Path: path, Clock: clk, Pace: c.Pace, Observer: obs,
		NewSender: func(svc *service.Service) (service.Sender, error) {
			return telegram.New(telegram.Config{APIEndpoint: api.Endpoint(), StaffChatID: -1001}, "4242:loadtest", svc, slog.New(slog.DiscardHandler))
		},
	})
	if err != nil {
		return r, err
	}
	defer p.Close()
	if err := Enroll(ctx, p.Service, c.Checkins, 256, clk.Now()); err != nil {
		return r, err
	}
	api.Reset()

	mw := watchMemory()
	start := time.Now()
	clk.Skip(24*time.Hour + time.Minute)
	p.Service.Wake()
	limit := time.Duration(float64(c.Checkins)/c.Pace.PerSecond*float64(time.Second))*2 + time.Minute
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for api.Stats().Accepted < c.Checkins {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-deadline.C:
			break wait
		case <-tick.C:
		}
	}
	r.Memory = mw.finish()
	delivered, err := p.Stop()
	if err != nil {
		return r, err
	}
	s := api.Stats()
	elapsed := s.Last.Sub(start)
	r.Seconds = elapsed.Seconds()
	if s.Accepted > 0 && elapsed > 0 {
		r.PerSecond = float64(s.Accepted) / elapsed.Seconds()
	}
	fired, lastFired := obs.get()
	r.figure("configured rate", c.Pace.PerSecond, "msg/s")
	r.figure("accepted by the fake Bot API", float64(s.Accepted), "messages")
	r.figure("rate from due to last accepted", r.PerSecond, "msg/s")
	if s.Accepted > 1 {
		r.figure("rate from first to last accepted", float64(s.Accepted-1)/s.Last.Sub(s.First).Seconds(), "msg/s")
	}
	r.figure("first message after due", ms(s.First.Sub(start)), "ms")
	r.figure("check-ins fired by the scheduler", float64(fired), "")
	r.figure("time to fire them all", lastFired.Sub(start).Seconds(), "s")
	r.figure("429 answers", float64(s.Limited), "")
	r.figure("delivered per dispatcher", float64(delivered), "messages")

	want := TargetBurstShare * c.Pace.PerSecond
	r.check("burst rate", fmt.Sprintf("≥ %.2f msg/s (95%% of %g)", want, c.Pace.PerSecond), fmt.Sprintf("%.2f msg/s", r.PerSecond), r.PerSecond >= want)
	r.check("429 from the fake Bot API", "0", fmt.Sprintf("%d", s.Limited), s.Limited == 0)
	r.check("every check-in delivered once", fmt.Sprintf("%d chats, 0 duplicates", c.Checkins),
		fmt.Sprintf("%d chats, %d duplicates", s.Chats, s.Duplicates), s.Chats == c.Checkins && s.Duplicates == 0)
	return r, nil
}

// firedObserver counts check-ins fired and remembers when the last was.
type firedObserver struct {
	mu   sync.Mutex
	n    int
	last time.Time
}

func (o *firedObserver) get() (int, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n, o.last
}

func (o *firedObserver) CheckinFired(time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	o.last = time.Now()
}

func (o *firedObserver) Received(string)          {}
func (o *firedObserver) Step(time.Duration)       {}
func (o *firedObserver) Escalated(engine.Level)   {}
func (o *firedObserver) Sent(string, engine.Kind) {}
func (o *firedObserver) SendFailed(string, bool)  {}
