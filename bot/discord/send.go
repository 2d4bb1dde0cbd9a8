package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/aftercare-clinic/aftercare/bot/chunk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// Discord's message limits.
const (
	// MaxMessageLength is the longest message content Discord accepts;
	// longer texts are split into several messages.
	MaxMessageLength = 2000
	maxButtonsPerRow = 5
	maxRows          = 5
	maxButtonLabel   = 80
	maxCustomID      = 100
)

// Bounds on retrying a 429 inside one Send before handing it back to the
// dispatcher as *service.RetryAfterError.
const (
	maxRateRetries = 3
	maxRateWait    = 10 * time.Second
)

// Discord JSON error codes the adapter acts on.
const (
	codeUnknownUser    = 10013 // the account no longer exists
	codeCannotSendToDM = 50007 // the user closed DMs or blocked the bot
)

// messagePayload is the body of POST /channels/{id}/messages. It is the
// adapter's own struct (not discordgo.MessageSend) so it can carry a nonce
// with enforce_nonce: Discord then creates a message at most once per
// nonce, so retrying after a lost response does not post it twice.
type messagePayload struct {
	Content         string                            `json:"content,omitempty"`
	Components      []discordgo.MessageComponent      `json:"components,omitempty"`
	AllowedMentions *discordgo.MessageAllowedMentions `json:"allowed_mentions"`
	Nonce           string                            `json:"nonce,omitempty"`
	EnforceNonce    bool                              `json:"enforce_nonce,omitempty"`
}

// Send delivers one outbound message, implementing service.Sender.
//
// Patient messages go only to the patient's DM channel (opened and cached
// here), and so do private messages (m.Private: a staff member's desk
// sign-in link, to that staff member's DM); staff messages (To engine.StaffAddress with Channel set, or To the
// staff channel itself, as for answers to staff commands) only to the
// configured staff channel; anything else is refused with an error, so
// health talk never reaches a public channel.
// Long texts are split at line or word boundaries; buttons ride on the last
// part. If a later part fails, a retry of the same outbox ID resumes after
// the parts already delivered. Mentions in the text never ping anyone;
// urgent alerts ping the configured staff roles only.
//
// Errors: wrapping service.ErrUnreachable when the patient closed DMs (50007)
// or no longer exists; *service.RetryAfterError when Discord keeps answering
// 429; any other error is transient.
func (b *Bot) Send(ctx context.Context, m engine.Outbound) error {
	channelID, staff, err := b.destination(ctx, m)
	if err != nil {
		return err
	}
	parts := b.payloads(m, staff)
	if len(parts) == 0 {
		b.log.Warn("discord: empty message not sent", "outbound", m.ID, "kind", m.Kind)
		return nil
	}
	start := 0
	if m.ID != 0 {
		b.mu.Lock()
		start = b.progress[m.ID]
		b.mu.Unlock()
	}
	endpoint := discordgo.EndpointChannelMessages(channelID)
	for i := start; i < len(parts); i++ {
		p := parts[i]
		err := b.call(ctx, "channels/messages", func(o ...discordgo.RequestOption) error {
			_, err := b.s.RequestWithBucketID(http.MethodPost, endpoint, p, endpoint, o...)
			return err
		})
		if err != nil {
			if m.ID != 0 && i > 0 {
				b.setProgress(m.ID, i)
			}
			return b.sendError(m, err)
		}
	}
	if m.ID != 0 {
		b.mu.Lock()
		delete(b.progress, m.ID)
		b.mu.Unlock()
	}
	b.log.Info("discord: sent", "outbound", m.ID, "kind", m.Kind, "to", m.Destination(), "parts", len(parts))
	return nil
}

func (b *Bot) setProgress(id uint64, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.progress) > 10000 { // abandoned entries; never grow without bound
		clear(b.progress)
	}
	b.progress[id] = n
}

// destination resolves where m may go, refusing anything that is neither
// the patient's own DM nor the configured staff channel.
func (b *Bot) destination(ctx context.Context, m engine.Outbound) (channelID string, staff bool, err error) {
	if p := m.Destination().Platform(); p != Platform {
		return "", false, fmt.Errorf("discord: %s: destination is not on Discord", m)
	}
	if m.Private {
		// A private message (a desk sign-in link) names a user, never a
		// channel, and goes to that user's DM only: never to the staff
		// channel, whatever its Channel says. A DM rather than an
		// ephemeral follow-up to the /staff interaction: the message waits
		// in the outbox, which outlives this process and the interaction
		// token (15 minutes, kept in memory only, itself a credential we do
		// not store), and the DM takes the same path and the same
		// ErrUnreachable (50007, DMs closed) as a patient's message, so the
		// dispatcher drops it and tells the staff channel how to get one.
		// Refusals are unreachable, not transient: the dispatcher drops
		// the message instead of retrying it.
		if m.Channel != "" && m.Channel != m.To {
			return "", false, fmt.Errorf("discord: %s: refused: a private message goes to one user's DM only: %w", m, service.ErrUnreachable)
		}
		userID := m.To.Address()
		if !isSnowflake(userID) {
			return "", false, fmt.Errorf("discord: %s: %q is not a Discord user ID: %w", m, userID, service.ErrUnreachable)
		}
		ch, err := b.dmChannel(ctx, userID)
		if err != nil {
			return "", false, b.sendError(m, err)
		}
		return ch, false, nil
	}
	if m.To == engine.StaffAddress || (m.Channel == "" && m.To.Address() == b.cfg.StaffChannelID) {
		// A reply addressed straight to the staff channel (To set to it,
		// as for a staff command's answer) is a staff message too.
		if m.Channel != "" && m.Channel.Address() != b.cfg.StaffChannelID {
			return "", false, fmt.Errorf("discord: %s: refused: staff messages only go to the configured staff channel", m)
		}
		return b.cfg.StaffChannelID, true, nil
	}
	if m.Channel != "" {
		return "", false, fmt.Errorf("discord: %s: refused: patient messages only go to the patient's DM, never to a channel", m)
	}
	userID := m.To.Address()
	if !isSnowflake(userID) {
		return "", false, fmt.Errorf("discord: %s: %q is not a Discord user ID", m, userID)
	}
	ch, err := b.dmChannel(ctx, userID)
	if err != nil {
		return "", false, b.sendError(m, err)
	}
	return ch, false, nil
}

// errNotDM marks a "DM" channel that Discord says is something else.
var errNotDM = errors.New("refused: the channel Discord returned is not a direct message")

// dmChannel returns the user's DM channel, opening it on first use (a 24 h
// check-in may be the first message the bot ever sends the patient).
func (b *Bot) dmChannel(ctx context.Context, userID string) (string, error) {
	b.mu.Lock()
	ch, ok := b.dms[userID]
	b.mu.Unlock()
	if ok {
		return ch, nil
	}
	var c *discordgo.Channel
	err := b.call(ctx, "users/@me/channels", func(o ...discordgo.RequestOption) error {
		var err error
		c, err = b.s.UserChannelCreate(userID, o...)
		return err
	})
	if err != nil {
		return "", err
	}
	if c == nil || c.ID == "" || c.Type != discordgo.ChannelTypeDM || c.GuildID != "" {
		return "", errNotDM
	}
	b.rememberDM(userID, c.ID)
	return c.ID, nil
}

// rememberDM caches a user's DM channel, learned from their own DM or
// from opening it.
func (b *Bot) rememberDM(userID, channelID string) {
	if userID == "" || channelID == "" {
		return
	}
	b.mu.Lock()
	b.dms[userID] = channelID
	b.mu.Unlock()
}

// payloads turns one outbound message into the Discord messages to post.
func (b *Bot) payloads(m engine.Outbound, staff bool) []messagePayload {
	text := strings.ToValidUTF8(m.Text, "\uFFFD")
	if staff {
		// Staff messages quote patients (names, what they said): shown as
		// typed, so no patient can forge a header, a link or a button.
		text = escapeMarkdown(text)
	}
	mentions := &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
	if staff && m.Kind == engine.KindAlert && m.Level.Escalates() && len(b.cfg.StaffRoleIDs) > 0 {
		var ping strings.Builder
		for _, r := range b.cfg.StaffRoleIDs {
			ping.WriteString("<@&" + r + "> ")
		}
		text = ping.String() + text
		mentions.Roles = append([]string(nil), b.cfg.StaffRoleIDs...)
	}
	var chunks []string
	for _, c := range chunk.Split(text, MaxMessageLength) {
		if strings.TrimSpace(c) != "" { // Discord rejects blank content
			chunks = append(chunks, c)
		}
	}
	rows := buttons(m.Choices)
	if len(chunks) == 0 && len(rows) > 0 {
		chunks = []string{""}
	}
	out := make([]messagePayload, len(chunks))
	for i, c := range chunks {
		out[i] = messagePayload{Content: c, AllowedMentions: mentions}
		if m.ID != 0 {
			out[i].Nonce = nonce(m.ID, i)
			out[i].EnforceNonce = out[i].Nonce != ""
		}
	}
	if len(out) > 0 {
		out[len(out)-1].Components = rows
	}
	return out
}

// markdownSpecial are the characters Discord's markdown gives a meaning:
// emphasis, code, spoilers, quotes, headers, lists, masked links ("[" is
// enough to break one) and mentions or timestamps (they need "<"). A
// backslash before any of them shows it as is.
const markdownSpecial = "\\*_~`|>#-[]<"

// escapeMarkdown makes Discord show text exactly as written: every markdown
// character gets a backslash, except inside http(s) links, which Discord
// shows as links without reading markdown in them (an escape there would
// break the link, and the bot's invite links must stay usable).
func escapeMarkdown(text string) string {
	var b strings.Builder
	b.Grow(len(text) + len(text)/8)
	for len(text) > 0 {
		if strings.HasPrefix(text, "https://") || strings.HasPrefix(text, "http://") {
			end := strings.IndexAny(text, " \t\n")
			if end < 0 {
				end = len(text)
			}
			b.WriteString(text[:end])
			text = text[end:]
			continue
		}
		r, size := utf8.DecodeRuneInString(text)
		if r < utf8.RuneSelf && strings.ContainsRune(markdownSpecial, r) {
			b.WriteByte('\\')
		}
		b.WriteString(text[:size])
		text = text[size:]
	}
	return b.String()
}

// nonce identifies part i of outbox message id (Discord allows 25 characters).
func nonce(id uint64, i int) string {
	n := "ac" + strconv.FormatUint(id, 36) + "." + strconv.Itoa(i)
	if len(n) > 25 {
		return ""
	}
	return n
}

// buttons lays out choices as button rows: 5 per row, at most 5 rows.
// Choices beyond 25, with an unusable ID or a repeated ID are left out;
// free text still works for them.
func buttons(choices []engine.Choice) []discordgo.MessageComponent {
	var rows []discordgo.MessageComponent
	var row []discordgo.MessageComponent
	seen := make(map[string]bool)
	n := 0
	for _, c := range choices {
		if n == maxButtonsPerRow*maxRows {
			break
		}
		if c.ID == "" || len(c.ID) > maxCustomID || !utf8.ValidString(c.ID) || seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		label := strings.TrimSpace(strings.ToValidUTF8(c.Label, "\uFFFD"))
		if label == "" {
			label = c.ID
		}
		if utf8.RuneCountInString(label) > maxButtonLabel {
			label = string([]rune(label)[:maxButtonLabel-1]) + "…"
		}
		row = append(row, discordgo.Button{Label: label, Style: discordgo.PrimaryButton, CustomID: c.ID})
		n++
		if len(row) == maxButtonsPerRow {
			rows = append(rows, discordgo.ActionsRow{Components: row})
			row = nil
		}
	}
	if len(row) > 0 {
		rows = append(rows, discordgo.ActionsRow{Components: row})
	}
	return rows
}

// sendError classifies a failed REST call for the dispatcher.
func (b *Bot) sendError(m engine.Outbound, err error) error {
	var ra *service.RetryAfterError
	if errors.As(err, &ra) {
		return err
	}
	if errors.Is(err, errNotDM) {
		return fmt.Errorf("discord: %s: %w", m, err)
	}
	if code := restCode(err); code == codeCannotSendToDM || code == codeUnknownUser {
		b.log.Warn("discord: patient unreachable", "outbound", m.ID, "to", m.Destination(), "discord_code", code)
		return fmt.Errorf("discord: %s: Discord error %d: %w", m, code, service.ErrUnreachable)
	}
	return fmt.Errorf("discord: %s: %s", m, b.describe(err))
}

// call runs one REST request: it waits on the global pacer, lets discordgo
// apply the route's bucket, and retries a 429 after its retry_after, at most
// maxRateRetries times, before returning *service.RetryAfterError. route
// names the request in logs and errors (never a URL: interaction URLs hold
// a secret token).
func (b *Bot) call(ctx context.Context, route string, fn func(...discordgo.RequestOption) error) error {
	for attempt := 0; ; attempt++ {
		if err := b.pacer.Wait(ctx); err != nil {
			return err
		}
		err := fn(discordgo.WithContext(ctx))
		var rl *discordgo.RateLimitError
		if !errors.As(err, &rl) {
			return err
		}
		after := rl.RetryAfter
		if after <= 0 {
			after = 100 * time.Millisecond
		}
		if attempt >= maxRateRetries || after > maxRateWait {
			b.log.Warn("discord: rate limited; handing back", "route", route, "retry_after", after, "attempts", attempt+1)
			return &service.RetryAfterError{After: after, Err: fmt.Errorf("discord: HTTP 429 on %s", route)}
		}
		b.log.Info("discord: rate limited; retrying", "route", route, "retry_after", after)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(after):
		}
	}
}

// restCode returns Discord's JSON error code of a failed request, or 0.
func restCode(err error) int {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Message != nil {
		return re.Message.Code
	}
	return 0
}

// isHTTPStatus reports whether err is a REST error with the given status.
func isHTTPStatus(err error, status int) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == status
}

// describe renders err for logs and returned errors without secrets: no
// request URLs (interaction tokens live in them), no response bodies, and
// never the bot token.
func (b *Bot) describe(err error) string {
	if err == nil {
		return ""
	}
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil {
		s := "HTTP " + strconv.Itoa(re.Response.StatusCode)
		if re.Message != nil && re.Message.Code != 0 {
			s += " (Discord error " + strconv.Itoa(re.Message.Code) + ")"
		}
		return s
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return b.scrub(ue.Op + ": " + ue.Err.Error())
	}
	return b.scrub(err.Error())
}

// scrub removes the bot token from s, in case a library put it there.
func (b *Bot) scrub(s string) string {
	raw := strings.TrimPrefix(b.token, "Bot ")
	if raw == "" {
		return s
	}
	return strings.ReplaceAll(s, raw, "[token]")
}

// Discord's codes for a channel the bot cannot use.
const (
	codeUnknownChannel = 10003
	codeMissingAccess  = 50001
)

// CheckStaff fetches a staff channel (GET /channels/{id}) so a wrong ID or
// a bot without access is found at start-up, not by the first alert. It
// implements service.StaffChecker: a 404 or 403 wraps
// service.ErrUnreachable.
func (b *Bot) CheckStaff(ctx context.Context, dest engine.PatientID) error {
	if dest.Platform() != Platform {
		return fmt.Errorf("discord: %s is not a Discord channel", dest)
	}
	id := dest.Address()
	if !isSnowflake(id) {
		return fmt.Errorf("discord: staff channel id is not a Discord id: %w", service.ErrUnreachable)
	}
	endpoint := discordgo.EndpointChannel(id)
	err := b.call(ctx, "channels", func(o ...discordgo.RequestOption) error {
		_, err := b.s.RequestWithBucketID(http.MethodGet, endpoint, nil, discordgo.EndpointChannels, o...)
		return err
	})
	if err == nil {
		return nil
	}
	if code := restCode(err); code == codeUnknownChannel || code == codeMissingAccess || isHTTPStatus(err, http.StatusNotFound) || isHTTPStatus(err, http.StatusForbidden) {
		return fmt.Errorf("discord: channel fetch answered %d: %w", code, service.ErrUnreachable)
	}
	return fmt.Errorf("discord: channel fetch failed: %s", b.describe(err))
}
