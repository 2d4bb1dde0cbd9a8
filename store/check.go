package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Report is the result of Check.
type Report struct {
	Path     string
	Schema   uint64
	Counts   map[string]int
	Problems []string
	// Quarantined lists the records set aside because they could not be
	// decoded (kept, not problems of the file: the bot runs on without them).
	Quarantined []Quarantined
}

// OK reports whether no problem was found.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// String formats the report for people.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "database %s (schema %d)\n", r.Path, r.Schema)
	for _, name := range allBuckets {
		fmt.Fprintf(&b, "  %-12s %d entries\n", name, r.Counts[string(name)])
	}
	if r.OK() {
		b.WriteString("no problems found\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM: %s\n", p)
	}
	if len(r.Quarantined) > 0 {
		fmt.Fprintf(&b, "%d record(s) in quarantine (unreadable, set aside with their bytes; see the audit trail):\n", len(r.Quarantined))
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(&b, "QUARANTINED: %s\n", q)
	}
	return b.String()
}

// Check opens path read-only and verifies page integrity (bbolt's own
// check), the schema, that every record decodes, and that the timer index
// and the patient indexes agree with what they index.
func Check(path string) (Report, error) {
	r := Report{Path: path, Counts: map[string]int{}}
	if _, err := os.Stat(path); err != nil {
		return r, fmt.Errorf("check: %w", err)
	}
	st, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		return r, fmt.Errorf("check: %w", err)
	}
	defer st.Close()
	err = st.db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			r.Problems = append(r.Problems, e.Error())
		}
		if v := tx.Bucket(bMeta).Get([]byte("schema")); len(v) == 8 {
			r.Schema = binary.BigEndian.Uint64(v)
		}
		decoders := map[string]func([]byte) error{
			string(bStates):      func(v []byte) error { _, err := DecodeState(v); return err },
			string(bOutbox):      func(v []byte) error { var x engine.Outbound; return json.Unmarshal(v, &x) },
			string(bEscalations): func(v []byte) error { var x engine.Escalation; return json.Unmarshal(v, &x) },
			string(bAudit):       func(v []byte) error { var x engine.Audit; return json.Unmarshal(v, &x) },
			string(bInvites):     func(v []byte) error { var x engine.Invite; return json.Unmarshal(v, &x) },
		}
		for _, name := range allBuckets {
			dec := decoders[string(name)]
			tx.Bucket(name).ForEach(func(k, v []byte) error {
				r.Counts[string(name)]++
				if dec != nil {
					if err := dec(v); err != nil && len(r.Problems) < 100 {
						r.Problems = append(r.Problems, fmt.Sprintf("%s/%q: %v", name, k, err))
					}
				}
				return nil
			})
		}
		if q, err := listQuarantine(tx); err != nil {
			r.Problems = append(r.Problems, err.Error())
		} else {
			r.Quarantined = q
		}
		r.Problems = append(r.Problems, checkIndexes(tx)...)
		r.Problems = append(r.Problems, checkTranscript(tx)...)
		timers := tx.Bucket(bTimers)
		return tx.Bucket(bTimerIdx).ForEach(func(k, v []byte) error {
			if timers.Get(append(bytes.Clone(v), k...)) == nil && len(r.Problems) < 100 {
				r.Problems = append(r.Problems, fmt.Sprintf("timer index %q points at a missing timer", k))
			}
			return nil
		})
	})
	return r, err
}
