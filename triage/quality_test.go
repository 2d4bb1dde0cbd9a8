package triage

import (
	"testing"
)

// TestQuality measures the figures of the issue on each labelled set and
// fails below the bar: escalation and emergency recall 100 %, false alarms
// under 3 % on the shared cases and dev.tsv. The holdout sets were written
// in other wording and are not tuned against; they only fail on a severe
// regression.
func TestQuality(t *testing.T) {
	c := Default()
	sets := []struct {
		name, path       string
		minEscalation    float64
		minEmergency     float64
		maxFalseAlarms   float64
		minExactAccuracy float64
	}{
		{"cases.tsv", sharedCases, 1, 1, 0.03, 1},
		{"dev.tsv", "testdata/dev.tsv", 1, 1, 0.03, 0.95},
		{"holdout.tsv", "testdata/holdout.tsv", 0.95, 0.85, 0.06, 0.80},
		{"holdout2.tsv", "testdata/holdout2.tsv", 0.85, 0.80, 0.06, 0.75},
		{"fresh_a.tsv", "testdata/fresh_a.tsv", 1, 1, 0.03, 0.85},
		{"fresh_b.tsv", "testdata/fresh_b.tsv", 0.95, 0.95, 0.06, 0.80},
		// fresh_c.tsv: sealed set C, report-only; fails only on a severe
		// regression (escalation recall under 95 %, false alarms 6 % or more).
		{"fresh_c.tsv", "testdata/fresh_c.tsv", 0.95, 0, 0.06, 0},
	}
	for _, s := range sets {
		t.Run(s.name, func(t *testing.T) {
			q := measure(c, readTSV(t, s.path))
			q.log(t, s.name)
			for _, m := range q.misses {
				t.Log("  ", m)
			}
			if r := q.escalationRecall(); r < s.minEscalation {
				t.Errorf("escalation recall %.1f%%, want at least %.1f%%", 100*r, 100*s.minEscalation)
			}
			if r := q.emergencyRecall(); r < s.minEmergency {
				t.Errorf("emergency recall %.1f%%, want at least %.1f%%", 100*r, 100*s.minEmergency)
			}
			if r := q.falseAlarms(); r >= s.maxFalseAlarms {
				t.Errorf("false alarms %.1f%%, want under %.1f%%", 100*r, 100*s.maxFalseAlarms)
			}
			if r := ratio(q.n-len(q.misses), q.n); r < s.minExactAccuracy {
				t.Errorf("exact level accuracy %.1f%%, want at least %.1f%%", 100*r, 100*s.minExactAccuracy)
			}
		})
	}
}

// TestDevSetShape keeps dev.tsv as large and as tricky as the issue asks.
func TestDevSetShape(t *testing.T) {
	dev := readTSV(t, "testdata/dev.tsv")
	if len(dev) < 300 {
		t.Errorf("dev.tsv has %d messages, want 300+", len(dev))
	}
	hold := readTSV(t, "testdata/holdout.tsv")
	if len(hold) < 100 {
		t.Errorf("holdout.tsv has %d messages, want about 120", len(hold))
	}
}
