package triage

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// labelled is one line of a level<TAB>message[<TAB>hours] file.
type labelled struct {
	line  int
	want  engine.Level
	text  string
	hours float64
}

func readTSV(t testing.TB, path string) []labelled {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("labelled set missing: %v", err)
	}
	defer f.Close()
	var out []labelled
	s := bufio.NewScanner(f)
	n := 0
	for s.Scan() {
		n++
		line := s.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) < 2 {
			t.Fatalf("%s:%d: want level<TAB>message", path, n)
		}
		lv, err := engine.ParseLevel(parts[0])
		if err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		h := -1.0
		if len(parts) > 2 && strings.TrimSpace(parts[2]) != "" {
			h, err = strconv.ParseFloat(strings.TrimSpace(parts[2]), 64)
			if err != nil {
				t.Fatalf("%s:%d: hours: %v", path, n, err)
			}
		}
		out = append(out, labelled{line: n, want: lv, text: parts[1], hours: h})
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return out
}

// quality holds the figures the issue asks for.
type quality struct {
	n         int
	confusion [4][4]int // [want][got]
	misses    []string
}

func measure(c *Classifier, cases []labelled) *quality {
	q := &quality{n: len(cases)}
	for _, tc := range cases {
		got := c.Triage(tc.text, tc.hours).Level
		q.confusion[tc.want][got]++
		if got != tc.want {
			q.misses = append(q.misses, fmt.Sprintf("line %d: want %s got %s: %q", tc.line, tc.want, got, tc.text))
		}
	}
	return q
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// escalationRecall: emergency and urgent messages classified urgent or higher.
func (q *quality) escalationRecall() float64 {
	hit, all := 0, 0
	for w := engine.Urgent; w <= engine.Emergency; w++ {
		for g := engine.None; g <= engine.Emergency; g++ {
			all += q.confusion[w][g]
			if g >= engine.Urgent {
				hit += q.confusion[w][g]
			}
		}
	}
	return ratio(hit, all)
}

func (q *quality) emergencyRecall() float64 {
	row := q.confusion[engine.Emergency]
	return ratio(row[engine.Emergency], row[0]+row[1]+row[2]+row[3])
}

// falseAlarms: normal messages classified urgent or higher.
func (q *quality) falseAlarms() float64 {
	row := q.confusion[engine.None]
	return ratio(row[engine.Urgent]+row[engine.Emergency], row[0]+row[1]+row[2]+row[3])
}

func (q *quality) accuracy(l engine.Level) float64 {
	row := q.confusion[l]
	return ratio(row[l], row[0]+row[1]+row[2]+row[3])
}

func (q *quality) log(t *testing.T, name string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d messages\n", name, q.n)
	fmt.Fprintf(&b, "  want\\got   none  watch urgent emerg  accuracy\n")
	for w := engine.None; w <= engine.Emergency; w++ {
		r := q.confusion[w]
		fmt.Fprintf(&b, "  %-9s %6d %6d %6d %6d  %6.1f%%\n", w, r[0], r[1], r[2], r[3], 100*q.accuracy(w))
	}
	fmt.Fprintf(&b, "  escalation recall %.1f%%, emergency recall %.1f%%, false alarms %.1f%%, exact %.1f%%",
		100*q.escalationRecall(), 100*q.emergencyRecall(), 100*q.falseAlarms(), 100*ratio(q.n-len(q.misses), q.n))
	t.Log(b.String())
}
