package service_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// TestPatientViewIsAudited checks that a staff member reading a patient's
// timeline with /patient leaves an audit line naming the reader and the
// patient, and no patient text.
func TestPatientViewIsAudited(t *testing.T) {
	h := newStaffHarness(t)
	ctx := context.Background()
	h.svc.RecordVisit(ctx, "telegram:1", engine.Visit{At: t0, Treatment: engine.DryNeedling, Area: "neck", Consent: true})
	h.svc.Receive(ctx, service.Inbound{Patient: "telegram:1", Text: "I fainted"})
	h.drain()
	if out := h.staff("/patient telegram:1"); !strings.Contains(out, "Patient telegram:1") {
		t.Fatalf("/patient: %s", out)
	}
	as, err := h.store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	var views []engine.Audit
	for _, a := range as {
		if a.Action == "patient_viewed" {
			views = append(views, a)
		}
	}
	if len(views) != 1 || views[0].Actor != "telegram:42" || views[0].Patient != "telegram:1" || !views[0].At.Equal(h.clock.Now()) {
		t.Fatalf("audit of /patient = %+v, want one line by telegram:42 about telegram:1", views)
	}
	if d := views[0].Detail; strings.Contains(d, "neck") || strings.Contains(d, "faint") {
		t.Fatalf("audit line carries patient text: %q", d)
	}
}
