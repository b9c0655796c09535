//! Session recordings end to end: a real session through a real sshd is
//! recorded, the Debian `asciinema cat` reads it back, and `gatehouse
//! replay` plays it (with `--speed`, and `--follow` on a live session).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

/// A direct session to web01 that prints `MARK-42` (computed remotely, so
/// it appears in the output but not in the typed input), then exits.
fn recorded_session(gh: &Gh) -> (String, String) {
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("echo MARK-$((6*7)); printf 'caf\\303\\251 \\344\\275\\240\\n'")
        .unwrap();
    p.expect("MARK-42").unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    p.wait_exit(T).expect("gatehouse exits");
    let start = &gh.records("session_start")[0];
    (
        start["session"].as_str().unwrap().to_string(),
        start["recording"].as_str().unwrap().to_string(),
    )
}

#[test]
fn recorded_session_plays_in_asciinema_cat() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let (session, file) = recorded_session(&gh);
    assert_eq!(
        file,
        gh.log_dir()
            .join("sessions")
            .join(&gh.user)
            .join(format!("{session}.cast"))
            .display()
            .to_string()
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 80);
    assert_eq!(header["height"], 24);
    assert_eq!(header["env"]["TERM"], "xterm-256color");
    assert_eq!(header["gatehouse"]["session"], session.as_str());
    // Input is not recorded by default.
    assert!(text.lines().skip(1).all(|l| !l.contains("\"i\"")));

    // asciinema 2.2 opens /dev/tty even for `cat`: give it a terminal.
    let mut cmd = Command::new("asciinema");
    cmd.arg("cat").arg(&file);
    let mut p = spawn_pty(cmd, 80, 24);
    p.expect("MARK-42").unwrap();
    p.expect("café 你").unwrap();
    assert_eq!(p.wait_exit(T), Some(0), "asciinema cat: {}", p.output());
}

#[test]
fn replay_with_speed_through_a_pty() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let (session, file) = recorded_session(&gh);
    // By session id (resolved through the config's log_dir)…
    let mut p = gh.spawn(&["replay", &session, "--speed", "20", "--idle-limit", "0.5"]);
    p.expect("replaying").unwrap();
    p.expect("MARK-42").unwrap();
    p.expect("end of recording").unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
    // …and by file; `q` stops it and the terminal is given back.
    let mut p = gh.spawn(&["replay", &file, "--speed", "0.01"]);
    p.expect("q quits").unwrap();
    p.send("q").unwrap();
    p.expect("replay stopped").unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
    // An unknown session is one clear line, not a panic.
    let out = gh
        .command()
        .args(["replay", "no-such-session"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no recording of session no-such-session"),
        "{err}"
    );
}

#[test]
fn replay_follow_shows_a_live_session_until_it_ends() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let mut live = gh.spawn(&["-c", "web01"]);
    live.expect("tgt$ ").unwrap();
    live.send_line("echo BEFORE-$((1+1))").unwrap();
    live.expect("BEFORE-2").unwrap();
    let start = gh.wait_for_record(|r| r["event"] == "session_start", T);
    let session = start["session"].as_str().unwrap().to_string();

    let mut watch = gh.spawn(&["replay", "--follow", &session]);
    watch.expect("BEFORE-2").unwrap();
    live.send_line("echo AFTER-$((50*2))").unwrap();
    live.expect("AFTER-100").unwrap();
    watch.expect("AFTER-100").unwrap();
    live.send_line("exit").unwrap();
    live.wait_exit(T).expect("live session ends");
    // The session_end in the audit trail ends the follow by itself.
    watch.expect("end of recording").unwrap();
    assert_eq!(watch.wait_exit(T), Some(0));
}

/// Issue 17: the short id the audit table prints (the random end of the
/// UUIDv7) names one session in `replay` and `audit --session`; a prefix
/// that two sessions share (UUIDv7s start with the time) is refused with
/// both candidates listed, in both tools.
#[test]
fn short_ids_name_one_session_and_shared_prefixes_list_the_candidates() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    for word in ["first", "second"] {
        let mut p = gh.spawn(&["-c", "web01"]);
        p.expect("tgt$ ").unwrap();
        p.send_line(&format!("echo {word}-$((6*7))")).unwrap();
        p.expect(format!("{word}-42")).unwrap();
        p.send_line("exit").unwrap();
        p.wait_exit(T).expect("gatehouse exits");
    }
    let ids: Vec<String> = gh
        .records("session_start")
        .iter()
        .map(|r| r["session"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    let short: Vec<String> = ids.iter().map(|i| i[i.len() - 8..].to_string()).collect();
    let run = |args: &[&str]| gh.command().args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();

    // The table prints the short form…
    let table = text(&run(&["audit", "--color", "never"]).stdout);
    for s in &short {
        assert!(table.contains(s.as_str()), "{s} not in:\n{table}");
    }
    // …and both tools take it.
    let second = run(&["audit", "--session", &short[1], "--color", "never"]);
    let out = text(&second.stdout);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert!(
        out.contains("echo second") && !out.contains("echo first"),
        "{out}"
    );
    let played = run(&[
        "replay",
        &short[0],
        "--speed",
        "1000",
        "--idle-limit",
        "0.01",
    ]);
    assert_eq!(played.status.code(), Some(0), "{}", text(&played.stderr));
    assert!(text(&played.stdout).contains("first-42"));

    // The time prefix both ids share names no one session.
    let common = ids[0]
        .chars()
        .zip(ids[1].chars())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(common > 0, "{ids:?}");
    let prefix = &ids[0][..common];
    for args in [vec!["audit", "--session", prefix], vec!["replay", prefix]] {
        let o = run(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("is ambiguous"), "{args:?}: {err}");
        for id in &ids {
            assert!(
                err.contains(id.as_str()),
                "{args:?}: {id} not listed: {err}"
            );
        }
        assert!(o.stdout.is_empty(), "{args:?}: printed records anyway");
    }
}
