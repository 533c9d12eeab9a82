package worker

import (
	"math"
	"runtime/debug"
	"strings"

	"github.com/kmwallet/pinreset/internal/config"
)

// Garbage collection for argon2id. x/crypto's argon2 allocates a fresh
// block of PINRESET_ARGON2_MEMORY_KIB (19 MiB) per hash and drops it after,
// while the rest of the worker's heap is a few MiB: under Go's default
// (GOGC=100, collect when the heap doubles) nearly every hash starts a
// collection, and two hashes side by side (the new PIN hashed ahead while
// the current one is verified) spend their time in and around it. Measured
// on this machine: a verification alone 22 ms; with the hash ahead beside it
// 52-60 ms under GOGC=100, 31-33 ms with GOGC=200 or off under a memory
// limit. So unless the operator set GOGC, the worker collects by memory
// limit only: GOGC off, and GOMEMLIMIT if set, else MemoryLimit.
//
// The collector frees those blocks; the scavenger then hands part of the
// memory back to the kernel between collections, and with the runtime's
// default MADV_DONTNEED the next hash faults it in again, page by page.
// Measured with a worker under the bench's loads: at light load (3 PIN
// sets/s) 3,400 page faults and 23-27 ms of system time per PIN set (80 ms
// of CPU in all, 51-61 ms without them); at saturation 1,100-1,400 faults and
// 6-7 ms. GODEBUG=madvdontneed=0 (MADV_FREE) leaves such pages mapped until
// the kernel needs the memory: 0-130 faults per PIN set. The runtime reads
// it at start only, so the manifests set it (deployments, with GOMEMLIMIT);
// MADVFree reports whether it is in force. Pages handed back this way count
// in RSS, not in a container's working set, until the kernel reclaims them.
//
// TuneGC returns the memory limit in force (bytes) and whether it set the
// policy. The limit is soft: the heap is kept under it by collecting harder,
// so it must leave room above the live heap (MemoryLimit does).
func TuneGC(cfg config.Worker, getenv func(string) string) (limit int64, tuned bool) {
	if getenv("GOGC") != "" {
		return debug.SetMemoryLimit(-1), false
	}
	limit = debug.SetMemoryLimit(-1) // GOMEMLIMIT, or math.MaxInt64 when unset
	if limit == math.MaxInt64 {
		limit = MemoryLimit(cfg)
		debug.SetMemoryLimit(limit)
	}
	debug.SetGCPercent(-1)
	return limit, true
}

// MemoryLimit is the default limit: 64 MiB for the runtime, the clients and
// the messages in flight, plus two argon2 blocks per hashing slot (the
// block in use and the one just dropped). At the defaults on 2 cores:
// 64 + 2 × 2 × 19 = 140 MiB. The production manifests set GOMEMLIMIT
// (192 MiB under a 256 Mi limit), which is used instead.
func MemoryLimit(cfg config.Worker) int64 {
	return 64<<20 + 2*int64(max(cfg.HashConcurrency, 1))*int64(cfg.Argon2MemoryKiB)<<10
}

// MADVFree reports whether GODEBUG makes the runtime hand memory back with
// MADV_FREE (madvdontneed=0; the last setting wins, as in the runtime).
func MADVFree(getenv func(string) string) bool {
	var last string
	for _, kv := range strings.Split(getenv("GODEBUG"), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "madvdontneed="); ok {
			last = v
		}
	}
	return last == "0"
}
