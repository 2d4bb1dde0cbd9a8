package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// A conversation state is stored in a compact binary form: it is written at
// every step, and JSON cost more CPU to write and read than the rest of the
// step outside triage and bbolt, and made the record twice as large. The
// first byte says which form a record is in:
//
//	'{'   JSON, as schemas 1 and 2 wrote every state (still read; rewritten in
//	      binary at the patient's next step)
//	0x01  binary, version 1: the fields of engine.State in declaration
//	      order (strings and counts as uvarint-prefixed, integers as
//	      varints, times as a kind byte then seconds, nanoseconds and
//	      offset, map keys sorted so equal states encode equally)
//
// A new field in engine.State needs a new version byte here: the round
// trip test fills every field by reflection and fails until it is encoded.
// Records leave the store readable whatever their form: DecodeState,
// `aftercare check`, the export and Walk (which hands states on as JSON)
// all decode both.
const stateBinaryV1 = 0x01

// errStateEncoding is the cause of a state record that cannot be decoded.
var errStateEncoding = errors.New("bad state record")

// EncodeState encodes a conversation state as the states bucket keeps it
// (the binary form).
func EncodeState(st engine.State) ([]byte, error) {
	w := stateWriter{b: make([]byte, 0, 192+len(st.Checkins)*48)}
	w.b = append(w.b, stateBinaryV1)
	w.str(string(st.Patient))
	w.str(st.DisplayName)
	w.visit(st.Visit)
	w.visit(st.Draft)
	w.str(string(st.Step))
	w.str(st.Then)
	w.uint(uint64(len(st.Ready)))
	if len(st.Ready) > 0 {
		keys := make([]string, 0, len(st.Ready))
		for k := range st.Ready {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			w.str(k)
			w.str(st.Ready[k])
		}
	}
	w.uint(uint64(len(st.Checkins)))
	for _, c := range st.Checkins {
		w.b = binary.BigEndian.AppendUint64(w.b, math.Float64bits(c.Hours))
		w.time(c.Sent)
		w.str(c.Feel)
		if c.Soreness == nil {
			w.bool(false)
		} else {
			w.bool(true)
			w.int(int64(*c.Soreness))
		}
		w.str(c.Signs)
		w.str(c.Outcome)
		w.bool(c.Nudged)
	}
	w.uint(uint64(len(st.EarlierScores)))
	for _, e := range st.EarlierScores {
		w.time(e.Visit)
		w.b = binary.BigEndian.AppendUint64(w.b, math.Float64bits(e.Hours))
		w.int(int64(e.Soreness))
	}
	w.int(int64(st.Current))
	if cl := st.Clarify; cl == nil {
		w.bool(false)
	} else {
		w.bool(true)
		w.str(cl.Ask.Text)
		w.uint(uint64(len(cl.Ask.Choices)))
		for _, c := range cl.Ask.Choices {
			w.str(c.ID)
			w.str(c.Label)
			w.int(int64(c.Level))
		}
		w.uint(uint64(len(cl.Signs)))
		for _, s := range cl.Signs {
			w.str(s)
		}
		w.str(cl.Subject)
		w.str(cl.Said)
		w.int(int64(cl.Fallback))
		w.time(cl.Asked)
		w.bool(cl.Net)
	}
	w.bool(st.Stopped)
	w.str(st.Consent)
	w.bool(st.Paused)
	w.time(st.HeldUntil)
	w.time(st.AskedPerson)
	w.time(st.StaffReplied)
	w.bool(st.Unreachable)
	w.time(st.Escalated)
	w.time(st.Silent)
	w.bool(st.Greeted)
	w.time(st.LastActive)
	w.str(st.Lang)
	w.bool(st.LangChosen)
	w.int(int64(st.Handled))
	return w.b, nil
}

// DecodeState decodes a stored conversation state in either form (see
// stateBinaryV1). An error wraps ErrCorrupt.
func DecodeState(raw []byte) (engine.State, error) {
	var st engine.State
	if len(raw) == 0 {
		return st, fmt.Errorf("%w: %w: empty", ErrCorrupt, errStateEncoding)
	}
	switch raw[0] {
	case stateHeaded: // the transcript head, then the state (transcript.go)
		if len(raw) < 10 || raw[9] == stateHeaded {
			return st, fmt.Errorf("%w: %w: short record", ErrCorrupt, errStateEncoding)
		}
		return DecodeState(raw[9:])
	case '{':
		if err := json.Unmarshal(raw, &st); err != nil {
			return engine.State{}, fmt.Errorf("%w: %w: %v", ErrCorrupt, errStateEncoding, err)
		}
		return st, nil
	case stateBinaryV1:
	default:
		return st, fmt.Errorf("%w: %w: unknown form %#x", ErrCorrupt, errStateEncoding, raw[0])
	}
	r := stateReader{b: raw[1:]}
	st.Patient = engine.PatientID(r.str())
	st.DisplayName = r.str()
	st.Visit = r.visit()
	st.Draft = r.visit()
	st.Step = engine.StepID(r.str())
	st.Then = r.str()
	if n := r.count(2); n > 0 {
		st.Ready = make(map[string]string, n)
		for range n {
			k := r.str()
			st.Ready[k] = r.str()
		}
	}
	if n := r.count(13); n > 0 {
		st.Checkins = make([]engine.Checkin, n)
		for i := range st.Checkins {
			c := &st.Checkins[i]
			c.Hours = math.Float64frombits(r.u64())
			c.Sent = r.time()
			c.Feel = r.str()
			if r.bool() {
				v := int(r.int())
				c.Soreness = &v
			}
			c.Signs = r.str()
			c.Outcome = r.str()
			c.Nudged = r.bool()
		}
	}
	if n := r.count(10); n > 0 {
		st.EarlierScores = make([]engine.EarlierScore, n)
		for i := range st.EarlierScores {
			e := &st.EarlierScores[i]
			e.Visit = r.time()
			e.Hours = math.Float64frombits(r.u64())
			e.Soreness = int(r.int())
		}
	}
	st.Current = int(r.int())
	if r.bool() {
		cl := &engine.PendingClarify{}
		cl.Ask.Text = r.str()
		if n := r.count(3); n > 0 {
			cl.Ask.Choices = make([]engine.ClarifyChoice, n)
			for i := range cl.Ask.Choices {
				c := &cl.Ask.Choices[i]
				c.ID = r.str()
				c.Label = r.str()
				c.Level = engine.Level(r.int())
			}
		}
		if n := r.count(1); n > 0 {
			cl.Signs = make([]string, n)
			for i := range cl.Signs {
				cl.Signs[i] = r.str()
			}
		}
		cl.Subject = r.str()
		cl.Said = r.str()
		cl.Fallback = engine.Level(r.int())
		cl.Asked = r.time()
		cl.Net = r.bool()
		st.Clarify = cl
	}
	st.Stopped = r.bool()
	st.Consent = r.str()
	st.Paused = r.bool()
	st.HeldUntil = r.time()
	st.AskedPerson = r.time()
	st.StaffReplied = r.time()
	st.Unreachable = r.bool()
	st.Escalated = r.time()
	st.Silent = r.time()
	st.Greeted = r.bool()
	st.LastActive = r.time()
	st.Lang = r.str()
	st.LangChosen = r.bool()
	st.Handled = int(r.int())
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes left over", len(r.b))
	}
	if r.err != nil {
		return engine.State{}, fmt.Errorf("%w: %w: %v", ErrCorrupt, errStateEncoding, r.err)
	}
	return st, nil
}

// stateJSON returns a stored state as JSON, for readers outside the store
// (Walk): JSON records as they are, binary ones decoded and re-encoded.
// A record that cannot be decoded is returned unchanged.
func stateJSON(raw []byte) []byte {
	if b := stateBody(raw); len(b) > 0 && b[0] == '{' {
		return b
	}
	if len(raw) == 0 || raw[0] == '{' {
		return raw
	}
	st, err := DecodeState(raw)
	if err != nil {
		return raw
	}
	b, err := json.Marshal(st)
	if err != nil {
		return raw
	}
	return b
}

type stateWriter struct{ b []byte }

func (w *stateWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *stateWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }

func (w *stateWriter) str(s string) {
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *stateWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// Time kinds: the zero time, a UTC time, a time with a zone offset.
const (
	timeZero = iota
	timeUTC
	timeOffset
)

// time keeps what JSON keeps of a time: the instant and the zone offset
// (not the zone's name, nor the monotonic reading).
func (w *stateWriter) time(t time.Time) {
	if t.IsZero() {
		w.b = append(w.b, timeZero)
		return
	}
	_, off := t.Zone()
	if off == 0 {
		w.b = append(w.b, timeUTC)
	} else {
		w.b = append(w.b, timeOffset)
	}
	w.int(t.Unix())
	w.uint(uint64(t.Nanosecond()))
	if off != 0 {
		w.int(int64(off))
	}
}

func (w *stateWriter) visit(v *engine.Visit) {
	if v == nil {
		w.bool(false)
		return
	}
	w.bool(true)
	w.time(v.At)
	w.str(string(v.Treatment))
	w.str(v.Area)
	w.bool(v.Acute)
	w.bool(v.Child)
	w.bool(v.AcuteUnknown)
	w.bool(v.ChildUnknown)
	w.str(v.TZ)
	w.str(v.Lang)
	w.str(v.Source)
	w.bool(v.Consent)
	if v.Identity == nil {
		w.bool(false)
	} else {
		w.bool(true)
		w.str(v.Identity.Name)
		w.str(v.Identity.Chart)
		w.str(v.Identity.Phone)
	}
}

// stateReader reads what stateWriter wrote; the first error sticks and
// every later read returns a zero value.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or malformed %s", what)
	}
	r.b = nil
}

func (r *stateReader) uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail("number")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// count reads a number of items of at least minBytes each, refusing one the
// rest of the record cannot hold (so a corrupt count allocates nothing).
func (r *stateReader) count(minBytes int) int {
	n := r.uint()
	if n > uint64(len(r.b)/max(minBytes, 1)) {
		r.fail("count")
		return 0
	}
	return int(n)
}

func (r *stateReader) str() string {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *stateReader) bool() bool {
	if len(r.b) == 0 {
		r.fail("flag")
		return false
	}
	v := r.b[0]
	r.b = r.b[1:]
	if v > 1 {
		r.fail("flag")
		return false
	}
	return v == 1
}

// time reads a time as JSON would have decoded it: UTC, or, for an offset,
// the local zone when it has that offset at that instant (time.Parse's
// rule), else a zone fixed at the offset.
func (r *stateReader) time() time.Time {
	if len(r.b) == 0 {
		r.fail("time")
		return time.Time{}
	}
	kind := r.b[0]
	r.b = r.b[1:]
	switch kind {
	case timeZero:
		return time.Time{}
	case timeUTC, timeOffset:
	default:
		r.fail("time")
		return time.Time{}
	}
	sec := r.int()
	nsec := r.uint()
	if nsec >= 1e9 {
		r.fail("time")
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	if kind == timeUTC {
		return t.UTC()
	}
	off := int(r.int())
	if _, local := t.Zone(); local == off {
		return t
	}
	return t.In(time.FixedZone("", off))
}

func (r *stateReader) visit() *engine.Visit {
	if !r.bool() {
		return nil
	}
	v := &engine.Visit{}
	v.At = r.time()
	v.Treatment = engine.Treatment(r.str())
	v.Area = r.str()
	v.Acute = r.bool()
	v.Child = r.bool()
	v.AcuteUnknown = r.bool()
	v.ChildUnknown = r.bool()
	v.TZ = r.str()
	v.Lang = r.str()
	v.Source = r.str()
	v.Consent = r.bool()
	if r.bool() {
		v.Identity = &engine.Identity{Name: r.str(), Chart: r.str(), Phone: r.str()}
	}
	return v
}

// EncodeState encodes st in the form this store keeps states in, so a
// caller preparing a step outside the transaction (Step.Prepared) writes
// what the store itself would.
func (s *Store) EncodeState(st engine.State) ([]byte, error) { return EncodeState(st) }
