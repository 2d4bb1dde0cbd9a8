package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// A labelled message replayed end to end: a clinic-recorded visit, the one
// message at its hour (2 h after the session when none is given), then the
// clock run on past the clarify timeout so unanswered questions alert.
type labelled struct {
	file, level, text, lang string
	hours                   float64
}

// outcome is what the product did with one message, read from replay output.
type outcome struct {
	escalated   engine.Level // highest level escalated to the patient at once, or -1
	net         bool         // answered with the safety-net question or a clarifying question about a red flag
	netAlert    engine.Level // level staff were alerted at when the net went unanswered, or -1
	firstNumber bool         // the first reply (after the greeting) holds the emergency number
	dismissed   bool         // "didn't get that"
	reassured   bool         // "a normal reaction", an after-effect tip or "good to hear"
	staff       bool         // any staff alert at all
	firstText   string
	spanish     bool // the bot answered in Spanish
}

// caught reports whether a red flag was handled as the issue requires.
func (o outcome) caught() bool {
	return o.escalated >= engine.Urgent || (o.net && o.netAlert >= engine.Urgent)
}

func readLabelled(t testing.TB, paths ...string) []labelled {
	t.Helper()
	var out []labelled
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		lang := "en"
		if strings.Contains(filepath.Base(p), ".es.") {
			lang = "es"
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
				continue
			}
			parts := strings.Split(line, "\t")
			l := labelled{file: filepath.Base(p), level: parts[0], text: parts[1], hours: -1, lang: lang}
			if len(parts) > 2 && strings.TrimSpace(parts[2]) != "" {
				h, err := strconv.ParseFloat(strings.TrimSpace(parts[2]), 64)
				if err != nil {
					t.Fatalf("%s: bad hours %q", p, parts[2])
				}
				l.hours = h
			}
			if _, err := engine.ParseLevel(l.level); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			out = append(out, l)
		}
		f.Close()
	}
	return out
}

// replayOutcomes replays every message as its own patient in one script and
// reads what happened to each.
func replayOutcomes(t testing.TB, msgs []labelled) []outcome {
	t.Helper()
	type sched struct {
		i  int
		at time.Duration
	}
	var ss []sched
	var b strings.Builder
	b.WriteString(`{"start":"2026-03-02T10:00:00-06:00"}` + "\n")
	for i := range msgs {
		fmt.Fprintf(&b, `{"at":"0s","visit":{"patient":"p%d","treatment":"acupuncture","area":"lower back"}}`+"\n", i)
		h := msgs[i].hours
		if h < 0 {
			h = 2
		}
		ss = append(ss, sched{i, time.Duration(h * float64(time.Hour))})
	}
	slices.SortStableFunc(ss, func(a, b sched) int { return int(a.at - b.at) })
	var last time.Duration
	for _, s := range ss {
		text, _ := json.Marshal(msgs[s.i].text)
		fmt.Fprintf(&b, `{"at":%q,"patient":"p%d","says":%s}`+"\n", s.at.String(), s.i, text)
		last = s.at
	}
	fmt.Fprintf(&b, `{"at":%q}`+"\n", (last + 3*time.Hour).String())

	dir := t.TempDir()
	script := filepath.Join(dir, "script.jsonl")
	if err := os.WriteFile(script, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	m := &Main{Args: []string{"replay", script}, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out,
		Getenv: func(string) string { return "" }}
	if err := m.Run(t.Context()); err != nil {
		t.Fatalf("replay: %v", err)
	}

	// The patient may be answered in any language the engine speaks.
	var greetings, greetLang, notUnderstood, reassure, netLabels, clarifyNumbers []string
	for _, p := range engine.DefaultProtocols() {
		greetLang = append(greetLang, p.Language)
		greetings = append(greetings, strings.Join(strings.Fields(p.Texts["greeting"])[0:4], " "))
		notUnderstood = append(notUnderstood, p.Texts["not_understood"])
		netLabels = append(netLabels, p.Texts["safety_net_call"])
		clarifyNumbers = append(clarifyNumbers, strings.Join(strings.Fields(p.Texts["clarify_numbers"])[0:5], " "))
		// "That's good to hear!" to a red flag is reassurance too.
		reassure = append(reassure, p.Texts["good_news"][:min(len(p.Texts["good_news"]), 40)])
		// The worse-before-better answer tells a patient that feeling
		// worse is expected: to a red flag it is reassurance as well.
		for _, f := range p.FAQ {
			if f.ID == "worse_before_better" && f.Answer != "" {
				reassure = append(reassure, strings.TrimSpace(f.Answer[:min(len(f.Answer), 60)]))
			}
		}
		for _, v := range p.AfterEffects {
			if v != "" {
				reassure = append(reassure, strings.TrimSpace(v[:min(len(v), 60)]))
			}
		}
	}
	hasAny := func(s string, subs []string) bool {
		for _, x := range subs {
			if strings.Contains(s, x) {
				return true
			}
		}
		return false
	}

	res := make([]outcome, len(msgs))
	msgAt := make([]time.Duration, len(msgs))
	for _, s := range ss {
		msgAt[s.i] = s.at
	}
	for i := range res {
		res[i] = outcome{escalated: -1, netAlert: -1}
	}
	seenFirst := make([]bool, len(msgs))
	dec := json.NewDecoder(strings.NewReader(out.String()))
	for dec.More() {
		var r replayOut
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		who := r.To
		if r.To == string(engine.StaffAddress) {
			who = r.Patient
		}
		i, err := strconv.Atoi(strings.TrimPrefix(who, "p"))
		if err != nil || i < 0 || i >= len(msgs) {
			continue
		}
		at, _ := time.ParseDuration(r.At)
		if at < msgAt[i] || r.Kind == string(engine.KindCheckin) || r.Kind == string(engine.KindNudge) {
			continue
		}
		o := &res[i]
		lvl, _ := engine.ParseLevel(r.Level)
		immediate := at == msgAt[i]
		if r.To == string(engine.StaffAddress) {
			if r.Kind == string(engine.KindAlert) {
				o.staff = true
				if !immediate && o.net {
					o.netAlert = max(o.netAlert, lvl)
				}
			}
			continue
		}
		if !immediate {
			continue
		}
		text := r.Text
		for k, g := range greetings {
			if strings.HasPrefix(r.Text, g) {
				o.spanish = greetLang[k] == "es"
				// The greeting may open the first answer in the same
				// message: what follows its paragraph is that answer.
				text = ""
				if _, rest, ok := strings.Cut(r.Text, "\n\n"); ok {
					text = rest
				}
			}
		}
		if !seenFirst[i] && text != "" {
			seenFirst[i] = true
			o.firstText = text
			o.firstNumber = strings.Contains(text, "911")
		}
		if r.Kind == string(engine.KindEscalation) {
			o.escalated = max(o.escalated, lvl)
		}
		for _, c := range r.Choices {
			if slices.Contains(netLabels, c) || hasAny(r.Text, clarifyNumbers) {
				o.net = true
			}
		}
		if hasAny(text, notUnderstood) {
			o.dismissed = true
		}
		if hasAny(text, reassure) {
			o.reassured = true
		}
	}
	return res
}

// triageScore is the targets measured on a set of messages.
type triageScore struct {
	red, redCaught, emerg, emergNumber, redDismissed int
	none, noneEscalated, noneNet                     int
	watch, watchReached                              int
	misses                                           []string
}

func scoreOutcomes(msgs []labelled, outs []outcome) triageScore {
	var s triageScore
	for i, m := range msgs {
		o := outs[i]
		switch m.level {
		case "emergency", "urgent":
			s.red++
			if o.caught() {
				s.redCaught++
			} else {
				s.misses = append(s.misses, fmt.Sprintf("%s %s [%s] %q -> escalated=%v net=%v netAlert=%v first=%q", m.file, m.level, answeredLang(m, o), m.text, o.escalated, o.net, o.netAlert, trim(o.firstText, 80)))
			}
			if o.dismissed || (o.reassured && !o.caught()) {
				s.redDismissed++
			}
			if m.level == "emergency" {
				s.emerg++
				if o.firstNumber {
					s.emergNumber++
				} else {
					s.misses = append(s.misses, fmt.Sprintf("%s emergency without the number first [%s] %q -> first=%q", m.file, answeredLang(m, o), m.text, trim(o.firstText, 80)))
				}
			}
		case "watch":
			s.watch++
			if o.staff || o.net || o.escalated >= engine.Watch {
				s.watchReached++
			} else {
				s.misses = append(s.misses, fmt.Sprintf("%s watch [%s] %q -> first=%q", m.file, answeredLang(m, o), m.text, trim(o.firstText, 80)))
			}
		case "none":
			s.none++
			if o.escalated >= engine.Watch {
				s.noneEscalated++
				s.misses = append(s.misses, fmt.Sprintf("%s none escalated %v [%s] %q", m.file, o.escalated, answeredLang(m, o), m.text))
			} else if o.net {
				s.noneNet++
				s.misses = append(s.misses, fmt.Sprintf("%s none asked the safety net [%s] %q", m.file, answeredLang(m, o), m.text))
			}
		}
	}
	return s
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func pct(a, b int) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}

func (s triageScore) String() string {
	return fmt.Sprintf("red flags caught %d/%d (%.1f %%), emergencies with the number first %d/%d, red flags dismissed or reassured %d, "+
		"normal escalated %d/%d (%.1f %%), normal asked the safety net %d/%d (%.1f %%), watch reached staff or asked %d/%d (%.1f %%)",
		s.redCaught, s.red, pct(s.redCaught, s.red), s.emergNumber, s.emerg, s.redDismissed,
		s.noneEscalated, s.none, pct(s.noneEscalated, s.none), s.noneNet, s.none, pct(s.noneNet, s.none),
		s.watchReached, s.watch, pct(s.watchReached, s.watch))
}

// checkTargets fails t where the targets are not met.
func checkTargets(t *testing.T, name string, s triageScore) {
	t.Helper()
	t.Logf("%s: %s", name, s)
	if s.redCaught < s.red {
		t.Errorf("%s: %d red-flag messages neither escalated nor safety-netted with an alert", name, s.red-s.redCaught)
	}
	if s.emergNumber < s.emerg {
		t.Errorf("%s: %d emergencies without the emergency number in the first reply", name, s.emerg-s.emergNumber)
	}
	if s.redDismissed > 0 {
		t.Errorf("%s: %d red flags dismissed or reassured", name, s.redDismissed)
	}
	if pct(s.noneEscalated, s.none) > 3 {
		t.Errorf("%s: %.1f %% of normal messages escalated, want at most 3 %%", name, pct(s.noneEscalated, s.none))
	}
	if pct(s.noneNet, s.none) > 10 {
		t.Errorf("%s: %.1f %% of normal messages asked the safety-net question, want at most 10 %%", name, pct(s.noneNet, s.none))
	}
	if pct(s.watchReached, s.watch) < 85 {
		t.Errorf("%s: %.1f %% of watch messages reached staff or got a question, want at least 85 %%", name, pct(s.watchReached, s.watch))
	}
	if t.Failed() || testing.Verbose() {
		for _, m := range s.misses {
			t.Log("  ", m)
		}
	}
}

// TestTriageReplayDev replays the development corpus end to end and guards
// what was reached on it: every red flag handled, every emergency answered
// with the emergency number first, nothing dismissed or reassured, and no
// more false alarms than at the end of the last work on it (the issue's
// false-alarm targets are not met on every file yet). With
// AFTERCARE_TRIAGE_SET naming other files (comma-separated) it reports on
// those instead, listing every miss, for tuning.
func TestTriageReplayDev(t *testing.T) {
	if files := os.Getenv("AFTERCARE_TRIAGE_SET"); files != "" {
		for _, f := range strings.Split(files, ",") {
			msgs := readLabelled(t, f)
			s := scoreOutcomes(msgs, replayOutcomes(t, msgs))
			t.Logf("%s: %s", f, s)
			for _, m := range s.misses {
				t.Log("  ", m)
			}
		}
		return
	}
	// Normal messages escalated and asked, at most. (The spent sealed sets
	// s1 and s2 are guarded the same way by TestTriageReplaySealed.)
	ceilings := map[string][2]int{
		"corpus/w1.en.tsv": {6, 2}, "corpus/w2.en.tsv": {5, 11}, "corpus/w3.en.tsv": {4, 4}, "corpus/w4.es.tsv": {5, 4},
		// fresh_d.tsv: written for the third round's families; before
		// that work 7 escalated and 10 asked of its 115 normal messages.
		"fresh_d.tsv": {0, 1},
	}
	for name, c := range ceilings {
		t.Run(name, func(t *testing.T) {
			msgs := readLabelled(t, filepath.Join("..", "..", "triage", "testdata", filepath.FromSlash(name)))
			s := scoreOutcomes(msgs, replayOutcomes(t, msgs))
			t.Logf("%s: %s", name, s)
			if s.redCaught < s.red || s.emergNumber < s.emerg || s.redDismissed > 0 || pct(s.watchReached, s.watch) < 95 {
				t.Errorf("red flags %d/%d, emergencies with the number %d/%d, dismissed %d, watch reached %d/%d",
					s.redCaught, s.red, s.emergNumber, s.emerg, s.redDismissed, s.watchReached, s.watch)
			}
			if s.noneEscalated > c[0] || s.noneNet > c[1] {
				t.Errorf("normal messages escalated %d (ceiling %d), asked %d (ceiling %d)", s.noneEscalated, c[0], s.noneNet, c[1])
			}
			if t.Failed() {
				for _, m := range s.misses {
					t.Log("  ", m)
				}
			}
		})
	}
}

// logByLanguage logs a set's figures per language the bot answered in.
func logByLanguage(t *testing.T, name string, msgs []labelled, outs []outcome) {
	t.Helper()
	by := map[bool][]int{}
	for i, o := range outs {
		by[o.spanish] = append(by[o.spanish], i)
	}
	for _, es := range []bool{false, true} {
		var ms []labelled
		var os []outcome
		for _, i := range by[es] {
			ms = append(ms, msgs[i])
			os = append(os, outs[i])
		}
		lang := map[bool]string{false: "en", true: "es"}[es]
		t.Logf("%s [%s] %d messages: %s", name, lang, len(ms), scoreOutcomes(ms, os))
	}
}

// TestUnansweredQuestionAboutARedFlagAlertsAtUrgent replays questions about
// a possible red flag ("is it normal to have pus…?") that the patient then
// leaves unanswered. Silence after such a question may mean it is
// happening to them: staff must be alerted at urgent, not at the lower
// level the question's wording alone suggested.
func TestUnansweredQuestionAboutARedFlagAlertsAtUrgent(t *testing.T) {
	msgs := []labelled{
		{level: "urgent", text: "is it normal to have pus where the needle went in?", hours: 20, lang: "en"},
		{level: "urgent", text: "is an irregular heartbeat normal after treatment?", hours: 2, lang: "en"},
		{level: "urgent", text: "is it normal for the needle spot to be hot and red and spreading?", hours: 30, lang: "en"},
	}
	for i, o := range replayOutcomes(t, msgs) {
		if !o.caught() {
			t.Errorf("%q: escalated %v, asked %v, staff alerted at %v after no answer; want urgent", msgs[i].text, o.escalated, o.net, o.netAlert)
		}
	}
}

// answeredLang is the language a miss is listed under: the one the bot
// answered in (a set mixes languages in one file), or the file's own.
func answeredLang(m labelled, o outcome) string {
	if o.spanish {
		return "es"
	}
	return m.lang
}
