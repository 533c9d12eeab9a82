package mongostore

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// QueueActionsCollection holds the operators' redrives and purges of the
// dead-letter and parked queues (pwctl dlq|parked), one document per
// message acted on, _id "<topic>/<partition>/<offset>": its insert is the
// claim, so a message is redriven or purged once, and it is confirmed
// (done) after the action's audit record.
const QueueActionsCollection = "queue_actions"

// QueueActionCount is how many confirmed actions of one kind were taken on
// one topic's messages.
type QueueActionCount struct {
	Topic, Action string
	N             int64
}

// QueueActionCounts counts the confirmed redrives and purges by topic and
// action. It reads the whole collection on purpose: operators' actions,
// a few per incident, not a collection that grows with traffic.
func (s *Store) QueueActionCounts(ctx context.Context) ([]QueueActionCount, error) {
	cur, err := s.Database().Collection(QueueActionsCollection).Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "done", Value: true}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "topic", Value: "$topic"}, {Key: "action", Value: "$action"}}},
			{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("count %s: %w", QueueActionsCollection, err)
	}
	var rows []struct {
		ID struct {
			Topic  string `bson:"topic"`
			Action string `bson:"action"`
		} `bson:"_id"`
		N int64 `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count %s: %w", QueueActionsCollection, err)
	}
	out := make([]QueueActionCount, len(rows))
	for i, r := range rows {
		out[i] = QueueActionCount{Topic: r.ID.Topic, Action: r.ID.Action, N: r.N}
	}
	return out, nil
}
