package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/service"
)

// TestHelpListsTheCommands: --help, -h and help print the commands and what
// each does, and succeed (exit 0), also after a command's name.
func TestHelpListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}, {"visit", "--help"}, {"--config", "x.json", "--help"}} {
		out, _, err := runMain(t, "", nil, args...)
		if err != nil {
			t.Errorf("%v: %v", args, err)
			continue
		}
		for _, want := range []string{"aftercare init", "aftercare visit", "aftercare replay", "aftercare backup", "record a visit and print a one-time invite", "run the bot"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
	}
}

// TestInitInteractiveAsksAgainUntilValid: each answer is checked at once,
// a bad one is explained and asked again, and the file written starts the
// bot with exactly those answers.
func TestInitInteractiveAsksAgainUntilValid(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "aftercare.json")
	answers := strings.Join([]string{
		"",                  // name: empty
		"Lakeside Needling", // name
		"555",               // phone: too short
		"+1-555-0100",       // phone: the sample's fictional number
		"+1 312 555 2368",   // phone
		"112",               // emergency
		"Mars/Base",         // zone: not IANA
		"Europe/Berlin",     // zone
		"mon-fri 8-18",      // hours: bad span
		"mon-fri 08:00-18:00, sat 09:00-13:00",
		"@LakesideCareBot",
	}, "\n") + "\n"
	out, _, err := runMain(t, answers, nil, "init", "--out", p)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, want := range []string{"the clinic's name is needed", `"555" is not a phone number`, "fictional sample number", `"Mars/Base" is not an IANA time zone`, `"8-18"`, "Wrote " + p} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	c, err := LoadConfig(p, func(string) string { return "" })
	if err != nil {
		t.Fatalf("written config: %v", err)
	}
	if c.Clinic.Name != "Lakeside Needling" || c.Clinic.Phone != "+1 312 555 2368" || c.Clinic.EmergencyNumber != "112" ||
		c.Clinic.TimeZone != "Europe/Berlin" || c.Invites.TelegramBotUsername != "LakesideCareBot" {
		t.Errorf("written clinic %+v, invites %+v", c.Clinic, c.Invites)
	}
	if len(c.Clinic.Hours) != 6 || c.Clinic.Hours["wed"] != "08:00-18:00" || c.Clinic.Hours["sat"] != "09:00-13:00" || c.Clinic.Hours["sun"] != "" {
		t.Errorf("hours %v", c.Clinic.Hours)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode: %v %v", fi, err)
	}

	// An existing file is kept unless --force.
	before, _ := os.ReadFile(p)
	_, _, err = runMain(t, answers, nil, "init", "--out", p)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrite without --force: %v", err)
	}
	if after, _ := os.ReadFile(p); string(after) != string(before) {
		t.Fatal("file changed without --force")
	}
	flags := []string{"init", "--out", p, "--force", "--name", "Hillside Clinic", "--phone", "(312) 555-2368", "--emergency-number", "911",
		"--time-zone", "America/Chicago", "--hours", "always"}
	if _, _, err := runMain(t, "", nil, flags...); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if c, err := LoadConfig(p, func(string) string { return "" }); err != nil || c.Clinic.Name != "Hillside Clinic" || c.Clinic.Hours != nil {
		t.Fatalf("after --force: %+v %v", c.Clinic, err)
	}
}

// TestInitFlagsAreChecked: with flags nothing is asked; a bad flag value
// or a missing answer is a usage error (exit 2) naming what to fix, and no
// file is written.
func TestInitFlagsAreChecked(t *testing.T) {
	base := map[string]string{"name": "Hillside Clinic", "phone": "+1 312 555 2368", "emergency-number": "911", "time-zone": "America/Chicago", "hours": "mon-fri 09:00-17:00"}
	cases := []struct{ flag, value, want string }{
		{"phone", "+1-555-0100", "--phone: \"+1-555-0100\" is a fictional sample number"},
		{"phone", "555", "--phone: \"555\" is not a phone number"},
		{"time-zone", "CST", "--time-zone:"},
		{"hours", "weekdays 9-5", "--hours:"},
		{"name", "Sample Acupuncture Clinic", "--name: that is the sample"},
		{"telegram-bot", "not a bot", "--telegram-bot:"},
		{"emergency-number", "", "no answer"}, // left out: asked, and stdin is empty
	}
	for _, tc := range cases {
		t.Run(tc.flag+"="+tc.value, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.json")
			args := []string{"init", "--out", p}
			for k, v := range base {
				if k != tc.flag {
					args = append(args, "--"+k, v)
				}
			}
			if tc.value != "" {
				args = append(args, "--"+tc.flag, tc.value)
			}
			_, _, err := runMain(t, "", nil, args...)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want a usage error with %q", err, tc.want)
			}
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a file was written: %v", err)
			}
		})
	}
}

// TestVisitInANewFolder: the first `aftercare visit` of a new clinic
// creates the data directory (0700), shows the expiry in the clinic's time
// zone, warns when the QR code would hold only a code, and refuses a visit
// without an area with the usage line.
func TestVisitInANewFolder(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "aftercare-data")
	cfgPath := filepath.Join(dir, "aftercare.json")
	os.WriteFile(cfgPath, []byte(`{"clinic":{"name":"Lakeside Needling","phone":"+1 312 555 2368","time_zone":"America/Chicago"},"data_dir":"`+data+`"}`), 0o600)
	visit := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		m := &Main{Args: append([]string{"visit", "--config", cfgPath}, args...), Stdout: &out, Stderr: &errb,
			Getenv: func(string) string { return "" }, Clock: clock.NewFake(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))}
		err := m.Run(context.Background())
		return out.String(), errb.String(), err
	}

	_, _, err := visit("acupuncture")
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "AREA is missing") || !strings.Contains(err.Error(), "usage: aftercare visit") {
		t.Fatalf("visit without area: %v", err)
	}
	out, stderr, err := visit("dry_needling", "lower", "back")
	if err != nil {
		t.Fatalf("visit in a new folder: %v", err)
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v %v", fi, err)
	}
	// 7 days after 10:00 UTC on 5 Jan is 04:00 in Chicago on 12 Jan.
	if !strings.Contains(out, "valid until Mon 12 Jan 2026 04:00 CST") {
		t.Errorf("expiry not in the clinic's zone:\n%s", out)
	}
	if !strings.Contains(stderr, "warning: invites.telegram_bot_username is not set") {
		t.Errorf("no warning about the code-only QR:\n%s", stderr)
	}

	os.WriteFile(cfgPath, []byte(`{"clinic":{"name":"Lakeside Needling","phone":"+1 312 555 2368","time_zone":"America/Chicago"},"data_dir":"`+data+`",
		"invites":{"telegram_bot_username":"LakesideCareBot"}}`), 0o600)
	out, stderr, err = visit("dry_needling", "neck")
	if err != nil || !strings.Contains(out, "https://t.me/LakesideCareBot?start=") || strings.Contains(stderr, "warning") {
		t.Fatalf("with a bot name: %v\n%s\n%s", err, out, stderr)
	}
}

// TestConsoleDemoLogsAndStaff runs the console as a newcomer would, stdout
// and stderr on one terminal: no log line lands in the conversation (logs
// go to a file in the data directory), the alert's level is shown once,
// and the staff can list and acknowledge the alert.
func TestConsoleDemoLogsAndStaff(t *testing.T) {
	dir := t.TempDir()
	var term lockedBuffer
	m := &Main{Stdin: strings.NewReader("hi\nI fainted\n/open\n/ack 1\n"), Stdout: &term, Stderr: &term,
		Getenv: func(k string) string { return map[string]string{EnvDataDir: dir}[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	out := term.String()
	for _, want := range []string{"(logs go to " + filepath.Join(dir, "aftercare.log") + ")", "[STAFF ALERT EMERGENCY] console:local",
		"Open escalations:\n    #1 EMERGENCY console:local", "Escalation #1 (console:local) acknowledged", "/ack 1 to acknowledge"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"level=", "msg=", "[STAFF ALERT EMERGENCY] [EMERGENCY]"} {
		if strings.Contains(out, bad) {
			t.Errorf("console shows %q:\n%s", bad, out)
		}
	}
	logs, err := os.ReadFile(filepath.Join(dir, "aftercare.log"))
	if err != nil || !strings.Contains(string(logs), "aftercare running") {
		t.Fatalf("log file: %v\n%s", err, logs)
	}
}

// TestReadmeAndSampleMatchTheCode: the README states the dedupe horizon
// the code keeps and how to get past the first compile; the sample config
// names the bot field, and a copy of it with only the name changed does
// not start (its phone and bot are the sample's).
func TestReadmeAndSampleMatchTheCode(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	days := int(service.DedupeHorizon / (24 * time.Hour))
	for _, want := range []string{fmt.Sprintf("pruned after %d days", days), fmt.Sprintf("kept %d days (`service.DedupeHorizon`)", days),
		"The first `go run` compiles", "go install ./cmd/aftercare", "aftercare init"} {
		if !strings.Contains(strings.ReplaceAll(string(readme), "\n", " "), want) {
			t.Errorf("README lacks %q", want)
		}
	}
	c, err := LoadConfig("../../aftercare.sample.json", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Invites.TelegramBotUsername == "" {
		t.Error("the sample config does not show invites.telegram_bot_username")
	}
	b, _ := os.ReadFile("../../aftercare.sample.json")
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(strings.Replace(string(b), "Riverside Acupuncture (sample)", "Riverside Acupuncture", 1)), 0o600)
	_, err = LoadConfig(p, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "clinic.phone:") || !strings.Contains(err.Error(), "invites.telegram_bot_username:") {
		t.Fatalf("a renamed sample: %v", err)
	}
}
