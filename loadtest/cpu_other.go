//go:build !unix

package loadtest

import "time"

// processCPU returns 0 where getrusage is unavailable; the CPU figures are
// then left out.
func processCPU() time.Duration { return 0 }
