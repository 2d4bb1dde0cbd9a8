package discord

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{StaffChannelID: "123", StaffRoleIDs: []string{"456"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		edit func(*Config)
		key  string
	}{
		{func(c *Config) { c.StaffChannelID = "" }, "discord.staff_channel_id"},
		{func(c *Config) { c.StaffChannelID = "#staff" }, "discord.staff_channel_id"},
		{func(c *Config) { c.StaffRoleIDs = []string{"Nurses"} }, "discord.staff_role_ids[0]"},
		{func(c *Config) { c.StaffUserIDs = []string{"bob"} }, "discord.staff_user_ids[0]"},
		{func(c *Config) { c.StaffRoleIDs = nil }, "discord.staff_role_ids"},
		{func(c *Config) { c.GuildID = "clinic" }, "discord.guild_id"},
		{func(c *Config) { c.RequestsPerSecond = 500 }, "discord.requests_per_second"},
		{func(c *Config) { c.RequestsPerSecond = -1 }, "discord.requests_per_second"},
		{func(c *Config) { c.MaxReconnectDelay = Duration(10 * time.Minute) }, "discord.max_reconnect_delay"},
		{func(c *Config) { c.APIBase = "discord.com" }, "discord.api_base"},
	}
	for _, tc := range cases {
		c := ok
		c.StaffRoleIDs = append([]string(nil), ok.StaffRoleIDs...)
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.key)
		}
	}
	d := ok.withDefaults()
	if d.RequestsPerSecond != 50 || time.Duration(d.MaxReconnectDelay) != 30*time.Second {
		t.Errorf("defaults = %+v", d)
	}
}

func TestConfigJSON(t *testing.T) {
	t.Parallel()
	var c Config
	err := json.Unmarshal([]byte(`{"staff_channel_id":"1","staff_role_ids":["2"],"staff_user_ids":["3"],"guild_id":"4",
		"staff_messages":true,"requests_per_second":20,"max_reconnect_delay":"45s","api_base":"http://127.0.0.1:1"}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.StaffChannelID != "1" || c.StaffRoleIDs[0] != "2" || c.StaffUserIDs[0] != "3" || c.GuildID != "4" || !c.StaffMessages ||
		c.RequestsPerSecond != 20 || time.Duration(c.MaxReconnectDelay) != 45*time.Second || c.APIBase != "http://127.0.0.1:1" {
		t.Errorf("config = %+v", c)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`12`), &d); err != nil || time.Duration(d) != 12*time.Second {
		t.Errorf("number of seconds: %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("bad duration accepted")
	}
	b, _ := json.Marshal(Duration(30 * time.Second))
	if string(b) != `"30s"` {
		t.Errorf("marshal = %s", b)
	}
}

func TestRewriteTransport(t *testing.T) {
	t.Parallel()
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { paths = append(paths, r.Host+r.URL.Path) }))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/proxy")
	c := &http.Client{Transport: &rewriteTransport{base: base}}
	resp, err := c.Get("https://discord.com/api/v9/gateway")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(paths) != 1 || paths[0] != base.Host+"/proxy/api/v9/gateway" {
		t.Errorf("paths = %v", paths)
	}
	// Other hosts are left alone.
	if _, err := c.Get(srv.URL + "/other"); err != nil || paths[1] != base.Host+"/other" {
		t.Errorf("other host rewritten: %v %v", paths, err)
	}
}

func TestButtonsLayout(t *testing.T) {
	t.Parallel()
	var choices []engine.Choice
	for i := range 30 {
		choices = append(choices, engine.Choice{ID: "c" + string(rune('A'+i)), Label: strings.Repeat("x", i*5)})
	}
	choices = append([]engine.Choice{{ID: "cA", Label: "dup"}, {ID: "", Label: "no id"}}, choices...)
	rows := buttons(choices)
	if len(rows) != 5 {
		t.Fatalf("rows = %d, want 5", len(rows))
	}
	first := rows[0].(discordgo.ActionsRow).Components[0].(discordgo.Button)
	if first.CustomID != "cA" || first.Label != "dup" {
		t.Errorf("first button = %+v", first)
	}
	checkRows(t, rows)
}

func checkRows(t testing.TB, rows []discordgo.MessageComponent) {
	t.Helper()
	if len(rows) > maxRows {
		t.Fatalf("%d rows", len(rows))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		row := r.(discordgo.ActionsRow)
		if len(row.Components) == 0 || len(row.Components) > maxButtonsPerRow {
			t.Fatalf("row with %d buttons", len(row.Components))
		}
		for _, c := range row.Components {
			b := c.(discordgo.Button)
			if b.CustomID == "" || len(b.CustomID) > maxCustomID || seen[b.CustomID] {
				t.Fatalf("bad custom_id %q", b.CustomID)
			}
			seen[b.CustomID] = true
			if b.Label == "" || utf8.RuneCountInString(b.Label) > maxButtonLabel || !utf8.ValidString(b.Label) {
				t.Fatalf("bad label %q", b.Label)
			}
		}
	}
}

func FuzzButtons(f *testing.F) {
	f.Add("yes", "Yes", "no", "No", 3)
	f.Add("", "", "x", strings.Repeat("é", 200), 40)
	f.Add(strings.Repeat("i", 101), "\xff", "a", "a", 1)
	f.Fuzz(func(t *testing.T, id1, l1, id2, l2 string, n int) {
		n = (n%40 + 40) % 40
		var cs []engine.Choice
		for i := range n {
			if i%2 == 0 {
				cs = append(cs, engine.Choice{ID: id1 + strings.Repeat("_", i), Label: l1})
			} else {
				cs = append(cs, engine.Choice{ID: id2, Label: l2})
			}
		}
		rows := buttons(cs)
		checkRows(t, rows)
		if len(rows) > 0 && !validRows(rows) {
			t.Fatalf("buttons() output fails validRows")
		}
	})
}

// FuzzInteraction feeds arbitrary INTERACTION_CREATE payloads (outside
// input) to the translation helpers: they must never panic, and an
// acknowledgement must always be a valid response.
func FuzzInteraction(f *testing.F) {
	f.Add([]byte(`{"id":"1","type":3,"token":"t","data":{"custom_id":"y","component_type":2},"message":{"id":"2","content":"q","components":[{"type":1,"components":[{"type":2,"label":"Yes","custom_id":"y"}]}]}}`))
	f.Add([]byte(`{"id":"1","type":2,"data":{"name":"aftercare","options":[{"name":"code","type":3,"value":"X"}]}}`))
	f.Add([]byte(`{"id":"1","type":2,"data":{"name":"aftercare","options":[{"name":"code","type":3,"value":7}]}}`))
	f.Add([]byte(`{"type":3,"message":{"components":[{"type":1,"components":[{"type":3,"custom_id":"s"}]}]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var i discordgo.Interaction
		if json.Unmarshal(raw, &i) != nil {
			return
		}
		switch d := i.Data.(type) {
		case discordgo.MessageComponentInteractionData:
			ack := componentAck(i.Message, d.CustomID)
			if ack.Type != discordgo.InteractionResponseDeferredMessageUpdate && ack.Type != discordgo.InteractionResponseUpdateMessage {
				t.Fatalf("ack type %d", ack.Type)
			}
			if ack.Type == discordgo.InteractionResponseUpdateMessage && !validRows(ack.Data.Components) {
				t.Fatalf("invalid update: %+v", ack.Data.Components)
			}
			_ = buttonLabel(i.Message, d.CustomID)
		case discordgo.ApplicationCommandInteractionData:
			text, invite := startCommand(optionString(d, "code"))
			if !strings.HasPrefix(text, "/start") || (invite != "" && !service.IsInviteToken(invite)) {
				t.Fatalf("startCommand = %q, %q", text, invite)
			}
		}
	})
}

// TestInviteFromDiscord checks which patient input presents an invite: the
// code of the /aftercare command, and a DM typed as "/start CODE" (what
// patients are told to send). Anything else after /start is text, read by
// triage, and no invite.
func TestInviteFromDiscord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code, text, invite string
	}{
		{"CLINIC-42", "/start CLINIC-42", "CLINIC-42"},
		{" abc_9 ", "/start abc_9", "abc_9"},
		{"", "/start", ""},
		{"   ", "/start", ""},
		{"ab$c", "/start ab$c", ""},
		{"I fainted", "/start I fainted", ""},
		{strings.Repeat("a", 65), "/start " + strings.Repeat("a", 65), ""},
	} {
		text, invite := startCommand(tc.code)
		if text != tc.text || invite != tc.invite {
			t.Errorf("startCommand(%q) = %q, %q; want %q, %q", tc.code, text, invite, tc.text, tc.invite)
		}
	}
	b := &Bot{}
	for _, tc := range []struct {
		content, invite string
	}{
		{"/start abc", "abc"},
		{"  /start abc  ", "abc"},
		{"/start", ""},
		{"/start ab$c", ""},
		{"/start I fainted", ""},
		{"abc", ""},
		{"/aftercare abc", ""},
	} {
		it, ok := b.patientDM(&discordgo.Message{ID: "11", ChannelID: "22", Content: tc.content, Author: &discordgo.User{ID: "33"}})
		if !ok || it.patient == nil {
			t.Fatalf("patientDM(%q) not a patient message", tc.content)
		}
		if it.patient.Invite != tc.invite || it.patient.Text != tc.content {
			t.Errorf("patientDM(%q): Text %q, Invite %q; want the text as typed and Invite %q", tc.content, it.patient.Text, it.patient.Invite, tc.invite)
		}
	}
}
