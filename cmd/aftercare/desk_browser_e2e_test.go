package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/desk/desktest"
	"github.com/chromedp/chromedp"
)

var deskScreenshots = flag.Bool("screenshots", false, "rewrite desk/testdata/screenshots/telegram-*.png from the desk's end-to-end browser test")

// TestDeskThroughTelegram runs the whole bot (store, engine, service,
// dispatcher, the Telegram adapter against telegram-test-api) with the
// desk on, and drives the desk in headless Chromium: a staff member gets
// a sign-in link with /login in a private chat with the bot and signs in;
// a patient on Telegram reports a red flag and it appears on the open
// alerts page within 2 s without a reload; acknowledging it on the page
// stops the ladder and tells the staff chat who took it; a reply written
// on the patient page reaches the patient on Telegram, marked as from the
// clinic team. Waits follow the page's own events (a MutationObserver on
// what the Server-Sent Events redraw) and the emulator's messages.
func TestDeskThroughTelegram(t *testing.T) {
	exe := desktest.Chromium(t)
	nurse := tgNurse
	w := startTelegramWorldWith(t, func(c *Config) {
		c.Telegram.StaffUserIDs = []int64{nurse.ID}
		c.Web = WebConfig{Listen: "127.0.0.1:0", StaffNames: map[string]string{fmt.Sprintf("telegram:%d", nurse.ID): "Nurse Joy"}}
	})
	if w.run.WebAddr == "" {
		t.Fatal("the desk did not start")
	}
	base := "http://" + w.run.WebAddr

	// Sign-in link by /login in a private chat with the bot.
	w.command(t, nurse, nurse.Private(), "/login")
	linkMsg := w.next(t, nurse.ID, 0, "/login?t=")
	link := regexp.MustCompile(`https?://\S+/login\?t=\S+`).FindString(linkMsg.Text)
	if link == "" {
		t.Fatalf("no link in %q", linkMsg.Text)
	}

	tctx := desktest.Browser(t, exe)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, js string) string {
		t.Helper()
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if *deskScreenshots {
			if err := os.WriteFile(filepath.Join("..", "..", "desk", "testdata", "screenshots", name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	do("open the sign-in link", chromedp.Navigate(link), chromedp.WaitVisible(`button[type=submit]`))
	do("sign in", chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`#alert-list`))
	if who := eval("who", `document.querySelector(".who").textContent`); who != "Nurse Joy" {
		t.Fatalf("signed in as %q", who)
	}
	// The page's live stream is open once its first event drew the list.
	do("live stream open", chromedp.WaitVisible(`#alert-list p.calm`))

	// A red flag on Telegram appears on the open page without a reload.
	eval("watch the page", `window.__sameDocument = "yes";
		window.__alertSeen = new Promise(resolve => {
			const seen = () => { if (document.querySelector("#alert-list li.alert")) { resolve("seen"); return true; } return false; };
			if (!seen()) { new MutationObserver((_, o) => { if (seen()) o.disconnect(); }).observe(document.getElementById("alert-list"), {childList: true, subtree: true}); }
		}); "watching"`)
	patient := tgUser(4242)
	staffBefore := w.count(tgStaff)
	start := time.Now()
	w.say(t, patient, "I fainted after the session and my chest hurts")
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[string](`window.__alertSeen`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("waiting for the alert on the page: %v", err)
	}
	took := time.Since(start)
	t.Logf("red flag on Telegram to the open desk page: %s", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("the alert took %s to appear on the page, want at most 2 s", took)
	}
	if eval("same page?", `window.__sameDocument || "reloaded"`) != "yes" {
		t.Fatal("the page reloaded to show the alert")
	}
	if title := eval("title", "document.title"); !strings.HasPrefix(title, "(1) ") {
		t.Errorf("title %q, want the count (1)", title)
	}
	es, err := w.run.Store.Escalations()
	if err != nil || len(es) != 1 || es[0].Patient != tgPatient(patient.ID) {
		t.Fatalf("escalations %+v %v", es, err)
	}
	e := es[0]
	w.next(t, tgStaff, staffBefore, "EMERGENCY")
	if tm, _ := w.run.Store.EscalationTimers(e.ID); len(tm) == 0 {
		t.Fatal("no reminder ladder running for the emergency; the acknowledgement below would prove nothing")
	}
	shot("telegram-alert")

	// Acknowledge on the page: the ladder stops, the staff chat is told.
	staffBefore = w.count(tgStaff)
	do("acknowledge", chromedp.Click(fmt.Sprintf(`#alert-%d form[action$="/ack"] button`, e.ID)), chromedp.WaitVisible(`.flash`))
	w.next(t, tgStaff, staffBefore, "acknowledged by Nurse Joy")
	if got, _ := w.run.Store.Escalation(e.ID); got.Status != "acknowledged" || got.AckBy != "Nurse Joy" {
		t.Fatalf("after the click: %s by %q", got.Status, got.AckBy)
	}
	if tm, _ := w.run.Store.EscalationTimers(e.ID); len(tm) != 0 {
		t.Errorf("the ladder still has timers after the acknowledgement: %v", tm)
	}
	if ladder := eval("ladder", fmt.Sprintf(`document.querySelector("#alert-%d .ladder").textContent`, e.ID)); ladder != "acknowledged by Nurse Joy" {
		t.Errorf("ladder on the page %q", ladder)
	}

	// A reply from the patient page reaches the patient on Telegram.
	patientBefore := w.count(patient.ID)
	do("patient page", chromedp.Navigate(base+"/patients/"+string(tgPatient(patient.ID))), chromedp.WaitVisible(`#reply-text`))
	do("reply", chromedp.SendKeys(`#reply-text`, "This is Joy from the clinic: I am calling you right now."),
		chromedp.Click(`form.reply button`), chromedp.WaitVisible(`p.flash`))
	got := w.next(t, patient.ID, patientBefore, "I am calling you right now")
	if !strings.HasPrefix(got.Text, "Message from the clinic team:") {
		t.Errorf("the reply reached Telegram as %q, want it marked as from the clinic team", got.Text)
	}
	shot("telegram-reply")
}
