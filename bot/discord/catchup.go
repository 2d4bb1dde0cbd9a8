package discord

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// Reading back what was missed.
//
// The gateway only delivers messages to a connected session: a DM sent
// while the bot is stopped, restarting, or reconnecting with a new session
// never arrives as MESSAGE_CREATE. So on every READY (a new session; a
// RESUMED session has its missed events replayed by Discord) the adapter
// reads each known DM channel's history after the newest message it had
// committed from it, oldest first, and hands those messages to the
// Receiver like live ones. The service's dedupe (message IDs) makes
// messages read twice harmless; the read marks make the reading short.

// ReadMarks is the durable memory of how far each patient's DM channel was
// read. *store.Store implements it. It is declared here, where it is
// consumed, in the engine's types.
type ReadMarks interface {
	// PatientIDs lists the stored patients of a platform: the DM
	// channels to read back are theirs.
	PatientIDs(platform string) ([]engine.PatientID, error)
	// ReadMarks returns the stored marks of a platform's patients.
	ReadMarks(platform string) (map[engine.PatientID]string, error)
	// SetReadMarks stores marks in one transaction.
	SetReadMarks(marks map[engine.PatientID]string) error
}

// WithReadMarks turns on reading back missed DMs: on every new gateway
// session, the DM channels of the patients in marks are read after the
// newest message committed from each (kept in marks, so it survives
// restarts). Without it, DMs sent while the bot is down are lost.
func WithReadMarks(marks ReadMarks) Option {
	return func(o *options) { o.marks = marks }
}

// Bounds on the work of one read-back.
const (
	// catchUpWorkers is how many DM channels are read at once; every
	// request also waits on the global pacer, so sends keep their share.
	catchUpWorkers = 4
	// historyPage is Discord's largest page of channel history.
	historyPage = 100
	// maxHistoryPages bounds the messages read back per channel and
	// session (1,000); the rest is read at the next session.
	maxHistoryPages = 10
	// historyAttempts bounds the tries of one history page when Discord
	// or the network fails.
	historyAttempts = 3
	// fallbackWindow is how far back a channel without a read mark is read
	// (a patient from before read marks existed, or who never wrote). It
	// stays inside the service's dedupe horizon, so a message already
	// committed is recognised and not applied again.
	fallbackWindow = service.DedupeHorizon - 24*time.Hour
)

// discordEpoch is the first millisecond of 2015, where snowflakes start.
const discordEpoch = 1420070400000

// dmTarget is one DM channel to read back.
type dmTarget struct {
	user    string
	channel string // "" until opened (a patient without a read mark)
	after   string // read messages newer than this snowflake
	marked  bool   // after comes from a read mark, not the fallback window
}

// chase is a channel being read back. Live DMs of its user that arrive
// meanwhile are held, then queued after the older missed ones.
type chase struct {
	held  []item
	again *dmTarget // a newer session asked for another read-back
}

// catchUp is the read-back bookkeeping; guarded by Bot.mu.
type catchUp struct {
	pending map[string]dmTarget // user ID -> not read back yet this session
	running map[string]*chase   // user ID -> being read back
	ctx     context.Context     // the current round's; ends with Run or the next round
	cancel  context.CancelFunc
	rounds  int // rounds finished, for tests
}

// planCatchUp starts a read-back round for a new session. It runs on the
// gateway reader, before any later event is handled, so that every live
// DM that follows is ordered after its channel's missed ones.
func (b *Bot) planCatchUp() {
	if b.marks == nil {
		return
	}
	ids, err := b.marks.store.PatientIDs(Platform)
	if err != nil {
		b.log.Error("discord: listing patients for the read-back failed; reading back only channels with read marks", "err", b.scrub(err.Error()))
	}
	known := b.marks.snapshot()
	floor := snowflakeAt(time.Now().Add(-fallbackWindow))
	var targets []dmTarget
	seen := make(map[string]bool)
	add := func(user string) {
		if seen[user] || !isSnowflake(user) {
			return
		}
		seen[user] = true
		t := dmTarget{user: user, after: floor}
		if m, ok := known[user]; ok {
			t.channel, t.after, t.marked = m.channel, m.last, true
		}
		targets = append(targets, t)
	}
	for _, id := range ids {
		if id.Platform() == Platform {
			add(id.Address())
		}
	}
	for user := range known {
		add(user)
	}
	slices.SortFunc(targets, func(a, c dmTarget) int { return strings.Compare(a.user, c.user) })

	b.mu.Lock()
	if b.cu.cancel != nil {
		b.cu.cancel() // the previous round's workers stop taking channels
	}
	base := b.liveCtx
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithCancel(base)
	b.cu.ctx, b.cu.cancel = ctx, cancel
	for _, t := range targets {
		if t.channel == "" {
			t.channel = b.dms[t.user]
		}
		if c, ok := b.cu.running[t.user]; ok {
			c.again = &t
			continue
		}
		b.cu.pending[t.user] = t
	}
	b.mu.Unlock()
	b.log.Info("discord: reading back missed direct messages", "channels", len(targets))
	started := b.background(func(context.Context) {
		jobs := make(chan string)
		var wg sync.WaitGroup
		for range min(catchUpWorkers, max(len(targets), 1)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for user := range jobs {
					if t, ok := b.claim(user); ok {
						b.readBack(ctx, t)
					}
				}
			}()
		}
	feed:
		for _, t := range targets {
			select {
			case jobs <- t.user:
			case <-ctx.Done():
				break feed
			}
		}
		close(jobs)
		wg.Wait()
		b.mu.Lock()
		b.cu.rounds++
		b.mu.Unlock()
	})
	if !started {
		cancel()
	}
}

// claim takes a channel out of the pending set for reading back.
func (b *Bot) claim(user string) (dmTarget, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.cu.pending[user]
	if !ok {
		return t, false
	}
	delete(b.cu.pending, user)
	b.cu.running[user] = &chase{}
	b.marks.unstick(user)
	return t, true
}

// liveDM queues a DM that came over the gateway: held behind its channel's
// read-back when one is pending or running (a pending one starts at once),
// else queued for the Receiver.
func (b *Bot) liveDM(user string, it item) {
	b.mu.Lock()
	if c, ok := b.cu.running[user]; ok {
		c.held = append(c.held, it)
		b.mu.Unlock()
		return
	}
	t, ok := b.cu.pending[user]
	if !ok {
		b.enqueueLocked(user, it)
		b.mu.Unlock()
		return
	}
	delete(b.cu.pending, user)
	b.cu.running[user] = &chase{held: []item{it}}
	b.marks.unstick(user)
	ctx := b.cu.ctx
	b.mu.Unlock()
	if !b.background(func(context.Context) { b.readBack(ctx, t) }) {
		b.finishReadBack(t, nil)
	}
}

// readBack reads one DM channel's missed messages and queues them, oldest
// first, followed by the live ones held meanwhile.
func (b *Bot) readBack(ctx context.Context, t dmTarget) {
	items, newest, err := b.history(ctx, &t)
	switch {
	case len(items) > 0:
		// Once the last of them is committed, the mark moves past our own
		// replies too, so they are not read again and again.
		items[len(items)-1].markTo = newest
	case newest != "" && err == nil:
		// Nothing of the patient's: nothing to commit before moving on.
		b.marks.advance(t.user, t.channel, newest)
	}
	if err != nil {
		b.log.Warn("discord: reading back a DM channel failed; it is read again at the next session", "user", t.user, "channel", t.channel, "read", len(items), "err", b.describe(err))
	} else if len(items) > 0 {
		b.log.Info("discord: missed direct messages read back", "user", t.user, "channel", t.channel, "count", len(items))
	}
	b.finishReadBack(t, items)
}

// finishReadBack queues what was read and what was held, and starts the
// next read-back a newer session asked for meanwhile.
func (b *Bot) finishReadBack(t dmTarget, items []item) {
	b.mu.Lock()
	c := b.cu.running[t.user]
	delete(b.cu.running, t.user)
	if b.draining {
		// Nothing is committed any more; the read mark stays before these,
		// so the next start reads them back.
		held := 0
		if c != nil {
			held = len(c.held)
		}
		b.mu.Unlock()
		b.log.Info("discord: read-back cut short by shutdown; read again at the next start", "user", t.user, "read", len(items), "held", held)
		return
	}
	for _, it := range items {
		b.enqueueLocked(t.user, it)
	}
	var again *dmTarget
	if c != nil {
		for _, it := range c.held {
			b.enqueueLocked(t.user, it)
		}
		again = c.again
	}
	var ctx context.Context
	if again != nil {
		if again.channel == "" {
			again.channel = t.channel
		}
		b.cu.running[t.user] = &chase{}
		ctx = b.cu.ctx
	}
	b.mu.Unlock()
	if !t.marked && t.channel != "" {
		// The channel is known now: the next start reads it from here.
		b.marks.seed(t.user, t.channel, t.after)
	}
	if again != nil {
		next := *again
		if !b.background(func(context.Context) { b.readBack(ctx, next) }) {
			b.finishReadBack(next, nil)
		}
	}
}

// history reads t's channel after t.after, oldest first, at most
// maxHistoryPages pages, and returns the patient's own messages and the
// newest message ID read (ours included; "" when none).
func (b *Bot) history(ctx context.Context, t *dmTarget) (_ []item, newest string, _ error) {
	if t.channel == "" {
		ch, err := b.dmChannel(ctx, t.user)
		if err != nil {
			return nil, "", err
		}
		t.channel = ch
	}
	var out []item
	after := t.after
	for range maxHistoryPages {
		page, err := b.historyPage(ctx, t.channel, after)
		if err != nil {
			return out, newest, err
		}
		slices.SortFunc(page, func(x, y *discordgo.Message) int { return compareIDs(x.ID, y.ID) })
		for _, m := range page {
			if !newerID(m.ID, after) {
				continue
			}
			after, newest = m.ID, m.ID
			if m.GuildID != "" || m.ChannelID != t.channel || m.Author == nil || m.Author.ID != t.user {
				continue // our own messages, and anything not the patient's
			}
			if it, ok := b.patientDM(m); ok {
				out = append(out, it)
			}
		}
		if len(page) < historyPage {
			return out, newest, nil
		}
	}
	b.log.Warn("discord: more missed direct messages than one read-back takes; the rest is read at the next session", "user", t.user, "channel", t.channel, "read", len(out))
	return out, newest, nil
}

// historyPage fetches one page of messages after the snowflake after,
// retrying a failure of Discord or the network a few times.
func (b *Bot) historyPage(ctx context.Context, channel, after string) ([]*discordgo.Message, error) {
	wait := time.Second
	var err error
	for attempt := range historyAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
		var page []*discordgo.Message
		err = b.call(ctx, "channels/messages/history", func(o ...discordgo.RequestOption) error {
			var err error
			page, err = b.s.ChannelMessages(channel, historyPage, "", after, "", o...)
			return err
		})
		if err == nil {
			return page, nil
		}
		var re *discordgo.RESTError
		var ra *service.RetryAfterError
		if ctx.Err() != nil || errors.As(err, &ra) ||
			(errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < http.StatusInternalServerError) {
			return nil, err // not a failure that retrying soon can fix
		}
	}
	return nil, err
}

// patientDM turns a direct message into the update for the Receiver; ok is
// false for anything that is not a patient's own text message (our echoes,
// other bots, system messages).
func (b *Bot) patientDM(m *discordgo.Message) (item, bool) {
	if m == nil || m.Author == nil || m.Author.Bot || m.Author.System || m.GuildID != "" {
		return item{}, false
	}
	b.mu.Lock()
	self := m.Author.ID == b.botID
	b.mu.Unlock()
	if self || (m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply) {
		return item{}, false
	}
	return item{userID: m.Author.ID, channel: m.ChannelID, msgID: m.ID, patient: &service.Inbound{
		Patient:     engine.NewPatientID(Platform, m.Author.ID),
		Text:        m.Content,
		Invite:      service.StartInvite(m.Content), // "/start CODE", as patients are told to type it
		DedupeKey:   "discord:msg:" + m.ID,
		DisplayName: displayName(m.Author, m.Member),
	}}, true
}

// readMarks keeps, per user, the DM channel and the newest message
// committed from it, and writes changes to the store in the background
// (many at once). A mark may lag behind the commits: what it misses is
// read again and recognised by the service's dedupe.
type readMarks struct {
	store ReadMarks
	log   func(msg string, args ...any)

	mu    sync.Mutex
	last  map[string]readMark // user ID -> mark
	dirty map[string]bool
	stuck map[string]bool // a message of the user was not committed: keep the mark before it
	kick  chan struct{}
}

type readMark struct{ channel, last string }

// encode is the stored form, "channel/message".
func (m readMark) encode() string { return m.channel + "/" + m.last }

func parseMark(s string) (readMark, bool) {
	ch, last, ok := strings.Cut(s, "/")
	if !ok || !isSnowflake(ch) || !isSnowflake(last) {
		return readMark{}, false
	}
	return readMark{channel: ch, last: last}, true
}

func newReadMarks(st ReadMarks) *readMarks {
	return &readMarks{store: st, last: map[string]readMark{}, dirty: map[string]bool{}, stuck: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// load reads the stored marks; stored marks never move a newer one back.
func (r *readMarks) load() (int, error) {
	stored, err := r.store.ReadMarks(Platform)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p, s := range stored {
		m, ok := parseMark(s)
		if !ok || p.Platform() != Platform {
			continue
		}
		if cur, ok := r.last[p.Address()]; !ok || newerID(m.last, cur.last) {
			r.last[p.Address()] = m
		}
		n++
	}
	return n, nil
}

func (r *readMarks) snapshot() map[string]readMark {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]readMark, len(r.last))
	for u, m := range r.last {
		out[u] = m
	}
	return out
}

// advance records that message id of user's DM channel was committed.
func (r *readMarks) advance(user, channel, id string) {
	if r == nil || channel == "" || !isSnowflake(id) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stuck[user] {
		return
	}
	if cur, ok := r.last[user]; ok && cur.channel == channel && !newerID(id, cur.last) {
		return
	}
	r.set(user, readMark{channel: channel, last: id})
}

// seed records where a channel without a mark was read from.
func (r *readMarks) seed(user, channel, after string) {
	if r == nil || !isSnowflake(after) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.last[user]; ok {
		return
	}
	r.set(user, readMark{channel: channel, last: after})
}

func (r *readMarks) set(user string, m readMark) {
	r.last[user] = m
	r.dirty[user] = true
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// stick keeps user's mark where it is until the next read-back of the
// channel: a message of theirs was not committed and must be read again.
func (r *readMarks) stick(user string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.stuck[user] = true
	r.mu.Unlock()
}

func (r *readMarks) unstick(user string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	delete(r.stuck, user)
	r.mu.Unlock()
}

// flush writes the changed marks in one transaction.
func (r *readMarks) flush() {
	r.mu.Lock()
	if len(r.dirty) == 0 {
		r.mu.Unlock()
		return
	}
	batch := make(map[engine.PatientID]string, len(r.dirty))
	for u := range r.dirty {
		batch[engine.NewPatientID(Platform, u)] = r.last[u].encode()
	}
	clear(r.dirty)
	r.mu.Unlock()
	if err := r.store.SetReadMarks(batch); err != nil {
		r.log("discord: saving read marks failed; retrying with the next change", "count", len(batch), "err", err.Error())
		r.mu.Lock()
		for p := range batch {
			r.dirty[p.Address()] = true
		}
		r.mu.Unlock()
	}
}

// run writes marks as they change until stop is closed, then once more.
func (r *readMarks) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-r.kick:
			r.flush()
		case <-stop:
			r.flush()
			return
		}
	}
}

// snowflakeAt is the smallest snowflake of time t.
func snowflakeAt(t time.Time) string {
	ms := t.UnixMilli() - discordEpoch
	if ms < 0 {
		ms = 0
	}
	return strconv.FormatUint(uint64(ms)<<22, 10)
}

// compareIDs orders snowflakes numerically (shorter is smaller).
func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// newerID reports whether snowflake a is after b ("" is before everything).
func newerID(a, b string) bool { return compareIDs(a, b) > 0 }
