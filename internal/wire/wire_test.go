package wire_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
)

const (
	testCorrID  = "260301120000-0a1b2c3"
	otherCorrID = "260301120000-0a1b2c4"
	testASPID   = "ASP000000000001"
	testLogin   = "member.one@example.com"
	testCurPIN  = "135790"
	testNewPIN  = "246813"
	acceptedStr = "2026-03-01T12:00:00.5Z"
	expiresStr  = "2026-03-01T12:02:00.5Z"
)

var (
	testCI       = strings.Repeat("QkM9", 22) // 88 characters
	testAccepted = time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	testExpires  = testAccepted.Add(2 * time.Minute)
)

func testKey(id string, fill byte) seal.Key {
	return seal.Key{ID: id, Secret: bytes.Repeat([]byte{fill}, seal.KeySize)}
}

func keyring(t testing.TB, cur seal.Key, old ...seal.Key) *seal.Keyring {
	t.Helper()
	k, err := seal.NewKeyring(cur, old...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func changeCommand() pinreset.Command {
	return pinreset.Command{
		CorrelationID: testCorrID, RequestID: "req-0001", ASPID: testASPID, Kind: pinreset.KindChange,
		LoginID: testLogin, CI: testCI, CurrentPIN: testCurPIN, NewPIN: testNewPIN,
		AcceptedAt: testAccepted, ExpiresAt: testExpires,
	}
}

func resetCommand() pinreset.Command {
	return pinreset.Command{
		CorrelationID: testCorrID, RequestID: "req-0002", ASPID: testASPID, Kind: pinreset.KindReset,
		LoginID: testLogin, NewPIN: testNewPIN,
		AcceptedAt: testAccepted, ExpiresAt: testExpires,
	}
}

// sameCommand compares every field, times by instant.
func sameCommand(a, b pinreset.Command) bool {
	ta, tb := a, b
	ta.AcceptedAt, ta.ExpiresAt, tb.AcceptedAt, tb.ExpiresAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(ta, tb) && a.AcceptedAt.Equal(b.AcceptedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// fields shows every field of c, which its redacting String hides.
func fields(c pinreset.Command) string {
	return fmt.Sprintf("{%q %q %q %q %q %q %q %q %v %v %q}", c.CorrelationID, c.RequestID, c.ASPID, c.Kind,
		c.LoginID, c.CI, c.CurrentPIN, c.NewPIN, c.AcceptedAt, c.ExpiresAt, c.Auth)
}

func encode(t testing.TB, c pinreset.Command, s wire.Sealer) []byte {
	t.Helper()
	b, err := wire.EncodeCommand(c, s)
	if err != nil {
		t.Fatalf("EncodeCommand(%s): %v", fields(c), err)
	}
	return b
}

func wantPoison(t *testing.T, key, value []byte, s wire.Sealer) {
	t.Helper()
	c, err := wire.DecodeCommand(key, value, s)
	if !errors.Is(err, wire.ErrPoison) {
		t.Fatalf("DecodeCommand(%q) = %s, %v; want an error wrapping ErrPoison", value, fields(c), err)
	}
	if !reflect.DeepEqual(c, pinreset.Command{}) {
		t.Errorf("a refused command came back non-zero: %s", fields(c))
	}
}

// sealPlain seals a hand-written secrets plaintext under aad.
func sealPlain(t testing.TB, ring *seal.Keyring, plain string, aad []byte) seal.Envelope {
	t.Helper()
	e, err := ring.Seal([]byte(plain), aad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return e
}

// sealed writes a command value by hand, like assemble, whose sealed part
// is plain sealed under the associated data of the clear fields as written:
// a command whose only fault is the one the edits make.
func sealed(t testing.TB, ring *seal.Keyring, plain string, edits map[string]any) []byte {
	t.Helper()
	return assemble(t, sealPlain(t, ring, plain, wire.AssociatedData(assemble(t, nil, edits))), edits)
}

type omitted struct{}

var omit = omitted{}

// assemble writes a command value by hand: a valid change of testCorrID
// whose sealed part is env, with edits applied (omit deletes a key).
func assemble(t testing.TB, env any, edits map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"v":             wire.CommandVersion,
		"correlationId": testCorrID,
		"requestId":     "req-0001",
		"aspId":         testASPID,
		"kind":          "change",
		"acceptedAt":    acceptedStr,
		"expiresAt":     expiresStr,
		"sealed":        env,
	}
	for k, v := range edits {
		if v == omit {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal test command: %v", err)
	}
	return b
}

// validPlain is the hand-written plaintext of changeCommand's secrets.
var validPlain = `{"loginId":"` + testLogin + `","ci":"` + testCI + `","currentPassword":"` + testCurPIN + `","newPassword":"` + testNewPIN + `"}`

func TestCommandRoundTrip(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	kst := time.FixedZone("KST", 9*60*60)
	for _, tc := range []struct {
		rule string
		cmd  pinreset.Command
	}{
		{"a change with a ci reads back equal", changeCommand()},
		{"a reset without a ci reads back equal", resetCommand()},
		{"a change without a ci reads back equal", func() pinreset.Command { c := changeCommand(); c.CI = ""; return c }()},
		{"a command without a request id reads back equal", func() pinreset.Command { c := resetCommand(); c.RequestID = ""; return c }()},
		{"times in another zone read back as the same instants", func() pinreset.Command {
			c := changeCommand()
			c.AcceptedAt, c.ExpiresAt = c.AcceptedAt.In(kst), c.ExpiresAt.In(kst)
			return c
		}()},
		{"a status query reads back equal", pinreset.NewStatusQuery(testCorrID, "req-0003", testASPID, testAccepted, time.Minute)},
		{"a command authenticated by KMV2 reads back equal", func() pinreset.Command { c := resetCommand(); c.Auth = pinreset.SchemeKMV2; return c }()},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			b := encode(t, tc.cmd, ring)
			got, err := wire.DecodeCommand([]byte(tc.cmd.CorrelationID), b, ring)
			if err != nil {
				t.Fatalf("DecodeCommand: %v", err)
			}
			if !sameCommand(got, tc.cmd) {
				t.Errorf("round trip =\n%s\nwant\n%s", fields(got), fields(tc.cmd))
			}
		})
	}
	t.Run("a command sealed under an old key still opens after rotation", func(t *testing.T) {
		t.Parallel()
		b := encode(t, changeCommand(), keyring(t, testKey("k1", 1)))
		rotated := keyring(t, testKey("k2", 2), testKey("k1", 1))
		got, err := wire.DecodeCommand([]byte(testCorrID), b, rotated)
		if err != nil || !sameCommand(got, changeCommand()) {
			t.Errorf("DecodeCommand after rotation = %s, %v", fields(got), err)
		}
	})
	t.Run("a KMV1 command is written without auth, as before KMV2", func(t *testing.T) {
		t.Parallel()
		for _, scheme := range []pinreset.Scheme{"", pinreset.SchemeKMV1} {
			c := changeCommand()
			c.Auth = scheme
			b := encode(t, c, ring)
			if bytes.Contains(b, []byte(`"auth"`)) {
				t.Errorf("a %q command is written with auth (older workers refuse unknown fields): %s", scheme, b)
			}
			if got, err := wire.DecodeCommand([]byte(testCorrID), b, ring); err != nil || got.Auth == pinreset.SchemeKMV2 {
				t.Errorf("a %q command reads back as %q, %v", scheme, got.Auth, err)
			}
		}
		c := changeCommand()
		c.Auth = pinreset.SchemeKMV2
		if b := encode(t, c, ring); !bytes.Contains(b, []byte(`"auth":"KMV2"`)) {
			t.Errorf("a KMV2 command is written without auth: %s", b)
		}
	})
	t.Run("a status query carries no sealed part", func(t *testing.T) {
		t.Parallel()
		b := encode(t, pinreset.NewStatusQuery(testCorrID, "req-0003", testASPID, testAccepted, time.Minute), ring)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["sealed"]; ok {
			t.Errorf("status query %s has a sealed part", b)
		}
	})
}

func TestEncodedCommandHoldsNoSecretInClear(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	b := encode(t, changeCommand(), ring)
	for _, s := range []string{testLogin, "member.one", testCI, testCI[:16], testCurPIN, testNewPIN} {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			if bytes.Contains(b, []byte(form)) {
				t.Errorf("encoded command contains %q:\n%s", form, b)
			}
		}
	}
	// The test is only meaningful if the public part is really there.
	for _, s := range []string{testCorrID, testASPID, `"kind":"change"`, `"v":2`} {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("encoded command lacks %q:\n%s", s, b)
		}
	}
}

// TestHandAssembledCommandDecodes checks the baseline that every poison case
// below edits once, so that none of them is refused for a reason of the test's
// own making.
func TestHandAssembledCommandDecodes(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	email80 := strings.Repeat("a", 68) + "@example.com"
	for _, tc := range []struct {
		rule  string
		plain string
		edits map[string]any
		want  func(*pinreset.Command)
	}{
		{rule: "a hand-written change decodes", plain: validPlain},
		{rule: "a loginId of 80 characters is accepted",
			plain: `{"loginId":"` + email80 + `","currentPassword":"135790","newPassword":"246813"}`,
			want:  func(c *pinreset.Command) { c.LoginID, c.CI = email80, "" }},
		{rule: "a reset needs no currentPassword",
			plain: `{"loginId":"` + testLogin + `","newPassword":"246813"}`,
			edits: map[string]any{"kind": "reset"},
			want:  func(c *pinreset.Command) { c.Kind, c.CI, c.CurrentPIN = pinreset.KindReset, "", "" }},
		{rule: "a request id of 64 characters is accepted",
			plain: validPlain,
			edits: map[string]any{"requestId": strings.Repeat("r", 64)},
			want:  func(c *pinreset.Command) { c.RequestID = strings.Repeat("r", 64) }},
		{rule: "auth KMV2 is read",
			plain: validPlain,
			edits: map[string]any{"auth": "KMV2"},
			want:  func(c *pinreset.Command) { c.Auth = pinreset.SchemeKMV2 }},
		{rule: "auth KMV1 is read",
			plain: validPlain,
			edits: map[string]any{"auth": "KMV1"},
			want:  func(c *pinreset.Command) { c.Auth = pinreset.SchemeKMV1 }},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			value := sealed(t, ring, tc.plain, tc.edits)
			got, err := wire.DecodeCommand([]byte(testCorrID), value, ring)
			if err != nil {
				t.Fatalf("DecodeCommand(%s): %v", value, err)
			}
			want := changeCommand()
			if tc.want != nil {
				tc.want(&want)
			}
			if !sameCommand(got, want) {
				t.Errorf("DecodeCommand =\n%s\nwant\n%s", fields(got), fields(want))
			}
		})
	}
}

func TestDecodeCommandRefusesBadFormat(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	env := sealPlain(t, ring, validPlain, wire.AssociatedData(assemble(t, nil, nil)))
	envWith := func(extra map[string]any) map[string]any {
		m := map[string]any{"kid": env.KeyID, "nonce": env.Nonce, "ct": env.Ciphertext}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		rule  string
		key   string
		edits map[string]any
	}{
		{rule: "the key must equal the correlation id", key: otherCorrID},
		{rule: "an empty key is not the correlation id", key: ""},
		{rule: "an empty correlation id is refused even under an empty key", key: "", edits: map[string]any{"correlationId": ""}},
		{rule: "a missing correlation id is refused", key: "", edits: map[string]any{"correlationId": omit}},
		{rule: "an unknown field is refused", key: testCorrID, edits: map[string]any{"memberId": "m-1"}},
		{rule: "an unknown field in the sealed part is refused", key: testCorrID, edits: map[string]any{"sealed": envWith(map[string]any{"alg": "none"})}},
		{rule: "version 0 is refused", key: testCorrID, edits: map[string]any{"v": 0}},
		{rule: "version 1 is refused", key: testCorrID, edits: map[string]any{"v": 1}},
		{rule: "version 3 is refused", key: testCorrID, edits: map[string]any{"v": 3}},
		{rule: "a missing version is refused", key: testCorrID, edits: map[string]any{"v": omit}},
		{rule: "a version that is a string is refused", key: testCorrID, edits: map[string]any{"v": "1"}},
		{rule: "an empty aspId is refused", key: testCorrID, edits: map[string]any{"aspId": ""}},
		{rule: "a missing aspId is refused", key: testCorrID, edits: map[string]any{"aspId": omit}},
		{rule: "an empty kind is refused", key: testCorrID, edits: map[string]any{"kind": ""}},
		{rule: "a missing kind is refused", key: testCorrID, edits: map[string]any{"kind": omit}},
		{rule: "an unknown kind is refused", key: testCorrID, edits: map[string]any{"kind": "delete"}},
		{rule: "kinds are case sensitive", key: testCorrID, edits: map[string]any{"kind": "Change"}},
		{rule: "a missing acceptedAt is refused", key: testCorrID, edits: map[string]any{"acceptedAt": omit}},
		{rule: "a missing expiresAt is refused", key: testCorrID, edits: map[string]any{"expiresAt": omit}},
		{rule: "a zero acceptedAt is refused", key: testCorrID, edits: map[string]any{"acceptedAt": "0001-01-01T00:00:00Z"}},
		{rule: "a zero expiresAt is refused", key: testCorrID, edits: map[string]any{"expiresAt": "0001-01-01T00:00:00Z"}},
		{rule: "a time that is not RFC 3339 is refused", key: testCorrID, edits: map[string]any{"acceptedAt": "2026-03-01 12:00:00"}},
		{rule: "a request id over 64 characters is refused", key: testCorrID, edits: map[string]any{"requestId": strings.Repeat("r", 65)}},
		{rule: "a change without a sealed part is refused", key: testCorrID, edits: map[string]any{"sealed": omit}},
		{rule: "a change with a null sealed part is refused", key: testCorrID, edits: map[string]any{"sealed": nil}},
		{rule: "a reset without a sealed part is refused", key: testCorrID, edits: map[string]any{"kind": "reset", "sealed": omit}},
		{rule: "a status query with a sealed part is refused", key: testCorrID, edits: map[string]any{"kind": "status"}},
		{rule: "an unknown auth scheme is refused", key: testCorrID, edits: map[string]any{"auth": "KMV3"}},
		{rule: "auth schemes are case sensitive", key: testCorrID, edits: map[string]any{"auth": "kmv2"}},
		{rule: "an auth that is not a string is refused", key: testCorrID, edits: map[string]any{"auth": 2}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			// Sealed for the edited clear fields: refused for the edit alone.
			value := sealed(t, ring, validPlain, tc.edits)
			if _, ok := tc.edits["sealed"]; ok {
				value = assemble(t, env, tc.edits)
			}
			wantPoison(t, []byte(tc.key), value, ring)
		})
	}
}

func TestDecodeCommandRefusesBadValues(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	valid := encode(t, changeCommand(), ring)
	padded := func(n int) []byte { // valid, then spaces up to n bytes
		return append(bytes.Clone(valid), bytes.Repeat([]byte(" "), n-len(valid))...)
	}
	t.Run("a value of exactly MaxMessageBytes is accepted", func(t *testing.T) {
		t.Parallel()
		if _, err := wire.DecodeCommand([]byte(testCorrID), padded(wire.MaxMessageBytes), ring); err != nil {
			t.Fatalf("DecodeCommand: %v", err)
		}
	})
	for _, tc := range []struct {
		rule  string
		value []byte
	}{
		{"a value over MaxMessageBytes is refused", padded(wire.MaxMessageBytes + 1)},
		{"a much larger value is refused", padded(4 * wire.MaxMessageBytes)},
		{"trailing text is refused", append(bytes.Clone(valid), "x"...)},
		{"a second JSON value is refused", append(bytes.Clone(valid), ` {"v":1}`...)},
		{"a second JSON value without space is refused", append(bytes.Clone(valid), `{}`...)},
		{"an empty value is refused", []byte{}},
		{"null is refused", []byte("null")},
		{"an array is refused", []byte("[]")},
		{"a truncated value is refused", valid[:len(valid)-1]},
		{"bytes that are not JSON are refused", []byte{0xff, 0xfe, 0x00, 0x7b}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			wantPoison(t, []byte(testCorrID), tc.value, ring)
		})
	}
}

// TestDecodeCommandRefusesTrailingCloser is the trailing-data rule for the
// two bytes json.Decoder.More does not see: a stray "}" or "]" after the object.
func TestDecodeCommandRefusesTrailingCloser(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	valid := encode(t, changeCommand(), ring)
	for _, trailer := range []string{"}", "]", " ]", "}}"} {
		t.Run("trailing "+trailer+" is refused", func(t *testing.T) {
			wantPoison(t, []byte(testCorrID), append(bytes.Clone(valid), trailer...), ring)
		})
	}
}

// A key id the keyring does not hold is not poison: the key may be
// deployed to this worker later (a rollout that reached the ingress first),
// so the command waits for it rather than failing for good.
func TestDecodeCommandUnderAnUndeployedKeyIsAMissingKey(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	valid := encode(t, changeCommand(), ring)
	for name, r := range map[string]*seal.Keyring{
		"a keyring without the sealing key":      keyring(t, testKey("k2", 2)),
		"a keyring that holds no key of that id": keyring(t, testKey("k0", 1)),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := wire.DecodeCommand([]byte(testCorrID), valid, r)
			var mk *pinreset.MissingKeyError
			if !errors.As(err, &mk) || mk.Kind != "seal" || !errors.Is(err, pinreset.ErrMissingKey) || errors.Is(err, wire.ErrPoison) {
				t.Fatalf("DecodeCommand = %v, want a missing seal key, not poison", err)
			}
			if !reflect.DeepEqual(c, pinreset.Command{}) {
				t.Errorf("a command that did not open came back non-zero: %s", fields(c))
			}
		})
	}
}

func TestDecodeCommandRefusesWhatDoesNotOpen(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	valid := encode(t, changeCommand(), ring)
	// edit re-writes the encoded command through a generic map.
	edit := func(t *testing.T, value []byte, f func(m map[string]any, env map[string]any)) []byte {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(value, &m); err != nil {
			t.Fatal(err)
		}
		f(m, m["sealed"].(map[string]any))
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flip := func(t *testing.T, b64 any, i int) string {
		t.Helper()
		b, err := base64.StdEncoding.DecodeString(b64.(string))
		if err != nil {
			t.Fatal(err)
		}
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x01
		return base64.StdEncoding.EncodeToString(b)
	}
	for _, tc := range []struct {
		rule  string
		key   string
		value func(t *testing.T) []byte
		ring  *seal.Keyring
	}{
		{rule: "a sealed part moved to another command does not open", key: otherCorrID,
			value: func(t *testing.T) []byte {
				return edit(t, valid, func(m, _ map[string]any) { m["correlationId"] = otherCorrID })
			}},
		{rule: "a sealed part moved into another encoded command does not open", key: otherCorrID,
			value: func(t *testing.T) []byte {
				other := changeCommand()
				other.CorrelationID = otherCorrID
				other.NewPIN = "802468"
				var victim map[string]any
				if err := json.Unmarshal(valid, &victim); err != nil {
					t.Fatal(err)
				}
				return edit(t, encode(t, other, ring), func(m, _ map[string]any) { m["sealed"] = victim["sealed"] })
			}},
		{rule: "a tampered first ciphertext byte does not open", key: testCorrID,
			value: func(t *testing.T) []byte {
				return edit(t, valid, func(_, e map[string]any) { e["ct"] = flip(t, e["ct"], 0) })
			}},
		{rule: "a tampered authentication tag does not open", key: testCorrID,
			value: func(t *testing.T) []byte {
				return edit(t, valid, func(_, e map[string]any) { e["ct"] = flip(t, e["ct"], -1) })
			}},
		{rule: "a truncated ciphertext does not open", key: testCorrID,
			value: func(t *testing.T) []byte {
				return edit(t, valid, func(_, e map[string]any) { e["ct"] = base64.StdEncoding.EncodeToString([]byte("short")) })
			}},
		{rule: "a tampered nonce does not open", key: testCorrID,
			value: func(t *testing.T) []byte {
				return edit(t, valid, func(_, e map[string]any) { e["nonce"] = flip(t, e["nonce"], 3) })
			}},
		{rule: "a nonce of the wrong length does not open", key: testCorrID,
			value: func(t *testing.T) []byte {
				return edit(t, valid, func(_, e map[string]any) { e["nonce"] = base64.StdEncoding.EncodeToString(make([]byte, 12)) })
			}},
		{rule: "a relabelled key id does not open even under the same secret", key: testCorrID,
			ring: keyring(t, testKey("k1", 1), testKey("k9", 1)),
			value: func(t *testing.T) []byte {
				return edit(t, valid, func(_, e map[string]any) { e["kid"] = "k9" })
			}},
		{rule: "a keyring with another secret under the same id cannot open it", key: testCorrID,
			ring:  keyring(t, testKey("k1", 7)),
			value: func(*testing.T) []byte { return valid }},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			r := ring
			if tc.ring != nil {
				r = tc.ring
			}
			wantPoison(t, []byte(tc.key), tc.value(t), r)
		})
	}
}

// TestDecodeCommandRechecksSecrets seals hand-written plaintexts that the
// ingress would never have accepted.
func TestDecodeCommandRechecksSecrets(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	secrets := func(fields map[string]any) string {
		m := map[string]any{"loginId": testLogin, "ci": testCI, "currentPassword": testCurPIN, "newPassword": testNewPIN}
		for k, v := range fields {
			if v == omit {
				delete(m, k)
				continue
			}
			m[k] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		rule  string
		plain string
		kind  string
	}{
		{rule: "a newPassword with a letter is refused", plain: secrets(map[string]any{"newPassword": "12345a"})},
		{rule: "a newPassword of five digits is refused", plain: secrets(map[string]any{"newPassword": "12345"})},
		{rule: "a newPassword of seven digits is refused", plain: secrets(map[string]any{"newPassword": "1234567"})},
		{rule: "a newPassword of non-ASCII digits is refused", plain: secrets(map[string]any{"newPassword": "١٢٣٤٥٦"})},
		{rule: "a missing newPassword is refused", plain: secrets(map[string]any{"newPassword": omit})},
		{rule: "a missing newPassword is refused for a reset", plain: secrets(map[string]any{"newPassword": omit}), kind: "reset"},
		{rule: "a newPassword that is a number is refused", plain: secrets(map[string]any{"newPassword": 246813})},
		{rule: "a change without currentPassword is refused", plain: secrets(map[string]any{"currentPassword": omit})},
		{rule: "a change with an empty currentPassword is refused", plain: secrets(map[string]any{"currentPassword": ""})},
		{rule: "a change with a malformed currentPassword is refused", plain: secrets(map[string]any{"currentPassword": "13579x"})},
		{rule: "a loginId of 81 characters is refused", plain: secrets(map[string]any{"loginId": strings.Repeat("a", 69) + "@example.com"})},
		{rule: "an empty loginId is refused", plain: secrets(map[string]any{"loginId": ""})},
		{rule: "a loginId that is not an email address is refused", plain: secrets(map[string]any{"loginId": "member one"})},
		{rule: "a ci with a character outside base64 is refused", plain: secrets(map[string]any{"ci": testCI[:87] + "!"})},
		{rule: "a missing loginId is refused", plain: secrets(map[string]any{"loginId": omit})},
		{rule: "a ci of 87 characters is refused", plain: secrets(map[string]any{"ci": testCI[:87]})},
		{rule: "a ci of 89 characters is refused", plain: secrets(map[string]any{"ci": testCI + "A"})},
		{rule: "a sealed plaintext that is not JSON is refused", plain: "loginId=member.one@example.com"},
		{rule: "a sealed plaintext that is a JSON array is refused", plain: `["a@example.com","246813"]`},
		{rule: "an empty sealed plaintext is refused", plain: ""},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			edits := map[string]any{}
			if tc.kind != "" {
				edits["kind"] = tc.kind
			}
			wantPoison(t, []byte(testCorrID), sealed(t, ring, tc.plain, edits), ring)
		})
	}
}

func TestResultRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rule string
		r    pinreset.Result
	}{
		{"a success with a member id reads back equal",
			pinreset.NewResult(changeCommand(), pinreset.CodeSuccess, "mem-0001", testAccepted.Add(time.Second))},
		{"a refusal without a member id reads back equal",
			pinreset.NewResult(resetCommand(), pinreset.CodeUserNotFound, "", testAccepted.Add(time.Second))},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			b, err := wire.EncodeResult(tc.r)
			if err != nil {
				t.Fatalf("EncodeResult: %v", err)
			}
			if !bytes.Contains(b, []byte(`"v":1`)) {
				t.Errorf("encoded result %s has no version", b)
			}
			got, err := wire.DecodeResult(b)
			if err != nil {
				t.Fatalf("DecodeResult(%s): %v", b, err)
			}
			if !got.CompletedAt.Equal(tc.r.CompletedAt) {
				t.Errorf("CompletedAt = %v, want %v", got.CompletedAt, tc.r.CompletedAt)
			}
			got.CompletedAt, tc.r.CompletedAt = time.Time{}, time.Time{}
			if got != tc.r {
				t.Errorf("DecodeResult = %+v, want %+v", got, tc.r)
			}
		})
	}
}

func TestDecodeResultRefusesInvalid(t *testing.T) {
	t.Parallel()
	valid := func(edits map[string]any) []byte {
		m := map[string]any{"v": 1, "correlationId": testCorrID, "aspId": testASPID, "code": "000_000", "message": "Success.", "completedAt": acceptedStr}
		for k, v := range edits {
			if v == omit {
				delete(m, k)
				continue
			}
			m[k] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := wire.DecodeResult(valid(nil)); err != nil {
		t.Fatalf("the baseline result is refused: %v", err)
	}
	for _, tc := range []struct {
		rule  string
		value []byte
	}{
		{"an unknown code is refused", valid(map[string]any{"code": "999_999"})},
		{"an empty code is refused", valid(map[string]any{"code": ""})},
		{"a missing code is refused", valid(map[string]any{"code": omit})},
		{"version 0 is refused", valid(map[string]any{"v": 0})},
		{"version 2 is refused", valid(map[string]any{"v": 2})},
		{"a missing version is refused", valid(map[string]any{"v": omit})},
		{"an empty correlation id is refused", valid(map[string]any{"correlationId": ""})},
		{"a missing correlation id is refused", valid(map[string]any{"correlationId": omit})},
		{"a value that is not JSON is refused", []byte("000_000")},
		{"an empty value is refused", nil},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			if r, err := wire.DecodeResult(tc.value); err == nil {
				t.Errorf("DecodeResult(%s) = %+v, nil; want an error", tc.value, r)
			}
		})
	}
}

// TestTamperedClearFieldIsRefused: every clear field of a command is bound
// into its seal, so changing any one of them on the way (a change into a
// reset, another ASP, a later expiry, ...) leaves a command that does not
// open. The fields come from the command struct itself: a clear field added
// later fails here until it has a tamper case (and, for the case to pass, a
// line in associatedData).
func TestTamperedClearFieldIsRefused(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	// Each case: another value the field could validly hold, and the
	// message key that goes with it.
	tampered := map[string]struct {
		rule  string
		value any
		key   string
	}{
		"correlationId": {"a command moved to another correlation id (and key) does not open", otherCorrID, otherCorrID},
		"requestId":     {"a command answered to another request does not open", "req-9999", testCorrID},
		"aspId":         {"a command moved to another ASP does not open", "ASP000000000002", testCorrID},
		"kind":          {"a change turned into a reset does not open", "reset", testCorrID},
		"acceptedAt":    {"a command with another acceptance time does not open", "2026-03-01T12:00:01.5Z", testCorrID},
		"expiresAt":     {"a command with its expiry extended does not open", "2026-03-01T13:02:00.5Z", testCorrID},
		"auth":          {"a KMV1 command relabelled KMV2 (lifting the replay rule) does not open", "KMV2", testCorrID},
	}
	clearFields := wire.ClearFields()
	if len(clearFields) < len(tampered) {
		t.Fatalf("ClearFields() = %v, fewer than the cases", clearFields)
	}
	for _, name := range clearFields {
		if name == "v" {
			continue // one version is accepted: any other v is refused before the seal (TestDecodeCommandRefusesBadFormat)
		}
		tc, ok := tampered[name]
		if !ok {
			t.Errorf("clear field %q has no tamper case: add one here and bind the field in wire's associatedData", name)
			continue
		}
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			edits := map[string]any{name: tc.value}
			// The tampered value is valid: sealed for it, the command decodes.
			if _, err := wire.DecodeCommand([]byte(tc.key), sealed(t, ring, validPlain, edits), ring); err != nil {
				t.Fatalf("baseline: the same command sealed for %s=%v is refused: %v", name, tc.value, err)
			}
			// Sealed for the original value, it does not open.
			value := assemble(t, sealPlain(t, ring, validPlain, wire.AssociatedData(assemble(t, nil, nil))), edits)
			c, err := wire.DecodeCommand([]byte(tc.key), value, ring)
			if !errors.Is(err, wire.ErrPoison) || !strings.Contains(err.Error(), "open sealed part") {
				t.Fatalf("tampered %s: DecodeCommand = %s, %v; want ErrPoison from opening the sealed part", name, fields(c), err)
			}
		})
	}
	t.Run("the same instant written in another zone is not a change", func(t *testing.T) {
		t.Parallel()
		value := assemble(t, sealPlain(t, ring, validPlain, wire.AssociatedData(assemble(t, nil, nil))),
			map[string]any{"acceptedAt": "2026-03-01T21:00:00.5+09:00"})
		if _, err := wire.DecodeCommand([]byte(testCorrID), value, ring); err != nil {
			t.Fatalf("DecodeCommand: %v", err)
		}
	})
}

// TestVersion1CommandIsRefused: a command of the previous format (its seal
// binding only the key id and the correlation id) is refused as poison, so
// it is dead-lettered and answered 000_422, not opened under the weaker
// binding.
func TestVersion1CommandIsRefused(t *testing.T) {
	t.Parallel()
	ring := keyring(t, testKey("k1", 1))
	v1 := assemble(t, sealPlain(t, ring, validPlain, []byte(testCorrID)), map[string]any{"v": 1})
	_, err := wire.DecodeCommand([]byte(testCorrID), v1, ring)
	if !errors.Is(err, wire.ErrPoison) || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("DecodeCommand(v1) = %v, want ErrPoison naming version 1", err)
	}
}
