//! Automation through the bastion, end to end: the real OpenSSH client,
//! sftp and scp against a bastion sshd whose ForceCommand is Gatehouse,
//! and a real target sshd (issue 11). `HOST -- COMMAND` on an exec
//! channel; sftp/scp through the target's sftp subsystem with one `file`
//! record per operation.

mod common;

use std::fs;
use std::io::Write;
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

/// Runs `cmd` with `stdin` (a file, or nothing), killed after `timeout`.
fn run(mut cmd: Command, stdin: Option<&Path>, timeout: Duration) -> Ran {
    match stdin {
        Some(p) => cmd.stdin(fs::File::open(p).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    run_timed(cmd, None, timeout)
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
    assert_eq!(
        exec["auth"], "key",
        "how Gatehouse logged in, as in session_start"
    );
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
        ("@a/b -- uptime", "not a host name"),
        ("web$(id)* -- uptime", "not a host name"),
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

/// A terminal command's recording keeps up while it runs, as a visit's
/// does (tests/recording_limit.rs): the tail of its last block is written
/// within 20 ms, not when the command ends.
#[test]
fn a_pty_commands_recording_keeps_up_while_it_runs() {
    if skip_without_pty() {
        return;
    }
    let t = target();
    let gh = env(&t, "exec = true");
    let b = bastion(&gh);
    let mut p = spawn_pty(
        b.ssh_cmd(&["-tt", "web01 -- echo live-$((6*7)); sleep 60"]),
        80,
        24,
    );
    p.expect("live-42").unwrap();
    let exec = gh.wait_for_record(|r| r["event"] == "exec", T);
    let cast = exec["recording"].as_str().expect("recording").to_string();
    let text = file_text_once_it_holds(Path::new(&cast), "live-42", Duration::from_secs(10));
    assert!(text.contains("live-42"), "not in the recording yet: {text}");
    assert!(gh.records("session_end").is_empty(), "still running");
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

// ---------------------------------------------------------------------------
// Many hosts at once (issue 19)
// ---------------------------------------------------------------------------

/// Hosts `(name, target, groups)`; the current user may `exec` on
/// `exec_on` (patterns) and only log in to `session_on`.
fn batch_env(
    hosts: &[(&str, &Target, &[&str])],
    exec_on: &str,
    session_on: &str,
    settings: &str,
    extra: &str,
) -> Gh {
    let user = current_user();
    let mut b = Gh::builder().no_access().extra_settings(settings);
    for (name, t, groups) in hosts {
        b = b
            .host(HostSpec::target(name, t).groups(groups))
            .known_host(&t.known_hosts_line());
    }
    let session_rule = if session_on == "[]" {
        String::new()
    } else {
        format!("[[access]]\nusers = [\"{user}\"]\nhosts = {session_on}\n\n")
    };
    b.extra_toml(&format!(
        "[[access]]\nusers = [\"{user}\"]\nhosts = {exec_on}\nexec = true\n\n{session_rule}{extra}"
    ))
    .build()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Lines of `s`, sorted (hosts run in parallel: their order is free).
fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Writes `code` in the target's home: the batch command exits with it.
fn exit_code_file(t: &Target, code: i32) {
    fs::write(t.home().join("code"), format!("{code}\n")).unwrap();
}

const REPORTING: &str = "echo \"out $(cat ~/code)\"; echo \"err $(cat ~/code)\" >&2; \
                         printf 'no newline'; exit $(cat ~/code)";

#[test]
fn batch_runs_on_every_permitted_host_with_prefixed_lines_and_streams_apart() {
    let (t1, t2, t3) = (target(), target(), target());
    exit_code_file(&t1, 0);
    exit_code_file(&t2, 3);
    exit_code_file(&t3, 0);
    let gh = batch_env(
        &[
            ("web01", &t1, &["web"]),
            ("web02", &t2, &["web"]),
            ("web03", &t3, &["web"]),
            // In the group but no exec grant; and one outside the group.
            ("web04", &t1, &["web"]),
            ("db01", &t2, &["db"]),
        ],
        "[\"web01\", \"web02\", \"web03\"]",
        "[\"web04\", \"db01\"]",
        "",
        "",
    );
    let b = bastion(&gh);
    let out = run(b.ssh_cmd(&[&format!("@web -- {REPORTING}")]), None, T);
    let stdout = text(&out.stdout);
    assert_eq!(out.code, 1, "one host exited 3; stderr: {}", out.stderr);
    assert_eq!(
        sorted_lines(&stdout),
        [
            "web01: no newline",
            "web01: out 0",
            "web02: no newline",
            "web02: out 3",
            "web03: no newline",
            "web03: out 0",
        ],
        "{stdout}"
    );
    // Each host's lines in its own order.
    for h in ["web01", "web02", "web03"] {
        let mine: Vec<&str> = stdout.lines().filter(|l| l.starts_with(h)).collect();
        assert!(mine[0].contains(": out "), "{h}: {mine:?}");
    }
    assert_eq!(
        sorted_lines(&out.stderr),
        [
            "gatehouse: web02: exit status 3",
            "web01: err 0",
            "web02: err 3",
            "web03: err 0",
        ],
        "{}",
        out.stderr
    );
    // The summary comes after the output.
    assert!(out
        .stderr
        .trim_end()
        .ends_with("gatehouse: web02: exit status 3"));
    // Not permitted: neither run nor named.
    for h in ["web04", "db01"] {
        assert!(!stdout.contains(h) && !out.stderr.contains(h), "{h}");
    }
    let execs = gh.records("exec");
    let mut hosts: Vec<&str> = execs.iter().map(|r| r["host"].as_str().unwrap()).collect();
    hosts.sort();
    assert_eq!(hosts, ["web01", "web02", "web03"]);
    let batch = execs[0]["batch"].as_str().expect("batch id").to_string();
    let ends = gh.records("session_end");
    assert_eq!(ends.len(), 3);
    for e in &execs {
        assert_eq!(e["batch"], batch.as_str(), "{e}");
        assert_eq!(e["command"], REPORTING);
        assert_eq!(e["pty"], false);
        assert_eq!(e["auth"], "key", "{e}");
        let end = ends
            .iter()
            .find(|x| x["session"] == e["session"])
            .unwrap_or_else(|| panic!("no session_end for {e}"));
        let want = if e["host"] == "web02" { 3 } else { 0 };
        assert_eq!(end["exit_status"], want, "{end}");
        assert_eq!(end["reason"], "exit");
    }
    let sessions: std::collections::HashSet<&str> = execs
        .iter()
        .map(|e| e["session"].as_str().unwrap())
        .collect();
    assert_eq!(sessions.len(), 3, "one session per host");
    assert_eq!(last(&gh, "login")["mode"], "exec");

    // All exit 0: status 0 and no summary at all.
    exit_code_file(&t2, 0);
    let out = run(b.ssh_cmd(&["@web -- exit $(cat ~/code)"]), None, T);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
}

#[test]
fn lines_of_many_hosts_never_mix_and_an_overlong_line_is_cut_with_a_marker() {
    let (t1, t2, t3) = (target(), target(), target());
    let gh = batch_env(
        &[
            ("web01", &t1, &["web"]),
            ("web02", &t2, &["web"]),
            ("web03", &t3, &["web"]),
        ],
        "[\"@web\"]",
        "[]",
        "",
        "",
    );
    let b = bastion(&gh);
    let pad = "x".repeat(80);
    // Thousands of lines from three hosts at once, on both streams, then
    // one line of 40,000 bytes without a newline.
    let cmd = format!(
        "awk 'BEGIN {{ for (i = 1; i <= 3000; i++) {{ printf \"line-%d-{pad}\\n\", i; \
         printf \"err-%d\\n\", i > \"/dev/stderr\" }} }}'; head -c 40000 /dev/zero | tr '\\0' y"
    );
    let out = run(b.ssh_cmd(&[&format!("@web -- {cmd}")]), None, T);
    assert_eq!(out.code, 0, "{:.2000}", out.stderr);
    let stdout = text(&out.stdout);
    let cut = " [gatehouse: line continues]";
    for h in ["web01", "web02", "web03"] {
        let prefix = format!("{h}: ");
        let mine: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect();
        assert_eq!(mine.len(), 3000 + 3, "{h}");
        for (i, l) in mine[..3000].iter().enumerate() {
            assert_eq!(*l, format!("line-{}-{pad}", i + 1), "{h}");
        }
        let long = format!("{}{cut}", "y".repeat(16 * 1024));
        assert_eq!(mine[3000], long, "{h}");
        assert_eq!(mine[3001], long, "{h}");
        assert_eq!(mine[3002], "y".repeat(40000 - 2 * 16 * 1024), "{h}");
        let errs: Vec<&str> = out
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect();
        let want: Vec<String> = (1..=3000).map(|i| format!("err-{i}")).collect();
        assert_eq!(errs, want, "{h}: stderr in order, apart from stdout");
    }
    // Every line belongs to a host: nothing mixed inside a line.
    for l in stdout.lines().chain(out.stderr.lines()) {
        assert!(
            ["web01: ", "web02: ", "web03: "]
                .iter()
                .any(|p| l.starts_with(p)),
            "{l:.100}"
        );
        assert!(!l[7..].contains("web0"), "{l:.100}");
    }
}

#[test]
fn a_glob_picks_its_hosts_and_a_pattern_with_no_permitted_host_is_denied() {
    let (t1, t2, t3) = (target(), target(), target());
    let gh = batch_env(
        &[
            ("web01", &t1, &[]),
            ("web02", &t2, &[]),
            ("web03", &t3, &[]),
            ("db01", &t1, &["db"]),
        ],
        "[\"web*\"]",
        "[\"db01\"]",
        "",
        "",
    );
    let b = bastion(&gh);
    let out = run(b.ssh_cmd(&["web0[13] -- echo hi"]), None, T);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sorted_lines(&text(&out.stdout)), ["web01: hi", "web03: hi"]);
    let before = gh.records("exec").len();
    assert_eq!(before, 2);
    // db01 exists but only for sessions; nosuch* matches nothing.
    for pattern in ["@db", "db*", "nosuch*", "@nosuch"] {
        let out = run(b.ssh_cmd(&[&format!("{pattern} -- echo hi")]), None, T);
        assert_eq!(out.code, 1, "{pattern}: {}", out.stderr);
        assert_eq!(
            out.stderr,
            format!("gatehouse: {pattern}: no hosts among those you may run commands on.\n")
        );
        assert!(out.stdout.is_empty());
        let d = last(&gh, "denied");
        assert_eq!(d["reason"], "not_permitted", "{d}");
    }
    assert_eq!(gh.records("exec").len(), before, "nothing more ran");
}

#[test]
fn an_unreachable_host_gets_its_error_record_and_summary_the_others_run() {
    let (t1, t2, t3) = (target(), target(), target());
    let dead = closed_port();
    let user = current_user();
    let gh = Gh::builder()
        .no_access()
        .host(HostSpec::target("web01", &t1).groups(&["web"]))
        .host(
            HostSpec::new("web02", "127.0.0.1", dead, &t2.user)
                .key(&t2.key_path)
                .groups(&["web"]),
        )
        .host(HostSpec::target("web03", &t3).groups(&["web"]))
        .known_host(&t1.known_hosts_line())
        .known_host(&t3.known_hosts_line())
        .extra_toml(&format!(
            "[[access]]\nusers = [\"{user}\"]\nhosts = [\"@web\"]\nexec = true\n"
        ))
        .build();
    let b = bastion(&gh);
    let out = run(b.ssh_cmd(&["@web -- echo up"]), None, T);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(sorted_lines(&text(&out.stdout)), ["web01: up", "web03: up"]);
    assert_eq!(
        out.stderr, "gatehouse: web02: not reached: connection refused\n",
        "{}",
        out.stderr
    );
    let execs = gh.records("exec");
    assert_eq!(execs.len(), 2);
    let err = last(&gh, "error");
    assert_eq!(err["host"], "web02");
    assert_eq!(err["reason"], "connect_failed");
    assert_eq!(err["batch"], execs[0]["batch"], "{err}");
    assert!(err["session"].is_string());
    assert!(!gh
        .records("session_end")
        .iter()
        .any(|e| e["host"] == "web02"));
}

#[test]
fn batch_parallel_bounds_the_hosts_running_at_once() {
    // One target under four names: each run logs its start and end (with
    // its own pid) to one file on the target; a host starts only after
    // another has ended, so the log says how many ever ran at once.
    let t = target();
    let log = t.home().join("runs");
    let hosts: Vec<(&str, &Target, &[&str])> = ["h1", "h2", "h3", "h4"]
        .iter()
        .map(|n| (*n, &t, &["many"][..]))
        .collect();
    let gh = batch_env(&hosts, "[\"@many\"]", "[]", "batch_parallel = 2", "");
    let b = bastion(&gh);
    let cmd = format!(
        "echo \"start $$\" >> {l}; sleep 1; echo \"end $$\" >> {l}; echo done",
        l = log.display()
    );
    let out = run(b.ssh_cmd(&[&format!("@many -- {cmd}")]), None, T);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        sorted_lines(&text(&out.stdout)),
        ["h1: done", "h2: done", "h3: done", "h4: done"]
    );
    let runs = fs::read_to_string(&log).unwrap();
    let (mut now, mut most, mut starts) = (0i32, 0i32, 0);
    for line in runs.lines() {
        if line.starts_with("start ") {
            now += 1;
            starts += 1;
        } else {
            now -= 1;
        }
        most = most.max(now);
    }
    assert_eq!(starts, 4, "{runs}");
    assert!(most <= 2, "{most} at once with batch_parallel = 2:\n{runs}");
    // The records agree: never more than 2 exec without their end.
    let (mut open, mut most) = (0, 0);
    for r in gh.jsonl() {
        match r["event"].as_str() {
            Some("exec") => open += 1,
            Some("session_end") => open -= 1,
            _ => {}
        }
        most = most.max(open);
    }
    assert!(most <= 2, "{most} exec records open at once");
}

#[test]
fn policy_applies_per_host_in_a_batch() {
    let (t1, t2, t3) = (target(), target(), target());
    let gh = batch_env(
        &[
            ("web01", &t1, &["web", "prod"]),
            ("web02", &t2, &["web"]),
            ("web03", &t3, &["web", "prod"]),
        ],
        "[\"@web\"]",
        "[]",
        "",
        "[[policy]]\nname = \"prod-freeze\"\naction = \"deny\"\ncommands = ['^touch\\b']\n\
         hosts = [\"@prod\"]\nmessage = \"Prod is frozen.\"\n",
    );
    let b = bastion(&gh);
    let out = run(
        b.ssh_cmd(&["@web -- touch ~/mark && echo touched"]),
        None,
        T,
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(text(&out.stdout), "web02: touched\n");
    assert!(!t1.home().join("mark").exists() && !t3.home().join("mark").exists());
    assert!(t2.home().join("mark").exists());
    assert_eq!(
        sorted_lines(&out.stderr),
        [
            "gatehouse: web01: blocked by policy \"prod-freeze\": Prod is frozen.",
            "gatehouse: web03: blocked by policy \"prod-freeze\": Prod is frozen.",
        ]
    );
    let policy = gh.records("policy");
    let mut blocked: Vec<&str> = policy.iter().map(|p| p["host"].as_str().unwrap()).collect();
    blocked.sort();
    assert_eq!(blocked, ["web01", "web03"]);
    for p in &policy {
        assert_eq!(p["outcome"], "blocked");
        assert!(p["session"].is_string());
    }
    let execs = gh.records("exec");
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0]["host"], "web02");
}

/// Waits until `n` records match (the batch runs its hosts in any order).
fn wait_for_records(gh: &Gh, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + scaled(T);
    loop {
        let found: Vec<Value> = gh.jsonl().into_iter().filter(|r| pred(r)).collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} records after {T:?}: {:#?}",
            found.len(),
            gh.jsonl()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pids_in(t: &Target) -> Vec<i32> {
    fs::read_to_string(t.home().join("pid"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Starts a batch of endless commands on three hosts, waits until all
/// three run (their pids written on the target), and returns the pids.
fn endless_batch_env() -> (Target, Target, Target, Gh) {
    let (t1, t2, t3) = (target(), target(), target());
    let gh = batch_env(
        &[
            ("web01", &t1, &["web"]),
            ("web02", &t2, &["web"]),
            ("web03", &t3, &["web"]),
        ],
        "[\"@web\"]",
        "[]",
        "",
        "",
    );
    (t1, t2, t3, gh)
}

const ENDLESS: &str = "@web -- echo $$ > ~/pid; while echo tick; do sleep 0.2; done";

fn assert_all_stopped(gh: &Gh, targets: &[&Target], pids: &[i32]) {
    let ends = wait_for_records(gh, 3, |r| r["event"] == "session_end");
    for e in &ends {
        assert_eq!(e["reason"], "hangup", "{e}");
    }
    // The remote commands end (their output is gone: SIGPIPE at the next
    // tick), as with a plain ssh whose client went away.
    let deadline = Instant::now() + scaled(T);
    while pids.iter().any(|&p| pid_alive(p)) {
        assert!(Instant::now() < deadline, "still running: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(targets.len(), 3);
}

fn wait_pids(targets: &[&Target]) -> Vec<i32> {
    let deadline = Instant::now() + scaled(T);
    loop {
        let pids: Vec<i32> = targets.iter().flat_map(|t| pids_in(t)).collect();
        if pids.len() == targets.len() {
            return pids;
        }
        assert!(Instant::now() < deadline, "pids: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hang_up_stops_every_host_and_writes_every_session_end() {
    let (t1, t2, t3, gh) = endless_batch_env();
    let b = bastion(&gh);
    let mut client = b
        .ssh_cmd(&[ENDLESS])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_records(&gh, 3, |r| r["event"] == "exec");
    let targets = [&t1, &t2, &t3];
    let pids = wait_pids(&targets);
    // The client's Ctrl-C without a pty: the client goes, the connection closes.
    client.kill().unwrap();
    client.wait().unwrap();
    assert_all_stopped(&gh, &targets, &pids);
    assert!(last(&gh, "logout").is_object(), "Gatehouse ended cleanly");
}

#[test]
fn ctrl_c_with_a_terminal_stops_every_host() {
    if skip_without_pty() {
        return;
    }
    let (t1, t2, t3, gh) = endless_batch_env();
    let b = bastion(&gh);
    let mut p = spawn_pty(b.ssh_cmd(&["-tt", ENDLESS]), 80, 24);
    wait_for_records(&gh, 3, |r| r["event"] == "exec");
    let targets = [&t1, &t2, &t3];
    let pids = wait_pids(&targets);
    p.expect("web03: tick").unwrap();
    p.send("\x03").unwrap();
    assert_all_stopped(&gh, &targets, &pids);
    for e in gh.records("session_end") {
        assert_eq!(e["detail"], "interrupted (Ctrl-C)", "{e}");
    }
    // The summary names every host.
    for h in ["web01", "web02", "web03"] {
        p.expect(format!("gatehouse: {h}: stopped: interrupted (Ctrl-C)"))
            .unwrap();
    }
    assert_eq!(p.wait_exit(T), Some(1));
}
