//go:build !race

package triage

// raceOn is set under the race detector, where sync.Pool drops items at
// random, so allocation counts say nothing about the code.
const raceOn = false
