package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// BuildTimers creates a store at path holding n scheduled check-ins: n/2
// patients, each with a clinic visit recorded through the engine and the
// store's Apply as the service would, so each has a state, a visit record,
// an audit line and its 24 h and 48 h check-in timers. The visits are
// spread over the 30 hours before now, so at now about a tenth of the
// check-ins are overdue, as after downtime. It runs without fsync and
// with large group commits, then syncs the file once.
func BuildTimers(ctx context.Context, path string, n int, now time.Time) error {
	if err := removeDB(path); err != nil {
		return err
	}
	eng, err := NewEngine()
	if err != nil {
		return err
	}
	st, err := store.Open(path, store.Options{NoSync: true, MaxBatchSize: 5000})
	if err != nil {
		return err
	}
	patients := max(1, n/2)
	span := 30 * time.Hour
	err = forEach(ctx, patients, 4096, func(i int) error {
		at := now.Add(-span + time.Duration(float64(span)*float64(i)/float64(patients))) // span*i overflows int64 past 85,000 patients
		v := SimVisit(i, at)
		id := Patient(i)
		_, err := st.Apply(ctx, store.Step{Patient: id, Now: at}, func(in store.Input) (engine.Result, error) {
			return eng.Step(id, in.State, engine.Event{Kind: engine.EventVisit, Visit: &v}, at), nil
		})
		return err
	})
	if err = errors.Join(err, st.Close()); err != nil {
		return err
	}
	_, err = EvictCache(path) // syncs; leaving the cache cold does no harm
	return err
}

// TimerTree describes the timers bucket's B+tree.
type TimerTree struct {
	Keys   int `json:"keys"`
	Depth  int `json:"depth"`
	Leaves int `json:"leaf_pages"`
}

// InspectTimers opens the closed store at path read-only and describes its
// timers bucket (the store's time-ordered index of timers).
func InspectTimers(path string) (TimerTree, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return TimerTree{}, err
	}
	defer db.Close()
	var t TimerTree
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("timers"))
		if b == nil {
			return errors.New("no timers bucket")
		}
		s := b.Stats()
		t = TimerTree{Keys: s.KeyN, Depth: s.Depth, Leaves: s.LeafPageN}
		return nil
	})
	return t, err
}

// ResumeStats is what reopening a store costs.
type ResumeStats struct {
	// Cold is set when the file's pages were dropped from the cache first.
	Cold bool `json:"cold"`
	// OpenMS, NextDueMS and DueBeforeMS time store.Open, the first NextDue
	// and the first DueBefore(now, 256); TotalMS is their sum.
	OpenMS      float64 `json:"open_ms"`
	NextDueMS   float64 `json:"next_due_ms"`
	DueBeforeMS float64 `json:"due_before_ms"`
	TotalMS     float64 `json:"total_ms"`
	// Due is how many timers the first DueBefore returned.
	Due int `json:"due"`
	// PeakRSS, HeapInuse and Sys are the process's memory after resuming, in MiB.
	PeakRSS   float64 `json:"peak_rss_mib"`
	HeapInuse float64 `json:"heap_inuse_mib"`
	Sys       float64 `json:"sys_mib"`
	// ScanMS is the retention purge's first pass, which the scheduler runs
	// when it starts (it reads the last-activity index up to the cutoff,
	// not every state); ScanPeakRSS is the peak resident set after it, in
	// MiB.
	ScanMS      float64 `json:"scan_ms"`
	ScanPeakRSS float64 `json:"scan_peak_rss_mib"`
}

// Resume measures, in this process, what a restarted service does first:
// open the store at path, find the next due timer and read the first
// page of due timers at now. Then it runs the scheduler's first pass over
// the patients (the retention purge), timed on its own.
func Resume(ctx context.Context, path string, now time.Time) (ResumeStats, error) {
	var r ResumeStats
	t0 := time.Now()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return r, err
	}
	defer st.Close()
	t1 := time.Now()
	if _, _, err := st.NextDue(); err != nil {
		return r, err
	}
	t2 := time.Now()
	due, err := st.DueBefore(now, 256)
	if err != nil {
		return r, err
	}
	t3 := time.Now()
	r.OpenMS, r.NextDueMS, r.DueBeforeMS, r.TotalMS = ms(t1.Sub(t0)), ms(t2.Sub(t1)), ms(t3.Sub(t2)), ms(t3.Sub(t0))
	r.Due = len(due)
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r.PeakRSS, r.HeapInuse, r.Sys = PeakRSS(), mib(m.HeapInuse), mib(m.Sys)

	eng, err := NewEngine()
	if err != nil {
		return r, err
	}
	svc, err := service.New(service.Config{Engine: eng, Store: st, Clock: clock.NewFake(now), StaffChannels: []engine.PatientID{StaffChannel}})
	if err != nil {
		return r, err
	}
	t4 := time.Now()
	if _, err := svc.Purge(ctx); err != nil {
		return r, err
	}
	r.ScanMS, r.ScanPeakRSS = ms(time.Since(t4)), PeakRSS()
	return r, nil
}

// Environment variables that make a process a resume child (see
// ServeResumeChild).
const (
	envResumePath = "AFTERCARE_LOAD_RESUME_PATH"
	envResumeNow  = "AFTERCARE_LOAD_RESUME_NOW"
)

// ResumeFunc measures resuming the store at path at time now.
type ResumeFunc func(ctx context.Context, path string, now time.Time) (ResumeStats, error)

// ResumeChild returns a ResumeFunc that measures in a fresh process, so
// the memory figures are those of a restarted service and nothing else:
// it runs the command name args with the path and time in its
// environment; the command must call ServeResumeChild first thing.
func ResumeChild(name string, args ...string) ResumeFunc {
	return func(ctx context.Context, path string, now time.Time) (ResumeStats, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), envResumePath+"="+path, envResumeNow+"="+strconv.FormatInt(now.UnixNano(), 10))
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return ResumeStats{}, fmt.Errorf("resume child: %w: %s", err, bytes.TrimSpace(errb.Bytes()))
		}
		// The child's JSON is the last line (a test binary may print more).
		lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
		var r ResumeStats
		if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
			return r, fmt.Errorf("resume child: %w", err)
		}
		return r, nil
	}
}

// ServeResumeChild runs the resume measurement and prints it as JSON to
// stdout when this process was started by a ResumeChild function; it
// reports whether it did, and the caller should then exit.
func ServeResumeChild(ctx context.Context) (bool, error) {
	path := os.Getenv(envResumePath)
	if path == "" {
		return false, nil
	}
	ns, err := strconv.ParseInt(os.Getenv(envResumeNow), 10, 64)
	if err != nil {
		return true, fmt.Errorf("%s: %w", envResumeNow, err)
	}
	r, err := Resume(ctx, path, time.Unix(0, ns))
	if err != nil {
		return true, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return true, err
	}
	_, err = fmt.Printf("%s\n", b)
	return true, err
}

// TimersConfig sizes scenario d. Zero values take the defaults.
type TimersConfig struct {
	// Dir holds the database files (required).
	Dir string
	// Timers is the number of scheduled check-ins (default 1,000,000).
	Timers int
	// Small is the size NextDue is compared with (default 10,000).
	Small int
	// Resume measures reopening the store (nil: Resume in this process,
	// whose memory then includes everything the process did before).
	Resume ResumeFunc
}

// Timers is scenario d: it builds a store of Timers scheduled check-ins,
// then measures reopening it (store.Open, NextDue, the first DueBefore)
// with a cold and a warm file cache, the memory that takes, and the cost
// of NextDue at Small and at Timers check-ins, which must not grow with
// the number of timers (the timers are keyed by due time, so the next one
// is the first key). The Result's Memory is that of the build; the memory
// of resuming is among its figures.
func Timers(ctx context.Context, c TimersConfig) (Result, error) {
	if c.Timers <= 0 {
		c.Timers = 1000000
	}
	if c.Small <= 0 {
		c.Small = 10000
	}
	if c.Resume == nil {
		c.Resume = Resume
	}
	r := Result{Scenario: "d", Name: "scheduled check-ins: resume and next due", Count: c.Timers}
	if c.Dir == "" {
		return r, errors.New("loadtest: Dir is required")
	}
	now := time.Now()
	big, small := filepath.Join(c.Dir, "timers-big.db"), filepath.Join(c.Dir, "timers-small.db")
	mw := watchMemory()
	t := time.Now()
	if err := BuildTimers(ctx, big, c.Timers, now); err != nil {
		return r, err
	}
	build := time.Since(t)
	r.Memory = mw.finish()
	r.Seconds = build.Seconds()
	r.PerSecond = float64(c.Timers) / build.Seconds()
	if err := BuildTimers(ctx, small, c.Small, now); err != nil {
		return r, err
	}
	r.figure("build time", build.Seconds(), "s")
	if fi, err := os.Stat(big); err == nil {
		r.figure("file size", mib(uint64(fi.Size())), "MiB")
	}
	tree, err := InspectTimers(big)
	if err != nil {
		return r, err
	}
	stree, err := InspectTimers(small)
	if err != nil {
		return r, err
	}
	r.figure("timers in store", float64(tree.Keys), "")

	evicted, err := EvictCache(big)
	if err != nil {
		return r, err
	}
	cold, err := c.Resume(ctx, big, now)
	if err != nil {
		return r, err
	}
	cold.Cold = evicted
	warm, err := c.Resume(ctx, big, now)
	if err != nil {
		return r, err
	}
	label := "cold cache"
	if !evicted {
		label = "cache not dropped"
	}
	r.figure("open+resume ("+label+")", cold.TotalMS, "ms")
	r.figure("  store.Open", cold.OpenMS, "ms")
	r.figure("  first NextDue", cold.NextDueMS, "ms")
	r.figure("  first DueBefore (256 overdue)", cold.DueBeforeMS, "ms")
	r.figure("open+resume (warm cache)", warm.TotalMS, "ms")
	r.figure("peak RSS after resume", cold.PeakRSS, "MiB")
	r.figure("Go heap in use after resume", cold.HeapInuse, "MiB")
	r.figure("scheduler's first pass: retention purge", cold.ScanMS, "ms")
	r.figure("peak RSS after that pass", cold.ScanPeakRSS, "MiB")

	nsSmall, err := timeNextDue(small)
	if err != nil {
		return r, err
	}
	nsBig, err := timeNextDue(big)
	if err != nil {
		return r, err
	}
	r.figure(fmt.Sprintf("NextDue at %d timers", stree.Keys), nsSmall, "ns")
	r.figure(fmt.Sprintf("NextDue at %d timers", tree.Keys), nsBig, "ns")
	r.figure(fmt.Sprintf("timers B+tree depth at %d timers", stree.Keys), float64(stree.Depth), "levels")
	r.figure(fmt.Sprintf("timers B+tree depth at %d timers", tree.Keys), float64(tree.Depth), "levels")

	r.check("open+resume", fmt.Sprintf("< %s", TargetResume), fmt.Sprintf("%.0f ms", cold.TotalMS), cold.TotalMS < ms(TargetResume))
	r.check("memory after resume (peak RSS)", fmt.Sprintf("< %d MiB", TargetResumeMiB), fmt.Sprintf("%.0f MiB", cold.PeakRSS), cold.PeakRSS < TargetResumeMiB && cold.PeakRSS > 0)
	ratio := nsBig / nsSmall
	r.check("next due found without scanning", fmt.Sprintf("NextDue at %dx the timers ≤ 2x the time", tree.Keys/max(1, stree.Keys)),
		fmt.Sprintf("%.2fx (%.0f ns vs %.0f ns, depth %d vs %d)", ratio, nsBig, nsSmall, tree.Depth, stree.Depth), ratio <= 2)
	r.check("all timers stored", fmt.Sprintf("%d", c.Timers), fmt.Sprintf("%d", tree.Keys), tree.Keys == c.Timers/2*2)
	return r, nil
}

// timeNextDue opens the store at path and returns the mean time of a
// NextDue call, in nanoseconds.
func timeNextDue(path string) (float64, error) {
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	for range 1000 { // warm the pages and the allocator
		if _, _, err := st.NextDue(); err != nil {
			return 0, err
		}
	}
	const n = 50000
	t := time.Now()
	for range n {
		if _, _, err := st.NextDue(); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(t).Nanoseconds()) / n, nil
}
