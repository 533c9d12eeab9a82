package secret_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kmwallet/pinreset/internal/secret"
)

// The values the tests hide, and every spelling of them a leak could take.
const (
	pin = "864209"
	key = "0123456789abcdef-SECRET-KEY-0001"
)

func spellings() []string {
	return []string{pin, key, "SECRET", fmt.Sprintf("%x", pin), fmt.Sprintf("%x", key), fmt.Sprint([]byte(key)),
		base64.StdEncoding.EncodeToString([]byte(key)), base64.StdEncoding.EncodeToString([]byte(pin))}
}

// holder is how the types are meant to be used: exported fields of a struct
// with no formatting methods of its own.
type holder struct {
	ID  string
	PIN secret.String
	Key secret.Bytes `json:"key,omitempty"`
}

func zapJSON(f func(*zap.Logger)) string {
	var buf bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel)
	f(zap.New(core))
	return buf.String()
}

func slogOut(h func(*bytes.Buffer) slog.Handler, args ...any) string {
	var buf bytes.Buffer
	slog.New(h(&buf)).Info("m", args...)
	return buf.String()
}

func slogText(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }
func slogJSON(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }

func TestEveryFormattingPathRedacts(t *testing.T) {
	s, b := secret.String(pin), secret.Bytes(key)
	h := holder{ID: "h1", PIN: s, Key: b}
	js := func(v any) string {
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		return string(out)
	}
	tests := []struct {
		path string
		out  string
		want string // a substring the output must hold: the marker where the secret was
	}{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%T %[1]v"} {
		for _, v := range []any{s, &s, b, &b, h, &h, []any{s, b}, map[string]any{"s": s, "b": b}, struct{ H holder }{h}} {
			tests = append(tests, struct{ path, out, want string }{fmt.Sprintf("fmt %s of %T", verb, v), fmt.Sprintf(verb, v), "redacted"})
		}
	}
	tests = append(tests, []struct{ path, out, want string }{
		{"fmt %q of String", fmt.Sprintf("%q", s), `"[redacted]"`},
		{"fmt %#v of holder", fmt.Sprintf("%#v", h), `secret_test.holder{ID:"h1", PIN:[redacted], Key:[redacted]}`},
		{"fmt %+v of holder", fmt.Sprintf("%+v", h), `{ID:h1 PIN:[redacted] Key:[redacted]}`},
		{"String()", s.String(), secret.Redacted},
		{"GoString()", b.GoString(), secret.Redacted},
		{"fmt.Sprint of a slice of Bytes", fmt.Sprint(b[:4]), secret.Redacted},
		{"json.Marshal of String", js(s), `"[redacted]"`},
		{"json.Marshal of Bytes", js(b), `"[redacted]"`},
		{"json.Marshal of holder", js(h), `{"ID":"h1","PIN":"[redacted]","key":"[redacted]"}`},
		{"json.Marshal of a map", js(map[string]any{"s": s, "b": &b}), `{"b":"[redacted]","s":"[redacted]"}`},
		{"zap.Any of String", zapJSON(func(l *zap.Logger) { l.Info("m", zap.Any("pin", s)) }), `"pin":"[redacted]"`},
		{"zap.Any of Bytes", zapJSON(func(l *zap.Logger) { l.Info("m", zap.Any("key", b)) }), `"key":"[redacted]"`},
		{"zap.Any of holder", zapJSON(func(l *zap.Logger) { l.Info("m", zap.Any("h", h)) }), `"h":{"ID":"h1","PIN":"[redacted]","key":"[redacted]"}`},
		{"zap.Reflect of String", zapJSON(func(l *zap.Logger) { l.Info("m", zap.Reflect("pin", s)) }), `"pin":"[redacted]"`},
		{"zap.Stringer of Bytes", zapJSON(func(l *zap.Logger) { l.Info("m", zap.Stringer("key", b)) }), `"key":"[redacted]"`},
		{"zap sugar of holder", zapJSON(func(l *zap.Logger) { l.Sugar().Infof("%v %+v %#v", h, h, h) }), "redacted"},
		{"slog text of String", slogOut(slogText, "pin", s), "pin=[redacted]"},
		{"slog text of Bytes", slogOut(slogText, "key", b), "key=[redacted]"},
		{"slog text of holder", slogOut(slogText, "h", h), `h="{ID:h1 PIN:[redacted] Key:[redacted]}"`},
		{"slog text of slog.Any", slogOut(slogText, slog.Any("key", b)), "key=[redacted]"},
		{"slog JSON of String", slogOut(slogJSON, "pin", s), `"pin":"[redacted]"`},
		{"slog JSON of Bytes", slogOut(slogJSON, "key", &b), `"key":"[redacted]"`},
		{"slog JSON of holder", slogOut(slogJSON, "h", h), `"h":{"ID":"h1","PIN":"[redacted]","key":"[redacted]"}`},
	}...)
	for _, tc := range tests {
		for _, leak := range spellings() {
			if strings.Contains(tc.out, leak) {
				t.Errorf("%s leaks %q: %s", tc.path, leak, tc.out)
			}
		}
		if !strings.Contains(tc.out, tc.want) {
			t.Errorf("%s = %s, want it to hold %s", tc.path, tc.out, tc.want)
		}
	}
}

func TestEmptyIsUnset(t *testing.T) {
	var s secret.String
	var b secret.Bytes
	tests := []struct{ path, got, want string }{
		{"String of empty String", s.String(), secret.Unset},
		{"fmt of nil Bytes", fmt.Sprintf("%v", b), secret.Unset},
		{"%q of empty String", fmt.Sprintf("%q", s), `"[unset]"`},
		{"JSON of empty Bytes", func() string { j, _ := json.Marshal(b); return string(j) }(), `"[unset]"`},
		{"omitempty drops an empty Bytes", func() string { j, _ := json.Marshal(holder{ID: "x"}); return string(j) }(), `{"ID":"x","PIN":"[unset]"}`},
		{"slog of empty String", s.LogValue().String(), secret.Unset},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %s, want %s", tc.path, tc.got, tc.want)
		}
	}
}

// TestConversionReveals checks the one way to read a secret: a conversion,
// and that a plain []byte is assignable to Bytes (the field change is free).
func TestConversionReveals(t *testing.T) {
	raw := []byte(key)
	var b secret.Bytes = raw
	if s := secret.String(pin); string(s) != pin {
		t.Errorf("string(String) = %q, want the value", string(s))
	}
	if !bytes.Equal(b, raw) || string([]byte(b)) != key {
		t.Errorf("[]byte(Bytes) = %q, want the value", []byte(b))
	}
}
