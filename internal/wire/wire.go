// Package wire encodes and decodes the Kafka message values of the service:
// the command on password.commands (secret fields sealed) and the result on
// password.results. schemas/ describes the same formats.
package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
)

// CommandVersion is the format version written in every command ("v").
// Version 2 binds every clear field into the seal (see associatedData);
// version 1 bound only the key id and the correlation id. A worker refuses
// any other version, version 1 included: a version 1 command is
// dead-lettered and answered 000_422 like any undecodable one, because
// accepting it would keep open the very hole version 2 closes (anyone who
// can produce to password.commands could rewrite a v1 command's kind, ASP or
// times). Commands in flight while ingresses and workers are upgraded are
// refused that way; the client retries under a new correlation id.
const CommandVersion = 2

// ResultVersion is the format version written in every result ("v").
const ResultVersion = 1

// MaxMessageBytes bounds a message value we agree to decode; the ingress
// never writes one over 2 KiB.
const MaxMessageBytes = 16 << 10

// ErrPoison marks a message that can never be processed (undecodable,
// invalid, or failing authentication). Such a message goes to the DLQ.
var ErrPoison = errors.New("poison message")

// command is the JSON value of a password.commands message.
//
// Every field but Sealed is clear text on Kafka, so every one of them MUST be
// in associatedData, which the seal authenticates: a clear field left out of
// it can be rewritten by whoever can produce to the topic without breaking
// the seal (turning a change into a reset, moving a command to another ASP,
// extending its expiry). Adding a clear field is two lines: the field here
// and its line in associatedData; TestTamperedClearFieldIsRefused fails for a
// field that is not bound.
type command struct {
	V             int            `json:"v"`
	CorrelationID string         `json:"correlationId"`
	RequestID     string         `json:"requestId"`
	ASPID         string         `json:"aspId"`
	Kind          pinreset.Kind  `json:"kind"`
	AcceptedAt    time.Time      `json:"acceptedAt"`
	ExpiresAt     time.Time      `json:"expiresAt"`
	Sealed        *seal.Envelope `json:"sealed,omitempty"` // absent for a status query
	// Auth is written only for KMV2 ("KMV2"); absent means KMV1, so that
	// a KMV1 command is byte for byte what older workers read.
	Auth pinreset.Scheme `json:"auth,omitempty"`
}

// HeaderRequestID carries the command's request id as a Kafka header too, so
// that a command too broken to decode can still be answered to its request.
const HeaderRequestID = "x-request-id"

// HeaderIngressID names the ingress instance that accepted the command
// (PINRESET_INGRESS_ID): who to ask, and whose log to read, about it. It is
// not part of the sealed command's associated data: it is for people only.
const HeaderIngressID = "x-ingress-id"

// secrets is the plaintext of the sealed envelope: everything personal or secret.
type secrets struct {
	LoginID    string `json:"loginId"`
	CI         string `json:"ci,omitempty"`
	CurrentPIN string `json:"currentPassword,omitempty"`
	NewPIN     string `json:"newPassword"`
}

// Sealer seals and opens the secret part of a command.
type Sealer interface {
	Seal(plaintext, aad []byte) (seal.Envelope, error)
	Open(e seal.Envelope, aad []byte) ([]byte, error)
}

// aadDomain separates this encoding from any other use of the seal keys.
const aadDomain = "kmwallet/pinreset command v2"

// associatedData is the AEAD associated data of m's sealed part: a canonical
// encoding of every clear field of m, so that a command whose clear part was
// changed on the way does not open. The encoding is the domain string, then
// each field's name and value in this fixed order, each preceded by its
// length as a uvarint: unambiguous whatever the values hold (no separator
// to forge) and independent of how the JSON was written (field order, white
// space, time zones: the values are the decoded ones, times as RFC 3339 in
// UTC with nanoseconds). The key id is bound by the seal itself (seal.Seal
// authenticates kid || 0x00 || this), the nonce and ciphertext by the AEAD.
func (m *command) associatedData() []byte {
	b := appendField(nil, aadDomain)
	for _, f := range [...]struct{ name, value string }{
		{"v", strconv.Itoa(m.V)},
		{"correlationId", m.CorrelationID},
		{"requestId", m.RequestID},
		{"aspId", m.ASPID},
		{"kind", string(m.Kind)},
		{"acceptedAt", stamp(m.AcceptedAt)},
		{"expiresAt", stamp(m.ExpiresAt)},
		{"auth", string(m.Auth)},
		// A new clear field goes here, one line.
	} {
		b = appendField(appendField(b, f.name), f.value)
	}
	return b
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// stamp is a time as the associated data holds it: the instant, not the
// zone it was written in.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// EncodeCommand returns the Kafka value of c, its secrets sealed with every
// clear field as associated data (see associatedData), so a sealed part
// cannot be moved to another command and no clear field can be changed.
func EncodeCommand(c pinreset.Command, s Sealer) ([]byte, error) {
	m := command{
		V: CommandVersion, CorrelationID: c.CorrelationID, RequestID: c.RequestID, ASPID: c.ASPID, Kind: c.Kind,
		AcceptedAt: c.AcceptedAt, ExpiresAt: c.ExpiresAt,
	}
	if c.Auth == pinreset.SchemeKMV2 {
		m.Auth = c.Auth
	}
	if c.Kind != pinreset.KindStatus {
		env, err := sealSecrets(c, m.associatedData(), s)
		if err != nil {
			return nil, err
		}
		m.Sealed = &env
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode command %s: %w", c.CorrelationID, err)
	}
	return b, nil
}

func sealSecrets(c pinreset.Command, aad []byte, s Sealer) (seal.Envelope, error) {
	plain, err := json.Marshal(secrets{LoginID: c.LoginID, CI: c.CI, CurrentPIN: c.CurrentPIN, NewPIN: c.NewPIN})
	if err != nil {
		return seal.Envelope{}, fmt.Errorf("encode command secrets: %w", err)
	}
	env, err := s.Seal(plain, aad)
	clear(plain)
	if err != nil {
		return seal.Envelope{}, fmt.Errorf("seal command %s: %w", c.CorrelationID, err)
	}
	return env, nil
}

// DecodeCommand parses and opens a command. key is the Kafka message key,
// which must equal the correlation id. Every failure wraps ErrPoison: a
// message that fails here fails the same way on every retry.
func DecodeCommand(key, value []byte, s Sealer) (pinreset.Command, error) {
	if len(value) > MaxMessageBytes {
		return pinreset.Command{}, fmt.Errorf("%w: value of %d bytes", ErrPoison, len(value))
	}
	var m command
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return pinreset.Command{}, fmt.Errorf("%w: decode: %v", ErrPoison, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return pinreset.Command{}, fmt.Errorf("%w: trailing data", ErrPoison)
	}
	switch {
	case m.V != CommandVersion:
		return pinreset.Command{}, fmt.Errorf("%w: version %d, want %d", ErrPoison, m.V, CommandVersion)
	case len(m.CorrelationID) != 20 || m.CorrelationID != string(key):
		return pinreset.Command{}, fmt.Errorf("%w: correlation id not 20 characters or not the key", ErrPoison)
	case len(m.ASPID) != 15:
		return pinreset.Command{}, fmt.Errorf("%w: aspId not 15 characters", ErrPoison)
	case m.Kind != pinreset.KindReset && m.Kind != pinreset.KindChange && m.Kind != pinreset.KindStatus:
		return pinreset.Command{}, fmt.Errorf("%w: kind %q", ErrPoison, m.Kind)
	case m.AcceptedAt.IsZero() || m.ExpiresAt.IsZero():
		return pinreset.Command{}, fmt.Errorf("%w: no acceptedAt or expiresAt", ErrPoison)
	case len(m.RequestID) > 64:
		return pinreset.Command{}, fmt.Errorf("%w: requestId too long", ErrPoison)
	case m.Auth != "" && !m.Auth.Known():
		return pinreset.Command{}, fmt.Errorf("%w: auth %q", ErrPoison, m.Auth)
	}
	c := pinreset.Command{
		CorrelationID: m.CorrelationID, RequestID: m.RequestID, ASPID: m.ASPID, Kind: m.Kind,
		AcceptedAt: m.AcceptedAt, ExpiresAt: m.ExpiresAt, Auth: m.Auth, // "" is KMV1
	}
	if m.Kind == pinreset.KindStatus {
		if m.Sealed != nil {
			return pinreset.Command{}, fmt.Errorf("%w: status query with a sealed part", ErrPoison)
		}
		return c, nil
	}
	if m.Sealed == nil {
		return pinreset.Command{}, fmt.Errorf("%w: no sealed part", ErrPoison)
	}
	plain, err := s.Open(*m.Sealed, m.associatedData())
	if errors.Is(err, seal.ErrUnknownKey) {
		// Not poison: the key may be deployed here later (a rollout that
		// reached the ingress first). The worker waits for it.
		return pinreset.Command{}, &pinreset.MissingKeyError{Kind: "seal", Err: err}
	}
	if err != nil {
		// Also what a tampered clear field looks like: the seal does not
		// say which part failed, and neither does this.
		return pinreset.Command{}, fmt.Errorf("%w: open sealed part: %w", ErrPoison, err)
	}
	var sec secrets
	err = json.Unmarshal(plain, &sec)
	clear(plain)
	if err != nil {
		return pinreset.Command{}, fmt.Errorf("%w: decode sealed part: %v", ErrPoison, err)
	}
	c.LoginID, c.CI, c.CurrentPIN, c.NewPIN = sec.LoginID, sec.CI, sec.CurrentPIN, sec.NewPIN
	// Re-checked by the request rules: a command is only as trustworthy as
	// whoever could write to the topic.
	if err := c.CheckSecrets(); err != nil {
		return pinreset.Command{}, fmt.Errorf("%w: %v", ErrPoison, err)
	}
	return c, nil
}

// result is the JSON value of a password.results message.
type result struct {
	V int `json:"v"`
	pinreset.Result
}

// EncodeResult returns the Kafka value of r.
func EncodeResult(r pinreset.Result) ([]byte, error) {
	b, err := json.Marshal(result{V: ResultVersion, Result: r})
	if err != nil {
		return nil, fmt.Errorf("encode result %s: %w", r.CorrelationID, err)
	}
	return b, nil
}

// DecodeResult parses a result value.
func DecodeResult(value []byte) (pinreset.Result, error) {
	var m result
	if err := json.Unmarshal(value, &m); err != nil {
		return pinreset.Result{}, fmt.Errorf("decode result: %w", err)
	}
	if m.V != ResultVersion || m.CorrelationID == "" || !m.Code.Known() {
		return pinreset.Result{}, fmt.Errorf("decode result: invalid (v=%d, code=%q)", m.V, m.Code)
	}
	return m.Result, nil
}

// PeekIDs reads only the correlation id and the ASP id of a command that
// could not be decoded, so that its rejection can still be recorded under
// them. ok is false unless both are well-formed and the id is the key.
func PeekIDs(key, value []byte) (correlationID, aspID string, ok bool) {
	if len(value) > MaxMessageBytes {
		return "", "", false
	}
	var ids struct {
		CorrelationID string `json:"correlationId"`
		ASPID         string `json:"aspId"`
	}
	if json.Unmarshal(value, &ids) != nil || ids.CorrelationID != string(key) || len(ids.CorrelationID) != 20 || len(ids.ASPID) != 15 {
		return "", "", false
	}
	return ids.CorrelationID, ids.ASPID, true
}
