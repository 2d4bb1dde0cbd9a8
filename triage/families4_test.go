package triage

import (
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Families pointed at by the sealed round 3 (now spent), read generically:
// each table holds wording written for this file, the red flag beside the
// everyday messages that must keep their level.

// TestNearMissBodyPart holds a real word one letter off a body part in a
// symptom phrase: autocorrect turns "chest" into "chess", and the pair
// "chess pain" is chest pain, an emergency, never the normal soreness.
// The word alone, or away from a pain word, stays itself.
func TestNearMissBodyPart(t *testing.T) {
	runTable(t, []triageCase{
		{text: "chess pain", want: engine.Emergency, sign: "chest_pain"},
		{text: "chess pain since this morning", want: engine.Emergency, sign: "chest_pain"},
		{text: "i have a chess pressure that wont go", want: engine.Emergency, sign: "chest_pain"},
		{text: "my chess hurts a lot", want: engine.Emergency, sign: "chest_pain"},
		{text: "sharp pain in my chess", want: engine.Emergency, sign: "chest_pain"},
		{text: "tengo dolor en el techo", want: engine.Emergency, sign: "chest_pain"},
		{text: "me duele el techo.", want: engine.Emergency, sign: "chest_pain"},
		// The word alone, or not beside a pain word, is itself.
		{text: "played chess all evening, back a bit sore", want: engine.None, not: "chest_pain"},
		{text: "chess club tonight so i might be late", want: engine.None, not: "chest_pain"},
		{text: "el dolor de hecho mejoro bastante", want: engine.None, not: "chest_pain"},
		{text: "se cayo pintura del techo jaja", want: engine.None, not: "chest_pain"},
		{text: "neck pain is a bit better today", want: engine.None, not: "chest_pain"},
	})
}

// TestPainBesideUnreadWord holds the other half: a real word near a sign
// word right before a pain word is an unread body part, so the message is
// asked about rather than answered as normal soreness.
func TestPainBesideUnreadWord(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		text   string
		unread bool
	}{
		{"chesty pain", true},
		{"brest pain", true},
		{"dull ache where the points were", false},
		{"mild local soreness only", false},
		{"back pain a bit better", false},
	} {
		f := c.Triage(tc.text, -1)
		if got := f.Unread > 0 || f.Suspect || f.Level > engine.None; got != tc.unread {
			t.Errorf("%q: unread %d suspect %v level %v, want something unread %v", tc.text, f.Unread, f.Suspect, f.Level, tc.unread)
		}
	}
}

// TestPainMuchWorseThanBefore holds the protocol's worsening pain: pain
// much worse than before the session (or than yesterday), or pain the
// patient cannot bear, is urgent, not the watch of ordinary soreness. A
// little worse in the first days stays the expected worse-before-better.
func TestPainMuchWorseThanBefore(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my knee is so much worse than yesterday", want: engine.Urgent, sign: "severe_pain"},
		{text: "hurts far worse than before i came in", want: engine.Urgent, sign: "severe_pain"},
		{text: "back pain is loads worse than before the needling", want: engine.Urgent, sign: "severe_pain"},
		{text: "my shoulder is a lot worse than before", want: engine.Urgent, sign: "severe_pain"},
		{text: "la espalda me duele mucho peor que ayer", want: engine.Urgent, sign: "severe_pain"},
		{text: "la cadera esta bastante peor que antes de la sesion", want: engine.Urgent, sign: "severe_pain"},
		{text: "tengo un dolor que no aguanto", want: engine.Urgent, sign: "severe_pain"},
		{text: "ya no aguanto el dolor de la rodilla", want: engine.Urgent, sign: "severe_pain"},
		// Better, a little worse, or an idiom stay where they were.
		{text: "way better than before honestly", want: engine.None, not: "severe_pain"},
		{text: "mucho mejor que antes", want: engine.None, not: "severe_pain"},
		{text: "feel a bit worse than before, normal for day one?", want: engine.None, not: "severe_pain"},
		{text: "me siento un poquito peor que antes, es normal?", want: engine.None, not: "severe_pain"},
		{text: "no aguanto las ganas de volver jaja", want: engine.None, not: "severe_pain"},
		{text: "the sharp pain i came in with is gone", want: engine.None},
	})
}

// TestConcessionThenLargeWarm holds "I know some redness is normal but
// mine is ...": the concession is no question about a normal sign, what
// follows is the patient's report, and redness or swelling that is large
// (the size of a palm, an egg) or growing and warm is a sign of infection
// spreading, urgent. Small, fading, or warmth from a shower stays normal.
func TestConcessionThenLargeWarm(t *testing.T) {
	runTable(t, []triageCase{
		{text: "i know a bit of red is expected but this patch is getting bigger and feels warm", want: engine.Urgent, sign: "infection"},
		{text: "i get that some swelling is normal, but mine is hot and the size of an egg", want: engine.Urgent, sign: "infection"},
		{text: "the mark is the size of my hand and warm", want: engine.Urgent, sign: "infection"},
		{text: "the red spot is warm and bigger than yesterday", want: engine.Urgent, sign: "infection"},
		{text: "se que es normal algo de rojo pero lo mio esta del tamano de mi palma y caliente", want: engine.Urgent, sign: "infection"},
		{text: "ya se que un poco de hinchazon es normal pero la mia esta creciendo y calentita", want: engine.Urgent, sign: "infection"},
		{text: "la rojez esta creciendo y caliente", want: engine.Urgent, sign: "infection"},
		{text: "a little red mark where the needle was, no warmth, not spreading", want: engine.None, not: "infection"},
		{text: "i know some redness is normal, mine is tiny and already fading", want: engine.None, not: "infection"},
		{text: "had a warm shower and my back feels bigger lol", want: engine.None, not: "infection"},
		{text: "the heat pack felt warm and the sore spot is smaller now", want: engine.None, not: "infection"},
		{text: "me di un bano caliente y la espalda mucho mejor", want: engine.None, not: "infection"},
	})
}

// TestLingeringIsNoAllClear holds a complaint that goes on past the
// expected time: it reaches watch, and neither "not bad", an expectation
// ("i thought it would be gone"), a comparison with last time, nor a
// denied list of other signs turns the message into an all-clear.
func TestLingeringIsNoAllClear(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my shoulder still aches four days later, not terrible, but i expected it to be over", want: engine.Watch, sign: "soreness"},
		{text: "day 4 and still sore, it lasts longer than last time", want: engine.Watch, sign: "soreness"},
		{text: "still sore on day 3, last time it was gone in a day", want: engine.Watch, sign: "soreness"},
		{text: "me sigue molestando el hombro a los 4 dias, sin moretones ni fiebre, es que no se me quita", want: engine.Watch, sign: "soreness"},
		{text: "havent had any energy since the session, no fever", hours: 30, want: engine.Watch, sign: "fatigue"},
		{text: "still exhausted, i thought it would have passed by now", hours: 30, want: engine.Watch, sign: "fatigue"},
		{text: "the tiredness is still here, i was fine after the first session but this time its been dragging", hours: 30, want: engine.Watch, sign: "fatigue"},
		{text: "pense que ya se me habria quitado pero sigo cansada", hours: 30, want: engine.Watch, sign: "fatigue"},
		{text: "sigo sin energia, estuve bien despues de la primera sesion pero esta vez no", hours: 30, want: engine.Watch, sign: "fatigue"},
		// Over, or all denied, stays an all-clear.
		{text: "no fever, no swelling, feeling great", want: engine.None},
		{text: "sin fiebre ni hinchazon, todo bien", want: engine.None},
		{text: "the headaches i used to get have stopped since the sessions", want: engine.None},
		{text: "sore yesterday, gone today", hours: 30, want: engine.None},
	})
}

// TestStrayPersistenceIsUnread holds the mechanism behind the wrong "good
// to hear": a word saying something goes on that reaches only denied signs
// leaves the complaint unread, so the engine never calls it good news.
func TestStrayPersistenceIsUnread(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		text   string
		unread bool
	}{
		{"sin fiebre ni hinchazon, pero no se me quita", true},
		{"no fever, no redness, it just keeps going", true},
		{"no fever, no swelling, feeling great", false},
		{"sin fiebre ni hinchazon, todo bien", false},
		{"the headaches i used to get have stopped since the sessions", false},
	} {
		f := c.Triage(tc.text, -1)
		if got := f.Unread > 0; got != tc.unread {
			t.Errorf("%q: unread %d, want unread %v", tc.text, f.Unread, tc.unread)
		}
	}
}

// TestFiguresAndQuestionsStayCalm holds false alarms of the third round:
// an idiom told as a joke or about the future, deep sleep or relaxation
// told as a figure, a question about what to watch for, a jerk while
// falling asleep, tiredness that is over, a "healing crisis" asked about,
// a question whether soreness is worse if..., and a twitching eyelid. The
// red flags beside them keep their level.
func TestFiguresAndQuestionsStayCalm(t *testing.T) {
	runTable(t, []triageCase{
		{text: "mi jefe me va a dar un infarto con tanto correo jaja", want: engine.None, not: "chest_pain"},
		{text: "this queue is gonna give me a heart attack lol", want: engine.None, not: "chest_pain"},
		{text: "slept like i was knocked out, amazing night", want: engine.None, not: "fainting"},
		{text: "dormi como si estuviera desmayada, que rico", want: engine.None, not: "fainting"},
		{text: "super relaxed, almost tipsy haha", want: engine.None, not: "dizziness"},
		{text: "what signs of infection should i look out for?", want: engine.None, not: "infection"},
		{text: "cuales sintomas de infeccion debo vigilar?", want: engine.None, not: "infection"},
		{text: "my calf jumped a few times as i was drifting off", want: engine.None, not: "seizure"},
		{text: "tuve unos brincos en la pierna al quedarme dormida", want: engine.None, not: "numbness"},
		{text: "had a twitch in my foot while falling asleep", want: engine.None, not: "numbness"},
		{text: "monday i was wiped, today i have loads of energy", want: engine.None, not: "fatigue"},
		{text: "ayer agotada, hoy tengo mucha energia", want: engine.None, not: "fatigue"},
		{text: "does the ache get worse if i skip stretching?", want: engine.None},
		{text: "el dolor es peor si no tomo agua?", want: engine.None},
		{text: "a little worse tonight, is it the healing crisis?", want: engine.None, not: "seizure"},
		{text: "un poco peor hoy, sera la crisis curativa?", want: engine.None, not: "seizure"},
		{text: "me tiembla el parpado desde ayer jaja", want: engine.None, sign: "twitching"},
		{text: "i was unsteady for a few minutes after, fine since", want: engine.None},
		// The real thing keeps its level.
		{text: "i think im having a heart attack", want: engine.Emergency, sign: "chest_pain"},
		{text: "me esta dando un infarto", want: engine.Emergency, sign: "chest_pain"},
		{text: "he was jerking all over and wont wake up", want: engine.Emergency, sign: "seizure", subj: "other"},
		{text: "the needle site has pus", want: engine.Urgent, sign: "infection"},
		{text: "tuvo una crisis convulsiva", want: engine.Emergency, sign: "seizure"},
	})
}
