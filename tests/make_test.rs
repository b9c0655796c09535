//! `make test`'s accounting (scripts/test.sh), with a stand-in for cargo
//! that prints canned output: a suite whose summary looks complete when a
//! test binary crashed or a target did not build is the bug of issue 17.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// What `cargo test --all-targets -- --list` prints for two test binaries.
const LIST: &str = "\
     Running tests/alpha.rs (target/debug/deps/alpha-0123456789abcdef)
a_one: test
a_two: test
a_three: test

3 tests, 0 benchmarks
     Running tests/beta.rs (target/debug/deps/beta-0123456789abcdef)
b_one: test
b_two: test

2 tests, 0 benchmarks
";

const ALPHA_OK: &str = "\
     Running tests/alpha.rs (target/debug/deps/alpha-0123456789abcdef)

running 3 tests
test a_one ... ok
test a_two ... ok
test a_three ... ok

test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
";

/// Runs scripts/test.sh with a fake cargo that prints `LIST` for the
/// listing, `run` for the run, and exits with `status`; `skip` lines are
/// written to the skip file during the run, as tests/common `skip()` does.
/// Returns (exit status, stdout).
fn account(run: &str, status: i32, skip: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("list.txt"), LIST).unwrap();
    fs::write(d.join("run.txt"), run).unwrap();
    fs::write(d.join("skip.txt"), skip).unwrap();
    let cargo = d.join("fake-cargo");
    fs::write(
        &cargo,
        format!(
            "#!/bin/bash\n\
             case \" $* \" in *' --list '*) cat {d}/list.txt; exit 0;; esac\n\
             mkdir -p {d}/out/tmp; cat {d}/skip.txt >> {d}/out/tmp/skipped.txt\n\
             cat {d}/run.txt; exit {status}\n",
            d = d.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("CARGO", &cargo)
        .env("GATEHOUSE_TEST_OUT", d.join("out"))
        .output()
        .expect("run bash scripts/test.sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn last_line(s: &str) -> &str {
    s.trim_end().lines().last().unwrap_or("")
}

#[test]
fn complete_run_ends_with_the_plain_summary() {
    let beta = "\
     Running tests/beta.rs (target/debug/deps/beta-0123456789abcdef)
test b_one ... ok
test b_two ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
";
    let (code, out) = account(&format!("{ALPHA_OK}{beta}"), 0, "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(last_line(&out), "tests: 5 passed, 0 failed, 0 skipped");
    assert!(!out.contains("INCOMPLETE"), "{out}");

    // A test that skipped itself passed for libtest; it counts as skipped.
    let (code, out) = account(
        &format!("{ALPHA_OK}{beta}"),
        0,
        "b_two: sshd cannot allocate ptys here\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SKIPPED (loudly):\n  b_two: sshd"), "{out}");
    assert_eq!(last_line(&out), "tests: 4 passed, 0 failed, 1 skipped");
}

#[test]
fn crashed_test_binary_is_counted_as_not_run() {
    let beta = "\
     Running tests/beta.rs (target/debug/deps/beta-0123456789abcdef)
test b_one ... ok
error: test failed, to rerun pass `--test beta`

Caused by:
  process didn't exit successfully: `target/debug/deps/beta-0123456789abcdef` (signal: 6, SIGABRT: process abort signal)
";
    let (code, out) = account(&format!("{ALPHA_OK}{beta}"), 101, "");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("INCOMPLETE: 1 test(s) did not run"), "{out}");
    assert!(
        out.contains("tests/beta.rs: 1 of 2 tests did not run (the test binary died"),
        "{out}"
    );
    assert!(out.contains("SIGABRT"), "{out}");
    assert_eq!(
        last_line(&out),
        "tests: 4 passed, 0 failed, 0 skipped, 1 not run (INCOMPLETE)"
    );

    // A binary that never started (cargo stopped before it) counts whole,
    // and a failing test does not hide it.
    let alpha_failed = ALPHA_OK
        .replace("test a_two ... ok", "test a_two ... FAILED")
        .replace(
            "test result: ok. 3 passed; 0 failed",
            "test result: FAILED. 2 passed; 1 failed",
        );
    let (code, out) = account(&alpha_failed, 101, "");
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("tests/beta.rs: 2 of 2 tests did not run (never started)"),
        "{out}"
    );
    assert_eq!(
        last_line(&out),
        "tests: 2 passed, 1 failed, 0 skipped, 2 not run (INCOMPLETE)"
    );
}

#[test]
fn build_failure_counts_every_test_as_not_run() {
    let broken = "\
error[E0308]: mismatched types
error: could not compile `gatehouse` (test \"beta\") due to 1 previous error
";
    let (code, out) = account(broken, 101, "");
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("build failed (test \"beta\"): cargo ran no test at all"),
        "{out}"
    );
    // Every #[test] of this repository's sources, since none ran.
    let line = last_line(&out);
    let n: usize = line
        .strip_prefix("tests: 0 passed, 0 failed, 0 skipped, ")
        .and_then(|r| r.strip_suffix(" not run (INCOMPLETE)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(n > 100, "{line}");
}
