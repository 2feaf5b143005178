# Aurum Canary. `make demo` runs the product on its embedded defaults;
# `make test` installs what the tests need and runs every test.

GO       ?= go
BIN      ?= bin/canary
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The commit's date, not the clock's: two builds of one commit are identical.
DATE     ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.buildDate=$(DATE)
# -s -w strip the debug info at link time, so the compiler need not write
# it: without DWARF a cold build is a sixth faster and the binary the same
# size. Panics still print file:line (that is the pclntab, not DWARF).
GCFLAGS  := all=-dwarf=false
# nomsgpack leaves out gin's MessagePack binding and rendering, which no
# handler uses, and the codec library behind them: 6 MB of the binary. The
# Dockerfile and make dist build with the same tags.
TAGS     := nomsgpack
FUZZTIME ?= 30s

.PHONY: all build test deps unit bench fuzz lint demo dist docs clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -trimpath -gcflags "$(GCFLAGS)" -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/canary
	ln -sf $(notdir $(BIN)) $(dir $(BIN))kubectl-canary

# docs writes the CLI reference, docs/cli: a page per command, from the
# commands themselves (a test fails when it is out of date).
docs:
	rm -rf docs/cli
	$(GO) run ./cmd/canary docs docs/cli

# deps installs the real components the tests run against: Debian packages
# when they are missing, and kube-apiserver, built once from the Go module
# proxy and cached outside the repository (about 10 minutes the first time).
deps:
	./scripts/install-test-deps.sh
	./scripts/kube-apiserver.sh >/dev/null

test: deps lint
	$(GO) test -race -count=1 -timeout 30m ./...

# unit runs the tests without installing anything first.
unit:
	$(GO) test -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# fuzz runs every fuzz target for FUZZTIME each.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

lint:
	@out=$$(gofmt -l . | grep -v '^vendor/'); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

demo: build
	./scripts/demo.sh $(BIN)

# dist builds the release: an archive per platform (linux and darwin, amd64
# and arm64) with the binary, kubectl-canary (a link to it: the kubectl
# plugin), LICENSE, README and CHANGELOG, a CycloneDX
# SBOM of each binary, and SHA256SUMS. VERSION must be a vX.Y.Z tag.
dist:
	$(GO) run ./internal/release/cmd/dist -version $(VERSION) -date $(DATE) -tags $(TAGS) -out dist

clean:
	rm -rf bin dist

# The container image and the Helm chart (charts/canary). `make image` needs
# a Docker engine, which CI does not have: there, `go test ./charts/...`
# runs the Dockerfile's build command and checks the binary is static.
IMAGE ?= ghcr.io/aurum/canary
HELM  ?= go run helm.sh/helm/v3/cmd/helm@v3.22.0
CHART := charts/canary

.PHONY: image helm-lint helm-template helm-package helm-test

image:
	docker build --build-arg VERSION=$(VERSION) --build-arg BUILD_DATE=$(DATE) --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null) -t $(IMAGE):$(VERSION) .

# helm-lint lints the chart with its defaults and with every values file in
# charts/canary/ci.
helm-lint:
	$(HELM) lint --strict $(CHART)
	for f in $(CHART)/ci/*.yaml; do $(HELM) lint --strict $(CHART) -f $$f || exit 1; done

helm-template:
	$(HELM) template canary $(CHART)

helm-package:
	$(HELM) package $(CHART) -d bin

helm-test:
	$(GO) test -count=1 ./charts/...
