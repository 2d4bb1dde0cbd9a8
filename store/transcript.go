package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

// # Transcript
//
// The transcript is an append-only log, one chain of lines per patient:
//
//	transcript  seq(8) -> prev(8) | uvarint len(patient) | patient | TranscriptLine (JSON)
//	states      patient -> 0x02 | head(8) | state (see EncodeState)
//
// seq is the bucket's sequence, so every line a step writes goes to the
// rightmost page: a commit of a hundred steps writes two or three
// transcript pages. Schema 4 keyed the lines patient | 0x00 | seq, so
// every step rewrote a random leaf page of the largest bucket and the
// branch pages above it, more than half of all the pages a message wrote.
// A patient's lines are found from the head kept in the patient's state
// record (the newest line's seq; the state is rewritten by the same step
// anyway, so the pointer costs no page), each line naming the one before
// it (prev, 0 for the first). The desk's view walks back from the head as
// far as it shows, the export and the erasure walk the whole chain: a
// patient's lines cost what they are, never a scan of other patients'.
//
// A line names its patient, so a chain that meets another patient's line
// (a damaged record) stops there rather than show or erase it, and prev
// is always smaller than seq, so a chain cannot loop. A state set aside
// as unreadable keeps its head in the quarantined bytes: the patient's
// fresh state continues the same chain (headFor), so the erasure still
// finds every line; a record damaged beyond its head has the head found
// again by walking the log back to the patient's newest line (scanHead).
// `aftercare check` counts each patient's lines against those its chain
// reaches.

// stateHeaded marks a state record that begins with its transcript head:
// 0x02 | head(8) | the state in either form of DecodeState.
const stateHeaded = 0x02

// quarantineTranscript is the kind of a schema 4 transcript record whose
// key could not be read, set aside by the upgrade.
const quarantineTranscript = "transcript"

// stateBody returns the state encoding inside a stored state record,
// without its transcript head.
func stateBody(raw []byte) []byte {
	if len(raw) >= 9 && raw[0] == stateHeaded {
		return raw[9:]
	}
	return raw
}

// transcriptHead returns the seq of the newest transcript line of a stored
// state record, 0 for none (or a record of schema 4 and earlier).
func transcriptHead(raw []byte) uint64 {
	if len(raw) >= 9 && raw[0] == stateHeaded {
		return binary.BigEndian.Uint64(raw[1:9])
	}
	return 0
}

// headedState returns the state record for a state encoding and its
// transcript head.
func headedState(head uint64, body []byte) []byte {
	b := make([]byte, 9, 9+len(body))
	b[0] = stateHeaded
	binary.BigEndian.PutUint64(b[1:], head)
	return append(b, body...)
}

// headFor returns the transcript head of patient p given p's stored state
// record raw: its own, or, when there is none (the state was set aside as
// unreadable and no step has written one since), the newest quarantined
// state record's, so the chain goes on from where it was.
func headFor(tx *bolt.Tx, p engine.PatientID, raw []byte) uint64 {
	if raw != nil {
		return headOf(tx, p, raw)
	}
	pre := idxKey(p, "")
	c := tx.Bucket(bQuarantine).Cursor()
	var newest []byte
	for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = c.Next() {
		var q Quarantined
		if json.Unmarshal(v, &q) == nil && q.Kind == QuarantineState && q.Patient == p {
			newest = q.Value // keys sort by seq: the last is the newest
		}
	}
	if newest == nil {
		return 0 // a new patient, or one erased
	}
	return headOf(tx, p, newest)
}

// headOf returns the transcript head of p's state record raw. A record
// without a head that reads as a state is one of schema 4 or earlier with
// no lines (the upgrade headed every state that had some); one that reads
// as nothing was damaged, its head with it, and the head is found by
// walking the log back to p's newest line (scanHead), so the patient's
// fresh state continues the chain and an erasure still finds every line.
func headOf(tx *bolt.Tx, p engine.PatientID, raw []byte) uint64 {
	if len(raw) >= 9 && raw[0] == stateHeaded {
		return binary.BigEndian.Uint64(raw[1:9])
	}
	if _, err := DecodeState(raw); err == nil {
		return 0
	}
	return scanHead(tx, p)
}

// scanHead returns the seq of p's newest transcript line, 0 for none, by
// walking the log back from its end: a read of the lines written since,
// done only for a state record damaged beyond its head.
func scanHead(tx *bolt.Tx, p engine.PatientID) uint64 {
	c := tx.Bucket(bTranscript).Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if lp, _, _, ok := parseLine(v); ok && len(k) == 8 && string(lp) == string(p) {
			return binary.BigEndian.Uint64(k)
		}
	}
	return 0
}

// linePrefix starts the encoding of one of p's lines: room for prev, and
// the patient. The line's JSON is appended to it.
func linePrefix(p engine.PatientID, room int) []byte {
	b := make([]byte, 8, 8+binary.MaxVarintLen64+len(p)+room)
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// parseLine splits a transcript record into its patient, the seq of the
// patient's previous line and the line's JSON; ok is false for a record
// that cannot be split.
func parseLine(v []byte) (patient []byte, prev uint64, line []byte, ok bool) {
	if len(v) < 9 {
		return nil, 0, nil, false
	}
	prev = binary.BigEndian.Uint64(v)
	n, w := binary.Uvarint(v[8:])
	if w <= 0 || n > uint64(len(v)-8-w) {
		return nil, 0, nil, false
	}
	rest := v[8+w:]
	return rest[:n], prev, rest[n:], true
}

// appendLines appends encoded lines (linePrefix and JSON) to p's chain,
// whose newest line is head, and returns the new head. It fills in each
// line's prev in place; a group that runs the step again fills it again.
func appendLines(tx *bolt.Tx, head uint64, encoded [][]byte) (uint64, error) {
	b := tx.Bucket(bTranscript)
	for _, v := range encoded {
		seq, err := b.NextSequence()
		if err != nil {
			return 0, err
		}
		binary.BigEndian.PutUint64(v[:8], head)
		if err := b.Put(u64(seq), v); err != nil {
			return 0, err
		}
		head = seq
	}
	return head, nil
}

// walkChain calls fn with p's lines from head back to the first, newest
// first, until fn returns false. It stops at a line that is missing,
// cannot be split or names another patient, and where prev does not go
// back.
func walkChain(b *bolt.Bucket, p engine.PatientID, head uint64, fn func(seq uint64, line []byte) bool) {
	var k [8]byte
	for seq := head; seq != 0; {
		binary.BigEndian.PutUint64(k[:], seq)
		lp, prev, line, ok := parseLine(b.Get(k[:]))
		if !ok || string(lp) != string(p) || !fn(seq, line) || prev >= seq {
			return
		}
		seq = prev
	}
}

// readTranscript returns p's lines, oldest first, at most the last limit
// (limit <= 0: all). It reads only the lines it returns.
func readTranscript(tx *bolt.Tx, p engine.PatientID, limit int) []TranscriptLine {
	head := headFor(tx, p, tx.Bucket(bStates).Get([]byte(p)))
	var rev []TranscriptLine
	walkChain(tx.Bucket(bTranscript), p, head, func(_ uint64, line []byte) bool {
		var l TranscriptLine
		if json.Unmarshal(line, &l) != nil {
			return true // one unreadable line does not hide the conversation
		}
		rev = append(rev, l)
		return limit <= 0 || len(rev) < limit
	})
	out := make([]TranscriptLine, len(rev))
	for i, l := range rev {
		out[len(rev)-1-i] = l
	}
	return out
}

// eraseTranscript deletes p's lines, the chain from head.
func eraseTranscript(tx *bolt.Tx, p engine.PatientID, head uint64) error {
	b := tx.Bucket(bTranscript)
	var seqs []uint64
	walkChain(b, p, head, func(seq uint64, _ []byte) bool {
		seqs = append(seqs, seq)
		return true
	})
	for _, seq := range seqs {
		if err := b.Delete(u64(seq)); err != nil {
			return err
		}
	}
	return nil
}

// checkTranscript reports patients whose transcript lines are not all on
// the chain from their state (at most 100), for Check: such lines are
// hidden from the desk and the export, and an erasure would leave them.
func checkTranscript(tx *bolt.Tx) []string {
	lines := map[string]int{}
	tb := tx.Bucket(bTranscript)
	var out []string
	tb.ForEach(func(k, v []byte) error {
		lp, _, _, ok := parseLine(v)
		if !ok || len(k) != 8 {
			if len(out) < 100 {
				out = append(out, fmt.Sprintf("transcript/%x: bad record", k))
			}
			return nil
		}
		lines[string(lp)]++
		return nil
	})
	for p, n := range lines {
		if len(out) >= 100 {
			break
		}
		id := engine.PatientID(p)
		reached := 0
		walkChain(tb, id, headFor(tx, id, tx.Bucket(bStates).Get([]byte(p))), func(uint64, []byte) bool {
			reached++
			return true
		})
		if reached != n {
			out = append(out, fmt.Sprintf("transcript of %q: %d lines, %d on the chain from its state", p, n, reached))
		}
	}
	return out
}

// upgradeTranscript4 rewrites a schema 4 transcript (patient | 0x00 |
// seq(8) -> JSON) as the chained log, inside Open's transaction. The
// sequences were already global, so each line keeps its seq, and its
// patient's previous line becomes its prev; each patient's state record
// gets the newest line's seq as its head. Lines of a patient without a
// state (none is written so by schema 4) keep their chain, which
// `aftercare check` reports. A key that cannot be read is set aside in
// quarantine, bytes unchanged.
func upgradeTranscript4(tx *bolt.Tx, now time.Time) error {
	old := tx.Bucket(bTranscript)
	type line struct {
		seq uint64
		v   []byte
	}
	var lines []line
	heads := map[string]uint64{}
	var bad [][2][]byte
	if err := old.ForEach(func(k, v []byte) error {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 {
			bad = append(bad, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			return nil
		}
		p := engine.PatientID(k[:i])
		seq := binary.BigEndian.Uint64(k[i+1:])
		enc := append(linePrefix(p, len(v)), v...)
		prev := heads[string(p)]
		if prev >= seq {
			prev = 0 // not increasing: not possible from NextSequence
		}
		binary.BigEndian.PutUint64(enc, prev)
		heads[string(p)] = seq
		lines = append(lines, line{seq, enc})
		return nil
	}); err != nil {
		return err
	}
	seq := old.Sequence()
	if err := tx.DeleteBucket(bTranscript); err != nil {
		return err
	}
	nb, err := tx.CreateBucket(bTranscript)
	if err != nil {
		return err
	}
	if err := nb.SetSequence(seq); err != nil {
		return err
	}
	// In seq order, each Put appends to the last leaf; in the old key
	// order (by patient) every Put was an insert into the middle of one
	// growing node, quadratic: 35 s for 200,000 lines instead of 0.5 s.
	slices.SortFunc(lines, func(a, b line) int { return cmp.Compare(a.seq, b.seq) })
	nb.FillPercent = AppendFillPercent
	for _, l := range lines {
		if err := nb.Put(u64(l.seq), l.v); err != nil {
			return err
		}
	}
	states := tx.Bucket(bStates)
	for p, head := range heads {
		raw := states.Get([]byte(p))
		if raw == nil {
			continue
		}
		if err := states.Put([]byte(p), headedState(head, stateBody(raw))); err != nil {
			return err
		}
	}
	qb := tx.Bucket(bQuarantine)
	for _, kv := range bad {
		qseq, _ := qb.NextSequence()
		b, err := json.Marshal(Quarantined{Kind: quarantineTranscript, Key: kv[0], Value: kv[1], At: now, Reason: "schema 4 transcript key could not be read", Seq: qseq})
		if err != nil {
			return err
		}
		if err := qb.Put(append(idxKey("", ""), u64(qseq)...), b); err != nil {
			return err
		}
	}
	return nil
}
