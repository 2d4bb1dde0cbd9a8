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

// InvitePayload returns the invite token of a "/start TOKEN" deep link, or
// "" when the text is not one. Tokens are 1-64 characters of A-Z a-z 0-9 _ -.
func InvitePayload(text string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), "/start ")
	if !ok {
		return ""
	}
	rest = strings.TrimSpace(rest)
	if len(rest) == 0 || len(rest) > 64 {
		return ""
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return ""
		}
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
