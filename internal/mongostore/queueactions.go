package mongostore

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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
// a few per incident, not a collection that grows with traffic. A find
// counted here rather than a $group: FerretDB closes the PostgreSQL
// connection of every aggregate (see oneBatch), and the workers count
// every 30 s.
func (s *Store) QueueActionCounts(ctx context.Context) ([]QueueActionCount, error) {
	cur, err := s.Database().Collection(QueueActionsCollection).Find(ctx, bson.D{{Key: "done", Value: true}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "topic", Value: 1}, {Key: "action", Value: 1}}).SetBatchSize(queueActionsBatch))
	if err != nil {
		return nil, fmt.Errorf("count %s: %w", QueueActionsCollection, err)
	}
	var rows []struct {
		Topic  string `bson:"topic"`
		Action string `bson:"action"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count %s: %w", QueueActionsCollection, err)
	}
	var out []QueueActionCount
	for _, r := range rows {
		i := slices.IndexFunc(out, func(c QueueActionCount) bool { return c.Topic == r.Topic && c.Action == r.Action })
		if i < 0 {
			i = len(out)
			out = append(out, QueueActionCount{Topic: r.Topic, Action: r.Action})
		}
		out[i].N++
	}
	return out, nil
}

// queueActionsBatch is the batch QueueActionCounts reads in: every record
// in the find's reply (a cursor that outlives the find costs a
// connection, as above) up to tens of thousands of actions.
const queueActionsBatch = 50000
