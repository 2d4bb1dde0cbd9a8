package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/metrics"
	"github.com/aftercare-clinic/aftercare/store"
)

type gauges struct{}

func (gauges) OutboxDepth() (int, error) { return 7, nil }
func (gauges) CommitStats() store.CommitStats {
	return store.CommitStats{Commits: 3, Writes: 250}
}
func (gauges) Escalations() ([]engine.Escalation, error) {
	return []engine.Escalation{{Level: engine.Urgent, Status: "open"}, {Level: engine.Watch, Status: "open"}, {Level: engine.Emergency, Status: "acknowledged"}}, nil
}

func TestExposition(t *testing.T) {
	m := metrics.New(gauges{})
	m.Received("telegram")
	m.Sent("telegram", engine.KindCheckin)
	m.SendFailed("telegram", true)
	m.Escalated(engine.Emergency)
	m.CheckinFired(2 * time.Hour)
	m.Step(3 * time.Millisecond)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`aftercare_messages_in_total{platform="telegram"} 1`,
		`aftercare_messages_out_total{kind="checkin",platform="telegram"} 1`,
		`aftercare_send_errors_total{platform="telegram",reason="rate_limited"} 1`,
		`aftercare_escalations_total{level="emergency"} 1`,
		`aftercare_checkins_due_total 1`,
		`aftercare_checkins_late_total 1`,
		`aftercare_outbox_depth 7`,
		`aftercare_alerts_unacknowledged 1`,
		`aftercare_store_step_seconds_count 1`,
		`aftercare_store_commits_total 3`,
		`aftercare_store_commit_writes_total 250`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestRegistryLabelsEachClinic: with several clinics, every series of a
// clinic carries its id, one clinic's counts never show under another's,
// and the runtime's collectors appear once (no duplicate registration).
func TestRegistryLabelsEachClinic(t *testing.T) {
	r := metrics.NewRegistry()
	a := r.Clinic("riverside", gauges{})
	b := r.Clinic("lake", nil)
	a.Escalated(engine.Emergency)
	b.Received("telegram")
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	cases := []struct {
		line string
		want bool
	}{
		{`aftercare_escalations_total{clinic="riverside",level="emergency"} 1`, true},
		{`aftercare_messages_in_total{clinic="lake",platform="telegram"} 1`, true},
		{`aftercare_outbox_depth{clinic="riverside"} 7`, true},
		{`aftercare_escalations_total{clinic="lake",level="emergency"}`, false},
		{`aftercare_messages_in_total{clinic="riverside",platform="telegram"}`, false},
		{`aftercare_outbox_depth{clinic="lake"}`, false},
		{`go_goroutines `, true},
	}
	for _, tc := range cases {
		if got := strings.Contains(string(body), tc.line); got != tc.want {
			t.Errorf("%q in /metrics: %v, want %v", tc.line, got, tc.want)
		}
	}
	if rec.Code != 200 {
		t.Fatalf("status %d:\n%s", rec.Code, body)
	}
}
