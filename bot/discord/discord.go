package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/aftercare-clinic/aftercare/backoff"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/staffgate"
)

// Platform is the platform name of this adapter, the prefix of its PatientIDs.
const Platform = "discord"

// Receiver is what the adapter hands patients' and staff's updates to: the
// service. It is declared here, where it is consumed, so the adapter depends
// only on the engine's types.
//
// Receive must block until the update is committed and must return nil for
// a DedupeKey it has already committed, so that events Discord replays after
// a RESUME are harmless. Both methods may be called concurrently for
// different users, but never concurrently for the same user.
type Receiver interface {
	// Receive takes one patient message or button press.
	Receive(ctx context.Context, in service.Inbound) error
	// ReceiveStaff takes one command or button press from a configured staff member.
	ReceiveStaff(ctx context.Context, in service.StaffInbound) error
}

var _ service.Sender = (*Bot)(nil)

// Option changes how New builds the Bot; tests use options to point the
// real discordgo client at a fake server.
type Option func(*options)

type options struct {
	client         *http.Client
	minReconnect   time.Duration
	receiveRetries int
	receiveBackoff time.Duration
	drainTimeout   time.Duration
	marks          ReadMarks
}

// WithHTTPClient makes every REST call go through client instead of a
// default client with a 20 s timeout. When Config.APIBase is set, the
// client's transport is wrapped so discord.com is rewritten to APIBase.
func WithHTTPClient(client *http.Client) Option {
	return func(o *options) { o.client = client }
}

// WithMinReconnectDelay sets the first wait before reopening the gateway
// after a disconnect or a failed attempt (default 1 s); each failed attempt
// doubles it up to Config.MaxReconnectDelay, with jitter. Tests shorten it.
func WithMinReconnectDelay(d time.Duration) Option {
	return func(o *options) { o.minReconnect = d }
}

// Bot is the Discord adapter. Create it with New, start it with Run, and
// give it to the service's dispatcher as a service.Sender.
//
// Send may be called from any goroutine, also before Run (it only needs
// REST). Run may be called once.
type Bot struct {
	cfg   Config
	token string // "Bot <token>"; never logged
	recv  Receiver
	log   *slog.Logger
	opts  options
	s     *discordgo.Session
	pacer *rate.Limiter
	gate  *staffgate.Gate // who is staff: staff_user_ids, staff_role_ids

	mu       sync.Mutex
	botID    string            // our own user ID, from READY
	appID    string            // application ID, from READY
	dms      map[string]string // user ID -> DM channel ID
	progress map[uint64]int    // outbox ID -> chunks already delivered
	seen     *seenSet
	queues   map[string]*queue
	closing  bool // no reconnecting: Run is shutting down
	draining bool // no new work: the gateway is closed and queues drain
	runCtx   context.Context
	liveCtx  context.Context // Run's own: the read-back stops with it
	cu       catchUp
	marks    *readMarks // nil without WithReadMarks: nothing is read back

	wg     sync.WaitGroup // queue workers and interaction acks
	discon chan struct{}  // signalled (buffered, 1) when the gateway drops
	// connected is true between READY/RESUMED and a disconnect; Ready reads it.
	connected atomic.Bool
}

// Ready reports whether the gateway session is up (READY or RESUMED
// received, not disconnected since). The operations listener's /readyz
// uses it.
func (b *Bot) Ready() bool { return b.connected.Load() }

// New builds the adapter without connecting. token is the bot token from
// the Developer Portal (with or without the "Bot " prefix); it is never
// logged and is scrubbed from returned errors.
func New(cfg Config, token string, recv Receiver, logger *slog.Logger, opts ...Option) (*Bot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(token), "Bot "))
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return nil, errors.New("discord: the bot token is empty or malformed: set AFTERCARE_DISCORD_TOKEN to the token from the Developer Portal (Bot > Reset Token)")
	}
	if recv == nil {
		return nil, errors.New("discord: New needs a Receiver")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{minReconnect: time.Second, receiveRetries: 6, receiveBackoff: 200 * time.Millisecond, drainTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	o.receiveRetries = max(o.receiveRetries, 1)
	if o.minReconnect <= 0 || o.minReconnect > time.Duration(cfg.MaxReconnectDelay) {
		o.minReconnect = min(time.Second, time.Duration(cfg.MaxReconnectDelay))
	}
	b := &Bot{
		cfg:      cfg,
		token:    "Bot " + token,
		recv:     recv,
		log:      logger.With("platform", Platform),
		opts:     o,
		pacer:    rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), 1),
		gate:     newGate(cfg),
		dms:      make(map[string]string),
		progress: make(map[uint64]int),
		seen:     newSeenSet(8192),
		queues:   make(map[string]*queue),
		discon:   make(chan struct{}, 1),
		cu:       catchUp{pending: make(map[string]dmTarget), running: make(map[string]*chase)},
	}
	if o.marks != nil {
		b.marks = newReadMarks(o.marks)
		b.marks.log = b.log.Warn
	}
	s, err := discordgo.New(b.token)
	if err != nil {
		return nil, fmt.Errorf("discord: %s", b.scrub(err.Error()))
	}
	client := o.client
	if client == nil {
		client = &http.Client{Timeout: 20 * time.Second}
	}
	if cfg.APIBase != "" {
		base, _ := url.Parse(cfg.APIBase) // checked by Validate
		c := *client
		c.Transport = &rewriteTransport{base: base, next: client.Transport}
		client = &c
	}
	s.Client = client
	s.Dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 15 * time.Second}
	// discordgo's reconnect backs off to 600 s; ours is capped (see Run).
	s.ShouldReconnectOnError = false
	// discordgo retries 429s without bound; ours are bounded (see call).
	s.ShouldRetryOnRateLimit = false
	// Handlers run on the gateway reader in order; they only enqueue.
	s.SyncEvents = true
	// discordgo logs through the standard logger, some of it with payloads;
	// the adapter logs what matters through slog, with IDs only.
	s.LogLevel = -1
	s.StateEnabled = false
	s.Identify.Intents = cfg.intents()
	s.AddHandler(b.onReady)
	s.AddHandler(b.onResumed)
	s.AddHandler(b.onDisconnect)
	s.AddHandler(b.onMessageCreate)
	s.AddHandler(b.onInteractionCreate)
	b.s = s
	return b, nil
}

// intents is what the gateway must deliver: DMs always; guild events only
// for the slash commands and optional staff-channel messages.
func (c Config) intents() discordgo.Intent {
	in := discordgo.IntentsDirectMessages
	if c.GuildID != "" {
		in |= discordgo.IntentsGuilds
	}
	if c.StaffMessages {
		in |= discordgo.IntentsGuildMessages | discordgo.IntentsMessageContent
	}
	return in
}

// Platform returns "discord", the prefix of the PatientIDs this adapter reaches.
func (b *Bot) Platform() string { return Platform }

// Run connects to the gateway, keeps the connection up (reopening and
// resuming it after a drop, within a minute) until ctx is done, then closes
// the gateway and waits, for a bounded time, until every update already
// received has been handed to the Receiver. With WithReadMarks, every new
// session first reads back the DMs sent while there was none (see
// planCatchUp). It returns an error only if the token is rejected at start.
func (b *Bot) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.runCtx != nil {
		b.mu.Unlock()
		return errors.New("discord: Run called twice")
	}
	// Workers outlive ctx briefly so updates already taken from Discord are
	// still committed during shutdown.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	b.runCtx = workCtx
	b.liveCtx = ctx
	b.mu.Unlock()

	// Check the token over REST first: a bad token is a configuration error
	// that retrying cannot fix.
	if err := b.call(ctx, "users/@me", func(o ...discordgo.RequestOption) error {
		_, err := b.s.User("@me", o...)
		return err
	}); err != nil {
		if isHTTPStatus(err, http.StatusUnauthorized) {
			return errors.New("discord: the bot token was rejected (HTTP 401): set AFTERCARE_DISCORD_TOKEN to the current token from the Developer Portal")
		}
		b.log.Warn("discord: checking the token failed; connecting anyway", "err", b.describe(err))
	}

	if b.marks != nil {
		if n, err := b.marks.load(); err != nil {
			// Channels are still read back, from the fallback window.
			b.log.Error("discord: reading the read marks failed", "err", b.scrub(err.Error()))
		} else {
			b.log.Info("discord: read marks loaded", "channels", n)
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go b.marks.run(stop, done)
		// Runs after shutdown: the marks of the last commits are kept.
		defer func() { close(stop); <-done }()
	}
	if !b.open(ctx) {
		b.shutdown(cancelWork)
		return nil
	}
	b.registerCommands(ctx)
	for {
		select {
		case <-ctx.Done():
			b.shutdown(cancelWork)
			return nil
		case <-b.discon:
			b.log.Warn("discord: gateway disconnected; reconnecting")
			if !b.open(ctx) {
				b.shutdown(cancelWork)
				return nil
			}
		}
	}
}

// open opens (or resumes) the gateway session, retrying with a jittered
// backoff from the minimum reconnect delay up to MaxReconnectDelay (so
// Discord down at start-up only keeps Discord down: Send, and the rest of
// the process, carry on). It returns false if ctx ended first.
func (b *Bot) open(ctx context.Context) bool {
	retry := backoff.Policy{Min: b.opts.minReconnect, Max: time.Duration(b.cfg.MaxReconnectDelay)}
	for n := 1; ; n++ {
		if ctx.Err() != nil {
			return false
		}
		err := b.s.Open()
		if err == nil || errors.Is(err, discordgo.ErrWSAlreadyOpen) {
			// A drop during Open may have been signalled already; keep it.
			return true
		}
		wait := retry.Delay(n)
		b.log.Warn("discord: opening the gateway failed", "err", b.describe(err), "retry_in", wait, "failures", n)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// shutdown closes the gateway and drains the per-user queues.
func (b *Bot) shutdown(cancelWork context.CancelFunc) {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	if err := b.s.Close(); err != nil {
		b.log.Warn("discord: closing the gateway", "err", b.describe(err))
	}
	b.mu.Lock()
	b.draining = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(b.opts.drainTimeout):
		b.log.Error("discord: shutdown timed out with updates still queued; they were not committed")
		cancelWork()
		<-done
	}
	b.log.Info("discord: closed")
}

// onReady records our own IDs, so our own DM echoes are skipped.
func (b *Bot) onReady(_ *discordgo.Session, r *discordgo.Ready) {
	b.connected.Store(true)
	botID := ""
	if r.User != nil {
		botID = r.User.ID
	}
	b.mu.Lock()
	if botID != "" {
		b.botID = botID
	}
	if r.Application != nil && r.Application.ID != "" {
		b.appID = r.Application.ID
	} else if b.appID == "" && r.User != nil {
		b.appID = r.User.ID
	}
	b.mu.Unlock()
	b.log.Info("discord: gateway ready", "bot_user", botID)
	// A new session: whatever was sent while there was none is read back.
	b.planCatchUp()
}

// onResumed only logs: a resume means Discord replays the missed events,
// so nothing needs reading back.
func (b *Bot) onResumed(_ *discordgo.Session, _ *discordgo.Resumed) {
	b.connected.Store(true)
	b.log.Info("discord: gateway resumed")
}

// onDisconnect wakes Run's reconnect loop, unless we are shutting down.
func (b *Bot) onDisconnect(_ *discordgo.Session, _ *discordgo.Disconnect) {
	b.connected.Store(false)
	b.mu.Lock()
	closing := b.closing
	b.mu.Unlock()
	if closing {
		return
	}
	select {
	case b.discon <- struct{}{}:
	default:
	}
}

// registerCommands installs /aftercare and /staff in the configured guild.
// Failure is logged, not fatal: patients can still DM the bot.
func (b *Bot) registerCommands(ctx context.Context) {
	if b.cfg.GuildID == "" {
		return
	}
	b.mu.Lock()
	appID := b.appID
	b.mu.Unlock()
	if appID == "" {
		b.log.Warn("discord: no application ID from READY; slash commands not registered")
		return
	}
	err := b.call(ctx, "applications/commands", func(o ...discordgo.RequestOption) error {
		_, err := b.s.ApplicationCommandBulkOverwrite(appID, b.cfg.GuildID, commands(), o...)
		return err
	})
	if err != nil {
		b.log.Error("discord: registering slash commands failed", "guild", b.cfg.GuildID, "err", b.describe(err))
		return
	}
	b.log.Info("discord: slash commands registered", "guild", b.cfg.GuildID)
}

// Slash command names.
const (
	cmdAftercare = "aftercare"
	cmdStaff     = "staff"
)

func commands() []*discordgo.ApplicationCommand {
	return []*discordgo.ApplicationCommand{
		{
			Name:        cmdAftercare,
			Description: "Start your aftercare follow-up in a private message",
			Options: []*discordgo.ApplicationCommandOption{{
				Type:        discordgo.ApplicationCommandOptionString,
				Name:        "code",
				Description: "The code your clinic gave you (optional)",
			}},
		},
		{
			Name:        cmdStaff,
			Description: "Clinic staff: run an Aftercare command (e.g. ack 12)",
			Options: []*discordgo.ApplicationCommandOption{{
				Type:        discordgo.ApplicationCommandOptionString,
				Name:        "command",
				Description: "The command, e.g. ack 12",
				Required:    true,
			}},
		},
	}
}

// rewriteTransport sends requests for discord.com to another base URL.
type rewriteTransport struct {
	base *url.URL
	next http.RoundTripper
}

// RoundTrip rewrites the scheme and host (and prefixes the base path) of
// requests to discord.com, leaving other hosts alone.
func (t *rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if h := r.URL.Hostname(); h == "discord.com" || strings.HasSuffix(h, ".discord.com") {
		r = r.Clone(r.Context())
		r.URL.Scheme = t.base.Scheme
		r.URL.Host = t.base.Host
		r.URL.Path = strings.TrimRight(t.base.Path, "/") + r.URL.Path
		r.URL.RawPath = ""
		r.Host = t.base.Host
	}
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(r)
}

// newGate returns the staff rules of cfg: the staff users and the holders
// of a staff role. Being in the staff channel does not make one staff.
func newGate(cfg Config) *staffgate.Gate {
	var r staffgate.Rules
	for _, id := range cfg.StaffUserIDs {
		r.Users = append(r.Users, string(engine.NewPatientID(Platform, id)))
	}
	for _, id := range cfg.StaffRoleIDs {
		r.Roles = append(r.Roles, string(engine.NewPatientID(Platform, id)))
	}
	return staffgate.New(r)
}

// String describes the bot without its token, so printing it is safe.
func (b *Bot) String() string {
	return "discord.Bot{staff_channel=" + b.cfg.StaffChannelID + " guild=" + b.cfg.GuildID + "}"
}

// LogValue keeps the token out of structured logs that include the bot.
func (b *Bot) LogValue() slog.Value {
	return slog.GroupValue(slog.String("staff_channel", b.cfg.StaffChannelID), slog.String("guild", b.cfg.GuildID))
}
