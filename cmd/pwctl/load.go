package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// loadOptions are the flags of pwctl load.
type loadOptions struct {
	url, aspFile, aspID string
	pattern             string
	memberCount         int
	initialPIN          string
	requests            int
	duration            time.Duration
	concurrency         int
	rate                float64
	maxInflight         int
	mix, failShare      float64
	maxWrong            int
	timeout             time.Duration
	jsonOut             bool
	plotFile            string
	progress            bool
}

const loadHelp = `usage: pwctl load [flags]

Sends signed PIN reset and change requests to the API and reports throughput,
latency percentiles and the answers. The members must exist, all with the
same PIN: create them with 'pwctl members seed' (same -asp, -pattern/-members,
-count/-member-count and -pin/-initial-pin).

Closed model (-concurrency C): C workers, each sending its next request when
the last one is answered; latency runs from the send. Open model (-rate R):
R arrivals a second on a fixed schedule, each in its own goroutine, whatever
the server does; an arrival that finds -max-inflight requests in flight, or
no member free, is dropped and counted, never delayed, and latency runs from
the scheduled arrival, so a slow server shows as latency instead of slowing
the generator down (no coordinated omission).

Every request is realistic: a fresh 6-digit PIN the PIN policy accepts, never
one the member had before in this run (so no 001_043 and no 001_409), the
member's current PIN for a change, and never two requests for one member at
once. A 202 answer is polled with GET until final; the latency is until the
final answer. -fail-share of the requests are meant to fail: changes with a
wrong current PIN (001_035, at most -max-wrong per member between successes,
so no member locks) and requests for members that do not exist (001_006).

flags:
`

// loadCmd is pwctl load, the load generator.
func loadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pwctl load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadHelp)
		fs.PrintDefaults()
	}
	var o loadOptions
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080/api/v1/user/password/reset", "API URL of the POST requests (GET polls go to the Location answered with 202)")
	fs.StringVar(&o.aspFile, "asp-file", "deployments/sandbox/asps.json", "ASP registry file holding the ASP's credentials")
	fs.StringVar(&o.aspID, "asp", "", "ASP id (default: the only or first ASP of -asp-file)")
	fs.StringVar(&o.pattern, "members", "load%06d@sandbox.example", "loginId pattern of the seeded members; %d is the index, 0 to -member-count - 1")
	fs.IntVar(&o.memberCount, "member-count", 1000, "number of seeded members; keep it well above -concurrency (or the in-flight count of -rate)")
	fs.StringVar(&o.initialPIN, "initial-pin", "240810", `the PIN every member has at the start; "" if unknown (members used by an earlier run): each member's first request is then a reset`)
	fs.IntVar(&o.requests, "requests", 0, "stop after this many requests (open model: arrivals, dropped ones included)")
	fs.DurationVar(&o.duration, "duration", 0, "stop starting requests after this long (with -requests: whichever comes first)")
	fs.IntVar(&o.concurrency, "concurrency", 0, "closed model: this many workers sending back to back (default 10 when -rate is not given)")
	fs.Float64Var(&o.rate, "rate", 0, "open model: this many arrivals per second on a fixed schedule")
	fs.IntVar(&o.maxInflight, "max-inflight", 10000, "open model: bound on requests in flight; an arrival finding it full is dropped")
	fs.Float64Var(&o.mix, "mix", 0.5, "share of resets (isResetPassword true); the rest are changes")
	fs.Float64Var(&o.failShare, "fail-share", 0.1, "share of requests meant to fail: wrong current PIN (001_035) or unknown member (001_006)")
	fs.IntVar(&o.maxWrong, "max-wrong", 3, "wrong-PIN changes per member between two successes; keep it below the service's PINRESET_LOCK_AFTER (5)")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up on one request, polls included, after this long (counted as an error)")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of the text report")
	fs.StringVar(&o.plotFile, "plot", "", "write a PNG of the latency distribution and of the throughput over time (1 s buckets) to this file")
	fs.BoolVar(&o.progress, "progress", isTerminal(stderr), "show a progress line on standard error (default: when standard error is a terminal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("load: unexpected argument %q", fs.Arg(0))
	}
	if err := o.check(); err != nil {
		return err
	}
	creds, err := credentials(o.aspFile, o.aspID)
	if err != nil {
		return err
	}
	r := newLoadRun(o, creds)
	if o.concurrency > 0 && o.memberCount <= o.concurrency {
		fmt.Fprintf(stderr, "pwctl load: warning: %d members for %d workers: workers wait for a free member\n", o.memberCount, o.concurrency)
	}

	r.start = time.Now()
	stopProgress := func() {}
	if o.progress {
		stopProgress = r.showProgress(stderr)
	}
	if o.rate > 0 {
		r.runOpen(ctx)
	} else {
		r.runClosed(ctx)
	}
	r.end = time.Now()
	stopProgress()

	rep := r.report()
	if o.plotFile != "" {
		if err := r.writePlot(o.plotFile, rep); err != nil {
			return fmt.Errorf("-plot: %w", err)
		}
	}
	if o.jsonOut {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		rep.print(stdout, o)
	}
	return nil
}

func (o *loadOptions) check() error {
	u, err := url.Parse(o.url)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("-url %q is not an http(s) URL", o.url)
	case o.requests < 0 || o.duration < 0:
		return errors.New("-requests and -duration must not be negative")
	case o.requests == 0 && o.duration == 0:
		return errors.New("give -requests N or -duration D (or both)")
	case o.concurrency < 0 || o.rate < 0 || math.IsInf(o.rate, 0) || math.IsNaN(o.rate):
		return errors.New("-concurrency and -rate must not be negative")
	case o.concurrency > 0 && o.rate > 0:
		return errors.New("-concurrency (closed model) and -rate (open model) exclude each other")
	case o.rate > 0 && o.maxInflight < 1:
		return errors.New("-max-inflight must be at least 1")
	case o.memberCount < 1:
		return errors.New("-member-count must be at least 1")
	case !(o.mix >= 0 && o.mix <= 1):
		return errors.New("-mix must be between 0 and 1")
	case !(o.failShare >= 0 && o.failShare <= 1):
		return errors.New("-fail-share must be between 0 and 1")
	case o.maxWrong < 0:
		return errors.New("-max-wrong must not be negative")
	case o.timeout <= 0:
		return errors.New("-timeout must be positive")
	case o.initialPIN != "" && !isSixDigits(o.initialPIN):
		return errors.New(`-initial-pin must be 6 digits or ""`)
	}
	if o.rate == 0 && o.concurrency == 0 {
		o.concurrency = 10
	}
	if err := checkPattern(o.pattern); err != nil {
		return fmt.Errorf("-members: %w", err)
	}
	return nil
}

// intent is what a generated request is meant to get.
type intent int

const (
	intentSet           intent = iota // a reset or change that sets the PIN: 000_000
	intentWrongPIN                    // a change with a wrong current PIN: 001_035
	intentUnknownMember               // a member that does not exist: 001_006
)

func (i intent) want() string {
	switch i {
	case intentWrongPIN:
		return string(pinreset.CodeInvalidUserInfo)
	case intentUnknownMember:
		return string(pinreset.CodeUserNotFound)
	}
	return string(pinreset.CodeSuccess)
}

// memberState is what the generator knows of one member. It is owned by
// whoever took the member's index from loadRun.free, so it needs no lock of
// its own: taking the index is the per-member lock, and it also makes sure
// that one member never has two requests in flight.
type memberState struct {
	loginID string
	pin     string // the current PIN; "" when unknown, so the next request is a reset
	wrong   int    // wrong-PIN changes sent since the last success
	// used holds every PIN this run set or tried to set: a new PIN is never
	// one of them, so it is never the current one (001_043) nor the content
	// of an earlier request (001_409, replay).
	used map[uint32]struct{}
}

// loadTx is one generated request.
type loadTx struct {
	member int // index into loadRun.members; -1 when none is held
	intent intent
	newPIN string
	body   []byte
}

// txResult is how a request ended: a final HTTP answer, or err.
type txResult struct {
	status int
	code   string
	polled bool // the first answer was 202
	err    error
}

type loadRun struct {
	o      loadOptions
	creds  kmheader.Credentials
	client *http.Client
	policy pinreset.PINPolicy

	members []memberState
	free    chan int // indexes of the members with no request in flight

	start, end time.Time

	// Read by the progress line.
	sent, done, inflight, dropped, errCount atomic.Int64

	mu              sync.Mutex
	lat             []time.Duration
	byStatus        map[int]int
	byCode          map[string]int
	perSec, okPer   []int // answers, and 000_000 answers, by second since start
	unexpected      int
	polled          int
	canceled        int
	errKinds        map[string]int
	firstErr        string
	droppedNoMember int
}

func newLoadRun(o loadOptions, creds kmheader.Credentials) *loadRun {
	conns := o.concurrency
	if o.rate > 0 {
		conns = min(o.maxInflight, o.memberCount+64)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no overall limit
	tr.MaxIdleConnsPerHost = conns
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	r := &loadRun{
		o: o, creds: creds, client: &http.Client{Transport: tr}, policy: pinreset.PINPolicy{Enabled: true},
		members: make([]memberState, o.memberCount), free: make(chan int, o.memberCount),
		byStatus: map[int]int{}, byCode: map[string]int{}, errKinds: map[string]int{},
	}
	for i := range r.members {
		r.members[i] = memberState{loginID: fmt.Sprintf(o.pattern, i), pin: o.initialPIN}
	}
	// Free members are taken in a random order, then round robin.
	for _, i := range rand.Perm(o.memberCount) {
		r.free <- i
	}
	return r
}

var errNoFreeMember = errors.New("no free member")

// plan makes the next request. With wait it waits for a free member (closed
// model); without, it returns errNoFreeMember at once (open model).
func (r *loadRun) plan(ctx context.Context, wait bool) (*loadTx, error) {
	fail := rand.Float64() < r.o.failShare
	reset := rand.Float64() < r.o.mix
	if fail && (reset || r.o.maxWrong == 0) {
		return r.unknownMember(reset), nil
	}
	m, err := r.acquire(ctx, wait)
	if err != nil {
		return nil, err
	}
	st := &r.members[m]
	if fail {
		if st.pin == "" || st.wrong >= r.o.maxWrong {
			r.free <- m
			return r.unknownMember(false), nil
		}
		// Counted before the answer: a lost answer may still have counted.
		st.wrong++
		wrong := r.randomPIN()
		for wrong == st.pin {
			wrong = r.randomPIN()
		}
		return &loadTx{member: m, intent: intentWrongPIN, body: requestBody(st.loginID, wrong, r.randomPIN())}, nil
	}
	if st.pin == "" {
		reset = true
	}
	pin := r.freshPIN(st)
	cur := st.pin
	if reset {
		cur = ""
	}
	return &loadTx{member: m, intent: intentSet, newPIN: pin, body: requestBody(st.loginID, cur, pin)}, nil
}

func (r *loadRun) acquire(ctx context.Context, wait bool) (int, error) {
	select {
	case m := <-r.free:
		return m, nil
	default:
	}
	if !wait {
		return -1, errNoFreeMember
	}
	select {
	case m := <-r.free:
		return m, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

func (r *loadRun) unknownMember(reset bool) *loadTx {
	login := fmt.Sprintf("nomember-%016x@load.invalid", rand.Uint64())
	cur := ""
	if !reset {
		cur = r.randomPIN()
	}
	return &loadTx{member: -1, intent: intentUnknownMember, body: requestBody(login, cur, r.randomPIN())}
}

// randomPIN is a random 6-digit PIN that the PIN policy accepts.
func (r *loadRun) randomPIN() string {
	for {
		pin := fmt.Sprintf("%06d", rand.IntN(1_000_000))
		if r.policy.Check(pin) == nil {
			return pin
		}
	}
}

// freshPIN is a random acceptable PIN that st has never had in this run.
func (r *loadRun) freshPIN(st *memberState) string {
	if st.used == nil || len(st.used) > 100_000 { // a bound no realistic run reaches
		st.used = map[uint32]struct{}{}
		for _, p := range []string{r.o.initialPIN, st.pin} {
			if n, err := strconv.ParseUint(p, 10, 32); err == nil {
				st.used[uint32(n)] = struct{}{}
			}
		}
	}
	for {
		pin := r.randomPIN()
		n, _ := strconv.ParseUint(pin, 10, 32)
		if _, dup := st.used[uint32(n)]; dup {
			continue
		}
		st.used[uint32(n)] = struct{}{}
		return pin
	}
}

// requestBody is a reset (cur empty) or a change.
func requestBody(loginID, cur, next string) []byte {
	b, _ := json.Marshal(struct {
		LoginID string `json:"loginId"`
		Current string `json:"currentPassword,omitempty"`
		New     string `json:"newPassword"`
		Reset   bool   `json:"isResetPassword"`
	}{loginID, cur, next, cur == ""})
	return b
}

// runClosed runs the closed model: -concurrency workers back to back.
func (r *loadRun) runClosed(ctx context.Context) {
	var tickets atomic.Int64
	var deadline time.Time
	if r.o.duration > 0 {
		deadline = r.start.Add(r.o.duration)
	}
	over := func() bool { return !deadline.IsZero() && !time.Now().Before(deadline) }
	var wg sync.WaitGroup
	for range r.o.concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && !over() {
				if r.o.requests > 0 && tickets.Add(1) > int64(r.o.requests) {
					return
				}
				tx, err := r.plan(ctx, true)
				if err != nil {
					return
				}
				if over() || ctx.Err() != nil {
					r.release(tx)
					return
				}
				r.sent.Add(1)
				r.inflight.Add(1)
				r.execute(ctx, tx, time.Now())
				r.inflight.Add(-1)
			}
		})
	}
	wg.Wait()
}

// runOpen runs the open model: arrival i is due at start + i/rate, whether
// or not earlier ones were answered.
func (r *loadRun) runOpen(ctx context.Context) {
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		if r.o.requests > 0 && i >= r.o.requests {
			break
		}
		at := r.start.Add(time.Duration(float64(i) * float64(time.Second) / r.o.rate))
		if r.o.duration > 0 && !at.Before(r.start.Add(r.o.duration)) {
			break
		}
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				continue
			case <-timer.C:
			}
		}
		// Only this goroutine adds to inflight, so the check cannot race.
		if r.inflight.Load() >= int64(r.o.maxInflight) {
			r.dropped.Add(1)
			continue
		}
		tx, err := r.plan(ctx, false)
		if err != nil {
			r.dropped.Add(1)
			r.mu.Lock()
			r.droppedNoMember++
			r.mu.Unlock()
			continue
		}
		r.sent.Add(1)
		r.inflight.Add(1)
		wg.Go(func() {
			defer r.inflight.Add(-1)
			r.execute(ctx, tx, at)
		})
	}
	wg.Wait()
}

// execute sends tx, waits for its final answer, updates the member and
// records the outcome; latency runs from start.
func (r *loadRun) execute(ctx context.Context, tx *loadTx, start time.Time) {
	res := r.roundTrip(ctx, tx)
	end := time.Now()
	answered := res.err == nil
	unexpected := answered && res.code != tx.intent.want()
	r.settle(tx, res)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.done.Add(1)
	if !answered {
		if ctx.Err() != nil {
			r.canceled++
			return
		}
		r.errCount.Add(1)
		r.errKinds[errKind(res.err)]++
		if r.firstErr == "" {
			r.firstErr = res.err.Error()
		}
		return
	}
	r.lat = append(r.lat, end.Sub(start))
	r.byStatus[res.status]++
	r.byCode[res.code]++
	sec := int(end.Sub(r.start) / time.Second)
	for len(r.perSec) <= sec {
		r.perSec, r.okPer = append(r.perSec, 0), append(r.okPer, 0)
	}
	r.perSec[sec]++
	if res.code == string(pinreset.CodeSuccess) {
		r.okPer[sec]++
	}
	if res.polled {
		r.polled++
	}
	if unexpected {
		r.unexpected++
	}
}

// release gives back the member of a request that was not sent.
func (r *loadRun) release(tx *loadTx) {
	if tx.member >= 0 {
		r.free <- tx.member
	}
}

// settle updates the member from the outcome of tx and frees it.
func (r *loadRun) settle(tx *loadTx, res txResult) {
	if tx.member < 0 {
		return
	}
	st := &r.members[tx.member]
	ok := res.err == nil && res.code == tx.intent.want()
	switch {
	case tx.intent == intentSet && ok:
		st.pin, st.wrong = tx.newPIN, 0
	case !ok:
		// Not what was meant, or not known (a lost answer may still be
		// applied): the next request of this member is a reset.
		st.pin = ""
	}
	r.free <- tx.member
}

// pollPause is the pause between two GETs of a pending transaction; each
// GET itself waits up to the ingress's PINRESET_RESULT_WAIT.
const pollPause = 50 * time.Millisecond

// roundTrip POSTs tx and, on 202, GETs its status until the answer is final.
func (r *loadRun) roundTrip(ctx context.Context, tx *loadTx) txResult {
	ctx, cancel := context.WithTimeout(ctx, r.o.timeout)
	defer cancel()
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	status, code, loc, err := r.send(ctx, http.MethodPost, r.o.url, tx.body, cid)
	if err != nil {
		return txResult{err: err}
	}
	res := txResult{status: status, code: code}
	if status != http.StatusAccepted {
		return res
	}
	res.polled = true
	statusURL := r.statusURL(loc, cid)
	for {
		select {
		case <-ctx.Done():
			return txResult{polled: true, err: fmt.Errorf("no final answer: %w", ctx.Err())}
		case <-time.After(pollPause):
		}
		status, code, _, err := r.send(ctx, http.MethodGet, statusURL, nil, cid)
		if err != nil || status == http.StatusAccepted || status == http.StatusServiceUnavailable {
			continue // a GET changes nothing: ask again
		}
		res.status, res.code = status, code
		return res
	}
}

func (r *loadRun) statusURL(location, cid string) string {
	base, err := url.Parse(r.o.url)
	if location != "" && err == nil {
		if ref, err := url.Parse(location); err == nil {
			return base.ResolveReference(ref).String()
		}
	}
	return strings.TrimSuffix(r.o.url, "/") + "/" + url.PathEscape(cid)
}

// send makes one signed request and reads the answer's status and code
// ("none" when the body holds no code).
func (r *loadRun) send(ctx context.Context, method, target string, body []byte, cid string) (status int, code, location string, err error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, "", "", err
	}
	// The path is signed (KMV2, and a KMV1 GET, whose token covers its
	// correlation id), so it is the one of the URL sent.
	kmheader.Set(req.Header, kmheader.SignRequest(r.creds, method, req.URL.EscapedPath(), body, cid, time.Now(), "UTC"))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, "", "", fmt.Errorf("read the answer: %w", err)
	}
	var a struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(b, &a) != nil || a.Code == "" {
		a.Code = "none"
	}
	return resp.StatusCode, a.Code, resp.Header.Get("Location"), nil
}

// errKind names an error's sort for the report.
func errKind(err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "connect"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "connection closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

// showProgress rewrites one progress line on w at most 4 times a second
// until the returned stop is called.
func (r *loadRun) showProgress(w io.Writer) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				fmt.Fprintf(w, "\r%s\n", r.progressLine(time.Now()))
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%s", r.progressLine(time.Now()))
			}
		}
	}()
	return func() { close(quit); <-finished }
}

func (r *loadRun) progressLine(now time.Time) string {
	elapsed := now.Sub(r.start)
	done, dropped := r.done.Load(), r.dropped.Load()
	frac := 0.0
	if r.o.requests > 0 {
		frac = float64(done+dropped) / float64(r.o.requests)
	}
	if r.o.duration > 0 {
		frac = max(frac, elapsed.Seconds()/r.o.duration.Seconds())
	}
	frac = min(frac, 1)
	const width = 24
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	target := ""
	if r.o.requests > 0 {
		target = "/" + strconv.Itoa(r.o.requests)
	}
	return fmt.Sprintf("[%s] %d%s done  %.1f req/s  %d in flight  %d errors  %d dropped  %.1fs ",
		bar, done, target, float64(done)/max(elapsed.Seconds(), 1e-9), r.inflight.Load(), r.errCount.Load(), dropped, elapsed.Seconds())
}

// loadReport is the result of a run; its JSON is the -json output.
type loadReport struct {
	Requests        int            `json:"requests"` // sent
	DurationS       float64        `json:"duration_s"`
	RPS             float64        `json:"rps"` // answered requests per second
	P50ms           float64        `json:"p50_ms"`
	P95ms           float64        `json:"p95_ms"`
	P99ms           float64        `json:"p99_ms"`
	MaxMs           float64        `json:"max_ms"`
	ByStatus        map[string]int `json:"by_status"`
	ByCode          map[string]int `json:"by_code"`
	Dropped         int            `json:"dropped"`
	Errors          int            `json:"errors"`
	Answered        int            `json:"answered"`
	Unexpected      int            `json:"unexpected"` // answered with another code than the one aimed for
	Polled          int            `json:"polled"`     // first answered 202
	Canceled        int            `json:"canceled,omitempty"`
	DroppedNoMember int            `json:"dropped_no_member,omitempty"`
	ErrorKinds      map[string]int `json:"error_kinds,omitempty"`
	FirstError      string         `json:"first_error,omitempty"`
	Model           string         `json:"model"`

	sorted []time.Duration
}

func (r *loadRun) report() loadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	sorted := slices.Clone(r.lat)
	slices.Sort(sorted)
	d := r.end.Sub(r.start)
	rep := loadReport{
		Requests: int(r.sent.Load()), DurationS: d.Seconds(), RPS: float64(len(sorted)) / d.Seconds(),
		ByStatus: map[string]int{}, ByCode: copyCounts(r.byCode), Dropped: int(r.dropped.Load()), Errors: int(r.errCount.Load()),
		Answered: len(sorted), Unexpected: r.unexpected, Polled: r.polled, Canceled: r.canceled,
		DroppedNoMember: r.droppedNoMember, FirstError: r.firstErr, sorted: sorted,
	}
	if len(r.errKinds) > 0 {
		rep.ErrorKinds = copyCounts(r.errKinds)
	}
	for s, n := range r.byStatus {
		rep.ByStatus[strconv.Itoa(s)] = n
	}
	if r.o.rate > 0 {
		rep.Model = fmt.Sprintf("open: %g arrivals/s, at most %d in flight", r.o.rate, r.o.maxInflight)
	} else {
		rep.Model = fmt.Sprintf("closed: %d workers", r.o.concurrency)
	}
	rep.P50ms, rep.P95ms, rep.P99ms = ms(percentile(sorted, 0.50)), ms(percentile(sorted, 0.95)), ms(percentile(sorted, 0.99))
	if len(sorted) > 0 {
		rep.MaxMs = ms(sorted[len(sorted)-1])
	}
	return rep
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// percentile is the nearest-rank percentile of sorted (0 when empty).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func (rep loadReport) print(w io.Writer, o loadOptions) {
	fmt.Fprintf(w, "model        %s; %.0f%% resets, %.0f%% meant to fail\n", rep.Model, 100*o.mix, 100*o.failShare)
	fmt.Fprintf(w, "requests     %d sent, %d answered, %d errors, %d dropped", rep.Requests, rep.Answered, rep.Errors, rep.Dropped)
	if rep.DroppedNoMember > 0 {
		fmt.Fprintf(w, " (%d for want of a free member)", rep.DroppedNoMember)
	}
	if rep.Canceled > 0 {
		fmt.Fprintf(w, ", %d canceled", rep.Canceled)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "duration     %.3f s\n", rep.DurationS)
	fmt.Fprintf(w, "throughput   %.1f answers/s\n", rep.RPS)
	fmt.Fprintf(w, "latency      p50 %.1f ms   p95 %.1f ms   p99 %.1f ms   max %.1f ms\n", rep.P50ms, rep.P95ms, rep.P99ms, rep.MaxMs)
	fmt.Fprintf(w, "by status    %s\n", countList(rep.ByStatus))
	fmt.Fprintf(w, "by code      %s\n", countList(rep.ByCode))
	fmt.Fprintf(w, "unexpected   %d (answered with another code than the one aimed for)\n", rep.Unexpected)
	fmt.Fprintf(w, "polled       %d (answered 202 first, then polled to the final answer)\n", rep.Polled)
	if rep.Errors > 0 {
		fmt.Fprintf(w, "errors       %s; first: %s\n", countList(rep.ErrorKinds), rep.FirstError)
	}
	if o.plotFile != "" {
		fmt.Fprintf(w, "plot         %s\n", o.plotFile)
	}
}

func countList(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, "   ")
}

// writePlot draws the latency histogram, the latency CDF and the answers
// per second into one PNG.
func (r *loadRun) writePlot(path string, rep loadReport) error {
	if len(rep.sorted) == 0 {
		return errors.New("no answers to plot")
	}
	r.mu.Lock()
	perSec, okPer := slices.Clone(r.perSec), slices.Clone(r.okPer)
	r.mu.Unlock()
	lat := make([]float64, len(rep.sorted))
	for i, d := range rep.sorted {
		lat[i] = float64(d) / 1e6
	}
	title := fmt.Sprintf("pwctl load, %s: %d answers, %.1f/s, p50 %.1f ms, p99 %.1f ms",
		rep.Model, rep.Answered, rep.RPS, rep.P50ms, rep.P99ms)

	// The histogram stops at p99.9 so that a long tail does not squash
	// the body; the CDF shows everything.
	cut := lat[:max(1, int(math.Ceil(0.999*float64(len(lat)))))]
	hist := plot.New()
	hist.Title.Text = title
	hist.X.Label.Text = "latency (ms), up to p99.9"
	hist.Y.Label.Text = "answers"
	bins := 50
	if cut[0] == cut[len(cut)-1] {
		bins = 1
	}
	h, err := plotter.NewHist(plotter.Values(cut), bins)
	if err != nil {
		return err
	}
	h.FillColor = color.RGBA{R: 70, G: 130, B: 180, A: 255}
	hist.Add(h)

	cdf := plot.New()
	cdf.X.Label.Text = "latency (ms)"
	cdf.Y.Label.Text = "share answered within"
	cdf.Y.Min, cdf.Y.Max = 0, 1
	step := max(1, len(lat)/2000)
	var pts plotter.XYs
	for i := 0; i < len(lat); i += step {
		pts = append(pts, plotter.XY{X: lat[i], Y: float64(i+1) / float64(len(lat))})
	}
	pts = append(pts, plotter.XY{X: lat[len(lat)-1], Y: 1})
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Color = color.RGBA{R: 70, G: 130, B: 180, A: 255}
	cdf.Add(line, plotter.NewGrid())

	tp := plot.New()
	tp.X.Label.Text = "seconds since start (the last second may be partial)"
	tp.Y.Label.Text = "answers per second"
	tp.Y.Min = 0
	tp.Legend.Top = true
	for i, series := range [][]int{perSec, okPer} {
		var xy plotter.XYs
		for s, n := range series {
			xy = append(xy, plotter.XY{X: float64(s), Y: float64(n)})
		}
		xy = append(xy, plotter.XY{X: float64(len(series)), Y: float64(series[len(series)-1])})
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.StepStyle = plotter.PostStep
		l.Width = vg.Points(1.5)
		if i == 0 {
			l.Color = color.RGBA{R: 70, G: 130, B: 180, A: 255}
			tp.Legend.Add("all answers", l)
		} else {
			l.Color = color.RGBA{R: 46, G: 139, B: 87, A: 255}
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			tp.Legend.Add(string(pinreset.CodeSuccess), l)
		}
		tp.Add(l)
	}
	tp.Add(plotter.NewGrid())

	for _, p := range []*plot.Plot{hist, cdf, tp} {
		p.X.Tick.Marker, p.Y.Tick.Marker = plainTicks, plainTicks
	}
	img := vgimg.New(vg.Points(900), vg.Points(1000))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadY: vg.Points(24), PadTop: vg.Points(8), PadBottom: vg.Points(8),
		PadLeft: vg.Points(8), PadRight: vg.Points(16)}
	plots := [][]*plot.Plot{{hist}, {cdf}, {tp}}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// ("250", not "250.00").
var plainTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
})
