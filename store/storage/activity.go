package storage

import (
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// LastActivity is when the patient was last heard from or seen: the later
// of the state's LastActive and its visit's date, zero when neither is
// set. Retention counts from it; both backends index it.
func LastActivity(st engine.State) time.Time {
	last := st.LastActive
	if st.Visit != nil && st.Visit.At.After(last) {
		last = st.Visit.At
	}
	return last
}
