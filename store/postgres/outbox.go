package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// putOutbound queues ms; encoded, when not nil, holds ms already encoded
// (without ID); a nil element is encoded here.
func putOutbound(w *rows, ms []engine.Outbound, encoded [][]byte) error {
	for i, m := range ms {
		var b []byte
		if i < len(encoded) {
			b = encoded[i]
		}
		if b == nil {
			m.ID = 0
			var err error
			if b, err = json.Marshal(m); err != nil {
				return err
			}
		}
		d := m.Destination()
		w.message(d.Platform(), int16(m.Kind.Priority()), string(d), string(m.To), string(m.Patient), b)
	}
	return nil
}

// Outbox claims and returns up to limit queued messages of one platform,
// highest priority first and in queue order within a priority.
func (s *Store) Outbox(platform string, limit int) ([]engine.Outbound, error) {
	return s.OutboxScan(platform, limit, math.MaxInt32, nil)
}

// OutboxScan claims and returns up to limit queued messages of one
// platform in delivery order, leaving out those whose destination skip
// rejects (at most maxKeys entries are looked at). Messages claimed by
// another live instance, and every message to a destination another
// instance holds a claim for, are left to that instance; this instance's
// own earlier claims are returned again with their lease renewed.
//
// Only the messages claimed are locked, not the maxKeys looked at: a row
// lock is a write, and a dispatcher pass that locked thousands of queued
// check-ins to claim a few dozen held up every step's commit, and with it
// the red flags behind them. A message another instance locked or claimed
// between the look and the lock is left to it, with every later message
// to its destination, so one chat's messages never go out from two
// instances at once.
//
// An entry that cannot be decoded is quarantined and left out.
func (s *Store) OutboxScan(platform string, limit, maxKeys int, skip func(engine.PatientID) bool) ([]engine.Outbound, error) {
	ctx := context.Background()
	var out []engine.Outbound
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT id, dest FROM outbox o
			WHERE platform = $1 AND (claimed_by IS NULL OR claimed_by = $2 OR lease_until < now())
			AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.dest = o.dest AND x.claimed_by IS NOT NULL
				AND x.claimed_by <> $2 AND x.lease_until >= now())
			ORDER BY priority, id LIMIT $3`, platform, s.instance, maxKeys)
		if err != nil {
			return err
		}
		var ids []int64
		var dests []string
		var id int64
		var dest string
		_, err = pgx.ForEachRow(rows, []any{&id, &dest}, func() error {
			if len(ids) < limit && (skip == nil || !skip(engine.PatientID(dest))) {
				ids, dests = append(ids, id), append(dests, dest)
			}
			return nil
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id FROM outbox
			WHERE id = ANY($1) AND (claimed_by IS NULL OR claimed_by = $2 OR lease_until < now())
			FOR UPDATE SKIP LOCKED`, ids, s.instance)
		if err != nil {
			return err
		}
		locked := map[int64]bool{}
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			locked[id] = true
			return nil
		}); err != nil {
			return err
		}
		lost := map[string]bool{} // destinations with a message left to another instance
		keep := ids[:0]
		for i, id := range ids {
			if !locked[id] {
				lost[dests[i]] = true
			}
			if !lost[dests[i]] {
				keep = append(keep, id)
			}
		}
		if ids = keep; len(ids) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `UPDATE outbox SET claimed_by = $2, lease_until = now() + $3 * interval '1 millisecond'
			WHERE id = ANY($1) RETURNING id, dest, body`, ids, s.instance, s.leaseMS)
		if err != nil {
			return err
		}
		type entry struct {
			dest string
			body []byte
		}
		got := map[int64]entry{}
		var body []byte
		if _, err := pgx.ForEachRow(rows, []any{&id, &dest, &body}, func() error {
			got[id] = entry{dest, bytes.Clone(body)}
			return nil
		}); err != nil {
			return err
		}
		for _, id := range ids {
			e, ok := got[id]
			if !ok {
				continue
			}
			var m engine.Outbound
			if err := json.Unmarshal(e.body, &m); err != nil {
				if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = $1`, id); err != nil {
					return err
				}
				q := storage.Quarantined{Patient: engine.PatientID(e.dest), Kind: storage.QuarantineOutbox, Key: []byte(fmt.Sprint(id)), Value: e.body, At: time.Now(), Reason: err.Error()}
				if err := s.quarantine(ctx, tx, q); err != nil {
					return err
				}
				continue
			}
			m.ID = uint64(id)
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// OutboxAll returns up to limit queued messages of every platform in
// (platform, priority, queue) order, without claiming them (tests, tools).
func (s *Store) OutboxAll(limit int) ([]engine.Outbound, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT id, body FROM outbox ORDER BY platform, priority, id LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.Outbound, error) {
		var id int64
		var body []byte
		var m engine.Outbound
		if err := r.Scan(&id, &body); err != nil {
			return m, err
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return m, fmt.Errorf("%w: outbox entry %d: %v", storage.ErrCorrupt, id, err)
		}
		m.ID = uint64(id)
		return m, nil
	})
}

// OutboxDepth counts queued messages across platforms.
func (s *Store) OutboxDepth() (int, error) {
	var n int
	err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n)
	return n, err
}

// Delivered removes sent messages from the outbox.
func (s *Store) Delivered(ms ...engine.Outbound) error {
	if len(ms) == 0 {
		return nil
	}
	ids := make([]int64, len(ms))
	for i, m := range ms {
		ids[i] = int64(m.ID)
	}
	// Not abandoned with a caller's context: the messages were sent.
	_, err := s.pool.Exec(context.Background(), `DELETE FROM outbox WHERE id = ANY($1)`, ids)
	return err
}

// Retry records a failed attempt and when to try again; the claim stays.
func (s *Store) Retry(m engine.Outbound) error {
	id := m.ID
	m.ID = 0
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(context.Background(), `UPDATE outbox SET body = $2 WHERE id = $1`, int64(id), b)
	return err
}

// Enqueue queues messages that belong to no patient step.
func (s *Store) Enqueue(ms ...engine.Outbound) error {
	ctx := context.Background()
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		var w rows
		if err := putOutbound(&w, ms, nil); err != nil {
			return err
		}
		return w.flush(ctx, tx)
	})
	return err
}
