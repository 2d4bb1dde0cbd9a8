package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/backoff"
	"github.com/aftercare-clinic/aftercare/bot/console"
	"github.com/aftercare-clinic/aftercare/bot/discord"
	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/bot/webhook"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/desk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/lease"
	"github.com/aftercare-clinic/aftercare/metrics"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/triage"
)

// Running is the assembled bot, handed to Main.Started (tests). Its
// embedded ClinicRun is the first clinic (the only one of a one-clinic
// deployment), so run.Service is that clinic's service.
type Running struct {
	// Config is the configuration as loaded, every clinic in it.
	Config Config
	// ClinicRun is the first clinic's runtime.
	*ClinicRun
	// Clinics are every clinic's runtimes, in the order of the list.
	Clinics []*ClinicRun
	// Clock is the clock every clinic's service runs on (a fake one in
	// tests, so they move time instead of waiting).
	Clock clock.Clock
	// HTTPAddr is the operations listener's address, when on.
	HTTPAddr string
	// WebAddr is the staff desk's address, when web.listen is set.
	WebAddr string
	// Instance names this process in the lease table (PostgreSQL only).
	Instance string
}

// ClinicRun is one clinic's runtime: its own engine, service, store, bots
// and desk. Nothing in it holds a reference to another clinic's parts,
// which is what keeps alerts, staff commands, exports and desk sessions
// inside their clinic.
type ClinicRun struct {
	// ID is the clinic's id ("default" for a one-clinic deployment).
	ID string
	// Config is the clinic's configuration: the deployment's settings with
	// the clinic's own over them (see Config.clinicConfigs).
	Config  Config
	Service *service.Service
	// Store is the bbolt store; nil when the store is PostgreSQL.
	Store *store.Store
	// DB is the store in use, whichever the backend.
	DB       appStore
	Engine   *engine.Engine
	Telegram *telegram.Bot
	Discord  *discord.Bot
	Metrics  *metrics.Metrics
	// Desk is the clinic's staff desk, when web.listen is set.
	Desk *desk.Desk

	index       int
	log         *slog.Logger
	links       func(string) []string
	plats       *parts
	checkers    map[string]service.StaffChecker
	dispatchers []*service.Dispatcher
}

// defaultPace is each platform's send rate unless the config overrides it.
var defaultPace = map[string]service.Pace{
	telegram.PlatformName: {PerSecond: 25, PerChatPerSecond: 1, PerChatBurst: 3},
	discord.Platform:      {PerSecond: 40, PerChatPerSecond: 5, PerChatBurst: 5},
	console.Platform:      {PerSecond: 1000},
	webhook.Platform:      {PerSecond: 10},
}

func (m *Main) flags(name string, args []string, positional int) (*flag.FlagSet, *string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cfg := fs.String("config", m.Getenv(EnvConfig), "configuration file (JSON); default: built-in sample clinic")
	if name != "aftercare" {
		fs.String("clinic", "", "the clinic's id (required when the config lists several clinics)")
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	if positional >= 0 && fs.NArg() != positional {
		return nil, nil, &usageError{fmt.Sprintf("%s: expected %d argument(s), got %d\n%s", name, positional, fs.NArg(), usage)}
	}
	return fs, cfg, nil
}

func (m *Main) loadConfig(path string) (Config, error) {
	if m.Config != nil {
		c := *m.Config
		return c, c.Validate()
	}
	return LoadConfig(path, m.Getenv)
}

// loadClinic loads the configuration and returns the configuration of the
// clinic the command's -clinic flag names: the only clinic when it names
// none, an error listing the ids when there are several and it names none
// or one that is not configured.
func (m *Main) loadClinic(fs *flag.FlagSet, path string) (Config, error) {
	cfg, err := m.loadConfig(path)
	if err != nil {
		return cfg, err
	}
	return pickClinic(cfg, clinicFlag(fs))
}

// clinicFlag is the -clinic flag's value, "" when unset or not defined.
func clinicFlag(fs *flag.FlagSet) string {
	if f := fs.Lookup("clinic"); f != nil {
		return f.Value.String()
	}
	return ""
}

// pickClinic returns the configuration of clinic id ("" for the only one).
func pickClinic(cfg Config, id string) (Config, error) {
	cs := cfg.clinicConfigs()
	var ids []string
	for _, c := range cs {
		if c.ClinicID == id || (id == "" && len(cs) == 1) {
			return c, nil
		}
		ids = append(ids, c.ClinicID)
	}
	if id == "" {
		return cfg, &usageError{"the config lists several clinics: name one with -clinic (" + strings.Join(ids, ", ") + ")"}
	}
	return cfg, &usageError{fmt.Sprintf("-clinic %q: no such clinic in the config; its clinics are %s", id, strings.Join(ids, ", "))}
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	lvl := slog.LevelInfo
	switch c.Level {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// buildEngine loads the protocol and triage rules named by the config.
func buildEngine(c Config) (*engine.Engine, error) {
	p := engine.DefaultProtocol()
	if c.ProtocolFile != "" {
		var err error
		if p, err = engine.LoadProtocolFile(c.ProtocolFile); err != nil {
			return nil, &ConfigError{Key: "protocol_file", Msg: err.Error()}
		}
	}
	var tr engine.Triager = triage.Default()
	if len(c.TriageRules) > 0 {
		cl, err := triage.LoadFiles(c.TriageRules...)
		if err != nil {
			return nil, &ConfigError{Key: "triage_rules", Msg: err.Error()}
		}
		tr = cl
	}
	// Every embedded language the clinic's protocol is not in comes along,
	// so a patient can be answered in Spanish by an English-speaking clinic.
	var more []*engine.Protocol
	for _, q := range engine.DefaultProtocols() {
		if q.Language != p.Language {
			more = append(more, q)
		}
	}
	return engine.New(p, tr, c.clinic(), more...)
}

// clinicPlan is what run checks of a clinic before anything starts: its
// configuration, engine and platform tokens.
type clinicPlan struct {
	cfg              Config
	eng              *engine.Engine
	tgToken, dcToken string
	console          bool
}

// oneBotPerClinic refuses two clinics on one bot: two variables holding
// the same token (a default name and a named one, or one token pasted
// twice) would have both clinics poll one bot, so a patient's messages,
// and the alerts they raise, could land in the other clinic's store and
// staff chat. The error names both clinics' keys and variables, never the
// token.
func oneBotPerClinic(cfg Config, plans []clinicPlan, cfgPath string) error {
	type first struct {
		clinic int
		env    string
	}
	seen := map[string]map[string]first{"telegram": {}, "discord": {}}
	for i, p := range plans {
		for _, t := range []struct{ platform, token, env string }{
			{"telegram", p.tgToken, p.cfg.TelegramTokenEnv},
			{"discord", p.dcToken, p.cfg.DiscordTokenEnv},
		} {
			if t.token == "" {
				continue
			}
			if o, dup := seen[t.platform][t.token]; dup {
				return &ConfigError{File: cfgPath, Key: cfg.clinicKeyPrefix(i) + t.platform + "_token_env",
					Msg: fmt.Sprintf("%s holds the same %s bot token as %s, the token of %s: each clinic needs a bot of its own, or one clinic's patients and alerts would reach the other; set a different token",
						t.env, t.platform, o.env, strings.TrimSuffix(cfg.clinicKeyPrefix(o.clinic), "."))}
			}
			seen[t.platform][t.token] = first{i, t.env}
		}
	}
	return nil
}

// clinicTokens reads a clinic's platform tokens from the variables its
// configuration names. A one-clinic deployment keeps today's behaviour (a
// section without its token stays off, with a warning); in a list, a
// section without its token is an error naming the variable, since a
// clinic whose bot stays silent would not be noticed among many.
func (m *Main) clinicTokens(cc Config, prefix, cfgPath string, log *slog.Logger) (tg, dc string, err error) {
	tg, dc = m.Getenv(cc.TelegramTokenEnv), m.Getenv(cc.DiscordTokenEnv)
	if tg != "" && cc.Telegram == nil {
		return "", "", &ConfigError{File: cfgPath, Key: prefix + "telegram", Msg: cc.TelegramTokenEnv + " is set but the config has no telegram section; add one with telegram.staff_chat_id"}
	}
	if dc != "" && cc.Discord == nil {
		return "", "", &ConfigError{File: cfgPath, Key: prefix + "discord", Msg: cc.DiscordTokenEnv + " is set but the config has no discord section; add one with discord.staff_channel_id"}
	}
	if cc.listed {
		if tg == "" && cc.Telegram != nil {
			return "", "", &ConfigError{File: cfgPath, Key: prefix + "telegram", Msg: "the clinic's Telegram token is missing: set " + cc.TelegramTokenEnv + " (or name another variable in " + prefix + "telegram_token_env)"}
		}
		if dc == "" && cc.Discord != nil {
			return "", "", &ConfigError{File: cfgPath, Key: prefix + "discord", Msg: "the clinic's Discord token is missing: set " + cc.DiscordTokenEnv + " (or name another variable in " + prefix + "discord_token_env)"}
		}
		return tg, dc, nil
	}
	if tg == "" && cc.Telegram != nil {
		log.Warn("telegram section present but " + cc.TelegramTokenEnv + " is not set; Telegram stays off")
	}
	if dc == "" && cc.Discord != nil {
		log.Warn("discord section present but " + cc.DiscordTokenEnv + " is not set; Discord stays off")
	}
	return tg, dc, nil
}

// prefixed puts a clinic's ConfigErrors under its entry's key path and
// names the file in each.
func prefixed(err error, prefix, cfgPath string) error {
	var ces ConfigErrors
	var ce *ConfigError
	switch {
	case errors.As(err, &ces):
	case errors.As(err, &ce):
		ces = ConfigErrors{ce}
	default:
		return err
	}
	for _, ce := range ces {
		if prefix != "" && ce.Key != "" && !strings.HasPrefix(ce.Key, prefix) {
			ce.Key = prefix + ce.Key
		}
		if ce.File == "" {
			ce.File = cfgPath
		}
	}
	return err
}

// deployment is what every clinic of a running process shares: the
// logger, clock, leases, metrics and the goroutines' error channel.
type deployment struct {
	m            *Main
	cfgPath      string
	log          *slog.Logger
	clk          clock.Clock
	skip         console.Skipper
	leases       *lease.Keeper
	housekeeping *lease.Flag
	mets         *metrics.Registry
	goRun        func(name string, f func(context.Context) error)
	retry        backoff.Policy
	tgOpts       []telegram.Option
	dcOpts       []discord.Option
}

func (m *Main) run(ctx context.Context, args []string) error {
	_, cfgPath, err := m.flags("aftercare", args, 0)
	if err != nil {
		return err
	}
	cfg, err := m.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, m.Stderr)
	var plans []clinicPlan
	consoleOn := false
	for i, cc := range cfg.clinicConfigs() {
		prefix := cfg.clinicKeyPrefix(i)
		eng, err := buildEngine(cc)
		if err != nil {
			return prefixed(err, prefix, *cfgPath)
		}
		tg, dc, err := m.clinicTokens(cc, prefix, *cfgPath, log)
		if err != nil {
			return err
		}
		on := tg == "" && dc == ""
		if cc.Console != nil {
			on = *cc.Console
		}
		consoleOn = consoleOn || on
		plans = append(plans, clinicPlan{cfg: cc, eng: eng, tgToken: tg, dcToken: dc, console: on})
	}
	if err := oneBotPerClinic(cfg, plans, *cfgPath); err != nil {
		return err
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return &ConfigError{File: *cfgPath, Key: "data_dir", Msg: err.Error()}
	}
	log, closeLog, err := m.openLog(cfg, consoleOn, log)
	if err != nil {
		return &ConfigError{File: *cfgPath, Key: "log.file", Msg: err.Error()}
	}
	defer closeLog()

	d := &deployment{m: m, cfgPath: *cfgPath, log: log, housekeeping: &lease.Flag{}, mets: metrics.NewRegistry(),
		retry: backoff.Policy{Min: time.Second, Max: time.Minute}}
	d.clk = m.Clock
	if p := m.Getenv(EnvTestClockFile); p != "" && d.clk == nil {
		d.clk = clock.File{Path: p} // test harnesses only: time read from a file
		log.Warn("test clock in use: time is read from " + EnvTestClockFile)
	}
	if d.clk == nil {
		off := clock.NewOffset(clock.Real{})
		d.clk = off
		d.skip = off.Skip
	} else if f, ok := d.clk.(*clock.Fake); ok {
		d.skip = f.Add
	}
	if m.Backoff != (backoff.Policy{}) {
		d.retry = m.Backoff
		d.tgOpts = append(d.tgOpts, telegram.WithBackoff(m.Backoff))
		d.dcOpts = append(d.dcOpts, discord.WithMinReconnectDelay(m.Backoff.Min))
	}
	if s := m.Getenv(telegram.WebhookSecretEnv); s != "" {
		d.tgOpts = append(d.tgOpts, telegram.WithWebhookSecret(s))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4*len(plans)+4)
	d.goRun = func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				log.Error("component stopped", "component", name, "err", err)
				select {
				case errc <- fmt.Errorf("%s: %w", name, err):
				default: // the first errors stop the process; the rest are logged
				}
			}
		}()
	}

	run := &Running{Config: cfg, Clock: d.clk}
	var leaseTable interface {
		lease.Table
		Instance() string
	}
	if cfg.multiClinic() && cfg.Store.Backend == "postgres" {
		// The clinics' schemas are their own; the leases are the
		// deployment's, in the default schema every instance shares.
		lt, err := m.openLeaseTable(ctx)
		if err != nil {
			return err
		}
		defer lt.Close()
		leaseTable = lt
	}
	// Each clinic's store is opened before any clinic starts, so a store
	// that does not open stops the process before a bot connects.
	for i, p := range plans {
		st, bolt, err := m.openStore(ctx, p.cfg, *cfgPath)
		if err != nil {
			return prefixed(err, cfg.clinicKeyPrefix(i), *cfgPath)
		}
		defer st.Close()
		c := &ClinicRun{ID: p.cfg.ClinicID, Config: p.cfg, Engine: p.eng, Store: bolt, DB: st, index: i}
		run.Clinics = append(run.Clinics, c)
		// With PostgreSQL, several instances may share the database: what
		// only one may do at a time runs under a lease. bbolt's file lock
		// already makes its process the only one.
		if tb, ok := st.(interface {
			lease.Table
			Instance() string
		}); ok && leaseTable == nil {
			leaseTable = tb
		}
	}
	// On every return from here, an error at start-up included, what has
	// started stops and is waited for before the stores and the lease
	// table close (their deferred Close runs after this one).
	defer func() { cancel(); wg.Wait() }()
	if leaseTable != nil {
		// The clinics' platform leases are spread by count over the live
		// instances (see package lease, Spreading).
		total := 0
		for _, p := range plans {
			if p.tgToken != "" && p.cfg.Telegram.Mode != telegram.ModeWebhook {
				total++
			}
			if p.dcToken != "" {
				total++
			}
		}
		d.leases, err = lease.New(leaseTable, lease.Options{TTL: time.Duration(cfg.Store.Leases.TTL), Renew: time.Duration(cfg.Store.Leases.Renew),
			Logger: log.With("instance", leaseTable.Instance()),
			Spread: &lease.Spread{Prefix: "clinic/", Total: total, Instance: leaseTable.Instance()}})
		if err != nil {
			return &ConfigError{File: *cfgPath, Key: "store.leases", Msg: err.Error()}
		}
		d.goRun("lease heartbeat", d.leases.Run)
		run.Instance = leaseTable.Instance()
	}
	run.ClinicRun = run.Clinics[0]
	var con *console.Console
	for i, c := range run.Clinics {
		cc, err := d.startClinic(ctx, c, plans[i])
		if err != nil {
			return prefixed(err, cfg.clinicKeyPrefix(i), *cfgPath)
		}
		if cc != nil {
			con = cc
		}
	}
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return &ConfigError{File: *cfgPath, Key: "http.listen", Msg: err.Error()}
		}
		run.HTTPAddr = ln.Addr().String()
		var guard *adminGuard
		if isLoopback(cfg.HTTP.Listen) {
			tok, err := ensureAdminToken(adminTokenPath(cfg))
			if err != nil {
				ln.Close()
				return err
			}
			g := newAdminGuard(tok, cfg.HTTP.Listen, run.HTTPAddr, log)
			guard = &g
		}
		srv := newOpsServer(opsHandler(run, d.mets, guard))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http listener stopped", "err", err)
			}
		}()
		go func() {
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			defer c()
			srv.Shutdown(sctx)
		}()
	}
	if cfg.Web.Listen != "" {
		if err := startDesk(ctx, run, *cfgPath, log, &wg); err != nil {
			return err
		}
	}
	if d.leases != nil {
		d.goRun("housekeeping lease", func(ctx context.Context) error {
			return d.leases.Hold(ctx, housekeepingLease, d.housekeeping.Run)
		})
	}
	// Check every staff destination now, not when the first red flag needs
	// it. A refusal is logged with its config key and fails /readyz; the
	// bot keeps running so patients are still answered.
	for _, c := range run.Clinics {
		if len(c.checkers) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, done := context.WithTimeout(ctx, 30*time.Second)
			defer done()
			if err := c.Service.CheckStaff(cctx, c.checkers); err != nil {
				c.log.Error("start-up check: alerts cannot reach a staff destination; fix the config key named", "err", err)
			}
		}()
	}
	log.Info("aftercare running", "clinics", len(run.Clinics), "console", consoleOn, "data_dir", cfg.DataDir)
	if m.Started != nil {
		m.Started(run)
	}

	var runErr error
	if con != nil {
		runErr = con.Run(ctx)
		// Input ended: let the last replies out before leaving.
		m.drain(run.DB, console.Platform, 3*time.Second)
	} else {
		select {
		case <-ctx.Done():
		case runErr = <-errc:
		}
	}
	cancel()
	wg.Wait()
	// Flush what the platforms will still take, within a bound shared by
	// every clinic.
	flushCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	for _, c := range run.Clinics {
		for _, dp := range c.dispatchers {
			for flushCtx.Err() == nil {
				wait, err := dp.Pass(flushCtx)
				if err != nil || wait > time.Second/2 {
					break
				}
				if n, _ := c.DB.Outbox("", 1); len(n) == 0 {
					break
				}
			}
		}
		if depth, err := c.DB.OutboxDepth(); err == nil && depth > 0 {
			c.log.Info("messages left in the outbox are sent on the next start", "count", depth)
		}
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// startClinic builds one clinic's runtime on its own store: engine,
// service, bots, webhooks, dispatchers and scheduler, none of which any
// other clinic's parts can reach. It returns the console when this clinic
// has it (a one-clinic deployment only).
func (d *deployment) startClinic(ctx context.Context, c *ClinicRun, p clinicPlan) (*console.Console, error) {
	cfg, st, log := c.Config, c.DB, d.log
	prefix := ""
	if cfg.listed {
		log = log.With("clinic", c.ID)
		prefix = "clinics[" + strconv.Itoa(c.index) + "]."
	}
	c.log = log
	tgToken, dcToken := p.tgToken, p.dcToken
	var staff []engine.PatientID
	staffKeys := map[engine.PatientID]string{}
	if p.console {
		staff = append(staff, console.Staff)
	}
	if tgToken != "" {
		id := engine.NewPatientID(telegram.PlatformName, strconv.FormatInt(cfg.Telegram.StaffChatID, 10))
		staff = append(staff, id)
		staffKeys[id] = "telegram.staff_chat_id"
	}
	if dcToken != "" {
		id := engine.NewPatientID(discord.Platform, cfg.Discord.StaffChannelID)
		staff = append(staff, id)
		staffKeys[id] = "discord.staff_channel_id"
	}
	var hook *webhook.Sender
	var err error
	if len(cfg.Webhooks) > 0 {
		if hook, err = webhook.New(cfg.Webhooks, d.m.Getenv, nil); err != nil {
			return nil, configErrorsOf(err)
		}
		staff = append(staff, hook.Channels()...)
		for i, w := range cfg.Webhooks {
			staffKeys[engine.NewPatientID(webhook.Platform, w.Name)] = fmt.Sprintf("webhooks[%d]", i)
		}
	}
	if len(staff) == 0 {
		if cfg.listed {
			return nil, &ConfigError{Key: "telegram", Msg: "the clinic has no platform and no webhook: its alerts would reach nobody; add a telegram or discord section (with its token) or a webhook"}
		}
		return nil, &ConfigError{Key: "console", Msg: "no platform is on and the console is off: alerts would reach nobody; set a platform token or remove \"console\": false"}
	}
	// Keys in logs and on /readyz name the clinic's entry.
	for id, k := range staffKeys {
		staffKeys[id] = prefix + k
	}
	var contacts []engine.PatientID
	for i, ct := range cfg.Escalation.Contacts {
		contacts = append(contacts, engine.PatientID(ct))
		if _, ok := staffKeys[engine.PatientID(ct)]; !ok {
			staffKeys[engine.PatientID(ct)] = fmt.Sprintf("%sescalation.contacts[%d]", prefix, i)
		}
	}
	ackTimeout, _ := time.ParseDuration(cfg.Escalation.AckTimeout)
	urgentRetry, _ := time.ParseDuration(cfg.Escalation.RetryInterval)
	c.Metrics = d.mets.Clinic(c.ID, st)
	c.links = inviteLinks(func() string {
		if c.Telegram != nil {
			return c.Telegram.Username()
		}
		return cfg.Invites.TelegramBotUsername
	}, dcToken != "")
	svc, err := service.New(service.Config{Engine: c.Engine, Store: st, Clock: d.clk, Logger: log, StaffChannels: staff,
		AckTimeout: ackTimeout, EscalationContacts: contacts, Retention: time.Duration(cfg.RetentionDays) * 24 * time.Hour,
		InviteTTL: time.Duration(cfg.Invites.TTLDays) * 24 * time.Hour, InviteLinks: c.links, Observer: c.Metrics,
		StaffKeys: staffKeys, UrgentRetry: urgentRetry, StaffLogin: c.staffLoginFunc(), Housekeeping: housekeepingGate(d.leases, d.housekeeping)})
	if err != nil {
		return nil, err
	}
	c.Service = svc
	name := func(part string) string {
		if c.ID == DefaultClinicID {
			return part
		}
		return c.ID + " " + part
	}
	addSender := func(s service.Sender) {
		pace := defaultPace[s.Platform()]
		if pc, ok := cfg.Pacing[s.Platform()]; ok {
			if pc.PerSecond > 0 {
				pace.PerSecond = pc.PerSecond
			}
			if pc.PerChatPerSecond > 0 {
				pace.PerChatPerSecond = pc.PerChatPerSecond
			}
		}
		dp := svc.NewDispatcher(s, pace)
		c.dispatchers = append(c.dispatchers, dp)
		d.goRun(name(s.Platform()+" outbox"), dp.Run)
	}

	// Each platform starts, fails and recovers on its own: Telegram or
	// Discord down at start-up (or later) keeps only that platform down,
	// with backoff, and /readyz names it; the console, webhooks, the
	// scheduler and the other platform run on. Only configuration errors
	// (a malformed or rejected token at start) stop the process.
	c.plats = newParts()
	plats, retry, leases := c.plats, d.retry, d.leases
	if tgToken != "" {
		tg, err := telegram.New(*cfg.Telegram, tgToken, svc, log, d.tgOpts...)
		if err != nil {
			return nil, err
		}
		c.Telegram = tg
		addSender(tg)
		if leases == nil || cfg.Telegram.Mode == telegram.ModeWebhook {
			// One process, or webhook mode: every instance takes updates.
			plats.add(telegram.PlatformName, tg)
			d.goRun(name("telegram"), supervise(telegram.PlatformName, plats, log, retry, true, tg.Run))
		} else {
			// Long polling allows one consumer per bot: the holder of the
			// lease polls; the others check the token and send.
			var held lease.Flag
			plats.add(telegram.PlatformName, standby{tg, &held})
			ln := platformLease(c.ID, telegram.PlatformName)
			d.goRun(name("telegram"), supervise(telegram.PlatformName, plats, log, retry, true, func(ctx context.Context) error {
				if !tg.Connect(ctx) {
					return nil
				}
				return leases.Hold(ctx, ln, held.While(tg.Run))
			}))
		}
	}
	if dcToken != "" {
		dc, err := discord.New(*cfg.Discord, dcToken, svc, log, append(d.dcOpts, discord.WithReadMarks(st))...)
		if err != nil {
			return nil, err
		}
		c.Discord = dc
		addSender(dc)
		// discord.Bot.Run reconnects by itself and returns early only
		// for a rejected token; it may not be called twice.
		if leases == nil {
			plats.add(discord.Platform, dc)
			d.goRun(name("discord"), supervise(discord.Platform, plats, log, retry, false, dc.Run))
		} else {
			// The gateway allows one session per bot: the holder of the
			// lease opens it; the others send over REST. Since Run cannot
			// start again in this process, losing the lease stops the
			// process (its service manager starts it again, and it joins
			// the race afresh) rather than leaving it without Discord.
			var held lease.Flag
			plats.add(discord.Platform, standby{dc, &held})
			ln := platformLease(c.ID, discord.Platform)
			d.goRun(name("discord"), func(ctx context.Context) error {
				err := leases.HoldOnce(ctx, ln, held.While(supervise(discord.Platform, plats, log, retry, false, dc.Run)))
				if errors.Is(err, lease.ErrLost) {
					return fmt.Errorf("the Discord gateway lease was lost and the gateway cannot reopen in this process; stopping so the service manager restarts it: %w", err)
				}
				return err
			})
		}
	}
	var con *console.Console
	if p.console {
		con = console.New(d.m.Stdin, d.m.Stdout, svc, func(dur time.Duration) {
			if d.skip != nil {
				d.skip(dur)
			}
			svc.Wake()
		})
		addSender(con)
	}
	if hook != nil {
		addSender(hook)
	}
	c.checkers = map[string]service.StaffChecker{}
	if c.Telegram != nil {
		c.checkers[telegram.PlatformName] = c.Telegram
	}
	if c.Discord != nil {
		c.checkers[discord.Platform] = c.Discord
	}
	d.goRun(name("scheduler"), svc.RunScheduler)
	log.Info("clinic running", "clinic", c.ID, "telegram", tgToken != "", "discord", dcToken != "")
	return con, nil
}

// platformLease names the lease of a clinic's connection to a platform
// that allows one consumer ("clinic/riverside/telegram"; a one-clinic
// deployment's is "clinic/default/telegram", as it always was).
func platformLease(clinic, platform string) string { return "clinic/" + clinic + "/" + platform }

// housekeepingLease is held by the one instance that runs the daily
// retention purge and dedupe pruning.
const housekeepingLease = "housekeeping"

// housekeepingGate is the service's Housekeeping: nil with one process
// (always), else whether this instance holds the housekeeping lease.
func housekeepingGate(k *lease.Keeper, f *lease.Flag) func() bool {
	if k == nil {
		return nil
	}
	return f.Held
}

// standby is a leased platform's readiness: the instance holding the
// lease is ready when its connection is; the others are ready as they
// are, sending through the shared outbox and waiting to take over.
type standby struct {
	r    readiness
	held *lease.Flag
}

// Ready reports whether the platform is connected, or on standby here.
func (s standby) Ready() bool { return !s.held.Held() || s.r.Ready() }

// drain waits until a platform's outbox is empty or the bound passes.
func (m *Main) drain(st appStore, platform string, bound time.Duration) {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		if q, err := st.Outbox(platform, 1); err != nil || len(q) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *Main) protocol() error {
	_, err := m.Stdout.Write(engine.DefaultProtocolJSON())
	return err
}
