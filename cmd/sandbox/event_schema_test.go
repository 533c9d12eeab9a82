package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/kmwallet/pinreset/internal/events"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// eventMessage is one message of the password.events channel of
// asyncapi.yaml, with its compiled header, key and payload schemas.
type eventMessage struct {
	name                string
	headers, key, value *jsonschema.Schema
}

// eventMessagesOf compiles every message of the channel whose address is
// topic (password.events documents one message per event type).
func eventMessagesOf(t *testing.T, c *jsonschema.Compiler, doc *contractDoc, topic string) []eventMessage {
	t.Helper()
	for name := range doc.object(t, "/channels") {
		chPtr := pointer("channels", name)
		if doc.object(t, chPtr)["address"] != topic {
			continue
		}
		var out []eventMessage
		for id := range doc.object(t, chPtr+"/messages") {
			msgPtr := doc.deref(t, pointer("channels", name, "messages", id))
			msg := doc.object(t, msgPtr)
			m := eventMessage{name: id}
			if _, ok := msg["headers"]; !ok {
				t.Fatalf("asyncapi %s message %s: no headers schema", topic, id)
			}
			m.headers = doc.schema(t, c, doc.deref(t, msgPtr+"/headers"))
			m.key = doc.schema(t, c, doc.deref(t, msgPtr+"/bindings/kafka/key"))
			ref, _ := doc.lookup(t, msgPtr+"/payload/schema/$ref").(string)
			if ref == "" {
				t.Fatalf("asyncapi %s message %s: payload schema has no $ref to a schema file", topic, id)
			}
			sch, err := c.Compile(filepath.Join(filepath.Dir(doc.path), ref))
			if err != nil {
				t.Fatalf("asyncapi %s message %s: payload %s: %v", topic, id, ref, err)
			}
			m.value = sch
			out = append(out, m)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
		return out
	}
	t.Fatalf("asyncapi.yaml has no channel with address %s", topic)
	return nil
}

// TestEventsMatchSchemas drives a sandbox through a change, a reset, a lock
// (two distinct wrong PINs) and, past the lock, a change (an unlock and a
// set), then another lock and a reset while locked (a set that unlocked),
// then validates every message on password.events against schemas/:
// the value against event-data.schema.json, the key and the headers against
// the password.events messages of asyncapi.yaml, and the rules the schemas
// state in words (kind only in password.changed, lockedUntil only in
// password.locked, key = ce_subject = memberId, ce_id = member:version:n).
func TestEventsMatchSchemas(t *testing.T) {
	c := newSchemaCompiler()
	dataDoc := loadContract(t, c, "event-data.schema.json")
	if id := dataDoc.lookup(t, "/$id"); id != events.DataSchema {
		t.Fatalf("event-data.schema.json $id %v, want events.DataSchema %s", id, events.DataSchema)
	}
	// A consumer registers the file under its $id and compiles the schema
	// an event names in ce_dataschema.
	consumer := newSchemaCompiler()
	if err := consumer.AddResource(events.DataSchema, dataDoc.root); err != nil {
		t.Fatal(err)
	}
	dataSchema, err := consumer.Compile(events.DataSchema)
	if err != nil {
		t.Fatalf("compile ce_dataschema %s: %v", events.DataSchema, err)
	}
	async := loadContract(t, c, "asyncapi.yaml")
	msgs := eventMessagesOf(t, c, async, kafkabus.TopicEvents)
	if len(msgs) == 0 {
		t.Fatal("asyncapi.yaml: password.events has no messages")
	}

	// The header schema names exactly the event types of the code.
	types := []string{string(pinreset.EventPINSet), string(pinreset.EventLocked), string(pinreset.EventUnlocked)}
	var enum []string
	for _, v := range async.lookup(t, "/components/schemas/eventHeaders/properties/ce_type/enum").([]any) {
		enum = append(enum, fmt.Sprint(v))
	}
	sort.Strings(enum)
	sortedTypes := slices.Clone(types)
	sort.Strings(sortedTypes)
	if !slices.Equal(enum, sortedTypes) {
		t.Errorf("asyncapi.yaml ce_type enum %v, want the event types of internal/pinreset %v", enum, sortedTypes)
	}
	if got := async.lookup(t, "/components/schemas/eventHeaders/properties/ce_source/const"); got != events.Source {
		t.Errorf("asyncapi.yaml ce_source %v, want events.Source %s", got, events.Source)
	}

	e := startSandbox(t, map[string]string{"PINRESET_LOCK_FOR": "2s", "PINRESET_LOCK_AFTER": "2"})
	cl := newClient(t, e)
	steps := []struct {
		body string
		code pinreset.Code
	}{
		{`{"loginId":"success@sandbox.example","currentPassword":"246810","newPassword":"581379"}`, pinreset.CodeSuccess},
		{`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`, pinreset.CodeSuccess},
		{`{"loginId":"samepin@sandbox.example","currentPassword":"111357","newPassword":"581379"}`, pinreset.CodeInvalidUserInfo},
		{`{"loginId":"samepin@sandbox.example","currentPassword":"222468","newPassword":"581379"}`, pinreset.CodeInvalidUserInfo},
	}
	for i, s := range steps {
		if r := cl.post([]byte(s.body), "", nil); r.body.Code != s.code {
			t.Fatalf("step %d: %+v, want %s", i, r.body, s.code)
		}
	}
	time.Sleep(2500 * time.Millisecond) // the lock (PINRESET_LOCK_FOR, 2 s) runs out: the unlock under test
	if r := cl.post([]byte(`{"loginId":"samepin@sandbox.example","currentPassword":"135792","newPassword":"581379"}`), "", nil); r.body.Code != pinreset.CodeSuccess {
		t.Fatalf("change after the lock: %+v", r.body)
	}
	for i, s := range []struct {
		body string
		code pinreset.Code
	}{
		{`{"loginId":"samepin@sandbox.example","currentPassword":"333579","newPassword":"703152"}`, pinreset.CodeInvalidUserInfo},
		{`{"loginId":"samepin@sandbox.example","currentPassword":"444680","newPassword":"703152"}`, pinreset.CodeInvalidUserInfo},
		{`{"loginId":"samepin@sandbox.example","newPassword":"703152","isResetPassword":true}`, pinreset.CodeSuccess}, // while locked
	} {
		if r := cl.post([]byte(s.body), "", nil); r.body.Code != s.code {
			t.Fatalf("second lock, step %d: %+v, want %s", i, r.body, s.code)
		}
	}

	const want = 7 // change, reset, lock, unlock, change, lock, reset that unlocked
	got := waitEvents(t, e, want)
	if len(got) != want {
		t.Errorf("%d events on %s, want %d", len(got), kafkabus.TopicEvents, want)
	}

	seenType := map[string]int{}
	matched := map[string]bool{}
	ids := map[string]bool{}
	lastVersion := map[string]int64{}
	lockEnd := map[string]string{} // member -> lockedUntil of its last lock
	for _, m := range got {
		hs, err := headerObject(m.Headers)
		if err != nil {
			t.Errorf("event %q: %v", m.Key, err)
			continue
		}
		id, typ := fmt.Sprint(hs["ce_id"]), fmt.Sprint(hs["ce_type"])

		// Headers, key and value against the one asyncapi message they match.
		var which []string
		var doc eventMessage
		for _, am := range msgs {
			if am.headers.Validate(hs) == nil {
				which = append(which, am.name)
				doc = am
			}
		}
		if len(which) != 1 {
			var why []string
			for _, am := range msgs {
				if err := am.headers.Validate(hs); err != nil {
					why = append(why, am.name+": "+explain(err))
				}
			}
			t.Errorf("event %s headers %v match %d messages of asyncapi.yaml %v, want exactly one:\n%s", id, hs, len(which), which, strings.Join(why, "\n"))
			continue
		}
		matched[doc.name] = true
		if err := doc.key.Validate(string(m.Key)); err != nil {
			t.Errorf("event %s key %q does not match asyncapi.yaml: %s", id, m.Key, explain(err))
		}
		v, err := parseJSON(m.Value)
		if err != nil {
			t.Errorf("event %s: data is not JSON: %v\n%s", id, err, m.Value)
			continue
		}
		if err := dataSchema.Validate(v); err != nil {
			t.Errorf("event %s data does not match event-data.schema.json: %s\n%s", id, explain(err), m.Value)
			continue
		}
		if err := doc.value.Validate(v); err != nil {
			t.Errorf("event %s data does not match the payload of asyncapi message %s: %s", id, doc.name, explain(err))
		}
		if hs["ce_dataschema"] != events.DataSchema {
			t.Errorf("event %s: ce_dataschema %v, want %s", id, hs["ce_dataschema"], events.DataSchema)
		}

		// What the schemas say in words.
		d := v.(map[string]any)
		member := string(m.Key)
		if hs["ce_subject"] != member || d["memberId"] != member {
			t.Errorf("event %s: key %q, ce_subject %v, data memberId %v: want all equal", id, member, hs["ce_subject"], d["memberId"])
		}
		_, hasKind := d["kind"]
		_, hasLock := d["lockedUntil"]
		if _, unlocked := d["unlocked"]; unlocked {
			if typ != string(pinreset.EventPINSet) || d["kind"] != string(pinreset.KindReset) || d["unlocked"] != true {
				t.Errorf("event %s of type %s, kind %v: unlocked %v; want it only, and true, in a reset's %s", id, typ, d["kind"], d["unlocked"], pinreset.EventPINSet)
			}
			if _, locked := lockEnd[member]; !locked {
				t.Errorf("event %s: a reset that unlocked %s, which was never locked", id, member)
			}
			seenType["unlocked by a reset"]++
		}
		if hasKind != (typ == string(pinreset.EventPINSet)) {
			t.Errorf("event %s of type %s: kind present %v; want it exactly in %s", id, typ, hasKind, pinreset.EventPINSet)
		}
		if hasLock != (typ == string(pinreset.EventLocked)) {
			t.Errorf("event %s of type %s: lockedUntil present %v; want it exactly in %s", id, typ, hasLock, pinreset.EventLocked)
		}
		at, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(hs["ce_time"]))
		occurred, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(d["occurredAt"]))
		if err1 != nil || err2 != nil || !at.Equal(occurred) {
			t.Errorf("event %s: ce_time %v and data occurredAt %v are not the same instant", id, hs["ce_time"], d["occurredAt"])
		}
		switch typ {
		case string(pinreset.EventLocked):
			until, err := time.Parse(time.RFC3339Nano, fmt.Sprint(d["lockedUntil"]))
			if err != nil || !until.After(occurred) {
				t.Errorf("event %s: lockedUntil %v is not after occurredAt %v", id, d["lockedUntil"], d["occurredAt"])
			}
			lockEnd[member] = fmt.Sprint(d["lockedUntil"])
		case string(pinreset.EventUnlocked):
			if end, ok := lockEnd[member]; !ok {
				t.Errorf("event %s: an unlock of %s before any lock of it", id, member)
			} else if until, _ := time.Parse(time.RFC3339Nano, end); !until.Truncate(time.Millisecond).Equal(at.Truncate(time.Millisecond)) {
				// The lock's end comes back from MongoDB in milliseconds.
				t.Errorf("event %s: unlock ce_time %v is not the lock's end %s", id, hs["ce_time"], end)
			}
		}

		// ce_id is <member id>:<version>:<n>, unique, versions in order per member.
		if ids[id] {
			t.Errorf("event id %s twice", id)
		}
		ids[id] = true
		rest, ok := strings.CutPrefix(id, member+":")
		parts := strings.Split(rest, ":")
		if !ok || len(parts) != 2 {
			t.Errorf("event id %q is not <member id>:<version>:<n> of member %s", id, member)
		} else if ver, err := strconv.ParseInt(parts[0], 10, 64); err != nil {
			t.Errorf("event id %q: version %q: %v", id, parts[0], err)
		} else {
			if ver < lastVersion[member] {
				t.Errorf("event %s: version %d after version %d of the same member", id, ver, lastVersion[member])
			}
			lastVersion[member] = ver
		}

		if seenType[typ] == 0 {
			mustRejectRenames(t, dataSchema, "event data ("+typ+")", m.Value)
		}
		seenType[typ]++
	}
	t.Logf("checked %d events: %v", len(got), seenType)
	for _, typ := range append(types, "unlocked by a reset") {
		if seenType[typ] == 0 {
			t.Errorf("no event of type %s was checked", typ)
		}
	}
	for _, am := range msgs {
		if !matched[am.name] {
			t.Errorf("asyncapi.yaml message %s of %s matched no produced event", am.name, kafkabus.TopicEvents)
		}
	}
}
