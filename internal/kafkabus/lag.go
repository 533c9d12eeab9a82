package kafkabus

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// GroupLag is, per partition of topic, how many messages the consumer group
// has not committed yet: the high watermark minus the committed offset (or
// minus the log start, for a partition the group never committed). It reads
// what the broker holds, so every instance of the group reports the same
// figures, whichever partitions it owns. (kafka-go's Reader.Lag is -1 for a
// group reader, hence this.)
func GroupLag(ctx context.Context, c Cluster, group, topic string) (map[int]int64, error) {
	client := c.Client()
	ids, err := partitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, id := range ids {
		req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	offs, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	first, last := map[int]int64{}, map[int]int64{}
	for _, po := range offs.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		first[po.Partition], last[po.Partition] = po.FirstOffset, po.LastOffset
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	if committed.Error != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, committed.Error)
	}
	lag := make(map[int]int64, len(ids))
	for _, id := range ids {
		lag[id] = last[id] - first[id]
	}
	for _, p := range committed.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("committed offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			lag[p.Partition] = max(last[p.Partition]-p.CommittedOffset, 0)
		}
	}
	return lag, nil
}
