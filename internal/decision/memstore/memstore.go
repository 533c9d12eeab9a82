// Package memstore is an in-memory decision.Store for unit tests: the same
// contract as mongostore.Store (the storetest suite runs against both), in
// maps guarded by a mutex: a member is replaced only by a compare-and-set
// of its version, an outcome only inserted, and a member is read with the
// decisions whose outcome is recorded left out of its outbox. It is not for production:
// nothing is durable.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Store keeps members and outcomes in memory. The zero value is not
// usable; call New.
type Store struct {
	mu       sync.Mutex
	members  map[string]pinreset.Member // by id
	logins   map[string]string          // "<asp>:<login>" -> member id
	outcomes map[string]pinreset.Outcome
}

// New returns an empty store.
func New() *Store {
	return &Store{members: map[string]pinreset.Member{}, logins: map[string]string{}, outcomes: map[string]pinreset.Outcome{}}
}

func key(a, b string) string { return a + ":" + b }

// PutMember sets a member's state (seeding), as its next version; its
// outbox and audit link stay.
func (s *Store) PutMember(_ context.Context, m pinreset.Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.logins[key(m.ASPID, m.LoginID)]; ok && id != m.ID {
		return fmt.Errorf("put member %s: login id belongs to another member of the ASP", m.ID)
	}
	m.Version, m.Outbox = 1, nil
	if cur, ok := s.members[m.ID]; ok {
		m.Version, m.Outbox, m.Audit = cur.Version+1, cur.Outbox, cur.Audit
	}
	s.logins[key(m.ASPID, m.LoginID)] = m.ID
	s.members[m.ID] = clone(m)
	return nil
}

// Outcome implements decision.Store.
func (s *Store) Outcome(_ context.Context, aspID, correlationID string) (pinreset.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.outcomes[key(aspID, correlationID)]
	if !ok {
		return pinreset.Outcome{}, pinreset.ErrNoOutcome
	}
	return o, nil
}

// Record implements decision.Store.
func (s *Store) Record(_ context.Context, o pinreset.Outcome) (pinreset.Outcome, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(o.ASPID, o.CorrelationID)
	if rec, ok := s.outcomes[k]; ok {
		return rec, false, nil
	}
	s.outcomes[k] = o
	return o, true, nil
}

// Update implements decision.Store. decide runs without the lock held, as
// it does against a database: other decisions may commit meanwhile.
func (s *Store) Update(ctx context.Context, aspID, loginID, correlationID string, decide func(pinreset.Member, *pinreset.Outcome) (pinreset.Member, bool, error)) (pinreset.Member, error) {
	s.mu.Lock()
	id, ok := s.logins[key(aspID, loginID)]
	m, found := s.members[id]
	m = clone(m)
	var rec *pinreset.Outcome
	if o, ok := s.outcomes[key(aspID, correlationID)]; ok {
		rec = &o
	}
	s.mu.Unlock()
	if !ok || !found || m.ASPID != aspID || m.LoginID != loginID {
		return pinreset.Member{}, pinreset.ErrMemberNotFound
	}
	for range 16 {
		next, write, err := decide(m, rec)
		if err != nil || !write {
			return m, err
		}
		if next.ID != m.ID || next.Version != m.Version+1 {
			return pinreset.Member{}, fmt.Errorf("decision about member %s: version %d does not follow %d", m.ID, next.Version, m.Version)
		}
		s.mu.Lock()
		if s.members[m.ID].Version == m.Version {
			s.members[m.ID] = clone(next)
			s.mu.Unlock()
			return clone(next), nil
		}
		m = clone(s.members[m.ID])
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return pinreset.Member{}, err
		}
	}
	return pinreset.Member{}, fmt.Errorf("member %s: 16 conflicting decisions in a row", m.ID)
}

// read returns a copy of member id with the decisions whose outcome is
// recorded (delivered) left out of its outbox, as mongostore reads it.
// The caller holds mu.
func (s *Store) read(id string) (pinreset.Member, bool) {
	m, ok := s.members[id]
	if !ok {
		return pinreset.Member{}, false
	}
	m = clone(m)
	m.Outbox = slices.DeleteFunc(m.Outbox, func(p pinreset.Pending) bool {
		_, done := s.outcomes[key(p.Outcome.ASPID, p.Outcome.CorrelationID)]
		return done
	})
	return m, true
}

// Pending implements decision.Store.
func (s *Store) Pending(_ context.Context, ps []pinreset.Pending) ([]pinreset.Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(ps), func(p pinreset.Pending) bool {
		_, done := s.outcomes[key(p.Outcome.ASPID, p.Outcome.CorrelationID)]
		return done
	}), nil
}

// Undelivered implements decision.Store.
func (s *Store) Undelivered(_ context.Context, before time.Time, limit int) ([]pinreset.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pinreset.Member
	for id, m := range s.members {
		if len(out) < limit && slices.ContainsFunc(m.Outbox, func(p pinreset.Pending) bool { return p.Outcome.CompletedAt.Before(before) }) {
			r, _ := s.read(id)
			out = append(out, r)
		}
	}
	return out, nil
}

// Prune implements decision.Store.
func (s *Store) Prune(_ context.Context, ms []pinreset.Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		if cur, ok := s.members[m.ID]; ok && cur.Version == m.Version {
			cur.Outbox = nil
			s.members[m.ID] = cur
		}
	}
	return nil
}

// FindMemberByID implements decision.Store.
func (s *Store) FindMemberByID(_ context.Context, id string) (*pinreset.Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.read(id)
	if !ok {
		return nil, pinreset.ErrMemberNotFound
	}
	return &m, nil
}

// clone copies m's slices, so that no caller shares them with the store.
func clone(m pinreset.Member) pinreset.Member {
	m.WrongAttempts = slices.Clone(m.WrongAttempts)
	m.Recent = slices.Clone(m.Recent)
	m.Sets = slices.Clone(m.Sets)
	m.Outbox = slices.Clone(m.Outbox)
	for i := range m.Outbox {
		m.Outbox[i].Events = slices.Clone(m.Outbox[i].Events)
	}
	return m
}
