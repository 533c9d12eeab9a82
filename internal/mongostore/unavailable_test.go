package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kmwallet/pinreset/internal/mongostore"
)

func TestUnavailable(t *testing.T) {
	if !mongostore.Unavailable(fmt.Errorf("find outcome: %w", context.DeadlineExceeded)) {
		t.Error("a deadline (server selection, a stalled connection) is the database's")
	}
	if mongostore.Unavailable(errors.New("decode member: bad field")) {
		t.Error("any other error is the request's")
	}
}
