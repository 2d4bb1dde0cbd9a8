// Command aftercare-load measures Aftercare's limits on this machine, the
// load figures of issue 7: it drives the whole pipeline in-process (engine,
// real triage rules, bbolt store with fsync on, scheduler, outbox
// dispatcher, the real Telegram adapter against a fake Bot API) with
// simulated patients, prints a table and a JSON summary, and exits 1 when
// a target is missed, naming it.
//
// Usage:
//
//	aftercare-load [-short] [-scenario a,b,c,d,e] [-store bbolt|postgres] [-dir DIR] [-json FILE] [-cpuprofile FILE]
//
// The scenarios (package loadtest has the details):
//
//	a  durable throughput with group commits        targets ≥ 5,000 msg/s, ≥ 90 % of the bbolt batch ceiling
//	b  the same load, one transaction per message   a/b reported, not a target
//	c  paced load at 1,000 msg/s for 10 s           target p99 < 20 ms
//	d  1,000,000 scheduled check-ins                targets resume < 2 s, < 300 MiB, no scan
//	e  10,000 check-ins due at once, Telegram pace  targets ≥ 95 % of 25/s, no 429
//
// Scenarios a and b are read against ceilings measured in the same run:
// bbolt alone committing records of the sizes the scenario wrote, in
// batches of the size it committed, with the same fsync (the bbolt batch
// ceiling), and the engine with triage and encoding but no store, on every
// CPU (the pure-work ceiling). Each is printed beside the scenario with the
// share reached, and with the CPU time and allocations per message;
// -cpuprofile writes a CPU profile of scenario a's messages.
//
// With -store postgres, scenarios a, c and e also run on PostgreSQL (see
// postgres.go), beside bbolt in the same run, read against the server's
// own ceilings rather than bbolt's.
//
// The full run takes about 10 minutes, most of it scenario e (10,000
// messages at 25/s); -short runs CI sizes in about a minute and a half.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aftercare-clinic/aftercare/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The resume measurement of scenario d re-runs this program.
	if ok, err := loadtest.ServeResumeChild(ctx); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "aftercare-load:", err)
			os.Exit(1)
		}
		return
	}
	m := &Main{Args: os.Args[1:], Stdout: os.Stdout, Stderr: os.Stderr}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "aftercare-load:", err)
		os.Exit(1)
	}
}

// Main is one run of the command.
type Main struct {
	Args           []string
	Stdout, Stderr io.Writer
}

// step is one scenario to run, by its key.
type step struct {
	key string
	f   func() (loadtest.Result, error)
}

// Summary is the JSON the command prints last.
type Summary struct {
	Machine loadtest.Machine  `json:"machine"`
	Short   bool              `json:"short"`
	Results []loadtest.Result `json:"results"`
	// AOverB is scenario a's throughput over b's, reported and not a
	// target: it moves with the disk's fsync time. Scenarios are read
	// against the ceilings measured in the same run instead.
	AOverB string `json:"a_over_b,omitempty"`
	// LoadAvgAfter is the load average when the run ended.
	LoadAvgAfter string `json:"load_avg_after,omitempty"`
	OK           bool   `json:"ok"`
}

// errMissed is returned when a target was missed.
var errMissed = errors.New("targets missed")

// Run parses the flags, runs the scenarios and reports.
func (m *Main) Run(ctx context.Context) error {
	fs := flag.NewFlagSet("aftercare-load", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	short := fs.Bool("short", false, "CI sizes: fewer messages, 100k timers instead of 1M, a burst of 500")
	which := fs.String("scenario", "a,b,c,d,e", "scenarios to run, comma-separated")
	dir := fs.String("dir", "", "data directory for the database files (default: a temporary directory, removed afterwards)")
	jsonOut := fs.String("json", "", "also write the JSON summary to this file")
	burst := fs.Int("burst", 0, "check-ins in the burst of scenario e (default 10000, 500 with -short)")
	timers := fs.Int("timers", 0, "scheduled check-ins in scenario d (default 1000000, 100000 with -short)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of scenario a's messages to this file (go tool pprof reads it)")
	storeName := fs.String("store", "bbolt", "bbolt, or postgres: also run a, c and e on PostgreSQL, beside bbolt, and PostgreSQL's own ceilings ("+"AFTERCARE_POSTGRES_DSN, or a throwaway server)")
	if err := fs.Parse(m.Args); err != nil {
		return err
	}
	run := map[string]bool{}
	for _, s := range strings.Split(*which, ",") {
		s = strings.TrimSpace(s)
		if !strings.Contains("abcde", s) || len(s) != 1 {
			return fmt.Errorf("-scenario: unknown scenario %q (want letters a to e)", s)
		}
		run[s] = true
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "aftercare-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}

	tp := loadtest.ThroughputConfig{Dir: *dir, Patients: 10000, Messages: 100000, Senders: 256, Ceilings: true}
	base := loadtest.ThroughputConfig{Dir: *dir, Patients: 10000, Messages: 10000, Senders: 256, Ceilings: true, CeilingSteps: 3000}
	pc := loadtest.PacedConfig{Dir: *dir, Patients: 10000, Rate: loadtest.TargetPacedRate, Duration: 10 * time.Second}
	tc := loadtest.TimersConfig{Dir: *dir, Timers: 1000000, Small: 10000}
	bc := loadtest.BurstConfig{Dir: *dir, Checkins: 10000}
	if *short {
		tp.Patients, tp.Messages = 2000, 10000
		base.Patients, base.Messages, base.CeilingSteps = 2000, 1000, 500
		pc.Patients, pc.Duration = 2000, 3*time.Second
		tc.Timers = 100000
		bc.Checkins = 500
	}
	if *burst > 0 {
		bc.Checkins = *burst
	}
	if *timers > 0 {
		tc.Timers = *timers
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		tp.CPUProfile = f
	}
	if exe, err := os.Executable(); err == nil {
		tc.Resume = loadtest.ResumeChild(exe)
	}

	sum := Summary{Machine: loadtest.ThisMachine(), Short: *short}
	fmt.Fprintf(m.Stdout, "aftercare-load: %d CPUs, %s, load average %s, data in %s\n", sum.Machine.CPUs, sum.Machine.GoVersion, sum.Machine.LoadAvg, *dir)
	// b runs before a: a writes ten times the data, and its writeback
	// lingering in the VM's disk would slow b's fsyncs and flatter the
	// ratio a/b. Run this way any disk noise can only make a look worse.
	steps := []step{
		{"b", func() (loadtest.Result, error) { return loadtest.TxPerMessage(ctx, base) }},
		{"a", func() (loadtest.Result, error) { return loadtest.GroupCommit(ctx, tp) }},
		{"c", func() (loadtest.Result, error) { return loadtest.Paced(ctx, pc) }},
		{"d", func() (loadtest.Result, error) { return loadtest.Timers(ctx, tc) }},
		{"e", func() (loadtest.Result, error) { return loadtest.Burst(ctx, bc) }},
	}
	switch *storeName {
	case "bbolt":
	case "postgres":
		pg, closePG := postgresSteps(ctx, run, tp, pc, bc, *short)
		defer func() {
			if err := closePG(); err != nil {
				fmt.Fprintln(m.Stderr, "aftercare-load:", err)
			}
		}()
		for _, st := range pg {
			run[st.key] = true
		}
		steps = append(steps, pg...)
	default:
		return fmt.Errorf("-store: unknown store %q (want bbolt or postgres)", *storeName)
	}
	byKey := map[string]loadtest.Result{}
	for _, s := range steps {
		if !run[s.key] {
			continue
		}
		// Flush what earlier scenarios wrote, so their writeback does not
		// stall this scenario's fsyncs (a shared VM disk shows that as
		// latency spikes of hundreds of milliseconds).
		syscall.Sync()
		time.Sleep(2 * time.Second)
		fmt.Fprintf(m.Stderr, "running scenario %s ...\n", s.key)
		t := time.Now()
		r, err := s.f()
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s.key, err)
		}
		fmt.Fprintf(m.Stderr, "scenario %s done in %s\n", r.Scenario, time.Since(t).Round(time.Second))
		sum.Results = append(sum.Results, r)
		byKey[r.Scenario] = r
	}
	a, okA := byKey["a"]
	b, okB := byKey["b"]
	if okA && okB {
		_, sum.AOverB = loadtest.CommitRatio(a, b)
	}
	sum.LoadAvgAfter = loadtest.ThisMachine().LoadAvg
	sum.OK = true
	var missed []string
	for _, r := range sum.Results {
		for _, c := range r.Checks {
			if !c.OK {
				missed = append(missed, fmt.Sprintf("%s: %s: got %s, want %s", r.Scenario, c.Name, c.Got, c.Target))
			}
		}
	}
	sum.OK = len(missed) == 0

	printTable(m.Stdout, sum)
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	js = []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(js)))
	fmt.Fprintf(m.Stdout, "\n%s\n", js)
	if *jsonOut != "" {
		if err := os.WriteFile(*jsonOut, append(js, '\n'), 0o600); err != nil {
			return err
		}
	}
	if len(missed) > 0 {
		fmt.Fprintf(m.Stderr, "\nMISSED:\n  %s\n", strings.Join(missed, "\n  "))
		return fmt.Errorf("%w: %d", errMissed, len(missed))
	}
	return nil
}

// printTable writes the figures and the checks for people.
func printTable(w io.Writer, s Summary) {
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSCENARIO\tFIGURE\tVALUE")
	for _, r := range s.Results {
		fmt.Fprintf(tw, "%s\t%s\t\n", r.Scenario, r.Name)
		fmt.Fprintf(tw, "\tcount\t%d\n", r.Count)
		fmt.Fprintf(tw, "\tmeasured time\t%.2f s\n", r.Seconds)
		fmt.Fprintf(tw, "\trate\t%.1f /s\n", r.PerSecond)
		if l := r.Latency; l != nil {
			fmt.Fprintf(tw, "\tlatency p50 / p90 / p99 / max\t%.2f / %.2f / %.2f / %.2f ms\n", l.P50, l.P90, l.P99, l.Max)
		}
		fmt.Fprintf(tw, "\tpeak heap in use / Go sys / RSS (VmHWM)\t%.0f / %.0f / %.0f MiB\n", r.Memory.HeapInuse, r.Memory.Sys, r.Memory.PeakRSS)
		for _, f := range r.Figures {
			fmt.Fprintf(tw, "\t%s\t%s %s\n", f.Name, trim(f.Value), f.Unit)
		}
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSCENARIO\tTARGET\tWANT\tGOT\tRESULT")
	row := func(sc string, c loadtest.Check) {
		res := "met"
		if !c.OK {
			res = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", sc, c.Name, c.Target, c.Got, res)
	}
	for _, r := range s.Results {
		for _, c := range r.Checks {
			row(r.Scenario, c)
		}
	}
	tw.Flush()
	if s.AOverB != "" {
		fmt.Fprintf(w, "\na/b (reported, not a target: it measures the disk's fsync time): %s\n", s.AOverB)
	}
}

// trim formats a figure without needless decimals.
func trim(v float64) string {
	switch {
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
