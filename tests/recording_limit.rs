//! Recordings cannot fill the disk (issue 12, point 9): past
//! `max_recording` a session's recording stops with a marker, the audit
//! trail gets one `error` record (`recording_limit`), and the session goes
//! on with its commands still recorded. Real binary, real sshd target.
//! Also how a recording reaches the disk: promptly, and without staying
//! in the page cache.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn recording_stops_at_the_limit_and_the_session_goes_on() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .extra_settings("max_recording = \"16K\"")
        .build();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("seq 1 20000 | tail -n 3; echo big-$((1+1))")
        .unwrap();
    p.expect("big-2").unwrap();
    p.send_line("for i in $(seq 1 3000); do echo line-$i; done; echo done-$((2+1))")
        .unwrap();
    p.expect("done-3").unwrap();
    p.send_line("echo after-$((40+2))").unwrap();
    p.expect("after-42").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(p.wait_exit(T), Some(0));

    let errors = gh.records("error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["reason"], "recording_limit");
    let start = gh.records("session_start").pop().unwrap();
    assert_eq!(errors[0]["session"], start["session"]);
    let end = gh.records("session_end").pop().unwrap();
    assert_eq!(end["reason"], "exit", "{end}");
    let commands: Vec<String> = gh
        .records("command")
        .iter()
        .map(|c| c["command"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        commands.iter().any(|c| c == "echo after-$((40+2))"),
        "{commands:?}"
    );

    let cast = start["recording"].as_str().unwrap();
    let text = std::fs::read_to_string(cast).unwrap();
    assert!(text.len() < 16 * 1024 + 1024, "{} bytes", text.len());
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("\"m\"") && last.contains("max_recording"),
        "{last}"
    );
    assert!(!text.contains("after-42"), "recorded past the limit");
}

/// A long recording does not stay in the bastion's memory: every 8 MiB,
/// the pages of the `.cast` that the kernel has written back are dropped
/// from the page cache (`POSIX_FADV_DONTNEED`), so a GB relayed is not a GB
/// of page cache pushing out what other sessions use (BENCHMARKS.md has
/// what it saves in CPU). Here everything written so far is made clean
/// with fsync, 8 MiB more cross the next drop point, and `fincore` (Debian's
/// util-linux) counts what is still cached: without the drop, all 48 MiB.
#[test]
fn a_long_recording_leaves_the_page_cache_once_written_back() {
    use gatehouse::recording::{Recorder, SessionInfo};
    if std::process::Command::new("fincore")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("fincore (util-linux) is not installed");
        return;
    }
    // The target dir, not /tmp: tmpfs pages cannot leave the cache.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fs_type = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir.path())
        .output()
        .unwrap();
    if String::from_utf8_lossy(&fs_type.stdout).trim() == "tmpfs" {
        skip("the target dir is on tmpfs, whose pages stay in memory");
        return;
    }
    let info = SessionInfo {
        session: "CACHE",
        user: "alice",
        host: "web01",
        term: "xterm",
        cols: 80,
        rows: 24,
    };
    let mut r = Recorder::create(dir.path(), &info, false).unwrap();
    let chunk = "0123456789abcdef".repeat(2048); // 32 KiB of output per event
    let mib = |n: usize| n * 1024 * 1024 / chunk.len();
    for _ in 0..mib(40) {
        r.output(chunk.as_bytes()).unwrap();
    }
    r.flush().unwrap();
    std::fs::File::open(r.path()).unwrap().sync_data().unwrap();
    for _ in 0..mib(8) + 2 {
        r.output(chunk.as_bytes()).unwrap();
    }
    r.flush().unwrap();
    let size = std::fs::metadata(r.path()).unwrap().len();
    assert!(size > 48 << 20, "{size}");
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(r.path())
        .output()
        .unwrap();
    let cached: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        cached < 16 << 20,
        "{cached} bytes of a {size}-byte recording still cached"
    );
}

/// What a session shows is in its recording while the session runs
/// (`replay --follow` reads it), not only at the end: output written in
/// whole 64 KiB blocks leaves a tail, which waits at most 20 ms. With the
/// session still open (the shell waiting in `sleep`), the file must come
/// to hold the line.
#[test]
fn a_live_sessions_recording_keeps_up_with_the_screen() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder().target("web01", &t).build();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("echo live-$((6*7)); sleep 60").unwrap();
    p.expect("live-42").unwrap();
    let start = gh.records("session_start").pop().unwrap();
    let cast = start["recording"].as_str().unwrap().to_string();
    let text = file_text_once_it_holds(Path::new(&cast), "live-42", Duration::from_secs(10));
    assert!(text.contains("live-42"), "not in the recording yet: {text}");
    assert!(
        gh.records("session_end").is_empty(),
        "the session is still on"
    );
    p.send(b"\x03").unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("exit 0").unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
}
