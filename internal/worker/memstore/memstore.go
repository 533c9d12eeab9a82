// Package memstore is an in-memory worker.Store for unit tests: the same
// contract as mongostore.Store (the storetest suite runs against both), in
// a map guarded by a mutex. It is not for production: nothing is durable.
package memstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Store keeps members and decisions in memory. The zero value is not
// usable; call New.
type Store struct {
	// Lease is how long an unsettled decision holds up the member's next
	// one before Update reports it as an UnsettledError. Patience is how
	// long Update waits for it to settle before looking (ErrBusy). Set
	// before first use.
	Lease, Patience time.Duration

	mu        sync.Mutex
	members   map[string]pinreset.Member // settled copies, by id
	logins    map[string]string          // "<asp>:<login>" -> member id
	decisions map[string]decision        // "<asp>:<cid>"
	claims    map[string]string          // "<member>:<version>" -> decision key
	now       func() time.Time
}

type decision struct {
	commit  pinreset.Commit
	version int64 // 0 without a member
}

// New returns an empty store with the production lease.
func New() *Store {
	return &Store{Lease: pinreset.SettleLease, Patience: 2 * time.Second, members: map[string]pinreset.Member{},
		logins: map[string]string{}, decisions: map[string]decision{}, claims: map[string]string{}, now: time.Now}
}

func key(a, b string) string { return a + ":" + b }

func claim(memberID string, version int64) string { return fmt.Sprintf("%s:%d", memberID, version) }

// PutMember sets a member's settled state (seeding), as its next version.
func (s *Store) PutMember(_ context.Context, m pinreset.Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.logins[key(m.ASPID, m.LoginID)]; ok && id != m.ID {
		return fmt.Errorf("put member %s: login id belongs to another member of the ASP", m.ID)
	}
	cur, ok := s.members[m.ID]
	m.Version = 1
	if ok {
		m.Version, m.Audit = cur.Version+1, cur.Audit
		if _, taken := s.claims[claim(m.ID, m.Version)]; taken {
			return fmt.Errorf("put member %s: %w", m.ID, pinreset.ErrBusy)
		}
		s.claims[claim(m.ID, m.Version)] = "put:" + claim(m.ID, m.Version)
	}
	s.logins[key(m.ASPID, m.LoginID)] = m.ID
	s.members[m.ID] = clone(m)
	return nil
}

// Outcome implements worker.Store.
func (s *Store) Outcome(_ context.Context, aspID, correlationID string) (pinreset.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.decisions[key(aspID, correlationID)]
	if !ok {
		return pinreset.Outcome{}, pinreset.ErrNoOutcome
	}
	return d.commit.Outcome, nil
}

// Record implements worker.Store.
func (s *Store) Record(_ context.Context, o pinreset.Outcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(o.ASPID, o.CorrelationID)
	if d, ok := s.decisions[k]; ok {
		return &pinreset.DecidedError{Commit: s.view(d)}
	}
	s.decisions[k] = decision{commit: pinreset.Commit{Outcome: o}}
	return nil
}

// view is d as Update and Record return it: a copy, Settled from the
// member's copy. The caller holds mu.
func (s *Store) view(d decision) pinreset.Commit {
	c := d.commit
	c.Member, c.Events = clone(c.Member), append([]pinreset.Event(nil), c.Events...)
	c.Settled = d.version == 0 || s.members[c.Member.ID].Version >= d.version
	return c
}

// Update implements worker.Store. decide runs without the lock held, as
// it does against a database: other decisions may commit meanwhile.
func (s *Store) Update(ctx context.Context, aspID, loginID string, decide func(pinreset.Member) (pinreset.Commit, error)) (pinreset.Commit, error) {
	s.mu.Lock()
	id, ok := s.logins[key(aspID, loginID)]
	m, found := s.members[id]
	s.mu.Unlock()
	if !ok || !found || m.ASPID != aspID || m.LoginID != loginID {
		return pinreset.Commit{}, pinreset.ErrMemberNotFound
	}
	for range 16 {
		c, err := decide(clone(m))
		if err != nil {
			return pinreset.Commit{}, err
		}
		if c.Member.ID != m.ID || c.Member.Version != m.Version+1 {
			return pinreset.Commit{}, fmt.Errorf("decision about member %s: version %d does not follow %d", m.ID, c.Member.Version, m.Version)
		}
		k := key(c.Outcome.ASPID, c.Outcome.CorrelationID)
		s.mu.Lock()
		if d, ok := s.decisions[k]; ok {
			v := s.view(d)
			s.mu.Unlock()
			return pinreset.Commit{}, &pinreset.DecidedError{Commit: v}
		}
		cl := claim(m.ID, c.Member.Version)
		winner, taken := s.claims[cl]
		if !taken {
			c.Member = clone(c.Member)
			s.decisions[k] = decision{commit: c, version: c.Member.Version}
			s.claims[cl] = k
			s.mu.Unlock()
			return c, nil
		}
		s.mu.Unlock()
		if m, err = s.waitSettled(ctx, m, winner); err != nil {
			return pinreset.Commit{}, err
		}
	}
	return pinreset.Commit{}, fmt.Errorf("member %s: 16 conflicting decisions in a row", m.ID)
}

func (s *Store) waitSettled(ctx context.Context, m pinreset.Member, winner string) (pinreset.Member, error) {
	start := time.Now()
	for {
		s.mu.Lock()
		cur := s.members[m.ID]
		d, isDecision := s.decisions[winner]
		var v pinreset.Commit
		if isDecision {
			v = s.view(d)
		}
		s.mu.Unlock()
		if cur.Version > m.Version {
			return clone(cur), nil
		}
		if time.Since(start) >= min(s.Patience, s.Lease) {
			if isDecision && s.now().Sub(d.commit.Outcome.CompletedAt) > s.Lease {
				return pinreset.Member{}, &pinreset.UnsettledError{Commit: v}
			}
			return pinreset.Member{}, fmt.Errorf("member %s version %d: %w", m.ID, m.Version+1, pinreset.ErrBusy)
		}
		select {
		case <-ctx.Done():
			return pinreset.Member{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Settle implements worker.Store: like mongostore's, it replaces the
// member's settled state, whatever it was (the caller makes sure c is
// newer).
func (s *Store) Settle(_ context.Context, c pinreset.Commit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.members[c.Member.ID]; ok {
		s.members[c.Member.ID] = clone(c.Member)
	}
	return nil
}

// FindMemberByID implements worker.Store.
func (s *Store) FindMemberByID(_ context.Context, id string) (*pinreset.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[id]
	if !ok {
		return nil, pinreset.ErrMemberNotFound
	}
	m = clone(m)
	return &m, nil
}

// clone copies m's slices, so that no caller shares them with the store.
func clone(m pinreset.Member) pinreset.Member {
	m.WrongAttempts = append([]pinreset.Attempt(nil), m.WrongAttempts...)
	m.Recent = append([]pinreset.Applied(nil), m.Recent...)
	m.Sets = append([]pinreset.SetClaim(nil), m.Sets...)
	return m
}
