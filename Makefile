# Strangler — the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
PKGS  := ./...
# -race always: the proxy is concurrent by nature.
TESTFLAGS ?= -race -count=1 -timeout 30m
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test deps deps-test deps-bench lint bench clean

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

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

# Load runs with wrk, contenders interleaved round by round; writes bench/results.md.
bench: deps-bench build
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./routes ./ported/... ./legacy-passthrough ./proxy
	$(GO) run ./cmd/benchrun -groups static,php,ping,campaigns,events,shadow -out bench/results.md

clean:
	rm -rf $(BIN) var
