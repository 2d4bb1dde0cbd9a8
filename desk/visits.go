package desk

import (
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"

	"rsc.io/qr"

	"github.com/aftercare-clinic/aftercare/engine"
)

type inviteView struct {
	Name      string
	Chart     string
	When      string
	Treatment string
	Area      string
	Links     []string
	Code      string
	Expires   time.Time
	// QR is a PNG data URI of the first link (CSP allows data: images).
	QR template.URL
}

func (d *Desk) links(tok string) []string {
	if d.cfg.InviteLinks != nil {
		return d.cfg.InviteLinks(tok)
	}
	return []string{"code: " + tok + " (the patient sends: /start " + tok + ")"}
}

func (d *Desk) inviteView(inv engine.Invite) inviteView {
	v := inviteView{When: inv.Visit.At.In(d.cfg.Location).Format(clockLayout), Treatment: inv.Visit.Treatment.Label(),
		Area: inv.Visit.Area, Links: d.links(inv.Token), Code: inv.Token, Expires: inv.Expires}
	if id := inv.Visit.Identity; id != nil {
		v.Name, v.Chart = id.Name, id.Chart
	}
	target := inv.Token
	if len(v.Links) > 0 && strings.HasPrefix(v.Links[0], "https://") {
		target = v.Links[0]
	}
	if code, err := qr.Encode(target, qr.M); err == nil {
		v.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(code.PNG()))
	}
	return v
}

type visitFormData struct {
	Treatments []engine.Treatment
	Error      string
	// Zone names the clinic's time zone, the default for CSV times.
	Zone string
}

var treatments = []engine.Treatment{engine.Acupuncture, engine.Electroacupuncture, engine.DryNeedling}

func (d *Desk) visitForm(w http.ResponseWriter, r *http.Request, s *session) {
	d.page(w, s, "visit", "New visit", visitFormData{Zone: d.cfg.Location.String(), Treatments: treatments})
}

// visitPost records a visit as an invite and shows it with its QR code.
func (d *Desk) visitPost(w http.ResponseWriter, r *http.Request, s *session) {
	now := d.cfg.Clock.Now()
	v := engine.Visit{At: now, Source: "clinic", Treatment: engine.Treatment(r.FormValue("treatment")),
		Area: engine.Truncate(strings.TrimSpace(r.FormValue("area")), 60), Acute: r.FormValue("acute") != "", Child: r.FormValue("child") != "",
		TZ: strings.TrimSpace(r.FormValue("tz")), Lang: strings.TrimSpace(r.FormValue("lang")),
		Identity: engine.Identity{Name: r.FormValue("name"), Chart: r.FormValue("chart"), Phone: r.FormValue("phone")}.Clean()}
	if ago, err := time.ParseDuration(r.FormValue("ago")); err == nil && ago >= 0 && ago <= 14*24*time.Hour {
		v.At = now.Add(-ago)
	}
	var problem string
	switch {
	case !v.Treatment.Valid():
		problem = "Choose the treatment."
	case v.TZ != "" && !validZone(v.TZ):
		problem = "The time zone is not one we know (use a name like America/Chicago, or leave it empty)."
	}
	if problem != "" {
		w.WriteHeader(http.StatusBadRequest)
		d.page(w, s, "visit", "New visit", visitFormData{Zone: d.cfg.Location.String(), Treatments: treatments, Error: problem})
		return
	}
	inv, err := d.cfg.Service.CreateInvite(r.Context(), v, d.cfg.InviteTTL)
	if err == nil {
		err = d.audit(r.Context(), s, "desk_invite_created", "", "one invite")
	}
	if err != nil {
		d.log.Error("desk invite failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "The invite could not be made because of an internal error; it has been logged.")
		return
	}
	d.page(w, s, "invite", "Invite", d.inviteView(inv))
}

func validZone(tz string) bool {
	_, err := time.LoadLocation(tz)
	return err == nil
}

// maxImportRows bounds one CSV import (a clinic's day, with room to spare).
const maxImportRows = 500

// Column names accepted in an appointments CSV, lower case. The first row
// is the header; columns may come in any order; unknown columns are
// ignored. The aliases cover the appointment exports of Jane App
// ("Patient", "Start Time", "Treatment") and Cliniko ("Patient",
// "Appointment Start", "Appointment Type"). Name, chart number and phone
// become the visit's staff-only identity.
var columns = map[string][]string{
	"name":      {"name", "patient", "patient name", "client", "client name", "patient full name", "full name"},
	"chart":     {"chart", "chart number", "chart no", "chart #", "mrn", "patient id", "patient number", "client id", "file number"},
	"phone":     {"phone", "phone number", "mobile", "mobile phone", "mobile number", "cell", "cell phone", "patient phone", "client phone"},
	"start":     {"start", "start time", "appointment start", "start date", "date", "appointment date", "time", "starts at"},
	"treatment": {"treatment", "appointment type", "service", "type", "treatment name"},
	"area":      {"area", "body area", "treated area"},
	"tz":        {"tz", "time zone", "timezone"},
	"lang":      {"lang", "language"},
	"acute":     {"acute"},
	"child":     {"child"},
}

var startLayouts = []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02T15:04:05Z07:00", "2006-01-02 15:04:05",
	"2006-01-02 3:04 PM", "01/02/2006 15:04", "01/02/2006 3:04 PM", "02/01/2006 15:04", "2 Jan 2006 15:04", "Jan 2, 2006 3:04 PM", "15:04"}

// treatmentOf maps an appointment type to a treatment; "" when unknown.
func treatmentOf(s string) engine.Treatment {
	s = strings.ToLower(s)
	switch {
	case strings.Contains(s, "dry"):
		return engine.DryNeedling
	case strings.Contains(s, "electro"):
		return engine.Electroacupuncture
	case strings.Contains(s, "acupunct"):
		return engine.Acupuncture
	}
	return engine.Treatment(strings.ReplaceAll(s, " ", "_"))
}

type importRow struct {
	Line  int
	Visit engine.Visit
}

// parseAppointments reads an appointments CSV into visits. The patient's
// name, chart number and phone become the visit's staff-only identity
// (printed on the sheet, shown on the desk, never logged).
func parseAppointments(rd io.Reader, now time.Time, loc *time.Location, fallback engine.Treatment) ([]importRow, error) {
	cr := csv.NewReader(rd)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, errors.New("the file is empty or not a CSV file")
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		for key, names := range columns {
			for _, n := range names {
				if h == n {
					if _, dup := col[key]; !dup {
						col[key] = i
					}
				}
			}
		}
	}
	if _, ok := col["treatment"]; !ok && !fallback.Valid() {
		return nil, errors.New("no treatment column (treatment, appointment type or service) and no default treatment chosen")
	}
	get := func(rec []string, key string) string {
		if i, ok := col[key]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var out []importRow
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		if len(out) == maxImportRows {
			return nil, fmt.Errorf("more than %d appointments: split the file", maxImportRows)
		}
		v := engine.Visit{At: now, Source: "clinic", Area: engine.Truncate(get(rec, "area"), 60), TZ: get(rec, "tz"), Lang: get(rec, "lang"),
			Acute: yes(get(rec, "acute")), Child: yes(get(rec, "child")),
			Identity: engine.Identity{Name: get(rec, "name"), Chart: get(rec, "chart"), Phone: get(rec, "phone")}.Clean()}
		v.Treatment = treatmentOf(get(rec, "treatment"))
		if get(rec, "treatment") == "" {
			v.Treatment = fallback
		}
		if !v.Treatment.Valid() {
			return nil, fmt.Errorf("line %d: treatment %q is not acupuncture, electroacupuncture or dry needling", line, get(rec, "treatment"))
		}
		if v.TZ != "" && !validZone(v.TZ) {
			return nil, fmt.Errorf("line %d: time zone %q unknown", line, v.TZ)
		}
		if s := get(rec, "start"); s != "" {
			at, ok := parseStart(s, now, loc)
			if !ok {
				return nil, fmt.Errorf("line %d: start %q: use a date and time like 2026-03-02 14:30", line, s)
			}
			v.At = at
		}
		out = append(out, importRow{Line: line, Visit: v})
	}
	if len(out) == 0 {
		return nil, errors.New("the file has a header but no appointments")
	}
	return out, nil
}

func yes(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "y", "true", "1", "x":
		return true
	}
	return false
}

func parseStart(s string, now time.Time, loc *time.Location) (time.Time, bool) {
	for _, l := range startLayouts {
		t, err := time.ParseInLocation(l, s, loc)
		if err != nil {
			continue
		}
		if l == "15:04" {
			n := now.In(loc)
			t = time.Date(n.Year(), n.Month(), n.Day(), t.Hour(), t.Minute(), 0, 0, loc)
		}
		return t, true
	}
	return time.Time{}, false
}

type sheetData struct {
	Invites []inviteView
}

// importPost creates one invite per appointment in an uploaded CSV and
// shows the printable sheet of QR codes. A file with any bad line creates
// nothing and says which line.
func (d *Desk) importPost(w http.ResponseWriter, r *http.Request, s *session) {
	f, _, err := r.FormFile("file")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		d.page(w, s, "visit", "New visit", visitFormData{Zone: d.cfg.Location.String(), Treatments: treatments, Error: "Choose a CSV file of appointments to import."})
		return
	}
	defer f.Close()
	loc := d.cfg.Location
	if tz := strings.TrimSpace(r.FormValue("tz")); tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	rows, err := parseAppointments(io.LimitReader(f, 1<<20), d.cfg.Clock.Now(), loc, engine.Treatment(r.FormValue("treatment")))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		d.page(w, s, "visit", "New visit", visitFormData{Zone: d.cfg.Location.String(), Treatments: treatments, Error: "Nothing was imported: " + err.Error()})
		return
	}
	var sheet sheetData
	for _, row := range rows {
		inv, err := d.cfg.Service.CreateInvite(r.Context(), row.Visit, d.cfg.InviteTTL)
		if err != nil {
			d.log.Error("desk import failed", "row", row.Line, "err", err)
			d.refuse(w, http.StatusInternalServerError, fmt.Sprintf("The import stopped at line %d because of an internal error; %d invites were made. It has been logged.", row.Line, len(sheet.Invites)))
			return
		}
		sheet.Invites = append(sheet.Invites, d.inviteView(inv))
	}
	if err := d.audit(r.Context(), s, "desk_invites_imported", "", fmt.Sprintf("%d invites from a CSV file", len(sheet.Invites))); err != nil {
		d.log.Error("desk import: audit failed", "err", err)
	}
	d.page(w, s, "sheet", "Invite sheet", sheet)
}
