package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// InviteStore keeps one-time enrollment links.
type InviteStore interface {
	// PutInvite stores a new invite.
	PutInvite(inv engine.Invite) error
}

// IsInviteToken reports whether s has the form of an invite token: 1 to 64
// characters of A-Z a-z 0-9 _ -. The tokens CreateInvite makes have it (22
// characters of base64url), and it is the form Telegram allows in a deep
// link's start parameter, so a token travels in a t.me link unchanged.
// Receive looks up only an Inbound.Invite of this form; adapters use it to
// decide whether what their platform carried is an invite at all.
func IsInviteToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// StartInvite returns the invite token of a typed "/start TOKEN" command, or
// "" when text is not one. It is the form patients are told to type where a
// platform has no deep links (a Discord DM, the console: cmd/aftercare's
// visit command and the desk print it), and the form a Telegram deep link
// arrives in. Adapters call it to fill Inbound.Invite, so the service never
// reads an invite back out of a message's text. A "/start" with anything
// else after it is not an invite: it stays the patient's text, read by
// triage first like any message, and the engine says the link did not work.
func StartInvite(text string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), "/start ")
	if !ok {
		return ""
	}
	rest = strings.TrimSpace(rest)
	if !IsInviteToken(rest) {
		return ""
	}
	return rest
}

// CreateInvite records a visit as a one-time invite valid for ttl and
// returns its token (128 random bits, base64url, 22 characters). The token
// says nothing about the patient.
func (s *Service) CreateInvite(ctx context.Context, v engine.Visit, ttl time.Duration) (engine.Invite, error) {
	inv, err := s.newInvite(v, ttl)
	if err != nil {
		return engine.Invite{}, err
	}
	if err := s.store.PutInvite(inv); err != nil {
		return engine.Invite{}, err
	}
	s.log.Info("invite created", "expires", inv.Expires)
	return inv, nil
}

// newInvite makes an invite for v with a fresh token, without storing it.
func (s *Service) newInvite(v engine.Visit, ttl time.Duration) (engine.Invite, error) {
	if !v.Treatment.Valid() {
		return engine.Invite{}, fmt.Errorf("service: unknown treatment %q (want acupuncture, electroacupuncture or dry_needling)", v.Treatment)
	}
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return engine.Invite{}, err
	}
	now := s.clock.Now()
	return engine.Invite{Token: base64.RawURLEncoding.EncodeToString(b[:]), Visit: v, Created: now, Expires: now.Add(ttl)}, nil
}
