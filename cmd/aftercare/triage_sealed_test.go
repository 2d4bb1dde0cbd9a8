package main

import (
	"path/filepath"
	"testing"
)

// TestTriageReplaySealed replays every message of the sealed sets through
// `aftercare replay`. The sets were written by people who never saw the
// rules and were scored once, after the work; that run is recorded in
// triage/testdata/sealed/RESULTS.md as it came out. The targets did
// not all hold on it (normal messages escalated or asked more often than 3 %
// and 10 %, one red flag per set missed), so this test guards what was
// measured rather than claiming the targets: a change that loses a red
// flag, an emergency number or a reassurance-free answer fails here, and
// so does one that raises more false alarms than that run did.
func TestTriageReplaySealed(t *testing.T) {
	measured := map[string]triageScore{ // the first run's figures
		"s1.tsv": {red: 225, redCaught: 224, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 10, noneNet: 19, watch: 68, watchReached: 67},
		"s2.tsv": {red: 225, redCaught: 224, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 16, noneNet: 21, watch: 68, watchReached: 66},
	}
	files, _ := filepath.Glob("../../triage/testdata/sealed/*.tsv")
	if len(files) != len(measured) {
		t.Fatalf("want %d sealed sets, found %d", len(measured), len(files))
	}
	for _, f := range files {
		msgs := readLabelled(t, f)
		outs := replayOutcomes(t, msgs)
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			got, want := scoreOutcomes(msgs, outs), measured[name]
			t.Logf("%s: %s", name, got)
			logByLanguage(t, name, msgs, outs)
			if got.red != want.red || got.none != want.none || got.watch != want.watch || got.emerg != want.emerg {
				t.Fatalf("the sealed set changed: %d/%d/%d/%d messages", got.emerg, got.red, got.watch, got.none)
			}
			if got.redCaught < want.redCaught || got.emergNumber < want.emerg || got.redDismissed > 0 || got.watchReached < want.watchReached {
				t.Errorf("red flags caught %d (was %d), emergencies with the number %d/%d, dismissed %d, watch reached %d (was %d)",
					got.redCaught, want.redCaught, got.emergNumber, got.emerg, got.redDismissed, got.watchReached, want.watchReached)
			}
			if got.noneEscalated > want.noneEscalated || got.noneNet > want.noneNet {
				t.Errorf("normal messages escalated %d (was %d), asked %d (was %d)", got.noneEscalated, want.noneEscalated, got.noneNet, want.noneNet)
			}
			if t.Failed() {
				for _, m := range got.misses {
					t.Log("  ", m)
				}
			}
		})
	}
}
