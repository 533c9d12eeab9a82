package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func key(id string, fill byte) Key {
	return Key{ID: id, Secret: bytes.Repeat([]byte{fill}, KeySize)}
}

func mustKeyring(t testing.TB, cur Key, old ...Key) *Keyring {
	t.Helper()
	k, err := NewKeyring(cur, old...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func mustSeal(t testing.TB, k *Keyring, pt, aad []byte) Envelope {
	t.Helper()
	e, err := k.Seal(pt, aad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return e
}

func clone(e Envelope) Envelope {
	return Envelope{KeyID: e.KeyID, Nonce: bytes.Clone(e.Nonce), Ciphertext: bytes.Clone(e.Ciphertext)}
}

// The secret fields of a command and its correlation id, the usual aad.
const (
	pinJSON = `{"currentPassword":"135790","newPassword":"246810"}`
	corrID  = "7f1c2b6e-3c1a-4d8e-9b2f-0a1b2c3d4e5f"
)

func TestRoundTrip(t *testing.T) {
	k := mustKeyring(t, key("k1", 1))
	for _, pt := range [][]byte{[]byte(pinJSON), {}, bytes.Repeat([]byte{0xff}, 4096)} {
		e := mustSeal(t, k, pt, []byte(corrID))
		if e.KeyID != "k1" || len(e.Nonce) != NonceSize || len(e.Ciphertext) != len(pt)+16 {
			t.Fatalf("Envelope kid=%q nonce=%d ct=%d; want k1, %d, %d", e.KeyID, len(e.Nonce), len(e.Ciphertext), NonceSize, len(pt)+16)
		}
		if len(pt) > 0 && bytes.Contains(e.Ciphertext, pt) {
			t.Fatal("ciphertext contains the plaintext")
		}
		got, err := k.Open(e, []byte(corrID))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, %v; want %q, nil", got, err, pt)
		}
	}
}

func TestRoundTripThroughJSON(t *testing.T) {
	k := mustKeyring(t, key("k1", 1))
	raw, err := json.Marshal(mustSeal(t, k, []byte(pinJSON), []byte(corrID)))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("135790")) {
		t.Fatalf("JSON %s contains the PIN", raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m["kid"] != "k1" || m["nonce"] == nil || m["ct"] == nil {
		t.Fatalf("JSON %s: want fields kid, nonce, ct", raw)
	}
	var e Envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(e, []byte(corrID)); err != nil || !bytes.Equal(got, []byte(pinJSON)) {
		t.Fatalf("Open after JSON = %q, %v", got, err)
	}
}

func TestNoncesAreFresh(t *testing.T) {
	k := mustKeyring(t, key("k1", 1))
	a, b := mustSeal(t, k, []byte(pinJSON), []byte(corrID)), mustSeal(t, k, []byte(pinJSON), []byte(corrID))
	if bytes.Equal(a.Nonce, b.Nonce) || bytes.Equal(a.Ciphertext, b.Ciphertext) {
		t.Fatal("two seals of the same plaintext share a nonce or ciphertext")
	}
}

func TestTamperingFailsToOpen(t *testing.T) {
	k := mustKeyring(t, key("k1", 1))
	e := mustSeal(t, k, []byte(pinJSON), []byte(corrID))
	cases := []struct {
		name   string
		mutate func(*Envelope)
		aad    []byte
	}{
		{"wrong aad (another correlation id)", nil, []byte("7f1c2b6e-3c1a-4d8e-9b2f-0a1b2c3d4e50")},
		{"empty aad", nil, nil},
		{"aad with kid prefix moved", nil, append([]byte("k1\x00"), []byte(corrID)...)},
		{"ciphertext bit flipped", func(e *Envelope) { e.Ciphertext[0] ^= 1 }, []byte(corrID)},
		{"tag bit flipped", func(e *Envelope) { e.Ciphertext[len(e.Ciphertext)-1] ^= 0x80 }, []byte(corrID)},
		{"ciphertext truncated", func(e *Envelope) { e.Ciphertext = e.Ciphertext[:len(e.Ciphertext)-1] }, []byte(corrID)},
		{"ciphertext extended", func(e *Envelope) { e.Ciphertext = append(e.Ciphertext, 0) }, []byte(corrID)},
		{"ciphertext shorter than tag", func(e *Envelope) { e.Ciphertext = e.Ciphertext[:15] }, []byte(corrID)},
		{"ciphertext empty", func(e *Envelope) { e.Ciphertext = nil }, []byte(corrID)},
		{"nonce bit flipped", func(e *Envelope) { e.Nonce[23] ^= 1 }, []byte(corrID)},
		{"nonce too short", func(e *Envelope) { e.Nonce = e.Nonce[:12] }, []byte(corrID)},
		{"nonce too long", func(e *Envelope) { e.Nonce = append(e.Nonce, 0) }, []byte(corrID)},
		{"nonce missing", func(e *Envelope) { e.Nonce = nil }, []byte(corrID)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := clone(e)
			if tc.mutate != nil {
				tc.mutate(&c)
			}
			got, err := k.Open(c, tc.aad)
			if !errors.Is(err, ErrOpen) || got != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrOpen", got, err)
			}
		})
	}
}

func TestUnknownKeyID(t *testing.T) {
	e := mustSeal(t, mustKeyring(t, key("k1", 1)), []byte(pinJSON), []byte(corrID))
	k := mustKeyring(t, key("k2", 2))
	got, err := k.Open(e, []byte(corrID))
	if !errors.Is(err, ErrUnknownKey) || got != nil {
		t.Fatalf("Open = %q, %v; want nil, ErrUnknownKey", got, err)
	}
	if !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("error %q should name the (non-secret) key id", err)
	}

	// A kid that is not a valid id is still ErrUnknownKey, and not echoed.
	e.KeyID = "evil\nkid\x00" + strings.Repeat("x", 100)
	if _, err := k.Open(e, []byte(corrID)); !errors.Is(err, ErrUnknownKey) || strings.Contains(err.Error(), "evil") {
		t.Fatalf("Open = %v; want ErrUnknownKey not echoing the kid", err)
	}
}

func TestRotation(t *testing.T) {
	oldK, newK := key("2024", 1), key("2025", 2)
	before := mustKeyring(t, oldK)
	e := mustSeal(t, before, []byte(pinJSON), []byte(corrID))

	after := mustKeyring(t, newK, oldK)
	t.Run("sealed under old key opens after rotation", func(t *testing.T) {
		if got, err := after.Open(e, []byte(corrID)); err != nil || !bytes.Equal(got, []byte(pinJSON)) {
			t.Fatalf("Open = %q, %v; want plaintext", got, err)
		}
	})
	t.Run("new seals use the new key id", func(t *testing.T) {
		e2 := mustSeal(t, after, []byte(pinJSON), []byte(corrID))
		if e2.KeyID != "2025" {
			t.Fatalf("KeyID = %q, want 2025", e2.KeyID)
		}
		if _, err := before.Open(e2, []byte(corrID)); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("old keyring Open = %v; want ErrUnknownKey", err)
		}
		if got, err := mustKeyring(t, newK).Open(e2, []byte(corrID)); err != nil || !bytes.Equal(got, []byte(pinJSON)) {
			t.Fatalf("Open with new key only = %q, %v", got, err)
		}
	})
}

func TestRelabelledKeyIDFails(t *testing.T) {
	// Both ids share one secret, so only binding the kid into the AAD can
	// tell them apart.
	same := bytes.Repeat([]byte{9}, KeySize)
	k := mustKeyring(t, Key{ID: "a", Secret: same}, Key{ID: "b", Secret: same}, key("c", 3))
	e := mustSeal(t, k, []byte(pinJSON), []byte(corrID))
	for _, kid := range []string{"b", "c"} {
		c := clone(e)
		c.KeyID = kid
		if got, err := k.Open(c, []byte(corrID)); !errors.Is(err, ErrOpen) || got != nil {
			t.Fatalf("Open relabelled a->%s = %q, %v; want nil, ErrOpen", kid, got, err)
		}
	}
	if _, err := k.Open(e, []byte(corrID)); err != nil {
		t.Fatalf("Open original: %v", err)
	}
}

func TestNewKeyringValidates(t *testing.T) {
	good := key("k1", 1)
	cases := []struct {
		name string
		cur  Key
		old  []Key
		ok   bool
	}{
		{"one key", good, nil, true},
		{"with old keys", good, []Key{key("k0", 2), key("k-1_x", 3)}, true},
		{"id 32 chars", key(strings.Repeat("a", 32), 1), nil, true},
		{"zero key", Key{}, nil, false},
		{"empty id", key("", 1), nil, false},
		{"id 33 chars", key(strings.Repeat("a", 33), 1), nil, false},
		{"id with colon", key("k:1", 1), nil, false},
		{"id with NUL", key("k\x001", 1), nil, false},
		{"id with space", key("k 1", 1), nil, false},
		{"secret 31 bytes", Key{ID: "k1", Secret: make([]byte, 31)}, nil, false},
		{"secret 33 bytes", Key{ID: "k1", Secret: make([]byte, 33)}, nil, false},
		{"secret nil", Key{ID: "k1"}, nil, false},
		{"old key duplicates current id", good, []Key{key("k1", 2)}, false},
		{"old keys duplicate each other", good, []Key{key("k0", 2), key("k0", 3)}, false},
		{"old key bad secret", good, []Key{{ID: "k0", Secret: []byte("short")}}, false},
		{"old key bad id", good, []Key{key("k.0", 2)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewKeyring(tc.cur, tc.old...)
			if (err == nil) != tc.ok {
				t.Fatalf("NewKeyring error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestNewKeyringCopiesSecret(t *testing.T) {
	kk := key("k1", 1)
	k := mustKeyring(t, kk)
	e := mustSeal(t, k, []byte(pinJSON), []byte(corrID))
	clear(kk.Secret) // caller wipes its copy
	if got, err := k.Open(e, []byte(corrID)); err != nil || !bytes.Equal(got, []byte(pinJSON)) {
		t.Fatalf("Open after caller wiped its secret = %q, %v", got, err)
	}
}

func TestZeroKeyringErrors(t *testing.T) {
	for name, k := range map[string]*Keyring{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			if _, err := k.Seal([]byte(pinJSON), []byte(corrID)); err == nil {
				t.Fatal("Seal on an unbuilt Keyring: want error")
			}
			if _, err := k.Open(Envelope{KeyID: "k1", Nonce: make([]byte, NonceSize)}, []byte(corrID)); err == nil {
				t.Fatal("Open on an unbuilt Keyring: want error")
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	secret := bytes.Repeat([]byte{0xA5}, 32)
	b64 := base64.StdEncoding.EncodeToString
	cases := []struct {
		name    string
		in      string
		wantID  string
		wantKey []byte
	}{
		{"id and 32 bytes", "kafka-2025_01:" + b64(secret), "kafka-2025_01", secret},
		{"surrounding white space ignored", "\tk1:" + b64(secret) + "\r\n", "k1", secret},
		{"31 bytes", "k1:" + b64(secret[:31]), "", nil},
		{"33 bytes", "k1:" + b64(append(bytes.Clone(secret), 1)), "", nil},
		{"16 bytes", "k1:" + b64(secret[:16]), "", nil},
		{"no colon", b64(secret), "", nil},
		{"empty", "", "", nil},
		{"empty id", ":" + b64(secret), "", nil},
		{"id too long", strings.Repeat("k", 33) + ":" + b64(secret), "", nil},
		{"id bad character", "k/1:" + b64(secret), "", nil},
		{"empty secret", "k1:", "", nil},
		{"unpadded base64", "k1:" + strings.TrimRight(b64(secret), "="), "", nil},
		{"url base64", "k1:" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xFB}, 32)), "", nil},
		{"hex instead of base64", "k1:" + fmt.Sprintf("%x", secret), "", nil},
		{"second colon", "k1:" + b64(secret) + ":x", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.in)
			if tc.wantKey == nil {
				if err == nil {
					t.Fatalf("ParseKey = %v, want error", k)
				}
				if _, material, ok := strings.Cut(tc.in, ":"); ok && len(material) > 2 && strings.Contains(err.Error(), material) {
					t.Fatalf("error %q contains the key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if k.ID != tc.wantID || !bytes.Equal(k.Secret, tc.wantKey) {
				t.Fatalf("ParseKey = %q, want %q and the decoded secret", k.ID, tc.wantID)
			}
		})
	}
}

func TestSecretsNeverFormatted(t *testing.T) {
	secret := []byte("0123456789abcdef-SECRET-SEALKEY!")
	kk := Key{ID: "k1", Secret: secret}
	k := mustKeyring(t, kk)

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "key", kk, "ring", k)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "key", kk, "ring", k)
	js, _ := json.Marshal(struct{ K Key }{kk})
	outs := []string{
		kk.String(), fmt.Sprintf("%v %+v %#v %x", &kk, &kk, &kk, &kk),
		fmt.Sprintf("%v %+v %#v %s %x %d", k, k, k, k, k, k),
		logs.String(), string(js),
	}
	// Every verb, %d included: a variable format, because vet rightly
	// questions %d of a struct, and leaking through it is what is tested.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, kk))
	}
	for _, out := range outs {
		for _, s := range []string{"SECRET", fmt.Sprintf("%x", secret), fmt.Sprint(secret), base64.StdEncoding.EncodeToString(secret)} {
			if strings.Contains(out, s) {
				t.Fatalf("output %q contains the secret", out)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	k := mustKeyring(t, key("k1", 1), key("k0", 2))
	done := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			aad := []byte(fmt.Sprint("[]byte(corrID)-", i))
			e, err := k.Seal([]byte(pinJSON), aad)
			if err == nil {
				var got []byte
				got, err = k.Open(e, aad)
				if err == nil && !bytes.Equal(got, []byte(pinJSON)) {
					err = errors.New("wrong plaintext")
				}
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

func BenchmarkSealOpen(b *testing.B) {
	k := mustKeyring(b, key("k1", 1))
	pt := bytes.Repeat([]byte{'x'}, 200)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := k.Seal(pt, []byte(corrID))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.Open(e, []byte(corrID)); err != nil {
			b.Fatal(err)
		}
	}
}
