// Package export writes a patient's stored record as JSON, for the
// patient's right of access and for the clinic's EHR: each automatic
// check-in becomes a FHIR R4 QuestionnaireResponse, the resource EHRs
// import for answered questionnaires.
package export

import (
	"strconv"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// System URIs identifying Aftercare's codes and identifiers in FHIR.
const (
	PatientSystem = "urn:aftercare:patient"
	// ChartSystem marks the clinic's chart number among the Patient's
	// identifiers; a clinic importing into its EHR maps it to its own
	// medical-record-number system.
	ChartSystem   = "urn:aftercare:clinic-chart"
	AnswerSystem  = "urn:aftercare:checkin-answer"
	Questionnaire = "urn:aftercare:questionnaire:checkin"
)

// Document is the exported record.
type Document struct {
	Patient  engine.PatientID `json:"patient"`
	Exported time.Time        `json:"exported"`
	Visit    *engine.Visit    `json:"current_visit,omitempty"`
	Visits   []engine.Visit   `json:"visits"`
	// PatientResource is the patient as a FHIR R4 Patient: the platform
	// identifier always, and the identity the clinic entered (name, chart
	// number, phone) when there is one.
	PatientResource Patient                 `json:"patient_resource"`
	Escalations     []engine.Escalation     `json:"escalations"`
	Audit           []engine.Audit          `json:"audit"`
	Checkins        []QuestionnaireResponse `json:"checkins"`
	// EarlierScores are the soreness scores of earlier visits\' check-ins.
	EarlierScores []engine.EarlierScore `json:"earlier_soreness_scores,omitempty"`
	Preferences   Preferences           `json:"preferences"`
	// Conversation is every message of the conversation, both sides.
	Conversation []store.TranscriptLine `json:"conversation,omitempty"`
}

// Preferences are the patient's choices about automatic messages.
type Preferences struct {
	Consent string `json:"consent_to_checkins"`
	Stopped bool   `json:"stopped"`
	Paused  bool   `json:"paused_by_clinic"`
}

// Patient is the subset of FHIR R4 Patient Aftercare fills.
type Patient struct {
	ResourceType string         `json:"resourceType"`
	ID           string         `json:"id"`
	Identifier   []Identifier   `json:"identifier"`
	Name         []HumanName    `json:"name,omitempty"`
	Telecom      []ContactPoint `json:"telecom,omitempty"`
}

// HumanName is a FHIR HumanName, as the clinic wrote it.
type HumanName struct {
	Text string `json:"text"`
}

// ContactPoint is a FHIR ContactPoint.
type ContactPoint struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// patientResource builds the Patient resource from the current visit's
// identity, or the latest visit's that has one.
func patientResource(r store.Record) Patient {
	pt := Patient{ResourceType: "Patient", ID: "patient", Identifier: []Identifier{{System: PatientSystem, Value: string(r.State.Patient)}}}
	var id *engine.Identity
	if r.State.Visit != nil {
		id = r.State.Visit.Identity
	}
	for i := len(r.Visits) - 1; i >= 0 && id.Empty(); i-- {
		id = r.Visits[i].Identity
	}
	if id.Empty() {
		return pt
	}
	if id.Chart != "" {
		pt.Identifier = append(pt.Identifier, Identifier{System: ChartSystem, Value: id.Chart})
	}
	if id.Name != "" {
		pt.Name = []HumanName{{Text: id.Name}}
	}
	if id.Phone != "" {
		pt.Telecom = []ContactPoint{{System: "phone", Value: id.Phone}}
	}
	return pt
}

// QuestionnaireResponse is the subset of FHIR R4 QuestionnaireResponse
// Aftercare fills.
type QuestionnaireResponse struct {
	ResourceType  string      `json:"resourceType"`
	ID            string      `json:"id"`
	Questionnaire string      `json:"questionnaire"`
	Status        string      `json:"status"`
	Subject       Reference   `json:"subject"`
	Authored      string      `json:"authored"`
	Item          []QRItem    `json:"item"`
	Extension     []Extension `json:"extension,omitempty"`
}

// Reference points at the patient by identifier.
type Reference struct {
	Identifier Identifier `json:"identifier"`
	Display    string     `json:"display,omitempty"`
}

// Identifier is a FHIR Identifier.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// QRItem is one answered question.
type QRItem struct {
	LinkID string     `json:"linkId"`
	Text   string     `json:"text,omitempty"`
	Answer []QRAnswer `json:"answer,omitempty"`
}

// QRAnswer holds one answer value.
type QRAnswer struct {
	ValueInteger *int    `json:"valueInteger,omitempty"`
	ValueCoding  *Coding `json:"valueCoding,omitempty"`
}

// Coding is a FHIR Coding.
type Coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// Extension carries the check-in outcome (ok, watch, urgent, ...).
type Extension struct {
	URL         string `json:"url"`
	ValueString string `json:"valueString"`
}

// Build turns a stored record into an export document, using the protocol
// for question texts and answer labels.
func Build(r store.Record, p *engine.Protocol, now time.Time) Document {
	d := Document{
		Patient: r.State.Patient, Exported: now, Visit: r.State.Visit, Visits: r.Visits,
		Escalations: r.Escalations, Audit: r.Audit, Conversation: r.Transcript, PatientResource: patientResource(r),
		EarlierScores: r.State.EarlierScores,
		Preferences:   Preferences{Consent: r.State.Consent, Stopped: r.State.Stopped, Paused: r.State.Paused},
	}
	if d.Visits == nil {
		d.Visits = []engine.Visit{}
	}
	if d.Escalations == nil {
		d.Escalations = []engine.Escalation{}
	}
	if d.Audit == nil {
		d.Audit = []engine.Audit{}
	}
	d.Checkins = []QuestionnaireResponse{}
	for i, c := range r.State.Checkins {
		d.Checkins = append(d.Checkins, checkin(r.State.Patient, i, c, p))
	}
	return d
}

func checkin(pid engine.PatientID, i int, c engine.Checkin, p *engine.Protocol) QuestionnaireResponse {
	status := "completed"
	switch c.Outcome {
	case "":
		status = "in-progress"
	case "unanswered":
		status = "stopped"
	}
	qr := QuestionnaireResponse{
		ResourceType: "QuestionnaireResponse", ID: "checkin-" + strconv.Itoa(i+1), Questionnaire: Questionnaire,
		Status: status, Subject: Reference{Identifier: Identifier{System: PatientSystem, Value: string(pid)}},
		Authored:  c.Sent.UTC().Format(time.RFC3339),
		Extension: []Extension{{URL: "urn:aftercare:checkin-hours", ValueString: strconv.FormatFloat(c.Hours, 'f', -1, 64)}},
	}
	if c.Outcome != "" {
		qr.Extension = append(qr.Extension, Extension{URL: "urn:aftercare:checkin-outcome", ValueString: c.Outcome})
	}
	for _, q := range p.Checkin.Questions {
		item := QRItem{LinkID: q.ID, Text: q.Text}
		switch q.ID {
		case "feel":
			if c.Feel != "" {
				item.Answer = []QRAnswer{{ValueCoding: coding(q, c.Feel)}}
			}
		case "soreness":
			if c.Soreness != nil {
				v := *c.Soreness
				item.Answer = []QRAnswer{{ValueInteger: &v}}
			}
		case "signs":
			if c.Signs != "" {
				item.Answer = []QRAnswer{{ValueCoding: coding(q, c.Signs)}}
			}
		}
		qr.Item = append(qr.Item, item)
	}
	return qr
}

func coding(q engine.Question, id string) *Coding {
	c := &Coding{System: AnswerSystem, Code: q.ID + "." + id}
	for _, ch := range q.Choices {
		if ch.ID == id {
			c.Display = ch.Label
		}
	}
	return c
}
