package backoff_test

import (
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/backoff"
)

func TestDelayGrowsToTheCapWithJitter(t *testing.T) {
	p := backoff.Policy{Min: 100 * time.Millisecond, Max: time.Second}
	for _, c := range []struct {
		n      int
		lo, hi time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{60, 500 * time.Millisecond, time.Second},
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(c.n)
			if d < c.lo || d > c.hi {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", c.n, d, c.lo, c.hi)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("Delay(%d) is not jittered: always %v", c.n, seen)
		}
	}
	if d := (backoff.Policy{}).Delay(100); d > time.Minute || d < 30*time.Second {
		t.Errorf("zero Policy Delay(100) = %s, want within [30s, 1m]", d)
	}
}
