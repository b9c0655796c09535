#!/usr/bin/env bash
# `make bench`: builds with the release profile and runs benches/relay.rs,
# which starts its own loopback target sshd and two bastion sshds, runs
# A (ssh -tt target) / B (gatehouse -c tgt) / C (bastion, ForceCommand ssh)
# / D (bastion, ForceCommand gatehouse) interleaved, prints the tables and
# writes target/bench.json and docs/bench.svg.
# Knobs: BENCH_RUNS (3) BENCH_MB (100) BENCH_KEYS (500) BENCH_IDLE_SECS (5)
# BENCH_ONLY (letters of ABCDG) BENCH_SKIP_CD BENCH_BASELINE_BIN (E: an
# older gatehouse binary behind its own bastion, for before/after)
# BENCH_JSON BENCH_SVG; BENCH_MODE=capacity (BENCH_SESSIONS, BENCH_BATCH).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo bench --bench relay "$@"
# An exec stream (issue 11): BENCH_EXEC_MB (1024) each way, BENCH_RUNS.
cargo bench --bench exec
# Many hosts at once (issue 19): BENCH_BATCH_HOSTS (200), BENCH_BATCH_PARALLEL (32).
exec cargo bench --bench batch
