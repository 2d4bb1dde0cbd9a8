package triage

import (
	"path/filepath"
	"testing"
)

// sharedCases is the clinic's labelled set, kept beside the repository
// (CI clones the repository with shared/ next to it).
var sharedCases = filepath.Join("..", "..", "shared", "triage", "cases.tsv")

// TestCases requires every shared case at exactly its level.
func TestCases(t *testing.T) {
	c := Default()
	for _, tc := range readTSV(t, sharedCases) {
		got := c.Triage(tc.text, tc.hours)
		if got.Level != tc.want {
			t.Errorf("line %d: %q: got %s %v, want %s", tc.line, tc.text, got.Level, got.Signs, tc.want)
		}
	}
}
