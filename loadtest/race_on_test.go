//go:build race

package loadtest

// raceEnabled reports that the race detector is on: it slows the CPU-bound
// group-commit path several times more than the fsync-bound baseline, so
// timing comparisons are not meaningful.
const raceEnabled = true
