package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

func outboxPrefix(platform string) []byte { return append([]byte(platform), 0) }

// decodeOutbound decodes an outbox entry. The ID comes from the key: entries
// are encoded before the transaction that numbers them (see Prepared).
func decodeOutbound(k, v []byte) (engine.Outbound, error) {
	var m engine.Outbound
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("%w: outbox entry: %v", ErrCorrupt, err)
	}
	if i := bytes.IndexByte(k, 0); i >= 0 && len(k) >= i+10 {
		m.ID = binary.BigEndian.Uint64(k[i+2 : i+10])
	}
	return m, nil
}

// outboxKey orders by platform, priority and sequence; the destination
// at the end lets the dispatcher skip held-back chats without decoding.
func outboxKey(m engine.Outbound) []byte {
	d := m.Destination()
	pl := d.Platform()
	b := make([]byte, 0, len(pl)+10+len(d))
	b = append(append(b, pl...), 0, byte(m.Kind.Priority()))
	b = binary.BigEndian.AppendUint64(b, m.ID)
	return append(b, d...)
}

// Outbox returns up to limit queued messages for one platform, highest
// priority first and in queue order within a priority.
func (s *Store) Outbox(platform string, limit int) ([]engine.Outbound, error) {
	return s.OutboxScan(platform, limit, math.MaxInt, nil)
}

// OutboxScan returns up to limit queued messages of one platform, in
// delivery order, leaving out those whose destination skip rejects. skip
// sees only the destination, read from the key, so held-back messages cost
// no decoding; at most maxKeys keys are looked at.
//
// An entry that cannot be decoded is left out and quarantined (see
// Quarantined), so it cannot hold up the messages queued behind it.
func (s *Store) OutboxScan(platform string, limit, maxKeys int, skip func(engine.PatientID) bool) ([]engine.Outbound, error) {
	var out []engine.Outbound
	var bad []badRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		out, bad = nil, nil
		c := tx.Bucket(bOutbox).Cursor()
		p := outboxPrefix(platform)
		n := 0
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(out) < limit && n < maxKeys; k, v = c.Next() {
			n++
			if len(k) > len(p)+9 && skip != nil && skip(engine.PatientID(k[len(p)+9:])) {
				continue
			}
			m, err := decodeOutbound(k, v)
			if err != nil {
				bad = append(bad, badRecord{key: bytes.Clone(k), patient: outboxDestination(platform, k), reason: err.Error()})
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.quarantineOutbox(bad)
}

// quarantineOutbox quarantines outbox entries a scan could not decode.
func (s *Store) quarantineOutbox(bad []badRecord) error {
	return s.quarantineFound(QuarantineOutbox, bOutbox, bad, func(v []byte) bool {
		var m engine.Outbound
		return json.Unmarshal(v, &m) != nil
	})
}

// OutboxDepth counts queued messages across platforms.
func (s *Store) OutboxDepth() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bOutbox).Stats().KeyN
		return nil
	})
	return n, err
}

// Delivered removes sent messages from the outbox.
func (s *Store) Delivered(ms ...engine.Outbound) error {
	if len(ms) == 0 {
		return nil
	}
	// Not abandoned with a caller's context: the messages were sent, and
	// forgetting that would send them again.
	return s.commit.do(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		for _, m := range ms {
			if err := b.Delete(outboxKey(m)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Retry records a failed attempt and when to try again.
func (s *Store) Retry(m engine.Outbound) error {
	return s.commit.do(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		k := outboxKey(m)
		if b.Get(k) == nil {
			return nil
		}
		v, err := encodeOutbound(m)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
}

// OutboxAll returns up to limit queued messages of every platform, in key
// order (platform, priority, sequence).
// Entries that cannot be decoded are left out and quarantined.
func (s *Store) OutboxAll(limit int) ([]engine.Outbound, error) {
	var out []engine.Outbound
	var bad []badRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		out, bad = nil, nil
		c := tx.Bucket(bOutbox).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			m, err := decodeOutbound(k, v)
			if err != nil {
				platform, _, _ := bytes.Cut(k, []byte{0})
				bad = append(bad, badRecord{key: bytes.Clone(k), patient: outboxDestination(string(platform), k), reason: err.Error()})
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.quarantineOutbox(bad)
}

// Enqueue queues messages that belong to no patient step (answers to
// staff, operational notices).
func (s *Store) Enqueue(ms ...engine.Outbound) error {
	return s.commit.do(context.Background(), func(tx *bolt.Tx) error { return putOutbound(tx, ms, nil) })
}

// putOutbound queues ms, numbering each in queue order. encoded, when not
// nil, holds ms already encoded (with no ID: the key carries it); a nil
// element is encoded here.
func putOutbound(tx *bolt.Tx, ms []engine.Outbound, encoded [][]byte) error {
	ob := tx.Bucket(bOutbox)
	for i, m := range ms {
		var b []byte
		if i < len(encoded) {
			b = encoded[i]
		}
		if b == nil {
			var err error
			if b, err = encodeOutbound(m); err != nil {
				return err
			}
		}
		m.ID, _ = ob.NextSequence()
		if err := ob.Put(outboxKey(m), b); err != nil {
			return err
		}
	}
	return nil
}

// EncodeMessages encodes a step's messages for Prepared.Messages, so the
// work is done before the write transaction instead of inside it.
func EncodeMessages(ms []engine.Outbound) ([][]byte, error) {
	out := make([][]byte, len(ms))
	for i, m := range ms {
		b, err := encodeOutbound(m)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// encodeOutbound is the one encoding of an outbox entry, the inverse of
// decodeOutbound: without the ID, which the key carries.
func encodeOutbound(m engine.Outbound) ([]byte, error) {
	m.ID = 0
	if !jsonTimeOK(m.Created) || !jsonTimeOK(m.NotBefore) {
		return json.Marshal(m) // reports the time it cannot write
	}
	return appendOutboundJSON(nil, &m), nil
}
