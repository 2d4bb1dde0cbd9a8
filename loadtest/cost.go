package loadtest

import (
	"runtime"
	"time"
)

// costMeter measures what a stretch of work cost the whole process: CPU
// time (user + system, every goroutine, the garbage collector included)
// and heap allocations. Dividing by the messages handled gives the cost
// of one message, which is what a vendor hosting many clinics pays for,
// whatever the throughput.
type costMeter struct {
	cpu     time.Duration
	mallocs uint64
	bytes   uint64
	written uint64
}

// startCost reads the process's counters now.
func startCost() costMeter {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return costMeter{cpu: processCPU(), mallocs: m.Mallocs, bytes: m.TotalAlloc, written: processWritten()}
}

// Cost is what n messages cost the process.
type Cost struct {
	// CPU is the process's CPU time per message.
	CPU time.Duration
	// Allocs and Bytes are the heap allocations per message.
	Allocs, Bytes float64
	// Written is the bytes written to files per message (write system
	// calls: bbolt's pages), 0 where the platform does not count them.
	Written float64
}

// per returns the cost since c per message, for n messages.
func (c costMeter) per(n int) Cost {
	e := startCost()
	if n <= 0 {
		return Cost{}
	}
	out := Cost{
		CPU:    (e.cpu - c.cpu) / time.Duration(n),
		Allocs: float64(e.mallocs-c.mallocs) / float64(n),
		Bytes:  float64(e.bytes-c.bytes) / float64(n),
	}
	if c.written > 0 && e.written >= c.written {
		out.Written = float64(e.written-c.written) / float64(n)
	}
	return out
}

// figures adds the cost to r's figures.
func (c Cost) figures(r *Result) {
	if c.CPU > 0 {
		r.figure("CPU per message", float64(c.CPU)/float64(time.Microsecond), "µs (process user+sys)")
	}
	r.figure("allocations per message", c.Allocs, "mallocs")
	r.figure("bytes allocated per message", c.Bytes, "B")
	if c.Written > 0 {
		r.figure("bytes written per message", c.Written, "B (write system calls: bbolt's pages)")
	}
}
