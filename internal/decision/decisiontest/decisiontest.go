// Package decisiontest holds what the tests of the decision service and
// of the worker share: the embedded database and the cheap keys their
// commands need.
package decisiontest

import (
	"bytes"
	"context"
	"testing"

	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/sandbox"
	"github.com/kmwallet/pinreset/internal/seal"
)

// Deps are what the tests on FerretDB share: the embedded
// database, the cheapest argon2id the hasher accepts (these tests are about
// storage, not hashing), a fingerprinter and a seal keyring.
type Deps struct {
	Infra        *sandbox.Infra
	Hasher       *pinhash.Hasher
	Fingerprints *pinhash.Fingerprinter
	Ring         *seal.Keyring
}

// NewDeps starts the embedded database (skipped with -short) for t.
func NewDeps(t *testing.T) Deps {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the embedded FerretDB (not with -short)")
	}
	in, err := sandbox.StartInfra(context.Background(), sandbox.InfraConfig{DataDir: t.TempDir(), MongoAddr: "127.0.0.1:0", NoKafka: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	hasher, fingerprints, ring := Keys(t)
	return Deps{Infra: in, Hasher: hasher, Fingerprints: fingerprints, Ring: ring}
}

// Keys are the cheapest argon2id the hasher accepts (these tests are
// about storage and decisions, not hashing), a fingerprinter and a seal
// keyring, as every processor test uses them.
func Keys(t *testing.T) (*pinhash.Hasher, *pinhash.Fingerprinter, *seal.Keyring) {
	t.Helper()
	hasher, err := pinhash.New(pinhash.Params{Memory: 8, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		pinhash.Pepper{ID: "p1", Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	fingerprints, err := pinhash.NewFingerprinter(pinhash.FingerprintKey{ID: "f1", Key: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewKeyring(seal.Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, seal.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	return hasher, fingerprints, ring
}
