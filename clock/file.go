package clock

import (
	"os"
	"strings"
	"time"
)

// File is a clock read from a file holding an RFC 3339 time, for tests that
// run the real binary on a virtual clock and kill it at random moments: the
// test owns the file and moves time as fast as it likes, and a restarted
// process continues exactly where the clock stands. Each Now reads the
// file; use it only in tests (the binary enables it with the environment
// variable AFTERCARE_TEST_CLOCK_FILE).
type File struct {
	Path string
	// Poll is how often After re-reads the file (default 5 ms).
	Poll time.Duration
}

// Now returns the time in the file, or the zero time if it cannot be read.
func (f File) Now() time.Time {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}
	}
	return t
}

// After fires once the file's time has moved d past its value now.
func (f File) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	end := f.Now().Add(d)
	poll := f.Poll
	if poll <= 0 {
		poll = 5 * time.Millisecond
	}
	go func() {
		for {
			if n := f.Now(); !n.Before(end) {
				ch <- n
				return
			}
			time.Sleep(poll)
		}
	}()
	return ch
}

// SetFile writes t to path atomically (write and rename), so a reader never
// sees a torn value.
func SetFile(path string, t time.Time) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(t.UTC().Format(time.RFC3339Nano)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
