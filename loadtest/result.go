package loadtest

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is what one scenario measured.
type Result struct {
	// Scenario is the scenario's letter in issue 7 ("a" to "e").
	Scenario string `json:"scenario"`
	// Name says what the scenario does.
	Name string `json:"name"`
	// Count is how many messages (or timers, or check-ins) it handled.
	Count int `json:"count"`
	// Seconds is how long the measured part took.
	Seconds float64 `json:"seconds"`
	// PerSecond is Count / Seconds.
	PerSecond float64 `json:"per_second"`
	// Latency is set when per-message latency was measured.
	Latency *Latency `json:"latency,omitempty"`
	// Memory is the peak memory during the scenario.
	Memory Memory `json:"memory"`
	// Figures are further measurements, in the order they were taken.
	Figures []Figure `json:"figures,omitempty"`
	// Checks compare the figures with the targets.
	Checks []Check `json:"checks"`
	// Shape is the records one step wrote, bucket by bucket, as the bbolt
	// ceiling replays them (throughput scenarios with ceilings only).
	Shape []RecordShape `json:"step_records,omitempty"`
}

// Figure is one named measurement.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Check is one target and whether it was met.
type Check struct {
	// Name says what is checked.
	Name string `json:"name"`
	// Target is the goal, for people ("≥ 5000 msg/s").
	Target string `json:"target"`
	// Got is the measured value, for people.
	Got string `json:"got"`
	// OK reports whether the target was met.
	OK bool `json:"ok"`
}

// OK reports whether every check passed.
func (r Result) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Figure returns the value of the named figure, or false.
func (r Result) Figure(name string) (float64, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

func (r *Result) figure(name string, v float64, unit string) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: v, Unit: unit})
}

func (r *Result) check(name, target, got string, ok bool) {
	r.Checks = append(r.Checks, Check{Name: name, Target: target, Got: got, OK: ok})
}

// Latency holds latency percentiles in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// String formats the percentiles for people.
func (l Latency) String() string {
	return fmt.Sprintf("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", l.P50, l.P90, l.P99, l.Max)
}

func latencyOf(ds []time.Duration) *Latency {
	if len(ds) == 0 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		i = min(max(i, 0), len(s)-1)
		return ms(s[i])
	}
	return &Latency{N: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Memory is the peak memory of a scenario, in MiB.
type Memory struct {
	// HeapInuse is the peak of the Go heap in use (runtime.MemStats).
	HeapInuse float64 `json:"heap_inuse_mib"`
	// Sys is the peak of the memory the Go runtime got from the OS.
	Sys float64 `json:"sys_mib"`
	// PeakRSS is the process's peak resident set (VmHWM), reset at the
	// start of the scenario; it includes the pages of the mapped database
	// file that were touched. Zero where /proc is unavailable.
	PeakRSS float64 `json:"peak_rss_mib"`
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// memWatch samples runtime memory until stopped.
type memWatch struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak Memory
}

// watchMemory resets the peak RSS and samples memory every 50 ms.
func watchMemory() *memWatch {
	ResetPeakRSS()
	w := &memWatch{stop: make(chan struct{}), done: make(chan struct{})}
	w.sample()
	go func() {
		defer close(w.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.sample()
			}
		}
	}()
	return w
}

func (w *memWatch) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.peak.HeapInuse = max(w.peak.HeapInuse, mib(m.HeapInuse))
	w.peak.Sys = max(w.peak.Sys, mib(m.Sys))
}

// finish stops sampling and returns the peaks.
func (w *memWatch) finish() Memory {
	close(w.stop)
	<-w.done
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.peak
	p.PeakRSS = PeakRSS()
	return p
}

// ResetPeakRSS resets the process's peak resident set size (VmHWM), so the
// next PeakRSS reports the peak from now on. It does nothing where
// /proc/self/clear_refs is unavailable.
func ResetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// PeakRSS returns the process's peak resident set size (VmHWM) in MiB, or 0
// where /proc is unavailable.
func PeakRSS() float64 { return procStatus("VmHWM") }

// RSS returns the process's current resident set size (VmRSS) in MiB.
func RSS() float64 { return procStatus("VmRSS") }

func procStatus(key string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0
		}
		return kb / 1024
	}
	return 0
}
