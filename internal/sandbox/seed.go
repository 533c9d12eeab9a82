package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// SeedMember is one line of deployments/sandbox/members.jsonl. The PIN is in
// clear because this is public sandbox test data; it is hashed on load.
type SeedMember struct {
	ID      string `json:"id"`
	ASPID   string `json:"aspId"`
	LoginID string `json:"loginId"`
	CI      string `json:"ci"`
	PIN     string `json:"pin"`
}

// LoadSeed reads a JSON Lines file of seed members.
func LoadSeed(path string) ([]SeedMember, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open seed members: %w", err)
	}
	defer f.Close()
	var out []SeedMember
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var m SeedMember
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if m.ID == "" || m.ASPID == "" || m.LoginID == "" || len(m.PIN) != 6 {
			return nil, fmt.Errorf("%s line %d: id, aspId, loginId and a 6-digit pin are required", path, n)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read seed members: %w", err)
	}
	return out, nil
}

// MemberPutter stores a member whatever its current state.
type MemberPutter interface {
	PutMember(ctx context.Context, m pinreset.Member) error
}

// Hasher hashes PINs.
type Hasher interface {
	Hash(pin string) (string, error)
}

// Seed puts every seed member in its seed state (its seed PIN, no failed
// attempts, no history), so that the sandbox's example requests give their
// documented outcomes after every start.
func Seed(ctx context.Context, store MemberPutter, h Hasher, members []SeedMember, now time.Time) error {
	for _, s := range members {
		hash, err := h.Hash(s.PIN)
		if err != nil {
			return fmt.Errorf("hash seed member %s: %w", s.ID, err)
		}
		m := pinreset.Member{
			ID: s.ID, ASPID: s.ASPID, LoginID: s.LoginID, CI: s.CI,
			PINHash: hash, Version: 1, UpdatedAt: now.UTC(),
		}
		if err := store.PutMember(ctx, m); err != nil {
			return err
		}
	}
	return nil
}
