package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// # Leases
//
// A lease is a row of the leases table naming the instance that holds it
// (the Store's Instance), a fencing epoch and an expiry in the server's
// clock. AcquireLease takes a lease that is free, expired or already this
// instance's; RenewLease extends it only while this instance still holds
// it at the same epoch and it has not expired, so a holder that stalled
// past its expiry learns it lost the lease even when nobody took it yet.
// Every decision compares against the server's now(), never an
// instance's clock, so instances with skewed clocks agree on who holds
// what. The package lease runs the acquire/renew loop on top of these.

// AcquireLease takes the named lease for ttl if it is free, expired or
// already held by this instance, and returns its epoch; ok is false when
// another instance holds it. The epoch grows by one whenever the lease
// changes hands.
func (s *Store) AcquireLease(ctx context.Context, name string, ttl time.Duration) (epoch int64, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `INSERT INTO leases AS l (name, holder, epoch, expires_at)
		VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET
			holder = excluded.holder,
			epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at >= now() THEN l.epoch ELSE l.epoch + 1 END,
			expires_at = excluded.expires_at
		WHERE l.expires_at < now() OR l.holder = excluded.holder
		RETURNING epoch`, name, s.instance, ttl.Milliseconds()).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres store: acquiring lease %s: %w", name, err)
	}
	return epoch, true, nil
}

// RenewLease extends the named lease by ttl from the server's now. It
// reports false when this instance no longer holds it at epoch: it
// expired, or another instance took it.
func (s *Store) RenewLease(ctx context.Context, name string, epoch int64, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = now() + $4 * interval '1 millisecond'
		WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at >= now()`, name, s.instance, epoch, ttl.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("postgres store: renewing lease %s: %w", name, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease gives the named lease up at once (a clean stop), if this
// instance still holds it at epoch, so another instance need not wait for
// it to expire.
func (s *Store) ReleaseLease(ctx context.Context, name string, epoch int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = now() - interval '1 millisecond'
		WHERE name = $1 AND holder = $2 AND epoch = $3`, name, s.instance, epoch)
	if err != nil {
		return fmt.Errorf("postgres store: releasing lease %s: %w", name, err)
	}
	return nil
}

// LiveLeases counts the leases whose names start with prefix and that
// have not expired by the server's clock (lease.Counter: the live
// instances' heartbeats, to spread the clinics' leases over them).
func (s *Store) LiveLeases(ctx context.Context, prefix string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM leases WHERE starts_with(name, $1) AND expires_at >= now()`, prefix).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres store: counting leases: %w", err)
	}
	return n, nil
}

// LeaseHolder is one lease as the leases table has it, for operators and
// tests.
type LeaseHolder struct {
	// Name is the lease's name ("clinic/default/telegram").
	Name string
	// Holder is the instance holding it, as its Store's Instance.
	Holder string
	// Epoch is the fencing token: how many times it changed hands.
	Epoch int64
	// Live reports whether it had not expired when read.
	Live bool
}

// Leases returns every lease row, ordered by name.
func (s *Store) Leases(ctx context.Context) ([]LeaseHolder, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, holder, epoch, expires_at >= now() FROM leases ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: reading leases: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (LeaseHolder, error) {
		var l LeaseHolder
		err := r.Scan(&l.Name, &l.Holder, &l.Epoch, &l.Live)
		return l, err
	})
}
