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

	"github.com/kmwallet/pinreset/internal/asp"
)

const aspUsage = `usage: pwctl asp <command> -file REGISTRY.json -id ASPID [flags]

commands:
  add      register an ASP with a fresh access key and secret key (printed once)
  rotate   give an ASP a second credential; both work until retire
  retire   remove an ASP's older credential, ending a rotation

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
	if err := fs.Parse(args[1:]); err != nil {
		return err
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
		f.ASPs = append(f.ASPs, asp.ASP{ID: *id, Name: *name, Credentials: []asp.Credential{fresh}})
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
	if fresh.AccessKey != "" {
		fmt.Fprintf(stdout, "ASP %s\naccess key: %s\nsecret key: %s\nGive both to the ASP over a secure channel; they are not shown again.\n", *id, fresh.AccessKey, fresh.SecretKey)
	} else {
		fmt.Fprintf(stdout, "ASP %s: the older credential is retired\n", *id)
	}
	return nil
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
