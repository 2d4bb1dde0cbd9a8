// Package service runs the engine against the store: it turns platform
// input into engine steps committed in one transaction each, fires the
// schedule on a clock, and drains the outbox to the platforms at a pace
// they accept.
//
// # Concurrency
//
// All exported methods are safe for concurrent use. Steps for one patient
// run one at a time, in the order their callers arrived (a FIFO ticket per
// patient); steps for different patients run in parallel and share commits.
//
// # Catch-up after downtime
//
// Timers are durable. When the service starts after downtime, every timer
// that fell due while it was down fires once, earliest first, on the next
// scheduler pass. The engine then decides: a check-in is sent late (with
// an apology) unless quiet hours hold it until morning; if an earlier
// check-in of the same visit is still unanswered it is closed as
// unanswered and the next one is sent. Nothing is dropped silently (each
// decision is in the audit trail) and nothing is sent twice (the timer is
// removed in the transaction that queues its message).
//
// # Files
//
//	service.go      Service, Config, Observer, New; Store, the union of
//	                the small store interfaces each file below declares
//	sender.go       Sender, the interface every platform adapter implements,
//	                and the delivery errors it answers with
//	inbound.go      Inbound (what an adapter hands over), Receive and the
//	                patient step: per-patient FIFO, state cache use
//	                (statecache.go), fan-out to staff channels
//	scheduler.go    RunScheduler, DeliverDue, Fire
//	ladder.go       the escalation ladder: first rung, re-alert, forwarding
//	retention.go    the retention purge and dedupe-key pruning
//	invite.go       one-time enrollment links; the token form and the
//	                typed "/start CODE" form adapters find invites in
//	staff.go        staff commands (StaffInbound, ReceiveStaff); which
//	                commands exist and who is staff is package staffgate's
//	staffhealth.go  whether staff destinations are reachable
//	dispatch.go     the outbox dispatcher: pacing, retries, 429s
//	quarantine.go   staff notices for records the store set aside
package service

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/staffgate"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// Store is all the durable storage the service needs: the small
// interfaces each part declares where it uses them (StepStore in
// inbound.go, TimerStore in scheduler.go, OutboxStore in dispatch.go,
// EscalationStore in ladder.go, RetentionStore in retention.go, StaffStore
// in staff.go, InviteStore in invite.go, RecordReader below), so a backend
// sees what each caller relies on. *store.Store (bbolt) and
// *postgres.Store implement it (asserted in store/storetest).
type Store interface {
	StepStore
	TimerStore
	OutboxStore
	EscalationStore
	RetentionStore
	StaffStore
	InviteStore
	RecordReader
}

// RecordReader is the read side staff tools and exports use (cmd/aftercare
// ops, the staff desk): states, records and the audit trail, and the
// outbox as queued.
type RecordReader interface {
	// State returns a patient's stored state; false when none is stored.
	State(id engine.PatientID) (engine.State, bool, error)
	// PatientRecord returns everything stored about one patient, or
	// storage.ErrNotFound.
	PatientRecord(p engine.PatientID) (storage.Record, error)
	// Audit returns the audit trail, oldest first.
	Audit() ([]engine.Audit, error)
	// AppendAudit records reads and other actions that change no record.
	AppendAudit(ctx context.Context, as ...engine.Audit) error
	// Outbox returns up to limit queued messages of a platform in
	// delivery order.
	Outbox(platform string, limit int) ([]engine.Outbound, error)
}

var (
	_ Store           = (*store.Store)(nil)
	_ StepStore       = (*store.Store)(nil)
	_ TimerStore      = (*store.Store)(nil)
	_ OutboxStore     = (*store.Store)(nil)
	_ EscalationStore = (*store.Store)(nil)
	_ RetentionStore  = (*store.Store)(nil)
	_ StaffStore      = (*store.Store)(nil)
	_ InviteStore     = (*store.Store)(nil)
	_ RecordReader    = (*store.Store)(nil)
)

// Service connects engine, store and clock. Create it with New.
type Service struct {
	engine *engine.Engine
	store  Store
	clock  clock.Clock
	log    *slog.Logger
	staff  []engine.PatientID
	cfg    Config

	locks  locks
	states *stateCache
	wake   chan struct{} // scheduler
	out    sync.Map      // platform -> chan struct{} (dispatcher wake-ups)
	urgent sync.Map      // platform -> chan struct{} (an escalation or alert was queued)
	health staffHealth
}

// Config holds what New needs.
type Config struct {
	Engine *engine.Engine
	Store  Store
	Clock  clock.Clock
	Logger *slog.Logger
	// StaffChannels are where staff messages go, each "platform:address"
	// (for example "telegram:-1001234", "console:staff"). Every alert is
	// queued once per channel. At least one is required: an alert with
	// nowhere to go would be a silent failure.
	StaffChannels []engine.PatientID
	// StaffGate, when set, is asked again for every staff command, with
	// the sender and the channel it came from: the second gate, after the
	// adapter's (both are staffgate's rules). A command from someone it
	// does not call staff is refused. Nil: any command the adapters pass on.
	StaffGate *staffgate.Gate
	// AckTimeout is how long an urgent or emergency alert may stay
	// unacknowledged before it is sent again, then forwarded along
	// EscalationContacts (default 10 minutes; negative disables).
	AckTimeout time.Duration
	// EscalationContacts are further channels tried in order when an alert
	// stays unacknowledged ("telegram:<a manager's chat>", "webhook:sms").
	EscalationContacts []engine.PatientID
	// Retention is how long a patient's data is kept after their last
	// visit or message (default 90 days).
	Retention time.Duration
	// InviteLinks renders an invite token as what staff hand the patient
	// (a Telegram deep link, a Discord code). Nil shows the bare token.
	InviteLinks func(token string) []string
	// InviteTTL is how long an invite stays valid (default 7 days).
	InviteTTL time.Duration
	// Observer, when set, is told what happens, for metrics. When it also
	// implements StaffObserver it is told about unreachable staff
	// destinations.
	Observer Observer
	// StaffKeys names the configuration key of each staff channel and
	// escalation contact ("telegram.staff_chat_id"), so logs and /readyz
	// can say what to fix without showing chat IDs. Optional.
	StaffKeys map[engine.PatientID]string
	// UrgentRetry is how soon a failed escalation or staff alert is tried
	// again (default 3 s). It is short and fixed, not a backoff: after an
	// outage a red flag must go out as soon as the platform is back. Other
	// messages back off exponentially up to 5 minutes.
	UrgentRetry time.Duration
	// StaffLogin, when set, answers the /login staff command: it returns a
	// one-time sign-in link to the staff desk for the staff member, or an
	// error (one with a StaffRefusal() string method is shown to them).
	// The service delivers the link only privately to that staff member
	// (a Private message), never into a shared staff chat.
	// Nil: the desk is off and /login says so.
	StaffLogin func(ctx context.Context, staff string) (string, error)
	// Housekeeping, when set, reports whether this instance may run the
	// daily housekeeping (retention purge, dedupe pruning) now: with
	// several instances on one database only the holder of the
	// housekeeping lease does (see package lease). Nil: always (one
	// process, bbolt).
	Housekeeping func() bool
}

// Observer receives counts of what the service does. Calls are made from
// many goroutines and must not block.
type Observer interface {
	// Received counts an inbound message from a platform.
	Received(platform string)
	// Step observes one committed step: how long the store took.
	Step(d time.Duration)
	// Escalated counts an escalation at a level.
	Escalated(l engine.Level)
	// CheckinFired counts a check-in timer firing, late by the given time.
	CheckinFired(late time.Duration)
	// Sent counts a message a platform accepted.
	Sent(platform string, k engine.Kind)
	// SendFailed counts a failed delivery attempt; rateLimited marks a 429.
	SendFailed(platform string, rateLimited bool)
}

type nopObserver struct{}

func (nopObserver) Received(string)            {}
func (nopObserver) Step(time.Duration)         {}
func (nopObserver) Escalated(engine.Level)     {}
func (nopObserver) CheckinFired(time.Duration) {}
func (nopObserver) Sent(string, engine.Kind)   {}
func (nopObserver) SendFailed(string, bool)    {}

// New returns a service.
func New(c Config) (*Service, error) {
	if c.Engine == nil || c.Store == nil || c.Clock == nil {
		return nil, errors.New("service: engine, store and clock are required")
	}
	if len(c.StaffChannels) == 0 {
		return nil, errors.New("service: at least one staff channel is required, so alerts reach someone")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 10 * time.Minute
	}
	if c.Retention == 0 {
		c.Retention = 90 * 24 * time.Hour
	}
	if c.InviteTTL == 0 {
		c.InviteTTL = 7 * 24 * time.Hour
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.UrgentRetry <= 0 {
		c.UrgentRetry = 3 * time.Second
	}
	s := &Service{
		health: staffHealth{down: map[engine.PatientID]string{}},
		engine: c.Engine, store: c.Store, clock: c.Clock, log: c.Logger, staff: c.StaffChannels, cfg: c,
		locks:  locks{m: map[engine.PatientID]*plock{}},
		states: newStateCache(stateCacheSize),
		wake:   make(chan struct{}, 1),
	}
	if qn, ok := c.Store.(quarantineNotifier); ok {
		qn.SetQuarantineNotice(s.quarantineNotice)
	}
	return s, nil
}

func dedupeIDs(xs []engine.PatientID) []engine.PatientID {
	seen := map[engine.PatientID]bool{}
	var out []engine.PatientID
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
