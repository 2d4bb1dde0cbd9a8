package storage

import (
	"github.com/aftercare-clinic/aftercare/engine"
)

// Record is everything stored about one patient, for export.
type Record struct {
	State       engine.State        `json:"state"`
	Visits      []engine.Visit      `json:"visits"`
	Escalations []engine.Escalation `json:"escalations"`
	Audit       []engine.Audit      `json:"audit"`
	// Transcript is the conversation, both sides, oldest first.
	Transcript []TranscriptLine `json:"transcript,omitempty"`
}
