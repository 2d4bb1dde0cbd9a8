package desk_test

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/aftercare-clinic/aftercare/desk/desktest"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// axe-core 4.10.3 (MPL-2.0, see testdata/axe/LICENSE), from npm.
//
//go:embed testdata/axe/axe.min.js
var axeSource string

var updateScreenshots = flag.Bool("screenshots", false, "rewrite testdata/screenshots/*.png from the browser test")

// checkin sends the patient's due check-in and answers it with a soreness score.
func (h *harness) checkin(p engine.PatientID, after time.Duration, soreness int) {
	h.t.Helper()
	ctx := context.Background()
	h.clock.Add(after)
	if _, err := h.svc.DeliverDue(ctx); err != nil {
		h.t.Fatal(err)
	}
	for _, choice := range []string{"better", fmt.Sprint(soreness), "none"} {
		ms, _ := h.store.OutboxAll(100)
		h.store.Delivered(ms...)
		if choice == "none" && len(ms) > 0 {
			cs := ms[len(ms)-1].Choices
			for _, c := range cs {
				if strings.HasPrefix(strings.ToLower(c.Label), "none") {
					choice = c.ID
				}
			}
		}
		if err := h.svc.Receive(ctx, service.Inbound{Patient: p, Choice: choice}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// TestBrowser drives the desk in headless Chromium: sign in by link, a red
// flag appearing live, acknowledging it, replying, the soreness chart,
// invites and a CSV import; axe-core checks every page.
func TestBrowser(t *testing.T) {
	exe := desktest.Chromium(t)
	h := newHarness(t)
	ctx := context.Background()
	// A patient two check-ins into follow-up, for the chart and the inbox.
	maria := engine.PatientID("telegram:5")
	if err := h.svc.Receive(ctx, service.Inbound{Patient: maria, Text: "hello", DisplayName: "Maria L."}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.RecordVisit(ctx, maria, engine.Visit{At: h.clock.Now(), Treatment: engine.DryNeedling, Area: "lower back", Source: "clinic", Consent: true,
		Identity: &engine.Identity{Name: "Maria Lopez", Chart: "C-1001", Phone: "+1-555-0142"}}); err != nil {
		t.Fatal(err)
	}
	h.checkin(maria, 25*time.Hour, 6)
	h.checkin(maria, 24*time.Hour, 3)
	h.store.Delivered(mustOutbox(t, h)...)

	tctx := desktest.Browser(t, exe)

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	axe := func(page string) {
		t.Helper()
		if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](axeSource+";true")); err != nil {
			t.Fatalf("inject axe-core on %s: %v", page, err)
		}
		bad, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
				.filter(v => v.impact === "serious" || v.impact === "critical")
				.map(v => v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("axe-core on %s: %v", page, err)
		}
		for _, v := range bad {
			t.Errorf("axe-core on %s: %s", page, v)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if *updateScreenshots {
			if err := os.WriteFile(filepath.Join("testdata", "screenshots", name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
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

	// Refused: a made-up link and an expired one.
	refused := func(what, link, want string) {
		t.Helper()
		do(what, chromedp.Navigate(link), chromedp.WaitVisible(`button[type=submit]`), chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`p.problem`))
		if txt := eval(what, `document.querySelector("p.problem").textContent`); !strings.Contains(txt, want) {
			t.Errorf("%s: page says %q, want %q", what, txt, want)
		}
		if nav := eval("signed in?", `String(document.querySelector("nav") !== null)`); nav != "false" {
			t.Errorf("%s: the desk's navigation is shown", what)
		}
	}
	refused("made-up link", h.srv.URL+"/login?t=AAAAmadeupAAAA", "not valid")
	expired := h.link()
	h.clock.Add(11 * time.Minute)
	refused("expired link", expired, "has expired")
	if _, err := h.desk.IssueLink(ctx, "telegram:999"); err == nil {
		t.Error("someone who is not staff got a sign-in link")
	}

	// Sign in by link.
	link := h.link()
	do("open the sign-in link", chromedp.Navigate(link), chromedp.WaitVisible(`button[type=submit]`))
	axe("sign-in")
	shot("signin")
	do("sign in", chromedp.Click(`button[type=submit]`), chromedp.WaitVisible(`#alert-list`))
	if loc := eval("location", "location.pathname"); loc != "/alerts" {
		t.Fatalf("after sign-in at %s", loc)
	}
	refused("reused link", link, "already used")
	do("back to the desk", chromedp.Navigate(h.srv.URL+"/alerts"), chromedp.WaitVisible(`#alert-list`))
	axe("alerts (none open)")

	// A red flag appears live, without a reload, with the count in the title.
	eval("mark the page", `window.__sameDocument = "yes"`)
	e := h.redFlag("telegram:7")
	do("see the alert arrive", chromedp.WaitVisible(fmt.Sprintf(`#alert-%d`, e.ID)))
	if eval("same page?", `window.__sameDocument || "reloaded"`) != "yes" {
		t.Fatal("the page reloaded to show the alert")
	}
	if title := eval("title", "document.title"); !strings.HasPrefix(title, "(1) ") {
		t.Errorf("title %q, want the count (1)", title)
	}
	axe("alerts")
	shot("alerts")

	// Acknowledge from the page: the ladder stops and the staff chat is told.
	h.store.Delivered(mustOutbox(t, h)...)
	// By keyboard alone: Tab until the Acknowledge button has the focus
	// (visibly), then Enter.
	ackSel := fmt.Sprintf(`#alert-%d form[action$="/ack"] button`, e.ID)
	focused := false
	for range 40 {
		do("tab", chromedp.KeyEvent("\t"))
		if eval("focus", fmt.Sprintf(`String(document.activeElement === document.querySelector(%q))`, ackSel)) == "true" {
			focused = true
			break
		}
	}
	if !focused {
		t.Fatal("Tab never reached the Acknowledge button")
	}
	if outline := eval("focus outline", `getComputedStyle(document.activeElement).outlineStyle`); outline == "none" {
		t.Error("the focused Acknowledge button shows no focus outline")
	}
	do("acknowledge by keyboard", chromedp.KeyEvent("\r"), chromedp.WaitVisible(`.flash`))
	if got, _ := h.store.Escalation(e.ID); got.Status != "acknowledged" || got.AckBy != staffName {
		t.Fatalf("after the click: %s by %q", got.Status, got.AckBy)
	}
	told := false
	for _, m := range mustOutbox(t, h) {
		told = told || (m.Channel == "telegram:-100" && strings.Contains(m.Text, "acknowledged by "+staffName))
	}
	if !told {
		t.Error("the staff chat was not told who took the alert")
	}
	h.store.Delivered(mustOutbox(t, h)...)

	// The patient page: chart, conversation, reply.
	do("patient page", chromedp.Navigate(h.srv.URL+"/patients/"+string(maria)), chromedp.WaitVisible(`svg.chart polyline`))
	if points := eval("read the chart", `document.querySelector("svg.chart polyline").getAttribute("points")`); len(strings.Fields(points)) != 2 {
		t.Errorf("chart points %q, want the two check-ins", points)
	}
	axe("patient")
	// A form sent without the session's CSRF token is refused.
	eval("drop the CSRF token", `document.querySelector("form.reply input[name=csrf]").remove(); "dropped"`)
	do("reply without CSRF", chromedp.SendKeys(`#reply-text`, "forged"), chromedp.Click(`form.reply button`), chromedp.WaitVisible(`p.problem`))
	if txt := eval("refusal", `document.querySelector("p.problem").textContent`); !strings.Contains(txt, "did not come from the desk") {
		t.Errorf("reply without a CSRF token: page says %q", txt)
	}
	for _, m := range mustOutbox(t, h) {
		if strings.Contains(m.Text, "forged") {
			t.Fatal("a reply without a CSRF token was queued")
		}
	}
	do("patient page again", chromedp.Navigate(h.srv.URL+"/patients/"+string(maria)), chromedp.WaitVisible(`#reply-text`))
	do("reply", chromedp.SendKeys(`#reply-text`, "Hi Maria, this is Ana from the clinic. How is your back today?"),
		chromedp.Click(`form.reply button`), chromedp.WaitVisible(`p.flash`))
	replied := false
	for _, m := range mustOutbox(t, h) {
		replied = replied || (m.To == maria && m.Kind == engine.KindReply && strings.Contains(m.Text, "How is your back today?"))
	}
	if !replied {
		t.Error("the reply did not reach the outbox")
	}
	shot("patient")
	for _, want := range []string{"Maria Lopez", "C-1001", "Download the record", "Pause automatic check-ins", "waiting while the clinic team talks"} {
		if !strings.Contains(eval("page text", `document.body.innerText`), want) {
			t.Errorf("patient page lacks %q", want)
		}
	}

	// Pause from the page, then the erase confirmation (not confirmed).
	do("pause", chromedp.Click(`form[action$="/pause"] button`), chromedp.WaitVisible(`form[action$="/resume"] button`))
	if st, _, _ := h.store.State(maria); !st.Paused {
		t.Error("the Pause button did not pause the check-ins")
	}
	do("erase page", chromedp.Click(`a.button.danger`), chromedp.WaitVisible(`button.danger`))
	axe("erase confirmation")
	shot("erase")
	if _, err := h.store.PatientRecord(maria); err != nil {
		t.Fatalf("opening the confirmation erased the patient: %v", err)
	}

	for _, p := range []struct{ path, name string }{{"/inbox", "inbox"}, {"/inbox?filter=needs", "inbox-needs"}, {"/today", "today"}, {"/visits/new", "visit"}} {
		do(p.name, chromedp.Navigate(h.srv.URL+p.path), chromedp.WaitVisible(`main h1`))
		axe(p.name)
		if p.name != "inbox-needs" {
			shot(p.name)
		}
	}

	// One invite with its QR code, with the staff-only identity.
	do("make an invite", chromedp.Navigate(h.srv.URL+"/visits/new"), chromedp.WaitVisible(`#area`),
		chromedp.SendKeys(`#name`, "Sam Lee"), chromedp.SendKeys(`#chart`, "C-2002"), chromedp.SendKeys(`#area`, "neck"),
		chromedp.Click(`form[action="/visits/new"] button`), chromedp.WaitVisible(`img.qr`))
	if txt := eval("invite text", `document.body.innerText`); !strings.Contains(txt, "Sam Lee") || !strings.Contains(txt, "C-2002") {
		t.Errorf("the invite does not name the patient: %q", txt)
	}
	axe("invite")
	shot("invite")

	// The day's appointments from a CSV file, and the printable sheet.
	csvFile := filepath.Join(t.TempDir(), "appointments.csv")
	if err := os.WriteFile(csvFile, []byte("Patient,Appointment Start,Appointment Type\nSam Lee,2026-03-04 09:00,Acupuncture\nJo Kim,2026-03-04 09:30,Dry needling\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	do("import", chromedp.Navigate(h.srv.URL+"/visits/new"), chromedp.WaitVisible(`#file`),
		chromedp.SetUploadFiles(`#file`, []string{csvFile}), chromedp.Click(`form[action="/visits/import"] button`),
		chromedp.WaitVisible(`.sheet img.qr`))
	if n := eval("count the sheet", `String(document.querySelectorAll(".sheet .invite").length)`); n != "2" {
		t.Errorf("sheet has %s invites, want 2", n)
	}
	axe("sheet")
	shot("sheet")

	// Phone and tablet width: every page fits without sideways scrolling.
	for _, size := range [][2]int64{{390, 844}, {820, 1180}} {
		do("resize", chromedp.EmulateViewport(size[0], size[1]))
		for _, path := range []string{"/alerts", "/inbox", "/today", "/patients/" + string(maria), "/visits/new"} {
			do(path, chromedp.Navigate(h.srv.URL+path), chromedp.WaitVisible(`main h1`))
			if over := eval("overflow", `String(document.documentElement.scrollWidth - document.documentElement.clientWidth)`); over != "0" {
				t.Errorf("%s at %dpx wide scrolls sideways by %spx", path, size[0], over)
			}
			if size[0] == 390 && path == "/patients/"+string(maria) {
				shot("patient-phone")
			}
		}
	}
}

func mustOutbox(t *testing.T, h *harness) []engine.Outbound {
	t.Helper()
	ms, err := h.store.OutboxAll(1000)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}
