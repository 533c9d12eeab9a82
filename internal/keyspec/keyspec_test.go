package keyspec

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const key32 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // bytes 0..31
	for _, tc := range []struct {
		rule     string
		spec     string
		min, max int
		wantErr  string // "" for success
	}{
		{"a valid spec parses", "k1:" + key32, 32, 32, ""},
		{"white space around it is ignored", "  k1:" + key32 + "\n", 16, 0, ""},
		{"no colon is refused", "k1" + key32, 16, 0, "want <id>:<base64 key>"},
		{"an empty id is refused", ":" + key32, 16, 0, "id must match"},
		{"an id with a space is refused", "k 1:" + key32, 16, 0, "id must match"},
		{"an id of 33 characters is refused", strings.Repeat("a", 33) + ":" + key32, 16, 0, "id must match"},
		{"bad base64 is refused", "k1:not*base64", 16, 0, "not valid standard base64"},
		{"unpadded base64 is refused", "k1:" + strings.TrimRight(key32, "="), 16, 0, "not valid standard base64"},
		{"a short key is refused", "k1:AAEC", 16, 0, "want >= 16"},
		{"a maximum is enforced", "k1:" + key32, 16, 24, "want <= 24"},
		{"an exact length names it", "k1:AAEC", 32, 32, "want 32"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			id, key, err := Parse("thing", tc.spec, tc.min, tc.max)
			if tc.wantErr == "" {
				if err != nil || id != "k1" || len(key) != 32 || key[31] != 31 {
					t.Fatalf("Parse = %q, %d bytes, %v", id, len(key), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "thing") {
				t.Fatalf("Parse(%q) error %v, want one naming the kind with %q", tc.spec, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "AAEC") || strings.Contains(err.Error(), key32) {
				t.Fatalf("error %q holds key material", err)
			}
		})
	}
}

func TestList(t *testing.T) {
	parse := func(s string) (string, error) {
		if s == "bad" {
			return "", errors.New("bad spec")
		}
		return s, nil
	}
	if got, err := List("SETTING", []string{"a", "b"}, parse); err != nil || len(got) != 2 {
		t.Errorf("List = %v, %v", got, err)
	}
	if _, err := List("SETTING", []string{"a", "bad"}, parse); err == nil || err.Error() != "SETTING #2: bad spec" {
		t.Errorf("List error %v, want it to name the setting and the position", err)
	}
	if _, err := List("SETTING", nil, parse); !errors.Is(err, ErrNoKey) || !strings.HasPrefix(err.Error(), "SETTING") {
		t.Errorf("List of nothing: %v", err)
	}
}
