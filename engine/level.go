package engine

import (
	"fmt"
	"strings"
)

// Level is how urgently a patient's report needs a person. The order matters:
// a higher Level always wins when two readings of a message disagree, so
// comparisons like `a > b` are meaningful.
type Level int

// The triage levels, lowest first. What the patient is told at each is
// protocol data (Protocol.Escalation, in protocol/default.json); which
// signs reach which level are the Triager's rules (package triage).
const (
	// None is a normal after-effect, a question or chit-chat: reassure and answer.
	None Level = iota
	// Watch advises rest, offers the clinic's number and notifies staff for a follow-up.
	Watch
	// Urgent tells the patient to call the clinic now and alerts staff at once.
	Urgent
	// Emergency tells the patient to call the emergency number now and alerts staff at once.
	Emergency
)

var levelNames = [...]string{"none", "watch", "urgent", "emergency"}

// String returns the protocol name of the level ("none", "watch", "urgent", "emergency").
func (l Level) String() string {
	if l < None || l > Emergency {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levelNames[l]
}

// ParseLevel reads a level name as written in protocol data and JSON.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Level(i), nil
		}
	}
	return None, fmt.Errorf("unknown level %q (want none, watch, urgent or emergency)", s)
}

// MarshalText writes the level by name so stored data and replay output stay readable.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level by name.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Escalates reports whether the level alerts staff at once (urgent or emergency).
func (l Level) Escalates() bool { return l >= Urgent }
