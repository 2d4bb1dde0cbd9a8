package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/bot/telegram/telegramtest"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// TestTelegramLoginOnlyPrivately: /login sent in the staff group (the
// whole group can read what the bot posts there) puts no sign-in link in
// the group. The staff member who asked gets it in their private chat
// with the bot and it signs them in; the group gets one line saying so.
// For a staff member who never opened a private chat with the bot
// (Telegram answers 403 "bot can't initiate conversation with a user"),
// the link is dropped, never posted or retried anywhere else, no patient
// state is made for them, and the group is told how to get one.
func TestTelegramLoginOnlyPrivately(t *testing.T) {
	doctor := telegramtest.User{ID: 71, FirstName: "Doctor"}
	w := startTelegramWorldWith(t, func(c *Config) {
		c.Telegram.StaffUserIDs = []int64{tgNurse.ID, doctor.ID}
		c.Web = WebConfig{Listen: "127.0.0.1:0", StaffNames: map[string]string{
			fmt.Sprintf("telegram:%d", tgNurse.ID): "Nurse Joy", fmt.Sprintf("telegram:%d", doctor.ID): "Dr Lee"}}
	})
	if w.run.WebAddr == "" {
		t.Fatal("the desk did not start")
	}
	// linksOnlyTo fails when any sendMessage that reached Telegram carried
	// a sign-in link to a chat other than the nurse's private chat.
	linksOnlyTo := func() {
		t.Helper()
		for _, s := range w.proxy.Sent() {
			if strings.Contains(s.Form.Get("text"), "login?t=") && s.Form.Get("chat_id") != strconv.FormatInt(tgNurse.ID, 10) {
				t.Fatalf("a sign-in link was sent to chat %s", s.Form.Get("chat_id"))
			}
		}
		for _, m := range w.read(tgStaff) {
			if strings.Contains(m.Text, "login?t=") {
				t.Fatalf("a sign-in link is in the staff group: %q", m.Text)
			}
		}
	}

	n := w.count(tgStaff)
	w.command(t, tgNurse, tgStaffCh, "/login")
	linkMsg := w.next(t, tgNurse.ID, 0, "/login?t=")
	w.next(t, tgStaff, n, fmt.Sprintf("telegram:%d sent to them in a private chat", tgNurse.ID))
	linksOnlyTo()
	link := regexp.MustCompile(`https?://\S+/login\?t=\S+`).FindString(linkMsg.Text)
	if body := deskSignIn(t, w.run.WebAddr, link); !strings.Contains(body, "Nurse Joy") {
		t.Fatalf("signed in page does not name the nurse:\n%s", body)
	}

	w.proxy.NeverStarted(doctor.ID)
	n = w.count(tgStaff)
	w.command(t, doctor, tgStaffCh, "/login")
	line := w.next(t, tgStaff, n, fmt.Sprintf("telegram:%d not sent", doctor.ID))
	if !strings.Contains(line.Text, "open a private chat with the bot") {
		t.Errorf("the group is not told how to get a link: %q", line.Text)
	}
	if w.proxy.Faulted("sendMessage") != 1 {
		t.Errorf("sendMessage refused %d times, want 1 (the dropped link, never retried)", w.proxy.Faulted("sendMessage"))
	}
	linksOnlyTo()
	if _, err := w.run.DB.PatientRecord(engine.PatientID(fmt.Sprintf("telegram:%d", doctor.ID))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused private chat made a patient record for the staff member (err %v)", err)
	}
	if p := w.run.Service.StaffProblems(); len(p) != 0 {
		t.Errorf("the refused private chat was reported as a staff destination problem: %q", p)
	}
	if _, tok, _ := strings.Cut(link, "t="); tok == "" || strings.Contains(w.logs.String(), tok) {
		t.Errorf("the sign-in token %q is missing or in the logs (debug level)", tok)
	}
}

// deskSignIn follows a desk sign-in link as a browser would (the page,
// then its form) and returns the page it lands on.
func deskSignIn(t *testing.T, webAddr, link string) string {
	t.Helper()
	if link == "" {
		t.Fatal("no sign-in link")
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	r, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	tok := regexp.MustCompile(`name="t" value="([^"]+)"`).FindStringSubmatch(string(b))
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(b))
	if r.StatusCode != 200 || tok == nil || csrf == nil {
		t.Fatalf("link %s: %d\n%s", link, r.StatusCode, b)
	}
	r, err = c.PostForm("http://"+webAddr+"/login", url.Values{"t": {tok[1]}, "csrf": {csrf[1]}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("sign in: %d\n%s", r.StatusCode, b)
	}
	return string(b)
}
