package desk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/desk"
	"github.com/aftercare-clinic/aftercare/store"
)

// sessionHash is what the store keys the browser's session under.
func (h *harness) sessionHash(c *http.Client) []byte {
	h.t.Helper()
	u, _ := url.Parse(h.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "desk_session" {
			sum := sha256.Sum256([]byte(ck.Value))
			return sum[:]
		}
	}
	h.t.Fatal("the client has no session cookie")
	return nil
}

// stored reports whether the store still has the session's row.
func (h *harness) stored(hash []byte) bool {
	h.t.Helper()
	_, err := h.store.DeskSession(context.Background(), hash)
	if err != nil && !errors.Is(err, store.ErrSessionUnknown) {
		h.t.Fatal(err)
	}
	return err == nil
}

// status GETs path and returns the status, reading the body.
func (h *harness) status(c *http.Client, path string) int {
	h.t.Helper()
	r := h.get(c, path)
	read(h.t, r)
	return r.StatusCode
}

// TestSessionAcceptedByAnotherInstance: with two desk instances on one
// store (as behind a load balancer), a session started on either is
// accepted by the other, for pages and for POSTs with its CSRF token, and
// signing out on either signs out on both at once. A new instance is also
// what a restart is: it has no sessions of its own to lose.
func TestSessionAcceptedByAnotherInstance(t *testing.T) {
	h1 := newHarness(t)
	h2 := h1.another()
	for _, tc := range []struct {
		name          string
		signIn, other *harness
	}{
		{"signed in on the first, out on the second", h1, h2},
		{"signed in on the second, out on the first", h2, h1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, csrf := tc.signIn.session()
			if got := tc.other.status(c, "/inbox"); got != http.StatusOK {
				t.Fatalf("the other instance answered %d for a live session, want 200", got)
			}
			e := h1.redFlag("telegram:5")
			r := tc.other.post(c, "/alerts/"+strconv.FormatUint(e.ID, 10)+"/ack", url.Values{"csrf": {csrf}})
			if read(t, r); r.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST on the other instance with the session's token: %d", r.StatusCode)
			}
			if got, _ := h1.store.Escalation(e.ID); got.Status != "acknowledged" || got.AckBy != staffName {
				t.Fatalf("escalation = %s by %q", got.Status, got.AckBy)
			}
			if r := tc.other.post(c, "/logout", url.Values{"csrf": {csrf}}); r.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign out on the other instance: %d", r.StatusCode)
			}
			// The browser may still hold the cookie (a copy, another tab):
			// neither instance takes it.
			for _, h := range []*harness{tc.signIn, tc.other} {
				r := h.get(c, "/alerts")
				read(t, r)
				if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signed-out" {
					t.Errorf("after sign-out, %s answered %d %s", h.srv.URL, r.StatusCode, r.Header.Get("Location"))
				}
			}
		})
	}
}

// touchCounter counts the writes of a session's last-seen time.
type touchCounter struct {
	*store.Store
	touches atomic.Int64
}

func (s *touchCounter) TouchDeskSession(ctx context.Context, hash []byte, seen time.Time) error {
	s.touches.Add(1)
	return s.Store.TouchDeskSession(ctx, hash, seen)
}

// TestSessionActivityWrittenAtMostOncePerMinute: page views do not write
// the last-seen time until a minute has passed since the stored one; then
// one view writes it. The idle limit counts from the stored time, so it
// holds to within that minute, on the strict side.
func TestSessionActivityWrittenAtMostOncePerMinute(t *testing.T) {
	var tc *touchCounter
	h := newHarness(t, func(c *desk.Config) {
		tc = &touchCounter{Store: c.Store.(*store.Store)}
		c.Store = tc
	})
	c, _ := h.session()
	hash := h.sessionHash(c)
	seen := func() time.Time {
		t.Helper()
		ds, err := h.store.DeskSession(context.Background(), hash)
		if err != nil {
			t.Fatal(err)
		}
		return ds.Seen
	}
	for _, step := range []struct {
		advance  time.Duration
		views    int
		touches  int64
		seenAt   time.Duration // since t0
		viewCode int
	}{
		{0, 5, 0, 0, http.StatusOK},
		{59 * time.Second, 5, 0, 0, http.StatusOK},
		{time.Second, 5, 1, time.Minute, http.StatusOK},
		{30 * time.Second, 5, 1, time.Minute, http.StatusOK},
		// Used at 1m30s, but stored as seen at 1m: 30 minutes after the
		// stored time the session has ended, 29m30s after its last use.
		{29*time.Minute + 30*time.Second, 1, 1, time.Minute, http.StatusSeeOther},
	} {
		h.clock.Add(step.advance)
		for range step.views {
			if got := h.status(c, "/inbox"); got != step.viewCode {
				t.Fatalf("at %v: /inbox answered %d, want %d", h.clock.Now().Sub(t0), got, step.viewCode)
			}
		}
		if got := tc.touches.Load(); got != step.touches {
			t.Fatalf("at %v: %d last-seen writes, want %d", h.clock.Now().Sub(t0), got, step.touches)
		}
		if step.viewCode == http.StatusOK && !seen().Equal(t0.Add(step.seenAt)) {
			t.Fatalf("at %v: stored last seen %v, want t0+%v", h.clock.Now().Sub(t0), seen().Sub(t0), step.seenAt)
		}
	}
	if h.stored(hash) {
		t.Fatal("the session refused for idleness is still stored")
	}
}

// TestExpiredSessionRefusedWhileItsRowRemains: a session past the idle or
// the absolute limit is refused on its next request though nothing pruned
// its row yet, and the refusal deletes the row.
func TestExpiredSessionRefusedWhileItsRowRemains(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []time.Duration // clock moves, each followed by a page view
	}{
		{"idle", []time.Duration{30 * time.Minute}},
		{"past 12 hours", repeat(25, 29*time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			c, _ := h.session()
			hash := h.sessionHash(c)
			var code int
			for i, d := range tc.steps {
				h.clock.Add(d)
				if i == len(tc.steps)-1 && !h.stored(hash) {
					t.Fatal("the session's row went before its last request: nothing left to test")
				}
				code = h.status(c, "/inbox")
			}
			if code != http.StatusSeeOther {
				t.Fatalf("expired session: /inbox answered %d, want a redirect to sign in", code)
			}
			if h.stored(hash) {
				t.Fatal("the refused session is still stored")
			}
		})
	}
}

// TestSessionIDStoredHashed: the database holds the SHA-256 of the session
// ID the browser has, never the ID.
func TestSessionIDStoredHashed(t *testing.T) {
	h := newHarness(t)
	c, _ := h.session()
	u, _ := url.Parse(h.srv.URL)
	var id string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "desk_session" {
			id = ck.Value
		}
	}
	if id == "" {
		t.Fatal("no session cookie")
	}
	var buf bytes.Buffer
	if _, err := h.store.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte(id)) {
		t.Fatal("the session ID is in the database in clear")
	}
	if !h.stored(h.sessionHash(c)) {
		t.Fatal("no session stored under the ID's SHA-256")
	}
}

// TestSecureSessionCookie: under TLS the session cookie is __Host-,
// Secure, HttpOnly and SameSite=Strict.
func TestSecureSessionCookie(t *testing.T) {
	h := newHarness(t, func(c *desk.Config) { c.Secure = true })
	// The test client speaks plain HTTP and would not send Secure cookies,
	// so the sign-in is done by hand.
	page := h.get(h.client(), h.link())
	body := read(t, page)
	tok, csrf := reToken.FindStringSubmatch(body), reCSRF.FindStringSubmatch(body)
	if tok == nil || csrf == nil {
		t.Fatalf("sign-in page has no form:\n%s", body)
	}
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/login", strings.NewReader(url.Values{"t": {tok[1]}, "csrf": {csrf[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range page.Cookies() {
		req.AddCookie(ck)
	}
	r, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	read(t, r)
	var ck *http.Cookie
	for _, x := range r.Cookies() {
		if x.Name == "__Host-desk_session" && x.Value != "" {
			ck = x
		}
	}
	if r.StatusCode != http.StatusSeeOther || ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Fatalf("sign-in under TLS: %d, session cookie %+v", r.StatusCode, ck)
	}
}

// TestExpiredSessionsPrunedAtSignIn: a sign-in deletes the sessions past
// either limit, and keeps the live ones.
func TestExpiredSessionsPrunedAtSignIn(t *testing.T) {
	h := newHarness(t)
	old, _ := h.session()
	oldHash := h.sessionHash(old)
	h.clock.Add(20 * time.Minute)
	live, _ := h.session()
	liveHash := h.sessionHash(live)
	h.clock.Add(11 * time.Minute) // old: 31 minutes idle; live: 11
	if !h.stored(oldHash) {
		t.Fatal("the idle session went before the sign-in that should prune it")
	}
	h.session()
	if h.stored(oldHash) {
		t.Error("a sign-in left a session idle past the limit")
	}
	if !h.stored(liveHash) {
		t.Error("a sign-in pruned a live session")
	}
}

// TestSignOutStaffEverywhere ends every session of one staff member, on
// every instance, and only theirs.
func TestSignOutStaffEverywhere(t *testing.T) {
	two := func(c *desk.Config) { c.Staff = map[string]string{staffID: staffName, "telegram:222": "Dr Lee"} }
	h1 := newHarness(t, two)
	h2 := h1.another()
	tablet, _ := h1.session()
	desktop, _ := h2.session()
	lee := h1.client()
	l, err := h1.desk.IssueLink(context.Background(), "Dr Lee")
	if err != nil {
		t.Fatal(err)
	}
	if r := h1.signIn(lee, l); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("Dr Lee's sign-in: %d", r.StatusCode)
	}
	n, err := h2.desk.SignOutStaff(context.Background(), staffName)
	if err != nil || n != 2 {
		t.Fatalf("SignOutStaff: %d sessions (%v), want 2", n, err)
	}
	for _, h := range []*harness{h1, h2} {
		for name, c := range map[string]*http.Client{"tablet": tablet, "desktop": desktop} {
			if got := h.status(c, "/inbox"); got != http.StatusSeeOther {
				t.Errorf("%s's %s after signing her out everywhere: %d", staffName, name, got)
			}
		}
		if got := h.status(lee, "/inbox"); got != http.StatusOK {
			t.Errorf("Dr Lee after signing Ana out everywhere: %d, want 200", got)
		}
	}
	if got := h1.audit("desk_signed_out_everywhere"); len(got) != 1 || got[0].Actor != staffName {
		t.Errorf("audit = %+v", got)
	}
	if _, err := h1.desk.SignOutStaff(context.Background(), "nobody"); !errors.Is(err, desk.ErrNotStaff) {
		t.Errorf("SignOutStaff(nobody): %v, want ErrNotStaff", err)
	}
}

// TestSessionOfRemovedStaffRefused: sessions outlive restarts, so an
// instance started without a staff member in its configuration must refuse
// her sessions (and end them all), rather than honour them for 12 hours.
func TestSessionOfRemovedStaffRefused(t *testing.T) {
	h1 := newHarness(t)
	a, _ := h1.session()
	b, _ := h1.session()
	restarted := h1.another(func(c *desk.Config) { c.Staff = map[string]string{"telegram:222": "Dr Lee"} })
	if got := restarted.status(a, "/inbox"); got != http.StatusSeeOther {
		t.Fatalf("removed staff member's session: %d, want a redirect to sign in", got)
	}
	if h1.stored(h1.sessionHash(a)) || h1.stored(h1.sessionHash(b)) {
		t.Fatal("the removed staff member's sessions are still stored")
	}
}

// BenchmarkSessionCheck is the cost of admitting one request: GET / reads
// the session and redirects, rendering nothing. The clock does not move,
// so no view writes the last-seen time (as for all but one request a
// minute per session).
func BenchmarkSessionCheck(b *testing.B) {
	h := newHarness(b)
	c, _ := h.session()
	u, _ := url.Parse(h.srv.URL)
	req := httptest.NewRequest("GET", "/", nil)
	for _, ck := range c.Jar.Cookies(u) {
		req.AddCookie(ck)
	}
	handler := h.desk.Handler()
	for b.Loop() {
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/alerts" {
			b.Fatalf("GET /: %d %s", w.Code, w.Header().Get("Location"))
		}
	}
}
