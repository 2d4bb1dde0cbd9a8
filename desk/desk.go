// Package desk is the clinic's staff desk: a web console on its own
// listener where staff see open alerts live, acknowledge and resolve them,
// read conversations and reply to patients, follow today's patients, and
// create invites (one at a time with a QR code, or from a CSV of the day's
// appointments).
//
// It is built on net/http and html/template with every asset embedded; the
// one small script (static/desk.js) only enhances pages that work without
// it, and the Content-Security-Policy forbids inline script.
//
// # Sign-in
//
// There are no passwords. A configured staff member sends /login in the
// staff chat (or an admin runs `aftercare staff-link NAME`) and gets a
// one-time link, valid 10 minutes, whose token the store keeps only as a
// SHA-256 hash. Opening it shows a button; pressing it (a POST, so link
// previews cannot use the link up) starts a session: a random server-side
// id in an HttpOnly, SameSite=Strict cookie (Secure under TLS), ended by
// sign-out, 30 minutes idle or 12 hours after sign-in. Sessions are kept in
// the store (SessionStore), under the SHA-256 of their id, so every desk
// instance on one database accepts them, sign-out ends them on all at
// once, and a restart signs no one out. Every POST carries the session's
// CSRF token. Sign-in attempts are rate-limited per client.
//
// # Audit
//
// Every page that shows patient data writes an audit line with the staff
// member's name before it is served; a page whose audit line cannot be
// written is not shown.
//
// # Concurrency
//
// A Desk is safe for concurrent use; its handler serves many requests at
// once. Run must be running for open alert pages to be told about changes
// made outside the desk (new red flags, acknowledgements in chat).
package desk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the desk reads and writes. *store.Store implements it.
type Store interface {
	Escalations() ([]engine.Escalation, error)
	PatientStatesRaw(fn func(id engine.PatientID, raw []byte) error) error
	PatientRecord(p engine.PatientID) (store.Record, error)
	State(p engine.PatientID) (engine.State, bool, error)
	OpenInvites(now time.Time) ([]engine.Invite, error)
	AppendAudit(ctx context.Context, as ...engine.Audit) error
	SessionStore
	PutDeskLogin(ctx context.Context, hash []byte, l store.DeskLogin, now time.Time) error
	UseDeskLogin(ctx context.Context, hash []byte, now time.Time) (store.DeskLogin, error)
}

var _ Store = (*store.Store)(nil)

// Service is what the desk asks the service to do, the same steps the staff
// chat uses. *service.Service implements it.
type Service interface {
	Acknowledge(ctx context.Context, id uint64, who string) (string, error)
	Resolve(ctx context.Context, id uint64, who, note string) (string, error)
	Reply(ctx context.Context, patient engine.PatientID, who, text string) error
	CreateInvite(ctx context.Context, v engine.Visit, ttl time.Duration) (engine.Invite, error)
	Pause(ctx context.Context, patient engine.PatientID, who, action string) error
	Erase(ctx context.Context, patient engine.PatientID, who string) error
}

// Config holds what New needs.
type Config struct {
	Store   Store
	Service Service
	Clock   clock.Clock
	Logger  *slog.Logger
	// Staff maps each configured staff member's ID ("telegram:42",
	// "discord:1234") to the name the desk shows and audits. Only they can
	// get a sign-in link.
	Staff map[string]string
	// BaseURL is the desk's address as staff open it
	// ("https://desk.clinic.example"); sign-in links start with it.
	BaseURL string
	// Secure marks cookies Secure and sends HSTS: set it when the desk is
	// served over TLS, directly or behind a TLS reverse proxy.
	Secure bool
	// ClinicName heads every page.
	ClinicName string
	// Location is the clinic's time zone: every time the desk shows is in
	// it, whatever the server's zone, and CSV times without a zone are
	// read in it. Default UTC.
	Location *time.Location
	// Protocol names the check-in questions and answers in the FHIR
	// export; default engine.DefaultProtocol().
	Protocol *engine.Protocol
	// InviteLinks renders an invite token as what the patient opens; the
	// first link is put in the QR code. Nil shows the bare code.
	InviteLinks func(token string) []string
	// InviteTTL is how long invites made on the desk stay valid (default 7 days).
	InviteTTL time.Duration
	// LinkTTL is how long a sign-in link stays valid (default 10 minutes).
	LinkTTL time.Duration
	// IdleTimeout and MaxSession end sessions (defaults 30 minutes idle,
	// 12 hours in all).
	IdleTimeout, MaxSession time.Duration
	// PollInterval is how often Run looks for changed escalations to push
	// to open alert pages (default 250 ms): a new red flag is on every page
	// within about this long.
	PollInterval time.Duration
	// LoginRate and LoginBurst limit sign-in attempts per client address
	// (default 10 a minute, burst 5).
	LoginRate  float64
	LoginBurst int
}

// Desk is the staff web console. Create it with New; serve Handler.
type Desk struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template

	mu     sync.Mutex
	limits map[string]*limiter

	// states keeps the patients' decoded states with the bytes they were
	// decoded from, so a list page decodes only the states that changed
	// since the last one (statesMu held for the whole walk).
	statesMu sync.Mutex
	states   map[engine.PatientID]*cachedState
	gen      uint64

	// snap is every state, most recent first, as of states version snapVer.
	snapMu  sync.Mutex
	snap    []*engine.State
	snapVer uint64

	bcMu    sync.Mutex
	changed chan struct{} // closed and replaced on every change
	print   string        // fingerprint of the open escalations last seen
}

// New returns a desk.
func New(c Config) (*Desk, error) {
	if c.Store == nil || c.Service == nil || c.Clock == nil {
		return nil, errors.New("desk: store, service and clock are required")
	}
	if len(c.Staff) == 0 {
		return nil, errors.New("desk: no staff configured: list staff user IDs in the platform sections, so someone can sign in")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.InviteTTL <= 0 {
		c.InviteTTL = 7 * 24 * time.Hour
	}
	if c.LinkTTL <= 0 {
		c.LinkTTL = 10 * time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.MaxSession <= 0 {
		c.MaxSession = 12 * time.Hour
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.LoginRate <= 0 {
		c.LoginRate = 10.0 / 60
	}
	if c.LoginBurst <= 0 {
		c.LoginBurst = 5
	}
	if c.ClinicName == "" {
		c.ClinicName = "Clinic"
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Protocol == nil {
		c.Protocol = engine.DefaultProtocol()
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	pages, err := parsePages(c.Location)
	if err != nil {
		return nil, err
	}
	return &Desk{cfg: c, log: c.Logger, pages: pages, limits: map[string]*limiter{},
		states:  map[engine.PatientID]*cachedState{},
		changed: make(chan struct{})}, nil
}

// StaffRefused is returned by IssueLink for someone who is not configured
// staff. Its StaffRefusal text may be shown to the person who asked.
type StaffRefused struct{ who string }

func (e *StaffRefused) Error() string { return "desk: not configured staff" }

// StaffRefusal is the sentence shown in the staff chat.
func (e *StaffRefused) StaffRefusal() string {
	return "only staff listed in the configuration (staff_user_ids) can sign in to the desk; ask the clinic's administrator to add you"
}

// ErrNotStaff matches every StaffRefused error with errors.Is.
var ErrNotStaff = errors.New("desk: not configured staff")

// Is makes errors.Is(err, ErrNotStaff) true for a refusal.
func (e *StaffRefused) Is(target error) bool { return target == ErrNotStaff }

// LookupStaff finds a configured staff member by ID or by name (case does
// not matter for names) and returns their ID and name.
func (d *Desk) LookupStaff(idOrName string) (id, name string, ok bool) {
	if n, ok := d.cfg.Staff[idOrName]; ok {
		return idOrName, d.name(idOrName, n), true
	}
	for id, n := range d.cfg.Staff {
		if n != "" && strings.EqualFold(n, strings.TrimSpace(idOrName)) {
			return id, n, true
		}
	}
	return "", "", false
}

func (d *Desk) name(id, n string) string {
	if n == "" {
		return id
	}
	return n
}

// IssueLink creates a one-time sign-in link for the staff member with this
// ID or name, valid Config.LinkTTL. Anyone not in Config.Staff gets a
// *StaffRefused error and no link. Issuing is audited (never the token).
func (d *Desk) IssueLink(ctx context.Context, idOrName string) (string, error) {
	id, name, ok := d.LookupStaff(idOrName)
	if !ok {
		d.log.Warn("desk sign-in link refused: not configured staff")
		return "", &StaffRefused{who: idOrName}
	}
	tok := randomToken()
	now := d.cfg.Clock.Now()
	l := store.DeskLogin{Staff: id, Name: name, Created: now, Expires: now.Add(d.cfg.LinkTTL)}
	if err := d.cfg.Store.PutDeskLogin(ctx, hashToken(tok), l, now); err != nil {
		return "", fmt.Errorf("desk: store sign-in link: %w", err)
	}
	if err := d.cfg.Store.AppendAudit(ctx, engine.Audit{At: now, Actor: name, Action: "desk_link_issued", Detail: "one-time sign-in link, valid until " + l.Expires.Format(time.RFC3339)}); err != nil {
		return "", fmt.Errorf("desk: audit sign-in link: %w", err)
	}
	d.log.Info("desk sign-in link issued", "expires", l.Expires)
	return d.cfg.BaseURL + "/login?t=" + tok, nil
}

// randomToken is 256 random bits, base64url.
func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// Handler serves the desk.
func (d *Desk) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET /login", d.loginPage)
	mux.HandleFunc("POST /login", d.loginPost)
	mux.HandleFunc("GET /signed-out", d.signedOut)
	mux.Handle("POST /logout", d.auth(d.logout))
	mux.Handle("GET /{$}", d.auth(func(w http.ResponseWriter, r *http.Request, s *session) {
		http.Redirect(w, r, "/alerts", http.StatusSeeOther)
	}))
	mux.Handle("GET /alerts", d.auth(d.alertsPage))
	mux.Handle("GET /alerts/events", d.auth(d.alertEvents))
	mux.Handle("POST /alerts/{id}/ack", d.auth(d.alertAck))
	mux.Handle("POST /alerts/{id}/resolve", d.auth(d.alertResolve))
	mux.Handle("GET /inbox", d.auth(d.inboxPage))
	mux.Handle("GET /today", d.auth(d.todayPage))
	mux.Handle("GET /patients/{id}", d.auth(d.patientPage))
	mux.Handle("POST /patients/{id}/reply", d.auth(d.replyPost))
	mux.Handle("POST /patients/{id}/export", d.auth(d.exportPost))
	mux.Handle("POST /patients/{id}/pause", d.auth(d.pausePost))
	mux.Handle("POST /patients/{id}/resume", d.auth(d.pausePost))
	mux.Handle("GET /patients/{id}/erase", d.auth(d.erasePage))
	mux.Handle("POST /patients/{id}/erase", d.auth(d.erasePost))
	mux.Handle("GET /visits/new", d.auth(d.visitForm))
	mux.Handle("POST /visits/new", d.auth(d.visitPost))
	mux.Handle("POST /visits/import", d.auth(d.importPost))
	return d.headers(mux)
}

// headers sets the security headers of every response.
func (d *Desk) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer") // sign-in tokens and patient IDs stay off other sites
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if d.cfg.Secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// audit writes one audit line for what staff member s saw; the caller
// serves the page only when it returns nil.
func (d *Desk) audit(ctx context.Context, s *session, action string, p engine.PatientID, detail string) error {
	err := d.cfg.Store.AppendAudit(ctx, engine.Audit{At: d.cfg.Clock.Now(), Actor: s.name, Action: action, Patient: p, Detail: detail})
	if err != nil {
		return fmt.Errorf("desk: audit %s: %w", action, err)
	}
	return nil
}

// openEscalations returns the escalations not yet resolved, newest first.
func (d *Desk) openEscalations() ([]engine.Escalation, error) {
	es, err := d.cfg.Store.Escalations()
	if err != nil {
		return nil, err
	}
	out := es[:0]
	for _, e := range es {
		if e.Status != "resolved" {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}
