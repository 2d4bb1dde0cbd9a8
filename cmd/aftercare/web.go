package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/desk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/postgres"
)

// WebConfig is the staff desk's listener (package desk). Off unless
// listen is set.
type WebConfig struct {
	// Listen is the desk's address, e.g. "127.0.0.1:8090" behind a reverse
	// proxy, or ":443" with tls_cert and tls_key.
	Listen string `json:"listen,omitempty"`
	// BaseURL is the address staff open, used in sign-in links
	// ("https://desk.clinic.example"); default http(s)://listen.
	BaseURL string `json:"base_url,omitempty"`
	// TLSCert and TLSKey are PEM files: the desk then serves HTTPS itself.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// BehindTLSProxy marks cookies Secure when a reverse proxy ends TLS
	// in front of a plain-HTTP desk (base_url must then be https://).
	BehindTLSProxy bool `json:"behind_tls_proxy,omitempty"`
	// StaffNames names configured staff on the desk and in its audit
	// lines: {"telegram:111111111": "Ana Ruiz"}. Keys must be staff listed
	// in telegram.staff_user_ids or discord.staff_user_ids.
	StaffNames map[string]string `json:"staff_names,omitempty"`
}

// validateWebListener checks the desk's shared listener (web.listen, TLS,
// the proxy setting); called from Config.Validate.
func (c Config) validateWebListener() error {
	bad := func(key, msg string) error { return &ConfigError{Key: key, Msg: msg} }
	w := c.Web
	if w.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(w.Listen); err != nil {
		return bad("web.listen", fmt.Sprintf("%q: use host:port, e.g. \"127.0.0.1:8090\"", w.Listen))
	}
	if w.Listen == c.HTTP.Listen && !strings.HasSuffix(w.Listen, ":0") {
		return bad("web.listen", "must differ from http.listen: the desk has its own listener")
	}
	if (w.TLSCert == "") != (w.TLSKey == "") {
		return bad("web.tls_cert", "set both web.tls_cert and web.tls_key, or neither")
	}
	if !c.multiClinic() {
		if w.BaseURL != "" && !strings.HasPrefix(w.BaseURL, "https://") && !strings.HasPrefix(w.BaseURL, "http://") {
			return bad("web.base_url", fmt.Sprintf("%q: use the address staff open, e.g. \"https://desk.clinic.example\"", w.BaseURL))
		}
		if w.BehindTLSProxy && !strings.HasPrefix(w.BaseURL, "https://") {
			return bad("web.base_url", "behind_tls_proxy needs the proxy's https:// address in web.base_url")
		}
	}
	return nil
}

// validateWebStaff checks one clinic's desk staff and, with several
// clinics, its own base_url (validateClinicList checks the hosts differ).
func (c Config) validateWebStaff() error {
	bad := func(key, msg string) error { return &ConfigError{Key: key, Msg: msg} }
	w := c.Web
	if w.Listen == "" {
		return nil
	}
	if c.listed && w.BehindTLSProxy && !strings.HasPrefix(w.BaseURL, "https://") {
		return bad("web.base_url", "web.behind_tls_proxy needs this clinic's https:// address in web.base_url")
	}
	staff := deskStaff(c)
	if len(staff) == 0 {
		key := "web.listen"
		if c.listed {
			key = "telegram.staff_user_ids"
		}
		return bad(key, "the desk needs staff to sign in: list them in telegram.staff_user_ids or discord.staff_user_ids")
	}
	for id := range w.StaffNames {
		if _, ok := staff[id]; !ok {
			return bad("web.staff_names", fmt.Sprintf("%q is not in telegram.staff_user_ids or discord.staff_user_ids", id))
		}
	}
	return nil
}

// deskStaff is who may sign in to the desk: the staff user IDs of the
// platform sections, with their names from web.staff_names.
func deskStaff(c Config) map[string]string {
	out := map[string]string{}
	if c.Telegram != nil {
		for _, id := range c.Telegram.StaffUserIDs {
			out["telegram:"+strconv.FormatInt(id, 10)] = ""
		}
	}
	if c.Discord != nil {
		for _, id := range c.Discord.StaffUserIDs {
			out["discord:"+id] = ""
		}
	}
	for id, n := range c.Web.StaffNames {
		if _, ok := out[id]; ok {
			out[id] = n
		}
	}
	return out
}

func deskBaseURL(w WebConfig, addr string) string {
	if w.BaseURL != "" {
		return w.BaseURL
	}
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	scheme := "http://"
	if w.TLSCert != "" {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port)
}

// The desk runs on either store.
var (
	_ desk.Store = (*store.Store)(nil)
	_ desk.Store = (*postgres.Store)(nil)
)

func newDesk(cfg Config, st desk.Store, svc *service.Service, clk clock.Clock, log *slog.Logger, links func(string) []string, addr string, p *engine.Protocol) (*desk.Desk, error) {
	loc, err := time.LoadLocation(cfg.Clinic.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("clinic.time_zone: %w", err)
	}
	return desk.New(desk.Config{Store: st, Service: svc, Clock: clk, Logger: log, Staff: deskStaff(cfg),
		BaseURL: deskBaseURL(cfg.Web, addr), Secure: cfg.Web.TLSCert != "" || cfg.Web.BehindTLSProxy,
		ClinicName: cfg.Clinic.Name, InviteLinks: links, InviteTTL: time.Duration(cfg.Invites.TTLDays) * 24 * time.Hour,
		Location: loc, Protocol: p})
}

// staffLoginFunc answers /login in the staff chat once the clinic's desk
// runs; nil (the desk is off) makes /login say so.
func (r *ClinicRun) staffLoginFunc() func(context.Context, string) (string, error) {
	if r.Config.Web.Listen == "" {
		return nil
	}
	return func(ctx context.Context, who string) (string, error) {
		if r.Desk == nil {
			return "", errors.New("desk not started")
		}
		return r.Desk.IssueLink(ctx, who)
	}
}

// startDesk opens the desk's listener and serves every clinic's desk on
// it until ctx ends. One clinic's desk is served on every host, as it
// always was; with several, the request's host picks the clinic (its
// web.base_url), and a host that is no clinic's gets 404. Each desk has
// its own sessions in its own clinic's store, and its cookies are
// host-only, so a session signed in at one clinic is nothing at another.
func startDesk(ctx context.Context, run *Running, cfgPath string, log *slog.Logger, wg *sync.WaitGroup) error {
	cfg := run.Config
	ln, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		return &ConfigError{File: cfgPath, Key: "web.listen", Msg: err.Error()}
	}
	run.WebAddr = ln.Addr().String()
	hosts := map[string]http.Handler{}
	for i, c := range run.Clinics {
		st, ok := c.DB.(desk.Store)
		if !ok {
			ln.Close()
			return &ConfigError{File: cfgPath, Key: "web.listen", Msg: fmt.Sprintf("the staff desk does not run on this store (%T)", c.DB)}
		}
		d, err := newDesk(c.Config, st, c.Service, run.Clock, c.log, c.links, run.WebAddr, c.Engine.Protocol())
		if err != nil {
			ln.Close()
			return &ConfigError{File: cfgPath, Key: cfg.clinicKeyPrefix(i) + "web", Msg: err.Error()}
		}
		c.Desk = d
		if u, err := url.Parse(c.Config.Web.BaseURL); err == nil && u.Host != "" {
			hosts[strings.ToLower(u.Hostname())] = d.Handler()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Run(ctx)
		}()
	}
	var h http.Handler
	if len(run.Clinics) == 1 {
		h = run.Clinics[0].Desk.Handler()
	} else {
		h = byHost(hosts)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	wg.Add(2)
	go func() {
		defer wg.Done()
		var err error
		if cfg.Web.TLSCert != "" {
			err = srv.ServeTLS(ln, cfg.Web.TLSCert, cfg.Web.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("desk listener stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		srv.Shutdown(sctx) // open alert streams end with their request contexts
		srv.Close()
	}()
	log.Info("staff desk listening", "addr", run.WebAddr, "tls", cfg.Web.TLSCert != "", "clinics", len(run.Clinics))
	return nil
}

// byHost routes each request to the desk of the clinic whose host it
// names (the port is ignored); any other host gets 404, never a default
// clinic's pages.
func byHost(hosts map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if h, ok := hosts[strings.ToLower(host)]; ok {
			h.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
}

// staffLink prints a one-time sign-in link to the desk for a staff member:
//
//	aftercare staff-link [--config FILE] NAME|ID
func (m *Main) staffLink(ctx context.Context, args []string) error {
	fs, cfgPath, err := m.flags("staff-link", args, 1)
	if err != nil {
		return err
	}
	cfg, err := m.loadClinic(fs, *cfgPath)
	if err != nil {
		return err
	}
	if cfg.Web.Listen == "" {
		return &ConfigError{File: *cfgPath, Key: "web.listen", Msg: "the staff desk is off; set web.listen"}
	}
	who := fs.Arg(0)
	var link string
	issue := func(st appStore) error {
		ds, ok := st.(desk.Store)
		if !ok {
			return fmt.Errorf("the staff desk does not run on this store (%T)", st)
		}
		eng, err := buildEngine(cfg)
		if err != nil {
			return err
		}
		clk := m.clock()
		svc, err := service.New(service.Config{Engine: eng, Store: st, Clock: clk, StaffChannels: []engine.PatientID{engine.StaffAddress}})
		if err != nil {
			return err
		}
		d, err := newDesk(cfg, ds, svc, clk, slog.New(slog.DiscardHandler), nil, cfg.Web.Listen, eng.Protocol())
		if err != nil {
			return err
		}
		link, err = d.IssueLink(ctx, who)
		return err
	}
	if cfg.Store.Backend == "postgres" {
		// Every instance shares the database: the link works on any of
		// them, running or not.
		st, _, oerr := m.openStore(ctx, cfg, *cfgPath)
		if oerr != nil {
			return oerr
		}
		defer st.Close()
		err = issue(st)
	} else {
		err = m.withStore(cfg, func(st *store.Store) error { return issue(st) })
	}
	if errors.Is(err, errRunning) {
		var b []byte
		b, err = adminCall(ctx, cfg, "POST", "/admin/staff-link", map[string]string{"staff": who})
		if err == nil {
			var resp struct{ Link string }
			if err = json.Unmarshal(b, &resp); err == nil {
				link = resp.Link
			}
		}
	}
	if errors.Is(err, desk.ErrNotStaff) {
		return &usageError{fmt.Sprintf("%q is not configured staff: use a name from web.staff_names or an ID from staff_user_ids", who)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s\n(one use, valid 10 minutes)\n", link)
	return nil
}

// staffLinkHandler is /admin/staff-link, behind the admin guard: a link
// to clinic c's desk, for c's staff only.
func staffLinkHandler(w http.ResponseWriter, r *http.Request, c *ClinicRun) {
	var req struct{ Staff string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, `body must be {"staff": NAME}`, http.StatusBadRequest)
		return
	}
	if c.Desk == nil {
		http.Error(w, "the staff desk is off", http.StatusNotFound)
		return
	}
	link, err := c.Desk.IssueLink(r.Context(), req.Staff)
	if errors.Is(err, desk.ErrNotStaff) {
		http.Error(w, "not configured staff", http.StatusForbidden)
		return
	}
	if err != nil {
		slog.Error("staff link over http failed", "err", err)
		http.Error(w, "could not make the link", http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]string{"link": link})
}
