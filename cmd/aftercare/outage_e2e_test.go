package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/backoff"
	"github.com/aftercare-clinic/aftercare/bot/discord"
	"github.com/aftercare-clinic/aftercare/bot/discord/discordfake"
	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/bot/telegram/telegramtest"
	"github.com/aftercare-clinic/aftercare/clock"
)

// fastRetry keeps the staged outages below short: the waits follow it.
var fastRetry = backoff.Policy{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// readyz returns /readyz's status code and body.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// outageMain starts Main with the console, Telegram (through proxy) and
// Discord (fake) on, and the operations listener.
func outageMain(t *testing.T, proxy *telegramtest.Proxy, dc *discordfake.Server) (*Running, io.Writer, *lockedBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	on := true
	cfg.Console = &on
	cfg.Telegram = &telegram.Config{APIEndpoint: proxy.Endpoint(), StaffChatID: tgStaff,
		PollInterval: telegram.Duration(20 * time.Millisecond), PollTimeout: telegram.Duration(time.Second), RequestTimeout: telegram.Duration(2 * time.Second)}
	cfg.Discord = &discord.Config{StaffChannelID: dcStaffCh, StaffRoleIDs: []string{dcStaffRole}, APIBase: dc.URL(),
		MaxReconnectDelay: discord.Duration(time.Second)}
	pr, pw := io.Pipe()
	out, logs := &lockedBuffer{}, &lockedBuffer{}
	m := &Main{Config: &cfg, Clock: clock.NewFake(time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)), Stdin: pr, Stdout: out, Stderr: logs,
		Backoff: fastRetry,
		Getenv: func(k string) string {
			return map[string]string{EnvTelegramToken: tgToken, EnvDiscordToken: dcToken}[k]
		}}
	run, stop := startMain(t, m, logs)
	t.Cleanup(func() {
		pw.Close()
		stop()
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	return run, pw, out
}

// TestTelegramDownAtStart: Telegram unreachable at start-up (getMe fails)
// keeps only Telegram down. The process starts (before the fix it exited
// with the getMe error), the console and Discord answer red flags, /readyz
// names telegram (and only it); once Telegram comes back it connects by
// itself, the alerts queued for its staff chat arrive, and its patients are
// answered.
func TestTelegramDownAtStart(t *testing.T) {
	emu := telegramtest.StartEmulator(t)
	proxy := telegramtest.NewProxy(t, emu)
	client := telegramtest.NewClient(emu.URL, tgToken)
	dc := discordfake.New(dcToken, discordfake.WithHeartbeatInterval(time.Second))
	t.Cleanup(dc.Close)
	proxy.Down(true)

	outageStart := time.Now()
	run, console, out := outageMain(t, proxy, dc)
	dcEventually(t, 10*time.Second, "discord connected", run.Discord.Ready)
	if code, body := readyz(t, run.HTTPAddr); code != http.StatusServiceUnavailable || !strings.Contains(body, "telegram") || strings.Contains(body, "discord") {
		t.Errorf("/readyz with Telegram down = %d %q; want 503 naming telegram only", code, body)
	}
	io.WriteString(console, "I fainted in the car park\n")
	dcEventually(t, 10*time.Second, "console patient answered and console staff alerted", func() bool {
		return strings.Contains(out.String(), "Call 911 now") && strings.Contains(out.String(), "STAFF ALERT")
	})
	const dcUser = "3100000000000000002"
	dc.DM(dcUser, "I fainted in the car park")
	dcEventually(t, 10*time.Second, "discord patient answered", func() bool {
		for _, m := range dc.MessagesIn(dc.DMChannel(dcUser)) {
			if strings.Contains(m.Content, "911") {
				return true
			}
		}
		return false
	})
	if proxy.Calls("getMe") < 2 {
		t.Errorf("getMe called %d times during the outage; want it retried", proxy.Calls("getMe"))
	}

	proxy.Down(false)
	outage := time.Since(outageStart)
	dcEventually(t, 15*time.Second, "/readyz ready once Telegram is back", func() bool {
		code, _ := readyz(t, run.HTTPAddr)
		return code == http.StatusOK
	})
	u := tgUser(5201)
	if err := client.SendMessage(context.Background(), u, u.Private(), "I fainted in the car park"); err != nil {
		t.Fatal(err)
	}
	client.WaitMessages(t, u.ID, 1, 15*time.Second)
	// The alerts queued during the outage failed with the dispatcher's
	// backoff (doubling, jittered), so the next attempt comes at most about
	// one outage's length after the last failure.
	var all strings.Builder // Messages returns each message once
	dcEventually(t, 2*outage+15*time.Second, "staff chat got the alerts of the outage and after", func() bool {
		ms, err := client.Messages(context.Background(), tgStaff)
		if err != nil {
			return false
		}
		for _, m := range ms {
			all.WriteString(m.Text + "\n")
		}
		s := all.String()
		return strings.Contains(s, "console:local") && strings.Contains(s, "discord:"+dcUser) && strings.Contains(s, string(tgPatient(u.ID)))
	})
}

// TestDiscordGatewayDownAtStart: Discord's gateway refusing connections at
// start-up keeps only Discord down: the console and Telegram answer, /readyz
// names discord (before the fix it said only "a platform is not
// connected"), and Discord connects by itself once the gateway is back.
func TestDiscordGatewayDownAtStart(t *testing.T) {
	emu := telegramtest.StartEmulator(t)
	proxy := telegramtest.NewProxy(t, emu)
	client := telegramtest.NewClient(emu.URL, tgToken)
	dc := discordfake.New(dcToken, discordfake.WithHeartbeatInterval(time.Second))
	t.Cleanup(dc.Close)
	dc.RefuseGateway(true)

	run, console, out := outageMain(t, proxy, dc)
	dcEventually(t, 10*time.Second, "the gateway refused twice", func() bool { return dc.GatewayRefusals() >= 2 })
	dcEventually(t, 10*time.Second, "telegram polling", run.Telegram.Ready)
	if code, body := readyz(t, run.HTTPAddr); code != http.StatusServiceUnavailable || !strings.Contains(body, "discord") || strings.Contains(body, "telegram") {
		t.Errorf("/readyz with Discord down = %d %q; want 503 naming discord only", code, body)
	}
	io.WriteString(console, "I fainted in the car park\n")
	u := tgUser(5202)
	if err := client.SendMessage(context.Background(), u, u.Private(), "I fainted in the car park"); err != nil {
		t.Fatal(err)
	}
	client.WaitMessages(t, u.ID, 1, 15*time.Second)
	dcEventually(t, 10*time.Second, "console patient answered", func() bool { return strings.Contains(out.String(), "Call 911 now") })

	dc.RefuseGateway(false)
	dcEventually(t, 15*time.Second, "discord connected once the gateway is back", dc.Connected)
	dcEventually(t, 15*time.Second, "/readyz ready", func() bool {
		code, _ := readyz(t, run.HTTPAddr)
		return code == http.StatusOK
	})
	const dcUser = "3100000000000000003"
	dc.DM(dcUser, "I fainted in the car park")
	dcEventually(t, 10*time.Second, "discord patient answered", func() bool {
		for _, m := range dc.MessagesIn(dc.DMChannel(dcUser)) {
			if strings.Contains(m.Content, "911") {
				return true
			}
		}
		return false
	})
	dcEventually(t, 10*time.Second, "discord staff channel got every alert", func() bool {
		var all strings.Builder
		for _, m := range dc.MessagesIn(dcStaffCh) {
			all.WriteString(m.Content + "\n")
		}
		s := all.String()
		return strings.Contains(s, "console:local") && strings.Contains(s, string(tgPatient(u.ID))) && strings.Contains(s, "discord:"+dcUser)
	})
}
