// Package enginetest holds test helpers for packages that drive the engine:
// a tiny deterministic triager, so conversation and persistence tests do not
// depend on the real rule set (which has tests of its own).
package enginetest

import (
	"strings"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Triage is a keyword triager: "fainted" is an emergency, "palpitations"
// urgent, "big bruise" watch, "dizzy" asks a clarifying question, "sore" and
// "twitch" are normal after-effects, and any "no " or "none" negates (the
// mention is settled). "weird" is suspect, "xyzzy" beside "sore" is an
// unread word next to a benign sign, and "chezt" alone is a sign word
// nobody could read (a typo the rules missed), with nothing else found.
type Triage struct{}

var _ engine.Triager = Triage{}

// Triage classifies text by the keywords above.
func (Triage) Triage(text string, hours float64) engine.Finding {
	t := strings.ToLower(text)
	if strings.Contains(t, "no ") || strings.Contains(t, "none") {
		return engine.Finding{Settled: 1}
	}
	switch {
	case strings.Contains(t, "weird"):
		// Stands for a message the second opinion is wary of.
		return engine.Finding{Suspect: true}
	case strings.Contains(t, "sore") && strings.Contains(t, "xyzzy"):
		// Stands for a benign sign beside words nobody could read.
		return engine.Finding{Signs: []string{"soreness"}, Unread: 1}
	case strings.Contains(t, "chezt"):
		// Stands for a misspelt sign word no rule read, the model unsure.
		return engine.Finding{Unread: 1}
	case strings.Contains(t, "fainted"):
		return engine.Finding{Level: engine.Emergency, Signs: []string{"fainting"}}
	case strings.Contains(t, "palpitations"):
		return engine.Finding{Level: engine.Urgent, Signs: []string{"palpitations"}}
	case strings.Contains(t, "big bruise"):
		return engine.Finding{Level: engine.Watch, Signs: []string{"bruising"}}
	case strings.Contains(t, "dizzy"):
		return engine.Finding{Level: engine.Urgent, Signs: []string{"dizziness"}, Ask: &engine.Clarify{
			Text: "Does the dizziness pass when you sit down?",
			Choices: []engine.ClarifyChoice{
				{ID: "passes", Label: "It passes", Level: engine.None},
				{ID: "stays", Label: "It stays or gets worse", Level: engine.Urgent},
			}}}
	case strings.Contains(t, "sore"):
		return engine.Finding{Signs: []string{"soreness"}}
	case strings.Contains(t, "twitch"):
		return engine.Finding{Signs: []string{"twitching"}}
	}
	return engine.Finding{}
}

// Clinic is the clinic used in tests: fictional number, Chicago time,
// quiet hours 21:00-08:00.
var Clinic = engine.Clinic{
	Name: "Test Clinic", Phone: "+1-555-0100", EmergencyNumber: "911", TimeZone: "America/Chicago",
	QuietStart: 21 * 60, QuietEnd: 8 * 60,
}

// New returns an engine with the default protocol, the keyword triager and Clinic.
func New() *engine.Engine {
	e, err := engine.New(engine.DefaultProtocol(), Triage{}, Clinic)
	if err != nil {
		panic(err)
	}
	return e
}
