package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// # Checksums
//
// Import verifies a copy by a checksum per kind of record as well as by
// counts: equal counts would not notice a row that was copied wrong, or an
// older copy whose rows have since changed. Each record is reduced to the
// fields both stores keep exactly (its ID or key and its stored bytes; a
// timer's owner kind, owner, key and due time; a desk session's columns),
// hashed with SHA-256, and the hashes are added up lane by lane, so the
// checksum does not depend on the order the rows are read in (bbolt's key
// order and PostgreSQL's index order need not agree). A quarantined
// record's time is left out: PostgreSQL keeps microseconds, bbolt
// nanoseconds.

// checksum is an order-independent digest of a set of records.
type checksum [4]uint64

// add folds one record, given as its fields, into c. Each field is
// length-prefixed, so ("ab","c") and ("a","bc") differ.
func (c *checksum) add(fields ...[]byte) {
	h := sha256.New()
	var n [8]byte
	for _, f := range fields {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	sum := h.Sum(nil)
	for i := range c {
		c[i] += binary.BigEndian.Uint64(sum[i*8:])
	}
}

// String is the checksum in hex, short enough for a report line.
func (c checksum) String() string {
	return fmt.Sprintf("%016x%016x", c[0], c[1])
}

func u64b(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func i64b(v int64) []byte  { return u64b(uint64(v)) }

// targetQueries select, for each kind of record, the same fields
// sourceChecksums (import.go) hashes, as bytes (an integer as 8 big-endian bytes).
var targetQueries = map[string]string{
	"states":      `SELECT convert_to(id, 'UTF8'), state FROM patients WHERE state IS NOT NULL`,
	"timers":      `SELECT convert_to(owner_kind, 'UTF8'), convert_to(owner, 'UTF8'), convert_to(key, 'UTF8'), int8send(due_ns) FROM timers`,
	"outbox":      `SELECT int8send(id), body FROM outbox`,
	"escalations": `SELECT int8send(id), body FROM escalations`,
	"visits":      `SELECT int8send(id), convert_to(patient, 'UTF8'), body FROM visits`,
	"audit":       `SELECT int8send(id), body FROM audit`,
	"dedupe":      `SELECT convert_to(key, 'UTF8'), int8send(at_ns) FROM dedupe`,
	"invites":     `SELECT convert_to(token, 'UTF8'), body FROM invites`,
	"read_marks":  `SELECT convert_to(patient, 'UTF8'), convert_to(mark, 'UTF8') FROM read_marks`,
	"quarantine": `SELECT int8send(id), convert_to(patient, 'UTF8'), convert_to(kind, 'UTF8'), key, coalesce(value, ''::bytea),
		convert_to(reason, 'UTF8') FROM quarantine`,
	"transcript":  `SELECT int8send(id), convert_to(patient, 'UTF8'), body FROM transcript`,
	"desk_logins": `SELECT hash, body FROM desk_logins`,
	"desk_sessions": `SELECT hash, convert_to(staff, 'UTF8'), convert_to(name, 'UTF8'), convert_to(csrf, 'UTF8'),
		int8send(created_ns), int8send(seen_ns) FROM desk_sessions`,
}

// targetChecksum computes the checksum of one kind of record in this
// database, inside tx.
func targetChecksum(ctx context.Context, tx pgx.Tx, kind string) (checksum, error) {
	var c checksum
	q, ok := targetQueries[kind]
	if !ok {
		return c, fmt.Errorf("no checksum query for %s", kind)
	}
	rows, err := tx.Query(ctx, q)
	if err != nil {
		return c, fmt.Errorf("checksum of %s: %w", kind, err)
	}
	defer rows.Close()
	n := len(rows.FieldDescriptions())
	fields := make([][]byte, n)
	dest := make([]any, n)
	for i := range dest {
		dest[i] = &fields[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return c, fmt.Errorf("checksum of %s: %w", kind, err)
		}
		c.add(fields...)
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("checksum of %s: %w", kind, err)
	}
	return c, nil
}
