# Strangler — the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
PKGS  := ./...
# -race always: the proxy is concurrent by nature.
TESTFLAGS ?= -race -count=1 -timeout 30m
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test evidence deps deps-test deps-bench lint bench bench-short bench-session soak clean

all: build

build:
	$(GO) build -o $(BIN)/strangler ./cmd/strangler
	$(GO) build -o $(BIN)/monolith ./cmd/monolith

# Nginx + PHP-FPM from Debian (installed when root, otherwise the command is printed).
deps:
	bash scripts/install-deps.sh

# Tests also drive the shadow report page in headless Chromium.
deps-test:
	bash scripts/install-deps.sh --browser

deps-bench:
	bash scripts/install-deps.sh --bench

# The proxy on :8080 in front of the sample monolith on 127.0.0.1:8081,
# admin on 127.0.0.1:9901, with the embedded defaults of config.yaml.
run: deps build
	bash scripts/run.sh

# Every test, integration included (real Nginx + PHP-FPM, kfake over TCP, gofakes3 over HTTP).
test: deps-test
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)

# The shadow verdict's whole mutation suite (make test runs a subset):
# every injected change to the Go handlers named and "not ready", and the
# unchanged port over 5,000 mixed requests per route with no mismatch and
# "ready". About 3 minutes.
evidence: deps
	STRANGLER_MUTATION=full $(GO) test -count=1 -timeout 30m -v -run . ./e2e/mutation

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

# Pinned load runs (servers on CPU 0, wrk on CPU 1), contenders interleaved
# round by round, plus the Go micro-benchmarks: rewrites the generated part
# of BENCHMARKS.md and bench/benchmarks.png. Takes about 15 minutes.
bench: deps-bench build
	$(GO) run ./cmd/benchrun

# The same harness in about two minutes (1 round of 1 s, no micro-benchmarks),
# to check it works; writes bench/short.md and bench/short.png.
bench-short: deps-bench build
	$(GO) run ./cmd/benchrun -short

# One Go session read (cookie, id check, GETRANGE from a local redis-server,
# decode) against PHP's session_start(['read_and_close' => true]) on the same
# data, interleaved round by round; prints p50/p99 of each and their ratios.
bench-session: deps
	$(GO) test -run '^$$' -bench SessionReadRedis -benchtime 1x -count 3 ./ported/session

# At least 2 million mixed requests (legacy pages, uploads, downloads, the Go
# intake and lookups, a shadowed route, WebSocket tunnels, client aborts, bad
# requests) through bin/strangler in front of Nginx + PHP-FPM and kfake, with
# the proxy's RSS, heap, goroutines and fds sampled, then a 1 GiB upload and
# download; writes SOAK.md, bench/soak.csv and bench/soak.png. Not part of
# `make test` (which runs a 3,000-request smoke of the same driver).
soak: deps build
	$(GO) run ./cmd/soak

clean:
	rm -rf $(BIN) var
