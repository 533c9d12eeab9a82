package loadgen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// SeedSpec says which members to create for a run: Options.Members is
// Pattern, Options.MemberCount Count, and Options.InitialPIN the PIN
// PINHash was made from.
type SeedSpec struct {
	ASPID   string
	Pattern string // loginId pattern with one %d, the member's index
	Count   int
	Batch   int    // members per InsertMembers call; at least 1
	PINHash string // one PHC string for every member
	Now     time.Time
}

// MemberInserter inserts new members at version 1, leaving those already
// there as they are, and says how many were new (mongostore.Store does).
type MemberInserter interface {
	InsertMembers(ctx context.Context, ms []pinreset.Member) (inserted int, err error)
}

// Seed inserts spec.Count members in batches of spec.Batch and returns how
// many were new. Member ids derive from the ASP and the loginId, so a
// re-run makes the same ids and inserts nothing twice. progress, if not
// nil, is told how many members have been handled after each batch.
func Seed(ctx context.Context, store MemberInserter, spec SeedSpec, progress func(done int)) (inserted int, err error) {
	batch := make([]pinreset.Member, 0, min(spec.Batch, spec.Count))
	flush := func(done int) error {
		n, err := store.InsertMembers(ctx, batch)
		inserted += n
		batch = batch[:0]
		if err != nil {
			return err
		}
		if progress != nil {
			progress(done)
		}
		return nil
	}
	for i := range spec.Count {
		loginID := fmt.Sprintf(spec.Pattern, i)
		batch = append(batch, pinreset.Member{ID: MemberID(spec.ASPID, loginID), ASPID: spec.ASPID, LoginID: loginID,
			PINHash: spec.PINHash, Version: 1, UpdatedAt: spec.Now.UTC()})
		if len(batch) == spec.Batch || i == spec.Count-1 {
			if err := flush(i + 1); err != nil {
				return inserted, err
			}
		}
	}
	return inserted, nil
}

// MemberID derives a member id from the ASP and the loginId, so that a
// re-run makes the same ids (and skips them) and two patterns never collide.
// pwctl members import gives its members the same ids.
func MemberID(aspID, loginID string) string {
	sum := sha256.Sum256([]byte(aspID + "\x00" + loginID))
	return "load-" + hex.EncodeToString(sum[:12])
}

// CheckPattern accepts a loginId pattern with exactly one %d (any width
// flags) and no other verb, that makes valid loginIds.
func CheckPattern(p string) error {
	s := fmt.Sprintf(p, 7)
	if strings.Contains(s, "%!") {
		return fmt.Errorf("%q must hold exactly one %%d verb", p)
	}
	if fmt.Sprintf(p, 7) == fmt.Sprintf(p, 8) {
		return fmt.Errorf("%q does not depend on the index", p)
	}
	if _, err := pinreset.ParseRequest([]byte(fmt.Sprintf(`{"loginId":%q,"newPassword":"240810","isResetPassword":true}`, s))); err != nil {
		return fmt.Errorf("%q does not make a valid loginId: %v", p, err)
	}
	return nil
}
