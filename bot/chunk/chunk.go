// Package chunk cuts message texts into pieces a chat platform accepts.
// Telegram (4096) and Discord (2000) both count their message limits in
// UTF-16 code units, so one splitter serves both.
package chunk

import "strings"

// UTF16Len counts s in UTF-16 code units, the way Telegram and Discord
// count message lengths: a character outside the BMP (most emoji) counts
// twice.
func UTF16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// Split cuts s into pieces of at most limit UTF-16 code units, preferring
// to cut after a blank line, then after a line break, then after a space,
// as long as that keeps the piece more than half full, and only then in the
// middle of a word (never inside a character). Separators stay at the end
// of the piece before the cut, so joining the pieces gives s back exactly,
// even when s is not valid UTF-8. A limit below 2 is taken as 2 (room for
// one surrogate pair). An empty s gives no pieces.
func Split(s string, limit int) []string {
	if limit < 2 {
		limit = 2
	}
	var parts []string
	for s != "" {
		// hard is the longest prefix (in bytes) that fits.
		hard, units := len(s), 0
		for i, r := range s {
			w := 1
			if r >= 0x10000 {
				w = 2
			}
			if units+w > limit {
				hard = i
				break
			}
			units += w
		}
		if hard == len(s) {
			parts = append(parts, s)
			break
		}
		cut := 0
		head := s[:hard]
		// Prefer a boundary in the second half, so pieces stay reasonably full.
		minCut := hard / 2
		for _, sep := range []string{"\n\n", "\n", " "} {
			if i := strings.LastIndex(head, sep); i >= 0 && i+len(sep) > minCut {
				cut = i + len(sep)
				break
			}
		}
		if cut == 0 {
			cut = hard
		}
		parts = append(parts, s[:cut])
		s = s[cut:]
	}
	return parts
}
