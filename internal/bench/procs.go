package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// start runs a binary of binDir with the sandbox settings plus over.
func (b *bench) start(name string, over map[string]string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(filepath.Join(b.binDir, name), args...)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"PINRESET_KAFKA_BROKERS=" + b.kafka, "PINRESET_MONGO_URI=mongodb://" + b.mongo + "/",
		"PINRESET_ASP_FILE=" + filepath.Join(b.sandboxDir, "asps.json"), "PINRESET_ADMIN_ADDR=127.0.0.1:0",
		"PINRESET_LOG_LEVEL=warn", "PINRESET_RESULT_WAIT=30s",
		// One ASP drives the whole load: its admission bucket would cap
		// the very saturation and overload the bench measures.
		"PINRESET_ASP_RATE=off"}
	if name == "worker" {
		// As the deployments run it (internal/worker/gc.go).
		env = append(env, "GODEBUG=madvdontneed=0")
	}
	for k, v := range b.env {
		env = append(env, k+"="+v)
	}
	for k, v := range over {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	b.mu.Lock()
	b.procs = append(b.procs, cmd)
	b.mu.Unlock()
	return cmd, nil
}

// startReady starts a binary as start does and waits up to a minute until
// its /readyz on addr answers.
func (b *bench) startReady(ctx context.Context, name, addr string, over map[string]string) (*exec.Cmd, error) {
	cmd, err := b.start(name, over)
	if err != nil {
		return nil, err
	}
	return cmd, waitHTTP(ctx, "http://"+addr+"/readyz", time.Minute)
}

func (b *bench) stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (b *bench) stopAll() {
	b.mu.Lock()
	procs := b.procs
	b.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if procs[i].ProcessState == nil {
			b.stop(procs[i])
		}
	}
}

// syncBuffer collects a process's output for waitOutput.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitOutput(ctx context.Context, cmd *exec.Cmd, line string, d time.Duration) error {
	buf := cmd.Stdout.(*syncBuffer)
	deadline := time.Now().Add(d)
	for !strings.Contains(buf.String(), line) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not print %q:\n%s", cmd.Path, line, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func waitHTTP(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}
