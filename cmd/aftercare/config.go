package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/config"
	"github.com/aftercare-clinic/aftercare/bot/discord"
	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/bot/webhook"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/lease"
)

// Config is the whole configuration: a JSON file (see aftercare.sample.json)
// plus secrets from the environment. Tokens are never read from the file.
type Config struct {
	Clinic ClinicConfig `json:"clinic"`
	// DataDir holds the database file (aftercare.db).
	DataDir string `json:"data_dir"`
	// Store picks the database: the embedded bbolt file in data_dir (the
	// default) or PostgreSQL, for several instances on one database.
	Store StoreConfig `json:"store"`
	// ProtocolFile replaces the embedded protocol (questions, advice, texts).
	ProtocolFile string `json:"protocol_file,omitempty"`
	// TriageRules are extra red-flag rule files loaded on top of the defaults.
	TriageRules []string `json:"triage_rules,omitempty"`
	// Console forces the console adapter on or off; by default it runs when
	// no platform token is set.
	Console *bool `json:"console,omitempty"`
	// Telegram configures the Telegram adapter (token: AFTERCARE_TELEGRAM_TOKEN).
	Telegram *telegram.Config `json:"telegram,omitempty"`
	// Discord configures the Discord adapter (token: AFTERCARE_DISCORD_TOKEN).
	Discord *discord.Config `json:"discord,omitempty"`
	// Pacing overrides the default send rates per platform.
	Pacing map[string]PaceConfig `json:"pacing,omitempty"`
	// Escalation configures the ladder for unacknowledged alerts.
	Escalation EscalationConfig `json:"escalation"`
	// RetentionDays is how long patient data is kept after the last visit
	// or message (default 90).
	RetentionDays int `json:"retention_days"`
	// Invites configures enrollment invites.
	Invites InviteConfig `json:"invites"`
	// Webhooks receive every staff alert as a signed POST.
	Webhooks []webhook.Endpoint `json:"webhooks,omitempty"`
	// HTTP is the operations listener (health, readiness, metrics, and on
	// loopback the admin endpoints). Off unless listen is set.
	HTTP HTTPConfig `json:"http"`
	// Web is the staff desk's listener (see web.go). Off unless listen is set.
	Web WebConfig `json:"web"`
	Log LogConfig `json:"log"`
	// Clinics lists the clinics of a deployment that hosts several, each
	// with its own settings, bots and database (see ClinicEntry). Without
	// it the file is one clinic, configured at the top level as always.
	Clinics []ClinicEntry `json:"clinics,omitempty"`

	// ClinicID, TelegramTokenEnv and DiscordTokenEnv are set on the
	// per-clinic configurations clinicConfigs returns: which clinic, and
	// which variables hold its bots' tokens. Never read from the file.
	ClinicID         string `json:"-"`
	TelegramTokenEnv string `json:"-"`
	DiscordTokenEnv  string `json:"-"`
	// listed marks a configuration clinicConfigs made from a list entry.
	listed bool
}

// StoreConfig picks the store backend.
type StoreConfig struct {
	// Backend is "bbolt" (default: one file in data_dir, one process) or
	// "postgres" (connection string from AFTERCARE_POSTGRES_DSN, a secret).
	Backend string `json:"backend,omitempty"`
	// ClaimLease is how long an instance's claim on a due timer or a
	// queued message lasts before another instance may take it, so a
	// killed instance's check-ins and messages go out after at most this
	// (postgres only; default "30s"). A send or step must finish well
	// within it.
	ClaimLease config.Duration `json:"claim_lease,omitempty"`
	// Leases tunes the leases that let only one instance at a time hold a
	// platform connection allowing one consumer (Telegram long polling,
	// the Discord gateway) or run the daily housekeeping (postgres only).
	Leases LeaseConfig `json:"leases"`
}

// LeaseConfig is the "store.leases" section (see package lease).
type LeaseConfig struct {
	// TTL is how long a lease lasts unrenewed (default "10s"): a dead
	// holder's lease is taken over within TTL plus one Renew.
	TTL config.Duration `json:"ttl,omitempty"`
	// Renew is how often the holder renews it and the others try to take
	// it (default "3s"); less than half of TTL.
	Renew config.Duration `json:"renew,omitempty"`
}

// EscalationConfig is the ladder for urgent and emergency alerts.
type EscalationConfig struct {
	// AckTimeout is how long an alert may stay unacknowledged before it is
	// sent again, then forwarded to the next contact (default "10m").
	AckTimeout string `json:"ack_timeout"`
	// Contacts are tried in order: "telegram:<chat id>", "discord:<channel id>", "webhook:<name>".
	Contacts []string `json:"contacts,omitempty"`
	// RetryInterval is how soon a failed escalation or staff alert is
	// sent again (default "3s"): fixed and short, so a red flag goes out
	// within seconds of a platform coming back.
	RetryInterval string `json:"retry_interval,omitempty"`
}

// InviteConfig configures enrollment invites.
type InviteConfig struct {
	// TTLDays is how long an invite stays valid (default 7).
	TTLDays int `json:"ttl_days"`
	// TelegramBotUsername builds t.me deep links when the bot is not
	// running (the running bot knows its own name).
	TelegramBotUsername string `json:"telegram_bot_username,omitempty"`
}

// HTTPConfig is the operations listener.
type HTTPConfig struct {
	// Listen is the address, e.g. "127.0.0.1:8089". Empty: off.
	Listen string `json:"listen,omitempty"`
}

// ClinicConfig is the clinic's identity and policies.
type ClinicConfig struct {
	Name            string     `json:"name"`
	Phone           string     `json:"phone"`
	EmergencyNumber string     `json:"emergency_number"`
	TimeZone        string     `json:"time_zone"`
	QuietHours      QuietHours `json:"quiet_hours"`
	// Hours are the opening hours per day ("mon": "08:00-18:00"); a day
	// left out is closed. Without hours the clinic counts as always open.
	Hours map[string]string `json:"hours,omitempty"`
	// AfterHoursPhone is given to patients when the clinic is closed.
	AfterHoursPhone string `json:"after_hours_phone,omitempty"`
	// AlertIdentity is what staff alerts in chat show of the identity the
	// clinic entered with a visit: "" (nothing, the default), "chart"
	// (the chart number) or "initials".
	AlertIdentity string `json:"alert_identity,omitempty"`
	// StaffReplyHold is how long automatic check-ins and nudges wait after
	// a staff reply from the desk ("30m" by default; "0s" turns it off).
	// Red flags never wait.
	StaffReplyHold string `json:"staff_reply_hold,omitempty"`
}

// staffHold is clinic.staff_reply_hold as the engine takes it: zero for
// the default, negative for off.
func (c ClinicConfig) staffHold() (time.Duration, error) {
	if c.StaffReplyHold == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.StaffReplyHold)
	if err != nil || d < 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("%q: use a duration up to 24h, e.g. \"30m\", or \"0s\" for no hold", c.StaffReplyHold)
	}
	if d == 0 {
		return -1, nil
	}
	return d, nil
}

// QuietHours bound when automatic check-ins may not be sent ("21:00" to
// "08:00" in the patient's zone). Equal values disable them.
type QuietHours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// PaceConfig overrides a platform's send rate.
type PaceConfig struct {
	PerSecond        float64 `json:"per_second"`
	PerChatPerSecond float64 `json:"per_chat_per_second"`
}

// LogConfig sets logging. Logs never contain message bodies, names, phone
// numbers or tokens.
type LogConfig struct {
	Level  string `json:"level"`  // debug, info, warn, error
	Format string `json:"format"` // text or json
	// File is where logs go: a path, or "stderr". Default: stderr, except
	// with the console on, where logs go to aftercare.log in data_dir so
	// they never land between the lines of the conversation.
	File string `json:"file,omitempty"`
}

// Environment variables read by aftercare.
const (
	EnvConfig        = "AFTERCARE_CONFIG"
	EnvDataDir       = "AFTERCARE_DATA_DIR"
	EnvTelegramToken = "AFTERCARE_TELEGRAM_TOKEN"
	EnvDiscordToken  = "AFTERCARE_DISCORD_TOKEN"
	// EnvTestClockFile makes the process read its time from a file; for
	// crash tests that run the real binary on a virtual clock only.
	EnvTestClockFile = "AFTERCARE_TEST_CLOCK_FILE"
)

// DefaultConfig is what runs with no file: a sample clinic on the console.
func DefaultConfig() Config {
	return Config{
		Clinic: ClinicConfig{
			Name: "Sample Acupuncture Clinic", Phone: "+1-555-0100", EmergencyNumber: "911",
			TimeZone: "UTC", QuietHours: QuietHours{Start: "21:00", End: "08:00"},
		},
		DataDir:       "aftercare-data",
		Escalation:    EscalationConfig{AckTimeout: "10m"},
		RetentionDays: 90,
		Invites:       InviteConfig{TTLDays: 7},
		Log:           LogConfig{Level: "info", Format: "text"},
	}
}

// ConfigError names the key at fault and how to fix it.
type ConfigError struct {
	File string
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	f := e.File
	if f == "" {
		f = "config"
	}
	if e.Key == "" {
		return f + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %s", f, e.Key, e.Msg)
}

// ConfigErrors is every problem found in one configuration, so a clinic
// fixes its file in one pass. Error prints one problem a line; errors.As
// finds each *ConfigError.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the single errors, for errors.Is and errors.As.
func (es ConfigErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// asConfigErrors flattens err into ConfigErrors, giving each the file.
func asConfigErrors(err error, file string) ConfigErrors {
	var out ConfigErrors
	var add func(error)
	add = func(err error) {
		var ce *ConfigError
		switch x := err.(type) {
		case nil:
		case ConfigErrors:
			for _, e := range x {
				add(e)
			}
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				add(e)
			}
		default:
			if !errors.As(err, &ce) {
				ce = &ConfigError{Msg: err.Error()}
			}
			ce.File = file
			out = append(out, ce)
		}
	}
	add(err)
	return out
}

var secretKey = regexp.MustCompile(`(?i)"[a-z_]*(token|secret|password)"\s*:`)

// LoadConfig reads path over the defaults (path "" means defaults only),
// applies the environment and validates. It reports every problem at once
// as ConfigErrors, each naming its full key path.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	var errs ConfigErrors
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, &ConfigError{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
		}
		if err := decodeSyntax(b); err != nil {
			if m := secretKey.FindString(string(b)); m != "" {
				errs = append(errs, &ConfigError{File: path, Key: strings.Trim(strings.TrimSuffix(strings.TrimSpace(m), ":"), `" `),
					Msg: "secrets are read from the environment only; remove it from the file and set " + EnvTelegramToken + " / " + EnvDiscordToken})
			}
			return c, append(errs, &ConfigError{File: path, Msg: err.Error()})
		}
		for _, e := range append(checkKeys(b), mixedClinicKeys(b)...) {
			e.File = path
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			// Decode what can be decoded, so the values' own checks below
			// still run for keys that are not at fault.
			json.Unmarshal(b, &c)
		} else if err := decodeStrict(b, &c); err != nil {
			return c, &ConfigError{File: path, Msg: err.Error()}
		}
		decodeClinicEntries(b, &c)
	}
	if d := getenv(EnvDataDir); d != "" {
		c.DataDir = d
	}
	for _, e := range asConfigErrors(c.Validate(), path) {
		if !coveredBy(e.Key, errs) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return c, errs
	}
	return c, nil
}

// coveredBy reports whether key (or a key above or below it) already has an
// error, so one mistake is not reported twice.
func coveredBy(key string, errs ConfigErrors) bool {
	for _, e := range errs {
		if e.Key == "" || key == "" {
			continue
		}
		if e.Key == key || strings.HasPrefix(key, e.Key+".") || strings.HasPrefix(e.Key, key+".") || strings.HasPrefix(key, e.Key+"[") {
			return true
		}
	}
	return false
}

// decodeSyntax reports a file that is not one JSON object, with its line.
func decodeSyntax(b []byte) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("line %d: invalid JSON: %v", bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))+1, se)
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return errors.New("invalid JSON: the file ends before the configuration object is closed")
		}
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return errors.New("invalid JSON: the configuration must be one object {...}")
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the configuration object")
	}
	return nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("key %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return err
	}
	return nil
}

// Validate checks every key and returns every problem found, as
// ConfigErrors naming each key's full path; a clinic's keys in a "clinics"
// list are named under their entry ("clinics[2].telegram.staff_chat_id").
func (c Config) Validate() error {
	errs := c.validateDeployment()
	if c.multiClinic() {
		errs = append(errs, c.validateClinicList()...)
	}
	for i, cc := range c.clinicConfigs() {
		p := c.clinicKeyPrefix(i)
		for _, e := range cc.validateClinic() {
			e.Key = p + e.Key
			if !coveredBy(e.Key, errs) {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// configErrorsOf turns a section's error into ConfigErrors, taking the key
// from the start of the message of errors that carry none (the adapters'
// errors start with their key path).
func configErrorsOf(err error) ConfigErrors {
	var out ConfigErrors
	for _, e := range asConfigErrors(err, "") {
		if e.Key == "" {
			if k, msg, ok := strings.Cut(e.Msg, ": "); ok && !strings.ContainsAny(k, " \"") {
				e.Key, e.Msg = k, msg
			}
		}
		out = append(out, e)
	}
	return out
}

// validateDeployment checks what the deployment shares: data_dir, store,
// log, pacing, retention and the listeners.
func (c Config) validateDeployment() ConfigErrors {
	var errs ConfigErrors
	bad := func(key, msg string) { errs = append(errs, &ConfigError{Key: key, Msg: msg}) }
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must be a directory for the database, e.g. \"/var/lib/aftercare\"")
	}
	switch c.Store.Backend {
	case "", "bbolt", "postgres":
	default:
		bad("store.backend", fmt.Sprintf("%q: use \"bbolt\" (the default) or \"postgres\"", c.Store.Backend))
	}
	if c.Store.ClaimLease < 0 || (c.Store.ClaimLease > 0 && time.Duration(c.Store.ClaimLease) < 500*time.Millisecond) {
		bad("store.claim_lease", fmt.Sprintf("%s: use at least \"500ms\" (default \"30s\")", time.Duration(c.Store.ClaimLease)))
	}
	if err := (lease.Options{TTL: time.Duration(c.Store.Leases.TTL), Renew: time.Duration(c.Store.Leases.Renew)}).Validate(); err != nil {
		bad("store.leases", err.Error()+" (defaults: ttl \"10s\", renew \"3s\")")
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		bad("log.level", fmt.Sprintf("%q: use debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		bad("log.format", fmt.Sprintf("%q: use text or json", c.Log.Format))
	}
	for _, p := range sortedPacing(c.Pacing) {
		if pc := c.Pacing[p]; pc.PerSecond < 0 || pc.PerChatPerSecond < 0 {
			bad("pacing."+p, "rates must be positive")
		}
	}
	if c.RetentionDays < 1 || c.RetentionDays > 3650 {
		bad("retention_days", "must be between 1 and 3650")
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen", fmt.Sprintf("%q: use host:port, e.g. \"127.0.0.1:8089\"", c.HTTP.Listen))
		}
	}
	errs = append(errs, configErrorsOf(c.validateWebListener())...)
	return errs
}

// validateClinic checks one clinic's own keys, named as in a one-clinic
// file ("clinic.phone"); Validate puts them under the clinic's entry.
func (c Config) validateClinic() ConfigErrors {
	var errs ConfigErrors
	bad := func(key, msg string) { errs = append(errs, &ConfigError{Key: key, Msg: msg}) }
	other := func(err error) { errs = append(errs, configErrorsOf(err)...) }
	if strings.TrimSpace(c.Clinic.Name) == "" {
		bad("clinic.name", `must be set, e.g. "Riverside Acupuncture"`)
	}
	if msg := c.checkClinicPhone(c.Clinic.Phone); msg != "" {
		bad("clinic.phone", msg)
	}
	if !validEmergencyNumber(c.Clinic.EmergencyNumber) {
		bad("clinic.emergency_number", `must be the local emergency number, e.g. "911" or "112"`)
	}
	if _, err := time.LoadLocation(c.Clinic.TimeZone); err != nil || c.Clinic.TimeZone == "" {
		bad("clinic.time_zone", fmt.Sprintf("%q is not an IANA time zone; use a name like \"America/Chicago\"", c.Clinic.TimeZone))
	}
	if _, err := parseHHMM(c.Clinic.QuietHours.Start); err != nil {
		bad("clinic.quiet_hours.start", err.Error())
	}
	if _, err := parseHHMM(c.Clinic.QuietHours.End); err != nil {
		bad("clinic.quiet_hours.end", err.Error())
	}
	if c.Telegram != nil {
		other(c.Telegram.Validate())
	}
	if c.Discord != nil {
		other(c.Discord.Validate())
	}
	if c.Clinic.AfterHoursPhone != "" {
		if msg := c.checkClinicPhone(c.Clinic.AfterHoursPhone); msg != "" {
			bad("clinic.after_hours_phone", msg)
		}
	}
	if _, err := c.hours(); err != nil {
		other(err)
	}
	switch c.Clinic.AlertIdentity {
	case engine.AlertIdentityNone, engine.AlertIdentityChart, engine.AlertIdentityInitials:
	default:
		bad("clinic.alert_identity", fmt.Sprintf("%q: use \"chart\", \"initials\", or leave it out to show neither", c.Clinic.AlertIdentity))
	}
	if _, err := c.Clinic.staffHold(); err != nil {
		bad("clinic.staff_reply_hold", err.Error())
	}
	if d, err := time.ParseDuration(c.Escalation.AckTimeout); err != nil || d < time.Minute {
		bad("escalation.ack_timeout", fmt.Sprintf("%q: use a duration of at least a minute, e.g. \"10m\"", c.Escalation.AckTimeout))
	}
	if c.Escalation.RetryInterval != "" {
		if d, err := time.ParseDuration(c.Escalation.RetryInterval); err != nil || d < 100*time.Millisecond || d > time.Minute {
			bad("escalation.retry_interval", fmt.Sprintf("%q: use a duration between 100ms and 1m, e.g. \"3s\"", c.Escalation.RetryInterval))
		}
	}
	for i, ct := range c.Escalation.Contacts {
		pl, addr, ok := strings.Cut(ct, ":")
		if !ok || addr == "" || (pl != "telegram" && pl != "discord" && pl != "webhook" && pl != "console") {
			bad(fmt.Sprintf("escalation.contacts[%d]", i), fmt.Sprintf("%q: use platform:address, e.g. \"telegram:123456\" or \"webhook:sms\"", ct))
		}
	}
	if c.Invites.TTLDays < 1 || c.Invites.TTLDays > 90 {
		bad("invites.ttl_days", "must be between 1 and 90")
	}
	if msg := c.checkBotUsername(); msg != "" {
		bad("invites.telegram_bot_username", msg)
	}
	for i, w := range c.Webhooks {
		other(w.Validate(i))
	}
	other(c.validateWebStaff())
	return errs
}

func sortedPacing(m map[string]PaceConfig) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// hours parses clinic.hours; nil means always open. Its error lists every
// bad day.
func (c Config) hours() (map[time.Weekday][2]int, error) {
	if len(c.Clinic.Hours) == 0 {
		return nil, nil
	}
	days := make([]string, 0, len(c.Clinic.Hours))
	for day := range c.Clinic.Hours {
		days = append(days, day)
	}
	sort.Strings(days)
	out := map[time.Weekday][2]int{}
	var errs ConfigErrors
	for _, day := range days {
		span := c.Clinic.Hours[day]
		wd, ok := weekdays[strings.ToLower(day)]
		if !ok {
			errs = append(errs, &ConfigError{Key: "clinic.hours." + day, Msg: "use mon, tue, wed, thu, fri, sat or sun"})
			continue
		}
		if strings.TrimSpace(span) == "" || strings.EqualFold(span, "closed") {
			continue
		}
		o, cl, err := parseSpan(span)
		if err != nil {
			errs = append(errs, &ConfigError{Key: "clinic.hours." + day, Msg: err.Error()})
			continue
		}
		out[wd] = [2]int{o, cl}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// parseSpan reads opening hours like "08:00-18:00" as minutes after midnight.
func parseSpan(span string) (open, close int, err error) {
	a, b, ok := strings.Cut(span, "-")
	o, err1 := parseHHMM(strings.TrimSpace(a))
	cl, err2 := parseHHMM(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || cl <= o {
		return 0, 0, fmt.Errorf("%q: use \"08:00-18:00\" or \"closed\"", span)
	}
	return o, cl, nil
}

// SampleClinicNames are the names of the built-in sample clinic and of
// aftercare.sample.json: only these may give patients the fictional sample
// phone numbers and bot name.
var SampleClinicNames = []string{"Sample Acupuncture Clinic", "Riverside Acupuncture (sample)"}

// SampleBotUsername is the placeholder bot name in aftercare.sample.json.
const SampleBotUsername = "RiversideAftercareSampleBot"

// isSample reports whether the config is one of the samples.
func (c Config) isSample() bool {
	for _, n := range SampleClinicNames {
		if strings.TrimSpace(c.Clinic.Name) == n {
			return true
		}
	}
	return false
}

// checkClinicPhone says what is wrong with a number patients are told to
// call, "" when it is fine. A real clinic must not send patients to the
// fictional 555-01xx numbers of the samples.
func (c Config) checkClinicPhone(s string) string {
	digits, ok := phoneDigits(s)
	switch {
	case strings.TrimSpace(s) == "":
		return `must be set to the number patients should call, e.g. "+1 312 555 2368" or "(312) 555-2368"`
	case !ok || len(digits) < 7 || len(digits) > 15:
		return fmt.Sprintf("%q is not a phone number: use international (+country code) or national format with 7 to 15 digits, e.g. \"+44 20 7946 1234\"", s)
	case fictional555(digits) && !c.isSample():
		return fmt.Sprintf("%q is a fictional sample number (555-01xx): patients would be told to call a number that reaches nobody; set the clinic's real number", s)
	}
	return ""
}

// phoneDigits returns a phone number's digits, and false when it holds
// anything but digits, spaces, dashes, dots, parentheses and one leading +.
func phoneDigits(s string) (string, bool) {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
		case strings.ContainsRune("-() .", r):
		default:
			return "", false
		}
	}
	return b.String(), true
}

// fictional555 reports a North American 555-0100..555-0199 number, the
// range reserved for fiction (and used by the samples).
func fictional555(digits string) bool {
	if (len(digits) == 8 || len(digits) == 11) && digits[0] == '1' {
		digits = digits[1:] // "+1-555-0100", "+1 312 555 0100"
	}
	switch len(digits) {
	case 7:
		return strings.HasPrefix(digits, "55501")
	case 10:
		return strings.HasPrefix(digits[3:], "55501")
	}
	return false
}

// validEmergencyNumber accepts short emergency numbers ("911", "112",
// "000") as well as full ones.
func validEmergencyNumber(s string) bool {
	d, ok := phoneDigits(s)
	return ok && len(d) >= 2 && len(d) <= 15
}

// checkBotUsername says what is wrong with invites.telegram_bot_username,
// "" when it is fine or unset.
func (c Config) checkBotUsername() string {
	u := c.Invites.TelegramBotUsername
	switch {
	case u == "":
		return ""
	case strings.HasPrefix(u, "@"):
		return fmt.Sprintf("%q: write the name without the @, e.g. %q", u, strings.TrimPrefix(u, "@"))
	case !telegramUsername.MatchString(u):
		return fmt.Sprintf("%q is not a Telegram bot username: 5 to 32 letters, digits or _, ending in \"bot\"", u)
	case u == SampleBotUsername && !c.isSample():
		return fmt.Sprintf("%q is the sample's bot; set your own bot's username (BotFather shows it), or remove the key", u)
	}
	return ""
}

var telegramUsername = regexp.MustCompile(`(?i)^[a-z][a-z0-9_]{1,29}bot$`)

// parseHHMM reads "21:00" as minutes after midnight.
func parseHHMM(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q: use 24-hour HH:MM, e.g. \"21:00\"", s)
	}
	return hh*60 + mm, nil
}

// clinic turns the configuration into the engine's clinic settings.
func (c Config) clinic() engine.Clinic {
	qs, _ := parseHHMM(c.Clinic.QuietHours.Start)
	qe, _ := parseHHMM(c.Clinic.QuietHours.End)
	hours, _ := c.hours()
	hold, _ := c.Clinic.staffHold()
	return engine.Clinic{
		Name: c.Clinic.Name, Phone: c.Clinic.Phone, EmergencyNumber: c.Clinic.EmergencyNumber,
		TimeZone: c.Clinic.TimeZone, QuietStart: qs, QuietEnd: qe, Hours: hours, AfterHoursPhone: c.Clinic.AfterHoursPhone,
		AlertIdentity: c.Clinic.AlertIdentity, StaffHold: hold,
	}
}
