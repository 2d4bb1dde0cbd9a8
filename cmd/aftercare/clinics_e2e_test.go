package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/config"
	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/bot/webhook"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// hookSink is a webhook receiver that keeps every body it was sent.
type hookSink struct {
	mu     sync.Mutex
	bodies []string
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	h.mu.Unlock()
}

func (h *hookSink) all() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.bodies, "\n")
}

// twoClinicWorld is one Main serving two clinics, each with its own fake
// Bot API (its own bot) and webhook receiver.
type twoClinicWorld struct {
	api    map[string]*fakeBotAPI
	hooks  map[string]*hookSink
	run    *Running
	cfg    *Config
	clk    *clock.Fake
	staff  map[string]int64 // clinic -> staff chat
	member map[string]int64 // clinic -> staff user
	env    map[string]string
}

// cli runs an aftercare command beside the running process, with the
// world's environment and the running process's admin listener.
func (w *twoClinicWorld) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cfg := *w.cfg
	cfg.HTTP.Listen = w.run.HTTPAddr
	var out bytes.Buffer
	m := &Main{Args: args, Stdout: &out, Stderr: io.Discard, Config: &cfg, Getenv: func(k string) string { return w.env[k] }}
	err := m.Run(context.Background())
	return out.String(), err
}

const (
	clinicA = "riverside"
	clinicB = "lake"
)

// startTwoClinics runs clinics A and B in one process, on bbolt unless
// dsn names a PostgreSQL database; configure, when set, changes the
// configuration first (the desk test turns the desk on).
func startTwoClinics(t *testing.T, dsn string, configure func(*Config)) *twoClinicWorld {
	t.Helper()
	w := &twoClinicWorld{api: map[string]*fakeBotAPI{}, hooks: map[string]*hookSink{},
		staff: map[string]int64{clinicA: -100, clinicB: -200}, member: map[string]int64{clinicA: 7, clinicB: 8},
		clk: clock.NewFake(time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC))}
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	env := map[string]string{}
	for _, id := range []string{clinicA, clinicB} {
		w.api[id], w.hooks[id] = &fakeBotAPI{}, &hookSink{}
		bot, hook := httptest.NewServer(w.api[id]), httptest.NewServer(w.hooks[id])
		t.Cleanup(bot.Close)
		t.Cleanup(hook.Close)
		e := DefaultClinicEntry(id)
		e.Clinic.Name = "Clinic " + id
		e.Clinic.Phone = map[string]string{clinicA: "+1 312 555 2368", clinicB: "+44 20 7946 1234"}[id]
		e.Telegram = &telegram.Config{APIEndpoint: bot.URL + "/bot%s/%s", StaffChatID: w.staff[id], StaffUserIDs: []int64{w.member[id]},
			PollInterval: telegram.Duration(5 * time.Millisecond), PollTimeout: telegram.Duration(0)}
		e.Webhooks = []webhook.Endpoint{{Name: "pager", URL: hook.URL, SecretEnv: "HOOK_" + strings.ToUpper(id)}}
		cfg.Clinics = append(cfg.Clinics, e)
		env[clinicTokenEnv(EnvTelegramToken, id)] = map[string]string{clinicA: "111:riverside", clinicB: "222:lake"}[id]
		env["HOOK_"+strings.ToUpper(id)] = "webhook-secret-of-" + id
	}
	if dsn != "" {
		cfg.Store.Backend = "postgres"
		env[EnvPostgresDSN] = dsn
	}
	if configure != nil {
		configure(&cfg)
	}
	w.cfg, w.env = &cfg, env
	m := &Main{Config: &cfg, Clock: w.clk, Stderr: io.Discard, Getenv: func(k string) string { return env[k] }}
	var stop func()
	w.run, stop = startMain(t, m, nil)
	t.Cleanup(stop)
	if len(w.run.Clinics) != 2 || w.run.Clinics[0].ID != clinicA || w.run.Clinics[1].ID != clinicB {
		t.Fatalf("clinics running: %+v", w.run.Clinics)
	}
	return w
}

// texts is everything clinic's bot sent to chat.
func (w *twoClinicWorld) texts(clinic string, chat int64) string {
	var b strings.Builder
	for _, s := range w.api[clinic].sends() {
		if s.chat == chat {
			b.WriteString(s.text + "\n---\n")
		}
	}
	return b.String()
}

func (w *twoClinicWorld) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	dcEventually(t, 10*time.Second, what, cond)
}

// staffSays sends a staff command in the clinic's staff chat and waits for
// the answer that contains want.
func (w *twoClinicWorld) staffSays(t *testing.T, clinic, text, want string) string {
	t.Helper()
	before := len(w.texts(clinic, w.staff[clinic]))
	w.api[clinic].pushFrom(w.staff[clinic], w.member[clinic], "group", text)
	var answer string
	w.wait(t, clinic+" answers "+text, func() bool {
		answer = w.texts(clinic, w.staff[clinic])[before:]
		return strings.Contains(answer, want)
	})
	return answer
}

// enroll records a visit in clinic's staff chat and lets patient open the
// invite and agree to check-ins.
func (w *twoClinicWorld) enroll(t *testing.T, clinic string, patient int64, visit string) {
	t.Helper()
	link := regexp.MustCompile(`https://t\.me/clinic_bot\?start=([A-Za-z0-9_-]{22})`)
	answer := w.staffSays(t, clinic, "/visit "+visit, "https://t.me/clinic_bot?start=")
	tok := link.FindStringSubmatch(answer)[1]
	before := len(w.texts(clinic, patient))
	w.api[clinic].push(patient, "/start "+tok)
	w.wait(t, "consent question", func() bool {
		return strings.Contains(w.texts(clinic, patient)[before:], "Is it OK if I send you two short check-ins")
	})
	w.api[clinic].push(patient, "Yes, check in with me")
	w.wait(t, "check-in times", func() bool { return strings.Contains(w.texts(clinic, patient)[before:], "I'll check in with you") })
}

// drained waits until every clinic's outbox is empty: from then on,
// everything a clinic queued has reached its own bot's API or webhook, so
// what another clinic's API did not get it never will.
func (w *twoClinicWorld) drained(t *testing.T) {
	t.Helper()
	w.wait(t, "every outbox empty", func() bool {
		for _, c := range w.run.Clinics {
			if n, err := c.DB.OutboxDepth(); err != nil || n > 0 {
				return false
			}
		}
		return true
	})
}

// TestClinicsIsolatedOnBbolt: two clinics in one process, one platform
// user a patient at both. A red flag at A alerts only A's staff chat and
// A's webhook; B's staff commands see only B's patients; an export of A
// holds no B record, and the admin endpoints and CLI name the clinic.
func TestClinicsIsolatedOnBbolt(t *testing.T) { checkClinicsIsolated(t, startTwoClinics(t, "", nil)) }

// TestClinicsIsolatedOnPostgres: the same, with both clinics in one
// PostgreSQL database (a schema each) on the server the tests start; the
// rows are in each clinic's schema and none in the shared one.
func TestClinicsIsolatedOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	checkClinicsIsolated(t, startTwoClinics(t, dsn, nil))
	for _, tc := range []struct {
		schema   string
		patients int
	}{{"clinic_riverside", 2}, {"clinic_lake", 1}, {"public", 0}} {
		if n := pgCount(t, dsn, `SELECT count(*) FROM `+tc.schema+`.patients`); n != tc.patients {
			t.Errorf("schema %s holds %d patients, want %d", tc.schema, n, tc.patients)
		}
	}
	if n := pgCount(t, dsn, `SELECT count(*) FROM public.leases WHERE name LIKE 'clinic/%'`); n != 2 {
		t.Errorf("%d clinic leases in the shared table, want one per clinic's Telegram bot", n)
	}
}

// pgCount runs a count query on dsn.
func pgCount(t *testing.T, dsn, sql string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func checkClinicsIsolated(t *testing.T, w *twoClinicWorld) {
	const both, onlyA = int64(4242), int64(4343)
	w.enroll(t, clinicA, both, "dry_needling left shoulder ago=20m")
	w.enroll(t, clinicB, both, "acupuncture lower back ago=30m")
	w.enroll(t, clinicA, onlyA, "dry_needling right knee ago=10m")

	// A red flag at A.
	w.api[clinicA].push(both, "my heart keeps skipping beats")
	w.wait(t, "A's staff alert", func() bool { return strings.Contains(w.texts(clinicA, w.staff[clinicA]), "[URGENT] telegram:4242") })
	w.wait(t, "A's webhook alert", func() bool { return strings.Contains(w.hooks[clinicA].all(), "telegram:4242") })
	w.drained(t)
	if got := w.texts(clinicB, w.staff[clinicB]); strings.Contains(got, "URGENT") || strings.Contains(got, "left shoulder") {
		t.Fatalf("B's staff chat got A's alert:\n%s", got)
	}
	if got := w.hooks[clinicB].all(); got != "" {
		t.Fatalf("B's webhook got A's alert:\n%s", got)
	}
	if got := w.texts(clinicB, both); strings.Contains(got, "Please call") {
		t.Fatalf("the patient's chat with B's bot got A's instructions:\n%s", got)
	}
	if !strings.Contains(w.texts(clinicA, both), "Please call Clinic riverside now at +1 312 555 2368") {
		t.Fatalf("A's instructions do not name A:\n%s", w.texts(clinicA, both))
	}

	// B's staff commands see B's patients only; A's the other way round.
	cases := []struct {
		clinic, cmd, want string
		not               []string
	}{
		{clinicB, "/open", "No open escalations.", []string{"telegram:4242"}},
		{clinicB, "/ack 1", "there is no escalation #1", []string{"acknowledged by"}},
		{clinicB, "/today", "telegram:4242: acupuncture", []string{"dry needling", "4343"}},
		{clinicB, "/patient telegram:4242", "lower back", []string{"left shoulder", "URGENT", "urgent"}},
		{clinicB, "/patient telegram:4343", "4343", []string{"right knee"}},
		{clinicA, "/today", "telegram:4242: dry needling", []string{"acupuncture"}},
		{clinicA, "/today", "telegram:4343: dry needling", nil},
		{clinicA, "/open", "#1 URGENT telegram:4242", nil},
	}
	for _, tc := range cases {
		t.Run(tc.clinic+" "+tc.cmd, func(t *testing.T) {
			got := w.staffSays(t, tc.clinic, tc.cmd, tc.want)
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("%s at %s answers with %q:\n%s", tc.cmd, tc.clinic, n, got)
				}
			}
		})
	}
	if es, _ := w.run.Clinics[0].DB.Escalations(); len(es) != 1 || es[0].Status != "open" {
		t.Fatalf("B's /ack 1 touched A's escalation: %+v", es)
	}

	// Exports: per clinic, over the admin endpoint and the CLI.
	tok, err := readAdminToken(adminTokenPath(w.run.Config))
	if err != nil {
		t.Fatal(err)
	}
	get := func(query string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+w.run.HTTPAddr+"/admin/export?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	exports := []struct {
		query      string
		status     int
		want       string
		not        []string
		escalation int
	}{
		{"clinic=riverside&patient=telegram:4242", 200, "left shoulder", []string{"lower back"}, 1},
		{"clinic=lake&patient=telegram:4242", 200, "lower back", []string{"left shoulder", "skipping"}, 0},
		{"clinic=lake&patient=telegram:4343", 404, "no such patient", []string{"right knee"}, 0},
		{"patient=telegram:4242", 400, "several clinics", []string{"shoulder", "back"}, 0},
		{"clinic=elsewhere&patient=telegram:4242", 404, "no such clinic", []string{"shoulder", "back"}, 0},
	}
	for _, tc := range exports {
		status, body := get(tc.query)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("export %s: %d %q", tc.query, status, body)
		}
		for _, n := range tc.not {
			if strings.Contains(body, n) {
				t.Errorf("export %s holds %q", tc.query, n)
			}
		}
		if status == 200 {
			var doc struct{ Escalations []engine.Escalation }
			json.Unmarshal([]byte(body), &doc)
			if len(doc.Escalations) != tc.escalation {
				t.Errorf("export %s: %d escalations, want %d", tc.query, len(doc.Escalations), tc.escalation)
			}
		}
	}
	out, err := w.cli(t, "export", "-clinic", clinicB, "telegram:4242")
	if err != nil || !strings.Contains(out, "lower back") || strings.Contains(out, "left shoulder") {
		t.Fatalf("aftercare export -clinic lake: %v\n%s", err, out)
	}
	if _, err := w.cli(t, "export", "telegram:4242"); err == nil || !strings.Contains(err.Error(), "name one with -clinic (riverside, lake)") {
		t.Fatalf("export without -clinic: %v", err)
	}
	if _, err := w.cli(t, "export", "-clinic", "nowhere", "telegram:4242"); err == nil || !strings.Contains(err.Error(), `-clinic "nowhere": no such clinic`) {
		t.Fatalf("export -clinic nowhere: %v", err)
	}
}

// TestClinicsTokensFromTheirOwnVariables: each listed clinic reads its
// bot's token from the variable its entry names (or the one derived from
// its id), and a missing one stops the start naming the variable.
func TestClinicsTokensFromTheirOwnVariables(t *testing.T) {
	e := DefaultClinicEntry("north-side")
	e.Clinic.Name, e.Clinic.Phone = "North", "+1 312 555 2368"
	e.Telegram = &telegram.Config{StaffChatID: -1}
	named := e
	named.TelegramTokenEnv = "NORTH_BOT"
	noTelegram := e
	noTelegram.Telegram = nil
	cases := []struct {
		name  string
		entry ClinicEntry
		env   map[string]string
		want  string // "" means accepted with token "1:t"
	}{
		{"derived variable", e, map[string]string{"AFTERCARE_TELEGRAM_TOKEN_NORTH_SIDE": "1:t"}, ""},
		{"named variable", named, map[string]string{"NORTH_BOT": "1:t"}, ""},
		{"derived variable missing", e, nil, "clinics[0].telegram: the clinic's Telegram token is missing: set AFTERCARE_TELEGRAM_TOKEN_NORTH_SIDE (or name another variable in clinics[0].telegram_token_env)"},
		{"named variable missing", named, map[string]string{"AFTERCARE_TELEGRAM_TOKEN_NORTH_SIDE": "1:t"}, "set NORTH_BOT"},
		{"token without a section", noTelegram, map[string]string{"AFTERCARE_TELEGRAM_TOKEN_NORTH_SIDE": "1:t"}, "clinics[0].telegram: AFTERCARE_TELEGRAM_TOKEN_NORTH_SIDE is set but the config has no telegram section"},
		{"the one-clinic variable is not a listed clinic's", e, map[string]string{EnvTelegramToken: "1:t"}, "set AFTERCARE_TELEGRAM_TOKEN_NORTH_SIDE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Clinics = []ClinicEntry{tc.entry}
			m := &Main{Getenv: func(k string) string { return tc.env[k] }}
			tg, _, err := m.clinicTokens(cfg.clinicConfigs()[0], cfg.clinicKeyPrefix(0), "c.json", nil)
			switch {
			case tc.want == "" && (err != nil || tg != "1:t"):
				t.Fatalf("token %q, err %v", tg, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// deskClient talks to the shared desk listener as a browser at one host
// would, keeping that host's cookies itself (a cookie jar would key them by
// the listener's address, which every clinic shares here).
type deskClient struct {
	t       *testing.T
	addr    string
	host    string
	cookies map[string]string
}

func (c *deskClient) do(method, path string, form url.Values) *http.Response {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, "http://"+c.addr+path, body)
	req.Host = c.host
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, ck := range resp.Cookies() {
		c.cookies[ck.Name] = ck.Value
	}
	return resp
}

func (c *deskClient) read(method, path string, form url.Values) (int, string) {
	resp := c.do(method, path, form)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signIn uses a sign-in link as the desk's login page does.
func (c *deskClient) signIn(link string) {
	c.t.Helper()
	u, err := url.Parse(link)
	if err != nil || !strings.EqualFold(u.Host, c.host) {
		c.t.Fatalf("link %q is not for host %s", link, c.host)
	}
	if s, body := c.read("GET", "/login?"+u.RawQuery, nil); s != http.StatusOK {
		c.t.Fatalf("login page: %d %s", s, body)
	}
	resp := c.do("POST", "/login", url.Values{"t": {u.Query().Get("t")}, "csrf": {c.cookies["desk_signin"]}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || c.cookies["desk_session"] == "" {
		c.t.Fatalf("sign-in: %d, cookies %v", resp.StatusCode, c.cookies)
	}
}

// TestClinicsDeskIsolated: one desk listener serves both clinics, each on
// its own host. A's staff signed in at A read A's pages; the same session
// sent to B's host reads nothing of B (signed out there: B's sessions are
// B's), an unknown host gets 404, and no clinic gives a link to another's
// staff.
func TestClinicsDeskIsolated(t *testing.T) {
	w := startTwoClinics(t, "", func(c *Config) {
		c.Web.Listen = "127.0.0.1:0"
		c.Clinics[0].Web = ClinicWebConfig{BaseURL: "http://riverside.desk.test", StaffNames: map[string]string{"telegram:7": "Ana"}}
		c.Clinics[1].Web = ClinicWebConfig{BaseURL: "http://lake.desk.test"}
	})
	w.enroll(t, clinicA, 4242, "dry_needling left shoulder ago=20m")
	w.enroll(t, clinicB, 5151, "acupuncture lower back ago=30m")
	ctx := context.Background()
	a, b := w.run.Clinics[0].Desk, w.run.Clinics[1].Desk
	if _, err := a.IssueLink(ctx, "telegram:8"); err == nil {
		t.Fatal("clinic A gave B's staff member a sign-in link")
	}
	link, err := a.IssueLink(ctx, "telegram:7")
	if err != nil {
		t.Fatal(err)
	}
	ana := &deskClient{t: t, addr: w.run.WebAddr, host: "riverside.desk.test", cookies: map[string]string{}}
	ana.signIn(link)
	if s, page := ana.read("GET", "/patients/telegram:4242", nil); s != http.StatusOK || !strings.Contains(page, "left shoulder") {
		t.Fatalf("A's patient at A's desk: %d\n%s", s, page)
	}
	if s, page := ana.read("GET", "/patients/telegram:5151", nil); s == http.StatusOK && strings.Contains(page, "lower back") {
		t.Fatalf("A's desk shows B's patient:\n%s", page)
	}

	// The same cookies, sent to B's host (a browser would not send them:
	// they are host-only).
	atB := &deskClient{t: t, addr: w.run.WebAddr, host: "lake.desk.test", cookies: ana.cookies}
	for _, tc := range []struct {
		method, path string
		form         url.Values
		status       int
	}{
		{"GET", "/alerts", nil, http.StatusSeeOther},
		{"GET", "/today", nil, http.StatusSeeOther},
		{"GET", "/patients/telegram:5151", nil, http.StatusSeeOther},
		{"GET", "/alerts/events", nil, http.StatusUnauthorized},
		{"POST", "/patients/telegram:5151/export", url.Values{"csrf": {"x"}}, http.StatusUnauthorized},
		{"POST", "/patients/telegram:5151/reply", url.Values{"csrf": {"x"}, "text": {"hello"}}, http.StatusUnauthorized},
	} {
		s, body := atB.read(tc.method, tc.path, tc.form)
		if s != tc.status || strings.Contains(body, "lower back") || strings.Contains(body, "5151") {
			t.Errorf("%s %s at B with A's session: %d (want %d)\n%s", tc.method, tc.path, s, tc.status, body)
		}
	}
	if rec, _ := w.run.Clinics[1].DB.PatientRecord("telegram:5151"); len(rec.Transcript) > 0 && strings.Contains(rec.Transcript[len(rec.Transcript)-1].Text, "hello") {
		t.Fatal("A's session replied to B's patient")
	}
	other := &deskClient{t: t, addr: w.run.WebAddr, host: "elsewhere.test", cookies: ana.cookies}
	if s, _ := other.read("GET", "/alerts", nil); s != http.StatusNotFound {
		t.Fatalf("unknown host: %d, want 404", s)
	}
	// B's desk is B's: its own staff sign in there and see B's patient.
	lb, err := b.IssueLink(ctx, "telegram:8")
	if err != nil {
		t.Fatal(err)
	}
	ben := &deskClient{t: t, addr: w.run.WebAddr, host: "lake.desk.test", cookies: map[string]string{}}
	ben.signIn(lb)
	if s, page := ben.read("GET", "/patients/telegram:5151", nil); s != http.StatusOK || !strings.Contains(page, "lower back") {
		t.Fatalf("B's patient at B's desk: %d\n%s", s, page)
	}
	if s, page := ben.read("GET", "/patients/telegram:4242", nil); s == http.StatusOK && strings.Contains(page, "left shoulder") {
		t.Fatalf("B's desk shows A's patient:\n%s", page)
	}
	// The CLI asks the running process for the clinic it names.
	out, err := w.cli(t, "staff-link", "-clinic", clinicB, "telegram:8")
	if err != nil || !strings.Contains(out, "http://lake.desk.test/login?t=") {
		t.Fatalf("staff-link -clinic lake: %v %q", err, out)
	}
	if _, err := w.cli(t, "staff-link", "-clinic", clinicA, "telegram:8"); err == nil {
		t.Fatal("staff-link -clinic riverside gave B's staff member a link")
	}
}

// TestClinicLeasesSpreadOverInstances: two instances of a deployment of
// four clinics on one PostgreSQL share the clinics' Telegram polls two
// and two (ceil(4/2)); when one stops, the other takes its clinics'
// polls and answers their patients.
func TestClinicLeasesSpreadOverInstances(t *testing.T) {
	const (
		ttl   = time.Second
		renew = 200 * time.Millisecond
	)
	dsn := pgtest.DSN(t)
	ids := []string{"c0", "c1", "c2", "c3"}
	apis := map[string]*fakeBotAPI{}
	cfg := DefaultConfig()
	cfg.Store = StoreConfig{Backend: "postgres", ClaimLease: config.Duration(time.Second),
		Leases: LeaseConfig{TTL: config.Duration(ttl), Renew: config.Duration(renew)}}
	env := map[string]string{EnvPostgresDSN: dsn}
	for _, id := range ids {
		apis[id] = &fakeBotAPI{}
		srv := httptest.NewServer(apis[id])
		t.Cleanup(srv.Close)
		e := DefaultClinicEntry(id)
		e.Clinic.Name, e.Clinic.Phone = "Clinic "+id, "+1 312 555 2368"
		e.Telegram = &telegram.Config{APIEndpoint: srv.URL + "/bot%s/%s", StaffChatID: -100,
			PollInterval: telegram.Duration(5 * time.Millisecond), PollTimeout: telegram.Duration(time.Nanosecond)}
		cfg.Clinics = append(cfg.Clinics, e)
		env[clinicTokenEnv(EnvTelegramToken, id)] = "1:" + id
	}
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	start := func() (*Running, func()) {
		c := cfg
		c.DataDir = t.TempDir()
		m := &Main{Config: &c, Clock: clk, Stderr: io.Discard, Getenv: func(k string) string { return env[k] }}
		return startMain(t, m, nil)
	}
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	held := func() map[string]int {
		ls, err := st.Leases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, l := range ls {
			if l.Live && strings.HasPrefix(l.Name, "clinic/") {
				out[l.Holder]++
			}
		}
		return out
	}
	// Joining takes a heartbeat count, a renewal to give the excess up and
	// a try to take it: a few renew intervals; the bound leaves room.
	bound := 5 * ttl
	a, stopA := start()
	defer stopA()
	dcEventually(t, bound, "the first instance holds every clinic's poll", func() bool { return held()[a.Instance] == 4 })
	b, stopB := start()
	defer stopB()
	dcEventually(t, bound, "two polls each", func() bool { h := held(); return h[a.Instance] == 2 && h[b.Instance] == 2 })
	// For the README's connection counts: two instances of four clinics.
	t.Logf("connections with 2 instances x 4 clinics: %d", pgCount(t, dsn, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()`)-1)
	stopA()
	stopped := time.Now()
	dcEventually(t, bound, "the survivor holds every poll", func() bool { return held()[b.Instance] == 4 })
	if moved := time.Since(stopped); moved > ttl+2*renew {
		t.Errorf("polls moved %s after a clean stop, bound %s", moved, ttl+2*renew)
	}
	for _, id := range ids {
		apis[id].push(4242, "hi")
	}
	for _, id := range ids {
		dcEventually(t, bound, "clinic "+id+" answers", func() bool {
			for _, s := range apis[id].sends() {
				if s.chat == 4242 {
					return true
				}
			}
			return false
		})
	}
}

// TestClinicsVisitAndMigratePerClinic: `aftercare visit -clinic ID` writes
// into that clinic's bbolt file only, and `aftercare migrate -clinic ID`
// copies that file into the clinic's PostgreSQL schema only.
func TestClinicsVisitAndMigratePerClinic(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	for _, id := range []string{clinicA, clinicB} {
		e := DefaultClinicEntry(id)
		e.Clinic.Name, e.Clinic.Phone = "Clinic "+id, "+1 312 555 2368"
		e.Webhooks = []webhook.Endpoint{{Name: "pager", URL: "https://pager.example/" + id, SecretEnv: "HOOK"}}
		cfg.Clinics = append(cfg.Clinics, e)
	}
	env := map[string]string{EnvPostgresDSN: dsn, "HOOK": "webhook-secret-of-both"}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		m := &Main{Args: args, Stdout: &out, Stderr: io.Discard, Config: &cfg, Getenv: func(k string) string { return env[k] }}
		err := m.Run(context.Background())
		return out.String(), err
	}
	if out, err := run("visit", "-clinic", clinicB, "acupuncture", "lower", "back"); err != nil || !strings.Contains(out, "Invite for the patient") {
		t.Fatalf("visit -clinic lake: %v\n%s", err, out)
	}
	if out, err := run("visit", "-clinic", clinicA, "dry_needling", "neck"); err != nil || !strings.Contains(out, "Invite for the patient") {
		t.Fatalf("visit -clinic riverside: %v\n%s", err, out)
	}
	if _, err := run("visit", "acupuncture", "neck"); err == nil || !strings.Contains(err.Error(), "-clinic") {
		t.Fatalf("visit without -clinic: %v", err)
	}
	for _, tc := range []struct {
		clinic  string
		invites int
	}{{clinicA, 1}, {clinicB, 1}} {
		if out, err := run("migrate", "-clinic", tc.clinic); err != nil {
			t.Fatalf("migrate -clinic %s: %v\n%s", tc.clinic, err, out)
		}
		if n := pgCount(t, dsn, `SELECT count(*) FROM clinic_`+tc.clinic+`.invites`); n != tc.invites {
			t.Errorf("clinic_%s holds %d invites, want %d", tc.clinic, n, tc.invites)
		}
	}
	if n := pgCount(t, dsn, `SELECT count(*) FROM clinic_lake.invites WHERE token IN (SELECT token FROM clinic_riverside.invites)`); n != 0 {
		t.Errorf("%d invites in both clinics' schemas", n)
	}
	if n := pgCount(t, dsn, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'invites'`); n != 0 {
		t.Errorf("migrate created the default schema's tables: %d", n)
	}
}

// TestClinicsNeverShareABot: two clinics whose variables hold one token
// (a derived name and a named one, or one token pasted into two) would
// poll one bot and split each other's patients and alerts; the start is
// refused naming both clinics' keys, and the token never appears.
func TestClinicsNeverShareABot(t *testing.T) {
	north := DefaultClinicEntry("north")
	north.Clinic.Name, north.Clinic.Phone = "North", "+1 312 555 2368"
	north.Telegram = &telegram.Config{StaffChatID: -1}
	south := north
	south.ID, south.Clinic.Name = "south", "South"
	south.Telegram = &telegram.Config{StaffChatID: -2}
	namedNorth := south
	namedNorth.TelegramTokenEnv = "AFTERCARE_TELEGRAM_TOKEN_NORTH"
	cases := []struct {
		name string
		b    ClinicEntry
		env  map[string]string
		want string // "" means accepted
	}{
		{"own bots", south, map[string]string{"AFTERCARE_TELEGRAM_TOKEN_NORTH": "1:north", "AFTERCARE_TELEGRAM_TOKEN_SOUTH": "2:south"}, ""},
		{"one token pasted twice", south, map[string]string{"AFTERCARE_TELEGRAM_TOKEN_NORTH": "1:same", "AFTERCARE_TELEGRAM_TOKEN_SOUTH": "1:same"},
			"clinics[1].telegram_token_env: AFTERCARE_TELEGRAM_TOKEN_SOUTH holds the same telegram bot token as AFTERCARE_TELEGRAM_TOKEN_NORTH, the token of clinics[0]"},
		{"a named variable that is another clinic's derived one", namedNorth, map[string]string{"AFTERCARE_TELEGRAM_TOKEN_NORTH": "1:north"},
			"clinics[1].telegram_token_env: AFTERCARE_TELEGRAM_TOKEN_NORTH holds the same telegram bot token as AFTERCARE_TELEGRAM_TOKEN_NORTH"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Clinics = []ClinicEntry{north, tc.b}
			m := &Main{Getenv: func(k string) string { return tc.env[k] }}
			var plans []clinicPlan
			for i, cc := range cfg.clinicConfigs() {
				tg, dc, err := m.clinicTokens(cc, cfg.clinicKeyPrefix(i), "c.json", nil)
				if err != nil {
					t.Fatal(err)
				}
				plans = append(plans, clinicPlan{cfg: cc, tgToken: tg, dcToken: dc})
			}
			err := oneBotPerClinic(cfg, plans, "c.json")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "1:"):
				t.Fatalf("the error shows the token: %v", err)
			}
		})
	}
}
