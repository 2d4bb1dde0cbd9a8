package staffgate

import "strings"

// Command is one staff command.
type Command struct {
	// Name is what staff type after "/": "ack".
	Name string
	// Aliases are other names for it: "acknowledge".
	Aliases []string
	// Usage and Help are its line in the help text ("/ack N - ...");
	// empty Usage: listed on another command's line (/resume with /pause).
	Usage, Help string
}

// Commands are the staff commands, in the order the help lists them. The
// service implements each (service/staff.go); adapters use the table only
// to tell staff commands from what patients type.
var Commands = []Command{
	{Name: "open", Usage: "/open", Help: "open escalations"},
	{Name: "ack", Aliases: []string{"acknowledge"}, Usage: "/ack N", Help: "acknowledge escalation N (or press its button)"},
	{Name: "resolve", Usage: "/resolve N note", Help: "close escalation N"},
	{Name: "today", Usage: "/today", Help: "patients in follow-up and their check-ins"},
	{Name: "patient", Usage: "/patient ID", Help: "one patient's timeline"},
	{Name: "pause", Usage: "/pause ID, /resume ID", Help: "stop or restart a patient's check-ins"},
	{Name: "resume"},
	{Name: "visit", Usage: "/visit TREATMENT AREA [acute] [child] [ago=2h] [tz=Zone]", Help: "record a visit, get an invite"},
	{Name: "audit", Usage: "/audit [N]", Help: "recent audit lines"},
	{Name: "login", Usage: "/login", Help: "a one-time sign-in link to the staff desk"},
}

// Lookup returns the command called name (lower case, without "/"), by
// its name or an alias.
func Lookup(name string) (Command, bool) {
	for _, c := range Commands {
		if c.Name == name {
			return c, true
		}
		for _, a := range c.Aliases {
			if a == name {
				return c, true
			}
		}
	}
	return Command{}, false
}

// Help is the staff command list, as the service answers an unknown or
// empty command.
func Help() string {
	var b strings.Builder
	b.WriteString("Staff commands:")
	for _, c := range Commands {
		if c.Usage != "" {
			b.WriteString("\n" + c.Usage + " - " + c.Help)
		}
	}
	return b.String()
}

// name returns the lower-case command name of the first word of text,
// without a leading "/" or a "@botname" suffix ("/ack@ClinicBot 12" ->
// "ack"), and the words after it.
func name(text string) (string, []string) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return "", nil
	}
	n := strings.ToLower(strings.TrimPrefix(f[0], "/"))
	if i := strings.IndexByte(n, '@'); i >= 0 {
		n = n[:i]
	}
	return n, f[1:]
}

// Parse reads a staff message: the command it names, its arguments, and
// whether the command exists. The leading "/" is optional, so a pressed
// button's payload read as words ("ack 12") parses too.
func Parse(text string) (c Command, args []string, ok bool) {
	n, args := name(text)
	c, ok = Lookup(n)
	return c, args, ok
}

// IsCommand reports whether text is a staff command: "/" and the name of
// one, in any case, with or without "@botname". Adapters refuse these from
// patients (Telegram) or route them to the service as staff (console).
func IsCommand(text string) bool {
	if !strings.HasPrefix(text, "/") {
		return false
	}
	n, _ := name(text)
	_, ok := Lookup(n)
	return ok
}

// Button is the payload of a staff button that runs command name with arg
// when pressed ("ack:12" for Button("ack", "12")): buttons carry commands,
// so a press and the typed command are one thing to the service.
func Button(name, arg string) string { return name + ":" + arg }

// ButtonCommand returns the command a pressed staff button's payload stands
// for ("ack:12" -> "/ack 12"), and whether it is a staff command's button.
// The console shows it so its user can type it; the service runs it.
func ButtonCommand(payload string) (string, bool) {
	name, arg, ok := strings.Cut(payload, ":")
	if !ok {
		return "", false
	}
	if _, known := Lookup(strings.ToLower(name)); !known {
		return "", false
	}
	return "/" + name + " " + arg, true
}
