package bench_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/kmwallet/pinreset/internal/bench"
)

// TestSummaryJSONIsMakeBenchOutput: make bench prints the summary with
// these keys, in this order, indented by two spaces; the README and anyone
// comparing runs read them. testdata/zero-summary.json is that output for
// a zero Summary.
func TestSummaryJSONIsMakeBenchOutput(t *testing.T) {
	want, err := os.ReadFile("testdata/zero-summary.json")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := (bench.Summary{}).WriteJSON(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("WriteJSON of a zero Summary:\n%s\nwant:\n%s", got.Bytes(), want)
	}
}
