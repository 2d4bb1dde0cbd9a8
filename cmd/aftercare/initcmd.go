package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// initField is one question of `aftercare init`: its flag, its prompt, and
// the check that turns an answer into the config (returning what is wrong).
type initField struct {
	flag     string
	prompt   string
	optional bool
	set      func(c *Config, answer string) string
}

var initFields = []initField{
	{flag: "name", prompt: "Clinic name, as patients know it", set: func(c *Config, a string) string {
		if a == "" {
			return "the clinic's name is needed: patients are told whom to call"
		}
		for _, n := range SampleClinicNames {
			if strings.EqualFold(a, n) {
				return "that is the sample clinic's name; give your clinic's own"
			}
		}
		c.Clinic.Name = a
		return ""
	}},
	{flag: "phone", prompt: "Clinic phone number patients should call (e.g. +1 312 555 2368)", set: func(c *Config, a string) string {
		if msg := c.checkClinicPhone(a); msg != "" {
			return msg
		}
		c.Clinic.Phone = a
		return ""
	}},
	{flag: "emergency-number", prompt: "Local emergency number (911 US/Canada, 112 EU, 999 UK, 000 Australia)", set: func(c *Config, a string) string {
		if !validEmergencyNumber(a) {
			return fmt.Sprintf("%q is not an emergency number; e.g. 911 or 112", a)
		}
		c.Clinic.EmergencyNumber = a
		return ""
	}},
	{flag: "time-zone", prompt: "Clinic time zone (IANA name, e.g. America/Chicago, Europe/Berlin)", set: func(c *Config, a string) string {
		if _, err := time.LoadLocation(a); err != nil || a == "" || a == "Local" {
			return fmt.Sprintf("%q is not an IANA time zone; use a name like America/Chicago", a)
		}
		c.Clinic.TimeZone = a
		return ""
	}},
	{flag: "hours", prompt: "Opening hours (e.g. mon-fri 08:00-18:00, sat 09:00-13:00; \"always\" if patients can always call)", set: func(c *Config, a string) string {
		h, err := parseHoursAnswer(a)
		if err != nil {
			return err.Error()
		}
		c.Clinic.Hours = h
		return ""
	}},
	{flag: "telegram-bot", optional: true, prompt: "Telegram bot username for invite links and QR codes (empty: not yet)", set: func(c *Config, a string) string {
		c.Invites.TelegramBotUsername = strings.TrimPrefix(a, "@")
		return c.checkBotUsername()
	}},
}

// init writes a clinic's configuration file: aftercare init [--out FILE]
// [--force] [--name ...]. Each answer not given as a flag is asked for on
// stdin and checked at once, so the file it writes starts the bot; with
// every required flag given it asks nothing (scripts, provisioning).
func (m *Main) init(args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	out := fs.String("out", "aftercare.json", "the configuration file to write")
	force := fs.Bool("force", false, "overwrite an existing file")
	vals := map[string]*string{}
	for _, f := range initFields {
		vals[f.flag] = fs.String(f.flag, "", f.prompt)
	}
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("init: unexpected argument %q\n%s", fs.Arg(0), usage)}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if _, err := os.Stat(*out); err == nil && !*force {
		return &usageError{fmt.Sprintf("init: %s already exists; use --force to overwrite it, or --out to write another file", *out)}
	}

	c := DefaultConfig()
	interactive := false
	for _, f := range initFields {
		if !given[f.flag] && !f.optional {
			interactive = true
		}
	}
	in := bufio.NewReader(m.Stdin)
	for _, f := range initFields {
		if given[f.flag] {
			if msg := f.set(&c, strings.TrimSpace(*vals[f.flag])); msg != "" {
				return &usageError{fmt.Sprintf("init: --%s: %s", f.flag, msg)}
			}
			continue
		}
		if !interactive {
			continue // an optional answer, and nobody to ask
		}
		if err := m.ask(in, &c, f); err != nil {
			return err
		}
	}

	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	flags := os.O_CREATE | os.O_WRONLY | os.O_EXCL
	if *force {
		flags = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	}
	file, err := os.OpenFile(*out, flags, 0o600)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if _, err := file.Write(b); err != nil {
		file.Close()
		return fmt.Errorf("init: %w", err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// What was written must start the bot: read it back as a start would.
	if _, err := LoadConfig(*out, func(string) string { return "" }); err != nil {
		return fmt.Errorf("init: the written file does not load (a bug; please report it): %w", err)
	}
	fmt.Fprintf(m.Stdout, "Wrote %s. Start the bot with: aftercare --config %s\n", *out, *out)
	if c.Invites.TelegramBotUsername == "" {
		fmt.Fprintln(m.Stdout, "Set invites.telegram_bot_username once your Telegram bot exists, so invite QR codes open it.")
	}
	return nil
}

// maxAsks bounds how often one question is asked again, so a script piping
// wrong answers ends instead of looping.
const maxAsks = 5

func (m *Main) ask(in *bufio.Reader, c *Config, f initField) error {
	for range maxAsks {
		fmt.Fprintf(m.Stdout, "%s: ", f.prompt)
		line, err := in.ReadString('\n')
		if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
			if errors.Is(err, io.EOF) {
				return &usageError{fmt.Sprintf("init: no answer for %q (input ended); answer on stdin or give --%s", f.prompt, f.flag)}
			}
			return fmt.Errorf("init: reading the answer: %w", err)
		}
		msg := f.set(c, strings.TrimSpace(line))
		if msg == "" {
			return nil
		}
		fmt.Fprintf(m.Stdout, "  %s\n", msg)
	}
	return &usageError{fmt.Sprintf("init: no usable answer for %q after %d tries", f.prompt, maxAsks)}
}

// parseHoursAnswer reads "mon-fri 08:00-18:00, sat 09:00-13:00" (days or
// day ranges, then a span or "closed") as clinic.hours; "always" means no
// hours (the clinic counts as always open).
func parseHoursAnswer(a string) (map[string]string, error) {
	a = strings.ToLower(strings.TrimSpace(a))
	if a == "always" || a == "24/7" {
		return nil, nil
	}
	if a == "" {
		return nil, errors.New(`give the hours, e.g. "mon-fri 08:00-18:00, sat 09:00-13:00", or "always"`)
	}
	order := []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	idx := map[string]int{}
	for i, d := range order {
		idx[d] = i
	}
	out := map[string]string{}
	for _, part := range strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ';' }) {
		f := strings.Fields(part)
		if len(f) != 2 {
			return nil, fmt.Errorf("%q: write days then hours, e.g. \"mon-fri 08:00-18:00\"", strings.TrimSpace(part))
		}
		from, to, isRange := strings.Cut(f[0], "-")
		i, ok1 := idx[from]
		j, ok2 := idx[to]
		if !isRange {
			j, ok2 = i, ok1
		}
		if !ok1 || !ok2 || j < i {
			return nil, fmt.Errorf("%q: days are mon, tue, wed, thu, fri, sat, sun, or a range like mon-fri", f[0])
		}
		span := f[1]
		if span != "closed" {
			o, cl, err := parseSpan(span)
			if err != nil {
				return nil, err
			}
			span = fmt.Sprintf("%02d:%02d-%02d:%02d", o/60, o%60, cl/60, cl%60)
		}
		for d := i; d <= j; d++ {
			if _, dup := out[order[d]]; dup {
				return nil, fmt.Errorf("%s is given twice", order[d])
			}
			out[order[d]] = span
		}
	}
	return out, nil
}
