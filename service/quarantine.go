package service

import (
	"fmt"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// quarantineNotifier is implemented by stores that set unreadable records
// aside (*store.Store): they ask the service what to tell staff.
type quarantineNotifier interface {
	SetQuarantineNotice(storage.QuarantineNotice)
}

// quarantineNotice is the staff notice for a record the store set aside
// because it could not be read: one per staff channel, naming only the
// patient ID (never the record's bytes, which may hold what they said). It
// runs inside the store's write transaction and depends only on q, so it
// returns the same messages when a group commit runs it twice.
func (s *Service) quarantineNotice(q storage.Quarantined) []engine.Outbound {
	who := string(q.Patient)
	if who == "" {
		who = "no patient"
	}
	var what string
	switch q.Kind {
	case storage.QuarantineState:
		what = fmt.Sprintf("The stored conversation of patient %s could not be read and was set aside (quarantine #%d). Their messages are still triaged and answered, starting afresh; please check on them and review their record.", who, q.Seq)
	case storage.QuarantineOutbox:
		what = fmt.Sprintf("A queued message to %s could not be read and was not sent (quarantine #%d); the messages after it go out as usual. Please check on them.", who, q.Seq)
	case storage.QuarantineEscalation:
		what = fmt.Sprintf("Escalation record %s could not be read and was set aside (quarantine #%d); its reminders stopped. Please check the open escalations.", who, q.Seq)
	default:
		what = fmt.Sprintf("A stored %s record (%s) could not be read and was set aside (quarantine #%d); everything else carries on.", q.Kind, who, q.Seq)
	}
	n := engine.Outbound{To: engine.StaffAddress, Kind: engine.KindNotice, Patient: q.Patient, Text: "[DATA PROBLEM] " + what + " `aftercare check` lists quarantined records.", Created: q.At}
	s.log.Warn("record quarantined", "kind", q.Kind, "patient", q.Patient, "quarantine_seq", q.Seq)
	for _, ch := range s.staff {
		s.kick(ch.Platform())
	}
	return s.fanOut([]engine.Outbound{n})
}
