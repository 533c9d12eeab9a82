package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/waitfor"
)

// TestTraceCrossesKafka: a request carrying a W3C traceparent leads to one
// trace from the ingress's HTTP span through the publish to the worker's
// processing and store update: the context rode the Kafka headers.
func TestTraceCrossesKafka(t *testing.T) {
	spans := filepath.Join(t.TempDir(), "spans.jsonl")
	e := startSandbox(t, map[string]string{"PINRESET_TRACES_EXPORTER": "file", "PINRESET_TRACES_FILE": spans})
	c := newClient(t, e)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	body := readFile(t, filepath.Join(e.SandboxDir, "requests", "success.json"))
	r := c.post(body, "", func(h http.Header) { h.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01") })
	if r.body.Code != "000_000" {
		t.Fatalf("request: %+v", r.body)
	}
	want := []string{"POST /api/v1/user/password/reset", "publish password.commands", "process password.commands", "store update"}
	var got map[string]bool
	// Spans are exported in batches every 5 s.
	waitfor.Every(250*time.Millisecond, 20*time.Second, func() bool {
		got = map[string]bool{}
		raw, _ := os.ReadFile(spans)
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		for {
			var s struct {
				Name        string
				SpanContext struct{ TraceID string }
			}
			if err := dec.Decode(&s); err != nil {
				break
			}
			if s.SpanContext.TraceID == traceID {
				got[s.Name] = true
			}
		}
		return len(got) >= len(want)
	})
	for _, name := range want {
		if !got[name] {
			t.Errorf("no span %q in trace %s (have %v)", name, traceID, got)
		}
	}
}
