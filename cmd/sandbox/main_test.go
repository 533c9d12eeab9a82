package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/ingress"
	"github.com/kmwallet/pinreset/internal/kmheader"
)

// startSandbox runs the real sandbox wiring (this command's run) on free
// ports and a fresh data directory, and stops it when the test ends.
func startSandbox(t *testing.T, env map[string]string, extraArgs ...string) Env {
	t.Helper()
	e, _ := startSandboxWithLogs(t, env, extraArgs...)
	return e
}

// startSandboxWithLogs is startSandbox that also returns what the services logged so far.
func startSandboxWithLogs(t *testing.T, env map[string]string, extraArgs ...string) (Env, func() string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts the embedded broker and database")
	}
	ctx, cancel := context.WithCancel(context.Background())
	getenv := func(k string) string { return env[k] }
	started := make(chan Env, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	logw := &lockedWriter{w: &logs}
	// Made here, not in the goroutine: cleanups run last-registered first,
	// so the directory must be registered before the cleanup that stops
	// the sandbox, or it is removed under the running broker.
	dataDir := t.TempDir()
	go func() {
		done <- run(ctx, append([]string{
			"-data-dir", dataDir, "-sandbox-dir", "../../deployments/sandbox",
			"-http-addr", "127.0.0.1:0", "-kafka-addr", "127.0.0.1:0", "-mongo-addr", "127.0.0.1:0",
			"-ingress-admin-addr", "127.0.0.1:0", "-worker-admin-addr", "127.0.0.1:0",
		}, extraArgs...), getenv, io.Discard, logw, func(e Env) { started <- e })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sandbox stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("sandbox did not stop within 30 s")
		}
		if t.Failed() {
			t.Logf("service logs:\n%s", logw.String())
		}
	})
	select {
	case e := <-started:
		if e.HTTPAddr != "" {
			warmUp(t, e)
		}
		return e, logw.String
	case err := <-done:
		t.Fatalf("sandbox did not start: %v\n%s", err, logw.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("sandbox did not start within 60 s\n%s", logw.String())
	}
	return Env{}, nil
}

// warmUp waits until the pipeline answers: a status query of an unknown
// transaction travels through Kafka to a worker and back, so its 404 says
// the worker has joined its group and the ingress reads the results. Tests
// then time their first command, not the group's first rebalance. It gives
// up quietly after a minute (a test with other credentials gets a 401 at
// once, and is no worse off).
func warmUp(t *testing.T, e Env) {
	t.Helper()
	c := newClient(t, e)
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if r, err := c.tryGet(cid); err == nil && r.status != http.StatusAccepted {
			return
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// client signs requests with the sandbox ASP's credentials.
type client struct {
	t     *testing.T
	url   string
	creds kmheader.Credentials
}

func newClient(t *testing.T, e Env) *client {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.SandboxDir, "asps.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := asp.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	a := f.ASPs[0]
	return &client{t: t, url: "http://" + e.HTTPAddr + ingress.ResetPath, creds: kmheader.Credentials{
		ASPID: a.ID, AccessKey: a.Credentials[0].AccessKey, SecretKey: []byte(a.Credentials[0].SecretKey),
	}}
}

type response struct {
	status int
	header http.Header
	body   ingress.Body
}

// post sends body signed, after edit (if any) changes the headers.
func (c *client) post(body []byte, cid string, edit func(http.Header)) response {
	c.t.Helper()
	r, err := c.send(c.postRequest(body, cid, edit))
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// tryPost is post for callers that expect transport errors (a killed ingress).
func (c *client) tryPost(body []byte, cid string) (response, error) {
	return c.send(c.postRequest(body, cid, nil))
}

func (c *client) postRequest(body []byte, cid string, edit func(http.Header)) *http.Request {
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	kmheader.Set(req.Header, kmheader.SignedHeaders(c.creds, body, cid, time.Now(), "KST"))
	req.Header.Set("Content-Type", "application/json")
	if edit != nil {
		edit(req.Header)
	}
	return req
}

// send does req and decodes the {code, message} body, which every answer must have.
func (c *client) send(req *http.Request) (response, error) {
	res, err := httpClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	var r response
	r.status, r.header = res.StatusCode, res.Header
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &r.body); err != nil {
		return r, fmt.Errorf("response %d is not the JSON body: %q", res.StatusCode, raw)
	}
	return r, nil
}

// httpClient bounds every test request; the longest legitimate wait is a
// test's PINRESET_RESULT_WAIT under the race detector.
var httpClient = &http.Client{Timeout: 2 * time.Minute}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSandboxSeedCases(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	cases := []struct {
		file   string
		status int
		code   string
	}{
		{"success.json", 200, "000_000"},
		{"user-not-found.json", 400, "001_006"},
		{"same-pin.json", 400, "001_043"},
		{"info-mismatch.json", 400, "001_035"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			body := readFile(t, filepath.Join(e.SandboxDir, "requests", tc.file))
			cid := kmheader.NewCorrelationID(time.Now(), nil)
			r := c.post(body, cid, nil)
			if r.status != tc.status || string(r.body.Code) != tc.code {
				t.Fatalf("got %d %+v, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if got := r.header.Get("X-KM-Correlation-Id"); got != cid {
				t.Errorf("X-KM-Correlation-Id echoed %q, want %q", got, cid)
			}
		})
	}
}

// TestSandboxChangeResetAndStorage drives changes and resets over HTTP, then
// reads MongoDB and Kafka directly: the stored hash is argon2id and holds no
// PIN, and each command reached password.commands keyed by its correlation
// id with no PIN in clear.
func TestSandboxChangeResetAndStorage(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	steps := []struct {
		name, body string
		status     int
		code       string
	}{
		{"wrong current PIN", `{"loginId":"success@sandbox.example","currentPassword":"975319","newPassword":"581379"}`, 400, "001_035"},
		{"change", `{"loginId":"success@sandbox.example","currentPassword":"246810","newPassword":"581379"}`, 200, "000_000"},
		{"old PIN no longer valid", `{"loginId":"success@sandbox.example","currentPassword":"246810","newPassword":"703152"}`, 400, "001_035"},
		{"reset ignores currentPassword", `{"loginId":"success@sandbox.example","currentPassword":"xx","newPassword":"703152","isResetPassword":true}`, 200, "000_000"},
		// (With the member's ci, so not the previous content again: that would be a replay, 001_409.)
		{"reset to the same PIN", `{"loginId":"success@sandbox.example","ci":"` + successCI(t) + `","newPassword":"703152","isResetPassword":true}`, 400, "001_043"},
		{"change after reset", `{"loginId":"success@sandbox.example","currentPassword":"703152","newPassword":"581379"}`, 200, "000_000"},
		{"weak new PIN", `{"loginId":"success@sandbox.example","currentPassword":"581379","newPassword":"123580"}`, 400, "001_044"},
	}
	var cids []string
	for _, s := range steps {
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		cids = append(cids, cid)
		r := c.post([]byte(s.body), cid, nil)
		if r.status != s.status || string(r.body.Code) != s.code {
			t.Fatalf("%s: got %d %+v, want %d %s", s.name, r.status, r.body, s.status, s.code)
		}
	}

	// MongoDB: the member's PIN is an argon2id PHC string with the default
	// (OWASP) parameters, and no PIN used above appears in the document.
	var doc bson.M
	settledMember(t, e, "success@sandbox.example", &doc)
	hash, _ := doc["pinHash"].(string)
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1,") {
		t.Errorf("pinHash = %q, want an argon2id PHC string with m=19456,t=2,p=1", hash)
	}
	raw, _ := bson.MarshalExtJSON(doc, false, false)
	for _, pin := range []string{"246810", "581379", "703152", "975319"} {
		if bytes.Contains(raw, []byte(pin)) {
			t.Errorf("member document contains PIN %s: %s", pin, raw)
		}
	}
	// Seed, two failed attempts, change, reset, the same-PIN reset (a
	// decision that changes nothing is recorded in the member's history
	// all the same), change. The weak PIN is refused by the ingress.
	if v, _ := doc["version"].(int64); v != 1+6 {
		t.Errorf("version = %v, want 7", doc["version"])
	}

	// Kafka: every accepted command is on password.commands under its
	// correlation id, and no PIN appears in any message.
	msgs := readAll(t, e.Brokers, "password.commands")
	byKey := map[string]kafka.Message{}
	for _, m := range msgs {
		byKey[string(m.Key)] = m
		for _, pin := range []string{"246810", "581379", "703152", "975319"} {
			if bytes.Contains(m.Value, []byte(pin)) {
				t.Errorf("command %s carries PIN %s in clear", m.Key, pin)
			}
		}
	}
	for i, cid := range cids[:len(cids)-1] { // the weak PIN was refused before Kafka
		if _, ok := byKey[cid]; !ok {
			t.Errorf("%s: no command keyed %s on password.commands", steps[i].name, cid)
		}
	}
	if _, ok := byKey[cids[len(cids)-1]]; ok {
		t.Errorf("a request refused by the ingress reached Kafka")
	}
}

// successCI is the stored CI of the sandbox's success member.
func successCI(t *testing.T) string {
	t.Helper()
	var body struct{ CI string }
	if err := json.Unmarshal(readFile(t, "../../deployments/sandbox/requests/success.json"), &body); err != nil {
		t.Fatal(err)
	}
	return body.CI
}

// readAll reads every message of topic up to its current end.
func readAll(t *testing.T, brokers []string, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...)}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, p := range md.Topics[0].Partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := conn.ReadOffsets()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Seek(first, kafka.SeekAbsolute); err != nil {
			t.Fatal(err)
		}
		for off := first; off < last; off++ {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := conn.ReadMessage(1 << 20)
			if err != nil {
				t.Fatalf("read %s/%d at %d: %v", topic, p.ID, off, err)
			}
			out = append(out, m)
		}
		conn.Close()
	}
	return out
}

// TestSandboxRejectsBadToken: a wrong MAC, an unknown ASP, a wrong access key
// and a stale tran time all answer 401 with the one authentication code.
func TestSandboxRejectsBadToken(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	body := readFile(t, filepath.Join(e.SandboxDir, "requests", "success.json"))
	cases := map[string]func(h http.Header){
		"MAC of another body": func(h http.Header) {
			h.Set("X-KM-Tran-Token", kmheader.Sign(c.creds.SecretKey, []byte("{}"), time.Now(), time.UTC))
		},
		"unknown ASP":      func(h http.Header) { h.Set("X-KM-User-AspId", "KMSANDBOXASP999") },
		"wrong access key": func(h http.Header) { h.Set("X-KM-Access-Key", strings.Repeat("a", 40)) },
		"stale tran time": func(h http.Header) {
			h.Set("X-KM-Tran-Time", time.Now().Add(-10*time.Minute).UTC().Format("20060102150405"))
			h.Set("X-KM-Time-Zone", "UTC")
		},
		"MAC with a wrong secret": func(h http.Header) {
			h.Set("X-KM-Tran-Token", kmheader.Sign([]byte("not the secret key of this asp!!"), body, time.Now(), time.UTC))
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			r := c.post(body, "", edit)
			if r.status != 401 || r.body.Code != "000_401" || r.body.Message != "Authentication failed." {
				t.Fatalf("got %d %+v, want 401 000_401", r.status, r.body)
			}
		})
	}
}

// TestSandboxConcurrentCommandsOneMember: 50 resets of one member at once;
// the compare-and-set loses none: the final version counts every success and
// the final hash is the PIN of the last one applied.
func TestSandboxConcurrentCommandsOneMember(t *testing.T) {
	// Cheap hashing: this is about lost updates, not hashing cost. No
	// member bucket: 50 commands for one member at once is the point here,
	// and the bucket (10 a minute) would refuse most of them with 429.
	e := startSandbox(t, map[string]string{"PINRESET_RESULT_WAIT": "90s", "PINRESET_ARGON2_MEMORY_KIB": "64", "PINRESET_ARGON2_TIME": "1",
		"PINRESET_MEMBER_RATE": "off"})
	c := newClient(t, e)
	const n = 50
	pins := make(map[string]string, n) // correlation id -> PIN set
	var mu sync.Mutex
	var wg sync.WaitGroup
	codes := map[string]int{}
	for i := range n {
		pin := fmt.Sprintf("%06d", 100000+i*7919%899999) // distinct, not necessarily "easy"
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		pins[cid] = pin
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"loginId":"samepin@sandbox.example","newPassword":%q,"isResetPassword":true}`, pin)
			r := c.post([]byte(body), cid, nil)
			mu.Lock()
			codes[string(r.body.Code)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("outcomes: %v", codes)
	success := codes["000_000"]
	if success+codes["001_044"] != n {
		t.Fatalf("outcomes %v: want only successes and weak-PIN refusals", codes)
	}

	var doc struct {
		Version int64  `bson:"version"`
		PINHash string `bson:"pinHash"`
		Recent  []struct {
			CID  string `bson:"cid"`
			Code string `bson:"code"`
		} `bson:"recent"`
	}
	settledMember(t, e, "samepin@sandbox.example", &doc)
	if doc.Version != int64(1+success) {
		t.Errorf("version = %d after %d successful sets from version 1: an update was lost or doubled", doc.Version, success)
	}
	last := doc.Recent[len(doc.Recent)-1].CID
	lastPIN, ok := pins[last]
	if !ok {
		t.Fatalf("last applied command %s is not one of ours", last)
	}
	// The final PIN is the one the last applied command set: a change with it as current succeeds.
	r := c.post([]byte(fmt.Sprintf(`{"loginId":"samepin@sandbox.example","currentPassword":%q,"newPassword":"135792"}`, lastPIN)), "", nil)
	if r.body.Code != "000_000" {
		t.Errorf("change from the last PIN set: got %+v, want 000_000", r.body)
	}
}
