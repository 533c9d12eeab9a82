package deployments

// The deployment files (this directory: compose.yaml, k8s/*.yaml and the
// Dockerfile) name settings, ports, probe paths, files and images that the
// code defines. images_test.go builds and runs the images and the compose
// file (make images-test); k8s_test.go decodes the manifests into
// Kubernetes' types. This test, part of `make test`, cross-checks the files
// against the code without running anything:
//
//   - every YAML file parses (multi-document);
//   - every PINRESET_ variable they name is one of config.Settings, the
//     table the loader reads by (NAME_FILE counts as NAME only where NAME
//     is a secret);
//   - a binary is given only the variables it reads (no peppers or MongoDB
//     URI on the ingress), secrets only as files, and the values load
//     (config.LoadIngress / config.LoadWorker accept them);
//   - Kubernetes: every container port is the port of an _ADDR setting of
//     that container, every HTTP probe asks /healthz or /readyz on a
//     declared port, no probe or healthcheck needs a shell, Services,
//     NetworkPolicies, PDBs and the HPA reach what they mean to;
//   - compose: every container on the host network, every listener on
//     127.0.0.1 and on a port of its own, the brokers the service is given
//     are where Kafka and the sandbox listen;
//   - every secret file or directory a variable names is mounted;
//   - every image of ours is a stage of deployments/Dockerfile, which builds
//     FROM scratch as the non-root user (the sandbox image from the Debian
//     base make sandbox-base imports); the sandbox image only in compose's
//     sandbox profile, never in Kubernetes;
//   - the worker's resources follow its concurrency and argon2 memory, and
//     grace periods outlast PINRESET_SHUTDOWN_TIMEOUT.
//
// TestDeploymentsCheckCatchesMistakes proves that each check fails on the
// mistake it is meant to catch, on a copy of the files with one edit.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kmwallet/pinreset/internal/config"
)

// deploymentsDir is this directory.
const deploymentsDir = "."

func TestDeployments(t *testing.T) {
	settings := depReadSettings()
	for _, p := range depCheck(t, deploymentsDir, settings) {
		t.Error(p)
	}
}

func TestDeploymentsCheckCatchesMistakes(t *testing.T) {
	settings := depReadSettings()
	cases := []struct {
		name, file, old, new string
		want                 string // a problem must contain this
	}{
		{"ConfigMap key typo", "k8s/configmap.yaml", `PINRESET_RESULT_WAIT:`, `PINRESET_RESULT_WIAT:`, "PINRESET_RESULT_WIAT"},
		{"k8s env name typo", "k8s/worker-deployment.yaml", `name: PINRESET_MONGO_URI_FILE`, `name: PINRESET_MONGO_URL_FILE`, "PINRESET_MONGO_URL_FILE"},
		{"_FILE of a setting that is no secret", "k8s/ingress-deployment.yaml", `name: PINRESET_ASP_FILE`, `name: PINRESET_LOG_LEVEL_FILE`, "PINRESET_LOG_LEVEL_FILE"},
		{"compose env typo", "compose.yaml", `PINRESET_LOCK_AFTER:`, `PINRESET_LOCKAFTER:`, "PINRESET_LOCKAFTER"},
		{"worker setting on the ingress", "k8s/ingress-deployment.yaml",
			"            - name: GOMEMLIMIT\n",
			"            - name: PINRESET_PEPPERS_FILE\n              value: /etc/pinreset/secrets/peppers\n            - name: GOMEMLIMIT\n",
			"only the worker reads"},
		{"worker without MADV_FREE", "k8s/worker-deployment.yaml", `value: "madvdontneed=0"`, `value: "gctrace=1"`, "madvdontneed=0"},
		{"secret inline", "compose.yaml", `PINRESET_PEPPERS_FILE: "/run/secrets/peppers"`, `PINRESET_PEPPERS: "p1:AAAA"`, "as a file"},
		{"bad duration", "k8s/configmap.yaml", `PINRESET_LOCK_FOR: "15m"`, `PINRESET_LOCK_FOR: "15"`, "PINRESET_LOCK_FOR"},
		{"loopback listen address", "k8s/configmap.yaml", `PINRESET_HTTP_ADDR: ":8080"`, `PINRESET_HTTP_ADDR: "127.0.0.1:8080"`, "loopback"},
		{"probe path", "k8s/ingress-deployment.yaml", `path: /readyz`, `path: /ready`, `"/ready"`},
		{"worker probe on an undeclared port", "k8s/worker-deployment.yaml", "path: /readyz\n              port: admin", "path: /readyz\n              port: admn", "admn"},
		{"admin listener loopback but port declared", "k8s/configmap.yaml", `PINRESET_ADMIN_ADDR: ":9090"`, `PINRESET_ADMIN_ADDR: "127.0.0.1:9090"`, "container port 9090"},
		{"compose admin port taken twice", "compose.yaml", `PINRESET_ADMIN_ADDR: "127.0.0.1:29093"`, `PINRESET_ADMIN_ADDR: "127.0.0.1:29091"`, "also the listener of"},
		{"probe port", "k8s/ingress-deployment.yaml", "path: /healthz\n              port: http\n            periodSeconds: 10", "path: /healthz\n              port: 8081\n            periodSeconds: 10", "8081"},
		{"exec probe", "k8s/ingress-deployment.yaml", "livenessProbe:\n            httpGet:\n              path: /healthz\n              port: http\n",
			"livenessProbe:\n            exec:\n              command: [\"/bin/sh\", \"-c\", \"true\"]\n", "exec"},
		{"container port", "k8s/ingress-deployment.yaml", `containerPort: 8080`, `containerPort: 8081`, "8081"},
		{"Service targetPort", "k8s/ingress-service.yaml", `targetPort: http`, `targetPort: htp`, "htp"},
		{"NetworkPolicy port", "k8s/networkpolicy.yaml", `port: 8080`, `port: 8008`, "8008"},
		{"compose listener off loopback", "compose.yaml", `PINRESET_HTTP_ADDR: "127.0.0.1:28080"`, `PINRESET_HTTP_ADDR: ":28080"`, "127.0.0.1"},
		{"compose container off the host network", "compose.yaml", "    profiles: [\"sandbox\"]\n    network_mode: host\n", "    profiles: [\"sandbox\"]\n", "network_mode"},
		{"compose brokers not where the sandbox listens", "compose.yaml", `"-kafka-addr", "127.0.0.1:29092"`, `"-kafka-addr", "127.0.0.1:29095"`, "PINRESET_KAFKA_BROKERS"},
		{"compose brokers not where Kafka listens", "compose.yaml", `KAFKA_ADVERTISED_LISTENERS: "PLAINTEXT://127.0.0.1:29092"`, `KAFKA_ADVERTISED_LISTENERS: "PLAINTEXT://127.0.0.1:29096"`, "PINRESET_KAFKA_BROKERS"},
		{"compose sandbox outside its profile", "compose.yaml", `profiles: ["sandbox"]`, `profiles: ["infra"]`, "sandbox"},
		{"secret file not mounted", "k8s/worker-deployment.yaml", `value: /etc/pinreset/secrets/peppers`, `value: /etc/pinreset/secret/peppers`, "not mounted"},
		{"compose secret not given", "compose.yaml", "    - peppers\n    - fingerprint_keys\n", "    - fingerprint_keys\n", "not mounted"},
		{"compose image of no stage", "compose.yaml", `pinreset-worker:local`, `pinreset-wroker:local`, "pinreset-wroker"},
		{"compose image not a variable", "compose.yaml", `image: ${INGRESS_IMAGE:-pinreset-ingress:local}`, `image: pinreset-ingress:local`, "INGRESS_IMAGE"},
		{"Dockerfile base image", "Dockerfile", "FROM scratch AS base", "FROM debian:12 AS base", "scratch"},
		{"Dockerfile root user", "Dockerfile", "COPY rootfs/ /\nUSER 65532:65532", "COPY rootfs/ /\nUSER 0:0", "USER 65532"},
		{"Dockerfile stage missing", "Dockerfile", "FROM base AS pwctl", "FROM base AS pwctl-tool", "pwctl"},
		{"k8s runs the sandbox image", "k8s/worker-deployment.yaml", `kmwallet/pinreset-worker:CHANGE_ME`, `kmwallet/pinreset-sandbox:CHANGE_ME`, "sandbox"},
		{"k8s image of no stage", "k8s/worker-deployment.yaml", `kmwallet/pinreset-worker:CHANGE_ME`, `kmwallet/pinreset-wrker:CHANGE_ME`, "pinreset-wrker"},
		{"third-party image without tag", "compose.yaml", `image: ${MONGO_IMAGE:-mongo:7}`, `image: ${MONGO_IMAGE:-mongo}`, "mongo"},
		{"YAML syntax", "k8s/pdb.yaml", "  name: pinreset-worker\n", "  name: [pinreset-worker\n", "pdb.yaml"},
		{"worker under-sized", "k8s/configmap.yaml", `PINRESET_WORKER_CONCURRENCY: "2"`, `PINRESET_WORKER_CONCURRENCY: "4"`, "PINRESET_WORKER_CONCURRENCY"},
		{"grace period", "k8s/ingress-deployment.yaml", `terminationGracePeriodSeconds: 30`, `terminationGracePeriodSeconds: 15`, "terminationGracePeriodSeconds"},
		{"root filesystem writable", "k8s/worker-deployment.yaml", `readOnlyRootFilesystem: true`, `readOnlyRootFilesystem: false`, "readOnlyRootFilesystem"},
		{"HPA target", "k8s/worker-hpa.yaml", "    name: pinreset-worker\n  minReplicas", "    name: pinreset-wroker\n  minReplicas", "pinreset-wroker"},
		{"kustomization misses a file", "k8s/kustomization.yaml", "  - pdb.yaml\n", "", "pdb.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := depCopy(t, deploymentsDir)
			p := filepath.Join(dir, filepath.FromSlash(tc.file))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), tc.old); n != 1 {
				t.Fatalf("%s: %q occurs %d times, want once (update this test case to the file)", tc.file, tc.old, n)
			}
			if err := os.WriteFile(p, []byte(strings.Replace(string(b), tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			problems := depCheck(t, dir, settings)
			for _, pr := range problems {
				if strings.Contains(pr, tc.want) {
					t.Logf("caught: %s", pr)
					return
				}
			}
			t.Errorf("no problem mentions %q; got %d:\n%s", tc.want, len(problems), strings.Join(problems, "\n"))
		})
	}
}

// depSettings are the PINRESET_ variables internal/config reads.
type depSettings struct {
	all    map[string]bool            // every name
	secret map[string]bool            // names that also take NAME_FILE
	by     map[string]map[string]bool // binary ("ingress", "worker") -> the names it reads
}

var depNameRe = regexp.MustCompile(`^PINRESET_[A-Z0-9_]+$`)

// depReadSettings reads config.Settings, the one table of the variables:
// which binary reads each ("both": ingress and worker) and which are
// secrets that also take NAME_FILE.
func depReadSettings() depSettings {
	s := depSettings{all: map[string]bool{}, secret: map[string]bool{},
		by: map[string]map[string]bool{"ingress": {}, "worker": {}}}
	for _, st := range config.Settings {
		s.all[st.Name] = true
		s.secret[st.Name] = st.File
		for _, b := range []string{"ingress", "worker"} {
			if st.Binary == b || st.Binary == "both" {
				s.by[b][st.Name] = true
			}
		}
	}
	return s
}

// depChecker collects the problems of one deployments directory.
type depChecker struct {
	t        *testing.T
	root     string
	settings depSettings
	problems []string
	stages   map[string]bool              // stage names of deployments/Dockerfile
	files    map[string][]any             // YAML file (slash path under root) -> documents
	cms      map[string]map[string]string // ConfigMap name -> data
	// listeners: host-network listen address -> the container that has it.
	listeners map[string]string
}

func (c *depChecker) errorf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// depCheck runs every check on the deployments directory root.
func depCheck(t *testing.T, root string, settings depSettings) []string {
	c := &depChecker{t: t, root: root, settings: settings, files: map[string][]any{}, cms: map[string]map[string]string{}, listeners: map[string]string{}}
	c.parseAll()
	c.checkDockerfile()
	for _, rel := range depKeys(c.files) {
		for _, d := range c.files[rel] {
			c.checkNames(rel, d)
		}
	}
	if docs, ok := c.files["compose.yaml"]; ok {
		for _, d := range docs {
			c.checkCompose(d)
		}
	} else {
		c.errorf("compose.yaml: missing")
	}
	c.checkKubernetes()
	return c.problems
}

// parseAll parses every YAML file under root, every document of each.
func (c *depChecker) parseAll() {
	err := filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (!strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml")) {
			return nil
		}
		rel, _ := filepath.Rel(c.root, p)
		rel = filepath.ToSlash(rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		docs := []any{}
		for {
			var doc any
			err := dec.Decode(&doc)
			if err == io.EOF {
				break
			}
			if err != nil {
				c.errorf("%s: does not parse: %v", rel, err)
				break
			}
			if doc != nil {
				docs = append(docs, doc)
			}
		}
		c.files[rel] = docs
		return nil
	})
	if err != nil {
		c.errorf("walk %s: %v", c.root, err)
	}
}

// depTargets are the production stages of the Dockerfile (--target): one
// image each. depSandbox is the stage of the embedded infrastructure, for
// local stacks only.
var depTargets = []string{"ingress", "worker", "pwctl"}

const depSandbox = "sandbox"

var (
	depStageRe = regexp.MustCompile(`(?i)^\s*FROM\s+\S+\s+AS\s+([a-z0-9_.-]+)\s*$`)
	depFromRe  = regexp.MustCompile(`(?i)^\s*FROM\s+(\S+)`)
)

// checkDockerfile reads deployments/Dockerfile: its stages (the build
// targets) and the properties the images must have: built FROM scratch or
// an earlier stage (no base image to pull: these machines reach no
// registry, and an empty image has no shell or libc to patch), as user
// 65532. The one exception is the sandbox stage, FROM ${SANDBOX_BASE}: a
// local image (localhost/) that make sandbox-base builds from Debian's
// mirror, since PostgreSQL needs a userland.
func (c *depChecker) checkDockerfile() {
	c.stages = c.dockerStages(filepath.Join(c.root, "Dockerfile"))
	b, _ := os.ReadFile(filepath.Join(c.root, "Dockerfile"))
	var code []string
	seen := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		code = append(code, l)
		if m := depFromRe.FindStringSubmatch(l); m != nil {
			s := depStageRe.FindStringSubmatch(l)
			sandboxBase := m[1] == "${SANDBOX_BASE}" && s != nil && s[1] == depSandbox
			if m[1] != "scratch" && !seen[m[1]] && !sandboxBase {
				c.errorf("Dockerfile: FROM %s: build FROM scratch or an earlier stage (no base image can be pulled here)", m[1])
			}
			if s != nil {
				seen[s[1]] = true
			}
		}
	}
	src := strings.Join(code, "\n")
	if strings.Contains(src, "${SANDBOX_BASE}") && !strings.Contains(src, "ARG SANDBOX_BASE=localhost/") {
		c.errorf("Dockerfile: SANDBOX_BASE must default to a local image (ARG SANDBOX_BASE=localhost/...): none can be pulled here")
	}
	if !strings.Contains(src, "FROM scratch") {
		c.errorf("Dockerfile: does not contain %q", "FROM scratch")
	}
	// Every stage that starts from an image (not from an earlier stage)
	// sets the user; the others inherit it.
	for _, stage := range strings.Split(src, "\nFROM ")[1:] {
		from, _, _ := strings.Cut(stage, " ")
		if (from == "scratch" || from == "${SANDBOX_BASE}") && !strings.Contains(stage, "\nUSER 65532:65532") {
			c.errorf("Dockerfile: the stage FROM %s does not set USER 65532:65532", from)
		}
	}
	for _, s := range append(depTargets, depSandbox) {
		if !c.stages[s] {
			c.errorf("Dockerfile: no stage %q (--target %s)", s, s)
		}
	}
}

func (c *depChecker) dockerStages(file string) map[string]bool {
	b, err := os.ReadFile(file)
	if err != nil {
		c.errorf("Dockerfile %s: %v", file, err)
		return map[string]bool{}
	}
	stages := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := depStageRe.FindStringSubmatch(l); m != nil {
			stages[m[1]] = true
		}
	}
	return stages
}

// checkNames checks every PINRESET_ name in a document: mapping keys
// (environment maps, ConfigMap data), strings that are a name (env list
// entries' name) and "NAME=value" list entries.
func (c *depChecker) checkNames(rel string, doc any) {
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if strings.HasPrefix(k, "PINRESET_") {
					c.checkName(rel, k)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			name, _, _ := strings.Cut(v, "=")
			if depNameRe.MatchString(name) {
				c.checkName(rel, name)
			}
		}
	}
	walk(doc)
}

// base maps a name to the setting it sets: itself, or NAME for the NAME_FILE
// of a secret. ok is false for a name internal/config does not read.
func (c *depChecker) base(name string) (string, bool) {
	if c.settings.all[name] {
		return name, true
	}
	if b, ok := strings.CutSuffix(name, "_FILE"); ok && c.settings.secret[b] {
		return b, true
	}
	return "", false
}

func (c *depChecker) checkName(rel, name string) {
	if _, ok := c.base(name); ok {
		return
	}
	if b, ok := strings.CutSuffix(name, "_FILE"); ok && c.settings.all[b] {
		c.errorf("%s: %s: %s is no secret, it has no _FILE variant", rel, name, b)
		return
	}
	c.errorf("%s: %s: internal/config reads no such variable", rel, name)
}

// depWorkload is one container (Kubernetes) or service (compose) running a
// binary of ours.
type depWorkload struct {
	where  string
	binary string            // "ingress", "worker", "pwctl"
	env    map[string]string // every variable set; valueFrom ones as ""
	mounts []string          // paths under which files are mounted
	ports  []int             // container ports
	// hostNet: the container shares the host's network (compose here):
	// every listener must be on 127.0.0.1, set explicitly (the defaults
	// are make run's ports) and on a port no other container uses.
	hostNet bool
}

// checkWorkload checks what one binary is given: only its settings, secrets
// only as files that are mounted, values that load, listen addresses and
// ports that agree.
func (c *depChecker) checkWorkload(w depWorkload) (addrPorts map[int]bool) {
	addrPorts = map[int]bool{}
	if w.binary != "ingress" && w.binary != "worker" {
		return addrPorts
	}
	other := map[string]string{"ingress": "worker", "worker": "ingress"}[w.binary]
	for _, name := range depKeys(w.env) {
		if !strings.HasPrefix(name, "PINRESET_") {
			continue
		}
		b, ok := c.base(name)
		if !ok {
			continue // reported by checkNames
		}
		if !c.settings.by[w.binary][b] {
			if c.settings.by[other][b] {
				c.errorf("%s: %s: only the %s reads it", w.where, name, other)
			} else {
				c.errorf("%s: %s: the %s does not read it", w.where, name, w.binary)
			}
		}
		if c.settings.secret[name] {
			c.errorf("%s: %s: give a secret as a file, with %s_FILE", w.where, name, name)
		}
		isPath := strings.HasSuffix(name, "_FILE") || strings.HasSuffix(name, "_DIR")
		if v := w.env[name]; isPath && v != "" && !slices.ContainsFunc(w.mounts, func(m string) bool {
			return v == m || strings.HasPrefix(v, strings.TrimSuffix(m, "/")+"/")
		}) {
			c.errorf("%s: %s=%s: not mounted (mounts: %v)", w.where, name, v, w.mounts)
		}
		// On the host network: loopback, and one container per address.
		if v := w.env[name]; w.hostNet && strings.HasSuffix(name, "_ADDR") && v != "off" {
			if host, _, err := net.SplitHostPort(v); err != nil || host != "127.0.0.1" {
				c.errorf("%s: %s=%q: on the host network listen on 127.0.0.1 only", w.where, name, v)
			}
			if other, ok := c.listeners[v]; ok {
				c.errorf("%s: %s=%q is also the listener of %s", w.where, name, v, other)
			}
			c.listeners[v] = w.where
			continue
		}
		// A listener reachable from outside the container (not loopback,
		// not "off") must be a declared port; only such a port may be.
		if v := w.env[name]; strings.HasSuffix(name, "_ADDR") && v != "" && v != "off" {
			p, loopback, err := depAddrPort(v)
			switch {
			case err != nil:
				c.errorf("%s: %s=%q: %v", w.where, name, v, err)
			case !loopback:
				addrPorts[p] = true
				if !slices.Contains(w.ports, p) {
					c.errorf("%s: %s=%q: port %d is not a declared container port %v", w.where, name, v, p, w.ports)
				}
			}
		}
	}

	// The values must load. Secret files get valid stand-ins.
	dir := c.t.TempDir()
	getenv := func(name string) string {
		v := w.env[name]
		if b, ok := strings.CutSuffix(name, "_FILE"); ok && c.settings.secret[b] && v != "" {
			p := filepath.Join(dir, b)
			if err := os.WriteFile(p, []byte(depStandIn(b)), 0o600); err != nil {
				c.t.Fatal(err)
			}
			return p
		}
		return v
	}
	switch w.binary {
	case "ingress":
		cfg, err := config.LoadIngress(getenv)
		if err != nil {
			c.errorf("%s: the ingress refuses its settings: %v", w.where, err)
			break
		}
		// The API must be reachable, also when left at its default (when
		// set, the _ADDR rule above checked it).
		n, loopback, err := depAddrPort(cfg.HTTPAddr)
		switch {
		case w.hostNet:
		case w.env["PINRESET_HTTP_ADDR"] != "" && !loopback:
		case err != nil:
			c.errorf("%s: PINRESET_HTTP_ADDR %q: %v", w.where, cfg.HTTPAddr, err)
		case loopback:
			c.errorf("%s: PINRESET_HTTP_ADDR %q listens on a loopback address: nothing outside the container reaches it", w.where, cfg.HTTPAddr)
		case !slices.Contains(w.ports, n):
			c.errorf("%s: PINRESET_HTTP_ADDR %q: port %d is not a declared container port %v", w.where, cfg.HTTPAddr, n, w.ports)
		}
	case "worker":
		if _, err := config.LoadWorker(getenv); err != nil {
			c.errorf("%s: the worker refuses its settings: %v", w.where, err)
		}
	}
	for _, p := range w.ports {
		if !addrPorts[p] {
			c.errorf("%s: container port %d is the port of no _ADDR setting of it (those name %v)", w.where, p, depInts(addrPorts))
		}
	}
	return addrPorts
}

// depStandIn is a valid value for a secret, for the load check.
func depStandIn(name string) string {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	switch name {
	case "PINRESET_MONGO_URI":
		return "mongodb://127.0.0.1:27017/"
	default: // seal keys, peppers: id:base64(32 bytes)
		return "standin:" + key
	}
}

// depAddrPort returns the port of a listen address and whether its host is
// a loopback one (unreachable from outside the container).
func depAddrPort(addr string) (port int, loopback bool, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, false, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, false, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	ip := net.ParseIP(host)
	return n, host == "localhost" || ip != nil && ip.IsLoopback(), nil
}

// workerSizing checks a worker's CPU and memory against its settings:
// cpu = concurrency x argon2 lanes, memory >= 64 Mi + concurrency x (argon2
// memory + 1 Mi), GOMEMLIMIT under the memory limit.
func (c *depChecker) workerSizing(where string, env map[string]string, cpuReq, cpuLim, memReq, memLim float64) {
	conc, err := strconv.Atoi(env["PINRESET_WORKER_CONCURRENCY"])
	if err != nil {
		c.errorf("%s: set PINRESET_WORKER_CONCURRENCY explicitly (its default follows the CPUs the runtime sees): %v", where, err)
		return
	}
	threads, memKiB := 1, 19456
	if v, ok := env["PINRESET_ARGON2_THREADS"]; ok {
		threads, _ = strconv.Atoi(v)
	}
	if v, ok := env["PINRESET_ARGON2_MEMORY_KIB"]; ok {
		memKiB, _ = strconv.Atoi(v)
	}
	cores := float64(conc * threads)
	if cpuReq >= 0 && cpuReq != cores {
		c.errorf("%s: cpu request %g, want PINRESET_WORKER_CONCURRENCY x PINRESET_ARGON2_THREADS = %g", where, cpuReq, cores)
	}
	if cpuLim >= 0 && cpuLim != cores {
		c.errorf("%s: cpu limit %g, want PINRESET_WORKER_CONCURRENCY x PINRESET_ARGON2_THREADS = %g", where, cpuLim, cores)
	}
	perHash := math.Ceil(float64(memKiB)/1024) + 1
	want := (64 + float64(conc)*perHash) * (1 << 20)
	if memReq >= 0 && memReq < want {
		c.errorf("%s: memory request %.0f Mi, want >= 64 Mi + PINRESET_WORKER_CONCURRENCY %d x %.0f Mi = %.0f Mi", where, memReq/(1<<20), conc, perHash, want/(1<<20))
	}
	if memLim >= 0 && memLim < max(want, memReq) {
		c.errorf("%s: memory limit %.0f Mi is under the request or %.0f Mi", where, memLim/(1<<20), want/(1<<20))
	}
	c.checkGOMEMLIMIT(where, env, memLim)
	if !slices.Contains(strings.Split(env["GODEBUG"], ","), "madvdontneed=0") {
		c.errorf("%s: GODEBUG %q, want madvdontneed=0 in it (internal/worker/gc.go: without it every hash faults its block in again)", where, env["GODEBUG"])
	}
}

func (c *depChecker) checkGOMEMLIMIT(where string, env map[string]string, memLim float64) {
	v, ok := env["GOMEMLIMIT"]
	if !ok || memLim < 0 {
		return
	}
	n, err := depBytes(v, map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30})
	if err != nil {
		c.errorf("%s: GOMEMLIMIT %q: %v", where, v, err)
	} else if n >= memLim {
		c.errorf("%s: GOMEMLIMIT %q is not under the memory limit", where, v)
	}
}

var (
	depK8sUnits     = map[string]float64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
	depComposeUnits = map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
	depQuantityRe   = regexp.MustCompile(`^([0-9.]+)([A-Za-z]*)$`)
)

func depBytes(s string, units map[string]float64) (float64, error) {
	m := depQuantityRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("not a quantity")
	}
	n, err := strconv.ParseFloat(m[1], 64)
	u, ok := units[m[2]]
	if !ok {
		u, ok = units[strings.ToLower(m[2])]
	}
	if err != nil || !ok {
		return 0, fmt.Errorf("not a quantity")
	}
	return n * u, nil
}

func depCPU(s string) (float64, error) {
	if v, ok := strings.CutSuffix(s, "m"); ok {
		n, err := strconv.ParseFloat(v, 64)
		return n / 1000, err
	}
	return strconv.ParseFloat(s, 64)
}

// ---- compose ----

// depImageVarRe is an image given as a variable with a default:
// ${NAME_IMAGE:-default}.
var depImageVarRe = regexp.MustCompile(`^\$\{([A-Z0-9_]+_IMAGE):-([^}]+)\}$`)

// checkCompose checks compose.yaml: every container on the host network
// (the tests here send traffic to loopback only), images as variables with
// pinned defaults, ours being stages of the Dockerfile, what each binary is
// given, and that the brokers the service is given are where both profiles'
// Kafka listens.
func (c *depChecker) checkCompose(doc any) {
	services := depMap(depMap(doc)["services"])
	if len(services) == 0 {
		c.errorf("compose.yaml: no services")
	}
	ours := map[string]int{}
	brokers := map[string]string{}   // PINRESET_KAFKA_BROKERS -> a service given it
	kafkaAt := map[string][]string{} // profile -> the broker addresses it listens on
	for _, name := range depKeys(services) {
		svc := depMap(services[name])
		where := "compose.yaml: service " + name
		if depStr(svc["network_mode"]) != "host" {
			c.errorf("%s: network_mode %q, want host (every container on the host network, every listener on 127.0.0.1)", where, depStr(svc["network_mode"]))
		}
		if svc["ports"] != nil || svc["expose"] != nil {
			c.errorf("%s: ports or expose on the host network: the listeners are the ports", where)
		}
		var profiles []string
		for _, p := range depList(svc["profiles"]) {
			profiles = append(profiles, depStr(p))
			if p := depStr(p); p != "infra" && p != "sandbox" {
				c.errorf("%s: profile %q, want infra or sandbox", where, p)
			}
		}
		image := depStr(svc["image"])
		m := depImageVarRe.FindStringSubmatch(image)
		if m == nil {
			c.errorf("%s: image %q: give it as ${NAME_IMAGE:-default} (INGRESS_IMAGE, WORKER_IMAGE, SANDBOX_IMAGE, KAFKA_IMAGE, MONGO_IMAGE)", where, image)
			continue
		}
		ref := m[2]
		if i := strings.LastIndex(ref, "/"); i >= 0 {
			ref = ref[i+1:]
		}
		repo, _, _ := strings.Cut(ref, ":")
		binary, isOurs := strings.CutPrefix(repo, "pinreset-")
		if !isOurs {
			// A third-party image: pinned to a version.
			if !strings.Contains(ref, ":") && !strings.Contains(ref, "@") || strings.HasSuffix(ref, ":latest") {
				c.errorf("%s: image %q: pin a version (name:tag or @digest)", where, m[2])
			}
			if strings.HasPrefix(m[2], "apache/kafka") {
				for _, p := range profiles {
					for _, l := range strings.Split(depStr(depMap(svc["environment"])["KAFKA_ADVERTISED_LISTENERS"]), ",") {
						if _, addr, ok := strings.Cut(l, "://"); ok && svc["entrypoint"] == nil {
							kafkaAt[p] = append(kafkaAt[p], addr)
						}
					}
				}
			}
			continue
		}
		if !c.stages[binary] || !slices.Contains(append(depTargets, depSandbox), binary) {
			c.errorf("%s: image %s: deployments/Dockerfile builds no pinreset-%s (its targets are %v)", where, m[2], binary, append(depTargets, depSandbox))
			continue
		}
		if want := strings.ToUpper(binary) + "_IMAGE"; m[1] != want {
			c.errorf("%s: image variable %s, want %s", where, m[1], want)
		}
		if binary == depSandbox {
			if !slices.Equal(profiles, []string{"sandbox"}) {
				c.errorf("%s: the sandbox image belongs in the sandbox profile only (profiles %v)", where, profiles)
			}
			args := depList(svc["command"])
			for i := 0; i+1 < len(args); i++ {
				if depStr(args[i]) == "-kafka-addr" {
					kafkaAt["sandbox"] = append(kafkaAt["sandbox"], depStr(args[i+1]))
				}
			}
			continue
		}
		if len(profiles) > 0 {
			c.errorf("%s: the service runs in every profile; profiles %v", where, profiles)
		}
		ours[binary]++
		w := depWorkload{where: where, binary: binary, env: map[string]string{}, hostNet: true}
		switch env := svc["environment"].(type) {
		case map[string]any:
			for k, v := range env {
				w.env[k] = depStr(v)
			}
		case []any:
			for _, e := range env {
				k, v, _ := strings.Cut(depStr(e), "=")
				w.env[k] = v
			}
		}
		for _, s := range depList(svc["secrets"]) {
			t := depStr(s)
			if m := depMap(s); m != nil {
				t = depStr(m["target"])
				if t == "" {
					t = depStr(m["source"])
				}
			}
			if !strings.HasPrefix(t, "/") {
				t = "/run/secrets/" + t
			}
			w.mounts = append(w.mounts, t)
		}
		for _, v := range depList(svc["volumes"]) {
			if m := depMap(v); m != nil {
				w.mounts = append(w.mounts, depStr(m["target"]))
			} else if parts := strings.Split(depStr(v), ":"); len(parts) >= 2 {
				w.mounts = append(w.mounts, parts[1])
			}
		}
		// The defaults are make run's addresses: set every listener.
		need := []string{"PINRESET_ADMIN_ADDR"}
		if binary == "ingress" {
			need = append(need, "PINRESET_HTTP_ADDR")
		}
		for _, n := range need {
			if w.env[n] == "" {
				c.errorf("%s: set %s (on the host network the default is make run's)", where, n)
			}
		}
		brokers[w.env["PINRESET_KAFKA_BROKERS"]] = where
		c.checkWorkload(w)

		// The images have no shell: a shell healthcheck cannot run.
		if hc := depMap(svc["healthcheck"]); hc != nil && hc["disable"] != true {
			test := hc["test"]
			if _, ok := test.(string); ok || len(depList(test)) > 0 && depStr(depList(test)[0]) == "CMD-SHELL" {
				c.errorf("%s: healthcheck %v needs a shell; the image has none", where, test)
			}
		}
		limits := depMap(depMap(depMap(svc["deploy"])["resources"])["limits"])
		memLim := -1.0
		if v, ok := limits["memory"]; ok {
			n, err := depBytes(depStr(v), depComposeUnits)
			if err != nil {
				c.errorf("%s: memory limit %v: %v", where, v, err)
			}
			memLim = n
		}
		if binary == "worker" {
			cpus := -1.0
			if v, ok := limits["cpus"]; ok {
				cpus, _ = strconv.ParseFloat(depStr(v), 64)
			}
			c.workerSizing(where, w.env, -1, cpus, -1, memLim)
		} else {
			c.checkGOMEMLIMIT(where, w.env, memLim)
		}
		if binary == "ingress" {
			c.checkGrace(where+": stop_grace_period", w.env, depDuration(svc["stop_grace_period"], 10*time.Second), 0)
		}
	}
	if ours["ingress"] < 1 || ours["worker"] < 1 {
		c.errorf("compose.yaml: services of ours %v, want the ingress and a worker at least", ours)
	}
	// Both profiles' Kafka must listen where the service is told it is.
	for _, p := range []string{"infra", "sandbox"} {
		for b, where := range brokers {
			for _, addr := range strings.Split(b, ",") {
				if !slices.Contains(kafkaAt[p], addr) {
					c.errorf("%s: PINRESET_KAFKA_BROKERS %s: profile %s's Kafka listens on %v", where, addr, p, kafkaAt[p])
				}
			}
		}
	}
}

// checkGrace: the time a stopped process is given must exceed the
// ingress's PINRESET_SHUTDOWN_TIMEOUT plus any pause before SIGTERM.
func (c *depChecker) checkGrace(where string, env map[string]string, grace, pause time.Duration) {
	shutdown := 15 * time.Second
	if d, err := time.ParseDuration(env["PINRESET_SHUTDOWN_TIMEOUT"]); err == nil {
		shutdown = d
	}
	if grace <= shutdown+pause {
		c.errorf("%s: %v, want more than PINRESET_SHUTDOWN_TIMEOUT %v + preStop %v", where, grace, shutdown, pause)
	}
}

func depDuration(v any, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	d, err := time.ParseDuration(depStr(v))
	if err != nil {
		return -1
	}
	return d
}

// ---- Kubernetes ----

type depObject struct {
	file, kind, name string
	obj              map[string]any
}

func (c *depChecker) checkKubernetes() {
	var objs []depObject
	for _, rel := range depKeys(c.files) {
		if !strings.HasPrefix(rel, "k8s/") || path.Base(rel) == "kustomization.yaml" {
			continue
		}
		for _, d := range c.files[rel] {
			m := depMap(d)
			o := depObject{file: rel, kind: depStr(m["kind"]), name: depStr(depMap(m["metadata"])["name"]), obj: m}
			if o.kind == "" || o.name == "" || depStr(m["apiVersion"]) == "" {
				c.errorf("%s: a document without apiVersion, kind or metadata.name", rel)
				continue
			}
			objs = append(objs, o)
			if o.kind == "ConfigMap" {
				data := map[string]string{}
				for k, v := range depMap(m["data"]) {
					data[k] = depStr(v)
				}
				c.cms[o.name] = data
			}
		}
	}
	c.checkKustomization()

	type podPorts struct {
		labels map[string]any
		ports  map[string]int // name -> port ("" names omitted)
		nums   map[int]bool
	}
	deployments := map[string]podPorts{}
	ours := 0
	for _, o := range objs {
		if o.kind != "Deployment" {
			continue
		}
		spec := depMap(o.obj["spec"])
		tpl := depMap(spec["template"])
		pod := depMap(tpl["spec"])
		pp := podPorts{labels: depMap(depMap(tpl["metadata"])["labels"]), ports: map[string]int{}, nums: map[int]bool{}}
		if !depSelects(depMap(depMap(spec["selector"])["matchLabels"]), pp.labels) {
			c.errorf("%s: Deployment %s: selector does not match the pod labels", o.file, o.name)
		}
		mountsOf := map[string]bool{}
		for _, v := range depList(pod["volumes"]) {
			mountsOf[depStr(depMap(v)["name"])] = true
		}
		for _, ct := range append(depList(pod["containers"]), depList(pod["initContainers"])...) {
			ct := depMap(ct)
			where := fmt.Sprintf("%s: Deployment %s container %s", o.file, o.name, depStr(ct["name"]))
			w := depWorkload{where: where, env: map[string]string{}}
			image := depStr(ct["image"])
			repo := image
			if i := strings.IndexAny(repo, "@"); i >= 0 {
				repo = repo[:i]
			}
			if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
				repo = repo[:i]
			}
			if last := path.Base(repo); strings.HasPrefix(last, "pinreset") {
				w.binary = strings.TrimPrefix(last, "pinreset-")
				switch {
				case w.binary == depSandbox:
					c.errorf("%s: image %s: the sandbox image (embedded broker and database) is for local stacks, never for a cluster", where, image)
				case !slices.Contains(depTargets, w.binary) || !c.stages[w.binary]:
					c.errorf("%s: image %s: deployments/Dockerfile builds no pinreset-%s (its targets are %v)", where, image, w.binary, depTargets)
				}
				ours++
			}
			for _, ef := range depList(ct["envFrom"]) {
				ef := depMap(ef)
				if ref := depMap(ef["configMapRef"]); ref != nil {
					data, ok := c.cms[depStr(ref["name"])]
					if !ok {
						c.errorf("%s: envFrom ConfigMap %q: no such ConfigMap", where, depStr(ref["name"]))
					}
					for k, v := range data {
						w.env[k] = v
					}
				}
				if ef["secretRef"] != nil {
					c.errorf("%s: envFrom secretRef: give secrets as files (NAME_FILE), not as the environment", where)
				}
			}
			for _, e := range depList(ct["env"]) {
				e := depMap(e)
				name := depStr(e["name"])
				w.env[name] = depStr(e["value"])
				if vf := depMap(e["valueFrom"]); vf["secretKeyRef"] != nil && strings.HasPrefix(name, "PINRESET_") {
					c.errorf("%s: %s from a secretKeyRef: give secrets as files (NAME_FILE), not as the environment", where, name)
				}
			}
			for _, m := range depList(ct["volumeMounts"]) {
				m := depMap(m)
				if !mountsOf[depStr(m["name"])] {
					c.errorf("%s: volumeMount %q: no such volume", where, depStr(m["name"]))
				}
				w.mounts = append(w.mounts, depStr(m["mountPath"]))
			}
			named := map[string]int{}
			for _, p := range depList(ct["ports"]) {
				p := depMap(p)
				n, _ := strconv.Atoi(depStr(p["containerPort"]))
				w.ports = append(w.ports, n)
				pp.nums[n] = true
				if nm := depStr(p["name"]); nm != "" {
					named[nm], pp.ports[nm] = n, n
				}
			}
			c.checkWorkload(w)
			if w.binary == "" {
				continue
			}
			// Probes: HTTP on a declared port, to /healthz or /readyz; never exec.
			for _, kind := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
				pr := depMap(ct[kind])
				if pr == nil {
					continue
				}
				if pr["exec"] != nil || pr["grpc"] != nil {
					c.errorf("%s: %s: exec and grpc probes cannot work (no shell, no gRPC health service); use httpGet", where, kind)
				}
				for _, h := range []map[string]any{depMap(pr["httpGet"]), depMap(pr["tcpSocket"])} {
					if h == nil {
						continue
					}
					if p := depStr(h["path"]); depMap(pr["httpGet"]) != nil && p != "/healthz" && p != "/readyz" {
						c.errorf("%s: %s: path %q, want /healthz or /readyz (the only health endpoints)", where, kind, p)
					}
					port := depStr(h["port"])
					if n, err := strconv.Atoi(port); err == nil && !slices.Contains(w.ports, n) || err != nil && named[port] == 0 {
						c.errorf("%s: %s: port %s is not a declared container port", where, kind, port)
					}
				}
			}
			c.checkSecurity(where, pod, ct)
			res := depMap(ct["resources"])
			q := func(kind, what string) (float64, bool) {
				v, ok := depMap(res[kind])[what]
				if !ok {
					c.errorf("%s: no resources.%s.%s", where, kind, what)
					return -1, false
				}
				var n float64
				var err error
				if what == "cpu" {
					n, err = depCPU(depStr(v))
				} else {
					n, err = depBytes(depStr(v), depK8sUnits)
				}
				if err != nil {
					c.errorf("%s: resources.%s.%s %v: %v", where, kind, what, v, err)
					return -1, false
				}
				return n, true
			}
			cpuReq, _ := q("requests", "cpu")
			memReq, _ := q("requests", "memory")
			cpuLim, _ := q("limits", "cpu")
			memLim, _ := q("limits", "memory")
			if w.binary == "worker" {
				c.workerSizing(where, w.env, cpuReq, cpuLim, memReq, memLim)
			} else {
				c.checkGOMEMLIMIT(where, w.env, memLim)
			}
			if w.binary == "ingress" {
				grace := 30 * time.Second
				if v, ok := pod["terminationGracePeriodSeconds"]; ok {
					n, _ := strconv.Atoi(depStr(v))
					grace = time.Duration(n) * time.Second
				}
				pause := time.Duration(0)
				if n, err := strconv.Atoi(depStr(depMap(depMap(depMap(ct["lifecycle"])["preStop"])["sleep"])["seconds"])); err == nil {
					pause = time.Duration(n) * time.Second
				}
				c.checkGrace(where+": terminationGracePeriodSeconds", w.env, grace, pause)
			}
		}
		deployments[o.name] = pp
	}
	if ours < 2 {
		c.errorf("k8s: %d containers run images of deployments/Dockerfile, want the ingress and the worker", ours)
	}

	// What selects pods must select some, on ports they declare.
	selected := func(sel map[string]any) []podPorts {
		var out []podPorts
		for _, name := range depKeys(deployments) {
			if len(sel) > 0 && depSelects(sel, deployments[name].labels) {
				out = append(out, deployments[name])
			}
		}
		return out
	}
	portOK := func(pods []podPorts, port string) bool {
		for _, p := range pods {
			if n, err := strconv.Atoi(port); err == nil && p.nums[n] || p.ports[port] != 0 {
				return true
			}
		}
		return false
	}
	for _, o := range objs {
		spec := depMap(o.obj["spec"])
		where := fmt.Sprintf("%s: %s %s", o.file, o.kind, o.name)
		switch o.kind {
		case "Service":
			pods := selected(depMap(spec["selector"]))
			if len(pods) == 0 {
				c.errorf("%s: selects no Deployment's pods", where)
				continue
			}
			for _, p := range depList(spec["ports"]) {
				tp := depStr(depMap(p)["targetPort"])
				if tp == "" {
					tp = depStr(depMap(p)["port"])
				}
				if !portOK(pods, tp) {
					c.errorf("%s: targetPort %s is no container port of the pods it selects", where, tp)
				}
			}
		case "PodDisruptionBudget":
			if len(selected(depMap(depMap(spec["selector"])["matchLabels"]))) == 0 {
				c.errorf("%s: selects no Deployment's pods", where)
			}
		case "NetworkPolicy":
			pods := selected(depMap(depMap(spec["podSelector"])["matchLabels"]))
			if len(pods) == 0 {
				c.errorf("%s: selects no Deployment's pods", where)
			}
			for _, rule := range depList(spec["ingress"]) {
				for _, p := range depList(depMap(rule)["ports"]) {
					if port := depStr(depMap(p)["port"]); !portOK(pods, port) {
						c.errorf("%s: port %s is no container port of the pods it selects", where, port)
					}
				}
			}
		case "HorizontalPodAutoscaler":
			ref := depMap(spec["scaleTargetRef"])
			if _, ok := deployments[depStr(ref["name"])]; depStr(ref["kind"]) != "Deployment" || !ok {
				c.errorf("%s: scaleTargetRef %s %s: no such Deployment", where, depStr(ref["kind"]), depStr(ref["name"]))
			}
		}
	}
}

// checkSecurity: non-root, read-only root filesystem, no privilege
// escalation, no capabilities, the RuntimeDefault seccomp profile.
func (c *depChecker) checkSecurity(where string, pod, ct map[string]any) {
	psc, sc := depMap(pod["securityContext"]), depMap(ct["securityContext"])
	either := func(k string) any {
		if v, ok := sc[k]; ok {
			return v
		}
		return psc[k]
	}
	if either("runAsNonRoot") != true {
		c.errorf("%s: securityContext.runAsNonRoot is not true", where)
	}
	if sc["readOnlyRootFilesystem"] != true {
		c.errorf("%s: securityContext.readOnlyRootFilesystem is not true", where)
	}
	if sc["allowPrivilegeEscalation"] != false {
		c.errorf("%s: securityContext.allowPrivilegeEscalation is not false", where)
	}
	if !slices.ContainsFunc(depList(depMap(sc["capabilities"])["drop"]), func(v any) bool { return depStr(v) == "ALL" }) {
		c.errorf("%s: securityContext.capabilities.drop does not hold ALL", where)
	}
	if depStr(depMap(either("seccompProfile"))["type"]) != "RuntimeDefault" {
		c.errorf("%s: seccompProfile is not RuntimeDefault", where)
	}
}

// checkKustomization: every resource listed exists, and every manifest but
// the secret template is listed.
func (c *depChecker) checkKustomization() {
	docs, ok := c.files["k8s/kustomization.yaml"]
	if !ok || len(docs) == 0 {
		c.errorf("k8s/kustomization.yaml: missing")
		return
	}
	listed := map[string]bool{}
	for _, r := range depList(depMap(docs[0])["resources"]) {
		listed[depStr(r)] = true
		if _, ok := c.files["k8s/"+depStr(r)]; !ok {
			c.errorf("k8s/kustomization.yaml: resource %s: no such file", depStr(r))
		}
	}
	for _, rel := range depKeys(c.files) {
		name, ok := strings.CutPrefix(rel, "k8s/")
		if !ok || strings.Contains(name, "/") || name == "kustomization.yaml" || strings.Contains(name, ".template.") {
			continue
		}
		if !listed[name] {
			c.errorf("k8s/kustomization.yaml: does not list %s", name)
		}
	}
}

// depSelects reports whether labels carry every pair of sel.
func depSelects(sel, labels map[string]any) bool {
	for k, v := range sel {
		if depStr(labels[k]) != depStr(v) {
			return false
		}
	}
	return len(sel) > 0
}

// ---- generic YAML access ----

func depMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func depList(v any) []any         { l, _ := v.([]any); return l }

func depStr(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func depInts(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func depKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// depCopy copies the deployment files (Dockerfile, compose.yaml, k8s/) to a
// temporary deployments directory, for the mistake cases to edit.
func depCopy(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "deployments")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"Dockerfile", "compose.yaml", "k8s"} {
		err := filepath.WalkDir(filepath.Join(src, rel), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(src, p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, r), 0o755)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, r), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
