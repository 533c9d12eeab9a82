package config_test

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kmwallet/pinreset/internal/config"
)

// TestHelpListsEveryVariable: --help, config.go and README.md name the same
// variables, so none is undocumented or documented but unread.
func TestHelpListsEveryVariable(t *testing.T) {
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"(PINRESET_[A-Z0-9_]+)"`)
	var read []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		if !slices.Contains(read, m[1]) {
			read = append(read, m[1])
		}
	}
	var listed []string
	for _, s := range config.Settings {
		listed = append(listed, s.Name)
		if s.Binary != "ingress" && s.Binary != "worker" && s.Binary != "both" {
			t.Errorf("%s: binary %q", s.Name, s.Binary)
		}
		if !strings.Contains(string(readme), "| `"+s.Name+"`") {
			t.Errorf("%s is in --help but not in README's table", s.Name)
		}
	}
	slices.Sort(read)
	slices.Sort(listed)
	if !slices.Equal(read, listed) {
		t.Errorf("config.go reads %v\n--help lists %v", read, listed)
	}
	var ing, wk bytes.Buffer
	config.PrintHelp(&ing, "ingress")
	config.PrintHelp(&wk, "worker")
	if !strings.Contains(ing.String(), "PINRESET_ASP_FILE") || strings.Contains(ing.String(), "PINRESET_PEPPERS") ||
		!strings.Contains(wk.String(), "PINRESET_PEPPERS (or _FILE)") || strings.Contains(wk.String(), "PINRESET_ASP_FILE") {
		t.Errorf("help per binary:\n%s\n%s", ing.String(), wk.String())
	}
}
