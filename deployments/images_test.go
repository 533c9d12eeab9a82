//go:build images

package deployments

// The images and the compose file, run for real with podman (make
// images-test, which builds the images first; .ci/run runs it). Not part of
// `make test`: it needs podman and runc (and docker-compose, or the docker
// CLI's compose plugin, for TestCompose), which a developer may not have;
// here, without them, it fails rather than skips.
//
// Every container is on the host network and every address on 127.0.0.1, on
// ports apart from make run's and the other tests': Kafka 29092, MongoDB
// 37017, the ingress API 28080, admin listeners 29090, 29091 (and 29093 for
// compose's second worker). Every container, volume, extra tag and the
// podman API service these tests start are removed by name in their
// cleanup, also when a test fails.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmwallet/pinreset/internal/asp"
	"github.com/kmwallet/pinreset/internal/config"
	"github.com/kmwallet/pinreset/internal/ingress"
	"github.com/kmwallet/pinreset/internal/kmheader"
	"github.com/kmwallet/pinreset/internal/waitfor"
)

const (
	itKafka        = "127.0.0.1:29092"
	itMongo        = "127.0.0.1:37017"
	itHTTP         = "127.0.0.1:28080"
	itIngressAdmin = "127.0.0.1:29090"
	itWorkerAdmin  = "127.0.0.1:29091"
	// compose.yaml's second worker.
	itWorker2Admin = "127.0.0.1:29093"
	// The ingress's PINRESET_SHUTDOWN_TIMEOUT default: SIGTERM must stop
	// a container within it.
	itShutdownTimeout = 15 * time.Second
)

// itImage is the image of a binary as make images tagged it
// (PINRESET_IMAGE_PREFIX, PINRESET_IMAGE_TAG: make's IMAGE_PREFIX,
// IMAGE_TAG).
func itImage(binary string) string {
	tag := os.Getenv("PINRESET_IMAGE_TAG")
	if tag == "" {
		tag = "local"
	}
	return itImageTagged(binary, tag)
}

func itImagePrefix() string {
	if p := os.Getenv("PINRESET_IMAGE_PREFIX"); p != "" {
		return p
	}
	return "pinreset-"
}

func itImageTagged(binary, tag string) string { return itImagePrefix() + binary + ":" + tag }

// itEnviron is the environment of podman and compose: the podman settings
// of this machine (make sets CONTAINERS_CONF; go test alone gets it here).
func itEnviron(extra ...string) []string {
	env := os.Environ()
	if os.Getenv("CONTAINERS_CONF") == "" {
		abs, _ := filepath.Abs("podman/containers.conf")
		env = append(env, "CONTAINERS_CONF="+abs)
	}
	return append(env, extra...)
}

// run runs a command bounded by two minutes and returns its combined output.
func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func mustRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func podman(t *testing.T, args ...string) string {
	t.Helper()
	return mustRun(t, itEnviron(), "podman", args...)
}

// needPodman fails the test (never skips it) when podman is missing.
func needPodman(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is not installed (apt-get install -y podman runc; .ci/run does): %v", err)
	}
}

// itSecrets writes the sandbox's public secrets as the files a deployment
// mounts: seal_keys, peppers, fingerprint_keys, mongo_uri, asps.json and jwe/. Readable by
// the containers' user 65532 (these are the public sandbox keys; real ones
// are made readable by that user only: README.md).
func itSecrets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	env, err := config.ReadEnvFile("sandbox/sandbox.env")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"seal_keys":        env["PINRESET_SEAL_KEYS"],
		"peppers":          env["PINRESET_PEPPERS"],
		"fingerprint_keys": env["PINRESET_FINGERPRINT_KEYS"],
		"mongo_uri":        "mongodb://" + itMongo + "/",
	}
	b, err := os.ReadFile("sandbox/asps.json")
	if err != nil {
		t.Fatal(err)
	}
	files["asps.json"] = string(b)
	kids, err := filepath.Glob("sandbox/jwe/*.pem")
	if err != nil || len(kids) == 0 {
		t.Fatalf("sandbox/jwe: %v %v", kids, err)
	}
	for _, k := range kids {
		b, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		files["jwe/"+filepath.Base(k)] = string(b)
	}
	for name, v := range files {
		if v == "" {
			t.Fatalf("secret %s: empty", name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// t.TempDir's directories are 0700: let uid 65532 in.
	for _, d := range []string{filepath.Dir(dir), dir, filepath.Join(dir, "jwe")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var itClient = &http.Client{Timeout: 30 * time.Second}

// waitReady polls http://addr/readyz until it answers 200, for at most limit.
func waitReady(t *testing.T, addr string, limit time.Duration, logs func() string) {
	t.Helper()
	var last string
	if !waitfor.Every(250*time.Millisecond, limit, func() bool {
		res, err := itClient.Get("http://" + addr + "/readyz")
		if err != nil {
			last = err.Error()
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		last = fmt.Sprintf("%d %s", res.StatusCode, b)
		return res.StatusCode == 200
	}) {
		t.Fatalf("%s/readyz not ready after %v: %s\nlogs:\n%s", addr, limit, last, logs())
	}
}

// checkHealth: /healthz and /readyz both answer 200 on addr.
func checkHealth(t *testing.T, addr string) {
	t.Helper()
	for _, p := range []string{"/healthz", "/readyz"} {
		res, err := itClient.Get("http://" + addr + p)
		if err != nil {
			t.Errorf("GET %s%s: %v", addr, p, err)
			continue
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s%s: %d, want 200", addr, p, res.StatusCode)
		}
	}
}

// seedCases sends the four example requests of deployments/sandbox,
// signed with the sandbox ASP, to the API at addr, and checks their
// outcomes (README.md, Quick start). It returns the PINs they carry.
func seedCases(t *testing.T, addr string) (pins []string) {
	t.Helper()
	b, err := os.ReadFile("sandbox/asps.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := asp.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	a := f.ASPs[0]
	creds := kmheader.Credentials{ASPID: a.ID, AccessKey: a.Credentials[0].AccessKey, SecretKey: []byte(a.Credentials[0].SecretKey)}
	for _, tc := range []struct {
		file   string
		status int
		code   string
	}{
		{"success.json", 200, "000_000"},
		{"user-not-found.json", 400, "001_006"},
		{"same-pin.json", 400, "001_043"},
		{"info-mismatch.json", 400, "001_035"},
	} {
		body, err := os.ReadFile(filepath.Join("sandbox/requests", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"newPassword", "currentPassword"} {
			if s, ok := fields[k].(string); ok && s != "" {
				pins = append(pins, s)
			}
		}
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+ingress.ResetPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		cid := kmheader.NewCorrelationID(time.Now(), nil)
		kmheader.Set(req.Header, kmheader.SignedHeaders(creds, body, cid, time.Now(), "UTC"))
		req.Header.Set("Content-Type", "application/json")
		res, err := itClient.Do(req)
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var got ingress.Body
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Errorf("%s: %d %q is not the JSON body", tc.file, res.StatusCode, raw)
			continue
		}
		if res.StatusCode != tc.status || string(got.Code) != tc.code {
			t.Errorf("%s: got %d %s, want %d %s", tc.file, res.StatusCode, got.Code, tc.status, tc.code)
		} else {
			t.Logf("%s: %d %s", tc.file, res.StatusCode, got.Code)
		}
	}
	return pins
}

// checkNonRoot: the container's process runs as uid and gid 65532 (read
// from /proc on the host: rootful podman without a user namespace).
func checkNonRoot(t *testing.T, name string) {
	t.Helper()
	pid := strings.TrimSpace(podman(t, "inspect", "--format", "{{.State.Pid}}", name))
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var uid, gid string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			uid = strings.Join(strings.Fields(v), " ")
		}
		if v, ok := strings.CutPrefix(sc.Text(), "Gid:"); ok {
			gid = strings.Join(strings.Fields(v), " ")
		}
	}
	if uid != "65532 65532 65532 65532" || gid != "65532 65532 65532 65532" {
		t.Errorf("%s (pid %s): Uid %q Gid %q, want 65532 for all", name, pid, uid, gid)
	} else {
		t.Logf("%s: runs as uid 65532, gid 65532 (real, effective, saved, fs)", name)
	}
}

// checkNoShell: the image has no shell to exec.
func checkNoShell(t *testing.T, name string) {
	t.Helper()
	if out, err := run(t, itEnviron(), "podman", "exec", name, "/bin/sh", "-c", "true"); err == nil {
		t.Errorf("%s: /bin/sh ran (%s); the image must have no shell", name, out)
	}
}

// stopAndCheck sends SIGTERM (podman stop, SIGKILL only after 30 s) and
// checks the container exited 0 within the shutdown timeout, logging
// stoppedLine.
func stopAndCheck(t *testing.T, name, stoppedLine string) {
	t.Helper()
	start := time.Now()
	podman(t, "stop", "-t", "30", name)
	took := time.Since(start)
	code := strings.TrimSpace(podman(t, "inspect", "--format", "{{.State.ExitCode}}", name))
	if code != "0" {
		t.Errorf("%s: exit code %s after SIGTERM, want 0", name, code)
	}
	if took > itShutdownTimeout {
		t.Errorf("%s: SIGTERM took %v to stop it, want under %v", name, took, itShutdownTimeout)
	}
	if logs := podman(t, "logs", name); !strings.Contains(logs, stoppedLine) {
		t.Errorf("%s: no %q in its logs after SIGTERM:\n%s", name, stoppedLine, logs)
	}
	t.Logf("%s: stopped by SIGTERM in %v, exit code %s", name, took.Round(time.Millisecond), code)
}

// checkLogsHoldNoPIN: no PIN of the requests appears in a container's logs.
func checkLogsHoldNoPIN(t *testing.T, name string, pins []string) {
	t.Helper()
	logs := podman(t, "logs", name)
	for _, p := range pins {
		if strings.Contains(logs, p) {
			t.Errorf("%s: its logs hold a PIN of the requests", name)
		}
	}
}

// TestImages: the images as built (non-root, labelled with the commit,
// reproducible, static binaries; the production ones without a shell), then
// the ingress and worker images
// against the sandbox image, all on the host network: health, the seed
// cases, and SIGTERM.
func TestImages(t *testing.T) {
	needPodman(t)
	binaries := []string{"ingress", "worker", "pwctl", "sandbox"}
	head, _ := run(t, os.Environ(), "git", "rev-parse", "HEAD")
	head = strings.TrimSpace(head)
	ids := map[string]string{}
	for _, b := range binaries {
		var inspect []struct {
			ID     string `json:"Id"`
			Size   int64  `json:"Size"`
			Config struct {
				User       string            `json:"User"`
				Entrypoint []string          `json:"Entrypoint"`
				Labels     map[string]string `json:"Labels"`
			} `json:"Config"`
		}
		if err := json.Unmarshal([]byte(podman(t, "image", "inspect", itImage(b))), &inspect); err != nil || len(inspect) != 1 {
			t.Fatalf("inspect %s: %v", itImage(b), err)
		}
		im := inspect[0]
		ids[b] = im.ID
		t.Logf("%s: id %.12s, %.1f MB", itImage(b), im.ID, float64(im.Size)/1e6)
		if im.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", itImage(b), im.Config.User)
		}
		if len(im.Config.Entrypoint) == 0 || im.Config.Entrypoint[0] != "/usr/local/bin/"+b {
			t.Errorf("%s: entrypoint %v, want /usr/local/bin/%s", itImage(b), im.Config.Entrypoint, b)
		}
		if rev := im.Config.Labels["org.opencontainers.image.revision"]; head != "" && rev != head {
			t.Errorf("%s: label org.opencontainers.image.revision %q, want the commit %s", itImage(b), rev, head)
		}
		if im.Config.Labels["org.opencontainers.image.version"] == "" {
			t.Errorf("%s: no org.opencontainers.image.version label", itImage(b))
		}
		// The binary: static (no cgo) and without local paths.
		info := mustRun(t, os.Environ(), "go", "version", "-m", filepath.Join("..", "bin", "image", b))
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath=true"} {
			if !strings.Contains(info, want) {
				t.Errorf("bin/image/%s: built without %s", b, want)
			}
		}
	}

	t.Run("reproducible", func(t *testing.T) {
		// The same commit built again gives the same images: make images
		// again under another tag (make builds without podman's layer
		// cache, so nothing is reused but go's build cache, which is keyed
		// by the binaries' inputs).
		tag := "repro" + strconv.Itoa(os.Getpid())
		t.Cleanup(func() {
			for _, b := range binaries {
				run(t, itEnviron(), "podman", "rmi", itImageTagged(b, tag))
			}
		})
		start := time.Now()
		mustRun(t, itEnviron(), "make", "-C", "..", "images", "IMAGE_TAG="+tag, "IMAGE_PREFIX="+itImagePrefix())
		t.Logf("rebuilt the four images in %v", time.Since(start).Round(time.Millisecond))
		for _, b := range binaries {
			id := strings.TrimSpace(podman(t, "image", "inspect", "--format", "{{.Id}}", itImageTagged(b, tag)))
			if id != ids[b] {
				t.Errorf("%s: rebuilt as %.12s, first built %.12s: not reproducible", b, id, ids[b])
			}
		}
	})

	secrets := itSecrets(t)
	const sandboxC, ingressC, workerC = "pinreset-it-sandbox", "pinreset-it-ingress", "pinreset-it-worker"
	// The sandbox's data: a named volume, which takes the image's /data
	// (owned by 65532), as the root filesystem is read-only.
	const sandboxV = "pinreset-it-sandbox-data"
	remove := func() {
		for _, c := range []string{ingressC, workerC, sandboxC} {
			run(t, itEnviron(), "podman", "rm", "-f", "-t", "0", c)
		}
		run(t, itEnviron(), "podman", "volume", "rm", "-f", sandboxV)
	}
	remove() // what an aborted run left
	t.Cleanup(remove)
	// The hardening of compose.yaml and the Kubernetes manifests.
	hardening := []string{"--network", "host", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"}
	start := time.Now()
	podman(t, append(append([]string{"run", "-d", "--name", sandboxC, "-v", sandboxV + ":/data"}, hardening...),
		itImage("sandbox"), "-infra-only", "-kafka-addr", itKafka, "-mongo-addr", itMongo)...)
	logs := func(name string) func() string {
		return func() string { out, _ := run(t, itEnviron(), "podman", "logs", name); return out }
	}
	if !waitfor.Every(200*time.Millisecond, time.Minute, func() bool {
		return strings.Contains(logs(sandboxC)(), "sandbox: infrastructure ready")
	}) {
		t.Fatalf("sandbox container not ready after a minute:\n%s", logs(sandboxC)())
	}
	t.Logf("sandbox container ready in %v", time.Since(start).Round(time.Millisecond))

	common := []string{
		"-v", secrets + ":/run/secrets:ro",
		"-e", "PINRESET_KAFKA_BROKERS=" + itKafka,
		"-e", "PINRESET_CREATE_TOPICS=false",
		"-e", "PINRESET_SEAL_KEYS_FILE=/run/secrets/seal_keys",
	}
	podman(t, append(append(append([]string{"run", "-d", "--name", workerC}, hardening...), common...),
		"-e", "PINRESET_PEPPERS_FILE=/run/secrets/peppers",
		"-e", "PINRESET_FINGERPRINT_KEYS_FILE=/run/secrets/fingerprint_keys",
		"-e", "PINRESET_MONGO_URI_FILE=/run/secrets/mongo_uri",
		"-e", "PINRESET_ADMIN_ADDR="+itWorkerAdmin,
		"-e", "PINRESET_WORKER_CONCURRENCY=2",
		itImage("worker"))...)
	podman(t, append(append(append([]string{"run", "-d", "--name", ingressC}, hardening...), common...),
		"-e", "PINRESET_HTTP_ADDR="+itHTTP,
		"-e", "PINRESET_ADMIN_ADDR="+itIngressAdmin,
		"-e", "PINRESET_ASP_FILE=/run/secrets/asps.json",
		"-e", "PINRESET_JWE_KEYS_DIR=/run/secrets/jwe",
		itImage("ingress"))...)
	waitReady(t, itHTTP, time.Minute, logs(ingressC))
	waitReady(t, itWorkerAdmin, time.Minute, logs(workerC))
	t.Logf("ingress and worker containers ready %v after the sandbox started", time.Since(start).Round(time.Millisecond))
	checkHealth(t, itHTTP)
	checkHealth(t, itIngressAdmin)
	checkHealth(t, itWorkerAdmin)

	pins := seedCases(t, itHTTP)
	for _, c := range []string{sandboxC, ingressC, workerC} {
		checkNonRoot(t, c)
	}
	// The sandbox image carries Debian's userland for PostgreSQL (initdb
	// runs the server through /bin/sh); it is never a production image.
	for _, c := range []string{ingressC, workerC} {
		checkNoShell(t, c)
	}
	stopAndCheck(t, ingressC, `"msg":"ingress stopped"`)
	stopAndCheck(t, workerC, `"msg":"worker stopped"`)
	checkLogsHoldNoPIN(t, ingressC, pins)
	checkLogsHoldNoPIN(t, workerC, pins)
}

// composeCmd is the compose client: the docker CLI's compose plugin if
// installed, else docker-compose (Debian's, v1), both driving podman
// through its Docker API.
func composeCmd(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err == nil {
		if _, err := run(t, os.Environ(), "docker", "compose", "version"); err == nil {
			return []string{"docker", "compose"}
		}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	t.Fatal("no compose client: install docker-compose (apt-get install -y docker-compose; .ci/run does) or the docker CLI's compose plugin")
	return nil
}

// TestCompose: compose.yaml validated (both profiles), then started with
// the sandbox profile through podman's Docker API, the seed cases through
// it, and taken down.
func TestCompose(t *testing.T) {
	needPodman(t)
	compose := composeCmd(t)
	const project = "pinreset-it"

	// podman's Docker API, on a socket of this test only.
	sock := filepath.Join(t.TempDir(), "podman.sock")
	svc := exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	svc.Env = itEnviron()
	var svcLog bytes.Buffer
	svc.Stdout, svc.Stderr = &svcLog, &svcLog
	if err := svc.Start(); err != nil {
		t.Fatalf("podman system service: %v", err)
	}
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.Wait() }()
	// Registered first, so it runs last: after compose down.
	t.Cleanup(func() {
		svc.Process.Signal(syscall.SIGTERM)
		select {
		case <-svcDone:
		case <-time.After(10 * time.Second):
			svc.Process.Kill()
			<-svcDone
		}
	})
	secrets := itSecrets(t)
	env := itEnviron(
		"DOCKER_HOST=unix://"+sock,
		"COMPOSE_PROJECT_NAME="+project,
		"SECRETS_DIR="+secrets,
		"INGRESS_IMAGE="+itImage("ingress"),
		"WORKER_IMAGE="+itImage("worker"),
		"SANDBOX_IMAGE="+itImage("sandbox"),
	)
	// Wait until the API answers its ping (GET /_ping over the socket).
	api := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	if !waitfor.Every(200*time.Millisecond, 30*time.Second, func() bool {
		res, err := api.Get("http://podman/_ping")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}) {
		t.Fatalf("podman's Docker API did not answer on %s:\n%s", sock, svcLog.String())
	}
	composeRun := func(profiles string, args ...string) (string, error) {
		return run(t, append(env, "COMPOSE_PROFILES="+profiles), compose[0], append(append(compose[1:], "-f", "compose.yaml"), args...)...)
	}

	// The file is valid for the client, in both profiles.
	for _, p := range []string{"infra", "sandbox"} {
		if out, err := composeRun(p, "config", "-q"); err != nil {
			t.Fatalf("compose config (profile %s): %v\n%s", p, err, out)
		}
	}

	cleanup := func() {
		if out, err := composeRun("infra,sandbox", "down", "-v", "--remove-orphans", "-t", "30"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
		// Whatever compose left behind, by the project's label.
		label := "label=com.docker.compose.project=" + project
		if out, _ := run(t, itEnviron(), "podman", "ps", "-a", "-q", "--filter", label); strings.TrimSpace(out) != "" {
			run(t, itEnviron(), "podman", append([]string{"rm", "-f", "-t", "0"}, strings.Fields(out)...)...)
		}
		if out, _ := run(t, itEnviron(), "podman", "volume", "ls", "-q", "--filter", label); strings.TrimSpace(out) != "" {
			run(t, itEnviron(), "podman", append([]string{"volume", "rm", "-f"}, strings.Fields(out)...)...)
		}
	}
	cleanup() // an aborted run's
	t.Cleanup(cleanup)

	start := time.Now()
	if out, err := composeRun("sandbox", "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	logs := func() string { out, _ := composeRun("sandbox", "logs", "--no-color", "--tail", "50"); return out }
	for _, a := range []string{itHTTP, itWorkerAdmin, itWorker2Admin} {
		waitReady(t, a, 2*time.Minute, logs)
	}
	t.Logf("compose stack (sandbox profile) ready in %v", time.Since(start).Round(time.Millisecond))
	out, err := composeRun("sandbox", "ps")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compose ps:\n%s", out)
	checkHealth(t, itIngressAdmin)
	seedCases(t, itHTTP)
	label := "label=com.docker.compose.project=" + project
	names := strings.Fields(podman(t, "ps", "-a", "--filter", label, "--format", "{{.Names}}"))
	if len(names) != 4 {
		t.Errorf("compose started %v, want ingress, worker-1, worker-2 and sandbox", names)
	}
	for _, n := range names {
		checkNonRoot(t, n)
	}

	// SIGTERM (compose stop, SIGKILL only after 30 s): every container exits 0
	// within the shutdown timeout.
	start = time.Now()
	if out, err := composeRun("sandbox", "stop", "-t", "30"); err != nil {
		t.Fatalf("compose stop: %v\n%s", err, out)
	}
	if took := time.Since(start); took > itShutdownTimeout {
		t.Errorf("compose stop took %v: a container did not stop on SIGTERM within %v", took, itShutdownTimeout)
	} else {
		t.Logf("compose stop in %v", took.Round(time.Millisecond))
	}
	for _, n := range names {
		if code := strings.TrimSpace(podman(t, "inspect", "--format", "{{.State.ExitCode}}", n)); code != "0" {
			t.Errorf("%s: exit code %s after SIGTERM, want 0", n, code)
		}
	}
	if out, err := composeRun("infra,sandbox", "down", "-v", "--remove-orphans", "-t", "30"); err != nil {
		t.Fatalf("compose down: %v\n%s", err, out)
	}
	if out, _ := run(t, itEnviron(), "podman", "ps", "-a", "-q", "--filter", label); strings.TrimSpace(out) != "" {
		t.Errorf("containers left after compose down: %s", out)
	}
	if out, _ := run(t, itEnviron(), "podman", "volume", "ls", "-q", "--filter", label); strings.TrimSpace(out) != "" {
		t.Errorf("volumes left after compose down -v: %s", out)
	}
}
