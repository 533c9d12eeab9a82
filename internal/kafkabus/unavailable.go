package kafkabus

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/segmentio/kafka-go"
)

// Unavailable tells a failure of the cluster as a whole (unreachable, a
// broken or timed-out connection, a leader moving) from one of a request:
// the worker does not move a command aside for the former. A deadline
// exceeded counts: the caller tells its own deadline (a slow attempt) from
// that of a step against the cluster.
func Unavailable(err error) bool {
	var ne net.Error
	var ke kafka.Error
	var we kafka.WriteErrors
	switch {
	case errors.As(err, &ke): // first: kafka.Error is a net.Error too
		return ke.Temporary()
	case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &we):
		for _, e := range we {
			if e != nil && Unavailable(e) {
				return true
			}
		}
	}
	return false
}
