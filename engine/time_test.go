package engine_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestZeroTimesLeftOut holds engine.Time's promise: a time that is not set
// yet is absent from the JSON (stored records, exports), never written as
// the year 1; once set it is there.
func TestZeroTimesLeftOut(t *testing.T) {
	at := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		v       any
		absent  []string
		present []string
	}{
		{"open escalation", engine.Escalation{ID: 1, Status: "open", At: at},
			[]string{`"ack_at"`, `"resolved_at"`}, []string{`"at":"2026-01-05T10:00:00Z"`}},
		{"acknowledged escalation", engine.Escalation{ID: 1, Status: "acknowledged", At: at, AckBy: "nurse", AckAt: at.Add(time.Minute)},
			[]string{`"resolved_at"`}, []string{`"ack_at":"2026-01-05T10:01:00Z"`}},
		{"unused invite", engine.Invite{Token: "t", Visit: engine.Visit{At: at, Treatment: engine.Acupuncture}, Created: at, Expires: at.Add(time.Hour)},
			[]string{`"used_at"`}, []string{`"expires"`}},
		{"message never retried", engine.Outbound{To: "telegram:1", Text: "hi", Created: at},
			[]string{`"not_before"`}, []string{`"created"`}},
		{"message held for a retry", engine.Outbound{To: "telegram:1", Text: "hi", Created: at, NotBefore: at.Add(time.Second)},
			nil, []string{`"not_before":"2026-01-05T10:00:01Z"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if strings.Contains(s, "0001-01-01") {
				t.Errorf("zero time written: %s", s)
			}
			for _, k := range tc.absent {
				if strings.Contains(s, k) {
					t.Errorf("%s present: %s", k, s)
				}
			}
			for _, k := range tc.present {
				if !strings.Contains(s, k) {
					t.Errorf("%s missing: %s", k, s)
				}
			}
		})
	}
}
