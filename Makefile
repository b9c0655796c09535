# Developer entry points. CI runs .ci/run (make lint && make test) as root.
SHELL := /bin/bash
# CI has cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: all build deps test test-central test-directory lint demo bench capacity profile soak fuzz clean install uninstall deb

all: build

build:
	$(CARGO) build --release

deps:
	bash scripts/deps.sh

# Every target (lib, bin, integration tests against loopback sshd), with
# --no-fail-fast: a failing or crashing test binary does not stop the rest
# (scripts/test.sh). A test that cannot run here (not root, no pty support, a
# missing program) records itself in target/tmp/skipped.txt; they are listed,
# then one summary line: "tests: N passed, N failed, N skipped" (skipped =
# ignored + self-skipped). Tests that never ran (a crashed binary, a build
# failure) are counted and named in a loud INCOMPLETE block, the line ends
# with ", N not run (INCOMPLETE)", and the exit status is non-zero.
# GATEHOUSE_TEST_TIMEOUT_SCALE multiplies every test deadline (default 4).
test: deps
	@CARGO="$(CARGO)" bash scripts/test.sh

# Many bastions, one record (tests/central.rs, also part of `make test`):
# two bastion sshds with Gatehouse, their rsyslogs (imfile -> RELP, the
# shipped packaging/shipping snippets) and a central rsyslog, each from its
# own config in a temp dir; the central one is stopped for
# GATEHOUSE_CENTRAL_OUTAGE_SECS (default 10) and nothing may be lost or
# doubled; seals verified on the central copy; logrotate. Needs rsyslog,
# rsyslog-relp, logrotate (`make deps` installs them as root).
test-central: deps
	$(CARGO) test --test central -- --nocapture

# Operators from LDAP, end to end (tests/directory.rs, issue 14): a real
# slapd, SSSD for NSS and sshd's AuthorizedKeysCommand, TOTP with pam_oath.
# Root only; installs slapd/sssd/pam_oath with apt; puts /etc/nsswitch.conf,
# PAM and SSSD's config and state back exactly as they were, even on failure
# or Ctrl-C, and checks that with checksums (scripts/test-directory.sh).
test-directory:
	@CARGO="$(CARGO)" bash scripts/test-directory.sh

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	sh scripts/layers.sh
	bash scripts/vendor-libssh2.sh --check
	@# Functions over ~100 lines without a `long:` reason above them
	@# (issue 16); a report, never a failure.
	@if command -v python3 >/dev/null; then python3 scripts/long-fns.py; else echo "long-fns: no python3, report skipped"; fi

# Loopback sshd + three demo hosts, Gatehouse in the foreground.
demo:
	bash scripts/demo.sh

# A/B/C/D interleaved (direct ssh, gatehouse locally, nested OpenSSH and
# gatehouse behind a bastion sshd) + Gatehouse-only figures; a few minutes.
# Knobs by environment: see scripts/bench.sh. Writes target/bench.json and
# docs/bench.svg (BENCHMARKS.md).
bench:
	bash scripts/bench.sh

# 200 concurrent sessions through one bastion sshd (BENCH_SESSIONS); minutes.
capacity:
	BENCH_MODE=capacity bash scripts/bench.sh

# perf profile of the relay behind a bastion sshd during bulk output, and a
# flame graph (target/flamegraph-bastion.svg).
profile:
	bash scripts/profile.sh

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
	cd fuzz && $(CARGO) +nightly fuzz run normalize -- -max_total_time=$(FUZZ_SECS)
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

# Debian package; lands in target/debian/. cargo-deb is installed when
# missing, pinned and --locked (its own tested dependency set), as `make
# test` installs what it needs.
CARGO_DEB_VERSION ?= 3.8.0
deb:
	@if ! $(CARGO) deb --version >/dev/null 2>&1; then \
	    echo "deb: installing cargo-deb $(CARGO_DEB_VERSION) (cargo install --locked)"; \
	    $(CARGO) install cargo-deb --version "=$(CARGO_DEB_VERSION)" --locked; \
	fi
	$(CARGO) deb
