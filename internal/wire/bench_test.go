package wire_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/wire"
)

// BenchmarkCommandRoundTrip is what the ingress and the worker spend on the
// wire format of one command: encode and seal, then open and decode.
func BenchmarkCommandRoundTrip(b *testing.B) {
	ring, err := seal.NewKeyring(seal.Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		b.Fatal(err)
	}
	cmd := pinreset.NewCommand("261125120000-abcdef0", "0123456789abcde", "KMTESTASP000001",
		pinreset.Request{LoginID: "member@example.com", CurrentPIN: "246810", NewPIN: "581379"}, time.Now(), 2*time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		v, err := wire.EncodeCommand(cmd, ring)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := wire.DecodeCommand([]byte(cmd.CorrelationID), v, ring); err != nil {
			b.Fatal(err)
		}
	}
}
