package desk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// alertView is one open escalation as the alerts page shows it.
type alertView struct {
	engine.Escalation
	Since  string
	Ladder string
	// Name and Chart are who the patient is: the identity the clinic
	// entered, else the platform display name.
	Name, Chart string
}

type alertsData struct {
	Alerts []alertView
	CSRF   string
	Now    time.Time
}

// ladderText says where the reminder ladder is.
func ladderText(e engine.Escalation) string {
	switch {
	case e.Status == "acknowledged":
		return "acknowledged by " + e.AckBy
	case !e.Level.Escalates():
		return "for follow-up (no reminders)"
	case e.Steps == 0:
		return "first alert sent; not yet reminded"
	case e.Steps == 1:
		return "reminded once"
	}
	return fmt.Sprintf("step %d: reminded and forwarded", e.Steps)
}

func (d *Desk) alertsData(csrf string) (alertsData, error) {
	es, err := d.openEscalations()
	if err != nil {
		return alertsData{}, err
	}
	now := d.cfg.Clock.Now()
	ad := alertsData{CSRF: csrf, Now: now}
	who := map[engine.PatientID][2]string{}
	for _, e := range es {
		n, ok := who[e.Patient]
		if !ok {
			if st, found, err := d.cfg.Store.State(e.Patient); err == nil && found {
				n[0] = st.DisplayName
				if v := st.Visit; v != nil && v.Identity != nil {
					if v.Identity.Name != "" {
						n[0] = v.Identity.Name
					}
					n[1] = v.Identity.Chart
				}
			}
			who[e.Patient] = n
		}
		ad.Alerts = append(ad.Alerts, alertView{Escalation: e, Since: since(now, e.At), Ladder: ladderText(e), Name: n[0], Chart: n[1]})
	}
	return ad, nil
}

func (d *Desk) alertsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ad, err := d.alertsData(s.csrf)
	if err == nil {
		err = d.audit(r.Context(), s, "desk_alerts_viewed", "", fmt.Sprintf("%d open alerts", len(ad.Alerts)))
	}
	if err != nil {
		d.log.Error("desk alerts page failed", "err", err)
		d.refuse(w, http.StatusInternalServerError, "The alerts could not be shown because of an internal error; it has been logged.")
		return
	}
	title := "Alerts"
	if n := len(ad.Alerts); n > 0 {
		title = fmt.Sprintf("(%d) Alerts", n)
	}
	d.render(w, http.StatusOK, "alerts", pageData{Title: title, Staff: s.name, CSRF: s.csrf, Nav: "alerts", Flash: alertFlash(r), Data: ad})
}

// alertEvent is one Server-Sent Event: the new count and the list's HTML.
type alertEvent struct {
	Count int    `json:"count"`
	HTML  string `json:"html"`
}

// alertEvents streams the open alerts to a page (Server-Sent Events): once
// at once, then after every change. The stream is audited once when it
// opens and ends with the session.
func (d *Desk) alertEvents(w http.ResponseWriter, r *http.Request, s *session) {
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		d.log.Warn("desk alert stream: write deadline not lifted", "err", err)
	}
	if err := d.audit(r.Context(), s, "desk_alerts_viewed", "", "live alert stream opened"); err != nil {
		d.log.Error("desk alert stream refused: audit failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	keepAlive := time.NewTicker(25 * time.Second)
	defer keepAlive.Stop()
	for {
		ch := d.changes()
		ad, err := d.alertsData(s.csrf)
		if err != nil {
			d.log.Error("desk alert stream failed", "err", err)
			return
		}
		var html bytes.Buffer
		if err := d.pages["alerts"].ExecuteTemplate(&html, "alertlist", ad); err != nil {
			d.log.Error("desk alert stream failed", "err", err)
			return
		}
		b, _ := json.Marshal(alertEvent{Count: len(ad.Alerts), HTML: html.String()})
		if _, err := fmt.Fprintf(w, "event: alerts\ndata: %s\n\n", b); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	wait:
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			if !d.alive(r.Context(), s.hash) {
				return // signed out or expired: the page's next request says so
			}
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			goto wait
		case <-ch:
			if !d.alive(r.Context(), s.hash) {
				return
			}
		}
	}
}

// changes returns a channel closed at the next change of the open alerts.
func (d *Desk) changes() <-chan struct{} {
	d.bcMu.Lock()
	defer d.bcMu.Unlock()
	return d.changed
}

// Poke tells every open alerts page to refresh now.
func (d *Desk) Poke() {
	d.bcMu.Lock()
	defer d.bcMu.Unlock()
	close(d.changed)
	d.changed = make(chan struct{})
}

// Run watches the escalations (every Config.PollInterval) and pushes every
// change, wherever it was made (a new red flag, an acknowledgement in the
// staff chat, a ladder step), to every open alerts page. It returns when
// ctx ends.
func (d *Desk) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := d.check(); err != nil {
			d.log.Error("desk: reading escalations failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// check pokes the pages when the open escalations changed.
func (d *Desk) check() error {
	es, err := d.openEscalations()
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%d:%s:%d;", e.ID, e.Status, e.Steps)
	}
	d.bcMu.Lock()
	changed := d.print != b.String()
	d.print = b.String()
	d.bcMu.Unlock()
	if changed {
		d.Poke()
	}
	return nil
}

func escalationID(r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

func (d *Desk) alertAck(w http.ResponseWriter, r *http.Request, s *session) {
	d.alertChange(w, r, s, false)
}

func (d *Desk) alertResolve(w http.ResponseWriter, r *http.Request, s *session) {
	d.alertChange(w, r, s, true)
}

// alertChange acknowledges or resolves an escalation through the service,
// the same step as the staff chat's button: the ladder stops and every
// staff chat is told who took it.
func (d *Desk) alertChange(w http.ResponseWriter, r *http.Request, s *session, resolve bool) {
	id, ok := escalationID(r)
	if !ok {
		d.refuse(w, http.StatusNotFound, "There is no such alert.")
		return
	}
	var msg string
	var err error
	if resolve {
		msg, err = d.cfg.Service.Resolve(r.Context(), id, s.name, strings.TrimSpace(r.FormValue("note")))
	} else {
		msg, err = d.cfg.Service.Acknowledge(r.Context(), id, s.name)
	}
	switch {
	case errors.Is(err, service.ErrNoEscalation):
		d.refuse(w, http.StatusNotFound, "There is no such alert (it may have been erased).")
		return
	case err != nil:
		d.log.Error("desk alert change failed", "escalation", id, "err", err)
		d.refuse(w, http.StatusInternalServerError, "That did not work because of an internal error; it has been logged.")
		return
	}
	d.Poke()
	what := "acked"
	switch {
	case msg != "":
		what = "unchanged"
	case resolve:
		what = "resolved"
	}
	http.Redirect(w, r, fmt.Sprintf("/alerts?%s=%d", what, id), http.StatusSeeOther)
}

// alertFlash is the sentence confirming what the last button did.
func alertFlash(r *http.Request) string {
	q := r.URL.Query()
	for key, text := range map[string]string{
		"acked":     "Alert #%d acknowledged; the staff chats were told who took it.",
		"resolved":  "Alert #%d resolved.",
		"unchanged": "Alert #%d was already taken care of; nothing changed.",
	} {
		if id, err := strconv.ParseUint(q.Get(key), 10, 64); err == nil {
			return fmt.Sprintf(text, id)
		}
	}
	return ""
}
