#!/usr/bin/env bash
# `make test`: every test of every target, and a summary that cannot look
# complete when it is not (issue 17).
#
# 1. Build every test target and list its tests (`-- --list`): what should run.
# 2. Run them all with `--no-fail-fast`: a failing (or crashing) test binary
#    does not stop the ones after it.
# 3. Account per test binary: passed, failed, ignored from libtest's
#    `test result:` line (or, for a binary that died before printing it, its
#    `test NAME ... ok|FAILED|ignored` lines), and count as NOT RUN whatever
#    was listed but never reported. When a target does not build, cargo runs
#    nothing: every `#[test]` function in the sources counts as not run.
#
# A test that cannot run here records itself in target/tmp/skipped.txt
# (tests/common `skip()`); those are listed and counted as skipped, not passed.
# Last line, the one CI reads:
#   tests: N passed, N failed, N skipped
# and when anything did not run, a loud INCOMPLETE block before it, the line
# ends with `, N not run (INCOMPLETE)`, and the exit status is non-zero.
#
# Knobs: CARGO (default cargo); GATEHOUSE_TEST_TIMEOUT_SCALE multiplies every
# deadline of the integration tests (tests/common, default 4).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo=${CARGO:-cargo}
# GATEHOUSE_TEST_OUT: where the logs go (tests/make_test.rs points it at a
# temp dir, so testing this script never touches a real run's files).
out=${GATEHOUSE_TEST_OUT:-target}
tmp=$out/tmp
log=$out/test.log
list=$out/test-list.log
mkdir -p "$tmp"
rm -f "$tmp/skipped.txt"

# 1. What should run. A build failure shows here first (and again below).
echo "make test: building every test target and listing its tests ($list)"
$cargo test --all-targets --no-fail-fast -- --list >"$list" 2>&1
list_status=$?
if [ "$list_status" -ne 0 ]; then
    echo "make test: building or listing the tests failed (status $list_status); see $list" >&2
    grep -E '^(error|warning: build failed)' "$list" | head -20 >&2
fi

# 2. Run everything.
$cargo test --all-targets --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Cargo runs nothing when any target fails to build. Then every test is
# "not run", counted from the sources (`#[test]` functions), and the targets
# that failed are named.
unbuilt=$(grep -h 'could not compile' "$list" "$log" 2>/dev/null | sed -E 's/.*could not compile `[^`]*` \(([^)]*)\).*/\1/' | sort -u | paste -sd ';' -)
source_tests=$(find src tests -name '*.rs' -exec cat {} + | grep -cE '^\s*#\[test\]')

skipped=$(cat "$tmp/skipped.txt" 2>/dev/null | wc -l)
if [ "$skipped" -gt 0 ]; then
    echo "SKIPPED (loudly):"
    sed 's/^/  /' "$tmp/skipped.txt"
fi

# 3. Account. Prints the INCOMPLETE block (if any) and the summary line;
# exits 3 when some test did not run.
awk -v sk="$skipped" -v unbuilt="$unbuilt" -v source_tests="$source_tests" '
    function label(line,   s) {
        s = line
        sub(/^ *Running (unittests )?/, "", s)
        sub(/ \(.*$/, "", s)
        return s
    }
    # Pass 1: the listing (file 1).
    FILENAME == ARGV[1] {
        if ($0 ~ /^ *Running /) { cur = label($0); if (!(cur in want)) { want[cur] = 0; order[++n] = cur } }
        else if (cur != "" && $0 ~ /: (test|bench)$/) want[cur]++
        next
    }
    # Pass 2: the run (file 2).
    /^ *Running / {
        cur = label($0); seen[cur] = 1
        if (!(cur in want)) { want[cur] = 0; order[++n] = cur }
        next
    }
    /^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) rp[cur] += $i
            if ($(i + 1) ~ /^failed/) rf[cur] += $i
            if ($(i + 1) ~ /^ignored/) ri[cur] += $i
        }
        done[cur] = 1
        next
    }
    /^test .* \.\.\. (ok|FAILED|ignored)/ {
        if ($NF == "ok") lp[cur]++; else if ($NF == "FAILED") lf[cur]++; else li[cur]++
        next
    }
    /process didn.t exit successfully/ && cur != "" { died[cur] = $0 }
    END {
        for (k = 1; k <= n; k++) {
            t = order[k]
            if (done[t]) { p = rp[t]; f = rf[t]; s = ri[t] }
            else { p = lp[t]; f = lf[t]; s = li[t] }
            P += p; F += f; S += s
            missing = want[t] - (p + f + s)
            if (missing > 0) {
                why = !seen[t] ? "never started" : (died[t] != "" ? "the test binary died before reporting" : "no result reported")
                report[++r] = sprintf("  %s: %d of %d tests did not run (%s)", t, missing, want[t], why)
                if (died[t] != "") { d = died[t]; sub(/^ */, "", d); report[++r] = "    " d }
                NR_ += missing
            }
        }
        if (unbuilt != "") {
            report[++r] = "  build failed (" unbuilt "): cargo ran no test at all"
            if (NR_ < source_tests - (P + F + S)) NR_ = source_tests - (P + F + S)
        }
        if (NR_ > 0 || r > 0) {
            print "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
            printf "INCOMPLETE: %d test(s) did not run; the counts below are NOT the whole suite:\n", NR_
            for (k = 1; k <= r; k++) print report[k]
            print "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
            printf "tests: %d passed, %d failed, %d skipped, %d not run (INCOMPLETE)\n", P - sk, F, S + sk, NR_
            exit 3
        }
        printf "tests: %d passed, %d failed, %d skipped\n", P - sk, F, S + sk
    }
' "$list" "$log"
account=$?

if [ "$status" -eq 0 ] && [ "$account" -ne 0 ]; then
    status=1
fi
exit "$status"
