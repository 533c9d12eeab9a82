package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
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

// TestScrapeLabelsWithSpaces: a label value with a space (the ingress's
// route label, "POST /api/...") does not hide its sample.
func TestScrapeLabelsWithSpaces(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP x y\n"+
			"pinreset_http_requests_total{code=\"000_000\",route=\"POST /api/v1/user/password/reset\",status=\"200\"} 7\n"+
			"pinreset_http_requests_total{code=\"001_006\",route=\"POST /api/v1/user/password/reset\",status=\"400\"} 2\n"+
			"go_goroutines 12\n")
	}))
	defer srv.Close()
	m := scrape(strings.TrimPrefix(srv.URL, "http://"))
	if got := m["pinreset_http_requests_total"]; got != 9 {
		t.Errorf("pinreset_http_requests_total %v, want 9", got)
	}
	if got := m["go_goroutines"]; got != 12 {
		t.Errorf("go_goroutines %v, want 12", got)
	}
}
