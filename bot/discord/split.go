package discord

import (
	"unicode"
	"unicode/utf8"
)

// splitText cuts s into parts of at most limit characters, counted as
// UTF-16 code units (the strictest reading of Discord's 2000-character
// limit: an emoji outside the BMP counts twice). It prefers to cut after a
// newline, then after other white space, when that keeps a part at least
// half full; otherwise it cuts between runes. Joining the parts gives s
// back exactly. An empty s gives no parts.
func splitText(s string, limit int) []string {
	if limit < 2 {
		limit = 2
	}
	var out []string
	for len(s) > 0 {
		units, cut := 0, len(s)
		lastNL, lastSpace := -1, -1
		for i, r := range s {
			w := 1
			if r >= 0x10000 {
				w = 2
			}
			if units+w > limit {
				cut = i
				break
			}
			units += w
			if r == '\n' {
				lastNL = i + 1
			} else if unicode.IsSpace(r) {
				lastSpace = i + utf8.RuneLen(r)
			}
		}
		if cut < len(s) {
			switch {
			case lastNL >= cut/2 && lastNL > 0:
				cut = lastNL
			case lastSpace >= cut/2 && lastSpace > 0:
				cut = lastSpace
			}
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	return out
}
