package kafkabus

import (
	"sync"

	"github.com/segmentio/kafka-go"
)

// tracker finds, per partition, the offset below which every message the
// consumer fetched is done: the offset that may be committed.
//
// kafka-go fetches a partition again from its committed offset after a
// rebalance or a new reader, so an offset may be fetched twice, and a lane
// may still hold the first copy when the second arrives. The tracker
// therefore counts outstanding copies per offset, and a fetch below the
// current position starts a new pass over the partition from there: the
// commit point never passes an offset fetched in the current pass and not
// yet done, never passes what the current pass has fetched, and, because a
// new pass starts from the group's committed offset, never stays behind it.
// Memory is bounded by the messages in hand.
//
// A partition may also go to another member in a rebalance, while lanes
// still hold its messages. The broker takes a member's commit for any
// partition, owned or not, as long as it names the current generation,
// which kafka-go's reader always does: a point of a lost partition,
// committed once its messages are done, would move the new owner's offset
// backward. So the tracker counts the generations the fetch loop sees
// start (rebalanced), and a partition's points count only in a generation
// it has been fetched in: one that kafka-go no longer fetches for this
// member yields no point, and a point handed out before the generation
// changed is stale (current).
type tracker struct {
	mu    sync.Mutex
	parts map[partKey]*partState
	gen   int
}

type partKey struct {
	topic     string
	partition int
}

type partState struct {
	outstanding map[int64]int // offset -> copies fetched and not yet done
	next        int64         // the offset after the last one fetched in this pass
	committed   int64         // the commit point last handed out (next offset to read)
	gen         int           // the generation it was last fetched in
}

func newTracker() *tracker { return &tracker{parts: map[partKey]*partState{}} }

func (t *tracker) fetched(m kafka.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := partKey{m.Topic, m.Partition}
	p := t.parts[k]
	if p == nil {
		p = &partState{outstanding: map[int64]int{}, committed: m.Offset, gen: t.gen}
		t.parts[k] = p
	}
	if m.Offset < p.next || p.gen != t.gen {
		// A new pass from the group's committed offset (a rebalance or a
		// new reader): what was done above it will be fetched and done
		// again. In a new generation that is where kafka-go starts, even
		// above this pass (the partition was another member's meanwhile).
		p.committed = m.Offset
	}
	p.outstanding[m.Offset]++
	p.next = m.Offset + 1
	p.gen = t.gen
}

// rebalanced records that the reader has started a new generation: every
// partition's points wait until it is fetched in it.
func (t *tracker) rebalanced() {
	t.mu.Lock()
	t.gen++
	t.mu.Unlock()
}

// current reports whether gen, as done returned it, is still the
// generation: a point of an earlier one is not committed.
func (t *tracker) current(gen int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return gen == t.gen
}

// done marks one fetched copy of m finished and, if the commit point moved
// forward, returns the message that CommitMessages takes for it (kafka-go
// commits a message's offset + 1).
func (t *tracker) done(m kafka.Message) (kafka.Message, bool) {
	point, _, ok := t.doneIn(m)
	return point, ok
}

// doneIn is done, also returning the generation the point belongs to. A
// partition not fetched in the current generation has no point: it may be
// another member's now.
func (t *tracker) doneIn(m kafka.Message) (kafka.Message, int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partKey{m.Topic, m.Partition}]
	if p == nil || p.outstanding[m.Offset] == 0 {
		return kafka.Message{}, 0, false
	}
	if p.outstanding[m.Offset]--; p.outstanding[m.Offset] == 0 {
		delete(p.outstanding, m.Offset)
	}
	if p.gen != t.gen {
		return kafka.Message{}, 0, false
	}
	point := p.next
	for o := range p.outstanding {
		point = min(point, o)
	}
	if point <= p.committed {
		return kafka.Message{}, 0, false
	}
	p.committed = point
	return kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: point - 1}, t.gen, true
}

// inHand is the number of fetched messages not yet done, over all partitions.
func (t *tracker) inHand() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.parts {
		for _, c := range p.outstanding {
			n += c
		}
	}
	return n
}
