# latchkey — the two commands a new user needs are `make dev` and `make test`.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN := local

TOOLS_DIR ?= $(HOME)/.cache/latchkey
TINYGO_VERSION := 0.41.1
export TINYGOROOT := $(TOOLS_DIR)/tinygo-$(TINYGO_VERSION)
TINYGO := $(TINYGOROOT)/bin/tinygo
TINYGO_FLAGS := -target=wasm/tinygo/wasip1.json -buildmode=c-shared -scheduler=none -gc=precise -opt=2 -no-debug
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)
STATICCHECK_VERSION := v0.8.2
VERSITYGW_VERSION := v1.8.0
WASM_DIR := wasm/verifier/build
VERSITYGW := $(TOOLS_DIR)/bin/versitygw

# FUZZTIME is how long `make fuzz` runs each fuzz target; `make test` runs each for a fixed count
# of inputs. Counts, not durations, in CI: go1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a duration runs out mid-input (golang/go#75804, fixed in 1.27).
FUZZTIME ?= 30s
SMOKE_FUZZTIME ?= 4000x

.PHONY: all build dev test test-go node-deps fuzz fuzz-smoke bench bench-controlplane check tools vectors wasm wasm-no-tinygo httpwasm proxywasm

all: test

## dev: control plane (SQLite), snapshots in a local folder, the edge (Wasm verifier on wazero)
## and a demo upstream, in one process; prints an admin key, sample keys and what to try.
DEV_WASM = $(if $(wildcard $(TINYGO)),$(WASM_DIR)/accel-tinygo.wasm,$(WASM_DIR)/accel-go.wasm)
dev: $(DEV_WASM)
	$(GO) run ./cmd/latchkey dev --wasm $(DEV_WASM) $(DEV_FLAGS)

## test: static checks, every test (race detector on), then each fuzz target briefly.
test: check test-go fuzz-smoke

# The guest packages' tests run their code compiled to Wasm, where the race detector sees
# nothing, behind third-party hosts driven one request at a time: they run without it (it
# doubles their time). Every Wasm module is built first, two at a time; tests reuse them.
GUEST_PKGS := ./wasm/httpwasm/... ./wasm/proxywasm/...
test-go: node-deps
	@$(MAKE) --no-print-directory -j2 wasm httpwasm proxywasm
	LATCHKEY_VERSITYGW=$(wildcard $(VERSITYGW)) $(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /wasm/httpwasm -e /wasm/proxywasm)
	$(GO) test -count=1 $(GUEST_PKGS)

## build: the binaries, into bin/.
build:
	$(GO) build -o bin/latchkey ./cmd/latchkey

## fuzz: each fuzz target for $(FUZZTIME).
fuzz:
	@$(MAKE) --no-print-directory fuzz-run T=$(FUZZTIME)

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz-run T=$(SMOKE_FUZZTIME)

fuzz-run:
	@set -e; for pkg in $$($(GO) list ./shared/... ./controlplane/... ./examples/... ./wasm/...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t ($(T))"; \
	    dir=$$($(GO) list -f '{{.Dir}}' $$pkg)/testdata/fuzz/$$t; \
	    before=$$(ls $$dir 2>/dev/null | wc -l); \
	    if ! $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(T) $$pkg > /tmp/latchkey-fuzz.log 2>&1; then \
	      after=$$(ls $$dir 2>/dev/null | wc -l); \
	      if [ "$$after" = "$$before" ] && grep -q '^    context deadline exceeded$$' /tmp/latchkey-fuzz.log; then \
	        echo "  (go1.26 fuzz-deadline race golang/go#75804, no failing input written: not a finding)"; \
	      else cat /tmp/latchkey-fuzz.log; exit 1; fi; \
	    fi; \
	  done; \
	done

## bench: the core's and the filter's benchmarks (native and the four Wasm builds), with allocations.
bench: wasm
	$(GO) test -run='^$$' -bench=. -benchmem ./shared/... ./edge/filter

## bench-controlplane: store, signer and publisher benchmarks (the first run generates a 1M-key
## SQLite store, ~2 min; LATCHKEY_BENCH_DIR keeps it between runs).
bench-controlplane:
	$(GO) test -run='^$$' -bench=. -benchmem ./controlplane/store ./controlplane/signer ./controlplane/publisher ./controlplane/api

WASM_GO := $(WASM_DIR)/accel-go.wasm $(WASM_DIR)/portable-go.wasm
WASM_TINYGO := $(WASM_DIR)/accel-tinygo.wasm $(WASM_DIR)/portable-tinygo.wasm
# What a guest build reads (the guest imports only shared/ and the standard library).
# edge/filter's tests reuse these outputs while they are newer than all of it.
WASM_INPUTS := $(shell find wasm/verifier shared -name '*.go' -not -name '*_test.go' -not -path '*/testdata/*') \
	wasm/tinygo/wasip1.json Makefile

## wasm: the verifier module (wasm/verifier), accelerated and portable, built by TinyGo and by standard Go.
wasm: $(WASM_GO) $(if $(wildcard $(TINYGO)),$(WASM_TINYGO),wasm-no-tinygo)

wasm-no-tinygo:
	@if [ -n "$$CI" ]; then echo "tinygo missing ($(TINYGO)): run make tools"; exit 1; fi
	@echo "SKIP $(notdir $(WASM_TINYGO)): tinygo not installed (make tools installs it)"

$(WASM_GO): $(WASM_DIR)/%-go.wasm: $(WASM_INPUTS)
	@mkdir -p $(@D)
	GOOS=wasip1 GOARCH=wasm $(GO) build -tags='$(filter accel,$*)' -buildmode=c-shared -trimpath -ldflags='-s -w' -o $@ ./wasm/verifier

$(WASM_TINYGO): $(WASM_DIR)/%-tinygo.wasm: $(WASM_INPUTS)
	@mkdir -p $(@D)
	$(TINYGO) build $(TINYGO_FLAGS) -tags='$(filter accel,$*)' -o $@ ./wasm/verifier

HTTPWASM_DIR := wasm/httpwasm/build
# What the http-wasm guest build reads: the guest, its config, the ABI codec and the core.
HTTPWASM_INPUTS := $(shell find wasm/httpwasm wasm/verifier/abi shared -name '*.go' -not -name '*_test.go' -not -path '*/testdata/*') \
	wasm/tinygo/wasip1.json Makefile

## httpwasm: the http-wasm guest (wasm/httpwasm: Traefik plugin, Dapr middleware), built by TinyGo and by standard Go.
httpwasm: $(HTTPWASM_DIR)/httpwasm-go.wasm $(if $(wildcard $(TINYGO)),$(HTTPWASM_DIR)/httpwasm-tinygo.wasm,wasm-no-tinygo)

$(HTTPWASM_DIR)/httpwasm-go.wasm: $(HTTPWASM_INPUTS)
	@mkdir -p $(@D)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags='-s -w' -o $@ ./wasm/httpwasm

$(HTTPWASM_DIR)/httpwasm-tinygo.wasm: $(HTTPWASM_INPUTS)
	@mkdir -p $(@D)
	$(TINYGO) build $(TINYGO_FLAGS) -o $@ ./wasm/httpwasm

PROXYWASM_DIR := wasm/proxywasm/build
# What the proxy-wasm filter build reads: the filter, its config, the ABI codec and the core.
PROXYWASM_INPUTS := $(shell find wasm/proxywasm wasm/verifier/abi shared -name '*.go' -not -name '*_test.go' -not -path '*/testdata/*') \
	wasm/tinygo/wasip1.json Makefile

## proxywasm: the proxy-wasm filter (wasm/proxywasm: Envoy, Istio), built by TinyGo and by standard Go.
proxywasm: $(PROXYWASM_DIR)/proxywasm-go.wasm $(if $(wildcard $(TINYGO)),$(PROXYWASM_DIR)/proxywasm-tinygo.wasm,wasm-no-tinygo)

$(PROXYWASM_DIR)/proxywasm-go.wasm: $(PROXYWASM_INPUTS)
	@mkdir -p $(@D)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags='-s -w' -o $@ ./wasm/proxywasm

$(PROXYWASM_DIR)/proxywasm-tinygo.wasm: $(PROXYWASM_INPUTS)
	@mkdir -p $(@D)
	$(TINYGO) build $(TINYGO_FLAGS) -o $@ ./wasm/proxywasm

## vectors: regenerate shared/testdata/vectors/*.json (then review the diff).
vectors:
	$(GO) test ./shared/verifier -run '^TestGenerateVectors$$' -args -update

## check: formatting, vet, staticcheck, tidy.
check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./shared/... ./wasm/...
	GOOS=wasip1 GOARCH=wasm $(GO) vet -tags=accel ./wasm/...
	GOOS=wasip1 GOARCH=wasm $(GO) vet -tags=latchkey_fixedclock ./wasm/httpwasm/... ./wasm/proxywasm/...
	@if [ -x "$(STATICCHECK)" ]; then $(STATICCHECK) ./...; \
	 elif [ -n "$$CI" ]; then echo "staticcheck missing: run make tools"; exit 1; \
	 else echo "SKIP staticcheck: not installed (make tools installs it)"; fi
	$(GO) mod tidy -diff

## tools: what the tests need beyond Go (idempotent; quick when present).
tools:
	@LATCHKEY_TOOLS_DIR=$(TOOLS_DIR) bash wasm/tinygo/install.sh >/dev/null
	@test -x $(STATICCHECK) || GOBIN=$(HOME)/go/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(VERSITYGW) || GOBIN=$(TOOLS_DIR)/bin $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	@test -x /usr/bin/chromium || { S=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$S env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@$(MAKE) --no-print-directory node-deps

## node-deps: the Node packages the tests use (Miniflare/workerd for edge/worker, playwright-core
## for the browser tests), exactly as package-lock.json pins them (npm ci), reinstalled only when
## the lockfile changes. Without npm the tests that need them skip (fail when CI is set).
node-deps:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory node_modules/.package-lock.json; \
	 elif [ -n "$$CI" ]; then echo "npm missing: install Node.js 20+"; exit 1; \
	 else echo "SKIP npm ci: npm not installed (the worker and browser tests will skip)"; fi

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
