package loadtest

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the send limits a fake Bot API enforces, as token buckets.
type Limits struct {
	// PerSecond and Burst limit the bot's messages in total.
	PerSecond float64
	Burst     int
	// PerChatPerSecond and PerChatBurst limit the messages to one chat.
	PerChatPerSecond float64
	PerChatBurst     int
}

// TelegramLimits are Telegram's documented limits for bots: about 30
// messages per second in total, and no more than one per second to one
// chat sustained (short bursts of a few are tolerated).
var TelegramLimits = Limits{PerSecond: 30, Burst: 30, PerChatPerSecond: 1, PerChatBurst: 3}

// BotAPI is a fake Telegram Bot API server that answers getMe and
// sendMessage, enforces Limits with HTTP 429 and retry_after as Telegram
// does, and records when each message was accepted. Other methods answer
// {"ok":true}. It is safe for concurrent use. It never keeps message text.
type BotAPI struct {
	srv    *httptest.Server
	limits Limits

	mu       sync.Mutex
	global   *rate.Limiter
	chats    map[int64]*rate.Limiter
	accepted []time.Time
	perChat  map[int64]int
	limited  int
	nextID   int
	// watched chats' acceptances are recorded here and left out of Stats.
	watched map[int64][]time.Time
}

// NewBotAPI starts a fake Bot API enforcing l.
func NewBotAPI(l Limits) *BotAPI {
	a := &BotAPI{
		limits:  l,
		global:  rate.NewLimiter(rate.Limit(l.PerSecond), max(1, l.Burst)),
		chats:   map[int64]*rate.Limiter{},
		perChat: map[int64]int{},
		watched: map[int64][]time.Time{},
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	return a
}

// Endpoint is the API endpoint format for the telegram adapter's Config.
func (a *BotAPI) Endpoint() string { return a.srv.URL + "/bot%s/%s" }

// Close stops the server.
func (a *BotAPI) Close() { a.srv.Close() }

// BotAPIStats is what a BotAPI saw.
type BotAPIStats struct {
	// Accepted counts messages accepted; First and Last are when the first
	// and last were.
	Accepted    int
	First, Last time.Time
	// Limited counts the answers 429.
	Limited int
	// Chats counts the chats that got messages; Duplicates counts the
	// messages beyond the first in a chat.
	Chats, Duplicates int
	// Watched counts the messages accepted for watched chats (not in the
	// figures above).
	Watched int
}

// Stats returns what the server saw so far.
func (a *BotAPI) Stats() BotAPIStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := BotAPIStats{Accepted: len(a.accepted), Limited: a.limited, Chats: len(a.perChat)}
	if len(a.accepted) > 0 {
		s.First, s.Last = a.accepted[0], a.accepted[len(a.accepted)-1]
	}
	for _, n := range a.perChat {
		s.Duplicates += n - 1
	}
	for _, ts := range a.watched {
		s.Watched += len(ts)
	}
	return s
}

// Reset forgets what the server saw, and refills its buckets.
func (a *BotAPI) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.accepted, a.limited = nil, 0
	a.perChat = map[int64]int{}
	a.chats = map[int64]*rate.Limiter{}
	a.global = rate.NewLimiter(rate.Limit(a.limits.PerSecond), max(1, a.limits.Burst))
}

func (a *BotAPI) serve(w http.ResponseWriter, r *http.Request) {
	method := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	w.Header().Set("Content-Type", "application/json")
	switch method {
	case "getMe":
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "result": map[string]any{
			"id": 4242, "is_bot": true, "first_name": "Aftercare load", "username": "aftercare_load_bot"}})
	case "sendMessage":
		if err := r.ParseForm(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error_code": 400, "description": "Bad Request: bad form"})
			return
		}
		chat, err := strconv.ParseInt(r.Form.Get("chat_id"), 10, 64)
		if err != nil || chat == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error_code": 400, "description": "Bad Request: chat not found"})
			return
		}
		id, wait := a.admit(chat, time.Now())
		if wait > 0 {
			after := int(math.Ceil(wait.Seconds()))
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error_code": 429,
				"description": "Too Many Requests: retry after " + strconv.Itoa(after), "parameters": map[string]any{"retry_after": after}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "result": map[string]any{
			"message_id": id, "date": time.Now().Unix(), "chat": map[string]any{"id": chat, "type": "private"}}})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "result": true})
	}
}

// admit takes a token from the chat's and the global bucket, or returns
// how long the sender should have waited.
func (a *BotAPI) admit(chat int64, now time.Time) (int, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cl := a.chats[chat]
	if cl == nil {
		cl = rate.NewLimiter(rate.Limit(a.limits.PerChatPerSecond), max(1, a.limits.PerChatBurst))
		a.chats[chat] = cl
	}
	cr, gr := cl.ReserveN(now, 1), a.global.ReserveN(now, 1)
	if wait := max(cr.DelayFrom(now), gr.DelayFrom(now)); wait > 0 {
		cr.CancelAt(now)
		gr.CancelAt(now)
		a.limited++
		return 0, wait
	}
	a.nextID++
	if w, ok := a.watched[chat]; ok {
		a.watched[chat] = append(w, now)
		return a.nextID, 0
	}
	a.accepted = append(a.accepted, now)
	a.perChat[chat]++
	return a.nextID, 0
}

// Watch records when each message to chat is accepted (see AcceptedAt)
// and leaves the chat out of Stats, so red flags measured during a burst
// do not count as check-ins.
func (a *BotAPI) Watch(chat int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.watched[chat]; !ok {
		a.watched[chat] = nil
	}
}

// AcceptedAt returns when the messages to a watched chat were accepted,
// in order.
func (a *BotAPI) AcceptedAt(chat int64) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.watched[chat]...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
