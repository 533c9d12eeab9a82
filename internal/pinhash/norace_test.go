//go:build !race

package pinhash

const raceEnabled = false
