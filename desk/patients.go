package desk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/export"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// maxRows bounds the rows of the inbox and today's list, so a page stays
// quick with any number of patients on record.
const maxRows = 200

// patientRow is one patient in the inbox or today's list.
type patientRow struct {
	Patient    engine.PatientID
	Name       string
	Chart      string
	Last       time.Time
	LastText   string
	Visit      string
	Status     string
	Needs      []string
	OpenAlerts int
}

type listData struct {
	Rows          []patientRow
	Total, Shown  int
	Filter        string
	NeedsFilter   bool
	Empty         string
	HeadingSuffix string
}

// status is a patient's follow-up status in a word or two.
func status(st engine.State, now time.Time) string {
	switch {
	case st.Unreachable:
		return "unreachable"
	case st.Stopped:
		return "stopped"
	case st.Paused:
		return "paused"
	}
	for i := len(st.Checkins) - 1; i >= 0; i-- {
		c := st.Checkins[i]
		switch {
		case c.Open() && now.Sub(c.Sent) > 6*time.Hour:
			return "no answer"
		case c.Open():
			return "check-in sent"
		case c.Outcome == "unanswered":
			return "no answer"
		default:
			return "answered"
		}
	}
	switch st.Consent {
	case "yes":
		return "consented"
	case "no":
		return "declined check-ins"
	}
	if st.Visit != nil {
		return "linked, not consented yet"
	}
	return "talking to the bot"
}

// needs lists why a patient needs a person now.
func needs(st engine.State, open int, now time.Time) []string {
	var out []string
	if open > 0 {
		out = append(out, "open alert")
	}
	if st.Clarify != nil && st.Clarify.Net {
		out = append(out, "safety-net question unanswered")
	} else if st.Clarify != nil {
		out = append(out, "red-flag question unanswered")
	}
	for _, c := range st.Checkins {
		if c.Outcome == "unanswered" || (c.Open() && now.Sub(c.Sent) > 6*time.Hour) {
			out = append(out, "check-in unanswered")
			break
		}
	}
	if !st.AskedPerson.IsZero() && st.AskedPerson.After(st.StaffReplied) && now.Sub(st.AskedPerson) < 72*time.Hour {
		out = append(out, "asked for a person")
	}
	if st.Unreachable {
		out = append(out, "unreachable")
	}
	return out
}

func visitText(v *engine.Visit, now time.Time) string {
	if v == nil {
		return "no visit recorded"
	}
	s := v.Treatment.Label()
	if v.Area != "" {
		s += ", " + v.Area
	}
	return s + ", " + since(now, v.At)
}

type cachedState struct {
	raw []byte
	st  engine.State
	gen uint64 // the walk that last saw it
}

// eachState calls fn with every patient's state, decoding only those whose
// stored bytes changed since the last walk. A state that cannot be decoded
// is passed over (the service sets it aside at the patient's next step).
// The states fn sees are never changed afterwards (a changed state is a
// new one), so fn may keep pointers to them.
func (d *Desk) eachState(fn func(*engine.State)) error {
	d.statesMu.Lock()
	defer d.statesMu.Unlock()
	d.gen++
	seen := 0
	err := d.cfg.Store.PatientStatesRaw(func(id engine.PatientID, raw []byte) error {
		c := d.states[id]
		if c == nil || !bytes.Equal(c.raw, raw) {
			st, err := store.DecodeState(raw)
			if err != nil {
				return nil
			}
			c = &cachedState{raw: bytes.Clone(raw), st: st}
			d.states[id] = c
		}
		c.gen = d.gen
		seen++
		fn(&c.st)
		return nil
	})
	if err != nil {
		return err
	}
	if seen != len(d.states) {
		for id, c := range d.states {
			if c.gen != d.gen {
				delete(d.states, id) // erased patients drop out
			}
		}
	}
	return nil
}

// lastActivity is when the patient last wrote or had a visit.
func lastActivity(st *engine.State) time.Time {
	last := st.LastActive
	if st.Visit != nil && st.Visit.At.After(last) {
		last = st.Visit.At
	}
	return last
}

// newer orders rows: most recent activity first, then by patient ID.
func newer(a, b *engine.State) bool {
	la, lb := lastActivity(a), lastActivity(b)
	if !la.Equal(lb) {
		return la.After(lb)
	}
	return a.Patient < b.Patient
}

// statesVersioner is implemented by stores that can say cheaply whether
// any patient's state changed (*store.Store); with it a list page walks
// the states only after a change.
type statesVersioner interface {
	StatesVersion() (uint64, error)
}

// snapshot returns every patient's state, most recent activity first. It
// is rebuilt (one walk, decoding only the changed states) when the store's
// states version moved, or on every call for a store that has none; the
// slice and the states are never changed afterwards.
func (d *Desk) snapshot() ([]*engine.State, error) {
	ver, versioned := uint64(0), false
	if sv, ok := d.cfg.Store.(statesVersioner); ok {
		v, err := sv.StatesVersion()
		if err != nil {
			return nil, err
		}
		ver, versioned = v, true
	}
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	if versioned && d.snap != nil && d.snapVer == ver {
		return d.snap, nil
	}
	all := make([]*engine.State, 0, len(d.snap))
	if err := d.eachState(func(st *engine.State) { all = append(all, st) }); err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return newer(all[i], all[j]) })
	d.snap, d.snapVer = all, ver
	return all, nil
}

// rows returns the patients keep wants, newest activity first, at most
// maxRows, and how many matched. Only the rows shown are formatted; the
// states come from the snapshot, so a page costs a pass over the states in
// memory, and a walk of the store only after a change.
func (d *Desk) rows(keep func(st *engine.State, open int) bool) ([]patientRow, int, error) {
	es, err := d.openEscalations()
	if err != nil {
		return nil, 0, err
	}
	open := map[engine.PatientID]int{}
	for _, e := range es {
		open[e.Patient]++
	}
	now := d.cfg.Clock.Now()
	all, err := d.snapshot()
	if err != nil {
		return nil, 0, err
	}
	var sts []*engine.State
	total := 0
	for _, st := range all {
		if keep(st, open[st.Patient]) {
			total++
			if len(sts) < maxRows {
				sts = append(sts, st)
			}
		}
	}
	rows := make([]patientRow, len(sts))
	for i, st := range sts {
		r := patientRow{Patient: st.Patient, Name: st.DisplayName, Last: lastActivity(st), Status: status(*st, now),
			OpenAlerts: open[st.Patient], Visit: visitText(st.Visit, now)}
		r.Needs = needs(*st, r.OpenAlerts, now)
		if v := st.Visit; v != nil && v.Identity != nil {
			if v.Identity.Name != "" {
				r.Name = v.Identity.Name
			}
			r.Chart = v.Identity.Chart
		}
		rows[i] = r
	}
	return rows, total, nil
}

func (d *Desk) inboxPage(w http.ResponseWriter, r *http.Request, s *session) {
	onlyNeeds := r.URL.Query().Get("filter") == "needs"
	now := d.cfg.Clock.Now()
	rows, total, err := d.rows(func(st *engine.State, open int) bool { return !onlyNeeds || len(needs(*st, open, now)) > 0 })
	if err == nil {
		err = d.audit(r.Context(), s, "desk_inbox_viewed", "", fmt.Sprintf("%d conversations listed", len(rows)))
	}
	if err != nil {
		d.log.Error("desk inbox failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "The inbox could not be shown because of an internal error; it has been logged.")
		return
	}
	ld := listData{Rows: rows, Total: total, Shown: len(rows), NeedsFilter: onlyNeeds, Empty: "No conversations yet."}
	if onlyNeeds {
		ld.Empty = "Nobody needs a person right now."
	}
	d.page(w, s, "inbox", "Inbox", ld)
}

// invitedRow is an invite from the last 72 hours no patient has used yet.
type invitedRow struct {
	Name, Chart, Visit string
	When, Expires      time.Time
}

type todayData struct {
	List    listData
	Invited []invitedRow
}

// todayPage lists the patients in follow-up: visits in the last 72 hours.
func (d *Desk) todayPage(w http.ResponseWriter, r *http.Request, s *session) {
	now := d.cfg.Clock.Now()
	rows, total, err := d.rows(func(st *engine.State, _ int) bool {
		return st.Visit != nil && now.Sub(st.Visit.At) <= 72*time.Hour
	})
	if err == nil {
		err = d.audit(r.Context(), s, "desk_today_viewed", "", fmt.Sprintf("%d patients listed", len(rows)))
	}
	if err != nil {
		d.log.Error("desk today page failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "Today's patients could not be shown because of an internal error; it has been logged.")
		return
	}
	invs, err := d.cfg.Store.OpenInvites(now)
	if err != nil {
		d.log.Error("desk today page: invites failed", "err", err)
	}
	var invited []invitedRow
	for _, inv := range invs {
		if now.Sub(inv.Visit.At) > 72*time.Hour {
			continue
		}
		r := invitedRow{When: inv.Visit.At, Visit: visitText(&inv.Visit, now), Expires: inv.Expires}
		if id := inv.Visit.Identity; id != nil {
			r.Name, r.Chart = id.Name, id.Chart
		}
		invited = append(invited, r)
	}
	d.page(w, s, "today", "Today", todayData{List: listData{Rows: rows, Total: total, Shown: len(rows), Empty: "No patients in follow-up (visits in the last 72 hours)."}, Invited: invited})
}

// chart is the soreness chart of a patient's check-ins, drawn on the server.
type chart struct {
	Points  []chartPoint
	Line    string
	W, H    int
	Summary string
	// Seps are the x positions of the lines between two visits.
	Seps []int
}

type chartPoint struct {
	X, Y   int
	Label  string
	Score  int
	LabelY int
	// Visit names the visit under its first point ("2 Mar").
	Visit string
}

// Chart geometry: a 0-10 scale on the left, check-ins left to right; the
// plot is 160 px high between y 20 and 180, hours and visits below.
const (
	chartW, chartH        = 480, 236
	chartLeft, chartRight = 40, 20
	chartTop, chartBottom = 20, 56
)

// sorenessChart draws the soreness scores of the patient's check-ins, of
// earlier visits first (State.EarlierScores), then of the current one.
func sorenessChart(st engine.State, loc *time.Location) chart {
	c := chart{W: chartW, H: chartH}
	type score struct {
		visit time.Time
		hours float64
		v     int
	}
	var scored []score
	for _, e := range st.EarlierScores {
		scored = append(scored, score{e.Visit, e.Hours, e.Soreness})
	}
	var current time.Time
	if st.Visit != nil {
		current = st.Visit.At
	}
	for _, ck := range st.Checkins {
		if ck.Soreness != nil {
			scored = append(scored, score{current, ck.Hours, *ck.Soreness})
		}
	}
	if len(scored) == 0 {
		c.Summary = "No soreness scores yet."
		return c
	}
	plotW, plotH := chartW-chartLeft-chartRight, chartH-chartTop-chartBottom
	several := len(st.EarlierScores) > 0
	var pts, words []string
	for i, sc := range scored {
		x := chartLeft + plotW/2
		if len(scored) > 1 {
			x = chartLeft + i*plotW/(len(scored)-1)
		}
		y := chartTop + plotH - sc.v*plotH/10
		label := fmt.Sprintf("%gh", sc.hours)
		p := chartPoint{X: x, Y: y, Label: label, Score: sc.v, LabelY: y - 8}
		word := fmt.Sprintf("%s check-in %d of 10", label, sc.v)
		if first := i == 0 || !scored[i-1].visit.Equal(sc.visit); first && several {
			p.Visit = sc.visit.In(loc).Format("2 Jan")
			if i > 0 {
				c.Seps = append(c.Seps, (c.Points[i-1].X+x)/2)
			}
		}
		if several {
			word = "visit of " + sc.visit.In(loc).Format("2 Jan") + ", " + word
		}
		c.Points = append(c.Points, p)
		pts = append(pts, fmt.Sprintf("%d,%d", x, y))
		words = append(words, word)
	}
	c.Line = strings.Join(pts, " ")
	c.Summary = "Soreness: " + strings.Join(words, "; ") + "."
	return c
}

type patientData struct {
	Record     store.Record
	Identity   *engine.Identity
	Status     string
	Visit      string
	Chart      chart
	Open       []engine.Escalation
	Transcript []store.TranscriptLine
	Sent       bool
	Flash      string
	// Held is set while automatic follow-ups wait for a staff
	// conversation with the patient (State.HeldUntil).
	Held bool
	Now  time.Time
}

// patientFlash says what the last action on the patient page did.
func patientFlash(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "pause":
		return "Automatic check-ins are paused for this patient."
	case "resume":
		return "Automatic check-ins are on again for this patient."
	}
	return ""
}

func (d *Desk) patientID(w http.ResponseWriter, r *http.Request) (engine.PatientID, store.Record, bool) {
	id := engine.PatientID(r.PathValue("id"))
	rec, err := d.cfg.Store.PatientRecord(id)
	if errors.Is(err, store.ErrNotFound) || id == "" {
		d.refuse(w, http.StatusNotFound, "There is no such patient (they may have been erased).")
		return "", rec, false
	}
	if err != nil {
		d.log.Error("desk patient page failed", "patient", id, "err", err)
		d.refuse(w, http.StatusInternalServerError, "The patient could not be shown because of an internal error; it has been logged.")
		return "", rec, false
	}
	return id, rec, true
}

func (d *Desk) patientPage(w http.ResponseWriter, r *http.Request, s *session) {
	id, rec, ok := d.patientID(w, r)
	if !ok {
		return
	}
	if err := d.audit(r.Context(), s, "patient_viewed", id, "staff desk"); err != nil {
		d.log.Error("desk patient page refused: audit failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "The patient could not be shown because of an internal error; it has been logged.")
		return
	}
	now := d.cfg.Clock.Now()
	var ident *engine.Identity
	if rec.State.Visit != nil {
		ident = rec.State.Visit.Identity
	}
	pd := patientData{Record: rec, Identity: ident, Held: now.Before(rec.State.HeldUntil), Flash: patientFlash(r), Status: status(rec.State, now), Visit: visitText(rec.State.Visit, now),
		Chart: sorenessChart(rec.State, d.cfg.Location), Transcript: rec.Transcript, Sent: r.URL.Query().Has("sent"), Now: now}
	for _, e := range rec.Escalations {
		if e.Status != "resolved" {
			pd.Open = append(pd.Open, e)
		}
	}
	title := string(id)
	if ident != nil && ident.Name != "" {
		title = ident.Name
	} else if rec.State.DisplayName != "" {
		title = rec.State.DisplayName
	}
	d.page(w, s, "patient", title, pd)
}

func (d *Desk) replyPost(w http.ResponseWriter, r *http.Request, s *session) {
	id := engine.PatientID(r.PathValue("id"))
	err := d.cfg.Service.Reply(r.Context(), id, s.name, r.FormValue("text"))
	switch {
	case errors.Is(err, service.ErrEmptyReply):
		d.refuse(w, http.StatusBadRequest, "The reply is empty; write something first.")
		return
	case errors.Is(err, store.ErrNotFound):
		d.refuse(w, http.StatusNotFound, "There is no such patient (they may have been erased).")
		return
	case err != nil:
		d.log.Error("desk reply failed", "patient", id, "err", err)
		d.refuse(w, http.StatusInternalServerError, "The reply could not be queued because of an internal error; it has been logged.")
		return
	}
	http.Redirect(w, r, "/patients/"+escapePath(id)+"?sent=1#conversation", http.StatusSeeOther)
}

// exportPost downloads the patient's whole record as JSON (check-ins as
// FHIR QuestionnaireResponses, the identity as a FHIR Patient), the same
// document as `aftercare export`. Audited before it is sent.
func (d *Desk) exportPost(w http.ResponseWriter, r *http.Request, s *session) {
	id, rec, ok := d.patientID(w, r)
	if !ok {
		return
	}
	now := d.cfg.Clock.Now()
	b, err := json.MarshalIndent(export.Build(rec, d.cfg.Protocol, now), "", "  ")
	if err == nil {
		err = d.audit(r.Context(), s, "patient_exported", id, "FHIR export downloaded from the staff desk")
	}
	if err != nil {
		d.log.Error("desk export failed", "patient", id, "err", err)
		d.refuse(w, http.StatusInternalServerError, "The export could not be made because of an internal error; it has been logged.")
		return
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(string(id)))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="aftercare-`+name+`.json"`)
	w.Write(b)
}

// pausePost pauses or resumes the patient's automatic check-ins, as
// /pause and /resume do (audited with the staff member's name).
func (d *Desk) pausePost(w http.ResponseWriter, r *http.Request, s *session) {
	id := engine.PatientID(r.PathValue("id"))
	action := "pause"
	if strings.HasSuffix(r.URL.Path, "/resume") {
		action = "resume"
	}
	if !d.patientAction(w, id, d.cfg.Service.Pause(r.Context(), id, s.name, action)) {
		return
	}
	http.Redirect(w, r, "/patients/"+escapePath(id)+"?done="+action, http.StatusSeeOther)
}

type eraseData struct {
	Patient engine.PatientID
	Name    string
	Done    bool
}

// erasePage asks for confirmation before erasing: erasing cannot be undone.
func (d *Desk) erasePage(w http.ResponseWriter, r *http.Request, s *session) {
	id, rec, ok := d.patientID(w, r)
	if !ok {
		return
	}
	if err := d.audit(r.Context(), s, "patient_viewed", id, "staff desk: erase confirmation"); err != nil {
		d.log.Error("desk erase page refused: audit failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "The patient could not be shown because of an internal error; it has been logged.")
		return
	}
	ed := eraseData{Patient: id, Name: rec.State.DisplayName}
	if v := rec.State.Visit; v != nil && v.Identity != nil && v.Identity.Name != "" {
		ed.Name = v.Identity.Name
	}
	d.page(w, s, "erase", "Erase patient", ed)
}

// erasePost erases everything stored about the patient once the staff
// member confirmed it (the confirm field the confirmation page sends).
func (d *Desk) erasePost(w http.ResponseWriter, r *http.Request, s *session) {
	id := engine.PatientID(r.PathValue("id"))
	if r.FormValue("confirm") != "erase" {
		http.Redirect(w, r, "/patients/"+escapePath(id)+"/erase", http.StatusSeeOther)
		return
	}
	if !d.patientAction(w, id, d.cfg.Service.Erase(r.Context(), id, s.name)) {
		return
	}
	d.page(w, s, "erase", "Patient erased", eraseData{Patient: id, Done: true})
}

// patientAction answers a failed action on a patient; it reports whether
// err was nil.
func (d *Desk) patientAction(w http.ResponseWriter, id engine.PatientID, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		d.refuse(w, http.StatusNotFound, "There is no such patient (they may have been erased).")
	default:
		d.log.Error("desk patient action failed", "patient", id, "err", err)
		d.refuse(w, http.StatusInternalServerError, "That could not be done because of an internal error; it has been logged.")
	}
	return false
}
