package worker

import (
	"math"
	"runtime/debug"
	"strings"
)

// Garbage collection for argon2id. Each hash needs a block of
// PINRESET_ARGON2_MEMORY_KIB (19 MiB), which pinhash keeps in a pool and
// reuses (third_party/argon2), so hashing leaves next to no garbage; the
// pooled blocks are live heap, several times the rest of the worker's. The
// worker therefore collects by memory limit only, unless the operator set
// GOGC: GOGC off, and GOMEMLIMIT if set, else MemoryLimit. The limit states
// the bound directly; a GOGC percentage would only scale it by the pool.
//
// GODEBUG=madvdontneed=0 (MADV_FREE) lets memory the scavenger hands back
// stay mapped until the kernel needs it, so a block allocated again (a
// stored hash under larger parameters, the pool's spares after a
// collection) is not faulted in page by page. The runtime reads it at
// start only, so the manifests set it (deployments, with GOMEMLIMIT);
// MADVFree reports whether it is in force. Such pages count in RSS, not in
// a container's working set, until the kernel reclaims them.
//
// TuneGC returns the memory limit in force (bytes) and whether it set the
// policy; without GOMEMLIMIT the limit is def (MemoryLimit's). The limit is
// soft: the heap is kept under it by collecting harder, so it must leave
// room above the live heap (MemoryLimit does).
func TuneGC(def int64, getenv func(string) string) (limit int64, tuned bool) {
	if getenv("GOGC") != "" {
		return debug.SetMemoryLimit(-1), false
	}
	limit = debug.SetMemoryLimit(-1) // GOMEMLIMIT, or math.MaxInt64 when unset
	if limit == math.MaxInt64 {
		limit = def
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
// hashConcurrency and argon2MemoryKiB are PINRESET_HASH_CONCURRENCY and
// PINRESET_ARGON2_MEMORY_KIB.
func MemoryLimit(hashConcurrency int, argon2MemoryKiB uint32) int64 {
	return 64<<20 + 2*int64(max(hashConcurrency, 1))*int64(argon2MemoryKiB)<<10
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
