package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

// kmv2Window is the tran window of the KMV2 ingress below: short, so that
// a capture goes stale within the test, and long enough for the requests
// the test sends at once to arrive fresh under the race detector on shared
// cores (the tran time has whole seconds, so up to 1 s of it is gone at the
// start).
const kmv2Window = 10 * time.Second

// sandboxRegistryWith writes the sandbox's ASP registry with the sandbox ASP
// registered for schemes, and returns its path.
func sandboxRegistryWith(t *testing.T, schemes ...pinreset.Scheme) string {
	t.Helper()
	f, err := asp.Parse(readFile(t, "../../deployments/sandbox/asps.json"))
	if err != nil {
		t.Fatal(err)
	}
	f.ASPs[0].TokenSchemes = schemes
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "asps.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKMV2 runs one worker and two ingresses on the same infrastructure:
// one registers the sandbox ASP for KMV2 only, the other is the sandbox's
// own KMV1 registry. The same members, the same worker; only the scheme
// that authenticated each command differs.
func TestKMV2(t *testing.T) {
	e := startSandbox(t, nil, "-infra-only")
	startWorker(t, e, nil)
	kmv2Registry := sandboxRegistryWith(t, pinreset.SchemeKMV2)
	e.HTTPAddr = startIngress(t, e, map[string]string{"PINRESET_ASP_FILE": kmv2Registry, "PINRESET_TRAN_WINDOW": kmv2Window.String()})
	v2 := newClient(t, e)
	v2.creds.Scheme = pinreset.SchemeKMV2
	e.HTTPAddr = startIngress(t, e, nil)
	v1 := newClient(t, e)

	t.Run("a KMV2 request is accepted, a KMV1 one of the KMV2 ASP refused", func(t *testing.T) {
		body := []byte(`{"loginId":"nobody@sandbox.example","newPassword":"703152","isResetPassword":true}`)
		if r := v2.post(body, "", nil); r.status != 400 || r.body.Code != "001_006" {
			t.Fatalf("KMV2: %d %+v, want it decided (400 001_006)", r.status, r.body)
		}
		asV1 := *v2
		asV1.creds.Scheme = pinreset.SchemeKMV1
		if r := asV1.post(body, "", nil); r.status != 401 || r.body.Code != "000_401" {
			t.Fatalf("KMV1 to the KMV2 ASP: %d %+v, want 401 000_401", r.status, r.body)
		}
	})

	t.Run("a KMV2 request tampered in a bound field is refused", func(t *testing.T) {
		body := []byte(`{"loginId":"nobody@sandbox.example","newPassword":"703152","isResetPassword":true}`)
		for field, edit := range map[string]func(h http.Header){
			"correlation id": func(h http.Header) { h.Set(kmheader.HeaderCorrelationID, kmheader.NewCorrelationID(time.Now(), nil)) },
			"tran time": func(h http.Header) {
				tt, _ := time.Parse("20060102150405", h.Get(kmheader.HeaderTranTime))
				h.Set(kmheader.HeaderTranTime, tt.Add(-time.Second).Format("20060102150405"))
			},
			"time zone": func(h http.Header) { h.Set(kmheader.HeaderTimeZone, "JST") }, // KST's offset: still fresh
			"token time": func(h http.Header) {
				tok := h.Get(kmheader.HeaderTranToken)
				h.Set(kmheader.HeaderTranToken, tok[:len("KMV2:")+16]+tok[len("KMV2:")+17:]) // ms respelt as cs
			},
		} {
			if r := v2.post(body, "", edit); r.status != 401 || r.body.Code != "000_401" {
				t.Errorf("%s changed: %d %+v, want 401 000_401", field, r.status, r.body)
			}
		}
		req := v2.postRequest(body, "", nil)
		other := bytes.Replace(body, []byte("703152"), []byte("703153"), 1)
		tampered, err := http.NewRequest(http.MethodPost, v2.url, bytes.NewReader(other))
		if err != nil {
			t.Fatal(err)
		}
		tampered.Header = req.Header
		if r, err := v2.send(tampered); err != nil || r.status != 401 {
			t.Errorf("body changed: %d %+v %v, want 401", r.status, r.body, err)
		}
	})

	t.Run("a KMV2 capture is the same transaction inside the window and refused outside it", func(t *testing.T) {
		change := changeBody("246810", "581379")
		capture := v2.postRequest(change, "", nil)
		resend := func() response {
			t.Helper()
			req, err := http.NewRequest(http.MethodPost, v2.url, bytes.NewReader(change))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = capture.Header.Clone()
			r, err := v2.send(req)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := resend(); r.status != 200 || r.body.Code != "000_000" {
			t.Fatalf("the original: %d %+v", r.status, r.body)
		}
		v := memberVersion(t, e, "success@sandbox.example")
		if r := resend(); r.status != 200 || r.body.Code != "000_000" {
			t.Fatalf("resent inside the window: %d %+v, want the recorded outcome 200 000_000", r.status, r.body)
		}
		if got := memberVersion(t, e, "success@sandbox.example"); got != v {
			t.Fatalf("version %d -> %d: the resent capture was applied again", v, got)
		}
		// The tran window passes (the behaviour under test); the tran time
		// has whole seconds.
		time.Sleep(kmv2Window + 1500*time.Millisecond)
		if r := resend(); r.status != 401 || r.body.Code != "000_401" {
			t.Fatalf("resent outside the window: %d %+v, want 401 000_401", r.status, r.body)
		}
		if got := memberVersion(t, e, "success@sandbox.example"); got != v {
			t.Fatalf("version %d -> %d: the stale capture was applied", v, got)
		}
	})

	t.Run("a reset back to an earlier PIN: accepted for KMV2, 001_409 for KMV1", func(t *testing.T) {
		for _, tc := range []struct {
			c     *client
			login string
			want  string
		}{
			{v2, "samepin@sandbox.example", "000_000"},
			{v1, "mismatch@sandbox.example", "001_409"},
		} {
			reset := []byte(`{"loginId":"` + tc.login + `","newPassword":"703152","isResetPassword":true}`)
			change := []byte(`{"loginId":"` + tc.login + `","currentPassword":"703152","newPassword":"851397"}`)
			for i, step := range []struct {
				body []byte
				want string
			}{{reset, "000_000"}, {change, "000_000"}, {reset, tc.want}} {
				if r := tc.c.post(step.body, "", nil); r.body.Code != pinreset.Code(step.want) {
					t.Fatalf("%s %s step %d: %d %+v, want %s", tc.c.creds.Scheme, tc.login, i+1, r.status, r.body, step.want)
				}
			}
			// Which PIN the member has now says whether the reset was applied.
			pin := map[string]string{"000_000": "703152", "001_409": "851397"}[tc.want]
			proof := []byte(`{"loginId":"` + tc.login + `","currentPassword":"` + pin + `","newPassword":"925814"}`)
			if r := tc.c.post(proof, "", nil); r.body.Code != "000_000" {
				t.Fatalf("%s %s: the PIN is not %s after the reset answered %s: %+v", tc.c.creds.Scheme, tc.login, pin, tc.want, r.body)
			}
		}
	})

	t.Run("one GET's MAC is refused for another correlation id", func(t *testing.T) {
		for _, c := range []*client{v1, v2} {
			mine := kmheader.NewCorrelationID(time.Now(), nil)
			if r := c.post([]byte(`{"loginId":"nobody@sandbox.example","newPassword":"703152","isResetPassword":true}`), mine, nil); r.body.Code != "001_006" {
				t.Fatalf("%s: %+v", c.creds.Scheme, r.body)
			}
			hd := kmheader.SignedStatusHeaders(c.creds, mine, time.Now(), "UTC")
			get := func(cid string, hd kmheader.Headers) response {
				t.Helper()
				req, err := http.NewRequest(http.MethodGet, c.url+"/"+cid, nil)
				if err != nil {
					t.Fatal(err)
				}
				kmheader.Set(req.Header, hd)
				r, err := c.send(req)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			if r := get(mine, hd); r.status != 400 || r.body.Code != "001_006" {
				t.Fatalf("%s: the GET of its own transaction: %d %+v, want its outcome 400 001_006", c.creds.Scheme, r.status, r.body)
			}
			other := kmheader.NewCorrelationID(time.Now(), nil)
			moved := hd
			moved.CorrelationID = other
			if r := get(other, moved); r.status != 401 || r.body.Code != "000_401" {
				t.Fatalf("%s: the GET's headers for another correlation id: %d %+v, want 401 000_401", c.creds.Scheme, r.status, r.body)
			}
		}
	})
}
