package audit

import "fmt"

// Report is what a Verifier found.
type Report struct {
	Chains  int     // chains seen
	Records int     // records seen
	Broken  []Break // the first broken link of each broken chain, in the order seen
}

// OK says whether nothing is broken.
func (r Report) OK() bool { return len(r.Broken) == 0 }

// Break is the first place a chain does not verify.
type Break struct {
	Chain  string
	Seq    int64 // the record that does not verify, or the first missing seq
	Reason string
}

func (b Break) String() string { return fmt.Sprintf("%s seq %d: %s", b.Chain, b.Seq, b.Reason) }

// Verifier checks chains from their records, given one by one: every
// record of a chain together, in seq order (a store reads them sorted by
// chain, then seq). For each record it recomputes the hash and checks that
// the record is kept under its ID, that its chain is the one its fields
// name, that seqs run 1, 2, ... without gaps and that its PrevHash is the
// hash of the record before. It reports the first break of each chain and
// ignores the rest of that chain. The zero value is ready to use.
type Verifier struct {
	rep      Report
	chain    string
	started  bool
	broken   bool   // the current chain has its break
	expect   int64  // next seq of the current chain
	prevHash string // hash of the record before
}

// Next checks r, the next record read; id is the key it was stored under.
func (v *Verifier) Next(id string, r Record) {
	v.enter(r.Chain)
	if v.broken {
		return
	}
	switch {
	case id != ID(r.Chain, r.Seq):
		v.fail(r.Seq, "record stored as %q holds chain %q seq %d (moved or swapped)", id, r.Chain, r.Seq)
	case r.Seq < v.expect:
		v.fail(r.Seq, "seq %d appears twice", r.Seq)
	case r.Seq > v.expect && v.expect == r.Seq-1:
		v.fail(v.expect, "record %d is missing (next is %d)", v.expect, r.Seq)
	case r.Seq > v.expect:
		v.fail(v.expect, "records %d to %d are missing (next is %d)", v.expect, r.Seq-1, r.Seq)
	case ChainOf(r) != r.Chain:
		v.fail(r.Seq, "record's member, ASP or correlation id belong to chain %q (altered)", ChainOf(r))
	case Hash(r) != r.Hash:
		v.fail(r.Seq, "hash does not match the record's fields (altered)")
	case r.PrevHash != v.prevHash:
		if r.Seq == 1 {
			v.fail(r.Seq, "first record has a prevHash (altered)")
		} else {
			v.fail(r.Seq, "prevHash is not the hash of record %d (a record was altered, replaced or reordered)", r.Seq-1)
		}
	}
	v.expect, v.prevHash = r.Seq+1, r.Hash
}

// Unreadable counts a stored record that cannot be read as a Record (a
// field missing, extra or of the wrong type), stored under id, as the
// next record of chain at seq (what could be read of them): it breaks
// the chain there.
func (v *Verifier) Unreadable(chain string, seq int64, id string, err error) {
	v.enter(chain)
	if !v.broken {
		v.fail(seq, "record %s cannot be read: %v", id, err)
	}
}

// Report is what the records given so far show.
func (v *Verifier) Report() Report { return v.rep }

// enter counts a record of chain, starting a new chain when it is not the
// current one.
func (v *Verifier) enter(chain string) {
	if !v.started || chain != v.chain {
		v.started, v.chain, v.broken, v.expect, v.prevHash = true, chain, false, 1, ""
		v.rep.Chains++
	}
	v.rep.Records++
}

func (v *Verifier) fail(seq int64, format string, args ...any) {
	v.rep.Broken = append(v.rep.Broken, Break{Chain: v.chain, Seq: seq, Reason: fmt.Sprintf(format, args...)})
	v.broken = true
}
