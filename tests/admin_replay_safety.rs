//! A recording cannot attack the admin who replays it (issue 12, point 2):
//! `gatehouse replay` drops clipboard writes, titles, reports and queries
//! and DCS/APC/PM strings, keeps what drawing needs, and restores the
//! terminal at the end and when interrupted (Ctrl-C, SIGINT); `--raw`
//! passes everything, with a warning. Real binary, real pty.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(20);

/// Every attack the review found coming out byte for byte.
const EVIL: &[&str] = &[
    "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "\x1b]0;owned-title\x07",
    "\x1b[21t",
    "\x1bP$qm\x1b\\",
    "\x1b[6n",
    "\x1b_apc-string\x1b\\",
    "\x1b^pm-string\x1b\\",
    "\x1bP1000p\x1b\\",
    "\x1b[?1000h",
];

fn cast(dir: &Path, events: &[(f64, &str)]) -> PathBuf {
    let mut text = String::from(
        "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1764800000,\
         \"gatehouse\":{\"session\":\"S-evil\",\"user\":\"mallory\",\"host\":\"web01\"}}\n",
    );
    for (t, data) in events {
        text.push_str(&serde_json::to_string(&serde_json::json!([t, "o", data])).unwrap());
        text.push('\n');
    }
    let p = dir.join("evil.cast");
    std::fs::write(&p, text).unwrap();
    p
}

fn hostile(dir: &Path) -> PathBuf {
    let mut events: Vec<(f64, &str)> =
        vec![(0.0, "\x1b[1;31mred\x1b[0m \x1b[5;10Hmoved\x1b[2;20r")];
    for e in EVIL {
        events.push((0.0, e));
    }
    events.push((0.0, "\x1b[?1049h\x1b[4hinsert\r\nthe end\r\n"));
    cast(dir, &events)
}

#[test]
fn replay_drops_what_acts_on_the_terminal_and_keeps_drawing() {
    let dir = tempfile::tempdir().unwrap();
    let file = hostile(dir.path());
    let o = Command::new(gatehouse_bin())
        .args(["replay", "--speed", "1000"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    for e in EVIL {
        assert!(!out.contains(e), "{e:?} reached the terminal: {out:?}");
    }
    for bad in [
        "\x1b]",
        "\x1bP",
        "\x1b_",
        "\x1b^",
        "owned-title",
        "pm-string",
        "apc-string",
    ] {
        assert!(!out.contains(bad), "{bad:?} in {out:?}");
    }
    for good in [
        "\x1b[1;31mred",
        "\x1b[5;10Hmoved",
        "\x1b[2;20r",
        "\x1b[?1049h",
        "\x1b[4h",
        "the end",
    ] {
        assert!(out.contains(good), "{good:?} missing from {out:?}");
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("escape sequence(s) that could act on your terminal were not passed"),
        "{err}"
    );

    // --raw passes them all, and says so.
    let o = Command::new(gatehouse_bin())
        .args(["replay", "--raw", "--speed", "1000"])
        .arg(&file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    for e in EVIL {
        assert!(out.contains(e), "--raw dropped {e:?}");
    }
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: --raw"));
}

const RESTORE_PARTS: &[&str] = &[
    "\x1b[?1049l",
    "\x1b[0m",
    "\x1b[4l",
    "\x1b(B",
    "\x1b[?25h",
    "\x1b[r",
    "\x1b[?1000l",
    "\x1b[23;0t",
];

fn assert_restored(raw: &[u8]) {
    let s = String::from_utf8_lossy(raw);
    let tail = &s[s.rfind("\x1b[?1049l").expect("left the alternate screen")..];
    for part in RESTORE_PARTS {
        assert!(tail.contains(part), "{part:?} not in the restore: {tail:?}");
    }
}

#[test]
fn ctrl_c_mid_replay_restores_the_terminal() {
    if skip_without_pty() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Drawing that leaves insert mode, a scroll region and the alternate
    // screen on, then an hour of nothing.
    let file = cast(
        dir.path(),
        &[
            (0.0, "\x1b[?1049h\x1b[4h\x1b[3;10r\x1b(0drawn"),
            (3600.0, "never"),
        ],
    );
    let mut c = Command::new(gatehouse_bin());
    c.arg("replay").arg(&file);
    let mut p = spawn_pty(c, 80, 24);
    p.expect("drawn").unwrap();
    p.send(keys::CTRL_C).unwrap();
    p.expect("replay stopped").unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
    assert_restored(p.raw_output());
}

#[test]
fn sigint_mid_replay_restores_the_terminal() {
    if skip_without_pty() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = cast(
        dir.path(),
        &[(0.0, "\x1b[?1049h\x1b[4h\x1b[2;9rdrawn"), (3600.0, "never")],
    );
    // stdin is not the terminal: Ctrl-C there is a SIGINT, not a key.
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!(
        "exec {} replay {} </dev/null",
        sh_quote(&gatehouse_bin().display().to_string()),
        sh_quote(&file.display().to_string())
    ));
    let mut p = spawn_pty(c, 80, 24);
    p.expect("drawn").unwrap();
    p.signal(Signal::SIGINT);
    p.expect("replay stopped").unwrap();
    p.wait_exit(T);
    assert_restored(p.raw_output());
}
