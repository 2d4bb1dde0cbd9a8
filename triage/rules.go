package triage

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/aftercare-clinic/aftercare/engine"
)

//go:embed rules/*.json
var embedded embed.FS

// File is one rule file: its name (used in error messages) and its JSON
// content. Rule files are data so a clinic can add wording, a language or a
// stricter level without recompiling.
type File struct {
	// Name identifies the file in errors, for example "rules/en.json".
	Name string
	// Data is the JSON text of the file.
	Data []byte
}

// ruleFile is the JSON shape of a rule file. Unknown keys are errors, so a
// misspelt key cannot silently switch a rule off.
type ruleFile struct {
	Notes     string               `json:"notes"`
	Language  string               `json:"language"`
	Replace   bool                 `json:"replace"`
	Signs     []signSpec           `json:"signs"`
	Modifiers map[string][]string  `json:"modifiers"`
	Context   contextSpec          `json:"context"`
	Combos    []comboSpec          `json:"combos"`
	Scores    map[string]scoreSpec `json:"scores"`
	Time      []timeSpec           `json:"time"`
	Numbers   map[string]float64   `json:"numbers"`
	Fuzzy     fuzzySpec            `json:"fuzzy"`
	Questions []questionSpec       `json:"questions"`
	AskNow    *askNowSpec          `json:"ask_now"`
}

type signSpec struct {
	Notes    string            `json:"notes"`
	ID       string            `json:"id"`
	Sign     string            `json:"sign"`
	Level    string            `json:"level"`
	Terms    []string          `json:"terms"`
	Levels   map[string]string `json:"levels"`
	Child    map[string]string `json:"child"`
	Later    *laterSpec        `json:"later"`
	Ask      string            `json:"ask"`
	Disabled bool              `json:"disabled"`
	// Figurative marks a sign patients also use as a figure of speech
	// ("almost passed out from the price", "heart skipped a beat when I
	// saw"): a mention in a clause with a figurative cue is set aside.
	Figurative bool `json:"figurative"`
	// Plan marks a call for help ("911", "urgencias") that, in a sentence
	// asking what to do if something happens, is about the plan and not a
	// report ("should I call you or 911 if I get chest pain?").
	Plan bool `json:"plan"`
	// Excitement marks a figurative sign also used of excitement ("heart
	// racing watching the final"), which the figurative_excitement cues
	// set aside too; a faint while watching the final is still a faint.
	Excitement bool `json:"excitement"`
	// History marks a sign that is always a story of the past ("used to
	// faint at the sight of needles", "she faints at blood"): at no level
	// it is settled, not named, so "had zero issues" after it is good news.
	History bool `json:"history"`
}

type laterSpec struct {
	Hours float64 `json:"hours"`
	Level string  `json:"level"`
}

type contextSpec struct {
	Negation          []string `json:"negation"`
	NegationList      []string `json:"negation_list"`
	PastOthers        []string `json:"past_others"`
	Figurative        []string `json:"figurative"`
	FigExcitement     []string `json:"figurative_excitement"`
	NegationPost      []string `json:"negation_post"`
	Pseudo            []string `json:"pseudo"`
	Hypothetical      []string `json:"hypothetical"`
	Conditional       []string `json:"conditional"`
	Question          []string `json:"question"`
	Affirm            []string `json:"affirm"`
	Terminators       []string `json:"terminators"`
	Child             []string `json:"child"`
	Other             []string `json:"other"`
	Pronouns          []string `json:"pronouns"`
	FirstPerson       []string `json:"first_person"`
	ClauseStarts      []string `json:"clause_starts"`
	BackrefFillers    []string `json:"backref_fillers"`
	GapBreakers       []string `json:"gap_breakers"`
	ListWords         []string `json:"list_words"`
	ListEnd           []string `json:"list_end"`
	Acquaintance      []string `json:"acquaintance"`
	NotPatient        []string `json:"not_patient"`
	Hearsay           []string `json:"hearsay"`
	Media             []string `json:"media"`
	Disclaim          []string `json:"disclaim"`
	NormalCheck       []string `json:"normal_check"`
	Personal          []string `json:"personal"`
	NegationContrast  []string `json:"negation_contrast"`
	Simile            []string `json:"simile"`
	PerfectAux        []string `json:"perfect_aux"`
	Participles       []string `json:"participles"`
	ParticipleEndings []string `json:"participle_endings"`
	Recent            []string `json:"recent"`
	ResolvedAhead     []string `json:"resolved_ahead"`
	NegationWindow    int      `json:"negation_window"`
	ConditionalWindow int      `json:"conditional_window"`
}

type comboSpec struct {
	Signs []string `json:"signs"`
	Level string   `json:"level"`
}

// scoreSpec reads a number in context (a pain score, a temperature, a
// pulse) and maps it to a sign through bands.
type scoreSpec struct {
	Patterns   []string   `json:"patterns"`
	Context    []string   `json:"context"`
	NotContext []string   `json:"not_context"`
	BareWords  int        `json:"bare_words"`
	Bands      []bandSpec `json:"bands"`
}

type bandSpec struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	Use string  `json:"use"`
}

type timeSpec struct {
	Term   string  `json:"term"`
	Hours  float64 `json:"hours"`
	Offset float64 `json:"offset"`
}

type fuzzySpec struct {
	Words    []string `json:"words"`
	NotTypos []string `json:"not_typos"`
	// Everyday words appear in sign terms but say nothing alone ("floor",
	// "like"): left unread, they do not make a message suspect.
	Everyday []string `json:"everyday"`
	// Parts are body parts a real word one letter off may stand for
	// beside a word of PartPains: "chess pain" is chest pain, while
	// "chess" alone stays the game (it is listed under not_typos).
	Parts []string `json:"parts"`
	// PartPains are the symptom words that make such a pair ("pain",
	// "pressure", "dolor"); a word no rule knows right before one is an
	// unread body part, so the message is asked about, never reassured.
	PartPains []string `json:"part_pains"`
}

type questionSpec struct {
	ID      string       `json:"id"`
	Text    string       `json:"text"`
	Choices []choiceSpec `json:"choices"`
}

type choiceSpec struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Level string `json:"level"`
}

type askNowSpec struct {
	Text string `json:"text"`
	Yes  string `json:"yes"`
	No   string `json:"no"`
}

// Modifier categories. The index is also the slot in an entry's level table;
// catBase is the level of a plain mention.
const (
	catBase = iota
	catMild
	catVery
	catSevere
	catPersistent
	catWorse
	catImproving
	catResolved
	catHistorical
	catRecurring
	catPleasant
	catChecked
	catPast
	nCat
)

var catNames = [nCat]string{"base", "mild", "very", "severe", "persistent", "worse", "improving", "resolved", "historical", "recurring", "pleasant", "checked", "past"}

func catWant(withBase bool) string {
	names := catNames[1:]
	if withBase {
		names = catNames[:]
	}
	return strings.Join(names, ", ")
}

func catIndex(name string, withBase bool) int {
	for i, n := range catNames {
		if n == name && (i > 0 || withBase) {
			return i
		}
	}
	return -1
}

// ---- strict decoding with key paths ----

// ruleError is a problem at one key of one file.
type ruleError struct {
	file, key, msg string
}

func (e *ruleError) Error() string {
	if e.key == "" {
		return e.file + ": " + e.msg
	}
	return e.file + ": " + e.key + ": " + e.msg
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// decodeStrict decodes raw into v, rejecting unknown keys and naming the
// full key path of the first problem it meets.
func decodeStrict(path string, raw json.RawMessage, v reflect.Value) (string, error) {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "null" {
		return "", nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		if p, err := decodeStrict(path, raw, nv.Elem()); err != nil {
			return p, err
		}
		v.Set(nv)
		return "", nil
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return path, errors.New("want an object")
		}
		fields := map[string]int{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			fields[name] = i
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			i, ok := fields[k]
			if !ok {
				return joinKey(path, k), errors.New("unknown field")
			}
			if p, err := decodeStrict(joinKey(path, k), obj[k], v.Field(i)); err != nil {
				return p, err
			}
		}
		return "", nil
	case reflect.Slice:
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			return path, errors.New("want an array")
		}
		s := reflect.MakeSlice(v.Type(), len(arr), len(arr))
		for i, r := range arr {
			if p, err := decodeStrict(fmt.Sprintf("%s[%d]", path, i), r, s.Index(i)); err != nil {
				return p, err
			}
		}
		v.Set(s)
		return "", nil
	case reflect.Map:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return path, errors.New("want an object")
		}
		m := reflect.MakeMapWithSize(v.Type(), len(obj))
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ev := reflect.New(v.Type().Elem()).Elem()
			if p, err := decodeStrict(joinKey(path, k), obj[k], ev); err != nil {
				return p, err
			}
			m.SetMapIndex(reflect.ValueOf(k), ev)
		}
		v.Set(m)
		return "", nil
	default:
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			return path, fmt.Errorf("want a %s", kindName(v.Kind()))
		}
		return "", nil
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.Int, reflect.Float64:
		return "number"
	}
	return k.String()
}

// parseFile decodes one rule file strictly.
func parseFile(f File) (*ruleFile, error) {
	var raw json.RawMessage
	if err := json.Unmarshal(f.Data, &raw); err != nil {
		return nil, &ruleError{file: f.Name, msg: "not valid JSON: " + err.Error()}
	}
	rf := &ruleFile{}
	if p, err := decodeStrict("", raw, reflect.ValueOf(rf).Elem()); err != nil {
		return nil, &ruleError{file: f.Name, key: p, msg: err.Error()}
	}
	return rf, nil
}

// ---- merged rule set (before compiling) ----

// origin remembers where a rule came from, for error messages.
type origin struct{ file, key string }

type mergedSign struct {
	spec signSpec
	lang string
	at   origin
}

type mergedQuestion struct {
	spec questionSpec
	at   origin
}

type termRef struct {
	term string
	at   origin
}

type mergedRules struct {
	signs     []*mergedSign
	signIdx   map[string]int // lang + ":" + id -> index in signs
	questions map[string]*mergedQuestion
	askNow    map[string]*askNowSpec
	mods      [nCat][]termRef
	ctx       map[string][]termRef // context list name -> terms
	negWin    int
	condWin   int
	combos    []comboSpec
	comboAt   []origin
	scores    map[string]*mergedScore
	scoreList []string
	time      []timeSpec
	timeAt    []origin
	numbers   map[string]float64
	fuzzy     []termRef
	notTypos  []termRef
	parts     []termRef
	partPains []termRef
	everyday  []termRef
	langs     []string
}

func newMerged() *mergedRules {
	return &mergedRules{
		signIdx:   map[string]int{},
		questions: map[string]*mergedQuestion{},
		askNow:    map[string]*askNowSpec{},
		ctx:       map[string][]termRef{},
		numbers:   map[string]float64{},
		scores:    map[string]*mergedScore{},
	}
}

type mergedScore struct {
	patterns, ctx, not []termRef
	bareWords          int
	bands              []bandSpec
	bandLang           string
	bandAt             origin
}

type errList struct{ errs []error }

func (l *errList) add(file, key, format string, args ...any) {
	if len(l.errs) < 50 {
		l.errs = append(l.errs, &ruleError{file: file, key: key, msg: fmt.Sprintf(format, args...)})
	}
}

func (l *errList) err() error { return errors.Join(l.errs...) }

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func checkLevel(el *errList, file, key, s string) engine.Level {
	if strings.TrimSpace(s) == "" {
		el.add(file, key, "missing (want none, watch, urgent or emergency)")
		return engine.None
	}
	l, err := engine.ParseLevel(s)
	if err != nil {
		el.add(file, key, "%v", err)
	}
	return l
}

// merge folds one parsed file into m, checking what can be checked per file.
func (m *mergedRules) merge(f File, rf *ruleFile, el *errList) {
	if rf.Replace {
		*m = *newMerged()
	}
	lang := rf.Language
	if lang == "" {
		el.add(f.Name, "language", "missing (want a language code such as \"en\")")
	} else if !isIdent(lang) {
		el.add(f.Name, "language", "%q is not a language code (want lowercase letters, e.g. \"es\")", lang)
	}
	if !contains(m.langs, lang) {
		m.langs = append(m.langs, lang)
	}
	seen := map[string]bool{}
	for i, s := range rf.Signs {
		key := fmt.Sprintf("signs[%d]", i)
		if s.ID == "" {
			el.add(f.Name, key+".id", "missing")
		} else if !isIdent(s.ID) {
			el.add(f.Name, key+".id", "%q: want lowercase letters, digits and _", s.ID)
		} else if seen[s.ID] {
			el.add(f.Name, key+".id", "duplicate id %q in this file", s.ID)
		}
		seen[s.ID] = true
		if s.Disabled {
			if j, ok := m.signIdx[lang+":"+s.ID]; ok {
				m.signs[j] = nil
				delete(m.signIdx, lang+":"+s.ID)
			}
			continue
		}
		if s.Sign == "" {
			el.add(f.Name, key+".sign", "missing")
		} else if !isIdent(s.Sign) {
			el.add(f.Name, key+".sign", "%q: want lowercase letters, digits and _", s.Sign)
		}
		checkLevel(el, f.Name, key+".level", s.Level)
		if len(s.Terms) == 0 {
			el.add(f.Name, key+".terms", "missing (want at least one term)")
		}
		for k, v := range s.Levels {
			if catIndex(k, false) < 0 {
				el.add(f.Name, key+".levels."+k, "unknown modifier (want %s)", catWant(false))
			}
			checkLevel(el, f.Name, key+".levels."+k, v)
		}
		for k, v := range s.Child {
			if catIndex(k, true) < 0 {
				el.add(f.Name, key+".child."+k, "unknown modifier (want %s)", catWant(true))
			}
			checkLevel(el, f.Name, key+".child."+k, v)
		}
		if s.Later != nil {
			if s.Later.Hours <= 0 {
				el.add(f.Name, key+".later.hours", "want a number of hours above 0")
			}
			checkLevel(el, f.Name, key+".later.level", s.Later.Level)
		}
		ms := &mergedSign{spec: s, lang: lang, at: origin{f.Name, key}}
		if j, ok := m.signIdx[lang+":"+s.ID]; ok {
			m.signs[j] = ms
		} else {
			m.signIdx[lang+":"+s.ID] = len(m.signs)
			m.signs = append(m.signs, ms)
		}
	}
	for cat, terms := range rf.Modifiers {
		c := catIndex(cat, false)
		if c < 0 {
			el.add(f.Name, "modifiers."+cat, "unknown modifier (want %s)", catWant(false))
			continue
		}
		for i, t := range terms {
			m.mods[c] = append(m.mods[c], termRef{t, origin{f.Name, fmt.Sprintf("modifiers.%s[%d]", cat, i)}})
		}
	}
	cv := reflect.ValueOf(rf.Context)
	ct := cv.Type()
	for i := 0; i < ct.NumField(); i++ {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ",")
		if terms, ok := cv.Field(i).Interface().([]string); ok {
			for j, t := range terms {
				m.ctx[name] = append(m.ctx[name], termRef{t, origin{f.Name, fmt.Sprintf("context.%s[%d]", name, j)}})
			}
		}
	}
	if w := rf.Context.NegationWindow; w != 0 {
		if w < 1 || w > 30 {
			el.add(f.Name, "context.negation_window", "want 1 to 30 words")
		}
		m.negWin = w
	}
	if w := rf.Context.ConditionalWindow; w != 0 {
		if w < 1 || w > 30 {
			el.add(f.Name, "context.conditional_window", "want 1 to 30 words")
		}
		m.condWin = w
	}
	for i, c := range rf.Combos {
		key := fmt.Sprintf("combos[%d]", i)
		if len(c.Signs) < 2 {
			el.add(f.Name, key+".signs", "want at least two sign names")
		}
		checkLevel(el, f.Name, key+".level", c.Level)
		m.combos = append(m.combos, c)
		m.comboAt = append(m.comboAt, origin{f.Name, key})
	}
	names := make([]string, 0, len(rf.Scores))
	for k := range rf.Scores {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		p := rf.Scores[name]
		base := "scores." + name
		if !isIdent(name) {
			el.add(f.Name, base, "score names are lowercase letters, digits and _")
		}
		ms := m.scores[name]
		if ms == nil {
			ms = &mergedScore{}
			m.scores[name] = ms
			m.scoreList = append(m.scoreList, name)
		}
		for i, t := range p.Patterns {
			key := fmt.Sprintf("%s.patterns[%d]", base, i)
			if !strings.Contains(t, "#") {
				el.add(f.Name, key, "%q: want a # where the number goes", t)
			}
			ms.patterns = append(ms.patterns, termRef{t, origin{f.Name, key}})
		}
		for i, t := range p.Context {
			ms.ctx = append(ms.ctx, termRef{t, origin{f.Name, fmt.Sprintf("%s.context[%d]", base, i)}})
		}
		for i, t := range p.NotContext {
			ms.not = append(ms.not, termRef{t, origin{f.Name, fmt.Sprintf("%s.not_context[%d]", base, i)}})
		}
		if p.BareWords != 0 {
			ms.bareWords = p.BareWords
		}
		if len(p.Bands) > 0 {
			ms.bands, ms.bandLang, ms.bandAt = p.Bands, lang, origin{f.Name, base + ".bands"}
			for i, b := range p.Bands {
				key := fmt.Sprintf("%s.bands[%d]", base, i)
				if b.Max < b.Min {
					el.add(f.Name, key+".max", "want a maximum at least the minimum (%g)", b.Min)
				}
				if b.Use == "" {
					el.add(f.Name, key+".use", "missing (want a sign id)")
				}
			}
		}
	}
	for i, t := range rf.Time {
		key := fmt.Sprintf("time[%d]", i)
		if t.Term == "" {
			el.add(f.Name, key+".term", "missing")
		}
		if t.Hours < 0 {
			el.add(f.Name, key+".hours", "want a number of hours, 0 or more")
		}
		m.time = append(m.time, t)
		m.timeAt = append(m.timeAt, origin{f.Name, key})
	}
	for k, v := range rf.Numbers {
		if v < 0 || v > 1000 {
			el.add(f.Name, "numbers."+k, "want a value from 0 to 1000")
		}
		m.numbers[k] = v
	}
	for i, t := range rf.Fuzzy.Words {
		m.fuzzy = append(m.fuzzy, termRef{t, origin{f.Name, fmt.Sprintf("fuzzy.words[%d]", i)}})
	}
	for i, t := range rf.Fuzzy.NotTypos {
		m.notTypos = append(m.notTypos, termRef{t, origin{f.Name, fmt.Sprintf("fuzzy.not_typos[%d]", i)}})
	}
	for i, t := range rf.Fuzzy.Parts {
		m.parts = append(m.parts, termRef{t, origin{f.Name, fmt.Sprintf("fuzzy.parts[%d]", i)}})
	}
	for i, t := range rf.Fuzzy.PartPains {
		m.partPains = append(m.partPains, termRef{t, origin{f.Name, fmt.Sprintf("fuzzy.part_pains[%d]", i)}})
	}
	for i, t := range rf.Fuzzy.Everyday {
		m.everyday = append(m.everyday, termRef{t, origin{f.Name, fmt.Sprintf("fuzzy.everyday[%d]", i)}})
	}
	for i, q := range rf.Questions {
		key := fmt.Sprintf("questions[%d]", i)
		if !isIdent(q.ID) {
			el.add(f.Name, key+".id", "missing or not lowercase letters, digits and _")
		}
		if strings.TrimSpace(q.Text) == "" {
			el.add(f.Name, key+".text", "missing")
		}
		if len(q.Choices) < 2 || len(q.Choices) > 3 {
			el.add(f.Name, key+".choices", "want 2 or 3 choices, have %d", len(q.Choices))
		}
		ids := map[string]bool{}
		for j, c := range q.Choices {
			ck := fmt.Sprintf("%s.choices[%d]", key, j)
			if !isIdent(c.ID) {
				el.add(f.Name, ck+".id", "missing or not lowercase letters, digits and _")
			} else if ids[c.ID] {
				el.add(f.Name, ck+".id", "duplicate choice id %q", c.ID)
			}
			ids[c.ID] = true
			if strings.TrimSpace(c.Label) == "" {
				el.add(f.Name, ck+".label", "missing")
			}
			checkLevel(el, f.Name, ck+".level", c.Level)
		}
		m.questions[lang+":"+q.ID] = &mergedQuestion{spec: q, at: origin{f.Name, key}}
	}
	if a := rf.AskNow; a != nil {
		if strings.TrimSpace(a.Text) == "" {
			el.add(f.Name, "ask_now.text", "missing")
		}
		if strings.TrimSpace(a.Yes) == "" {
			el.add(f.Name, "ask_now.yes", "missing")
		}
		if strings.TrimSpace(a.No) == "" {
			el.add(f.Name, "ask_now.no", "missing")
		}
		m.askNow[lang] = a
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// defaultFiles returns the embedded rule files in a fixed order.
func defaultFiles() []File {
	ents, err := embedded.ReadDir("rules")
	if err != nil {
		panic("triage: embedded rules missing: " + err.Error())
	}
	var out []File
	for _, e := range ents {
		b, err := embedded.ReadFile("rules/" + e.Name())
		if err != nil {
			panic("triage: " + err.Error())
		}
		out = append(out, File{Name: "rules/" + e.Name(), Data: b})
	}
	// English first, so its score bands are the defaults unless a later file sets its own.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name == "rules/en.json" && out[j].Name != "rules/en.json" })
	return out
}

// build parses, merges, validates and compiles files into a rule set.
func build(files []File) (*ruleset, error) {
	el := &errList{}
	m := newMerged()
	for _, f := range files {
		rf, err := parseFile(f)
		if err != nil {
			el.errs = append(el.errs, err)
			continue
		}
		m.merge(f, rf, el)
	}
	if err := el.err(); err != nil {
		return nil, err
	}
	rs := compile(m, el)
	if err := el.err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// readFiles reads rule files from disk.
func readFiles(paths []string) ([]File, error) {
	var files []File
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("triage: read rules: %w", err)
		}
		files = append(files, File{Name: p, Data: b})
	}
	return files, nil
}
