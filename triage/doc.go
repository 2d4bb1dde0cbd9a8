// Package triage decides how urgently a patient's message after acupuncture,
// electroacupuncture or dry needling needs a person: emergency, urgent,
// watch or none (engine.Level), and names the signs it found so staff see
// why. It implements engine.Triager.
//
// A missed red flag is the worst mistake this package can make; an alarm on
// "no dizziness" is the second worst, because staff then mute the bot. So the
// classifier reads messages the way NegEx and ConText read clinical notes
// rather than alerting on keywords.
//
// # Basics
//
//	c := triage.Default()                  // embedded English + Spanish rules
//	f := c.Triage("my chest hurts", 20)    // f.Level == engine.Emergency
//
// A clinic adds or changes rules with Load or LoadFiles; every message is
// read with all loaded languages at once.
//
// # How a message is read
//
// The text is lowercased, accents are folded and apostrophes dropped, then it
// is split into words, numbers, emoji and punctuation once. Every term of the
// rules is matched against those tokens (a term may hold alternatives
// "racing|pounding", stems "dizz*", numbers "#", years "####" (1900 to
// 2100 in digits, so "in 2019" dates a complaint and "numbness in two
// fingers" does not), short gaps "..." and wider gaps "...." for a body part
// and what it does ("pain in the middle of my chest")), and
// overlapping matches are settled longest first, so "can't breathe" is a sign
// and not a negated "breathe", and "not sure" negates nothing.
//
// A word that matches no rule word is tried as a typo of a sign word:
// Damerau-Levenshtein distance 1 for sign words of 5 to 8 letters, 2 for
// longer ones, and a cheap phonetic fold ("chset", "numbess", "inchado");
// ordinary words near a sign word ("paint") are listed as not typos in
// rules/*_words.json (see fuzzy.go). Such a real word one letter off a
// body part of fuzzy.parts, right before a pain word of fuzzy.part_pains
// or ending a clause just after one ("chess pain", "pain in my chess",
// "dolor en el techo"), reads as the part; one off another sign word
// right before a pain word ("chesty pain") is an unread body part, so the
// message is asked about and never reassured as soreness. Two neighbouring
// words, one of them no rule word, are read as one key sign word of
// fuzzy.words when joined they are one letter off it or keep its
// consonants with its opening ("seize your", "seize her", "pal
// pitations"): voice-to-text splits the sign words it does not know.
//
// Each sign mention is then read in its context:
//
//   - negation ("no", "haven't had") reaches forward to the end of its
//     clause, at most a few words, and across lists ("no fever, chills or
//     pus"); terminators ("but", "however", "sino") and punctuation end
//     it, and so does a contrast after a negated sign ("its not sore its
//     SHARP", "no es molestia es una punzada"); a
//     clinical list negator ("denies", "niego") reads a comma list of signs
//     whole, with or without a closing "or" ("denies fever, chest pain,
//     palpitations"); a word a negation reaches is read, so "nothing
//     weird" leaves nothing unread; the Spanish perfect tense under a
//     negation ("no he vomitado", "no ha sangrado") is a negation: the
//     English pseudo-negation "no he ..." ("no he fainted", an answer)
//     gives way when a perfect auxiliary (context.perfect_aux) is followed
//     by a participle (context.participles, or an ending in
//     context.participle_endings), while "no he podido respirar" is a sign;
//   - hypotheticals ("what if", "should I worry about", "if I get") drop a
//     mention, also when they open on the person they are about ("what
//     should we do if our son faints"); a call for emergency services
//     ("911", "urgencias") in a sentence asking what to do if something
//     happens is about the plan, not a report (a plea such as "help me, I
//     think I'm dying" always is one); the "if" of a simile ("feels as if
//     a knife", "siento como si me clavaran un cuchillo") is no
//     hypothetical: it describes what is felt now;
//   - a figurative cue ("laughed so hard", "from the price of") sets
//     aside, in its clause and a clause that only opens on a person, the
//     signs patients use as figures of speech (fainting, breathing,
//     palpitations, dizziness, weakness), unless the patient calls them
//     severe or lasting; a cue of excitement ("watching the final") does
//     so only for the heart's idioms (a faint while watching the final is
//     still a faint);
//     "is it normal to ..." lowers a red flag one step and asks whether it is
//     happening now, unless the patient goes on to say it is theirs ("mine
//     does", "I have it", "a mí me pasa", "lo tengo"), which is a report
//     at the sign's own level;
//   - modifiers move the level: "a little", "passed", "fading" lower it,
//     "severe", "won't go away", "getting worse" raise it; a negated verb
//     of stopping ("can not stop", "no paro de", "sin parar") is such a
//     persistence phrase, not a negation of the sign it reaches; a sensation
//     called pleasant ("tingly in a nice relaxed way") takes the sign's
//     "pleasant" level, and a mild one followed by "..., normal?" its
//     "checked" level (both the base level unless a sign lowers them); a
//     mild complaint that is not itself a red flag stays mild however long
//     it lasts ("slight headache since this morning"); and a resolved or
//     pre-existing complaint ("the pain I came in with is gone") is not a flag
//     unless the sign itself says otherwise (a faint that passed is still a
//     faint); a word saying a complaint is over or dating it, alone in its
//     clause, looks back to the complaint before it in the same sentence
//     ("dizzy standing up, sat down and it passed", "but that was before
//     the session"); Spanish puts the verb first, so a phrase of
//     context.resolved_ahead ("se me pasó el mareo", "ya paró") also reads
//     the complaint right after it; a resolved complaint at no level is not
//     named in Finding.Signs; a mild word reads the complaint before it only
//     when the rest of its clause is filler ("kinda annoying" is not a mild
//     ache), and "a little worse" in the first 48 h is the expected
//     worse-before-better;
//   - a mention about "my son" or "my husband" still counts, with the
//     child's levels where the protocol differs (a pale child is urgent);
//     one about an acquaintance ("my friend", "a guy at work") counts unless
//     it is past or hearsay asked about ("my friend said she fainted once,
//     is that common?"); in someone else's story a time frame ("last
//     year", "once", "in the 90s") dates the whole clause and the sentence
//     it closes, while in the patient's own report it reaches only the
//     nearest mention, and "once" counts the times instead when the
//     sentence says it is recent (context.recent: "fainted twice this
//     evening, once in the kitchen"); one about a pet, or a story "on the
//     news" (whoever it names next: "the news said someone fainted"), never
//     counts, nor does another's complaint after "nothing to do with me";
//   - a general question about a sign with no word of the patient's own
//     ("is fainting common?") is a hypothetical; a hypothetical stops at a
//     new "I" or "my" two words on ("can I get help I can't breathe");
//   - a lowering word inside a sign's own phrase ("breathing's gone all
//     shallow") is part of the sign, and one that reaches a mention reaches
//     every mention reading the same words;
//   - time since the session, given or written ("day three", "2 days",
//     "same as yesterday", "igual que ayer"), makes lingering soreness (48 h)
//     or fatigue (24 h) a watch, which "is it normal to still ...?" does not
//     lower;
//   - a number in context maps to a band: a pain score ("8/10", "9 out of
//     10"), a temperature ("temp 38.5"), a pulse ("heart rate 130");
//   - a checklist answer negates the line before it ("chest pain? no").
//
// A word of a sign's vocabulary that no phrase read is counted in
// Finding.Unread; one outside any negation or hypothetical sets
// Finding.Suspect, so the engine asks instead of reassuring. So does a
// word saying something goes on or grows ("no se quita", "keeps going")
// that reaches only denied signs in a message whose every mention is
// settled: what goes on was not read, and a denied list of other signs
// cannot make the message an all-clear.
//
// Phrases are found through an index of their first two words, so the cost
// of a message grows with its length and not with the number of phrases a
// common word ("my", "no") begins. The lists of sign names a Finding carries
// are interned and shared read-only: triage allocates nothing on the common
// path.
//
// The highest level wins. When the top level comes only from an ambiguous
// mention (a bare "I feel dizzy"), the Finding carries one short question
// whose choices settle it; Level is then the level to act on if the patient
// never answers, chosen so nothing urgent is lost. Emergencies are never
// asked about.
//
// # Rule files
//
// Rules are JSON (see rules/en.json): signs with their terms and levels per
// modifier (mild, very, severe, persistent, worse, recurring, improving,
// resolved, historical, pleasant, checked) and marks (figurative,
// excitement, plan, history: a story of the past such as another's habit of
// fainting, settled and not named at no level), modifier and context word lists
// (including normal_check: "..., is that normal?" after a mention), combinations,
// scores and their bands, time expressions, number words, typo tolerance and
// clarifying questions.
// Files are checked strictly on load; an error names the file and key, for
// example
//
//	rules/en.json: signs[3].level: unknown level "urgnt" (want none, watch, urgent or emergency)
//
// # Caveats
//
// The rules are heuristics, not a diagnosis. Messages over 32 KiB are read as
// their first 28 KiB and last 4 KiB. The package never logs message text.
package triage
