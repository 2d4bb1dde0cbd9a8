//go:build unix

package loadtest

import (
	"syscall"
	"time"
)

// processCPU returns the user and system CPU time this process has used so
// far, all threads together (getrusage RUSAGE_SELF).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
