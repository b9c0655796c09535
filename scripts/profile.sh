#!/usr/bin/env bash
# Where the bastion's CPU goes during bulk output (issue 13, point 3).
# Runs the bench's D case alone (ssh -tt bastion tgt, the bastion sshd's
# ForceCommand is gatehouse) with a large stream, waits until 20 MB have
# gone through, then `perf record -g` the relay (PROFILE_WHAT=relay,
# default) or the relay and its sshd session process (PROFILE_WHAT=both)
# for PROFILE_SECS (10). Prints the top symbols and the per-library split,
# writes target/profile-bastion.data and target/flamegraph-bastion.svg.
# perf's cpu-clock event works in this VM; hardware counters do not.
# PROFILE_MODE=C profiles the nested OpenSSH client instead (relay `ssh`).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${PROFILE_MODE:-D}
relay=gatehouse; [ "$mode" = C ] && relay=ssh
secs=${PROFILE_SECS:-10}
out=target/profile-bastion.data
command -v perf >/dev/null || { echo "profile: perf is missing (apt-get install linux-perf)"; exit 1; }
cargo bench --bench relay --no-run 2>/dev/null
bin=$(ls -t target/release/deps/relay-* | grep -v '\.d$' | head -1)
BENCH_ONLY=$mode BENCH_RUNS=1 BENCH_MB=${PROFILE_MB:-600} BENCH_KEYS=5 BENCH_IDLE_SECS=0 \
    BENCH_SVG=/dev/null BENCH_JSON=/dev/null "$bin" --bench >target/profile-bench.log 2>&1 &
bench=$!
pid=
for _ in $(seq 1 600); do
    for p in $(pgrep -x "$relay" || true); do
        # The relay under the bastion's sshd, not some other ssh on the box.
        if grep -qx sshd "/proc/$(ps -o ppid= -p "$p" | tr -d ' ')/comm" 2>/dev/null; then pid=$p; fi
    done
    [ -n "$pid" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { echo "profile: no $relay under a bastion sshd"; kill "$bench"; exit 1; }
wchar() { awk '/^wchar/{print $2}' "/proc/$pid/io"; }
w0=$(wchar)
while [ $(( $(wchar) - w0 )) -lt 20000000 ]; do sleep 0.1; done
sshd=$(ps -o ppid= -p "$pid" | tr -d ' ')
pids=$pid; [ "${PROFILE_WHAT:-relay}" = both ] && pids="$pid,$sshd"
perf record -F 1999 -g -o "$out" -p "$pids" -- sleep "$secs" 2>&1 | tail -1
wait "$bench" || true
# `head` closes the pipes early; that is not a failure.
set +o pipefail
echo "== by library"
perf report -i "$out" --no-children --sort comm,dso --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' | head -12
echo "== top symbols (self)"
perf report -i "$out" --no-children --sort comm,sym --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' | head -25
echo "== inclusive: where the kernel time is spent"
perf report -i "$out" --children --sort sym --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' |
    grep -E 'file_tty_write|wait_woken|ext4_buffered_write_iter|__sys_recvfrom|__sys_sendto|do_sys_poll' | head
perf script -i "$out" 2>/dev/null | python3 scripts/flamegraph.py "relay $relay behind a bastion sshd, bulk output" >target/flamegraph-bastion.svg
echo "written: $out target/flamegraph-bastion.svg"
