// Package discord connects Aftercare to Discord: patients talk to the clinic
// bot in direct messages, staff receive alerts in one configured staff
// channel, and the service's outbound messages are delivered within
// Discord's limits.
//
// The package only translates. It never interprets what a patient wrote;
// every message and button press is handed to a Receiver (the service), and
// every message to send arrives through Send.
//
// # Invites
//
// Discord has no deep links: a patient presents the clinic's code with the
// /aftercare slash command or types "/start CODE" in a DM. Either way the
// adapter hands the code over in service.Inbound.Invite, beside the typed
// form as text, so the service never reads an invite back out of a message
// (inbound.go, catchup.go).
//
// # Where health talk goes
//
// Patient messages are only ever sent to the patient's direct-message
// channel, which the adapter opens itself (POST /users/@me/channels) and
// checks is a DM. Staff messages only go to the configured staff channel.
// Send refuses anything else, so a check-in can never land in a public
// channel by mistake.
//
// # Intents and staff commands
//
// The bot asks for the DirectMessages intent (message content in DMs needs
// no privileged intent), plus Guilds when a guild is configured for the
// /aftercare and /staff slash commands. Staff commands come as the /staff
// slash command or as buttons on alerts, both of which Discord delivers as
// interactions without any intent. Reading typed commands in the staff
// channel is optional (staff_messages) because it needs GuildMessages and
// the privileged MessageContent intent, which must also be switched on in
// the Developer Portal.
//
// # Ordering, duplicates and loss
//
// discordgo's handlers run synchronously on the gateway reader; they only
// queue work. Each user's updates are handed to the Receiver in order by
// one goroutine per user, so different patients do not wait for each other.
// Every update carries a dedupe key ("discord:msg:<id>",
// "discord:interaction:<id>"); the adapter drops keys it has already
// delivered and the service drops keys it has already committed, so events
// replayed after a gateway RESUME apply nothing twice. A Receive that fails
// is retried; if it keeps failing the patient is asked to send the message
// again rather than silently losing it.
//
// # Messages sent while the bot is down
//
// The gateway delivers nothing to a session that does not exist yet: a DM
// sent while the bot is stopped or restarting, or between a dropped session
// and a new one, never arrives as an event. With WithReadMarks, every READY
// (a new session) starts a read-back: the DM channel of every stored Discord
// patient is read (GET /channels/{id}/messages?after=) from its read mark,
// the newest message committed from it, kept in the store and so surviving
// restarts; a channel without a mark is read from two days back, inside the
// service's dedupe horizon. Pages of 100 are read oldest first (at most
// 1,000 messages a channel and session), four channels at a time, each
// request through the global pacer, so alerts still go out meanwhile. Read
// messages take the same path and dedupe keys as live ones; a live DM of a
// channel not yet read back starts its read-back at once and is queued
// after the missed ones, so each patient's messages are handled in order.
// A mark only moves past a message once the Receiver committed it (and
// stays before a message that could not be committed), so a crash at any
// point reads a message again, and the dedupe applies it once. A RESUMED
// session needs no read-back: Discord replays its missed events.
//
// # Rate limits
//
// Every REST call first waits on a global pacer (requests_per_second,
// Discord allows 50), then on discordgo's per-route buckets, which read the
// X-RateLimit-* headers. A 429 is retried after its retry_after a bounded
// number of times, then reported as *service.RetryAfterError so the
// dispatcher keeps the message and tries later.
//
// # Reconnecting
//
// discordgo's own reconnect loop backs off up to ten minutes, so it is
// switched off: the adapter watches for disconnects and reopens the session
// itself with a backoff capped at max_reconnect_delay (30 s by default),
// resuming the session so that events missed during the blip are replayed.
//
// # Secrets and personal data
//
// The token is read by the caller from the environment and never logged;
// errors are scrubbed of it. Logs carry IDs only: never message text,
// display names or interaction tokens.
package discord
