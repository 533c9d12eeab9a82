package main

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/kmwallet/pinreset/internal/freeaddr"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// The end-to-end tests of issue 15: a reset is the way out of a lock, and
// no sequence of captured requests locks a member or burns the workers'
// cores. A "capture" is the exact body bytes of a request; client.post
// signs them again with a fresh correlation id and fresh times, which is
// what an attacker can do with a KMV1 capture.

// lockState reads the member's lock and count from MongoDB.
func lockState(t *testing.T, e Env, loginID string) (locked bool, failed int, remembered int) {
	t.Helper()
	var doc struct {
		FailedAttempts int       `bson:"failedAttempts"`
		LockedUntil    time.Time `bson:"lockedUntil"`
		WrongAttempts  []bson.M  `bson:"wrongAttempts"`
	}
	settledMember(t, e, loginID, &doc)
	return time.Now().Before(doc.LockedUntil), doc.FailedAttempts, len(doc.WrongAttempts)
}

// fiveWrong are five distinct wrong currentPasswords of success@sandbox.example
// (its PIN is 246810), none equal to a PIN the tests set.
var fiveWrong = []string{"130579", "350791", "570913", "790135", "913570"}

// TestResetIsTheWayOutOfALock: five wrong PINs lock the member; a change,
// even with the right PIN, answers 400 001_069; a reset succeeds, clears
// the lock and the count, and the member can change the PIN again.
func TestResetIsTheWayOutOfALock(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	for i, wrong := range fiveWrong {
		if r := c.post(changeBody(wrong, "581379"), "", nil); r.status != 400 || r.body.Code != "001_035" {
			t.Fatalf("wrong PIN #%d: %d %+v, want 400 001_035", i+1, r.status, r.body)
		}
	}
	if locked, _, _ := lockState(t, e, "success@sandbox.example"); !locked {
		t.Fatal("five distinct wrong PINs did not lock the member")
	}
	if r := c.post(changeBody("246810", "581379"), "", nil); r.status != 400 || r.body.Code != "001_069" ||
		r.body.Message != "PIN attempts exceeded. Reset the wallet PIN." {
		t.Fatalf("change with the right PIN while locked: %d %+v, want 400 001_069", r.status, r.body)
	}
	reset := []byte(`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`)
	if r := c.post(reset, "", nil); r.status != 200 || r.body.Code != "000_000" {
		t.Fatalf("reset while locked: %d %+v, want 200 000_000", r.status, r.body)
	}
	if locked, failed, _ := lockState(t, e, "success@sandbox.example"); locked || failed != 0 {
		t.Fatalf("after the reset: locked %v, %d failed attempts; want unlocked, 0", locked, failed)
	}
	if r := c.post(changeBody("703152", "925814"), "", nil); r.status != 200 || r.body.Code != "000_000" {
		t.Fatalf("change after the reset: %d %+v, want 200 000_000", r.status, r.body)
	}
}

// TestReplayedCapturesNeverLock is the five-capture loop: five distinct
// wrong captures lock the member once; a reset unlocks; replaying the same
// five (fresh correlation ids and times) is answered 001_035 and counts
// nothing, round after round, and the member's own change keeps working.
func TestReplayedCapturesNeverLock(t *testing.T) {
	e := startSandbox(t, map[string]string{"PINRESET_MEMBER_RATE": "off"}) // 30 commands for one member
	c := newClient(t, e)
	var captures [][]byte
	for _, wrong := range fiveWrong {
		captures = append(captures, changeBody(wrong, "581379"))
	}
	for i, capture := range captures {
		if r := c.post(capture, "", nil); r.body.Code != "001_035" {
			t.Fatalf("capture %d, first sent: %+v, want 001_035", i+1, r.body)
		}
	}
	if locked, _, _ := lockState(t, e, "success@sandbox.example"); !locked {
		t.Fatal("five distinct wrong PINs did not lock the member")
	}
	pin := "703152"
	reset := []byte(fmt.Sprintf(`{"loginId":"success@sandbox.example","newPassword":%q,"isResetPassword":true}`, pin))
	if r := c.post(reset, "", nil); r.body.Code != "000_000" {
		t.Fatalf("reset while locked: %+v, want 000_000", r.body)
	}
	for round, next := range []string{"925814", "418529", "852063"} {
		for i, capture := range captures {
			if r := c.post(capture, "", nil); r.status != 400 || r.body.Code != "001_035" {
				t.Fatalf("round %d, replay of capture %d: %d %+v, want 400 001_035", round+1, i+1, r.status, r.body)
			}
		}
		if locked, failed, remembered := lockState(t, e, "success@sandbox.example"); locked || failed != 0 || remembered != len(captures) {
			t.Fatalf("round %d after the replays: locked %v, %d failed attempts, %d remembered; want unlocked, 0, %d",
				round+1, locked, failed, remembered, len(captures))
		}
		if r := c.post(changeBody(pin, next), "", nil); r.body.Code != "000_000" {
			t.Fatalf("round %d: the member's own change %s -> %s: %+v, want 000_000 (the replays locked it)", round+1, pin, next, r.body)
		}
		pin = next
	}
}

var hashCount = regexp.MustCompile(`(?m)^pinreset_hash_duration_seconds_count ([0-9]+)$`)

// hashes reads how many argon2id computations the worker has made.
func hashes(t *testing.T, workerAdmin string) int {
	t.Helper()
	_, body := httpGet(t, "http://"+workerAdmin+"/metrics")
	m := hashCount.FindStringSubmatch(body)
	if m == nil {
		return 0 // no hash yet: the histogram has no sample
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// settledHashes waits until the hash count has not moved for 200 ms (a
// hash made ahead is observed when it ends, which can be just after the
// answer; the worker exports no count of hashes in progress to wait for).
func settledHashes(t *testing.T, workerAdmin string) int {
	t.Helper()
	n := -1
	if !waitfor.Every(200*time.Millisecond, 10*time.Second, func() bool {
		m := hashes(t, workerAdmin)
		settled := m == n
		n = m
		return settled
	}) {
		t.Fatal("the worker's hash count does not settle")
	}
	return n
}

// TestReplayStormCostsNoHashing: one captured wrong-PIN change sent 40 times
// more under fresh correlation ids is answered 001_035 each time without a
// single argon2 computation (the worker's pinreset_hash_duration_seconds
// count does not move); a new wrong PIN is still verified.
func TestReplayStormCostsNoHashing(t *testing.T) {
	workerAdmin := freeaddr.For(t)
	e := startSandbox(t, map[string]string{"PINRESET_MEMBER_RATE": "off"}, "-worker-admin-addr", workerAdmin)
	c := newClient(t, e)
	capture := changeBody("135791", "581379")
	if r := c.post(capture, "", nil); r.body.Code != "001_035" {
		t.Fatalf("the capture, first sent: %+v, want 001_035", r.body)
	}
	before := settledHashes(t, workerAdmin)
	if before < 1 {
		t.Fatalf("the first wrong PIN cost %d hashes; want it verified (at least 1): is the metric read right?", before)
	}
	for i := range 40 {
		if r := c.post(capture, "", nil); r.status != 400 || r.body.Code != "001_035" {
			t.Fatalf("replay %d: %d %+v, want 400 001_035", i+1, r.status, r.body)
		}
	}
	if after := settledHashes(t, workerAdmin); after != before {
		t.Fatalf("40 replays cost %d argon2 computations, want 0", after-before)
	}
	if r := c.post(changeBody("135792", "581379"), "", nil); r.body.Code != "001_035" {
		t.Fatalf("a new wrong PIN: %+v, want 001_035", r.body)
	}
	if after := settledHashes(t, workerAdmin); after <= before {
		t.Fatalf("a new wrong PIN cost no hash (%d -> %d): it must be verified", before, after)
	}
	if locked, failed, _ := lockState(t, e, "success@sandbox.example"); locked || failed != 2 {
		t.Errorf("locked %v, %d failed attempts; want unlocked and 2 (the capture once, the new PIN)", locked, failed)
	}
}

// TestBurstIsRefused: past a member's bucket, and past the ASP's, a command
// is refused with 429 000_429 and Retry-After before it is published; other
// members keep their own buckets.
func TestBurstIsRefused(t *testing.T) {
	// Buckets that refill slowly (a token per 20 and per 10 minutes), so
	// that none refills while the burst is sent, however slow the machine.
	e := startSandbox(t, map[string]string{"PINRESET_MEMBER_RATE": "3/1h", "PINRESET_ASP_RATE": "6/1h"})
	c := newClient(t, e)
	body := func(login string) []byte {
		return []byte(fmt.Sprintf(`{"loginId":%q,"currentPassword":"135791","newPassword":"581379"}`, login))
	}
	// charged sends a new command and returns its answer once it was
	// published (only a published command takes a token: a 503, a command
	// the ingress shed or could not publish on a loaded machine, costs
	// nothing and is sent again, as a client would).
	charged := func(login string) response {
		t.Helper()
		for range 10 {
			if r := c.post(body(login), "", nil); r.status != 503 {
				return r
			}
		}
		t.Fatalf("a command for %s answered 503 ten times", login)
		return response{}
	}
	for i := range 3 {
		if r := charged("success@sandbox.example"); r.status == 429 {
			t.Fatalf("command %d of the member's burst of 3 refused: %+v", i+1, r.body)
		}
	}
	r := c.post(body("success@sandbox.example"), "", nil)
	if r.status != 429 || r.body.Code != "000_429" || r.body.Message != "Too many requests. Try again later." {
		t.Fatalf("4th command for the member: %d %+v, want 429 000_429", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 1200 {
		t.Errorf("Retry-After %q, want 1 to 1200 seconds (a token of 3/1h)", r.header.Get("Retry-After"))
	}
	if locked, failed, _ := lockState(t, e, "success@sandbox.example"); locked || failed != 1 {
		t.Errorf("member: locked %v, %d failed attempts; want 1 (the same wrong PIN, counted once; the refused one never reached the worker)", locked, failed)
	}
	for i := range 3 {
		if r := charged("nobody@sandbox.example"); r.status == 429 {
			t.Fatalf("another member's command %d refused: %+v", i+1, r.body)
		}
	}
	// 6 commands of the ASP: its bucket is empty now.
	if r := c.post(body("samepin@sandbox.example"), "", nil); r.status != 429 || r.body.Code != "000_429" || r.header.Get("Retry-After") == "" {
		t.Fatalf("the ASP's 7th command: %d %+v (Retry-After %q), want 429 000_429 with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}
}
