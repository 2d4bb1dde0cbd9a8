package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/aftercare-clinic/aftercare/bot/discord"
	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/bot/webhook"
)

// DefaultClinicID is the ID of the one clinic a configuration without a
// "clinics" list serves. Its database stays where a one-clinic deployment
// always kept it (data_dir/aftercare.db), so upgrading moves nothing.
const DefaultClinicID = "default"

// ClinicEntry is one clinic of a deployment that hosts several: an entry of
// the "clinics" list. It holds everything that is the clinic's own, under
// the same keys a one-clinic file uses at its top level, so moving a
// clinic's file into a list entry is a copy; what the deployment shares
// (data_dir, store, http, web.listen, log, retention, pacing) stays at the
// top. Nothing in one entry reaches another clinic: each gets its own
// engine, service, bots, desk and database (see README "Several clinics").
type ClinicEntry struct {
	// ID names the clinic in its data path, its PostgreSQL schema, its
	// leases, its metrics and the -clinic flag: a short slug of lowercase
	// letters, digits and '-', unique in the list.
	ID     string       `json:"id"`
	Clinic ClinicConfig `json:"clinic"`
	// ProtocolFile replaces the embedded protocol for this clinic.
	ProtocolFile string `json:"protocol_file,omitempty"`
	// TriageRules are extra red-flag rule files for this clinic.
	TriageRules []string `json:"triage_rules,omitempty"`
	// Telegram is this clinic's bot; its token comes from the variable
	// TelegramTokenEnv names.
	Telegram *telegram.Config `json:"telegram,omitempty"`
	// TelegramTokenEnv names the environment variable holding this
	// clinic's Telegram token; default AFTERCARE_TELEGRAM_TOKEN_<ID> (the
	// ID in capitals, '-' as '_').
	TelegramTokenEnv string `json:"telegram_token_env,omitempty"`
	// Discord is this clinic's bot; its token comes from DiscordTokenEnv.
	Discord *discord.Config `json:"discord,omitempty"`
	// DiscordTokenEnv names the variable of this clinic's Discord token;
	// default AFTERCARE_DISCORD_TOKEN_<ID>.
	DiscordTokenEnv string `json:"discord_token_env,omitempty"`
	// Escalation is this clinic's ladder and contacts; its alerts reach
	// no other clinic's contacts.
	Escalation EscalationConfig `json:"escalation"`
	// Invites configures this clinic's enrollment invites (its bot's name
	// for the t.me links).
	Invites InviteConfig `json:"invites"`
	// Webhooks receive every staff alert of this clinic, and no other's.
	Webhooks []webhook.Endpoint `json:"webhooks,omitempty"`
	// Web is this clinic's part of the shared staff desk.
	Web ClinicWebConfig `json:"web"`
}

// ClinicWebConfig is a clinic's part of the desk that web.listen serves for
// every clinic of the deployment.
type ClinicWebConfig struct {
	// BaseURL is the address this clinic's staff open
	// ("https://riverside.desk.example"). Its host selects the clinic on
	// the shared listener, so each clinic needs a host of its own: the
	// desk's cookies are host-only, and a browser never sends one clinic's
	// session to another clinic's desk.
	BaseURL string `json:"base_url,omitempty"`
	// StaffNames names this clinic's staff on its desk (see web.staff_names).
	StaffNames map[string]string `json:"staff_names,omitempty"`
}

// DefaultClinicEntry is an entry with the defaults a one-clinic file gets
// (emergency number 911, UTC, quiet hours 21:00-08:00, a 10 minute
// acknowledgement timeout, 7 day invites); name and phone have none.
func DefaultClinicEntry(id string) ClinicEntry {
	d := DefaultConfig()
	return ClinicEntry{ID: id,
		Clinic:     ClinicConfig{EmergencyNumber: d.Clinic.EmergencyNumber, TimeZone: d.Clinic.TimeZone, QuietHours: d.Clinic.QuietHours},
		Escalation: d.Escalation, Invites: d.Invites}
}

var clinicIDPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$`)

// clinicTokenEnv is the default variable of a clinic's token:
// AFTERCARE_TELEGRAM_TOKEN_RIVERSIDE for "riverside".
func clinicTokenEnv(base, id string) string {
	return base + "_" + strings.ToUpper(strings.ReplaceAll(id, "-", "_"))
}

var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// multiClinic reports whether the configuration lists its clinics.
func (c Config) multiClinic() bool { return len(c.Clinics) > 0 }

// clinicConfigs returns one Config per clinic: the deployment's settings
// with the clinic's own over them, ClinicID set and the token variables
// named. A configuration without a "clinics" list is one clinic, "default",
// reading the platform tokens from today's variables.
func (c Config) clinicConfigs() []Config {
	if !c.multiClinic() {
		one := c
		one.ClinicID = DefaultClinicID
		one.TelegramTokenEnv, one.DiscordTokenEnv = EnvTelegramToken, EnvDiscordToken
		return []Config{one}
	}
	out := make([]Config, 0, len(c.Clinics))
	for _, e := range c.Clinics {
		cc := c
		cc.Clinics = nil
		cc.ClinicID = e.ID
		cc.Clinic = e.Clinic
		cc.ProtocolFile, cc.TriageRules = e.ProtocolFile, e.TriageRules
		cc.Telegram, cc.Discord = e.Telegram, e.Discord
		cc.Escalation, cc.Invites, cc.Webhooks = e.Escalation, e.Invites, e.Webhooks
		cc.Web.BaseURL, cc.Web.StaffNames = e.Web.BaseURL, e.Web.StaffNames
		cc.TelegramTokenEnv = e.TelegramTokenEnv
		if cc.TelegramTokenEnv == "" {
			cc.TelegramTokenEnv = clinicTokenEnv(EnvTelegramToken, e.ID)
		}
		cc.DiscordTokenEnv = e.DiscordTokenEnv
		if cc.DiscordTokenEnv == "" {
			cc.DiscordTokenEnv = clinicTokenEnv(EnvDiscordToken, e.ID)
		}
		// Only one clinic can own the terminal.
		off := false
		cc.Console = &off
		cc.listed = true
		out = append(out, cc)
	}
	return out
}

// clinicKeyPrefix is how a clinic's keys are named in errors:
// "clinics[2]." in a list, nothing for a one-clinic file.
func (c Config) clinicKeyPrefix(i int) string {
	if !c.multiClinic() {
		return ""
	}
	return fmt.Sprintf("clinics[%d].", i)
}

// clinicDir is where a clinic's bbolt database lives: data_dir itself for
// "default" (where one-clinic deployments always kept it), else
// data_dir/clinics/<id>.
func clinicDir(cfg Config) string {
	if cfg.ClinicID == "" || cfg.ClinicID == DefaultClinicID {
		return cfg.DataDir
	}
	return filepath.Join(cfg.DataDir, "clinics", cfg.ClinicID)
}

// clinicOwnedKeys are the top-level keys that belong to a clinic: with a
// "clinics" list they go into its entries.
var clinicOwnedKeys = []string{"clinic", "protocol_file", "triage_rules", "telegram", "discord", "escalation", "invites", "webhooks", "console"}

// mixedClinicKeys reports the clinic keys a file sets at its top level
// beside a "clinics" list (raw is the file); nil when it has no list.
func mixedClinicKeys(raw []byte) []*ConfigError {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return nil
	}
	if _, ok := top["clinics"]; !ok {
		return nil
	}
	var errs []*ConfigError
	for _, k := range clinicOwnedKeys {
		if _, ok := top[k]; ok {
			errs = append(errs, mixedKeyError(k))
		}
	}
	var web map[string]json.RawMessage
	if json.Unmarshal(top["web"], &web) == nil {
		for _, k := range []string{"staff_names", "base_url"} {
			if _, ok := web[k]; ok {
				errs = append(errs, mixedKeyError("web."+k))
			}
		}
	}
	return errs
}

func mixedKeyError(key string) *ConfigError {
	if key == "console" {
		return &ConfigError{Key: key, Msg: `cannot be used together with "clinics": the console serves one clinic; remove "console", or remove "clinics" to run one clinic`}
	}
	return &ConfigError{Key: key, Msg: fmt.Sprintf(`cannot be used together with "clinics": move %q into each entry of "clinics" (clinics[0].%s, ...), or remove "clinics" to run one clinic`, key, key)}
}

// decodeClinicEntries decodes each entry of the file's "clinics" over
// DefaultClinicEntry, so an entry gets the same defaults a one-clinic file
// does. strict rejects unknown keys (checkKeys has named them already).
func decodeClinicEntries(raw []byte, c *Config) {
	var top struct {
		Clinics []json.RawMessage `json:"clinics"`
	}
	if json.Unmarshal(raw, &top) != nil || len(top.Clinics) == 0 {
		return
	}
	out := make([]ClinicEntry, len(top.Clinics))
	for i, r := range top.Clinics {
		out[i] = DefaultClinicEntry("")
		json.Unmarshal(r, &out[i]) // type errors were reported by checkKeys
	}
	c.Clinics = out
}

// topLevelClinicKeys names the clinic keys a Config given as a value
// (tests, Main.Config) sets at its top level beside Clinics.
func topLevelClinicKeys(c Config) []string {
	d := DefaultConfig()
	var out []string
	add := func(set bool, k string) {
		if set {
			out = append(out, k)
		}
	}
	add(!reflect.DeepEqual(c.Clinic, d.Clinic), "clinic")
	add(c.ProtocolFile != "", "protocol_file")
	add(len(c.TriageRules) > 0, "triage_rules")
	add(c.Telegram != nil, "telegram")
	add(c.Discord != nil, "discord")
	add(!reflect.DeepEqual(c.Escalation, d.Escalation), "escalation")
	add(c.Invites != d.Invites, "invites")
	add(len(c.Webhooks) > 0, "webhooks")
	add(c.Console != nil, "console")
	add(len(c.Web.StaffNames) > 0, "web.staff_names")
	add(c.Web.BaseURL != "", "web.base_url")
	return out
}

// validateClinicList checks the list itself: IDs, token variables, the
// desk's hosts, and that no clinic key sits beside it at the top.
func (c Config) validateClinicList() ConfigErrors {
	var errs ConfigErrors
	bad := func(key, msg string) { errs = append(errs, &ConfigError{Key: key, Msg: msg}) }
	for _, k := range topLevelClinicKeys(c) {
		errs = append(errs, mixedKeyError(k))
	}
	seen := map[string]int{}
	hosts := map[string]int{}
	envs := map[string]string{}
	for i, e := range c.Clinics {
		p := fmt.Sprintf("clinics[%d].", i)
		switch {
		case e.ID == "":
			bad(p+"id", `must be set: a short slug naming the clinic, e.g. "riverside"`)
		case !clinicIDPattern.MatchString(e.ID):
			bad(p+"id", fmt.Sprintf("%q: use 1 to 32 lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. \"riverside-north\"", e.ID))
		default:
			if j, dup := seen[e.ID]; dup {
				bad(p+"id", fmt.Sprintf("%q is already the id of clinics[%d]; every clinic needs its own id", e.ID, j))
			} else {
				seen[e.ID] = i
			}
		}
		for _, t := range []struct{ key, val string }{{"telegram_token_env", e.TelegramTokenEnv}, {"discord_token_env", e.DiscordTokenEnv}} {
			if t.val == "" {
				continue
			}
			if !envName.MatchString(t.val) {
				bad(p+t.key, fmt.Sprintf("%q: name an environment variable (capitals, digits, _), e.g. \"RIVERSIDE_TELEGRAM_TOKEN\"; the token itself never goes in the file", t.val))
				continue
			}
			if other, dup := envs[t.val]; dup {
				bad(p+t.key, fmt.Sprintf("%q is already %s: each bot has its own token", t.val, other))
			}
			envs[t.val] = p + t.key
		}
		if c.Web.Listen != "" {
			u, err := url.Parse(e.Web.BaseURL)
			switch {
			case e.Web.BaseURL == "":
				bad(p+"web.base_url", `the shared desk tells clinics apart by host: set the address this clinic's staff open, e.g. "https://riverside.desk.example"`)
			case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || (u.Path != "" && u.Path != "/"):
				bad(p+"web.base_url", fmt.Sprintf("%q: use a scheme and a host of this clinic's own, e.g. \"https://riverside.desk.example\"", e.Web.BaseURL))
			default:
				h := strings.ToLower(u.Hostname())
				if j, dup := hosts[h]; dup {
					bad(p+"web.base_url", fmt.Sprintf("host %q is already clinics[%d]'s: each clinic's desk needs a host of its own", h, j))
				}
				hosts[h] = i
			}
		}
	}
	return errs
}
