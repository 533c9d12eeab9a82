package config_test

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/pinhash"
	"github.com/kmwallet/pinreset/internal/pinreset"
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

// TestHelpShowsTheDefaults: the default --help prints for a setting is the
// one the loader applies. Setting the variable to the printed default must
// load exactly what leaving it unset loads, through the real parser, so a
// default changed in one place and not the other fails here. Defaults that
// are words rather than values are checked against what they describe.
func TestHelpShowsTheDefaults(t *testing.T) {
	words := map[string]bool{"required": true, "none": true, "system roots": true}
	for _, s := range config.Settings {
		t.Run(s.Name, func(t *testing.T) {
			switch {
			case words[s.Default]:
				return // no value: unset, or refused at start
			case s.Name == "PINRESET_ADMIN_ADDR":
				want := "ingress " + config.DefaultIngressAdminAddr + ", worker " + config.DefaultWorkerAdminAddr
				if s.Default != want {
					t.Errorf("help shows %q, want %q", s.Default, want)
				}
				return
			case s.Name == "PINRESET_WORKER_CONCURRENCY", s.Name == "PINRESET_HASH_CONCURRENCY":
				w := loadWorker(t, workerEnv(nil))
				got := map[string]string{"4 × cores": "", "cores": ""}
				if _, ok := got[s.Default]; !ok ||
					(s.Default == "cores") != (s.Name == "PINRESET_HASH_CONCURRENCY") ||
					w.Concurrency != config.DefaultConcurrency() || w.HashConcurrency != config.DefaultHashConcurrency() {
					t.Errorf("help shows %q; loaded concurrency %d and %d", s.Default, w.Concurrency, w.HashConcurrency)
				}
				return
			case s.Name == "PINRESET_WORKER_ID":
				host, _ := os.Hostname()
				if s.Default != "host name" || loadWorker(t, workerEnv(nil)).WorkerID != host {
					t.Errorf("help shows %q, loader uses the host name", s.Default)
				}
				return
			case s.Name == "PINRESET_INGRESS_ID":
				host, _ := os.Hostname()
				if s.Default != "host name" || loadIngress(t, ingressEnv(nil)).IngressID != host {
					t.Errorf("help shows %q, loader uses the host name", s.Default)
				}
				return
			}
			if s.Binary != "worker" {
				unset := loadIngress(t, ingressEnv(nil))
				set := loadIngress(t, ingressEnv(map[string]string{s.Name: s.Default}))
				if !reflect.DeepEqual(set, unset) {
					t.Errorf("ingress: help shows %q, but it loads\n%+v\nand unset loads\n%+v", s.Default, set, unset)
				}
			}
			if s.Binary != "ingress" {
				unset := loadWorker(t, workerEnv(nil))
				set := loadWorker(t, workerEnv(map[string]string{s.Name: s.Default}))
				if !reflect.DeepEqual(set, unset) {
					t.Errorf("worker: help shows %q, but it loads\n%+v\nand unset loads\n%+v", s.Default, set, unset)
				}
			}
		})
	}
}

var update = flag.Bool("update", false, "rewrite README.md's configuration table from Settings")

// TestREADMEConfigurationIsCurrent: README.md's configuration table is the
// one Settings renders (`make docs` rewrites it).
func TestREADMEConfigurationIsCurrent(t *testing.T) {
	const path = "../../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)(<!-- settings:begin[^\n]*-->\n)(.*?)(<!-- settings:end -->)`)
	m := re.FindSubmatchIndex(readme)
	if m == nil {
		t.Fatal("README.md has no <!-- settings:begin --> ... <!-- settings:end --> block")
	}
	want := config.MarkdownTable()
	if got := string(readme[m[4]:m[5]]); got != want {
		if !*update {
			t.Fatalf("README.md's configuration table is stale: run `make docs`\n--- README\n%s\n--- Settings\n%s", got, want)
		}
		out := append(append(append([]byte{}, readme[:m[4]]...), want...), readme[m[5]:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDefaultsAgreeWithTheDomain: the defaults Settings gives the domain's
// knobs are the domain's own (argon2 parameters, member rules, the tran
// window).
func TestDefaultsAgreeWithTheDomain(t *testing.T) {
	w := loadWorker(t, workerEnv(nil))
	p, r := pinhash.DefaultParams(), pinreset.DefaultRules()
	if w.Argon2MemoryKiB != p.Memory || w.Argon2Time != p.Time || w.Argon2Threads != p.Threads {
		t.Errorf("argon2 defaults %d/%d/%d, pinhash's %+v", w.Argon2MemoryKiB, w.Argon2Time, w.Argon2Threads, p)
	}
	if w.LockAfter != r.LockAfter || w.LockFor != r.LockFor || w.ReplayWindow != r.ReplayWindow {
		t.Errorf("rule defaults %d %v %v, pinreset's %+v", w.LockAfter, w.LockFor, w.ReplayWindow, r)
	}
	if config.DefaultTranWindow != kmheader.DefaultWindow {
		t.Errorf("tran window %v, kmheader's %v", config.DefaultTranWindow, kmheader.DefaultWindow)
	}
}
