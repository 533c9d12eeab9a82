package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/freeaddr"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := httpClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestMetrics: after end-to-end traffic both admin listeners serve the
// documented series with the right labels.
func TestMetrics(t *testing.T) {
	ingressAdmin, workerAdmin := freeaddr.For(t), freeaddr.For(t)
	e := startSandbox(t, nil, "-ingress-admin-addr", ingressAdmin, "-worker-admin-addr", workerAdmin)
	c := newClient(t, e)
	for _, f := range []string{"success.json", "user-not-found.json"} {
		c.post(readFile(t, filepath.Join(e.SandboxDir, "requests", f)), "", nil)
	}
	c.post([]byte(`{"loginId":"x"}`), "", nil) // a 400 before Kafka

	_, ingress := httpGet(t, "http://"+ingressAdmin+"/metrics")
	for _, want := range []string{
		`pinreset_http_requests_total{code="000_000",route="POST /api/v1/user/password/reset",status="200"} 1`,
		`pinreset_http_requests_total{code="001_006",route="POST /api/v1/user/password/reset",status="400"} 1`,
		`pinreset_http_requests_total{code="000_003",route="POST /api/v1/user/password/reset",status="400"} 1`,
		`pinreset_http_request_duration_seconds_count{route="POST /api/v1/user/password/reset"} 3`,
		`pinreset_commands_published_total{kind="change",result="ok"} 2`,
		`pinreset_commands_in_flight 0`,
	} {
		if !strings.Contains(ingress, want) {
			t.Errorf("ingress /metrics lacks %s", want)
		}
	}
	// The worker counts an outcome after publishing its result, and reads
	// the lag from the broker every 10 s: poll for a while.
	workerWants := []string{
		`pinreset_outcomes_total{code="000_000",how="decided",kind="change"} 1`,
		`pinreset_outcomes_total{code="001_006",how="decided",kind="change"} 1`,
		`pinreset_command_age_seconds_count 3`, // the two commands and warmUp's status query
		`pinreset_consumer_lag{partition="0",topic="password.commands"} `,
		`pinreset_consumer_lag{partition="0",topic="password.commands.retry"} 0`,
		`pinreset_hash_duration_seconds_count 2`, // verify the old PIN, hash the new one
		`pinreset_dead_lettered_total{reason="undecodable"} 0`,
		`pinreset_dead_lettered_total{reason="unopenable"} 0`,
	}
	var worker string
	waitfor.Every(200*time.Millisecond, 15*time.Second, func() bool {
		_, worker = httpGet(t, "http://"+workerAdmin+"/metrics")
		for _, want := range workerWants {
			if !strings.Contains(worker, want) {
				return false
			}
		}
		return true
	})
	for _, want := range workerWants {
		if !strings.Contains(worker, want) {
			t.Errorf("worker /metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("ingress:\n%s\nworker:\n%s", grepLines(ingress, "pinreset_"), grepLines(worker, "pinreset_"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReadinessFollowsDependencies: /readyz of the worker's admin port
// flips to 503 when the database stops and back when it returns; the
// ingress's flips when the broker stops. /healthz stays 200.
func TestReadinessFollowsDependencies(t *testing.T) {
	in := startInfraProcesses(t)
	e := in.Env
	workerAdmin := freeaddr.For(t)
	startProcess(t, "worker", processEnv(e, map[string]string{"PINRESET_ADMIN_ADDR": workerAdmin}))
	waitStatus := func(url string, want int) {
		t.Helper()
		var got int
		var body string
		if !waitfor.Every(200*time.Millisecond, 30*time.Second, func() bool { got, body = httpGet(t, url); return got == want }) {
			t.Fatalf("%s: %d %q, want %d", url, got, body, want)
		}
	}
	waitStatus("http://"+workerAdmin+"/readyz", 200)
	// Only now, with the worker's admin port bound, may another free port be picked.
	_, addr := startIngressProcess(t, e, nil)
	in.mongo.kill()
	waitStatus("http://"+workerAdmin+"/readyz", 503)
	waitStatus("http://"+workerAdmin+"/healthz", 200)
	in.mongo = in.startPart(t, "mongo")
	waitStatus("http://"+workerAdmin+"/readyz", 200)

	waitStatus("http://"+addr+"/readyz", 200)
	in.kafka.kill()
	waitStatus("http://"+addr+"/readyz", 503)
	waitStatus("http://"+addr+"/healthz", 200)
	waitStatus("http://"+workerAdmin+"/readyz", 503)
}
