package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestUnavailable(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		rule string
		err  error
		want bool
	}{
		{"a refused dial is the cluster's", fmt.Errorf("publish: %w", dial), true},
		{"a deadline is the cluster's", fmt.Errorf("publish: %w", context.DeadlineExceeded), true},
		{"a leader moving is the cluster's", kafka.NotLeaderForPartition, true},
		{"a failed write inside WriteErrors is the cluster's", kafka.WriteErrors{nil, dial}, true},
		{"a message too large is the request's", kafka.MessageSizeTooLarge, false},
		{"authorization refused is not an outage", kafka.TopicAuthorizationFailed, false},
		{"any other error is the request's", errors.New("bad"), false},
	} {
		if got := Unavailable(tc.err); got != tc.want {
			t.Errorf("%s: Unavailable(%v) = %v", tc.rule, tc.err, got)
		}
	}
}
