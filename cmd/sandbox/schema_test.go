package main

// The tests here hold the service to the contract documents in schemas/:
// what the running service writes to Kafka validates against the JSON
// Schemas and the AsyncAPI key and header schemas, the OpenAPI request
// examples get the codes they document from a real sandbox, and the code
// catalogue of internal/pinreset is the one README.md and openapi.yaml show.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"github.com/kmwallet/pinreset/internal/ingress"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

const schemasDir = "../../schemas"

// contractDoc is a YAML or JSON contract document loaded as JSON values
// (map[string]any, []any, string, json.Number, bool, nil), registered with a
// schema compiler under its file path so that JSON pointers into it compile.
type contractDoc struct {
	path string // absolute file path, also its resource location
	root any
}

// newSchemaCompiler returns a 2020-12 compiler that asserts formats
// (date-time, email, ...) and content encodings (base64), not just
// annotates them.
func newSchemaCompiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	return c
}

// loadContract reads a YAML document (JSON is YAML too) and adds it to c.
func loadContract(t *testing.T, c *jsonschema.Compiler, name string) *contractDoc {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(schemasDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var y any
	if err := yaml.Unmarshal(readFile(t, path), &y); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	j, err := jsonValue(y)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	raw, err := json.Marshal(j)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	root, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := c.AddResource(path, root); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &contractDoc{path: path, root: root}
}

// jsonValue checks that a decoded YAML value is plain JSON: string keys only
// (quote status codes), no timestamps or other YAML-only types.
func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			x, err := jsonValue(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = x
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			x, err := jsonValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = x
		}
		return out, nil
	case string, bool, int, int64, uint64, float64, nil:
		return v, nil
	default:
		return nil, fmt.Errorf("value %v of YAML type %T is not JSON (quote it)", v, v)
	}
}

// escapePointer escapes one JSON pointer token.
func escapePointer(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// pointer joins tokens into a JSON pointer ("/a/b~1c").
func pointer(toks ...string) string {
	var b strings.Builder
	for _, tok := range toks {
		b.WriteString("/" + escapePointer(tok))
	}
	return b.String()
}

// lookup follows a JSON pointer from the document root.
func (d *contractDoc) lookup(t *testing.T, ptr string) any {
	t.Helper()
	v := d.root
	if ptr == "" {
		return v
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[tok]; !ok {
				t.Fatalf("%s: %s: no %q", filepath.Base(d.path), ptr, tok)
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				t.Fatalf("%s: %s: no item %q", filepath.Base(d.path), ptr, tok)
			}
			v = c[i]
		default:
			t.Fatalf("%s: %s: %q is not in an object or array", filepath.Base(d.path), ptr, tok)
		}
	}
	return v
}

// deref returns the pointer of the object at ptr, following a local $ref
// ("#/components/...") if the object is a Reference Object.
func (d *contractDoc) deref(t *testing.T, ptr string) string {
	t.Helper()
	for range 10 {
		m, ok := d.lookup(t, ptr).(map[string]any)
		if !ok {
			return ptr
		}
		ref, ok := m["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#/") {
			return ptr
		}
		ptr = strings.TrimPrefix(ref, "#")
	}
	t.Fatalf("%s: %s: $ref loop", filepath.Base(d.path), ptr)
	return ""
}

func (d *contractDoc) object(t *testing.T, ptr string) map[string]any {
	t.Helper()
	m, ok := d.lookup(t, d.deref(t, ptr)).(map[string]any)
	if !ok {
		t.Fatalf("%s: %s is not an object", filepath.Base(d.path), ptr)
	}
	return m
}

// schema compiles the schema at ptr of the document.
func (d *contractDoc) schema(t *testing.T, c *jsonschema.Compiler, ptr string) *jsonschema.Schema {
	t.Helper()
	sch, err := c.Compile(d.path + "#" + ptr)
	if err != nil {
		t.Fatalf("compile %s#%s: %v", filepath.Base(d.path), ptr, err)
	}
	return sch
}

// parseJSON decodes b the way the validator expects (numbers as json.Number).
func parseJSON(b []byte) (any, error) { return jsonschema.UnmarshalJSON(bytes.NewReader(b)) }

// explain renders a validation error with every failing keyword and where.
func explain(err error) string {
	if ve, ok := err.(*jsonschema.ValidationError); ok {
		return fmt.Sprintf("%#v", ve)
	}
	return err.Error()
}

// headerObject turns Kafka headers into the object the AsyncAPI header
// schemas describe: name -> UTF-8 value. A name given twice is an error.
func headerObject(hs []kafka.Header) (map[string]any, error) {
	out := map[string]any{}
	for _, h := range hs {
		if _, dup := out[h.Key]; dup {
			return nil, fmt.Errorf("header %q given twice", h.Key)
		}
		if !utf8.Valid(h.Value) {
			return nil, fmt.Errorf("header %q is not UTF-8", h.Key)
		}
		out[h.Key] = string(h.Value)
	}
	return out, nil
}

// mustRejectRenames checks the schema is strict enough to catch a field
// renamed in Go: value with any one field renamed (at the top level or in
// a nested object) must not validate.
func mustRejectRenames(t *testing.T, sch *jsonschema.Schema, what string, value []byte) {
	t.Helper()
	var paths [][]string
	var walk func(prefix []string, v any)
	walk = func(prefix []string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, e := range m {
			p := append(slices.Clone(prefix), k)
			paths = append(paths, p)
			walk(p, e)
		}
	}
	v, err := parseJSON(value)
	if err != nil {
		t.Fatal(err)
	}
	walk(nil, v)
	for _, p := range paths {
		mutated, _ := parseJSON(value)
		m := mutated.(map[string]any)
		for _, k := range p[:len(p)-1] {
			m = m[k].(map[string]any)
		}
		last := p[len(p)-1]
		m[last+"Renamed"] = m[last]
		delete(m, last)
		if sch.Validate(mutated) == nil {
			t.Errorf("%s schema accepts the field %s renamed: it would not catch a rename in Go", what, strings.Join(p, "."))
		}
	}
}

// asyncMessage is one message of asyncapi.yaml with the schemas the tests
// check: its value (from the payload's $ref to a JSON Schema file, nil for
// the DLQ's opaque bytes), its key and its headers.
type asyncMessage struct {
	value, key, headers *jsonschema.Schema
}

// asyncMessageOf compiles the schemas of the one message of the channel
// whose address is topic.
func asyncMessageOf(t *testing.T, c *jsonschema.Compiler, doc *contractDoc, topic string) asyncMessage {
	t.Helper()
	channels := doc.object(t, "/channels")
	for name := range channels {
		chPtr := pointer("channels", name)
		if doc.object(t, chPtr)["address"] != topic {
			continue
		}
		msgs := doc.object(t, chPtr+"/messages")
		if len(msgs) != 1 {
			t.Fatalf("asyncapi channel %s: %d messages, want 1", topic, len(msgs))
		}
		var m asyncMessage
		for id := range msgs {
			msgPtr := doc.deref(t, pointer("channels", name, "messages", id))
			msg := doc.object(t, msgPtr)
			if payload, ok := msg["payload"].(map[string]any); ok {
				if inner, ok := payload["schema"].(map[string]any); ok {
					ref, _ := inner["$ref"].(string)
					if ref == "" {
						t.Fatalf("asyncapi %s: payload schema has no $ref to a schema file", topic)
					}
					file := filepath.Join(filepath.Dir(doc.path), ref)
					sch, err := c.Compile(file)
					if err != nil {
						t.Fatalf("asyncapi %s: payload %s: %v", topic, ref, err)
					}
					m.value = sch
				}
			}
			if _, ok := msg["headers"]; ok {
				m.headers = doc.schema(t, c, doc.deref(t, msgPtr+"/headers"))
			}
			m.key = doc.schema(t, c, doc.deref(t, msgPtr+"/bindings/kafka/key"))
		}
		return m
	}
	t.Fatalf("asyncapi.yaml has no channel with address %s", topic)
	return asyncMessage{}
}

// TestProducedMessagesMatchSchemas drives a sandbox through the seed cases,
// a reset, a repeat, a reuse (409), a replay (001_409), status queries and a
// poison command, then validates every message the service wrote to
// password.commands, password.results and password.commands.dlq against
// schemas/: values against command.schema.json and result.schema.json (the
// DLQ's value is the original bytes, so its headers are checked instead),
// keys and headers against asyncapi.yaml.
func TestProducedMessagesMatchSchemas(t *testing.T) {
	c := newSchemaCompiler()
	async := loadContract(t, c, "asyncapi.yaml")
	commandMsg := asyncMessageOf(t, c, async, kafkabus.TopicCommands)
	resultMsg := asyncMessageOf(t, c, async, kafkabus.TopicResults)
	dlqMsg := asyncMessageOf(t, c, async, kafkabus.TopicCommandsDLQ)
	if commandMsg.value == nil || resultMsg.value == nil || commandMsg.headers == nil || dlqMsg.headers == nil {
		t.Fatal("asyncapi.yaml: commands and results need a payload schema file, commands and the DLQ a header schema")
	}

	// The sandbox ASP migrating to KMV2, so that commands of both schemes are checked.
	e := startSandbox(t, map[string]string{"PINRESET_ASP_FILE": sandboxRegistryWith(t, pinreset.SchemeKMV1, pinreset.SchemeKMV2)})
	cl := newClient(t, e)
	expect := func(what string, r response, code pinreset.Code) {
		t.Helper()
		if r.body.Code != code || r.status != ingress.StatusOf(code) {
			t.Fatalf("%s: got %d %+v, want %d %s", what, r.status, r.body, ingress.StatusOf(code), code)
		}
	}
	onKafka := map[string]bool{} // correlation ids that must have a command on Kafka
	kmv2 := *cl
	kmv2.creds.Scheme = pinreset.SchemeKMV2
	kmv2CID := kmheader.NewCorrelationID(time.Now(), nil)
	expect("a KMV2 reset", kmv2.post([]byte(`{"loginId":"mismatch@sandbox.example","newPassword":"703152","isResetPassword":true}`), kmv2CID, nil), pinreset.CodeSuccess)
	onKafka[kmv2CID] = true

	for _, tc := range []struct {
		file string
		code pinreset.Code
	}{
		{"success.json", pinreset.CodeSuccess},
		{"user-not-found.json", pinreset.CodeUserNotFound},
		{"same-pin.json", pinreset.CodeSamePIN},
		{"info-mismatch.json", pinreset.CodeInvalidUserInfo},
	} {
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		expect(tc.file, cl.post(readFile(t, filepath.Join(e.SandboxDir, "requests", tc.file)), cid, nil), tc.code)
		onKafka[cid] = true
	}

	reset := []byte(`{"loginId":"samepin@sandbox.example","newPassword":"703152","isResetPassword":true}`)
	resetCID := kmheader.NewCorrelationID(time.Now(), nil)
	expect("reset", cl.post(reset, resetCID, nil), pinreset.CodeSuccess)
	expect("repeat of the reset", cl.post(reset, resetCID, nil), pinreset.CodeSuccess)
	expect("reuse of the id with another body", cl.post([]byte(`{"loginId":"samepin@sandbox.example","newPassword":"581379","isResetPassword":true}`), resetCID, nil), pinreset.CodeCorrelationReused)
	replayCID := kmheader.NewCorrelationID(time.Now(), nil)
	expect("replay of the reset under a new id", cl.post(reset, replayCID, nil), pinreset.CodeDuplicateRequest)
	onKafka[resetCID], onKafka[replayCID] = true, true

	// A GET of a transaction this ingress saw is answered from its memory; a
	// GET of an unknown one goes to the worker as a status query.
	expect("status of the reset", cl.get(resetCID), pinreset.CodeSuccess)
	unknownCID := kmheader.NewCorrelationID(time.Now(), nil)
	expect("status of an unknown id", cl.get(unknownCID), pinreset.CodeNotFound)
	onKafka[unknownCID] = true

	// One poison command, written as a foreign producer would.
	const poisonKey = "261125120000-bad0001"
	poisonValue := []byte(`{"v":1,"correlationId":"261125120000-bad0001","not":"a command"}`)
	w := &kafka.Writer{Addr: kafka.TCP(e.Brokers...), Topic: kafkabus.TopicCommands, Balancer: &kafka.Hash{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(poisonKey), Value: poisonValue,
		Headers: []kafka.Header{{Key: "x-request-id", Value: []byte("poison-request-1")}}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}

	// Wait for the dead letter and its 000_422 result.
	var results, dlq []kafka.Message
	var answered bool
	if !waitfor.Every(100*time.Millisecond, 30*time.Second, func() bool {
		dlq = readAll(t, e.Brokers, kafkabus.TopicCommandsDLQ)
		results = readAll(t, e.Brokers, kafkabus.TopicResults)
		answered = slices.ContainsFunc(results, func(m kafka.Message) bool { return string(m.Key) == poisonKey })
		return len(dlq) > 0 && answered
	}) {
		t.Fatalf("poison command: %d DLQ messages, answered on password.results: %v", len(dlq), answered)
	}
	commands := readAll(t, e.Brokers, kafkabus.TopicCommands)

	t.Run(kafkabus.TopicCommands, func(t *testing.T) {
		kinds := map[string]bool{}
		seen := map[string]bool{}
		poison := 0
		for _, m := range commands {
			if string(m.Key) == poisonKey {
				poison++ // ours, deliberately not a command
				continue
			}
			seen[string(m.Key)] = true
			v, err := parseJSON(m.Value)
			if err != nil {
				t.Errorf("command %q: not JSON: %v\n%s", m.Key, err, m.Value)
				continue
			}
			if err := commandMsg.value.Validate(v); err != nil {
				t.Errorf("command %q does not match command.schema.json: %s\n%s", m.Key, explain(err), m.Value)
				continue
			}
			if err := commandMsg.key.Validate(string(m.Key)); err != nil {
				t.Errorf("command key %q does not match asyncapi.yaml: %s", m.Key, explain(err))
			}
			obj := v.(map[string]any)
			if obj["correlationId"] != string(m.Key) {
				t.Errorf("command key %q is not its correlationId %v", m.Key, obj["correlationId"])
			}
			hs, err := headerObject(m.Headers)
			if err == nil {
				err = commandMsg.headers.Validate(hs)
			}
			if err != nil {
				t.Errorf("command %q headers %v do not match asyncapi.yaml: %s", m.Key, hs, explain(err))
			} else if hs["x-request-id"] != obj["requestId"] {
				t.Errorf("command %q: header x-request-id %v is not its requestId %v", m.Key, hs["x-request-id"], obj["requestId"])
			}
			if auth, ok := obj["auth"]; ok != (string(m.Key) == kmv2CID) || (ok && auth != "KMV2") {
				t.Errorf("command %q has auth %v: want KMV2 on the KMV2 command only", m.Key, auth)
			}
			kind := obj["kind"].(string)
			if !kinds[kind] {
				mustRejectRenames(t, commandMsg.value, "command ("+kind+")", m.Value)
			}
			kinds[kind] = true
		}
		t.Logf("checked %d commands of kinds %v", len(commands)-poison, kinds)
		if poison != 1 {
			t.Errorf("found the poison command %d times on %s, want 1", poison, kafkabus.TopicCommands)
		}
		for cid := range onKafka {
			if !seen[cid] {
				t.Errorf("no command keyed %s on %s", cid, kafkabus.TopicCommands)
			}
		}
		for _, k := range []string{"reset", "change", "status"} {
			if !kinds[k] {
				t.Errorf("no command of kind %s was checked", k)
			}
		}
	})

	t.Run(kafkabus.TopicResults, func(t *testing.T) {
		codes := map[string]bool{}
		for _, m := range results {
			v, err := parseJSON(m.Value)
			if err != nil {
				t.Errorf("result %q: not JSON: %v\n%s", m.Key, err, m.Value)
				continue
			}
			if err := resultMsg.value.Validate(v); err != nil {
				t.Errorf("result %q does not match result.schema.json: %s\n%s", m.Key, explain(err), m.Value)
				continue
			}
			if err := resultMsg.key.Validate(string(m.Key)); err != nil {
				t.Errorf("result key %q does not match asyncapi.yaml: %s", m.Key, explain(err))
			}
			obj := v.(map[string]any)
			if obj["correlationId"] != string(m.Key) {
				t.Errorf("result key %q is not its correlationId %v", m.Key, obj["correlationId"])
			}
			if resultMsg.headers != nil {
				hs, err := headerObject(m.Headers)
				if err == nil {
					err = resultMsg.headers.Validate(hs)
				}
				if err != nil {
					t.Errorf("result %q headers %v do not match asyncapi.yaml: %s", m.Key, hs, explain(err))
				}
			}
			code := obj["code"].(string)
			if !codes[code] {
				mustRejectRenames(t, resultMsg.value, "result ("+code+")", m.Value)
			}
			codes[code] = true
		}
		t.Logf("checked %d results with codes %v", len(results), codes)
		for _, want := range []pinreset.Code{pinreset.CodeSuccess, pinreset.CodeUserNotFound, pinreset.CodeSamePIN,
			pinreset.CodeInvalidUserInfo, pinreset.CodeCorrelationReused, pinreset.CodeDuplicateRequest,
			pinreset.CodeNotFound, pinreset.CodeRejected} {
			if !codes[string(want)] {
				t.Errorf("no result with code %s was checked", want)
			}
		}
	})

	t.Run(kafkabus.TopicCommandsDLQ, func(t *testing.T) {
		if len(dlq) != 1 {
			t.Fatalf("%d messages on %s, want the one poison command", len(dlq), kafkabus.TopicCommandsDLQ)
		}
		m := dlq[0]
		if string(m.Key) != poisonKey || !bytes.Equal(m.Value, poisonValue) {
			t.Errorf("DLQ message %q %q is not the original %q %q", m.Key, m.Value, poisonKey, poisonValue)
		}
		hs, err := headerObject(m.Headers)
		if err == nil {
			err = dlqMsg.headers.Validate(hs)
		}
		if err != nil {
			t.Errorf("DLQ headers %v do not match asyncapi.yaml: %s", hs, explain(err))
		}
		if hs["x-request-id"] != "poison-request-1" {
			t.Errorf("DLQ headers %v lost the original x-request-id", hs)
		}
	})
}

// openAPIExample is one request example of the POST.
type openAPIExample struct {
	name        string
	value       any
	code        pinreset.Code
	sandboxFile string
}

const resetPathPtr = "/paths/~1api~1v1~1user~1password~1reset"

// TestOpenAPIExamplesAgainstTheHandler sends every request example of the
// POST in openapi.yaml that has x-expected-code to a real sandbox and checks
// the answer: that code, its status, and a body that matches the response
// schema of that status. The four sandbox examples must be the bodies of
// deployments/sandbox/requests/*.json, each example must (or, for input
// errors, must not) match the request body schema, and the headers a
// correctly signing client sends must match the header parameters and the
// security schemes.
func TestOpenAPIExamplesAgainstTheHandler(t *testing.T) {
	c := newSchemaCompiler()
	doc := loadContract(t, c, "openapi.yaml")
	post := resetPathPtr + "/post"
	mediaPtr := post + "/requestBody/content/application~1json"
	bodySchema := doc.schema(t, c, mediaPtr+"/schema")

	var examples []openAPIExample
	for name := range doc.object(t, mediaPtr+"/examples") {
		ex := doc.object(t, mediaPtr+"/examples/"+escapePointer(name))
		if _, ok := ex["x-expected-code"]; !ok {
			continue
		}
		code, _ := ex["x-expected-code"].(string)
		if !pinreset.Code(code).Known() {
			t.Fatalf("example %s: x-expected-code %v is not a catalogue code (quote it in YAML)", name, ex["x-expected-code"])
		}
		file, _ := ex["x-sandbox-file"].(string)
		examples = append(examples, openAPIExample{name: name, value: ex["value"], code: pinreset.Code(code), sandboxFile: file})
	}
	// Examples that set a PIN go last, so that the others meet the seed state.
	sort.SliceStable(examples, func(i, j int) bool {
		si, sj := examples[i].code == pinreset.CodeSuccess, examples[j].code == pinreset.CodeSuccess
		if si != sj {
			return sj
		}
		return examples[i].name < examples[j].name
	})

	// Static checks first: the examples against the files and the schema.
	sandboxFiles := map[string]bool{}
	var resetExample bool
	for _, ex := range examples {
		body, err := json.Marshal(ex.value)
		if err != nil {
			t.Fatalf("example %s: %v", ex.name, err)
		}
		if ex.sandboxFile != "" {
			sandboxFiles[ex.sandboxFile] = true
			var want, got any
			if err := json.Unmarshal(readFile(t, filepath.Join("../..", ex.sandboxFile)), &want); err != nil {
				t.Fatalf("%s: %v", ex.sandboxFile, err)
			}
			_ = json.Unmarshal(body, &got)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("example %s is not the body of %s:\n got %s", ex.name, ex.sandboxFile, body)
			}
		}
		if m, _ := ex.value.(map[string]any); m["isResetPassword"] == true && ex.code == pinreset.CodeSuccess {
			resetExample = true
		}
		inputError := ex.code == pinreset.CodeInvalidInput || ex.code == pinreset.CodeMissing || ex.code == pinreset.CodeLength
		if err := bodySchema.Validate(ex.value); inputError && err == nil {
			t.Errorf("example %s answers the input error %s, but matches the request body schema: the schema is looser than the service", ex.name, ex.code)
		} else if !inputError && err != nil {
			t.Errorf("example %s does not match the request body schema: %s", ex.name, explain(err))
		}
	}
	files, _ := filepath.Glob("../../deployments/sandbox/requests/*.json")
	for _, f := range files {
		rel := "deployments/sandbox/requests/" + filepath.Base(f)
		if !sandboxFiles[rel] {
			t.Errorf("no POST example with x-sandbox-file %s", rel)
		}
	}
	if len(files) < 4 || !resetExample {
		t.Errorf("want an example for each of the %d sandbox request files and a reset example", len(files))
	}

	e := startSandbox(t, nil)
	cl := newClient(t, e)

	t.Run("request headers", func(t *testing.T) {
		req := cl.postRequest([]byte(`{}`), kmheader.NewCorrelationID(time.Now(), nil), func(h http.Header) {
			h.Set(kmheader.HeaderCryptoKeyID, strings.Repeat("k", 32)) // optional; checked when given
		})
		params, ok := doc.lookup(t, post+"/parameters").([]any)
		if !ok {
			t.Fatal("POST has no parameters")
		}
		for i := range params {
			p := doc.object(t, fmt.Sprintf("%s/parameters/%d", post, i))
			if p["in"] != "header" {
				continue
			}
			name := p["name"].(string)
			sch := doc.schema(t, c, doc.deref(t, fmt.Sprintf("%s/parameters/%d", post, i))+"/schema")
			v := req.Header.Get(name)
			if v == "" {
				if p["required"] == true {
					t.Errorf("a signed request has no %s, documented as required", name)
				}
				continue
			}
			if err := sch.Validate(v); err != nil {
				t.Errorf("%s %q from kmheader.SignedHeaders does not match openapi.yaml: %s", name, v, explain(err))
			}
			if ex, ok := p["example"]; ok {
				if err := sch.Validate(ex); err != nil {
					t.Errorf("the example of %s does not match its own schema: %s", name, explain(err))
				}
			}
		}
		// The credentials are security schemes (API keys in headers), each
		// with its header's rule in x-header-schema; the POST requires them.
		reqs, ok := doc.lookup(t, post+"/security").([]any)
		if !ok || len(reqs) != 1 {
			t.Fatalf("POST security: want one requirement naming every credential, got %v", doc.lookup(t, post+"/security"))
		}
		for scheme := range doc.object(t, post+"/security/0") {
			ptr := pointer("components", "securitySchemes", scheme)
			s := doc.object(t, ptr)
			name, _ := s["name"].(string)
			if s["type"] != "apiKey" || s["in"] != "header" || name == "" {
				t.Errorf("security scheme %s: want an apiKey in a header, got %v", scheme, s)
				continue
			}
			sch := doc.schema(t, c, ptr+"/x-header-schema")
			v := req.Header.Get(name)
			if v == "" {
				t.Errorf("a signed request has no %s, required by the security scheme %s", name, scheme)
			} else if err := sch.Validate(v); err != nil {
				t.Errorf("%s %q from kmheader.SignedHeaders does not match openapi.yaml: %s", name, v, explain(err))
			}
			examples, _ := doc.object(t, ptr+"/x-header-schema")["examples"].([]any)
			for _, ex := range examples {
				if err := sch.Validate(ex); err != nil {
					t.Errorf("the example of %s does not match its own schema: %s", name, explain(err))
				}
			}
		}
	})

	t.Run("operations endpoints", func(t *testing.T) {
		for _, tc := range []struct{ path, media string }{
			{"/healthz", "text/plain"},
			{"/readyz", "text/plain"},
			{"/.well-known/jwks.json", "application/jwk-set+json"},
		} {
			res, err := httpClient.Get("http://" + e.HTTPAddr + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, tc.media) {
				t.Errorf("GET %s: Content-Type %q, openapi.yaml documents %s", tc.path, got, tc.media)
			}
			resPtr := pointer("paths", tc.path, "get", "responses", fmt.Sprint(res.StatusCode))
			if _, ok := doc.object(t, pointer("paths", tc.path, "get", "responses"))[fmt.Sprint(res.StatusCode)]; !ok {
				t.Errorf("GET %s: status %d is not documented", tc.path, res.StatusCode)
				continue
			}
			sch := doc.schema(t, c, doc.deref(t, resPtr)+pointer("content", tc.media, "schema"))
			var v any = string(raw)
			if tc.media != "text/plain" {
				if v, err = parseJSON(raw); err != nil {
					t.Errorf("GET %s: %v: %s", tc.path, err, raw)
					continue
				}
			}
			if err := sch.Validate(v); err != nil {
				t.Errorf("GET %s answered %d %q, which does not match openapi.yaml: %s", tc.path, res.StatusCode, raw, explain(err))
			}
		}
	})

	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			body, _ := json.Marshal(ex.value)
			cid := kmheader.NewCorrelationID(time.Now(), nil)
			r := cl.post(body, cid, nil)
			want := ingress.StatusOf(ex.code)
			if r.status != want || r.body.Code != ex.code {
				t.Fatalf("example %s: got %d %+v, openapi.yaml documents %d %s", ex.name, r.status, r.body, want, ex.code)
			}
			if got := r.header.Get(kmheader.HeaderCorrelationID); got != cid {
				t.Errorf("X-KM-Correlation-Id echoed as %q, want %q", got, cid)
			}
			resPtr := fmt.Sprintf("%s/responses/%d", post, r.status)
			responses := doc.object(t, post+"/responses")
			if _, ok := responses[fmt.Sprint(r.status)]; !ok {
				t.Fatalf("status %d is not documented for the POST", r.status)
			}
			sch := doc.schema(t, c, doc.deref(t, resPtr)+"/content/application~1json/schema")
			raw, _ := json.Marshal(r.body)
			v, _ := parseJSON(raw)
			if err := sch.Validate(v); err != nil {
				t.Errorf("answer %s does not match the %d response of openapi.yaml: %s", raw, r.status, explain(err))
			}
		})
	}
}

// catalogueRow matches a row of the code catalogue table: "| 400 | 001_006 | ...".
var catalogueRow = regexp.MustCompile(`^\s*\| ([0-9]{3}) \| ([0-9]{3}_[0-9]{3}) \|`)

// anyCode matches anything spelled like a code.
var anyCode = regexp.MustCompile(`\b[0-9]{3}_[0-9]{3}\b`)

// TestCodeCatalogueIsDocumented: every code of pinreset.Codes() is in the
// catalogue tables of README.md and openapi.yaml with its HTTP status
// (ingress.StatusOf) and its message; the two tables have the same rows;
// those documents, asyncapi.yaml and result.schema.json name no code outside
// the catalogue; result.schema.json pairs each code with its message; and
// every response of openapi.yaml lists only codes of its own status.
func TestCodeCatalogueIsDocumented(t *testing.T) {
	catalogue := map[string]pinreset.Code{}
	for _, code := range pinreset.Codes() {
		catalogue[string(code)] = code
	}
	docs := map[string]string{
		"README.md":                   "../../README.md",
		"schemas/openapi.yaml":        filepath.Join(schemasDir, "openapi.yaml"),
		"schemas/asyncapi.yaml":       filepath.Join(schemasDir, "asyncapi.yaml"),
		"schemas/result.schema.json":  filepath.Join(schemasDir, "result.schema.json"),
		"schemas/command.schema.json": filepath.Join(schemasDir, "command.schema.json"),
	}
	tables := map[string][]string{}
	for name, path := range docs {
		text := string(readFile(t, path))
		for _, c := range anyCode.FindAllString(text, -1) {
			if _, ok := catalogue[c]; ok {
				continue
			}
			// README.md may name a retired code, to say what replaced it.
			if _, retired := pinreset.RetiredCodes()[pinreset.Code(c)]; retired && name == "README.md" {
				continue
			}
			t.Errorf("%s names %s, which is not a code of pinreset.Codes()", name, c)
		}
		if name != "README.md" && name != "schemas/openapi.yaml" {
			continue
		}
		lines := strings.Split(text, "\n")
		for _, l := range lines {
			if catalogueRow.MatchString(l) {
				tables[name] = append(tables[name], strings.TrimSpace(l))
			}
		}
		for _, code := range pinreset.Codes() {
			status := ingress.StatusOf(code)
			row := fmt.Sprintf("| %d | %s |", status, code)
			n := 0
			for _, l := range lines {
				if !strings.Contains(l, row) {
					if m := catalogueRow.FindStringSubmatch(l); m != nil && m[2] == string(code) {
						t.Errorf("%s: %s is in a row of status %s, but ingress.StatusOf gives %d", name, code, m[1], status)
					}
					continue
				}
				n++
				if !strings.Contains(l, "| "+code.Message()) {
					t.Errorf("%s: the row of %s does not give its message %q:\n%s", name, code, code.Message(), l)
				}
			}
			if n != 1 {
				t.Errorf("%s: %d catalogue rows \"%s\", want exactly one", name, n, row)
			}
		}
	}
	for old, now := range pinreset.RetiredCodes() {
		if old.Known() {
			t.Errorf("retired code %s is still in the catalogue", old)
		}
		if !now.Known() {
			t.Errorf("retired code %s is replaced by %s, not a catalogue code", old, now)
		}
	}
	readme, api := tables["README.md"], tables["schemas/openapi.yaml"]
	sort.Strings(readme)
	sort.Strings(api)
	if !slices.Equal(readme, api) {
		t.Errorf("the catalogue tables of README.md and openapi.yaml differ:\nREADME.md:\n%s\nopenapi.yaml:\n%s",
			strings.Join(readme, "\n"), strings.Join(api, "\n"))
	}

	c := newSchemaCompiler()
	t.Run("result.schema.json", func(t *testing.T) {
		doc := loadContract(t, c, "result.schema.json")
		var enum []string
		for _, v := range doc.lookup(t, "/properties/code/enum").([]any) {
			enum = append(enum, v.(string))
		}
		var want []string
		for c := range catalogue {
			want = append(want, c)
		}
		sort.Strings(enum)
		sort.Strings(want)
		if !slices.Equal(enum, want) {
			t.Errorf("result.schema.json code enum %v, want the catalogue %v", enum, want)
		}
		// Each code's message is pinned: a result with the catalogue message
		// validates, one with another message does not.
		sch := doc.schema(t, c, "")
		for _, code := range pinreset.Codes() {
			res := func(msg string) any {
				r := map[string]any{"v": 1, "correlationId": "260101093000-a1b2c3d", "requestId": "0123456789abcdef",
					"aspId": "KMSANDBOXASP001", "code": code, "message": msg, "completedAt": "2026-01-01T09:30:00.123Z"}
				if code == pinreset.CodeRejected {
					r["aspId"] = "" // a dead-letter answer knows no ASP
				}
				b, _ := json.Marshal(r)
				v, _ := parseJSON(b)
				return v
			}
			if err := sch.Validate(res(code.Message())); err != nil {
				t.Errorf("a %s result with its catalogue message does not validate: %s", code, explain(err))
			}
			if sch.Validate(res(code.Message()+" (changed)")) == nil {
				t.Errorf("result.schema.json does not pin the message of %s", code)
			}
		}
	})

	t.Run("openapi.yaml responses", func(t *testing.T) {
		doc := loadContract(t, c, "openapi.yaml")
		listed := map[string]bool{}
		for path := range doc.object(t, "/paths") {
			for method := range doc.object(t, pointer("paths", path)) {
				op := pointer("paths", path, method)
				resp, ok := doc.object(t, op)["responses"].(map[string]any)
				if !ok {
					continue
				}
				for status := range resp {
					rPtr := doc.deref(t, op+"/responses/"+status)
					content, _ := doc.object(t, rPtr)["content"].(map[string]any)
					if _, ok := content["application/json"]; !ok {
						continue
					}
					codes, ok := doc.lookup(t, rPtr+"/content/application~1json/schema").(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)["enum"].([]any)
					if !ok || len(codes) == 0 {
						t.Errorf("%s %s %s: the response lists no codes (properties.code.enum)", method, path, status)
						continue
					}
					for _, v := range codes {
						code, ok := catalogue[fmt.Sprint(v)]
						if !ok {
							t.Errorf("%s %s %s lists %v, not a catalogue code", method, path, status, v)
							continue
						}
						listed[string(code)] = true
						if got := fmt.Sprint(ingress.StatusOf(code)); got != status {
							t.Errorf("%s %s lists %s under %s, but its status is %s", method, path, code, status, got)
						}
					}
				}
			}
		}
		// A catalogue code that no response lists must be declared reserved
		// (x-reserved-codes: in the catalogue, not answered yet), and a
		// reserved code must not be listed.
		reserved := map[string]bool{}
		if list, ok := doc.object(t, "")["x-reserved-codes"].([]any); ok {
			for _, v := range list {
				reserved[fmt.Sprint(v)] = true
			}
		}
		for c := range catalogue {
			switch {
			case !listed[c] && !reserved[c]:
				t.Errorf("no response of openapi.yaml lists %s, and x-reserved-codes does not name it", c)
			case listed[c] && reserved[c]:
				t.Errorf("openapi.yaml lists %s in a response and in x-reserved-codes", c)
			}
		}
		for c := range reserved {
			if _, ok := catalogue[c]; !ok {
				t.Errorf("x-reserved-codes names %s, not a catalogue code", c)
			}
		}
	})
}
