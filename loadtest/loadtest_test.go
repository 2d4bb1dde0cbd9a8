package loadtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/store"
)

// fixtureDir holds the timer stores the benchmarks build once per process.
var fixtureDir string

func TestMain(m *testing.M) {
	// A ResumeChild started by TestLoadShort re-runs this binary.
	if ok, err := ServeResumeChild(context.Background()); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "aftercare-loadtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestLoadShort runs every scenario at CI size in well under a minute and
// asserts what is true on any machine, however busy: no message is lost or
// applied twice, every timer is stored and found without scanning, and the
// burst arrives whole without a single 429 (so never faster than the
// platform allows). Speeds and latencies are logged, never asserted here: a
// unit test on a shared 2-core CI machine measures its neighbours. The
// speed figures, and their gates, come from cmd/aftercare-load.
func TestLoadShort(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	a, err := GroupCommit(ctx, ThroughputConfig{Dir: dir, Patients: 1000, Messages: 8000, Senders: 128})
	if err != nil {
		t.Fatal(err)
	}
	b, err := TxPerMessage(ctx, ThroughputConfig{Dir: dir, Patients: 1000, Messages: 800, Senders: 128})
	if err != nil {
		t.Fatal(err)
	}
	_, ratio := CommitRatio(a, b)
	t.Logf("a: %.0f msg/s, %v; b: %.0f msg/s; a/b %s", a.PerSecond, a.Latency, b.PerSecond, ratio)
	requireCorrect(t, a, "every step committed once", "every message answered")
	requireCorrect(t, b, "every step committed once", "every message answered")

	c, err := Paced(ctx, PacedConfig{Dir: dir, Patients: 2000, Rate: 500, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("c: %v", c.Latency)
	requireCorrect(t, c, "every step committed once", "every message answered")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Timers(ctx, TimersConfig{Dir: dir, Timers: 20000, Small: 2000, Resume: ResumeChild(exe)})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range d.Figures {
		t.Logf("d: %s: %.2f %s", f.Name, f.Value, f.Unit)
	}
	requireCorrect(t, d, "all timers stored", "memory after resume (peak RSS)")

	e, err := Burst(ctx, BurstConfig{Dir: dir, Checkins: 250})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("e: %.2f msg/s", e.PerSecond)
	requireCorrect(t, e, "429 from the fake Bot API", "every check-in delivered once")
}

// requireCorrect fails the test when one of the named checks of r failed
// or is missing.
func requireCorrect(t *testing.T, r Result, names ...string) {
	t.Helper()
	for _, n := range names {
		found := false
		for _, c := range r.Checks {
			if c.Name == n {
				found = true
				if !c.OK {
					t.Errorf("scenario %s: %s: got %s, want %s", r.Scenario, n, c.Got, c.Target)
				}
			}
		}
		if !found {
			t.Errorf("scenario %s: no check %q", r.Scenario, n)
		}
	}
}

func TestSimRepliesAreAnswers(t *testing.T) {
	// The mix must drive real conversations: a readiness exchange ends in
	// advice, not in "I didn't catch an answer".
	dir := t.TempDir()
	p, err := Start(context.Background(), Options{Path: filepath.Join(dir, "sim.db"), Store: store.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := Enroll(context.Background(), p.Service, 50, 8, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	sim := NewSim(7)
	for range 20 {
		for i := range 50 {
			if err := p.Service.Receive(context.Background(), sim.Next(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, err := p.Store.OutboxAll(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	notAnswer, alerts := 0, 0
	for _, m := range out {
		if m.Kind == "alert" {
			alerts++
		}
		if len(m.Text) >= 30 && m.Text[:30] == "I didn't catch an answer there" {
			notAnswer++
		}
	}
	if notAnswer > 0 {
		t.Errorf("%d replies say the patient's answer was not understood; the mix is out of step with the protocol", notAnswer)
	}
	if alerts == 0 {
		t.Errorf("no staff alert in 1000 messages; the mix should hold a few red flags")
	}
}

// benchReceive measures Service.Receive from 128 goroutines per CPU (256 on
// the 2-core reference machine, as many as the load command's senders),
// each playing its own patients, with the store opened with so.
func benchReceive(b *testing.B, so store.Options) {
	ctx := context.Background()
	p, err := Start(ctx, Options{Path: filepath.Join(b.TempDir(), "bench.db"), Store: so})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	const patients = 10000
	if err := Enroll(ctx, p.Service, patients, 256, time.Now().Add(-2*time.Hour)); err != nil {
		b.Fatal(err)
	}
	const parallelism = 128
	goroutines := parallelism * runtime.GOMAXPROCS(0)
	var gid atomic.Int64
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		g := int(gid.Add(1) - 1)
		sim := NewSim(uint64(1000 + g))
		mine := max(1, (patients-g+goroutines-1)/goroutines)
		for turn := 0; pb.Next(); turn++ {
			if err := p.Service.Receive(ctx, sim.Next(g+(turn%mine)*goroutines)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if cs := p.Store.CommitStats(); cs.Commits > 0 {
		b.ReportMetric(float64(cs.Writes)/float64(cs.Commits), "writes/commit")
	}
}

// BenchmarkReceiveGroupCommit is scenario a as a benchmark: production
// store options, fsync on, steps of concurrent patients sharing commits.
func BenchmarkReceiveGroupCommit(b *testing.B) { benchReceive(b, store.Options{}) }

// BenchmarkReceiveTxPerMessage is scenario b: one transaction and fsync per step.
func BenchmarkReceiveTxPerMessage(b *testing.B) { benchReceive(b, store.Options{MaxBatchSize: 1}) }

var (
	fixtureMu sync.Mutex
	fixtures  = map[int]string{}
)

// timerFixture builds a store of n timers once per process.
func timerFixture(b *testing.B, n int) string {
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if p, ok := fixtures[n]; ok {
		return p
	}
	p := filepath.Join(fixtureDir, fmt.Sprintf("timers-%d.db", n))
	t := time.Now()
	if err := BuildTimers(context.Background(), p, n, time.Now()); err != nil {
		b.Fatal(err)
	}
	b.Logf("built a store of %d timers in %s", n, time.Since(t).Round(time.Millisecond))
	fixtures[n] = p
	return p
}

// BenchmarkNextDue finds the next due check-in in stores of 10k and 1M
// scheduled check-ins; the time per op must not grow with the size. The
// stores are built once per process (the 1M one takes a minute or so).
func BenchmarkNextDue(b *testing.B) {
	for _, n := range []int{10000, 1000000} {
		b.Run(fmt.Sprintf("timers=%d", n), func(b *testing.B) {
			path := timerFixture(b, n)
			st, err := store.Open(path, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, ok, err := st.NextDue(); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
