package worker

import (
	"math"
	"runtime/debug"

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
// limit only: GOGC off, and GOMEMLIMIT if set, else memoryLimit.
//
// TuneGC returns the memory limit in force (bytes) and whether it set the
// policy. The limit is soft: the heap is kept under it by collecting harder,
// so it must leave room above the live heap (memoryLimit does).
func TuneGC(cfg config.Worker, getenv func(string) string) (limit int64, tuned bool) {
	if getenv("GOGC") != "" {
		return debug.SetMemoryLimit(-1), false
	}
	limit = debug.SetMemoryLimit(-1) // GOMEMLIMIT, or math.MaxInt64 when unset
	if limit == math.MaxInt64 {
		limit = memoryLimit(cfg)
		debug.SetMemoryLimit(limit)
	}
	debug.SetGCPercent(-1)
	return limit, true
}

// memoryLimit is the default limit: 64 MiB for the runtime, the clients and
// the messages in flight, plus two argon2 blocks per hashing slot (the
// block in use and the one just dropped). At the defaults on 2 cores:
// 64 + 2 × 2 × 19 = 140 MiB. The production manifests set GOMEMLIMIT
// (230 MiB under a 256 MiB limit), which is used instead.
func memoryLimit(cfg config.Worker) int64 {
	return 64<<20 + 2*int64(max(cfg.HashConcurrency, 1))*int64(cfg.Argon2MemoryKiB)<<10
}
