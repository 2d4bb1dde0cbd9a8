package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// testConfig is a valid configuration with its data in dir.
func testConfig(dir string) *Config {
	c := DefaultConfig()
	c.DataDir = dir
	c.Clinic.TimeZone = "America/Chicago"
	c.Invites.TelegramBotUsername = "clinic_bot"
	return &c
}

func runWith(t *testing.T, cfg *Config, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Args: args, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Config: cfg, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background())
	return out.String(), err
}

var tokenRE = regexp.MustCompile(`start=([A-Za-z0-9_-]{22})`)

func TestVisitInviteQRAndExportOffline(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	qrFile := filepath.Join(dir, "invite.png")
	out, err := runWith(t, cfg, "", "visit", "--qr", qrFile, "dry_needling", "lower", "back", "acute", "ago=1h")
	if err != nil {
		t.Fatal(err)
	}
	m := tokenRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "https://t.me/clinic_bot?start=") {
		t.Fatalf("no deep link in %q", out)
	}
	f, err := os.Open(qrFile)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() < 21 {
		t.Fatalf("QR PNG: %v", err)
	}
	// The patient opens the invite in the console and agrees; then export.
	tok := m[1]
	env := map[string]string{EnvDataDir: dir}
	var cout bytes.Buffer
	mm := &Main{Stdin: strings.NewReader("/start " + tok + "\nYes, check in with me\n"), Stdout: &cout, Config: cfg, Getenv: func(k string) string { return env[k] }}
	if err := mm.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cout.String(), "I'll check in with you") {
		t.Fatalf("invite not honoured in the console:\n%s", cout.String())
	}
	out, err = runWith(t, cfg, "", "export", "console:local")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Patient string          `json:"patient"`
		Visits  []engine.Visit  `json:"visits"`
		Audit   []engine.Audit  `json:"audit"`
		Checks  json.RawMessage `json:"checkins"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Patient != "console:local" || len(doc.Visits) != 1 || doc.Visits[0].Area != "lower back" {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if _, err := runWith(t, cfg, "", "export", "telegram:404"); err == nil || !strings.Contains(err.Error(), "no patient") {
		t.Fatalf("unknown patient: %v", err)
	}
	if _, err := runWith(t, cfg, "", "visit", "cupping", "back"); err == nil || !strings.Contains(err.Error(), "unknown treatment") {
		t.Fatalf("bad treatment: %v", err)
	}
}

func TestAdminWhileRunningAndOpsEndpoints(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.HTTP.Listen = "127.0.0.1:0"
	started := make(chan *Running, 1)
	pr, pw := io.Pipe()
	m := &Main{Stdin: pr, Stdout: io.Discard, Config: cfg, Getenv: func(string) string { return "" }, Started: func(r *Running) { started <- r }}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	var run *Running
	select {
	case run = <-started:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("did not start")
	}
	base := "http://" + run.HTTPAddr
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(base + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, err, resp)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if p == "/metrics" && (!strings.Contains(string(b), "aftercare_outbox_depth") || !strings.Contains(string(b), "aftercare_store_commits_total")) {
			t.Fatalf("metrics lack the outbox gauge or the commit counters")
		}
	}
	// The CLI goes through the admin endpoint while the bot holds the lock.
	cli := *cfg
	cli.HTTP.Listen = run.HTTPAddr
	out, err := runWith(t, &cli, "", "visit", "acupuncture", "neck")
	if err != nil || !tokenRE.MatchString(out) {
		t.Fatalf("visit while running: %v %q", err, out)
	}
	bk := filepath.Join(t.TempDir(), "copy.db")
	if _, err := runWith(t, &cli, "", "backup", bk); err != nil {
		t.Fatalf("backup while running: %v", err)
	}
	if out, err := runWith(t, &cli, "", "check", bk); err != nil || !strings.Contains(out, "no problems found") || !strings.Contains(out, "invites      1 entries") {
		t.Fatalf("check of the backup: %v\n%s", err, out)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCheckReportsCorruption(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	os.WriteFile(p, bytes.Repeat([]byte{0xAB}, 16384), 0o600)
	_, err := runWith(t, testConfig(t.TempDir()), "", "check", p)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("check of garbage: %v", err)
	}
}
