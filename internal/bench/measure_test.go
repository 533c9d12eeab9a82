package bench

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/waitfor"
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

// TestCPUSecondsCountsDescendants: a process's CPU includes its
// descendants' (the sandbox's PostgreSQL server and backends run as its
// children), live or exited.
func TestCPUSecondsCountsDescendants(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// A parent that spends no CPU of its own, over a child that spins.
	cmd := exec.Command("sh", "-c", `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30' & wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var cpu float64
	if !waitfor.Until(20*time.Second, func() bool { cpu, _ = cpuSeconds(cmd.Process.Pid); return cpu >= 0.1 }) {
		t.Fatalf("the parent's tree used %.2f s of CPU, want the spinning child's counted", cpu)
	}
}
