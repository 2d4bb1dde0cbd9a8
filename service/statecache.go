package service

import (
	"sync"

	"github.com/aftercare-clinic/aftercare/engine"
)

// stateCacheSize bounds the decoded states kept in memory: at a few KiB
// each, 16,384 states stay under about 50 MiB even for long conversations.
const stateCacheSize = 16384

// cachedState is a patient's state as last committed by this process:
// the stored bytes and the same state decoded.
type cachedState struct {
	raw []byte
	st  engine.State
}

// stateCache keeps the states this process last committed, so the next
// step of a patient skips a read transaction and a JSON decode. It only
// saves work: the store commits a step computed from a cached state only
// if the stored bytes still equal raw (storage.Prepared.From), and recomputes
// it from the stored state otherwise, so a stale entry cannot change what
// is committed.
//
// An entry is taken out when a step starts and put back only with that
// step's committed result, so a state a failed or skipped step may have
// changed in place is never reused. Callers hold the patient's lock.
type stateCache struct {
	mu  sync.Mutex
	m   map[engine.PatientID]*cachedState
	max int
}

func newStateCache(max int) *stateCache {
	return &stateCache{m: map[engine.PatientID]*cachedState{}, max: max}
}

// take removes and returns id's entry.
func (c *stateCache) take(id engine.PatientID) (*cachedState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if ok {
		delete(c.m, id)
	}
	return e, ok
}

// put stores id's entry, evicting an arbitrary one when full (map order is
// random, so no access pattern keeps missing).
func (c *stateCache) put(id engine.PatientID, e *cachedState) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = e
}
