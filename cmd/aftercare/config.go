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
	"strconv"
	"strings"
	"time"

	"aftercare/bot/discord"
	"aftercare/bot/telegram"
	"aftercare/bot/webhook"
	"aftercare/engine"
)

// Config is the whole configuration: a JSON file (see aftercare.sample.json)
// plus secrets from the environment. Tokens are never read from the file.
type Config struct {
	Clinic ClinicConfig `json:"clinic"`
	// DataDir holds the database file (aftercare.db).
	DataDir string `json:"data_dir"`
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
}

// EscalationConfig is the ladder for urgent and emergency alerts.
type EscalationConfig struct {
	// AckTimeout is how long an alert may stay unacknowledged before it is
	// sent again, then forwarded to the next contact (default "10m").
	AckTimeout string `json:"ack_timeout"`
	// Contacts are tried in order: "telegram:<chat id>", "discord:<channel id>", "webhook:<name>".
	Contacts []string `json:"contacts,omitempty"`
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

var secretKey = regexp.MustCompile(`(?i)"[a-z_]*(token|secret|password)"\s*:`)

// LoadConfig reads path over the defaults (path "" means defaults only),
// applies the environment and validates.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, &ConfigError{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}
		}
		if m := secretKey.FindString(string(b)); m != "" {
			return c, &ConfigError{File: path, Key: strings.Trim(strings.TrimSuffix(strings.TrimSpace(m), ":"), `" `),
				Msg: "secrets are read from the environment only; remove it from the file and set " + EnvTelegramToken + " / " + EnvDiscordToken}
		}
		if err := decodeStrict(b, &c); err != nil {
			return c, &ConfigError{File: path, Msg: err.Error()}
		}
	}
	if d := getenv(EnvDataDir); d != "" {
		c.DataDir = d
	}
	if err := c.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = path
		}
		return c, err
	}
	return c, nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("line %d: invalid JSON: %v", bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))+1, se)
		case errors.As(err, &te):
			return fmt.Errorf("key %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("invalid JSON: the file ends before the configuration object is closed")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return fmt.Errorf("%s: not a configuration key (check the spelling against aftercare.sample.json)", strings.TrimPrefix(err.Error(), "json: "))
		}
		return err
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the configuration object")
	}
	return nil
}

// Validate checks every key and names the first bad one.
func (c Config) Validate() error {
	bad := func(key, msg string) error { return &ConfigError{Key: key, Msg: msg} }
	if strings.TrimSpace(c.Clinic.Name) == "" {
		return bad("clinic.name", `must be set, e.g. "Riverside Acupuncture"`)
	}
	if !validPhone(c.Clinic.Phone) {
		return bad("clinic.phone", `must be a phone number patients can call, e.g. "+1-555-0100"`)
	}
	if !validPhone(c.Clinic.EmergencyNumber) {
		return bad("clinic.emergency_number", `must be the local emergency number, e.g. "911" or "112"`)
	}
	if _, err := time.LoadLocation(c.Clinic.TimeZone); err != nil || c.Clinic.TimeZone == "" {
		return bad("clinic.time_zone", fmt.Sprintf("%q is not an IANA time zone; use a name like \"America/Chicago\"", c.Clinic.TimeZone))
	}
	if _, err := parseHHMM(c.Clinic.QuietHours.Start); err != nil {
		return bad("clinic.quiet_hours.start", err.Error())
	}
	if _, err := parseHHMM(c.Clinic.QuietHours.End); err != nil {
		return bad("clinic.quiet_hours.end", err.Error())
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return bad("data_dir", "must be a directory for the database, e.g. \"/var/lib/aftercare\"")
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return bad("log.level", fmt.Sprintf("%q: use debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return bad("log.format", fmt.Sprintf("%q: use text or json", c.Log.Format))
	}
	if c.Telegram != nil {
		if err := c.Telegram.Validate(); err != nil {
			return &ConfigError{Msg: err.Error()}
		}
	}
	if c.Discord != nil {
		if err := c.Discord.Validate(); err != nil {
			return &ConfigError{Msg: err.Error()}
		}
	}
	for p, pc := range c.Pacing {
		if pc.PerSecond < 0 || pc.PerChatPerSecond < 0 {
			return bad("pacing."+p, "rates must be positive")
		}
	}
	if c.Clinic.AfterHoursPhone != "" && !validPhone(c.Clinic.AfterHoursPhone) {
		return bad("clinic.after_hours_phone", `must be a phone number, e.g. "+1-555-0101"`)
	}
	if _, err := c.hours(); err != nil {
		return err
	}
	if d, err := time.ParseDuration(c.Escalation.AckTimeout); err != nil || d < time.Minute {
		return bad("escalation.ack_timeout", fmt.Sprintf("%q: use a duration of at least a minute, e.g. \"10m\"", c.Escalation.AckTimeout))
	}
	for i, ct := range c.Escalation.Contacts {
		pl, addr, ok := strings.Cut(ct, ":")
		if !ok || addr == "" || (pl != "telegram" && pl != "discord" && pl != "webhook" && pl != "console") {
			return bad(fmt.Sprintf("escalation.contacts[%d]", i), fmt.Sprintf("%q: use platform:address, e.g. \"telegram:123456\" or \"webhook:sms\"", ct))
		}
	}
	if c.RetentionDays < 1 || c.RetentionDays > 3650 {
		return bad("retention_days", "must be between 1 and 3650")
	}
	if c.Invites.TTLDays < 1 || c.Invites.TTLDays > 90 {
		return bad("invites.ttl_days", "must be between 1 and 90")
	}
	for i, w := range c.Webhooks {
		if err := w.Validate(i); err != nil {
			return &ConfigError{Msg: err.Error()}
		}
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			return bad("http.listen", fmt.Sprintf("%q: use host:port, e.g. \"127.0.0.1:8089\"", c.HTTP.Listen))
		}
	}
	return c.validateWeb()
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// hours parses clinic.hours; nil means always open.
func (c Config) hours() (map[time.Weekday][2]int, error) {
	if len(c.Clinic.Hours) == 0 {
		return nil, nil
	}
	out := map[time.Weekday][2]int{}
	for day, span := range c.Clinic.Hours {
		wd, ok := weekdays[strings.ToLower(day)]
		if !ok {
			return nil, &ConfigError{Key: "clinic.hours." + day, Msg: "use mon, tue, wed, thu, fri, sat or sun"}
		}
		if strings.TrimSpace(span) == "" || strings.EqualFold(span, "closed") {
			continue
		}
		a, b, ok := strings.Cut(span, "-")
		o, err1 := parseHHMM(strings.TrimSpace(a))
		cl, err2 := parseHHMM(strings.TrimSpace(b))
		if !ok || err1 != nil || err2 != nil || cl <= o {
			return nil, &ConfigError{Key: "clinic.hours." + day, Msg: fmt.Sprintf("%q: use \"08:00-18:00\" or \"closed\"", span)}
		}
		out[wd] = [2]int{o, cl}
	}
	return out, nil
}

func validPhone(s string) bool {
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune("+-() .", r):
		default:
			return false
		}
	}
	return digits >= 2 && digits <= 20
}

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
	return engine.Clinic{
		Name: c.Clinic.Name, Phone: c.Clinic.Phone, EmergencyNumber: c.Clinic.EmergencyNumber,
		TimeZone: c.Clinic.TimeZone, QuietStart: qs, QuietEnd: qe, Hours: hours, AfterHoursPhone: c.Clinic.AfterHoursPhone,
	}
}
