// Package loadgen is the load generator of pwctl load and make bench: it
// sends signed, realistic PIN reset and change requests to the API in a
// closed or an open model, and reports throughput, latency percentiles and
// the answers, as text, JSON or a plot. Seed creates the members it uses.
package loadgen

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"time"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// Options are the settings of one run. The zero value is not a run (it
// names neither a URL nor when to stop); start from DefaultOptions. Errors
// about a setting name it by pwctl load's flag, given here with each field.
type Options struct {
	// URL (-url) is the API URL of the POST requests; GET polls go to the
	// Location answered with 202. The default is
	// http://127.0.0.1:8080/api/v1/user/password/reset.
	URL string
	// Members (-members) is the loginId pattern of the seeded members,
	// with one %d for the index, 0 to MemberCount - 1. The default is
	// load%06d@sandbox.example.
	Members string
	// MemberCount (-member-count) is the number of seeded members; keep it
	// well above Concurrency (or the in-flight count of Rate). The default
	// is 1000.
	MemberCount int
	// InitialPIN (-initial-pin) is the PIN every member has at the start;
	// "" if unknown, so that each member's first request is a reset. The
	// default is 240810.
	InitialPIN string
	// Requests (-requests) stops the run after this many requests (open
	// model: arrivals, dropped ones included); 0 is no bound. Duration
	// (-duration) stops starting requests after this long; 0 is no bound.
	// At least one of them must be given; with both, whichever comes first.
	Requests int
	Duration time.Duration
	// Concurrency (-concurrency) is the closed model: this many workers
	// sending back to back. Rate (-rate) is the open model: this many
	// arrivals per second on a fixed schedule. They exclude each other;
	// with neither, Check sets Concurrency to 10.
	Concurrency int
	Rate        float64
	// MaxInflight (-max-inflight) bounds the requests in flight of the
	// open model; an arrival finding it full is dropped. The default is
	// 10000.
	MaxInflight int
	// Mix (-mix) is the share of resets, 0 to 1; the rest are changes. The
	// default is 0.5.
	Mix float64
	// FailShare (-fail-share) is the share of requests meant to fail, 0 to
	// 1: a wrong current PIN (001_035) or an unknown member (001_006). The
	// default is 0.1.
	FailShare float64
	// MaxWrong (-max-wrong) is the number of wrong-PIN changes per member
	// between two successes; keep it below the service's
	// PINRESET_LOCK_AFTER (5). The default is 3.
	MaxWrong int
	// Timeout (-timeout) gives up on one request, polls included, after
	// this long (counted as an error). The default is 3 minutes.
	Timeout time.Duration
	// PlotFile (-plot), if not "", is where Run writes a PNG of the
	// latency distribution and of the throughput over time (1 s buckets).
	PlotFile string
	// Progress, if not nil, gets a progress line, rewritten at most 4
	// times a second (pwctl load -progress: standard error).
	Progress io.Writer
}

// DefaultOptions are pwctl load's defaults; the caller still says when to
// stop (Requests or Duration).
func DefaultOptions() Options {
	return Options{
		URL:         "http://127.0.0.1:8080/api/v1/user/password/reset",
		Members:     "load%06d@sandbox.example",
		MemberCount: 1000,
		InitialPIN:  "240810",
		MaxInflight: 10000,
		Mix:         0.5,
		FailShare:   0.1,
		MaxWrong:    3,
		Timeout:     3 * time.Minute,
	}
}

// Check validates o once, with errors that name the flag, and fills in the
// one derived default: Concurrency 10 when neither it nor Rate is given.
func (o *Options) Check() error {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("-url %q is not an http(s) URL", o.URL)
	case o.Requests < 0 || o.Duration < 0:
		return errors.New("-requests and -duration must not be negative")
	case o.Requests == 0 && o.Duration == 0:
		return errors.New("give -requests N or -duration D (or both)")
	case o.Concurrency < 0 || o.Rate < 0 || math.IsInf(o.Rate, 0) || math.IsNaN(o.Rate):
		return errors.New("-concurrency and -rate must not be negative")
	case o.Concurrency > 0 && o.Rate > 0:
		return errors.New("-concurrency (closed model) and -rate (open model) exclude each other")
	case o.Rate > 0 && o.MaxInflight < 1:
		return errors.New("-max-inflight must be at least 1")
	case o.MemberCount < 1:
		return errors.New("-member-count must be at least 1")
	case !(o.Mix >= 0 && o.Mix <= 1):
		return errors.New("-mix must be between 0 and 1")
	case !(o.FailShare >= 0 && o.FailShare <= 1):
		return errors.New("-fail-share must be between 0 and 1")
	case o.MaxWrong < 0:
		return errors.New("-max-wrong must not be negative")
	case o.Timeout <= 0:
		return errors.New("-timeout must be positive")
	case o.InitialPIN != "" && !pinreset.IsPIN(o.InitialPIN):
		return errors.New(`-initial-pin must be 6 digits or ""`)
	}
	if o.Rate == 0 && o.Concurrency == 0 {
		o.Concurrency = 10
	}
	if err := CheckPattern(o.Members); err != nil {
		return fmt.Errorf("-members: %w", err)
	}
	return nil
}
