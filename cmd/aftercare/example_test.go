package main

import (
	"context"
	"os"
	"strings"
)

// Example_replay is the replay contract: a script of JSON lines (a start
// time, visits, what patients say or press, pauses) in, one JSON line per
// message the bot would send out, on a virtual clock, nothing sent anywhere.
func Example_replay() {
	script := `{"start":"2026-03-02T10:00:00-06:00"}
{"at":"0s","visit":{"patient":"p1","treatment":"acupuncture","area":"neck"}}
{"at":"1h","patient":"p1","says":"thanks!"}
{"at":"1h1m","patient":"p1","says":"my chest hurts and I can't breathe"}
`
	var out strings.Builder
	m := &Main{Args: []string{"replay", "-"}, Stdin: strings.NewReader(script), Stdout: &out, Stderr: os.Stderr,
		Getenv: func(string) string { return "" }}
	if err := m.Run(context.Background()); err != nil {
		panic(err)
	}
	// The lines are long: keep each message's kind and level.
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		kind := l[strings.Index(l, `"kind":`):]
		os.Stdout.WriteString(kind[:strings.Index(kind, `,"text"`)] + "\n")
	}
	// Output:
	// "kind":"reply"
	// "kind":"escalation","level":"emergency"
	// "kind":"alert","level":"emergency","patient":"p1"
}
