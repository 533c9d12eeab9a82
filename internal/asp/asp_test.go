package asp_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

const (
	aspID  = "ASP000000000001"
	aspID2 = "ASP_other-00002"
)

var (
	accessA = strings.Repeat("A", 20) + strings.Repeat("1", 20)
	accessB = strings.Repeat("B", 20) + strings.Repeat("2", 20)
	accessC = strings.Repeat("c", 40)
	secretA = strings.Repeat("secret-A-", 4) // 36 characters
	secretB = strings.Repeat("secret-B-", 4)
	secretC = strings.Repeat("s", 32)
)

func cred(access, secret string) asp.Credential {
	return asp.Credential{AccessKey: access, SecretKey: secret}
}

func one(id string, creds ...asp.Credential) asp.ASP {
	return asp.ASP{ID: id, Name: "Test " + id, Credentials: creds}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	valid := one(aspID, cred(accessA, secretA))
	for _, tc := range []struct {
		rule string
		asps []asp.ASP
		ok   bool
	}{
		{"an ASP with one credential is accepted", []asp.ASP{valid}, true},
		{"an ASP rotating two credentials is accepted", []asp.ASP{one(aspID, cred(accessA, secretA), cred(accessB, secretB))}, true},
		{"an id of letters, digits, _ and - is accepted", []asp.ASP{one(aspID2, cred(accessA, secretA))}, true},
		{"a secret of exactly 32 characters is accepted", []asp.ASP{one(aspID, cred(accessA, secretC))}, true},
		{"an all-lowercase access key is accepted", []asp.ASP{one(aspID, cred(accessC, secretA))}, true},
		{"several ASPs are accepted", []asp.ASP{valid, one(aspID2, cred(accessB, secretB))}, true},
		{"an empty registry is accepted", nil, true},

		{"an id of 14 characters is refused", []asp.ASP{one(aspID[:14], cred(accessA, secretA))}, false},
		{"an id of 16 characters is refused", []asp.ASP{one(aspID+"1", cred(accessA, secretA))}, false},
		{"an empty id is refused", []asp.ASP{one("", cred(accessA, secretA))}, false},
		{"an id with a dot is refused", []asp.ASP{one("ASP.00000000001", cred(accessA, secretA))}, false},
		{"an id with a space is refused", []asp.ASP{one("ASP 00000000001", cred(accessA, secretA))}, false},
		{"an id with a newline is refused", []asp.ASP{one("ASP00000000001\n", cred(accessA, secretA))}, false},
		{"an id of 15 non-ASCII letters is refused", []asp.ASP{one(strings.Repeat("é", 15), cred(accessA, secretA))}, false},
		{"an id listed twice is refused", []asp.ASP{valid, one(aspID, cred(accessB, secretB))}, false},
		{"an ASP without credentials is refused", []asp.ASP{one(aspID)}, false},
		{"an ASP with an empty credential list is refused", []asp.ASP{{ID: aspID, Credentials: []asp.Credential{}}}, false},
		{"an ASP with three credentials is refused", []asp.ASP{one(aspID, cred(accessA, secretA), cred(accessB, secretB), cred(accessC, secretC))}, false},
		{"an access key of 39 characters is refused", []asp.ASP{one(aspID, cred(accessA[:39], secretA))}, false},
		{"an access key of 41 characters is refused", []asp.ASP{one(aspID, cred(accessA+"1", secretA))}, false},
		{"an access key with a symbol is refused", []asp.ASP{one(aspID, cred(accessA[:39]+"-", secretA))}, false},
		{"an access key of 40 non-ASCII letters is refused", []asp.ASP{one(aspID, cred(strings.Repeat("é", 20), secretA))}, false},
		{"an empty access key is refused", []asp.ASP{one(aspID, cred("", secretA))}, false},
		{"a secret of 31 characters is refused", []asp.ASP{one(aspID, cred(accessA, secretC[:31]))}, false},
		{"an empty secret is refused", []asp.ASP{one(aspID, cred(accessA, ""))}, false},
		{"a bad second credential is refused", []asp.ASP{one(aspID, cred(accessA, secretA), cred(accessB, "short"))}, false},
		{"a bad ASP after a good one is refused", []asp.ASP{valid, one("short", cred(accessB, secretB))}, false},
		{"an ASP registered for KMV2 is accepted", []asp.ASP{withSchemes(valid, "KMV2")}, true},
		{"an ASP migrating between KMV1 and KMV2 is accepted", []asp.ASP{withSchemes(valid, "KMV1", "KMV2")}, true},
		{"an unknown token scheme is refused", []asp.ASP{withSchemes(valid, "KMV3")}, false},
		{"a token scheme in lower case is refused", []asp.ASP{withSchemes(valid, "kmv2")}, false},
		{"a token scheme listed twice is refused", []asp.ASP{withSchemes(valid, "KMV2", "KMV2")}, false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			r, err := asp.New(tc.asps)
			if tc.ok {
				if err != nil || r == nil {
					t.Fatalf("New = %v, %v; want a registry", r, err)
				}
				for _, a := range tc.asps {
					if got, ok := r.Lookup(a.ID); !ok || got.ID != a.ID || !reflect.DeepEqual(got.Credentials, a.Credentials) {
						t.Errorf("Lookup(%s) = %+v, %v", a.ID, got, ok)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted %+v", tc.asps)
			}
			for _, a := range tc.asps {
				for _, c := range a.Credentials {
					for _, s := range []string{c.SecretKey, c.AccessKey} {
						if len(s) >= 8 && strings.Contains(err.Error(), s) {
							t.Errorf("error %q contains a credential", err)
						}
					}
				}
			}
		})
	}
}

func withSchemes(a asp.ASP, schemes ...pinreset.Scheme) asp.ASP {
	a.TokenSchemes = schemes
	return a
}

func TestTokenSchemes(t *testing.T) {
	t.Parallel()
	base := one(aspID, cred(accessA, secretA))
	for _, tc := range []struct {
		rule      string
		schemes   []pinreset.Scheme
		kmv1      bool
		kmv2      bool
		preferred pinreset.Scheme
	}{
		{"an ASP that names no scheme uses KMV1, the default", nil, true, false, pinreset.SchemeKMV1},
		{"an ASP registered for KMV2 may use only KMV2", []pinreset.Scheme{"KMV2"}, false, true, pinreset.SchemeKMV2},
		{"an ASP registered for KMV1 may use only KMV1", []pinreset.Scheme{"KMV1"}, true, false, pinreset.SchemeKMV1},
		{"a migrating ASP may use both and signs with KMV2", []pinreset.Scheme{"KMV1", "KMV2"}, true, true, pinreset.SchemeKMV2},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			r, err := asp.New([]asp.ASP{withSchemes(base, tc.schemes...)})
			if err != nil {
				t.Fatal(err)
			}
			a, _ := r.Lookup(aspID)
			if got := r.Accepts(aspID, pinreset.SchemeKMV1); got != tc.kmv1 {
				t.Errorf("Accepts(KMV1) = %t, want %t", got, tc.kmv1)
			}
			if got := r.Accepts(aspID, pinreset.SchemeKMV2); got != tc.kmv2 {
				t.Errorf("Accepts(KMV2) = %t, want %t", got, tc.kmv2)
			}
			if got := a.Preferred(); got != tc.preferred {
				t.Errorf("Preferred = %s, want %s", got, tc.preferred)
			}
			if r.Accepts("ASP999999999999", pinreset.SchemeKMV1) || r.Accepts(aspID, "KMV3") {
				t.Error("an unknown ASP or scheme is accepted")
			}
		})
	}
	t.Run("the registry file names the schemes in tokenSchemes", func(t *testing.T) {
		t.Parallel()
		in := `{"asps":[{"id":"` + aspID + `","credentials":[{"accessKey":"` + accessA + `","secretKey":"` + secretA + `"}],"tokenSchemes":["KMV1","KMV2"]}]}`
		f, err := asp.Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if want := []pinreset.Scheme{"KMV1", "KMV2"}; !reflect.DeepEqual(f.ASPs[0].TokenSchemes, want) {
			t.Fatalf("TokenSchemes = %v, want %v", f.ASPs[0].TokenSchemes, want)
		}
		b, err := json.Marshal(asp.File{ASPs: []asp.ASP{base}})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "tokenSchemes") {
			t.Errorf("a KMV1 ASP is written with tokenSchemes: %s (older ingresses would refuse the file)", b)
		}
	})
}

func TestParse(t *testing.T) {
	t.Parallel()
	good := `{"asps":[{"id":"` + aspID + `","name":"Sandbox","credentials":[{"accessKey":"` + accessA + `","secretKey":"` + secretA + `"}]}]}`
	t.Run("a registry file is decoded", func(t *testing.T) {
		t.Parallel()
		f, err := asp.Parse([]byte(good))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		want := asp.File{ASPs: []asp.ASP{{ID: aspID, Name: "Sandbox", Credentials: []asp.Credential{cred(accessA, secretA)}}}}
		if !reflect.DeepEqual(f, want) {
			t.Errorf("Parse = %+v, want %+v", f, want)
		}
	})
	for _, tc := range []struct {
		rule string
		in   string
	}{
		{"an unknown top-level field is refused", strings.Replace(good, `{"asps":`, `{"version":1,"asps":`, 1)},
		{"a misspelt top-level field is refused", strings.Replace(good, `"asps"`, `"aspz"`, 1)},
		{"an unknown ASP field is refused", strings.Replace(good, `"name":`, `"tenant":"x","name":`, 1)},
		{"an unknown credential field is refused", strings.Replace(good, `"secretKey":`, `"expires":"2030","secretKey":`, 1)},
		{"a misspelt credential field is refused", strings.Replace(good, `"secretKey"`, `"secret"`, 1)},
		{"a value of the wrong type is refused", strings.Replace(good, `"credentials":[`, `"credentials":{"x":[`, 1)},
		{"text that is not JSON is refused", "asps: []"},
		{"an empty file is refused", ""},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			if f, err := asp.Parse([]byte(tc.in)); err == nil {
				t.Errorf("Parse(%s) = %+v, nil; want an error", tc.in, f)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, v any) string {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "asps.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("a valid file loads into a registry", func(t *testing.T) {
		t.Parallel()
		r, err := asp.Load(write(t, asp.File{ASPs: []asp.ASP{one(aspID, cred(accessA, secretA))}}))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if _, ok := r.Lookup(aspID); !ok {
			t.Errorf("Lookup(%s) found nothing", aspID)
		}
		if _, ok := r.Lookup(aspID2); ok {
			t.Errorf("Lookup(%s) found an ASP that is not in the file", aspID2)
		}
	})
	t.Run("a missing file is an error", func(t *testing.T) {
		t.Parallel()
		if r, err := asp.Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
			t.Errorf("Load = %v, nil; want an error", r)
		}
	})
	t.Run("a file with an invalid ASP is an error", func(t *testing.T) {
		t.Parallel()
		if r, err := asp.Load(write(t, asp.File{ASPs: []asp.ASP{one(aspID, cred(accessA, "short"))}})); err == nil {
			t.Errorf("Load = %v, nil; want an error", r)
		}
	})
	t.Run("a file with an unknown field is an error", func(t *testing.T) {
		t.Parallel()
		if r, err := asp.Load(write(t, map[string]any{"asps": []any{}, "extra": true})); err == nil {
			t.Errorf("Load = %v, nil; want an error", r)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	r, err := asp.New([]asp.ASP{
		one(aspID, cred(accessA, secretA)),
		one(aspID2, cred(accessB, secretB), cred(accessC, secretC)), // rotating
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, tc := range []struct {
		rule   string
		aspID  string
		access string
		want   []string // nil: refused
	}{
		{"the right access key gives the ASP's secret", aspID, accessA, []string{secretA}},
		{"a wrong access key is refused", aspID, accessB[:39] + "9", nil},
		{"an access key differing in its last character is refused", aspID, accessA[:39] + "2", nil},
		{"an empty access key is refused", aspID, "", nil},
		{"an access key of another ASP is refused", aspID, accessB, nil},
		{"an unknown ASP is refused", "ASP999999999999", accessA, nil},
		{"an empty ASP id is refused", "", accessA, nil},
		{"an unknown ASP is refused even with the all-zero key", "ASP999999999999", strings.Repeat("0", 40), nil},
		{"a known ASP refuses the all-zero key", aspID, strings.Repeat("0", 40), nil},
		{"ASP ids are case sensitive", strings.ToLower(aspID), accessA, nil},
		{"while rotating, the old access key gives only the old secret", aspID2, accessB, []string{secretB}},
		{"while rotating, the new access key gives only the new secret", aspID2, accessC, []string{secretC}},
		{"while rotating, another ASP's key is still refused", aspID2, accessA, nil},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			t.Parallel()
			secrets, ok := r.Authenticate(tc.aspID, tc.access)
			if tc.want == nil {
				if ok || secrets != nil {
					t.Errorf("Authenticate = %q, %v; want nil, false", secrets, ok)
				}
				return
			}
			var got []string
			for _, s := range secrets {
				got = append(got, string(s))
			}
			if !ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Authenticate = %q, %v; want %q, true", got, ok, tc.want)
			}
		})
	}
}
