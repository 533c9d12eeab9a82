//go:build race

package pinhash

// raceEnabled: under the race detector sync.Pool drops a random quarter of
// what is put back, so tests of what the pool saves do not hold.
const raceEnabled = true
