package engine

import "time"

// Time is time.Time, named for the times records carry (an alias: it adds
// no behaviour). It marshals as RFC 3339 with nanoseconds. A record's time
// that may be unset (Outbound.NotBefore, Escalation.AckAt and ResolvedAt,
// Invite.UsedAt) is tagged omitzero, so the zero time is left out of JSON
// instead of written as "0001-01-01T00:00:00Z": an open escalation has no
// "ack_at" at all. (omitempty would not do it: it never omits a struct.)
type Time = time.Time
