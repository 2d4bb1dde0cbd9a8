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

// Running is the assembled bot, handed to Main.Started (tests).
type Running struct {
	Config  Config
	Service *service.Service
	// Store is the bbolt store; nil when the store is PostgreSQL.
	Store *store.Store
	// DB is the store in use, whichever the backend.
	DB       appStore
	Engine   *engine.Engine
	Clock    clock.Clock
	Telegram *telegram.Bot
	Discord  *discord.Bot
	Metrics  *metrics.Metrics
	// HTTPAddr is the operations listener's address, when on.
	HTTPAddr string
	// Desk is the staff desk and WebAddr its address, when web.listen is set.
	Desk    *desk.Desk
	WebAddr string
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

func (m *Main) run(ctx context.Context, args []string) error {
	_, cfgPath, err := m.flags("aftercare", args, 0)
	if err != nil {
		return err
	}
	cfg, err := m.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.multiClinic() {
		return &ConfigError{File: *cfgPath, Key: "clinics", Msg: "this build checks the clinics list but runs one clinic only; remove \"clinics\""}
	}
	log := newLogger(cfg.Log, m.Stderr)
	eng, err := buildEngine(cfg)
	if err != nil {
		return err
	}
	tgToken, dcToken := m.Getenv(EnvTelegramToken), m.Getenv(EnvDiscordToken)
	if tgToken != "" && cfg.Telegram == nil {
		return &ConfigError{File: *cfgPath, Key: "telegram", Msg: EnvTelegramToken + " is set but the config has no telegram section; add one with telegram.staff_chat_id"}
	}
	if dcToken != "" && cfg.Discord == nil {
		return &ConfigError{File: *cfgPath, Key: "discord", Msg: EnvDiscordToken + " is set but the config has no discord section; add one with discord.staff_channel_id"}
	}
	if tgToken == "" && cfg.Telegram != nil {
		log.Warn("telegram section present but " + EnvTelegramToken + " is not set; Telegram stays off")
	}
	if dcToken == "" && cfg.Discord != nil {
		log.Warn("discord section present but " + EnvDiscordToken + " is not set; Discord stays off")
	}
	consoleOn := tgToken == "" && dcToken == ""
	if cfg.Console != nil {
		consoleOn = *cfg.Console
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return &ConfigError{File: *cfgPath, Key: "data_dir", Msg: err.Error()}
	}
	log, closeLog, err := m.openLog(cfg, consoleOn, log)
	if err != nil {
		return &ConfigError{File: *cfgPath, Key: "log.file", Msg: err.Error()}
	}
	defer closeLog()
	st, bolt, err := m.openStore(ctx, cfg, *cfgPath)
	if err != nil {
		return err
	}
	defer st.Close()
	// With PostgreSQL, several instances may share the database: what only
	// one may do at a time runs under a lease. bbolt's file lock already
	// makes its process the only one.
	var leases *lease.Keeper
	if tb, ok := st.(interface {
		lease.Table
		Instance() string
	}); ok {
		leases, err = lease.New(tb, lease.Options{TTL: time.Duration(cfg.Store.Leases.TTL), Renew: time.Duration(cfg.Store.Leases.Renew),
			Logger: log.With("instance", tb.Instance())})
		if err != nil {
			return &ConfigError{File: *cfgPath, Key: "store.leases", Msg: err.Error()}
		}
	}
	var housekeeping lease.Flag

	clk := m.Clock
	if p := m.Getenv(EnvTestClockFile); p != "" && clk == nil {
		clk = clock.File{Path: p} // test harnesses only: time read from a file
		log.Warn("test clock in use: time is read from " + EnvTestClockFile)
	}
	var skip console.Skipper
	if clk == nil {
		off := clock.NewOffset(clock.Real{})
		clk = off
		skip = off.Skip
	} else if f, ok := clk.(*clock.Fake); ok {
		skip = f.Add
	}

	var staff []engine.PatientID
	staffKeys := map[engine.PatientID]string{}
	if consoleOn {
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
	if len(staff) == 0 {
		return &ConfigError{File: *cfgPath, Key: "console", Msg: "no platform is on and the console is off: alerts would reach nobody; set a platform token or remove \"console\": false"}
	}
	var hook *webhook.Sender
	if len(cfg.Webhooks) > 0 {
		if hook, err = webhook.New(cfg.Webhooks, m.Getenv, nil); err != nil {
			return &ConfigError{File: *cfgPath, Msg: err.Error()}
		}
		staff = append(staff, hook.Channels()...)
		for i, w := range cfg.Webhooks {
			staffKeys[engine.NewPatientID(webhook.Platform, w.Name)] = fmt.Sprintf("webhooks[%d]", i)
		}
	}
	var contacts []engine.PatientID
	for i, c := range cfg.Escalation.Contacts {
		contacts = append(contacts, engine.PatientID(c))
		if _, ok := staffKeys[engine.PatientID(c)]; !ok {
			staffKeys[engine.PatientID(c)] = fmt.Sprintf("escalation.contacts[%d]", i)
		}
	}
	ackTimeout, _ := time.ParseDuration(cfg.Escalation.AckTimeout)
	urgentRetry, _ := time.ParseDuration(cfg.Escalation.RetryInterval)
	mets := metrics.New(st)
	run := &Running{Config: cfg, Store: bolt, DB: st, Engine: eng, Clock: clk, Metrics: mets}
	links := inviteLinks(func() string {
		if run.Telegram != nil {
			return run.Telegram.Username()
		}
		return cfg.Invites.TelegramBotUsername
	}, dcToken != "")
	svc, err := service.New(service.Config{Engine: eng, Store: st, Clock: clk, Logger: log, StaffChannels: staff,
		AckTimeout: ackTimeout, EscalationContacts: contacts, Retention: time.Duration(cfg.RetentionDays) * 24 * time.Hour,
		InviteTTL: time.Duration(cfg.Invites.TTLDays) * 24 * time.Hour, InviteLinks: links, Observer: mets,
		StaffKeys: staffKeys, UrgentRetry: urgentRetry, StaffLogin: run.staffLoginFunc(), Housekeeping: housekeepingGate(leases, &housekeeping)})
	if err != nil {
		return err
	}
	run.Service = svc

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				log.Error("component stopped", "component", name, "err", err)
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	var dispatchers []*service.Dispatcher
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
		d := svc.NewDispatcher(s, pace)
		dispatchers = append(dispatchers, d)
		goRun(s.Platform()+" outbox", d.Run)
	}

	// Each platform starts, fails and recovers on its own: Telegram or
	// Discord down at start-up (or later) keeps only that platform down,
	// with backoff, and /readyz names it; the console, webhooks, the
	// scheduler and the other platform run on. Only configuration errors
	// (a malformed or rejected token at start) stop the process.
	plats := newParts()
	retry := backoff.Policy{Min: time.Second, Max: time.Minute}
	var tgOpts []telegram.Option
	var dcOpts []discord.Option
	if m.Backoff != (backoff.Policy{}) {
		retry = m.Backoff
		tgOpts = append(tgOpts, telegram.WithBackoff(m.Backoff))
		dcOpts = append(dcOpts, discord.WithMinReconnectDelay(m.Backoff.Min))
	}
	if s := m.Getenv(telegram.WebhookSecretEnv); s != "" {
		tgOpts = append(tgOpts, telegram.WithWebhookSecret(s))
	}
	if tgToken != "" {
		tg, err := telegram.New(*cfg.Telegram, tgToken, svc, log, tgOpts...)
		if err != nil {
			return err
		}
		run.Telegram = tg
		addSender(tg)
		if leases == nil || cfg.Telegram.Mode == telegram.ModeWebhook {
			// One process, or webhook mode: every instance takes updates.
			plats.add(telegram.PlatformName, tg)
			goRun("telegram", supervise(telegram.PlatformName, plats, log, retry, true, tg.Run))
		} else {
			// Long polling allows one consumer per bot: the holder of the
			// lease polls; the others check the token and send.
			var held lease.Flag
			plats.add(telegram.PlatformName, standby{tg, &held})
			name := platformLease(telegram.PlatformName)
			goRun("telegram", supervise(telegram.PlatformName, plats, log, retry, true, func(ctx context.Context) error {
				if !tg.Connect(ctx) {
					return nil
				}
				return leases.Hold(ctx, name, held.While(tg.Run))
			}))
		}
	}
	if dcToken != "" {
		dc, err := discord.New(*cfg.Discord, dcToken, svc, log, append(dcOpts, discord.WithReadMarks(st))...)
		if err != nil {
			return err
		}
		run.Discord = dc
		addSender(dc)
		// discord.Bot.Run reconnects by itself and returns early only
		// for a rejected token; it may not be called twice.
		if leases == nil {
			plats.add(discord.Platform, dc)
			goRun("discord", supervise(discord.Platform, plats, log, retry, false, dc.Run))
		} else {
			// The gateway allows one session per bot: the holder of the
			// lease opens it; the others send over REST. Since Run cannot
			// start again in this process, losing the lease stops the
			// process (its service manager starts it again, and it joins
			// the race afresh) rather than leaving it without Discord.
			var held lease.Flag
			plats.add(discord.Platform, standby{dc, &held})
			name := platformLease(discord.Platform)
			goRun("discord", func(ctx context.Context) error {
				err := leases.HoldOnce(ctx, name, held.While(supervise(discord.Platform, plats, log, retry, false, dc.Run)))
				if errors.Is(err, lease.ErrLost) {
					return fmt.Errorf("the Discord gateway lease was lost and the gateway cannot reopen in this process; stopping so the service manager restarts it: %w", err)
				}
				return err
			})
		}
	}
	var con *console.Console
	if consoleOn {
		con = console.New(m.Stdin, m.Stdout, svc, func(d time.Duration) {
			if skip != nil {
				skip(d)
			}
			svc.Wake()
		})
		addSender(con)
	}
	if hook != nil {
		addSender(hook)
	}
	checkers := map[string]service.StaffChecker{}
	if run.Telegram != nil {
		checkers[telegram.PlatformName] = run.Telegram
	}
	if run.Discord != nil {
		checkers[discord.Platform] = run.Discord
	}
	if cfg.HTTP.Listen != "" {
		ready := func() error {
			if _, err := st.OutboxDepth(); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			if err := plats.down(); err != nil {
				return err
			}
			if p := svc.StaffProblems(); len(p) > 0 {
				return errors.New("staff destination unreachable: " + strings.Join(p, "; "))
			}
			return nil
		}
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
		srv := newOpsServer(opsHandler(run, mets, ready, guard, links))
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
		if err := startDesk(ctx, run, *cfgPath, log, links, &wg); err != nil {
			return err
		}
	}
	goRun("scheduler", svc.RunScheduler)
	if leases != nil {
		goRun("housekeeping lease", func(ctx context.Context) error {
			return leases.Hold(ctx, housekeepingLease, housekeeping.Run)
		})
	}
	// Check every staff destination now, not when the first red flag needs
	// it. A refusal is logged with its config key and fails /readyz; the
	// bot keeps running so patients are still answered.
	if len(checkers) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, done := context.WithTimeout(ctx, 30*time.Second)
			defer done()
			if err := svc.CheckStaff(cctx, checkers); err != nil {
				log.Error("start-up check: alerts cannot reach a staff destination; fix the config key named", "err", err)
			}
		}()
	}
	log.Info("aftercare running", "console", consoleOn, "telegram", tgToken != "", "discord", dcToken != "", "data_dir", cfg.DataDir)
	if m.Started != nil {
		m.Started(run)
	}

	var runErr error
	if con != nil {
		runErr = con.Run(ctx)
		// Input ended: let the last replies out before leaving.
		m.drain(st, console.Platform, 3*time.Second)
	} else {
		select {
		case <-ctx.Done():
		case runErr = <-errc:
		}
	}
	cancel()
	wg.Wait()
	// Flush what the platforms will still take, within a bound.
	flushCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	for _, d := range dispatchers {
		for flushCtx.Err() == nil {
			wait, err := d.Pass(flushCtx)
			if err != nil || wait > time.Second/2 {
				break
			}
			if n, _ := st.Outbox("", 1); len(n) == 0 {
				break
			}
		}
	}
	if depth, err := st.OutboxDepth(); err == nil && depth > 0 {
		log.Info("messages left in the outbox are sent on the next start", "count", depth)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// clinicID keys the platform leases by clinic. Today a deployment serves
// one clinic; when it serves several, each clinic's bots get leases of
// their own under its ID.
const clinicID = "default"

// housekeepingLease is held by the one instance that runs the daily
// retention purge and dedupe pruning.
const housekeepingLease = "housekeeping"

// platformLease names the lease of a clinic's connection to a platform
// that allows one consumer ("clinic/default/telegram").
func platformLease(platform string) string { return "clinic/" + clinicID + "/" + platform }

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
