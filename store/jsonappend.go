package store

// The transcript and the outbox stay JSON, for the desk, `aftercare
// check`, the export and the copy to PostgreSQL; a step writes two or three
// transcript lines and one or two messages, so their JSON is appended by
// hand here, byte for byte what encoding/json writes (the tests compare
// both, fuzzed), without its reflection and allocations.

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/aftercare-clinic/aftercare/engine"
)

// appendLineJSON appends l as JSON, the same object json.Marshal writes (field
// for field, omitted where empty), without its reflection and allocations:
// a step writes two or three transcript lines. Readers decode it with
// encoding/json as before.
func appendLineJSON(l *TranscriptLine, b []byte) []byte {
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

// jsonTimeOK reports whether time.Time's MarshalJSON accepts t (years 0 to
// 9999); callers leave other times to encoding/json, which reports them.
func jsonTimeOK(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds); t must satisfy jsonTimeOK.
func appendJSONTime(b []byte, t time.Time) []byte {
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

// appendOutboundJSON appends m as json.Marshal writes it (the same bytes:
// the outbox stays JSON for every reader), without reflection: a step
// queues one or two messages. Its times must satisfy jsonTimeOK.
func appendOutboundJSON(b []byte, m *engine.Outbound) []byte {
	if b == nil {
		n := 192 + len(m.To) + len(m.Channel) + len(m.Patient) + len(m.Text)
		for _, c := range m.Choices {
			n += 20 + len(c.ID) + len(c.Label)
		}
		b = make([]byte, 0, n)
	}
	b = append(b, '{')
	if m.ID != 0 {
		b = append(b, `"id":`...)
		b = strconv.AppendUint(b, m.ID, 10)
		b = append(b, ',')
	}
	b = append(b, `"to":`...)
	b = appendJSONString(b, string(m.To))
	if m.Channel != "" {
		b = append(b, `,"channel":`...)
		b = appendJSONString(b, string(m.Channel))
	}
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, string(m.Kind))
	if m.Level != 0 {
		b = append(b, `,"level":`...)
		b = appendJSONString(b, m.Level.String())
	}
	if m.Patient != "" {
		b = append(b, `,"patient":`...)
		b = appendJSONString(b, string(m.Patient))
	}
	b = append(b, `,"text":`...)
	b = appendJSONString(b, m.Text)
	if len(m.Choices) > 0 {
		b = append(b, `,"choices":[`...)
		for i, c := range m.Choices {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendJSONString(b, c.ID)
			b = append(b, `,"label":`...)
			b = appendJSONString(b, c.Label)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if m.Staff != "" {
		b = append(b, `,"staff":`...)
		b = appendJSONString(b, m.Staff)
	}
	if m.EscalationID != 0 {
		b = append(b, `,"escalation_id":`...)
		b = strconv.AppendUint(b, m.EscalationID, 10)
	}
	if m.Private {
		b = append(b, `,"private":true`...)
	}
	if m.Origin != "" {
		b = append(b, `,"origin":`...)
		b = appendJSONString(b, string(m.Origin))
	}
	b = append(b, `,"created":`...)
	b = appendJSONTime(b, m.Created)
	if m.Attempts != 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(m.Attempts), 10)
	}
	if !m.NotBefore.IsZero() { // omitzero
		b = append(b, `,"not_before":`...)
		b = appendJSONTime(b, m.NotBefore)
	}
	return append(b, '}')
}
