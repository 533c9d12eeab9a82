package decision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Replacer commits a state built over whatever a member document holds,
// a damaged one included (*mongostore.Store).
type Replacer interface {
	Replace(ctx context.Context, id string, build func(version int64, head pinreset.AuditLink, cur *pinreset.Member) (pinreset.Member, error)) (pinreset.Member, error)
}

// Repair is an operator's repair of a member whose document is damaged
// (runbook, Damaged members): a new PIN and a clean state.
type Repair struct {
	MemberID, ASPID, LoginID string
	CI                       string // kept from the document when "" and it is readable
	PINHash                  string // the new PIN, hashed as the worker hashes
	Operator                 string // who, for the audit record ("pwctl:<operator>")
	Reason                   string // why, for the audit record; never member data
}

// Repair puts a damaged member right through the decision path: one
// conditional update of its document makes the next version with the new
// PIN, no attempts, lock or history but the repair, the replay claims and
// undelivered decisions it still has when it decodes, and the repair in
// its outbox; then the repair is delivered like a decision: a
// password.changed event (kind reset: the PIN was set without the old
// one), an audit record of the operator's with the reason, and the
// outcome record under a correlation id of its own, which it returns.
func (s *Service) Repair(ctx context.Context, store Replacer, r Repair) (pinreset.Outcome, error) {
	if r.MemberID == "" || r.ASPID == "" || r.LoginID == "" || r.PINHash == "" || r.Operator == "" || r.Reason == "" {
		return pinreset.Outcome{}, errors.New("repair: member, ASP, loginId, PIN hash, operator and reason are required")
	}
	now := s.now().UTC()
	cid, err := newCorrelationID(now)
	if err != nil {
		return pinreset.Outcome{}, err
	}
	o := pinreset.Outcome{ASPID: r.ASPID, CorrelationID: cid, Kind: pinreset.KindReset, Code: pinreset.CodeSuccess,
		MemberID: r.MemberID, AcceptedAt: now, CompletedAt: now, WorkerID: "pwctl:" + r.Operator}
	m, err := store.Replace(ctx, r.MemberID, func(version int64, head pinreset.AuditLink, cur *pinreset.Member) (pinreset.Member, error) {
		next := pinreset.Member{ID: r.MemberID, ASPID: r.ASPID, LoginID: r.LoginID, CI: r.CI, PINHash: r.PINHash,
			Version: version + 1, UpdatedAt: now, Recent: []pinreset.Applied{{CorrelationID: cid, Code: o.Code, At: now}}}
		if cur != nil {
			if next.CI == "" {
				next.CI = cur.CI
			}
			// A captured request must not set the PIN again within its
			// window, and a decision still undelivered is delivered.
			next.Sets, next.Outbox, head = cur.Sets, cur.Outbox, cur.Audit
		}
		events := []pinreset.Event{{ID: fmt.Sprintf("%s:%d:0", r.MemberID, next.Version), Type: pinreset.EventPINSet, Version: next.Version,
			MemberID: r.MemberID, ASPID: r.ASPID, CorrelationID: cid, Kind: pinreset.KindReset, At: now}}
		pd := pinreset.Pending{Version: next.Version, Outcome: o, Events: events, Repair: r.Reason}
		next.Outbox = append(next.Outbox, pd)
		return link(next, head)
	})
	if err != nil {
		return pinreset.Outcome{}, err
	}
	if err := s.deliver(ctx, m, cid); err != nil {
		return o, fmt.Errorf("repair of member %s committed (%s), its delivery failed (the relay completes it): %w", r.MemberID, cid, err)
	}
	return o, nil
}

// newCorrelationID makes a correlation id of the API's form
// (yyMMddHHmmss-xxxxxxx) for a transaction an operator starts.
func newCorrelationID(now time.Time) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return now.Format("060102150405") + "-" + hex.EncodeToString(b)[:7], nil
}
