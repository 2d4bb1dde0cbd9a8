package store

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// FuzzTranscriptRecord: a transcript record is split back into the
// patient, prev and line it was built from, and any bytes at all (a
// damaged record) are refused or split without a panic.
func FuzzTranscriptRecord(f *testing.F) {
	f.Add("telegram:1", uint64(3), []byte(`{"at":"2026-01-05T10:00:00Z","from":"patient"}`), []byte{})
	f.Add("", uint64(0), []byte{}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p string, prev uint64, line, junk []byte) {
		v := append(linePrefix(engine.PatientID(p), len(line)), line...)
		binary.BigEndian.PutUint64(v, prev)
		gp, gprev, gline, ok := parseLine(v)
		if !ok || string(gp) != p || gprev != prev || !bytes.Equal(gline, line) {
			t.Fatalf("parseLine(record of %q, %d, %q) = %q, %d, %q, %v", p, prev, line, gp, gprev, gline, ok)
		}
		if gp, _, gline, ok := parseLine(junk); ok && len(gp)+len(gline)+8 > len(junk) {
			t.Fatalf("parseLine(%x) returned more than it was given", junk)
		}
	})
}
