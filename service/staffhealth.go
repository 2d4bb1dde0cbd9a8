package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aftercare-clinic/aftercare/engine"
)

// StaffObserver is implemented by an Observer that also wants to know when
// a staff destination (a staff chat or channel, a webhook, an escalation
// contact) stops or starts accepting messages. The metrics package uses it
// for a gauge per destination, named by its configuration key.
type StaffObserver interface {
	// StaffDestination reports whether the destination configured under
	// key accepts messages.
	StaffDestination(key string, reachable bool)
}

// StaffChecker is implemented by platform adapters that can tell, without
// sending anything, whether a staff destination exists and the bot may
// post there (Telegram getChat, Discord channel fetch).
type StaffChecker interface {
	// CheckStaff returns nil when the bot can post to dest, an error
	// wrapping ErrUnreachable when the platform says it cannot, and
	// any other error when the check itself failed (network, outage).
	CheckStaff(ctx context.Context, dest engine.PatientID) error
}

// staffHealth remembers which staff destinations the platforms refused, so
// /readyz can name them until a message gets through again.
type staffHealth struct {
	mu   sync.Mutex
	down map[engine.PatientID]string // destination -> why, for people
}

// reasonRefused is what /readyz says about a destination the platform
// refuses: no chat IDs, no platform error text.
const reasonRefused = "the platform refuses delivery (the bot was removed from the chat or channel, or the id is wrong)"

// StaffKey returns the configuration key a staff destination came from
// ("telegram.staff_chat_id", "escalation.contacts[1]"), or the destination
// itself when none was configured for it.
func (s *Service) StaffKey(dest engine.PatientID) string {
	if k, ok := s.cfg.StaffKeys[dest]; ok {
		return k
	}
	return string(dest)
}

// isStaffDest reports whether dest is a configured staff channel or
// escalation contact.
func (s *Service) isStaffDest(dest engine.PatientID) bool {
	for _, d := range s.staff {
		if d == dest {
			return true
		}
	}
	for _, d := range s.cfg.EscalationContacts {
		if d == dest {
			return true
		}
	}
	return false
}

// staffDown records that a staff destination refuses messages; the first
// time it logs an error naming the configuration key and tells the
// observer.
func (s *Service) staffDown(dest engine.PatientID, why string) {
	s.health.mu.Lock()
	_, was := s.health.down[dest]
	s.health.down[dest] = why
	s.health.mu.Unlock()
	if was {
		return
	}
	key := s.StaffKey(dest)
	s.log.Error("staff destination unreachable: alerts are kept, retried and sent to the other staff destinations", "key", key, "to", dest)
	if o, ok := s.cfg.Observer.(StaffObserver); ok {
		o.StaffDestination(key, false)
	}
}

// staffUp records that a staff destination accepted a message again.
func (s *Service) staffUp(dest engine.PatientID) {
	s.health.mu.Lock()
	_, was := s.health.down[dest]
	delete(s.health.down, dest)
	s.health.mu.Unlock()
	if !was {
		return
	}
	key := s.StaffKey(dest)
	s.log.Info("staff destination reachable again", "key", key, "to", dest)
	if o, ok := s.cfg.Observer.(StaffObserver); ok {
		o.StaffDestination(key, true)
	}
}

// StaffProblems describes every staff destination that currently refuses
// messages, by configuration key, sorted; empty when all are fine. The
// operations listener's /readyz fails while it is not empty, because an
// alert that reaches nobody is the worst failure this bot can have.
func (s *Service) StaffProblems() []string {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	var out []string
	for dest, why := range s.health.down {
		out = append(out, s.StaffKey(dest)+": "+why)
	}
	sort.Strings(out)
	return out
}

// CheckStaff asks each platform whether every staff channel and escalation
// contact on it exists and accepts the bot, before the first alert needs
// it. A destination the platform refuses is recorded as a staff problem
// (logged with its configuration key, on /readyz and in the metrics); the
// returned error names every such key. Destinations on platforms without a
// checker (webhooks, the console) are not checked. A check that could not
// run (network, outage) is logged and not counted as a refusal.
func (s *Service) CheckStaff(ctx context.Context, checkers map[string]StaffChecker) error {
	var bad []string
	for _, dest := range dedupeIDs(append(append([]engine.PatientID(nil), s.staff...), s.cfg.EscalationContacts...)) {
		c := checkers[dest.Platform()]
		if c == nil {
			continue
		}
		err := c.CheckStaff(ctx, dest)
		switch {
		case err == nil:
		case errors.Is(err, ErrUnreachable):
			s.staffDown(dest, reasonRefused)
			bad = append(bad, s.StaffKey(dest))
		default:
			s.log.Warn("could not check a staff destination at start-up; it is checked again by the first alert", "key", s.StaffKey(dest), "err", err)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("staff destinations refused by their platform: %s (%w)", strings.Join(bad, ", "), ErrUnreachable)
	}
	return nil
}
