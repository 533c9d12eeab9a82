package decision

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestAttemptKeys: before deciding, the processor gives a change the
// attempt keys of its currentPassword and every set the keys of its
// newPassword, under every fingerprint key with the current one first, so
// that a wrong attempt remembered before a key rotation is still
// recognised; the keys are scoped to the member and hold no PIN in clear.
func TestAttemptKeys(t *testing.T) {
	t.Parallel()
	cur := pinhash.FingerprintKey{ID: "f2", Key: bytes.Repeat([]byte{2}, 32)}
	old := pinhash.FingerprintKey{ID: "f1", Key: bytes.Repeat([]byte{1}, 32)}
	fp, err := pinhash.NewFingerprinter(cur, old)
	if err != nil {
		t.Fatal(err)
	}
	p := &Service{Fingerprinter: fp}
	keys := func(c pinreset.Command) pinreset.Command {
		t.Helper()
		if err := p.keys(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	change := pinreset.Command{CorrelationID: "c1", ASPID: "KMTESTASP000001", Kind: pinreset.KindChange, LoginID: "a@b.example", CurrentPIN: "135790", NewPIN: "246813"}

	t.Run("a change gets the keys of its current and its new PIN under every key, the current first", func(t *testing.T) {
		c := keys(change)
		if len(c.AttemptKeys) != 2 || !strings.HasPrefix(c.AttemptKeys[0], "f2:") || !strings.HasPrefix(c.AttemptKeys[1], "f1:") {
			t.Fatalf("AttemptKeys %v, want [f2:..., f1:...]", c.AttemptKeys)
		}
		if len(c.NewPINKeys) != 2 || slices.Equal(c.NewPINKeys, c.AttemptKeys) {
			t.Fatalf("NewPINKeys %v, want two keys other than the current PIN's", c.NewPINKeys)
		}
		for _, k := range append(c.AttemptKeys, c.NewPINKeys...) {
			if strings.Contains(k, change.CurrentPIN) || strings.Contains(k, change.NewPIN) {
				t.Errorf("key %q holds a PIN in clear", k)
			}
		}
	})
	t.Run("the new PIN's keys are the keys that PIN would have as a current PIN", func(t *testing.T) {
		set := keys(change)
		tried := change
		tried.CurrentPIN = change.NewPIN
		if got := keys(tried).AttemptKeys; !slices.Equal(got, set.NewPINKeys) {
			t.Fatalf("attempt keys of %s tried %v, want the NewPINKeys of the set %v", change.NewPIN, got, set.NewPINKeys)
		}
	})
	t.Run("the same wrong PIN of two members has different keys", func(t *testing.T) {
		other := change
		other.LoginID = "c@d.example"
		if keys(other).AttemptKeys[0] == keys(change).AttemptKeys[0] {
			t.Fatal("two members share an attempt key")
		}
	})
	t.Run("a reset gets the keys of its new PIN only", func(t *testing.T) {
		r := change
		r.Kind, r.CurrentPIN = pinreset.KindReset, ""
		c := keys(r)
		if len(c.AttemptKeys) != 0 || len(c.NewPINKeys) != 2 {
			t.Fatalf("reset: AttemptKeys %v NewPINKeys %v, want none and two", c.AttemptKeys, c.NewPINKeys)
		}
	})
	t.Run("a status query gets no keys", func(t *testing.T) {
		c := keys(pinreset.Command{CorrelationID: "c1", ASPID: "KMTESTASP000001", Kind: pinreset.KindStatus})
		if c.AttemptKeys != nil || c.NewPINKeys != nil {
			t.Fatalf("status query: %v %v, want no keys", c.AttemptKeys, c.NewPINKeys)
		}
	})
}
