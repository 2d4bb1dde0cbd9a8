package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// startAdmin runs the bot with a loopback operations listener and returns
// it with the admin token it created (empty, with the test failed, when
// there is none).
func startAdmin(t *testing.T) (run *Running, token string, logs *lockedBuffer, stop func()) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.HTTP.Listen = "127.0.0.1:0"
	pr, pw := io.Pipe()
	logs = &lockedBuffer{}
	m := &Main{Stdin: pr, Stdout: io.Discard, Stderr: logs, Config: cfg, Getenv: func(string) string { return "" }}
	run, stopMain := startMain(t, m, logs)
	stop = func() { pw.Close(); stopMain() }
	t.Cleanup(stop)
	p := filepath.Join(dir, adminTokenFile)
	fi, err := os.Stat(p)
	if err != nil {
		t.Errorf("admin token file: %v", err)
		return run, "", logs, stop
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin token file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(p)
	return run, strings.TrimSpace(string(b)), logs, stop
}

// TestAdminEndpointsGuarded sends the requests a browser page, another
// local user or a DNS-rebound name could make, and checks that only the
// CLI's kind of request reaches the admin endpoints while /healthz,
// /readyz and /metrics stay open.
func TestAdminEndpointsGuarded(t *testing.T) {
	run, token, logs, _ := startAdmin(t)
	_, port, _ := strings.Cut(run.HTTPAddr, ":")
	base := "http://" + run.HTTPAddr
	visitBody := `["acupuncture","neck"]`
	tests := []struct {
		name         string
		method, path string
		host         string // Host header; empty: the listen address
		auth         string // Authorization; "TOKEN" is replaced by the real token
		ctype        string
		hdr          map[string]string
		body         string
		want         int
	}{
		{name: "no token", method: "GET", path: "/admin/export?patient=telegram:404", want: 401},
		{name: "wrong token", method: "GET", path: "/admin/export?patient=telegram:404", auth: "Bearer not-the-token-at-all", want: 401},
		{name: "token not as Bearer", method: "GET", path: "/admin/backup", auth: "TOKEN", want: 401},
		{name: "no token backup", method: "GET", path: "/admin/backup", want: 401},
		{name: "cross-site text/plain POST from a page", method: "POST", path: "/admin/visit", ctype: "text/plain",
			hdr: map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, body: visitBody, want: 403},
		{name: "text/plain POST even with the token", method: "POST", path: "/admin/visit", auth: "Bearer TOKEN", ctype: "text/plain", body: visitBody, want: 415},
		{name: "form POST", method: "POST", path: "/admin/visit", auth: "Bearer TOKEN", ctype: "application/x-www-form-urlencoded", body: visitBody, want: 415},
		{name: "Origin with the token", method: "GET", path: "/admin/export?patient=telegram:404", auth: "Bearer TOKEN",
			hdr: map[string]string{"Origin": "http://127.0.0.1:" + port}, want: 403},
		{name: "Sec-Fetch-Site cross-site", method: "GET", path: "/admin/backup", auth: "Bearer TOKEN",
			hdr: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403},
		{name: "Sec-Fetch-Site same-site (another localhost port)", method: "GET", path: "/admin/backup", auth: "Bearer TOKEN",
			hdr: map[string]string{"Sec-Fetch-Site": "same-site"}, want: 403},
		{name: "DNS-rebound Host", method: "GET", path: "/admin/export?patient=telegram:404", host: "evil.example:" + port, auth: "Bearer TOKEN", want: 421},
		{name: "Host on another port", method: "GET", path: "/admin/export?patient=telegram:404", host: "127.0.0.1:1", auth: "Bearer TOKEN", want: 421},
		{name: "Host without port", method: "GET", path: "/admin/export?patient=telegram:404", host: "localhost", auth: "Bearer TOKEN", want: 421},
		{name: "CLI request, localhost Host", method: "GET", path: "/admin/export?patient=telegram:404", host: "localhost:" + port, auth: "Bearer TOKEN", want: 404},
		{name: "CLI request, [::1] Host", method: "GET", path: "/admin/export?patient=telegram:404", host: "[::1]:" + port, auth: "Bearer TOKEN", want: 404},
		{name: "CLI visit", method: "POST", path: "/admin/visit", auth: "Bearer TOKEN", ctype: "application/json; charset=utf-8", body: visitBody, want: 200},
		{name: "healthz open", method: "GET", path: "/healthz", host: "evil.example", want: 200},
		{name: "readyz open", method: "GET", path: "/readyz", host: "evil.example", hdr: map[string]string{"Origin": "http://evil.example"}, want: 200},
		{name: "metrics open", method: "GET", path: "/metrics", host: "evil.example", want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", strings.Replace(tc.auth, "TOKEN", token, 1))
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 120)) // enough for an error line, not a database
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.want, strings.TrimSpace(string(b)))
			}
			if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if token != "" && strings.Contains(logs.String(), token) {
		t.Error("the admin token appears in the logs")
	}
}

// TestAdminReadsAudited checks that export and backup, through the running
// bot and directly on the database, leave audit lines naming the actor
// (the admin token holder or the CLI), the patient by ID only, and that the
// CLI reaches the endpoints with the token file.
func TestAdminReadsAudited(t *testing.T) {
	run, _, logs, stop := startAdmin(t)
	ctx := context.Background()
	if err := run.Service.RecordVisit(ctx, "console:local", engine.Visit{At: run.Clock.Now(), Treatment: engine.DryNeedling, Area: "lower back", Consent: true}); err != nil {
		t.Fatal(err)
	}
	cli := run.Config
	cli.HTTP.Listen = run.HTTPAddr
	if out, err := runWith(t, &cli, "", "export", "console:local"); err != nil || !strings.Contains(out, "lower back") {
		t.Fatalf("export while running: %v\n%s", err, out)
	}
	if _, err := runWith(t, &cli, "", "backup", filepath.Join(t.TempDir(), "b1.db")); err != nil {
		t.Fatalf("backup while running: %v", err)
	}
	stop()
	if _, err := runWith(t, &cli, "", "export", "console:local"); err != nil {
		t.Fatalf("export offline: %v", err)
	}
	if _, err := runWith(t, &cli, "", "backup", filepath.Join(t.TempDir(), "b2.db")); err != nil {
		t.Fatalf("backup offline: %v", err)
	}
	st, err := openStore(t, dbPath(cli))
	if err != nil {
		t.Fatal(err)
	}
	as, err := st.Audit()
	if err != nil {
		t.Fatal(err)
	}
	type read struct {
		actor, action string
		patient       engine.PatientID
	}
	var got []read
	for _, a := range as {
		if a.Action == "patient_exported" || a.Action == "backup_read" {
			got = append(got, read{a.Actor, a.Action, a.Patient})
			if strings.Contains(a.Detail, "lower back") {
				t.Errorf("audit line carries patient text: %+v", a)
			}
		}
	}
	want := []read{
		{adminActor, "patient_exported", "console:local"},
		{adminActor, "backup_read", ""},
		{cliActor, "patient_exported", "console:local"},
		{cliActor, "backup_read", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("audit of reads = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("audit of reads = %+v, want %+v", got, want)
		}
	}
	if strings.Contains(logs.String(), "lower back") {
		t.Error("patient text in the logs")
	}
	ents, _ := os.ReadDir(cli.DataDir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "backup") {
			t.Errorf("backup snapshot %s left in the data directory", e.Name())
		}
	}
}

// TestOpsServerTimeouts checks that the operations listener cannot be held
// open by a client that stops sending or reading: every timeout is set, and
// the backup's longer write deadline is still bounded.
func TestOpsServerTimeouts(t *testing.T) {
	s := newOpsServer(http.NewServeMux())
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": s.ReadHeaderTimeout, "ReadTimeout": s.ReadTimeout,
		"WriteTimeout": s.WriteTimeout, "IdleTimeout": s.IdleTimeout} {
		if d <= 0 {
			t.Errorf("%s unset: a stalled client holds its connection for ever", name)
		}
	}
	if backupWriteTimeout < s.WriteTimeout || backupWriteTimeout > time.Hour {
		t.Errorf("backup write deadline %v: want between the general %v and an hour", backupWriteTimeout, s.WriteTimeout)
	}
}

func openStore(t *testing.T, path string) (*store.Store, error) {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err == nil {
		t.Cleanup(func() { st.Close() })
	}
	return st, err
}
