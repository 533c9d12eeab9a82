package bench

import (
	"os"
	"os/exec"
	"testing"
)

// TestResidentMB: this process's resident memory, less MADV_FREE pages, is
// read from /proc and is at most its peak RSS.
func TestResidentMB(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skip("no /proc/self/smaps_rollup here")
	}
	block := make([]byte, 32<<20)
	for i := range block {
		block[i] = 1
	}
	got := residentMB(os.Getpid())
	if got < 32 {
		t.Errorf("resident %.1f MiB with 32 MiB touched", got)
	}
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if hwm := peakRSSMB(&exec.Cmd{Process: self}); got > hwm+1 {
		t.Errorf("resident %.1f MiB above the peak RSS %.1f MiB", got, hwm)
	}
	_ = block[len(block)-1]
}
