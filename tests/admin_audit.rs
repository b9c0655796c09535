//! `gatehouse audit` end to end: filters, table and `--json`, `--follow`,
//! corrupt lines, `--check` (abandoned sessions after kill -9), `--verify`
//! (hash chains), and the syslog copy. Real binary, real sshd.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

fn audit(gh: &Gh, args: &[&str]) -> Output {
    gh.command()
        .arg("audit")
        .args(args)
        .output()
        .expect("run gatehouse audit")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A session on web01 typing `cmds`, then `exit`.
fn session(gh: &Gh, host: &str, cmds: &[&str]) {
    let mut p = gh.spawn(&["-c", host]);
    p.expect("tgt$ ").unwrap();
    for c in cmds {
        p.send_line(c).unwrap();
        p.expect("tgt$ ").unwrap();
    }
    p.send_line("exit").unwrap();
    p.wait_exit(T).expect("gatehouse exits");
}

/// Synthetic records for the filter matrix (shape of real ones).
fn rec(ts: &str, user: &str, event: &str, extra: Value) -> String {
    let mut v = json!({"v":1,"ts":ts,"event":event,"user":user,"login":format!("L-{user}"),"client":"10.0.0.9:40000"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

fn synthetic(gh: &Gh) {
    let a = [
        rec(
            "2020-01-01T10:00:00.000Z",
            "alice",
            "login",
            json!({"pid":1,"mode":"menu"}),
        ),
        rec(
            "2020-01-01T10:00:01.000Z",
            "alice",
            "session_start",
            json!({"session":"S-aaaa0001","host":"web01"}),
        ),
        rec(
            "2020-01-01T10:00:02.000Z",
            "alice",
            "command",
            json!({"session":"S-aaaa0001","host":"web01","seq":1,"command":"systemctl restart nginx"}),
        ),
        rec(
            "2020-01-01T10:00:03.000Z",
            "alice",
            "session_end",
            json!({"session":"S-aaaa0001","host":"web01","reason":"exit","exit_status":0}),
        ),
    ];
    let b = [
        rec(
            "2020-01-01T09:00:00.000Z",
            "bob",
            "denied",
            json!({"request":"scp -t /","reason":"not_a_host"}),
        ),
        rec(
            "2020-01-01T11:00:00.000Z",
            "bob",
            "command",
            json!({"session":"S-bbbb0002","host":"db01","seq":1,"command":"DROP TABLE users"}),
        ),
    ];
    write_lines(&gh.log_dir().join("alice.jsonl"), &a);
    write_lines(&gh.log_dir().join("bob.jsonl"), &b);
}

fn events(o: &Output) -> Vec<(String, String)> {
    stdout(o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["user"].as_str().unwrap().into(),
                v["event"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn every_filter() {
    let gh = Gh::builder().build();
    synthetic(&gh);
    let q = |args: &[&str]| {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let o = audit(&gh, &a);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        events(&o)
    };
    let pair = |u: &str, e: &str| (u.to_string(), e.to_string());
    // All files, merged in time order.
    let all = q(&[]);
    assert_eq!(all.len(), 6);
    assert_eq!(all[0], pair("bob", "denied"));
    assert_eq!(all[5], pair("bob", "command"));
    assert_eq!(
        q(&["--user", "bob"]),
        [pair("bob", "denied"), pair("bob", "command")]
    );
    assert_eq!(q(&["--host", "db*"]), [pair("bob", "command")]);
    assert_eq!(q(&["--host", "web01"]).len(), 3);
    assert_eq!(q(&["--session", "aaaa0001"]).len(), 3);
    assert_eq!(q(&["--session", "S-bbbb"]), [pair("bob", "command")]);
    assert_eq!(
        q(&["--event", "denied,login"]),
        [pair("bob", "denied"), pair("alice", "login")]
    );
    assert_eq!(q(&["--since", "2020-01-01T10:00:02Z"]).len(), 3);
    assert_eq!(q(&["--until", "2020-01-01T10:00:00Z"]).len(), 2);
    assert_eq!(
        q(&[
            "--since",
            "2020-01-01T10:00:01Z",
            "--until",
            "2020-01-01T10:00:02.000Z"
        ])
        .len(),
        2
    );
    // Relative: everything here is years old.
    assert_eq!(q(&["--since", "2h"]).len(), 0);
    assert_eq!(q(&["--until", "7d"]).len(), 6);
    assert_eq!(
        q(&["--grep", "restart (nginx|apache)"]),
        [pair("alice", "command")]
    );
    assert_eq!(q(&["--grep", "drop table", "-i"]), [pair("bob", "command")]);
    assert_eq!(q(&["--grep", "scp -t"]), [pair("bob", "denied")]);
    assert_eq!(q(&["--grep", "(", "-F"]).len(), 0);
    // Filters combine (AND).
    assert_eq!(
        q(&["--user", "alice", "--event", "command", "--grep", "nginx"]).len(),
        1
    );

    // Bad filters: one line, exit 2.
    let o = audit(&gh, &["--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a time"), "{}", stderr(&o));
}

#[test]
fn table_and_json_output() {
    let gh = Gh::builder().build();
    synthetic(&gh);
    let o = audit(&gh, &[]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("TIME (UTC)"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "no colour when not a terminal: {out:?}"
    );
    let nginx = lines
        .iter()
        .find(|l| l.contains("systemctl restart nginx"))
        .unwrap();
    assert!(nginx.starts_with("2020-01-01 10:00:02  alice"), "{nginx}");
    // Columns line up: the event column starts at the same place.
    let col = |l: &str| l.find("command").or_else(|| l.find("denied")).unwrap();
    assert_eq!(
        col(nginx),
        col(lines.iter().find(|l| l.contains("denied")).unwrap())
    );

    // --json: the stored lines, byte for byte.
    let o = audit(&gh, &["--json", "--user", "alice"]);
    assert_eq!(
        o.stdout,
        fs::read(gh.log_dir().join("alice.jsonl")).unwrap()
    );

    // On a terminal: colour.
    let mut p = gh.spawn_sized(&["audit", "--user", "bob"], 200, 24);
    p.expect("DROP TABLE users").unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
    assert!(
        String::from_utf8_lossy(p.raw_output()).contains("\x1b[31m"),
        "denied is red"
    );
    // On a narrow terminal every line fits (no wrapping): cut with `…`.
    let mut p = gh.spawn_sized(&["audit"], 80, 24);
    p.expect("DROP TABL").unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
    let lines: Vec<&str> = p.output().lines().collect();
    assert!(lines.len() > 3, "{lines:?}");
    for l in &lines {
        assert!(
            l.chars().count() <= 80,
            "{} columns: {l:?}",
            l.chars().count()
        );
    }
    assert!(lines.iter().any(|l| l.ends_with('…')), "{lines:?}");
}

#[test]
fn corrupt_lines_are_reported_not_fatal() {
    let gh = Gh::builder().build();
    let p = gh.log_dir().join("carol.jsonl");
    let good1 = rec("2020-01-01T10:00:00.000Z", "carol", "login", json!({}));
    let good2 = rec("2020-01-01T10:00:01.000Z", "carol", "logout", json!({}));
    fs::write(
        &p,
        format!("{good1}\n{{\"v\":1,\"ts\":\"2020\ngarbage\u{0}\n{good2}\n{{\"v\":1,\"ev"),
    )
    .unwrap();
    let o = audit(&gh, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{good1}\n{good2}\n"));
    let err = stderr(&o);
    let f = p.display().to_string();
    assert!(err.contains(&format!("{f}:2: not valid JSON")), "{err}");
    assert!(err.contains(&format!("{f}:3: not valid JSON")), "{err}");
    assert!(err.contains(&format!("{f}:5: truncated record")), "{err}");
}

#[test]
fn follow_shows_records_written_after_it_started() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    synthetic(&gh);
    let probe_file = gh.log_dir().join("probe.jsonl");
    let probe = |n: &str| {
        rec(
            "2030-01-01T00:00:00.000Z",
            "probe",
            "denied",
            json!({"request": format!("probe-{n}"), "reason":"not_a_host"}),
        )
    };
    write_lines(&probe_file, &[probe("old")]);
    let mut f = gh.spawn_sized(&["audit", "--follow", "--event", "command,denied"], 200, 24);
    // Synchronise on an event, not on time: append to an existing file until
    // the follower shows one of those lines; from then on it is following.
    let deadline = std::time::Instant::now() + scaled(T);
    for i in 0.. {
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&probe_file)
            .unwrap();
        writeln!(file, "{}", probe(&format!("live-{i}"))).unwrap();
        f.pump(Duration::from_millis(250));
        if f.output().contains("probe-live-") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit --follow never showed an appended record: {}",
            f.output()
        );
    }
    // Nothing old without --since.
    assert!(!f.output().contains("DROP TABLE"), "{}", f.output());
    assert!(!f.output().contains("probe-old"), "{}", f.output());
    // New records in an existing file…
    session(&gh, "web01", &["echo followed-$((3*3))"]);
    f.expect("echo followed-$((3*3))").unwrap();
    // …and in a file that did not exist when it started.
    let dave = rec(
        "2030-01-01T00:00:00.000Z",
        "dave",
        "denied",
        json!({"request":"sftp-server","reason":"not_a_host"}),
    );
    fs::write(gh.log_dir().join("dave.jsonl"), format!("{dave}\n")).unwrap();
    f.expect("sftp-server").unwrap();
    // With --since, history first.
    let mut h = gh.spawn_sized(
        &[
            "audit",
            "--follow",
            "--since",
            "2019-01-01",
            "--user",
            "bob",
        ],
        200,
        24,
    );
    h.expect("DROP TABLE users").unwrap();
}

fn count_abandoned(gh: &Gh, session: &Value) -> usize {
    gh.records("session_end")
        .iter()
        .filter(|r| r["session"] == *session && r["reason"] == "abandoned")
        .count()
}

fn abandoned_logouts(gh: &Gh, login: &Value) -> usize {
    gh.records("logout")
        .iter()
        .filter(|r| r["login"] == *login && r["reason"] == "abandoned")
        .count()
}

/// kill -9 a live session; return its session_start record.
fn killed_session(gh: &Gh) -> Value {
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("echo doomed").unwrap();
    gh.wait_for_record(
        |r| r["event"] == "command" && r["command"] == "echo doomed",
        T,
    );
    let start = gh
        .records("session_start")
        .into_iter()
        .find(|r| r["pid"] == p.pid())
        .unwrap();
    p.signal(Signal::SIGKILL);
    p.wait_exit(T).expect("killed");
    start
}

#[test]
fn killed_session_gets_an_abandoned_end_exactly_once() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let start = killed_session(&gh);
    assert_eq!(start["boot_id"].as_str().map(str::len), Some(36), "{start}");
    let session = start["session"].clone();
    assert_eq!(count_abandoned(&gh, &session), 0);

    // `audit --check` closes it…
    let o = audit(&gh, &["--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("closed session {}", session.as_str().unwrap())),
        "{}",
        stdout(&o)
    );
    assert_eq!(count_abandoned(&gh, &session), 1);
    let end = gh.records("session_end").pop().unwrap();
    assert_eq!(end["login"], start["login"]);
    assert_eq!(end["host"], "web01");
    assert_eq!(end["exit_status"], Value::Null);
    assert!(end["detail"].as_str().unwrap().contains("is gone"), "{end}");
    // The byte counts died with the process: left out, not a false 0 …
    assert!(
        end.get("bytes_in").is_none() && end.get("bytes_out").is_none(),
        "{end}"
    );
    let table = stdout(&audit(&gh, &["--event", "session_end", "--color", "never"]));
    assert!(table.contains("bytes unknown"), "{table}");
    // … and the login the dead process was gets its logout (issue 17).
    assert_eq!(abandoned_logouts(&gh, &start["login"]), 1);
    // …once: again, and a new login, change nothing.
    let o = audit(&gh, &["--check"]);
    assert!(
        stdout(&o).contains("0 abandoned session(s) closed"),
        "{}",
        stdout(&o)
    );
    session_of_one_command(&gh);
    assert_eq!(count_abandoned(&gh, &session), 1);

    // A new login alone closes the next one (the cheap check at login).
    let start2 = killed_session(&gh);
    session_of_one_command(&gh);
    assert_eq!(count_abandoned(&gh, &start2["session"]), 1);
    assert_eq!(audit(&gh, &["--check"]).status.code(), Some(0));
    assert_eq!(count_abandoned(&gh, &start2["session"]), 1);
    assert_eq!(abandoned_logouts(&gh, &start["login"]), 1);
    assert_eq!(abandoned_logouts(&gh, &start2["login"]), 1);
    // Every login has exactly one logout.
    let logins = gh.records("login").len();
    assert_eq!(gh.records("logout").len(), logins);
    // The synthetic ends continue the dead sessions' (and logins') hash chains.
    let o = audit(&gh, &["--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

fn session_of_one_command(gh: &Gh) {
    session(gh, "web01", &["true"]);
}

#[test]
fn verify_catches_deleted_and_edited_lines() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    session(&gh, "web01", &["echo one", "echo two", "echo three"]);
    let o = audit(&gh, &["--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains(": OK:"), "{}", stdout(&o));
    let path = gh.jsonl_path();
    let pristine = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = pristine.lines().collect();
    let idx = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();

    // Deleted: the line of `echo two`.
    let two = idx("\"echo two\"");
    let mut del = lines.clone();
    del.remove(two);
    fs::write(&path, del.join("\n") + "\n").unwrap();
    let o = audit(&gh, &["--verify"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("{}:{}:", path.display(), two + 1)),
        "{out}"
    );
    assert!(out.contains("1 record(s) deleted"), "{out}");
    assert!(out.contains("BROKEN"), "{out}");

    // Edited: `echo one` becomes `echo 0ne` (still valid JSON).
    let one = idx("\"echo one\"");
    let mut ed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    ed[one] = ed[one].replace("echo one", "echo 0ne");
    fs::write(&path, ed.join("\n") + "\n").unwrap();
    let o = audit(&gh, &["--verify"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("{}:{}:", path.display(), one + 2)),
        "{out}"
    );
    assert!(out.contains(&format!("hash of line {}", one + 1)), "{out}");
    assert!(out.contains("edited"), "{out}");

    fs::write(&path, &pristine).unwrap();
    assert_eq!(audit(&gh, &["--verify"]).status.code(), Some(0));
}

#[test]
fn syslog_copy_sends_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let gh = Gh::builder()
        .extra_settings(&format!(
            "syslog_copy = true\nsyslog_socket = {:?}",
            sock_path.display().to_string()
        ))
        .build();
    let out = gh.command().args(["-c", "scp -t /etc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let on_disk = fs::read_to_string(gh.jsonl_path()).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    for line in on_disk.lines() {
        let n = sock.recv(&mut buf).expect("a datagram per record");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(msg.starts_with("<86>gatehouse["), "authpriv.info: {msg}");
        let body = &msg[msg.find("]: ").unwrap() + 3..];
        assert_eq!(body, line);
        let _: Value = serde_json::from_str(body).unwrap();
    }
    assert_eq!(on_disk.lines().count(), 3, "login, denied, logout");
}
