package desk_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/desk"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// enrolled records a clinic visit with an identity for p.
func (h *harness) enrolled(p engine.PatientID) {
	h.t.Helper()
	ctx := context.Background()
	if err := h.svc.Receive(ctx, service.Inbound{Patient: p, Text: "hello", DisplayName: "JQ"}); err != nil {
		h.t.Fatal(err)
	}
	v := engine.Visit{At: h.clock.Now(), Treatment: engine.Acupuncture, Area: "neck", Source: "clinic", Consent: true,
		Identity: &engine.Identity{Name: "Jane Quinlan", Chart: "C-20417", Phone: "+1-555-0142"}}
	if err := h.svc.RecordVisit(ctx, p, v); err != nil {
		h.t.Fatal(err)
	}
}

// TestPatientActionsNeedCSRF: export, pause, resume and erase are POSTs
// that a request without the session's CSRF token cannot make.
func TestPatientActionsNeedCSRF(t *testing.T) {
	h := newHarness(t)
	p := engine.PatientID("telegram:41")
	h.enrolled(p)
	c, _ := h.session()
	for _, action := range []string{"export", "pause", "resume", "erase", "reply"} {
		r := h.post(c, "/patients/"+string(p)+"/"+action, url.Values{"confirm": {"erase"}, "text": {"hi"}})
		read(t, r)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s without a CSRF token: %d, want 403", action, r.StatusCode)
		}
	}
	if _, err := h.store.PatientRecord(p); err != nil {
		t.Fatalf("the patient is gone after refused requests: %v", err)
	}
	if st, _, _ := h.store.State(p); st.Paused {
		t.Error("a pause without a CSRF token was applied")
	}
}

// TestPatientExportPauseResumeErase: the patient page's actions work and
// are audited with the staff member's name; erasing asks first.
func TestPatientExportPauseResumeErase(t *testing.T) {
	h := newHarness(t)
	p := engine.PatientID("telegram:42")
	h.enrolled(p)
	c, csrf := h.session()
	path := "/patients/" + string(p)

	page := read(t, h.get(c, path))
	for _, want := range []string{"<h1>Jane Quinlan", "C-20417", "Pause automatic check-ins", "Download the record", "Erase the patient"} {
		if !strings.Contains(page, want) {
			t.Errorf("patient page lacks %q", want)
		}
	}

	// Export: the FHIR document, with the identity as a Patient resource.
	r := h.post(c, path+"/export", url.Values{"csrf": {csrf}})
	body := read(t, r)
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("export: %d %q", r.StatusCode, r.Header.Get("Content-Disposition"))
	}
	var doc struct {
		Patient         string `json:"patient"`
		PatientResource struct {
			ResourceType string `json:"resourceType"`
			Identifier   []struct{ System, Value string }
			Name         []struct{ Text string }
		} `json:"patient_resource"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, body)
	}
	if pr := doc.PatientResource; doc.Patient != string(p) || pr.ResourceType != "Patient" || len(pr.Identifier) != 2 || pr.Identifier[1].Value != "C-20417" || len(pr.Name) != 1 || pr.Name[0].Text != "Jane Quinlan" {
		t.Errorf("export %+v", doc)
	}
	if as := h.audit("patient_exported"); len(as) != 1 || as[0].Actor != staffName || as[0].Patient != p {
		t.Errorf("export audit %+v", as)
	}

	// Pause, then resume.
	for _, tc := range []struct {
		action string
		paused bool
		flash  string
	}{{"pause", true, "paused"}, {"resume", false, "on again"}} {
		r := h.post(c, path+"/"+tc.action, url.Values{"csrf": {csrf}})
		read(t, r)
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: %d", tc.action, r.StatusCode)
		}
		if st, _, _ := h.store.State(p); st.Paused != tc.paused {
			t.Errorf("after %s: paused %v", tc.action, st.Paused)
		}
		if as := h.audit(tc.action); len(as) != 1 || as[0].Actor != staffName {
			t.Errorf("%s audit %+v", tc.action, as)
		}
		if page := read(t, h.get(c, r.Header.Get("Location"))); !strings.Contains(page, tc.flash) {
			t.Errorf("after %s the page does not say so", tc.action)
		}
	}

	// Erase asks first; a POST without the confirmation erases nothing.
	if page := read(t, h.get(c, path+"/erase")); !strings.Contains(page, "cannot be undone") || !strings.Contains(page, `name="confirm" value="erase"`) {
		t.Fatalf("no confirmation page:\n%s", page)
	}
	if as := h.audit("patient_viewed"); len(as) == 0 || as[len(as)-1].Detail != "staff desk: erase confirmation" || as[len(as)-1].Actor != staffName {
		t.Errorf("the confirmation page, which names the patient, was not audited: %+v", as)
	}
	r = h.post(c, path+"/erase", url.Values{"csrf": {csrf}})
	read(t, r)
	if r.StatusCode != http.StatusSeeOther || !strings.HasSuffix(r.Header.Get("Location"), "/erase") {
		t.Fatalf("erase without confirmation: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if _, err := h.store.PatientRecord(p); err != nil {
		t.Fatalf("erased without confirmation: %v", err)
	}
	r = h.post(c, path+"/erase", url.Values{"csrf": {csrf}, "confirm": {"erase"}})
	if body := read(t, r); r.StatusCode != 200 || !strings.Contains(body, "Patient erased") {
		t.Fatalf("erase: %d\n%s", r.StatusCode, body)
	}
	if _, err := h.store.PatientRecord(p); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after erase: %v, want ErrNotFound", err)
	}
	// No record left holds the identity (bbolt's free pages may still
	// hold old bytes until reused; records are what a copy would keep).
	var all strings.Builder
	keep := func(raw []byte) error { all.Write(raw); return nil }
	if err := h.store.Walk(store.Walker{
		State:      func(_ engine.PatientID, raw []byte) error { return keep(raw) },
		Outbox:     func(_ uint64, raw []byte) error { return keep(raw) },
		Escalation: func(_ uint64, raw []byte) error { return keep(raw) },
		Visit:      func(_ uint64, _ engine.PatientID, raw []byte) error { return keep(raw) },
		Audit:      func(_ uint64, raw []byte) error { return keep(raw) },
		Invite:     func(_ string, raw []byte) error { return keep(raw) },
		Transcript: func(_ engine.PatientID, _ uint64, raw []byte) error { return keep(raw) },
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Jane Quinlan", "C-20417", "555-0142", string(p)} {
		if strings.Contains(all.String(), s) {
			t.Errorf("a record still holds %q after erasing", s)
		}
	}
	// The erased patient's own lines go; the line naming who erased is
	// kept, without the patient.
	if as := h.audit("erase"); len(as) != 1 || as[0].Actor != staffName || as[0].Patient != "" {
		t.Errorf("erase audit lines %+v", as)
	}
	if got := h.audit("erased"); len(got) != 1 {
		t.Errorf("erasure not audited: %+v", got)
	}
	if r := h.get(c, path); r.StatusCode != http.StatusNotFound {
		t.Errorf("patient page after erase: %d", r.StatusCode)
	}
}

// TestDeskReplyHoldsCheckins: a reply from the desk holds the patient's
// automatic check-in until the hold ends, and the patient page says so.
func TestDeskReplyHoldsCheckins(t *testing.T) {
	h := newHarness(t)
	p := engine.PatientID("telegram:43")
	h.enrolled(p)
	ctx := context.Background()
	h.clock.Add(24*time.Hour - 10*time.Minute)
	c, csrf := h.session()
	if r := h.post(c, "/patients/"+string(p)+"/reply", url.Values{"csrf": {csrf}, "text": {"How is the neck?"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("reply: %d", r.StatusCode)
	}
	if page := read(t, h.get(c, "/patients/"+string(p))); !strings.Contains(page, "waiting while the clinic team talks with the patient") {
		t.Error("the patient page does not show the hold")
	}
	h.clock.Add(15 * time.Minute) // the 24 h check-in is due now
	if _, err := h.svc.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := h.store.State(p); len(st.Checkins) != 0 {
		t.Fatalf("check-in sent during the hold: %+v", st.Checkins)
	}
	h.clock.Add(engine.DefaultStaffHold)
	if _, err := h.svc.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := h.store.State(p); len(st.Checkins) != 1 {
		t.Fatalf("check-in not sent after the hold: %+v", st.Checkins)
	}
}

// TestTimesInClinicZone: the desk writes times in the clinic's zone, as
// configured, not the server's.
func TestTimesInClinicZone(t *testing.T) {
	for _, tc := range []struct {
		zone string
		want string
	}{
		{"America/Chicago", "Mon 2 Mar 10:00 CST"},
		{"Asia/Tokyo", "Tue 3 Mar 01:00 JST"},
		{"Europe/Madrid", "Mon 2 Mar 17:00 CET"},
	} {
		t.Run(tc.zone, func(t *testing.T) {
			h := newHarness(t, func(c *desk.Config) { c.Location = mustZone(tc.zone) })
			p := engine.PatientID("telegram:44")
			h.enrolled(p)
			c, _ := h.session()
			page := read(t, h.get(c, "/patients/"+string(p)))
			if !strings.Contains(page, tc.want) {
				t.Errorf("patient page lacks %q", tc.want)
			}
			if inbox := read(t, h.get(c, "/inbox")); !strings.Contains(inbox, tc.want) {
				t.Errorf("inbox lacks %q", tc.want)
			}
		})
	}
}

// TestNeedsAPersonFilter: the inbox's "needs a person" filter lists a
// patient who asked for a person until a staff member replies, next to
// the other reasons (open alert, unanswered questions, unreachable).
func TestNeedsAPersonFilter(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	asker, calm, flagged := engine.PatientID("telegram:51"), engine.PatientID("telegram:52"), engine.PatientID("telegram:53")
	for _, m := range []service.Inbound{
		{Patient: asker, Text: "hello"}, {Patient: asker, Text: "can I talk to someone at the clinic?"},
		{Patient: calm, Text: "hello"}, {Patient: calm, Text: "thanks"},
	} {
		if err := h.svc.Receive(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	h.redFlag(flagged)
	c, csrf := h.session()
	needs := func() string { return read(t, h.get(c, "/inbox?filter=needs")) }
	page := needs()
	for _, want := range []string{string(asker) + "</a>", "asked for a person", string(flagged), "open alert"} {
		if !strings.Contains(page, want) {
			t.Errorf("needs-a-person list lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, string(calm)) {
		t.Errorf("a patient who needs nobody is listed")
	}
	if r := h.post(c, "/patients/"+string(asker)+"/reply", url.Values{"csrf": {csrf}, "text": {"Calling you now."}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("reply: %d", r.StatusCode)
	}
	if page := needs(); strings.Contains(page, string(asker)) {
		t.Errorf("still listed after a staff reply")
	}
}

// TestTodayListsInvitedPatients: an invite made on the desk shows on
// Today as "invited" with the name entered, until the patient uses it;
// then the patient is listed with their follow-up status instead.
func TestTodayListsInvitedPatients(t *testing.T) {
	h := newHarness(t)
	c, csrf := h.session()
	r := h.post(c, "/visits/new", url.Values{"csrf": {csrf}, "treatment": {"acupuncture"}, "area": {"neck"}, "name": {"Rosa Diaz"}, "chart": {"C-77"}})
	body := read(t, r)
	tok := regexp.MustCompile(`/start ([A-Za-z0-9_-]+)`).FindStringSubmatch(body)
	if r.StatusCode != 200 || tok == nil {
		t.Fatalf("invite: %d", r.StatusCode)
	}
	today := read(t, h.get(c, "/today"))
	if !strings.Contains(today, "Rosa Diaz") || !strings.Contains(today, `<span class="status">invited</span>`) || !strings.Contains(today, "chart C-77") {
		t.Fatalf("today lacks the invited patient:\n%s", today)
	}
	if err := h.svc.Receive(context.Background(), service.Inbound{Patient: "telegram:61", Text: "/start " + tok[1], Invite: tok[1]}); err != nil {
		t.Fatal(err)
	}
	today = read(t, h.get(c, "/today"))
	if strings.Contains(today, `<span class="status">invited</span>`) {
		t.Error("a used invite is still listed as invited")
	}
	if !strings.Contains(today, "Rosa Diaz <span class=\"id\">telegram:61</span>") {
		t.Errorf("the linked patient is not listed by name:\n%s", today)
	}
}

// TestSorenessChartAcrossVisits: the chart keeps the scores of an earlier
// visit's check-ins when a new visit starts, with a line between visits.
func TestSorenessChartAcrossVisits(t *testing.T) {
	h := newHarness(t)
	p := engine.PatientID("telegram:71")
	h.enrolled(p)
	h.checkin(p, 25*time.Hour, 6)
	h.checkin(p, 24*time.Hour, 4)
	if err := h.svc.RecordVisit(context.Background(), p, engine.Visit{At: h.clock.Now(), Treatment: engine.DryNeedling, Area: "neck", Source: "clinic", Consent: true}); err != nil {
		t.Fatal(err)
	}
	h.checkin(p, 25*time.Hour, 2)
	c, _ := h.session()
	page := read(t, h.get(c, "/patients/"+string(p)))
	points := regexp.MustCompile(`<polyline class="series" points="([^"]+)"`).FindStringSubmatch(page)
	if points == nil || len(strings.Fields(points[1])) != 3 {
		t.Fatalf("chart points %v, want the two earlier scores and the new one", points)
	}
	if n := strings.Count(page, `class="visit-sep"`); n != 1 {
		t.Errorf("%d lines between visits, want 1", n)
	}
	for _, want := range []string{"visit of 2 Mar, 24h check-in 6 of 10", "visit of 4 Mar, 24h check-in 2 of 10"} {
		if !strings.Contains(page, want) {
			t.Errorf("chart summary lacks %q", want)
		}
	}
}
