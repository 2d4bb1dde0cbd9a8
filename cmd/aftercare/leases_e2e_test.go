package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/bot/config"
	"github.com/aftercare-clinic/aftercare/bot/discord"
	"github.com/aftercare-clinic/aftercare/bot/discord/discordfake"
	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/lease"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
)

// TestLeasesSpreadOverInstances runs three instances (the real Main) on
// one PostgreSQL, each with Telegram (long polling) and Discord. The first
// to start takes every lease: the Telegram poll, the Discord gateway and
// the housekeeping. When two more join, each may hold one of the two
// platform leases: the first gives the poll to a newcomer and keeps the
// gateway; the third stays on standby, ready, without polling or opening
// a gateway, and then nothing moves while they live. When the first stops,
// the two survivors share its leases out (neither takes all three), the
// gateway is opened once more and the poll goes on.
func TestLeasesSpreadOverInstances(t *testing.T) {
	const (
		ttl   = time.Second
		renew = 200 * time.Millisecond
	)
	dsn := pgtest.DSN(t)
	lives := &livesAPI{api: &fakeBotAPI{}}
	tg := newServer(lives)
	defer tg.Close()
	dc := discordfake.New(dcToken, discordfake.WithHeartbeatInterval(time.Second))
	defer dc.Close()
	clk := clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	type inst struct {
		run  *Running
		stop func()
		id   string
		life int
	}
	start := func(life int) *inst {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		off := false
		cfg.Console = &off
		cfg.Store = StoreConfig{Backend: "postgres", ClaimLease: config.Duration(time.Second),
			Leases: LeaseConfig{TTL: config.Duration(ttl), Renew: config.Duration(renew)}}
		cfg.Telegram = &telegram.Config{APIEndpoint: fmt.Sprintf("%s/life/%d/bot%%s/%%s", tg.URL, life), StaffChatID: -100,
			PollInterval: telegram.Duration(5 * time.Millisecond), PollTimeout: telegram.Duration(time.Nanosecond)}
		cfg.Discord = &discord.Config{StaffChannelID: dcStaffCh, StaffRoleIDs: []string{dcStaffRole}, GuildID: dcGuild,
			APIBase: dc.URL(), MaxReconnectDelay: discord.Duration(2 * time.Second)}
		env := map[string]string{EnvTelegramToken: "123:lease-test", EnvDiscordToken: dcToken, EnvPostgresDSN: dsn}
		logs := &lockedBuffer{}
		m := &Main{Config: &cfg, Clock: clk, Stderr: logs, Getenv: func(k string) string { return env[k] }}
		run, stop := startMain(t, m, logs)
		return &inst{run: run, stop: stop, id: run.DB.(*postgres.Store).Instance(), life: life}
	}
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// holders returns each live lease's holder.
	holders := func() map[string]string {
		ls, err := st.Leases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, l := range ls {
			if l.Live && !strings.HasPrefix(l.Name, "instance/") { // not the heartbeats
				out[l.Name] = l.Holder
			}
		}
		return out
	}
	names := []string{"clinic/default/discord", "clinic/default/telegram", "housekeeping"}
	allHeld := func() bool { return len(holders()) == len(names) }

	a := start(1)
	dcEventually(t, 30*time.Second, "the first instance holds every lease", func() bool {
		h := holders()
		return len(h) == 3 && h[names[0]] == a.id && h[names[1]] == a.id && h[names[2]] == a.id
	})
	dcEventually(t, 30*time.Second, "the gateway opened", dc.Connected)
	b, c := start(2), start(3)
	defer b.stop()
	defer c.stop()
	// Three live instances and two platform leases: each holds at most
	// one (package lease, Spreading). a keeps the Discord gateway, which
	// cannot reopen in its process, and the housekeeping, and gives the
	// Telegram poll to a newcomer.
	var poller, idle *inst
	dcEventually(t, 30*time.Second, "the Telegram poll moved to a newcomer", func() bool {
		h := holders()
		poller, idle = nil, nil
		switch h[names[1]] {
		case b.id:
			poller, idle = b, c
		case c.id:
			poller, idle = c, b
		}
		return poller != nil && h[names[0]] == a.id && h[names[2]] == a.id
	})
	// Several renew intervals in which nothing may move again.
	tried := time.Now()
	time.Sleep(5 * renew)
	for n, want := range map[string]string{names[0]: a.id, names[1]: poller.id, names[2]: a.id} {
		if h := holders()[n]; h != want {
			t.Errorf("lease %s moved to %s while the instances lived", n, h)
		}
	}
	if n := dc.Identifies(); n != 1 {
		t.Errorf("%d gateway sessions identified, want 1 (standby instances must not open the gateway)", n)
	}
	for _, q := range lives.pollsSince(tried) {
		if q.life != poller.life {
			t.Fatalf("life %d polled while life %d held the lease", q.life, poller.life)
		}
	}
	// On standby an instance has not polled nor opened a gateway.
	if idle.run.Discord.Ready() || idle.run.Telegram.Ready() {
		t.Errorf("a standby instance (life %d) has a connection of its own up", idle.life)
	}
	a.stop()
	stopped := time.Now()
	dcEventually(t, 30*time.Second, "the survivors hold every lease", func() bool {
		h := holders()
		return allHeld() && h[names[0]] != a.id && h[names[1]] != a.id && h[names[2]] != a.id
	})
	moved := time.Since(stopped)
	dcEventually(t, 30*time.Second, "the gateway opened again", func() bool { return dc.Identifies() >= 2 && dc.Connected() })
	count := map[string]int{}
	for _, h := range holders() {
		count[h]++
	}
	if count[b.id] == 0 || count[c.id] == 0 {
		t.Errorf("leases after the holder stopped: %v; want them shared by both survivors", holders())
	}
	// A clean stop gives the leases up at once: taken within the tries'
	// interval plus the handicap of the leases a survivor already holds.
	if bound := 3 * renew; moved > bound+renew {
		t.Errorf("leases moved %s after a clean stop, bound %s", moved, bound+renew)
	}
	polled := false
	dcEventually(t, 30*time.Second, "a survivor polls", func() bool {
		for _, q := range lives.pollsSince(stopped) {
			if q.life == b.life || q.life == c.life {
				polled = true
			}
		}
		return polled
	})
	t.Logf("leases moved %s after the holder stopped: %v", moved.Round(time.Millisecond), count)
}

// TestStandbyReadiness: a leased platform is ready on standby, and on its
// holder only while its connection is.
func TestStandbyReadiness(t *testing.T) {
	for _, tc := range []struct {
		held, connected, want bool
	}{
		{false, false, true},
		{true, false, false},
		{true, true, true},
	} {
		var f lease.Flag
		s := standby{r: fixedReady(tc.connected), held: &f}
		if tc.held {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { f.Run(ctx); close(done) }()
			for !f.Held() {
				time.Sleep(time.Millisecond)
			}
			got := s.Ready()
			cancel()
			<-done
			if got != tc.want {
				t.Errorf("held %v connected %v: ready %v, want %v", tc.held, tc.connected, got, tc.want)
			}
			continue
		}
		if got := s.Ready(); got != tc.want {
			t.Errorf("held %v connected %v: ready %v, want %v", tc.held, tc.connected, got, tc.want)
		}
	}
}

// TestLeaseTakenOverStopsTheHolder plays the case a kill cannot: the
// holder is alive but its lease was taken over (as after a renewal that
// did not come back in time). The lease is moved to another holder in the
// database; at its next renewal the holder learns it and stops at once:
// Telegram polls no more (not even to confirm an offset), and since the
// Discord gateway cannot reopen in-process, losing that lease stops the
// process with an error saying so.
func TestLeaseTakenOverStopsTheHolder(t *testing.T) {
	const (
		ttl   = time.Second
		renew = 200 * time.Millisecond
	)
	dsn := pgtest.DSN(t)
	lives := &livesAPI{api: &fakeBotAPI{}}
	tg := newServer(lives)
	defer tg.Close()
	dc := discordfake.New(dcToken, discordfake.WithHeartbeatInterval(time.Second))
	defer dc.Close()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	off := false
	cfg.Console = &off
	cfg.Store = StoreConfig{Backend: "postgres", Leases: LeaseConfig{TTL: config.Duration(ttl), Renew: config.Duration(renew)}}
	cfg.Telegram = &telegram.Config{APIEndpoint: tg.URL + "/life/1/bot%s/%s", StaffChatID: -100,
		PollInterval: telegram.Duration(5 * time.Millisecond), PollTimeout: telegram.Duration(time.Nanosecond)}
	cfg.Discord = &discord.Config{StaffChannelID: dcStaffCh, StaffRoleIDs: []string{dcStaffRole}, GuildID: dcGuild,
		APIBase: dc.URL(), MaxReconnectDelay: discord.Duration(2 * time.Second)}
	env := map[string]string{EnvTelegramToken: "123:lease-test", EnvDiscordToken: dcToken, EnvPostgresDSN: dsn}
	logs := &lockedBuffer{}
	started := make(chan *Running, 1)
	m := &Main{Config: &cfg, Clock: clock.NewFake(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)), Stderr: logs,
		Getenv: func(k string) string { return env[k] }, Started: func(r *Running) { started <- r }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	<-started
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	live := func(name string) bool {
		ls, _ := st.Leases(context.Background())
		for _, l := range ls {
			if l.Name == name && l.Live {
				return true
			}
		}
		return false
	}
	dcEventually(t, 30*time.Second, "telegram and discord leases held", func() bool {
		return live("clinic/default/telegram") && live("clinic/default/discord") && dc.Connected()
	})
	dcEventually(t, 30*time.Second, "polling", func() bool { return len(lives.pollsSince(time.Time{})) > 0 })
	steal := func(name string) time.Time {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `UPDATE leases SET holder = 'thief', epoch = epoch + 1, expires_at = now() + interval '1 hour' WHERE name = $1`, name); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	// The holder renews every renew interval; the renewal after the steal
	// finds the lease gone and stops the poll. One more interval is room
	// for a busy machine.
	stolen := steal("clinic/default/telegram")
	bound := 2 * renew
	time.Sleep(bound + 3*renew) // the renewals that must notice, then a stretch to watch
	if late := lives.pollsSince(stolen.Add(bound)); len(late) > 0 {
		t.Errorf("%d polls more than %s after the lease was taken over; the first %s after", len(late), bound, late[0].at.Sub(stolen))
	}
	steal("clinic/default/discord")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "lease lost") {
			t.Fatalf("Main.Run after the Discord lease was taken over: %v, want an error saying the lease was lost", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Main.Run kept running after its Discord lease was taken over")
	}
}
