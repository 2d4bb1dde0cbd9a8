package engine

import "time"

// Time is a time.Time that marshals as RFC 3339 with nanoseconds and leaves
// the zero time out of JSON, so stored records stay small and readable.
type Time = time.Time
