package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/discord"
	"github.com/aftercare-clinic/aftercare/bot/discord/discordfake"
	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/clock"
)

// TestAllPlatformsOneProcess runs Telegram, Discord and the console at once
// from one process and one store: a red flag on any platform reaches every
// staff channel, and each patient is answered on their own platform.
func TestAllPlatformsOneProcess(t *testing.T) {
	tg := &fakeBotAPI{}
	tgSrv := newServer(tg)
	defer tgSrv.Close()
	dc := discordfake.New(dcToken, discordfake.WithHeartbeatInterval(time.Second))
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	on := true
	cfg.Console = &on
	cfg.Telegram = &telegram.Config{APIEndpoint: tgSrv.URL + "/bot%s/%s", StaffChatID: -100,
		PollInterval: telegram.Duration(5 * time.Millisecond), PollTimeout: telegram.Duration(0)}
	cfg.Discord = &discord.Config{StaffChannelID: dcStaffCh, StaffRoleIDs: []string{dcStaffRole}, APIBase: dc.URL(),
		MaxReconnectDelay: discord.Duration(2 * time.Second)}
	pr, pw := io.Pipe()
	out := &lockedBuffer{}
	m := &Main{Config: &cfg, Clock: clock.NewFake(time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)), Stdin: pr, Stdout: out, Stderr: io.Discard,
		Getenv: func(k string) string {
			return map[string]string{EnvTelegramToken: "123:all-platforms", EnvDiscordToken: dcToken}[k]
		}}
	run, stop := startMain(t, m, nil)
	defer func() {
		pw.Close()
		stop()
	}()
	if run.Telegram == nil || run.Discord == nil {
		t.Fatal("both platforms must be running")
	}
	dcEventually(t, 10*time.Second, "discord gateway connected", dc.Connected)
	dcEventually(t, 10*time.Second, "/readyz with both platforms connected", func() bool {
		resp, err := http.Get("http://" + run.HTTPAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	tg.push(555, "I fainted in the car park")
	dc.DM("3100000000000000001", "my heart keeps skipping beats")
	io.WriteString(pw, "big bruise where the needle was, it keeps growing\n")

	staffTG := func() string {
		var b strings.Builder
		for _, s := range tg.sends() {
			if s.chat == -100 {
				b.WriteString(s.text + "\n")
			}
		}
		return b.String()
	}
	staffDC := func() string {
		var b strings.Builder
		for _, msg := range dc.MessagesIn(dcStaffCh) {
			b.WriteString(msg.Content + "\n")
		}
		return b.String()
	}
	for _, who := range []string{"telegram:555", "discord:3100000000000000001", "console:local"} {
		dcEventually(t, 15*time.Second, "alert about "+who+" in every staff channel", func() bool {
			return strings.Contains(staffTG(), who) && strings.Contains(staffDC(), who) && strings.Contains(out.String(), who)
		})
	}
	dcEventually(t, 10*time.Second, "each patient answered on their own platform", func() bool {
		tgPatient := false
		for _, s := range tg.sends() {
			tgPatient = tgPatient || (s.chat == 555 && strings.Contains(s.text, "Call 911 now"))
		}
		dcPatient := false
		for _, msg := range dc.MessagesIn(dc.DMChannel("3100000000000000001")) {
			dcPatient = dcPatient || strings.Contains(msg.Content, "call")
		}
		return tgPatient && dcPatient && strings.Contains(out.String(), "bot> ")
	})
	// A platform losing its connection makes the process not ready.
	dc.Close()
	dcEventually(t, 10*time.Second, "/readyz failing without Discord", func() bool {
		resp, err := http.Get("http://" + run.HTTPAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
}
