package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

// ImportReport is the outcome of Import: the records of each kind in the
// bbolt database and in PostgreSQL afterwards, by bbolt bucket name, and
// the checksum of each kind on both sides (see checksum.go).
type ImportReport struct {
	Source, Target map[string]int
	// SourceSum and TargetSum are the checksums, in hex, by bucket name.
	SourceSum, TargetSum map[string]string
}

// String formats the report for people, one line per kind.
func (r ImportReport) String() string {
	names := make([]string, 0, len(r.Source))
	for n := range r.Source {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		sum := r.SourceSum[n]
		if t := r.TargetSum[n]; t != sum {
			sum += " != " + t
		}
		fmt.Fprintf(&b, "  %-12s bbolt %d  postgres %d  checksum %s\n", n, r.Source[n], r.Target[n], sum)
	}
	return b.String()
}

// sortedKinds returns the kinds of m in name order, so errors name the
// first kind that differs, the same one every run.
func sortedKinds(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// tables maps bbolt buckets to the query counting their rows here.
var tables = map[string]string{
	"states":        `SELECT count(*) FROM patients WHERE state IS NOT NULL`,
	"timers":        `SELECT count(*) FROM timers`,
	"outbox":        `SELECT count(*) FROM outbox`,
	"escalations":   `SELECT count(*) FROM escalations`,
	"visits":        `SELECT count(*) FROM visits`,
	"audit":         `SELECT count(*) FROM audit`,
	"dedupe":        `SELECT count(*) FROM dedupe`,
	"invites":       `SELECT count(*) FROM invites`,
	"read_marks":    `SELECT count(*) FROM read_marks`,
	"quarantine":    `SELECT count(*) FROM quarantine`,
	"transcript":    `SELECT count(*) FROM transcript`,
	"desk_logins":   `SELECT count(*) FROM desk_logins`,
	"desk_sessions": `SELECT count(*) FROM desk_sessions`,
}

// Import copies every record of the bbolt store src into this database in
// one transaction, keeping IDs (escalation numbers appear in staff
// buttons and ladder timers), and verifies that each kind of record has
// as many rows here as src has entries and the same checksum. It is
// idempotent: records already copied are left as they are, so running it
// again copies nothing new and verifies again. When a count or a checksum
// differs (this database holds other data, or rows changed since an
// earlier copy) nothing is committed. src must not change meanwhile
// (stop the bot first).
func (s *Store) Import(ctx context.Context, src *store.Store) (ImportReport, error) {
	rep := ImportReport{Target: map[string]int{}, SourceSum: map[string]string{}, TargetSum: map[string]string{}}
	var err error
	if rep.Source, err = src.Counts(); err != nil {
		return rep, err
	}
	sums, err := sourceChecksums(src)
	if err != nil {
		return rep, fmt.Errorf("import: checksums of the bbolt file: %w", err)
	}
	for name, c := range sums {
		rep.SourceSum[name] = c.String()
	}
	_, err = s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		flush := func(force bool) error {
			if b.Len() == 0 || (!force && b.Len() < 500) {
				return nil
			}
			err := tx.SendBatch(ctx, b).Close()
			b = &pgx.Batch{}
			return err
		}
		q := func(sql string, args ...any) error {
			b.Queue(sql, args...)
			return flush(false)
		}
		w := store.Walker{
			State: func(p engine.PatientID, raw []byte) error {
				var st engine.State
				var last, visit any
				if json.Unmarshal(raw, &st) == nil {
					last = nsOrNil(st.LastActive)
					if st.Visit != nil {
						visit = nsOrNil(st.Visit.At)
					}
				}
				return q(`INSERT INTO patients (id, state, last_active_ns, visit_ns) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
					string(p), append([]byte(nil), raw...), last, visit)
			},
			Timer: func(d storage.Due) error {
				kind, owner := ownerCols(d.Owner)
				return q(`INSERT INTO timers (owner_kind, owner, key, due_ns) VALUES ($1, $2, $3, $4) ON CONFLICT (owner_kind, owner, key) DO NOTHING`, kind, owner, d.Key, ns(d.At))
			},
			Outbox: func(id uint64, raw []byte) error {
				var m engine.Outbound
				if err := json.Unmarshal(raw, &m); err != nil {
					return fmt.Errorf("outbox entry %d cannot be read (run aftercare check): %w", id, err)
				}
				d := m.Destination()
				return q(`INSERT INTO outbox (id, platform, priority, dest, to_id, about, body) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
					int64(id), d.Platform(), m.Kind.Priority(), string(d), string(m.To), string(m.Patient), append([]byte(nil), raw...))
			},
			Escalation: func(id uint64, raw []byte) error {
				var e engine.Escalation
				if err := json.Unmarshal(raw, &e); err != nil {
					return fmt.Errorf("escalation %d cannot be read (run aftercare check): %w", id, err)
				}
				return q(`INSERT INTO escalations (id, patient, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, int64(id), string(e.Patient), append([]byte(nil), raw...))
			},
			Visit: func(id uint64, p engine.PatientID, raw []byte) error {
				var v engine.Visit
				if err := json.Unmarshal(raw, &v); err != nil {
					return fmt.Errorf("visit %d cannot be read: %w", id, err)
				}
				return q(`INSERT INTO visits (id, patient, at_ns, body) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`, int64(id), string(p), ns(v.At), append([]byte(nil), raw...))
			},
			Audit: func(id uint64, raw []byte) error {
				var a engine.Audit
				if err := json.Unmarshal(raw, &a); err != nil {
					return fmt.Errorf("audit line %d cannot be read: %w", id, err)
				}
				return q(`INSERT INTO audit (id, patient, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, int64(id), string(a.Patient), append([]byte(nil), raw...))
			},
			Dedupe: func(key string, at time.Time) error {
				return q(`INSERT INTO dedupe (key, at_ns) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, ns(at))
			},
			Invite: func(token string, raw []byte) error {
				var inv engine.Invite
				json.Unmarshal(raw, &inv) // an unreadable invite is copied as is: it resolves as unknown
				return q(`INSERT INTO invites (token, used_by, body) VALUES ($1, $2, $3) ON CONFLICT (token) DO NOTHING`, token, string(inv.UsedBy), append([]byte(nil), raw...))
			},
			Transcript: func(p engine.PatientID, seq uint64, raw []byte) error {
				// bbolt's sequence is global, so it keeps the order and the
				// copy keeps it as the row id: a second run finds it.
				return q(`INSERT INTO transcript (id, patient, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, int64(seq), string(p), append([]byte(nil), raw...))
			},
			DeskLogin: func(hash []byte, raw []byte) error {
				return q(`INSERT INTO desk_logins (hash, body) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING`, append([]byte(nil), hash...), append([]byte(nil), raw...))
			},
			DeskSession: func(hash []byte, ds storage.DeskSession) error {
				return q(`INSERT INTO desk_sessions (hash, staff, name, csrf, created_ns, seen_ns) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING`,
					append([]byte(nil), hash...), ds.Staff, ds.Name, ds.CSRF, ns(ds.Created), ns(ds.Seen))
			},
			ReadMark: func(p engine.PatientID, mark string) error {
				return q(`INSERT INTO read_marks (patient, mark) VALUES ($1, $2) ON CONFLICT (patient) DO NOTHING`, string(p), mark)
			},
			Quarantine: func(r storage.Quarantined) error {
				return q(`INSERT INTO quarantine (id, patient, kind, key, value, at, reason) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
					int64(r.Seq), string(r.Patient), r.Kind, r.Key, r.Value, r.At, r.Reason)
			},
		}
		if err := src.Walk(w); err != nil {
			return err
		}
		if err := flush(true); err != nil {
			return err
		}
		// New rows continue after the copied IDs.
		for _, seq := range [][2]string{{"outbox_id_seq", "outbox"}, {"visits_id_seq", "visits"}, {"audit_id_seq", "audit"},
			{"quarantine_id_seq", "quarantine"}, {"escalations_seq", "escalations"}, {"transcript_id_seq", "transcript"}} {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval('%s', coalesce((SELECT max(id) FROM %s), 0) + 1, false)`, seq[0], seq[1])); err != nil {
				return err
			}
		}
		for name, sql := range tables {
			var n int
			if err := tx.QueryRow(ctx, sql).Scan(&n); err != nil {
				return err
			}
			rep.Target[name] = n
		}
		for name := range tables {
			c, err := targetChecksum(ctx, tx, name)
			if err != nil {
				return err
			}
			rep.TargetSum[name] = c.String()
		}
		for _, name := range sortedKinds(rep.Source) {
			if n := rep.Source[name]; rep.Target[name] != n {
				return fmt.Errorf("copy not verified: %s has %d entries in bbolt and %d rows in PostgreSQL (does the database hold other data?); nothing was committed\n%s", name, n, rep.Target[name], rep)
			}
		}
		for _, name := range sortedKinds(rep.Source) {
			if rep.SourceSum[name] != rep.TargetSum[name] {
				return fmt.Errorf("copy not verified: %s has the same number of records in bbolt and PostgreSQL but a different checksum (rows changed since an earlier copy, or were copied wrong); nothing was committed\n%s", name, rep)
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("import: %w", err)
	}
	return rep, nil
}

// sourceChecksums computes the checksum of each kind of record in the
// bbolt store, by bucket name.
func sourceChecksums(src *store.Store) (map[string]checksum, error) {
	c := map[string]*checksum{}
	for name := range tables {
		c[name] = new(checksum)
	}
	err := src.Walk(store.Walker{
		State: func(p engine.PatientID, raw []byte) error { c["states"].add([]byte(p), raw); return nil },
		Timer: func(d storage.Due) error {
			kind, owner := ownerCols(d.Owner)
			c["timers"].add([]byte(kind), []byte(owner), []byte(d.Key), i64b(ns(d.At)))
			return nil
		},
		Outbox:     func(id uint64, raw []byte) error { c["outbox"].add(u64b(id), raw); return nil },
		Escalation: func(id uint64, raw []byte) error { c["escalations"].add(u64b(id), raw); return nil },
		Visit: func(id uint64, p engine.PatientID, raw []byte) error {
			c["visits"].add(u64b(id), []byte(p), raw)
			return nil
		},
		Audit:  func(id uint64, raw []byte) error { c["audit"].add(u64b(id), raw); return nil },
		Dedupe: func(key string, at time.Time) error { c["dedupe"].add([]byte(key), i64b(ns(at))); return nil },
		Invite: func(token string, raw []byte) error { c["invites"].add([]byte(token), raw); return nil },
		ReadMark: func(p engine.PatientID, mark string) error {
			c["read_marks"].add([]byte(p), []byte(mark))
			return nil
		},
		Quarantine: func(q storage.Quarantined) error {
			c["quarantine"].add(u64b(q.Seq), []byte(q.Patient), []byte(q.Kind), q.Key, q.Value, []byte(q.Reason))
			return nil
		},
		Transcript: func(p engine.PatientID, seq uint64, raw []byte) error {
			c["transcript"].add(u64b(seq), []byte(p), raw)
			return nil
		},
		DeskLogin: func(hash []byte, raw []byte) error { c["desk_logins"].add(hash, raw); return nil },
		DeskSession: func(hash []byte, ds storage.DeskSession) error {
			c["desk_sessions"].add(hash, []byte(ds.Staff), []byte(ds.Name), []byte(ds.CSRF), i64b(ns(ds.Created)), i64b(ns(ds.Seen)))
			return nil
		},
	})
	out := map[string]checksum{}
	for k, v := range c {
		out[k] = *v
	}
	return out, err
}
