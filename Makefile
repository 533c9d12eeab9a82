# The two commands a newcomer needs: `make run` and `make test`.
GO      ?= go
DATA    ?= .sandbox
# -race needs cgo; the tests start real servers, so give them room but bound them.
# cmd/sandbox takes 9-11 minutes on a shared 2-core machine under other
# load (554-666 s measured); the bound leaves room for a busier one, it is
# not the budget.
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: run infra engine build test test-short fuzz bench bench-scale vet docs lint-api clean

## run: the whole service on the embedded broker and database (Ctrl-C stops it)
run: engine
	$(GO) run ./cmd/sandbox -data-dir $(DATA)

## infra: only the embedded broker and database, for running ingress and worker by hand
infra: engine
	$(GO) run ./cmd/sandbox -data-dir $(DATA) -infra-only

## engine: PostgreSQL 15 and the DocumentDB extensions under the sandbox database
## (Debian: installs the packages, builds third_party/postgres-extensions; once,
## a later run returns at once)
engine:
	@bash deployments/sandbox/install-engine.sh

## build: the four binaries into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## test: every test, with the race detector, against real embedded servers
test: vet engine
	$(GO) test $(TESTFLAGS) ./...

## test-short: unit tests only (no embedded servers)
test-short:
	$(GO) test -short -count=1 ./...

## docs: regenerate README.md's configuration table from internal/config/settings.go
docs:
	$(GO) test ./internal/config -run '^TestREADMEConfigurationIsCurrent$$' -count=1 -update

## vet: static checks
vet:
	$(GO) vet ./...

## lint-api: schemas/openapi.yaml against Redocly CLI's recommended rules, errors and warnings
## (schemas/redocly.yaml says what differs and why); npm ci installs the CLI
## version pinned in schemas/package-lock.json into schemas/node_modules
NPM ?= npm
lint-api:
	cd schemas && $(NPM) ci --no-audit --no-fund --loglevel=error && \
		REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(NPM) exec --no -- redocly lint --max-problems 1000 openapi.yaml

## fuzz: each fuzz target for FUZZTIME (default 30s); new failures land in testdata/fuzz
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./internal/kmheader -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./internal/kmheader -run='^$$' -fuzz='^FuzzParseToken$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./internal/pinreset -run='^$$' -fuzz='^FuzzParseRequest$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./internal/wire -run='^$$' -fuzz='^FuzzDecodeCommand$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./third_party/argon2 -run='^$$' -fuzz='^FuzzIDKeyMatchesXCrypto$$' -fuzztime=$(FUZZTIME)

## bench: the service against its hashing limit on this machine, one JSON summary
## (about 3 minutes), also kept in bin/bench.json; then the Go benchmarks of the hot pieces
bench: build engine
	GODEBUG=madvdontneed=0 bin/pwctl bench -bin-dir bin -plot bench-latency.png > bin/bench.json && cat bin/bench.json
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=1s ./internal/...
	$(GO) test -run='^$$' -bench='^BenchmarkIDKey$$' -benchmem -benchtime=1s ./third_party/argon2

## bench-scale: the pipeline (cheap hashing) at 1,000 members and at 1,000,000 members with
## 1,000,000 retained decisions seeded in bulk, and the retention sweep under load: one JSON
## summary (about 10-15 minutes on 2 cores), also kept in bin/bench-scale.json.
## BENCH_SCALE_FLAGS passes flags (pwctl bench-scale -h), e.g. -large-members 20000 -decisions 20000
BENCH_SCALE_FLAGS ?=
bench-scale: build engine
	GODEBUG=madvdontneed=0 bin/pwctl bench-scale -bin-dir bin $(BENCH_SCALE_FLAGS) > bin/bench-scale.json && cat bin/bench-scale.json

clean:
	rm -rf bin $(DATA)

# ---- container images (podman; deployments/README.md, Images) ----
.PHONY: images image-context images-test sandbox-base
PODMAN      ?= podman
# The two podman defaults these machines need (deployments/podman/containers.conf).
export CONTAINERS_CONF ?= $(CURDIR)/deployments/podman/containers.conf
# Images are named $(IMAGE_PREFIX)<binary>:$(IMAGE_TAG).
IMAGE_PREFIX ?= pinreset-
IMAGE_TAG    ?= local
IMAGE_TARGETS = ingress worker pwctl sandbox
IMAGE_CTX    = bin/image
# Reproducible: every time in the image (created, file times) is the commit's
# time, so the same commit gives the same image digest.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_REVISION    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Go stamps the commit into the binaries (go version -m) when git can read the
# checkout; without it (a source tarball) the build still works, unstamped.
BUILDVCS ?= $(shell git rev-parse --git-dir >/dev/null 2>&1 && echo true || echo false)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
# No layer cache: podman 4.3 (buildah 1.28) reuses a cached image even when
# only a --label differs, so a cached build can carry another commit's labels.
# Uncached, the four images take ~20 s. --layers=false keeps no intermediate
# stage images behind.
PODMAN_BUILD_FLAGS ?= --no-cache --layers=false

## image-context: static binaries (CGO_ENABLED=0, -trimpath) and the image files into bin/image
image-context:
	rm -rf $(IMAGE_CTX)
	mkdir -p $(IMAGE_CTX)/rootfs/etc/ssl/certs $(IMAGE_CTX)/data/tmp
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=$(BUILDVCS) -ldflags "-s -w" -o $(IMAGE_CTX)/ \
		./cmd/ingress ./cmd/worker ./cmd/pwctl ./cmd/sandbox
	cp deployments/image/rootfs/etc/passwd deployments/image/rootfs/etc/group $(IMAGE_CTX)/rootfs/etc/
	cp $(CA_BUNDLE) $(IMAGE_CTX)/rootfs/etc/ssl/certs/ca-certificates.crt
	cp -r deployments/sandbox $(IMAGE_CTX)/sandbox-data
	chmod -R a+rX,go-w $(IMAGE_CTX)

# The sandbox image's base, named by what goes into it: built once per
# version of the extensions and of the script.
SANDBOX_BASE_KEY := $(shell cat third_party/postgres-extensions/SHA256SUMS deployments/image/sandbox-base.sh 2>/dev/null | sha256sum | cut -c1-12)
SANDBOX_BASE     ?= localhost/pinreset-sandbox-base:$(SANDBOX_BASE_KEY)

## sandbox-base: the sandbox image's base, Debian 12 with PostgreSQL 15 and the extensions (mmdebstrap, podman import; once)
sandbox-base:
	PODMAN=$(PODMAN) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) bash deployments/image/sandbox-base.sh $(SANDBOX_BASE)

## images: the ingress, worker, pwctl and sandbox images (deployments/Dockerfile), tagged $(IMAGE_PREFIX)<name>:$(IMAGE_TAG)
images: image-context sandbox-base
	for t in $(IMAGE_TARGETS); do \
		$(PODMAN) build -q $(PODMAN_BUILD_FLAGS) -f deployments/Dockerfile --target $$t \
			--build-arg SANDBOX_BASE=$(SANDBOX_BASE) \
			--timestamp $(SOURCE_DATE_EPOCH) \
			--label org.opencontainers.image.title=pinreset-$$t \
			--label org.opencontainers.image.version=$(IMAGE_VERSION) \
			--label org.opencontainers.image.revision=$(IMAGE_REVISION) \
			--label org.opencontainers.image.source=github.com/kmwallet/pinreset \
			-t $(IMAGE_PREFIX)$$t:$(IMAGE_TAG) $(IMAGE_CTX) || exit 1; \
	done

## images-test: build the images, run the service's containers and the compose stack, seed cases through them
## (under the tag $(IT_TAG), removed again afterwards, also when a test fails)
IT_TAG ?= images-test
images-test:
	@status=0; \
	$(GO) vet -tags images ./deployments/ && \
	$(MAKE) --no-print-directory images IMAGE_TAG=$(IT_TAG) && \
	PINRESET_IMAGE_PREFIX=$(IMAGE_PREFIX) PINRESET_IMAGE_TAG=$(IT_TAG) \
		$(GO) test -tags images -count=1 -timeout 8m -v -run 'Test(Images|Compose)' ./deployments/ || status=$$?; \
	for t in $(IMAGE_TARGETS); do $(PODMAN) rmi $(IMAGE_PREFIX)$$t:$(IT_TAG) >/dev/null 2>&1 || true; done; \
	exit $$status
