//! Proves the fixtures in `tests/common` work, without Gatehouse: a real
//! sshd target reached with the real OpenSSH client through a real pty.
mod common;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(15);

/// Pty sessions over an unprivileged sshd need devpts with gid=tty.
fn pty_over_sshd_or_skip() -> bool {
    match sshd_pty_supported() {
        Ok(()) => true,
        Err(why) => {
            skip(&why);
            false
        }
    }
}

#[test]
fn target_shell_through_pty_echo_resize_exit_status() {
    if !pty_over_sshd_or_skip() {
        return;
    }
    let target = Target::start();
    let mut pty = spawn_pty(target.ssh_cmd(&["-tt"]), 80, 24);
    pty.expect("tgt$ ").unwrap();

    pty.send_line("echo fixture-$((6*7))").unwrap();
    pty.expect("fixture-42").unwrap();
    pty.expect("tgt$ ").unwrap();

    pty.send_line("stty size").unwrap();
    pty.expect("24 80").unwrap();
    pty.expect("tgt$ ").unwrap();

    // SIGWINCH reaches the local ssh, which forwards the new size.
    pty.resize(100, 30);
    stty_size_until(&mut pty, "tgt$ ", 30, 100, T);

    // The deterministic environment of the target shell.
    pty.send_line("echo \"home=$HOME term=$TERM\"").unwrap();
    let home = target.home().display().to_string();
    pty.expect(format!("home={home} term=xterm-256color"))
        .unwrap();

    // Bulk output without tracking (the benchmark path), then back to expect.
    pty.send_line("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo END-$((1+1))-MARK")
        .unwrap();
    let n = pty.read_until_raw(b"END-2-MARK", T).unwrap();
    assert!(n > 3_000_000, "{n}");
    pty.send_line("echo after-$((2+2))").unwrap();
    pty.expect("after-4").unwrap();

    pty.send_line("exit 3").unwrap();
    assert_eq!(pty.wait_exit(T), Some(3), "{}", pty.output());
}

#[test]
fn known_hosts_line_and_fingerprint_match_openssh() {
    let target = Target::start();
    let line = target.known_hosts_line();
    assert!(
        line.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 AAAA", target.port)),
        "{line}"
    );
    let kh = target.dir.path().join("kh_selftest");
    std::fs::write(&kh, format!("{line}\n")).unwrap();

    // Strict checking against a file holding only our line: accepted.
    let out = Command::new("ssh")
        .args(["-F", "/dev/null", "-p", &target.port.to_string(), "-i"])
        .arg(&target.key_path)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .arg(format!("{}@127.0.0.1", target.user))
        .arg("echo known-$((40+2))")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("known-42"),
        "ssh failed: {}\n{}\nsshd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        target.log()
    );

    // ssh-keygen -lf on that file prints the same fingerprint.
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&kh)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    let fp = target.host_key_fingerprint();
    assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
    assert!(listed.contains(&fp), "{listed} vs {fp}");
}

#[test]
fn drop_kills_server_and_sessions_and_kill_sessions_drops_connection() {
    if !pty_over_sshd_or_skip() {
        return;
    }
    let target = Target::start();
    let port = target.port;
    let listener = target.pid().unwrap();

    // kill_sessions: the client sees its connection die (ssh exits 255).
    let mut pty = spawn_pty(target.ssh_cmd(&["-tt"]), 80, 24);
    pty.expect("tgt$ ").unwrap();
    assert!(!target.session_children().is_empty());
    assert!(target.kill_sessions() > 0);
    assert_eq!(pty.wait_exit(T), Some(255), "{}", pty.output());

    // A live session when the fixture is dropped dies with it.
    let mut pty = spawn_pty(target.ssh_cmd(&["-tt"]), 80, 24);
    pty.expect("tgt$ ").unwrap();
    let sessions = target.session_children();
    assert!(!sessions.is_empty());
    drop(target);

    assert!(!pid_alive(listener), "listener {listener} survived Drop");
    for p in sessions {
        assert!(!pid_alive(p), "session process {p} survived Drop");
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still accepts after Drop"
    );
    assert!(pty.wait_exit(T).is_some());
}

#[test]
fn bastion_passes_set_env_to_forced_command() {
    let bastion = Bastion::start_with(
        "echo cfg=$GATEHOUSE_CONFIG orig=$SSH_ORIGINAL_COMMAND",
        &[("GATEHOUSE_CONFIG", "/tmp/gh-selftest.toml")],
    );
    let out = bastion.ssh_cmd(&["web01"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cfg=/tmp/gh-selftest.toml orig=web01"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        bastion.log()
    );
    let config = std::fs::read_to_string(&bastion.config_path).unwrap();
    assert!(config.contains("AllowTcpForwarding no"));
}

#[test]
fn pty_arg0_hangup_and_ansi_stripping() {
    // argv[0] as a login shell would get it; initial window size.
    let mut c = Command::new("sh");
    c.arg0("-gatehouse").args([
        "-c",
        "echo \"argv0=$0\"; stty size; printf '\\033[1;31mre\\033[0md\\033]0;title\\007-ok\\n'",
    ]);
    let mut pty = spawn_pty(c, 132, 43);
    pty.expect("argv0=-gatehouse").unwrap();
    pty.expect("43 132").unwrap();
    pty.expect(regex::Regex::new(r"(re)d-(ok)").unwrap())
        .unwrap();
    assert_eq!(pty.wait_exit(T), Some(0));

    // hangup: the session leader gets SIGHUP.
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("hup");
    let script = format!(
        "trap 'touch {}; exit 7' HUP; echo ready; while :; do sleep 0.05; done",
        flag.display()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script]);
    let mut pty = spawn_pty(c, 80, 24);
    pty.expect("ready").unwrap();
    pty.hangup();
    assert_eq!(pty.wait_exit(T), Some(7));
    assert!(flag.exists());

    // A failed expect shows the last output.
    let mut c = Command::new("sh");
    c.args(["-c", "printf '\\033[32mhello-there\\033[0m\\n'"]);
    let mut pty = spawn_pty(c, 80, 24);
    let err = pty
        .expect_within("never-printed", Duration::from_secs(5))
        .unwrap_err();
    let msg = format!("{err:?}");
    assert!(
        msg.contains("never-printed") && msg.contains("hello-there"),
        "{msg}"
    );
}

#[test]
fn gh_config_and_jsonl_helpers() {
    let gh = Gh::builder()
        .host(
            HostSpec::new("web01", "10.1.2.3", 2222, "deploy")
                .key(std::path::Path::new("/k/deploy"))
                .description("front \"end\"")
                .groups(&["web", "prod"]),
        )
        .access(Access::new(
            &["alice"],
            &["ops"],
            &["web01", "db*", "@prod"],
        ))
        .idle_timeout("30m")
        .known_host("[10.1.2.3]:2222 ssh-ed25519 AAAAtest")
        .build();
    let cfg: toml::Table = toml::from_str(&gh.config_text()).unwrap();
    assert_eq!(cfg["settings"]["idle_timeout"].as_str(), Some("30m"));
    assert_eq!(cfg["settings"]["host_key_policy"].as_str(), Some("strict"));
    assert_eq!(
        cfg["settings"]["log_dir"].as_str(),
        Some(gh.log_dir().to_str().unwrap())
    );
    let host = &cfg["hosts"].as_array().unwrap()[0];
    assert_eq!(host["port"].as_integer(), Some(2222));
    assert_eq!(host["description"].as_str(), Some("front \"end\""));
    let access = cfg["access"].as_array().unwrap();
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["unix_groups"][0].as_str(), Some("ops"));

    // Default access: the current user, every host.
    let gh2 = Gh::builder().build();
    let cfg2: toml::Table = toml::from_str(&gh2.config_text()).unwrap();
    assert_eq!(
        cfg2["access"][0]["users"][0].as_str(),
        Some(current_user().as_str())
    );
    assert_eq!(cfg2["access"][0]["hosts"][0].as_str(), Some("*"));

    // JSONL: missing → empty; incomplete last line ignored; wait_for_record.
    assert!(gh.jsonl().is_empty());
    std::fs::write(
        gh.jsonl_path(),
        "{\"v\":1,\"event\":\"login\"}\n{\"v\":1,\"event\":\"comm",
    )
    .unwrap();
    assert_eq!(gh.jsonl().len(), 1);
    let path = gh.jsonl_path();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(
            path,
            "{\"v\":1,\"event\":\"login\"}\n{\"v\":1,\"event\":\"command\",\"command\":\"ls\"}\n",
        )
        .unwrap();
    });
    let rec = gh.wait_for_record(|r| r["event"] == "command", Duration::from_secs(5));
    assert_eq!(rec["command"], "ls");
    writer.join().unwrap();
    assert_eq!(gh.records("login").len(), 1);
}
