package telegramtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is an answer the Proxy gives instead of forwarding a bot request.
type Fault struct {
	// Status and Body are the HTTP answer.
	Status int
	Body   string
	// Drop closes the connection without an answer (a network error).
	Drop bool
	// Delay holds the request this long first (a slow server).
	Delay time.Duration
}

// Fault429 is Telegram's flood-control answer asking to wait after seconds.
func Fault429(after int) Fault {
	return Fault{Status: http.StatusTooManyRequests, Body: fmt.Sprintf(
		`{"ok":false,"error_code":429,"description":"Too Many Requests: retry after %d","parameters":{"retry_after":%d}}`, after, after)}
}

// Fault500 is a Bot API internal error.
func Fault500() Fault {
	return Fault{Status: http.StatusInternalServerError, Body: `{"ok":false,"error_code":500,"description":"Internal Server Error"}`}
}

// Fault502HTML is what a load balancer in front of the Bot API answers
// when it is down: HTML, not JSON.
func Fault502HTML() Fault {
	return Fault{Status: http.StatusBadGateway, Body: "<html><body><h1>502 Bad Gateway</h1></body></html>"}
}

// Fault403 is Telegram's answer when the user blocked the bot.
func Fault403() Fault {
	return Fault{Status: http.StatusForbidden, Body: `{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}`}
}

// Fault403NeverStarted is Telegram's answer to a message for a user who
// never opened a private chat with the bot (bots cannot start one).
func Fault403NeverStarted() Fault {
	return Fault{Status: http.StatusForbidden, Body: `{"ok":false,"error_code":403,"description":"Forbidden: bot can't initiate conversation with a user"}`}
}

// FaultDrop closes the connection (a network error).
func FaultDrop() Fault { return Fault{Drop: true} }

// Proxy stands between the bot and the emulator's bot API. It forwards
// requests (with httputil.ReverseProxy) except where a test injected a
// fault, gives getUpdates Telegram's offset semantics (an update is sent
// again until a later offset confirms it), and relays webhooks with the
// secret header Telegram would add. All methods are safe for concurrent use.
type Proxy struct {
	// URL is the proxy's base URL; the bot's endpoint is Endpoint().
	URL string

	target *url.URL
	rp     *httputil.ReverseProxy
	srv    *httptest.Server
	http   *http.Client

	mu        sync.Mutex
	faults    map[string][]Fault // method -> queued one-shot faults
	blocked   map[string]Fault   // chat_id -> the 403 to answer sendMessage with
	calls     map[string]int     // method -> requests seen
	faulted   map[string]int     // method -> requests answered with a fault
	pending   map[string][]json.RawMessage
	pendingID map[string]map[int]bool
	offsets   []int
	ignoreOff bool
	sent      []Sent // sendMessage requests forwarded to the emulator
	webhook   struct {
		url, secret string
	}
	// webhookDup delivers every webhook update this many extra times.
	webhookDup int
	relaying   int // webhook deliveries in flight
	down       bool
}

// NewProxy starts a proxy in front of the emulator and stops it when the
// test ends.
func NewProxy(t testing.TB, e *Emulator) *Proxy {
	t.Helper()
	target, err := url.Parse(e.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		target:    target,
		rp:        httputil.NewSingleHostReverseProxy(target),
		http:      &http.Client{Timeout: 10 * time.Second},
		faults:    map[string][]Fault{},
		blocked:   map[string]Fault{},
		calls:     map[string]int{},
		faulted:   map[string]int{},
		pending:   map[string][]json.RawMessage{},
		pendingID: map[string]map[int]bool{},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL
	return p
}

// Endpoint returns the Bot API endpoint format pointing at the proxy.
func (p *Proxy) Endpoint() string { return p.URL + "/bot%s/%s" }

// Inject queues faults for the next requests of a bot API method
// ("sendMessage", "getUpdates", ...), one fault per request.
func (p *Proxy) Inject(method string, faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[method] = append(p.faults[method], faults...)
}

// Down makes every bot API request fail with a dropped connection (on),
// as when Telegram cannot be reached, until Down(false).
func (p *Proxy) Down(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = on
}

// Block makes every sendMessage to chatID answer 403 "bot was blocked by
// the user", until Unblock.
func (p *Proxy) Block(chatID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked[strconv.FormatInt(chatID, 10)] = Fault403()
}

// NeverStarted makes every sendMessage to chatID answer 403 "bot can't
// initiate conversation with a user", as Telegram does for a user who
// never opened a private chat with the bot, until Unblock.
func (p *Proxy) NeverStarted(chatID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked[strconv.FormatInt(chatID, 10)] = Fault403NeverStarted()
}

// Unblock undoes Block.
func (p *Proxy) Unblock(chatID int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.blocked, strconv.FormatInt(chatID, 10))
}

// Calls returns how many requests of a method reached the proxy.
func (p *Proxy) Calls(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// Faulted returns how many requests of a method were answered with a fault.
func (p *Proxy) Faulted(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faulted[method]
}

// Offsets returns the offsets of every getUpdates call, in order.
func (p *Proxy) Offsets() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.offsets...)
}

// PendingUpdates returns how many updates were fetched but not yet
// confirmed by an offset.
func (p *Proxy) PendingUpdates() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.pending {
		n += len(q)
	}
	return n
}

// Sent is one sendMessage request forwarded to the emulator.
type Sent struct {
	// At is when the proxy forwarded it.
	At time.Time
	// Form holds its parameters (chat_id, text, reply_markup, ...).
	Form url.Values
}

// Sent returns the sendMessage requests forwarded to the emulator, in order.
func (p *Proxy) Sent() []Sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sent(nil), p.sent...)
}

// IgnoreOffsets makes getUpdates disregard the offsets the bot sends, so
// nothing is confirmed: what a bot commits while this is on is delivered
// again to the next bot, as after a crash before the confirmation reached
// Telegram.
func (p *Proxy) IgnoreOffsets(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ignoreOff = on
}

// DuplicateWebhooks makes the webhook relay deliver every update n extra
// times, as Telegram may after a timeout.
func (p *Proxy) DuplicateWebhooks(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.webhookDup = n
}

// WebhookIdle reports whether no webhook delivery is in flight. The
// emulator assigns the next update_id only after a webhook delivery
// returns, so a test must wait for this before sending the next message, or
// two updates share one update_id.
func (p *Proxy) WebhookIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.relaying == 0
}

// splitBotPath parses "/bot<token>/<method>".
func splitBotPath(path string) (token, method string, ok bool) {
	rest, found := strings.CutPrefix(path, "/bot")
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/relay") {
		p.relay(w, r)
		return
	}
	token, method, ok := splitBotPath(r.URL.Path)
	if !ok {
		p.rp.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	form, _ := url.ParseQuery(string(body))
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		form = url.Values{}
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			for k, v := range m {
				form.Set(k, fmt.Sprint(v))
			}
		}
	}
	for k, v := range r.URL.Query() {
		form[k] = v
	}

	p.mu.Lock()
	p.calls[method]++
	var fault *Fault
	if p.down {
		f := FaultDrop()
		fault = &f
	} else if q := p.faults[method]; len(q) > 0 {
		f := q[0]
		p.faults[method] = q[1:]
		fault = &f
	} else if f, ok := p.blocked[form.Get("chat_id")]; ok && method == "sendMessage" {
		fault = &f
	}
	if fault != nil {
		p.faulted[method]++
	}
	p.mu.Unlock()

	if fault != nil {
		if fault.Delay > 0 {
			time.Sleep(fault.Delay)
		}
		if fault.Drop {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if fault.Status != 0 {
			w.Header().Set("Content-Type", "application/json")
			if strings.HasPrefix(fault.Body, "<") {
				w.Header().Set("Content-Type", "text/html")
			}
			w.WriteHeader(fault.Status)
			io.WriteString(w, fault.Body)
			return
		}
	}

	switch method {
	case "getUpdates":
		p.getUpdates(w, r, token, body, form)
		return
	case "setWebhook":
		p.mu.Lock()
		p.webhook.url = form.Get("url")
		p.webhook.secret = form.Get("secret_token")
		p.mu.Unlock()
		form.Set("url", p.URL+"/relay")
		body = []byte(form.Encode())
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case "sendMessage":
		p.mu.Lock()
		p.sent = append(p.sent, Sent{At: time.Now(), Form: form})
		p.mu.Unlock()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	p.rp.ServeHTTP(w, r)
}

// getUpdates forwards to the emulator, keeps what it returns until an
// offset confirms it, and answers with the unconfirmed updates from offset
// on, as Telegram does.
func (p *Proxy) getUpdates(w http.ResponseWriter, r *http.Request, token string, body []byte, form url.Values) {
	offset, _ := strconv.Atoi(form.Get("offset"))
	limit, _ := strconv.Atoi(form.Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, p.target.String()+r.URL.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	resp, err := p.http.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var got struct {
		Ok     bool              `json:"ok"`
		Result []json.RawMessage `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || !got.Ok {
		http.Error(w, "emulator getUpdates failed", http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	p.offsets = append(p.offsets, offset)
	if p.ignoreOff {
		offset = 0
	}
	if p.pendingID[token] == nil {
		p.pendingID[token] = map[int]bool{}
	}
	for _, u := range got.Result {
		id := updateID(u)
		if !p.pendingID[token][id] {
			p.pendingID[token][id] = true
			p.pending[token] = append(p.pending[token], u)
		}
	}
	q := p.pending[token]
	sort.SliceStable(q, func(i, j int) bool { return updateID(q[i]) < updateID(q[j]) })
	keep := q[:0]
	for _, u := range q {
		if offset > 0 && updateID(u) < offset {
			delete(p.pendingID[token], updateID(u))
			continue
		}
		keep = append(keep, u)
	}
	p.pending[token] = keep
	out := keep
	if len(out) > limit {
		out = out[:limit]
	}
	b, _ := json.Marshal(map[string]any{"ok": true, "result": out})
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func updateID(raw json.RawMessage) int {
	var u struct {
		ID int `json:"update_id"`
	}
	json.Unmarshal(raw, &u)
	return u.ID
}

// relay delivers a webhook update from the emulator to the bot's real
// webhook URL with the registered secret header, retrying a failed delivery
// like Telegram does.
func (p *Proxy) relay(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	target, secret, dup := p.webhook.url, p.webhook.secret, p.webhookDup
	p.relaying++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.relaying--
		p.mu.Unlock()
	}()
	status := http.StatusBadGateway
	for copies := 0; copies <= dup; copies++ {
		status = http.StatusBadGateway
		for attempt := 0; attempt < 20; attempt++ {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, target, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if secret != "" {
				req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
			}
			resp, err := p.http.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
				if status < 300 {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	w.WriteHeader(status)
}
