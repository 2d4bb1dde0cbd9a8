package storage

import (
	"github.com/aftercare-clinic/aftercare/engine"
)

// EscalationUpdate is what an escalation step commits.
type EscalationUpdate struct {
	// Changed marks the record as modified (status, note).
	Changed bool
	// Messages are queued (staff channels already resolved).
	Messages []engine.Outbound
	// Timers are (re)scheduled as the escalation's own (owner
	// EscalationOwner(id)); zero At cancels.
	Timers []engine.Timer
	// StopLadder cancels every pending timer of the escalation.
	StopLadder bool
	Audit      []engine.Audit
}
