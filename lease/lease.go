// Package lease runs work that only one instance of Aftercare may do at a
// time (a clinic's Telegram long poll or Discord gateway, the daily
// housekeeping) under a named lease kept in the shared database.
//
// # How a lease is held
//
// Hold takes the lease when it is free or expired, runs the work with a
// context that lives as long as the lease, and renews the lease every
// Renew interval for TTL from the database server's clock. The holder
// stops at once (the work's context is cancelled with ErrLost as its
// cause) when a renewal fails for any reason, finds the lease taken over
// or expired, or does not come back before the holder's own deadline: the
// moment the lease was last granted, measured on this process's
// monotonic clock from before the request was sent, plus nine tenths of
// TTL. Since the server's expiry is the server's now() plus TTL, and the
// server's now() comes after the request was sent, the holder's deadline
// falls a tenth of TTL before the server's (room for the work to notice
// and for clock rates to differ): a holder that lost the lease has
// stopped before another can take it. Each grant carries an epoch (a
// fencing token) that grows whenever the lease changes hands; renewals
// name it, so a holder that was taken over can never renew again.
//
// A killed holder's lease is taken over within TTL plus one Renew
// interval, plus one more for each lease the taker already holds (see
// Spreading): it expires at most TTL after its last renewal, and every
// other instance tries every Renew interval.
//
// # Spreading
//
// Instances race for free leases, with a handicap: before trying a free
// lease, an instance waits one Renew interval for every lease it already
// holds. An instance holding fewer leases therefore tries first, so a
// dead instance's leases spread over the survivors, while a lone survivor
// still takes them all.
//
// A group of many leases (every clinic's platform connections, Options.
// Spread) is spread by count instead: each Keeper keeps a heartbeat lease
// of its own ("instance/<id>", TTL less one Renew) and counts the live
// heartbeats every Renew interval; with N leases in the group and M live
// instances it holds at most ceil(N/M) of them. It takes no group lease
// beyond that share unless one has stayed free for longer than a takeover
// takes (an instance that counts as live but never tries for its share,
// its platform connection having failed, would otherwise leave a clinic
// unread), and when instances join and its share shrinks it
// gives up the excess of the leases held with Hold (one per renewal, to a
// newcomer under its share), not those held with HoldOnce (work that
// cannot start again in this process). When an instance dies, its
// heartbeat expires no later than its leases, so the survivors' shares
// have grown by the time the leases are free: they are taken within TTL
// plus one Renew interval, as any other lease.
//
// Why not a library: cirello.io/pglock does PostgreSQL leases well, but
// through database/sql (a second connection pool beside pgx's), and it
// judges expiry by waiting a lease duration on the caller's clock for the
// record to stand still, where here the server's now() decides in one
// statement. The table and three statements are in store/postgres/lease.go.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLost is the cause of a work context cancelled because the lease was
// lost (a renewal failed, or another instance took the lease over), and
// what HoldOnce returns then.
var ErrLost = errors.New("lease lost")

// Table is what holding leases needs of the shared database; the
// PostgreSQL store implements it. Every expiry is the server's clock.
type Table interface {
	// AcquireLease takes the lease for ttl if it is free, expired or this
	// instance's, and returns its epoch; ok is false when another holds it.
	AcquireLease(ctx context.Context, name string, ttl time.Duration) (epoch int64, ok bool, err error)
	// RenewLease extends the lease by ttl while this instance holds it at
	// epoch and it has not expired; false means it was lost.
	RenewLease(ctx context.Context, name string, epoch int64, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up at once, if still held at epoch.
	ReleaseLease(ctx context.Context, name string, epoch int64) error
}

// Defaults of Options.
const (
	DefaultTTL   = 10 * time.Second
	DefaultRenew = 3 * time.Second
)

// Options tune a Keeper.
type Options struct {
	// TTL is how long a grant lasts without renewal (default 10 s): the
	// longest a dead holder keeps others waiting.
	TTL time.Duration
	// Renew is how often the holder renews and others try to take a free
	// lease (default 3 s). It must be less than half of TTL, so one slow
	// renewal does not lose the lease.
	Renew time.Duration
	// Logger receives grants and losses (lease names only).
	Logger *slog.Logger
	// Spread, when set, bounds this Keeper's share of a group of leases
	// (see Spreading). The Table must then implement Counter, and Run
	// must run for the Keeper to take any lease of the group.
	Spread *Spread
}

// Spread describes a group of leases spread by count over the live
// instances.
type Spread struct {
	// Prefix names the group: every lease whose name starts with it
	// ("clinic/").
	Prefix string
	// Total is how many leases the group has in the whole deployment.
	Total int
	// Instance names this process's heartbeat ("instance/<Instance>");
	// two live Keepers must never share one.
	Instance string
}

// Counter counts live leases; the Table of a Keeper with Spread implements
// it. Expiry is the server's clock, as for every lease.
type Counter interface {
	// LiveLeases counts the leases whose names start with prefix and that
	// have not expired.
	LiveLeases(ctx context.Context, prefix string) (int, error)
}

// heartbeatPrefix starts the name of every instance's heartbeat lease.
const heartbeatPrefix = "instance/"

// Validate reports settings that could not hold a lease reliably.
func (o Options) Validate() error {
	o = o.withDefaults()
	if o.TTL <= 0 || o.Renew <= 0 {
		return errors.New("lease ttl and renew interval must be positive")
	}
	if 2*o.Renew >= o.TTL {
		return fmt.Errorf("lease renew interval %s must be less than half of the ttl %s", o.Renew, o.TTL)
	}
	if sp := o.Spread; sp != nil && (sp.Prefix == "" || sp.Instance == "" || sp.Total < 0 || strings.HasPrefix(sp.Prefix, heartbeatPrefix)) {
		return fmt.Errorf("lease spread needs a group prefix (not %q), a total and an instance name", heartbeatPrefix)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.Renew == 0 {
		o.Renew = DefaultRenew
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Keeper holds the leases of one process. It is safe for concurrent use:
// each Hold runs in its own goroutine.
type Keeper struct {
	table Table
	o     Options
	held  atomic.Int64 // leases held now, for spreading
	// group counts the leases of the Spread group held or being taken
	// now; live is the last count of live instances (0 until Run counted
	// them once, which ready announces).
	group     atomic.Int64
	live      atomic.Int64
	ready     chan struct{}
	readyOnce sync.Once
	// freeSince is when the counts first found a group lease nobody holds
	// (unix ns; 0 while every one is held). overAt is the live count when
	// this Keeper last took a lease beyond its share (0: none since the
	// count last grew): see reserve and shed.
	freeSince atomic.Int64
	overAt    atomic.Int64
}

// New returns a Keeper over the table. Options are checked by Validate;
// with Spread the table must implement Counter.
func New(t Table, o Options) (*Keeper, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Spread != nil {
		if _, ok := t.(Counter); !ok {
			return nil, errors.New("lease spread: the table cannot count live leases")
		}
	}
	return &Keeper{table: t, o: o.withDefaults(), ready: make(chan struct{})}, nil
}

// Run keeps this instance's heartbeat lease and counts the live instances
// every Renew interval, until ctx ends (then it gives the heartbeat up).
// It is needed only with Spread; without, it returns at once.
func (k *Keeper) Run(ctx context.Context) error {
	sp := k.o.Spread
	if sp == nil {
		return nil
	}
	name := heartbeatPrefix + sp.Instance
	counter := k.table.(Counter)
	var epoch int64
	defer func() {
		if epoch != 0 {
			k.release(name, epoch)
		}
	}()
	for {
		actx, cancel := context.WithTimeout(ctx, k.o.Renew)
		e, ok, err := k.table.AcquireLease(actx, name, k.o.TTL-k.o.Renew)
		var n, held int
		if err == nil && ok {
			epoch = e
			n, err = counter.LiveLeases(actx, heartbeatPrefix)
		}
		if err == nil && ok {
			held, err = counter.LiveLeases(actx, sp.Prefix)
		}
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			k.o.Logger.Warn("lease: heartbeat failed; trying again", "err", err)
		case ok:
			if live := int64(max(n, 1)); live != k.overAt.Load() {
				k.overAt.Store(0) // the instances changed: shed as usual again
			}
			k.live.Store(int64(max(n, 1)))
			switch {
			case held >= sp.Total:
				k.freeSince.Store(0)
			case k.freeSince.Load() == 0:
				k.freeSince.Store(time.Now().UnixNano())
			}
			k.readyOnce.Do(func() { close(k.ready) })
		}
		if !sleep(ctx, k.o.Renew) {
			return nil
		}
	}
}

// Live returns how many live instances the last count found (0 before
// the first, or without Spread).
func (k *Keeper) Live() int { return int(k.live.Load()) }

// Share returns the most leases of the Spread group this Keeper holds
// now: ceil(Total/live instances); 0 before the first count.
func (k *Keeper) Share() int {
	sp, live := k.o.Spread, k.live.Load()
	if sp == nil || live == 0 {
		return 0
	}
	return int((int64(sp.Total) + live - 1) / live)
}

// InGroup returns how many leases of the Spread group this Keeper holds.
func (k *Keeper) InGroup() int { return int(k.group.Load()) }

// inGroup reports whether name belongs to the Spread group.
func (k *Keeper) inGroup(name string) bool {
	return k.o.Spread != nil && strings.HasPrefix(name, k.o.Spread.Prefix)
}

// reserve counts one more group lease if this Keeper's share allows it,
// or if a group lease has stayed free for longer than a takeover takes
// (TTL plus two Renew intervals). The share is a target, not a limit: an
// instance that heartbeats but never tries for its share (its platform
// connection failed at start) counts as live and lowers every share, and
// a lease left free would leave a clinic's messages unread. A lease taken
// beyond the share is not shed until another instance joins (see shed).
func (k *Keeper) reserve() bool {
	for {
		h := k.group.Load()
		if h >= int64(k.Share()) {
			free := k.freeSince.Load()
			if free == 0 || time.Since(time.Unix(0, free)) <= k.o.TTL+2*k.o.Renew {
				return false
			}
			if k.group.CompareAndSwap(h, h+1) {
				k.overAt.Store(k.live.Load())
				k.freeSince.Store(0) // the next count says whether another is free
				return true
			}
			continue
		}
		if k.group.CompareAndSwap(h, h+1) {
			return true
		}
	}
}

// shed uncounts one group lease if this Keeper holds more than its share,
// unless it took a lease beyond its share since the live count last grew:
// nobody under their share took that lease then, so giving one up again
// would only leave it free.
func (k *Keeper) shed() bool {
	for {
		h := k.group.Load()
		if share := int64(k.Share()); share == 0 || h <= share {
			return false
		}
		if k.overAt.Load() != 0 {
			return false
		}
		if k.group.CompareAndSwap(h, h-1) {
			return true
		}
	}
}

// Options returns the Keeper's settings with defaults filled in.
func (k *Keeper) Options() Options { return k.o }

// Held returns how many leases this Keeper holds now.
func (k *Keeper) Held() int { return int(k.held.Load()) }

// Hold runs work each time this process holds the named lease, until ctx
// ends (then it returns nil, after giving the lease up). When the lease is
// lost, work's context is cancelled with ErrLost as its cause; once work
// has returned, Hold tries to take the lease again. When work returns an
// error of its own while the lease is held, Hold gives the lease up and
// returns that error. Work must return promptly once its context ends.
func (k *Keeper) Hold(ctx context.Context, name string, work func(context.Context) error) error {
	for {
		err := k.holdOnce(ctx, name, work, true)
		if !errors.Is(err, ErrLost) || ctx.Err() != nil {
			return err
		}
		// Lost: give the others one interval before trying again.
		if !sleep(ctx, k.o.Renew) {
			return nil
		}
	}
}

// HoldOnce waits until it takes the named lease, runs work for that one
// term and returns: nil when ctx ended, ErrLost when the lease was lost
// (work has returned by then), or work's own error (the lease given up).
// It suits work that cannot start twice in one process.
func (k *Keeper) HoldOnce(ctx context.Context, name string, work func(context.Context) error) error {
	return k.holdOnce(ctx, name, work, false)
}

// holdOnce is HoldOnce; a sheddable lease of the Spread group is given up
// when this Keeper holds more than its share.
func (k *Keeper) holdOnce(ctx context.Context, name string, work func(context.Context) error, sheddable bool) error {
	epoch, deadline, err := k.acquire(ctx, name)
	if err != nil {
		return nil // ctx ended while waiting
	}
	k.held.Add(1)
	defer k.held.Add(-1)
	counted := k.inGroup(name) // acquire reserved it in the group
	defer func() {
		if counted {
			k.group.Add(-1)
		}
	}()
	k.o.Logger.Info("lease taken", "lease", name, "epoch", epoch)

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- work(wctx) }()

	tick := time.NewTicker(k.o.Renew)
	defer tick.Stop()
	expiry := time.NewTimer(time.Until(deadline))
	defer expiry.Stop()
	lost := func(why string, err error) error {
		k.o.Logger.Warn("lease lost; stopping its work", "lease", name, "epoch", epoch, "why", why, "err", err)
		cancel(ErrLost)
		<-done
		return ErrLost
	}
	for {
		select {
		case err := <-done:
			k.release(name, epoch)
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-ctx.Done():
			cancel(context.Canceled)
			<-done
			k.release(name, epoch)
			return nil
		case <-expiry.C:
			return lost("not renewed before its deadline", nil)
		case <-tick.C:
			if sheddable && counted && k.shed() {
				counted = false // shed uncounted it
				k.o.Logger.Info("lease given up to spread the group over more instances", "lease", name, "epoch", epoch, "share", k.Share())
				cancel(ErrLost)
				<-done
				k.release(name, epoch)
				return ErrLost
			}
			sent := time.Now()
			rctx, rcancel := context.WithDeadline(ctx, deadline)
			ok, err := k.table.RenewLease(rctx, name, epoch, k.o.TTL)
			rcancel()
			if ctx.Err() != nil {
				continue // stopping: the ctx.Done case cleans up
			}
			if err != nil {
				return lost("renewal failed", err)
			}
			if !ok {
				return lost("taken over or expired", nil)
			}
			deadline = sent.Add(k.o.TTL - k.o.TTL/10)
			expiry.Reset(time.Until(deadline))
		}
	}
}

// acquire tries every Renew interval (after one more interval per lease
// already held, to spread leases) until it takes the lease or ctx ends.
// It returns the epoch and the holder's deadline.
// A lease of the Spread group is tried only within this Keeper's share
// (reserved before the try, so goroutines trying at once cannot exceed
// it) and without the handicap; it waits for Run's first count.
func (k *Keeper) acquire(ctx context.Context, name string) (int64, time.Time, error) {
	group := k.inGroup(name)
	if group {
		select {
		case <-k.ready:
		case <-ctx.Done():
			return 0, time.Time{}, ctx.Err()
		}
	}
	for first := true; ; first = false {
		if !first && !sleep(ctx, k.o.Renew) {
			return 0, time.Time{}, ctx.Err()
		}
		// The handicap is read right before trying, so a lease taken by
		// another of this Keeper's goroutines meanwhile counts.
		if h := k.held.Load(); !group && h > 0 && !sleep(ctx, time.Duration(h)*k.o.Renew) {
			return 0, time.Time{}, ctx.Err()
		}
		if ctx.Err() != nil {
			return 0, time.Time{}, ctx.Err()
		}
		if group && !k.reserve() {
			continue // this Keeper holds its share
		}
		sent := time.Now()
		actx, cancel := context.WithTimeout(ctx, k.o.Renew)
		epoch, ok, err := k.table.AcquireLease(actx, name, k.o.TTL)
		cancel()
		if err != nil && ctx.Err() == nil {
			k.o.Logger.Warn("lease: trying to take it failed; trying again", "lease", name, "err", err)
		}
		if err == nil && ok {
			return epoch, sent.Add(k.o.TTL - k.o.TTL/10), nil
		}
		if group {
			k.group.Add(-1)
		}
	}
}

// release gives the lease up with a short deadline of its own (the
// caller's context may have ended).
func (k *Keeper) release(name string, epoch int64) {
	ctx, cancel := context.WithTimeout(context.Background(), k.o.Renew)
	defer cancel()
	if err := k.table.ReleaseLease(ctx, name, epoch); err != nil {
		k.o.Logger.Warn("lease: giving it up failed; it expires by itself", "lease", name, "err", err)
		return
	}
	k.o.Logger.Info("lease given up", "lease", name, "epoch", epoch)
}

// Flag is set while a lease is held, for work that is not a goroutine of
// its own but a check made by other code ("may I run the retention pass
// now?"). Run it under Hold: Hold(ctx, name, flag.Run).
type Flag struct{ on atomic.Bool }

// Run sets the flag until ctx ends, then clears it.
func (f *Flag) Run(ctx context.Context) error {
	return f.While(func(ctx context.Context) error { <-ctx.Done(); return nil })(ctx)
}

// While returns work that sets the flag while the given work runs, so
// others can ask whether this process holds the lease work runs under.
func (f *Flag) While(work func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		f.on.Store(true)
		defer f.on.Store(false)
		return work(ctx)
	}
}

// Held reports whether the lease is held now.
func (f *Flag) Held() bool { return f.on.Load() }

// sleep waits d or until ctx ends; it reports whether the full wait passed.
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
