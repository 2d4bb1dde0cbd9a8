package export_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/export"
	"github.com/aftercare-clinic/aftercare/store"
)

// TestExportLeavesUnsetTimesOut: an open escalation is exported without
// "ack_at" or "resolved_at" (not as the year 1); an acknowledged one with
// its "ack_at".
func TestExportLeavesUnsetTimesOut(t *testing.T) {
	at := time.Date(2026, 3, 3, 16, 0, 0, 0, time.UTC)
	v := engine.Visit{At: at.Add(-time.Hour), Treatment: engine.DryNeedling}
	r := store.Record{State: engine.State{Patient: "telegram:1", Consent: "yes", Visit: &v}, Visits: []engine.Visit{v},
		Escalations: []engine.Escalation{
			{ID: 1, Patient: "telegram:1", Level: engine.Urgent, Status: "open", At: at},
			{ID: 2, Patient: "telegram:1", Level: engine.Urgent, Status: "acknowledged", At: at, AckBy: "telegram:42", AckAt: at.Add(5 * time.Minute)},
		}}
	b, err := json.Marshal(export.Build(r, engine.DefaultProtocol(), at.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, "0001-01-01") {
		t.Errorf("export writes a zero time: %s", s)
	}
	if n := strings.Count(s, `"ack_at"`); n != 1 || !strings.Contains(s, `"ack_at":"2026-03-03T16:05:00Z"`) {
		t.Errorf("export has %d ack_at, want the acknowledged escalation's only: %s", n, s)
	}
	if strings.Contains(s, `"resolved_at"`) {
		t.Errorf("export has a resolved_at though nothing was resolved: %s", s)
	}
}
