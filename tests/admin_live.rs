//! Live control end to end (issue 12, points 1 and 3): `gatehouse sessions`
//! lists the sessions running now, `gatehouse kill` ends one (or all of a
//! user's) with a reason the operator reads and the record keeps, and a
//! session run through a symlinked binary is never taken for abandoned.
//! Real binary in a real pty, real sshd target.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

fn admin(gh: &Gh, args: &[&str]) -> Output {
    gh.command()
        .args(args)
        .arg("--log-dir")
        .arg(gh.log_dir())
        .output()
        .expect("run gatehouse")
}

fn text(o: &Output) -> String {
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    s
}

fn live_sessions(gh: &Gh) -> Vec<Value> {
    let o = admin(gh, &["sessions", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn wait_listed(gh: &Gh, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + T;
    loop {
        let l = live_sessions(gh);
        if l.len() == n {
            return l;
        }
        assert!(Instant::now() < deadline, "wanted {n} live sessions: {l:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sessions_lists_and_kill_ends_with_reason_and_record() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    assert!(live_sessions(&gh).is_empty());
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();

    let list = wait_listed(&gh, 1);
    let s = &list[0];
    let start = gh.records("session_start").pop().unwrap();
    assert_eq!(s["session"], start["session"]);
    assert_eq!(s["user"], gh.user.as_str());
    assert_eq!(s["host"], "web01");
    assert_eq!(s["client"], "local");
    assert_eq!(s["pid"].as_i64(), Some(i64::from(p.pid())));
    assert!(s["idle_s"].is_u64(), "{s}");
    let table = text(&admin(&gh, &["sessions"]));
    assert!(
        table.contains("USER")
            && table.contains("IDLE")
            && table.contains(s["session"].as_str().unwrap()),
        "{table}"
    );

    // A bare SIGUSR1 (the operator can signal their own process) is not a
    // kill: without the admin's note the session goes on.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid()), Signal::SIGUSR1).unwrap();
    p.send_line("echo still-$((40+2))").unwrap();
    p.expect("still-42").unwrap();

    let id = s["session"].as_str().unwrap();
    let short = &id[id.len() - 8..];
    let asked = Instant::now();
    let o = admin(&gh, &["kill", short, "--reason", "maintenance window"]);
    let took = asked.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("ended session {id}")),
        "{}",
        text(&o)
    );
    eprintln!(
        "kill: the session was over {} ms after the command started",
        took.as_millis()
    );
    p.expect("ended by an administrator: maintenance window")
        .unwrap();
    assert_eq!(p.wait_exit(T), Some(255));

    let end = gh.wait_for_record(|r| r["event"] == "session_end", T);
    assert_eq!(end["session"], id);
    assert_eq!(end["reason"], "killed");
    assert_eq!(end["detail"], "maintenance window");
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let by = end["by"].as_str().unwrap();
    assert!(
        by == me || std::env::var("SUDO_USER").ok().as_deref() == Some(by),
        "{end}"
    );
    assert!(live_sessions(&gh).is_empty());
    let v = gh.command().args(["audit", "--verify"]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[test]
fn kill_user_ends_every_session_of_that_user() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let mut a = gh.spawn(&["-c", "web01"]);
    a.expect("tgt$ ").unwrap();
    let mut b = gh.spawn(&["-c", "web01"]);
    b.expect("tgt$ ").unwrap();
    wait_listed(&gh, 2);
    let o = admin(&gh, &["kill", "--user", &gh.user]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for p in [&mut a, &mut b] {
        p.expect("ended by an administrator: no reason given")
            .unwrap();
        assert_eq!(p.wait_exit(T), Some(255));
    }
    let ends = gh.records("session_end");
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert!(ends.iter().all(|e| e["reason"] == "killed"), "{ends:?}");
    // Nothing left to end.
    let o = admin(&gh, &["kill", "--user", &gh.user]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("has no running session"), "{}", text(&o));
}

#[test]
fn an_entry_whose_process_is_gone_is_neither_listed_nor_killed() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    let s = wait_listed(&gh, 1).remove(0);
    p.signal(Signal::SIGKILL);
    p.wait_exit(T);
    assert!(
        live_sessions(&gh).is_empty(),
        "a dead process is not a running session"
    );
    let o = admin(&gh, &["kill", s["session"].as_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// Regression (issue 12, point 3): the sweeper took a pid as dead when its
/// process name was not "gatehouse"; through a symlink the name differs,
/// and a second login of the same user wrote `abandoned` for the live
/// session (and broke `--verify` once the session really ended).
#[test]
fn a_session_through_a_symlinked_binary_is_not_abandoned() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let link = gh.dir.path().join("jumpbox");
    std::os::unix::fs::symlink(gatehouse_bin(), &link).unwrap();
    let mut c = gh.command();
    c.env("PATH", std::env::var("PATH").unwrap_or_default());
    let mut c2 = std::process::Command::new(&link);
    c2.envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    for k in [
        "SSH_ORIGINAL_COMMAND",
        "SSH_CONNECTION",
        "SSH_CLIENT",
        "SSH_TTY",
    ] {
        c2.env_remove(k);
    }
    c2.args(["-c", "web01"]);
    let mut p = spawn_pty(c2, 80, 24);
    p.expect("tgt$ ").unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", p.pid())).unwrap();
    assert_eq!(comm.trim(), "jumpbox", "the name the old sweeper judged by");
    let start = gh.records("session_start").pop().unwrap();
    assert!(start["proc_start"].is_u64(), "{start}");
    // A second login of the same user sweeps the tail of the file…
    let o = gh.command().args(["-c", "no-such-host"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    // …and so does the full check.
    let o = gh.command().args(["audit", "--check"]).output().unwrap();
    assert!(
        text(&o).contains("0 abandoned session(s) closed"),
        "{}",
        text(&o)
    );
    assert!(
        gh.records("session_end").is_empty(),
        "a live session was closed: {:?}",
        gh.records("session_end")
    );
    p.send_line("exit").unwrap();
    p.wait_exit(T);
    let ends = gh.records("session_end");
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0]["reason"], "exit");
    let v = gh.command().args(["audit", "--verify"]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}
