package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// DefaultReplayStart is the virtual start time of a replay without a start line.
var DefaultReplayStart = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// scriptStep is one parsed line of a replay script.
type scriptStep struct {
	line    int
	at      time.Duration
	visit   *engine.Visit
	patient engine.PatientID
	says    *string
	presses *string
	restart bool
}

// rawLine is the JSON shape of a script line. An unknown key is an error:
// a misspelt "says" would otherwise drop the patient's message silently.
type rawLine struct {
	Start   *string   `json:"start"`
	At      *string   `json:"at"`
	Visit   *rawVisit `json:"visit"`
	Patient *string   `json:"patient"`
	Says    *string   `json:"says"`
	Presses *string   `json:"presses"`
	Restart *bool     `json:"restart"`
}

type rawVisit struct {
	Patient   string `json:"patient"`
	Treatment string `json:"treatment"`
	Area      string `json:"area"`
	Acute     bool   `json:"acute"`
	Child     bool   `json:"child"`
	TZ        string `json:"tz"`
	Lang      string `json:"lang"`
	// Consent defaults to true: a visit recorded by the clinic carries the
	// patient's agreement given in person. false makes the bot ask first.
	Consent *bool `json:"consent"`
}

// scriptKeys are the keys a script line may use, at the top or inside
// "visit" (the decoder names an unknown key without its parent).
var scriptKeys = []string{"start", "at", "visit", "patient", "says", "presses", "restart",
	"treatment", "area", "acute", "child", "tz", "lang", "consent"}

// unknownScriptKey explains an unknown key, with the closest known one.
func unknownScriptKey(key string) string {
	msg := fmt.Sprintf("%q is not a script key", key)
	if s := suggestKey(key, scriptKeys); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg + " (keys: start, at, visit, patient, says, presses, restart)"
}

// ScriptError names the script line at fault.
type ScriptError struct {
	Line int
	Msg  string
}

func (e *ScriptError) Error() string { return fmt.Sprintf("script line %d: %s", e.Line, e.Msg) }

// parseScript reads a whole replay script and validates every line before
// anything runs, so a bad line never leaves a half-run replay.
func parseScript(r io.Reader) (time.Time, []scriptStep, error) {
	start := DefaultReplayStart
	var steps []scriptStep
	br := bufio.NewReader(r)
	var last time.Duration
	for n := 1; ; n++ {
		raw, err := br.ReadBytes('\n')
		if len(raw) == 0 && err != nil {
			if err == io.EOF {
				return start, steps, nil
			}
			return start, nil, &ScriptError{n, err.Error()}
		}
		if len(raw) > 1<<20 {
			return start, nil, &ScriptError{n, "line longer than 1 MiB"}
		}
		b := bytes.TrimSpace(raw)
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		var l rawLine
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return start, nil, &ScriptError{n, unknownScriptKey(strings.Trim(f, `"`))}
			}
			return start, nil, &ScriptError{n, "not a JSON object: " + err.Error()}
		}
		if dec.More() {
			return start, nil, &ScriptError{n, "more than one JSON value on the line"}
		}
		if l.Start != nil {
			if len(steps) > 0 || last > 0 {
				return start, nil, &ScriptError{n, `"start" is only allowed on the first line`}
			}
			t, err := time.Parse(time.RFC3339, *l.Start)
			if err != nil {
				return start, nil, &ScriptError{n, `"start" must be an RFC 3339 time like "2026-03-02T10:00:00-06:00"`}
			}
			start = t
			if l.At == nil && l.Visit == nil && l.Says == nil && l.Presses == nil && l.Restart == nil {
				continue
			}
		}
		s := scriptStep{line: n, at: last}
		if l.At != nil {
			d, err := time.ParseDuration(*l.At)
			if err != nil || d < 0 {
				return start, nil, &ScriptError{n, fmt.Sprintf(`"at": %q is not a non-negative Go duration like "5m" or "24h"`, *l.At)}
			}
			if d < last {
				return start, nil, &ScriptError{n, fmt.Sprintf(`"at": %s is before the previous line's %s; lines must be in time order`, d, last)}
			}
			s.at, last = d, d
		}
		actions := 0
		if l.Visit != nil {
			actions++
			v := l.Visit
			if strings.TrimSpace(v.Patient) == "" {
				return start, nil, &ScriptError{n, `"visit.patient" is required`}
			}
			t := engine.Treatment(v.Treatment)
			if !t.Valid() {
				return start, nil, &ScriptError{n, fmt.Sprintf(`"visit.treatment": %q, want acupuncture, electroacupuncture or dry_needling`, v.Treatment)}
			}
			if v.TZ != "" {
				if _, err := time.LoadLocation(v.TZ); err != nil {
					return start, nil, &ScriptError{n, fmt.Sprintf(`"visit.tz": %q is not an IANA time zone`, v.TZ)}
				}
			}
			s.patient = engine.PatientID(v.Patient)
			s.visit = &engine.Visit{Treatment: t, Area: v.Area, Acute: v.Acute, Child: v.Child, TZ: v.TZ, Lang: v.Lang, Source: "clinic",
				Consent: v.Consent == nil || *v.Consent}
		}
		if l.Says != nil || l.Presses != nil {
			actions++
			if l.Says != nil && l.Presses != nil {
				return start, nil, &ScriptError{n, `use either "says" or "presses", not both`}
			}
			if l.Patient == nil || strings.TrimSpace(*l.Patient) == "" {
				return start, nil, &ScriptError{n, `"patient" is required with "says" or "presses"`}
			}
			s.patient = engine.PatientID(*l.Patient)
			s.says, s.presses = l.Says, l.Presses
		}
		if l.Restart != nil && *l.Restart {
			actions++
			s.restart = true
		}
		if actions > 1 {
			return start, nil, &ScriptError{n, "one action per line: visit, says, presses or restart"}
		}
		if s.patient == engine.StaffAddress {
			return start, nil, &ScriptError{n, `"staff" is reserved and cannot be a patient`}
		}
		steps = append(steps, s)
		if err == io.EOF {
			return start, steps, nil
		}
	}
}

// replayOut is one line of replay output.
type replayOut struct {
	At      string   `json:"at"`
	To      string   `json:"to"`
	Kind    string   `json:"kind"`
	Level   string   `json:"level,omitempty"`
	Patient string   `json:"patient,omitempty"`
	Text    string   `json:"text"`
	Choices []string `json:"choices,omitempty"`
}

// replayer holds a replay's moving parts.
type replayer struct {
	cfg     Config
	ladder  bool
	path    string
	clock   *clock.Fake
	start   time.Time
	store   *store.Store
	svc     *service.Service
	enc     *json.Encoder
	choices map[engine.PatientID][]engine.Choice
}

func (m *Main) replay(ctx context.Context, args []string) error {
	fs, cfgPath, err := m.flags("replay", nil, -1)
	if err != nil {
		return err
	}
	ladder := fs.Bool("ladder", false, "run the staff escalation ladder (reminders every ack_timeout; staff never acknowledge in a script)")
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return &usageError{"replay: expected one SCRIPT argument (a file, or - for stdin)\n" + usage}
	}
	cfg := DefaultConfig()
	if *cfgPath != "" || m.Config != nil {
		if cfg, err = m.loadClinic(fs, *cfgPath); err != nil {
			return err
		}
	}
	var in io.Reader = m.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return &usageError{fmt.Sprintf("replay: %v", err)}
		}
		defer f.Close()
		in = f
	}
	start, steps, err := parseScript(in)
	if err != nil {
		return &usageError{err.Error()}
	}
	dir, err := os.MkdirTemp("", "aftercare-replay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w := bufio.NewWriter(m.Stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	r := &replayer{cfg: cfg, ladder: *ladder, path: filepath.Join(dir, "replay.db"), clock: clock.NewFake(start), start: start, enc: enc,
		choices: map[engine.PatientID][]engine.Choice{}}
	if err := r.open(); err != nil {
		return err
	}
	defer func() { r.store.Close() }()
	for _, s := range steps {
		if err := r.advance(ctx, start.Add(s.at)); err != nil {
			return fmt.Errorf("script line %d: %w", s.line, err)
		}
		if err := r.apply(ctx, s); err != nil {
			return fmt.Errorf("script line %d: %w", s.line, err)
		}
	}
	return nil
}

func (r *replayer) open() error {
	st, err := store.Open(r.path, store.Options{NoSync: true})
	if err != nil {
		return err
	}
	eng, err := buildEngine(r.cfg)
	if err != nil {
		st.Close()
		return err
	}
	ack := -time.Second // off: in a script nobody acknowledges, so reminders would only repeat the alert
	if r.ladder {
		ack, _ = time.ParseDuration(r.cfg.Escalation.AckTimeout)
	}
	svc, err := service.New(service.Config{Engine: eng, Store: st, Clock: r.clock, StaffChannels: []engine.PatientID{engine.StaffAddress},
		AckTimeout: ack})
	if err != nil {
		st.Close()
		return err
	}
	r.store, r.svc = st, svc
	return nil
}

// advance moves the virtual clock to t, firing each timer at its own due
// time so output times are exact.
func (r *replayer) advance(ctx context.Context, t time.Time) error {
	for {
		d, ok, err := r.store.NextDue()
		if err != nil {
			return err
		}
		if !ok || d.At.After(t) {
			break
		}
		if d.At.After(r.clock.Now()) {
			r.clock.Set(d.At)
		}
		if _, err := r.svc.Fire(ctx, d); err != nil {
			return err
		}
		if err := r.flush(); err != nil {
			return err
		}
	}
	r.clock.Set(t)
	return nil
}

func (r *replayer) apply(ctx context.Context, s scriptStep) error {
	switch {
	case s.restart:
		if err := r.store.Close(); err != nil {
			return err
		}
		return r.open()
	case s.visit != nil:
		v := *s.visit
		v.At = r.clock.Now()
		if err := r.svc.RecordVisit(ctx, s.patient, v); err != nil {
			return err
		}
	case s.says != nil:
		// A scripted "/start TOKEN" presents an invite as a typing patient would.
		if err := r.svc.Receive(ctx, service.Inbound{Patient: s.patient, Text: *s.says, Invite: service.StartInvite(*s.says)}); err != nil {
			return err
		}
	case s.presses != nil:
		in := service.Inbound{Patient: s.patient, Choice: *s.presses}
		for _, c := range r.choices[s.patient] {
			if c.ID == *s.presses || strings.EqualFold(c.Label, *s.presses) {
				in.Choice, in.Text = c.ID, c.Label
				break
			}
		}
		if in.Text == "" {
			// Not a button on offer: the patient effectively typed it.
			in.Choice, in.Text, in.Invite = "", *s.presses, service.StartInvite(*s.presses)
		}
		if err := r.svc.Receive(ctx, in); err != nil {
			return err
		}
	}
	return r.flush()
}

// flush prints and removes everything queued, in creation order.
func (r *replayer) flush() error {
	for {
		ms, err := r.store.OutboxAll(1024)
		if err != nil || len(ms) == 0 {
			return err
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
		for _, m := range ms {
			o := replayOut{At: m.Created.Sub(r.start).String(), To: string(m.To), Kind: string(m.Kind), Text: m.Text}
			if m.Kind == engine.KindEscalation || m.Kind == engine.KindAlert {
				o.Level = m.Level.String()
			}
			if m.To == engine.StaffAddress {
				o.Patient = string(m.Patient)
			}
			for _, c := range m.Choices {
				o.Choices = append(o.Choices, c.Label)
			}
			if m.To != engine.StaffAddress {
				r.choices[m.To] = m.Choices
			}
			if err := r.enc.Encode(o); err != nil {
				return err
			}
		}
		if err := r.store.Delivered(ms...); err != nil {
			return err
		}
	}
}
