// Package console is the terminal adapter: one local patient talking to the
// bot on stdin and stdout, with staff alerts printed inline. It is the
// default when no platform is configured, so `go run ./cmd/aftercare`
// gives a working conversation at once.
//
// Typing a choice's label presses that button; anything else is free text.
// `/skip 24h` moves the bot's clock forward so the automatic check-ins can
// be seen without waiting a day; `/quit` ends the session. The console also
// stands in for the clinic's staff: the staff commands (staffgate.Commands:
// `/open`, `/ack N`, `/resolve N`, `/today`, ...) go to the service as
// staff, so an alert raised in a demo can be acknowledged and stops being
// sent again.
package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/staffgate"
)

// Platform is the platform name of console patient IDs.
const Platform = "console"

// Patient is the console's one patient.
const Patient engine.PatientID = "console:local"

// Staff is the console's staff channel.
const Staff engine.PatientID = "console:staff"

// Receiver takes patient input (the service).
type Receiver interface {
	Receive(ctx context.Context, in service.Inbound) error
}

// StaffReceiver takes staff commands (the service). When the Receiver
// given to New also implements it, the console passes on the staff
// commands (staffgate.IsCommand), so a demo can acknowledge the alerts it
// raises.
type StaffReceiver interface {
	ReceiveStaff(ctx context.Context, in service.StaffInbound) error
}

// Skipper moves time forward (an *clock.Offset plus a scheduler wake-up).
type Skipper func(d time.Duration)

// Console reads the patient's lines and prints the bot's messages. Send may
// be called from another goroutine while Run reads input.
type Console struct {
	in   io.Reader
	out  io.Writer
	recv Receiver
	skip Skipper

	mu      sync.Mutex
	choices []engine.Choice
	seq     int
}

// New returns a console adapter. skip may be nil (no /skip command).
func New(in io.Reader, out io.Writer, recv Receiver, skip Skipper) *Console {
	return &Console{in: in, out: out, recv: recv, skip: skip}
}

// The dispatcher delivers to the console like to any platform.
var _ service.Sender = (*Console)(nil)

// Platform returns "console".
func (c *Console) Platform() string { return Platform }

// Send prints one message: to the patient, or as a staff alert.
func (c *Console) Send(_ context.Context, m engine.Outbound) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	if m.Channel != "" || m.To == engine.StaffAddress {
		fmt.Fprintf(&b, "\n  %s\n", strings.ReplaceAll(strings.TrimRight(staffLine(m), "\n"), "\n", "\n    "))
		for _, ch := range m.Choices {
			if cmd, ok := staffgate.ButtonCommand(ch.ID); ok {
				fmt.Fprintf(&b, "  (staff: %s to %s, /open to list open alerts)\n", cmd, strings.ToLower(ch.Label))
			}
		}
	} else {
		fmt.Fprintf(&b, "\nbot> %s\n", indent(m.Text))
		if len(m.Choices) > 0 {
			labels := make([]string, len(m.Choices))
			for i, ch := range m.Choices {
				labels[i] = "[" + ch.Label + "]"
			}
			fmt.Fprintf(&b, "     %s\n", strings.Join(labels, " "))
			c.choices = m.Choices
		}
	}
	_, err := io.WriteString(c.out, b.String())
	return err
}

// staffLine labels a staff message. An alert's text starts with its own
// level ("[EMERGENCY] ...", "[EMERGENCY, NOT ACKNOWLEDGED for 10 min] ..."),
// which the label takes over instead of repeating it.
func staffLine(m engine.Outbound) string {
	if m.Kind != engine.KindAlert {
		return "[STAFF] " + m.Text
	}
	level := strings.ToUpper(m.Level.String())
	label := "STAFF ALERT " + level
	if rest, ok := strings.CutPrefix(m.Text, "["+level+"]"); ok {
		return "[" + label + "] " + strings.TrimLeft(rest, " ")
	}
	if rest, ok := strings.CutPrefix(m.Text, "["+level+", "); ok {
		return "[" + label + ", " + rest
	}
	return "[" + label + "] " + m.Text
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n     ") }

// Run reads lines until EOF, /quit or ctx is done.
func (c *Console) Run(ctx context.Context) error {
	fmt.Fprintln(c.out, "Aftercare console. You are the patient: type a message (try \"hi\" or \"can I work out today?\").")
	fmt.Fprintln(c.out, "Type a button's label to press it, /skip 24h to jump ahead in time, /quit to leave.")
	if _, ok := c.recv.(StaffReceiver); ok {
		fmt.Fprintln(c.out, "As the clinic's staff: /open lists open alerts, /ack N acknowledges alert N, /resolve N closes it.")
	}
	sc := bufio.NewScanner(c.in)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		defer close(lines)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		errc <- sc.Err()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				select {
				case err := <-errc:
					if err != nil {
						return fmt.Errorf("console: reading input: %w", err)
					}
				default:
				}
				return nil
			}
			if done, err := c.line(ctx, line); done || err != nil {
				return err
			}
		}
	}
}

func (c *Console) line(ctx context.Context, line string) (bool, error) {
	t := strings.TrimSpace(line)
	switch {
	case t == "/quit" || t == "/exit":
		return true, nil
	case strings.HasPrefix(t, "/skip"):
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(t, "/skip")))
		if err != nil || d <= 0 || c.skip == nil {
			fmt.Fprintln(c.out, "usage: /skip 24h (a positive duration like 90m or 24h)")
			return false, nil
		}
		c.skip(d)
		fmt.Fprintf(c.out, "(skipped %s ahead)\n", d)
		return false, nil
	}
	if staffgate.IsCommand(t) { // typed on the staff's behalf; anything else is the patient's
		if sr, ok := c.recv.(StaffReceiver); ok {
			if err := sr.ReceiveStaff(ctx, service.StaffInbound{Staff: string(Staff), Channel: Staff, Text: t}); err != nil {
				fmt.Fprintln(c.out, "(sorry, that staff command could not be saved; please try again)")
			}
			return false, nil
		}
	}
	c.mu.Lock()
	c.seq++
	// A typed "/start CODE" presents the invite code the clinic printed.
	in := service.Inbound{Patient: Patient, Text: line, Invite: service.StartInvite(line), DedupeKey: ""}
	for _, ch := range c.choices {
		if strings.EqualFold(ch.Label, t) || strings.EqualFold(ch.ID, t) {
			in.Choice, in.Text, in.Invite = ch.ID, ch.Label, ""
		}
	}
	c.mu.Unlock()
	if err := c.recv.Receive(ctx, in); err != nil {
		fmt.Fprintln(c.out, "(sorry, that could not be saved; please try again)")
		return false, nil
	}
	return false, nil
}
