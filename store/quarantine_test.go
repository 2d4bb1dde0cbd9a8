package store_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// poison writes raw bytes under key in a bucket of the (closed) database at
// path, as a torn write, a bad restore or a bug in an older version would.
func poison(t *testing.T, path, bucket string, key, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put(key, value) }); err != nil {
		t.Fatal(err)
	}
}

// noticeTo makes the store tell a staff channel about quarantined records.
func noticeTo(s *store.Store) {
	s.SetQuarantineNotice(func(q store.Quarantined) []engine.Outbound {
		return []engine.Outbound{{To: engine.StaffAddress, Channel: "console:staff", Kind: engine.KindNotice, Patient: q.Patient,
			Text: "quarantined " + q.Kind + " of " + string(q.Patient), Created: q.At}}
	})
}

func outboxKey(platform string, prio byte, seq uint64, dest string) []byte {
	k := append([]byte(platform), 0, prio)
	k = binary.BigEndian.AppendUint64(k, seq)
	return append(k, dest...)
}

// TestPoisonRecordsAreQuarantined: a record that cannot be decoded is set
// aside (bytes kept, audited, staff told) and holds up nothing else: the
// patient's step runs from a fresh state, the outbox and the schedule go on
// past it, and `check` lists it. Before the fix each of these returned
// ErrCorrupt every time, forever.
func TestPoisonRecordsAreQuarantined(t *testing.T) {
	const garbage = `{"patient":"telegram:1","step":` // torn write
	cases := []struct {
		name    string
		bucket  string
		key     []byte
		kind    string
		patient engine.PatientID
		run     func(t *testing.T, s *store.Store)
	}{
		{
			name: "state", bucket: "states", key: []byte("telegram:1"), kind: store.QuarantineState, patient: "telegram:1",
			run: func(t *testing.T, s *store.Store) {
				var in store.Input
				ok, err := s.Apply(context.Background(), step("telegram:1", "u1"), func(i store.Input) (engine.Result, error) {
					in = i
					return result(engine.State{Patient: "telegram:1"}, 1), nil
				})
				if err != nil || !ok {
					t.Fatalf("Apply on a poisoned state = %v, %v; want the step applied", ok, err)
				}
				if in.Found {
					t.Error("the step saw the poisoned state as found; want a fresh state")
				}
				if st, found, err := s.State("telegram:1"); err != nil || !found || st.Handled != 1 {
					t.Errorf("state after the step = %+v, %v, %v; want the fresh state, handled once", st, found, err)
				}
			},
		},
		{
			name: "outbox entry", bucket: "outbox", key: outboxKey("telegram", 0, 1, "telegram:1"), kind: store.QuarantineOutbox, patient: "telegram:1",
			run: func(t *testing.T, s *store.Store) {
				if err := s.Enqueue(engine.Outbound{To: "telegram:2", Kind: engine.KindReply, Text: "hello"}); err != nil {
					t.Fatal(err)
				}
				ms, err := s.Outbox("telegram", 10)
				if err != nil {
					t.Fatalf("Outbox with a poisoned entry: %v", err)
				}
				if len(ms) != 1 || ms[0].To != "telegram:2" {
					t.Errorf("Outbox = %+v; want only the message to telegram:2", ms)
				}
			},
		},
		{
			name: "timer", bucket: "timers", key: []byte("\x00\x00\x00\x00\x00\x00\x00\x01garbage"), kind: store.QuarantineTimer,
			run: func(t *testing.T, s *store.Store) {
				_, err := s.Apply(context.Background(), step("telegram:3", ""), func(store.Input) (engine.Result, error) {
					return result(engine.State{Patient: "telegram:3"}, 0, engine.Timer{Key: "checkin:24h", At: t0}), nil
				})
				if err != nil {
					t.Fatal(err)
				}
				due, err := s.DueBefore(t0, 10)
				if err != nil {
					t.Fatalf("DueBefore with a malformed timer: %v", err)
				}
				if len(due) != 1 || due[0].Patient != "telegram:3" {
					t.Errorf("DueBefore = %+v; want telegram:3's check-in", due)
				}
				if d, ok, err := s.NextDue(); err != nil || !ok || d.Patient != "telegram:3" {
					t.Errorf("NextDue = %+v, %v, %v; want telegram:3's check-in", d, ok, err)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.db")
			open(t, path).Close()
			poison(t, path, c.bucket, c.key, []byte(garbage))
			s := open(t, path)
			defer s.Close()
			noticeTo(s)
			c.run(t, s)

			q, err := s.Quarantine()
			if err != nil {
				t.Fatal(err)
			}
			if len(q) != 1 || q[0].Kind != c.kind || q[0].Patient != c.patient || string(q[0].Value) != garbage && c.kind != store.QuarantineTimer || string(q[0].Key) != string(c.key) {
				t.Fatalf("quarantine = %+v; want the %s record of %q with its bytes", q, c.kind, c.patient)
			}
			audit, _ := s.Audit()
			if len(audit) != 1 || audit[0].Action != "record_quarantined" || audit[0].Patient != c.patient {
				t.Errorf("audit = %+v; want one record_quarantined line", audit)
			}
			notices, _ := s.Outbox("console", 10)
			if len(notices) != 1 || notices[0].Kind != engine.KindNotice || !strings.Contains(notices[0].Text, string(c.patient)) {
				t.Errorf("staff notices = %+v; want one naming %q", notices, c.patient)
			}
			s.Close()
			rep, err := store.Check(path)
			if err != nil {
				t.Fatal(err)
			}
			if out := rep.String(); !strings.Contains(out, "QUARANTINED: #1 "+c.kind) || !rep.OK() {
				t.Errorf("check report does not list the quarantined record:\n%s", out)
			}
		})
	}
}

// TestPoisonEscalationEndsItsLadder: an escalation record that cannot be
// decoded is quarantined and its ladder timer consumed, instead of failing
// the scheduler pass (and every timer due after it) forever.
func TestPoisonEscalationEndsItsLadder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	open(t, path).Close()
	poison(t, path, "escalations", binary.BigEndian.AppendUint64(nil, 7), []byte("{"))
	tk := binary.BigEndian.AppendUint64(nil, uint64(t0.UnixNano()))
	tk = append(append(append(tk, "e7"...), 0), "ladder:1"...)
	poison(t, path, "timers", tk, nil)
	s := open(t, path)
	defer s.Close()
	noticeTo(s)
	due := &store.Due{Owner: store.EscalationOwner(7), Key: "ladder:1", At: t0}
	applied, err := s.ApplyEscalation(context.Background(), 7, due, t0, func(*engine.Escalation) (store.EscalationUpdate, error) {
		t.Error("fn called with an unreadable escalation")
		return store.EscalationUpdate{}, nil
	})
	if err != nil || !applied {
		t.Fatalf("ApplyEscalation = %v, %v; want the ladder step consumed", applied, err)
	}
	if q, _ := s.Quarantine(); len(q) != 1 || q[0].Kind != store.QuarantineEscalation {
		t.Errorf("quarantine = %+v; want the escalation record", q)
	}
	if d, err := s.DueBefore(t0, 10); err != nil || len(d) != 0 {
		t.Errorf("due after the step = %+v, %v; want the ladder ended", d, err)
	}
}
