package discord

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/discord/discordfake"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/triage"
)

var _ ReadMarks = (*store.Store)(nil)

// stack is one run of the bot: service, Discord adapter and dispatcher over
// a store that outlives it, as after a process restart.
type stack struct {
	bot  *Bot
	stop func()
}

// startStack runs a fresh service, adapter and dispatcher against fake and
// st, and waits until the gateway is connected.
func startStack(t *testing.T, fake *discordfake.Server, st *store.Store, logs *syncBuffer) *stack {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	eng, err := engine.New(engine.DefaultProtocol(), triage.Default(), engine.Clinic{
		Name: "Test Clinic", Phone: "+1-555-0100", EmergencyNumber: "911", TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{Engine: eng, Store: st, Logger: logger,
		Clock:         clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)),
		StaffChannels: []engine.PatientID{patient(staffCh)}})
	if err != nil {
		t.Fatal(err)
	}
	bot, err := New(testConfig(fake), testToken, svc, logger, WithReadMarks(st), WithMinReconnectDelay(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := bot.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		svc.NewDispatcher(bot, service.Pace{PerSecond: 40, PerChatPerSecond: 5, PerChatBurst: 5}).Run(ctx)
	}()
	var once sync.Once
	s := &stack{bot: bot, stop: func() { once.Do(func() { cancel(); wg.Wait() }) }}
	t.Cleanup(s.stop)
	eventually(t, 10*time.Second, "gateway connected", fake.Connected)
	return s
}

// caughtUp reports whether the session's read-back is over and every update
// taken from Discord was handed to the Receiver.
func (b *Bot) caughtUp() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cu.rounds > 0 && len(b.cu.pending) == 0 && len(b.cu.running) == 0 && len(b.queues) == 0
}

// settled waits until s has read back and handed on everything, and the
// outbox is empty (every reply and alert delivered to the fake).
func (s *stack) settled(t *testing.T, st *store.Store) {
	t.Helper()
	eventually(t, 20*time.Second, "read-back done and outbox empty", func() bool {
		n, err := st.OutboxDepth()
		return err == nil && s.bot.caughtUp() && n == 0
	})
}

// readFrom returns the after= of the history reads of channel, in order.
func readFrom(fake *discordfake.Server, channel string) []string {
	var out []string
	for _, r := range fake.HistoryReads() {
		if strings.Contains(r.Path, "/channels/"+channel+"/") {
			q, _ := url.ParseQuery(r.Query)
			out = append(out, q.Get("after"))
		}
	}
	return out
}

func count(ms []discordfake.Message, subs ...string) int {
	n := 0
next:
	for _, m := range ms {
		for _, s := range subs {
			if !strings.Contains(m.Content, s) {
				continue next
			}
		}
		n++
	}
	return n
}

// TestRedFlagSentWhileDownIsAnswered stops the bot, lets two patients send a
// red flag (one has written before, so the store has a read mark for their
// DM channel; one was only recorded by the clinic), starts the bot again
// and checks that each gets the emergency reply and staff the alert, once;
// a second restart reads from after the red flags and sends nothing more.
func TestRedFlagSentWhileDownIsAnswered(t *testing.T) {
	fake := discordfake.New(testToken, discordfake.WithHeartbeatInterval(500*time.Millisecond))
	t.Cleanup(fake.Close) // after every stack's stop
	st, err := store.Open(filepath.Join(t.TempDir(), "aftercare.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), testToken) {
			t.Errorf("the token appears in the logs")
		}
	})
	const redFlag = "shortness of breath and chest pain"
	ctx := context.Background()

	// B is only recorded by the clinic, with a service of its own.
	eng, _ := engine.New(engine.DefaultProtocol(), triage.Default(), engine.Clinic{Name: "Test Clinic", Phone: "+1-555-0100", EmergencyNumber: "911", TimeZone: "UTC"})
	rec, err := service.New(service.Config{Engine: eng, Store: st, Clock: clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), StaffChannels: []engine.PatientID{patient(staffCh)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.RecordVisit(ctx, patient(patientB), engine.Visit{At: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), Treatment: engine.DryNeedling, Area: "lower back", Source: "clinic", Consent: true}); err != nil {
		t.Fatal(err)
	}
	// First run: A writes, so the store gets a read mark for A's channel.
	s1 := startStack(t, fake, st, logs)
	chA, chB := fake.DMChannel(patientA), fake.DMChannel(patientB)
	hello := fake.DM(patientA, "should I put ice on it?")
	eventually(t, 10*time.Second, "a reply to A", func() bool { return len(fake.MessagesIn(chA)) > 0 })
	eventually(t, 10*time.Second, "A's read mark saved", func() bool {
		m, err := st.ReadMarks(Platform)
		return err == nil && m[patient(patientA)] == chA+"/"+hello
	})
	s1.settled(t, st)
	s1.stop()

	// While the bot is down, both send a red flag.
	redA := fake.DM(patientA, redFlag)
	redB := fake.DM(patientB, redFlag)

	check := func(t *testing.T) {
		t.Helper()
		for _, p := range []struct{ user, ch string }{{patientA, chA}, {patientB, chB}} {
			if n := count(fake.MessagesIn(p.ch), "Call 911 now"); n != 1 {
				t.Errorf("patient %s got %d emergency replies, want 1", p.user, n)
			}
			if n := count(fake.MessagesIn(staffCh), `\[EMERGENCY\]`, "discord:"+p.user); n != 1 {
				t.Errorf("staff got %d alerts for %s, want 1", n, p.user)
			}
		}
		escs, err := st.Escalations()
		if err != nil {
			t.Fatal(err)
		}
		if len(escs) != 2 {
			t.Errorf("%d escalations stored, want 2", len(escs))
		}
	}

	// Second run: the red flags are read back and answered.
	s2 := startStack(t, fake, st, logs)
	eventually(t, 20*time.Second, "A's emergency reply", func() bool { return count(fake.MessagesIn(chA), "Call 911 now") > 0 })
	eventually(t, 20*time.Second, "B's emergency reply", func() bool { return count(fake.MessagesIn(chB), "Call 911 now") > 0 })
	s2.settled(t, st)
	check(t)
	if got := readFrom(fake, chA); len(got) != 1 || got[0] != hello {
		t.Errorf("A's channel read after %v, want once after %s (the read mark)", got, hello)
	}
	// B's channel was first read at the first start (B was known, without a
	// mark): from the fallback window, which became B's mark.
	readsB := readFrom(fake, chB)
	if len(readsB) != 2 || readsB[1] != readsB[0] || !newerID(redB, readsB[1]) {
		t.Errorf("B's channel read after %v, want twice from the same mark before %s", readsB, redB)
	}
	eventually(t, 10*time.Second, "read marks at the red flags", func() bool {
		m, err := st.ReadMarks(Platform)
		return err == nil && m[patient(patientA)] == chA+"/"+redA && m[patient(patientB)] == chB+"/"+redB
	})
	s2.stop()

	// Third run: read from after the red flags; nothing is sent again.
	s3 := startStack(t, fake, st, logs)
	s3.settled(t, st)
	check(t)
	if got := readFrom(fake, chA); len(got) != 2 || got[1] != redA {
		t.Errorf("A's channel read after %v, want the last read after %s", got, redA)
	}
	if got := readFrom(fake, chB); len(got) != len(readsB)+1 || got[len(got)-1] != redB {
		t.Errorf("B's channel read after %v, want the last read after %s", got, redB)
	}
	// Only our replies came after the red flag: the mark moves past them,
	// so the next start does not read them again.
	replies := fake.MessagesIn(chA)
	last := replies[len(replies)-1].ID
	eventually(t, 10*time.Second, "A's read mark past our replies", func() bool {
		m, err := st.ReadMarks(Platform)
		return err == nil && m[patient(patientA)] == chA+"/"+last
	})
}

// memMarks is an in-memory ReadMarks.
type memMarks struct {
	mu    sync.Mutex
	ids   []engine.PatientID
	marks map[engine.PatientID]string
}

func (m *memMarks) PatientIDs(string) ([]engine.PatientID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]engine.PatientID(nil), m.ids...), nil
}

func (m *memMarks) ReadMarks(string) (map[engine.PatientID]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[engine.PatientID]string, len(m.marks))
	for k, v := range m.marks {
		out[k] = v
	}
	return out, nil
}

func (m *memMarks) SetReadMarks(marks map[engine.PatientID]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range marks {
		m.marks[k] = v
	}
	return nil
}

func (m *memMarks) get(p engine.PatientID) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marks[p]
}

// TestReadBackPagesInOrder has 250 DMs missed by a patient with a read mark
// (three pages of history), a patient without one, and a live DM arriving
// during the read-back: every missed message reaches the Receiver once, in
// order, before the live one, and nothing from before the mark.
func TestReadBackPagesInOrder(t *testing.T) {
	marks := &memMarks{ids: []engine.PatientID{patient(patientA), patient(patientB)}, marks: map[engine.PatientID]string{}}
	h := prepareWith(t, WithReadMarks(marks))
	chA := h.fake.DMChannel(patientA)
	old := h.fake.DM(patientA, "answered before the restart")
	marks.marks[patient(patientA)] = chA + "/" + old
	const missed = 250
	var want []string
	for i := range missed {
		text := fmt.Sprintf("missed %d", i)
		h.fake.DM(patientA, text)
		want = append(want, text)
	}
	lastB := h.fake.DM(patientB, "sent while the bot was down")

	h.run()
	h.fake.DM(patientA, "live")
	want = append(want, "live")
	eventually(t, 20*time.Second, "every message handed on", func() bool { return len(h.rec.inbound()) == missed+2 && h.bot.caughtUp() })

	var gotA []string
	gotB := 0
	for _, in := range h.rec.inbound() {
		switch in.Patient {
		case patient(patientA):
			gotA = append(gotA, in.Text)
		case patient(patientB):
			gotB++
		}
	}
	if strings.Join(gotA, "|") != strings.Join(want, "|") {
		t.Errorf("A's messages reached the Receiver as %d messages %q ... , want %d in order", len(gotA), gotA[:min(3, len(gotA))], len(want))
	}
	if gotB != 1 {
		t.Errorf("B's missed message handed on %d times, want 1", gotB)
	}
	if n := len(readFrom(h.fake, chA)); n < 3 {
		t.Errorf("A's history read in %d pages, want at least 3 (100 a page)", n)
	}
	if got := readFrom(h.fake, chA); len(got) == 0 || got[0] != old {
		t.Errorf("A's history first read after %v, want after the mark %s", got, old)
	}
	eventually(t, 10*time.Second, "B's read mark", func() bool {
		return marks.get(patient(patientB)) == h.fake.DMChannel(patientB)+"/"+lastB
	})
}

// prepareWith is prepare with extra options for New.
func prepareWith(t *testing.T, opts ...Option) *harness {
	t.Helper()
	h := prepare(t, nil)
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]Option{WithMinReconnectDelay(50 * time.Millisecond), withReceiveRetries(3, 10*time.Millisecond)}, opts...)
	bot, err := New(h.cfg, testToken, h.rec, logger, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.bot = bot
	return h
}

// TestReadMarkStaysBeforeAMessageNotCommitted has the Receiver fail on a
// DM until the adapter gives up: the read mark must not move past it, even
// when a later DM is committed, so the next session reads it back and it
// is committed then.
func TestReadMarkStaysBeforeAMessageNotCommitted(t *testing.T) {
	marks := &memMarks{ids: []engine.PatientID{patient(patientA)}, marks: map[engine.PatientID]string{}}
	h := prepareWith(t, WithReadMarks(marks))
	h.run()
	eventually(t, 10*time.Second, "first read-back done", h.bot.caughtUp)
	seeded := h.bot.marks.snapshot()[patientA]

	h.rec.mu.Lock()
	h.rec.fail = 3 // every attempt at the next message
	h.rec.mu.Unlock()
	first := h.fake.DM(patientA, "first")
	eventually(t, 10*time.Second, "first given up", func() bool {
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		return h.rec.fail == 0 && h.bot.caughtUp()
	})
	second := h.fake.DM(patientA, "second")
	eventually(t, 10*time.Second, "second committed", func() bool { return len(h.rec.inbound()) == 1 && h.bot.caughtUp() })
	if got := h.bot.marks.snapshot()[patientA]; got != seeded {
		t.Fatalf("read mark moved to %+v past a message not committed (want %+v)", got, seeded)
	}

	// A new session reads it back.
	identifies := h.fake.Identifies()
	h.fake.InvalidSession(false)
	eventually(t, 10*time.Second, "new session", func() bool { return h.fake.Identifies() > identifies && h.fake.Connected() })
	eventually(t, 10*time.Second, "first committed after the read-back", func() bool {
		for _, in := range h.rec.inbound() {
			if in.DedupeKey == "discord:msg:"+first {
				return true
			}
		}
		return false
	})
	eventually(t, 10*time.Second, "read mark at the second message", func() bool {
		return h.bot.caughtUp() && h.bot.marks.snapshot()[patientA].last == second
	})
}
