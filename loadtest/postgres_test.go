package loadtest

import (
	"context"
	"testing"
	"time"
)

// TestLoadPostgresShort runs the PostgreSQL scenarios of aftercare-load
// -store postgres at CI size on a throwaway durable server (never the
// server AFTERCARE_POSTGRES_DSN names) and asserts what holds on any
// machine: with one and with two instances on one database every message
// is applied once, in order, and answered; the paced load and the burst
// lose nothing; the burst arrives whole with no 429. Speeds are logged,
// not asserted (see TestLoadShort). Without PostgreSQL's binaries it
// fails, naming the package to install.
func TestLoadPostgresShort(t *testing.T) {
	ctx := context.Background()
	be, err := PostgresBackend("")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := be.Close(); err != nil {
			t.Error(err)
		}
	}()
	dir := t.TempDir()

	pg, err := PostgresCeilings(ctx, PostgresCeilingConfig{Backend: be, Duration: 500 * time.Millisecond, Workers: 4, Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range pg.Figures {
		t.Logf("pg: %s: %.0f %s", f.Name, f.Value, f.Unit)
	}
	for _, n := range []int{1, 2} {
		a, err := Instances(ctx, ThroughputConfig{Dir: dir, Patients: 300, Messages: 1500, Senders: 32, Backend: be}, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("a, %d instance(s): %.0f msg/s, %v", n, a.PerSecond, a.Latency)
		requireCorrect(t, a, "every step committed once, in order", "every message answered")
	}
	c, err := Paced(ctx, PacedConfig{Dir: dir, Patients: 300, Rate: 200, Duration: time.Second, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("c: %v", c.Latency)
	requireCorrect(t, c, "every step committed once", "every message answered")

	e, err := Burst(ctx, BurstConfig{Dir: dir, Checkins: 100, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("e: %.2f msg/s", e.PerSecond)
	requireCorrect(t, e, "429 from the fake Bot API", "every check-in delivered once")
}
