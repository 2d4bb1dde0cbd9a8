package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// execer runs a statement whose result is only its error: a transaction,
// or a queue sent later as one batch.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// queue collects a group's writes, to be sent to the server in one round
// trip (a pipelined batch, inside the group's transaction) instead of one
// round trip each: a step writes its state, timers, messages, audit and
// transcript lines and dedupe key, and the round trips, not the server's
// work, were most of its time. Statements run in the order queued; the
// group learns which step's statement failed (sendGroup).
type queue struct{ b pgx.Batch }

// Exec queues sql; it never fails itself (the error comes with send).
func (q *queue) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	q.b.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}
