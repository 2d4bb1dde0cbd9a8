package export_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/export"
	"github.com/aftercare-clinic/aftercare/store"
)

func TestCheckinsBecomeQuestionnaireResponses(t *testing.T) {
	four := 4
	at := time.Date(2026, 3, 3, 16, 0, 0, 0, time.UTC)
	r := store.Record{State: engine.State{Patient: "telegram:1", Consent: "yes", Checkins: []engine.Checkin{
		{Hours: 24, Sent: at, Feel: "better", Soreness: &four, Signs: "none", Outcome: "ok"},
		{Hours: 48, Sent: at.Add(24 * time.Hour)},
	}}}
	d := export.Build(r, engine.DefaultProtocol(), at.Add(48*time.Hour))
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Checkins []map[string]any `json:"checkins"`
	}
	json.Unmarshal(b, &back)
	if len(back.Checkins) != 2 {
		t.Fatalf("checkins: %s", b)
	}
	q := back.Checkins[0]
	if q["resourceType"] != "QuestionnaireResponse" || q["status"] != "completed" || q["authored"] != "2026-03-03T16:00:00Z" {
		t.Fatalf("resource: %v", q)
	}
	items := q["item"].([]any)
	sore := items[1].(map[string]any)
	if sore["linkId"] != "soreness" || sore["answer"].([]any)[0].(map[string]any)["valueInteger"].(float64) != 4 {
		t.Fatalf("soreness item: %v", sore)
	}
	feel := items[0].(map[string]any)["answer"].([]any)[0].(map[string]any)["valueCoding"].(map[string]any)
	if feel["code"] != "feel.better" || feel["display"] != "Better" {
		t.Fatalf("feel coding: %v", feel)
	}
	if back.Checkins[1]["status"] != "in-progress" {
		t.Fatalf("open check-in status %v", back.Checkins[1]["status"])
	}
	subj := q["subject"].(map[string]any)["identifier"].(map[string]any)
	if subj["value"] != "telegram:1" || subj["system"] != export.PatientSystem {
		t.Fatalf("subject %v", subj)
	}
}

// TestIdentityBecomesPatientResource: the identity the clinic entered is
// exported as a FHIR Patient (chart number as an identifier, name, phone);
// without one the Patient carries only the platform identifier.
func TestIdentityBecomesPatientResource(t *testing.T) {
	at := time.Date(2026, 3, 3, 16, 0, 0, 0, time.UTC)
	id := &engine.Identity{Name: "Jane Quinlan", Chart: "C-20417", Phone: "+1-555-0142"}
	for _, tc := range []struct {
		name string
		rec  store.Record
		want string
	}{
		{"current visit", store.Record{State: engine.State{Patient: "telegram:1", Visit: &engine.Visit{At: at, Identity: id}}},
			`{"resourceType":"Patient","id":"patient","identifier":[{"system":"urn:aftercare:patient","value":"telegram:1"},{"system":"urn:aftercare:clinic-chart","value":"C-20417"}],"name":[{"text":"Jane Quinlan"}],"telecom":[{"system":"phone","value":"+1-555-0142"}]}`},
		{"an earlier visit", store.Record{State: engine.State{Patient: "telegram:1", Visit: &engine.Visit{At: at}}, Visits: []engine.Visit{{At: at.Add(-time.Hour), Identity: &engine.Identity{Chart: "C-9"}}, {At: at}}},
			`{"resourceType":"Patient","id":"patient","identifier":[{"system":"urn:aftercare:patient","value":"telegram:1"},{"system":"urn:aftercare:clinic-chart","value":"C-9"}]}`},
		{"none", store.Record{State: engine.State{Patient: "telegram:1"}},
			`{"resourceType":"Patient","id":"patient","identifier":[{"system":"urn:aftercare:patient","value":"telegram:1"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(export.Build(tc.rec, engine.DefaultProtocol(), at).PatientResource)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("Patient\n got %s\nwant %s", b, tc.want)
			}
		})
	}
}
