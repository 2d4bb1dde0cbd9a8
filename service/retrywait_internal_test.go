package service

import (
	"testing"
	"time"
)

// TestMaxRetryWaitBoundsBackoff plays the fastest possible schedule of
// failing attempts (every backoff at its shortest, attempts taking no time)
// through outages of several lengths, and checks that the backoff drawn by
// the last attempt inside the outage, at its longest, ends within
// MaxRetryWait of the recovery.
func TestMaxRetryWaitBoundsBackoff(t *testing.T) {
	for _, outage := range []time.Duration{0, 300 * time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second, time.Minute, time.Hour} {
		at := time.Duration(0) // time of the current failed attempt since the outage began
		for a := 1; ; a++ {
			step := min(time.Second<<min(a-1, 9), 5*time.Minute)
			if late := at + step - outage; late > MaxRetryWait(outage) {
				t.Errorf("outage %s: attempt %d failed at %s and may wait %s, %s after recovery; MaxRetryWait says %s",
					outage, a, at, step, late, MaxRetryWait(outage))
			}
			for i := 0; i < 1000; i++ {
				if b := backoff(a); b < step/2 || b > step {
					t.Fatalf("backoff(%d) = %s, outside [%s, %s]", a, b, step/2, step)
				}
			}
			at += step / 2
			if at > outage {
				break
			}
		}
	}
}
