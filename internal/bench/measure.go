package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scrape reads the samples of /metrics: each series by its name with its
// labels, and each metric's sum over its labels by its bare name.
func scrape(admin string) map[string]float64 {
	out := map[string]float64{}
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return out
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		// The value follows the last space: label values may hold spaces
		// (the ingress's route label is "POST /api/...").
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name, value := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			out[name] = v
			name = name[:i]
		}
		out[name] += v
	}
	return out
}

// cpuMeter is the CPU time used by named processes (and this one, as
// "load") since it was made.
type cpuMeter struct {
	procs map[string]*exec.Cmd
	start map[string]float64
}

func (b *bench) cpuMeter(procs map[string]*exec.Cmd) cpuMeter {
	m := cpuMeter{procs: procs, start: map[string]float64{}}
	for name, cmd := range procs {
		m.start[name], m.start[name+"_postgres"] = cpuSeconds(cmd.Process.Pid)
	}
	m.start["load"] = selfCPUSeconds()
	return m
}

// perRequest is the CPU time each process used since the meter was made,
// in milliseconds per request (0 when it cannot be read).
func (m cpuMeter) perRequest(requests int) map[string]float64 {
	if requests == 0 {
		return nil
	}
	return m.per(float64(requests) / 1000)
}

// cores is the CPU time each process used since the meter was made, per
// second of d: the cores it kept busy.
func (m cpuMeter) cores(d time.Duration) map[string]float64 {
	if d <= 0 {
		return nil
	}
	return m.per(d.Seconds())
}

// per is the CPU seconds each process used since the meter was made,
// divided by unit, to two decimals.
func (m cpuMeter) per(unit float64) map[string]float64 {
	out := map[string]float64{}
	scaled := func(used float64) float64 { return float64(int(used/unit*100+0.5)) / 100 }
	total := 0.0
	for name, cmd := range m.procs {
		all, pg := cpuSeconds(cmd.Process.Pid)
		used := all - m.start[name]
		out[name], total = scaled(used), total+used
		if pg > 0 { // the database server under the sandbox, apart
			out[name+"_postgres"] = scaled(pg - m.start[name+"_postgres"])
		}
	}
	used := selfCPUSeconds() - m.start["load"]
	out["load"], out["total"] = scaled(used), scaled(total+used)
	return out
}

// cpuSeconds is the user plus system CPU time so far of a process and of
// every process under it (the sandbox's PostgreSQL server and its backends
// are its descendants), with the time of the children each has waited for
// (a backend that exited counts in its postmaster's), from /proc/<pid>/stat
// (fields 14-17, in USER_HZ = 100 ticks per second on Linux); 0 where /proc
// is not there. postgres is the part of it in processes named postgres.
func cpuSeconds(pid int) (total, postgres float64) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0
	}
	parent := map[int]int{}
	ticks := map[int]float64{}
	pg := map[int]bool{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := procStat(p); ok {
			parent[p], ticks[p], pg[p] = st.ppid, st.ticks, st.comm == "postgres"
		}
	}
	for p, t := range ticks {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				total += t
				if pg[p] {
					postgres += t
				}
				break
			}
		}
	}
	return total / 100, postgres / 100
}

type stat struct {
	comm  string
	ppid  int
	ticks float64 // utime, stime, cutime, cstime
}

// procStat reads a process's name, parent and CPU ticks from /proc/<pid>/stat.
func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, false
	}
	// The command name (field 2) may hold spaces; the fields after it do not.
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return stat{}, false
	}
	f := strings.Fields(string(b[j+1:])) // f[0] is field 3
	if len(f) < 15 {
		return stat{}, false
	}
	st := stat{comm: string(b[i+1 : j])}
	st.ppid, _ = strconv.Atoi(f[1])
	for _, x := range f[11:15] {
		v, _ := strconv.ParseFloat(x, 64)
		st.ticks += v
	}
	return st, true
}

func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// residentMB is a process's resident memory less the pages handed back to
// the kernel with MADV_FREE and not reclaimed yet (smaps_rollup's Rss minus
// LazyFree), in MiB: what the process holds, as a container's working set
// counts it. 0 where /proc is not there.
func residentMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	var rss, lazy float64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "Rss:":
			rss = kb
		case "LazyFree:":
			lazy = kb
		}
	}
	return float64(int((rss-lazy)/1024*10)) / 10
}

// peakResident samples residentMB of cmd every 100 ms until stop is
// closed, and returns the peak (the kernel keeps no high-water mark of it).
func peakResident(cmd *exec.Cmd, stop <-chan struct{}) <-chan float64 {
	out := make(chan float64, 1)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		peak := 0.0
		for {
			peak = max(peak, residentMB(cmd.Process.Pid))
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// peakRSSMB is a process's peak resident set (VmHWM), in MiB. With
// MADV_FREE it includes pages the process handed back and the kernel has
// not taken yet; residentMB does not.
func peakRSSMB(cmd *exec.Cmd) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return float64(int(kb/1024*10)) / 10
		}
	}
	return 0
}
