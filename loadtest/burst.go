package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
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
	// RedFlagEvery is how often, during the drain, a further patient
	// reports a red flag (default 1.5 s, within the staff chat's 1/s
	// limit); negative sends none. The escalation and the staff alert of
	// each are timed from Receive to acceptance by the fake Bot API.
	RedFlagEvery time.Duration
	// Backend is the store (nil: bbolt in Dir).
	Backend *Backend
}

// TargetRedFlagP99 is the goal for a red flag during a burst: received →
// escalation and staff alert accepted by the platform, 99th percentile.
const TargetRedFlagP99 = 250 * time.Millisecond

// staffChat is the staff chat of scenario e; redFlagChat is the first chat
// of the patients who report red flags during it (outside the check-ins').
const (
	staffChat   = -1001
	redFlagChat = 900000000
)

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
		Path: path, Clock: clk, Pace: c.Pace, Observer: obs, Open: c.Backend.open(),
		NewSender: func(svc *service.Service) (service.Sender, error) {
			return telegram.New(telegram.Config{APIEndpoint: api.Endpoint(), StaffChatID: staffChat}, "4242:loadtest", svc, slog.New(slog.DiscardHandler))
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
	api.Watch(staffChat)
	if c.RedFlagEvery == 0 {
		c.RedFlagEvery = 1500 * time.Millisecond
	}

	mw := watchMemory()
	start := time.Now()
	clk.Skip(24*time.Hour + time.Minute)
	p.Service.Wake()
	flags := &redFlags{api: api, svc: p.Service}
	if c.RedFlagEvery > 0 {
		flagCtx, stopFlags := context.WithCancel(ctx)
		defer stopFlags()
		go flags.drive(flagCtx, c.RedFlagEvery, func() bool { return api.Stats().Accepted >= c.Checkins })
	}
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
	esc, alerts := flags.wait(ctx, 30*time.Second)
	delivered, err := p.Stop()
	if err != nil {
		return r, err
	}
	s := api.Stats()
	elapsed := s.Last.Sub(start)
	r.Seconds = elapsed.Seconds()
	if s.Accepted > 0 && elapsed > 0 {
		// Red flags and staff alerts sent during the drain share the pace.
		r.PerSecond = float64(s.Accepted+s.Watched) / elapsed.Seconds()
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
	if c.RedFlagEvery > 0 {
		el, al := latencyOf(esc), latencyOf(alerts)
		if el == nil {
			el = &Latency{P99: math.Inf(1)}
		}
		if al == nil {
			al = &Latency{P99: math.Inf(1)}
		}
		r.figure("red flags during the drain", float64(flags.n()), "")
		r.figure("red flag received → escalation sent p50", el.P50, "ms")
		r.figure("red flag received → escalation sent p99", el.P99, "ms")
		r.figure("red flag received → staff alert sent p50", al.P50, "ms")
		r.figure("red flag received → staff alert sent p99", al.P99, "ms")
		target := fmt.Sprintf("< %d ms p99, every one sent", TargetRedFlagP99.Milliseconds())
		r.check("red flag → escalation sent, during the drain", target, fmt.Sprintf("%.1f ms p99, %d of %d sent", el.P99, len(esc), flags.n()),
			len(esc) == flags.n() && flags.n() > 0 && el.P99 < float64(TargetRedFlagP99.Milliseconds()))
		r.check("red flag → staff alert sent, during the drain", target, fmt.Sprintf("%.1f ms p99, %d of %d sent", al.P99, len(alerts), flags.n()),
			len(alerts) == flags.n() && flags.n() > 0 && al.P99 < float64(TargetRedFlagP99.Milliseconds()))
	}

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

// redFlags sends red flags from further patients while a burst drains and
// times each from Receive to the fake Bot API accepting the patient's
// escalation and the staff alert.
type redFlags struct {
	api *BotAPI
	svc *service.Service

	mu       sync.Mutex
	received []time.Time
}

func (f *redFlags) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.received)
}

// drive reports one red flag every interval until done or ctx ends.
func (f *redFlags) drive(ctx context.Context, every time.Duration, done func() bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; !done(); i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		chat := int64(redFlagChat + i)
		f.api.Watch(chat)
		at := time.Now() // as an adapter receives the update
		err := f.svc.Receive(ctx, service.Inbound{Patient: engine.NewPatientID(Platform, fmt.Sprint(chat)),
			Text: "I fainted", DedupeKey: fmt.Sprintf("loadtest:redflag:%d", i)})
		if err != nil {
			return
		}
		f.mu.Lock()
		f.received = append(f.received, at)
		f.mu.Unlock()
	}
}

// wait waits (at most bound) until every red flag's escalation and alert
// were accepted and returns their latencies, in the order received.
func (f *redFlags) wait(ctx context.Context, bound time.Duration) (esc, alerts []time.Duration) {
	deadline := time.Now().Add(bound)
	for {
		f.mu.Lock()
		recv := append([]time.Time(nil), f.received...)
		f.mu.Unlock()
		esc, alerts = esc[:0], alerts[:0]
		for i, at := range recv {
			if sent := f.api.AcceptedAt(int64(redFlagChat + i)); len(sent) > 0 {
				esc = append(esc, sent[0].Sub(at))
			}
		}
		staff := f.api.AcceptedAt(staffChat)
		for i := 0; i < len(recv) && i < len(staff); i++ {
			alerts = append(alerts, staff[i].Sub(recv[i]))
		}
		if (len(esc) == len(recv) && len(alerts) == len(recv)) || time.Now().After(deadline) || ctx.Err() != nil {
			return esc, alerts
		}
		time.Sleep(50 * time.Millisecond)
	}
}
