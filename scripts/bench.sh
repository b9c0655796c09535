#!/usr/bin/env bash
# `make bench`: builds with the release profile and runs benches/relay.rs,
# which starts its own loopback sshd, runs A (ssh -tt) / B (gatehouse)
# interleaved, prints the table and writes target/bench.json.
# Knobs: BENCH_RUNS BENCH_MB BENCH_KEYS BENCH_IDLE_SECS BENCH_SKIP_CD BENCH_JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo bench --bench relay "$@"
# An exec stream (issue 11): BENCH_EXEC_MB (1024) each way, BENCH_RUNS.
cargo bench --bench exec
# Many hosts at once (issue 19): BENCH_BATCH_HOSTS (200), BENCH_BATCH_PARALLEL (32).
exec cargo bench --bench batch
