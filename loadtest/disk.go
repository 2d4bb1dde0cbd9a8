package loadtest

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ProbeDisk measures the disk under dir alone, with the I/O of the
// smallest bbolt commit: write four 4 KiB pages and sync, then write one
// (the meta page) and sync again, every interval for d. Scenario c reports
// it next to its own latency, so a reader can tell a slow disk from slow
// code: no commit can be faster than the disk's own syncs, and a stall of
// the disk stalls every message arriving meanwhile.
func ProbeDisk(dir string, d, interval time.Duration) (*Latency, error) {
	path := filepath.Join(dir, "disk-probe.dat")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("disk probe: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	const pages = 4096
	page := make([]byte, 4096)
	if err := f.Truncate(pages * int64(len(page))); err != nil {
		return nil, fmt.Errorf("disk probe: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("disk probe: %w", err)
	}
	var ds []time.Duration
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		t := time.Now()
		for j := range 4 {
			if _, err := f.WriteAt(page, int64((i*4+j)*977%pages)*int64(len(page))); err != nil {
				return nil, fmt.Errorf("disk probe: %w", err)
			}
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("disk probe: %w", err)
		}
		if _, err := f.WriteAt(page, 0); err != nil {
			return nil, fmt.Errorf("disk probe: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("disk probe: %w", err)
		}
		took := time.Since(t)
		ds = append(ds, took)
		time.Sleep(interval - took)
	}
	return latencyOf(ds), nil
}
