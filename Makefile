# The two commands a newcomer needs: `make run` and `make test`.
GO      ?= go
DATA    ?= .sandbox
# -race needs cgo; the tests start real servers, so give them room but bound them.
TESTFLAGS ?= -race -count=1 -timeout 9m

.PHONY: run infra build test test-short fuzz bench vet clean

## run: the whole service on the embedded broker and database (Ctrl-C stops it)
run:
	$(GO) run ./cmd/sandbox -data-dir $(DATA)

## infra: only the embedded broker and database, for running ingress and worker by hand
infra:
	$(GO) run ./cmd/sandbox -data-dir $(DATA) -infra-only

## build: the four binaries into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## test: every test, with the race detector, against real embedded servers
test: vet
	$(GO) test $(TESTFLAGS) ./...

## test-short: unit tests only (no embedded servers)
test-short:
	$(GO) test -short -count=1 ./...

## vet: static checks
vet:
	$(GO) vet ./...

## fuzz: each fuzz target for FUZZTIME (default 30s); new failures land in testdata/fuzz
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./internal/kmheader -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./internal/kmheader -run='^$$' -fuzz='^FuzzParseToken$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./internal/pinreset -run='^$$' -fuzz='^FuzzParseRequest$$' -fuzztime=$(FUZZTIME)
	$(GO) test ./internal/wire -run='^$$' -fuzz='^FuzzDecodeCommand$$' -fuzztime=$(FUZZTIME)

## bench: the service against its hashing limit on this machine, one JSON summary
## (about 2 minutes); then the Go benchmarks of the hot pieces
bench: build
	bin/pwctl bench -bin-dir bin -plot bench-latency.png
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=1s ./internal/...

clean:
	rm -rf bin $(DATA)
