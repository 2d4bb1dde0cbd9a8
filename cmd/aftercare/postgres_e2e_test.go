package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"

	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestPostgresBackendRunsTheConsole runs the program with "store":
// {"backend": "postgres"}: a red flag typed on the console is escalated and
// alerted, and the escalation is in PostgreSQL, not in a bbolt file.
func TestPostgresBackendRunsTheConsole(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"store": {"backend": "postgres"}}`), 0o600)
	dsn := pgtest.DSN(t)
	env := map[string]string{EnvDataDir: dir, EnvPostgresDSN: dsn}
	out, _, err := runMain(t, "hi\nI fainted\n", env, "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "STAFF ALERT EMERGENCY") {
		t.Fatalf("no alert on the console:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "aftercare.db")); !os.IsNotExist(err) {
		t.Fatalf("a bbolt file was created with the postgres backend: %v", err)
	}
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if es, err := st.Escalations(); err != nil || len(es) != 1 {
		t.Fatalf("escalations in PostgreSQL: %v %v", es, err)
	}
}

// TestPostgresBackendErrorsNameTheSetting checks that a missing or
// unreachable connection string stops start-up with an error naming
// AFTERCARE_POSTGRES_DSN.
func TestPostgresBackendErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"store": {"backend": "postgres"}}`), 0o600)
	for _, dsn := range []string{"", "host=" + filepath.Join(dir, "nowhere") + " user=x dbname=x sslmode=disable"} {
		_, _, err := runMain(t, "", map[string]string{EnvDataDir: dir, EnvPostgresDSN: dsn}, "--config", cfg)
		if err == nil || !strings.Contains(err.Error(), EnvPostgresDSN) {
			t.Errorf("DSN %q: err %v, want it to name %s", dsn, err, EnvPostgresDSN)
		}
	}
	os.WriteFile(cfg, []byte(`{"store": {"backend": "mysql"}}`), 0o600)
	if _, _, err := runMain(t, "", map[string]string{EnvDataDir: dir}, "--config", cfg); err == nil || !strings.Contains(err.Error(), "store.backend") {
		t.Errorf("unknown backend: %v, want it to name store.backend", err)
	}
}

// TestMigrateCopiesTheBboltDatabase runs the console on bbolt, then
// `aftercare migrate` twice (idempotent), then the console on PostgreSQL:
// the escalation made on bbolt is there.
func TestMigrateCopiesTheBboltDatabase(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{EnvDataDir: dir}
	if _, _, err := runMain(t, "hi\nI fainted\n", env); err != nil {
		t.Fatal(err)
	}
	env[EnvPostgresDSN] = pgtest.DSN(t)
	for i := 0; i < 2; i++ {
		out, _, err := runMain(t, "", env, "migrate")
		if err != nil || !strings.Contains(out, "every count matches") || !strings.Contains(out, "escalations  bbolt 1  postgres 1") {
			t.Fatalf("migrate run %d: %v\n%s", i, err, out)
		}
	}
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: env[EnvPostgresDSN]})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if es, _ := st.Escalations(); len(es) != 1 {
		t.Fatalf("escalations after migrate: %v", es)
	}
}

// TestDeskOnPostgres runs the program on PostgreSQL with the desk on: a
// staff member signs in by link, sees a red flag, makes an invite with the
// patient's identity (listed on Today) and replies to the patient, all on
// the PostgreSQL store.
func TestDeskOnPostgres(t *testing.T) {
	dir := t.TempDir()
	cfg := deskConfig(dir)
	cfg.Store.Backend = "postgres"
	dsn := pgtest.DSN(t)
	pr, pw := io.Pipe()
	started := make(chan *Running, 1)
	m := &Main{Stdin: pr, Stdout: io.Discard, Config: cfg, Started: func(r *Running) { started <- r },
		Getenv: func(k string) string { return map[string]string{EnvPostgresDSN: dsn}[k] }}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	var run *Running
	select {
	case run = <-started:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("did not start")
	}
	defer func() {
		pw.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if run.Store != nil {
		t.Fatal("a bbolt store is open with the postgres backend")
	}
	base := "http://" + run.WebAddr
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	body := func(r *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d\n%s", r.Request.URL, r.StatusCode, b)
		}
		return string(b)
	}
	// `aftercare staff-link` on the shared database, while the bot runs.
	var out bytes.Buffer
	cli := &Main{Args: []string{"staff-link", "Ana Ruiz"}, Stdout: &out, Stderr: io.Discard, Config: cfg,
		Getenv: func(k string) string { return map[string]string{EnvPostgresDSN: dsn}[k] }}
	if err := cli.Run(context.Background()); err != nil {
		t.Fatalf("staff-link: %v", err)
	}
	link := regexp.MustCompile(`\S+/login\?t=\S+`).FindString(out.String())
	if link == "" {
		t.Fatalf("no link in %q", out.String())
	}
	link = strings.Replace(link, "http://"+cfg.Web.Listen, base, 1) // the CLI names the configured address
	page := body(c.Get(link))
	field := func(page, name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no %s field in\n%s", name, page)
		}
		return m[1]
	}
	alerts := body(c.PostForm(base+"/login", url.Values{"t": {field(page, "t")}, "csrf": {field(page, "csrf")}}))
	csrf := field(alerts, "csrf")

	p := engine.PatientID("telegram:5")
	if err := run.Service.Receive(context.Background(), service.Inbound{Patient: p, Text: "I fainted"}); err != nil {
		t.Fatal(err)
	}
	if page := body(c.Get(base + "/alerts")); !strings.Contains(page, string(p)) {
		t.Errorf("the alert is not on the page:\n%s", page)
	}
	body(c.PostForm(base+"/visits/new", url.Values{"csrf": {csrf}, "treatment": {"acupuncture"}, "name": {"Rosa Diaz"}, "chart": {"C-77"}}))
	if page := body(c.Get(base + "/today")); !strings.Contains(page, "Rosa Diaz") {
		t.Errorf("Today does not list the invited patient:\n%s", page)
	}
	body(c.PostForm(base+"/patients/"+string(p)+"/reply", url.Values{"csrf": {csrf}, "text": {"We are calling you."}}))
	if page := body(c.Get(base + "/patients/" + string(p))); !strings.Contains(page, "We are calling you.") {
		t.Errorf("the reply is not in the conversation:\n%s", page)
	}
}
