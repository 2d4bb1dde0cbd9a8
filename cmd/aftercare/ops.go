package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"rsc.io/qr"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/export"
	"github.com/aftercare-clinic/aftercare/metrics"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// readiness is implemented by platform adapters that can tell whether
// they are connected and polling.
type readiness interface {
	Ready() bool
}

// inviteResponse is what /admin/visit and `aftercare visit` return.
type inviteResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	Links   []string  `json:"links"`
	// QRPNG is a PNG of the first link, base64, for the front desk.
	QRPNG string `json:"qr_png,omitempty"`
}

// Timeouts of the operations listener. A client that stops reading or
// sending must not hold a connection (and what it reads) for ever.
const (
	opsReadHeaderTimeout = 5 * time.Second
	opsReadTimeout       = 30 * time.Second
	opsWriteTimeout      = time.Minute
	opsIdleTimeout       = 2 * time.Minute
	// backupWriteTimeout replaces opsWriteTimeout for /admin/backup, long
	// enough to stream a large database to a slow disk. The backup is
	// streamed from a snapshot file, so a client using all of it delays no
	// write; it only keeps the snapshot on disk that long.
	backupWriteTimeout = 30 * time.Minute
)

// newOpsServer is the operations listener's HTTP server, with every timeout set.
func newOpsServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: opsReadHeaderTimeout, ReadTimeout: opsReadTimeout,
		WriteTimeout: opsWriteTimeout, IdleTimeout: opsIdleTimeout}
}

// clinic returns the clinic named id, or with id "" the only one. A
// deployment of several clinics needs the id: nothing defaults to one
// clinic's data when the caller may have meant another's.
func (r *Running) clinic(id string) (*ClinicRun, error) {
	if id == "" {
		if len(r.Clinics) == 1 {
			return r.Clinics[0], nil
		}
		return nil, errClinicRequired
	}
	for _, c := range r.Clinics {
		if c.ID == id {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", errNoClinic, id)
}

var (
	// errClinicRequired: a deployment of several clinics was asked
	// something without saying which clinic.
	errClinicRequired = errors.New("this deployment serves several clinics: name one (-clinic ID, or ?clinic=ID)")
	// errNoClinic: no clinic has the id asked for.
	errNoClinic = errors.New("no such clinic")
)

// ready reports what keeps the process from being ready: per clinic its
// store, its platforms and its staff destinations, each named under the
// clinic's id when there are several.
func (r *Running) ready() error {
	var out []string
	for _, c := range r.Clinics {
		var probs []string
		if _, err := c.DB.OutboxDepth(); err != nil {
			probs = append(probs, "store: "+err.Error())
		}
		if err := c.plats.down(); err != nil {
			probs = append(probs, err.Error())
		}
		if p := c.Service.StaffProblems(); len(p) > 0 {
			probs = append(probs, "staff destination unreachable: "+strings.Join(p, "; "))
		}
		if len(probs) == 0 {
			continue
		}
		msg := strings.Join(probs, "; ")
		if len(r.Clinics) > 1 {
			msg = "clinic " + c.ID + ": " + msg
		}
		out = append(out, msg)
	}
	if len(out) == 0 {
		return nil
	}
	return errors.New(strings.Join(out, "; "))
}

// opsHandler serves /healthz, /readyz and /metrics, which hold no patient
// data and stay open to monitoring, and, when guard is not nil (a loopback
// listener), the admin endpoints the command line uses while the bot holds
// the database lock, each behind guard (see adminauth.go). Every admin
// endpoint acts on one clinic, named by ?clinic=ID (required when there
// are several). Every read of patient data through them is written to the
// audit trail first.
func opsHandler(run *Running, m *metrics.Registry, guard *adminGuard) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := run.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", m.Handler())
	if guard == nil {
		return mux
	}
	admin := func(pattern string, h func(http.ResponseWriter, *http.Request, *ClinicRun)) {
		mux.Handle(pattern, guard.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := run.clinic(r.URL.Query().Get("clinic"))
			switch {
			case errors.Is(err, errClinicRequired):
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			case err != nil:
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			h(w, r, c)
		})))
	}
	admin("POST /admin/visit", func(w http.ResponseWriter, r *http.Request, c *ClinicRun) {
		var args []string
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&args); err != nil {
			http.Error(w, "body must be a JSON array of /visit arguments", http.StatusBadRequest)
			return
		}
		v, err := service.ParseVisitArgs(args, run.Clock.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		inv, err := c.Service.CreateInvite(r.Context(), v, time.Duration(c.Config.Invites.TTLDays)*24*time.Hour)
		if err != nil {
			http.Error(w, "could not create the invite", http.StatusInternalServerError)
			return
		}
		writeJSON(w, newInviteResponse(inv, c.links))
	})
	admin("GET /admin/export", func(w http.ResponseWriter, r *http.Request, c *ClinicRun) {
		id := engine.PatientID(r.URL.Query().Get("patient"))
		doc, err := exportPatient(c.DB, c.Engine.Protocol(), id, run.Clock.Now())
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "no such patient", http.StatusNotFound)
			return
		}
		if err == nil {
			err = auditRead(r.Context(), c.DB, run.Clock.Now(), adminActor, id)
		}
		if err != nil {
			slog.Error("export over http failed", "clinic", c.ID, "err", err)
			http.Error(w, "export failed", http.StatusInternalServerError)
			return
		}
		writeJSON(w, doc)
	})
	admin("POST /admin/staff-link", staffLinkHandler)
	admin("GET /admin/backup", func(w http.ResponseWriter, r *http.Request, c *ClinicRun) {
		if c.Store == nil {
			http.Error(w, "the store is PostgreSQL: take backups with pg_dump (see the README)", http.StatusNotImplemented)
			return
		}
		if err := auditRead(r.Context(), c.Store, run.Clock.Now(), adminActor, ""); err != nil {
			slog.Error("backup over http refused: audit failed", "clinic", c.ID, "err", err)
			http.Error(w, "backup failed", http.StatusInternalServerError)
			return
		}
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupWriteTimeout)); err != nil {
			slog.Warn("backup over http: write deadline not extended", "err", err)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := c.Store.Backup(w); err != nil {
			slog.Error("backup over http failed", "clinic", c.ID, "err", err)
			// Break the connection: a cleanly ended body would pass a
			// truncated copy off as a whole one.
			panic(http.ErrAbortHandler)
		}
	})
	return mux
}

// auditRead records in the audit trail that actor read patient's record
// (export), or with no patient the whole database (backup), before the
// data is handed out: a read that cannot be audited does not happen.
func auditRead(ctx context.Context, st service.Store, now time.Time, actor string, patient engine.PatientID) error {
	a := engine.Audit{At: now, Actor: actor, Action: "backup_read", Detail: "copy of the whole database"}
	if patient != "" {
		a = engine.Audit{At: now, Actor: actor, Action: "patient_exported", Patient: patient}
	}
	if err := st.AppendAudit(ctx, a); err != nil {
		return fmt.Errorf("audit %s: %w", a.Action, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func newInviteResponse(inv engine.Invite, links func(string) []string) inviteResponse {
	resp := inviteResponse{Token: inv.Token, Expires: inv.Expires, Links: links(inv.Token)}
	if len(resp.Links) > 0 {
		if code, err := qr.Encode(resp.Links[0], qr.M); err == nil {
			resp.QRPNG = base64.StdEncoding.EncodeToString(code.PNG())
		}
	}
	return resp
}

// inviteLinks renders a token as what the patient opens: a Telegram deep
// link when the bot's username is known, and the code for Discord.
func inviteLinks(username func() string, discord bool) func(string) []string {
	return func(tok string) []string {
		var out []string
		if u := username(); u != "" {
			out = append(out, "https://t.me/"+u+"?start="+tok)
		}
		if discord {
			out = append(out, "Discord: send the clinic bot a direct message with: /start "+tok)
		}
		if len(out) == 0 {
			out = append(out, "code: "+tok+" (the patient sends: /start "+tok+")")
		}
		return out
	}
}

func exportPatient(st service.Store, p *engine.Protocol, id engine.PatientID, now time.Time) (export.Document, error) {
	if id == "" {
		return export.Document{}, store.ErrNotFound
	}
	r, err := st.PatientRecord(id)
	if err != nil {
		return export.Document{}, err
	}
	return export.Build(r, p, now), nil
}

// isLoopback reports whether a listen address only accepts local connections.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// adminCall asks the running bot (which holds the database lock) to do
// what a command-line invocation cannot do itself, and returns the body.
func adminCall(ctx context.Context, cfg Config, method, path string, body any) ([]byte, error) {
	resp, err := adminDo(ctx, cfg, method, path, body, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// adminDo sends an admin request with the admin token and returns the
// response when its status is 200; the caller closes its body. timeout
// bounds the whole exchange (0: only ctx does).
func adminDo(ctx context.Context, cfg Config, method, path string, body any, timeout time.Duration) (*http.Response, error) {
	if cfg.HTTP.Listen == "" || !isLoopback(cfg.HTTP.Listen) {
		return nil, errors.New("the bot is running and holds the database; set http.listen to a loopback address (e.g. \"127.0.0.1:8089\") to use this command while it runs, or use the staff chat")
	}
	tok, err := readAdminToken(adminTokenPath(cfg))
	if err != nil {
		return nil, fmt.Errorf("the bot is running and holds the database; %w", err)
	}
	if cfg.listed {
		// The running process serves every clinic: say which.
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "clinic=" + cfg.ClinicID
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+cfg.HTTP.Listen+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("the bot is running but its admin endpoint did not answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("admin endpoint: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// withStore runs fn on the database when no bot holds it; with ErrLocked it
// returns errRunning so the caller can go through the admin endpoint.
func (m *Main) withStore(cfg Config, fn func(*store.Store) error) error {
	// A first command in a new folder (aftercare visit) creates the data
	// directory as the bot would, private to the clinic's user.
	if err := os.MkdirAll(clinicDir(cfg), 0o700); err != nil {
		return &ConfigError{Key: "data_dir", Msg: err.Error()}
	}
	st, err := store.Open(dbPath(cfg), store.Options{Timeout: 300 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return errRunning
	}
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

var errRunning = errors.New("bot running")

// withDB runs fn on the clinic's store, whichever the backend: PostgreSQL
// is shared by every instance, so the command uses it directly, running
// bot or not; bbolt goes through withStore (and its admin fallback).
func (m *Main) withDB(ctx context.Context, cfg Config, fn func(appStore) error) error {
	if cfg.Store.Backend != "postgres" {
		return m.withStore(cfg, func(st *store.Store) error { return fn(st) })
	}
	st, _, err := m.openStore(ctx, cfg, "")
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// dbPath is a clinic's bbolt file: data_dir/aftercare.db for the one
// clinic of a one-clinic deployment (and a listed "default"), else
// data_dir/clinics/<id>/aftercare.db.
func dbPath(cfg Config) string { return filepath.Join(clinicDir(cfg), "aftercare.db") }

// visitUsage is the usage line of `aftercare visit`, shown with its errors.
const visitUsage = "usage: aftercare visit [--config FILE] [--qr FILE.png] TREATMENT AREA [acute] [child] [ago=2h] [tz=Zone]\n" +
	"  e.g. aftercare visit dry_needling lower back"

// parseCLIVisit reads `aftercare visit` arguments. Unlike a quick /visit
// in the staff chat, the front desk must name the area: the patient's
// advice and the staff alerts name it.
func parseCLIVisit(args []string, now time.Time) (engine.Visit, error) {
	v, err := service.ParseVisitArgs(args, now)
	if err != nil {
		return v, &usageError{"visit: " + err.Error() + "\n" + visitUsage}
	}
	if strings.TrimSpace(v.Area) == "" {
		return v, &usageError{"visit: AREA is missing (where the needles went, e.g. \"lower back\")\n" + visitUsage}
	}
	return v, nil
}

// printInvite shows the front desk the invite: its expiry in the clinic's
// time zone, its links, and a warning when the QR code would hold only a
// code that opens nothing when scanned.
func (m *Main) printInvite(cfg Config, resp inviteResponse) {
	exp := resp.Expires
	if loc, err := time.LoadLocation(cfg.Clinic.TimeZone); err == nil {
		exp = exp.In(loc)
	}
	fmt.Fprintf(m.Stdout, "Invite for the patient (one use, valid until %s):\n", exp.Format("Mon 2 Jan 2006 15:04 MST"))
	for _, l := range resp.Links {
		fmt.Fprintln(m.Stdout, "  "+l)
	}
	for _, l := range resp.Links {
		if strings.HasPrefix(l, "https://") {
			return
		}
	}
	fmt.Fprintln(m.Stderr, "warning: invites.telegram_bot_username is not set, so the invite (and its QR code) is only a code that opens nothing when scanned; "+
		"set it to your Telegram bot's username in the config to get a t.me link")
}
