package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/pinreset"
)

const aspUsage = `usage: pwctl asp <command> -file REGISTRY.json -id ASPID [flags]

commands:
  add      register an ASP with a fresh access key and secret key (printed once);
           -schemes KMV2 registers it for KMV2 tokens (default KMV1)
  rotate   give an ASP a second credential; both work until retire
  retire   remove an ASP's older credential, ending a rotation
  schemes  set the tran token schemes an ASP may use: -schemes KMV1,KMV2
           opens a migration to KMV2, -schemes KMV2 ends it (README, Security)

The registry file is what the ingress reads (PINRESET_ASP_FILE); keep it in
a secret store. Restart or roll the ingresses to load a change.
`

// aspCmd edits the ASP registry file.
func aspCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, aspUsage)
		if len(args) == 0 {
			return errors.New("asp: no command")
		}
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("pwctl asp "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "the ASP registry file (created by add if missing)")
	id := fs.String("id", "", "the ASP id, 15 letters, digits, _ or -")
	name := fs.String("name", "", "the ASP's name (add)")
	schemesArg := fs.String("schemes", "", "tran token schemes, comma-separated: KMV1, KMV2, or KMV1,KMV2 while migrating (add: default KMV1; schemes: required)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	schemes, err := parseSchemes(*schemesArg)
	if err != nil {
		return fmt.Errorf("asp: -schemes: %w", err)
	}
	if *file == "" || *id == "" {
		fs.Usage()
		return errors.New("asp: -file and -id are required")
	}
	f := asp.File{}
	if b, err := os.ReadFile(*file); err == nil {
		if f, err = asp.Parse(b); err != nil {
			return fmt.Errorf("asp: %s: %w", *file, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) || args[0] != "add" {
		return fmt.Errorf("asp: %w", err)
	}
	i := -1
	for k := range f.ASPs {
		if f.ASPs[k].ID == *id {
			i = k
		}
	}
	var fresh asp.Credential
	switch args[0] {
	case "add":
		if i >= 0 {
			return fmt.Errorf("asp add: %s is already registered (use rotate)", *id)
		}
		fresh = newCredential()
		f.ASPs = append(f.ASPs, asp.ASP{ID: *id, Name: *name, Credentials: []asp.Credential{fresh}, TokenSchemes: schemes})
	case "rotate":
		if i < 0 {
			return fmt.Errorf("asp rotate: %s is not registered", *id)
		}
		if len(f.ASPs[i].Credentials) > 1 {
			return fmt.Errorf("asp rotate: %s is already rotating; retire the old credential first", *id)
		}
		fresh = newCredential()
		f.ASPs[i].Credentials = append(f.ASPs[i].Credentials, fresh)
	case "retire":
		if i < 0 || len(f.ASPs[i].Credentials) < 2 {
			return fmt.Errorf("asp retire: %s has no older credential to retire", *id)
		}
		f.ASPs[i].Credentials = f.ASPs[i].Credentials[1:]
	case "schemes":
		if i < 0 {
			return fmt.Errorf("asp schemes: %s is not registered", *id)
		}
		if *schemesArg == "" {
			return errors.New("asp schemes: -schemes is required")
		}
		f.ASPs[i].TokenSchemes = schemes
	default:
		fmt.Fprint(stderr, aspUsage)
		return fmt.Errorf("asp: unknown command %q", args[0])
	}
	if _, err := asp.New(f.ASPs); err != nil { // the ingress must be able to load it
		return fmt.Errorf("asp: %w", err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp := *file + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("asp: %w", err)
	}
	if err := os.Rename(tmp, *file); err != nil { // never a half-written registry
		return fmt.Errorf("asp: %w", err)
	}
	switch {
	case fresh.AccessKey != "":
		fmt.Fprintf(stdout, "ASP %s\naccess key: %s\nsecret key: %s\nGive both to the ASP over a secure channel; they are not shown again.\n", *id, fresh.AccessKey, fresh.SecretKey)
	case args[0] == "schemes":
		a := asp.ASP{TokenSchemes: schemes}
		fmt.Fprintf(stdout, "ASP %s: tran token schemes %v; roll the ingresses to apply\n", *id, a.Schemes())
	default:
		fmt.Fprintf(stdout, "ASP %s: the older credential is retired\n", *id)
	}
	return nil
}

// parseSchemes reads a comma-separated list of tran token schemes. KMV1
// alone is the default and is returned as none, so that the registry file
// of a KMV1 ASP stays readable by ingresses that predate KMV2.
func parseSchemes(s string) ([]pinreset.Scheme, error) {
	if s == "" {
		return nil, nil
	}
	var out []pinreset.Scheme
	for _, v := range strings.Split(s, ",") {
		sc := pinreset.Scheme(strings.TrimSpace(v))
		if !sc.Known() {
			return nil, fmt.Errorf("%q is not KMV1 or KMV2", v)
		}
		if slices.Contains(out, sc) {
			return nil, fmt.Errorf("%s listed twice", sc)
		}
		out = append(out, sc)
	}
	if len(out) == 1 && out[0] == pinreset.SchemeKMV1 {
		return nil, nil
	}
	return out, nil
}

// newCredential makes a 40-character access key and a 48-character secret
// key of letters and digits from crypto/rand.
func newCredential() asp.Credential {
	return asp.Credential{AccessKey: randomAlnum(40), SecretKey: randomAlnum(48)}
}

func randomAlnum(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, n)
	var b [1]byte
	for i := 0; i < n; {
		_, _ = rand.Read(b[:])
		if int(b[0]) >= 256-256%len(alphabet) { // reject to keep it uniform
			continue
		}
		out[i] = alphabet[int(b[0])%len(alphabet)]
		i++
	}
	return string(out)
}
