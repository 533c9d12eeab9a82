package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Run checks o, sends its requests signed with creds until o says stop or
// ctx ends, and reports them; with o.PlotFile it also writes the plot. A
// request that fails is counted in the report, not returned: the error is
// for settings that are not a run and for a plot that cannot be written.
func Run(ctx context.Context, o Options, creds kmheader.Credentials) (Report, error) {
	if err := o.Check(); err != nil {
		return Report{}, err
	}
	r := newLoadRun(o, creds)
	r.start = time.Now()
	stopProgress := func() {}
	if o.Progress != nil {
		stopProgress = r.showProgress(o.Progress)
	}
	if o.Rate > 0 {
		r.runOpen(ctx)
	} else {
		r.runClosed(ctx)
	}
	r.end = time.Now()
	stopProgress()

	rep := r.report()
	if o.PlotFile != "" {
		if err := r.writePlot(o.PlotFile, rep); err != nil {
			return Report{}, fmt.Errorf("-plot: %w", err)
		}
	}
	return rep, nil
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
	o      Options
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
	lag             []time.Duration // open model: how late each arrival was sent (runOpen only)
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

func newLoadRun(o Options, creds kmheader.Credentials) *loadRun {
	conns := o.Concurrency
	if o.Rate > 0 {
		conns = min(o.MaxInflight, o.MemberCount+64)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no overall limit
	tr.MaxIdleConnsPerHost = conns
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	r := &loadRun{
		o: o, creds: creds, client: &http.Client{Transport: tr}, policy: pinreset.PINPolicy{Enabled: true},
		members: make([]memberState, o.MemberCount), free: make(chan int, o.MemberCount),
		byStatus: map[int]int{}, byCode: map[string]int{}, errKinds: map[string]int{},
	}
	for i := range r.members {
		r.members[i] = memberState{loginID: fmt.Sprintf(o.Members, i), pin: o.InitialPIN}
	}
	// Free members are taken in a random order, then round robin.
	for _, i := range rand.Perm(o.MemberCount) {
		r.free <- i
	}
	return r
}

var errNoFreeMember = errors.New("no free member")

// plan makes the next request. With wait it waits for a free member (closed
// model); without, it returns errNoFreeMember at once (open model).
func (r *loadRun) plan(ctx context.Context, wait bool) (*loadTx, error) {
	fail := rand.Float64() < r.o.FailShare
	reset := rand.Float64() < r.o.Mix
	if fail && (reset || r.o.MaxWrong == 0) {
		return r.unknownMember(reset), nil
	}
	m, err := r.acquire(ctx, wait)
	if err != nil {
		return nil, err
	}
	st := &r.members[m]
	if fail {
		if st.pin == "" || st.wrong >= r.o.MaxWrong {
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
		for _, p := range []string{r.o.InitialPIN, st.pin} {
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
	if r.o.Duration > 0 {
		deadline = r.start.Add(r.o.Duration)
	}
	over := func() bool { return !deadline.IsZero() && !time.Now().Before(deadline) }
	var wg sync.WaitGroup
	for range r.o.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && !over() {
				if r.o.Requests > 0 && tickets.Add(1) > int64(r.o.Requests) {
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
		if r.o.Requests > 0 && i >= r.o.Requests {
			break
		}
		at := r.start.Add(time.Duration(float64(i) * float64(time.Second) / r.o.Rate))
		if r.o.Duration > 0 && !at.Before(r.start.Add(r.o.Duration)) {
			break
		}
		if !waitUntil(ctx, timer, at, r.spin()) {
			continue
		}
		r.lag = append(r.lag, time.Since(at))
		// Only this goroutine adds to inflight, so the check cannot race.
		if r.inflight.Load() >= int64(r.o.MaxInflight) {
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

// spinUnder is the rate up to which the open model spins the last
// stretch before each arrival (spinFor), at most 15% of a core.
const (
	spinUnder = 100
	spinFor   = 1500 * time.Microsecond
)

// spin is how long before each arrival the open model stops sleeping and
// spins: an idle process's timer fires up to a millisecond late here (the
// runtime's poller sleeps in whole milliseconds, and an idle virtual CPU
// wakes slowly: 0.66 ms late at the median, 1.1 ms at most, at 3
// arrivals/s), and the latency, which runs from the scheduled arrival,
// would count that as the server's. Above spinUnder arrivals/s the
// spinning would cost the server under test too much CPU, and a busy
// process's timers are punctual anyway.
func (r *loadRun) spin() time.Duration {
	if r.o.Rate > spinUnder {
		return 0
	}
	return spinFor
}

// waitUntil returns at at, or later, having slept on timer until spin
// before it and spun the rest; false if ctx ended first.
func waitUntil(ctx context.Context, timer *time.Timer, at time.Time, spin time.Duration) bool {
	if d := time.Until(at) - spin; d > 0 {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
		}
	}
	for time.Now().Before(at) {
		if ctx.Err() != nil {
			return false
		}
	}
	return ctx.Err() == nil
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
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	status, code, loc, err := r.send(ctx, http.MethodPost, r.o.URL, tx.body, cid)
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
	base, err := url.Parse(r.o.URL)
	if location != "" && err == nil {
		if ref, err := url.Parse(location); err == nil {
			return base.ResolveReference(ref).String()
		}
	}
	return strings.TrimSuffix(r.o.URL, "/") + "/" + url.PathEscape(cid)
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
	if r.o.Requests > 0 {
		frac = float64(done+dropped) / float64(r.o.Requests)
	}
	if r.o.Duration > 0 {
		frac = max(frac, elapsed.Seconds()/r.o.Duration.Seconds())
	}
	frac = min(frac, 1)
	const width = 24
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	target := ""
	if r.o.Requests > 0 {
		target = "/" + strconv.Itoa(r.o.Requests)
	}
	return fmt.Sprintf("[%s] %d%s done  %.1f req/s  %d in flight  %d errors  %d dropped  %.1fs ",
		bar, done, target, float64(done)/max(elapsed.Seconds(), 1e-9), r.inflight.Load(), r.errCount.Load(), dropped, elapsed.Seconds())
}
