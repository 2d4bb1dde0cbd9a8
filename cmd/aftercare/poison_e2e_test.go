package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestTelegramPoisonStateBlocksNobody: patient A's stored state cannot be
// decoded (a torn write). A writes a red flag, then patient B does. B is
// escalated (before the fix the poll loop retried A's update forever and
// never reached B's); A's message is triaged from a fresh state and
// escalated too; A's bytes are kept in quarantine, audited, staff get a
// notice naming only A's ID, and `aftercare check` lists the record.
func TestTelegramPoisonStateBlocksNobody(t *testing.T) {
	w := startTelegramWorld(t)
	a, b := tgUser(5101), tgUser(5102)
	n := w.count(a.ID)
	w.say(t, a, "hi")
	w.next(t, a.ID, n, "") // A has a stored state now

	w.stop()
	db := filepath.Join(w.dataDir, "aftercare.db")
	garbage := []byte(`{"patient":"telegram:5101","step":"ch`) // torn write
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("states")).Put([]byte(tgPatient(a.ID)), garbage)
	}); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	w.start()

	na, nb, ns := w.count(a.ID), w.count(b.ID), w.count(tgStaff)
	w.say(t, a, "I fainted in the car park")
	w.say(t, b, "I fainted in the car park")
	w.next(t, b.ID, nb, "Call 911 now")
	w.next(t, tgStaff, ns, string(tgPatient(b.ID)))
	w.next(t, a.ID, na, "Call 911 now")
	staff := func() string {
		var sb strings.Builder
		for _, m := range w.read(tgStaff)[ns:] {
			sb.WriteString(m.Text + "\n")
		}
		return sb.String()
	}
	tgEventually(t, 10*time.Second, "staff alerted about A and told about A's record", func() bool {
		s := staff()
		return strings.Contains(s, "EMERGENCY") && strings.Count(s, string(tgPatient(a.ID))) >= 2 && strings.Contains(s, "[DATA PROBLEM]")
	})
	for _, m := range w.read(tgStaff)[ns:] {
		if strings.Contains(m.Text, "[DATA PROBLEM]") && (strings.Contains(m.Text, "fainted") || strings.Contains(m.Text, a.FirstName)) {
			t.Errorf("the staff notice carries more than the patient ID: %q", m.Text)
		}
	}

	q, err := w.run.Store.Quarantine()
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Patient != tgPatient(a.ID) || !bytes.Equal(q[0].Value, garbage) {
		t.Fatalf("quarantine = %+v; want A's state with its bytes", q)
	}
	audit, err := w.run.Store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range audit {
		audited = audited || e.Action == "record_quarantined" && e.Patient == tgPatient(a.ID)
	}
	if !audited {
		t.Error("no audit line for the quarantined state")
	}
	if escs, _ := w.run.Store.Escalations(); !hasEscalation(escs, tgPatient(a.ID)) || !hasEscalation(escs, tgPatient(b.ID)) {
		t.Errorf("escalations = %+v; want one for A and one for B", escs)
	}

	w.stop()
	out := &lockedBuffer{}
	if err := (&Main{Args: []string{"check", db}, Stdout: out}).Run(t.Context()); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "QUARANTINED: #1 state of "+string(tgPatient(a.ID))) {
		t.Errorf("check does not list the quarantined state:\n%s", out)
	}
}

func hasEscalation(escs []engine.Escalation, p engine.PatientID) bool {
	for _, e := range escs {
		if e.Patient == p {
			return true
		}
	}
	return false
}
