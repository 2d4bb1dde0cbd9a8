package engine

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

//go:embed protocol/default.json
var defaultProtocol []byte

// protocolFiles holds the embedded protocols of every language: default.json
// (English) and one file per further language (es.json, ...). Adding a
// language is adding a file here and a triage rules file; no Go changes.
//
//go:embed protocol/*.json
var protocolFiles embed.FS

// DefaultProtocolJSON returns a copy of the embedded default protocol, so a
// clinic can start its own file from it (`aftercare protocol > mine.json`).
func DefaultProtocolJSON() []byte { return bytes.Clone(defaultProtocol) }

// Protocol is the clinical content of the conversation: every question,
// choice, advice rule and text the bot uses. It is data so that a clinic can
// change wording and thresholds without recompiling; the red-flag rules live
// with the Triager. Load one with DefaultProtocol, ParseProtocol or
// LoadProtocolFile; a loaded Protocol is read-only and safe to share.
type Protocol struct {
	Version    int               `json:"version"`
	Language   string            `json:"language"`
	Texts      map[string]string `json:"texts"`
	Escalation EscalationTexts   `json:"escalation"`
	Intake     Intake            `json:"intake"`
	Readiness  Readiness         `json:"readiness"`
	Advice     Advice            `json:"advice"`
	Checkin    CheckinSpec       `json:"checkin"`
	FAQ        []FAQ             `json:"faq"`
	// Forget confirms a patient's request to erase their data.
	Forget Question `json:"forget"`
	// AfterEffects maps a normal after-effect sign to its reassurance and
	// care tip; "default" covers signs without their own entry.
	AfterEffects map[string]string   `json:"after_effects"`
	Tips         map[string]string   `json:"tips"`
	Intents      map[string][]string `json:"intents"`
	Timing       Timing              `json:"timing"`
	// Words are the small vocabularies the safety net reads with.
	Words Words `json:"words"`
	// Calendar says dates and times in the protocol's language.
	Calendar Calendar `json:"calendar"`
	// Treatments names each treatment for patients ("dry needling").
	Treatments map[Treatment]string `json:"treatments"`

	// phrases caches the normalised form of every phrase above, built once
	// at load, so matching a message does not re-normalise keywords;
	// faqNorm and triggersNorm hold the lists matched against every free
	// text message, already normalised.
	phrases      map[string]string
	faqNorm      [][]string
	triggersNorm []string
	// faqMatch and triggerMatch find those lists' phrases in one pass
	// over a message; intentSet holds each intent's phrases, normalised
	// and trimmed, for a lookup instead of a comparison with each.
	faqMatch, triggerMatch *phraseMatcher
	// personMatch finds the "person" intent's phrases (asking for a human).
	personMatch *phraseMatcher
	intentSet   map[string]map[string]bool
	intentQ     map[string]bool // the intent lists "?" itself
	// Sets built from Words, normalised.
	positive, negators, questionWords, benign, common map[string]bool
}

// Calendar holds how a language says when the bot will write. Today,
// Tomorrow and Other are templates with {date} and {time}; Days start on
// Sunday; And joins two times.
type Calendar struct {
	Today    string   `json:"today"`
	Tomorrow string   `json:"tomorrow"`
	Other    string   `json:"other"`
	Days     []string `json:"days"`
	Months   []string `json:"months"`
	And      string   `json:"and"`
}

// treatmentLabel is how the protocol names t for patients.
func (p *Protocol) treatmentLabel(t Treatment) string {
	if l := p.Treatments[t]; l != "" {
		return l
	}
	return t.Label()
}

// Words are vocabularies the engine needs to tell small talk from a report
// it cannot read. They are data, so a clinic or a new language adds words
// without code.
type Words struct {
	// Positive words make a short message good news ("great", "better").
	Positive []string `json:"positive"`
	// Negators turn good news into something to look at ("not great").
	Negators []string `json:"negators"`
	// QuestionWords start a question ("can", "should", "puedo").
	QuestionWords []string `json:"question_words"`
	// Benign are triage signs, besides those in after_effects, that are a
	// normal reaction when triage puts them at level none ("pain" that is
	// mild).
	Benign []string `json:"benign"`
	// Common are frequent words of the language, used to recognise a
	// first message written in it.
	Common []string `json:"common"`
	// Net holds typed answers to the safety-net question, by choice id
	// ("net_call": "call", "yes please"; "net_fine": "not urgent").
	Net map[string][]string `json:"net"`
}

// phrase returns the normalised form of a protocol phrase.
func (p *Protocol) phrase(ph string) string {
	if v, ok := p.phrases[ph]; ok {
		return v
	}
	return norm(ph)
}

// index fills the phrase cache from every list of phrases the engine matches.
func (p *Protocol) index() {
	p.phrases = map[string]string{}
	add := func(xs ...string) {
		for _, x := range xs {
			p.phrases[x] = norm(x)
		}
	}
	qs := []Question{p.Intake.When, p.Intake.Treatment, p.Intake.Area, p.Intake.Acute, p.Intake.Child, p.Intake.Consent, p.Forget}
	qs = append(append(qs, p.Readiness.Questions...), p.Checkin.Questions...)
	for _, q := range qs {
		for _, c := range q.Choices {
			add(c.ID, c.Label)
			add(c.Keywords...)
		}
	}
	add(p.Readiness.Triggers...)
	for _, f := range p.FAQ {
		add(f.Keywords...)
	}
	normAll := func(xs []string) []string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = p.phrases[x]
		}
		return out
	}
	p.triggersNorm = normAll(p.Readiness.Triggers)
	p.faqNorm = make([][]string, len(p.FAQ))
	for i, f := range p.FAQ {
		p.faqNorm[i] = normAll(f.Keywords)
	}
	p.faqMatch = newPhraseMatcher(p.faqNorm)
	p.triggerMatch = newPhraseMatcher([][]string{p.triggersNorm})
	var person []string
	for _, ph := range p.Intents["person"] {
		if n := norm(ph); strings.TrimSpace(n) != "" {
			person = append(person, n)
		}
	}
	p.personMatch = newPhraseMatcher([][]string{person})
	p.intentSet = make(map[string]map[string]bool, len(p.Intents))
	p.intentQ = map[string]bool{}
	for name, xs := range p.Intents {
		add(xs...)
		set := make(map[string]bool, len(xs))
		for _, x := range xs {
			set[strings.TrimSpace(p.phrases[x])] = true
			p.intentQ[name] = p.intentQ[name] || x == "?"
		}
		p.intentSet[name] = set
	}
	add(questionCues...)
	for _, xs := range p.Words.Net {
		add(xs...)
	}
	set := func(xs []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range xs {
			for _, w := range strings.Fields(norm(x)) {
				m[w] = true
			}
		}
		return m
	}
	p.positive = set(p.Words.Positive)
	p.negators = set(p.Words.Negators)
	p.questionWords = set(p.Words.QuestionWords)
	p.common = set(p.Words.Common)
	p.benign = map[string]bool{}
	for _, b := range p.Words.Benign {
		p.benign[b] = true
	}
}

// EscalationTexts are what the patient is told at each level, and the
// template of the staff alert.
type EscalationTexts struct {
	Emergency string `json:"emergency"`
	Urgent    string `json:"urgent"`
	Watch     string `json:"watch"`
	Alert     string `json:"alert"`
	// UrgentClosed and WatchClosed replace Urgent and Watch outside the
	// clinic's opening hours, saying plainly that the clinic is closed and
	// what to do instead ({after_hours}).
	UrgentClosed string `json:"urgent_closed"`
	WatchClosed  string `json:"watch_closed"`
}

// Question is one question with quick choices. Free text is always accepted
// too: it is matched against choice IDs, labels and keywords.
type Question struct {
	ID       string       `json:"id"`
	Text     string       `json:"text"`
	Choices  []ChoiceSpec `json:"choices"`
	FreeText bool         `json:"free_text,omitempty"`
	Scale    *Scale       `json:"scale,omitempty"`
}

// Scale marks a numeric question (soreness 0-10) whose free-text answer is a number.
type Scale struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// ChoiceSpec is one choice of a question, with what picking it means.
type ChoiceSpec struct {
	ID       string   `json:"id"`
	Label    string   `json:"label"`
	Keywords []string `json:"keywords,omitempty"`
	// HoursAgo is used by the "when was your session" question.
	HoursAgo *float64 `json:"hours_ago,omitempty"`
	// Signal is a readiness signal: "ready", "neutral", "wait" or "strong_wait".
	Signal string `json:"signal,omitempty"`
	// Reason names a wait signal in advice ("tiredness"); the label is used
	// when it is empty.
	Reason string `json:"reason,omitempty"`
	// Level escalates when the choice is picked (a warning sign).
	Level Level `json:"level,omitempty"`
	// Signs names what the choice reports, for staff.
	Signs []string `json:"signs,omitempty"`
	// LevelAfterHours raises the level once the session is that many hours
	// old (fatigue past 24 h is a watch sign, before it is normal).
	LevelAfterHours *HourLevel `json:"level_after_hours,omitempty"`
}

// HourLevel is a level that applies from a number of hours after the session.
type HourLevel struct {
	Hours float64 `json:"hours"`
	Level Level   `json:"level"`
}

// Intake holds the questions asked of a patient the clinic has not
// recorded a visit for.
type Intake struct {
	When      Question `json:"when"`
	Treatment Question `json:"treatment"`
	Area      Question `json:"area"`
	Acute     Question `json:"acute"`
	Child     Question `json:"child"`
	// Consent asks before any automatic check-in is sent.
	Consent Question `json:"consent"`
}

// Readiness is the "can I work out today?" questionnaire.
type Readiness struct {
	Intro     string     `json:"intro"`
	Triggers  []string   `json:"triggers"`
	Questions []Question `json:"questions"`
}

// Advice turns readiness answers into one of four levels.
type Advice struct {
	// Levels holds the text of each advice level: rest, light, moderate, normal.
	Levels         map[string]string `json:"levels"`
	Caps           []AdviceCap       `json:"caps"`
	Reasons        map[string]string `json:"reasons"`
	TreatmentNotes map[string]string `json:"treatment_notes"`
}

// AdviceCap limits the advice level while its conditions hold. Unset
// conditions match everything.
type AdviceCap struct {
	Treatment   Treatment `json:"treatment,omitempty"`
	BeforeHours float64   `json:"before_hours,omitempty"`
	Acute       bool      `json:"acute,omitempty"`
	Child       bool      `json:"child,omitempty"`
	Max         string    `json:"max"`
	Reason      string    `json:"reason"`
}

// CheckinSpec is the automatic check-in questionnaire and how answers are judged.
type CheckinSpec struct {
	Intro24   string     `json:"intro_24"`
	Intro48   string     `json:"intro_48"`
	Questions []Question `json:"questions"`
	// SignsGate, when it has a text, is asked before the "signs" question:
	// one yes/no with the warning signs listed in its text, so a phone
	// screen shows two buttons, not ten. "No" counts as "none"; "yes"
	// shows the detailed list. The clinical reading is the signs
	// question's, unchanged.
	SignsGate Question     `json:"signs_gate"`
	Rules     CheckinRules `json:"rules"`
}

// CheckinRules are the thresholds that turn check-in answers into a level.
type CheckinRules struct {
	// SevereSoreness and above is escalated at SevereSorenessLevel.
	SevereSoreness      int   `json:"severe_soreness"`
	SevereSorenessLevel Level `json:"severe_soreness_level"`
	// PersistingSorenessMin: soreness at or above it that has not improved
	// since the previous check-in, PersistingAfterHours or more after the
	// session, is a watch sign.
	PersistingSorenessMin int     `json:"persisting_soreness_min"`
	PersistingAfterHours  float64 `json:"persisting_after_hours"`
}

// FAQ is one common aftercare question and its short answer.
type FAQ struct {
	ID       string   `json:"id"`
	Keywords []string `json:"keywords"`
	Answer   string   `json:"answer"`
}

// Timing holds the follow-up schedule.
type Timing struct {
	CheckinsHours         []float64 `json:"checkins_hours"`
	NudgeAfterHours       float64   `json:"nudge_after_hours"`
	ClarifyTimeoutMinutes float64   `json:"clarify_timeout_minutes"`
	// SilentAfterHours is how long after the last check-in was sent staff
	// are told, once, about a patient who answered none of the check-ins
	// (not even after the nudge), so a patient who went quiet is looked
	// after by a person. It must be longer than NudgeAfterHours; 0 (the
	// value when a clinic's file predates it) disables the report.
	SilentAfterHours float64 `json:"silent_after_hours"`
}

var advLevels = []string{"rest", "light", "moderate", "normal"}

// DefaultProtocol returns the embedded default protocol. It panics only if
// the embedded file is broken, which the package tests rule out.
func DefaultProtocol() *Protocol {
	p, err := ParseProtocol("default.json", defaultProtocol)
	if err != nil {
		panic(fmt.Sprintf("engine: embedded protocol: %v", err))
	}
	return p
}

// DefaultProtocols returns the embedded protocol of every language, the
// English one first. It panics only if an embedded file is invalid, which
// the package tests rule out.
func DefaultProtocols() []*Protocol {
	out := []*Protocol{DefaultProtocol()}
	ents, err := protocolFiles.ReadDir("protocol")
	if err != nil {
		panic(fmt.Sprintf("engine: embedded protocols: %v", err))
	}
	for _, e := range ents {
		if e.Name() == "default.json" || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := protocolFiles.ReadFile("protocol/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("engine: embedded protocol %s: %v", e.Name(), err))
		}
		p, err := ParseProtocol(e.Name(), b)
		if err != nil {
			panic(fmt.Sprintf("engine: embedded protocol: %v", err))
		}
		out = append(out, p)
	}
	return out
}

// LoadProtocolFile reads and validates a clinic's protocol file.
func LoadProtocolFile(path string) (*Protocol, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("protocol: %w", err)
	}
	return ParseProtocol(path, b)
}

// ParseProtocol decodes and validates protocol data. Errors name the file
// and the bad key, and say how to fix it, because the person reading them
// is a clinic administrator editing a file.
func ParseProtocol(name string, data []byte) (*Protocol, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Protocol
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, describeJSONError(data, err))
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: unexpected data after the protocol object", name)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.index()
	return &p, nil
}

// describeJSONError turns encoding/json errors into messages with a line
// number and the key concerned.
func describeJSONError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("line %d: invalid JSON: %v", lineOf(data, se.Offset), se)
	case errors.As(err, &te):
		return fmt.Errorf("line %d: key %q: expected %s, got JSON %s", lineOf(data, te.Offset), te.Field, te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("%s (check the spelling; see `aftercare protocol` for the default file)", strings.TrimPrefix(err.Error(), "json: "))
	}
	return err
}

func lineOf(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// requiredTexts are the texts the engine sends; a protocol must define all.
var requiredTexts = []string{
	"greeting", "greeting_known", "intake_intro", "intake_done", "intake_done_no_checkins", "intake_bad_time",
	"intake_future_time", "help", "stopped", "started", "already_started", "empty", "too_long",
	"not_understood", "reask_prefix", "not_an_answer", "thanks", "hello", "reassure_prefix", "clarify_timeout_alert",
	"unreachable_notice", "checkin_done_ok", "checkin_next", "checkin_last", "checkin_superseded", "nudge",
	"checkin_late", "invite_unknown", "child_note", "stop_and_call", "consent_no", "forget_done", "forget_kept",
	"paused", "resumed", "next_checkins", "after_intake_note",
	"safety_net", "safety_net_call", "safety_net_fine", "safety_net_ask", "safety_net_fine_reply",
	"safety_net_question_reply", "safety_net_timeout_note", "cannot_answer", "good_news", "ack", "unsure",
	"treated_area", "why", "after_hours", "after_hours_line", "the_patient", "language_set", "noted", "clarify_numbers",
	"person", "person_hours", "callback_button", "callback_done", "intake_unsure", "started_times", "empty_no_question",
}

func (p *Protocol) validate() error {
	if p.Version != 1 {
		return fmt.Errorf("version: got %d, want 1", p.Version)
	}
	for _, k := range requiredTexts {
		if strings.TrimSpace(p.Texts[k]) == "" {
			return fmt.Errorf("texts.%s: missing; copy it from the default protocol", k)
		}
	}
	if c := p.Calendar; len(c.Days) != 7 || len(c.Months) != 12 || c.Today == "" || c.Tomorrow == "" || c.Other == "" || c.And == "" {
		return fmt.Errorf("calendar: today, tomorrow, other and and are required, with 7 days (Sunday first) and 12 months")
	}
	for k, v := range map[string]string{"emergency": p.Escalation.Emergency, "urgent": p.Escalation.Urgent, "watch": p.Escalation.Watch, "alert": p.Escalation.Alert} {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("escalation.%s: missing", k)
		}
	}
	// A patient must always be told a number to call.
	if !strings.Contains(p.Escalation.Emergency, "{emergency_number}") {
		return fmt.Errorf("escalation.emergency: must contain {emergency_number}")
	}
	for k, v := range map[string]string{"urgent": p.Escalation.Urgent, "watch": p.Escalation.Watch, "urgent_closed": p.Escalation.UrgentClosed, "watch_closed": p.Escalation.WatchClosed} {
		if !strings.Contains(v, "{clinic_phone}") {
			return fmt.Errorf("escalation.%s: must contain {clinic_phone}", k)
		}
	}
	for k, v := range map[string]string{"urgent_closed": p.Escalation.UrgentClosed, "watch_closed": p.Escalation.WatchClosed} {
		if !strings.Contains(v, "{after_hours}") || !strings.Contains(v, "{emergency_number}") {
			return fmt.Errorf("escalation.%s: must contain {after_hours} and {emergency_number}", k)
		}
	}
	qs := map[string]*Question{
		"intake.when": &p.Intake.When, "intake.treatment": &p.Intake.Treatment, "intake.area": &p.Intake.Area,
		"intake.acute": &p.Intake.Acute, "intake.child": &p.Intake.Child, "intake.consent": &p.Intake.Consent,
		"forget": &p.Forget,
	}
	for i := range p.Readiness.Questions {
		qs[fmt.Sprintf("readiness.questions[%d]", i)] = &p.Readiness.Questions[i]
	}
	for i := range p.Checkin.Questions {
		qs[fmt.Sprintf("checkin.questions[%d]", i)] = &p.Checkin.Questions[i]
	}
	for key, q := range qs {
		if err := q.validate(key); err != nil {
			return err
		}
	}
	for _, c := range p.Intake.When.Choices {
		if c.HoursAgo == nil {
			return fmt.Errorf("intake.when.choices[%s].hours_ago: missing", c.ID)
		}
	}
	for _, id := range []string{"acupuncture", "electroacupuncture", "dry_needling"} {
		if findChoice(p.Intake.Treatment.Choices, id) < 0 {
			return fmt.Errorf("intake.treatment.choices: missing the %q choice", id)
		}
	}
	for _, q := range []struct {
		key string
		q   Question
	}{{"intake.acute", p.Intake.Acute}, {"intake.child", p.Intake.Child}, {"intake.consent", p.Intake.Consent}, {"forget", p.Forget}, {"checkin.signs_gate", p.Checkin.SignsGate}} {
		if q.key == "checkin.signs_gate" && q.q.Text == "" {
			continue // no gate: the full list is asked at once
		}
		if findChoice(q.q.Choices, "yes") < 0 || findChoice(q.q.Choices, "no") < 0 {
			return fmt.Errorf("%s.choices: needs a \"yes\" and a \"no\" choice", q.key)
		}
	}
	if len(p.Readiness.Questions) == 0 {
		return errors.New("readiness.questions: at least one question is needed")
	}
	for i, q := range p.Readiness.Questions {
		for j, c := range q.Choices {
			switch c.Signal {
			case "ready", "neutral", "wait", "strong_wait":
			default:
				return fmt.Errorf("readiness.questions[%d].choices[%d].signal: %q, want ready, neutral, wait or strong_wait", i, j, c.Signal)
			}
		}
	}
	if len(p.Readiness.Triggers) == 0 {
		return errors.New("readiness.triggers: at least one trigger phrase is needed")
	}
	for _, l := range advLevels {
		if strings.TrimSpace(p.Advice.Levels[l]) == "" {
			return fmt.Errorf("advice.levels.%s: missing", l)
		}
	}
	for i, c := range p.Advice.Caps {
		if advIndex(c.Max) < 0 {
			return fmt.Errorf("advice.caps[%d].max: %q, want rest, light, moderate or normal", i, c.Max)
		}
		switch c.Treatment {
		case "", Acupuncture, Electroacupuncture, DryNeedling:
		default:
			return fmt.Errorf("advice.caps[%d].treatment: %q, want acupuncture, electroacupuncture or dry_needling", i, c.Treatment)
		}
	}
	for _, k := range []string{"wait", "strong_wait", "no_ready", "ready"} {
		if p.Advice.Reasons[k] == "" {
			return fmt.Errorf("advice.reasons.%s: missing", k)
		}
	}
	ids := map[string]bool{}
	for _, q := range p.Checkin.Questions {
		ids[q.ID] = true
	}
	for _, id := range []string{"feel", "soreness", "signs"} {
		if !ids[id] {
			return fmt.Errorf("checkin.questions: missing the %q question", id)
		}
	}
	for i, f := range p.FAQ {
		if f.ID == "" || len(f.Keywords) == 0 || strings.TrimSpace(f.Answer) == "" {
			return fmt.Errorf("faq[%d]: needs id, keywords and answer", i)
		}
	}
	if p.AfterEffects["default"] == "" {
		return errors.New("after_effects.default: missing")
	}
	if p.Tips["general"] == "" {
		return errors.New("tips.general: missing")
	}
	for _, k := range []string{"stop", "start", "help", "hello", "thanks", "forget"} {
		if len(p.Intents[k]) == 0 {
			return fmt.Errorf("intents.%s: at least one phrase is needed", k)
		}
	}
	for i, h := range p.Timing.CheckinsHours {
		if h <= 0 || h > 24*14 {
			return fmt.Errorf("timing.checkins_hours[%d]: %v, want between 0 and 336", i, h)
		}
		if i > 0 && h <= p.Timing.CheckinsHours[i-1] {
			return fmt.Errorf("timing.checkins_hours: must be increasing")
		}
	}
	if p.Timing.NudgeAfterHours < 0 || p.Timing.ClarifyTimeoutMinutes <= 0 {
		return errors.New("timing: nudge_after_hours must be >= 0 and clarify_timeout_minutes > 0")
	}
	if t := p.Timing; t.SilentAfterHours != 0 {
		if t.SilentAfterHours < 0 || t.SilentAfterHours > 24*14 || t.SilentAfterHours <= t.NudgeAfterHours {
			return fmt.Errorf("timing.silent_after_hours: %v, want 0 (off) or more than nudge_after_hours (%v) and at most 336", t.SilentAfterHours, t.NudgeAfterHours)
		}
		if strings.TrimSpace(p.Texts["silent_note"]) == "" {
			return errors.New("texts.silent_note: missing (needed when timing.silent_after_hours is set); copy it from the default protocol")
		}
	}
	return nil
}

func (q *Question) validate(key string) error {
	if strings.TrimSpace(q.Text) == "" {
		return fmt.Errorf("%s.text: missing", key)
	}
	if len(q.Choices) == 0 && !q.FreeText {
		return fmt.Errorf("%s.choices: at least one choice is needed", key)
	}
	seen := map[string]bool{}
	for i, c := range q.Choices {
		if c.ID == "" || len(c.ID) > 32 || strings.ContainsAny(c.ID, " :\t\n") {
			return fmt.Errorf("%s.choices[%d].id: %q, want 1-32 characters without spaces or colons", key, i, c.ID)
		}
		if seen[c.ID] {
			return fmt.Errorf("%s.choices[%d].id: %q is used twice", key, i, c.ID)
		}
		seen[c.ID] = true
		if strings.TrimSpace(c.Label) == "" {
			return fmt.Errorf("%s.choices[%d].label: missing", key, i)
		}
	}
	return nil
}

func findChoice(cs []ChoiceSpec, id string) int {
	for i, c := range cs {
		if c.ID == id {
			return i
		}
	}
	return -1
}

func advIndex(s string) int {
	for i, l := range advLevels {
		if l == s {
			return i
		}
	}
	return -1
}
