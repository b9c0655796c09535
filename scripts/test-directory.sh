#!/usr/bin/env bash
# `make test-directory` (issue 14): Gatehouse with operators in LDAP, end to
# end — a real slapd, SSSD for NSS and sshd's AuthorizedKeysCommand, a TOTP
# second factor with pam_oath (tests/directory.rs says what it proves).
#
# Root only. It installs what it needs with apt (slapd ldap-utils sssd-ldap
# sssd-tools libpam-oath oathtool), then runs the test. Installing
# libnss-sss and libpam-sss rewrites /etc/nsswitch.conf and
# /etc/pam.d/common-* (pam-auth-update), and the test itself changes
# /etc/nsswitch.conf, adds /etc/pam.d/ghdir-sshd and uses SSSD's state
# under /var/lib/sss. All of it is put back exactly as it was, on success,
# failure or interrupt: the test's own Drop guard, and this script's trap
# (which also stops the test's daemons should the test be killed), then
# sha256 checksums of every guarded file before and after are compared; a
# difference fails the run loudly.
#
# Guarded, as they were before this script started:
#   /etc/nsswitch.conf /etc/pam.d /etc/sssd
# and, as they were after the install, before the test:
#   /var/lib/sss/db /var/lib/sss/mc /run/sssd.pid
# The packages stay installed (as `make test` leaves its packages).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo=${CARGO:-cargo}
base=/run/gatehouse-directory-test
started=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
    echo "make test-directory: needs root (it installs slapd and SSSD and changes /etc/nsswitch.conf while it runs)" >&2
    exit 1
fi

# One run at a time on this machine: SSSD's pipes, pid file and caches are
# fixed paths, and so is $base.
exec 9>/run/gatehouse-directory-test.lock
if ! flock -w 1800 9; then
    echo "make test-directory: another run holds /run/gatehouse-directory-test.lock" >&2
    exit 1
fi

snap=$(mktemp -d /tmp/ghdir-guard.XXXXXX)
early=(etc/nsswitch.conf etc/pam.d etc/sssd)
late=(var/lib/sss/db var/lib/sss/mc run/sssd.pid)

# snapshot NAME PATH...: a copy of each path (relative to /) that exists,
# the list of those that do not, and a manifest (type, mode, owner, sha256).
snapshot() {
    local name=$1
    shift
    mkdir -p "$snap/$name"
    : >"$snap/$name.absent"
    local p
    for p in "$@"; do
        if [ -e "/$p" ] || [ -L "/$p" ]; then
            (cd / && cp -a --parents "$p" "$snap/$name/")
        else
            echo "$p" >>"$snap/$name.absent"
        fi
    done
    manifest "$@" >"$snap/$name.sums"
}

manifest() {
    local p
    for p in "$@"; do
        if [ -e "/$p" ] || [ -L "/$p" ]; then
            (cd / && find "$p" -printf '%y %m %u:%g %p\n' | sort -k4)
            (cd / && find "$p" -type f -print0 | sort -z | xargs -0 -r sha256sum)
        else
            echo "absent $p"
        fi
    done
}

# restore NAME PATH...: each path back to its copy, byte for byte, mode and
# owner; entries that were not there are removed, paths that did not exist
# are removed. A changed file is replaced by a rename, so a reader (another
# process's PAM or NSS) sees the old file or the new one, never half.
restore() {
    local name=$1
    shift
    local root="$snap/$name" p f
    for p in "$@"; do
        if grep -qxF "$p" "$snap/$name.absent"; then
            rm -rf "/${p:?}"
            continue
        fi
        if [ -d "/$p" ] && [ ! -L "/$p" ]; then
            (cd / && find "$p" -depth -print) | while IFS= read -r f; do
                [ -e "$root/$f" ] || [ -L "$root/$f" ] || rm -rf "/${f:?}"
            done
        fi
        (cd "$root" && find "$p" -print) | while IFS= read -r f; do
            if [ -d "$root/$f" ] && [ ! -L "$root/$f" ]; then
                [ -d "/$f" ] || mkdir -p "/$f"
                chmod --reference="$root/$f" "/$f"
                chown --reference="$root/$f" "/$f"
            elif ! cmp -s "$root/$f" "/$f" ||
                [ "$(stat -c '%a %u %g %F' "$root/$f")" != "$(stat -c '%a %u %g %F' "/$f" 2>/dev/null)" ]; then
                cp -a "$root/$f" "/$f.ghdir-restore" && mv -f "/$f.ghdir-restore" "/$f"
            fi
        done
    done
}

test_pid=
made_policy=
status=1
finish() {
    trap '' INT TERM HUP
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    # The test runs in its own process group: stop it and whatever it
    # started (slapd, sssd, sshd), then any daemon it recorded.
    if [ -n "$test_pid" ]; then
        kill -KILL -- "-$test_pid" 2>/dev/null
    fi
    if [ -f "$base/pids" ]; then
        while read -r pid; do
            kill -KILL "$pid" 2>/dev/null
        done <"$base/pids"
    fi
    # Restore only once they are gone: a dying sssd still writes its caches.
    local i
    for i in $(seq 1 100); do
        alive=0
        [ -n "$test_pid" ] && kill -0 -- "-$test_pid" 2>/dev/null && alive=1
        if [ -f "$base/pids" ]; then
            while read -r pid; do
                kill -0 "$pid" 2>/dev/null && alive=1
            done <"$base/pids"
        fi
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    rm -rf "$base"
    local bad=0
    if [ -f "$snap/late.sums" ]; then
        restore late "${late[@]}"
        manifest "${late[@]}" >"$snap/late.after"
        if ! diff -u "$snap/late.sums" "$snap/late.after"; then bad=1; fi
    fi
    if [ -f "$snap/early.sums" ]; then
        restore early "${early[@]}"
        manifest "${early[@]}" >"$snap/early.after"
        if ! diff -u "$snap/early.sums" "$snap/early.after"; then bad=1; fi
    fi
    if [ "$bad" -ne 0 ]; then
        echo "!!! make test-directory: system files differ from before the run (diff above); copies kept in $snap" >&2
        status=1
    else
        echo "make test-directory: nsswitch.conf, PAM, SSSD config and state restored (checksums match)"
        rm -rf "$snap"
    fi
    echo "make test-directory: $(($(date +%s) - started)) s"
    exit "$status"
}
trap finish EXIT
trap 'status=130; exit' INT
trap 'status=143; exit' TERM HUP

snapshot early "${early[@]}"

bash scripts/deps.sh || exit 1
pkgs=(slapd ldap-utils sssd-ldap sssd-tools libpam-oath oathtool)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "test-directory: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # slapd unconfigured: the test runs its own with its own config, and the
    # package must not build a database or start a server on port 389.
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    # Nor may the install start sssd: a policy-rc.d for the install only
    # (Docker images ship one already).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    rc=$?
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    made_policy=
    if [ $rc -ne 0 ]; then
        echo "test-directory: apt-get install failed" >&2
        exit 1
    fi
fi
snapshot late "${late[@]}"

export GATEHOUSE_TEST_DIRECTORY=1
# Build first (outside the timed test), then run in a process group of its
# own so the trap can stop everything it started.
$cargo test --test directory --no-run || exit 1
log=target/test-directory.log
setsid -w $cargo test --test directory -- --test-threads=1 --nocapture > >(tee "$log") 2>&1 &
test_pid=$!
wait "$test_pid"
status=$?
test_pid=
if grep -q 'SKIPPED (loudly)' "$log"; then
    echo "!!! make test-directory: the test skipped itself (see above)" >&2
    status=1
fi
exit "$status"
