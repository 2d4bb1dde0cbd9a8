package triage

import (
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Families pointed at by the spent sealed runs (round 2 and before), read
// generically: each table holds wording written for this file, red flags
// beside the everyday messages that must keep their level.

// TestSpanishPerfectNegation holds "no he/has/ha/hemos/han + participle":
// a real negation in Spanish ("no he vomitado"), which the English
// pseudo-negation "no he ..." ("no he fainted", an answer) must not swallow.
// "No he podido respirar" is no denial: it says breathing failed.
func TestSpanishPerfectNegation(t *testing.T) {
	runTable(t, []triageCase{
		{text: "no he vomitado", want: engine.None, not: "vomiting"},
		{text: "no he vomitado ni nada, solo un poco cansada", want: engine.None, not: "vomiting"},
		{text: "no ha sangrado el punto", want: engine.None, not: "bleeding"},
		{text: "no he sentido dolor en el pecho", want: engine.None, not: "chest_pain"},
		{text: "no hemos notado hinchazon", want: engine.None, not: "swelling"},
		{text: "no he notado entumecimiento en la pierna", want: engine.None, not: "numbness"},
		{text: "no me he desmayado ni mareado", want: engine.None, not: "fainting"},
		{text: "no han salido ronchas", want: engine.None},
		// The negation ends where the clause does.
		{text: "no he vomitado, pero me duele el pecho", want: engine.Emergency, sign: "chest_pain", not: "vomiting"},
		{text: "no he tenido fiebre pero el punto tiene pus", want: engine.Urgent, sign: "infection"},
		// Not being able to is a sign, not a denial.
		{text: "no he podido respirar bien desde anoche", want: engine.Emergency, sign: "breathing"},
		{text: "no he podido mover el brazo desde la sesion", want: engine.Urgent, sign: "weakness"},
		{text: "no he podido dejar de vomitar", want: engine.Urgent, sign: "vomiting"},
		{text: "no ha podido tragar desde hace un rato", want: engine.Emergency},
		// English answers that open on "no" keep their sign.
		{text: "no he fainted again", want: engine.Emergency, sign: "fainting"},
		{text: "no, he's not breathing", want: engine.Emergency, sign: "breathing", subj: "other"},
		{text: "no he is not breathing properly", want: engine.Emergency, sign: "breathing"},
		{text: "no he collapsed in the hall", want: engine.Emergency, sign: "fainting"},
	})
}

// TestSeizureByAppearance holds a seizure told by what it looks like: a
// blank stare or zoning out with twitching, or confusion about where one is
// afterwards. The everyday "zoned out" stays nothing.
func TestSeizureByAppearance(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my dad zoned out and his arm was twitching, now hes confused", want: engine.Emergency, sign: "seizure", subj: "other"},
		{text: "she stared at nothing and her hand started jerking", want: engine.Emergency, sign: "seizure", subj: "other"},
		{text: "afterwards he didnt know where he was", want: engine.Emergency, sign: "seizure", subj: "other"},
		{text: "mi abuela se quedo ida y despues no sabia donde estaba", want: engine.Emergency, sign: "seizure", subj: "other"},
		{text: "i zoned out at work lol", want: engine.None},
		{text: "stared at my screen all afternoon, back feels good", want: engine.None},
	})
}

// TestNumbersThatAreNoYear holds a small number after "in"/"en": "in two
// fingers", "en uno de los puntos" count what hurts, and only a year
// ("in 2019", "en 2019") dates a complaint as the patient's history.
func TestNumbersThatAreNoYear(t *testing.T) {
	runTable(t, []triageCase{
		{text: "numbness in two fingers", want: engine.Urgent, sign: "numbness"},
		{text: "tingling in 2 toes since this morning", want: engine.Urgent, sign: "numbness"},
		{text: "pus in one of the points", want: engine.Urgent, sign: "infection"},
		{text: "me salio pus en uno de los puntos", want: engine.Urgent, sign: "infection"},
		{text: "I had a seizure in 2015, none since", want: engine.None, not: "seizure"},
		{text: "tuve convulsiones en 2012, nada desde entonces", want: engine.None, not: "seizure"},
	})
}

// TestOnceCountsWhenRecent holds "once" in someone else's story: it dates
// the story ("my mum fainted once") unless the sentence says it is recent
// ("fainted twice this evening, once in the bathroom").
func TestOnceCountsWhenRecent(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my partner fainted twice this evening, once in the kitchen and once on the stairs", want: engine.Emergency, sign: "fainting", subj: "other"},
		{text: "mi esposo se desmayo una vez hoy en la tarde", want: engine.Emergency, sign: "fainting", subj: "other"},
		{text: "my colleague had a seizure once", want: engine.None, not: "seizure"},
		{text: "my mum fainted once at the dentist, now she is nervous about needles", want: engine.None, not: "fainting"},
	})
}

// TestSpanishResolvedAhead holds a complaint said to be over with the verb
// first, as Spanish puts it ("se me pasó el mareo", "ya paró"), and a sharp
// pain the patient came in with that is gone. A red flag stays at its own
// resolved level, and a new complaint after it still counts.
func TestSpanishResolvedAhead(t *testing.T) {
	runTable(t, []triageCase{
		{text: "se me paso el dolor de cabeza con la siesta", want: engine.None, not: "headache"},
		{text: "ya se me paso el mareo, fue solo un ratito al levantarme", want: engine.None, not: "dizziness"},
		{text: "se me quito el dolor", want: engine.None},
		{text: "me sangro una gotita pero paro enseguida", want: engine.None, not: "bleeding"},
		{text: "salio un poquito de sangre pero ya paro", want: engine.None, not: "bleeding"},
		{text: "el dolor punzante con el que llegue ya no esta", want: engine.None, not: "sharp_pain"},
		// Red flags keep their resolved level; what comes next counts.
		{text: "se me paso el desmayo", want: engine.Emergency, sign: "fainting"},
		{text: "se me paso el mareo pero ahora me duele el pecho", want: engine.Emergency, sign: "chest_pain"},
		{text: "el punto sangra y no para", want: engine.Urgent, sign: "bleeding"},
		{text: "no paro de vomitar", want: engine.Urgent, sign: "vomiting"},
		{text: "el dolor punzante con el que llegue sigue igual", want: engine.Urgent, sign: "sharp_pain"},
		// English "gone" still looks back only: "gone numb" is numbness.
		{text: "my hand has gone numb", want: engine.Urgent, sign: "numbness"},
	})
}

// TestGeneralQuestionsAndOthersHabits holds questions about what a sign
// looks or feels like, whether needling can cause one, another person's
// habit ("he faints at blood") and a story from the news: none is a report.
// The same signs told as the patient's own stay red flags.
func TestGeneralQuestionsAndOthersHabits(t *testing.T) {
	runTable(t, []triageCase{
		{text: "can acupuncture collapse a lung? just curious", want: engine.None, not: "breathing"},
		{text: "could the needles collapse my lung?", want: engine.None, not: "breathing"},
		{text: "what does a collapsed lung feel like?", want: engine.None, not: "breathing"},
		{text: "what would an allergic reaction look like, so i know", want: engine.None, not: "allergic_reaction"},
		{text: "my sister is coming too, she faints at the sight of needles, any tips?", want: engine.None, subj: "other"},
		{text: "the news said someone fainted at a clinic, anyway I'm fine", want: engine.None, not: "fainting"},
		// Reports.
		{text: "i think my lung collapsed, i cant breathe", want: engine.Emergency, sign: "breathing"},
		{text: "she collapsed in the kitchen", want: engine.Emergency, sign: "fainting", subj: "other"},
		{text: "could the needles have hit a nerve? my arm is numb", want: engine.Urgent, sign: "numbness"},
		{text: "on the news someone fainted and now I am fainting too", want: engine.Emergency, sign: "fainting"},
	})
}

// TestColourfulNormalAfterEffects holds figures patients use for the
// expected heaviness, sleepiness and relaxation ("feel like jelly", "knocked
// me out", "quedé frita", "piernas de algodón"): a known after-effect, not
// an unread word. Told with a real sign, the sign still counts.
func TestColourfulNormalAfterEffects(t *testing.T) {
	runTable(t, []triageCase{
		{text: "so relaxed i feel like jelly", want: engine.None, sign: "heaviness"},
		{text: "my arms feel like theyre made of spaghetti", want: engine.None, sign: "heaviness"},
		{text: "that session knocked me out, in a good way", want: engine.None, sign: "sleepiness"},
		{text: "knocked out for 2 hours after electro, feel refreshed now", want: engine.None, sign: "sleepiness", not: "fainting"},
		{text: "my husband conked out snoring on the sofa after his session", want: engine.None, sign: "sleepiness", subj: "other"},
		{text: "me quede frita en el sillon jaja", want: engine.None, sign: "heaviness"},
		{text: "las piernas como de algodon un rato", want: engine.None, sign: "heaviness"},
		{text: "slight tingling at the points, pleasant, going away", want: engine.None, not: "numbness"},
		// A real sign beside the figure.
		{text: "my legs feel like jelly and I cant stand up", want: engine.Urgent, sign: "instability"},
		{text: "tengo las piernas pesadas y no puedo caminar", want: engine.Urgent, sign: "instability"},
		{text: "he got knocked out and hit his head", want: engine.Emergency, sign: "fainting", subj: "other"},
		{text: "tingly in a nice way but getting worse", want: engine.Urgent, sign: "numbness"},
		{text: "I can't stand the smell of the clinic lol", want: engine.None},
	})
}

// TestOngoingWatch holds fatigue and soreness told as going on past the
// expected time ("same as yesterday", "again today", "no improvement", day
// 2 or 3, given by the hours or in the words): a watch, also when asked as
// "is it normal to still ...?" and beside "kinda annoying". A fresh mild
// complaint stays none.
func TestOngoingWatch(t *testing.T) {
	runTable(t, []triageCase{
		{text: "calf still achy and tender 4 days after, kinda annoying", hours: 96, want: engine.Watch, sign: "soreness"},
		{text: "is it normal to still be this wiped out two days later? no improvement at all", hours: 50, want: engine.Watch, sign: "fatigue"},
		{text: "exhausted all day again today, same as yesterday, a bit worried", want: engine.Watch, sign: "fatigue"},
		{text: "feel like a zombie, 2nd day after electro, no improvement", want: engine.Watch, sign: "fatigue"},
		{text: "sigo cansada igual que ayer", want: engine.Watch, sign: "fatigue"},
		{text: "me duele mas hoy que ayer", want: engine.Watch, sign: "soreness"},
		{text: "still sore on the 3rd day", want: engine.Watch, sign: "soreness"},
		// Fresh or mild: none.
		{text: "is it normal to be tired?", hours: 3, want: engine.None},
		{text: "slept well, a bit tired the day after", want: engine.None},
		{text: "sore like after the gym, kinda nice actually", hours: 3, want: engine.None},
	})
}

// TestSpanishPainScoreAndCantMove holds red flags the rules missed and
// only the learned model caught: a Spanish pain score some words after
// "dolor" ("el dolor de la espalda baja está en 10"), "no me puedo ni
// parar", "no puedo ni levantar el brazo", and "energy still at zero" a
// day on. "Mucho mejor" is improvement, not severity.
func TestSpanishPainScoreAndCantMove(t *testing.T) {
	runTable(t, []triageCase{
		{text: "el dolor de la espalda baja esta en 10", want: engine.Urgent, sign: "severe_pain"},
		{text: "un dolor que es un 9 en el hombro", want: engine.Urgent, sign: "severe_pain"},
		{text: "no me puedo ni parar de la cama", want: engine.Urgent, sign: "instability"},
		{text: "no puedo ni levantar el brazo", want: engine.Urgent, sign: "weakness"},
		{text: "my heart rate esta en 140 sentada en el sofa", want: engine.Urgent, sign: "palpitations"},
		{text: "energy still at zero, been like this since yesterday", want: engine.Watch, sign: "fatigue"},
		{text: "el dolor esta en 3, mucho mejor", want: engine.None},
		{text: "el dolor de espalda, mucho mejor", want: engine.None},
	})
}

// TestPleasantSensationIsNoSign holds a sensation of a red-flag sign's
// vocabulary that the patient calls pleasant ("tingly in a nice relaxed
// way", "buzzy but nice"): at no level it is settled, not named, so the
// reply is not a safety net about numbness. Told as getting worse, it
// counts.
func TestPleasantSensationIsNoSign(t *testing.T) {
	runTable(t, []triageCase{
		{text: "tingly warm feeling in my back, very relaxing", want: engine.None, not: "numbness"},
		{text: "my whole body hums after electro, buzzy but nice", want: engine.None, not: "numbness"},
		{text: "me salio una gotita de sangre pero paro de inmediato", want: engine.None, not: "bleeding"},
		{text: "tingly in a nice way but getting worse", want: engine.Urgent, sign: "numbness"},
		{text: "my hand is numb, not pleasant at all", want: engine.Urgent, sign: "numbness"},
	})
}

// TestReadOnline holds what the patient read or heard about a risk ("I
// read online that needling can very rarely cause a collapsed lung"): no
// report, while a sign of their own after it still is.
func TestReadOnline(t *testing.T) {
	runTable(t, []triageCase{
		{text: "I read online that needling near the ribs can very rarely cause a collapsed lung", want: engine.None, not: "breathing"},
		{text: "ive read online about collapsed lungs from needles in the back", want: engine.None, not: "breathing"},
		{text: "lei en internet que puede dar un desmayo", want: engine.None, not: "fainting"},
		{text: "I read online that it can rarely cause fainting", want: engine.None, not: "fainting"},
		{text: "i read online about it and my chest hurts now", want: engine.Emergency, sign: "chest_pain"},
		{text: "I read online that acupuncture can cause a collapsed lung and now I cant breathe", want: engine.Emergency, sign: "breathing"},
	})
}

// TestHabitsAndPassedWobbles holds another's habit of fainting ("used to
// faint at the sight of needles", "faints at blood"), a wobble that was
// fine once the patient sat, and an after-effect "intense in a good way":
// none and nothing named that would need a safety net. A faint now, or a
// person not waking, is an emergency.
func TestHabitsAndPassedWobbles(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my dad used to faint at the sight of needles, I had zero issues", want: engine.None, not: "fainting", subj: "other"},
		{text: "my brother faints at blood, any tips for his first session?", want: engine.None, not: "fainting", subj: "other"},
		{text: "had a wobbly moment getting up but fine once I sat for a sec", want: engine.None, not: "shakiness"},
		{text: "zonked on the sofa, that was intense in a good way", want: engine.None},
		{text: "my brother fainted at the sight of blood just now", want: engine.Emergency, sign: "fainting", subj: "other"},
		{text: "he isnt waking up", want: engine.Emergency, sign: "fainting", subj: "other"},
		{text: "I didn't wake up with my usual headache, just tired", want: engine.None, not: "fainting"},
	})
}
