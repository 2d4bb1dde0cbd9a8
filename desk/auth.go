package desk

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// session is one signed-in staff member's browser. Sessions live in memory
// only: a restart signs everyone out, and nothing on disk can be replayed.
type session struct {
	id, staff, name string
	csrf            string
	created, seen   time.Time
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
	s := &session{id: randomToken(), staff: id, name: name, csrf: randomToken(), created: now, seen: now}
	if err := d.cfg.Store.AppendAudit(r.Context(), engine.Audit{At: now, Actor: name, Action: "desk_signed_in"}); err != nil {
		d.log.Error("desk sign-in refused: audit failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "Sign-in failed because of an internal error; it has been logged.")
		return
	}
	d.mu.Lock()
	d.sessions[s.id] = s
	d.mu.Unlock()
	d.setCookie(w, d.cookieName(cookiePreSecure, cookiePre), "", -1)
	d.setCookie(w, d.cookieName(cookieSessionSecure, cookieSession), s.id, 0)
	d.log.Info("desk session started")
	http.Redirect(w, r, "/alerts", http.StatusSeeOther)
}

func (d *Desk) logout(w http.ResponseWriter, r *http.Request, s *session) {
	d.mu.Lock()
	delete(d.sessions, s.id)
	d.mu.Unlock()
	d.setCookie(w, d.cookieName(cookieSessionSecure, cookieSession), "", -1)
	d.cfg.Store.AppendAudit(r.Context(), engine.Audit{At: d.cfg.Clock.Now(), Actor: s.name, Action: "desk_signed_out"})
	http.Redirect(w, r, "/signed-out", http.StatusSeeOther)
}

func (d *Desk) signedOut(w http.ResponseWriter, r *http.Request) {
	d.render(w, http.StatusOK, "signedout", pageData{Title: "Signed out"})
}

// session returns the request's live session, refreshing its idle time.
func (d *Desk) session(r *http.Request) *session {
	c, err := r.Cookie(d.cookieName(cookieSessionSecure, cookieSession))
	if err != nil {
		return nil
	}
	now := d.cfg.Clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[c.Value]
	if s == nil {
		return nil
	}
	if now.Sub(s.seen) >= d.cfg.IdleTimeout || now.Sub(s.created) >= d.cfg.MaxSession {
		delete(d.sessions, s.id)
		return nil
	}
	s.seen = now
	cp := *s
	return &cp
}

// alive reports whether the session still stands (for long-lived streams,
// without counting as activity).
func (d *Desk) alive(id string) bool {
	now := d.cfg.Clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[id]
	return s != nil && now.Sub(s.seen) < d.cfg.IdleTimeout && now.Sub(s.created) < d.cfg.MaxSession
}

type authed func(w http.ResponseWriter, r *http.Request, s *session)

// auth admits requests of a live session; a POST must also carry the
// session's CSRF token and must not come from another site.
func (d *Desk) auth(h authed) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := d.session(r)
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
