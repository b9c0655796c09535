//! Automation through the bastion, end to end: the real OpenSSH client,
//! sftp and scp against a bastion sshd whose ForceCommand is Gatehouse,
//! and a real target sshd (issue 11). `HOST -- COMMAND` on an exec
//! channel; sftp/scp through the target's sftp subsystem with one `file`
//! record per operation.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// A target that also serves sftp (sshd runs its ForceCommand with
/// `SSH_ORIGINAL_COMMAND=/usr/lib/openssh/sftp-server`, which the fixture's
/// shell runs).
fn target() -> Target {
    Target::start_with_extra("tgt$ ", "Subsystem sftp /usr/lib/openssh/sftp-server\n")
}

/// `web01` → the target; one access rule for the current user with the
/// given grants (TOML lines such as `exec = true`).
fn env(t: &Target, grants: &str) -> Gh {
    let user = current_user();
    Gh::builder()
        .target("web01", t)
        .target("db01", t)
        .no_access()
        .extra_toml(&format!(
            "[[access]]\nusers = [\"{user}\"]\nhosts = [\"web01\"]\n{grants}\n\
             [[access]]\nusers = [\"{user}\"]\nhosts = [\"db01\"]\n"
        ))
        .build()
}

/// The bastion as the shipped snippet sets it up for automation: the
/// sftp subsystem line (sshd needs one to accept the request at all),
/// `AcceptEnv GATEHOUSE_HOST`, no forwarding, Gatehouse forced.
fn bastion(gh: &Gh) -> Bastion {
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

struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `cmd` with `stdin` (a file, or nothing), killed after `timeout`.
fn run(mut cmd: Command, stdin: Option<&Path>, timeout: Duration) -> Out {
    match stdin {
        Some(p) => cmd.stdin(fs::File::open(p).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -2;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code,
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    }
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn random_file(path: &Path, bytes: usize) {
    let status = Command::new("head")
        .args(["-c", &bytes.to_string(), "/dev/urandom"])
        .stdout(fs::File::create(path).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
}

fn last(gh: &Gh, event: &str) -> Value {
    gh.records(event)
        .pop()
        .unwrap_or_else(|| panic!("no {event} record in {:#?}", gh.jsonl()))
}

/// Options for scp and sftp (which take -P, not -p).
fn sftp_opts(b: &Bastion, host: &str) -> Vec<String> {
    [
        "-F",
        "/dev/null",
        "-P",
        &b.port.to_string(),
        "-i",
        &b.key_path.display().to_string(),
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
        &format!("SetEnv=GATEHOUSE_HOST={host}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn exec_runs_the_command_keeps_stderr_apart_and_returns_its_status() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let out = run(
        b.ssh_cmd(&["web01 -- echo out; echo err >&2; printf '%s' \"$0\" >/dev/null; exit 7"]),
        None,
        T,
    );
    assert_eq!(out.code, 7, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, "err\n");
    let login = last(&gh, "login");
    assert_eq!(login["mode"], "exec");
    let exec = last(&gh, "exec");
    assert_eq!(exec["host"], "web01");
    assert_eq!(
        exec["command"],
        "echo out; echo err >&2; printf '%s' \"$0\" >/dev/null; exit 7"
    );
    assert_eq!(exec["pty"], false);
    assert_eq!(exec["host_key"], t.host_key_fingerprint());
    let end = last(&gh, "session_end");
    assert_eq!(end["session"], exec["session"]);
    assert_eq!(end["exit_status"], 7);
    assert_eq!(end["reason"], "exit");
    assert_eq!(end["bytes_out"], 8);
    assert_eq!(end["bytes_in"], 0);
    // The exec record comes before its end.
    let recs = gh.jsonl();
    let pos = |e: &str| recs.iter().position(|r| r["event"] == e).unwrap();
    assert!(pos("exec") < pos("session_end"));
    // Unquoted, as `ssh bastion web01 -- CMD…`: ssh joins the words with
    // spaces and the target's shell splits them again, as with `ssh web01`.
    let out = run(
        b.ssh_cmd(&["web01", "--", "printf", "'<%s>'", "a  b"]),
        None,
        T,
    );
    let direct = run(t.ssh_cmd(&["printf", "'<%s>'", "a  b"]), None, T);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, direct.stdout);
    assert_eq!(out.stdout, b"<a><b>");
    assert_eq!(last(&gh, "exec")["command"], "printf '<%s>' a  b");
}

#[test]
fn exit_status_and_signal_are_what_ssh_gives() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    for (cmd, want_signal) in [
        ("exit 0", None),
        ("exit 42", None),
        ("kill -TERM $$", Some("TERM")),
        ("kill -KILL $$", Some("KILL")),
        // Output closed early: the status still arrives (after the close).
        ("exec >&- 2>&-; sleep 1; exit 3", None),
    ] {
        let direct = run(t.ssh_cmd(&[cmd]), None, T);
        let via = run(b.ssh_cmd(&[&format!("web01 -- {cmd}")]), None, T);
        assert_eq!(
            via.code, direct.code,
            "{cmd}: through Gatehouse {} vs ssh {}; stderr {}",
            via.code, direct.code, via.stderr
        );
        let end = last(&gh, "session_end");
        match want_signal {
            Some(sig) => {
                assert_eq!(via.code, 255, "{cmd}");
                assert_eq!(end["exit_signal"], sig, "{cmd}: {end}");
                assert!(end["exit_status"].is_null());
            }
            None => assert_eq!(end["exit_status"], direct.code, "{cmd}: {end}"),
        }
    }
}

#[test]
fn a_command_that_stops_reading_stdin_ends_as_with_ssh() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big");
    random_file(&src, 16 * 1024 * 1024);
    let cmd = "head -c 10 >/dev/null; exit 5";
    let direct = run(t.ssh_cmd(&[cmd]), Some(&src), T);
    let via = run(b.ssh_cmd(&[&format!("web01 -- {cmd}")]), Some(&src), T);
    assert_eq!(direct.code, 5);
    assert_eq!(via.code, 5, "stderr: {}", via.stderr);
    assert_eq!(last(&gh, "session_end")["exit_status"], 5);
}

#[test]
fn a_vanished_client_ends_a_silent_command() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let mut client = b
        .ssh_cmd(&["web01 -- sleep 120"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    gh.wait_for_record(|r| r["event"] == "exec", T);
    client.kill().unwrap();
    client.wait().unwrap();
    let end = gh.wait_for_record(|r| r["event"] == "session_end", T);
    assert_eq!(end["reason"], "hangup", "{end}");
}

#[test]
fn stdout_and_stderr_flood_at_once_without_stalling() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let out = run(
        b.ssh_cmd(&["web01 -- seq 1 200000 >&2 & seq 1 200000; wait"]),
        None,
        T,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expect: String = (1..=200000).map(|i| format!("{i}\n")).collect();
    assert!(out.stdout == expect.as_bytes(), "stdout differs");
    assert!(out.stderr == expect, "stderr differs");
}

#[test]
fn binary_round_trip_with_checksums() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    random_file(&src, 6 * 1024 * 1024 + 123);
    let want = sha256(&src);
    // Up: the remote checksum is printed only after EOF reached it.
    let out = run(b.ssh_cmd(&["web01 -- sha256sum"]), Some(&src), T);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next(),
        Some(want.as_str())
    );
    let end = last(&gh, "session_end");
    assert_eq!(end["bytes_in"], 6 * 1024 * 1024 + 123);
    // Through and back, byte for byte.
    let out = run(b.ssh_cmd(&["web01 -- cat"]), Some(&src), T);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let back = dir.path().join("back.bin");
    fs::write(&back, &out.stdout).unwrap();
    assert_eq!(sha256(&back), want);
    // Down: a file on the target.
    let out = run(
        b.ssh_cmd(&[&format!(
            "web01 -- cat {}",
            sh_quote(&src.display().to_string())
        )]),
        None,
        T,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    fs::write(&back, &out.stdout).unwrap();
    assert_eq!(sha256(&back), want);
}

#[test]
fn large_stdin_reaches_the_target_then_eof() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let total: usize = 64 * 1024 * 1024;
    let mut child = b
        .ssh_cmd(&["web01 -- wc -c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![0xA5u8; 1 << 20];
        for _ in 0..total / chunk.len() {
            stdin.write_all(&chunk).unwrap();
        }
        // Dropping stdin is the EOF `wc` waits for.
    });
    let deadline = Instant::now() + T;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no exit after {T:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        total.to_string()
    );
    assert_eq!(last(&gh, "session_end")["bytes_in"], total as u64);
}

#[test]
fn exec_needs_its_grant() {
    let t = target();
    let gh = env(&t, "transfer = true");
    let b = bastion(&gh);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let m = marker.display().to_string();
    for host in ["web01", "db01", "nosuch"] {
        let out = run(
            b.ssh_cmd(&[&format!("{host} -- touch {}", sh_quote(&m))]),
            None,
            T,
        );
        assert_eq!(out.code, 1, "{host}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.starts_with("gatehouse: "), "{}", out.stderr);
        let d = last(&gh, "denied");
        assert_eq!(d["reason"], "not_permitted", "{d}");
        assert!(d["request"].as_str().unwrap().starts_with(host));
    }
    assert!(!marker.exists(), "a command ran without the exec grant");
    assert!(gh.records("exec").is_empty());
    // A host the user may reach but not run commands on says so.
    let out = run(b.ssh_cmd(&["web01 -- true"]), None, T);
    assert!(
        out.stderr.contains("may not run commands"),
        "{}",
        out.stderr
    );
}

#[test]
fn hostile_requests_get_one_line_and_a_record() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let huge = format!("web01 -- echo {}", "x".repeat(70 * 1024));
    let cases: &[(&str, &str)] = &[
        ("web01 --", "nothing to run"),
        ("-- uptime", "no host"),
        ("web 01 -- uptime", "not a host name"),
        ("@prod -- uptime", "several hosts"),
        ("web* -- uptime", "several hosts"),
        ("web01 -- echo \x1b]0;pwned\x07", "control characters"),
        (&huge, "limit"),
    ];
    for (req, says) in cases {
        let out = run(b.ssh_cmd(&["--", req]), None, T);
        assert_eq!(out.code, 1, "{req:.40}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{req:.40}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{req:.40}: {}", out.stderr);
        let d = last(&gh, "denied");
        assert_eq!(d["reason"], "bad_request", "{req:.40}: {d}");
        assert!(d["request"].as_str().unwrap().chars().count() <= 257);
        assert!(!d["request"].as_str().unwrap().contains('\x1b'));
    }
    assert!(gh.records("exec").is_empty(), "nothing ran");
}

#[test]
fn a_pty_only_when_the_client_has_one() {
    if skip_without_pty() {
        return;
    }
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let out = run(b.ssh_cmd(&["web01 -- tty"]), None, T);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "not a tty");
    assert_eq!(last(&gh, "exec")["pty"], false);
    assert!(last(&gh, "exec").get("recording").is_none());
    let mut p = spawn_pty(b.ssh_cmd(&["-tt", "web01 -- tty; exit 4"]), 80, 24);
    p.expect("/dev/pts/").unwrap();
    assert_eq!(p.wait_exit(T), Some(4));
    let exec = last(&gh, "exec");
    assert_eq!(exec["pty"], true);
    // A terminal session is recorded like a visit.
    let cast = fs::read_to_string(exec["recording"].as_str().expect("recording")).unwrap();
    assert!(cast.starts_with("{\"version\":2"), "{cast:.200}");
    assert!(cast.contains("/dev/pts/"), "{cast}");
}

// ---------------------------------------------------------------------------
// sftp and scp
// ---------------------------------------------------------------------------

fn files(gh: &Gh) -> Vec<(String, String, Option<String>, Option<u64>)> {
    gh.records("file")
        .iter()
        .map(|r| {
            (
                r["op"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
                r["to"].as_str().map(str::to_string),
                r["bytes"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn sftp_batch_is_relayed_and_every_operation_recorded() {
    let t = target();
    let gh = env(&t, "transfer = true");
    let b = bastion(&gh);
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let r = remote.path().display().to_string();
    let src = local.path().join("up.bin");
    random_file(&src, 3 * 1024 * 1024 + 7);
    let got = local.path().join("down.bin");
    let batch = local.path().join("batch");
    fs::write(
        &batch,
        format!(
            "put {src} {r}/up.bin\n\
             get {r}/up.bin {got}\n\
             mkdir {r}/sub\n\
             rename {r}/up.bin {r}/sub/moved.bin\n\
             chmod 640 {r}/sub/moved.bin\n\
             symlink {r}/sub/moved.bin {r}/link\n\
             rm {r}/link\n\
             rm {r}/sub/moved.bin\n\
             rmdir {r}/sub\n",
            src = src.display(),
            got = got.display()
        ),
    )
    .unwrap();
    let mut c = Command::new("sftp");
    c.args(sftp_opts(&b, "web01"))
        .arg("-b")
        .arg(&batch)
        .arg(format!("{}@127.0.0.1", b.user));
    let out = run(c, None, T);
    assert_eq!(out.code, 0, "sftp: {}", out.stderr);
    assert_eq!(sha256(&got), sha256(&src), "download differs");
    assert!(
        fs::read_dir(remote.path()).unwrap().next().is_none(),
        "the batch cleans up after itself"
    );
    let size = 3 * 1024 * 1024 + 7;
    let f = files(&gh);
    let want: Vec<(String, String, Option<String>, Option<u64>)> = [
        ("upload", format!("{r}/up.bin"), None, Some(size)),
        ("download", format!("{r}/up.bin"), None, Some(size)),
        ("mkdir", format!("{r}/sub"), None, None),
        (
            "rename",
            format!("{r}/up.bin"),
            Some(format!("{r}/sub/moved.bin")),
            None,
        ),
        ("setstat", format!("{r}/sub/moved.bin"), None, None),
        (
            "symlink",
            format!("{r}/link"),
            Some(format!("{r}/sub/moved.bin")),
            None,
        ),
        ("remove", format!("{r}/link"), None, None),
        ("remove", format!("{r}/sub/moved.bin"), None, None),
        ("rmdir", format!("{r}/sub"), None, None),
    ]
    .into_iter()
    .map(|(o, p, to, n)| (o.to_string(), p, to, n))
    .collect();
    // `put` also sets the file's mode on OpenSSH 9 (fsetstat) — a setstat
    // of the uploaded path right after it is allowed, nothing else.
    let f: Vec<_> = f
        .into_iter()
        .enumerate()
        .filter(|(i, (op, p, _, _))| !(*i == 1 && op == "setstat" && p.ends_with("/up.bin")))
        .map(|(_, x)| x)
        .collect();
    assert_eq!(f, want, "records: {:#?}", gh.records("file"));
    let chmod = gh
        .records("file")
        .into_iter()
        .find(|r| r["op"] == "setstat" && r["path"].as_str().unwrap().ends_with("moved.bin"))
        .unwrap();
    assert_eq!(chmod["mode"], "0640");
    let exec = last(&gh, "exec");
    assert_eq!(exec["subsystem"], "sftp");
    assert_eq!(last(&gh, "login")["mode"], "transfer");
    let end = last(&gh, "session_end");
    assert_eq!(end["reason"], "exit", "{end}");
    assert!(end["bytes_in"].as_u64().unwrap() > size);
    assert!(end["bytes_out"].as_u64().unwrap() > size);
}

#[test]
fn scp_in_sftp_mode_is_recorded_too() {
    let t = target();
    let gh = env(&t, "transfer = true");
    let b = bastion(&gh);
    let local = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let src = local.path().join("a.bin");
    random_file(&src, 1024 * 1024 + 1);
    let dst = remote.path().join("a.bin");
    let back = local.path().join("back.bin");
    let dest = format!("{}@127.0.0.1:{}", b.user, dst.display());
    let mut up = Command::new("scp");
    up.args(sftp_opts(&b, "web01")).arg(&src).arg(&dest);
    let out = run(up, None, T);
    assert_eq!(out.code, 0, "scp up: {}", out.stderr);
    let mut down = Command::new("scp");
    down.args(sftp_opts(&b, "web01")).arg(&dest).arg(&back);
    let out = run(down, None, T);
    assert_eq!(out.code, 0, "scp down: {}", out.stderr);
    assert_eq!(sha256(&dst), sha256(&src));
    assert_eq!(sha256(&back), sha256(&src));
    let f = files(&gh);
    let d = dst.display().to_string();
    assert!(
        f.contains(&("upload".into(), d.clone(), None, Some(1024 * 1024 + 1))),
        "{f:?}"
    );
    assert!(
        f.contains(&("download".into(), d, None, Some(1024 * 1024 + 1))),
        "{f:?}"
    );
    assert_eq!(gh.records("exec").len(), 2);
}

#[test]
fn transfer_needs_its_grant_and_a_host() {
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let local = tempfile::tempdir().unwrap();
    let batch = local.path().join("batch");
    let got = local.path().join("got");
    fs::write(&batch, format!("get /etc/hostname {}\n", got.display())).unwrap();
    for host in ["web01", "db01", "nosuch"] {
        let mut c = Command::new("sftp");
        c.args(sftp_opts(&b, host))
            .arg("-b")
            .arg(&batch)
            .arg(format!("{}@127.0.0.1", b.user));
        let out = run(c, None, T);
        assert_ne!(out.code, 0, "{host}: {}", out.stderr);
        assert!(!got.exists());
        assert_eq!(last(&gh, "denied")["reason"], "not_permitted");
    }
    // Without GATEHOUSE_HOST there is no host to go to. (sshd passes no
    // stderr for a subsystem, so the client only sees the connection
    // close; the record says why.)
    let out = run(b.ssh_cmd(&["-s", "sftp"]), None, T);
    assert_eq!(out.code, 1);
    let d = last(&gh, "denied");
    assert_eq!(d["reason"], "not_a_host");
    assert_eq!(d["request"], "/usr/lib/openssh/sftp-server");
    // As a command (not a subsystem) the line is shown.
    let out = run(b.ssh_cmd(&["/usr/lib/openssh/sftp-server"]), None, T);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("GATEHOUSE_HOST"), "{}", out.stderr);
    assert!(gh.records("file").is_empty() && gh.records("exec").is_empty());
}

#[test]
fn a_malformed_sftp_stream_ends_the_transfer_with_an_error() {
    let t = target();
    let gh = env(&t, "transfer = true");
    let b = bastion(&gh);
    let dir = tempfile::tempdir().unwrap();
    // INIT, then a packet claiming 2 GiB.
    let junk = dir.path().join("junk");
    let mut bytes = vec![0, 0, 0, 5, 1, 0, 0, 0, 3];
    bytes.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 3, 0, 0, 0, 1]);
    bytes.extend_from_slice(&[0u8; 4096]);
    fs::write(&junk, &bytes).unwrap();
    let out = run(
        b.ssh_cmd(&["-o", "SetEnv=GATEHOUSE_HOST=web01", "-s", "sftp"]),
        Some(&junk),
        T,
    );
    assert_ne!(out.code, 0);
    let err = last(&gh, "error");
    assert!(
        err["detail"].as_str().unwrap().contains("the limit is"),
        "{err}"
    );
    assert_eq!(err["reason"], "sftp_protocol", "{err}");
    assert_eq!(err["host"], "web01");
    let end = last(&gh, "session_end");
    assert_eq!(end["reason"], "error");
    assert_eq!(end["session"], err["session"]);
}

#[test]
fn policy_applies_to_exec_commands() {
    let t = target();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gh-exec-mark");
    let gh = env(
        &t,
        "exec = true\n\n\
         [[policy]]\nname = \"no-mark\"\naction = \"deny\"\ncommands = ['^touch\\s.*gh-exec-mark']\n\
         message = \"Not by automation.\"\n\n\
         [[policy]]\nname = \"ask-rm\"\naction = \"confirm\"\ncommands = ['^rm\\s']\n\n\
         [[policy]]\nname = \"flag-uname\"\naction = \"alert\"\ncommands = ['^uname\\b']\n",
    );
    let b = bastion(&gh);
    // deny: nothing connects, one line, exit 1, a policy record only.
    let out = run(
        b.ssh_cmd(&[&format!("web01 -- true && /usr/bin/touch {}", f.display())]),
        None,
        T,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("blocked by policy \"no-mark\": Not by automation."),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(!f.exists());
    let p = last(&gh, "policy");
    assert_eq!(
        (p["rule"].as_str(), p["outcome"].as_str()),
        (Some("no-mark"), Some("blocked"))
    );
    assert!(gh.records("exec").is_empty(), "a blocked exec never starts");
    // confirm: no terminal to ask on, so it is cancelled.
    let out = run(
        b.ssh_cmd(&[&format!("web01 -- rm -f {}", f.display())]),
        None,
        T,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("interactive session"), "{}", out.stderr);
    assert_eq!(last(&gh, "policy")["outcome"], "cancelled");
    // alert: runs, flagged.
    let out = run(b.ssh_cmd(&["web01 -- uname -s"]), None, T);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, b"Linux\n");
    assert_eq!(last(&gh, "policy")["outcome"], "allowed");
    assert_eq!(last(&gh, "exec")["command"], "uname -s");
}

#[test]
fn idle_timeout_ends_an_idle_sftp_but_not_a_quiet_command() {
    let t = target();
    let user = current_user();
    let gh = Gh::builder()
        .target("web01", &t)
        .idle_timeout("2s")
        .no_access()
        .extra_toml(&format!(
            "[[access]]\nusers = [\"{user}\"]\nhosts = [\"web01\"]\nexec = true\ntransfer = true\n"
        ))
        .build();
    let b = bastion(&gh);
    // An sftp client that says INIT and then nothing, its stdin held open.
    let mut sftp = b
        .ssh_cmd(&["-o", "SetEnv=GATEHOUSE_HOST=web01", "-s", "sftp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = sftp.stdin.take().unwrap();
    stdin.write_all(&[0, 0, 0, 5, 1, 0, 0, 0, 3]).unwrap();
    let end = gh.wait_for_record(|r| r["event"] == "session_end", T);
    assert_eq!(end["reason"], "idle_timeout", "{end}");
    drop(stdin);
    let _ = sftp.kill();
    let _ = sftp.wait();
    // A command without a terminal reads no stdin for longer than that
    // and is not cut.
    let out = run(b.ssh_cmd(&["web01 -- sleep 4; echo done"]), None, T);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, b"done\n");
    assert_eq!(last(&gh, "session_end")["reason"], "exit");
}
