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

// ---------------------------------------------------------------------------
// Every kind of session: exec, transfer, batch (not only shells)
// ---------------------------------------------------------------------------

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

/// The current user may log in to, run commands on and transfer files with
/// every host; `settings`: more `[settings]` lines.
fn automation_env(hosts: &[(&str, &Target)], settings: &str) -> Gh {
    let specs = hosts
        .iter()
        .map(|(name, t)| HostSpec::target(name, t))
        .collect();
    let targets: Vec<&Target> = hosts.iter().map(|(_, t)| *t).collect();
    automation_env_of(specs, &targets, settings)
}

/// Same, for any hosts (all in group `web`), with `known`'s keys trusted.
fn automation_env_of(hosts: Vec<HostSpec>, known: &[&Target], settings: &str) -> Gh {
    let user = current_user();
    let mut b = Gh::builder().no_access().extra_settings(settings);
    for h in hosts {
        b = b.host(h.groups(&["web"]));
    }
    for t in known {
        b = b.known_host(&t.known_hosts_line());
    }
    b.extra_toml(&format!(
        "[[access]]\nusers = [\"{user}\"]\nhosts = [\"*\"]\nexec = true\ntransfer = true\n"
    ))
    .build()
}

/// A Gatehouse started as sshd starts it for `ssh bastion 'REQUEST'`
/// (`-c REQUEST`, no terminal), its stdout and stderr collected.
struct Running {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// Reads `r` to its end into the returned text.
fn collect(mut r: impl Read + Send + 'static) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let t = text.clone();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            t.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, h)
}

impl Running {
    fn start(gh: &Gh, request: &str, stdin: Stdio) -> Running {
        let mut child = gh
            .command()
            .args(["-c", request])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse");
        let (out, h1) = collect(child.stdout.take().unwrap());
        let (err, h2) = collect(child.stderr.take().unwrap());
        Running {
            child,
            out,
            err,
            readers: vec![h1, h2],
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until stdout holds `n` times `needle`.
    fn wait_out(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + scaled(T);
        while self.out.lock().unwrap().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "{n}× {needle:?} never came; stdout {:?} stderr {:?}",
                self.out.lock().unwrap(),
                self.err.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Exit code within the deadline, and all it wrote on stderr.
    fn wait(&mut self) -> (i32, String) {
        let deadline = Instant::now() + scaled(T);
        let code = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "gatehouse still running");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Gatehouse has no children: its pipes close as it exits.
        for h in self.readers.drain(..) {
            h.join().unwrap();
        }
        let err = self.err.lock().unwrap().clone();
        (code, err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn the_admin() -> Vec<String> {
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let mut v = vec![me];
    v.extend(std::env::var("SUDO_USER").ok());
    v
}

/// The entry's file in `live/` is gone (not merely hidden as stale).
fn assert_unregistered(gh: &Gh, session: &str) {
    let f = gh.log_dir().join("live").join(format!("{session}.json"));
    assert!(!f.exists(), "{} left behind", f.display());
    assert!(live_sessions(gh).is_empty());
}

fn remote_pids(t: &Target) -> Vec<i32> {
    std::fs::read_to_string(t.home().join("pid"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn wait_gone(pids: &[i32]) {
    let deadline = Instant::now() + scaled(T);
    while pids.iter().any(|&p| pid_alive(p)) {
        assert!(Instant::now() < deadline, "still running: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const TICKING: &str = "echo $$ > ~/pid; while echo tick; do sleep 0.2; done";

#[test]
fn an_exec_is_listed_and_killed_like_a_shell() {
    let t = Target::start();
    let gh = automation_env(&[("web01", &t)], "");
    let mut run = Running::start(&gh, &format!("web01 -- {TICKING}"), Stdio::null());
    run.wait_out("tick", 1);

    let s = wait_listed(&gh, 1).remove(0);
    let exec = gh.records("exec").pop().unwrap();
    assert_eq!(s["kind"], "exec", "{s}");
    assert_eq!(s["session"], exec["session"]);
    assert_eq!(s["host"], "web01");
    assert_eq!(s["command"], exec["command"], "the command as recorded");
    assert_eq!(s["command"], TICKING);
    assert_eq!(s["user"], gh.user.as_str());
    assert_eq!(s["pid"].as_i64(), Some(i64::from(run.pid())));
    assert!(s["hosts"].is_null(), "{s}");
    let table = text(&admin(&gh, &["sessions"]));
    assert!(
        table.contains("KIND") && table.contains(" exec ") && table.contains("while echo tick"),
        "{table}"
    );

    let id = s["session"].as_str().unwrap();
    let asked = Instant::now();
    let o = admin(&gh, &["kill", id, "--reason", "runaway tail"]);
    eprintln!(
        "kill: the exec was over {} ms after the command started",
        asked.elapsed().as_millis()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("ended session {id} (exec, ")),
        "{}",
        text(&o)
    );
    let (code, err) = run.wait();
    assert_eq!(code, 255, "as ssh when the command has no status: {err}");
    assert!(
        err.contains("gatehouse: web01: ended by an administrator: runaway tail."),
        "{err}"
    );
    let end = gh.wait_for_record(|r| r["event"] == "session_end", T);
    assert_eq!(end["session"], id);
    assert_eq!(end["reason"], "killed");
    assert_eq!(end["detail"], "runaway tail");
    assert!(the_admin().iter().any(|a| end["by"] == a.as_str()), "{end}");
    assert!(end["bytes_out"].as_u64().unwrap() > 0, "{end}");
    assert!(
        gh.records("logout").pop().is_some(),
        "Gatehouse ended cleanly"
    );
    assert_unregistered(&gh, id);
    // The remote loop ends too: its output is gone (SIGPIPE at its next
    // tick), as when a plain ssh client goes away.
    wait_gone(&remote_pids(&t));
    let v = gh.command().args(["audit", "--verify"]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[test]
fn an_operator_signalling_their_own_exec_changes_nothing() {
    let t = Target::start();
    let gh = automation_env(&[("web01", &t)], "");
    let mut run = Running::start(
        &gh,
        "web01 -- while read l; do echo got-$l; done",
        Stdio::piped(),
    );
    let mut stdin = run.child.stdin.take().unwrap();
    stdin.write_all(b"one\n").unwrap();
    run.wait_out("got-one", 1);
    let s = wait_listed(&gh, 1).remove(0);
    assert_eq!(s["kind"], "exec");
    // The operator can signal their own process; without the
    // administrator's note in live/ it is not a kill.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.pid()), Signal::SIGUSR1).unwrap();
    stdin.write_all(b"two\n").unwrap();
    run.wait_out("got-two", 1);
    assert_eq!(wait_listed(&gh, 1)[0]["session"], s["session"]);
    assert!(gh.records("session_end").is_empty());
    drop(stdin);
    let (code, err) = run.wait();
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "", "a command that ran gets no line of ours");
    let end = gh.wait_for_record(|r| r["event"] == "session_end", T);
    assert_eq!(end["reason"], "exit", "{end}");
    assert!(end["by"].is_null(), "{end}");
    assert_unregistered(&gh, s["session"].as_str().unwrap());
}

#[test]
fn an_exec_whose_process_is_gone_is_neither_listed_nor_killed() {
    let t = Target::start();
    let gh = automation_env(&[("web01", &t)], "");
    let mut run = Running::start(&gh, "web01 -- sleep 600", Stdio::null());
    let s = wait_listed(&gh, 1).remove(0);
    assert_eq!(s["kind"], "exec");
    assert_eq!(s["command"], "sleep 600");
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    let id = s["session"].as_str().unwrap();
    assert!(
        live_sessions(&gh).is_empty(),
        "a dead process is not a running session"
    );
    assert!(
        !gh.log_dir()
            .join("live")
            .join(format!("{id}.json"))
            .exists(),
        "the stale entry is removed on the way"
    );
    let o = admin(&gh, &["kill", id]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// The bastion as the shipped snippet sets it up for automation (the sftp
/// subsystem line, `AcceptEnv GATEHOUSE_HOST`, no forwarding, Gatehouse
/// forced), as in tests/automation.rs.
fn automation_bastion(gh: &Gh) -> Bastion {
    Bastion::start_raw(&format!(
        "Subsystem sftp /usr/lib/openssh/sftp-server\n\
         AcceptEnv GATEHOUSE_HOST\n\
         PermitTTY yes\n\
         AllowTcpForwarding no\n\
         X11Forwarding no\n\
         AllowAgentForwarding no\n\
         PermitUserRC no\n\
         SetEnv \"GATEHOUSE_CONFIG={}\"\n\
         ForceCommand {}\n",
        gh.config_path().display(),
        gatehouse_bin().display()
    ))
}

#[test]
fn a_transfer_killed_midway_ends_killed_with_its_partial_file_on_record() {
    let t = Target::start_with_extra("tgt$ ", "Subsystem sftp /usr/lib/openssh/sftp-server\n");
    let gh = automation_env(&[("web01", &t)], "");
    let b = automation_bastion(&gh);
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let src = local.path().join("big.bin");
    std::fs::write(&src, vec![b'x'; 32 << 20]).unwrap();
    let dst = remote.path().join("big.bin");
    let batch = local.path().join("batch");
    std::fs::write(&batch, format!("put {} {}\n", src.display(), dst.display())).unwrap();
    // `-l 1000`: 1000 Kbit/s, so the 32 MiB take over four minutes: the
    // kill lands mid-file however slow the machine is (and the client,
    // sleeping a third of a second per 32 KiB, soon sees the end).
    let mut sftp = std::process::Command::new("sftp");
    sftp.args(["-F", "/dev/null", "-P", &b.port.to_string(), "-i"])
        .arg(&b.key_path)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "SetEnv=GATEHOUSE_HOST=web01",
            "-l",
            "1000",
            "-b",
        ])
        .arg(&batch)
        .arg(format!("{}@127.0.0.1", b.user))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = sftp.spawn().unwrap();
    let (_, out_h) = collect(child.stdout.take().unwrap());
    let (err, err_h) = collect(child.stderr.take().unwrap());

    let s = wait_listed(&gh, 1).remove(0);
    assert_eq!(s["kind"], "transfer", "{s}");
    assert_eq!(s["host"], "web01");
    assert!(s["command"].is_null(), "{s}");
    let exec = gh.records("exec").pop().unwrap();
    assert_eq!(exec["subsystem"], "sftp");
    assert_eq!(s["session"], exec["session"]);
    // Mid-way: some of the file is on the target.
    let deadline = Instant::now() + scaled(T);
    while std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = s["session"].as_str().unwrap();
    let asked = Instant::now();
    let o = admin(&gh, &["kill", id, "--reason", "disk filling up"]);
    eprintln!(
        "kill: the transfer was over {} ms after the command started",
        asked.elapsed().as_millis()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("ended session {id} (transfer, ")),
        "{}",
        text(&o)
    );

    let deadline = Instant::now() + scaled(T);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "sftp still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    out_h.join().unwrap();
    err_h.join().unwrap();
    let err = err.lock().unwrap().clone();
    assert!(!status.success(), "the transfer did not complete: {err}");
    // sshd discards a subsystem's stderr (CHAN_EXTENDED_IGNORE), so our
    // line cannot reach an sftp client; the client sees the connection end
    // (the reason is on record, below).
    let end = gh.wait_for_record(|r| r["event"] == "session_end", T);
    assert_eq!(end["session"], id);
    assert_eq!(end["reason"], "killed");
    assert_eq!(end["detail"], "disk filling up");
    assert!(the_admin().iter().any(|a| end["by"] == a.as_str()), "{end}");
    // The file still open when it ended has its record, marked incomplete,
    // with the bytes that reached the target.
    let f = gh
        .records("file")
        .into_iter()
        .find(|r| r["op"] == "upload")
        .unwrap_or_else(|| panic!("no upload record: {:#?}", gh.jsonl()));
    assert_eq!(f["path"], dst.display().to_string());
    assert_eq!(f["incomplete"], true, "{f}");
    let bytes = f["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes < 32 << 20, "{f}");
    assert_unregistered(&gh, id);
    let v = gh.command().args(["audit", "--verify"]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[test]
fn a_batch_is_listed_and_killed_on_every_host_with_the_summary_saying_so() {
    let (t1, t2, t3) = (Target::start(), Target::start(), Target::start());
    // slow01 accepts the connection and never speaks SSH: it is still
    // connecting when the kill comes (connect_timeout is far away).
    let tarpit = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = HostSpec::new(
        "slow01",
        "127.0.0.1",
        tarpit.local_addr().unwrap().port(),
        &current_user(),
    )
    .key(&t1.key_path);
    // Three hosts at once: web03 waits for a free place and never gets one.
    let gh = automation_env_of(
        vec![
            HostSpec::target("web01", &t1),
            HostSpec::target("web02", &t2),
            slow,
            HostSpec::target("web03", &t3),
        ],
        &[&t1, &t2, &t3],
        "batch_parallel = 3\nconnect_timeout = \"600s\"",
    );
    let mut run = Running::start(&gh, &format!("@web -- {TICKING}"), Stdio::null());
    run.wait_out("web01: tick", 1);
    run.wait_out("web02: tick", 1);

    let s = wait_listed(&gh, 1).remove(0);
    let execs = gh.records("exec");
    assert_eq!(execs.len(), 2, "{execs:?}");
    assert_eq!(s["kind"], "batch", "{s}");
    assert_eq!(s["session"], execs[0]["batch"], "listed under the batch id");
    assert_eq!(s["hosts"], 4);
    assert_eq!(s["host"], "web01,web02,slow01,web03");
    assert_eq!(s["command"], TICKING);
    assert_eq!(s["pid"].as_i64(), Some(i64::from(run.pid())));
    let table = text(&admin(&gh, &["sessions"]));
    assert!(
        table.contains(" batch ") && table.contains("4 hosts: web01,web02,slow01,web03"),
        "{table}"
    );
    let pids: Vec<i32> = [&t1, &t2].iter().flat_map(|t| remote_pids(t)).collect();
    assert_eq!(pids.len(), 2);

    let id = s["session"].as_str().unwrap();
    let short = &id[id.len() - 8..];
    let asked = Instant::now();
    let o = admin(&gh, &["kill", short, "--reason", "wrong group"]);
    eprintln!(
        "kill: the batch was over {} ms after the command started",
        asked.elapsed().as_millis()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("ended session {id} (batch, ")),
        "{}",
        text(&o)
    );
    let (code, err) = run.wait();
    assert_eq!(code, 1, "{err}");
    for h in ["web01", "web02"] {
        assert!(
            err.contains(&format!(
                "gatehouse: {h}: ended by an administrator: wrong group"
            )),
            "{err}"
        );
    }
    for h in ["slow01", "web03"] {
        assert!(
            err.contains(&format!(
                "gatehouse: {h}: not run: ended by an administrator: wrong group"
            )),
            "{err}"
        );
    }
    // The host still connecting: its `error`, in the batch, saying why.
    let e = gh
        .records("error")
        .into_iter()
        .find(|r| r["host"] == "slow01")
        .unwrap_or_else(|| panic!("no error for slow01: {:#?}", gh.jsonl()));
    assert_eq!(e["reason"], "interrupted", "{e}");
    assert_eq!(
        e["detail"],
        "stopped while connecting: ended by an administrator: wrong group"
    );
    assert_eq!(e["batch"], s["session"]);
    let ends = gh.records("session_end");
    assert_eq!(ends.len(), 2, "one per host that ran: {ends:?}");
    for e in &ends {
        assert_eq!(e["reason"], "killed", "{e}");
        assert_eq!(e["detail"], "wrong group", "{e}");
        assert!(the_admin().iter().any(|a| e["by"] == a.as_str()), "{e}");
    }
    let mut ended: Vec<&str> = ends
        .iter()
        .map(|e| e["session"].as_str().unwrap())
        .collect();
    let mut started: Vec<&str> = execs
        .iter()
        .map(|e| e["session"].as_str().unwrap())
        .collect();
    ended.sort();
    started.sort();
    assert_eq!(ended, started, "every exec has its session_end");
    assert!(
        gh.records("exec").iter().all(|e| e["host"] != "web03"),
        "nothing started after the kill"
    );
    assert_unregistered(&gh, id);
    wait_gone(&pids);
    let v = gh.command().args(["audit", "--verify"]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

/// Regression: a Gatehouse blocked writing to an operator who stopped
/// reading (a flood into a full pipe) ignored SIGUSR1 (restarted write)
/// and `kill` gave up after 5 s.
#[test]
fn an_exec_whose_operator_stopped_reading_is_still_killed() {
    let t = Target::start();
    let gh = automation_env(&[("web01", &t)], "");
    let err = killed_while_blocked(&gh, "web01 -- yes", 1);
    assert!(
        err.contains("web01: ended by an administrator: flood."),
        "{err}"
    );
}

/// Regression: the interactive relay, blocked writing to an operator
/// whose terminal stopped reading (flow control, a stuck client) while the
/// target floods it, restarted its write after SIGUSR1: `kill` gave up
/// after 5 s and the session went on until the operator read again.
#[test]
fn a_shell_whose_operator_stopped_reading_is_still_killed() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    let s = wait_listed(&gh, 1).remove(0);
    assert_eq!(s["kind"], "shell", "{s}");
    p.send_line("yes").unwrap();
    // From here on the test reads nothing from the pty until the kill is
    // done: its buffer fills and Gatehouse blocks writing to it.
    let pid = p.pid();
    let deadline = Instant::now() + scaled(T);
    loop {
        let proc =
            |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
        // Asleep (wchan) inside a terminal write (stack).
        let (wchan, stack) = (proc("wchan"), proc("stack"));
        if wchan == "wait_woken" && stack.contains("n_tty_write") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not blocked writing to the terminal: {wchan:?}\n{stack}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = s["session"].as_str().unwrap();
    let asked = Instant::now();
    let o = admin(&gh, &["kill", id, "--reason", "flood"]);
    eprintln!(
        "kill: a shell blocked writing was over {} ms after the command started",
        asked.elapsed().as_millis()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("ended session {id} (shell, ")),
        "{}",
        text(&o)
    );
    // Over on record while the terminal is still not read.
    let ends = gh.records("session_end");
    assert_eq!(ends.len(), 1, "{ends:?}");
    let end = &ends[0];
    assert_eq!(end["session"], id);
    assert_eq!(end["reason"], "killed", "{end}");
    assert_eq!(end["detail"], "flood");
    assert!(the_admin().iter().any(|a| end["by"] == a.as_str()), "{end}");
    assert!(end["bytes_out"].as_u64().unwrap() > 0, "{end}");
    assert_unregistered(&gh, id);
    // Reading again, the operator finds the line that says why (after the
    // flood still in the pty's buffer), and Gatehouse exits as a killed
    // session does.
    p.expect("ended by an administrator: flood").unwrap();
    assert_eq!(p.wait_exit(T), Some(255));
    let v = gh.command().args(["audit", "--verify"]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

/// A session killed from the menu goes back to the menu, and the next
/// session runs and ends as usual. (The relay takes SIGUSR1 without
/// SA_RESTART only while it runs and puts SA_RESTART back as it ends:
/// unit `sys::tests::a_kill_request_interrupts_only_between_interrupt_and_restart`.)
#[test]
fn a_shell_killed_from_the_menu_goes_back_to_the_menu() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let mut p = gh.spawn(&[]);
    p.expect("pick a host").unwrap();
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    let id = wait_listed(&gh, 1)[0]["session"]
        .as_str()
        .unwrap()
        .to_string();
    let o = admin(&gh, &["kill", &id, "--reason", "lunch"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    p.expect("Session on web01 was ended by an administrator: lunch.")
        .unwrap();
    p.expect("pick a host").unwrap();
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    p.expect("Session on web01 ended.").unwrap();
    p.expect("pick a host").unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
    let ends = gh.records("session_end");
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert_eq!(ends[0]["reason"], "killed");
    assert_eq!(ends[1]["reason"], "exit");
}

#[test]
fn a_batch_whose_operator_stopped_reading_is_still_killed() {
    let (t1, t2) = (Target::start(), Target::start());
    let gh = automation_env(&[("web01", &t1), ("web02", &t2)], "");
    let err = killed_while_blocked(&gh, "@web -- yes", 2);
    for h in ["web01", "web02"] {
        assert!(
            err.contains(&format!("gatehouse: {h}: ended by an administrator: flood")),
            "{err}"
        );
    }
}

/// Runs `request` with its stdout into a pipe nobody reads, waits until
/// Gatehouse is blocked writing to it, kills the session: `ends` records
/// `killed`, the entry gone, exit status 255 (exec) or 1 (batch). Returns
/// what Gatehouse said on stderr.
fn killed_while_blocked(gh: &Gh, request: &str, ends: usize) -> String {
    // Our end is close-on-exec: Gatehouse holds only the write end.
    let (unread, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut child = gh
        .command()
        .args(["-c", request])
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (err, err_h) = collect(child.stderr.take().unwrap());
    let pid = child.id();
    let s = wait_listed(gh, 1).remove(0);
    // Blocked in write(2) on the full pipe.
    let deadline = Instant::now() + scaled(T);
    loop {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.contains("pipe_write") {
            break;
        }
        assert!(Instant::now() < deadline, "not blocked writing: {wchan:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = s["session"].as_str().unwrap();
    let asked = Instant::now();
    let o = admin(gh, &["kill", id, "--reason", "flood"]);
    eprintln!(
        "kill: {request:?}, blocked writing, was over {} ms after the command started",
        asked.elapsed().as_millis()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let all = gh.records("session_end");
    assert_eq!(all.len(), ends, "{all:?}");
    for end in all {
        assert_eq!(end["reason"], "killed", "{end}");
        assert_eq!(end["detail"], "flood");
    }
    assert_unregistered(gh, id);
    let deadline = Instant::now() + scaled(T);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "gatehouse still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    err_h.join().unwrap();
    let err = err.lock().unwrap().clone();
    let want = if ends == 1 { 255 } else { 1 };
    assert_eq!(code, Some(want), "{err}");
    assert!(gh.records("logout").pop().is_some());
    drop(unread);
    err
}
