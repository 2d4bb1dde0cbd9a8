package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
)

// webhookAPI is the fake Bot API in webhook mode: it records setWebhook
// and posts updates to the registered URL with the registered secret, in
// the Bot API's wire format, delivering each again until it is answered
// 200, as Telegram does.
type webhookAPI struct {
	api *fakeBotAPI

	mu      sync.Mutex
	url     string
	secrets map[string]int // secret_token -> setWebhook calls with it
	polls   int
}

func (w *webhookAPI) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/setWebhook"):
		r.ParseForm()
		w.mu.Lock()
		w.url = r.Form.Get("url")
		w.secrets[r.Form.Get("secret_token")]++
		w.mu.Unlock()
	case strings.HasSuffix(r.URL.Path, "/getUpdates"):
		w.mu.Lock()
		w.polls++
		w.mu.Unlock()
	}
	w.api.ServeHTTP(rw, r)
}

// deliver posts one update until it is answered 200, and returns the
// status of each attempt.
func (w *webhookAPI) deliver(t *testing.T, secret string, id int, chat int64, text string) []int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"update_id": id, "message": map[string]any{
		"message_id": id, "date": time.Now().Unix(), "text": text,
		"from": map[string]any{"id": chat, "is_bot": false, "first_name": "P"},
		"chat": map[string]any{"id": chat, "type": "private"}}})
	w.mu.Lock()
	url := w.url
	w.mu.Unlock()
	var codes []int
	for attempt := 0; attempt < 200; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(telegram.SecretHeader, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			codes = append(codes, 0)
			time.Sleep(10 * time.Millisecond) // Telegram's retry, shortened
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusOK {
			return codes
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("update %d never answered 200: %v", id, codes)
	return codes
}

// roundRobin is the load balancer: each request goes to the next backend;
// a backend that cannot be reached is answered 502 (the sender retries).
type roundRobin struct {
	mu       sync.Mutex
	backends []string
	next     int
	served   map[string]int // backend -> requests answered 200
}

func (lb *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lb.mu.Lock()
	be := lb.backends[lb.next%len(lb.backends)]
	lb.next++
	lb.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+be+r.URL.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		lb.mu.Lock()
		lb.served[be]++
		lb.mu.Unlock()
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestWebhookBehindLoadBalancer runs two real aftercare processes on one
// PostgreSQL in Telegram webhook mode behind a round-robin load balancer.
// Both register the webhook with the secret shared through
// AFTERCARE_TELEGRAM_WEBHOOK_SECRET; a request without it is refused;
// every update is delivered twice (as Telegram does when an answer is
// lost), so the second copy lands on the other instance and the store's
// dedupe applies it once; one instance is killed half-way and Telegram's
// retries reach the other. No instance polls, and no polling lease is
// taken.
func TestWebhookBehindLoadBalancer(t *testing.T) {
	const (
		patients = 6
		secret   = "failover-shared-webhook-secret-0123456789"
	)
	dir := t.TempDir()
	dsn := pgtest.DSN(t)
	wh := &webhookAPI{api: &fakeBotAPI{}, secrets: map[string]int{}}
	api := newServer(wh)
	defer api.Close()
	addrs := []string{freeAddr(t), freeAddr(t)}
	lb := &roundRobin{backends: addrs, served: map[string]int{}}
	lbSrv := httptest.NewServer(lb)
	defer lbSrv.Close()
	clockFile := filepath.Join(dir, "now")
	clock.SetFile(clockFile, time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC))
	bin := buildBinary(t)
	insts := make([]*instance, len(addrs))
	for i, addr := range addrs {
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("i%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cfg := fmt.Sprintf(`{
  "clinic": {"name": "Webhook Clinic", "phone": "+1 312 555 2368", "emergency_number": "911", "time_zone": "America/Chicago",
             "quiet_hours": {"start": "00:00", "end": "00:00"}},
  "data_dir": %q,
  "store": {"backend": "postgres", "claim_lease": "1s", "leases": {"ttl": "2s", "renew": "400ms"}},
  "escalation": {"ack_timeout": "100h"},
  "telegram": {"api_endpoint": %q, "staff_chat_id": -100, "mode": "webhook", "webhook_url": %q, "webhook_listen": %q,
               "request_timeout": "2s", "send_retries": -1},
  "pacing": {"telegram": {"per_second": 1000, "per_chat_per_second": 100}},
  "log": {"level": "info", "format": "json"}
}`, filepath.Join(dir, fmt.Sprintf("i%d", i)), api.URL+"/bot%s/%s", lbSrv.URL+"/tg/hook", addr)
		insts[i] = &instance{botProcess: botProcess{t: t, bin: bin, log: logf, env: append(os.Environ(), EnvTelegramToken+"=123:webhook-test", EnvTestClockFile+"="+clockFile,
			EnvPostgresDSN+"="+dsn, telegram.WebhookSecretEnv+"="+secret)}, cfgPath: filepath.Join(dir, fmt.Sprintf("i%d.json", i)),
			config: func(int) string { return cfg },
		}
		insts[i].start(i + 1)
	}
	t.Cleanup(func() {
		for _, p := range insts {
			p.cmd.Process.Kill() // an error only says it has exited already
		}
	})
	// waitUntil polls for a condition the instances bring about; the limit
	// only keeps a stuck run from hanging the test.
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitUntil("both instances registered the webhook with the shared secret", func() bool {
		wh.mu.Lock()
		defer wh.mu.Unlock()
		return wh.secrets[secret] == len(addrs) && len(wh.secrets) == 1
	})
	// Both listeners up: a request without the secret is refused by each.
	for _, addr := range addrs {
		waitUntil("listener "+addr, func() bool {
			resp, err := http.Post("http://"+addr+"/tg/hook", "application/json", strings.NewReader(`{"update_id":1}`))
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s answered %d to an update without the secret, want 401", addr, resp.StatusCode)
			}
			return true
		})
	}
	chat := func(i int) int64 { return int64(300000 + i) }
	intake := []string{"hi", "just now", "Acupuncture", "neck", "No", "No, for me", "Yes, check in with me", "I fainted on the stairs"}
	id := 0
	retried := 0
	for round, msg := range intake {
		if round == len(intake)/2 {
			insts[0].kill() // Telegram's retries find the survivor
		}
		for i := 0; i < patients; i++ {
			id++
			for copy := 0; copy < 2; copy++ { // the second copy: an answer Telegram did not get
				if codes := wh.deliver(t, secret, id, chat(i), msg); len(codes) > 1 {
					retried++
				}
			}
		}
	}
	waitUntil("every patient told to call 911 and staff alerted", func() bool {
		sent := strings.Builder{}
		by := map[int64]string{}
		for _, s := range wh.api.sends() {
			fmt.Fprintf(&sent, "%d %s\n", s.chat, s.text)
			by[s.chat] += s.text + "\n"
		}
		// Staff alerts go out ahead of patients' messages, so wait for
		// both: the patient's own instructions and the staff alert.
		for i := 0; i < patients; i++ {
			if !strings.Contains(by[chat(i)], "Call 911 now") ||
				!strings.Contains(sent.String(), fmt.Sprintf("[EMERGENCY] telegram:%d", chat(i))) {
				return false
			}
		}
		return true
	})
	if err := insts[1].stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	by := map[int64][]string{}
	for _, s := range wh.api.sends() {
		by[s.chat] = append(by[s.chat], s.text)
	}
	for i := 0; i < patients; i++ {
		got := strings.Join(by[chat(i)], "\n")
		for _, bad := range []string{"I didn't catch", "didn't quite get that", "couldn't read that time"} {
			if strings.Contains(got, bad) {
				t.Errorf("patient %d got %q: an update was applied twice", i, bad)
			}
		}
		if !strings.Contains(got, "Call 911 now") {
			t.Errorf("patient %d got no emergency instructions", i)
		}
	}
	lb.mu.Lock()
	served := map[string]int{}
	for k, v := range lb.served {
		served[k] = v
	}
	lb.mu.Unlock()
	for _, addr := range addrs {
		if served[addr] == 0 {
			t.Errorf("instance at %s served no update: the load balancer's split did not happen", addr)
		}
	}
	if retried == 0 {
		t.Error("no delivery needed a retry after the kill: the failover path was not exercised")
	}
	wh.mu.Lock()
	polls := wh.polls
	wh.mu.Unlock()
	if polls != 0 {
		t.Errorf("%d getUpdates calls in webhook mode", polls)
	}
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ls, err := st.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if strings.HasSuffix(l.Name, "/telegram") {
			t.Errorf("a Telegram lease was taken in webhook mode: %+v", l)
		}
	}
	if es, err := st.Escalations(); err != nil || len(es) != patients {
		t.Errorf("%d escalations stored (%v), want %d: one per patient, each update applied once", len(es), err, patients)
	}
	t.Logf("updates %d, each delivered twice; served per instance %v; deliveries retried after the kill %d", id, served, retried)
}
