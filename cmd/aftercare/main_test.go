package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// runMain runs the program with args and stdin, returning stdout and the error.
func runMain(t *testing.T, stdin string, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Args: args, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.Run(ctx)
	return out.String(), errb.String(), err
}

func replayLines(t *testing.T, out string) []replayOut {
	t.Helper()
	var rs []replayOut
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r replayOut
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad output line %q: %v", sc.Text(), err)
		}
		rs = append(rs, r)
	}
	return rs
}

// TestReplayGolden runs every script under testdata/replay and compares the
// output with its .golden file (go test -update rewrites them).
func TestReplayGolden(t *testing.T) {
	scripts, _ := filepath.Glob("testdata/replay/*.jsonl")
	if len(scripts) < 4 {
		t.Fatalf("expected golden scripts under testdata/replay, found %d", len(scripts))
	}
	for _, script := range scripts {
		t.Run(filepath.Base(script), func(t *testing.T) {
			out, stderr, err := runMain(t, "", nil, "replay", script)
			if err != nil {
				t.Fatalf("replay: %v\n%s", err, stderr)
			}
			golden := strings.TrimSuffix(script, ".jsonl") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(out), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/aftercare -run TestReplayGolden -update)", err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", golden, out, want)
			}
			for _, r := range replayLines(t, out) {
				if utf8.RuneCountInString(r.Text) > 4096 || r.Text == "" {
					t.Errorf("message of %d runes", utf8.RuneCountInString(r.Text))
				}
			}
		})
	}
}

// TestReplayContract checks the exact output contract on a scripted day.
func TestReplayContract(t *testing.T) {
	script := `{"start":"2026-03-02T10:00:00-06:00"}
{"at":"0s","visit":{"patient":"p1","treatment":"dry_needling","area":"lower back","tz":"America/Chicago"}}
{"at":"5m","patient":"p1","says":"can I lift tonight?"}
{"at":"6m","patient":"p1","presses":"energized"}
{"at":"7m","patient":"p1","presses":"Smoother than before"}
{"at":"8m","patient":"p1","presses":"none"}
{"at":"9m","patient":"p1","presses":"better"}
{"at":"10h","patient":"p1","says":"I fainted in the kitchen"}
{"at":"30h","restart":true}
{"at":"72h"}
`
	out, _, err := runMain(t, script, nil, "replay", "-")
	if err != nil {
		t.Fatal(err)
	}
	rs := replayLines(t, out)
	var checkins []string
	var sawAdvice, sawEsc, sawAlert bool
	for _, r := range rs {
		switch {
		case r.Kind == "checkin":
			checkins = append(checkins, r.At)
		case r.Kind == "reply" && strings.HasPrefix(r.Text, "Light activity"):
			sawAdvice = r.At == "9m0s"
		case r.Kind == "escalation":
			sawEsc = r.To == "p1" && r.Level == "emergency" && strings.Contains(r.Text, "911") && r.At == "10h0m0s"
		case r.Kind == "alert":
			sawAlert = r.To == "staff" && r.Patient == "p1" && r.Level == "emergency"
		}
	}
	if !sawAdvice || !sawEsc || !sawAlert {
		t.Fatalf("advice %v escalation %v alert %v\n%s", sawAdvice, sawEsc, sawAlert, out)
	}
	// 24 h after 10:00 CST is 10:00 the next day; the 48 h one too. The
	// emergency aborted nothing scheduled: both check-ins still come, once.
	if strings.Join(checkins, ",") != "24h0m0s,48h0m0s" {
		t.Fatalf("check-ins at %v, want 24h and 48h exactly once each across the restart", checkins)
	}
	if rs[0].At != "5m0s" {
		t.Fatalf("first output at %s", rs[0].At)
	}
}

func TestReplayScriptErrorsNameTheLine(t *testing.T) {
	cases := []struct{ script, want string }{
		{`{"at":"5m","patient":"p1","says":"hi"}` + "\n" + `{"at":"1m","patient":"p1","says":"hi"}`, "script line 2"},
		{`{"at":"five"}`, "script line 1"},
		{"\n\n" + `not json`, "script line 3"},
		{`{"at":"0s","visit":{"patient":"p1","treatment":"cupping"}}`, `"visit.treatment"`},
		{`{"at":"0s","says":"hi"}`, `"patient" is required`},
		{`{"at":"0s","patient":"p1","says":"hi","presses":"x"}`, "either"},
		{`{"at":"0s"}` + "\n" + `{"start":"2026-01-01T00:00:00Z"}`, "first line"},
		{`{"at":"0s","visit":{"patient":"p1","treatment":"acupuncture","tz":"Mars/Olympus"}}`, "visit.tz"},
	}
	for _, tc := range cases {
		_, _, err := runMain(t, tc.script, nil, "replay", "-")
		var ue *usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("script %q: err %v, want a usage error (exit 2) naming %q", tc.script, err, tc.want)
		}
	}
}

// TestReplayUnknownKeyIsAnError: per the replay contract a bad line is an
// error naming its line (exit code 2); a misspelt key would otherwise drop
// the patient's message without a word.
func TestReplayUnknownKeyIsAnError(t *testing.T) {
	cases := []struct{ script, want string }{
		{`{"at":"0s","visit":{"patient":"p1","treatment":"acupuncture","area":"neck"}}` + "\n" + `{"at":"1m","patient":"p1","sayz":"I fainted"}`,
			`script line 2: "sayz" is not a script key; did you mean "says"?`},
		{`{"at":"1m","patient":"p1","says":"hi","mood":"ok"}`, `script line 1: "mood" is not a script key`},
		{`{"at":"0s","visit":{"patient":"p1","treatment":"acupuncture","aera":"neck"}}`, `script line 1: "aera" is not a script key; did you mean "area"?`},
	}
	for _, tc := range cases {
		out, _, err := runMain(t, tc.script, nil, "replay", "-")
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("script %q: err %v, want a usage error (exit 2) with %q", tc.script, err, tc.want)
		}
		if out != "" {
			t.Errorf("script %q: ran before failing:\n%s", tc.script, out)
		}
	}
}

func TestReplayHostileInput(t *testing.T) {
	long := strings.Repeat("é", 20000)
	lines := []string{"", long, "\xff\xfe\xfd", "\x00\x01\x02\x1b[2J", "😵‍💫", "_x*`[a]("}
	var b strings.Builder
	b.WriteString(`{"at":"0s","visit":{"patient":"p1","treatment":"acupuncture"}}` + "\n")
	for i, l := range lines {
		enc, _ := json.Marshal(map[string]any{"at": (time.Duration(i+1) * time.Minute).String(), "patient": "p1", "says": l})
		b.Write(enc)
		b.WriteByte('\n')
	}
	out, _, err := runMain(t, b.String(), nil, "replay", "-")
	if err != nil {
		t.Fatal(err)
	}
	replied := map[string]bool{}
	for _, r := range replayLines(t, out) {
		if utf8.RuneCountInString(r.Text) > 4096 {
			t.Fatalf("sent %d runes", utf8.RuneCountInString(r.Text))
		}
		if !utf8.ValidString(r.Text) {
			t.Fatal("sent invalid UTF-8")
		}
		if r.To == "p1" {
			replied[r.At] = true
		}
	}
	for i := range lines {
		if at := (time.Duration(i+1) * time.Minute).String(); !replied[at] {
			t.Errorf("no reply to hostile message %d (at %s)", i, at)
		}
	}
}

func TestTriageCommandContract(t *testing.T) {
	in := "I fainted right after I got home\nno dizziness at all today\n\n" + strings.Repeat("x", 200000) + "\nhaving heart palpitations"
	out, _, err := runMain(t, in, nil, "triage")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d output lines for 5 input lines", len(lines))
	}
	want := []string{"emergency", "none", "none", "none", "urgent"}
	for i, l := range lines {
		var r struct {
			Level string   `json:"level"`
			Signs []string `json:"signs"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Signs == nil {
			t.Fatalf("line %d %q: %v (signs must be an array)", i, l, err)
		}
		if r.Level != want[i] {
			t.Errorf("line %d: level %s, want %s", i, r.Level, want[i])
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ body, want string }{
		{`{"clinic":{"name":"X","phone":"call us","emergency_number":"911","time_zone":"UTC","quiet_hours":{"start":"21:00","end":"08:00"}}}`, "clinic.phone"},
		{`{"clinic":{"name":"X","phone":"+1-555-0100","emergency_number":"911","time_zone":"Mars/Base","quiet_hours":{"start":"21:00","end":"08:00"}}}`, "clinic.time_zone"},
		{`{"clinic":{"name":"X","phone":"+1-555-0100","emergency_number":"911","time_zone":"UTC","quiet_hours":{"start":"9pm","end":"08:00"}}}`, "clinic.quiet_hours.start"},
		{`{"clinic":{"name":"","phone":"+1-555-0100"}}`, "clinic.name"},
		{`{"clinik":{}}`, `clinik: not a configuration key; did you mean "clinic"?`},
		{`{"telegram":{"token":"123:abc"}}`, "environment"},
		{`{"log":{"level":"loud"}}`, "log.level"},
		{`{"data_dir": 5}`, `data_dir: expected a string`},
		{`{"clinic": `, "invalid JSON"},
	}
	for i, tc := range cases {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(tc.body), 0o600)
		_, _, err := runMain(t, "", nil, "--config", p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "c.json") {
			t.Errorf("case %d: err %v, want it to name %q and the file", i, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "123:abc") {
			t.Errorf("case %d: error echoes a secret", i)
		}
	}
	// The sample config in the repo is valid.
	if _, err := LoadConfig("../../aftercare.sample.json", func(string) string { return "" }); err != nil {
		t.Fatalf("sample config: %v", err)
	}
}

func TestConsoleRunsAndAnswers(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{EnvDataDir: dir}
	out, _, err := runMain(t, "hi\nI fainted\n", env)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"not an emergency service", "911", "STAFF ALERT EMERGENCY"} {
		if !strings.Contains(out, want) {
			t.Errorf("console output lacks %q:\n%s", want, out)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "aftercare.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file: %v %v", fi, err)
	}
}

func TestLockedAndCorruptDatabase(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{EnvDataDir: dir}
	started := make(chan struct{})
	done := make(chan error)
	pr, pw := newPipe()
	m := &Main{Stdin: pr, Getenv: func(k string) string { return env[k] }, Started: func(*Running) { close(started) }}
	go func() { done <- m.Run(context.Background()) }()
	<-started
	_, _, err := runMain(t, "", env)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second process: %v", err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "aftercare.db"), bytes.Repeat([]byte("garbage!"), 2048), 0o600)
	_, _, err = runMain(t, "", env)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt file: %v", err)
	}
}

func FuzzParseScript(f *testing.F) {
	f.Add(`{"start":"2026-03-02T10:00:00-06:00"}` + "\n" + `{"at":"0s","visit":{"patient":"p1","treatment":"dry_needling"}}`)
	f.Add(`{"at":"5m","patient":"p1","says":"can I lift tonight?"}`)
	f.Add(`{"at":"30h","restart":true}` + "\n" + `{"at":"72h"}`)
	f.Add("\n\n{}\n[]\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, steps, err := parseScript(strings.NewReader(s))
		if err != nil {
			var se *ScriptError
			if !errors.As(err, &se) || se.Line < 1 {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		var last time.Duration
		for _, st := range steps {
			if st.at < last {
				t.Fatalf("steps out of order")
			}
			last = st.at
			if (st.says != nil || st.presses != nil || st.visit != nil) && st.patient == "" {
				t.Fatalf("action without patient")
			}
		}
	})
}
