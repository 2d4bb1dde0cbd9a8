package loadtest

import (
	"os"

	"golang.org/x/sys/unix"
)

// EvictCache writes the file's dirty pages to disk and asks the kernel to
// drop its cached pages, so the next open reads from disk as after a
// reboot. It reports whether the kernel took the advice.
func EvictCache(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return false, err
	}
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) == nil, nil
}
