package main

import (
	"path/filepath"
	"testing"
)

// TestTriageReplaySealed replays every message of the sealed sets through
// `aftercare replay`. The sets were written by people who never saw the
// rules and are scored once, after the work; each run is recorded in
// triage/testdata/sealed/RESULTS.md as it came out.
//
// A set already scored (s1, s2, round 2's s3, s4, round 3's s5, s6 and round 4's s7, s8) is spent: it has been used as development
// data since, so it is guarded at what was reached on it afterwards (a
// change that loses a red flag, an emergency number or a reassurance-free
// answer fails, and so does one that raises more false alarms). A set not
// yet scored is held to the targets, and its run lists every miss.
func TestTriageReplaySealed(t *testing.T) {
	// The first run's figures, 2026-11-29, were s1: red flags 224/225,
	// normal escalated 10, asked 19, watch 67/68; s2: red flags 224/225,
	// normal escalated 16, asked 21, watch 66/68. The guard below is what
	// was reached on them as development data.
	reached := map[string]triageScore{
		"s1.tsv": {red: 225, redCaught: 225, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 0, noneNet: 2, watch: 68, watchReached: 68},
		"s2.tsv": {red: 225, redCaught: 225, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 4, noneNet: 3, watch: 68, watchReached: 68},
		// Round 2, scored once on 2026-12-08 (round2/RESULTS.md: s3 red
		// flags 222/225, 1 reassured, normal escalated 3, asked 14; s4 red
		// flags 223/225, 2 reassured, escalated 3, asked 18), then spent:
		// what was reached after fixing the families it found, then
		// after the third round's work on the families the spent sets
		// point at (Spanish perfect tense, passed and hypothetical
		// complaints, colourful after-effects, ongoing fatigue).
		"s3.tsv": {red: 225, redCaught: 225, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 1, noneNet: 6, watch: 68, watchReached: 68},
		"s4.tsv": {red: 225, redCaught: 225, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 1, noneNet: 9, watch: 68, watchReached: 68},
		// Round 3, scored once on 2026-12-08 (round3/RESULTS.md: s5 red
		// flags 223/225, 80/81 emergencies with the number, 1 reassured,
		// normal escalated 4, asked 14, watch 65/68; s6 red flags
		// 223/225, 81/81, 0 reassured, escalated 5, asked 15, watch
		// 65/68), then spent: what was reached after fixing the families
		// it found (near-miss body parts, much worse pain, large warm
		// redness, lingering complaints, figures and questions).
		"s5.tsv": {red: 225, redCaught: 225, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 1, noneNet: 13, watch: 68, watchReached: 68},
		"s6.tsv": {red: 225, redCaught: 225, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 2, noneNet: 14, watch: 68, watchReached: 68},
		// Round 4, scored once on 2026-12-08 (round4/RESULTS.md: s7 red
		// flags 223/225, 81/81 emergencies with the number, 0 reassured
		// by the scorer of the day, normal escalated 7, asked 16, watch
		// 66/68; s8 red flags 224/225, 81/81, 0 reassured by that scorer
		// (1 in substance: the worse-before-better answer, which the
		// scorer now counts), escalated 2, asked 12, watch 67/68), then
		// spent: what was reached after fixing the families it found.
		"s7.tsv": {red: 225, redCaught: 225, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 0, noneNet: 10, watch: 68, watchReached: 68},
		"s8.tsv": {red: 225, redCaught: 225, emerg: 81, emergNumber: 81, none: 157, noneEscalated: 0, noneNet: 10, watch: 68, watchReached: 68},
	}
	files, _ := filepath.Glob("../../triage/testdata/sealed/*.tsv")
	rounds, _ := filepath.Glob("../../triage/testdata/sealed/round*/*.tsv")
	files = append(files, rounds...)
	if len(files) < len(reached) {
		t.Fatalf("want at least %d sealed sets, found %d", len(reached), len(files))
	}
	for _, f := range files {
		msgs := readLabelled(t, f)
		outs := replayOutcomes(t, msgs)
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			got := scoreOutcomes(msgs, outs)
			logByLanguage(t, name, msgs, outs)
			want, spent := reached[name]
			if !spent {
				checkTargets(t, name, got)
				return
			}
			t.Logf("%s: %s", name, got)
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
