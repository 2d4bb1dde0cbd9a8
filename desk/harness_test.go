package desk_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/desk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// t0 is 10:00 in Chicago.
var t0 = time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)

// chicago is the test clinic's time zone, which the desk shows times in.
var chicago = mustZone("America/Chicago")

func mustZone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// staffID is the one configured staff member; staffName how the desk names her.
const (
	staffID   = "telegram:111"
	staffName = "Ana Ruiz"
)

type harness struct {
	t     testing.TB
	clock *clock.Fake
	store *store.Store
	svc   *service.Service
	desk  *desk.Desk
	srv   *httptest.Server
	cfg   desk.Config
}

func newHarness(t testing.TB, mod ...func(*desk.Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: clock.NewFake(t0)}
	st, err := store.Open(filepath.Join(t.TempDir(), "aftercare.db"), store.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h.store = st
	var dk *desk.Desk
	svc, err := service.New(service.Config{Engine: enginetest.New(), Store: st, Clock: h.clock,
		StaffChannels: []engine.PatientID{"telegram:-100"},
		StaffLogin:    func(ctx context.Context, who string) (string, error) { return dk.IssueLink(ctx, who) }})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	h.srv = httptest.NewUnstartedServer(nil)
	cfg := desk.Config{Store: st, Service: svc, Clock: h.clock, ClinicName: "Sample Clinic",
		Staff: map[string]string{staffID: staffName}, BaseURL: "http://" + h.srv.Listener.Addr().String(),
		PollInterval: 5 * time.Millisecond, LoginRate: 1000, LoginBurst: 1000, Location: chicago}
	for _, m := range mod {
		m(&cfg)
	}
	h.start(cfg)
	dk = h.desk
	return h
}

// start creates the harness's desk from cfg and serves it on h.srv.
func (h *harness) start(cfg desk.Config) {
	h.t.Helper()
	dk, err := desk.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.desk, h.cfg = dk, cfg
	h.srv.Config.Handler = dk.Handler()
	h.srv.Start()
	h.t.Cleanup(h.srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { dk.Run(ctx); close(done) }()
	h.t.Cleanup(func() { cancel(); <-done })
}

// another starts a second desk instance on the same store, service and
// clock, with a server of its own, as a second process behind the clinic's
// load balancer would be. A client's cookies go to both (cookies do not
// tell ports apart).
func (h *harness) another(mod ...func(*desk.Config)) *harness {
	h.t.Helper()
	h2 := &harness{t: h.t, clock: h.clock, store: h.store, svc: h.svc, srv: httptest.NewUnstartedServer(nil)}
	cfg := h.cfg
	cfg.BaseURL = "http://" + h2.srv.Listener.Addr().String()
	for _, m := range mod {
		m(&cfg)
	}
	h2.start(cfg)
	return h2
}

// client is a browser: it keeps cookies and does not follow redirects,
// so tests see each answer.
func (h *harness) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (h *harness) link() string {
	h.t.Helper()
	l, err := h.desk.IssueLink(context.Background(), staffID)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

var (
	reToken = regexp.MustCompile(`name="t" value="([^"]+)"`)
	reCSRF  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// signIn opens a link and presses Sign in; it returns the final response.
func (h *harness) signIn(c *http.Client, link string) *http.Response {
	h.t.Helper()
	page := h.get(c, link)
	if page.StatusCode != http.StatusOK {
		h.t.Fatalf("GET link: %d", page.StatusCode)
	}
	body := read(h.t, page)
	tok, csrf := reToken.FindStringSubmatch(body), reCSRF.FindStringSubmatch(body)
	if tok == nil || csrf == nil {
		h.t.Fatalf("sign-in page has no form:\n%s", body)
	}
	return h.post(c, "/login", url.Values{"t": {tok[1]}, "csrf": {csrf[1]}})
}

// session signs in and returns the client and the session's CSRF token.
func (h *harness) session() (*http.Client, string) {
	h.t.Helper()
	c := h.client()
	if r := h.signIn(c, h.link()); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/alerts" {
		h.t.Fatalf("sign in: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	body := read(h.t, h.get(c, "/alerts"))
	m := reCSRF.FindStringSubmatch(body)
	if m == nil {
		h.t.Fatalf("no CSRF token on the alerts page:\n%s", body)
	}
	return c, m[1]
}

func (h *harness) get(c *http.Client, path string) *http.Response {
	h.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = h.srv.URL + path
	}
	r, err := c.Get(path)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) post(c *http.Client, path string, form url.Values) *http.Response {
	h.t.Helper()
	r, err := c.PostForm(h.srv.URL+path, form)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func read(t testing.TB, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// redFlag has a patient report a red flag and returns the escalation.
func (h *harness) redFlag(patient engine.PatientID) engine.Escalation {
	h.t.Helper()
	if err := h.svc.Receive(context.Background(), service.Inbound{Patient: patient, Text: "I fainted"}); err != nil {
		h.t.Fatal(err)
	}
	es, err := h.store.Escalations()
	if err != nil || len(es) == 0 {
		h.t.Fatalf("no escalation after a red flag (err %v)", err)
	}
	return es[len(es)-1]
}

func (h *harness) audit(action string) []engine.Audit {
	h.t.Helper()
	as, err := h.store.Audit()
	if err != nil {
		h.t.Fatal(err)
	}
	var out []engine.Audit
	for _, a := range as {
		if a.Action == action {
			out = append(out, a)
		}
	}
	return out
}
