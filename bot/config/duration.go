// Package config holds the value types the platform sections of the
// configuration file share, so that "30s" or a bare 30 means the same in
// the telegram section as in the discord one.
package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("30s", "250ms", "1m"), so config files stay readable. A bare JSON
// number is read as seconds (30 is "30s"), the unit a person writing a
// timeout by hand most likely means; anything else is an error that says
// what to write instead.
type Duration time.Duration

// MarshalJSON writes the duration as a string like "30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "30s"-style strings or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. \"30s\", \"250ms\" or a number of seconds)", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("invalid duration %s (want a string like \"30s\" or a number of seconds)", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
