# Developer entry points. CI runs .ci/run (make lint && make test) as root.
SHELL := /bin/bash
# CI has cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all build deps test lint demo bench soak fuzz clean install uninstall deb

all: build

build:
	$(CARGO) build --release

deps:
	bash scripts/deps.sh

# Every target (lib, bin, integration tests against loopback sshd). A test
# that cannot run here (not root, no pty support, a missing program) records
# itself in target/tmp/skipped.txt; they are listed, then one summary line:
# "tests: N passed, N failed, N skipped" (skipped = ignored + self-skipped).
test: deps
	@mkdir -p target/tmp && rm -f target/tmp/skipped.txt
	@set -o pipefail; status=0; $(CARGO) test --all-targets 2>&1 | tee target/test.log || status=$$?; \
	skipped=$$(cat target/tmp/skipped.txt 2>/dev/null | wc -l); \
	if [ "$$skipped" -gt 0 ]; then echo "SKIPPED (loudly):"; sed 's/^/  /' target/tmp/skipped.txt; fi; \
	awk -v sk="$$skipped" '/^test result:/ { for (i = 1; i <= NF; i++) { \
	    if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i; \
	    if ($$(i+1) ~ /^ignored/) s += $$i } } \
	    END { printf "tests: %d passed, %d failed, %d skipped\n", p - sk, f, s + sk }' target/test.log; \
	exit $$status

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Loopback sshd + three demo hosts, Gatehouse in the foreground.
demo:
	bash scripts/demo.sh

bench:
	@if [ -f scripts/bench.sh ]; then bash scripts/bench.sh; \
	else echo "bench: scripts/bench.sh is not written yet"; fi

# The load tests of `make test` (tests/load.rs), full size, release build:
# a 1 GB stream to a slow terminal, a minute of idle (BENCHMARKS.md).
soak: deps
	LOAD_STREAM_MB=1024 LOAD_IDLE_SECS=60 $(CARGO) test --release --test load -- --test-threads=1 --nocapture

# Coverage-guided fuzzing of the parsers of untrusted bytes (needs a
# nightly toolchain and `cargo install cargo-fuzz`). FUZZ_SECS per target.
FUZZ_SECS ?= 120
fuzz:
	cd fuzz && $(CARGO) +nightly fuzz run capture -- -max_total_time=$(FUZZ_SECS)
	cd fuzz && $(CARGO) +nightly fuzz run config -- -max_total_time=$(FUZZ_SECS)
	cd fuzz && $(CARGO) +nightly fuzz run sftp -- -max_total_time=$(FUZZ_SECS)

clean:
	$(CARGO) clean
	rm -rf .demo

# Source install with the package's layout (packaging/install.sh):
#   make install [DESTDIR=/staging] [PREFIX=/usr/local]
# As root it creates the gatehouse account and makes the binary setuid to it.
PREFIX ?= /usr/local
DESTDIR ?=
install: build
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" bash packaging/install.sh install

uninstall:
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" bash packaging/install.sh uninstall

# Debian package (cargo install cargo-deb --locked); lands in target/debian/.
deb:
	$(CARGO) deb
