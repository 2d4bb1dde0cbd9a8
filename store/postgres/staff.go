package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// ApplyStaff commits a staff command's invite, answers and update key in
// one transaction, once per key: when the key was already committed (the
// platform redelivered the update, or two instances raced) it commits
// nothing and returns false, so a redelivered /visit never creates a second
// invite. The key is inserted first, so of two racing instances one waits
// on the other's row and then finds it.
func (s *Store) ApplyStaff(ctx context.Context, st storage.StaffStep) (bool, error) {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if st.Dedupe != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO dedupe (key, at_ns) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, st.Dedupe, ns(st.Now))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errSkip
			}
		}
		if inv := st.Invite; inv != nil {
			b, err := json.Marshal(inv)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO invites (token, used_by, body) VALUES ($1, $2, $3) ON CONFLICT (token) DO NOTHING`,
				inv.Token, string(inv.UsedBy), b)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errors.New("invite token collision")
			}
		}
		var w rows
		if err := putOutbound(&w, append([]engine.Outbound(nil), st.Messages...), nil); err != nil {
			return err
		}
		return w.flush(ctx, tx)
	})
}
