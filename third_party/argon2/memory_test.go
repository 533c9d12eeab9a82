// Tests of the patch (PATCHES.md): hashes computed in reused, unzeroed
// Memory are the bytes golang.org/x/crypto/argon2 computes.

package argon2

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xargon2 "golang.org/x/crypto/argon2"
)

// dirty fills m's blocks with junk from r: what a previous hash leaves there,
// or worse.
func dirty(m *Memory, r *rand.Rand) {
	for i := range m.blocks {
		for j := range m.blocks[i] {
			m.blocks[i][j] = r.Uint64()
		}
	}
}

// simdAndGeneric runs f with the SIMD path when this machine has one, then
// with the generic Go path; second says whether f ran before.
func simdAndGeneric(t *testing.T, f func(t *testing.T, second bool)) {
	t.Helper()
	defer func(sse4, lsx bool) { useSSE4, useLSX = sse4, lsx }(useSSE4, useLSX)
	simd := useSSE4 || useLSX
	if simd {
		t.Run("simd", func(t *testing.T) { f(t, false) })
	}
	useSSE4, useLSX = false, false
	t.Run("generic", func(t *testing.T) { f(t, simd) })
}

// TestRFC9106VectorsInReusedMemory: RFC 9106 section 5's vectors (5.3 is
// argon2id; secret and associated data go through deriveKeyIn, as IDKey takes
// neither), computed in memory full of junk, of ones, and left by the
// previous vector.
func TestRFC9106VectorsInReusedMemory(t *testing.T) {
	vectors := []struct {
		name string
		mode int
		tag  string
	}{
		{"5.1 argon2d", argon2d, "512b391b6f1162975371d3091973429" + "4f868e3be3984f3c1a13a4db9fabe4acb"},
		{"5.2 argon2i", argon2i, "c814d9d1dc7f37aa13f0d77f2494bda1" + "c8de6b016dd388d29952a4c4672b6ce8"},
		{"5.3 argon2id", argon2id, "0d640df58d78766c08c037a34a8b53c9" + "d01ef0452d75b65eb52520e96b01e659"},
	}
	simdAndGeneric(t, func(t *testing.T, second bool) {
		m := NewMemory(64, 4) // 64 blocks; the vectors use 32
		r := rand.New(rand.NewPCG(1, 2))
		for _, fill := range []string{"junk", "ones", "previous"} {
			for _, v := range vectors {
				switch fill {
				case "junk":
					dirty(m, r)
				case "ones":
					for i := range m.blocks {
						for j := range m.blocks[i] {
							m.blocks[i][j] = ^uint64(0)
						}
					}
				}
				got := deriveKeyIn(m.blocks, v.mode, genKatPassword, genKatSalt, genKatSecret, genKatAAD, 3, 32, 4, 32)
				if hex.EncodeToString(got) != v.tag {
					t.Errorf("%s in memory of %s: %x, want %s", v.name, fill, got, v.tag)
				}
			}
		}
	})
}

// TestXCryptoVectorsInReusedMemory: the vectors of x/crypto's own tests
// (argon2_test.go, testVectors), computed in one Memory reused from vector to
// vector.
func TestXCryptoVectorsInReusedMemory(t *testing.T) {
	simdAndGeneric(t, func(t *testing.T, second bool) {
		m := NewMemory(256, 1)
		dirty(m, rand.New(rand.NewPCG(3, 4)))
		for i, v := range testVectors {
			got := deriveKeyIn(m.blocks, v.mode, []byte("password"), []byte("somesalt"), nil, nil, v.time, v.memory, v.threads, uint32(len(v.hash)/2))
			if hex.EncodeToString(got) != v.hash {
				t.Errorf("vector %d: %x, want %s", i, got, v.hash)
			}
		}
	})
}

// params is one random argon2id input.
type params struct {
	password, salt       []byte
	time, memory, keyLen uint32
	threads              uint8
}

func (p params) String() string {
	return fmt.Sprintf("t=%d m=%d p=%d keyLen=%d password=%x salt=%x", p.time, p.memory, p.threads, p.keyLen, p.password, p.salt)
}

// randomParams draws small parameters, so that thousands run in seconds: 1
// to 3 passes, up to 8 lanes, memory from 0 to 128 KiB (mostly not a
// multiple of 4*threads, often under the minimum of 8*threads), keys of 1 to
// 1100 bytes (blake2b's short and long output), passwords and salts of 0 to
// 64 bytes. One in 50 has 1 or 2 lanes of 600 to 2100 KiB, so that the
// segments of argon2id's first half pass exceed 128 blocks and it makes more
// than one block of addresses.
func randomParams(r *rand.Rand) params {
	p := params{time: 1 + r.Uint32N(3), threads: 1}
	if r.IntN(2) == 0 {
		p.threads = uint8(2 + r.IntN(7))
	}
	p.memory = r.Uint32N(129)
	if r.IntN(50) == 0 {
		p.threads, p.memory = uint8(1+r.IntN(2)), 600+r.Uint32N(1501)
	}
	switch r.IntN(4) {
	case 0:
		p.keyLen = 1 + r.Uint32N(64)
	case 1:
		p.keyLen = 65 + r.Uint32N(1036)
	default:
		p.keyLen = 32
	}
	p.password = make([]byte, r.IntN(65))
	p.salt = make([]byte, r.IntN(65))
	for _, b := range [][]byte{p.password, p.salt} {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}
	return p
}

// TestIDKeyMatchesXCrypto: Memory.IDKey gives x/crypto's argon2.IDKey bytes
// for 10,000 random inputs and parameter sets (1,000 more on the generic path),
// in one Memory of 1 MiB reused throughout: left as the previous hash left
// it, now and then filled with junk, and too small for some parameter sets
// (which then compute in memory of their own, leaving the Memory as it was).
func TestIDKeyMatchesXCrypto(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	simdAndGeneric(t, func(t *testing.T, second bool) {
		n := n
		if second {
			n = min(n, 1_000)
		}
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d, %d cases", seed, n)
		r := rand.New(rand.NewPCG(seed, 24))
		m := NewMemory(1024, 1)
		blocks := &m.blocks[0]
		for i := range n {
			if i%16 == 0 {
				dirty(m, r)
			}
			p := randomParams(r)
			want := xargon2.IDKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen)
			got := m.IDKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen)
			if !bytes.Equal(got, want) {
				t.Fatalf("case %d (%v): got %x, want %x", i, p, got, want)
			}
			if len(m.blocks) != 1024 || &m.blocks[0] != blocks {
				t.Fatalf("case %d (%v): the Memory's blocks changed", i, p)
			}
		}
	})
}

// TestDefaultParamsMatchXCrypto: at the worker's parameters (m=19456 KiB,
// t=2, p=1), in a Memory filled with junk, and again as that hash left it.
func TestDefaultParamsMatchXCrypto(t *testing.T) {
	m := NewMemory(19456, 1)
	dirty(m, rand.New(rand.NewPCG(7, 8)))
	for _, pin := range []string{"135790", "246810"} {
		want := xargon2.IDKey([]byte(pin), []byte("0123456789abcdef"), 2, 19456, 1, 32)
		if got := m.IDKey([]byte(pin), []byte("0123456789abcdef"), 2, 19456, 1, 32); !bytes.Equal(got, want) {
			t.Fatalf("%s: got %x, want %x", pin, got, want)
		}
	}
}

// TestMemoryIDKeyAllocatesNoBlocks: at 1 MiB, a hash in a Memory allocates a
// few KiB (the key, blake2b's state, the lanes' goroutines), not its blocks;
// IDKey allocates them every time.
func TestMemoryIDKeyAllocatesNoBlocks(t *testing.T) {
	const memory = 1024 // KiB
	m := NewMemory(memory, 1)
	perHash := func(f func()) uint64 {
		f() // warm up
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 10
		for range runs {
			f()
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / runs
	}
	pooled := perHash(func() { m.IDKey([]byte("pin"), []byte("somesalt"), 1, memory, 1, 32) })
	upstream := perHash(func() { IDKey([]byte("pin"), []byte("somesalt"), 1, memory, 1, 32) })
	t.Logf("bytes allocated per hash: Memory.IDKey %d, IDKey %d", pooled, upstream)
	if pooled > 64<<10 {
		t.Errorf("Memory.IDKey allocates %d bytes per hash, want under 64 KiB", pooled)
	}
	if upstream < memory<<10 {
		t.Errorf("IDKey allocates %d bytes per hash, want its 1 MiB of blocks: is the measure broken?", upstream)
	}
}

// TestConcurrentPooledHashes: hashes running at once, each in a Memory from a
// sync.Pool (as internal/pinhash uses them), give x/crypto's bytes; run
// under -race, this also checks that no two hashes share a Memory and that a
// Memory's lanes write only their own blocks.
func TestConcurrentPooledHashes(t *testing.T) {
	const goroutines, each = 8, 25
	r := rand.New(rand.NewPCG(5, 6))
	cases := make([]params, goroutines*each)
	want := make([][]byte, len(cases))
	for i := range cases {
		p := randomParams(r)
		p.threads = 1 + p.threads%4
		cases[i] = p
		want[i] = xargon2.IDKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen)
	}
	pool := sync.Pool{New: func() any { return NewMemory(1024, 1) }}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(cases); i = int(next.Add(1) - 1) {
				p := cases[i]
				m := pool.Get().(*Memory)
				got := m.IDKey(p.password, p.salt, p.time, p.memory, p.threads, p.keyLen)
				pool.Put(m)
				if !bytes.Equal(got, want[i]) {
					t.Errorf("case %d (%v): got %x, want %x", i, p, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// FuzzIDKeyMatchesXCrypto: Memory.IDKey, in memory filled with junk, gives
// x/crypto's argon2.IDKey bytes. Parameters are bounded so that each run takes
// about a millisecond: 1 to 3 passes, 1 to 8 lanes, 0 to 512 KiB, keys of 1 to
// 1100 bytes.
func FuzzIDKeyMatchesXCrypto(f *testing.F) {
	f.Add([]byte("password"), []byte("somesalt"), uint8(1), uint16(64), uint8(0), uint16(31), uint64(0))
	f.Add([]byte{}, []byte{}, uint8(2), uint16(0), uint8(3), uint16(1099), uint64(1))
	f.Add([]byte("135790"), []byte("0123456789abcdef"), uint8(0), uint16(101), uint8(2), uint16(64), uint64(2))
	f.Fuzz(func(t *testing.T, password, salt []byte, passes uint8, memory uint16, threads uint8, keyLen uint16, junk uint64) {
		tm, mem, th, kl := 1+uint32(passes%3), uint32(memory%513), 1+threads%8, 1+uint32(keyLen%1100)
		m := NewMemory(512, 1)
		dirty(m, rand.New(rand.NewPCG(junk, ^junk)))
		want := xargon2.IDKey(password, salt, tm, mem, th, kl)
		got := m.IDKey(password, salt, tm, mem, th, kl)
		if !bytes.Equal(got, want) {
			t.Fatalf("t=%d m=%d p=%d keyLen=%d: got %x, want %x", tm, mem, th, kl, got, want)
		}
	})
}

// The benchmarks compare x/crypto's IDKey with Memory.IDKey (a Memory per
// hash from a sync.Pool, as internal/pinhash uses it) at the worker's default
// parameters, m=19456 KiB, t=2, p=1: one hash at a time, and two at once (as
// the worker runs them on 2 cores: a verification beside the new PIN hashed
// ahead). Two at once, ns/op is wall time per hash (throughput) and ms/hash
// the time each hash took (latency). cpu-ms/op is the process's CPU time
// (user and system: the collector's work and page faults too), less swayed
// than ns/op by a busy machine. GCs/op counts the collections the garbage
// started (under GOGC=100, as go test runs; none under GOGC=off).
func BenchmarkIDKey(b *testing.B) {
	const t, m, p, keyLen = 2, 19456, 1, 32
	password, salt := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{2}, 16)
	pool := sync.Pool{New: func() any { return NewMemory(m, p) }}
	impls := []struct {
		name string
		hash func()
	}{
		{"xcrypto", func() { xargon2.IDKey(password, salt, t, m, p, keyLen) }},
		{"pooled", func() {
			mem := pool.Get().(*Memory)
			mem.IDKey(password, salt, t, m, p, keyLen)
			pool.Put(mem)
		}},
	}
	for _, impl := range impls {
		b.Run(impl.name+"/alone", func(b *testing.B) {
			impl.hash() // the pool's Memory, allocated outside the measure
			b.ReportAllocs()
			defer measure(b)()
			for b.Loop() {
				impl.hash()
			}
		})
		b.Run(impl.name+"/two-at-once", func(b *testing.B) {
			var warm sync.WaitGroup // the pool's two Memory, outside the measure
			warm.Go(impl.hash)
			warm.Go(impl.hash)
			warm.Wait()
			b.ReportAllocs()
			defer measure(b)()
			var next, busy atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range 2 {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						impl.hash()
						busy.Add(int64(time.Since(start)))
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(busy.Load())/float64(b.N)/1e6, "ms/hash")
		})
	}
}

// measure returns the func that reports the collections and the CPU time
// since, per op.
func measure(b *testing.B) func() {
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0, cpuOK := cpuTime()
	return func() {
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.NumGC-before.NumGC)/float64(b.N), "GCs/op")
		if cpu1, ok := cpuTime(); ok && cpuOK {
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
		}
	}
}
