package triage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// TestCorpusReport prints the rules' figures on the blind-written corpus
// files (TRIAGE_CORPUS names some, for example "w1,w3"; all by default),
// with every miss when TRIAGE_MISSES is set, so wording work can be
// measured before and after. It also guards the rules alone: at least 92 %
// of red flags graded urgent or emergency in every file (the safety net and
// the second opinion catch the rest end to end; see cmd/aftercare).
func TestCorpusReport(t *testing.T) {
	names := os.Getenv("TRIAGE_CORPUS")
	if names == "" {
		names = "w1,w2,w3,w4"
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
			if got, all := redHit[engine.Emergency]+redHit[engine.Urgent], red[engine.Emergency]+red[engine.Urgent]; float64(got) < 0.92*float64(all) {
				t.Errorf("%s: the rules grade %d of %d red flags urgent or emergency, want at least 92 %%", filepath.Base(p), got, all)
			}
			t.Logf("%s: n=%d  red-flag recall (urgent+): emergency %d/%d urgent %d/%d  emergency exact %.1f%%  false alarms on none %.1f%%  suspect on none %d/%d  exact %.1f%%\n",
				filepath.Base(p), q.n, redHit[engine.Emergency], red[engine.Emergency], redHit[engine.Urgent], red[engine.Urgent],
				100*q.emergencyRecall(), 100*q.falseAlarms(), suspectNone, none, 100*ratio(q.n-len(q.misses), q.n))
		}
	}
}
