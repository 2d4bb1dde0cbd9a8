package desk_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/desk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

func TestSignInByLinkStartsASession(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	link := h.link()
	if !strings.HasPrefix(link, h.srv.URL+"/login?t=") {
		t.Fatalf("link = %q", link)
	}
	r := h.signIn(c, link)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/alerts" {
		t.Fatalf("sign in answered %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range r.Cookies() {
		if ck.Name == "desk_session" && ck.Value != "" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie = %+v, want HttpOnly and SameSite=Strict", cookie)
	}
	if strings.Contains(link, cookie.Value) {
		t.Error("the session id is derived from the link")
	}
	page := h.get(c, "/alerts")
	if body := read(t, page); page.StatusCode != 200 || !strings.Contains(body, staffName) {
		t.Fatalf("alerts page after sign-in: %d", page.StatusCode)
	}
	if got := h.audit("desk_signed_in"); len(got) != 1 || got[0].Actor != staffName {
		t.Errorf("sign-in audit = %+v", got)
	}
}

func TestLinkTokenStoredHashed(t *testing.T) {
	h := newHarness(t)
	link := h.link()
	tok := strings.TrimPrefix(link, h.srv.URL+"/login?t=")
	var buf bytes.Buffer
	if _, err := h.store.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte(tok)) {
		t.Fatal("the sign-in token is in the database in clear")
	}
}

func TestSignInRefusals(t *testing.T) {
	tests := []struct {
		name string
		do   func(h *harness) *http.Response
		want int
	}{
		{"reused link", func(h *harness) *http.Response {
			link := h.link()
			if r := h.signIn(h.client(), link); r.StatusCode != http.StatusSeeOther {
				h.t.Fatalf("first use: %d", r.StatusCode)
			}
			return h.signIn(h.client(), link)
		}, http.StatusGone},
		{"expired link", func(h *harness) *http.Response {
			link := h.link()
			h.clock.Add(10*time.Minute + time.Second)
			return h.signIn(h.client(), link)
		}, http.StatusGone},
		{"made-up link", func(h *harness) *http.Response {
			return h.signIn(h.client(), h.srv.URL+"/login?t=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		}, http.StatusForbidden},
		{"sign-in form without its CSRF token", func(h *harness) *http.Response {
			link := h.link()
			c := h.client()
			read(h.t, h.get(c, link))
			tok := strings.TrimPrefix(link, h.srv.URL+"/login?t=")
			return h.post(c, "/login", url.Values{"t": {tok}})
		}, http.StatusForbidden},
		{"sign-in posted from another site", func(h *harness) *http.Response {
			link := h.link()
			c := h.client()
			body := read(h.t, h.get(c, link))
			req, _ := http.NewRequest("POST", h.srv.URL+"/login", strings.NewReader(url.Values{
				"t": {reToken.FindStringSubmatch(body)[1]}, "csrf": {reCSRF.FindStringSubmatch(body)[1]}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://evil.example")
			r, err := c.Do(req)
			if err != nil {
				h.t.Fatal(err)
			}
			return r
		}, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			r := tc.do(h)
			body := read(t, r)
			if r.StatusCode != tc.want {
				t.Fatalf("status %d, want %d\n%s", r.StatusCode, tc.want, body)
			}
			for _, ck := range r.Cookies() {
				if ck.Name == "desk_session" && ck.Value != "" {
					t.Fatal("a refused sign-in set a session cookie")
				}
			}
		})
	}
}

func TestSignInAttemptsRateLimited(t *testing.T) {
	h := newHarness(t, func(c *desk.Config) { c.LoginRate, c.LoginBurst = 1.0/60, 3 })
	c := h.client()
	codes := []int{}
	for range 5 {
		r := h.get(c, "/login?t=guess")
		read(t, r)
		codes = append(codes, r.StatusCode)
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" {
		t.Fatalf("statuses %v, want three tries then 429", codes)
	}
}

func TestOnlyConfiguredStaffGetALink(t *testing.T) {
	h := newHarness(t)
	for _, who := range []string{"telegram:999", "", "Somebody"} {
		if l, err := h.desk.IssueLink(context.Background(), who); !errors.Is(err, desk.ErrNotStaff) || l != "" {
			t.Errorf("IssueLink(%q) = %q, %v; want ErrNotStaff", who, l, err)
		}
	}
	if _, err := h.desk.IssueLink(context.Background(), "ana ruiz"); err != nil {
		t.Errorf("by name: %v", err)
	}
	// /login in the staff chat, from someone the adapter let through but
	// who is not in staff_user_ids: a refusal, no link.
	ctx := context.Background()
	for _, tc := range []struct {
		who  string
		link bool
	}{{"telegram:999", false}, {staffID, true}} {
		if err := h.svc.ReceiveStaff(ctx, service.StaffInbound{Staff: tc.who, Channel: "telegram:-100", Text: "/login"}); err != nil {
			t.Fatal(err)
		}
		ms, _ := h.store.OutboxAll(100)
		h.store.Delivered(ms...)
		if len(ms) != 1 {
			t.Fatalf("%s: %d messages", tc.who, len(ms))
		}
		if got := strings.Contains(ms[0].Text, "/login?t="); got != tc.link {
			t.Errorf("/login from %s: link given = %v, want %v (%q)", tc.who, got, tc.link, ms[0].Text)
		}
	}
}

func TestPostsNeedTheSessionCSRFToken(t *testing.T) {
	h := newHarness(t)
	e := h.redFlag("telegram:5")
	c, csrf := h.session()
	ack := fmt.Sprintf("/alerts/%d/ack", e.ID)
	for _, tc := range []struct {
		name string
		form url.Values
	}{{"missing", url.Values{}}, {"wrong", url.Values{"csrf": {"x" + csrf}}}} {
		r := h.post(c, ack, tc.form)
		read(t, r)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s CSRF token: status %d, want 403", tc.name, r.StatusCode)
		}
	}
	// Another session's token is no good either.
	_, other := h.session()
	if r := h.post(c, ack, url.Values{"csrf": {other}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("another session's token: status %d", r.StatusCode)
	}
	if got, _ := h.store.Escalation(e.ID); got.Status != "open" {
		t.Fatalf("refused POSTs changed the escalation: %s", got.Status)
	}
	if r := h.post(c, ack, url.Values{"csrf": {csrf}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("with the token: %d", r.StatusCode)
	}
	if got, _ := h.store.Escalation(e.ID); got.Status != "acknowledged" || got.AckBy != staffName {
		t.Fatalf("escalation = %s by %q", got.Status, got.AckBy)
	}
}

func TestSignedOutRequestsRefused(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	for _, p := range []string{"/alerts", "/inbox", "/today", "/patients/telegram:5", "/visits/new"} {
		r := h.get(c, p)
		read(t, r)
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signed-out" {
			t.Errorf("GET %s signed out: %d %s", p, r.StatusCode, r.Header.Get("Location"))
		}
	}
	r := h.post(c, "/patients/telegram:5/reply", url.Values{"text": {"hi"}})
	if read(t, r); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST signed out: %d", r.StatusCode)
	}
}

func TestSessionsExpire(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []time.Duration // clock moves, each followed by a page view
		alive bool
	}{
		{"idle for 30 minutes", []time.Duration{30 * time.Minute}, false},
		{"active, under the idle limit", []time.Duration{29 * time.Minute, 29 * time.Minute}, true},
		{"active but past 12 hours", repeat(25, 29*time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			c, _ := h.session()
			var r *http.Response
			for _, d := range tc.steps {
				h.clock.Add(d)
				r = h.get(c, "/inbox")
				read(t, r)
			}
			if got := r.StatusCode == http.StatusOK; got != tc.alive {
				t.Fatalf("status %d, session alive = %v, want %v", r.StatusCode, got, tc.alive)
			}
		})
	}
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestSignOut(t *testing.T) {
	h := newHarness(t)
	c, csrf := h.session()
	if r := h.post(c, "/logout", url.Values{"csrf": {csrf}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", r.StatusCode)
	}
	if r := h.get(c, "/alerts"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out /alerts answered %d", r.StatusCode)
	}
}

func TestSecurityHeadersAndSecureCookies(t *testing.T) {
	h := newHarness(t, func(c *desk.Config) { c.Secure = true })
	r := h.get(h.client(), h.link())
	read(t, r)
	csp := r.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	if r.Header.Get("Referrer-Policy") != "no-referrer" || r.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("headers: %v", r.Header)
	}
	for _, ck := range r.Cookies() {
		if !ck.Secure || !strings.HasPrefix(ck.Name, "__Host-") {
			t.Errorf("cookie %s under TLS: Secure=%v", ck.Name, ck.Secure)
		}
	}
}

func TestPatientViewsAudited(t *testing.T) {
	h := newHarness(t)
	h.redFlag("telegram:5")
	c, _ := h.session()
	r := h.get(c, "/patients/telegram:5")
	body := read(t, r)
	if r.StatusCode != 200 || !strings.Contains(body, "I fainted") {
		t.Fatalf("patient page: %d\n%s", r.StatusCode, body)
	}
	got := h.audit("patient_viewed")
	if len(got) != 1 || got[0].Actor != staffName || got[0].Patient != "telegram:5" {
		t.Fatalf("audit = %+v", got)
	}
	for _, p := range []string{"/alerts", "/inbox", "/today"} {
		read(t, h.get(c, p))
	}
	for _, a := range []string{"desk_alerts_viewed", "desk_inbox_viewed", "desk_today_viewed"} {
		if got := h.audit(a); len(got) == 0 || got[len(got)-1].Actor != staffName {
			t.Errorf("%s audit = %+v", a, got)
		}
	}
}

func TestAcknowledgeFromTheDeskStopsTheLadderAndTellsStaff(t *testing.T) {
	h := newHarness(t)
	e := h.redFlag("telegram:5")
	ms, _ := h.store.OutboxAll(100)
	h.store.Delivered(ms...)
	c, csrf := h.session()
	r := h.post(c, fmt.Sprintf("/alerts/%d/ack", e.ID), url.Values{"csrf": {csrf}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("ack: %d", r.StatusCode)
	}
	ms, _ = h.store.OutboxAll(100)
	if len(ms) != 1 || ms[0].Channel != "telegram:-100" || !strings.Contains(ms[0].Text, "acknowledged by "+staffName) {
		t.Fatalf("staff chat told: %+v", ms)
	}
	timers, _ := h.store.EscalationTimers(e.ID)
	if len(timers) != 0 {
		t.Fatalf("ladder timers left: %v", timers)
	}
	r = h.post(c, fmt.Sprintf("/alerts/%d/resolve", e.ID), url.Values{"csrf": {csrf}, "note": {"called her, fine"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("resolve: %d", r.StatusCode)
	}
	if got, _ := h.store.Escalation(e.ID); got.Status != "resolved" || got.Note != "called her, fine" || got.ResolvedBy != staffName {
		t.Fatalf("escalation = %+v", got)
	}
}

func TestReplyGoesThroughTheOutbox(t *testing.T) {
	h := newHarness(t)
	h.redFlag("telegram:5")
	ms, _ := h.store.OutboxAll(100)
	h.store.Delivered(ms...)
	c, csrf := h.session()
	r := h.post(c, "/patients/telegram:5/reply", url.Values{"csrf": {csrf}, "text": {"Hi, this is Ana. Are you OK?"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("reply: %d %s", r.StatusCode, read(t, r))
	}
	ms, _ = h.store.OutboxAll(100)
	if len(ms) != 1 || ms[0].To != "telegram:5" || ms[0].Kind != engine.KindReply || ms[0].Text != service.ReplyHeading+"Hi, this is Ana. Are you OK?" {
		t.Fatalf("outbox = %+v", ms)
	}
	tr, _ := h.store.Transcript("telegram:5", 1)
	if len(tr) != 1 || tr[0].From != store.FromClinic || tr[0].Staff != staffName {
		t.Fatalf("transcript = %+v", tr)
	}
	if got := h.audit("staff_reply"); len(got) != 1 || got[0].Actor != staffName || strings.Contains(got[0].Detail, "Ana.") {
		t.Fatalf("audit = %+v", got)
	}
	page := read(t, h.get(c, "/patients/telegram:5"))
	if !strings.Contains(page, "Are you OK?") || !strings.Contains(page, "I fainted") {
		t.Error("the conversation does not show both sides")
	}
	// A reply to nobody on record is refused and queues nothing.
	if r := h.post(c, "/patients/telegram:404/reply", url.Values{"csrf": {csrf}, "text": {"hello"}}); r.StatusCode != http.StatusNotFound {
		t.Errorf("reply to unknown patient: %d", r.StatusCode)
	}
}

// TestAlertStreamPushesNewRedFlags reads the Server-Sent Events stream: the
// open alerts at once, then a new red flag without any reload.
func TestAlertStreamPushesNewRedFlags(t *testing.T) {
	h := newHarness(t)
	c, _ := h.session()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/alerts/events", nil)
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if ct := r.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := bufio.NewScanner(r.Body)
	events.Buffer(make([]byte, 1<<20), 1<<20)
	next := func() string {
		for events.Scan() {
			if l := events.Text(); strings.HasPrefix(l, "data: ") {
				return l
			}
		}
		t.Fatalf("stream ended: %v", events.Err())
		return ""
	}
	if first := next(); !strings.Contains(first, `"count":0`) {
		t.Fatalf("first event %s", first)
	}
	h.redFlag("telegram:7")
	if ev := next(); !strings.Contains(ev, `"count":1`) || !strings.Contains(ev, "telegram:7") {
		t.Fatalf("event after a red flag: %s", ev)
	}
}

func TestNewVisitShowsInviteWithQR(t *testing.T) {
	h := newHarness(t)
	c, csrf := h.session()
	r := h.post(c, "/visits/new", url.Values{"csrf": {csrf}, "treatment": {"dry_needling"}, "area": {"lower back"}, "ago": {"30m"}})
	body := read(t, r)
	if r.StatusCode != 200 || !strings.Contains(body, `src="data:image/png;base64,`) || !strings.Contains(body, "/start ") {
		t.Fatalf("invite page: %d\n%s", r.StatusCode, body)
	}
}

func TestImportCSVMakesOneInvitePerRow(t *testing.T) {
	h := newHarness(t)
	c, csrf := h.session()
	// Jane App's column names, with a chart number and a phone.
	csvText := "Patient,Start Time,Treatment,Practitioner,Patient ID,Mobile\n" +
		"Maria Lopez,2026-03-02 09:00,Dry Needling 45 min,Dr A,C-1001,+1-555-0142\n" +
		"Sam Lee,2026-03-02 09:45,Acupuncture Follow-up,Dr A,,\n" +
		"Jo Kim,2026-03-02 10:30,Electroacupuncture,Dr B,C-1003,\n"
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", csrf)
	mw.WriteField("tz", "America/Chicago")
	fw, _ := mw.CreateFormFile("file", "appointments.csv")
	fw.Write([]byte(csvText))
	mw.Close()
	r, err := c.Post(h.srv.URL+"/visits/import", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	body := read(t, r)
	if r.StatusCode != 200 {
		t.Fatalf("import: %d\n%s", r.StatusCode, body)
	}
	if n := strings.Count(body, `class="qr"`); n != 3 {
		t.Fatalf("%d QR codes on the sheet, want 3", n)
	}
	for _, name := range []string{"Maria Lopez", "Sam Lee", "Jo Kim", "chart C-1001", "dry needling", "electroacupuncture", "Mon 2 Mar 09:00 CST"} {
		if !strings.Contains(body, name) {
			t.Errorf("sheet lacks %q", name)
		}
	}
	if strings.Contains(body, "555-0142") {
		t.Error("the sheet handed to the patient shows the phone number")
	}
	// The name, chart number and phone become the visit's staff-only
	// identity, which the patient's state carries once the invite is used.
	tok := regexp.MustCompile(`/start ([A-Za-z0-9_-]+)`).FindStringSubmatch(body)
	if tok == nil {
		t.Fatal("no invite code on the sheet")
	}
	p := engine.PatientID("telegram:77")
	if err := h.svc.Receive(context.Background(), service.Inbound{Patient: p, Text: "/start " + tok[1], Invite: tok[1]}); err != nil {
		t.Fatal(err)
	}
	st, _, err := h.store.State(p)
	if err != nil || st.Visit == nil || st.Visit.Identity == nil {
		t.Fatalf("state after the invite: %+v %v", st.Visit, err)
	}
	if got := *st.Visit.Identity; got != (engine.Identity{Name: "Maria Lopez", Chart: "C-1001", Phone: "+1-555-0142"}) {
		t.Errorf("identity %+v", got)
	}
	page := read(t, h.get(c, "/patients/"+string(p)))
	for _, want := range []string{"<h1>Maria Lopez", "C-1001", "555-0142"} {
		if !strings.Contains(page, want) {
			t.Errorf("patient page lacks %q", want)
		}
	}
}
