#!/usr/bin/env bash
# Check (and, as root, install) what building and testing Gatehouse needs.
#
# Required: a C compiler and pkg-config, OpenSSL and zlib headers (libssh2 is
# compiled from vendored source and links libssl3/zlib), sshd and the OpenSSH
# client (the integration tests run real loopback servers).
# Optional: asciinema (recording checks), tmux, jq (pretty demo output), and
# the programs some end-to-end tests run (vim, less, man, top, sudo, rsync).
#
# As root: `apt-get update` once, then install whatever is missing.
# Otherwise: print the exact `sudo apt-get install …` line and exit 1 when a
# required package is missing (a note only, exit 0, when only optional ones are).
set -euo pipefail

required=()
optional=()

need() { # need PACKAGE CHECK...
    local pkg=$1
    shift
    if ! "$@" >/dev/null 2>&1; then
        required+=("$pkg")
    fi
}
want() {
    local pkg=$1
    shift
    if ! "$@" >/dev/null 2>&1; then
        optional+=("$pkg")
    fi
}
have() { command -v "$1"; }

need gcc have cc
need libc6-dev test -e /usr/include/stdio.h
need pkg-config have pkg-config
need libssl-dev pkg-config --exists openssl
need zlib1g-dev pkg-config --exists zlib
need openssh-server test -x /usr/sbin/sshd
need openssh-client have ssh
# ssh-keygen comes with openssh-client; do not list the package twice.
if ! have ssh-keygen >/dev/null 2>&1 && [[ " ${required[*]-} " != *" openssh-client "* ]]; then
    required+=(openssh-client)
fi
want asciinema have asciinema
want tmux have tmux
want jq have jq
# Programs the end-to-end tests run on the loopback target or the bastion:
# full-screen programs (capture), sudo/passwd prompts (secrets), rsync/scp
# (escape attempts).
want vim have vim
want less have less
want man-db have man
want procps have top
want sudo have sudo
want rsync have rsync
want openssh-sftp-server test -x /usr/lib/openssh/sftp-server
# Central log shipping (tests/central.rs, `make test-central`): rsyslog with
# imfile/RELP, and logrotate for the rotation test.
want rsyslog test -x /usr/sbin/rsyslogd
want rsyslog-relp test -e /usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so -o -e /usr/lib/rsyslog/imrelp.so -o -e /usr/lib/aarch64-linux-gnu/rsyslog/imrelp.so
want logrotate test -x /usr/sbin/logrotate
# Other shells the capture is tested against (the tests say SKIP without them).
want zsh have zsh
want fish have fish

if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    echo "deps: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi

if [ ${#required[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then
    echo "deps: all present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "deps: installing ${required[*]-} ${optional[*]-}" >&2
    apt-get update -qq
    if [ ${#required[@]} -gt 0 ]; then
        apt-get install -y -qq --no-install-recommends "${required[@]}" </dev/null
    fi
    if [ ${#optional[@]} -gt 0 ]; then
        # Optional: a failure here is not fatal.
        apt-get install -y -qq --no-install-recommends "${optional[@]}" </dev/null ||
            echo "deps: could not install optional ${optional[*]} (some tests will skip)" >&2
    fi
    exit 0
fi

if [ ${#required[@]} -gt 0 ]; then
    echo "deps: missing required packages. Run:" >&2
    echo "sudo apt-get install ${required[*]} ${optional[*]-}" | sed 's/ *$//'
    exit 1
fi
echo "deps: optional packages missing (some tests will skip). To add them:" >&2
echo "sudo apt-get install ${optional[*]}"
exit 0
