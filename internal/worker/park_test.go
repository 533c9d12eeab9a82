package worker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// TestParkAtOnce: a key this worker lacks is parked at once; every other
// failure keeps its retry budget in its lane.
func TestParkAtOnce(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("command c1: %w", &pinreset.MissingKeyError{Kind: "seal", Err: errors.New("no seal key k9")}), true},
		{fmt.Errorf("command c1: %w", context.DeadlineExceeded), false},
		{errors.New("find member m1: connection reset by peer"), false},
		{errors.New("no seal key k9"), false}, // the text is not the error
	} {
		if got := ParkAtOnce(c.err); got != c.want {
			t.Errorf("ParkAtOnce(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
