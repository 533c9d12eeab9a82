package worker

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGC: without GOGC the worker collects by memory limit only, its
// default limit sized to its hashing slots, and GOMEMLIMIT wins over the
// default; with GOGC set it leaves the runtime alone.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	def := MemoryLimit(2, 19456)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	limit, tuned := TuneGC(def, env(nil))
	if !tuned || limit != 64<<20+2*2*19456<<10 || debug.SetGCPercent(-1) != -1 {
		t.Fatalf("default: limit %d MiB, tuned %v", limit>>20, tuned)
	}
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(230 << 20) // as GOMEMLIMIT=230MiB would at start
	if limit, _ := TuneGC(def, env(nil)); limit != 230<<20 {
		t.Fatalf("with GOMEMLIMIT: limit %d MiB, want 230", limit>>20)
	}
	debug.SetGCPercent(100)
	if _, tuned := TuneGC(def, env(map[string]string{"GOGC": "100"})); tuned || debug.SetGCPercent(100) != 100 {
		t.Fatal("GOGC set: the policy was changed")
	}
}

func TestMADVFree(t *testing.T) {
	for godebug, want := range map[string]bool{
		"": false, "madvdontneed=0": true, "gctrace=1,madvdontneed=0": true, " madvdontneed=0 ": true,
		"madvdontneed=1": false, "madvdontneed=0,madvdontneed=1": false, "madvdontneed=1,madvdontneed=0": true, "xmadvdontneed=0": false,
	} {
		if got := MADVFree(func(string) string { return godebug }); got != want {
			t.Errorf("GODEBUG=%q: %v, want %v", godebug, got, want)
		}
	}
}
