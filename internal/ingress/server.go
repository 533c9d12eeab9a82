// Package ingress is the thin HTTP front of the service: it authenticates and
// validates POST /api/v1/user/password/reset, publishes the command to
// password.commands and waits for its result on password.results. It never
// touches the database.
package ingress

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kmwallet/pinreset/internal/jwe"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/metrics"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/tracing"
	"github.com/kmwallet/pinreset/internal/wire"
)

// ResetPath is the route of the API (KMV2 tokens sign it, so it is
// spelled once, in kmheader).
const ResetPath = kmheader.ResetPath

// Authenticator finds the secret keys of an ASP whose access key matches,
// and the tran token schemes it may sign with.
type Authenticator interface {
	Authenticate(aspID, accessKey string) (secrets [][]byte, ok bool)
	Accepts(aspID string, scheme pinreset.Scheme) bool
}

// Decrypter opens JWE request bodies with the server's keys (package jwe).
type Decrypter interface {
	Decrypt(kid string, body []byte) ([]byte, error)
	JWKS() []byte
}

// ClientKeys finds the key an ASP registered for encrypted responses.
type ClientKeys func(aspID string) (key *rsa.PublicKey, kid string, ok bool)

// Publisher publishes messages.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkabus.Message) error
}

// Options are the request rules of the server.
//
// Load shedding: before anything is published, a request is refused with
// 503 000_503 and a Retry-After header (whole seconds, 1 to 30) when
//   - backlog: at least 32 commands of this instance are already waiting for
//     their result, and at least rate × ResultWait of them, where rate is the
//     results per second that reached waiting requests of this instance over
//     the last 10 s (divided by the part of those 10 s since the first of
//     them, at least 1 s, so that a burst after an idle period is measured at
//     its own pace). By Little's law the queue ahead would take longer than
//     ResultWait to drain: the client would get a 202 anyway while its command
//     lengthens the backlog. With fewer than 8 results in the last 10 s
//     there is no estimate to go by and nothing is shed (a worker outage or
//     a cold start is not an overload: commands wait on Kafka and are
//     answered 202). Retry-After is the estimated excess drain time,
//     waiting/rate − ResultWait;
//   - max_in_flight: MaxInFlight commands are already waiting (the hard cap).
//
// Each refusal counts in pinreset_ingress_shed_total{reason}.
//
// The durations and bounds have no zero-value defaults: the composition
// root passes each setting's value (internal/config's table says its
// meaning, unit and default once).
type Options struct {
	TranWindow   time.Duration // how far a tran time may be from now (PINRESET_TRAN_WINDOW)
	ResultWait   time.Duration // how long a request waits for its result before 202 (PINRESET_RESULT_WAIT)
	CommandTTL   time.Duration // how long a command may wait to be applied (PINRESET_COMMAND_TTL)
	MaxBodyBytes int64         // the largest request body, in bytes (PINRESET_MAX_BODY_BYTES)
	// MaxInFlight bounds the commands this instance publishes and waits for
	// at once; past it a request is refused with 503 000_503 before anything
	// is published, so an overload costs clients a retry, not the ingress
	// its memory (PINRESET_MAX_IN_FLIGHT).
	MaxInFlight int
	PINPolicy   pinreset.PINPolicy
	// JWE and ClientKeys enable message encryption (X-KM-Crypto-Key-Id).
	// Without them an encrypted request is refused with 000_030.
	JWE        Decrypter
	ClientKeys ClientKeys
	// MemberRate and ASPRate are the admission buckets per member and per
	// ASP (see limiter in ratelimit.go). Zero: off.
	MemberRate, ASPRate Rate
	// InstanceID names this instance in the x-ingress-id header of every
	// command it publishes (pwctl trace shows it). "": no header.
	InstanceID string
}

// Server serves the API.
type Server struct {
	auth      Authenticator
	pub       Publisher
	sealer    wire.Sealer
	opts      Options
	log       *zap.Logger
	now       func() time.Time
	waiters   *waiters
	slots     chan struct{} // one per command in flight (Options.MaxInFlight)
	admission *admission    // sheds commands that would not be answered in time
	// shedLog logs refusals sampled: the first 5 of a message each second,
	// then one in 100. An overload refuses hundreds of requests a second;
	// the access log has each, the metric counts each, and the warning is
	// there to be noticed, not to flood the logs when they are read most.
	shedLog *zap.Logger
	seen    *outcomeCache
	ready   func(context.Context) error
	live    func() error     // nil: always alive
	metrics *metrics.Ingress // nil: not measured
	tracer  trace.Tracer
	limits  *limiter // nil: no admission buckets

	// conflicts counts results that contradict a cached final outcome
	// (pinreset_ingress_conflicting_results_total); nil: not measured.
	conflicts prometheus.Counter
}

// NewServer builds the server. ready is called by /readyz.
func NewServer(auth Authenticator, pub Publisher, sealer wire.Sealer, opts Options, log *zap.Logger, ready func(context.Context) error) *Server {
	return &Server{auth: auth, pub: pub, sealer: sealer, opts: opts, log: log, now: time.Now, waiters: newWaiters(), slots: make(chan struct{}, opts.MaxInFlight), admission: newAdmission(shedFloor), tracer: noop.NewTracerProvider().Tracer(""),
		seen: newOutcomeCache(100_000, 10*time.Minute), ready: ready, limits: newLimiter(opts.MemberRate, opts.ASPRate),
		shedLog: log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Second, 5, 100)
		}))}
}

// Trace makes the server record spans with tp.
func (s *Server) Trace(tp trace.TracerProvider) {
	s.tracer = tp.Tracer("github.com/kmwallet/pinreset/internal/ingress")
}

// Measure registers the server's metrics on reg.
func (s *Server) Measure(reg prometheus.Registerer) {
	s.metrics = metrics.NewIngress(reg, func() float64 { return float64(s.waiters.len()) })
	s.limits.measure(reg)
	s.conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pinreset_ingress_conflicting_results_total",
		Help: "Results read from password.results whose code contradicts the final outcome this ingress already holds for the transaction; the first final outcome is kept.",
	})
	reg.MustRegister(s.conflicts)
}

// Liveness makes /healthz on the API port answer 503 while live reports a
// dead or stuck loop (a results tail that ended), as the admin port's does:
// Kubernetes probes this one.
func (s *Server) Liveness(live func() error) { s.live = live }

// Handler returns the HTTP handler with its middleware.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+ResetPath, s.handleReset)
	mux.HandleFunc("GET "+ResetPath+"/{correlationId}", s.handleStatus)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.live != nil {
			if err := s.live(); err != nil {
				// The reason goes to the log only: this is the public port.
				s.log.Error("not alive", zap.Error(err))
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "not alive\n")
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	return s.recoverer(s.accessLog(mux))
}

// Deliver hands a result read from password.results to the waiting request,
// if any, and remembers it for status queries. A transaction has one
// outcome: a result contradicting the final outcome already seen for it is
// answered as that outcome, logged and counted.
func (s *Server) Deliver(r pinreset.Result) {
	kept, conflict := s.seen.put(r, s.now())
	if conflict {
		s.log.Warn("a later result contradicts the final outcome of its transaction; the first is kept",
			zap.String("correlation_id", r.CorrelationID), zap.String("asp_id", r.ASPID),
			zap.String("kept", string(kept.Code)), zap.String("dropped", string(r.Code)))
		if s.conflicts != nil {
			s.conflicts.Inc()
		}
		requestID := r.RequestID // the copy's waiter gets the kept outcome
		r = kept
		r.RequestID = requestID
	}
	s.waiters.deliver(r)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.ready(ctx); err != nil {
		s.log.Warn("not ready", zap.Error(err))
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready\n")
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	if s.opts.JWE == nil {
		_, _ = io.WriteString(w, `{"keys":[]}`)
		return
	}
	_, _ = w.Write(s.opts.JWE.JWKS())
}

func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	log := loggerFrom(r.Context(), s.log)
	hd, err := kmheader.Parse(r.Header, true)
	if err != nil {
		s.writeError(w, log, err)
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) && !(hd.CryptoKeyID != "" && isJOSE(r.Header.Get("Content-Type"))) {
		s.writeError(w, log, pinreset.Errorf(pinreset.CodeUnsupportedMediaType, ""))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeError(w, log, pinreset.Errorf(pinreset.CodeTooLarge, ""))
			return
		}
		s.writeError(w, log, pinreset.Errorf(pinreset.CodeInvalidInput, "body"))
		return
	}
	now := s.now()
	scheme, body, err := s.admit(w, r, log, hd, body, now)
	if err != nil {
		s.writeError(w, log, err)
		return
	}
	req, err := pinreset.ParseRequest(body)
	if err != nil {
		s.writeError(w, log, err)
		return
	}
	if err := s.opts.PINPolicy.Check(req.NewPIN); err != nil {
		s.writeError(w, log, err)
		return
	}
	cmd := pinreset.NewCommand(hd.CorrelationID, newRequestID(), hd.ASPID, req, now, s.opts.CommandTTL)
	cmd.Auth = scheme // the worker's replay rule depends on what the token bound
	charged, err := s.limits.admit(w, cmd, now)
	if err != nil {
		s.writeError(w, log, err)
		return
	}
	defer charged.release() // refused or not published: nothing spent
	s.submit(w, r, log, cmd, charged)
}

// handleStatus answers GET .../reset/{correlationId}: the outcome of that
// transaction once known, 202 while it is pending, 404 if there is none. It
// is authenticated like the POST; its token signs the path (KMV1) or the
// canonical request (KMV2), both holding the correlation id, so that the
// MAC of one status query does not open another transaction's. The
// ingress never reads the database: the question goes to the worker as a
// status query keyed by the correlation id, which puts it on the partition of
// the command it asks about, behind that command.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	log := loggerFrom(r.Context(), s.log)
	hd, err := kmheader.Parse(r.Header, true)
	if err != nil {
		s.writeError(w, log, err)
		return
	}
	if r.PathValue("correlationId") != hd.CorrelationID {
		s.writeError(w, log, pinreset.Errorf(pinreset.CodeInvalidInput, "correlationId"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil || len(body) > 0 {
		s.writeError(w, log, pinreset.Errorf(pinreset.CodeInvalidInput, "body"))
		return
	}
	now := s.now()
	if _, _, err := s.admit(w, r, log, hd, body, now); err != nil {
		s.writeError(w, log, err)
		return
	}
	if res, ok := s.seen.get(hd.ASPID, hd.CorrelationID, now); ok {
		s.writeCode(w, log, res.Code, res.Message)
		return
	}
	s.submit(w, r, log, pinreset.NewStatusQuery(hd.CorrelationID, newRequestID(), hd.ASPID, now, s.opts.CommandTTL), nil)
}

// submit publishes cmd and answers with its result, or 202 when the result
// takes longer than ResultWait. Under overload it refuses cmd first (see
// Options): load is shed before it costs an encryption, a publish or a hash.
// Once cmd is published its admission is charged (nil: none).
func (s *Server) submit(w http.ResponseWriter, r *http.Request, log *zap.Logger, cmd pinreset.Command, charged *charge) {
	// len(s.slots) is read without a lock: concurrent requests may all pass
	// on the same reading, overshooting by a few. The slots stay the hard cap.
	if v := s.admission.check(len(s.slots), s.opts.ResultWait, s.now()); !v.admit {
		s.shedLog.Warn("shedding load: the result would not come within the wait", zap.String("correlation_id", cmd.CorrelationID), zap.Int("in_flight", v.inFlight),
			zap.Float64("results_per_second", v.rate), zap.Float64("answerable", v.answerable), zap.Duration("retry_after", v.retryAfter))
		s.shed(w, log, "backlog", v.retryAfter)
		return
	}
	value, err := wire.EncodeCommand(cmd, s.sealer)
	if err != nil {
		s.writeError(w, log, err)
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		v := s.admission.check(cap(s.slots), s.opts.ResultWait, s.now())
		s.shedLog.Warn("too many commands in flight", zap.String("correlation_id", cmd.CorrelationID), zap.Int("max", cap(s.slots)),
			zap.Float64("results_per_second", v.rate), zap.Duration("retry_after", v.retryAfter))
		s.shed(w, log, "max_in_flight", v.retryAfter)
		return
	}
	results, done := s.waiters.add(cmd.ASPID, cmd.CorrelationID, cmd.RequestID)
	defer done()
	ctx, span := s.tracer.Start(r.Context(), "publish "+kafkabus.TopicCommands, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("pinreset.correlation_id", cmd.CorrelationID), attribute.String("pinreset.kind", string(cmd.Kind))))
	headers := []kafka.Header{{Key: wire.HeaderRequestID, Value: []byte(cmd.RequestID)}}
	if s.opts.InstanceID != "" {
		headers = append(headers, kafka.Header{Key: wire.HeaderIngressID, Value: []byte(s.opts.InstanceID)})
	}
	tracing.Inject(ctx, &headers) // the worker continues this trace
	err = s.pub.Publish(ctx, kafkabus.Message{
		Topic: kafkabus.TopicCommands, Key: []byte(cmd.CorrelationID), Value: value, Headers: headers,
	})
	span.End()
	if err != nil {
		if s.metrics != nil {
			s.metrics.Published.WithLabelValues(string(cmd.Kind), "error").Inc()
		}
		log.Error("publish command", zap.Error(err))
		s.writeError(w, log, pinreset.Errorf(pinreset.CodeUnavailable, ""))
		return
	}

	charged.commit(s.now())
	if s.metrics != nil {
		s.metrics.Published.WithLabelValues(string(cmd.Kind), "ok").Inc()
	}
	timer := time.NewTimer(s.opts.ResultWait)
	defer timer.Stop()
	select {
	case res := <-results:
		s.admission.completed(s.now())
		s.writeCode(w, log, res.Code, res.Message)
	case <-timer.C:
		// The command is on Kafka and will be decided; the client asks later.
		w.Header().Set("Location", ResetPath+"/"+cmd.CorrelationID)
		s.writeCode(w, log, pinreset.CodeAccepted, pinreset.CodeAccepted.Message())
	case <-r.Context().Done():
		log.Info("client gone before the result", zap.Error(r.Context().Err()))
	}
}

// shed refuses a request with 503 000_503 and a Retry-After of retryAfter
// (whole seconds), before anything is published; reason labels the metric.
func (s *Server) shed(w http.ResponseWriter, log *zap.Logger, reason string, retryAfter time.Duration) {
	if s.metrics != nil {
		s.metrics.Shed.WithLabelValues(reason).Inc()
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	s.writeError(w, log, pinreset.Errorf(pinreset.CodeUnavailable, ""))
}

// newRequestID names one HTTP request: 16 hex digits from crypto/rand.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// sealResponses arranges for every response to this request to be a JWE to
// the ASP's registered client key. Until a request is authenticated its
// errors are answered in clear: its ASP is not known yet.
func (s *Server) sealResponses(w http.ResponseWriter, hd kmheader.Headers) error {
	if s.opts.JWE == nil || s.opts.ClientKeys == nil {
		return pinreset.Errorf(pinreset.CodeUnknownCryptoKey, "")
	}
	key, kid, ok := s.opts.ClientKeys(hd.ASPID)
	if !ok {
		return pinreset.Errorf(pinreset.CodeUnknownCryptoKey, "")
	}
	rec, ok := w.(*recorder)
	if !ok {
		return errors.New("response writer without the access log recorder")
	}
	rec.seal = func(plain []byte) ([]byte, error) { return jwe.Encrypt(plain, key, kid) }
	w.Header().Set("X-KM-Crypto-Key-Id", hd.CryptoKeyID)
	return nil
}

// admit authenticates a request and, when it is encrypted, arranges for its
// answers to be encrypted and returns the scheme of its token and its
// decrypted body (an empty body, as a GET's, stays empty). The MAC covers
// the bytes sent, the JWE; the rules after this apply to what it holds.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, log *zap.Logger, hd kmheader.Headers, body []byte, now time.Time) (pinreset.Scheme, []byte, error) {
	// The path as sent, percent-encoding kept: what the client signed.
	req := kmheader.Request{Method: r.Method, Path: r.URL.EscapedPath(), Headers: hd, Body: body}
	scheme, err := s.authenticate(log, req, now)
	if err != nil {
		return "", nil, err
	}
	if hd.CryptoKeyID == "" {
		return scheme, body, nil
	}
	if err := s.sealResponses(w, hd); err != nil {
		return "", nil, err
	}
	if len(body) == 0 {
		return scheme, body, nil
	}
	plain, err := s.opts.JWE.Decrypt(hd.CryptoKeyID, body)
	if err != nil {
		log.Info("undecryptable body", zap.Error(err))
		return "", nil, err
	}
	return scheme, plain, nil
}

// authenticate checks the ASP, its access key, the token's MAC over what
// its scheme signs (kmheader.SignedContent), that the ASP may use that
// scheme, and the freshness of both times; it returns the scheme. Any
// failure is the one 401 code; which part failed goes to the log only.
func (s *Server) authenticate(log *zap.Logger, req kmheader.Request, now time.Time) (pinreset.Scheme, error) {
	scheme, err := s.checkAuth(req, now)
	if err != nil {
		log.Info("authentication failed", zap.String("asp_id", req.Headers.ASPID), zap.String("reason", err.Error()))
		return "", pinreset.Errorf(pinreset.CodeUnauthorized, "")
	}
	if s.metrics != nil {
		s.metrics.Authenticated.WithLabelValues(req.Headers.ASPID, string(scheme)).Inc()
	}
	return scheme, nil
}

func (s *Server) checkAuth(req kmheader.Request, now time.Time) (pinreset.Scheme, error) {
	hd := req.Headers
	secrets, ok := s.auth.Authenticate(hd.ASPID, string(hd.AccessKey))
	tok, err := kmheader.ParseToken(hd.TranToken)
	if err != nil {
		return "", errors.New("token unparsable")
	}
	// The MAC is computed even for an unknown ASP or a wrong access key,
	// against a dummy secret, so that every failure costs the same.
	if !ok {
		secrets = [][]byte{make([]byte, 32)}
	}
	macOK := kmheader.Verify(tok, req, secrets...)
	switch {
	case !ok:
		return "", errors.New("unknown asp or wrong access key")
	case !macOK:
		return "", errors.New("bad mac")
	case !s.auth.Accepts(hd.ASPID, tok.Scheme):
		// During a migration the registry lists both; after it, a KMV1
		// token of a KMV2 ASP is refused, or its replays would be open.
		return "", fmt.Errorf("scheme %s not registered for the asp", tok.Scheme)
	}
	tranTime, tokenTime, err := hd.Times()
	if err != nil {
		return "", fmt.Errorf("times: %w", err)
	}
	// For KMV2 this is the replay rule: the times are signed, so a capture
	// resent outside the window is refused here, and inside it carries its
	// own correlation id, whose outcome is answered, never applied again.
	if err := kmheader.CheckFresh(tranTime, tokenTime, now, s.opts.TranWindow); err != nil {
		return "", errors.New("stale or future tran time")
	}
	return tok.Scheme, nil
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// isJOSE accepts the media type of a JWE compact serialization.
func isJOSE(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/jose" || mt == "text/plain")
}

// StatusOf maps an outcome code to its HTTP status: the one place that does.
func StatusOf(c pinreset.Code) int {
	switch c {
	case pinreset.CodeSuccess:
		return http.StatusOK
	case pinreset.CodeAccepted:
		return http.StatusAccepted
	case pinreset.CodeInvalidInput, pinreset.CodeMissing, pinreset.CodeLength,
		pinreset.CodeUserNotFound, pinreset.CodeInvalidUserInfo, pinreset.CodeSamePIN,
		pinreset.CodeWeakPIN, pinreset.CodeUnknownCryptoKey, pinreset.CodeUndecryptable,
		pinreset.CodeAttemptsExceeded:
		return http.StatusBadRequest
	case pinreset.CodeUnauthorized:
		return http.StatusUnauthorized
	case pinreset.CodeNotFound:
		return http.StatusNotFound
	case pinreset.CodeExpired:
		return http.StatusRequestTimeout
	case pinreset.CodeCorrelationReused, pinreset.CodeDuplicateRequest:
		return http.StatusConflict
	case pinreset.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case pinreset.CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case pinreset.CodeRejected:
		return http.StatusUnprocessableEntity
	case pinreset.CodeTooManyRequests:
		return http.StatusTooManyRequests
	case pinreset.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Body is the JSON body of every API response.
type Body struct {
	Code    pinreset.Code `json:"code"`
	Message string        `json:"message"`
}

// writeError answers err: an application error with its code and message,
// anything else as a generic 500 whose detail goes to the log only.
func (s *Server) writeError(w http.ResponseWriter, log *zap.Logger, err error) {
	code := pinreset.ErrorCode(err)
	if code == pinreset.CodeInternal {
		log.Error("internal error", zap.Error(err))
	}
	s.writeCode(w, log, code, pinreset.ErrorMessage(err))
}

func (s *Server) writeCode(w http.ResponseWriter, log *zap.Logger, code pinreset.Code, message string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	body, _ := json.Marshal(Body{Code: code, Message: message}) // cannot fail: two strings
	body = append(body, '\n')
	h.Set("Content-Type", "application/json")
	rec, _ := w.(*recorder)
	if rec != nil {
		rec.code = code
		if rec.seal != nil {
			sealed, err := rec.seal(body)
			if err != nil {
				// The client's registered key is unusable: say so in clear
				// rather than send the answer unencrypted.
				log.Error("encrypt response", zap.Error(err))
				h.Del("X-KM-Crypto-Key-Id")
				code = pinreset.CodeInternal
				body, _ = json.Marshal(Body{Code: code, Message: code.Message()})
			} else {
				body = sealed
				h.Set("Content-Type", "application/jose")
			}
		}
	}
	w.WriteHeader(StatusOf(code))
	if _, err := w.Write(body); err != nil {
		log.Debug("write response", zap.Error(err))
	}
}
