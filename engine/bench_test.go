package engine_test

import (
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// BenchmarkStep measures one engine step outside triage (the fake
// triager), for the messages the load mix sends most: an aftercare
// question answered from the FAQ, a normal after-effect, a readiness
// button, a thank-you.
func BenchmarkStep(b *testing.B) {
	e := newEngine(b)
	at := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	visit := e.Step("telegram:1", engine.State{}, engine.Event{Kind: engine.EventVisit, Visit: &engine.Visit{At: at, Treatment: engine.DryNeedling, Area: "neck", Consent: true}}, at)
	for _, bc := range []struct{ name, text string }{
		{"faq", "Can I have coffee this morning?"},
		{"after-effect", "My lower back is a bit sore where the needles went in"},
		{"thanks", "ok, thank you"},
		{"readiness", "Can I work out today?"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			now := at.Add(2 * time.Hour)
			for b.Loop() {
				e.Step("telegram:1", visit.State, engine.Event{Kind: engine.EventMessage, Text: bc.text}, now)
			}
		})
	}
}
