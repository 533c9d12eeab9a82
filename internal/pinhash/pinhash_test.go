package pinhash

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

// cheap keeps the tests fast: 64 KiB, one pass.
func cheap() Params { return Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32} }

func pepper(id string, fill byte) Pepper {
	return Pepper{ID: id, Key: bytes.Repeat([]byte{fill}, 32)}
}

func mustNew(t testing.TB, p Params, cur Pepper, old ...Pepper) *Hasher {
	t.Helper()
	h, err := New(p, cur, old...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func mustHash(t testing.TB, h *Hasher, pin string) string {
	t.Helper()
	enc, err := h.Hash(pin)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return enc
}

func TestDefaultParamsAreOWASP(t *testing.T) {
	want := Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if got := DefaultParams(); got != want {
		t.Fatalf("DefaultParams() = %+v, want %+v", got, want)
	}
}

func TestRoundTripDefaultParams(t *testing.T) {
	h := mustNew(t, DefaultParams(), pepper("p1", 1))
	enc := mustHash(t, h, "135790")
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1,k=p1$") {
		t.Fatalf("Hash = %q, want default parameters in the PHC string", enc)
	}
	ok, rehash, err := h.Verify("135790", enc)
	if err != nil || !ok || rehash {
		t.Fatalf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestHashIsPHCString(t *testing.T) {
	h := mustNew(t, cheap(), pepper("pep_2024-01", 1))
	enc := mustHash(t, h, "135790")
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1,k=pep_2024-01\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)
	if !re.MatchString(enc) {
		t.Fatalf("Hash = %q, not the expected PHC form", enc)
	}
}

// The pepper rule: argon2id's password is HMAC-SHA256(pepper, pin). Checked
// against an independent computation from the stored salt.
func TestPepperIsHMACSHA256OfPIN(t *testing.T) {
	p := pepper("p1", 7)
	h := mustNew(t, cheap(), p)
	enc := mustHash(t, h, "246810")
	f := strings.Split(enc, "$")
	salt, _ := base64.RawStdEncoding.DecodeString(f[4])
	got, _ := base64.RawStdEncoding.DecodeString(f[5])

	// HMAC-SHA256 by its definition (RFC 2104), not via crypto/hmac.
	want := argon2.IDKey(hmacSHA256(p.Key, []byte("246810")), salt, 1, 64, 1, 32)
	if !bytes.Equal(got, want) {
		t.Fatal("stored hash is not argon2id(HMAC-SHA256(pepper, pin), salt)")
	}
}

func TestVerifyRules(t *testing.T) {
	h := mustNew(t, cheap(), pepper("p1", 1))
	enc := mustHash(t, h, "135790")

	t.Run("right PIN verifies", func(t *testing.T) {
		ok, rehash, err := h.Verify("135790", enc)
		if err != nil || !ok || rehash {
			t.Fatalf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
		}
	})
	t.Run("wrong PIN is false without error", func(t *testing.T) {
		for _, pin := range []string{"135791", "", "1357900", "135790 "} {
			ok, rehash, err := h.Verify(pin, enc)
			if err != nil || ok || rehash {
				t.Fatalf("Verify(%q) = %v, %v, %v; want false, false, nil", pin, ok, rehash, err)
			}
		}
	})
	t.Run("same PIN under another pepper does not verify", func(t *testing.T) {
		other := mustNew(t, cheap(), pepper("p1", 2))
		ok, _, err := other.Verify("135790", enc)
		if err != nil || ok {
			t.Fatalf("Verify = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestTamperedHashOrSaltDoesNotVerify(t *testing.T) {
	h := mustNew(t, cheap(), pepper("p1", 1))
	enc := mustHash(t, h, "135790")
	f := strings.Split(enc, "$")

	flip := func(b64 string) string {
		b, _ := base64.RawStdEncoding.DecodeString(b64)
		b[0] ^= 1
		return base64.RawStdEncoding.EncodeToString(b)
	}
	cases := []struct {
		name string
		enc  string
	}{
		{"salt bit flipped", strings.Join([]string{"", f[1], f[2], f[3], flip(f[4]), f[5]}, "$")},
		{"hash bit flipped", strings.Join([]string{"", f[1], f[2], f[3], f[4], flip(f[5])}, "$")},
		{"time changed", strings.Replace(enc, "t=1,", "t=2,", 1)},
		{"memory changed", strings.Replace(enc, "m=64,", "m=128,", 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify("135790", tc.enc)
			if err != nil || ok || rehash {
				t.Fatalf("Verify = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestMalformedStringsAreErrors(t *testing.T) {
	h := mustNew(t, cheap(), pepper("p1", 1))
	enc := mustHash(t, h, "135790")
	f := strings.Split(enc, "$")
	salt, hash := f[4], f[5]
	b64 := func(n int) string { return base64.RawStdEncoding.EncodeToString(make([]byte, n)) }
	with := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + hash }

	cases := []struct {
		name string
		enc  string
	}{
		{"empty", ""},
		{"not PHC", "135790"},
		{"no leading dollar", strings.TrimPrefix(enc, "$")},
		{"missing hash", strings.Join(f[:5], "$")},
		{"missing salt and hash", strings.Join(f[:4], "$")},
		{"extra field", enc + "$AAAA"},
		{"trailing dollar", enc + "$"},
		{"unknown algorithm argon2i", strings.Replace(enc, "argon2id", "argon2i", 1)},
		{"unknown algorithm bcrypt", "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"},
		{"wrong version 16", strings.Replace(enc, "v=19", "v=16", 1)},
		{"version missing", strings.Replace(enc, "$v=19", "", 1)},
		{"version not v=", strings.Replace(enc, "v=19", "ver=19", 1)},
		{"missing m", with("t=1,p=1,k=p1")},
		{"missing k", with("m=64,t=1,p=1")},
		{"parameters reordered", with("t=1,m=64,p=1,k=p1")},
		{"extra parameter", with("m=64,t=1,p=1,k=p1,x=1")},
		{"empty parameter value", with("m=,t=1,p=1,k=p1")},
		{"non-numeric m", with("m=sixty,t=1,p=1,k=p1")},
		{"non-numeric t", with("m=64,t=1a,p=1,k=p1")},
		{"negative p", with("m=64,t=1,p=-1,k=p1")},
		{"plus sign", with("m=+64,t=1,p=1,k=p1")},
		{"leading zero", with("m=064,t=1,p=1,k=p1")},
		{"hex number", with("m=0x40,t=1,p=1,k=p1")},
		{"pepper id empty", with("m=64,t=1,p=1,k=")},
		{"pepper id bad characters", with("m=64,t=1,p=1,k=p.1")},
		{"pepper id too long", with("m=64,t=1,p=1,k=" + strings.Repeat("a", 33))},
		{"salt bad base64", "$argon2id$v=19$m=64,t=1,p=1,k=p1$!!!!!!!!!!!!!!!!!!!!!!$" + hash},
		{"hash bad base64", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + salt + "$" + hash[:40] + "@@@"},
		{"salt padded base64", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + salt + "==$" + hash},
		{"salt url base64", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + strings.Repeat("_", 22) + "$" + hash},
		{"salt with newline", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + salt[:10] + "\n" + salt[10:] + "$" + hash},
		{"hash non-canonical trailing bits", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + salt + "$" + hash[:42] + "B"},
		{"salt empty", "$argon2id$v=19$m=64,t=1,p=1,k=p1$$" + hash},
		{"absurd memory 4 GiB", with("m=4194304,t=1,p=1,k=p1")},
		{"absurd memory overflows uint32", with("m=99999999999,t=1,p=1,k=p1")},
		{"memory just over 1 GiB", with("m=1048577,t=1,p=1,k=p1")},
		{"memory below 8 per thread", with("m=15,t=1,p=2,k=p1")},
		{"time zero", with("m=64,t=0,p=1,k=p1")},
		{"absurd time", with("m=64,t=101,p=1,k=p1")},
		{"threads zero", with("m=64,t=1,p=0,k=p1")},
		{"absurd threads", with("m=4096,t=1,p=256,k=p1")},
		{"salt too short", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + b64(7) + "$" + hash},
		{"salt too long", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + b64(1025) + "$" + hash},
		{"hash too short", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + salt + "$" + b64(15)},
		{"hash too long", "$argon2id$v=19$m=64,t=1,p=1,k=p1$" + salt + "$" + b64(1025)},
		{"whole string too long", enc + strings.Repeat("A", 5000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify("135790", tc.enc)
			if !errors.Is(err, ErrMalformed) || ok || rehash {
				t.Fatalf("Verify = %v, %v, %v; want false, false, ErrMalformed", ok, rehash, err)
			}
			if tc.enc != "" && strings.Contains(err.Error(), tc.enc) {
				t.Fatalf("error %q echoes the stored string", err)
			}
		})
	}
}

func TestBoundsAreInclusive(t *testing.T) {
	// The largest accepted values parse (shown by reaching the pepper lookup
	// rather than ErrMalformed), without running a 1 GiB argon2.
	h := mustNew(t, cheap(), pepper("p1", 1))
	b64 := func(n int) string { return base64.RawStdEncoding.EncodeToString(make([]byte, n)) }
	enc := "$argon2id$v=19$m=1048576,t=100,p=255,k=" + strings.Repeat("z", 32) + "$" + b64(1024) + "$" + b64(1024)
	if _, _, err := h.Verify("1", enc); !errors.Is(err, ErrUnknownPepper) {
		t.Fatalf("Verify = %v; want ErrUnknownPepper (i.e. parsed)", err)
	}
	if _, err := New(Params{Memory: maxMemoryKiB, Time: maxTime, Threads: 255, SaltLen: maxSaltLen, KeyLen: maxKeyLen}, pepper("p1", 1)); err != nil {
		t.Fatalf("New at the upper bounds: %v", err)
	}
}

func TestPepperRotation(t *testing.T) {
	oldP, newP := pepper("2024", 1), pepper("2025", 2)
	before := mustNew(t, cheap(), oldP)
	enc := mustHash(t, before, "135790")

	after := mustNew(t, cheap(), newP, oldP)
	t.Run("hash under old pepper verifies and needs rehash", func(t *testing.T) {
		ok, rehash, err := after.Verify("135790", enc)
		if err != nil || !ok || !rehash {
			t.Fatalf("Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
		}
	})
	t.Run("wrong PIN under old pepper needs no rehash", func(t *testing.T) {
		ok, rehash, err := after.Verify("000000", enc)
		if err != nil || ok || rehash {
			t.Fatalf("Verify = %v, %v, %v; want false, false, nil", ok, rehash, err)
		}
	})
	t.Run("rehash uses the new pepper and then needs no rehash", func(t *testing.T) {
		enc2 := mustHash(t, after, "135790")
		if !strings.Contains(enc2, ",k=2025$") {
			t.Fatalf("Hash = %q, want k=2025", enc2)
		}
		ok, rehash, err := after.Verify("135790", enc2)
		if err != nil || !ok || rehash {
			t.Fatalf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
		}
	})
	t.Run("unknown pepper id is an error", func(t *testing.T) {
		only := mustNew(t, cheap(), newP)
		ok, rehash, err := only.Verify("135790", enc)
		if !errors.Is(err, ErrUnknownPepper) || ok || rehash {
			t.Fatalf("Verify = %v, %v, %v; want false, false, ErrUnknownPepper", ok, rehash, err)
		}
		if !strings.Contains(err.Error(), `"2024"`) {
			t.Fatalf("error %q should name the (non-secret) pepper id", err)
		}
	})
	t.Run("relabelled pepper id does not verify", func(t *testing.T) {
		relabelled := strings.Replace(enc, ",k=2024$", ",k=2025$", 1)
		ok, _, err := after.Verify("135790", relabelled)
		if err != nil || ok {
			t.Fatalf("Verify = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestParamsChangeNeedsRehash(t *testing.T) {
	p := pepper("p1", 1)
	enc := mustHash(t, mustNew(t, cheap(), p), "135790")
	cases := []struct {
		name   string
		params Params
	}{
		{"memory", Params{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"time", Params{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"threads", Params{Memory: 64, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}},
		{"salt length", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 32, KeyLen: 32}},
		{"key length", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 64}},
		{"weaker too", Params{Memory: 32, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := mustNew(t, tc.params, p)
			ok, rehash, err := h.Verify("135790", enc)
			if err != nil || !ok || !rehash {
				t.Fatalf("Verify = %v, %v, %v; want true, true, nil", ok, rehash, err)
			}
		})
	}
}

func TestSamePINHashesDiffer(t *testing.T) {
	h := mustNew(t, cheap(), pepper("p1", 1))
	a, b := mustHash(t, h, "135790"), mustHash(t, h, "135790")
	if a == b {
		t.Fatal("two hashes of the same PIN are equal: salt not random")
	}
	if strings.Split(a, "$")[4] == strings.Split(b, "$")[4] {
		t.Fatal("two hashes share a salt")
	}
}

func TestNewValidates(t *testing.T) {
	good := pepper("p1", 1)
	cases := []struct {
		name string
		p    Params
		cur  Pepper
		old  []Pepper
		ok   bool
	}{
		{"defaults", DefaultParams(), good, nil, true},
		{"cheap()", cheap(), good, nil, true},
		{"memory exactly 8 per thread", Params{Memory: 32, Time: 1, Threads: 4, SaltLen: 8, KeyLen: 16}, good, nil, true},
		{"zero params", Params{}, good, nil, false},
		{"memory below 8 per thread", Params{Memory: 31, Time: 1, Threads: 4, SaltLen: 16, KeyLen: 32}, good, nil, false},
		{"memory over 1 GiB", Params{Memory: maxMemoryKiB + 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, good, nil, false},
		{"time zero", Params{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}, good, nil, false},
		{"time over 100", Params{Memory: 64, Time: 101, Threads: 1, SaltLen: 16, KeyLen: 32}, good, nil, false},
		{"threads zero", Params{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32}, good, nil, false},
		{"salt under 8", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 7, KeyLen: 32}, good, nil, false},
		{"salt over 1024", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 1025, KeyLen: 32}, good, nil, false},
		{"key under 16", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 15}, good, nil, false},
		{"key over 1024", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 1025}, good, nil, false},
		{"pepper key 16 bytes", cheap(), Pepper{ID: "p1", Key: make([]byte, 16)}, nil, true},
		{"pepper key under 16 bytes", cheap(), Pepper{ID: "p1", Key: make([]byte, 15)}, nil, false},
		{"pepper key nil", cheap(), Pepper{ID: "p1"}, nil, false},
		{"pepper id empty", cheap(), pepper("", 1), nil, false},
		{"pepper id 32 chars", cheap(), pepper(strings.Repeat("a", 32), 1), nil, true},
		{"pepper id 33 chars", cheap(), pepper(strings.Repeat("a", 33), 1), nil, false},
		{"pepper id with dollar", cheap(), pepper("p$1", 1), nil, false},
		{"pepper id with comma", cheap(), pepper("p,1", 1), nil, false},
		{"pepper id with colon", cheap(), pepper("p:1", 1), nil, false},
		{"pepper id all allowed characters", cheap(), pepper("aZ09_-", 1), nil, true},
		{"old peppers", cheap(), good, []Pepper{pepper("p0", 2), pepper("p-1", 3)}, true},
		{"old pepper duplicates current id", cheap(), good, []Pepper{pepper("p1", 2)}, false},
		{"old peppers duplicate each other", cheap(), good, []Pepper{pepper("p0", 2), pepper("p0", 3)}, false},
		{"old pepper key too short", cheap(), good, []Pepper{{ID: "p0", Key: []byte("short")}}, false},
		{"old pepper id bad", cheap(), good, []Pepper{pepper("p 0", 2)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(tc.p, tc.cur, tc.old...)
			if (err == nil) != tc.ok {
				t.Fatalf("New error = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				for _, pep := range append([]Pepper{tc.cur}, tc.old...) {
					if len(pep.Key) > 0 && strings.Contains(err.Error(), string(pep.Key)) {
						t.Fatalf("error %q contains a pepper key", err)
					}
				}
				return
			}
			if h.Params() != tc.p {
				t.Fatalf("Params() = %+v, want %+v", h.Params(), tc.p)
			}
		})
	}
}

func TestNewCopiesPepperKey(t *testing.T) {
	p := pepper("p1", 1)
	h := mustNew(t, cheap(), p)
	enc := mustHash(t, h, "135790")
	for i := range p.Key {
		p.Key[i] = 0 // caller wipes its copy
	}
	if ok, _, err := h.Verify("135790", enc); err != nil || !ok {
		t.Fatalf("Verify after caller wiped its key = %v, %v; want true, nil", ok, err)
	}
}

func TestZeroHasherErrors(t *testing.T) {
	for name, h := range map[string]*Hasher{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			if _, err := h.Hash("1"); err == nil {
				t.Fatal("Hash on an unbuilt Hasher: want error")
			}
			if ok, _, err := h.Verify("1", "$argon2id$v=19$m=64,t=1,p=1,k=p1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"); err == nil || ok {
				t.Fatal("Verify on an unbuilt Hasher: want error")
			}
			_ = h.Params()
		})
	}
}

func TestParsePepper(t *testing.T) {
	key32 := bytes.Repeat([]byte{0xA5}, 32)
	b64 := base64.StdEncoding.EncodeToString
	cases := []struct {
		name    string
		in      string
		wantID  string
		wantKey []byte
	}{
		{"id and 32 bytes", "p2025:" + b64(key32), "p2025", key32},
		{"16 bytes is enough", "a:" + b64(key32[:16]), "a", key32[:16]},
		{"surrounding white space ignored", "  p1:" + b64(key32) + "\n", "p1", key32},
		{"15 bytes is too short", "p1:" + b64(key32[:15]), "", nil},
		{"no colon", b64(key32), "", nil},
		{"empty", "", "", nil},
		{"empty id", ":" + b64(key32), "", nil},
		{"bad id", "p.1:" + b64(key32), "", nil},
		{"empty key", "p1:", "", nil},
		{"unpadded base64", "p1:" + strings.TrimRight(b64(key32), "="), "", nil},
		{"url base64", "p1:" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xFB}, 32)), "", nil},
		{"not base64", "p1:not base64 at all!!", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePepper(tc.in)
			if tc.wantKey == nil {
				if err == nil {
					t.Fatalf("ParsePepper = %v, want error", p)
				}
				if _, secret, ok := strings.Cut(tc.in, ":"); ok && len(strings.TrimSpace(secret)) > 2 && strings.Contains(err.Error(), strings.TrimSpace(secret)) {
					t.Fatalf("error %q contains the key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePepper: %v", err)
			}
			if p.ID != tc.wantID || !bytes.Equal(p.Key, tc.wantKey) {
				t.Fatalf("ParsePepper = %q/%x, want %q/%x", p.ID, p.Key, tc.wantID, tc.wantKey)
			}
		})
	}
}

func TestSecretsNeverFormatted(t *testing.T) {
	key := []byte("0123456789abcdef-SECRET-PEPPER!!")
	p := Pepper{ID: "p1", Key: key}
	h := mustNew(t, cheap(), p, Pepper{ID: "p0", Key: []byte("another-secret-pepper-key-000000")})

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "pepper", p, "hasher", h)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "pepper", p, "hasher", h)
	js, _ := json.Marshal(struct{ P Pepper }{p})

	outs := []string{
		p.String(), fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %x", &p, &p, &p, &p),
		fmt.Sprintf("%v %+v %#v %s %x %d", h, h, h, h, h, h),
		logs.String(), string(js),
	}
	// Every verb, %d included: a variable format, because vet rightly
	// questions %d of a struct, and leaking through it is what is tested.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, p))
	}
	for _, out := range outs {
		for _, secret := range []string{"SECRET", "another-secret", fmt.Sprintf("%x", key), fmt.Sprint(key), base64.StdEncoding.EncodeToString(key)} {
			if strings.Contains(out, secret) {
				t.Fatalf("output %q contains the pepper key", out)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(p), "p1") {
		t.Fatalf("String() = %q, want the id for diagnosis", p)
	}
}

func TestConcurrentUse(t *testing.T) {
	h := mustNew(t, cheap(), pepper("p1", 1))
	enc := mustHash(t, h, "135790")
	done := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			if _, err := h.Hash("246810"); err != nil {
				done <- err
				return
			}
			ok, _, err := h.Verify("135790", enc)
			if err == nil && !ok {
				err = errors.New("did not verify")
			}
			done <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentHashesInPooledMemory: hashes and verifications running at
// once, in memory the Hasher reuses unzeroed, store x/crypto's argon2.IDKey
// bytes, also when a stored hash has more or less memory, or more lanes, than
// the Hasher (so it computes in memory of its own, or in part of a pooled
// one). Run under -race, it also checks that no two hashes share memory.
func TestConcurrentHashesInPooledMemory(t *testing.T) {
	p := pepper("p1", 3)
	own := Params{Memory: 256, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	h := mustNew(t, own, p)
	others := []Params{
		{Memory: 512, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},   // more memory: not pooled
		{Memory: 100, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 64},   // less: part of a pooled Memory
		{Memory: 250, Time: 1, Threads: 4, SaltLen: 8, KeyLen: 16},    // four lanes, 248 blocks
		{Memory: 256, Time: 1, Threads: 16, SaltLen: 16, KeyLen: 100}, // 16 lanes of 16 blocks
	}
	stored := make([]string, len(others))
	for i, o := range others {
		stored[i] = mustHash(t, mustNew(t, o, p), "135790")
	}
	// matchesXCrypto checks enc's hash is x/crypto's argon2id of pin under p.
	matchesXCrypto := func(enc, pin string) error {
		s, err := parse(enc)
		if err != nil {
			return err
		}
		want := argon2.IDKey(hmacSHA256(p.Key, []byte(pin)), s.salt, s.params.Time, s.params.Memory, s.params.Threads, s.params.KeyLen)
		if !bytes.Equal(s.hash, want) {
			return fmt.Errorf("%s: hash is not x/crypto's argon2id", enc)
		}
		return nil
	}
	for _, enc := range stored {
		if err := matchesXCrypto(enc, "135790"); err != nil {
			t.Fatal(err)
		}
	}
	const goroutines, rounds = 6, 8
	errs := make(chan error, goroutines*rounds*2)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for r := range rounds {
				pin := fmt.Sprintf("%06d", g*100+r)
				enc, err := h.Hash(pin)
				if err == nil {
					err = matchesXCrypto(enc, pin)
				}
				if err != nil {
					errs <- err
				}
				ok, _, err := h.Verify("135790", stored[(g+r)%len(stored)])
				if err == nil && !ok {
					err = fmt.Errorf("stored hash %d did not verify", (g+r)%len(stored))
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHashAllocatesNoArgon2Blocks: hashes at the default parameters reuse
// their 19 MiB of argon2 memory. Each allocates only a few KiB (the salt, the
// HMAC, the string; argon2's key and blake2b state), besides at most one
// Memory per P: a goroutine that moved to another P finds the pool's idle
// Memory in its old P's private slot, which sync.Pool does not steal from.
func TestHashAllocatesNoArgon2Blocks(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a collection would empty the pool
	h := mustNew(t, DefaultParams(), pepper("p1", 1))
	enc := mustHash(t, h, "135790")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const pairs = 8
	for range pairs {
		mustHash(t, h, "135790")
		if ok, _, err := h.Verify("135790", enc); !ok || err != nil {
			t.Fatalf("Verify = %v, %v", ok, err)
		}
	}
	runtime.ReadMemStats(&after)
	total := after.TotalAlloc - before.TotalAlloc
	bound := uint64(runtime.GOMAXPROCS(0)-1)*uint64(DefaultParams().Memory)<<10 + pairs*(64<<10)
	t.Logf("%d Hash and Verify pairs allocated %d bytes", pairs, total)
	if total > bound {
		t.Fatalf("%d Hash and Verify pairs allocated %d bytes, want at most %d", pairs, total, bound)
	}
}

// hmacSHA256 is RFC 2104 written out, to check the pepper construction
// independently of crypto/hmac.
func hmacSHA256(key, msg []byte) []byte {
	const block = 64
	if len(key) > block {
		s := sha256.Sum256(key)
		key = s[:]
	}
	k := make([]byte, block)
	copy(k, key)
	ipad, opad := make([]byte, block), make([]byte, block)
	for i := range k {
		ipad[i], opad[i] = k[i]^0x36, k[i]^0x5c
	}
	inner := sha256.Sum256(append(ipad, msg...))
	outer := sha256.Sum256(append(opad, inner[:]...))
	return outer[:]
}

func BenchmarkHashDefault(b *testing.B) {
	h := mustNew(b, DefaultParams(), pepper("p1", 1))
	mustHash(b, h, "135790") // the pool's argon2 memory, allocated outside the measure
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash("135790"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashCheap(b *testing.B) {
	h := mustNew(b, cheap(), pepper("p1", 1))
	mustHash(b, h, "135790") // the pool's argon2 memory, allocated outside the measure
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash("135790"); err != nil {
			b.Fatal(err)
		}
	}
}
