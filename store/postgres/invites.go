package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// useInvite marks the invite the step presented as used by its patient:
// the invite is read from tx at once, its update goes to w.
func useInvite(ctx context.Context, tx dbtx, w *rows, st storage.Step) error {
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT body FROM invites WHERE token = $1`, st.Invite).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var inv engine.Invite
	if json.Unmarshal(raw, &inv) != nil {
		return nil
	}
	inv.UsedBy, inv.UsedAt = st.Patient, st.Now
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	w.exec(`UPDATE invites SET body = $2, used_by = $3 WHERE token = $1`, st.Invite, b, string(st.Patient))
	return nil
}

// resolveInvite looks up an invite token, locking it so two patients
// presenting the same token at once cannot both use it.
func resolveInvite(ctx context.Context, tx dbtx, token string, now time.Time) (engine.InviteResult, error) {
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT body FROM invites WHERE token = $1 FOR UPDATE`, token).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return engine.InviteResult{Status: engine.InviteUnknown}, nil
	}
	if err != nil {
		return engine.InviteResult{}, err
	}
	var inv engine.Invite
	if err := json.Unmarshal(raw, &inv); err != nil {
		return engine.InviteResult{Status: engine.InviteUnknown}, nil
	}
	switch {
	case inv.UsedBy != "":
		return engine.InviteResult{Status: engine.InviteUsed}, nil
	case !now.Before(inv.Expires):
		return engine.InviteResult{Status: engine.InviteExpired}, nil
	}
	v := inv.Visit
	return engine.InviteResult{Status: engine.InviteOK, Visit: &v}, nil
}

// PutInvite stores a new invite; an existing token is never overwritten.
func (s *Store) PutInvite(inv engine.Invite) error {
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(context.Background(), `INSERT INTO invites (token, used_by, body) VALUES ($1, $2, $3) ON CONFLICT (token) DO NOTHING`,
		inv.Token, string(inv.UsedBy), b)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errors.New("invite token collision")
	}
	return nil
}
