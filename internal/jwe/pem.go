package jwe

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxPEMFileSize bounds a key file read by LoadKeyring, in bytes: 1 MiB. An
// RSA-8192 PKCS#1 PEM is under 7 KiB.
const maxPEMFileSize = 1 << 20

// LoadKeyring builds a keyring from every *.pem file in dir (not its
// subdirectories; names starting with "." are skipped, as are Kubernetes'
// "..data" links). Each file holds one RSA private key, PEM "PRIVATE KEY"
// (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1), unencrypted; its kid is the file
// name without ".pem". The rules of NewKeyring apply. Errors name the file and
// never carry key material.
func LoadKeyring(dir string) (*Keyring, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("jwe: read key directory: %w", err)
	}
	keys := make(map[string]*rsa.PrivateKey)
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".pem") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		priv, err := loadPrivateKeyFile(path, strings.TrimSuffix(name, ".pem"))
		if err != nil {
			return nil, fmt.Errorf("jwe: key file %s: %w", path, err)
		}
		keys[strings.TrimSuffix(name, ".pem")] = priv
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwe: key directory %s: no *.pem key files", dir)
	}
	return NewKeyring(keys)
}

func loadPrivateKeyFile(path, kid string) (*rsa.PrivateKey, error) {
	fi, err := os.Stat(path) // follows symlinks, as secret mounts use them
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > maxPEMFileSize {
		return nil, fmt.Errorf("%d bytes, over the %d limit for a key file", fi.Size(), maxPEMFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, err
	}
	if err := checkPrivateKey(kid, priv); err != nil {
		return nil, err
	}
	return priv, nil
}

// parsePrivateKeyPEM reads the one PEM block of data as an RSA private key.
// Its errors say what is wrong in fixed words: never the PEM text, and not
// the x509/asn1 error either, which may quote parsed DER.
func parsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, err := onePEMBlock(data)
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New(`malformed PKCS#8 "PRIVATE KEY" (a PKCS#1 key must be labelled "RSA PRIVATE KEY")`)
		}
		priv, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("PKCS#8 key is %T, want an RSA key", key)
		}
		return priv, nil
	case "RSA PRIVATE KEY":
		priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New(`malformed PKCS#1 "RSA PRIVATE KEY" (a PKCS#8 key must be labelled "PRIVATE KEY")`)
		}
		return priv, nil
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("encrypted PKCS#8 key; store the key unencrypted with file permissions 0600")
	default:
		return nil, fmt.Errorf(`PEM block %q, want "PRIVATE KEY" (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1)`, block.Type)
	}
}

// ParsePublicKeyPEM reads a client's RSA public key: one PEM block, "PUBLIC
// KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1), of at least 2048 bits.
func ParsePublicKeyPEM(pemBytes []byte) (*rsa.PublicKey, error) {
	block, err := onePEMBlock(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("jwe: public key: %w", err)
	}
	var pub *rsa.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, errors.New(`jwe: public key: malformed PKIX "PUBLIC KEY"`)
		}
		var ok bool
		if pub, ok = key.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("jwe: public key: PKIX key is %T, want an RSA key", key)
		}
	case "RSA PUBLIC KEY":
		if pub, err = x509.ParsePKCS1PublicKey(block.Bytes); err != nil {
			return nil, errors.New(`jwe: public key: malformed PKCS#1 "RSA PUBLIC KEY"`)
		}
	default:
		return nil, fmt.Errorf(`jwe: public key: PEM block %q, want "PUBLIC KEY" or "RSA PUBLIC KEY"`, block.Type)
	}
	if bits := pub.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("jwe: public key: RSA key of %d bits, want at least %d", bits, minRSABits)
	}
	return pub, nil
}

// onePEMBlock returns the single PEM block of data; anything but white space
// around it, a second block or PEM encryption headers is an error.
func onePEMBlock(data []byte) (*pem.Block, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one PEM block, or data after the PEM block")
	}
	if _, ok := block.Headers["Proc-Type"]; ok {
		return nil, errors.New("encrypted PEM (Proc-Type header) is not supported")
	}
	return block, nil
}
