package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/lease"
	"github.com/aftercare-clinic/aftercare/store/postgres"
	"github.com/aftercare-clinic/aftercare/store/postgres/pgtest"
)

var _ lease.Table = (*postgres.Store)(nil)

// TestLeases walks one lease through its life on the real server: taken,
// refused to another, renewed, expired (by moving its expiry into the
// past, the server's clock deciding), taken over with a new epoch, the old
// holder's renewal refused, released and taken at once.
func TestLeases(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	a, b := open(t, dsn, "a"), open(t, dsn, "b")
	stores := map[string]*postgres.Store{"a": a, "b": b}
	const name = "clinic/default/telegram"
	expire := func() {
		exec(t, dsn, `UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = $1`, name)
	}
	type op struct {
		do      string // acquire, renew, release, expire
		who     string
		epoch   int64 // for renew and release; the epoch expected from acquire
		wantOK  bool
		comment string
	}
	steps := []op{
		{do: "acquire", who: "a", epoch: 1, wantOK: true, comment: "free: a takes it"},
		{do: "acquire", who: "b", wantOK: false, comment: "held by a"},
		{do: "acquire", who: "a", epoch: 1, wantOK: true, comment: "a again: same epoch"},
		{do: "renew", who: "a", epoch: 1, wantOK: true},
		{do: "renew", who: "b", epoch: 1, wantOK: false, comment: "b never held it"},
		{do: "expire"},
		{do: "renew", who: "a", epoch: 1, wantOK: false, comment: "expired: a learns it lost the lease"},
		{do: "acquire", who: "b", epoch: 2, wantOK: true, comment: "expired: b takes over, new epoch"},
		{do: "renew", who: "a", epoch: 1, wantOK: false, comment: "a's old epoch is fenced off"},
		{do: "release", who: "a", epoch: 1, comment: "a stale release changes nothing"},
		{do: "acquire", who: "a", wantOK: false, comment: "still b's"},
		{do: "release", who: "b", epoch: 2},
		{do: "acquire", who: "a", epoch: 3, wantOK: true, comment: "released: a takes it at once"},
	}
	for i, s := range steps {
		st := stores[s.who]
		switch s.do {
		case "acquire":
			epoch, ok, err := st.AcquireLease(ctx, name, 10*time.Second)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if ok != s.wantOK || (ok && epoch != s.epoch) {
				t.Fatalf("step %d (%s): acquire by %s = epoch %d ok %v, want epoch %d ok %v", i, s.comment, s.who, epoch, ok, s.epoch, s.wantOK)
			}
		case "renew":
			ok, err := st.RenewLease(ctx, name, s.epoch, 10*time.Second)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if ok != s.wantOK {
				t.Fatalf("step %d (%s): renew by %s = %v, want %v", i, s.comment, s.who, ok, s.wantOK)
			}
		case "release":
			if err := st.ReleaseLease(ctx, name, s.epoch); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		case "expire":
			expire()
		}
	}
	ls, err := a.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0] != (postgres.LeaseHolder{Name: name, Holder: "a", Epoch: 3, Live: true}) {
		t.Fatalf("leases %+v", ls)
	}
}
