// Package discordfake is a fake Discord for tests: one httptest server that
// speaks the real gateway protocol over a websocket and serves the REST
// routes the Aftercare adapter uses, so that discordgo itself is exercised.
//
// # Gateway
//
// The gateway sends HELLO (op 10), answers IDENTIFY (op 2) with a READY
// dispatch, heartbeats (op 1) with ACKs (op 11), and RESUME (op 6) by
// replaying the dispatches the client missed followed by RESUMED. Each
// dispatch gets the session's next sequence number and is kept in the
// session's log, so dispatches made while the client is disconnected are
// delivered on resume. When the client asked for compression in IDENTIFY
// and the server was built WithCompression, dispatches are sent as
// zlib-compressed binary frames. Tests can drop the connection (Drop), ask
// the client to reconnect (op 7, Reconnect) or invalidate its session
// (op 9, InvalidSession), or refuse new connections (RefuseGateway). A client closing with code 1000 or 1001
// invalidates its session, as on Discord.
//
// # REST
//
// GET /api/v*/gateway and /gateway/bot return the fake's own ws:// URL.
// GET /users/@me, POST /users/@me/channels, POST /channels/{id}/messages,
// POST /interactions/{id}/{token}/callback and the application command
// routes are served and recorded. GET /channels/{id}/messages serves the
// channel's history (the users' DMs and the bot's posts) with Discord's
// semantics: limit 1-100 (default 50), at most one of after, before and
// around, and the page always sorted newest first; with after it is the
// messages just after that ID. Message IDs are real snowflakes (time-based),
// so a client can compute one from a time. DMs sent while no client is
// connected are kept in the history but, as on Discord, never dispatched
// to a later session. Tests can force 429s (with retry_after
// and X-RateLimit-* headers, optionally global), close a user's DMs (error
// 50007), and enable an honest per-route limit to check that the client's
// buckets hold. Every request must carry "Authorization: Bot <token>".
//
// # Concurrency
//
// All methods are safe for concurrent use. Several fakes can run in
// parallel: nothing is global.
package discordfake

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// BotUserID is the fake bot's user (and application) ID.
const BotUserID = "1000000000000000001"

// Option configures a Server.
type Option func(*Server)

// WithCompression makes the gateway send dispatches as zlib-compressed
// binary frames to clients that asked for compression in IDENTIFY.
func WithCompression() Option { return func(s *Server) { s.compress = true } }

// WithHeartbeatInterval sets the heartbeat_interval sent in HELLO (default 1 s).
func WithHeartbeatInterval(d time.Duration) Option {
	return func(s *Server) { s.heartbeat = d }
}

// WithRouteLimit enforces an honest per-channel limit on POST
// /channels/{id}/messages: n messages per window, reported in the
// X-RateLimit-* headers; exceeding it returns a 429 counted by
// UnsolicitedLimits.
func WithRouteLimit(n int, window time.Duration) Option {
	return func(s *Server) { s.routeN, s.routeWindow = n, window }
}

// Server is a fake Discord. Create it with New and Close it after the
// client's session is closed.
type Server struct {
	srv       *httptest.Server
	token     string
	compress  bool
	heartbeat time.Duration

	routeN      int
	routeWindow time.Duration

	gone map[string]bool // channels GET /channels/{id} answers 404 Unknown Channel for

	mu          sync.Mutex
	nextID      uint64
	sessions    map[string]*session
	cur         *session
	identifies  int
	resumes     int
	dms         map[string]string // user ID -> DM channel ID
	dmUser      map[string]string // DM channel ID -> user ID
	closedDMs   map[string]bool
	forced      []forced
	messages    []Message
	history     map[string][]stored // channel ID -> messages, oldest first
	attempts    int
	nonces      map[string]Message
	callbacks   []Callback
	pending     map[string]time.Time // interaction ID -> dispatched at
	answered    map[string]bool
	commands    []Commands
	requests    []Request
	unexpected  []Request
	buckets     map[string]*bucket
	unsolicited int
	resend      int64
	zframes     int
	refusing    bool // the gateway answers 503 (Discord's gateway down)
	refused     int
}

// stored is one message of a channel's history, as Discord returns it.
type stored struct {
	id  string
	raw json.RawMessage
}

type forced struct {
	pass   bool
	after  time.Duration
	global bool
}

type bucket struct {
	reset time.Time
	used  int
}

type session struct {
	id       string
	seq      int64
	log      []event
	conn     *conn
	compress bool
	intents  int64
}

type event struct {
	seq int64
	t   string
	d   json.RawMessage
}

type conn struct {
	ws   *websocket.Conn
	wmu  sync.Mutex
	sess *session
}

// Message is a message the client posted, as the fake recorded it.
type Message struct {
	ID           string
	ChannelID    string
	Content      string
	Nonce        string
	EnforceNonce bool
	// AllowedMentions is the raw allowed_mentions object, nil if absent.
	AllowedMentions json.RawMessage
	// Components is the raw components array, nil if absent.
	Components json.RawMessage
	// Buttons are the buttons found in Components, in order.
	Buttons []Button
	At      time.Time
}

// Button is one button of a posted message.
type Button struct {
	Row      int
	CustomID string
	Label    string
	Style    int
	Disabled bool
}

// Callback is an interaction response the client posted.
type Callback struct {
	InteractionID string
	Type          int
	Content       string
	Flags         int
	Buttons       []Button
	// Delay is the time from the interaction's dispatch to its response.
	Delay time.Duration
	At    time.Time
}

// Commands is one registration of application commands.
type Commands struct {
	Method  string
	GuildID string
	Names   []string
}

// Request is one REST request the fake received (body kept as sent).
type Request struct {
	Method string
	Path   string
	Query  string // the raw query string
	Body   []byte
	At     time.Time
}

// New starts a fake Discord that accepts the bot token token (without the
// "Bot " prefix).
func New(token string, opts ...Option) *Server {
	s := &Server{
		token:     token,
		heartbeat: time.Second,
		nextID:    1100000000000000000,
		sessions:  make(map[string]*session),
		dms:       make(map[string]string),
		dmUser:    make(map[string]string),
		closedDMs: make(map[string]bool),
		nonces:    make(map[string]Message),
		pending:   make(map[string]time.Time),
		answered:  make(map[string]bool),
		buckets:   make(map[string]*bucket),
		history:   make(map[string][]stored),
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/", s.serveGateway)
	mux.HandleFunc("GET /api/{v}/gateway", s.rest(s.getGateway))
	mux.HandleFunc("GET /api/{v}/gateway/bot", s.rest(s.getGateway))
	mux.HandleFunc("GET /api/{v}/users/@me", s.rest(s.getMe))
	mux.HandleFunc("POST /api/{v}/users/@me/channels", s.rest(s.postDM))
	mux.HandleFunc("POST /api/{v}/channels/{id}/messages", s.rest(s.postMessage))
	mux.HandleFunc("GET /api/{v}/channels/{id}/messages", s.rest(s.getMessages))
	mux.HandleFunc("GET /api/{v}/channels/{id}", s.rest(s.getChannel))
	mux.HandleFunc("POST /api/{v}/interactions/{id}/{token}/callback", s.rest(s.postCallback))
	mux.HandleFunc("PUT /api/{v}/applications/{app}/guilds/{guild}/commands", s.rest(s.putCommands))
	mux.HandleFunc("PUT /api/{v}/applications/{app}/commands", s.rest(s.putCommands))
	mux.HandleFunc("/", s.rest(s.notFound))
	s.srv = httptest.NewServer(mux)
	return s
}

// URL is the fake's base URL (http://127.0.0.1:port), for Config.APIBase.
func (s *Server) URL() string { return s.srv.URL }

// Close drops every connection and stops the server. Close the client's
// session first, so it does not start reconnecting.
func (s *Server) Close() {
	s.mu.Lock()
	for _, ss := range s.sessions {
		if ss.conn != nil {
			ss.conn.ws.Close()
		}
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// discordEpoch is the first millisecond of 2015, where snowflakes start.
const discordEpoch = 1420070400000

// id returns a new snowflake: the current time, made unique and
// increasing; s.mu is held.
func (s *Server) id() string {
	next := uint64(time.Now().UnixMilli()-discordEpoch) << 22
	if next <= s.nextID {
		next = s.nextID + 1
	}
	s.nextID = next
	return strconv.FormatUint(next, 10)
}

// ---- gateway ----

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

type payload struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int64          `json:"s,omitempty"`
	T  string          `json:"t,omitempty"`
}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	refusing := s.refusing
	if refusing {
		s.refused++
	}
	s.mu.Unlock()
	if refusing {
		http.Error(w, "gateway unavailable", http.StatusServiceUnavailable)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{ws: ws}
	defer ws.Close()
	hello, _ := json.Marshal(map[string]any{"heartbeat_interval": s.heartbeat.Milliseconds()})
	if c.write(payload{Op: 10, D: hello}, false) != nil {
		return
	}
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			s.detach(c, err)
			return
		}
		if mt != websocket.TextMessage {
			continue
		}
		var p payload
		if json.Unmarshal(data, &p) != nil {
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "Error while decoding payload."), time.Now().Add(time.Second))
			return
		}
		switch p.Op {
		case 1:
			c.write(payload{Op: 11}, false)
		case 2:
			if !s.identify(c, p.D) {
				return
			}
		case 6:
			s.resume(c, p.D)
		}
	}
}

func (c *conn) write(p payload, compress bool) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	mt := websocket.TextMessage
	if compress {
		var buf bytes.Buffer
		zw := zlib.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		b, mt = buf.Bytes(), websocket.BinaryMessage
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
	return c.ws.WriteMessage(mt, b)
}

// detach unlinks a closed connection; a clean close (1000/1001) ends the session.
func (s *Server) detach(c *conn, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.sess == nil || c.sess.conn != c {
		return
	}
	c.sess.conn = nil
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
		delete(s.sessions, c.sess.id)
	}
}

func (s *Server) identify(c *conn, d json.RawMessage) bool {
	var id struct {
		Token    string `json:"token"`
		Compress bool   `json:"compress"`
		Intents  int64  `json:"intents"`
	}
	json.Unmarshal(d, &id)
	if strings.TrimPrefix(id.Token, "Bot ") != s.token {
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4004, "Authentication failed."), time.Now().Add(time.Second))
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identifies++
	if c.sess != nil && c.sess.conn == c {
		c.sess.conn = nil
	}
	ss := &session{id: fmt.Sprintf("fake-session-%s", s.id()), compress: id.Compress && s.compress, intents: id.Intents}
	s.sessions[ss.id] = ss
	s.cur = ss
	s.attach(ss, c)
	ready, _ := json.Marshal(map[string]any{
		"v":                  9,
		"user":               map[string]any{"id": BotUserID, "username": "aftercare", "bot": true},
		"session_id":         ss.id,
		"resume_gateway_url": "ws://" + s.srv.Listener.Addr().String() + "/ws",
		"guilds":             []any{},
		"private_channels":   []any{},
		"application":        map[string]any{"id": BotUserID, "flags": 0},
	})
	s.dispatchLocked(ss, "READY", ready)
	return true
}

func (s *Server) attach(ss *session, c *conn) {
	if old := ss.conn; old != nil && old != c {
		old.ws.Close()
	}
	ss.conn = c
	c.sess = ss
}

func (s *Server) resume(c *conn, d json.RawMessage) {
	var r struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}
	json.Unmarshal(d, &r)
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[r.SessionID]
	if !ok || strings.TrimPrefix(r.Token, "Bot ") != s.token {
		c.write(payload{Op: 9, D: json.RawMessage("false")}, false)
		return
	}
	s.resumes++
	s.attach(ss, c)
	for _, e := range ss.log {
		if e.seq > r.Seq-s.resend && e.t != "READY" {
			seq := e.seq
			if s.send(c, payload{Op: 0, T: e.t, S: &seq, D: e.d}, ss.compress) != nil {
				return
			}
		}
	}
	seq := ss.seq
	s.send(c, payload{Op: 0, T: "RESUMED", S: &seq, D: json.RawMessage("{}")}, ss.compress)
}

// send writes a dispatch, counting compressed frames; s.mu is held.
func (s *Server) send(c *conn, p payload, compress bool) error {
	if compress {
		s.zframes++
	}
	return c.write(p, compress)
}

// dispatchLocked logs a dispatch in the session and sends it if connected.
func (s *Server) dispatchLocked(ss *session, t string, d json.RawMessage) int64 {
	ss.seq++
	ss.log = append(ss.log, event{seq: ss.seq, t: t, d: d})
	if ss.conn != nil {
		seq := ss.seq
		if err := s.send(ss.conn, payload{Op: 0, T: t, S: &seq, D: d}, ss.compress); err != nil {
			ss.conn.ws.Close()
			ss.conn = nil
		}
	}
	return ss.seq
}

// Dispatch sends a dispatch event of type t with data d to the current
// session (kept for replay if the client is disconnected) and returns its
// sequence number. It panics if no client ever identified.
func (s *Server) Dispatch(t string, d any) int64 {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dispatchLocked(s.mustSession(), t, b)
}

func (s *Server) mustSession() *session {
	if s.cur == nil {
		panic("discordfake: no session: wait for Connected before dispatching")
	}
	return s.cur
}

// Connected reports whether a client is connected and identified or resumed.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && s.cur.conn != nil
}

// Identifies and Resumes count the client's IDENTIFY and successful RESUME.
func (s *Server) Identifies() int { s.mu.Lock(); defer s.mu.Unlock(); return s.identifies }

// Resumes counts successful RESUMEs.
func (s *Server) Resumes() int { s.mu.Lock(); defer s.mu.Unlock(); return s.resumes }

// Intents returns the intents of the current session's IDENTIFY.
func (s *Server) Intents() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mustSession().intents
}

// Drop cuts the current connection without a close frame, like a network blip.
func (s *Server) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.cur; ss != nil && ss.conn != nil {
		ss.conn.ws.NetConn().Close()
		ss.conn = nil
	}
}

// Reconnect sends op 7 RECONNECT: the client should reconnect and resume.
func (s *Server) Reconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.cur; ss != nil && ss.conn != nil {
		ss.conn.write(payload{Op: 7, D: json.RawMessage("null")}, false)
	}
}

// InvalidSession sends op 9 INVALID SESSION with d=resumable; for a
// non-resumable one the session is forgotten.
func (s *Server) InvalidSession(resumable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.cur; ss != nil && ss.conn != nil {
		ss.conn.write(payload{Op: 9, D: json.RawMessage(strconv.FormatBool(resumable))}, false)
		if !resumable {
			delete(s.sessions, ss.id)
		}
	}
}

// ---- dispatch helpers ----

func user(id string) map[string]any {
	return map[string]any{"id": id, "username": "user" + id, "global_name": "Patient " + id, "discriminator": "0"}
}

// DMChannel returns the user's DM channel, creating it if needed.
func (s *Server) DMChannel(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dmLocked(userID)
}

func (s *Server) dmLocked(userID string) string {
	if ch, ok := s.dms[userID]; ok {
		return ch
	}
	ch := s.id()
	s.dms[userID] = ch
	s.dmUser[ch] = userID
	return ch
}

// DM records a direct message from userID in the DM channel's history,
// dispatches MESSAGE_CREATE for it to the current session, and returns the
// message ID. When no client is connected the message stays in the history
// only: Discord does not deliver it to a later session.
func (s *Server) DM(userID, content string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.id()
	ch := s.dmLocked(userID)
	msg := mustJSON(map[string]any{
		"id": id, "type": 0, "channel_id": ch, "author": user(userID),
		"content": content, "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"mentions": []any{}, "attachments": []any{}, "embeds": []any{},
	})
	s.history[ch] = append(s.history[ch], stored{id: id, raw: msg})
	if s.cur != nil {
		s.dispatchLocked(s.cur, "MESSAGE_CREATE", msg)
	}
	return id
}

// GuildMessage dispatches MESSAGE_CREATE for a message in a guild channel
// and returns the message ID.
func (s *Server) GuildMessage(guildID, channelID, userID string, roles []string, content string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.id()
	s.dispatchLocked(s.mustSession(), "MESSAGE_CREATE", mustJSON(map[string]any{
		"id": id, "type": 0, "channel_id": channelID, "guild_id": guildID, "author": user(userID),
		"member": map[string]any{"roles": nonNil(roles)}, "content": content,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"mentions":  []any{}, "attachments": []any{}, "embeds": []any{},
	}))
	return id
}

// Click dispatches INTERACTION_CREATE for a press of the button customID
// on message m by userID: in a DM when guildID is empty, else as a guild
// member with roles. It returns the interaction ID.
func (s *Server) Click(guildID, userID string, roles []string, m Message, customID string) string {
	msg := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "content": m.Content, "type": 0,
		"author": map[string]any{"id": BotUserID, "username": "aftercare", "bot": true},
	}
	if m.Components != nil {
		msg["components"] = m.Components
	}
	return s.interaction(guildID, m.ChannelID, userID, roles, 3, map[string]any{"custom_id": customID, "component_type": 2}, msg)
}

// Slash dispatches INTERACTION_CREATE for the slash command name with
// string options, used in channelID of guildID by userID with roles. It
// returns the interaction ID.
func (s *Server) Slash(guildID, channelID, userID string, roles []string, name string, opts map[string]string) string {
	var o []any
	for k, v := range opts {
		o = append(o, map[string]any{"name": k, "type": 3, "value": v})
	}
	return s.interaction(guildID, channelID, userID, roles, 2, map[string]any{"id": "1", "name": name, "type": 1, "options": nonNil(o)}, nil)
}

func (s *Server) interaction(guildID, channelID, userID string, roles []string, typ int, data, msg map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.id()
	in := map[string]any{
		"id": id, "application_id": BotUserID, "type": typ, "token": "itok-" + id, "version": 1,
		"channel_id": channelID, "data": data, "locale": "en-US",
	}
	if guildID != "" {
		in["guild_id"] = guildID
		in["member"] = map[string]any{"user": user(userID), "roles": nonNil(roles)}
	} else {
		in["user"] = user(userID)
	}
	if msg != nil {
		in["message"] = msg
	}
	s.pending[id] = time.Now()
	s.dispatchLocked(s.mustSession(), "INTERACTION_CREATE", mustJSON(in))
	return id
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// ---- REST ----

type apiError struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// rest wraps a handler with authentication and recording.
func (s *Server) rest(h func(w http.ResponseWriter, r *http.Request, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body, At: time.Now()})
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bot "+s.token {
			writeJSON(w, http.StatusUnauthorized, apiError{"401: Unauthorized", 0})
			return
		}
		h(w, r, body)
	}
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	s.unexpected = append(s.unexpected, Request{Method: r.Method, Path: r.URL.Path, Body: body, At: time.Now()})
	s.mu.Unlock()
	writeJSON(w, http.StatusNotFound, apiError{"404: Not Found", 0})
}

func (s *Server) getGateway(w http.ResponseWriter, r *http.Request, _ []byte) {
	out := map[string]any{"url": "ws://" + s.srv.Listener.Addr().String() + "/ws"}
	if strings.HasSuffix(r.URL.Path, "/bot") {
		out["shards"] = 1
		out["session_start_limit"] = map[string]any{"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getMe(w http.ResponseWriter, _ *http.Request, _ []byte) {
	writeJSON(w, http.StatusOK, map[string]any{"id": BotUserID, "username": "aftercare", "bot": true})
}

func (s *Server) postDM(w http.ResponseWriter, _ *http.Request, body []byte) {
	var req struct {
		RecipientID string `json:"recipient_id"`
	}
	if json.Unmarshal(body, &req) != nil || req.RecipientID == "" {
		writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
		return
	}
	ch := s.DMChannel(req.RecipientID)
	writeJSON(w, http.StatusOK, map[string]any{"id": ch, "type": 1, "recipients": []any{user(req.RecipientID)}})
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	channelID := r.PathValue("id")
	s.mu.Lock()
	s.attempts++
	if len(s.forced) > 0 {
		f := s.forced[0]
		s.forced = s.forced[1:]
		if !f.pass {
			s.mu.Unlock()
			write429(w, f.after, f.global, "fake-messages")
			return
		}
	}
	if s.routeN > 0 {
		b := s.buckets[channelID]
		now := time.Now()
		if b == nil || now.After(b.reset) {
			b = &bucket{reset: now.Add(s.routeWindow)}
			s.buckets[channelID] = b
		}
		if b.used >= s.routeN {
			s.unsolicited++
			s.mu.Unlock()
			write429(w, time.Until(b.reset), false, "fake-messages")
			return
		}
		b.used++
		w.Header().Set("X-RateLimit-Limit", strconv.Itoa(s.routeN))
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(s.routeN-b.used))
		w.Header().Set("X-RateLimit-Reset-After", seconds(time.Until(b.reset)))
		w.Header().Set("X-RateLimit-Bucket", "fake-messages")
	} else {
		w.Header().Set("X-RateLimit-Limit", "5")
		w.Header().Set("X-RateLimit-Remaining", "4")
		w.Header().Set("X-RateLimit-Reset-After", "1")
		w.Header().Set("X-RateLimit-Bucket", "fake-messages")
	}
	if u, ok := s.dmUser[channelID]; ok && s.closedDMs[u] {
		s.mu.Unlock()
		writeJSON(w, http.StatusForbidden, apiError{"Cannot send messages to this user", 50007})
		return
	}
	var p struct {
		Content         string          `json:"content"`
		Nonce           json.RawMessage `json:"nonce"`
		EnforceNonce    bool            `json:"enforce_nonce"`
		AllowedMentions json.RawMessage `json:"allowed_mentions"`
		Components      json.RawMessage `json:"components"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
		return
	}
	btns, err := parseButtons(p.Components)
	if err != nil || len([]rune(p.Content)) > 2000 || (strings.TrimSpace(p.Content) == "" && len(btns) == 0) {
		s.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
		return
	}
	nonce := strings.Trim(string(p.Nonce), `"`)
	if p.EnforceNonce && nonce != "" {
		if m, ok := s.nonces[channelID+"/"+nonce]; ok {
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"id": m.ID, "channel_id": channelID, "content": m.Content})
			return
		}
	}
	m := Message{
		ID: s.id(), ChannelID: channelID, Content: p.Content, Nonce: nonce, EnforceNonce: p.EnforceNonce,
		AllowedMentions: p.AllowedMentions, Buttons: btns, At: time.Now(),
	}
	if len(p.Components) > 0 && string(p.Components) != "null" {
		m.Components = p.Components
	}
	s.messages = append(s.messages, m)
	if nonce != "" {
		s.nonces[channelID+"/"+nonce] = m
	}
	bot := map[string]any{"id": BotUserID, "username": "aftercare", "bot": true}
	echo := mustJSON(map[string]any{
		"id": m.ID, "type": 0, "channel_id": channelID, "author": bot, "content": m.Content,
		"timestamp": m.At.UTC().Format(time.RFC3339Nano), "mentions": []any{}, "attachments": []any{}, "embeds": []any{},
	})
	s.history[channelID] = append(s.history[channelID], stored{id: m.ID, raw: echo})
	if _, dm := s.dmUser[channelID]; dm && s.cur != nil {
		// Discord echoes the bot's own DMs over the gateway.
		s.dispatchLocked(s.cur, "MESSAGE_CREATE", echo)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"id": m.ID, "channel_id": channelID, "content": m.Content, "author": bot})
}

// getMessages serves a channel's history like Discord's Get Channel
// Messages: at most limit messages, newest first, after, before or around
// a message ID (or the latest ones).
func (s *Server) getMessages(w http.ResponseWriter, r *http.Request, _ []byte) {
	channelID := r.PathValue("id")
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
			return
		}
		limit = n
	}
	after, before, around := q.Get("after"), q.Get("before"), q.Get("around")
	set := 0
	for _, v := range []string{after, before, around} {
		if v != "" {
			set++
			if _, err := strconv.ParseUint(v, 10, 64); err != nil {
				writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
				return
			}
		}
	}
	if set > 1 {
		writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
		return
	}
	s.mu.Lock()
	all := s.history[channelID] // oldest first; IDs increase
	_, dm := s.dmUser[channelID]
	s.mu.Unlock()
	if !dm && all == nil {
		writeJSON(w, http.StatusNotFound, apiError{"Unknown Channel", 10003})
		return
	}
	num := func(id string) uint64 { n, _ := strconv.ParseUint(id, 10, 64); return n }
	var page []stored
	switch {
	case after != "":
		a := num(after)
		for _, m := range all {
			if num(m.id) > a && len(page) < limit {
				page = append(page, m)
			}
		}
	case before != "":
		b := num(before)
		for i := len(all) - 1; i >= 0 && len(page) < limit; i-- {
			if num(all[i].id) < b {
				page = append([]stored{all[i]}, page...)
			}
		}
	case around != "":
		c := num(around)
		mid := len(all)
		for i, m := range all {
			if num(m.id) >= c {
				mid = i
				break
			}
		}
		lo := max(0, mid-limit/2)
		page = all[lo:min(len(all), lo+limit)]
	default:
		page = all[max(0, len(all)-limit):]
	}
	out := make([]json.RawMessage, 0, len(page))
	for i := len(page) - 1; i >= 0; i-- { // newest first, as Discord sends it
		out = append(out, page[i].raw)
	}
	w.Header().Set("X-RateLimit-Limit", "5")
	w.Header().Set("X-RateLimit-Remaining", "4")
	w.Header().Set("X-RateLimit-Reset-After", "1")
	w.Header().Set("X-RateLimit-Bucket", "fake-history")
	writeJSON(w, http.StatusOK, out)
}

// HistoryReads returns the GET /channels/{id}/messages requests received,
// in order, so tests can check where a client read from.
func (s *Server) HistoryReads() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method == http.MethodGet && strings.Contains(r.Path, "/channels/") && strings.HasSuffix(r.Path, "/messages") {
			out = append(out, r)
		}
	}
	return out
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(math.Max(d.Seconds(), 0), 'f', 3, 64)
}

func write429(w http.ResponseWriter, after time.Duration, global bool, bucketID string) {
	h := w.Header()
	h.Set("X-RateLimit-Limit", "5")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset-After", seconds(after))
	h.Set("X-RateLimit-Bucket", bucketID)
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
	scope := "user"
	if global {
		h.Set("X-RateLimit-Global", "true")
		scope = "global"
	}
	h.Set("X-RateLimit-Scope", scope)
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"message": "You are being rate limited.", "retry_after": after.Seconds(), "global": global, "code": 0,
	})
}

func parseButtons(raw json.RawMessage) ([]Button, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rows []struct {
		Type       int `json:"type"`
		Components []struct {
			Type     int    `json:"type"`
			CustomID string `json:"custom_id"`
			Label    string `json:"label"`
			Style    int    `json:"style"`
			Disabled bool   `json:"disabled"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, err
	}
	if len(rows) > 5 {
		return nil, fmt.Errorf("too many rows")
	}
	var out []Button
	seen := map[string]bool{}
	for i, r := range rows {
		if r.Type != 1 || len(r.Components) == 0 || len(r.Components) > 5 {
			return nil, fmt.Errorf("bad action row")
		}
		for _, c := range r.Components {
			if c.Type != 2 || c.CustomID == "" || len(c.CustomID) > 100 || seen[c.CustomID] || len([]rune(c.Label)) > 80 {
				return nil, fmt.Errorf("bad button")
			}
			seen[c.CustomID] = true
			out = append(out, Button{Row: i, CustomID: c.CustomID, Label: c.Label, Style: c.Style, Disabled: c.Disabled})
		}
	}
	return out, nil
}

func (s *Server) postCallback(w http.ResponseWriter, r *http.Request, body []byte) {
	id, tok := r.PathValue("id"), r.PathValue("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.pending[id]
	if !ok || tok != "itok-"+id {
		writeJSON(w, http.StatusNotFound, apiError{"Unknown interaction", 10062})
		return
	}
	if s.answered[id] {
		writeJSON(w, http.StatusBadRequest, apiError{"Interaction has already been acknowledged.", 40060})
		return
	}
	var p struct {
		Type int `json:"type"`
		Data *struct {
			Content    string          `json:"content"`
			Flags      int             `json:"flags"`
			Components json.RawMessage `json:"components"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &p) != nil || p.Type == 0 {
		writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
		return
	}
	now := time.Now()
	if now.Sub(at) > 3*time.Second {
		writeJSON(w, http.StatusNotFound, apiError{"Unknown interaction", 10062})
		return
	}
	cb := Callback{InteractionID: id, Type: p.Type, Delay: now.Sub(at), At: now}
	if p.Data != nil {
		cb.Content, cb.Flags = p.Data.Content, p.Data.Flags
		btns, err := parseButtons(p.Data.Components)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
			return
		}
		cb.Buttons = btns
	}
	s.answered[id] = true
	s.callbacks = append(s.callbacks, cb)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) putCommands(w http.ResponseWriter, r *http.Request, body []byte) {
	var cmds []struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(body, &cmds) != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"Invalid Form Body", 50035})
		return
	}
	c := Commands{Method: r.Method, GuildID: r.PathValue("guild")}
	out := make([]map[string]any, 0, len(cmds))
	s.mu.Lock()
	for _, cmd := range cmds {
		c.Names = append(c.Names, cmd.Name)
		out = append(out, map[string]any{"id": s.id(), "application_id": BotUserID, "name": cmd.Name, "type": 1, "version": "1"})
	}
	s.commands = append(s.commands, c)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// ---- test controls and records ----

// Force429 makes the next n POST /channels/{id}/messages answer 429 with
// retry_after after (global sets X-RateLimit-Global).
func (s *Server) Force429(n int, after time.Duration, global bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.forced = append(s.forced, forced{after: after, global: global})
	}
}

// Pass lets the next n POST /channels/{id}/messages through before any
// 429 queued after it with Force429.
func (s *Server) Pass(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.forced = append(s.forced, forced{pass: true})
	}
}

// ResendOnResume makes every later RESUME replay n dispatches the client
// had already acknowledged, as well as the missed ones, so duplicate
// handling can be tested.
func (s *Server) ResendOnResume(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resend = int64(n)
}

// RefuseGateway makes the gateway's websocket answer 503 (on) instead of
// connecting, as when Discord's gateway is down; REST keeps working.
func (s *Server) RefuseGateway(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusing = on
}

// GatewayRefusals counts connection attempts refused by RefuseGateway.
func (s *Server) GatewayRefusals() int { s.mu.Lock(); defer s.mu.Unlock(); return s.refused }

// CompressedFrames counts dispatches sent as zlib-compressed binary frames.
func (s *Server) CompressedFrames() int { s.mu.Lock(); defer s.mu.Unlock(); return s.zframes }

// CloseDMs makes messages to userID's DM channel fail with error 50007.
func (s *Server) CloseDMs(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closedDMs[userID] = true
}

// Messages returns the messages posted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// MessagesIn returns the messages posted to channelID, in order.
func (s *Server) MessagesIn(channelID string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.ChannelID == channelID {
			out = append(out, m)
		}
	}
	return out
}

// MessageAttempts counts POST /channels/{id}/messages requests, including
// refused ones.
func (s *Server) MessageAttempts() int { s.mu.Lock(); defer s.mu.Unlock(); return s.attempts }

// UnsolicitedLimits counts 429s caused by exceeding WithRouteLimit.
func (s *Server) UnsolicitedLimits() int { s.mu.Lock(); defer s.mu.Unlock(); return s.unsolicited }

// Callbacks returns the interaction responses received so far.
func (s *Server) Callbacks() []Callback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Callback(nil), s.callbacks...)
}

// Callback returns the response to interaction id, if any.
func (s *Server) Callback(id string) (Callback, bool) {
	for _, c := range s.Callbacks() {
		if c.InteractionID == id {
			return c, true
		}
	}
	return Callback{}, false
}

// Commands returns the application command registrations received.
func (s *Server) Commands() []Commands {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Commands(nil), s.commands...)
}

// Requests returns every REST request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Unexpected returns requests to routes the fake does not serve.
func (s *Server) Unexpected() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.unexpected...)
}

// RemoveChannel makes GET /channels/{id} answer 404 Unknown Channel (code
// 10003), as Discord does for a deleted channel or a wrong ID.
func (s *Server) RemoveChannel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone == nil {
		s.gone = map[string]bool{}
	}
	s.gone[id] = true
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("id")
	s.mu.Lock()
	gone := s.gone[id]
	s.mu.Unlock()
	if gone {
		writeJSON(w, http.StatusNotFound, apiError{"Unknown Channel", 10003})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "type": 0, "name": "staff"})
}
