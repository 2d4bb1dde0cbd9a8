package discord

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/discord/discordfake"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// Test IDs. The token is long and distinctive so a leak is easy to find.
const (
	testToken = "MTAwMDAwMDAwMDAwMDAwMDAx.fake-token.SECRETxSECRETxSECRET"
	guildID   = "2000000000000000001"
	staffCh   = "2000000000000000002"
	publicCh  = "2000000000000000003"
	staffRole = "2000000000000000004"
	staffUser = "2000000000000000005"
	nurse     = "3000000000000000001" // has the staff role
	patientA  = "4000000000000000001"
	patientB  = "4000000000000000002"
	stranger  = "4000000000000000009"
)

// recorder is a Receiver that records what it is handed and, like the
// service, returns nil for a dedupe key it already committed (counting it).
type recorder struct {
	mu        sync.Mutex
	in        []service.Inbound
	staff     []service.StaffInbound
	at        map[string]time.Time
	committed map[string]bool
	dups      int
	fail      int           // fail this many Receive calls first
	delay     time.Duration // each Receive takes this long (slow store)
}

func newRecorder() *recorder {
	return &recorder{at: map[string]time.Time{}, committed: map[string]bool{}}
}

func (r *recorder) Receive(_ context.Context, in service.Inbound) error {
	r.mu.Lock()
	d := r.delay
	r.mu.Unlock()
	time.Sleep(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return fmt.Errorf("store unavailable")
	}
	if r.committed[in.DedupeKey] {
		r.dups++
		return nil
	}
	r.committed[in.DedupeKey] = true
	r.at[in.DedupeKey] = time.Now()
	r.in = append(r.in, in)
	return nil
}

func (r *recorder) ReceiveStaff(_ context.Context, in service.StaffInbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.committed[in.DedupeKey] {
		r.dups++
		return nil
	}
	r.committed[in.DedupeKey] = true
	r.at[in.DedupeKey] = time.Now()
	r.staff = append(r.staff, in)
	return nil
}

func (r *recorder) inbound() []service.Inbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]service.Inbound(nil), r.in...)
}

func (r *recorder) staffInbound() []service.StaffInbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]service.StaffInbound(nil), r.staff...)
}

func (r *recorder) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dups
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	t    *testing.T
	fake *discordfake.Server
	bot  *Bot
	rec  *recorder
	logs *syncBuffer
	cfg  Config
}

func testConfig(fake *discordfake.Server) Config {
	return Config{
		StaffChannelID:    staffCh,
		StaffRoleIDs:      []string{staffRole},
		StaffUserIDs:      []string{staffUser},
		GuildID:           guildID,
		MaxReconnectDelay: Duration(500 * time.Millisecond),
		APIBase:           fake.URL(),
	}
}

// start runs a Bot against a fresh fake and waits until it is connected.
// Cleanup stops the bot before the fake and checks the logs for the token.
func start(t *testing.T, edit func(*Config), fakeOpts ...discordfake.Option) *harness {
	t.Helper()
	h := prepare(t, edit, fakeOpts...)
	h.run()
	return h
}

// prepare builds the harness without running the bot.
func prepare(t *testing.T, edit func(*Config), fakeOpts ...discordfake.Option) *harness {
	t.Helper()
	fakeOpts = append([]discordfake.Option{discordfake.WithHeartbeatInterval(500 * time.Millisecond)}, fakeOpts...)
	fake := discordfake.New(testToken, fakeOpts...)
	h := &harness{t: t, fake: fake, rec: newRecorder(), logs: &syncBuffer{}}
	h.cfg = testConfig(fake)
	if edit != nil {
		edit(&h.cfg)
	}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bot, err := New(h.cfg, testToken, h.rec, logger, WithMinReconnectDelay(50*time.Millisecond), withReceiveRetries(3, 10*time.Millisecond))
	if err != nil {
		fake.Close()
		t.Fatalf("New: %v", err)
	}
	h.bot = bot
	t.Cleanup(func() {
		fake.Close()
		if strings.Contains(h.logs.String(), testToken) {
			t.Errorf("the token appears in the logs")
		}
	})
	return h
}

func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.bot.Run(ctx) }()
	// Registered after prepare's cleanup, so it runs first: bot before fake.
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			h.t.Errorf("Run did not return after cancel")
		}
	})
	eventually(h.t, 10*time.Second, "gateway connected", h.fake.Connected)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func patient(id string) engine.PatientID { return engine.NewPatientID(Platform, id) }

func withReceiveRetries(n int, backoff time.Duration) Option {
	return func(o *options) { o.receiveRetries, o.receiveBackoff = n, backoff }
}

func slog_(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fmtBot prints the bot every way a careless caller might.
func fmtBot(b *Bot) string {
	var buf syncBuffer
	slog_(&buf).Info("bot", "bot", b)
	return fmt.Sprintf("%v %+v %s", b, b, b) + buf.String()
}
