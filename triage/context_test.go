package triage

import (
	"slices"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

type triageCase struct {
	text  string
	hours float64
	want  engine.Level
	sign  string // a sign that must be named ("" to skip)
	not   string // a sign that must not be named
	subj  string
	ask   bool
}

func runTable(t *testing.T, cases []triageCase) {
	t.Helper()
	c := Default()
	for _, tc := range cases {
		h := tc.hours
		if h == 0 {
			h = -1
		}
		f := c.Triage(tc.text, h)
		if f.Level != tc.want {
			t.Errorf("%q (h=%g): level %s, want %s (signs %v)", tc.text, h, f.Level, tc.want, f.Signs)
		}
		if tc.sign != "" && !slices.Contains(f.Signs, tc.sign) {
			t.Errorf("%q: signs %v, want %q among them", tc.text, f.Signs, tc.sign)
		}
		if tc.not != "" && slices.Contains(f.Signs, tc.not) {
			t.Errorf("%q: signs %v, must not name %q", tc.text, f.Signs, tc.not)
		}
		if f.Subject != tc.subj {
			t.Errorf("%q: subject %q, want %q", tc.text, f.Subject, tc.subj)
		}
		if (f.Ask != nil) != tc.ask {
			t.Errorf("%q: ask %v, want ask=%v", tc.text, f.Ask, tc.ask)
		}
	}
}

func TestNegation(t *testing.T) {
	runTable(t, []triageCase{
		{text: "no dizziness", want: engine.None, not: "dizziness"},
		{text: "I don't have any chest pain", want: engine.None, not: "chest_pain"},
		{text: "denies shortness of breath", want: engine.None},
		{text: "haven't had a fever", want: engine.None},
		{text: "never fainted in my life", want: engine.None},
		{text: "without any numbness", want: engine.None},
		{text: "no fever, chills or pus", want: engine.None},
		{text: "no nausea, vomiting, or dizziness", want: engine.None},
		{text: "not dizzy, chest hurts", want: engine.Emergency, sign: "chest_pain"},
		{text: "no dizziness but my chest hurts", want: engine.Emergency},
		{text: "no fever however the spot is oozing", want: engine.Urgent, sign: "infection"},
		{text: "I don't have a fever and I'm throwing up", want: engine.Urgent, sign: "vomiting"},
		{text: "didn't sleep well my head hurts", want: engine.Watch, sign: "headache"},
		{text: "my face is not swelling", want: engine.None},
		{text: "can't breathe", want: engine.Emergency, sign: "breathing"},
		{text: "he isn't responding", want: engine.Emergency, sign: "fainting", subj: "other"},
		{text: "I can't stop throwing up", want: engine.Urgent},
		{text: "the dizziness won't go away", want: engine.Urgent},
		{text: "NO CHEST PAIN NO SHORTNESS OF BREATH", want: engine.None},
		{text: "no i passed out", want: engine.Emergency},
		{text: "chest pain? no", want: engine.None},
		{text: "dizziness: none. nausea: yes", want: engine.Watch, sign: "nausea", not: "dizziness"},
		{text: "I have chest pain. No", want: engine.Emergency},
		{text: "not at all dizzy", want: engine.None},
	})
}

func TestPseudoNegation(t *testing.T) {
	runTable(t, []triageCase{
		{text: "not sure but I think I fainted", want: engine.Emergency},
		{text: "not only dizzy but also vomiting", want: engine.Urgent},
		{text: "no increase in swelling", want: engine.Watch, sign: "swelling"},
		{text: "no idea why my chest hurts", want: engine.Emergency},
		{text: "I'm not sure if my heart is racing", want: engine.Urgent},
	})
}

func TestResolvedAndPast(t *testing.T) {
	runTable(t, []triageCase{
		{text: "the sharp pain I came in with is gone", want: engine.None},
		{text: "felt dizzy getting off the table but it passed", want: engine.None},
		{text: "not lightheaded anymore", want: engine.None},
		{text: "was dizzy but not anymore", want: engine.None},
		{text: "the headache went away", want: engine.None},
		{text: "the nausea is fading", want: engine.None},
		{text: "dizziness is better now", want: engine.None},
		{text: "the tingling in my foot I had before treatment is better", want: engine.None},
		// A faint is an emergency even when over; chest pain that passed still needs a call.
		{text: "I fainted but I'm fine now", want: engine.Emergency, sign: "fainting"},
		{text: "had chest pain earlier but it went away", want: engine.Urgent, sign: "chest_pain"},
		// A lowering word never hides a second sign.
		{text: "the headache is gone but I keep throwing up", want: engine.Urgent},
		{text: "headache passed and I can't breathe", want: engine.Emergency},
		// A complaint from before the session that is getting worse is not hidden.
		{text: "the back pain I came in with is getting worse", want: engine.Watch},
	})
}

func TestHypothetical(t *testing.T) {
	runTable(t, []triageCase{
		{text: "what if I get dizzy?", want: engine.None},
		{text: "should I worry about fainting?", want: engine.None},
		{text: "what should I do if my chest hurts?", want: engine.None},
		{text: "in case I throw up, should I call?", want: engine.None},
		{text: "how long does soreness usually last?", want: engine.None},
		{text: "can acupuncture cause headaches?", want: engine.None},
		{text: "do people ever faint after needling?", want: engine.None},
		{text: "what if I faint? I feel really lightheaded", want: engine.Urgent, sign: "dizziness"},
		{text: "if I breathe deeply my chest hurts", want: engine.Emergency},
		{text: "I'm worried about my chest pain", want: engine.Emergency},
		// "Is it normal to ..." usually comes from someone who feels it: a
		// red flag is lowered one step and asked about, never dropped.
		{text: "is it normal to feel sleepy?", want: engine.None, sign: "sleepiness"},
		{text: "is it normal to feel dizzy after acupuncture?", want: engine.Watch, sign: "dizziness", ask: true},
		{text: "is it normal to have chest pain after acupuncture?", want: engine.Urgent, sign: "chest_pain", ask: true},
		{text: "is it normal to faint after acupuncture? because I just did", want: engine.Emergency},
		{text: "is it normal that my heart is racing?", want: engine.Urgent, sign: "palpitations"},
	})
}

func TestSubject(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my son is pale and vomiting", want: engine.Urgent, sign: "vomiting", subj: "child"},
		{text: "my daughter is very pale", want: engine.Urgent, sign: "pallor", subj: "child"},
		{text: "I look pale", want: engine.None, sign: "pallor"},
		{text: "my son is very sleepy after his session", want: engine.Urgent, subj: "child"},
		{text: "my son is a bit sleepy after his session", want: engine.None, subj: "child"},
		{text: "my husband fainted", want: engine.Emergency, subj: "other"},
		{text: "she collapsed", want: engine.Emergency, subj: "other"},
		{text: "my son fell asleep and now he won't wake up", want: engine.Emergency, subj: "child"},
		{text: "my wife is fine but I feel faint", want: engine.Urgent, subj: "", ask: true},
		{text: "mi hijo está vomitando", want: engine.Urgent, subj: "child"},
	})
}

func TestSeverityModifiers(t *testing.T) {
	runTable(t, []triageCase{
		{text: "a little sore", want: engine.None, sign: "soreness"},
		{text: "extremely sore", want: engine.Watch},
		{text: "slight headache", want: engine.Watch},
		{text: "severe headache", want: engine.Urgent},
		{text: "worst headache ever", want: engine.Urgent},
		{text: "headache that won't go away", want: engine.Urgent},
		{text: "headache is fading", want: engine.None},
		{text: "some swelling", want: engine.Watch},
		{text: "slight swelling", want: engine.Watch},
		{text: "the swelling keeps growing", want: engine.Urgent},
		{text: "small bruise", want: engine.None, sign: "bruising"},
		{text: "big bruise", want: engine.Watch},
		{text: "slightly nauseous", want: engine.Watch},
		{text: "severe nausea", want: engine.Urgent},
		{text: "very dizzy", want: engine.Urgent},
		{text: "dizzy and getting worse", want: engine.Urgent},
		{text: "I feel dizzy. It's getting worse.", want: engine.Urgent},
		{text: "pain is 9/10", want: engine.Urgent, sign: "severe_pain"},
		{text: "10 out of 10 pain", want: engine.Urgent},
		{text: "pain 8 of 10", want: engine.Urgent},
		{text: "pain is 3/10", want: engine.None},
		{text: "pain went from 9/10 to 2/10", want: engine.None},
		{text: "8/10", want: engine.Urgent},
		{text: "session was 10/10 amazing", want: engine.None},
		{text: "temp is 39.2", want: engine.Urgent, sign: "infection"},
		{text: "temperature 36.8, all fine", want: engine.None},
		{text: "heart rate 130 bpm", want: engine.Urgent, sign: "palpitations"},
	})
}

func TestTimeSinceSession(t *testing.T) {
	runTable(t, []triageCase{
		{text: "still sore", hours: 60, want: engine.Watch},
		{text: "still sore", hours: 10, want: engine.None},
		{text: "still sore", hours: 47, want: engine.None},
		{text: "sore", hours: 50, want: engine.Watch},
		{text: "soreness is fading", hours: 60, want: engine.None},
		{text: "tired", hours: 30, want: engine.Watch},
		{text: "tired", hours: 5, want: engine.None},
		{text: "tired but getting better", hours: 30, want: engine.None},
		{text: "still really sore on day three", want: engine.Watch},
		{text: "sore and it's been 3 days", want: engine.Watch},
		{text: "still sore two days later", want: engine.Watch},
		{text: "I've felt wiped out for more than a day", want: engine.Watch},
		{text: "exhausted since the day before yesterday", want: engine.Watch},
		{text: "sore, session was 48h ago", want: engine.Watch},
		{text: "sore since 8am", want: engine.None},
		{text: "what if I'm still sore in 3 days?", want: engine.None},
		// Time never lowers a red flag.
		{text: "fainted two days ago", want: engine.Emergency},
	})
}

func TestAsk(t *testing.T) {
	c := Default()
	f := c.Triage("I feel dizzy", -1)
	if f.Ask == nil || f.Level != engine.Urgent {
		t.Fatalf("bare dizziness: got %s ask=%v, want urgent with a question", f.Level, f.Ask)
	}
	levels := map[engine.Level]bool{}
	for _, ch := range f.Ask.Choices {
		levels[ch.Level] = true
	}
	if !levels[engine.None] || !levels[engine.Urgent] {
		t.Errorf("dizziness question choices %v, want one settling none and one urgent", f.Ask.Choices)
	}
	// The returned question is a copy: changing it does not change the rules.
	f.Ask.Choices[0].Level = engine.Emergency
	if g := c.Triage("I feel dizzy", -1); g.Ask.Choices[0].Level == engine.Emergency {
		t.Error("Ask shares memory with the rules")
	}
	runTable(t, []triageCase{
		{text: "dizzy and sick to my stomach", want: engine.Urgent},
		{text: "a bit dizzy", want: engine.Watch, ask: true},
		{text: "dizzy and my chest hurts", want: engine.Emergency},
		{text: "dizzy and numb hands", want: engine.Urgent},
		{text: "my back is in spasm", want: engine.Urgent, ask: true},
		{text: "estoy mareado", want: engine.Urgent, ask: true},
	})
	if f := c.Triage("estoy mareado", -1); f.Ask == nil || f.Ask.Text == c.Triage("I feel dizzy", -1).Ask.Text {
		t.Errorf("Spanish message should be asked in Spanish, got %+v", f.Ask)
	}
}

func TestSpanish(t *testing.T) {
	runTable(t, []triageCase{
		{text: "me desmayé", want: engine.Emergency, sign: "fainting"},
		{text: "ME DESMAYE", want: engine.Emergency},
		{text: "no puedo respirar", want: engine.Emergency, sign: "breathing"},
		{text: "dolor en el pecho", want: engine.Emergency, sign: "chest_pain"},
		{text: "tengo palpitaciones", want: engine.Urgent},
		{text: "estoy vomitando", want: engine.Urgent},
		{text: "tengo fiebre", want: engine.Urgent, sign: "infection"},
		{text: "no tengo mareos", want: engine.None},
		{text: "ya no estoy mareada", want: engine.None},
		{text: "sin fiebre", want: engine.None},
		{text: "nunca me desmayé", want: engine.None},
		{text: "un poco adolorido", want: engine.None, sign: "soreness"},
		{text: "qué pasa si me mareo?", want: engine.None},
		{text: "no tengo fiebre pero me duele el pecho", want: engine.Emergency},
	})
}

func TestTyposSlangEmoji(t *testing.T) {
	runTable(t, []triageCase{
		{text: "so dizy", want: engine.Urgent, sign: "dizziness"},
		{text: "palpatations", want: engine.Urgent, sign: "palpitations"},
		{text: "palpitatoins", want: engine.Urgent, sign: "palpitations"},
		{text: "cant breath", want: engine.Emergency},
		{text: "I blacked out", want: engine.Emergency},
		{text: "my heart is going crazy", want: engine.Urgent},
		{text: "can't catch my breath", want: engine.Emergency},
		{text: "threw up", want: engine.Urgent},
		{text: "puking", want: engine.Urgent},
		{text: "totally wiped out", want: engine.None, sign: "fatigue"},
		{text: "🤮", want: engine.Urgent},
		{text: "😴😴", want: engine.None, sign: "sleepiness"},
		{text: "DIZZZZYYYY", want: engine.Urgent, ask: true},
		{text: "light-headed", want: engine.Urgent, sign: "dizziness", ask: true},
		{text: "my foot's gone to sleep", want: engine.Urgent, sign: "numbness"},
		{text: "I painted the fence and my arm is sore", want: engine.None, not: "fainting"},
		{text: "the spot where you injected is sore", want: engine.None, not: "infection"},
	})
}
