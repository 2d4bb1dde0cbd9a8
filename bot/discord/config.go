package discord

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/config"
)

// Default values used when a Config field is left at its zero value.
const (
	// DefaultRequestsPerSecond is Discord's global REST limit for a bot.
	DefaultRequestsPerSecond = 50
	// DefaultMaxReconnectDelay caps the wait between gateway reconnect
	// attempts, so the bot is back within a minute of a network blip.
	DefaultMaxReconnectDelay = 30 * time.Second
	// maxAllowedReconnectDelay is the largest cap Validate accepts: the
	// issue requires reconnecting within a minute.
	maxAllowedReconnectDelay = time.Minute
)

// Config is the "discord" section of the Aftercare configuration. The bot
// token is deliberately not part of it: it comes from the environment
// (AFTERCARE_DISCORD_TOKEN) so that it never lands in a config file or a log.
type Config struct {
	// StaffChannelID is the guild text channel where staff alerts and
	// notices are posted and where staff commands are accepted.
	StaffChannelID string `json:"staff_channel_id"`
	// StaffRoleIDs are the guild roles whose members may run staff
	// commands and press buttons on alerts.
	StaffRoleIDs []string `json:"staff_role_ids,omitempty"`
	// StaffUserIDs are individual users who may run staff commands,
	// whatever their roles.
	StaffUserIDs []string `json:"staff_user_ids,omitempty"`
	// GuildID is the clinic's server. When set, the bot registers the
	// /aftercare command (which opens the patient's DM) and the /staff
	// command there. Optional: patients can always DM the bot directly.
	GuildID string `json:"guild_id,omitempty"`
	// StaffMessages makes the bot read typed commands ("/ack 12") in the
	// staff channel. It needs the privileged MessageContent intent, which
	// must be enabled for the application in the Developer Portal;
	// otherwise staff use the /staff slash command or alert buttons.
	StaffMessages bool `json:"staff_messages,omitempty"`
	// RequestsPerSecond paces all REST calls globally (default 50,
	// Discord's global limit). discordgo only slows down after a 429.
	RequestsPerSecond float64 `json:"requests_per_second,omitempty"`
	// MaxReconnectDelay caps the backoff between gateway reconnect
	// attempts (default 30s, at most 1m), replacing discordgo's, which
	// grows to ten minutes.
	MaxReconnectDelay Duration `json:"max_reconnect_delay,omitempty"`
	// APIBase redirects REST calls from https://discord.com to another
	// base URL (a test fake or a self-hosted proxy). The gateway URL then
	// comes from that server's /gateway. Empty means Discord itself.
	APIBase string `json:"api_base,omitempty"`
}

// Duration is a time.Duration written in config files as a Go duration
// string ("30s", "250ms"), or as a bare number of seconds. It is the one
// type every platform section uses (see bot/config).
type Duration = config.Duration

// Validate reports the first problem with the configuration, naming the key
// and how to fix it, so an operator can correct the file without reading code.
func (c Config) Validate() error {
	if c.StaffChannelID == "" {
		return errors.New("discord.staff_channel_id: required: the ID of the guild text channel for staff alerts (enable Developer Mode in Discord, right-click the channel, Copy Channel ID)")
	}
	if !isSnowflake(c.StaffChannelID) {
		return fmt.Errorf("discord.staff_channel_id: %q is not a Discord ID: use the numeric ID from Copy Channel ID, not the channel name", c.StaffChannelID)
	}
	for i, id := range c.StaffRoleIDs {
		if !isSnowflake(id) {
			return fmt.Errorf("discord.staff_role_ids[%d]: %q is not a Discord ID: use the numeric ID from Server Settings > Roles > Copy Role ID", i, id)
		}
	}
	for i, id := range c.StaffUserIDs {
		if !isSnowflake(id) {
			return fmt.Errorf("discord.staff_user_ids[%d]: %q is not a Discord ID: use the numeric ID from right-click on the user > Copy User ID", i, id)
		}
	}
	if len(c.StaffRoleIDs) == 0 && len(c.StaffUserIDs) == 0 {
		return errors.New("discord.staff_role_ids: set staff_role_ids or staff_user_ids, otherwise nobody can acknowledge alerts or run staff commands")
	}
	if c.GuildID != "" && !isSnowflake(c.GuildID) {
		return fmt.Errorf("discord.guild_id: %q is not a Discord ID: use the numeric ID from right-click on the server icon > Copy Server ID, or leave it empty", c.GuildID)
	}
	if c.RequestsPerSecond < 0 || c.RequestsPerSecond > DefaultRequestsPerSecond {
		return fmt.Errorf("discord.requests_per_second: %v is out of range: use a value between 1 and %d (Discord's global limit), or leave it empty for %d", c.RequestsPerSecond, DefaultRequestsPerSecond, DefaultRequestsPerSecond)
	}
	if d := time.Duration(c.MaxReconnectDelay); d < 0 || d > maxAllowedReconnectDelay {
		return fmt.Errorf("discord.max_reconnect_delay: %s is out of range: use at most %s so the bot is back within a minute of a network blip, or leave it empty for %s", d, maxAllowedReconnectDelay, DefaultMaxReconnectDelay)
	}
	if c.APIBase != "" {
		u, err := url.Parse(c.APIBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("discord.api_base: %q is not an http(s) URL: use e.g. \"https://proxy.example\" or leave it empty for Discord itself", c.APIBase)
		}
	}
	return nil
}

// withDefaults fills zero values with the documented defaults.
func (c Config) withDefaults() Config {
	if c.RequestsPerSecond == 0 {
		c.RequestsPerSecond = DefaultRequestsPerSecond
	}
	if c.MaxReconnectDelay == 0 {
		c.MaxReconnectDelay = Duration(DefaultMaxReconnectDelay)
	}
	c.APIBase = strings.TrimRight(c.APIBase, "/")
	return c
}

// isSnowflake reports whether s looks like a Discord ID: 1 to 20 ASCII digits.
func isSnowflake(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
