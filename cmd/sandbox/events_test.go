package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/segmentio/kafka-go"

	"github.com/kmwallet/pinreset/internal/events"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

// decodeEvent reads a password.events message back into a CloudEvent with
// the CloudEvents SDK, as a downstream consumer would, and validates it.
func decodeEvent(t *testing.T, m kafka.Message) (cloudevents.Event, events.Data) {
	t.Helper()
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	e := cloudevents.New(h["ce_specversion"])
	e.SetID(h["ce_id"])
	e.SetSource(h["ce_source"])
	e.SetType(h["ce_type"])
	e.SetSubject(h["ce_subject"])
	e.SetDataSchema(h["ce_dataschema"])
	e.SetExtension("memberversion", h["ce_memberversion"])
	if parts := strings.Split(h["ce_id"], ":"); len(parts) < 3 || parts[len(parts)-2] != h["ce_memberversion"] {
		t.Fatalf("event %s: ce_memberversion %q is not the version in its id", h["ce_id"], h["ce_memberversion"])
	}
	at, err := time.Parse(time.RFC3339Nano, h["ce_time"])
	if err != nil {
		t.Fatalf("ce_time %q: %v", h["ce_time"], err)
	}
	e.SetTime(at)
	if err := e.SetData(h["content-type"], m.Value); err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("event %s is not a valid CloudEvent: %v", h["ce_id"], err)
	}
	if h["ce_specversion"] != "1.0" || h["content-type"] != "application/json" || string(m.Key) != e.Subject() {
		t.Fatalf("event %s: specversion %q, content-type %q, key %q, subject %q", e.ID(), h["ce_specversion"], h["content-type"], m.Key, e.Subject())
	}
	var d events.Data
	if err := json.Unmarshal(m.Value, &d); err != nil {
		t.Fatal(err)
	}
	if !d.OccurredAt.Equal(at) {
		t.Fatalf("event %s: data occurredAt %v != ce_time %v", e.ID(), d.OccurredAt, at)
	}
	return e, d
}

// waitEvents reads password.events until it holds n messages (or 20 s pass).
func waitEvents(t *testing.T, e Env, n int) []kafka.Message {
	t.Helper()
	var msgs []kafka.Message
	waitfor.Every(100*time.Millisecond, 20*time.Second, func() bool {
		msgs = readAll(t, e.Brokers, kafkabus.TopicEvents)
		return len(msgs) >= n
	})
	return msgs
}

func TestEvents(t *testing.T) {
	e := startSandbox(t, map[string]string{"PINRESET_LOCK_FOR": "3s", "PINRESET_LOCK_AFTER": "2"})
	c := newClient(t, e)
	// A change, a reset, nothing for a refusal, a lock after two wrong
	// PINs, and an unlock recorded by the first command after the lock.
	steps := []struct {
		body, code string
	}{
		{`{"loginId":"success@sandbox.example","currentPassword":"246810","newPassword":"581379"}`, "000_000"},
		{`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`, "000_000"},
		{`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`, "001_409"},
		{`{"loginId":"samepin@sandbox.example","currentPassword":"111357","newPassword":"581379"}`, "001_035"},
		{`{"loginId":"samepin@sandbox.example","currentPassword":"222468","newPassword":"581379"}`, "001_035"},
		{`{"loginId":"samepin@sandbox.example","currentPassword":"135792","newPassword":"581379"}`, "001_069"},
	}
	for i, s := range steps {
		if r := c.post([]byte(s.body), "", nil); string(r.body.Code) != s.code {
			t.Fatalf("step %d: %+v, want %s", i, r.body, s.code)
		}
	}
	time.Sleep(3500 * time.Millisecond) // the lock (PINRESET_LOCK_FOR, 3 s) runs out: the unlock under test
	if r := c.post([]byte(`{"loginId":"samepin@sandbox.example","currentPassword":"135792","newPassword":"581379"}`), "", nil); r.body.Code != "000_000" {
		t.Fatalf("after the lock: %+v", r.body)
	}

	msgs := waitEvents(t, e, 5)
	type seen struct{ typ, member, kind string }
	var got []seen
	ids := map[string]bool{}
	for _, m := range msgs {
		ev, d := decodeEvent(t, m)
		if ids[ev.ID()] {
			t.Errorf("event id %s twice", ev.ID())
		}
		ids[ev.ID()] = true
		got = append(got, seen{ev.Type(), d.MemberID, string(d.Kind)})
		if ev.Type() == string(pinreset.EventLocked) && (d.LockedUntil == nil || !d.LockedUntil.After(d.OccurredAt)) {
			t.Errorf("locked event without a lockedUntil after its time: %+v", d)
		}
	}
	want := map[seen]int{
		{string(pinreset.EventPINSet), "sbx-member-success", "change"}: 1,
		{string(pinreset.EventPINSet), "sbx-member-success", "reset"}:  1,
		{string(pinreset.EventLocked), "sbx-member-samepin", ""}:       1,
		{string(pinreset.EventUnlocked), "sbx-member-samepin", ""}:     1,
		{string(pinreset.EventPINSet), "sbx-member-samepin", "change"}: 1,
	}
	count := map[seen]int{}
	for _, g := range got {
		count[g]++
	}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d events %+v, want %d (all: %+v)", count[k], k, n, got)
		}
	}
	if len(got) != 5 {
		t.Errorf("%d events, want 5: %+v", len(got), got)
	}
}
