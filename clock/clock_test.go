package clock_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
)

func TestFakeFiresTimersInOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := clock.NewFake(t0)
	a, b := f.After(2*time.Hour), f.After(time.Hour)
	f.Add(90 * time.Minute)
	select {
	case <-b:
	default:
		t.Fatal("1h timer did not fire at 1h30")
	}
	select {
	case <-a:
		t.Fatal("2h timer fired early")
	default:
	}
	f.Add(24 * time.Hour)
	if got := <-a; !got.Equal(t0.Add(90*time.Minute + 24*time.Hour)) {
		t.Fatalf("fired at %v", got)
	}
	if f.Waiters() != 0 {
		t.Fatal("waiters left")
	}
}

func TestFileClock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "now")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.SetFile(p, t0)
	c := clock.File{Path: p, Poll: time.Millisecond}
	if !c.Now().Equal(t0) {
		t.Fatalf("now %v", c.Now())
	}
	ch := c.After(24 * time.Hour)
	clock.SetFile(p, t0.Add(25*time.Hour))
	select {
	case got := <-ch:
		if !got.Equal(t0.Add(25 * time.Hour)) {
			t.Fatalf("fired at %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("file clock timer never fired")
	}
}

func TestOffsetSkips(t *testing.T) {
	o := clock.NewOffset(clock.Real{})
	before := o.Now()
	o.Skip(24 * time.Hour)
	if d := o.Now().Sub(before); d < 24*time.Hour || d > 25*time.Hour {
		t.Fatalf("skipped %v", d)
	}
}
