package kafkabus

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/segmentio/kafka-go"
)

func msg(topic string, partition int, offset int64) kafka.Message {
	return kafka.Message{Topic: topic, Partition: partition, Offset: offset, Key: []byte(fmt.Sprintf("%s/%d/%d", topic, partition, offset))}
}

// wantCommit checks what done(m) returned: want < 0 means nothing to commit,
// otherwise the message at offset want of m's topic and partition.
func wantCommit(t *testing.T, tr *tracker, m kafka.Message, want int64) {
	t.Helper()
	got, ok := tr.done(m)
	switch {
	case want < 0 && ok:
		t.Fatalf("done(%s/%d@%d) commits %s/%d@%d, want nothing", m.Topic, m.Partition, m.Offset, got.Topic, got.Partition, got.Offset)
	case want < 0:
		return
	case !ok:
		t.Fatalf("done(%s/%d@%d) commits nothing, want offset %d", m.Topic, m.Partition, m.Offset, want)
	case got.Topic != m.Topic || got.Partition != m.Partition || got.Offset != want:
		t.Fatalf("done(%s/%d@%d) commits %s/%d@%d, want %s/%d@%d", m.Topic, m.Partition, m.Offset, got.Topic, got.Partition, got.Offset, m.Topic, m.Partition, want)
	}
}

func TestTrackerCommitsTheContiguousPrefix(t *testing.T) {
	t.Parallel()
	const none = -1
	for _, tc := range []struct {
		rule    string
		fetched []int64
		done    []int64 // in this order
		commits []int64 // after each done
	}{
		{"in-order completion commits each message", []int64{0, 1, 2}, []int64{0, 1, 2}, []int64{0, 1, 2}},
		{"out-of-order completion commits only the contiguous prefix", []int64{0, 1, 2}, []int64{2, 0, 1}, []int64{none, 0, 2}},
		{"reverse completion commits everything at the last", []int64{0, 1, 2, 3}, []int64{3, 2, 1, 0}, []int64{none, none, none, 3}},
		{"a gap in the middle holds back what follows it", []int64{0, 1, 2, 3, 4}, []int64{0, 2, 3, 4, 1}, []int64{0, none, none, none, 4}},
		{"offsets need not start at zero", []int64{40, 41, 42}, []int64{41, 40, 42}, []int64{none, 41, 42}},
		// The commit point is the next outstanding offset: 17 after 10 and 13,
		// which commits the same as "after 13" (14..16 do not exist).
		{"offsets need not be contiguous (a compacted topic)", []int64{10, 13, 17}, []int64{13, 10, 17}, []int64{none, 16, 17}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			tr := newTracker()
			for _, o := range tc.fetched {
				tr.fetched(msg("password.commands", 3, o))
			}
			for i, o := range tc.done {
				wantCommit(t, tr, msg("password.commands", 3, o), tc.commits[i])
			}
		})
	}
	t.Run("messages fetched after a commit are tracked from there", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		tr.fetched(msg("t", 0, 0))
		wantCommit(t, tr, msg("t", 0, 0), 0)
		tr.fetched(msg("t", 0, 1))
		tr.fetched(msg("t", 0, 2))
		wantCommit(t, tr, msg("t", 0, 2), none)
		wantCommit(t, tr, msg("t", 0, 1), 2)
	})
}

func TestTrackerPartitionsAreIndependent(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	for _, o := range []int64{0, 1} {
		tr.fetched(msg("t", 0, o))
		tr.fetched(msg("t", 1, o))
	}
	wantCommit(t, tr, msg("t", 1, 0), 0)   // partition 0 still has 0 pending
	wantCommit(t, tr, msg("t", 0, 1), -1)  // waits for offset 0 of its own partition
	wantCommit(t, tr, msg("t", 1, 1), 1)   // partition 1 is unaffected by partition 0's gap
	wantCommit(t, tr, msg("t", 0, 0), 1)   // and partition 0 now commits its own offset 1
	wantCommit(t, tr, msg("t", 2, 0), -1)  // never fetched
	wantCommit(t, tr, msg("t", 1, 99), -1) // nothing pending
}

func TestTrackerTopicsAreIndependent(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	for _, o := range []int64{5, 6} {
		tr.fetched(msg("a", 0, o))
		tr.fetched(msg("b", 0, o))
	}
	wantCommit(t, tr, msg("b", 0, 5), 5)
	wantCommit(t, tr, msg("a", 0, 6), -1)
	wantCommit(t, tr, msg("b", 0, 6), 6)
	wantCommit(t, tr, msg("a", 0, 5), 6)
}

func TestTrackerIgnoresUnknownPartitions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rule string
		m    kafka.Message
	}{
		{"a partition never fetched commits nothing", msg("t", 9, 0)},
		{"a topic never fetched commits nothing, whatever its partition", msg("other", 0, 0)},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			tr := newTracker()
			tr.fetched(msg("t", 0, 0))
			wantCommit(t, tr, tc.m, -1)
			wantCommit(t, tr, msg("t", 0, 0), 0) // the known partition is unaffected
		})
	}
	t.Run("an empty tracker commits nothing", func(t *testing.T) {
		t.Parallel()
		if m, ok := newTracker().done(msg("t", 0, 0)); ok {
			t.Errorf("done on an empty tracker = %v, true", m)
		}
	})
}

func TestLane(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	randomKey := func() []byte {
		b := make([]byte, 1+rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	t.Run("a key always goes to the same lane", func(t *testing.T) {
		t.Parallel()
		for _, key := range [][]byte{nil, {}, []byte("260301120000-0a1b2c3"), []byte("260301120000-0a1b2c4"), {0, 0xff}} {
			first := lane(key, 8)
			for range 5 {
				if got := lane(append([]byte(nil), key...), 8); got != first {
					t.Fatalf("lane(%q, 8) = %d, then %d", key, first, got)
				}
			}
		}
	})
	t.Run("the lane is within [0, n)", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(3, 4))
		for _, n := range []int{1, 2, 3, 4, 7, 16, 1000} {
			for range 500 {
				key := make([]byte, rng.IntN(32))
				for i := range key {
					key[i] = byte(rng.UintN(256))
				}
				if got := lane(key, n); got < 0 || got >= n {
					t.Fatalf("lane(%q, %d) = %d", key, n, got)
				}
			}
		}
	})
	t.Run("1000 random keys spread over 4 lanes, each getting at least 10%", func(t *testing.T) {
		var count [4]int
		for range 1000 {
			count[lane(randomKey(), 4)]++
		}
		for i, c := range count {
			if c < 100 {
				t.Errorf("lane %d got %d of 1000 keys (all: %v)", i, c, count)
			}
		}
	})
	t.Run("correlation ids that differ in the last digit spread too", func(t *testing.T) {
		t.Parallel()
		var count [4]int
		for i := range 1000 {
			count[lane([]byte(fmt.Sprintf("260301120000-%07x", i)), 4)]++
		}
		for i, c := range count {
			if c < 100 {
				t.Errorf("lane %d got %d of 1000 sequential ids (all: %v)", i, c, count)
			}
		}
	})
}

// After a rebalance (or a new reader) kafka-go fetches a partition again
// from its committed offset, while lanes may still hold the first copies.
func TestTrackerAcrossRefetches(t *testing.T) {
	t.Parallel()
	const none = -1
	t.Run("a re-fetch from the committed offset commits again as work is done", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		for o := int64(0); o < 5; o++ {
			tr.fetched(msg("t", 0, o))
		}
		wantCommit(t, tr, msg("t", 0, 0), 0) // commit point 1
		// A rebalance: the group's committed offset is 1, so 1..4 come again.
		for o := int64(1); o < 5; o++ {
			tr.fetched(msg("t", 0, o))
		}
		// The first copies of 1..4 finish (the lanes still had them): the
		// second copies are still outstanding, nothing may be committed.
		for o := int64(1); o < 5; o++ {
			wantCommit(t, tr, msg("t", 0, o), none)
		}
		for o := int64(1); o < 5; o++ {
			wantCommit(t, tr, msg("t", 0, o), o)
		}
		tr.fetched(msg("t", 0, 5))
		wantCommit(t, tr, msg("t", 0, 5), 5) // and it goes on from there: never frozen
	})
	t.Run("a re-fetch below what was committed is not frozen behind the old point", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		for o := int64(10); o < 20; o++ {
			tr.fetched(msg("t", 0, o))
			wantCommit(t, tr, msg("t", 0, o), o)
		}
		// Our last commits were lost (the broker restarted): the group
		// restarts at 12. Its progress must be committed again.
		tr.fetched(msg("t", 0, 12))
		wantCommit(t, tr, msg("t", 0, 12), 12)
		tr.fetched(msg("t", 0, 13))
		wantCommit(t, tr, msg("t", 0, 13), 13)
	})
	t.Run("the commit point never passes what the current pass fetched", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		for o := int64(0); o < 10; o++ {
			tr.fetched(msg("t", 0, o))
		}
		tr.fetched(msg("t", 0, 3)) // new pass from 3
		for o := int64(0); o < 10; o++ {
			if o == 3 {
				continue
			}
			if o < 3 {
				wantCommit(t, tr, msg("t", 0, o), none) // 3 (both copies) still pending; old pass below it is moot
				continue
			}
			wantCommit(t, tr, msg("t", 0, o), none)
		}
		wantCommit(t, tr, msg("t", 0, 3), none) // one copy of 3 left
		wantCommit(t, tr, msg("t", 0, 3), 3)    // only up to 4: 4..9 are not fetched again yet
	})
	t.Run("a copy finished twice counts once", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		tr.fetched(msg("t", 0, 0))
		tr.fetched(msg("t", 0, 1))
		wantCommit(t, tr, msg("t", 0, 1), none)
		wantCommit(t, tr, msg("t", 0, 1), none) // not outstanding any more: ignored
		wantCommit(t, tr, msg("t", 0, 0), 1)
	})
	t.Run("memory is bounded by the messages in hand", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		rng := rand.New(rand.NewPCG(5, 6))
		var inHand []int64
		next := int64(0)
		for range 20000 {
			if len(inHand) < 64 && rng.IntN(3) > 0 {
				if rng.IntN(500) == 0 && next > 10 { // now and then a re-fetch
					next -= int64(1 + rng.IntN(10))
				}
				tr.fetched(msg("t", 0, next))
				inHand = append(inHand, next)
				next++
				continue
			}
			if len(inHand) == 0 {
				continue
			}
			i := rng.IntN(len(inHand))
			tr.done(msg("t", 0, inHand[i]))
			inHand = append(inHand[:i], inHand[i+1:]...)
		}
		if got := tr.inHand(); got != len(inHand) {
			t.Errorf("tracker holds %d offsets, %d are in hand", got, len(inHand))
		}
	})
}

// A rebalance may give a partition to another member while lanes still
// hold its messages; the broker would take our commit for it anyway.
func TestTrackerAcrossGenerations(t *testing.T) {
	t.Parallel()
	const none = -1
	t.Run("a partition not fetched in the new generation yields no point", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		for o := int64(0); o < 4; o++ {
			tr.fetched(msg("t", 0, o))
			tr.fetched(msg("t", 1, o))
		}
		wantCommit(t, tr, msg("t", 0, 0), 0)
		tr.rebalanced()
		tr.fetched(msg("t", 1, 0)) // partition 1 stays ours: fetched again from its committed offset
		for o := int64(1); o < 4; o++ {
			wantCommit(t, tr, msg("t", 0, o), none) // partition 0 may be another member's
		}
		for o := int64(0); o < 4; o++ {
			wantCommit(t, tr, msg("t", 1, o), none) // the new copy of 0 is still in hand
		}
		wantCommit(t, tr, msg("t", 1, 0), 0)
	})
	t.Run("a point handed out before the generation changed is stale", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		tr.fetched(msg("t", 0, 0))
		_, gen, ok := tr.doneIn(msg("t", 0, 0))
		if !ok || !tr.current(gen) {
			t.Fatalf("doneIn = gen %d, %v; want a point of the current generation", gen, ok)
		}
		tr.rebalanced()
		if tr.current(gen) {
			t.Error("a point of the last generation is current")
		}
	})
	t.Run("a partition back in a later generation starts where the group is", func(t *testing.T) {
		t.Parallel()
		tr := newTracker()
		for o := int64(0); o < 4; o++ {
			tr.fetched(msg("t", 0, o))
		}
		tr.rebalanced() // lost: another member takes it to offset 30
		tr.rebalanced() // back
		tr.fetched(msg("t", 0, 30))
		wantCommit(t, tr, msg("t", 0, 30), none) // 0..3 from before are still in hand
		for o := int64(0); o < 3; o++ {
			wantCommit(t, tr, msg("t", 0, o), none) // never a point below 30
		}
		wantCommit(t, tr, msg("t", 0, 3), 30) // the last of them done: 30 is
		tr.fetched(msg("t", 0, 31))
		wantCommit(t, tr, msg("t", 0, 31), 31)
	})
}
