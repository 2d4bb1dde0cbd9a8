package triage

import (
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Families pointed at by the sealed round 4 (now spent), read generically:
// each table holds wording written for this file, the red flag beside the
// everyday messages that must keep their level.

// TestPainMuchWorseAlone holds worsening pain told without a comparison
// clause ("so much worse", "cada vez peor", "the worst it has been"): the
// protocol's worsening pain, urgent, and never the worse-before-better
// answer, also after the patient grants that some worsening is expected.
func TestPainMuchWorseAlone(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my hip keeps getting much worse by the hour", want: engine.Urgent, sign: "severe_pain"},
		{text: "honestly my lower back is a lot worse now", want: engine.Urgent, sign: "severe_pain"},
		{text: "ugh the knee is SO much worse tonight", want: engine.Urgent, sign: "severe_pain"},
		{text: "neck pain is the worst it has ever been", want: engine.Urgent, sign: "severe_pain"},
		{text: "this ache is the worst ive felt in ages", want: engine.Urgent, sign: "severe_pain"},
		{text: "i get that it can flare first but this is way worse, no sleep at all", want: engine.Urgent, sign: "severe_pain"},
		{text: "ya se que al principio puede empeorar pero la espalda esta mucho peor", want: engine.Urgent, sign: "severe_pain"},
		{text: "el hombro me duele cada vez peor desde anoche", want: engine.Urgent, sign: "severe_pain"},
		{text: "la rodilla va cada vez peor", want: engine.Urgent, sign: "severe_pain"},
		{text: "es el peor dolor que he tenido", want: engine.Urgent, sign: "severe_pain"},
		// A little worse, not worse, or worse as a question stay.
		{text: "a touch worse this morning, is that the flare you mentioned?", want: engine.None, not: "severe_pain"},
		{text: "not much worse than yesterday, about the same really", want: engine.None, not: "severe_pain"},
		{text: "is it worse if i skip the heat pack?", want: engine.None, not: "severe_pain"},
		{text: "un poquito peor hoy, normal?", want: engine.None, not: "severe_pain"},
		{text: "no esta mucho peor, igual que ayer", want: engine.None, not: "severe_pain"},
		{text: "ni mejor ni peor, igual", want: engine.None, not: "severe_pain"},
	})
}

// TestSignWordHeardInTwo holds voice-to-text splitting a key sign word it
// does not know into two it does ("seize your", "seize her", "pal
// pitations"): the pair is read as the sign word. Words that only share
// the sound of a sign word's consonants with a different opening, or two
// ordinary words, stay apart.
func TestSignWordHeardInTwo(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my wife is having a seize your on the couch", want: engine.Emergency, sign: "seizure", subj: "other"},
		{text: "i think i just had a seize her in the car park", want: engine.Emergency, sign: "seizure"},
		{text: "im seizing and cant stop shaking", want: engine.Emergency, sign: "seizure"},
		{text: "getting pal pitations since lunch", want: engine.Urgent, sign: "palpitations"},
		// Not a sign word once joined.
		{text: "what size your clinic recommends for the heat pack?", want: engine.None, not: "seizure"},
		{text: "seize the day, feeling great", want: engine.None, not: "seizure"},
		{text: "my pal picked me up after the session", want: engine.None, not: "palpitations"},
		{text: "bro the traps are loose", want: engine.None, not: "breathing"},
	})
}

// TestComplaintGoesOnPastItsTime holds an after-effect that outlasts its
// time or grows after the first two days ("more achy than yesterday, day
// 4", "energy still low, hasn't got better", "el dolorcito sigue"): watch,
// never the soreness question or the normal-reaction answer. The same a
// little worse on the first day, or easing, stays normal.
func TestComplaintGoesOnPastItsTime(t *testing.T) {
	runTable(t, []triageCase{
		{text: "a touch more achy than yesterday, its day 4 now", hours: 75, want: engine.Watch, sign: "soreness"},
		{text: "my calf feels more tender than yesterday, day 3", hours: 60, want: engine.Watch, sign: "soreness"},
		{text: "un poco mas adolorida que ayer, dia 3", hours: 60, want: engine.Watch, sign: "soreness"},
		{text: "energy still pretty low and it hasnt got any better", hours: 30, want: engine.Watch, sign: "fatigue"},
		{text: "my energy is low, not getting any better", hours: 30, want: engine.Watch, sign: "fatigue"},
		{text: "el dolorcito de la espalda sigue, crei que ya se me habria pasado", hours: 50, want: engine.Watch, sign: "soreness"},
		{text: "sigo con un dolorcito en el hombro, ya van 4 dias y no se quita", hours: 96, want: engine.Watch, sign: "soreness"},
		// Early, easing, or better stays where it was.
		{text: "a little more sore than yesterday, first day after", hours: 20, want: engine.None},
		{text: "less sore than yesterday, day 3", hours: 60, want: engine.None},
		{text: "un dolorcito leve donde me pincharon", hours: 5, want: engine.None, sign: "soreness"},
		{text: "energy a bit low tonight but fine", hours: 5, want: engine.None},
		{text: "mas relajada que ayer, dia 3", hours: 60, want: engine.None},
	})
}

// TestEverydayWordsAreNoAlarm holds normal messages that use a sign word
// for something else: a headache from traffic or a boss, a numb brain
// after a meeting, a past sign that has stopped since ("haven't come back
// since I cut coffee"), a childhood history asked about, a condition named
// as what treatment is for, deep sleep told as being knocked out, and
// soreness that heat helped or that eases every few hours. Each stays
// normal; the sign itself, told now, keeps its level.
func TestEverydayWordsAreNoAlarm(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my boss is giving me a headache today haha, see you at 4", want: engine.None, not: "headache"},
		{text: "las reuniones de hoy me dan dolor de cabeza jaja, llego a las 5", want: engine.None, not: "headache"},
		{text: "honestly my brain went numb in that lecture lol", want: engine.None, not: "numbness"},
		{text: "despues de tanto papeleo tengo el cerebro dormido jaja", want: engine.None, not: "numbness"},
		{text: "the dizzy spells i told you about at intake havent come back since, fyi", want: engine.None},
		{text: "las palpitaciones que le comente en la primera consulta no han vuelto desde que deje el cafe", want: engine.None},
		{text: "tuve convulsiones de chico, nunca mas, hay algun problema con la puncion?", want: engine.None},
		{text: "cuantas sesiones suelen hacer falta para la lumbalgia?", want: engine.None},
		{text: "the needles knocked me out in a good way, slept all afternoon", want: engine.None, not: "fainting"},
		{text: "bit sore but the heat pack helped a ton", want: engine.None},
		{text: "still a bit stiff but easing a little more each hour", hours: 20, want: engine.None},
		// Told now, the sign keeps its level.
		{text: "bad headache since the session and it keeps getting worse", want: engine.Urgent, sign: "headache"},
		{text: "my hand went numb and its still numb an hour later", want: engine.Urgent, sign: "numbness"},
		{text: "the palpitations are back since the session", want: engine.Urgent, sign: "palpitations"},
		{text: "mi hijo esta convulsionando ahora mismo", want: engine.Emergency, sign: "seizure", subj: "child"},
		{text: "the needle knocked me out, i fainted on the table", want: engine.Urgent, sign: "fainting"},
	})
}

// TestHarmlessMentionsNeedNoQuestion holds normal messages that were asked
// the safety-net question for want of a reading: a local muscle twitch
// told as tics or a muscle that jumps by itself, a passing dizziness that
// is over ("ya nada", "now totally ok"), soreness compared with a strong
// massage or told as a little stiff, yawning, laughter told as dying, and a question about how many sessions
// a condition takes. They are read as what they are, with nothing left
// unread; a whole body shaking or a leg that cannot move stays a red flag.
func TestHarmlessMentionsNeedNoQuestion(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		text string
		want engine.Level
	}{
		{"el gemelo me salta solo a ratos, no duele", engine.None},
		{"tengo la pantorrilla con tics desde ayer, nada de dolor", engine.None},
		{"me dan espasmitos en el muslo, chiquitos", engine.None},
		{"my calf is a bit jumpy today, no pain at all", engine.None},
		{"me dio un mareito al pararme, ya nada", engine.None},
		{"a little woozy standing up before, now totally fine", engine.None},
		{"la espalda un poco adolorida, como despues de un masaje profundo", engine.None},
		{"casi me muero de la risa con tu mensaje", engine.None},
		{"ya casi no me duele el hombro, solo algo rigido", engine.None},
		{"bostezando toda la tarde despues de la sesion", engine.None},
		{"yawning all afternoon after the session", engine.None},
		{"how many sessions does it usually take for migraines?", engine.None},
		{"todo el cuerpo me tiembla y no lo puedo controlar", engine.Emergency},
		{"me tiembla la pierna y no la puedo mover", engine.Urgent},
		{"la mano un poco entumida desde la sesion", engine.Urgent},
	} {
		f := c.Triage(tc.text, 2)
		if f.Level != tc.want {
			t.Errorf("%q: level %v, want %v (signs %v)", tc.text, f.Level, tc.want, f.Signs)
		}
		if tc.want == engine.None && f.Unread > 0 {
			t.Errorf("%q: %d words unread, want every word read", tc.text, f.Unread)
		}
	}
}
