package desk

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// SessionStore keeps the desk's sign-in sessions. They live in the store,
// not in one process's memory, so that with several desk instances on one
// database a browser stays signed in whichever instance its next request
// reaches, a restart signs no one out, and signing out on one instance
// signs out on all at once. Sessions are keyed by the SHA-256 of their ID
// (hashToken), never the ID, so a copy of the database cannot be used to
// sign in. *store.Store and *postgres.Store implement it.
type SessionStore interface {
	// PutDeskSession stores a new session; a hash already stored is an error.
	PutDeskSession(ctx context.Context, hash []byte, s store.DeskSession) error
	// DeskSession returns a session, expired or not (the desk checks
	// expiry), or store.ErrSessionUnknown.
	DeskSession(ctx context.Context, hash []byte) (store.DeskSession, error)
	// TouchDeskSession moves the session's last-seen time forward, if the
	// session still exists.
	TouchDeskSession(ctx context.Context, hash []byte, seen time.Time) error
	// DeleteDeskSession ends one session.
	DeleteDeskSession(ctx context.Context, hash []byte) error
	// DeleteStaffDeskSessions ends every session of one staff member.
	DeleteStaffDeskSessions(ctx context.Context, staff string) (int, error)
	// PruneDeskSessions deletes sessions seen before seenBefore or started
	// before createdBefore.
	PruneDeskSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int, error)
}

var _ SessionStore = (*store.Store)(nil)

// touchEvery is how stale a session's stored last-seen time may get before
// a request writes it again. Writing it on every request would make every
// page view, form post and alert-stream keep-alive a database write (on
// PostgreSQL a row update and WAL record, on bbolt a commit with fsyncs,
// about 3 ms and queued with the patients' steps, against about 3 µs for
// the read: BenchmarkDeskSession in store/storetest) just to move a
// timestamp; once a minute per session is a handful of writes an hour for
// a clinic's staff. The cost is that the idle limit is kept to within a
// minute on the strict side: a session may end up to a minute before
// IdleTimeout after its true last use, never later.
const touchEvery = time.Minute

// session is one signed-in staff member's browser, as one request sees it.
type session struct {
	hash          []byte // SHA-256 of the cookie's session ID
	staff, name   string
	csrf          string
	created, seen time.Time
}

type limiter struct {
	lim  *rate.Limiter
	seen time.Time
}

// Cookie names. Under TLS the session cookie takes the __Host- prefix, so
// the browser refuses it from any other host or path, or without Secure.
const (
	cookieSession       = "desk_session"
	cookieSessionSecure = "__Host-desk_session"
	cookiePre           = "desk_signin"
	cookiePreSecure     = "__Host-desk_signin"
)

func (d *Desk) cookieName(secure, plain string) string {
	if d.cfg.Secure {
		return secure
	}
	return plain
}

func (d *Desk) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: d.cfg.Secure, SameSite: http.SameSiteStrictMode})
}

// allow reports whether the client may try to sign in now.
func (d *Desk) allow(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.limits) > 10000 { // forget clients idle for an hour
		for k, l := range d.limits {
			if now.Sub(l.seen) > time.Hour {
				delete(d.limits, k)
			}
		}
	}
	l := d.limits[host]
	if l == nil {
		l = &limiter{lim: rate.NewLimiter(rate.Limit(d.cfg.LoginRate), d.cfg.LoginBurst)}
		d.limits[host] = l
	}
	l.seen = now
	return l.lim.AllowN(now, 1)
}

// loginPage shows the sign-in button for a link. Opening the link changes
// nothing (chat apps fetch links for previews); the button's POST uses it.
func (d *Desk) loginPage(w http.ResponseWriter, r *http.Request) {
	if !d.allow(r) {
		d.refuse(w, http.StatusTooManyRequests, "Too many sign-in attempts from this computer. Wait a minute and try again.")
		return
	}
	tok := r.URL.Query().Get("t")
	if tok == "" || len(tok) > 100 {
		d.refuse(w, http.StatusBadRequest, "This address is not a sign-in link. Send /login in the staff chat to get one.")
		return
	}
	pre := randomToken()
	d.setCookie(w, d.cookieName(cookiePreSecure, cookiePre), pre, int(d.cfg.LinkTTL/time.Second))
	d.render(w, http.StatusOK, "login", pageData{Title: "Sign in", Data: map[string]string{"Token": tok, "CSRF": pre}})
}

// loginPost uses a sign-in link and starts a session.
func (d *Desk) loginPost(w http.ResponseWriter, r *http.Request) {
	if !d.allow(r) {
		d.refuse(w, http.StatusTooManyRequests, "Too many sign-in attempts from this computer. Wait a minute and try again.")
		return
	}
	if crossSite(r) {
		d.refuse(w, http.StatusForbidden, "Sign-in must come from the desk's own page.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	c, err := r.Cookie(d.cookieName(cookiePreSecure, cookiePre))
	if err != nil || !equal(c.Value, r.PostFormValue("csrf")) {
		d.refuse(w, http.StatusForbidden, "The sign-in form was not sent from this browser's sign-in page. Open your link again.")
		return
	}
	now := d.cfg.Clock.Now()
	l, err := d.cfg.Store.UseDeskLogin(r.Context(), hashToken(r.PostFormValue("t")), now)
	switch {
	case errors.Is(err, store.ErrLoginUsed):
		d.log.Warn("desk sign-in refused: link already used")
		d.refuse(w, http.StatusGone, "This sign-in link was already used. Each link works once: send /login in the staff chat for a new one.")
		return
	case errors.Is(err, store.ErrLoginExpired):
		d.log.Warn("desk sign-in refused: link expired")
		d.refuse(w, http.StatusGone, "This sign-in link has expired (links last 10 minutes). Send /login in the staff chat for a new one.")
		return
	case errors.Is(err, store.ErrLoginUnknown):
		d.log.Warn("desk sign-in refused: unknown link")
		d.refuse(w, http.StatusForbidden, "This sign-in link is not valid. Send /login in the staff chat for a new one.")
		return
	case err != nil:
		d.log.Error("desk sign-in failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "Sign-in failed because of an internal error; it has been logged.")
		return
	}
	id, name, ok := d.LookupStaff(l.Staff)
	if !ok { // removed from the configuration since the link was issued
		d.refuse(w, http.StatusForbidden, "You are no longer listed as staff.")
		return
	}
	if err := d.cfg.Store.AppendAudit(r.Context(), engine.Audit{At: now, Actor: name, Action: "desk_signed_in"}); err != nil {
		d.log.Error("desk sign-in refused: audit failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "Sign-in failed because of an internal error; it has been logged.")
		return
	}
	sid := randomToken()
	ds := store.DeskSession{Staff: id, Name: name, CSRF: randomToken(), Created: now, Seen: now}
	if err := d.cfg.Store.PutDeskSession(r.Context(), hashToken(sid), ds); err != nil {
		d.log.Error("desk sign-in failed: storing the session", "err", err)
		d.refuse(w, http.StatusInternalServerError, "Sign-in failed because of an internal error; it has been logged.")
		return
	}
	// Sign-ins are rare (a few a day per staff member), so dropping the
	// expired sessions here keeps the table small without a timer.
	if n, err := d.cfg.Store.PruneDeskSessions(r.Context(), now.Add(-d.cfg.IdleTimeout), now.Add(-d.cfg.MaxSession)); err != nil {
		d.log.Warn("desk: pruning expired sessions failed", "err", err)
	} else if n > 0 {
		d.log.Info("desk: expired sessions pruned", "sessions", n)
	}
	d.setCookie(w, d.cookieName(cookiePreSecure, cookiePre), "", -1)
	d.setCookie(w, d.cookieName(cookieSessionSecure, cookieSession), sid, 0)
	d.log.Info("desk session started")
	http.Redirect(w, r, "/alerts", http.StatusSeeOther)
}

// logout ends the session in the store, so every instance refuses it from
// its next request on.
func (d *Desk) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := d.cfg.Store.DeleteDeskSession(r.Context(), s.hash); err != nil {
		d.log.Error("desk sign-out failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "Signing out failed because of an internal error; it has been logged. Try again.")
		return
	}
	d.setCookie(w, d.cookieName(cookieSessionSecure, cookieSession), "", -1)
	d.cfg.Store.AppendAudit(r.Context(), engine.Audit{At: d.cfg.Clock.Now(), Actor: s.name, Action: "desk_signed_out"})
	http.Redirect(w, r, "/signed-out", http.StatusSeeOther)
}

// SignOutStaff ends every desk session of the staff member with this ID or
// name, on every browser and every instance, and returns how many there
// were: for a lost tablet, or someone leaving the clinic. It is audited.
func (d *Desk) SignOutStaff(ctx context.Context, idOrName string) (int, error) {
	id, name, ok := d.LookupStaff(idOrName)
	if !ok {
		return 0, &StaffRefused{who: idOrName}
	}
	n, err := d.cfg.Store.DeleteStaffDeskSessions(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("desk: sign out %s everywhere: %w", id, err)
	}
	if err := d.cfg.Store.AppendAudit(ctx, engine.Audit{At: d.cfg.Clock.Now(), Actor: name, Action: "desk_signed_out_everywhere", Detail: fmt.Sprintf("%d sessions", n)}); err != nil {
		return n, fmt.Errorf("desk: audit sign-out everywhere: %w", err)
	}
	d.log.Info("desk sessions ended for one staff member", "sessions", n)
	return n, nil
}

func (d *Desk) signedOut(w http.ResponseWriter, r *http.Request) {
	d.render(w, http.StatusOK, "signedout", pageData{Title: "Signed out"})
}

// errSignedOut means the request has no live session.
var errSignedOut = errors.New("desk: signed out")

// session returns the request's live session, or errSignedOut. A session
// idle for IdleTimeout, or MaxSession old, is refused and deleted even if
// no prune removed its row yet; so is one whose staff member is no longer
// configured (sessions outlive restarts, so a configuration change must
// end them). Its last-seen time is written at most every touchEvery.
// Other errors are the store's.
func (d *Desk) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(d.cookieName(cookieSessionSecure, cookieSession))
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, errSignedOut
	}
	hash := hashToken(c.Value)
	ctx := r.Context()
	ds, err := d.cfg.Store.DeskSession(ctx, hash)
	if errors.Is(err, store.ErrSessionUnknown) {
		return nil, errSignedOut
	}
	if err != nil {
		return nil, fmt.Errorf("desk: read session: %w", err)
	}
	now := d.cfg.Clock.Now()
	if !d.live(ds, now) {
		if err := d.cfg.Store.DeleteDeskSession(ctx, hash); err != nil {
			d.log.Warn("desk: deleting an expired session failed", "err", err)
		}
		return nil, errSignedOut
	}
	id, name, ok := d.LookupStaff(ds.Staff)
	if !ok || id != ds.Staff {
		if _, err := d.cfg.Store.DeleteStaffDeskSessions(ctx, ds.Staff); err != nil {
			d.log.Warn("desk: ending the sessions of removed staff failed", "err", err)
		}
		d.log.Warn("desk session refused: no longer configured staff")
		return nil, errSignedOut
	}
	if now.Sub(ds.Seen) >= touchEvery {
		if err := d.cfg.Store.TouchDeskSession(ctx, hash, now); err != nil {
			// The request may go on: the session only risks ending a
			// little early if no later touch succeeds.
			d.log.Warn("desk: recording session activity failed", "err", err)
		}
		ds.Seen = now
	}
	return &session{hash: hash, staff: id, name: name, csrf: ds.CSRF, created: ds.Created, seen: ds.Seen}, nil
}

// live reports whether a stored session is within both time limits at now.
func (d *Desk) live(ds store.DeskSession, now time.Time) bool {
	return now.Sub(ds.Seen) < d.cfg.IdleTimeout && now.Sub(ds.Created) < d.cfg.MaxSession
}

// alive reports whether the session still stands (for long-lived streams,
// without counting as activity): not signed out on any instance, not
// expired. A store error counts as not alive, so the stream ends and the
// page's next request reports what is wrong.
func (d *Desk) alive(ctx context.Context, hash []byte) bool {
	ds, err := d.cfg.Store.DeskSession(ctx, hash)
	return err == nil && d.live(ds, d.cfg.Clock.Now())
}

type authed func(w http.ResponseWriter, r *http.Request, s *session)

// auth admits requests of a live session; a POST must also carry the
// session's CSRF token and must not come from another site.
func (d *Desk) auth(h authed) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := d.session(r)
		if err != nil && !errors.Is(err, errSignedOut) {
			d.log.Error("desk request failed: reading the session", "err", err)
			d.refuse(w, http.StatusInternalServerError, "The desk could not check your sign-in because of an internal error; it has been logged. Reload the page in a moment.")
			return
		}
		if s == nil {
			if r.Method == http.MethodGet && r.URL.Path != "/alerts/events" {
				http.Redirect(w, r, "/signed-out", http.StatusSeeOther)
				return
			}
			d.refuse(w, http.StatusUnauthorized, "You are signed out. Send /login in the staff chat for a sign-in link.")
			return
		}
		if r.Method == http.MethodPost {
			if crossSite(r) {
				d.refuse(w, http.StatusForbidden, "This request came from another site and was refused.")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.FormValue("csrf") // parses url-encoded and multipart forms
			}
			if !equal(tok, s.csrf) {
				d.log.Warn("desk request refused: missing or wrong CSRF token", "path", r.URL.Path)
				d.refuse(w, http.StatusForbidden, "This form has expired or did not come from the desk. Reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	})
}

// crossSite reports a request a browser marked as coming from another site.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		return !sameOrigin(o, r)
	}
	return false
}

func sameOrigin(origin string, r *http.Request) bool {
	for _, scheme := range []string{"http://", "https://"} {
		if origin == scheme+r.Host {
			return true
		}
	}
	return false
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
