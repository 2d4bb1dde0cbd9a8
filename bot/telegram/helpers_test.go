package telegram

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/backoff"
	"github.com/aftercare-clinic/aftercare/service"
)

// testToken looks like a real token; its characters include ones that URL
// escaping changes, so redaction of escaped forms is exercised too.
const testToken = "123456789:AAH-secret_TOKEN+value/x"

// recorder is a Receiver that commits like the service: each DedupeKey's
// effects once, nil for a key seen before. fail, when set, can make a
// delivery fail before anything is committed.
type recorder struct {
	mu        sync.Mutex
	inbound   []service.Inbound
	staff     []service.StaffInbound
	calls     []string // DedupeKeys in call order, including failed and duplicate calls
	committed map[string]bool
	fail      func(key string) error
	onReceive func(key string) // called before committing, outside the lock
}

func newRecorder() *recorder { return &recorder{committed: map[string]bool{}} }

func (r *recorder) commit(key string) (bool, error) {
	if r.onReceive != nil {
		r.onReceive(key)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, key)
	if r.fail != nil {
		if err := r.fail(key); err != nil {
			return false, err
		}
	}
	if r.committed[key] {
		return false, nil
	}
	r.committed[key] = true
	return true, nil
}

func (r *recorder) Receive(ctx context.Context, in service.Inbound) error {
	fresh, err := r.commit(in.DedupeKey)
	if err != nil || !fresh {
		return err
	}
	r.mu.Lock()
	r.inbound = append(r.inbound, in)
	r.mu.Unlock()
	return nil
}

func (r *recorder) ReceiveStaff(ctx context.Context, in service.StaffInbound) error {
	fresh, err := r.commit(in.DedupeKey)
	if err != nil || !fresh {
		return err
	}
	r.mu.Lock()
	r.staff = append(r.staff, in)
	r.mu.Unlock()
	return nil
}

func (r *recorder) snapshot() ([]service.Inbound, []service.StaffInbound) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]service.Inbound(nil), r.inbound...), append([]service.StaffInbound(nil), r.staff...)
}

func (r *recorder) callCount(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.calls {
		if k == key {
			n++
		}
	}
	return n
}

// waitInbound waits until n patient inbounds were committed.
func (r *recorder) waitInbound(t *testing.T, n int) []service.Inbound {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, _ := r.snapshot()
		if len(in) >= n {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d committed inbounds, got %d: %+v", n, len(in), in)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStaff waits until n staff inbounds were committed.
func (r *recorder) waitStaff(t *testing.T, n int) []service.StaffInbound {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, st := r.snapshot()
		if len(st) >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d committed staff inbounds, got %d: %+v", n, len(st), st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer collects log output so tests can check what was logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// assertNoSecrets fails when s contains the token (plain or escaped).
func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	assertNoToken(t, what, s, testToken)
	if strings.Contains(s, "AAH-secret_TOKEN") {
		t.Fatalf("%s contains part of the bot token:\n%s", what, s)
	}
}

// assertNoToken fails when s contains token (plain or escaped).
func assertNoToken(t *testing.T, what, s, token string) {
	t.Helper()
	for _, form := range []string{token, url.PathEscape(token), url.QueryEscape(token)} {
		if strings.Contains(s, form) {
			t.Fatalf("%s contains the bot token (%q):\n%s", what, form, s)
		}
	}
}

// apiCall is one request the fake Bot API received.
type apiCall struct {
	method string
	form   url.Values
}

// fakeAPI is a minimal Bot API server for unit tests. handle returns the
// HTTP status and body for a call; status 0 means the default success.
type fakeAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []apiCall
	handle func(c apiCall, n int) (int, string) // n: how many calls of this method came before
	msgID  int
}

func newFakeAPI(t *testing.T, handle func(c apiCall, n int) (int, string)) *fakeAPI {
	f := &fakeAPI{handle: handle}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		i := strings.LastIndexByte(r.URL.Path, '/')
		c := apiCall{method: r.URL.Path[i+1:], form: form}
		f.mu.Lock()
		n := 0
		for _, p := range f.calls {
			if p.method == c.method {
				n++
			}
		}
		f.calls = append(f.calls, c)
		f.msgID++
		id := f.msgID
		f.mu.Unlock()
		status, out := 0, ""
		if f.handle != nil {
			status, out = f.handle(c, n)
		}
		if status == -1 { // drop the connection
			if hj, ok := w.(http.Hijacker); ok {
				conn, _, _ := hj.Hijack()
				conn.Close()
				return
			}
		}
		if status == 0 {
			status = 200
			switch c.method {
			case "getMe":
				out = `{"ok":true,"result":{"id":666,"is_bot":true,"first_name":"Aftercare","username":"AftercareBot"}}`
			case "sendMessage":
				out = fmt.Sprintf(`{"ok":true,"result":{"message_id":%d,"date":1,"chat":{"id":%s,"type":"private"},"text":"x"}}`, id, form.Get("chat_id"))
			case "getUpdates":
				out = `{"ok":true,"result":[]}`
			default:
				out = `{"ok":true,"result":true}`
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, out)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) endpoint() string { return f.srv.URL + "/bot%s/%s" }

// sent returns the calls of one method.
func (f *fakeAPI) sent(method string) []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if c.method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeAPI) methods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.method)
	}
	return out
}

// newTestBot builds a Bot on endpoint with short retry delays.
func newTestBot(t *testing.T, cfg Config, recv Receiver, logs *logBuffer) *Bot {
	t.Helper()
	return newTestBotWithToken(t, cfg, testToken, recv, logs)
}

// newTestBotWithToken is newTestBot with another token (the emulator's
// routes do not accept a "/" in the token).
func newTestBotWithToken(t *testing.T, cfg Config, token string, recv Receiver, logs *logBuffer) *Bot {
	t.Helper()
	if cfg.StaffChatID == 0 {
		cfg.StaffChatID = testStaffChat
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = Duration(20 * time.Millisecond)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = Duration(5 * time.Second)
	}
	if recv == nil {
		recv = newRecorder()
	}
	if logs == nil {
		logs = &logBuffer{}
	}
	b, err := New(cfg, token, recv, logs.logger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.retry = backoff.Policy{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bot logs:\n%s", logs.String())
		}
	})
	return b
}
