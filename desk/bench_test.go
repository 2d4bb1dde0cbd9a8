package desk_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// benchDesk is a desk with 10,000 patients on record (each with a visit
// and a conversation), 50 of them with an open alert, and a signed-in
// session's cookie.
func benchDesk(b *testing.B) (*harness, *http.Cookie) {
	h := newHarness(b)
	ctx := context.Background()
	for i := range 10000 {
		p := engine.PatientID(fmt.Sprintf("telegram:%d", 100000+i))
		if err := h.svc.RecordVisit(ctx, p, engine.Visit{At: h.clock.Now().Add(-time.Duration(i) * time.Minute), Treatment: engine.Acupuncture, Area: "neck", Consent: true}); err != nil {
			b.Fatal(err)
		}
		text := "thanks, can I work out today?"
		if i%200 == 0 {
			text = "I fainted"
		}
		if err := h.svc.Receive(ctx, engine.Inbound{Patient: p, Text: text, DisplayName: "Patient"}); err != nil {
			b.Fatal(err)
		}
	}
	c, _ := h.session()
	u, _ := url.Parse(h.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "desk_session" {
			return h, ck
		}
	}
	b.Fatal("no session cookie")
	return nil, nil
}

// BenchmarkPages renders the alerts page and the inbox (all conversations,
// and the "needs a person" filter) with 10,000 patients on record,
// including the audit line each view writes.
func BenchmarkPages(b *testing.B) {
	h, ck := benchDesk(b)
	handler := h.desk.Handler()
	for _, path := range []string{"/alerts", "/inbox", "/inbox?filter=needs", "/today"} {
		b.Run(path, func(b *testing.B) {
			req := httptest.NewRequest("GET", path, nil)
			req.AddCookie(ck)
			for b.Loop() {
				w := httptest.NewRecorder()
				handler.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%s: %d", path, w.Code)
				}
			}
		})
	}
}
