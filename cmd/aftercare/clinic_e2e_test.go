package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/bot/telegram"
	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
)

// pushCallback queues a button press, as Telegram sends it.
func (f *fakeBotAPI) pushCallback(chat, from int64, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.updates = append(f.updates, map[string]any{
		"update_id": f.nextID,
		"callback_query": map[string]any{"id": "cb" + time.Now().Format("150405.000000"), "data": data, "chat_instance": "x",
			"from":    map[string]any{"id": from, "is_bot": false, "first_name": "Staff"},
			"message": map[string]any{"message_id": 1, "date": time.Now().Unix(), "chat": map[string]any{"id": chat, "type": "group"}}},
	})
}

// pushFrom queues a message from a user in a chat (a group for staff).
func (f *fakeBotAPI) pushFrom(chat, from int64, chatType, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.updates = append(f.updates, map[string]any{
		"update_id": f.nextID,
		"message": map[string]any{"message_id": f.nextID, "date": time.Now().Unix(), "text": text,
			"from": map[string]any{"id": from, "is_bot": false, "first_name": "Staff"},
			"chat": map[string]any{"id": chat, "type": chatType}},
	})
}

// TestClinicPathEndToEnd walks the clinic's side through the real wiring
// and the Telegram adapter against a Bot API fake: staff record a visit in
// the staff chat, the patient opens the invite and agrees, reports a red
// flag, the alert is sent again after 10 unacknowledged minutes, staff
// acknowledge with the button, the record is exported, and the patient's
// /forget erases it.
func TestClinicPathEndToEnd(t *testing.T) {
	api := &fakeBotAPI{}
	srv := newServer(api)
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Telegram = &telegram.Config{APIEndpoint: srv.URL + "/bot%s/%s", StaffChatID: -100,
		PollInterval: telegram.Duration(5 * time.Millisecond), PollTimeout: telegram.Duration(0)}
	clk := clock.NewFake(time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC))
	m := &Main{Config: &cfg, Clock: clk, Stderr: io.Discard,
		Getenv: func(k string) string { return map[string]string{EnvTelegramToken: "123:clinic-e2e"}[k] }}
	run, stop := startMain(t, m, nil)
	defer stop()
	const patient, staffUser, staffChat = int64(4242), int64(7), int64(-100)
	texts := func(chat int64) string {
		var b strings.Builder
		for _, s := range api.sends() {
			if s.chat == chat {
				b.WriteString(s.text + "\n---\n")
			}
		}
		return b.String()
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		dcEventually(t, 10*time.Second, what, cond)
	}

	// 1. Staff record a visit in the staff chat and get a deep link.
	api.pushFrom(staffChat, staffUser, "group", "/visit dry_needling left shoulder acute ago=20m")
	link := regexp.MustCompile(`https://t\.me/clinic_bot\?start=([A-Za-z0-9_-]{22})`)
	wait("invite link in the staff chat", func() bool { return link.MatchString(texts(staffChat)) })
	token := link.FindStringSubmatch(texts(staffChat))[1]

	// 2. The patient opens it, is told what the bot is, and agrees.
	api.push(patient, "/start "+token)
	wait("consent question", func() bool { return strings.Contains(texts(patient), "Is it OK if I send you two short check-ins") })
	if !strings.Contains(texts(patient), "not an emergency service") {
		t.Fatalf("first message must say the bot is not an emergency service:\n%s", texts(patient))
	}
	api.push(patient, "Yes, check in with me")
	wait("check-in times", func() bool { return strings.Contains(texts(patient), "I'll check in with you") })

	// 3. A red flag: instructions to the patient, an alert with a button to staff.
	api.push(patient, "my heart keeps skipping beats")
	wait("urgent instructions", func() bool {
		return strings.Contains(texts(patient), "Please call Sample Acupuncture Clinic now at +1-555-0100")
	})
	wait("staff alert", func() bool { return strings.Contains(texts(staffChat), "[URGENT] telegram:4242") })
	if !strings.Contains(texts(staffChat), "left shoulder") {
		t.Fatalf("alert lacks the visit:\n%s", texts(staffChat))
	}

	// 4. Ten minutes without acknowledgement: sent again.
	clk.Add(10*time.Minute + time.Second)
	run.Service.Wake()
	wait("alert sent again", func() bool { return strings.Contains(texts(staffChat), "NOT ACKNOWLEDGED for 10 min") })

	// 5. Staff acknowledge with the button; the ladder stops.
	api.pushCallback(staffChat, staffUser, "ack:1")
	wait("acknowledgement notice", func() bool { return strings.Contains(texts(staffChat), "acknowledged by telegram:7") })
	before := strings.Count(texts(staffChat), "NOT ACKNOWLEDGED")
	clk.Add(time.Hour)
	run.Service.Wake()
	time.Sleep(200 * time.Millisecond)
	if after := strings.Count(texts(staffChat), "NOT ACKNOWLEDGED"); after != before {
		t.Fatalf("reminders continued after acknowledgement: %d -> %d", before, after)
	}

	// 6. Export through the admin endpoint (the bot holds the database).
	tok, err := readAdminToken(adminTokenPath(run.Config))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+run.HTTPAddr+"/admin/export?patient=telegram:4242", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Visits      []engine.Visit      `json:"visits"`
		Escalations []engine.Escalation `json:"escalations"`
	}
	json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if len(doc.Visits) != 1 || len(doc.Escalations) != 1 || doc.Escalations[0].Status != "acknowledged" || doc.Escalations[0].AckBy != "telegram:7" {
		t.Fatalf("export: %+v", doc)
	}

	// 7. The patient asks to be forgotten and confirms.
	api.push(patient, "/forget")
	wait("forget confirmation question", func() bool { return strings.Contains(texts(patient), "cannot be undone") })
	api.push(patient, "Yes, delete everything")
	wait("erasure confirmed", func() bool { return strings.Contains(texts(patient), "I've deleted your data") })
	rec, err := run.Store.PatientRecord("telegram:4242")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State.Visit != nil || len(rec.Visits) != 0 || len(rec.Escalations) != 0 || len(rec.Audit) != 0 {
		t.Fatalf("data left after /forget: %+v", rec)
	}
	if tm, _ := run.Store.Timers("telegram:4242"); len(tm) != 0 {
		t.Fatalf("check-ins left after /forget: %v", tm)
	}
}
