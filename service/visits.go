package service

import (
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// visitIndex is what /today reads when the store keeps a visit-date index
// (both backends do): the patients whose visit is at or after a time,
// without decoding every state.
type visitIndex interface {
	VisitedSince(t time.Time, fn func(engine.State) error) error
}

// visitedSince calls fn with every patient whose current visit is at or
// after t: from the store's visit-date index when it has one, otherwise
// by reading every state.
func (s *Service) visitedSince(t time.Time, fn func(engine.State) error) error {
	if ix, ok := s.store.(visitIndex); ok {
		return ix.VisitedSince(t, fn)
	}
	return s.store.Patients(func(st engine.State) error {
		if st.Visit == nil || st.Visit.At.Before(t) {
			return nil
		}
		return fn(st)
	})
}
