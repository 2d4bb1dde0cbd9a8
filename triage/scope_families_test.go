package triage

import (
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// The missed red flags of sealed round 2, read as families: each table
// holds red flags worded fresh for this file and the everyday messages
// beside them that must keep their level.

// TestStopVerbNegation holds a negated verb of stopping ("can not stop",
// "no paro de", "sin parar"): the negation belongs to the stopping, so the
// symptom goes on, and it counts as persistence.
func TestStopVerbNegation(t *testing.T) {
	runTable(t, []triageCase{
		{text: "I can not stop throwing up since lunch", want: engine.Urgent, sign: "vomiting"},
		{text: "i could not stop vomiting last night and this morning", want: engine.Urgent, sign: "vomiting"},
		{text: "been puking and it does not stop", want: engine.Urgent, sign: "vomiting"},
		{text: "the bleeding at the needle spot didnt stop", want: engine.Urgent, sign: "bleeding"},
		// Persistence: a headache is a watch, one that goes on is urgent.
		{text: "this headache does not stop", want: engine.Urgent, sign: "headache"},
		{text: "la cabeza me duele sin parar", want: engine.Urgent, sign: "headache"},
		{text: "tengo dolor de cabeza que no ha parado en todo el dia", want: engine.Urgent, sign: "headache"},
		{text: "a headache, the usual kind", want: engine.Watch, sign: "headache"},
		{text: "no puedo dejar de vomitar desde la sesion", want: engine.Urgent, sign: "vomiting"},
		{text: "no paraba de vomitar anoche y sigo igual", want: engine.Urgent, sign: "vomiting"},
		{text: "llevo toda la tarde que no he parado de vomitar", want: engine.Urgent, sign: "vomiting"},
		{text: "el punto sangra y no se detiene", want: engine.Urgent, sign: "bleeding"},
		{text: "me duele la cabeza y no deja de doler", want: engine.Urgent, sign: "headache"},
		// Stopping said of something harmless, or a real negation.
		{text: "I couldn't stop laughing at the physio's jokes", want: engine.None},
		{text: "no paro de dormir jaja", want: engine.None},
		{text: "no paro de bostezar desde la sesion jaja", want: engine.None},
		{text: "I did not vomit, just felt a bit queasy", want: engine.Watch, not: "vomiting"},
		{text: "no vomite ni nada", want: engine.None, not: "vomiting"},
		{text: "I can't stop smiling, my back feels amazing", want: engine.None},
	})
}
