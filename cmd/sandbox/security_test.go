package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/kafkabus"
	"github.com/kmwallet/pinreset/internal/kmheader"
)

// writeRegistry writes an ASP registry file holding the sandbox ASP with
// creds and the extra ASPs, and returns its path.
func writeRegistry(t *testing.T, creds []asp.Credential, extra ...asp.ASP) string {
	t.Helper()
	asps := append([]asp.ASP{{ID: "KMSANDBOXASP001", Name: "Sandbox ASP", Credentials: creds}}, extra...)
	b, err := json.Marshal(asp.File{ASPs: asps})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "asps.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sandboxCredential(t *testing.T) asp.Credential {
	t.Helper()
	f, err := asp.Parse(readFile(t, "../../deployments/sandbox/asps.json"))
	if err != nil {
		t.Fatal(err)
	}
	return f.ASPs[0].Credentials[0]
}

func changeBody(current, next string) []byte {
	return []byte(fmt.Sprintf(`{"loginId":"success@sandbox.example","currentPassword":%q,"newPassword":%q}`, current, next))
}

// TestLockout: five distinct wrong PINs lock the member; while locked even
// the right PIN answers 001_069 (attempts exceeded); the lock ends after
// PINRESET_LOCK_FOR.
func TestLockout(t *testing.T) {
	e := startSandbox(t, map[string]string{"PINRESET_LOCK_FOR": "4s"})
	c := newClient(t, e)
	for i, wrong := range []string{"130579", "350791", "570913", "790135", "913570"} {
		r := c.post(changeBody(wrong, "581379"), "", nil)
		if r.status != 400 || r.body.Code != "001_035" {
			t.Fatalf("wrong PIN #%d: %d %+v, want 400 001_035", i+1, r.status, r.body)
		}
	}
	lockedAt := time.Now()
	r := c.post(changeBody("246810", "581379"), "", nil)
	if r.status != 400 || r.body.Code != "001_069" {
		t.Fatalf("right PIN while locked: %d %+v, want 400 001_069", r.status, r.body)
	}
	time.Sleep(time.Until(lockedAt.Add(4500 * time.Millisecond))) // the lock (4 s) runs out: the unlock under test
	r = c.post(changeBody("246810", "581379"), "", nil)
	if r.status != 200 || r.body.Code != "000_000" {
		t.Fatalf("right PIN after the lock ended: %d %+v, want 200 000_000", r.status, r.body)
	}
}

// TestReplay: KMV1 signs only the body, so a captured request can be sent
// again with a fresh correlation id and fresh times. Such a replay applies
// nothing and counts nothing: a captured wrong-PIN request replayed many
// times cannot lock the member, and a captured reset that set a PIN cannot
// set it again after the member changed it.
func TestReplay(t *testing.T) {
	e := startSandbox(t, nil)
	c := newClient(t, e)
	captured := changeBody("135791", "581379") // a wrong current PIN
	if r := c.post(captured, "", nil); r.body.Code != "001_035" {
		t.Fatalf("original: %+v, want 001_035", r.body)
	}
	for i := range 6 {
		r := c.post(captured, "", nil) // fresh correlation id, fresh token time
		if r.status != 400 || r.body.Code != "001_035" {
			t.Fatalf("replay #%d: %d %+v, want 400 001_035 (and not counted)", i+1, r.status, r.body)
		}
	}
	if r := c.post(changeBody("246810", "581379"), "", nil); r.body.Code != "000_000" {
		t.Fatalf("after 6 replays the member's own change got %+v: the replays locked it out", r.body)
	}

	reset := []byte(`{"loginId":"samepin@sandbox.example","newPassword":"703152","isResetPassword":true}`)
	if r := c.post(reset, "", nil); r.body.Code != "000_000" {
		t.Fatalf("reset: %+v", r.body)
	}
	if r := c.post([]byte(`{"loginId":"samepin@sandbox.example","currentPassword":"703152","newPassword":"851397"}`), "", nil); r.body.Code != "000_000" {
		t.Fatalf("change after reset: %+v", r.body)
	}
	if r := c.post(reset, "", nil); r.body.Code != "001_409" {
		t.Fatalf("replayed reset: %+v, want 001_409 (nothing applied)", r.body)
	}
	if r := c.post([]byte(`{"loginId":"samepin@sandbox.example","currentPassword":"851397","newPassword":"925814"}`), "", nil); r.body.Code != "000_000" {
		t.Fatalf("the PIN was changed by the replayed reset: %+v", r.body)
	}
}

// TestTenancy: another ASP cannot reach the sandbox ASP's members or
// transactions, whatever it sends.
func TestTenancy(t *testing.T) {
	other := asp.ASP{ID: "KMOTHERASP00001", Credentials: []asp.Credential{{
		AccessKey: "OtherAspAccessKey0000000000000000000000A", SecretKey: "other-asp-secret-key-0000000000000000"}}}
	reg := writeRegistry(t, []asp.Credential{sandboxCredential(t)}, other)
	e := startSandbox(t, map[string]string{"PINRESET_ASP_FILE": reg})
	own := newClient(t, e)
	cid := kmheader.NewCorrelationID(time.Now(), nil)
	if r := own.post(changeBody("246810", "581379"), cid, nil); r.body.Code != "000_000" {
		t.Fatalf("own change: %+v", r.body)
	}
	intruder := &client{t: t, url: own.url, creds: kmheader.Credentials{ASPID: other.ID, AccessKey: other.Credentials[0].AccessKey, SecretKey: []byte(other.Credentials[0].SecretKey)}}
	if r := intruder.post([]byte(`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`), "", nil); r.status != 400 || r.body.Code != "001_006" {
		t.Fatalf("another ASP's reset of a sandbox member: %d %+v, want 400 001_006", r.status, r.body)
	}
	if r := intruder.get(cid); r.status != 404 || r.body.Code != "000_404" {
		t.Fatalf("another ASP's GET of a sandbox transaction: %d %+v, want 404 000_404", r.status, r.body)
	}
	if r := own.post(changeBody("581379", "370258"), "", nil); r.body.Code != "000_000" {
		t.Fatalf("the member's PIN was touched by the other ASP: %+v", r.body)
	}
	// Signing as the other ASP with the sandbox ASP's access key is refused.
	r := intruder.post([]byte(`{"loginId":"success@sandbox.example","newPassword":"703152","isResetPassword":true}`), "",
		func(h http.Header) { h.Set("X-KM-Access-Key", sandboxCredential(t).AccessKey) })
	if r.status != 401 {
		t.Fatalf("mixed credentials: %d %+v, want 401", r.status, r.body)
	}
}

// TestCredentialRotation: during a rotation both credentials of an ASP work;
// once the old one is removed from the registry it is refused.
func TestCredentialRotation(t *testing.T) {
	old := sandboxCredential(t)
	fresh := asp.Credential{AccessKey: "RotatedAccessKey000000000000000000000000", SecretKey: "rotated-secret-key-000000000000000000"}
	e := startSandbox(t, map[string]string{"PINRESET_ASP_FILE": writeRegistry(t, []asp.Credential{old, fresh})})
	body := []byte(`{"loginId":"nobody@sandbox.example","newPassword":"703152","isResetPassword":true}`)
	for name, cr := range map[string]asp.Credential{"old": old, "new": fresh} {
		c := newClient(t, e)
		c.creds.AccessKey, c.creds.SecretKey = cr.AccessKey, []byte(cr.SecretKey)
		if r := c.post(body, "", nil); r.body.Code != "001_006" {
			t.Errorf("%s credential during the rotation: %+v, want it accepted (001_006)", name, r.body)
		}
		c.creds.SecretKey = []byte(map[string]string{"old": fresh.SecretKey, "new": old.SecretKey}[name])
		if r := c.post(body, "", nil); r.status != 401 {
			t.Errorf("%s access key with the other credential's secret: %d, want 401", name, r.status)
		}
	}

	e2 := startSandbox(t, map[string]string{"PINRESET_ASP_FILE": writeRegistry(t, []asp.Credential{fresh})})
	c := newClient(t, e2)
	if r := c.post(body, "", nil); r.status != 401 {
		t.Errorf("old credential after the rotation: %d %+v, want 401", r.status, r.body)
	}
}

// TestNoSecretLeaves drives every kind of request, then scans everything the
// service logged, published and stored for the PINs, tran tokens, access key,
// secret key, seal key and pepper used.
func TestNoSecretLeaves(t *testing.T) {
	e, logs := startSandboxWithLogs(t, nil)
	c := newClient(t, e)
	pins := []string{"246810", "581379", "703152", "130579", "925814"}
	var tokens []string
	send := func(body string, edit func(http.Header)) {
		req := c.postRequest([]byte(body), "", edit)
		tokens = append(tokens, req.Header.Get("X-KM-Tran-Token"))
		if _, err := c.send(req); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"loginId":"success@sandbox.example","currentPassword":"130579","newPassword":"581379"}`, nil) // wrong PIN
	send(`{"loginId":"success@sandbox.example","currentPassword":"246810","newPassword":"581379"}`, nil) // change
	send(`{"loginId":"success@sandbox.example","currentPassword":"999999","newPassword":"703152","isResetPassword":true}`, nil)
	send(`{"loginId":"success@sandbox.example","currentPassword":"703152","newPassword":"925814"}`, func(h http.Header) { h.Set("X-KM-Access-Key", strings.Repeat("Q", 40)) })
	send(`{"loginId":"success@sandbox.example","currentPassword":"703152","newPassword":"123456"}`, nil) // weak
	send(`not json 246810`, nil)
	c.get(kmheader.NewCorrelationID(time.Now(), nil))

	cred := sandboxCredential(t)
	secrets := map[string]string{"access key": cred.AccessKey, "secret key": cred.SecretKey, "seal key": secretPart(e.Getenv("PINRESET_SEAL_KEYS")),
		"pepper": secretPart(e.Getenv("PINRESET_PEPPERS")), "fingerprint key": secretPart(e.Getenv("PINRESET_FINGERPRINT_KEYS"))}
	for i, tok := range tokens {
		secrets[fmt.Sprintf("tran token %d", i)] = tok
		secrets[fmt.Sprintf("tran token %d MAC", i)] = tok[strings.LastIndex(tok, ":")+1:]
	}
	// A PIN counts as leaked when it stands alone, not inside a longer run of
	// base64 or digits, where six digits can occur by chance.
	pinPatterns := map[string]*regexp.Regexp{}
	for _, p := range pins {
		pinPatterns[p] = regexp.MustCompile(`(^|[^A-Za-z0-9+/])` + p + `($|[^A-Za-z0-9+/=])`)
	}
	scan := func(where, text string) {
		for name, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the %s", where, name)
			}
		}
		for p, re := range pinPatterns {
			if re.MatchString(text) {
				t.Errorf("%s holds PIN %s", where, p)
			}
		}
	}

	scan("the service logs", logs())
	for _, topic := range []string{kafkabus.TopicCommands, kafkabus.TopicResults, kafkabus.TopicCommandsDLQ, kafkabus.TopicEvents} {
		for _, m := range readAll(t, e.Brokers, topic) {
			var hs []string
			for _, h := range m.Headers {
				hs = append(hs, h.Key+"="+string(h.Value))
			}
			scan("topic "+topic, string(m.Key)+" "+string(m.Value)+" "+strings.Join(hs, " "))
		}
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(e.MongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(context.Background())
	db := mc.Database(e.Database)
	names, err := db.ListCollectionNames(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		cur, err := db.Collection(name).Find(context.Background(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(context.Background(), &docs); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			b, _ := bson.MarshalExtJSON(d, false, false)
			scan("collection "+name, string(b))
		}
	}
}

// secretPart is the key material of an "id:base64" setting.
func secretPart(setting string) string {
	_, s, _ := strings.Cut(strings.Split(setting, ",")[0], ":")
	return s
}
