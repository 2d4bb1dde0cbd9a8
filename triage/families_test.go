package triage

import (
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
)

// The false-alarm families of issue 11, each read generically, each beside
// the red flag its rule must leave alone. The wording here is new (not
// taken from the labelled corpora), so the rules are held to the family
// and not to a sentence.

func TestClinicalListNegation(t *testing.T) {
	runTable(t, []triageCase{
		{text: "Denies fever, chest pain, palpitations.", want: engine.None, not: "chest_pain"},
		{text: "patient denies nausea, SOB, numbness. Mild ache at sites", want: engine.None, not: "breathing"},
		{text: "niego fiebre, dolor de pecho y mareos", want: engine.None, not: "chest_pain"},
		// A plain "no" does not read a list without "or": the comma may
		// start a new report.
		{text: "no dizziness, chest pain since lunch", want: engine.Emergency, sign: "chest_pain"},
		{text: "denies fever, but my chest hurts", want: engine.Emergency, sign: "chest_pain"},
		{text: "denies fever. Chest pain now.", want: engine.Emergency, sign: "chest_pain"},
	})
}

func TestFigurativeUse(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my brother laughed so hard he couldn't breathe at the video", want: engine.None, not: "breathing"},
		{text: "nearly passed out from the price of the parking ticket", want: engine.None, not: "fainting"},
		{text: "heart skipped a beat when I read the invoice haha", want: engine.None, not: "palpitations"},
		{text: "my legs are absolutely toast after spin class", want: engine.None, not: "numbness"},
		{text: "casi me desmayo de la risa con el video", want: engine.None, not: "fainting"},
		// A cue in another clause, or a sign the patient calls lasting,
		// is read as a report.
		{text: "I was laughing, then I couldn't breathe", want: engine.Emergency, sign: "breathing"},
		{text: "laughed so hard at the joke, now my chest hurts and I can't breathe", want: engine.Emergency, sign: "breathing"},
		{text: "my heart keeps racing since I saw the bill", want: engine.Urgent, sign: "palpitations"},
		{text: "my legs went dead and I can't feel them", want: engine.Urgent, sign: "numbness"},
	})
}

func TestSomeoneElsesPast(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my aunt fainted at a blood test years ago, should I tell you?", want: engine.None, not: "fainting", subj: ""},
		{text: "my uncle had a seizure during his massage back in the 90s", want: engine.None, not: "seizure"},
		{text: "my sister used to faint at the sight of needles", want: engine.None, subj: "other"},
		{text: "mi esposa se desmayaba cuando le sacaban sangre", want: engine.None},
		// Someone present now still counts, and the patient's own past
		// faint only where it is dated as past.
		{text: "my husband just fainted in the kitchen", want: engine.Emergency, sign: "fainting", subj: "other"},
		{text: "my son fainted an hour ago and is very pale", want: engine.Emergency, subj: "child"},
		{text: "I feel like I'm going to faint and I fell once already today", want: engine.Emergency, sign: "fainting"},
	})
}

func TestHypotheticalQuestions(t *testing.T) {
	runTable(t, []triageCase{
		{text: "what should we do if our daughter faints after her session?", want: engine.None, not: "fainting"},
		{text: "if I get one of my migraines before the appointment, should I still come?", want: engine.None, not: "headache"},
		{text: "should I call 911 if I get chest pain, or you first?", want: engine.None, not: "distress"},
		{text: "si me da fiebre les llamo o voy a urgencias?", want: engine.None, not: "distress"},
		// A call for help outside a what-if is a report.
		{text: "should I call 911? my chest hurts", want: engine.Emergency, sign: "chest_pain"},
		{text: "call 911 he is not breathing", want: engine.Emergency, subj: "other"},
		{text: "if I move my arm I can't breathe", want: engine.Emergency, sign: "breathing"},
	})
}

func TestResolvedAfterAction(t *testing.T) {
	runTable(t, []triageCase{
		{text: "a bit dizzy getting out of bed but I sat down for a minute and it passed", want: engine.None, not: "dizziness"},
		{text: "the zapping pain I came in with is basically gone now", want: engine.None},
		{text: "I threw up on the way in, but that was before the session", want: engine.None, not: "vomiting"},
		// A passed faint is still a faint, a passed breathing problem is
		// still asked about, and "hasn't come back" is no resolution.
		{text: "I fainted in the car park but I'm fine now", want: engine.Emergency, sign: "fainting"},
		{text: "my arm went numb an hour ago and the feeling hasn't come back", want: engine.Urgent, sign: "numbness"},
		{text: "still sore on day 4, I thought it would be gone by now", hours: 96, want: engine.Watch, sign: "soreness"},
	})
}

// TestRaisingWordsReachBack: a raising word alone in its sentence reaches
// back to the complaint before it, one inside a sentence about something
// else does not.
func TestRaisingWordsReachBack(t *testing.T) {
	runTable(t, []triageCase{
		{text: "I have a headache. It's been getting worse since this morning", want: engine.Urgent, sign: "headache"},
		{text: "I have a headache. Still there.", want: engine.Urgent, sign: "headache"},
		{text: "bit of a headache. since the needling my shoulder feels amazing", want: engine.Watch, sign: "headache"},
		{text: "a bit stiff, had a big glass of water", want: engine.None, sign: "soreness"},
		{text: "my arm hurts. really bad", want: engine.Watch, sign: "soreness"},
		// An aside in parentheses stays in its clause: the frame dates it.
		{text: "my daughter had a high fever last month (flu), can she come in?", want: engine.None, not: "infection", subj: ""},
	})
}

func TestNegatedWordsAreRead(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		text   string
		unread bool
	}{
		{"nothing weird, no odd heartbeats, just sleepy", false},
		{"no tingling no numbness no nothing", false},
		{"weird heartbeats since lunch", true},
	} {
		if f := c.Triage(tc.text, 2); (f.Unread > 0) != tc.unread {
			t.Errorf("%q: unread %d, want unread>0 %v", tc.text, f.Unread, tc.unread)
		}
	}
}

// TestSignsAreShared: the sign list a Finding carries is shared between
// calls (so the common path allocates nothing) and has no spare capacity,
// so a caller's append never writes into it.
func TestSignsAreShared(t *testing.T) {
	c := Default()
	a := c.Triage("my son is pale and vomiting", 2)
	b := c.Triage("my son is pale and vomiting", 2)
	if len(a.Signs) == 0 || &a.Signs[0] != &b.Signs[0] {
		t.Fatalf("signs not shared: %v %v", a.Signs, b.Signs)
	}
	if cap(a.Signs) != len(a.Signs) {
		t.Fatalf("signs have spare capacity %d > %d", cap(a.Signs), len(a.Signs))
	}
	x := append(a.Signs, "extra")
	if &x[0] == &a.Signs[0] {
		t.Fatal("append wrote into the shared list")
	}
	if raceOn {
		return // the race detector's pool drops scratch space at random
	}
	if n := testing.AllocsPerRun(50, func() { c.Triage("a bit sore in my shoulder today but no dizziness", 20) }); n != 0 {
		t.Errorf("common message: %v allocations, want 0", n)
	}
}

// TestFamilyRulesKeepRedFlags: wording close to each family's rule that is
// a report and must stay one.
func TestFamilyRulesKeepRedFlags(t *testing.T) {
	runTable(t, []triageCase{
		{text: "my heart was racing watching the final", want: engine.None, not: "palpitations"},
		{text: "I fainted watching the final", want: engine.Emergency, sign: "fainting"},
		{text: "my son collapsed at the football match", want: engine.Emergency, subj: "child"},
		{text: "I have hay fever and my throat is closing", want: engine.Emergency, sign: "allergic_reaction"},
		{text: "please help me if you can, I think I'm dying", want: engine.Urgent, sign: "distress"},
		{text: "if I get up my head spins", want: engine.Urgent, sign: "dizziness"},
		{text: "if I feel my chest it hurts", want: engine.Emergency, sign: "chest_pain"},
		{text: "denies fever (chest pain now)", want: engine.Emergency, sign: "chest_pain"},
		{text: "my son fainted last week and again today", want: engine.Emergency, subj: "child"},
		{text: "both my legs feel dead", want: engine.Urgent, sign: "numbness"},
		{text: "my legs are dead after the half marathon lol", want: engine.None, not: "numbness"},
		{text: "I threw up twice, but that was before the session, and now I'm vomiting again", want: engine.Urgent, sign: "vomiting"},
		{text: "my wife passed out years ago, and she just passed out again", want: engine.Emergency, subj: "other"},
		{text: "my mom had a stroke last year and now her face is drooping", want: engine.Emergency, subj: "other"},
		{text: "laughed so hard I couldn't breathe and now my lips are blue", want: engine.Emergency, sign: "breathing"},
		{text: "my son used to faint at the dentist and he fainted again today", want: engine.Emergency, subj: "child"},
		{text: "if I get any chest pain I'll call, right now I have chest pain", want: engine.Emergency, sign: "chest_pain"},
		{text: "the price of parking made me dizzy lol but now I can't feel my arm", want: engine.Urgent, sign: "numbness"},
		// "I'll" is folded to "ill": a plan, not an illness.
		{text: "a bit sore, so I'll rest today", want: engine.None, not: "distress"},
		{text: "I feel so ill", want: engine.Urgent, sign: "distress"},
	})
}
