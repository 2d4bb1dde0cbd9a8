package store

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON appends l as JSON, the same object json.Marshal writes (field
// for field, omitted where empty), without its reflection and allocations:
// a step writes two or three transcript lines. Readers decode it with
// encoding/json as before.
func (l *TranscriptLine) appendJSON(b []byte) []byte {
	if b == nil {
		b = make([]byte, 0, 128+len(l.Text)+len(l.Choice)+len(l.Staff))
	}
	b = append(b, `{"at":`...)
	b = appendJSONTime(b, l.At)
	b = append(b, `,"from":`...)
	b = appendJSONString(b, l.From)
	if l.Kind != "" {
		b = append(b, `,"kind":`...)
		b = appendJSONString(b, string(l.Kind))
	}
	if l.Text != "" {
		b = append(b, `,"text":`...)
		b = appendJSONString(b, l.Text)
	}
	if l.Choice != "" {
		b = append(b, `,"choice":`...)
		b = appendJSONString(b, l.Choice)
	}
	if l.Level != 0 {
		b = append(b, `,"level":`...)
		b = appendJSONString(b, l.Level.String())
	}
	if l.Staff != "" {
		b = append(b, `,"staff":`...)
		b = appendJSONString(b, l.Staff)
	}
	return append(b, '}')
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds), falling back to it for years it refuses.
func appendJSONTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		v, err := t.MarshalJSON()
		if err != nil {
			return append(b, `null`...)
		}
		return append(b, v...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (quotes, backslashes, control characters, <, > and &, U+2028
// and U+2029; invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = strconv.AppendInt(b, int64(r&0xf), 16)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
