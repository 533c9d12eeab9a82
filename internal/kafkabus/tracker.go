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
type tracker struct {
	mu    sync.Mutex
	parts map[partKey]*partState
}

type partKey struct {
	topic     string
	partition int
}

type partState struct {
	outstanding map[int64]int // offset -> copies fetched and not yet done
	next        int64         // the offset after the last one fetched in this pass
	committed   int64         // the commit point last handed out (next offset to read)
}

func newTracker() *tracker { return &tracker{parts: map[partKey]*partState{}} }

func (t *tracker) fetched(m kafka.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := partKey{m.Topic, m.Partition}
	p := t.parts[k]
	if p == nil {
		p = &partState{outstanding: map[int64]int{}, committed: m.Offset}
		t.parts[k] = p
	}
	if m.Offset < p.next {
		// A new pass from the group's committed offset (a rebalance or a
		// new reader): what was done above it will be fetched and done again.
		p.committed = m.Offset
	}
	p.outstanding[m.Offset]++
	p.next = m.Offset + 1
}

// done marks one fetched copy of m finished and, if the commit point moved
// forward, returns the message that CommitMessages takes for it (kafka-go
// commits a message's offset + 1).
func (t *tracker) done(m kafka.Message) (kafka.Message, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partKey{m.Topic, m.Partition}]
	if p == nil || p.outstanding[m.Offset] == 0 {
		return kafka.Message{}, false
	}
	if p.outstanding[m.Offset]--; p.outstanding[m.Offset] == 0 {
		delete(p.outstanding, m.Offset)
	}
	point := p.next
	for o := range p.outstanding {
		point = min(point, o)
	}
	if point <= p.committed {
		return kafka.Message{}, false
	}
	p.committed = point
	return kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: point - 1}, true
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
