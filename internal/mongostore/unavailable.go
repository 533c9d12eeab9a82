package mongostore

import "go.mongodb.org/mongo-driver/v2/mongo"

// Unavailable tells a failure of the database as a whole (unreachable, a
// broken or timed-out connection, no server to select) from one of a
// request: the worker does not move a command aside for the former.
func Unavailable(err error) bool { return mongo.IsTimeout(err) || mongo.IsNetworkError(err) }
