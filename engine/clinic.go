package engine

import "time"

// Clinic holds the contact details and policies the conversation quotes.
// It comes from configuration.
type Clinic struct {
	// Name is how the bot names the clinic.
	Name string
	// Phone is the clinic's number, quoted in every escalation.
	Phone string
	// EmergencyNumber is the local emergency number (default 911).
	EmergencyNumber string
	// TimeZone is the clinic's IANA zone, the default for patients.
	TimeZone string
	// QuietStart and QuietEnd bound the quiet hours in minutes after
	// local midnight (21:00 = 1260, 08:00 = 480). Check-ins and nudges
	// falling inside are moved to QuietEnd; escalations ignore them.
	// Equal values disable quiet hours.
	QuietStart, QuietEnd int
	// Hours are the opening hours per weekday, in minutes after local
	// midnight ([open, close)); a day without an entry is closed. When Hours
	// is nil the clinic is treated as always open.
	Hours map[time.Weekday][2]int
	// AfterHoursPhone is told to patients outside opening hours, if set.
	AfterHoursPhone string
	// StaffHold is how long automatic follow-ups (check-ins, nudges) wait
	// after a staff member's reply to the patient, so the bot does not
	// talk over a person; zero uses DefaultStaffHold, negative turns the
	// hold off. Red flags are never held.
	StaffHold time.Duration
	// AlertIdentity says what of the clinic-entered identity staff alerts
	// in chat show next to the patient ID: "" (nothing, the default),
	// "chart" (the chart number) or "initials".
	AlertIdentity string
}

// DefaultStaffHold is Clinic.StaffHold when not set: long enough for a
// conversation between a person and the patient to finish.
const DefaultStaffHold = 30 * time.Minute

// Values of Clinic.AlertIdentity.
const (
	AlertIdentityNone     = ""
	AlertIdentityChart    = "chart"
	AlertIdentityInitials = "initials"
)

func (c Clinic) staffHold() time.Duration {
	if c.StaffHold == 0 {
		return DefaultStaffHold
	}
	return max(c.StaffHold, 0)
}

// Open reports whether the clinic is open at t.
func (c Clinic) Open(t time.Time, loc *time.Location) bool {
	if c.Hours == nil {
		return true
	}
	lt := t.In(loc)
	h, ok := c.Hours[lt.Weekday()]
	m := lt.Hour()*60 + lt.Minute()
	return ok && m >= h[0] && m < h[1]
}

// Allowed returns t, or the end of the quiet hours when t falls inside
// them, in loc. Computing the end with time.Date keeps it right across a
// daylight-saving change.
func (c Clinic) Allowed(t time.Time, loc *time.Location) time.Time {
	if c.QuietStart == c.QuietEnd {
		return t
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	var quiet bool
	if c.QuietStart > c.QuietEnd {
		quiet = m >= c.QuietStart || m < c.QuietEnd
	} else {
		quiet = m >= c.QuietStart && m < c.QuietEnd
	}
	if !quiet {
		return t
	}
	day := lt
	if c.QuietStart > c.QuietEnd && m >= c.QuietStart {
		day = lt.AddDate(0, 0, 1)
	}
	return time.Date(day.Year(), day.Month(), day.Day(), c.QuietEnd/60, c.QuietEnd%60, 0, 0, loc)
}

func (s *step) allowed(t time.Time) time.Time { return s.e.clinic.Allowed(t, s.loc()) }

func (s *step) loc() *time.Location {
	if s.st.Visit != nil && s.st.Visit.TZ != "" {
		return s.e.zone(s.st.Visit.TZ)
	}
	return s.e.clinicTZ
}

func (e *Engine) zone(name string) *time.Location {
	if v, ok := e.zones.Load(name); ok {
		return v.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = e.clinicTZ
	}
	e.zones.Store(name, loc)
	return loc
}
