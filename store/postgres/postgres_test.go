package postgres_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
	"github.com/aftercare-clinic/aftercare/store/storage"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, dsn, instance string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Instance: instance})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// queue stores one patient step that queues msgs replies to the patient.
func queue(t *testing.T, s *postgres.Store, p engine.PatientID, msgs int) {
	t.Helper()
	if _, err := s.Apply(context.Background(), storage.Step{Patient: p, Now: t0}, func(in storage.Input) (engine.Result, error) {
		st := in.State
		st.Patient = p
		r := engine.Result{State: st}
		for range msgs {
			r.Messages = append(r.Messages, engine.Outbound{To: p, Kind: engine.KindReply, Text: "hi"})
		}
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestOpenErrorsNameTheSetting checks the two start-up errors an operator
// meets: a server that cannot be reached, and a schema newer than the binary.
func TestOpenErrorsNameTheSetting(t *testing.T) {
	ctx := context.Background()
	_, err := postgres.Open(ctx, postgres.Options{DSN: "host=" + t.TempDir() + " user=x dbname=x sslmode=disable", ConnectTimeout: 5 * time.Second})
	if !errors.Is(err, postgres.ErrUnreachable) || !strings.Contains(err.Error(), postgres.DSNEnv) {
		t.Fatalf("unreachable server: %v, want ErrUnreachable naming %s", err, postgres.DSNEnv)
	}
	if _, err := postgres.Open(ctx, postgres.Options{}); err == nil || !strings.Contains(err.Error(), postgres.DSNEnv) {
		t.Fatalf("empty DSN: %v, want an error naming %s", err, postgres.DSNEnv)
	}
	dsn := pgtest.DSN(t)
	s := open(t, dsn, "a")
	s.Close()
	exec(t, dsn, `INSERT INTO aftercare_schema (version, name) VALUES ($1, 'from the future')`, postgres.SchemaVersion+1)
	_, err = postgres.Open(ctx, postgres.Options{DSN: dsn})
	want := []string{"schema version " + strconv.Itoa(postgres.SchemaVersion+1), "up to " + strconv.Itoa(postgres.SchemaVersion)}
	if !errors.Is(err, postgres.ErrSchema) || !strings.Contains(err.Error(), want[0]) || !strings.Contains(err.Error(), want[1]) {
		t.Fatalf("newer schema: %v, want ErrSchema naming both versions", err)
	}
}

// TestInstancesStartingTogetherMigrateOnce opens four stores on an empty
// database at once: the advisory lock lets one migrate, the others find
// the schema in place.
func TestInstancesStartingTogetherMigrateOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
			if err == nil {
				s.Close()
			}
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	conn.QueryRow(context.Background(), `SELECT count(*) FROM aftercare_schema`).Scan(&n)
	if n != postgres.SchemaVersion {
		t.Fatalf("%d schema rows, want %d", n, postgres.SchemaVersion)
	}
}

// TestOutboxClaimsLeaseAndTakeover checks the outbox's claims: what one
// instance claimed, another does not send (nor anything else to that
// chat, keeping its order); when the claimant dies its lease runs out and
// another instance sends the messages; a clean Close hands them over at once.
func TestOutboxClaimsLeaseAndTakeover(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn, "a"), open(t, dsn, "b")
	queue(t, a, "telegram:1", 2)
	queue(t, a, "telegram:2", 1)
	got, err := a.OutboxScan("telegram", 1, 100, nil)
	if err != nil || len(got) != 1 || got[0].To != "telegram:1" {
		t.Fatalf("a claims %v %v", got, err)
	}
	// b may not take telegram:1's second message while a holds its first.
	other, _ := b.Outbox("telegram", 10)
	if len(other) != 1 || other[0].To != "telegram:2" {
		t.Fatalf("b got %v, want only telegram:2's message", other)
	}
	// a sees its own claim again (a failed send is retried by it).
	again, _ := a.Outbox("telegram", 10)
	if len(again) != 2 || again[0].ID != got[0].ID || again[1].To != "telegram:1" {
		t.Fatalf("a's second scan %v", again)
	}
	// a is killed: nothing happens until its lease runs out.
	if n, _ := b.Outbox("telegram", 10); len(n) != 1 {
		t.Fatalf("b took a's live claims: %v", n)
	}
	exec(t, dsn, `UPDATE outbox SET lease_until = now() - interval '1 second' WHERE claimed_by = 'a'`) // the lease ran out
	taken, _ := b.Outbox("telegram", 10)
	if len(taken) != 3 {
		t.Fatalf("after a's lease ran out b has %v, want all three", taken)
	}
	if err := b.Delivered(taken...); err != nil {
		t.Fatal(err)
	}
	// A clean Close releases claims at once.
	queue(t, a, "telegram:3", 1)
	if c, _ := a.Outbox("telegram", 10); len(c) != 1 {
		t.Fatalf("a claims %v", c)
	}
	a.Close()
	if c, _ := b.Outbox("telegram", 10); len(c) != 1 || c[0].To != "telegram:3" {
		t.Fatalf("after a closed, b has %v", c)
	}
}

// TestDueTimersSharedBetweenInstances checks that two instances asking at
// once for due timers get disjoint sets, and that a dead instance's claims
// pass to another when its lease runs out.
func TestDueTimersSharedBetweenInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn, "a"), open(t, dsn, "b")
	for i := range 6 {
		p := engine.PatientID("telegram:" + strconv.Itoa(i))
		if _, err := a.Apply(context.Background(), storage.Step{Patient: p, Now: t0}, func(in storage.Input) (engine.Result, error) {
			st := in.State
			st.Patient = p
			return engine.Result{State: st, Timers: []engine.Timer{{Key: "checkin:24", At: t0.Add(time.Duration(i) * time.Minute)}}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	da, _ := a.DueBefore(t0.Add(time.Hour), 4)
	db, _ := b.DueBefore(t0.Add(time.Hour), 4)
	if len(da) != 4 || len(db) != 2 || da[0].Patient != "telegram:0" || db[0].Patient != "telegram:4" {
		t.Fatalf("a got %v, b got %v; want the first four and the last two", da, db)
	}
	if next, ok, _ := b.NextDue(); !ok || next.Patient != "telegram:4" {
		t.Fatalf("b's next due %v: a's claims belong to a", next)
	}
	exec(t, dsn, `UPDATE timers SET lease_until = now() - interval '1 second' WHERE claimed_by = 'a'`) // a died
	if again, _ := b.DueBefore(t0.Add(time.Hour), 10); len(again) != 6 {
		t.Fatalf("after a's lease ran out b has %v, want all six", again)
	}
}

// TestOutboxClaimsOneInstancePerChat has two instances claim from one
// outbox at the same moment, round after round: however their scans
// interleave, a chat's queued messages are all claimed by one of them
// (so they go out in order), and no message is claimed twice. A message
// neither could claim in the race (its chat's first message went to the
// other) is claimed at the next scans, by the chat's holder.
func TestOutboxClaimsOneInstancePerChat(t *testing.T) {
	dsn := pgtest.DSN(t)
	insts := []*postgres.Store{open(t, dsn, "a"), open(t, dsn, "b")}
	for round := range 20 {
		for c := range 12 {
			queue(t, insts[0], engine.PatientID("telegram:"+strconv.Itoa(round*100+c)), 3)
		}
		got := make([][]engine.Outbound, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, s := range insts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = s.OutboxScan("telegram", 100, 4096, nil)
			}()
		}
		wg.Wait()
		owner := map[engine.PatientID]int{}
		check := func(i int, ms []engine.Outbound) {
			t.Helper()
			for _, m := range ms {
				if o, ok := owner[m.To]; ok && o != i {
					t.Fatalf("round %d: %s's messages claimed by both instances", round, m.To)
				}
				owner[m.To] = i
			}
		}
		for i := range got {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			check(i, got[i])
		}
		// The next scans return each instance's claims again and what
		// the race left: by then every message is claimed, once.
		seen := map[uint64]bool{}
		for i, s := range insts {
			again, err := s.OutboxScan("telegram", 100, 4096, nil)
			if err != nil {
				t.Fatal(err)
			}
			check(i, again)
			for _, m := range again {
				if seen[m.ID] {
					t.Fatalf("round %d: message %d claimed by both instances", round, m.ID)
				}
				seen[m.ID] = true
			}
			if err := s.Delivered(again...); err != nil {
				t.Fatal(err)
			}
		}
		if len(seen) != 12*3 {
			t.Fatalf("round %d: %d of %d messages claimed", round, len(seen), 12*3)
		}
	}
}

// TestOutboxScanLeavesALockedChat checks the step that keeps a chat's
// messages together when two instances claim at once: a message locked
// by another transaction (another instance claiming it right now) is
// left out, and so is every later message to the same chat, which must
// not go out before it.
func TestOutboxScanLeavesALockedChat(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, dsn, "a")
	queue(t, a, "telegram:1", 3)
	queue(t, a, "telegram:2", 2)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM outbox WHERE to_id = 'telegram:1' ORDER BY id LIMIT 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	got, err := a.OutboxScan("telegram", 100, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		if m.To == "telegram:1" {
			t.Fatalf("claimed %v: telegram:1's later messages overtook its first, locked elsewhere", got)
		}
	}
	if len(got) != 2 {
		t.Fatalf("claimed %v, want telegram:2's two messages", got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.OutboxScan("telegram", 100, 4096, nil); len(got) != 5 {
		t.Fatalf("after the lock ended: %v, want all five", got)
	}
}
