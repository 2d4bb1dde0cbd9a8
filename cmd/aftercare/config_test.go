package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validClinic is a clinic section that passes every check, for cases that
// test one other key.
const validClinic = `"clinic":{"name":"Lakeside Needling","phone":"+1 312 555 2368","emergency_number":"911","time_zone":"America/Chicago","quiet_hours":{"start":"21:00","end":"08:00"}}`

// TestConfigErrorsFullPathsSuggestionsAndAllAtOnce: every problem in a file
// is reported in one error, each under its full key path, unknown keys
// with the closest known key.
func TestConfigErrorsFullPathsSuggestionsAndAllAtOnce(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []string // each must appear in the error
		not  []string // none may appear
	}{
		{"secret under its full path", `{` + validClinic + `,"telegram":{"token":"123:abc","staff_chat_id":-100}}`,
			[]string{"c.json: telegram.token: secrets are read from the environment"}, []string{"123:abc"}},
		{"unknown top-level key suggests the nested one", `{` + validClinic + `,"timezone":"Europe/Berlin"}`,
			[]string{`timezone: not a configuration key; did you mean "clinic.time_zone"?`}, nil},
		{"typo in a section", `{"clinic":{"name":"Lakeside Needling","phone":"+1 312 555 2368","time_zon":"UTC"}}`,
			[]string{`clinic.time_zon: not a configuration key; did you mean "clinic.time_zone"?`}, nil},
		{"typo in an array element keeps its index", `{` + validClinic + `,"webhooks":[{"name":"sms","urll":"https://x.example/h","secret_env":"S"}]}`,
			[]string{`webhooks[0].urll: not a configuration key; did you mean "webhooks[0].url"?`}, nil},
		{"far-off key gets no guess", `{` + validClinic + `,"zzzzzzzzzzzz":1}`,
			[]string{"zzzzzzzzzzzz: not a configuration key (check the spelling"}, []string{"did you mean"}},
		{"wrong types, all of them", `{` + validClinic + `,"data_dir":5,"retention_days":"90","console":"yes"}`,
			[]string{"data_dir: expected a string, got the number 5", `retention_days: expected a whole number, got the string "90"`, `console: expected true or false`}, nil},
		{"adapter errors keep their path", `{` + validClinic + `,"telegram":{"staff_chat_id":0,"mode":"push"}}`,
			[]string{"c.json: telegram.staff_chat_id: must be set", "c.json: telegram.mode:"}, nil},
		{"every validation error at once", `{"clinic":{"name":"Lakeside Needling","phone":"555","time_zone":"Mars/Base","quiet_hours":{"start":"9pm","end":"08:00"},"hours":{"mon":"9-5","funday":"08:00-12:00"}},"log":{"level":"loud"},"invites":{"ttl_days":0}}`,
			[]string{"clinic.phone:", "clinic.time_zone:", "clinic.quiet_hours.start:", "clinic.hours.mon:", "clinic.hours.funday:", "log.level:", "invites.ttl_days:"}, nil},
		{"lease settings that could not hold a lease", `{` + validClinic + `,"store":{"backend":"postgres","claim_lease":"10ms","leases":{"ttl":"4s","renew":"3s"}}}`,
			[]string{"store.claim_lease:", "store.leases: lease renew interval 3s must be less than half of the ttl 4s"}, nil},
		{"unknown key and a bad value together", `{"clinic":{"name":"Lakeside Needling","phone":"+1 312 555 2368","timezone":"UTC"},"log":{"level":"loud"}}`,
			[]string{`clinic.timezone: not a configuration key; did you mean "clinic.time_zone"?`, "log.level:"}, nil},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.json")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(p, func(string) string { return "" })
			if err == nil {
				t.Fatal("config accepted")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(msg, n) {
					t.Errorf("error contains %q:\n%s", n, msg)
				}
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != p {
				t.Errorf("errors.As finds no *ConfigError naming the file: %#v", err)
			}
		})
	}
}

// TestClinicPhoneMustBeReal: a real clinic may not start with the sample's
// fictional number (also when it set a name but no phone, which leaves the
// default) or with something too short to be a number; the samples may.
func TestClinicPhoneMustBeReal(t *testing.T) {
	cases := []struct {
		name, clinic, phone, afterHours string
		ok                              bool
	}{
		{"name but no phone leaves the sample number", "Lakeside Needling", "", "", false},
		{"sample number", "Lakeside Needling", "+1-555-0100", "", false},
		{"fictional range, other format", "Lakeside Needling", "(312) 555-0142", "", false},
		{"fictional range, 7 digits", "Lakeside Needling", "555-0199", "", false},
		{"three digits", "Lakeside Needling", "555", "", false},
		{"letters", "Lakeside Needling", "call us", "", false},
		{"too long", "Lakeside Needling", "+1 234 567 890 123 456", "", false},
		{"plus inside", "Lakeside Needling", "12+345678", "", false},
		{"after-hours sample number", "Lakeside Needling", "+1 312 555 2368", "+1-555-0101", false},
		{"E.164", "Lakeside Needling", "+493012345678", "", true},
		{"national format", "Lakeside Needling", "(312) 555-2368", "", true},
		{"international with spaces", "Lakeside Needling", "+44 20 7946 1234", "", true},
		{"555 outside the fictional range", "Lakeside Needling", "+1 312 555 2368", "+1 312 555 2369", true},
		{"built-in sample", "Sample Acupuncture Clinic", "+1-555-0100", "", true},
		{"sample file", "Riverside Acupuncture (sample)", "+1-555-0100", "+1-555-0101", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"clinic":{"name":"` + tc.clinic + `"`
			if tc.phone != "" {
				body += `,"phone":"` + tc.phone + `"`
			}
			if tc.afterHours != "" {
				body += `,"after_hours_phone":"` + tc.afterHours + `"`
			}
			body += `}}`
			p := filepath.Join(t.TempDir(), "c.json")
			os.WriteFile(p, []byte(body), 0o600)
			_, err := LoadConfig(p, func(string) string { return "" })
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok {
				key := "clinic.phone"
				if tc.afterHours != "" {
					key = "clinic.after_hours_phone"
				}
				if err == nil || !strings.Contains(err.Error(), key+":") {
					t.Fatalf("err %v, want it to name %s", err, key)
				}
			}
		})
	}
	// The bot refuses to start on such a config.
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"clinic":{"name":"Lakeside Needling"}}`), 0o600)
	_, _, err := runMain(t, "", map[string]string{EnvDataDir: t.TempDir()}, "--config", p)
	if err == nil || !strings.Contains(err.Error(), "clinic.phone") {
		t.Fatalf("started with the sample number: %v", err)
	}
}

// TestTelegramBotUsernameChecked: the invite link's bot name is checked,
// and the sample's bot is refused for a real clinic.
func TestTelegramBotUsernameChecked(t *testing.T) {
	for _, tc := range []struct {
		clinic, user string
		ok           bool
	}{
		{"Lakeside Needling", "LakesideCareBot", true},
		{"Lakeside Needling", "@LakesideCareBot", false},
		{"Lakeside Needling", "lakeside care", false},
		{"Lakeside Needling", SampleBotUsername, false},
		{"Riverside Acupuncture (sample)", SampleBotUsername, true},
	} {
		c := DefaultConfig()
		c.Clinic.Name, c.Clinic.Phone, c.Invites.TelegramBotUsername = tc.clinic, "+1 312 555 2368", tc.user
		err := c.Validate()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "invites.telegram_bot_username")) {
			t.Errorf("%s / %q: err %v, want ok=%v", tc.clinic, tc.user, err, tc.ok)
		}
	}
}

// TestClinicDeskKeys: clinic.alert_identity and clinic.staff_reply_hold
// reach the engine as configured and wrong values name their key.
func TestClinicDeskKeys(t *testing.T) {
	for _, tc := range []struct {
		identity, hold string
		bad            string // key named in the error, "" when valid
		wantHold       time.Duration
	}{
		{"", "", "", 0},
		{"chart", "45m", "", 45 * time.Minute},
		{"initials", "0s", "", -1},
		{"name", "", "clinic.alert_identity", 0},
		{"", "soon", "clinic.staff_reply_hold", 0},
		{"", "-5m", "clinic.staff_reply_hold", 0},
	} {
		c := testConfig(t.TempDir())
		c.Clinic.AlertIdentity, c.Clinic.StaffReplyHold = tc.identity, tc.hold
		err := c.Validate()
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("%q/%q: error %v, want one naming %s", tc.identity, tc.hold, err, tc.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q/%q: %v", tc.identity, tc.hold, err)
			continue
		}
		if cl := c.clinic(); cl.AlertIdentity != tc.identity || cl.StaffHold != tc.wantHold {
			t.Errorf("%q/%q: engine gets %q and %v", tc.identity, tc.hold, cl.AlertIdentity, cl.StaffHold)
		}
	}
}
