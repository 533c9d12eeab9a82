package wire_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/wire"
)

// FuzzDecodeCommand feeds arbitrary keys and values. DecodeCommand must never
// panic, must fail only with ErrPoison (so the consumer dead-letters instead
// of retrying forever), and whatever it accepts keeps the format's rules and
// survives a second encode and decode unchanged.
func FuzzDecodeCommand(f *testing.F) {
	ring := keyring(f, testKey("k1", 1), testKey("k0", 2))
	oldRing := keyring(f, testKey("k0", 2))
	for _, c := range []pinreset.Command{
		changeCommand(),
		resetCommand(),
		pinreset.NewStatusQuery(testCorrID, "req-0003", testASPID, testAccepted, time.Minute),
	} {
		f.Add([]byte(c.CorrelationID), encode(f, c, ring))
	}
	f.Add([]byte(testCorrID), encode(f, changeCommand(), oldRing))
	f.Add([]byte(testCorrID), sealed(f, ring, `{"loginId":"a@b.c","newPassword":"12345a"}`, nil))
	f.Add([]byte(testCorrID), []byte(`{"v":2,"correlationId":"`+testCorrID+`","aspId":"`+testASPID+`","kind":"status","acceptedAt":"2026-03-01T21:00:00+09:00","expiresAt":"2026-03-01T21:01:00+09:00","sealed":null}`))
	f.Add([]byte(testCorrID), []byte(`{"v":2,"correlationId":"`+testCorrID+`","sealed":{"kid":"k1","nonce":"AAAA","ct":""}}`))
	f.Add([]byte("x"), []byte(`{"v":2,"correlationId":"x","aspId":"a","kind":"reset","acceptedAt":"2026-03-01T12:00:00Z","expiresAt":"2026-03-01T12:00:00Z","sealed":{"kid":"k9","nonce":"","ct":""}}`))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{}, []byte("null"))
	f.Add([]byte("k"), []byte(`[{"v":1}]`))
	f.Add([]byte("k"), []byte("{\"v\":1e400}"))
	f.Add([]byte{0xff}, []byte{0xff, 0x00, '{', '"'})

	f.Fuzz(func(t *testing.T, key, value []byte) {
		c, err := wire.DecodeCommand(key, value, ring)
		if err != nil {
			if !errors.Is(err, wire.ErrPoison) {
				t.Fatalf("error %v does not wrap ErrPoison", err)
			}
			if !reflect.DeepEqual(c, pinreset.Command{}) {
				t.Fatalf("refused command came back non-zero: %s", fields(c))
			}
			return
		}
		if c.CorrelationID == "" || c.CorrelationID != string(key) || c.ASPID == "" || c.AcceptedAt.IsZero() || c.ExpiresAt.IsZero() {
			t.Fatalf("accepted a command without its ids or times: %s", fields(c))
		}
		switch c.Kind {
		case pinreset.KindStatus:
			if c.LoginID != "" || c.CI != "" || c.CurrentPIN != "" || c.NewPIN != "" {
				t.Fatalf("status query carries secrets: %s", fields(c))
			}
		case pinreset.KindReset, pinreset.KindChange:
			if !digits6(c.NewPIN) || c.LoginID == "" || len(c.LoginID) > 80 || (c.CI != "" && len(c.CI) != 88) ||
				(c.Kind == pinreset.KindChange && !digits6(c.CurrentPIN)) {
				t.Fatalf("accepted invalid secrets: %s", fields(c))
			}
		default:
			t.Fatalf("accepted kind %q", c.Kind)
		}
		again, err := wire.EncodeCommand(c, ring)
		if err != nil {
			t.Fatalf("re-encode %s: %v", fields(c), err)
		}
		back, err := wire.DecodeCommand(key, again, ring)
		if err != nil {
			t.Fatalf("decode of re-encoded %s: %v", again, err)
		}
		if !sameCommand(back, c) {
			t.Fatalf("re-encoded command changed:\n%s\nwas\n%s", fields(back), fields(c))
		}
	})
}

func digits6(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
