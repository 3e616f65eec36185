# fockker: `make demo` builds and runs a real container; `make test` runs every test.
# Both install the OS packages they need when run as root on Debian/Ubuntu.

export PATH := $(PATH):/usr/local/go/bin
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN       ?= ./fockker
IMAGE_ROOT ?= $(or $(FOCKKER_IMAGE_ROOT),/var/root)
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v '/tests')

.PHONY: all build deps image demo test lint unit e2e vmtest bench clean

all: build

# Linked statically against musl (pure-Go DNS and user lookups): every process fockker starts
# (the CLI, a container's init, a watcher) skips the dynamic loader, ~0.5 ms each, and musl's
# start-up is ~0.5 ms shorter than glibc's static one (no CPU feature probing, no IRELATIVE
# relocations, no parse of /proc/self/maps for the main thread's stack). scripts/deps.sh
# installs musl-tools; without musl-gcc the build links glibc's libc.a instead (scripts/cc-env.sh
# says which, and is read when the recipe runs, after deps), and a plain `go build .` works too:
# the same program, slower to start.
CC_ENV     = . scripts/cc-env.sh &&
LDFLAGS    = -linkmode external -extldflags=-static -X main.version=$(VERSION)

build:
	$(CC_ENV) $(GO) build -tags netgo,osusergo -ldflags "$(LDFLAGS)" -o $(BIN) .

deps:
	@scripts/deps.sh

image: deps
	@scripts/busybox-image.sh $(IMAGE_ROOT)

# A real container: foreground with its output, then a detached one through ps/logs/stop/rm.
# --net none: the demo never touches the machine's own network (no bridge, no iptables rules);
# networks are shown in the README and exercised by the tests in namespaces of their own.
demo: deps build image
	@echo '$$ fockker run --rm --net none -m 64m busybox sh -c "..."'
	@$(BIN) --image-root $(IMAGE_ROOT) run --rm --net none --name fockker-demo -m 64m busybox \
		sh -c 'echo "hello from $$(hostname), I am PID $$$$"; echo "my processes:"; ps; echo "my mounts:"; mount | head -3'
	@echo '$$ fockker run -d --net none busybox sh -c "while true; do date; sleep 1; done"'
	@$(BIN) --image-root $(IMAGE_ROOT) run -d --net none --name fockker-demo-d busybox sh -c 'while true; do date; sleep 1; done'
	@sleep 2
	@$(BIN) --image-root $(IMAGE_ROOT) ps
	@$(BIN) --image-root $(IMAGE_ROOT) logs fockker-demo-d
	@$(BIN) --image-root $(IMAGE_ROOT) stop -t 1 fockker-demo-d
	@$(BIN) --image-root $(IMAGE_ROOT) rm fockker-demo-d
	@echo '$$ fockker system prune   # nothing left over; the empty parent cgroup goes too'
	@$(BIN) --image-root $(IMAGE_ROOT) system prune

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }
	$(CC_ENV) $(GO) vet ./...

# With the C library and link the binary is built with: the C constructors are tested as shipped.
unit:
	$(CC_ENV) $(GO) test -count=1 -tags netgo,osusergo -ldflags "-linkmode external -extldflags=-static" $(UNIT_PKGS)

# Black-box tests: the built binary as root, in a network namespace of their own.
e2e: deps build
	FOCKKER_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 20m ./tests/

# cgroup v2 on a real kernel: Debian's kernel under qemu (TCG) with an initramfs.
vmtest: build
	@scripts/deps.sh --vm
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		scripts/busybox-image.sh "$$tmp" >/dev/null && \
		tests/vm/run.sh $(BIN) "$$tmp/busybox"

test: deps lint unit e2e vmtest

# Side by side with runc, podman and the bare-namespaces floor; writes BENCHMARKS.md.
# Not part of `make test`: numbers are measurements, never assertions.
bench: deps build
	bench/bench.sh $(BIN) BENCHMARKS.md

clean:
	rm -f $(BIN)
