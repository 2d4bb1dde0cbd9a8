package desk

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// pageData is what every page template gets.
type pageData struct {
	Title  string
	Clinic string
	Staff  string
	CSRF   string
	Nav    string
	Flash  string
	Data   any
}

// clockLayout is how the desk writes a time for people; the zone's
// abbreviation says which zone it is in.
const clockLayout = "Mon 2 Jan 15:04 MST"

// funcs are the template functions; clock writes times in the clinic's
// zone loc, never the server's.
func funcs(loc *time.Location) template.FuncMap {
	return template.FuncMap{
		"patientURL": func(p engine.PatientID) string { return "/patients/" + url.PathEscape(string(p)) },
		"upper":      strings.ToUpper,
		"since":      since,
		"clock":      func(t time.Time) string { return t.In(loc).Format(clockLayout) },
		"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"join":       strings.Join,
		"platform":   platformName,
		// clinicText is a staff reply without the heading the patient gets
		// ("Message from the clinic team:"), which the page says already.
		"clinicText": func(s string) string { return strings.TrimPrefix(s, service.ReplyHeading) },
	}
}

// since writes how long ago t was, for people.
func since(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%d h ago", h)
		}
		return fmt.Sprintf("%d h %d min ago", h, m)
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

// parsePages parses each page template together with the layout.
func parsePages(loc *time.Location) (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs(loc)).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("desk: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "signedout", "refused", "alerts", "inbox", "today", "patient", "erase", "visit", "invite", "sheet"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("desk: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a whole page; a template error becomes a 500 with nothing
// half-written.
func (d *Desk) render(w http.ResponseWriter, code int, name string, p pageData) {
	p.Clinic = d.cfg.ClinicName
	var b bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		d.log.Error("desk page failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// page renders a page for a signed-in staff member.
func (d *Desk) page(w http.ResponseWriter, s *session, name, title string, data any) {
	d.render(w, http.StatusOK, name, pageData{Title: title, Staff: s.name, CSRF: s.csrf, Nav: name, Data: data})
}

// refuse answers with a short page saying why, never internals.
func (d *Desk) refuse(w http.ResponseWriter, code int, msg string) {
	d.render(w, code, "refused", pageData{Title: "Not possible", Flash: msg})
}

func escapePath(p engine.PatientID) string { return url.PathEscape(string(p)) }

// platformName is the patient's platform for people ("Telegram").
func platformName(p engine.PatientID) string {
	pl := p.Platform()
	if pl == "" {
		return "the platform"
	}
	return strings.ToUpper(pl[:1]) + pl[1:]
}
