package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// rows collects the rows a transaction writes, table by table, and writes
// each table's rows with one statement when flushed (an INSERT or DELETE
// over unnest of one array per column). A group of a hundred steps writes
// a few hundred rows; sent one statement per row, the server's work per
// statement (bind, plan, execute) was most of the group's time, so rows
// costs a dozen statements per transaction whatever its size, all sent in
// one round trip. Rows of ordered tables (outbox, audit, transcript,
// visits) get their IDs in the order added.
//
// A timer set or deleted twice in one transaction ends as the last of its
// changes said, as if each had run in turn.
type rows struct {
	patients struct {
		id            []string
		state         [][]byte
		active, visit []*int64
	}
	timers      map[timerID]int // index in timerOps of the key's last change
	timerOps    []timerOp
	escalations struct {
		id      []int64
		patient []string
		body    [][]byte
	}
	outbox struct {
		platform, dest, to, about []string
		priority                  []int16
		body                      [][]byte
	}
	audit, transcript struct {
		patient []string
		body    [][]byte
	}
	visits struct {
		patient []string
		at      []int64
		body    [][]byte
	}
	dedupe struct {
		key []string
		at  []int64
	}
	// after are statements of their own, run after the tables' (an
	// invite used, the rows a group created for nothing).
	after []stmt
}

// timerID names one timer: its owner's kind, owner and key.
type timerID struct{ kind, owner, key string }

// timerOp is the last change of one timer in a transaction: set to due,
// or deleted (del): then due is the due time it is deleted at, or -1 for
// any.
type timerOp struct {
	id  timerID
	due int64
	del bool
}

type stmt struct {
	sql  string
	args []any
}

func (w *rows) patient(id string, state []byte, active, visit *int64) {
	p := &w.patients
	p.id, p.state, p.active, p.visit = append(p.id, id), append(p.state, state), append(p.active, active), append(p.visit, visit)
}

// timer records a change of one timer (see timerOp).
func (w *rows) timer(id timerID, due int64, del bool) {
	if w.timers == nil {
		w.timers = map[timerID]int{}
	}
	op := timerOp{id, due, del}
	if i, ok := w.timers[id]; ok {
		w.timerOps[i] = op
		return
	}
	w.timers[id] = len(w.timerOps)
	w.timerOps = append(w.timerOps, op)
}

func (w *rows) escalation(id int64, patient string, body []byte) {
	e := &w.escalations
	e.id, e.patient, e.body = append(e.id, id), append(e.patient, patient), append(e.body, body)
}

func (w *rows) message(platform string, priority int16, dest, to, about string, body []byte) {
	o := &w.outbox
	o.platform, o.priority, o.dest = append(o.platform, platform), append(o.priority, priority), append(o.dest, dest)
	o.to, o.about, o.body = append(o.to, to), append(o.about, about), append(o.body, body)
}

func (w *rows) auditLine(patient string, body []byte) {
	w.audit.patient, w.audit.body = append(w.audit.patient, patient), append(w.audit.body, body)
}

func (w *rows) transcriptLine(patient string, body []byte) {
	w.transcript.patient, w.transcript.body = append(w.transcript.patient, patient), append(w.transcript.body, body)
}

func (w *rows) visit(patient string, at int64, body []byte) {
	v := &w.visits
	v.patient, v.at, v.body = append(v.patient, patient), append(v.at, at), append(v.body, body)
}

func (w *rows) dedupeKey(key string, at int64) {
	w.dedupe.key, w.dedupe.at = append(w.dedupe.key, key), append(w.dedupe.at, at)
}

// exec adds a statement of its own, run after the tables' rows.
func (w *rows) exec(sql string, args ...any) { w.after = append(w.after, stmt{sql, args}) }

// flush writes everything collected in tx, in one round trip, and reports
// the first error.
func (w *rows) flush(ctx context.Context, tx dbtx) error {
	b := w.batch()
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// batch returns the statements that write everything collected.
func (w *rows) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if p := w.patients; len(p.id) > 0 {
		b.Queue(`INSERT INTO patients (id, state, last_active_ns, visit_ns)
			SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::bigint[])
			ON CONFLICT (id) DO UPDATE SET state = excluded.state,
				last_active_ns = excluded.last_active_ns, visit_ns = excluded.visit_ns`,
			p.id, p.state, p.active, p.visit)
	}
	var del, set struct {
		kind, owner, key []string
		due              []int64
	}
	for _, op := range w.timerOps {
		t := &set
		if op.del {
			t = &del
		}
		t.kind, t.owner, t.key, t.due = append(t.kind, op.id.kind), append(t.owner, op.id.owner), append(t.key, op.id.key), append(t.due, op.due)
	}
	if len(del.key) > 0 {
		b.Queue(`DELETE FROM timers t
			USING unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS d (owner_kind, owner, key, due_ns)
			WHERE t.owner_kind = d.owner_kind AND t.owner = d.owner AND t.key = d.key
				AND (d.due_ns < 0 OR t.due_ns = d.due_ns)`,
			del.kind, del.owner, del.key, del.due)
	}
	if len(set.key) > 0 {
		b.Queue(`INSERT INTO timers (owner_kind, owner, key, due_ns)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
			ON CONFLICT (owner_kind, owner, key) DO UPDATE SET due_ns = excluded.due_ns, claimed_by = NULL, lease_until = NULL`,
			set.kind, set.owner, set.key, set.due)
	}
	if e := w.escalations; len(e.id) > 0 {
		b.Queue(`INSERT INTO escalations (id, patient, body)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[])`,
			e.id, e.patient, e.body)
	}
	if o := w.outbox; len(o.body) > 0 {
		b.Queue(`INSERT INTO outbox (platform, priority, dest, to_id, about, body)
			SELECT platform, priority, dest, to_id, about, body
			FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::bytea[])
				WITH ORDINALITY AS m (platform, priority, dest, to_id, about, body, n)
			ORDER BY n`,
			o.platform, o.priority, o.dest, o.to, o.about, o.body)
	}
	if a := w.audit; len(a.body) > 0 {
		b.Queue(`INSERT INTO audit (patient, body)
			SELECT patient, body FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS a (patient, body, n)
			ORDER BY n`,
			a.patient, a.body)
	}
	if t := w.transcript; len(t.body) > 0 {
		b.Queue(`INSERT INTO transcript (patient, body)
			SELECT patient, body FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS t (patient, body, n)
			ORDER BY n`,
			t.patient, t.body)
	}
	if v := w.visits; len(v.body) > 0 {
		b.Queue(`INSERT INTO visits (patient, at_ns, body)
			SELECT patient, at_ns, body FROM unnest($1::text[], $2::bigint[], $3::bytea[]) WITH ORDINALITY AS v (patient, at_ns, body, n)
			ORDER BY n`,
			v.patient, v.at, v.body)
	}
	if d := w.dedupe; len(d.key) > 0 {
		b.Queue(`INSERT INTO dedupe (key, at_ns)
			SELECT * FROM unnest($1::text[], $2::bigint[])
			ON CONFLICT (key) DO UPDATE SET at_ns = excluded.at_ns`,
			d.key, d.at)
	}
	for _, s := range w.after {
		b.Queue(s.sql, s.args...)
	}
	return b
}
