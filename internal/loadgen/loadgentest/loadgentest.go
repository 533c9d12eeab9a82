// Package loadgentest holds the check of a load run that the load
// generator's tests and pwctl's share.
package loadgentest

import (
	"testing"

	"github.com/kmwallet/pinreset/internal/loadgen"
)

// CheckReport fails t unless rep is a clean run of want requests: every
// request answered, no transport error, only the codes the generator aims
// for (a set, a wrong current PIN, an unknown member), plausible figures.
func CheckReport(t testing.TB, rep loadgen.Report, want int) {
	t.Helper()
	sum := 0
	for code, n := range rep.ByCode {
		sum += n
		switch code {
		case "000_000", "001_035", "001_006":
		default:
			t.Errorf("%d answers with code %s", n, code)
		}
	}
	if sum != want || rep.Requests != want {
		t.Errorf("%d requests sent, %d answered, want %d", rep.Requests, sum, want)
	}
	if rep.Errors != 0 {
		t.Errorf("%d transport errors (%v), first: %s", rep.Errors, rep.ErrorKinds, rep.FirstError)
	}
	if rep.Unexpected != 0 {
		t.Errorf("%d answers other than the one aimed for", rep.Unexpected)
	}
	if rep.RPS <= 0 || rep.P50ms <= 0 || rep.P99ms < rep.P50ms || rep.MaxMs < rep.P99ms {
		t.Errorf("implausible numbers: %+v", rep)
	}
}
