package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/seal"
	"github.com/kmwallet/pinreset/internal/waitfor"
	"github.com/kmwallet/pinreset/internal/wire"
)

// These are unit tests of the HTTP layer: the Publisher is a stand-in that
// answers each command the way a worker would, through Server.Deliver. The
// real Kafka path is covered end to end in cmd/sandbox.

const (
	testASP    = "KMTESTASP000001"
	testAccess = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"
	testSecret = "0123456789abcdef0123456789abcdef-secret"
	goodBody   = `{"loginId":"member@example.com","currentPassword":"246810","newPassword":"581379"}`
)

// answeringPublisher decodes each command and delivers the result code
// chosen by answer (none when answer returns "").
type answeringPublisher struct {
	srv    *Server
	ring   *seal.Keyring
	answer func(pinreset.Command) pinreset.Code
	err    error
	fail   func(pinreset.Command) bool // nil: none; true: this command's publish fails

	mu      sync.Mutex
	cmds    []pinreset.Command
	headers [][]kafka.Header // of each command, in order
}

func (p *answeringPublisher) Publish(_ context.Context, msgs ...kafkabus.Message) error {
	if p.err != nil {
		return p.err
	}
	for _, m := range msgs {
		if m.Topic != kafkabus.TopicCommands {
			return errors.New("unexpected topic " + m.Topic)
		}
		cmd, err := wire.DecodeCommand(m.Key, m.Value, p.ring)
		if err != nil {
			return err
		}
		if p.fail != nil && p.fail(cmd) {
			return errors.New("broker unreachable")
		}
		p.mu.Lock()
		p.cmds = append(p.cmds, cmd)
		p.headers = append(p.headers, m.Headers)
		p.mu.Unlock()
		if code := p.answer(cmd); code != "" {
			go p.srv.Deliver(pinreset.NewResult(cmd, code, "m1", time.Now()))
		}
	}
	return nil
}

type fixture struct {
	srv  *Server
	pub  *answeringPublisher
	logs *bytes.Buffer
	h    http.Handler
}

func newFixture(t *testing.T, answer func(pinreset.Command) pinreset.Code, edits ...func(*Options)) *fixture {
	t.Helper()
	return newFixtureWith(t, answer, nil, edits...)
}

// newFixtureOf is newFixture with the ASPs extra registered besides testASP.
func newFixtureOf(t *testing.T, answer func(pinreset.Command) pinreset.Code, extra ...asp.ASP) *fixture {
	t.Helper()
	return newFixtureWith(t, answer, extra)
}

func newFixtureWith(t *testing.T, answer func(pinreset.Command) pinreset.Code, extra []asp.ASP, edits ...func(*Options)) *fixture {
	t.Helper()
	reg, err := asp.New(append([]asp.ASP{{ID: testASP, Credentials: []asp.Credential{{AccessKey: testAccess, SecretKey: testSecret}}}}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := seal.NewKeyring(seal.Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&lockedBuffer{b: logs}), zap.DebugLevel))
	pub := &answeringPublisher{ring: ring, answer: answer}
	opts := Options{TranWindow: 5 * time.Minute, ResultWait: 2 * time.Second, CommandTTL: 2 * time.Minute, MaxBodyBytes: 1024,
		MaxInFlight: 2000, PINPolicy: pinreset.PINPolicy{Enabled: true}}
	for _, edit := range edits {
		edit(&opts)
	}
	srv := NewServer(reg, pub, ring, opts, log, func(context.Context) error { return nil })
	pub.srv = srv
	return &fixture{srv: srv, pub: pub, logs: logs, h: srv.Handler()}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func always(c pinreset.Code) func(pinreset.Command) pinreset.Code {
	return func(pinreset.Command) pinreset.Code { return c }
}

// request builds a correctly signed request, then lets edit break it.
func request(body string, edit func(h http.Header)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, ResetPath, strings.NewReader(body))
	kmheader.Set(r.Header, kmheader.SignedHeaders(kmheader.Credentials{ASPID: testASP, AccessKey: testAccess, SecretKey: []byte(testSecret)},
		[]byte(body), "", time.Now(), "KST"))
	r.Header.Set("Content-Type", "application/json")
	if edit != nil {
		edit(r.Header)
	}
	return r
}

func (f *fixture) do(t *testing.T, r *http.Request) (*httptest.ResponseRecorder, Body) {
	t.Helper()
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	var b Body
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("response %d is not a JSON {code, message}: %q", w.Code, w.Body.String())
	}
	return w, b
}

func TestRequestHeaderRules(t *testing.T) {
	f := newFixture(t, always(pinreset.CodeSuccess))
	cases := []struct {
		name    string
		edit    func(h http.Header)
		code    string
		message string
	}{
		{"AspId missing", func(h http.Header) { h.Del("X-KM-User-AspId") }, "000_003", "Missing required values. X-KM-User-AspId"},
		{"AspId too short", func(h http.Header) { h.Set("X-KM-User-AspId", "KMTEST") }, "000_015", "The length of value does not match. X-KM-User-AspId"},
		{"AspId bad characters", func(h http.Header) { h.Set("X-KM-User-AspId", "KMTEST ASP 0001") }, "000_002", "Invalid input value. X-KM-User-AspId"},
		{"Correlation id missing", func(h http.Header) { h.Del("X-KM-Correlation-Id") }, "000_003", "Missing required values. X-KM-Correlation-Id"},
		{"Correlation id too long", func(h http.Header) { h.Set("X-KM-Correlation-Id", "261125120000-abcdef01") }, "000_015", "The length of value does not match. X-KM-Correlation-Id"},
		{"Correlation id not a date", func(h http.Header) { h.Set("X-KM-Correlation-Id", "261330120000-abcdef0") }, "000_002", "Invalid input value. X-KM-Correlation-Id"},
		{"Correlation id not hex", func(h http.Header) { h.Set("X-KM-Correlation-Id", "261125120000-abcdefg") }, "000_002", "Invalid input value. X-KM-Correlation-Id"},
		{"Access key missing", func(h http.Header) { h.Del("X-KM-Access-Key") }, "000_003", "Missing required values. X-KM-Access-Key"},
		{"Access key too short", func(h http.Header) { h.Set("X-KM-Access-Key", "abc") }, "000_015", "The length of value does not match. X-KM-Access-Key"},
		{"Crypto key id of the wrong length", func(h http.Header) { h.Set("X-KM-Crypto-Key-Id", "short") }, "000_015", "The length of value does not match. X-KM-Crypto-Key-Id"},
		{"Tran token missing", func(h http.Header) { h.Del("X-KM-Tran-Token") }, "000_003", "Missing required values. X-KM-Tran-Token"},
		{"Tran token not KMV1", func(h http.Header) { h.Set("X-KM-Tran-Token", "KMV2:20261125120000000:abc") }, "000_002", "Invalid input value. X-KM-Tran-Token"},
		{"Tran time missing", func(h http.Header) { h.Del("X-KM-Tran-Time") }, "000_003", "Missing required values. X-KM-Tran-Time"},
		{"Tran time too short", func(h http.Header) { h.Set("X-KM-Tran-Time", "2026112512") }, "000_015", "The length of value does not match. X-KM-Tran-Time"},
		{"Tran time not a time", func(h http.Header) { h.Set("X-KM-Tran-Time", "20261125996000") }, "000_002", "Invalid input value. X-KM-Tran-Time"},
		{"Time zone missing", func(h http.Header) { h.Del("X-KM-Time-Zone") }, "000_003", "Missing required values. X-KM-Time-Zone"},
		{"Time zone of four letters", func(h http.Header) { h.Set("X-KM-Time-Zone", "AEST") }, "000_015", "The length of value does not match. X-KM-Time-Zone"},
		{"Time zone unknown", func(h http.Header) { h.Set("X-KM-Time-Zone", "XYZ") }, "000_002", "Invalid input value. X-KM-Time-Zone"},
		{"missing beats length", func(h http.Header) { h.Set("X-KM-User-AspId", "short"); h.Del("X-KM-Time-Zone") }, "000_003", "Missing required values. X-KM-Time-Zone"},
		{"length beats format", func(h http.Header) { h.Set("X-KM-User-AspId", "bad asp id 0001"); h.Set("X-KM-Tran-Time", "1") }, "000_015", "The length of value does not match. X-KM-Tran-Time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, b := f.do(t, request(goodBody, tc.edit))
			if w.Code != 400 || string(b.Code) != tc.code || b.Message != tc.message {
				t.Fatalf("got %d %+v, want 400 %s %q", w.Code, b, tc.code, tc.message)
			}
		})
	}
	if len(f.pub.cmds) != 0 {
		t.Errorf("%d invalid requests reached Kafka", len(f.pub.cmds))
	}
}

func TestRequestBodyRules(t *testing.T) {
	f := newFixture(t, always(pinreset.CodeSuccess))
	cases := []struct {
		name, body string
		code       string
		message    string
	}{
		{"not JSON", `loginId=a`, "000_002", "Invalid input value. body"},
		{"loginId missing", `{"currentPassword":"246810","newPassword":"581379"}`, "000_003", "Missing required values. loginId"},
		{"loginId null", `{"loginId":null,"currentPassword":"246810","newPassword":"581379"}`, "000_003", "Missing required values. loginId"},
		{"loginId not an email", `{"loginId":"member","currentPassword":"246810","newPassword":"581379"}`, "000_002", "Invalid input value. loginId"},
		{"loginId over 80", `{"loginId":"` + strings.Repeat("a", 70) + `@example.com","currentPassword":"246810","newPassword":"581379"}`, "000_015", "The length of value does not match. loginId"},
		{"ci of the wrong length", `{"loginId":"m@example.com","ci":"abc","currentPassword":"246810","newPassword":"581379"}`, "000_015", "The length of value does not match. ci"},
		{"currentPassword missing on a change", `{"loginId":"m@example.com","newPassword":"581379"}`, "000_003", "Missing required values. currentPassword"},
		{"currentPassword of 5 digits", `{"loginId":"m@example.com","currentPassword":"24681","newPassword":"581379"}`, "000_015", "The length of value does not match. currentPassword"},
		{"newPassword missing", `{"loginId":"m@example.com","currentPassword":"246810"}`, "000_003", "Missing required values. newPassword"},
		{"newPassword not digits", `{"loginId":"m@example.com","currentPassword":"246810","newPassword":"58137a"}`, "000_002", "Invalid input value. newPassword"},
		{"newPassword a number", `{"loginId":"m@example.com","currentPassword":"246810","newPassword":581379}`, "000_002", "Invalid input value. newPassword"},
		{"isResetPassword a string", `{"loginId":"m@example.com","newPassword":"581379","isResetPassword":"true"}`, "000_002", "Invalid input value. isResetPassword"},
		{"three identical digits", `{"loginId":"m@example.com","currentPassword":"246810","newPassword":"111246"}`, "001_044", "New wallet pin is too easy to guess. newPassword"},
		{"three consecutive digits", `{"loginId":"m@example.com","currentPassword":"246810","newPassword":"987012"}`, "001_044", "New wallet pin is too easy to guess. newPassword"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, b := f.do(t, request(tc.body, nil))
			if w.Code != 400 || string(b.Code) != tc.code || b.Message != tc.message {
				t.Fatalf("got %d %+v, want 400 %s %q", w.Code, b, tc.code, tc.message)
			}
		})
	}
}

func TestRequestTransportRules(t *testing.T) {
	f := newFixture(t, always(pinreset.CodeSuccess))
	t.Run("Content-Type not JSON is 415", func(t *testing.T) {
		w, b := f.do(t, request(goodBody, func(h http.Header) { h.Set("Content-Type", "text/plain") }))
		if w.Code != 415 || b.Code != pinreset.CodeUnsupportedMediaType {
			t.Fatalf("got %d %+v", w.Code, b)
		}
	})
	t.Run("body over the limit is 413", func(t *testing.T) {
		big := `{"loginId":"m@example.com","pad":"` + strings.Repeat("x", 2000) + `"}`
		w, b := f.do(t, request(big, nil))
		if w.Code != 413 || b.Code != pinreset.CodeTooLarge {
			t.Fatalf("got %d %+v", w.Code, b)
		}
	})
	t.Run("GET on the POST route is refused", func(t *testing.T) {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, ResetPath, nil))
		if w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("got %d", w.Code)
		}
	})
}

func TestAuthenticationFailuresAreOne401(t *testing.T) {
	f := newFixture(t, always(pinreset.CodeSuccess))
	cases := map[string]func(h http.Header){
		"unknown ASP":      func(h http.Header) { h.Set("X-KM-User-AspId", "KMTESTASP000002") },
		"wrong access key": func(h http.Header) { h.Set("X-KM-Access-Key", strings.Repeat("Z", 40)) },
		"MAC of another body": func(h http.Header) {
			h.Set("X-KM-Tran-Token", kmheader.Sign([]byte(testSecret), []byte(`{}`), time.Now(), time.UTC))
		},
		"tran time 6 minutes old": func(h http.Header) {
			h.Set("X-KM-Time-Zone", "UTC")
			h.Set("X-KM-Tran-Time", time.Now().UTC().Add(-6*time.Minute).Format("20060102150405"))
		},
		"token time 6 minutes ahead": func(h http.Header) {
			h.Set("X-KM-Time-Zone", "UTC")
			h.Set("X-KM-Tran-Token", kmheader.Sign([]byte(testSecret), []byte(goodBody), time.Now().Add(6*time.Minute), time.UTC))
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			w, b := f.do(t, request(goodBody, edit))
			if w.Code != 401 || b.Code != pinreset.CodeUnauthorized || b.Message != "Authentication failed." {
				t.Fatalf("got %d %+v, want one 401 000_401 for every failure", w.Code, b)
			}
		})
	}
}

// TestCommandNamesItsIngress: a command carries the request id and, when
// the instance has one, its id (x-ingress-id), which pwctl trace shows.
func TestCommandNamesItsIngress(t *testing.T) {
	for _, id := range []string{"ingress-7", ""} {
		f := newFixture(t, always(pinreset.CodeSuccess), func(o *Options) { o.InstanceID = id })
		if w, _ := f.do(t, request(goodBody, nil)); w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		h := map[string]string{}
		for _, x := range f.pub.headers[0] {
			h[x.Key] = string(x.Value)
		}
		if h[wire.HeaderRequestID] != f.pub.cmds[0].RequestID {
			t.Errorf("x-request-id %q, want the command's request id %q", h[wire.HeaderRequestID], f.pub.cmds[0].RequestID)
		}
		if got, present := h[wire.HeaderIngressID]; got != id || present != (id != "") {
			t.Errorf("instance %q: x-ingress-id %q (present %t)", id, got, present)
		}
	}
}

func TestOutcomes(t *testing.T) {
	t.Run("each result code becomes its status", func(t *testing.T) {
		for _, code := range []pinreset.Code{pinreset.CodeSuccess, pinreset.CodeUserNotFound, pinreset.CodeSamePIN,
			pinreset.CodeInvalidUserInfo, pinreset.CodeAttemptsExceeded, pinreset.CodeExpired, pinreset.CodeRejected} {
			f := newFixture(t, always(code))
			w, b := f.do(t, request(goodBody, nil))
			if w.Code != StatusOf(code) || b.Code != code || b.Message != code.Message() {
				t.Errorf("%s: got %d %+v", code, w.Code, b)
			}
			if w.Header().Get("X-KM-Correlation-Id") == "" {
				t.Errorf("%s: correlation id not echoed", code)
			}
		}
	})
	t.Run("no result in time answers 202 with a Location", func(t *testing.T) {
		f := newFixture(t, always(""))
		f.srv.opts.ResultWait = 50 * time.Millisecond
		r := request(goodBody, nil)
		w, b := f.do(t, r)
		cid := r.Header.Get("X-KM-Correlation-Id")
		if w.Code != 202 || b.Code != pinreset.CodeAccepted || w.Header().Get("Location") != ResetPath+"/"+cid {
			t.Fatalf("got %d %+v Location=%q", w.Code, b, w.Header().Get("Location"))
		}
	})
	t.Run("Kafka down answers 503", func(t *testing.T) {
		f := newFixture(t, always(pinreset.CodeSuccess))
		f.pub.err = errors.New("broker unreachable")
		w, b := f.do(t, request(goodBody, nil))
		if w.Code != 503 || b.Code != pinreset.CodeUnavailable {
			t.Fatalf("got %d %+v", w.Code, b)
		}
	})
	t.Run("past MaxInFlight waiting commands a request is refused with 503 before publishing", func(t *testing.T) {
		f := newFixture(t, always(""))
		f.srv.Measure(prometheus.NewRegistry())
		f.srv.opts.ResultWait = 500 * time.Millisecond
		f.srv.slots = make(chan struct{}, 1)
		first := make(chan int)
		go func() {
			w, _ := f.do(t, request(goodBody, nil))
			first <- w.Code
		}()
		waitfor.Every(time.Millisecond, 2*time.Second, func() bool { return f.srv.waiters.len() > 0 })
		w, b := f.do(t, request(goodBody, nil))
		if w.Code != 503 || b.Code != pinreset.CodeUnavailable {
			t.Fatalf("second request while one waits: %d %+v, want 503 000_503", w.Code, b)
		}
		checkRetryAfter(t, w)
		if n := shedCount(f, "max_in_flight"); n != 1 {
			t.Fatalf("shed{reason=max_in_flight} = %v, want 1", n)
		}
		if got := <-first; got != 202 {
			t.Fatalf("first request: %d, want 202", got)
		}
		f.pub.mu.Lock()
		n := len(f.pub.cmds)
		f.pub.mu.Unlock()
		if n != 1 {
			t.Fatalf("%d commands published, want only the admitted one", n)
		}
		if w, _ := f.do(t, request(goodBody, nil)); w.Code != 202 {
			t.Fatalf("after the first finished: %d, want admitted again (202)", w.Code)
		}
	})
	t.Run("a result for another ASP's same correlation id is not ours", func(t *testing.T) {
		f := newFixture(t, always(""))
		f.srv.opts.ResultWait = 300 * time.Millisecond
		r := request(goodBody, nil)
		cid := r.Header.Get("X-KM-Correlation-Id")
		go func() {
			// Delivered while the request waits for its own result.
			waitfor.Every(time.Millisecond, 2*time.Second, func() bool { return f.srv.waiters.len() > 0 })
			f.srv.Deliver(pinreset.Result{CorrelationID: cid, ASPID: "KMOTHERASP00001", Code: pinreset.CodeSuccess, Message: "Success."})
		}()
		w, b := f.do(t, r)
		if w.Code != 202 {
			t.Fatalf("got %d %+v, want 202: another ASP's result was taken as ours", w.Code, b)
		}
	})
	t.Run("the command carries the request", func(t *testing.T) {
		f := newFixture(t, always(pinreset.CodeSuccess))
		r := request(`{"loginId":"m@example.com","currentPassword":"999999","newPassword":"581379","isResetPassword":true}`, nil)
		f.do(t, r)
		c := f.pub.cmds[0]
		if c.Kind != pinreset.KindReset || c.CurrentPIN != "" || c.NewPIN != "581379" || c.LoginID != "m@example.com" ||
			c.ASPID != testASP || c.CorrelationID != r.Header.Get("X-KM-Correlation-Id") || c.ExpiresAt.Sub(c.AcceptedAt) != 2*time.Minute {
			t.Fatalf("command %+v does not carry the request", c)
		}
	})
}

// TestLoadShedding: with shedFloor requests waiting here and no result back
// yet, one more is refused before publishing; once results come back at a
// rate, the same number waiting is admitted. The results are delivered by
// hand, so nothing depends on timing.
func TestLoadShedding(t *testing.T) {
	f := newFixture(t, always(""))
	f.srv.Measure(prometheus.NewRegistry())
	f.srv.opts.ResultWait = 5 * time.Second // every waiter is released long before
	codes := make(chan int, 2*shedFloor)
	post := func() {
		go func() {
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, request(goodBody, nil))
			codes <- w.Code
		}()
	}
	published := func() []pinreset.Command {
		f.pub.mu.Lock()
		defer f.pub.mu.Unlock()
		return append([]pinreset.Command(nil), f.pub.cmds...)
	}
	// waitPublished returns once n commands are published, so waiting: a
	// waiter is registered before its command is published.
	waitPublished := func(n int) []pinreset.Command {
		t.Helper()
		var cmds []pinreset.Command
		if !waitfor.Every(time.Millisecond, 10*time.Second, func() bool { cmds = published(); return len(cmds) >= n }) {
			t.Fatalf("%d commands published, want %d", len(cmds), n)
		}
		return cmds
	}
	release := func(cmds []pinreset.Command) {
		t.Helper()
		for _, c := range cmds {
			f.srv.Deliver(pinreset.NewResult(c, pinreset.CodeSuccess, "m1", time.Now()))
		}
		for range cmds {
			if code := <-codes; code != 200 {
				t.Fatalf("a waiting request answered %d, want 200 from its delivered result", code)
			}
		}
	}

	// 32 results, then nothing for 9 s: 3.6 results/s, so a 5 s wait
	// answers about 18 of the waiting commands, and the floor decides.
	var mu sync.Mutex
	clock := time.Unix(time.Now().Unix(), 0) // a whole second: the rates below are exact
	f.srv.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	for range shedFloor {
		post()
	}
	release(waitPublished(shedFloor))
	mu.Lock()
	clock = clock.Add(9 * time.Second)
	mu.Unlock()

	for range shedFloor {
		post()
	}
	cmds := waitPublished(2 * shedFloor)[shedFloor:]
	w, b := f.do(t, request(goodBody, nil))
	if w.Code != 503 || b.Code != pinreset.CodeUnavailable {
		t.Fatalf("with %d waiting and results at 3.6/s: %d %+v, want 503 000_503", shedFloor, w.Code, b)
	}
	checkRetryAfter(t, w)
	if n := len(published()); n != 2*shedFloor {
		t.Fatalf("%d commands published, want %d: the refused one must not be", n, 2*shedFloor)
	}
	if n := shedCount(f, "backlog"); n != 1 {
		t.Fatalf("shed{reason=backlog} = %v, want 1", n)
	}
	if !strings.Contains(f.logs.String(), `"msg":"shedding load`) {
		t.Fatal("the refusal is not logged")
	}
	// An overload refuses many: each is counted, the warning is sampled.
	for range 30 {
		if w, _ := f.do(t, request(goodBody, nil)); w.Code != 503 {
			t.Fatalf("refusal: %d, want 503", w.Code)
		}
	}
	if n := shedCount(f, "backlog"); n != 31 {
		t.Fatalf("shed{reason=backlog} = %v, want 31", n)
	}
	if n := strings.Count(f.logs.String(), `"msg":"shedding load`); n >= 31 {
		t.Fatalf("%d shedding warnings for 31 refusals: want them sampled", n)
	}
	release(cmds)

	// 64 results in 9 s are 7.1/s: a 5 s wait answers 35, more than the
	// floor.
	for range shedFloor {
		post()
	}
	waitPublished(3 * shedFloor)
	post()
	cmds = waitPublished(3*shedFloor + 1)
	release(cmds[2*shedFloor:])
	if n := shedCount(f, "backlog"); n != 31 {
		t.Fatalf("shed{reason=backlog} = %v after results came back, want still 31", n)
	}
}

// shedCount reads pinreset_ingress_shed_total{reason}.
func shedCount(f *fixture, reason string) float64 {
	var m dto.Metric
	_ = f.srv.metrics.Shed.WithLabelValues(reason).Write(&m)
	return m.GetCounter().GetValue()
}

// checkRetryAfter: a 503 says when to come back, in whole seconds, 1 to 30.
func checkRetryAfter(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	ra := w.Header().Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n < 1 || n > 30 {
		t.Fatalf("Retry-After %q, want whole seconds from 1 to 30", ra)
	}
}

func TestStatusOfEveryCode(t *testing.T) {
	for _, c := range pinreset.Codes() {
		s := StatusOf(c)
		if (s == 500) != (c == pinreset.CodeInternal) {
			t.Errorf("%s maps to %d: only the internal error may be a 500", c, s)
		}
	}
}

// TestLogsHoldNoSecrets runs every kind of request and scans the logs for the
// PINs, the access key, the secret and the tran tokens sent.
func TestLogsHoldNoSecrets(t *testing.T) {
	f := newFixture(t, always(pinreset.CodeSuccess))
	var tokens []string
	for _, edit := range []func(h http.Header){nil,
		func(h http.Header) { h.Set("X-KM-Access-Key", strings.Repeat("Z", 40)) },
		func(h http.Header) { h.Set("X-KM-Time-Zone", "XYZ") },
	} {
		r := request(goodBody, edit)
		tokens = append(tokens, r.Header.Get("X-KM-Tran-Token"))
		f.do(t, r)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatalf("no access log lines captured: %s", logs)
	}
	secrets := append([]string{"246810", "581379", testAccess, testSecret, strings.Repeat("Z", 40)}, tokens...)
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain a secret %q", s)
		}
	}
}

// TestHealthOnTheAPIPort: Kubernetes probes the API port's /healthz, so it
// fails while a loop of the process is dead (a results tail that ended),
// without saying why on the public port.
func TestHealthOnTheAPIPort(t *testing.T) {
	f := newFixture(t, always(pinreset.CodeSuccess))
	var dead error
	f.srv.Liveness(func() error { return dead })
	get := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return w
	}
	if w := get(); w.Code != 200 {
		t.Errorf("/healthz with every loop alive: %d", w.Code)
	}
	dead = errors.New("results tail exited: stopped")
	w := get()
	if w.Code != 503 || strings.Contains(w.Body.String(), "tail") {
		t.Errorf("/healthz with a dead loop: %d %q, want 503 without the reason", w.Code, w.Body.String())
	}
}
