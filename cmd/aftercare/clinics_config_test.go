package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is a "clinics" entry that passes every check, with extra keys
// spliced in (extra starts with a comma when not empty).
func entry(id, extra string) string {
	return `{"id":"` + id + `","clinic":{"name":"Clinic ` + id + `","phone":"+1 312 555 2368","time_zone":"America/Chicago"}` + extra + `}`
}

// TestClinicsListConfig: a list of clinics is checked entry by entry, each
// problem named under its entry's key path with the fix; mixing the
// one-clinic keys with the list is refused naming both.
func TestClinicsListConfig(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []string // each must appear in the error; none: the file is accepted
	}{
		{"two valid clinics", `{"clinics":[` + entry("riverside", "") + `,` + entry("lake-2", "") + `]}`, nil},
		{"a bad staff chat names its entry", `{"clinics":[` + entry("a", "") + `,` + entry("b", "") + `,` + entry("c", `,"telegram":{"staff_chat_id":0}`) + `]}`,
			[]string{"c.json: clinics[2].telegram.staff_chat_id: must be set"}},
		{"missing id", `{"clinics":[{"clinic":{"name":"X","phone":"+1 312 555 2368"}}]}`,
			[]string{`clinics[0].id: must be set: a short slug`}},
		{"id with capitals", `{"clinics":[` + entry("River_Side", "") + `]}`,
			[]string{`clinics[0].id: "River_Side": use 1 to 32 lowercase letters, digits and '-'`}},
		{"id ending in a dash", `{"clinics":[` + entry("river-", "") + `]}`, []string{`clinics[0].id: "river-"`}},
		{"duplicate id", `{"clinics":[` + entry("river", "") + `,` + entry("river", "") + `]}`,
			[]string{`clinics[1].id: "river" is already the id of clinics[0]`}},
		{"top-level clinic beside the list", `{` + validClinic + `,"clinics":[` + entry("a", "") + `]}`,
			[]string{`clinic: cannot be used together with "clinics": move "clinic" into each entry of "clinics"`, `or remove "clinics" to run one clinic`}},
		{"top-level telegram beside the list", `{"telegram":{"staff_chat_id":-1},"clinics":[` + entry("a", "") + `]}`,
			[]string{`telegram: cannot be used together with "clinics"`}},
		{"console beside the list", `{"console":true,"clinics":[` + entry("a", "") + `]}`,
			[]string{`console: cannot be used together with "clinics": the console serves one clinic`}},
		{"an entry's phone is checked", `{"clinics":[{"id":"a","clinic":{"name":"A","phone":"+1-555-0100"}}]}`,
			[]string{`clinics[0].clinic.phone: "+1-555-0100" is a fictional sample number`}},
		{"an entry's name is required", `{"clinics":[{"id":"a","clinic":{"phone":"+1 312 555 2368"}}]}`,
			[]string{`clinics[0].clinic.name: must be set`}},
		{"unknown key in an entry", `{"clinics":[` + entry("a", `,"telgram":{}`) + `]}`,
			[]string{`clinics[0].telgram: not a configuration key; did you mean "clinics[0].telegram"?`}},
		{"a token in an entry", `{"clinics":[` + entry("a", `,"telegram":{"token":"1:x","staff_chat_id":-1}`) + `]}`,
			[]string{`clinics[0].telegram.token: secrets are read from the environment only`}},
		{"bad token variable name", `{"clinics":[` + entry("a", `,"telegram_token_env":"123:abc"`) + `]}`,
			[]string{`clinics[0].telegram_token_env: "123:abc": name an environment variable`}},
		{"two bots on one token variable", `{"clinics":[` + entry("a", `,"telegram_token_env":"TOK"`) + `,` + entry("b", `,"telegram_token_env":"TOK"`) + `]}`,
			[]string{`clinics[1].telegram_token_env: "TOK" is already clinics[0].telegram_token_env`}},
		{"entry escalation and webhooks are its own", `{"clinics":[` + entry("a", `,"escalation":{"ack_timeout":"5s","contacts":["sms"]},"webhooks":[{"name":"","url":"x"}]`) + `]}`,
			[]string{`clinics[0].escalation.ack_timeout:`, `clinics[0].escalation.contacts[0]:`, `clinics[0].webhooks[0]`}},
		{"shared desk needs each clinic's host", `{"web":{"listen":"127.0.0.1:0"},"clinics":[` +
			entry("a", `,"telegram":{"staff_chat_id":-1,"staff_user_ids":[1]},"web":{"base_url":"https://a.desk.example"}`) + `,` +
			entry("b", `,"telegram":{"staff_chat_id":-2,"staff_user_ids":[2]}`) + `,` +
			entry("c", `,"telegram":{"staff_chat_id":-3,"staff_user_ids":[3]},"web":{"base_url":"https://A.desk.example"}`) + `,` +
			entry("d", `,"web":{"base_url":"https://d.desk.example/desk"}`) + `]}`,
			[]string{`clinics[1].web.base_url: the shared desk tells clinics apart by host`, `clinics[2].web.base_url: host "a.desk.example" is already clinics[0]'s`,
				`clinics[3].web.base_url: "https://d.desk.example/desk": use a scheme and a host`}},
		{"desk staff of an entry", `{"web":{"listen":"127.0.0.1:0"},"clinics":[` + entry("a", `,"web":{"base_url":"https://a.example"}`) + `]}`,
			[]string{`clinics[0].telegram.staff_user_ids: the desk needs staff to sign in`}},
		{"top-level staff names beside the list", `{"web":{"listen":"127.0.0.1:0","staff_names":{"telegram:1":"Ana"}},"clinics":[` + entry("a", "") + `]}`,
			[]string{`web.staff_names: cannot be used together with "clinics"`}},
		{"deployment keys stay at the top", `{"retention_days":0,"clinics":[` + entry("a", "") + `]}`,
			[]string{`c.json: retention_days: must be between 1 and 3650`}},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.json")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(p, func(string) string { return "" })
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				if len(c.Clinics) != 2 || c.Clinics[0].Clinic.EmergencyNumber != "911" || c.Clinics[1].Escalation.AckTimeout != "10m" || c.Clinics[0].Invites.TTLDays != 7 {
					t.Fatalf("entries lack the one-clinic defaults: %+v", c.Clinics)
				}
				return
			}
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, err)
				}
			}
		})
	}
}

// TestClinicConfigsFlatten: each clinic runs on the deployment's settings
// with its own over them, its database in a directory of its own ("default"
// keeps the one-clinic path) and its tokens in variables named after it.
func TestClinicConfigsFlatten(t *testing.T) {
	one := DefaultConfig()
	one.DataDir = "/d"
	cs := one.clinicConfigs()
	if len(cs) != 1 || cs[0].ClinicID != DefaultClinicID || dbPath(cs[0]) != "/d/aftercare.db" || cs[0].TelegramTokenEnv != EnvTelegramToken || cs[0].DiscordTokenEnv != EnvDiscordToken {
		t.Fatalf("one clinic: %+v at %s", cs, dbPath(cs[0]))
	}
	multi := DefaultConfig()
	multi.DataDir = "/d"
	a, b, d := DefaultClinicEntry("riverside-north"), DefaultClinicEntry("lake"), DefaultClinicEntry(DefaultClinicID)
	a.Clinic.Name, b.Clinic.Name = "A", "B"
	b.TelegramTokenEnv = "LAKE_BOT"
	multi.Clinics = []ClinicEntry{a, b, d}
	cs = multi.clinicConfigs()
	cases := []struct {
		got          Config
		name, db, tg string
		dc           string
	}{
		{cs[0], "A", "/d/clinics/riverside-north/aftercare.db", "AFTERCARE_TELEGRAM_TOKEN_RIVERSIDE_NORTH", "AFTERCARE_DISCORD_TOKEN_RIVERSIDE_NORTH"},
		{cs[1], "B", "/d/clinics/lake/aftercare.db", "LAKE_BOT", "AFTERCARE_DISCORD_TOKEN_LAKE"},
		{cs[2], "", "/d/aftercare.db", "AFTERCARE_TELEGRAM_TOKEN_DEFAULT", "AFTERCARE_DISCORD_TOKEN_DEFAULT"},
	}
	for _, tc := range cases {
		if tc.got.Clinic.Name != tc.name || dbPath(tc.got) != tc.db || tc.got.TelegramTokenEnv != tc.tg || tc.got.DiscordTokenEnv != tc.dc || len(tc.got.Clinics) != 0 || tc.got.Console == nil || *tc.got.Console {
			t.Errorf("%s: name %q db %s tokens %s %s console %v", tc.got.ClinicID, tc.got.Clinic.Name, dbPath(tc.got), tc.got.TelegramTokenEnv, tc.got.DiscordTokenEnv, tc.got.Console)
		}
	}
}

// TestClinicsSampleConfig: deploy/aftercare.clinics.sample.json, which
// the README's "Several clinics" shows, loads, and its clinics read their
// tokens from the variables the README names.
func TestClinicsSampleConfig(t *testing.T) {
	c, err := LoadConfig("../../deploy/aftercare.clinics.sample.json", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cs := c.clinicConfigs()
	if len(cs) != 2 || cs[0].TelegramTokenEnv != "AFTERCARE_TELEGRAM_TOKEN_RIVERSIDE" || cs[1].TelegramTokenEnv != "LAKESIDE_TELEGRAM_TOKEN" ||
		cs[1].DiscordTokenEnv != "AFTERCARE_DISCORD_TOKEN_LAKESIDE_NORTH" || pgSchema(cs[1]) != "clinic_lakeside_north" {
		t.Fatalf("sample clinics: %+v", cs)
	}
}
