package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestHelpAndConfigurationErrors(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out); err != nil || !strings.Contains(out.String(), "PINRESET_SEAL_KEYS") {
		t.Fatalf("--help: %v\n%s", err, out.String())
	}
	out.Reset()
	err := run(context.Background(), nil, func(string) string { return "" }, &out)
	if err == nil || !strings.Contains(err.Error(), "PINRESET_SEAL_KEYS") {
		t.Fatalf("empty environment: %v, want an error naming PINRESET_SEAL_KEYS", err)
	}
	if err := run(context.Background(), []string{"extra"}, func(string) string { return "" }, &out); err == nil {
		t.Fatal("an argument was accepted")
	}
}
