package worker_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/sandbox"
	"github.com/kmwallet/pinreset/internal/seal"
)

// deps are what the processor tests on FerretDB share: the embedded
// database, the cheapest argon2id the hasher accepts (these tests are about
// storage, not hashing), a fingerprinter and a seal keyring.
type deps struct {
	infra        *sandbox.Infra
	hasher       *pinhash.Hasher
	fingerprints *pinhash.Fingerprinter
	ring         *seal.Keyring
}

func newDeps(t *testing.T) deps {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the embedded FerretDB (not with -short)")
	}
	in, err := sandbox.StartInfra(context.Background(), sandbox.InfraConfig{DataDir: t.TempDir(), MongoAddr: "127.0.0.1:0", NoKafka: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	hasher, fingerprints, ring := testKeys(t)
	return deps{infra: in, hasher: hasher, fingerprints: fingerprints, ring: ring}
}

// testKeys are the cheapest argon2id the hasher accepts (these tests are
// about storage and decisions, not hashing), a fingerprinter and a seal
// keyring, as every processor test uses them.
func testKeys(t *testing.T) (*pinhash.Hasher, *pinhash.Fingerprinter, *seal.Keyring) {
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
