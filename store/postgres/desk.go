package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// This file is what the staff desk (package desk) needs of the store
// beyond the service's: the patients' encoded states for its lists, its
// one-time sign-in links, and the invites not used yet. It mirrors the
// bbolt store's store/desk.go.

// PatientStatesRaw calls fn with every stored patient's ID and encoded
// state, in ID order, without decoding them (the desk decodes only those
// that changed since its last walk). raw is valid only during fn. Escalation
// ladders are not patients and are not listed.
func (s *Store) PatientStatesRaw(fn func(id engine.PatientID, raw []byte) error) error {
	rows, err := s.pool.Query(context.Background(), `SELECT id, state FROM patients WHERE state IS NOT NULL AND id NOT LIKE 'escalation:%' ORDER BY id`)
	if err != nil {
		return err
	}
	var id string
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &raw}, func() error { return fn(engine.PatientID(id), raw) })
	return err
}

// PutDeskLogin stores a sign-in link under its token's hash, and drops
// links that expired more than a day before now (used or not).
func (s *Store) PutDeskLogin(ctx context.Context, hash []byte, l storage.DeskLogin, now time.Time) error {
	v, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT hash, body FROM desk_logins`)
		if err != nil {
			return err
		}
		var old [][]byte
		var h, body []byte
		if _, err := pgx.ForEachRow(rows, []any{&h, &body}, func() error {
			var x storage.DeskLogin
			if json.Unmarshal(body, &x) != nil || x.Expires.Before(now.Add(-24*time.Hour)) {
				old = append(old, bytes.Clone(h))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			if _, err := tx.Exec(ctx, `DELETE FROM desk_logins WHERE hash = $1`, k); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO desk_logins (hash, body) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING`, hash, v)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errors.New("sign-in token collision")
		}
		return nil
	})
	return err
}

// UseDeskLogin marks the link with this token hash as used and returns it,
// under the row's lock, so two requests (or two instances) racing with one
// link cannot both succeed. Errors: storage.ErrLoginUnknown,
// storage.ErrLoginExpired, storage.ErrLoginUsed.
func (s *Store) UseDeskLogin(ctx context.Context, hash []byte, now time.Time) (storage.DeskLogin, error) {
	var l storage.DeskLogin
	_, err := s.tx(ctx, func(tx pgx.Tx) error {
		var raw []byte
		err := tx.QueryRow(ctx, `SELECT body FROM desk_logins WHERE hash = $1 FOR UPDATE`, hash).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrLoginUnknown
		}
		if err != nil {
			return err
		}
		l = storage.DeskLogin{}
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("%w: unreadable record", storage.ErrLoginUnknown)
		}
		switch {
		case !l.Used.IsZero():
			return storage.ErrLoginUsed
		case !now.Before(l.Expires):
			return storage.ErrLoginExpired
		}
		l.Used = now
		v, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE desk_logins SET body = $2 WHERE hash = $1`, hash, v)
		return err
	})
	return l, err
}

// OpenInvites returns the invites no patient has used yet and that are
// still valid at now, oldest visit first.
func (s *Store) OpenInvites(now time.Time) ([]engine.Invite, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT body FROM invites WHERE used_by = ''`)
	if err != nil {
		return nil, err
	}
	var out []engine.Invite
	var raw []byte
	if _, err := pgx.ForEachRow(rows, []any{&raw}, func() error {
		var inv engine.Invite
		if json.Unmarshal(raw, &inv) == nil && inv.UsedBy == "" && now.Before(inv.Expires) {
			out = append(out, inv)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Visit.At.Before(out[j].Visit.At) })
	return out, nil
}

// PutDeskSession stores a new staff desk session under its ID's hash (never
// the ID). A hash already stored is an error.
func (s *Store) PutDeskSession(ctx context.Context, hash []byte, ds storage.DeskSession) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO desk_sessions (hash, staff, name, csrf, created_ns, seen_ns)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING`,
		hash, ds.Staff, ds.Name, ds.CSRF, ns(ds.Created), ns(ds.Seen))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errors.New("desk session collision")
	}
	return nil
}

// DeskSession returns the session with this ID hash, expired or not: the
// desk decides whether it still stands. Errors: storage.ErrSessionUnknown.
func (s *Store) DeskSession(ctx context.Context, hash []byte) (storage.DeskSession, error) {
	var ds storage.DeskSession
	var created, seen int64
	err := s.pool.QueryRow(ctx, `SELECT staff, name, csrf, created_ns, seen_ns FROM desk_sessions WHERE hash = $1`, hash).
		Scan(&ds.Staff, &ds.Name, &ds.CSRF, &created, &seen)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.DeskSession{}, storage.ErrSessionUnknown
	}
	if err != nil {
		return storage.DeskSession{}, err
	}
	ds.Created, ds.Seen = fromNS(created), fromNS(seen)
	return ds, nil
}

// TouchDeskSession records that the session was used at seen. It only
// moves the time forward (instances touching at once keep the later one)
// and does nothing for a session that is gone, so it never brings back a
// session signed out on another instance.
func (s *Store) TouchDeskSession(ctx context.Context, hash []byte, seen time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE desk_sessions SET seen_ns = $2 WHERE hash = $1 AND seen_ns < $2`, hash, ns(seen))
	return err
}

// DeleteDeskSession ends the session with this ID hash on every instance
// at once. Deleting a session that is gone is not an error.
func (s *Store) DeleteDeskSession(ctx context.Context, hash []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM desk_sessions WHERE hash = $1`, hash)
	return err
}

// DeleteStaffDeskSessions ends every session of one staff member and
// returns how many there were.
func (s *Store) DeleteStaffDeskSessions(ctx context.Context, staff string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM desk_sessions WHERE staff = $1`, staff)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// PruneDeskSessions deletes the sessions last seen before seenBefore or
// started before createdBefore, and returns how many it deleted.
func (s *Store) PruneDeskSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM desk_sessions WHERE seen_ns < $1 OR created_ns < $2`, ns(seenBefore), ns(createdBefore))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
