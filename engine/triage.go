package engine

// Triager classifies one patient message. It is the engine's only view of
// red-flag detection, kept this small so the rule set can be replaced or
// improved without touching the conversation.
//
// Triage must be safe for concurrent use, must never panic, and must always
// return a level for any input (including empty, huge or invalid UTF-8 text).
type Triager interface {
	// Triage reads text written by the patient. hoursSinceSession is the time
	// since the treatment session in hours, or a negative number when unknown;
	// it lets time-dependent rules fire (soreness persisting past 48 h,
	// fatigue past 24 h).
	Triage(text string, hoursSinceSession float64) Finding
}

// Finding is the result of triaging one message.
type Finding struct {
	// Level is the level to act on. When Ask is set, Level is the level to
	// use if the patient never answers the clarifying question.
	Level Level `json:"level"`
	// Signs names what was found ("dizziness", "chest_pain", ...), so staff
	// see why. It may hold normal after-effects ("soreness") at level None.
	Signs []string `json:"signs"`
	// Subject is who the report is about: "" for the patient, "child" or
	// "other" when the message is about someone else (it still counts).
	Subject string `json:"subject,omitempty"`
	// Ask, when non-nil, is one short clarifying question to put to the
	// patient before acting, because the message is ambiguous between two
	// levels. It is never set when Level is Emergency.
	Ask *Clarify `json:"ask,omitempty"`
	// Suspect is set when something in the message may be a red flag that
	// the rules did not settle: the learned second opinion scored it high,
	// or words that belong to a warning sign (or look like a misspelling
	// of one) were left outside any rule. The engine then never reassures
	// or small-talks; it asks the safety-net question and alerts staff at
	// urgent if the patient does not answer. Suspect never lowers Level.
	Suspect bool `json:"suspect,omitempty"`
	// Unread counts words the rules could not account for: neither part
	// of a recognised sign, modifier or context phrase nor ordinary
	// vocabulary. Reassurance ("a normal reaction") needs Unread == 0, so
	// one benign word can never stand for a message that says more.
	Unread int `json:"unread,omitempty"`
	// Settled counts sign mentions the rules read and set aside: negated
	// ("no dizziness"), hypothetical, resolved ("the pain I came in with
	// is gone") or about someone else's past. A message whose every
	// mention is settled, with nothing unread, is an all-clear report.
	Settled int `json:"settled,omitempty"`
	// Quiet is set when nothing in the message resembles a warning sign to
	// either reader: no sign, no settled mention, no unread sign word, and
	// a second-opinion score far below its threshold ("running 10 min
	// late", "parking was a nightmare"). Such a message the engine cannot
	// otherwise place gets a plain answer with both numbers instead of the
	// safety-net question.
	Quiet bool `json:"quiet,omitempty"`
}

// Clarify is a short question with choices that settles an ambiguous report.
type Clarify struct {
	// Text is the question to send.
	Text string `json:"text"`
	// Choices are the possible answers, each with the level it implies.
	Choices []ClarifyChoice `json:"choices"`
}

// ClarifyChoice is one answer to a Clarify question.
type ClarifyChoice struct {
	// ID is a short stable identifier, used as the button payload.
	ID string `json:"id"`
	// Label is the text shown on the button.
	Label string `json:"label"`
	// Level is the level this answer settles on.
	Level Level `json:"level"`
}
