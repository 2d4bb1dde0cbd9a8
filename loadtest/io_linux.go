package loadtest

import (
	"bytes"
	"os"
	"strconv"
)

// processWritten returns the bytes this process has handed to write
// system calls so far (wchar in /proc/self/io; bbolt's pwrites of pages
// and meta pages), or 0 when it cannot be read. Unlike CPU time it does
// not move with the neighbours' load: bytes per message is the page count
// of a step, read off the machine's noise.
func processWritten() uint64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("wchar:")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0
			}
			return n
		}
	}
	return 0
}
