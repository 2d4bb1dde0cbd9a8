package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/telegram"
)

// deskConfig is testConfig with the desk on and one Telegram staff member.
func deskConfig(dir string) *Config {
	c := testConfig(dir)
	c.Telegram = &telegram.Config{StaffChatID: -100, StaffUserIDs: []int64{111}}
	c.Web = WebConfig{Listen: "127.0.0.1:0", StaffNames: map[string]string{"telegram:111": "Ana Ruiz"}}
	return c
}

func TestWebConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		key  string
	}{
		{"no staff to sign in", func(c *Config) { c.Telegram.StaffUserIDs = nil; c.Web.StaffNames = nil }, "web.listen"},
		{"a name for someone not staff", func(c *Config) { c.Web.StaffNames["telegram:999"] = "Eve" }, "web.staff_names"},
		{"certificate without key", func(c *Config) { c.Web.TLSCert = "cert.pem" }, "web.tls_cert"},
		{"proxy without https address", func(c *Config) { c.Web.BehindTLSProxy = true }, "web.base_url"},
		{"bad address", func(c *Config) { c.Web.Listen = "8090" }, "web.listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := deskConfig(t.TempDir())
			tc.mod(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.key)
			}
		})
	}
	if err := deskConfig(t.TempDir()).Validate(); err != nil {
		t.Fatalf("valid desk config refused: %v", err)
	}
}

// TestStaffLinkCommand: `aftercare staff-link NAME` gives configured staff
// a link, offline on the database and through the admin endpoint while the
// bot runs; anyone else is refused.
func TestStaffLinkCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := deskConfig(dir)
	out, err := runWith(t, cfg, "", "staff-link", "Ana Ruiz")
	if err != nil || !strings.Contains(out, "/login?t=") {
		t.Fatalf("offline staff-link: %v %q", err, out)
	}
	if _, err := runWith(t, cfg, "", "staff-link", "telegram:999"); err == nil || !strings.Contains(err.Error(), "not configured staff") {
		t.Fatalf("non-staff link: %v", err)
	}

	cfg.HTTP.Listen = "127.0.0.1:0"
	pr, pw := io.Pipe()
	started := make(chan *Running, 1)
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
	cli := *cfg
	cli.HTTP.Listen = run.HTTPAddr
	out, err = runWith(t, &cli, "", "staff-link", "telegram:111")
	if err != nil || !strings.Contains(out, "http://"+run.WebAddr+"/login?t=") {
		t.Fatalf("staff-link while running: %v %q", err, out)
	}
	if _, err := runWith(t, &cli, "", "staff-link", "Eve"); err == nil {
		t.Fatal("non-staff link while running was given")
	}
	// The desk answers on its own listener, and refuses the signed-out.
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get("http://" + run.WebAddr + "/alerts")
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("desk /alerts signed out: %v %v", err, resp)
	}
	resp.Body.Close()
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
