package main

import (
	"strings"
	"testing"
)

// TestCountLinesCountsWhatTheScannerReads: the progress bar's total is the
// number of lines the import reads, a last line without its newline
// included, so that the bar ends full.
func TestCountLinesCountsWhatTheScannerReads(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"a\n", 1},
		{"a", 1},
		{"a\nb", 2},
		{"a\n\nb\n", 3},
		{"a\r\nb\r\n", 2},
		{strings.Repeat("x\n", 100000), 100000},
	} {
		got, err := countLines(strings.NewReader(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("countLines(%.20q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
