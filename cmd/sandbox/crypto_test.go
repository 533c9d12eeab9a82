package main

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kmwallet/pinreset/internal/jwe"
	"github.com/kmwallet/pinreset/internal/kmheader"
)

const sandboxServerKID = "sbxserverkey00000000000000000001"

// serverKey fetches the JWKS as a client would and returns the key for kid.
func serverKey(t *testing.T, e Env, kid string) *rsa.PublicKey {
	t.Helper()
	res, err := http.Get("http://" + e.HTTPAddr + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if strings.Contains(string(raw), `"d"`) {
		t.Fatalf("the JWKS holds private key material: %s", raw)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("JWKS: %v: %s", err, raw)
	}
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with kid %s: %s", len(keys), kid, raw)
	}
	pub, ok := keys[0].Key.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("JWKS key %s is %T", kid, keys[0].Key)
	}
	return pub
}

func clientPrivateKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	block, _ := pem.Decode(readFile(t, "../../deployments/sandbox/client-private-key.pem"))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// postEncrypted sends body (already a JWE, or anything) with the crypto key
// id header, and decrypts the response with the client's private key.
func (c *client) postEncrypted(t *testing.T, body []byte, kid string, priv *rsa.PrivateKey) (int, http.Header, response) {
	t.Helper()
	req := c.postRequest(body, "", func(h http.Header) {
		h.Set("X-KM-Crypto-Key-Id", kid)
		h.Set("Content-Type", "application/jose")
	})
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var r response
	r.status, r.header = res.StatusCode, res.Header
	if res.Header.Get("Content-Type") != "application/jose" {
		t.Fatalf("response %d is not a JWE (Content-Type %q): %s", res.StatusCode, res.Header.Get("Content-Type"), raw)
	}
	plain, err := jwe.DecryptWith(priv, raw)
	if err != nil {
		t.Fatalf("decrypt response: %v", err)
	}
	if err := json.Unmarshal(plain, &r.body); err != nil {
		t.Fatalf("decrypted response %q: %v", plain, err)
	}
	return res.StatusCode, res.Header, r
}

func TestMessageEncryption(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	priv := clientPrivateKey(t)
	pub := serverKey(t, e, sandboxServerKID)
	encrypt := func(body string, kid string) []byte {
		b, err := jwe.Encrypt([]byte(body), pub, kid)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	success := string(readFile(t, "../../deployments/sandbox/requests/success.json"))

	t.Run("round trip: encrypted request, encrypted response", func(t *testing.T) {
		status, h, r := c.postEncrypted(t, encrypt(success, sandboxServerKID), sandboxServerKID, priv)
		if status != 200 || r.body.Code != "000_000" || h.Get("X-KM-Crypto-Key-Id") != sandboxServerKID {
			t.Fatalf("got %d %+v crypto key id %q", status, r.body, h.Get("X-KM-Crypto-Key-Id"))
		}
	})
	t.Run("body rules apply to the plaintext", func(t *testing.T) {
		_, _, r := c.postEncrypted(t, encrypt(`{"loginId":"x"}`, sandboxServerKID), sandboxServerKID, priv)
		if r.body.Code != "000_003" {
			t.Fatalf("got %+v, want 000_003 (newPassword missing)", r.body)
		}
	})
	cases := map[string]struct {
		body []byte
		kid  string
		code string
	}{
		"unknown key id":         {encrypt(success, "unknownkey000000000000000000000x"), "unknownkey000000000000000000000x", "000_030"},
		"kid header mismatch":    {encrypt(success, "unknownkey000000000000000000000x"), sandboxServerKID, "000_031"},
		"plain JSON, not a JWE":  {[]byte(success), sandboxServerKID, "000_031"},
		"alg none":               {[]byte(b64(`{"alg":"none","enc":"A256GCM","kid":"`+sandboxServerKID+`"}`) + "...."), sandboxServerKID, "000_031"},
		"tampered ciphertext":    {tamper(encrypt(success, sandboxServerKID), 3), sandboxServerKID, "000_031"},
		"tampered encrypted key": {tamper(encrypt(success, sandboxServerKID), 1), sandboxServerKID, "000_031"},
		"truncated":              {encrypt(success, sandboxServerKID)[:100], sandboxServerKID, "000_031"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			status, _, r := c.postEncrypted(t, tc.body, tc.kid, priv)
			if status != 400 || string(r.body.Code) != tc.code {
				t.Fatalf("got %d %+v, want 400 %s", status, r.body, tc.code)
			}
		})
	}
	t.Run("the MAC covers the bytes sent, not the plaintext", func(t *testing.T) {
		body := encrypt(success, sandboxServerKID)
		req := c.postRequest([]byte(success), "", func(h http.Header) { // MAC over the plaintext
			h.Set("X-KM-Crypto-Key-Id", sandboxServerKID)
			h.Set("Content-Type", "application/jose")
		})
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		r, err := c.send(req)
		if err != nil || r.status != 401 {
			t.Fatalf("got %+v %v, want 401", r, err)
		}
	})
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// tamper flips a bit in the middle of part i of a compact JWE.
func tamper(compact []byte, i int) []byte {
	parts := strings.Split(string(compact), ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[i])
	raw[len(raw)/2] ^= 1
	parts[i] = base64.RawURLEncoding.EncodeToString(raw)
	return []byte(strings.Join(parts, "."))
}

// TestKeyRotation: the ingress seals with a new AEAD key that the worker
// holds as an old one; the worker hashes with a new pepper and verifies the
// PINs hashed under the old one, and a successful set re-hashes them with
// the new pepper and the new argon2 parameters.
func TestKeyRotation(t *testing.T) {
	e := startSandbox(t, nil, "-infra-only")
	oldSeal, oldPepper := e.Getenv("PINRESET_SEAL_KEYS"), e.Getenv("PINRESET_PEPPERS")
	newSeal := "sbx2:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	newPepper := "sbxp2:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x3c}, 32))
	addr := startIngress(t, e, map[string]string{"PINRESET_SEAL_KEYS": newSeal + "," + oldSeal})
	startWorker(t, e, map[string]string{
		"PINRESET_SEAL_KEYS": oldSeal + "," + newSeal, "PINRESET_PEPPERS": newPepper + "," + oldPepper,
		"PINRESET_ARGON2_TIME": "3",
	})
	e.HTTPAddr = addr
	c := newClient(t, e)
	r := c.post(changeBody("246810", "581379"), kmheader.NewCorrelationID(time.Now(), nil), nil)
	if r.body.Code != "000_000" {
		t.Fatalf("change under rotated keys: %+v, want 000_000", r.body)
	}
	var doc struct {
		PINHash string `bson:"pinHash"`
	}
	settledMember(t, e, "success@sandbox.example", &doc)
	if !strings.HasPrefix(doc.PINHash, "$argon2id$v=19$m=19456,t=3,p=1,k=sbxp2$") {
		t.Fatalf("hash after the set = %q, want the new pepper sbxp2 and t=3", doc.PINHash)
	}
}
