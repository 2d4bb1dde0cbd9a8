package loadtest

import (
	"math/rand/v2"
	"strconv"
	"sync/atomic"

	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// Message is one simulated patient action: typed text, or a button press
// (Choice set, Text the button's label, as the Telegram adapter sends it).
type Message struct {
	Text   string
	Choice string
}

func typed(s string) Message { return Message{Text: s} }

func press(id, label string) Message { return Message{Text: label, Choice: id} }

// A script is a short exchange: its first message, then the messages that
// answer the questions the bot asks in return.
type script struct {
	weight int
	steps  [][]Message // steps[i]: the alternatives for the i-th message
}

func alts(ms ...Message) []Message { return ms }

// scripts is the message mix. Weights are out of 100 exchanges; a red flag
// is 3 exchanges in 100 (about 1.5 % of messages, as readiness exchanges
// take five messages).
var scripts = []script{
	{weight: 25, steps: [][]Message{ // "can I work out?" and the four readiness buttons
		alts(typed("Can I work out today?"), typed("Is it ok to go to the gym this evening?"), typed("Can I go for a run later?")),
		alts(press("energized", "Energized"), press("usual", "About usual"), press("tired", "Tired")),
		alts(press("smoother", "Smoother than before"), press("same", "About the same"), press("stiff", "Stiff, sore or unstable")),
		alts(press("none", "None"), press("none", "None"), press("little", "A little")),
		alts(press("better", "Better"), press("same", "The same"), press("worse", "Worse")),
	}},
	{weight: 30, steps: [][]Message{alts( // aftercare questions
		typed("Can I have coffee this morning?"),
		typed("Should I use heat or ice on my neck?"),
		typed("Is a glass of wine tonight ok?"),
		typed("Can I take a hot shower?"),
		typed("Can I drive home after the session?"),
		typed("how much water should I drink today"),
	)}},
	{weight: 30, steps: [][]Message{alts( // normal after-effects
		typed("My lower back is a bit sore where the needles went in"),
		typed("I feel quite tired today"),
		typed("There's a small bruise on my shoulder"),
		typed("The muscle keeps twitching a little"),
		typed("no dizziness, just a little sore"),
	)}},
	{weight: 12, steps: [][]Message{alts(typed("thanks!"), typed("hello"), typed("ok, thank you"))}},
	{weight: 3, steps: [][]Message{alts( // red flags
		typed("I fainted after the session"),
		typed("I have chest pain and can't breathe properly"),
		typed("My arm is numb and weak since the session"),
	)}},
}

var scriptTotal = func() int {
	n := 0
	for _, s := range scripts {
		n += s.weight
	}
	return n
}()

// Sim plays simulated patients: each call to Next returns the next message
// of one patient's current exchange, starting a new exchange when the last
// one ended. A Sim is not safe for concurrent use: give each goroutine its
// own, or its own patients.
type Sim struct {
	rng  *rand.Rand
	conv map[int]*conv
}

// The load's own work is counted in the CPU per message the scenarios
// report, so a Sim keeps each patient's ID and display name rather than
// building them for every message.

// updateIDs numbers the updates of every Sim in the process, as Telegram
// numbers the updates of one bot: one increasing update_id for all chats.
// Dedupe keys are therefore unique and arrive in nearly increasing order,
// as in production; keys scattered over the key space would cost the store
// a random page per message that no real platform causes.
var updateIDs atomic.Uint64

// firstUpdate keeps every simulated update ID nine digits long, so keys
// sort in the order of their numbers.
const firstUpdate = 100000000

type conv struct {
	s    *script
	next int
	// id and name are the patient's, made once.
	id   engine.PatientID
	name string
}

// NewSim returns a Sim seeded with seed, so its message mix is repeatable.
// Dedupe keys come from one process-wide update counter, so Sims never
// collide.
func NewSim(seed uint64) *Sim {
	return &Sim{rng: rand.New(rand.NewPCG(seed, 0x5eed)), conv: map[int]*conv{}}
}

// Next returns patient i's next message as a service.Inbound with a fresh
// dedupe key, as a platform adapter would hand it to the service.
func (s *Sim) Next(i int) service.Inbound {
	c := s.conv[i]
	if c == nil {
		c = &conv{s: s.pick(), id: Patient(i), name: "Patient " + strconv.Itoa(i)}
		s.conv[i] = c
	} else if c.next >= len(c.s.steps) {
		c.s, c.next = s.pick(), 0
	}
	step := c.s.steps[c.next]
	c.next++
	m := step[s.rng.IntN(len(step))]
	return service.Inbound{
		Patient: c.id, Text: m.Text, Choice: m.Choice,
		DedupeKey:   telegram.DedupeKey(int(firstUpdate + updateIDs.Add(1))),
		DisplayName: c.name,
	}
}

func (s *Sim) pick() *script {
	r := s.rng.IntN(scriptTotal)
	for i := range scripts {
		if r < scripts[i].weight {
			return &scripts[i]
		}
		r -= scripts[i].weight
	}
	return &scripts[len(scripts)-1]
}
