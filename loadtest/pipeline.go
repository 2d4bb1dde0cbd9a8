package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/triage"
)

// Clinic is the clinic of the load runs: fictional, always open and without
// quiet hours, so no check-in is deferred by the time of day.
var Clinic = engine.Clinic{
	Name: "Load Test Clinic", Phone: "+1-555-0100", EmergencyNumber: "911", TimeZone: "America/Chicago",
}

// StaffChannel is the staff chat that receives the alerts of load runs.
const StaffChannel engine.PatientID = "telegram:-1001"

// Platform is the platform the simulated patients use.
const Platform = "telegram"

// firstChat keeps every simulated chat ID nine digits long, so patient IDs
// sort in the order of their numbers.
const firstChat = 100000000

// Patient returns the ID of simulated patient i ("telegram:100000000" for 0).
func Patient(i int) engine.PatientID {
	return engine.NewPatientID(Platform, strconv.Itoa(firstChat+i))
}

// TelegramPace is the pace cmd/aftercare uses for Telegram: 25 messages/s
// in total and 1/s per chat with a burst of 3.
var TelegramPace = service.Pace{PerSecond: 25, PerChatPerSecond: 1, PerChatBurst: 3}

var defaultTriager = sync.OnceValue(func() engine.Triager { return triage.Default() })

// NewEngine returns an engine with the embedded protocol, the real triage
// rules (triage.Default) and Clinic.
func NewEngine() (*engine.Engine, error) {
	return engine.New(engine.DefaultProtocol(), defaultTriager(), Clinic)
}

// Options configure Start.
type Options struct {
	// Path is the database file; it is created if missing.
	Path string
	// Store tunes the store (zero: the production defaults, fsync on).
	Store store.Options
	// Clock is the service's clock (nil: the wall clock).
	Clock clock.Clock
	// NewSender returns the outbox's sender once the service exists (nil:
	// a new FakeSender).
	NewSender func(*service.Service) (service.Sender, error)
	// Pace is the dispatcher's pace (zero: TelegramPace).
	Pace service.Pace
	// Observer, when set, is the service's observer.
	Observer service.Observer
	// Open, when set, opens the store instead of the bbolt file at Path
	// (another backend, see Backend); Path is then only a label.
	Open OpenFunc
}

// Pipeline is one Aftercare instance running in-process: store, service,
// scheduler and one dispatcher. Create it with Start and stop it with
// Close. Its fields stay valid until Close returns; Service and Store are
// safe for concurrent use.
type Pipeline struct {
	// Path is the database file.
	Path string
	// Store is the open bbolt store; nil when Options.Open opened another.
	Store *store.Store
	// DB is the open store, whichever the backend.
	DB DB
	// Service is the running service.
	Service *service.Service
	// Sender is the dispatcher's sender.
	Sender service.Sender

	disp   *service.Dispatcher
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	closed bool
}

// Start opens the store at o.Path and starts the service's scheduler and
// a dispatcher for the Telegram outbox.
func Start(ctx context.Context, o Options) (*Pipeline, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Pace == (service.Pace{}) {
		o.Pace = TelegramPace
	}
	eng, err := NewEngine()
	if err != nil {
		return nil, err
	}
	var st DB
	var bolt *store.Store
	if o.Open != nil {
		st, err = o.Open(ctx)
	} else {
		bolt, err = store.Open(o.Path, o.Store)
		st = bolt
	}
	if err != nil {
		return nil, err
	}
	svc, err := service.New(service.Config{Engine: eng, Store: st, Clock: o.Clock, StaffChannels: []engine.PatientID{StaffChannel}, Observer: o.Observer})
	if err != nil {
		st.Close()
		return nil, err
	}
	var sender service.Sender = NewFakeSender()
	if o.NewSender != nil {
		if sender, err = o.NewSender(svc); err != nil {
			st.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Pipeline{Path: o.Path, Store: bolt, DB: st, Service: svc, Sender: sender, cancel: cancel}
	p.run(func() error { return svc.RunScheduler(ctx) })
	p.disp = svc.NewDispatcher(sender, o.Pace)
	p.run(func() error { return p.disp.Run(ctx) })
	return p, nil
}

func (p *Pipeline) run(f func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := f(); err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err)
			p.mu.Unlock()
		}
	}()
}

// Stop stops the scheduler and the dispatcher and returns how many
// messages the dispatcher delivered. The store stays open for inspection.
func (p *Pipeline) Stop() (delivered int, err error) {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.disp.Sent, errors.Join(p.errs...)
}

// Close stops the pipeline, if still running, and closes the store.
func (p *Pipeline) Close() error {
	_, err := p.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return err
	}
	p.closed = true
	return errors.Join(err, p.DB.Close())
}

// treatments and areas vary the simulated visits.
var (
	treatments = []engine.Treatment{engine.Acupuncture, engine.Electroacupuncture, engine.DryNeedling}
	areas      = []string{"neck", "upper_back", "lower_back", "arm", "leg", "head"}
)

// SimVisit is the visit the clinic records for simulated patient i: a
// session at the given time with consent to check-ins given in person.
func SimVisit(i int, at time.Time) engine.Visit {
	return engine.Visit{At: at, Treatment: treatments[i%len(treatments)], Area: areas[i%len(areas)], Consent: true}
}

// Enroll records a visit at time at for patients 0..n-1, from workers
// goroutines at once (so the steps share commits), as the clinic would.
func Enroll(ctx context.Context, svc *service.Service, n, workers int, at time.Time) error {
	return forEach(ctx, n, workers, func(i int) error {
		if err := svc.RecordVisit(ctx, Patient(i), SimVisit(i, at)); err != nil {
			return fmt.Errorf("enroll patient %d: %w", i, err)
		}
		return nil
	})
}

// forEach calls fn(i) for i in 0..n-1 from workers goroutines at once, so
// their store steps share commits. It stops at the first error of a worker
// or when ctx is done, and returns the errors joined.
func forEach(ctx context.Context, n, workers int, fn func(i int) error) error {
	workers = max(workers, 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// FakeSender is an in-process sender for the Telegram outbox that accepts
// every message at once and counts them per destination. It is safe for
// concurrent use.
type FakeSender struct {
	mu    sync.Mutex
	sent  map[engine.PatientID]int
	total int
}

var _ service.Sender = (*FakeSender)(nil)

// NewFakeSender returns a FakeSender that has sent nothing.
func NewFakeSender() *FakeSender { return &FakeSender{sent: map[engine.PatientID]int{}} }

// Platform returns "telegram".
func (f *FakeSender) Platform() string { return Platform }

// Send counts m as delivered.
func (f *FakeSender) Send(_ context.Context, m engine.Outbound) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent[m.Destination()]++
	f.total++
	return nil
}

// Sent returns how many messages went to dest.
func (f *FakeSender) Sent(dest engine.PatientID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[dest]
}

// Total returns how many messages were sent.
func (f *FakeSender) Total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// removeDB deletes a database file left by an earlier run.
func removeDB(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
