//go:build !linux

package loadtest

import "os"

// EvictCache writes the file's dirty pages to disk; dropping the cached
// pages is only supported on Linux, so it reports false.
func EvictCache(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return false, f.Sync()
}
