// Command aftercare runs the clinic follow-up bot.
//
// Usage:
//
//	aftercare [--config FILE]            run the bot (console when no platform token is set)
//	aftercare init                       write a clinic's config (asks, or takes flags)
//	aftercare triage                     classify messages from stdin, one JSON line each
//	aftercare replay [--config FILE] SCRIPT  run a JSON-lines script on a virtual clock
//	aftercare protocol                   print the default protocol, to start a clinic's own
//	aftercare backup [--config FILE] OUT write a consistent copy of the database
//	aftercare check                      check the database's integrity
//	aftercare visit TREATMENT AREA ...   record a visit, print a one-time invite (and QR code)
//	aftercare export PATIENT             a patient's record as JSON, check-ins as FHIR R4
//	aftercare staff-link NAME            a one-time sign-in link to the staff desk
//
// Secrets come from the environment only: AFTERCARE_TELEGRAM_TOKEN and
// AFTERCARE_DISCORD_TOKEN. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "time/tzdata" // patients' zones work on machines without tzdata

	"github.com/aftercare-clinic/aftercare/backoff"
	"github.com/aftercare-clinic/aftercare/clock"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	go func() {
		<-ctx.Done()
		stop() // a second signal now kills the process at once
	}()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "aftercare:", err)
		var ue *usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// Main is the program, with its outside world injected so end-to-end tests
// drive exactly what the binary runs.
type Main struct {
	Args   []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Clock is the time source; nil means the wall clock.
	Clock clock.Clock
	// Config, when set, is used instead of reading a file (tests).
	Config *Config
	// Started, when set, is called once the bot runs, with its parts (tests).
	Started func(*Running)
	// Backoff, when set, spaces the attempts to reach a platform that is
	// down (getMe, the Discord gateway, restarting a stopped platform);
	// the zero value keeps each part's defaults. Tests shorten it so an
	// outage they stage does not make them sleep.
	Backoff backoff.Policy
}

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Run runs the command named by Args.
func (m *Main) Run(ctx context.Context) error {
	if m.Getenv == nil {
		m.Getenv = func(string) string { return "" }
	}
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Stderr == nil {
		m.Stderr = io.Discard
	}
	if m.Stdin == nil {
		m.Stdin = eofReader{}
	}
	args := m.Args
	if wantsHelp(args) {
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return m.run(ctx, args)
	case "triage":
		return m.triage(ctx, args)
	case "replay":
		return m.replay(ctx, args)
	case "protocol":
		return m.protocol()
	case "backup":
		return m.backup(ctx, args)
	case "visit":
		return m.visit(ctx, args)
	case "export":
		return m.export(ctx, args)
	case "check":
		return m.check(args)
	case "init":
		return m.init(args)
	case "migrate":
		return m.migrate(ctx, args)
	case "staff-link":
		return m.staffLink(ctx, args)
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
	return &usageError{fmt.Sprintf("unknown command %q\n%s", cmd, usage)}
}

// wantsHelp reports a -h, -help or --help anywhere before a "--": the
// answer is the list of commands (exit 0), not the flag package's list of
// one command's flags.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

const usage = `usage:
  aftercare [--config FILE]                 run the bot (console when no platform token is set)
  aftercare init [--out FILE] [--force] [--name N --phone P --time-zone Z --hours H ...]
                                            write a clinic's config, asking for (and checking) each answer
  aftercare help                            print this list
  aftercare triage                          classify messages from stdin, one JSON line each
  aftercare replay [--config FILE] SCRIPT   run a JSON-lines script (or - for stdin) on a virtual clock
  aftercare protocol                        print the default protocol
  aftercare backup [--config FILE] OUT      write a consistent copy of the database (also while running)
  aftercare check [--config FILE] [DBFILE]  check the database's integrity
  aftercare visit [--config FILE] [--qr FILE.png] TREATMENT AREA [acute] [child] [ago=2h] [tz=Zone]
                                            record a visit and print a one-time invite for the patient
  aftercare export [--config FILE] PATIENT  write a patient's record as JSON (check-ins as FHIR R4)
  aftercare migrate [--config FILE]         copy the bbolt database into PostgreSQL (AFTERCARE_POSTGRES_DSN);
                                            idempotent, verified by counts; stop the bot first
  aftercare staff-link [--config FILE] NAME print a one-time sign-in link to the staff desk (web.listen)
`

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
