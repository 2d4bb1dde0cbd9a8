package triage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestCorpusReport prints the figures of the blind-written corpus files named
// in TRIAGE_CORPUS (for example "w1,w3,w4"), with every miss, so wording
// work can be measured before and after. It is a report, not a gate: the
// tuning files are read by hand, and w2 is kept back as a held-out check.
func TestCorpusReport(t *testing.T) {
	names := os.Getenv("TRIAGE_CORPUS")
	if names == "" {
		t.Skip("set TRIAGE_CORPUS=w1,w3,w4 to print the corpus figures")
	}
	c := Default()
	verbose := os.Getenv("TRIAGE_MISSES") != ""
	for _, n := range strings.Split(names, ",") {
		paths, _ := filepath.Glob(filepath.Join("testdata", "corpus", n+".*.tsv"))
		for _, p := range paths {
			cases := readTSV(t, p)
			q := measure(c, cases)
			suspectNone, none := 0, 0
			var red, redHit [4]int
			for _, tc := range cases {
				f := c.Triage(tc.text, tc.hours)
				red[tc.want]++
				if f.Level >= engine.Urgent {
					redHit[tc.want]++
				}
				if tc.want == engine.None {
					none++
					if f.Suspect {
						suspectNone++
					}
				}
				if verbose && (f.Level != tc.want) {
					fmt.Printf("%s:%d want %s got %s %v susp=%v unread=%d: %s\n", filepath.Base(p), tc.line, tc.want, f.Level, f.Signs, f.Suspect, f.Unread, tc.text)
				}
			}
			fmt.Printf("%s: n=%d  red-flag recall (urgent+): emergency %d/%d urgent %d/%d  emergency exact %.1f%%  false alarms on none %.1f%%  suspect on none %d/%d  exact %.1f%%\n",
				filepath.Base(p), q.n, redHit[engine.Emergency], red[engine.Emergency], redHit[engine.Urgent], red[engine.Urgent],
				100*q.emergencyRecall(), 100*q.falseAlarms(), suspectNone, none, 100*ratio(q.n-len(q.misses), q.n))
		}
	}
}
