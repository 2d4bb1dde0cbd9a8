package discord

import (
	"cmp"
	"context"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/staffgate"
)

// Texts the adapter itself says. They carry no health content; everything
// about care comes from the engine.
const (
	textDMSent     = "I've sent you a private message to start your aftercare follow-up. If nothing arrives, allow direct messages from server members (Privacy Settings) and try again."
	textStaffOnly  = "Sorry, only clinic staff can use this."
	textStaffWhere = "Staff commands work only in the clinic's staff channel."
	textNotHere    = "Sorry, this isn't available here. Message me privately instead."
	textStaffGot   = "Command received."
	textLoginDM    = "Your sign-in link for the staff desk is on its way by direct message; it is never posted in this channel."
	textResendAsk  = "Sorry, something went wrong and your last message may not have reached us. Please send it again. If it is urgent, call your clinic, or your local emergency number in an emergency."
	staffQueueKey  = "\x00staff" // never a user ID
	ackWaitLimit   = 5 * time.Second
)

// item is one update waiting for the Receiver.
type item struct {
	patient *service.Inbound
	staff   *service.StaffInbound
	userID  string        // who sent it, for logs and the resend apology
	channel string        // the DM channel of a patient's message, for its read mark
	msgID   string        // the message ID of a patient's DM, for its read mark
	markTo  string        // once committed, the read mark may move here (>= msgID); "" means msgID
	ack     chan struct{} // closed once the interaction was answered; nil for messages
}

func (it item) key() string {
	if it.patient != nil {
		return it.patient.DedupeKey
	}
	return it.staff.DedupeKey
}

// queue holds one user's pending updates; a worker goroutine drains it.
type queue struct {
	items []item
}

// onMessageCreate translates a DM (or, with staff_messages, a command typed
// in the staff channel). It runs on the gateway reader and only enqueues.
func (b *Bot) onMessageCreate(_ *discordgo.Session, m *discordgo.MessageCreate) {
	if m == nil || m.Message == nil || m.Author == nil || m.Author.Bot || m.Author.System {
		return // our own echoes and other bots
	}
	b.mu.Lock()
	self := m.Author.ID == b.botID
	b.mu.Unlock()
	if self || (m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply) {
		return
	}
	if m.GuildID == "" {
		if it, ok := b.patientDM(m.Message); ok {
			b.rememberDM(m.Author.ID, m.ChannelID)
			b.liveDM(m.Author.ID, it)
		}
		return
	}
	if !b.cfg.StaffMessages || m.ChannelID != b.cfg.StaffChannelID {
		return // health talk is never read from public channels
	}
	text := strings.TrimSpace(m.Content)
	if !strings.HasPrefix(text, "/") {
		return // staff chatting among themselves
	}
	var roles []string
	if m.Member != nil {
		roles = m.Member.Roles
	}
	if !b.isStaff(m.Author.ID, m.ChannelID, roles) {
		b.log.Info("discord: staff command refused", "user", m.Author.ID, "channel", m.ChannelID)
		b.background(func(ctx context.Context) {
			err := b.call(ctx, "channels/messages", func(o ...discordgo.RequestOption) error {
				_, err := b.s.ChannelMessageSendComplex(m.ChannelID, &discordgo.MessageSend{
					Content:         textStaffOnly,
					AllowedMentions: &discordgo.MessageAllowedMentions{},
					Reference:       &discordgo.MessageReference{MessageID: m.ID, ChannelID: m.ChannelID, GuildID: m.GuildID},
				}, o...)
				return err
			})
			if err != nil {
				b.log.Warn("discord: refusal not sent", "channel", m.ChannelID, "err", b.describe(err))
			}
		})
		return
	}
	b.enqueue(staffQueueKey, item{userID: m.Author.ID, staff: &service.StaffInbound{
		Staff:     string(engine.NewPatientID(Platform, m.Author.ID)),
		Channel:   engine.NewPatientID(Platform, m.ChannelID),
		Text:      text,
		DedupeKey: "discord:msg:" + m.ID,
	}})
}

// onInteractionCreate answers every interaction at once (Discord allows
// 3 s), then queues what it means for the Receiver.
func (b *Bot) onInteractionCreate(_ *discordgo.Session, ic *discordgo.InteractionCreate) {
	if ic == nil || ic.Interaction == nil {
		return
	}
	i := ic.Interaction
	user := i.User
	var roles []string
	if i.Member != nil {
		user = i.Member.User
		roles = i.Member.Roles
	}
	if user == nil || user.Bot {
		return
	}
	key := "discord:interaction:" + i.ID
	switch i.Type {
	case discordgo.InteractionMessageComponent:
		data, ok := i.Data.(discordgo.MessageComponentInteractionData)
		if !ok {
			return
		}
		switch {
		case i.GuildID == "":
			b.rememberDM(user.ID, i.ChannelID)
			b.enqueue(user.ID, item{userID: user.ID, ack: b.respond(i, componentAck(i.Message, data.CustomID)), patient: &service.Inbound{
				Patient:     engine.NewPatientID(Platform, user.ID),
				Text:        buttonLabel(i.Message, data.CustomID),
				Choice:      data.CustomID,
				DedupeKey:   key,
				DisplayName: displayName(user, i.Member),
				Lang:        string(i.Locale),
			}})
		case i.ChannelID == b.cfg.StaffChannelID && b.isStaff(user.ID, i.ChannelID, roles):
			b.enqueue(staffQueueKey, item{userID: user.ID, ack: b.respond(i, componentAck(i.Message, data.CustomID)), staff: &service.StaffInbound{
				Staff:     string(engine.NewPatientID(Platform, user.ID)),
				Channel:   engine.NewPatientID(Platform, i.ChannelID),
				Choice:    data.CustomID,
				DedupeKey: key,
			}})
		case i.ChannelID == b.cfg.StaffChannelID:
			b.log.Info("discord: staff button refused", "user", user.ID, "interaction", i.ID)
			b.respond(i, ephemeral(textStaffOnly))
		default:
			b.respond(i, ephemeral(textNotHere))
		}
	case discordgo.InteractionApplicationCommand:
		data, ok := i.Data.(discordgo.ApplicationCommandInteractionData)
		if !ok {
			return
		}
		switch data.Name {
		case cmdAftercare:
			text, invite := startCommand(optionString(data, "code"))
			b.enqueue(user.ID, item{userID: user.ID, ack: b.respond(i, ephemeral(textDMSent)), patient: &service.Inbound{
				Patient:     engine.NewPatientID(Platform, user.ID),
				Text:        text,
				Invite:      invite,
				DedupeKey:   key,
				DisplayName: displayName(user, i.Member),
				Lang:        string(i.Locale),
			}})
		case cmdStaff:
			switch {
			case !b.isStaff(user.ID, i.ChannelID, roles) || i.GuildID == "":
				b.log.Info("discord: staff command refused", "user", user.ID, "interaction", i.ID)
				b.respond(i, ephemeral(textStaffOnly))
			case i.ChannelID != b.cfg.StaffChannelID:
				b.respond(i, ephemeral(textStaffWhere))
			default:
				text := strings.TrimSpace(optionString(data, "command"))
				if !strings.HasPrefix(text, "/") {
					text = "/" + text
				}
				ack := textStaffGot
				if c, _, ok := staffgate.Parse(text); ok && c.Name == "login" {
					ack = textLoginDM // the link itself comes as a DM (send.go, Private)
				}
				b.enqueue(staffQueueKey, item{userID: user.ID, ack: b.respond(i, ephemeral(ack)), staff: &service.StaffInbound{
					Staff:     string(engine.NewPatientID(Platform, user.ID)),
					Channel:   engine.NewPatientID(Platform, i.ChannelID),
					Text:      text,
					DedupeKey: key,
				}})
			}
		default:
			b.respond(i, ephemeral(textNotHere))
		}
	}
}

// startCommand translates the code option of the /aftercare command into
// the patient's text and the invite it presents. The command is the slash
// form of the "/start CODE" a patient may type in a DM (patientDM), so the
// text is that typed form: triage, the transcript and the answer to a
// mistyped code are the same either way. The code itself goes in Invite
// when it has the form of one, so the service never parses it back out.
func startCommand(code string) (text, invite string) {
	text = "/start"
	if code = strings.TrimSpace(code); code != "" {
		text += " " + code
		if service.IsInviteToken(code) {
			invite = code
		}
	}
	return text, invite
}

// isStaff reports whether a user speaking in a channel with roles (their
// guild roles there) is staff, as the gate decides; where staff commands
// are taken (the staff channel) is decided by the callers.
func (b *Bot) isStaff(userID, channelID string, roles []string) bool {
	who := staffgate.Who{User: string(engine.NewPatientID(Platform, userID)), Chat: engine.NewPatientID(Platform, channelID)}
	for _, r := range roles {
		who.Roles = append(who.Roles, string(engine.NewPatientID(Platform, r)))
	}
	return b.gate.Staff(who)
}

// respond answers an interaction in the background, at once and ahead of
// the Receiver, and returns a channel closed when the answer is done.
func (b *Bot) respond(i *discordgo.Interaction, resp *discordgo.InteractionResponse) chan struct{} {
	done := make(chan struct{})
	started := b.background(func(ctx context.Context) {
		defer close(done)
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err := b.call(ctx, "interactions/callback", func(o ...discordgo.RequestOption) error {
			return b.s.InteractionRespond(i, resp, o...)
		})
		if err != nil {
			b.log.Warn("discord: interaction not answered", "interaction", i.ID, "err", b.describe(err))
		}
	})
	if !started {
		close(done)
	}
	return done
}

func ephemeral(text string) *discordgo.InteractionResponse {
	return &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{
			Content:         text,
			Flags:           discordgo.MessageFlagsEphemeral,
			AllowedMentions: &discordgo.MessageAllowedMentions{},
		},
	}
}

// componentAck acknowledges a button press by updating its message: the
// buttons are disabled and the pressed one is marked, so the patient sees
// the answer was taken and cannot press twice. Without the message it
// falls back to a deferred update (type 6).
func componentAck(msg *discordgo.Message, customID string) *discordgo.InteractionResponse {
	if msg == nil || len(msg.Components) == 0 {
		return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}
	}
	var rows []discordgo.MessageComponent
	for _, c := range msg.Components {
		row, ok := asRow(c)
		if !ok {
			continue
		}
		var nr []discordgo.MessageComponent
		for _, cc := range row.Components {
			btn, ok := asButton(cc)
			if !ok {
				continue
			}
			btn.Disabled = true
			btn.Style = discordgo.SecondaryButton
			if btn.CustomID == customID {
				btn.Style = discordgo.SuccessButton
			}
			nr = append(nr, btn)
		}
		if len(nr) > 0 {
			rows = append(rows, discordgo.ActionsRow{Components: nr})
		}
	}
	if !validRows(rows) {
		// Something Discord would reject: a plain acknowledgement is safer.
		return &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}
	}
	return &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseUpdateMessage,
		Data: &discordgo.InteractionResponseData{
			Content:         msg.Content,
			Components:      rows,
			AllowedMentions: &discordgo.MessageAllowedMentions{},
		},
	}
}

// validRows reports whether button rows are within Discord's rules: 1 to
// 5 rows of 1 to 5 buttons, each with a unique custom_id of at most 100
// characters (or a link), and a label of at most 80 characters.
func validRows(rows []discordgo.MessageComponent) bool {
	if len(rows) == 0 || len(rows) > maxRows {
		return false
	}
	seen := make(map[string]bool)
	for _, r := range rows {
		row, ok := asRow(r)
		if !ok || len(row.Components) == 0 || len(row.Components) > maxButtonsPerRow {
			return false
		}
		for _, c := range row.Components {
			btn, ok := asButton(c)
			if !ok || utf8.RuneCountInString(btn.Label) > maxButtonLabel || !utf8.ValidString(btn.Label) {
				return false
			}
			if btn.URL == "" && (btn.CustomID == "" || len(btn.CustomID) > maxCustomID || seen[btn.CustomID]) {
				return false
			}
			seen[btn.CustomID] = true
		}
	}
	return true
}

// buttonLabel finds the label of the pressed button on its message.
func buttonLabel(msg *discordgo.Message, customID string) string {
	if msg == nil {
		return ""
	}
	for _, c := range msg.Components {
		row, ok := asRow(c)
		if !ok {
			continue
		}
		for _, cc := range row.Components {
			if btn, ok := asButton(cc); ok && btn.CustomID == customID {
				return btn.Label
			}
		}
	}
	return ""
}

func asRow(c discordgo.MessageComponent) (discordgo.ActionsRow, bool) {
	switch r := c.(type) {
	case *discordgo.ActionsRow:
		if r != nil {
			return *r, true
		}
	case discordgo.ActionsRow:
		return r, true
	}
	return discordgo.ActionsRow{}, false
}

func asButton(c discordgo.MessageComponent) (discordgo.Button, bool) {
	switch b := c.(type) {
	case *discordgo.Button:
		if b != nil {
			return *b, true
		}
	case discordgo.Button:
		return b, true
	}
	return discordgo.Button{}, false
}

func optionString(data discordgo.ApplicationCommandInteractionData, name string) string {
	for _, o := range data.Options {
		if o != nil && o.Name == name && o.Type == discordgo.ApplicationCommandOptionString {
			if s, ok := o.Value.(string); ok {
				return s
			}
		}
	}
	return ""
}

// displayName is what staff see in alerts: the server nickname, the
// global display name or the username. Personal data: never logged.
func displayName(u *discordgo.User, m *discordgo.Member) string {
	if m != nil && m.Nick != "" {
		return m.Nick
	}
	if u == nil {
		return ""
	}
	if u.GlobalName != "" {
		return u.GlobalName
	}
	return u.Username
}

// background runs f on its own goroutine, counted for shutdown. It returns
// false (and does not run f) once the bot is draining.
func (b *Bot) background(f func(ctx context.Context)) bool {
	b.mu.Lock()
	if b.draining || b.runCtx == nil {
		b.mu.Unlock()
		return false
	}
	ctx := b.runCtx
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		f(ctx)
	}()
	return true
}

// enqueue appends an update to its user's queue, starting the user's
// worker if it is idle, so each user's updates reach the Receiver in order.
func (b *Bot) enqueue(key string, it item) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enqueueLocked(key, it)
}

// enqueueLocked is enqueue with b.mu held.
func (b *Bot) enqueueLocked(key string, it item) {
	if b.draining || b.runCtx == nil {
		b.log.Error("discord: update arrived while shutting down; not handled", "dedupe_key", it.key())
		return
	}
	q, ok := b.queues[key]
	if ok {
		q.items = append(q.items, it)
		return
	}
	q = &queue{items: []item{it}}
	b.queues[key] = q
	ctx := b.runCtx
	b.wg.Add(1)
	go b.drain(ctx, key, q)
}

// drain hands one user's updates to the Receiver until the queue is empty.
func (b *Bot) drain(ctx context.Context, key string, q *queue) {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		if len(q.items) == 0 {
			delete(b.queues, key)
			b.mu.Unlock()
			return
		}
		it := q.items[0]
		q.items = q.items[1:]
		b.mu.Unlock()
		b.deliver(ctx, it)
	}
}

// deliver hands one update to the Receiver, once: keys already delivered
// (Discord replays events after a RESUME) are skipped. A failing Receive is
// retried with backoff; if it never succeeds the patient is asked to send
// the message again, so it is not lost silently.
func (b *Bot) deliver(ctx context.Context, it item) {
	if it.ack != nil {
		select {
		case <-it.ack:
		case <-time.After(ackWaitLimit):
		}
	}
	key := it.key()
	if !b.seen.add(key) {
		b.log.Info("discord: duplicate update skipped", "dedupe_key", key)
		if it.msgID != "" {
			// The copy before it, in the same user's queue, was committed.
			b.marks.advance(it.userID, it.channel, cmp.Or(it.markTo, it.msgID))
		}
		return
	}
	wait := b.opts.receiveBackoff
	var err error
	for attempt := 0; attempt < b.opts.receiveRetries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait *= 2
		}
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		if it.patient != nil {
			err = b.recv.Receive(ctx, *it.patient)
		} else {
			err = b.recv.ReceiveStaff(ctx, *it.staff)
		}
		if err == nil {
			b.log.Debug("discord: update delivered", "dedupe_key", key)
			if it.msgID != "" {
				b.marks.advance(it.userID, it.channel, cmp.Or(it.markTo, it.msgID))
			}
			return
		}
		b.log.Warn("discord: receiver failed", "dedupe_key", key, "attempt", attempt+1, "err", b.scrub(err.Error()))
	}
	b.seen.remove(key) // a redelivery may try again
	if it.msgID != "" {
		b.marks.stick(it.userID) // the next read-back reads it again
	}
	b.log.Error("discord: update not committed", "dedupe_key", key, "user", it.userID, "err", b.scrub(err.Error()))
	if it.patient == nil {
		return
	}
	// Tell the patient, with a fresh context: the Run context may be over.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	serr := b.Send(sctx, engine.Outbound{To: it.patient.Patient, Kind: engine.KindReply, Text: textResendAsk})
	if serr != nil {
		b.log.Error("discord: resend request not sent", "user", it.userID, "err", b.scrub(serr.Error()))
	}
}

// seenSet remembers the most recent delivered dedupe keys, bounded; the
// service's store is the durable dedupe, this only saves it the work.
type seenSet struct {
	mu   sync.Mutex
	max  int
	keys map[string]struct{}
	ring []string
	next int
}

func newSeenSet(max int) *seenSet {
	return &seenSet{max: max, keys: make(map[string]struct{}, max), ring: make([]string, max)}
}

// add records key and reports whether it was new.
func (s *seenSet) add(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[key]; ok {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.keys, old)
	}
	s.ring[s.next] = key
	s.next = (s.next + 1) % s.max
	s.keys[key] = struct{}{}
	return true
}

// remove forgets key (its slot in the ring is simply left to expire).
func (s *seenSet) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, key)
}
