package audit

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loginHash stands for the caller's keyed hash of a loginId.
func loginHash(i int) string { return fmt.Sprintf("lh1:%040x", i) }

func memberRec(member, cid, code string) Record {
	return Record{ASPID: "KMSANDBOXASP001", Kind: KindChange, MemberID: member, CorrelationID: cid, Code: code, WorkerID: "w1",
		At: time.Date(2026, 3, 4, 5, 6, 7, 891e6, time.UTC)}
}

func memberlessRec(cid string, i int) Record {
	return Record{ASPID: "KMSANDBOXASP001", Kind: KindReset, LoginIDHash: loginHash(i), CorrelationID: cid, Code: "001_006", WorkerID: "w2",
		At: time.Date(2026, 3, 4, 5, 6, 8, 0, time.UTC)}
}

// chain links n records of member m, cid-0 to cid-(n-1), codes 000_000 to
// 000_00(n-1).
func chain(t *testing.T, member string, n int) []Record {
	t.Helper()
	var out []Record
	var prevSeq int64
	prevHash := ""
	for i := range n {
		r, err := Link(memberRec(member, fmt.Sprintf("cid-%d", i), fmt.Sprintf("000_00%d", i)), prevSeq, prevHash)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
		prevSeq, prevHash = r.Seq, r.Hash
	}
	return out
}

// verify gives recs to a Verifier, each as stored under its own ID.
func verify(recs ...Record) Report {
	var v Verifier
	for _, r := range recs {
		v.Next(ID(r.Chain, r.Seq), r)
	}
	return v.Report()
}

func wantBroken(t *testing.T, rep Report, chain string, seq int64, reason string) {
	t.Helper()
	if len(rep.Broken) != 1 || rep.Broken[0].Chain != chain || rep.Broken[0].Seq != seq || !strings.Contains(rep.Broken[0].Reason, reason) {
		t.Fatalf("Broken = %v, want exactly %s seq %d: ...%s...", rep.Broken, chain, seq, reason)
	}
}

func TestChainOf(t *testing.T) {
	if got := ChainOf(Record{ASPID: "A", MemberID: "m-1", CorrelationID: "c"}); got != "m:m-1" {
		t.Errorf("member chain = %q", got)
	}
	// FNV-32a("") = 0x811c9dc5; mod 16 = 5.
	if got := ChainOf(Record{ASPID: "A"}); got != "a:A:5" {
		t.Errorf("memberless chain of empty cid = %q, want a:A:5", got)
	}
	seen := map[string]bool{}
	for i := range 1000 {
		c := ChainOf(Record{ASPID: "ASP1", CorrelationID: fmt.Sprintf("cid-%d", i)})
		if !strings.HasPrefix(c, "a:ASP1:") {
			t.Fatalf("memberless chain = %q", c)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(c, "a:ASP1:"))
		if err != nil || n < 0 || n >= Shards {
			t.Fatalf("memberless chain = %q", c)
		}
		seen[c] = true
		if again := ChainOf(Record{ASPID: "ASP1", CorrelationID: fmt.Sprintf("cid-%d", i), LoginIDHash: loginHash(i)}); again != c {
			t.Fatalf("chain depends on more than ASP and correlation id: %q vs %q", again, c)
		}
	}
	if len(seen) != Shards {
		t.Errorf("1000 correlation ids used %d shards, want %d", len(seen), Shards)
	}
}

// TestHashIsStable: every stored record carries a hash computed by this
// encoding, so it never changes: these are its values for a record without
// a note and one with (computed by the encoding's first implementation).
func TestHashIsStable(t *testing.T) {
	r := Record{
		Chain: "m:m1", Seq: 3, PrevHash: strings.Repeat("ab", 32), ASPID: "KMSANDBOXASP001", Kind: KindChange,
		MemberID: "m1", CorrelationID: "261201090000-0000001", Code: "000_000",
		At: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), WorkerID: "w",
	}
	if got, want := Hash(r), "7bd48654d4faef5cfcb0129956be64907eed68d9cdf5dfb4e71adb04fb648f51"; got != want {
		t.Errorf("Hash = %s, want %s", got, want)
	}
	r.Kind, r.Code, r.WorkerID, r.Note = KindOperator, "purge", "pwctl:ops", "poison message"
	if got, want := Hash(r), "faa5eebf60f08a0c5b8fed9eb893e622c31af7df06df93bdf32a9f49b9b219a3"; got != want {
		t.Errorf("Hash with a note = %s, want %s", got, want)
	}
}

func TestHashCoversEveryField(t *testing.T) {
	base := Record{
		Chain: "m:m1", Seq: 3, PrevHash: strings.Repeat("ab", 32), ASPID: "ASP", Kind: KindChange,
		MemberID: "m1", LoginIDHash: loginHash(1), CorrelationID: "cid", Code: "000_000",
		At: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), WorkerID: "w",
	}
	h0 := Hash(base)
	changes := map[string]func(*Record){
		"Chain":         func(r *Record) { r.Chain = "m:m2" },
		"Seq":           func(r *Record) { r.Seq = 4 },
		"PrevHash":      func(r *Record) { r.PrevHash = strings.Repeat("cd", 32) },
		"ASPID":         func(r *Record) { r.ASPID = "ASQ" },
		"Kind":          func(r *Record) { r.Kind = KindReset },
		"MemberID":      func(r *Record) { r.MemberID = "m2" },
		"LoginIDHash":   func(r *Record) { r.LoginIDHash = loginHash(2) },
		"CorrelationID": func(r *Record) { r.CorrelationID = "cie" },
		"Code":          func(r *Record) { r.Code = "000_001" },
		"At":            func(r *Record) { r.At = r.At.Add(time.Millisecond) },
		"WorkerID":      func(r *Record) { r.WorkerID = "x" },
		"Note":          func(r *Record) { r.Note = "why" }, // (hashed only when set: older records keep their hashes)
		// Moving bytes between adjacent fields must change the hash too.
		"boundary": func(r *Record) { r.ASPID, r.Kind = "ASPc", "hange" },
	}
	// Every field but Hash must have a case.
	typ := reflect.TypeOf(Record{})
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if _, ok := changes[name]; !ok && name != "Hash" {
			t.Errorf("no case for field %s", name)
		}
	}
	for name, change := range changes {
		r := base
		change(&r)
		if Hash(r) == h0 {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
	r := base
	r.Hash = "whatever"
	if Hash(r) != h0 {
		t.Error("the hash depends on the Hash field")
	}
	r = base
	r.At = base.At.In(time.FixedZone("X", 3600))
	if Hash(r) != h0 {
		t.Error("the hash depends on the time zone")
	}
}

func TestLinkRefuses(t *testing.T) {
	for name, r := range map[string]Record{
		"kind":        {ASPID: "A", Kind: "status", Code: "000_000"},
		"no code":     {ASPID: "A", Kind: KindReset},
		"raw loginId": {ASPID: "A", Kind: KindReset, Code: "001_006", LoginIDHash: "someone@example.com"},
		"phone":       {ASPID: "A", Kind: KindReset, Code: "001_006", LoginIDHash: "01012345678"},
		"note":        {ASPID: "A", Kind: KindReset, Code: "000_000", Note: "a note is for operator records"},
		"long note":   {ASPID: "A", Kind: KindOperator, Code: "purge", Note: strings.Repeat("x", MaxNote+1)},
		"bad note":    {ASPID: "A", Kind: KindOperator, Code: "purge", Note: "\xff"},
	} {
		if _, err := Link(r, 0, ""); err == nil {
			t.Errorf("%s: Link accepted %+v", name, r)
		} else if strings.Contains(err.Error(), "someone") {
			t.Errorf("%s: error echoes the value: %v", name, err)
		}
	}
	op := Record{ASPID: "A", Kind: KindOperator, Code: "purge", WorkerID: "pwctl:ops", Note: strings.Repeat("x", MaxNote)}
	if _, err := Link(op, 0, ""); err != nil {
		t.Errorf("an operator's record with a note of MaxNote bytes: %v", err)
	}
}

func TestLink(t *testing.T) {
	in := memberRec("m1", "c1", "000_000")
	in.At = time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("KST", 9*3600))
	in.Chain, in.Seq, in.PrevHash, in.Hash = "z", 99, "y", "x" // ignored
	r, err := Link(in, 4, "prev")
	if err != nil {
		t.Fatal(err)
	}
	if r.Chain != "m:m1" || r.Seq != 5 || r.PrevHash != "prev" || r.Hash != Hash(r) || len(r.Hash) != 64 {
		t.Errorf("Link = %+v", r)
	}
	if !r.At.Equal(in.At.Truncate(time.Millisecond)) || r.At.Location() != time.UTC {
		t.Errorf("At = %v", r.At)
	}
	if err := CheckLinked(r); err != nil {
		t.Errorf("CheckLinked(Link's record): %v", err)
	}
	for name, change := range map[string]func(*Record){
		"field changed":   func(r *Record) { r.Code = "000_500" },
		"other chain":     func(r *Record) { r.Chain = "m:m2"; r.Hash = Hash(*r) },
		"seq 0":           func(r *Record) { r.Seq = 0; r.Hash = Hash(*r) },
		"refused by Link": func(r *Record) { r.Kind = "status"; r.Hash = Hash(*r) },
	} {
		bad := r
		change(&bad)
		if err := CheckLinked(bad); err == nil {
			t.Errorf("%s: CheckLinked accepted %+v", name, bad)
		}
	}
}

func TestVerifierAcceptsChains(t *testing.T) {
	m1 := chain(t, "m1", 5)
	other, err := Link(memberlessRec("other", 1), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	rep := verify(append([]Record{other}, m1...)...)
	if !rep.OK() || rep.Chains != 2 || rep.Records != 6 {
		t.Fatalf("Report = %+v", rep)
	}
	if rep := verify(); !rep.OK() || rep.Chains != 0 || rep.Records != 0 {
		t.Fatalf("empty trail: %+v", rep)
	}
}

// TestVerifierFindsBreaks: each way a chain can be damaged is reported at
// the record where it shows, with a reason that says what.
func TestVerifierFindsBreaks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func([]Record) []Record
		seq    int64
		reason string
	}{
		{"a field edited", func(rs []Record) []Record { rs[2].Code = "000_000"; return rs }, 3, "hash does not match"},
		{"a field edited, its hash recomputed", func(rs []Record) []Record {
			rs[1].Code = "000_000"
			rs[1].Hash = Hash(rs[1])
			return rs
		}, 3, "prevHash is not the hash of record 2"},
		{"a record deleted", func(rs []Record) []Record { return append(rs[:1], rs[2:]...) }, 2, "record 2 is missing"},
		{"records deleted", func(rs []Record) []Record { return append(rs[:1], rs[3:]...) }, 2, "records 2 to 3 are missing"},
		{"the first record deleted", func(rs []Record) []Record { return rs[1:] }, 1, "record 1 is missing"},
		{"a wrong prevHash", func(rs []Record) []Record {
			rs[3].PrevHash = rs[1].Hash
			rs[3].Hash = Hash(rs[3])
			return rs
		}, 4, "prevHash is not the hash of record 3"},
		{"a prevHash on the first record", func(rs []Record) []Record {
			rs[0].PrevHash = strings.Repeat("0", 64)
			rs[0].Hash = Hash(rs[0])
			return rs
		}, 1, "first record has a prevHash"},
		{"contents of two records swapped", func(rs []Record) []Record {
			rs[1].CorrelationID, rs[2].CorrelationID = rs[2].CorrelationID, rs[1].CorrelationID
			return rs
		}, 2, "hash does not match"},
		{"a seq twice", func(rs []Record) []Record { return append(rs[:3], append([]Record{rs[2]}, rs[3:]...)...) }, 3, "seq 3 appears twice"},
		{"moved to another member", func(rs []Record) []Record {
			for i := range rs {
				rs[i].Chain = "m:m9" // the record still names member m1
			}
			return rs
		}, 1, `belong to chain "m:m1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := tc.damage(chain(t, "m1", 5))
			rep := verify(recs...)
			wantBroken(t, rep, recs[0].Chain, tc.seq, tc.reason)
			t.Logf("reported: %s", rep.Broken[0])
		})
	}
}

// TestVerifierStoredPlace: a record stored under another record's ID
// (two records swapped whole, fields and all) breaks the chain there.
func TestVerifierStoredPlace(t *testing.T) {
	rs := chain(t, "m1", 4)
	var v Verifier
	v.Next(ID("m:m1", 1), rs[0])
	v.Next(ID("m:m1", 3), rs[1]) // record 2 kept where record 3 belongs
	v.Next(ID("m:m1", 2), rs[2])
	v.Next(ID("m:m1", 4), rs[3])
	wantBroken(t, v.Report(), "m:m1", 2, "moved or swapped")
}

// TestVerifierChainsAreIndependent: a break is reported once, in its
// chain; the records after it in that chain are counted, not judged, and
// the next chain is judged afresh.
func TestVerifierChainsAreIndependent(t *testing.T) {
	a, b, c := chain(t, "a", 3), chain(t, "b", 4), chain(t, "c", 2)
	b[1].Code, b[2].Code = "x", "y" // two damaged records: one break
	c[0].WorkerID = "z"
	var v Verifier
	for _, rs := range [][]Record{a, b, c} {
		for _, r := range rs {
			v.Next(ID(r.Chain, r.Seq), r)
		}
	}
	rep := v.Report()
	if rep.Chains != 3 || rep.Records != 9 || len(rep.Broken) != 2 ||
		rep.Broken[0] != (Break{Chain: "m:b", Seq: 2, Reason: rep.Broken[0].Reason}) || rep.Broken[1].Chain != "m:c" || rep.Broken[1].Seq != 1 {
		t.Fatalf("Report = %+v", rep)
	}
}

// TestVerifierUnreadable: a stored record that cannot be read breaks its
// chain there and is counted.
func TestVerifierUnreadable(t *testing.T) {
	rs := chain(t, "m1", 3)
	var v Verifier
	v.Next(ID(rs[0].Chain, 1), rs[0])
	v.Unreadable("m:m1", 2, `"m:m1:2"`, fmt.Errorf(`field "at" is missing`))
	v.Next(ID(rs[2].Chain, 3), rs[2])
	rep := v.Report()
	wantBroken(t, rep, "m:m1", 2, `record "m:m1:2" cannot be read: field "at" is missing`)
	if rep.Records != 3 || rep.Chains != 1 {
		t.Errorf("Report = %+v", rep)
	}
}
