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

// TestNegationContrast holds a contrast after a negated sign ("not X its
// Y", "not X but Y", "no es X, es Y", "no es X sino Y"): the negation ends
// at the contrast, with or without the comma, and an apostrophe left out
// ("its", "thats", "dont") reads as the form with it.
func TestNegationContrast(t *testing.T) {
	runTable(t, []triageCase{
		{text: "its not sore its SHARP. hip area", want: engine.Urgent, sign: "sharp_pain"},
		{text: "it's not sore it's sharp", want: engine.Urgent, sign: "sharp_pain"},
		{text: "thats not an ache thats a stabbing pain in my glute", want: engine.Urgent, sign: "sharp_pain"},
		{text: "not dizzy more like my heart is racing", want: engine.Urgent, sign: "palpitations"},
		{text: "i dont have a headache just chills and shivering", want: engine.Urgent, sign: "infection"},
		{text: "not sore but shooting pain down the leg", want: engine.Urgent, sign: "sharp_pain"},
		{text: "no es molestia es una punzada en la cadera", want: engine.Urgent, sign: "sharp_pain"},
		{text: "no es un dolor normal sino punzadas en la espalda", want: engine.Urgent, sign: "sharp_pain"},
		{text: "no tengo fiebre solo escalofrios", want: engine.Urgent, sign: "infection"},
		// The negation still reaches what it denies.
		{text: "it's not sharp, just sore", want: engine.None, not: "sharp_pain"},
		{text: "its not sharp just sore", want: engine.None, not: "sharp_pain"},
		{text: "no es punzante, solo molestia", want: engine.None, not: "sharp_pain"},
		{text: "no es punzante solo molestia", want: engine.None, not: "sharp_pain"},
		{text: "dont think its infected, just a bit pink", want: engine.None, not: "infection"},
		{text: "im not dizzy and theres no fever", want: engine.None},
		{text: "no fever or chills, its all fine", want: engine.None},
		{text: "no tengo fiebre ni escalofrios, todo bien", want: engine.None},
	})
}

// TestSimileIsReport holds "as if" and "como si" after a feeling ("feels as
// if", "siento como si"): a simile describing what is felt now, not a
// hypothetical; a blade, nail or knife driven in is sharp pain.
func TestSimileIsReport(t *testing.T) {
	runTable(t, []triageCase{
		{text: "siento como si me clavaran un cuchillo en la nalga cuando camino", want: engine.Urgent, sign: "sharp_pain"},
		{text: "es como si me clavaran clavos en la pierna al pisar", want: engine.Urgent, sign: "sharp_pain"},
		{text: "se siente como si me apunalaran el hombro", want: engine.Urgent, sign: "sharp_pain"},
		{text: "it feels as if I have a knife in my hip", want: engine.Urgent, sign: "sharp_pain"},
		{text: "like a nail being driven in, right in the hip", want: engine.Urgent, sign: "sharp_pain"},
		{text: "feels like a nail hammered into my lower back", want: engine.Urgent, sign: "sharp_pain"},
		{text: "its SHARP. like a blade twisting when I bend", want: engine.Urgent, sign: "sharp_pain"},
		// A simile of something harmless, the needle felt as still in, and
		// a real hypothetical stay as they were.
		{text: "feels like the needle is still in there, a dull ache", want: engine.None},
		{text: "siento como si tuviera la aguja todavia", want: engine.None},
		{text: "me siento como si hubiera corrido un maraton jaja", want: engine.None},
		{text: "what if I get a stabbing pain later?", want: engine.None, not: "sharp_pain"},
		{text: "si me da un dolor punzante, que hago?", want: engine.None, not: "sharp_pain"},
	})
}

// TestQuestionThenMine holds a question followed by the patient's own case
// ("mine does", "I have it", "a mí me pasa", "lo tengo"): a report of a
// current sign, read at the sign's own level rather than lowered as a
// general question.
func TestQuestionThenMine(t *testing.T) {
	runTable(t, []triageCase{
		{text: "is it normal for the heart to flutter after electro? mine keeps doing it", want: engine.Urgent, sign: "palpitations"},
		{text: "is it normal for a needle point to ooze? mine is", want: engine.Urgent, sign: "infection"},
		{text: "is pus normal at the spot? mine has some", want: engine.Urgent, sign: "infection"},
		{text: "do people get a racing heart after needling? I have that right now", want: engine.Urgent, sign: "palpitations"},
		{text: "es normal tener palpitaciones despues? a mi me pasa", want: engine.Urgent, sign: "palpitations"},
		{text: "es normal que salga pus del punto? lo tengo", want: engine.Urgent, sign: "infection"},
		{text: "es normal tener pus en el punto? el mio si", want: engine.Urgent, sign: "infection"},
		// A question with nothing of the patient's own, or a harmless
		// sign of their own, keeps its level.
		{text: "is it normal to bruise? mine is small and fading", want: engine.None, sign: "bruising"},
		{text: "is it normal for a needle spot to have pus?", want: engine.Watch, sign: "infection", ask: true},
		{text: "is fainting common after acupuncture?", want: engine.None, not: "fainting"},
		{text: "es normal marearse? se me pasa rapido", want: engine.None},
		{text: "es normal tener un moreton? el mio esta chiquito", want: engine.None},
	})
}

// TestSimileWordsAreEveryday holds everyday words near the simile
// vocabulary ("drive" near "driven", "showing" near "shoving", a shoulder
// blade): they are no unread sign word, so they do not make a message
// suspect.
func TestSimileWordsAreEveryday(t *testing.T) {
	c := Default()
	for _, text := range []string{
		"can I drive home after?",
		"she's showing it off to everyone",
		"my shoulder blade feels looser",
		"got my nails done after the session",
		"no danger of me missing next week",
	} {
		if f := c.Triage(text, -1); f.Unread != 0 || f.Level != engine.None {
			t.Errorf("%q: level %s, %d words unread, want none and 0", text, f.Level, f.Unread)
		}
	}
}
