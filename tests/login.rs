//! The login shell end to end: the real `gatehouse` binary in a real pty,
//! against real OpenSSH targets on loopback.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

const MENU: &str = "pick a host";
const T: Duration = Duration::from_secs(20);

fn one_target() -> (Target, Gh) {
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .host(
            HostSpec::target("db01", &t)
                .description("the database")
                .groups(&["prod"]),
        )
        .build();
    (t, gh)
}

fn commands(gh: &Gh) -> Vec<String> {
    gh.records("command")
        .iter()
        .map(|r| r["command"].as_str().unwrap().to_string())
        .collect()
}

fn wait_exit(p: &mut Pty) -> i32 {
    p.wait_exit(T).expect("gatehouse did not exit")
}

#[test]
fn menu_connect_type_exit_and_back_to_menu() {
    if skip_without_pty() {
        return;
    }
    let (t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.expect("db01").unwrap();
    p.send("web").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send("echo hello wrld").unwrap();
    p.send([keys::BACKSPACE; 3].concat()).unwrap();
    p.send("orld\r").unwrap();
    p.expect("hello world\n").unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("exit 3").unwrap();
    p.expect("Session on web01 ended (exit status 3).").unwrap();
    p.expect(MENU).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);

    let recs = gh.jsonl();
    let events: Vec<&str> = recs.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "login",
            "session_start",
            "command",
            "command",
            "session_end",
            "logout"
        ]
    );
    assert_eq!(commands(&gh), ["echo hello world", "exit 3"]);
    let start = &recs[1];
    assert_eq!(start["host"], "web01");
    assert_eq!(
        start["target"],
        format!("{}@127.0.0.1:{}", t.user, t.port).as_str()
    );
    assert_eq!(start["host_key"], t.host_key_fingerprint().as_str());
    assert_eq!(start["pid"], p.pid());
    let end = &recs[4];
    assert_eq!(end["session"], start["session"]);
    assert_eq!(end["exit_status"], 3);
    assert_eq!(end["reason"], "exit");
    assert!(end["bytes_in"].as_u64().unwrap() >= "echo hello world\rexit 3\r".len() as u64);
    assert!(end["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(recs[2]["seq"], 1);
    assert_eq!(recs[3]["seq"], 2);
    // One login id across every record of this login.
    assert!(recs.iter().all(|r| r["login"] == recs[0]["login"]));
}

#[test]
fn direct_request_exits_with_the_target_status() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("exit 7").unwrap();
    assert_eq!(wait_exit(&mut p), 7);
    assert!(!p.output().contains(MENU), "a direct request shows no menu");
    let end = gh.records("session_end");
    assert_eq!(end[0]["exit_status"], 7);
    assert_eq!(gh.records("login")[0]["mode"], "direct");
}

#[test]
fn login_shell_argv0_shows_the_menu() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut c = gh.command();
    c.arg0("-gatehouse");
    // A login shell ignores SSH_ORIGINAL_COMMAND: only ForceCommand sets it.
    c.env("SSH_ORIGINAL_COMMAND", "web01");
    let mut p = spawn_pty(c, 80, 24);
    p.expect(MENU).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
}

#[test]
fn force_command_takes_ssh_original_command() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut c = gh.command();
    c.env("SSH_ORIGINAL_COMMAND", "db01");
    let mut p = spawn_pty(c, 80, 24);
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    assert_eq!(gh.records("session_start")[0]["host"], "db01");
}

#[test]
fn dash_c_naming_gatehouse_takes_ssh_original_command() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut c = gh.command();
    c.arg0("-gatehouse")
        .args(["-c", "/usr/bin/gatehouse"])
        .env("SSH_ORIGINAL_COMMAND", "web01");
    let mut p = spawn_pty(c, 80, 24);
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    // Without SSH_ORIGINAL_COMMAND it is the menu.
    let mut c = gh.command();
    c.args(["-c", "/usr/bin/gatehouse"]);
    let mut p = spawn_pty(c, 80, 24);
    p.expect(MENU).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
}

/// Runs `gatehouse -c REQUEST` without a terminal; returns (status, stderr).
fn refuse(gh: &Gh, request: &str) -> (i32, String) {
    let out = gh
        .command()
        .args(["-c", request])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn commands_are_refused_and_never_run() {
    let (_t, gh) = one_target();
    let marker = gh.dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let requests = [
        "bash",
        "sh -c id",
        "scp -t /tmp",
        "scp -f /etc/passwd",
        "/usr/lib/openssh/sftp-server",
        "rsync --server -vlogDtpre.iLsfxC . /tmp",
        "git-upload-pack '/srv/repo.git'",
        touch.as_str(),
    ];
    for r in requests {
        let (code, err) = refuse(&gh, r);
        assert_eq!(code, 1, "{r}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{r}: one line: {err}");
        assert!(err.starts_with("gatehouse: "), "{r}: {err}");
    }
    assert!(!marker.exists(), "a request was executed on the bastion");
    let denied = gh.records("denied");
    assert_eq!(denied.len(), requests.len());
    for (d, r) in denied.iter().zip(requests) {
        assert_eq!(d["request"], r);
        let reason = d["reason"].as_str().unwrap();
        assert!(
            reason == "not_a_host" || reason == "not_permitted",
            "{r}: {reason}"
        );
    }
    assert_eq!(denied[0]["reason"], "not_permitted"); // "bash" looks like a host name
    assert_eq!(denied[2]["reason"], "not_a_host");
}

#[test]
fn forbidden_and_unknown_hosts_look_the_same() {
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .target("secret01", &t)
        .access(Access::new(&[&current_user()], &[], &["web*"]))
        .build();
    let (c1, e1) = refuse(&gh, "secret01");
    let (c2, e2) = refuse(&gh, "nosuch01");
    assert_eq!((c1, c2), (1, 1));
    assert_eq!(e1.replace("secret01", "X"), e2.replace("nosuch01", "X"));
    let denied = gh.records("denied");
    assert_eq!(denied[0]["reason"], "not_permitted");
    assert_eq!(denied[1]["reason"], "not_permitted");
}

#[test]
fn menu_lists_only_permitted_hosts() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .host(HostSpec::target("db01", &t).groups(&["prod"]))
        .target("secret01", &t)
        .access(Access::new(&[&current_user()], &[], &["web*", "@prod"]))
        .build();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.expect("db01").unwrap();
    p.expect("quit").unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    let out = p.output();
    assert!(out.contains("web01"));
    assert!(!out.contains("secret01"), "menu leaked a forbidden host");
}

/// Issue 13: the operator's groups are looked up only when a rule names
/// `unix_groups`; a rule that grants by group alone still works.
#[test]
fn a_rule_by_unix_group_alone_lists_its_hosts() {
    if skip_without_pty() {
        return;
    }
    let group = nix::unistd::Group::from_gid(nix::unistd::getgid())
        .unwrap()
        .expect("the primary group has a name")
        .name;
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .target("secret01", &t)
        .access(Access::new(&[], &[&group], &["web*"]))
        .build();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.expect("web01").unwrap();
    p.expect("quit").unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    assert!(
        !p.output().contains("secret01"),
        "menu leaked a forbidden host"
    );
}

#[test]
fn no_rule_no_access() {
    let t = Target::start();
    let gh = Gh::builder().target("web01", &t).no_access().build();
    let (code, _) = refuse(&gh, "web01");
    assert_eq!(code, 1);
    // The menu, even with a terminal, has nothing to offer.
    let mut p = gh.spawn(&[]);
    p.expect("no hosts you may use").unwrap();
    assert_eq!(wait_exit(&mut p), 1);
    assert_eq!(gh.records("denied")[1]["reason"], "no_hosts");
}

#[test]
fn no_tty_is_refused_not_hung() {
    let (_t, gh) = one_target();
    let (code, err) = refuse(&gh, "web01");
    assert_eq!(code, 1);
    assert!(err.contains("ssh -t"), "{err}");
    // The menu path without a terminal: must not spin or wait.
    let out = gh
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.len() < 1000, "menu drew on a non-tty");
    let denied = gh.records("denied");
    assert_eq!(denied.len(), 2);
    assert!(denied.iter().all(|d| d["reason"] == "no_tty"));
}

#[test]
fn through_a_real_bastion_sshd() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let b = Bastion::start(&gh);
    // ssh -T: no tty.
    let out = b
        .ssh_cmd(&["-T", "web01"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a terminal"));
    // A command is refused.
    let out = b.ssh_cmd(&["bash"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // ssh -t web01: straight there, exit status passed back.
    let mut p = spawn_pty(b.ssh_cmd(&["-tt", "web01"]), 80, 24);
    p.expect("tgt$ ").unwrap();
    p.send_line("echo via-bastion").unwrap();
    p.expect("via-bastion\n").unwrap();
    p.send_line("exit 5").unwrap();
    assert_eq!(wait_exit(&mut p), 5);
    let recs = gh.jsonl();
    let client = recs[0]["client"].as_str().unwrap();
    assert!(
        client.starts_with("127.0.0.1:"),
        "client from SSH_CONNECTION: {client}"
    );
    assert_eq!(gh.records("denied")[0]["reason"], "no_tty");
    assert_eq!(gh.records("denied")[1]["request"], "bash");
    assert_eq!(commands(&gh), ["echo via-bastion", "exit 5"]);
}

#[test]
fn window_resize_reaches_the_target() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("stty size").unwrap();
    p.expect("24 80").unwrap();
    p.expect("tgt$ ").unwrap();
    p.resize(132, 40);
    // Resize events are asynchronous: ask until the target has it.
    stty_size_until(&mut p, "tgt$ ", 40, 132, T);
    p.send_line("exit").unwrap();
    wait_exit(&mut p);
}

#[test]
fn killed_target_connection_returns_to_the_menu() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    // The shell's parent is the target's per-connection sshd: kill it.
    p.send_line("kill -9 $PPID").unwrap();
    p.expect("Connection to web01 lost.").unwrap();
    p.expect(MENU).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    let end = &gh.records("session_end")[0];
    assert_eq!(end["reason"], "disconnect");
    assert_eq!(end["exit_status"], Value::Null);
}

#[test]
fn operator_hangup_ends_the_session_with_a_record() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("echo before-hangup").unwrap();
    p.expect("before-hangup\n").unwrap();
    p.hangup();
    let end = gh.wait_for_record(|r| r["event"] == "session_end", T);
    assert_eq!(end["reason"], "hangup");
    assert_eq!(p.wait_exit(T), Some(255), "exit status after a hang-up");
    gh.wait_for_record(|r| r["event"] == "logout", T);
}

#[test]
fn hangup_at_the_menu_exits_cleanly() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.hangup();
    // Cleanly: the hang-up is the operator leaving, not an error (exit 0,
    // no `error` record), and the login is closed on record.
    assert_eq!(
        p.wait_exit(T),
        Some(0),
        "exit status after a hang-up at the menu"
    );
    gh.wait_for_record(|r| r["event"] == "logout", T);
    assert!(gh.records("error").is_empty(), "{:?}", gh.records("error"));
}

#[test]
fn signals_at_the_menu_keep_the_menu() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    for key in [keys::CTRL_C, keys::CTRL_Z, keys::CTRL_BACKSLASH] {
        p.send(key).unwrap();
        p.pump(Duration::from_millis(200));
        assert!(p.exit_code().is_none(), "gatehouse left on {key:?}");
    }
    // Still a working menu: pick a host.
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    p.expect(MENU).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    // The cursor is shown again on the way out.
    assert!(p.raw_output().windows(6).any(|w| w == b"\x1b[?25h"));
}

/// Subsequences of `name` (its letters in order, some left out), the
/// whole name excepted: what the filter would hold had keys been lost.
fn proper_subsequences(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let all = (1u32 << chars.len()) - 1;
    (1..all)
        .map(|mask| {
            (0..chars.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| chars[i])
                .collect()
        })
        .collect()
}

/// A signal that lands while the menu waits for a key (a bare SIGUSR1,
/// as `gatehouse kill` resends or the operator may send; a resize's
/// SIGWINCH) interrupts that wait with EINTR even under SA_RESTART. It
/// used to end the prompt, and the menu came back empty on a fresh key
/// pty: keys typed just after the signal were lost. Now every key typed
/// through a storm of signals reaches the filter, in order: the inventory
/// holds every name a lost key would leave (each an exact match, listed
/// first), so only the whole name typed connects to `web01`.
#[test]
fn signals_while_typing_at_the_menu_lose_no_keys() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let t = Target::start(); // only for a client key that exists
    let port = closed_port();
    let name = "web01";
    let mut b = Gh::builder();
    for n in proper_subsequences(name)
        .iter()
        .map(String::as_str)
        .chain([name])
    {
        b = b.host(HostSpec::new(n, "127.0.0.1", port, &t.user).key(&t.key_path));
    }
    let gh = b.build();
    let mut p = gh.spawn(&[]);
    let pid = nix::unistd::Pid::from_raw(p.pid());
    let master = p.master_fd().unwrap().try_clone_to_owned().unwrap();
    let connecting = regex::Regex::new(r"Connecting to (\S+)…").unwrap();
    p.expect(MENU).unwrap();
    for round in 0..20 {
        // Odd rounds resize the window, even ones send SIGUSR1 with no
        // administrator's note (so it must change nothing).
        let stop = Arc::new(AtomicBool::new(false));
        let storm = {
            let stop = Arc::clone(&stop);
            let master = master.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut sent = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    if round % 2 == 0 {
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1);
                    } else {
                        let cols = if sent % 2 == 0 { 100 } else { 80 };
                        set_winsize(&master, cols, 24).unwrap();
                    }
                    sent += 1;
                    // Pacing, not synchronisation: leave the menu some
                    // time between signals to block in its key read.
                    std::thread::sleep(Duration::from_micros(300));
                }
                sent
            })
        };
        for key in name.bytes() {
            p.send([key]).unwrap();
            p.pump(Duration::from_millis(3));
        }
        stop.store(true, Ordering::SeqCst);
        let sent = storm.join().unwrap();
        assert!(sent > 0, "round {round}: no signal sent");
        p.send(keys::ENTER).unwrap();
        let picked = p
            // A key lost can leave a filter nothing matches: Enter then
            // does nothing, so do not wait the whole default timeout.
            .expect_within(&connecting, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("round {round}: nothing connected: {e}"));
        assert_eq!(
            picked.groups[1].as_deref(),
            Some(name),
            "round {round}: keys lost or reordered at the menu"
        );
        p.expect(format!("cannot reach {name}")).unwrap();
        p.expect(MENU).unwrap();
    }
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    assert_eq!(gh.records("error").len(), 20);
}

#[test]
fn quit_entry_leaves() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.send("quit").unwrap();
    p.send(keys::ENTER).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    assert!(gh.records("session_start").is_empty());
}

#[test]
fn tilde_dot_returns_to_the_menu() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send("sleep 1000").unwrap();
    p.send("\r").unwrap();
    p.send("~.").unwrap();
    p.expect("Disconnected from web01.").unwrap();
    p.expect(MENU).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    let end = &gh.records("session_end")[0];
    assert_eq!(end["reason"], "disconnect");
}

#[test]
fn idle_timeout_ends_the_session() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    // Scaled: the idle clock starts before the target's prompt is drawn, and
    // a loaded machine must not spend it all on that.
    let gh = Gh::builder()
        .target("web01", &t)
        .idle_timeout(&scaled_setting(2))
        .build();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.expect("idle for too long").unwrap();
    assert_eq!(wait_exit(&mut p), 255);
    assert_eq!(gh.records("session_end")[0]["reason"], "idle_timeout");
}

#[test]
fn unreachable_host_is_one_line_and_back_to_the_menu() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .host(HostSpec::new("down01", "127.0.0.1", closed_port(), &t.user).key(&t.key_path))
        .build();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.send("down01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("cannot reach down01: connection refused").unwrap();
    p.expect(MENU).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    // The operator is not told where the host lives; the admin is.
    assert!(!p.output().contains("127.0.0.1"), "{}", p.output());
    let err = &gh.records("error")[0];
    assert_eq!(err["reason"], "connect_failed");
    assert_eq!(err["host"], "down01");
    assert!(
        err["detail"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn changed_host_key_is_refused() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let other = Target::start();
    // known_hosts holds another server's key under this target's name.
    let forged = other
        .known_hosts_line()
        .replace(&format!("]:{} ", other.port), &format!("]:{} ", t.port));
    assert_ne!(forged, other.known_hosts_line());
    for policy in ["strict", "accept-new"] {
        let gh = Gh::builder()
            .host(HostSpec::target("web01", &t))
            .known_host(&forged)
            .host_key_policy(policy)
            .build();
        let mut p = gh.spawn(&["-c", "web01"]);
        p.expect("host key verification failed").unwrap();
        assert_eq!(wait_exit(&mut p), 255);
        let err = &gh.records("error")[0];
        assert_eq!(err["reason"], "host_key_mismatch", "{policy}");
        assert_eq!(err["host_key"], t.host_key_fingerprint().as_str());
        assert!(gh.records("session_start").is_empty());
    }
}

#[test]
fn unknown_host_key_strict_refuses_accept_new_remembers() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder().host(HostSpec::target("web01", &t)).build();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("host key verification failed").unwrap();
    wait_exit(&mut p);
    assert_eq!(gh.records("error")[0]["reason"], "host_key_unknown");

    let gh = Gh::builder()
        .host(HostSpec::target("web01", &t))
        .host_key_policy("accept-new")
        .build();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    let kh = std::fs::read_to_string(gh.known_hosts_path()).unwrap();
    assert_eq!(kh.trim(), t.known_hosts_line().trim());
    // And now strict accepts it.
    let cfg = gh.config_text().replace("accept-new", "strict");
    gh.write_config(&cfg);
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(wait_exit(&mut p), 0);
}

#[test]
fn unwritable_log_dir_refuses_to_start() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let gh = Gh::builder().target("web01", &t).extra_toml("").build();
    // log_dir below a regular file can never be created, even by root.
    let bad = format!("{}/log", blocker.path().display());
    let cfg = gh.config_text().replacen(
        &format!("log_dir = \"{}\"", gh.log_dir().display()),
        &format!("log_dir = \"{bad}\""),
        1,
    );
    assert!(cfg.contains(&bad));
    gh.write_config(&cfg);
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("service unavailable").unwrap();
    assert_eq!(wait_exit(&mut p), 1);
    assert!(
        !p.output().contains("tgt$"),
        "a session started without an audit log"
    );
    assert!(
        !t.log().contains("Accepted publickey"),
        "gatehouse logged in to the target without an audit log"
    );
}

#[test]
fn bad_config_names_file_line_and_column() {
    let (_t, gh) = one_target();
    let cfg = gh
        .config_text()
        .replacen("idle_timeout = \"0\"", "idle_timeout = \"soon\"", 1);
    gh.write_config(&cfg);
    let line = cfg
        .lines()
        .position(|l| l.starts_with("idle_timeout"))
        .unwrap()
        + 1;
    let want = format!("{}:{line}:16: ", gh.config_path().display());

    let out = std::process::Command::new(gatehouse_bin())
        .args(["check", "--config"])
        .arg(gh.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&want), "{err}");
    assert!(err.contains("not a duration"), "{err}");

    // At login: a calm line for the operator (plus the detail, since an
    // unprivileged run's user is its own admin), never a panic.
    let (code, err) = refuse(&gh, "web01");
    assert_eq!(code, 1);
    assert!(err.contains("service unavailable"), "{err}");
    assert!(err.contains(&want), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // And a good config checks clean.
    gh.write_config(&cfg.replace("\"soon\"", "\"90s\""));
    let out = std::process::Command::new(gatehouse_bin())
        .args(["check", "--config"])
        .arg(gh.config_path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn edited_lines_are_recorded_as_sent() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    // Ctrl-U then retype.
    p.send("rm -rf /nothing").unwrap();
    p.expect("/nothing").unwrap();
    p.send(keys::CTRL_U).unwrap();
    p.send("echo one\r").unwrap();
    p.expect("one\n").unwrap();
    p.expect("tgt$ ").unwrap();
    // Ctrl-W drops the last word.
    p.send("echo two wrong").unwrap();
    p.expect("wrong").unwrap();
    p.send(keys::CTRL_W).unwrap();
    p.send("\r").unwrap();
    p.expect("\ntwo\n").unwrap();
    p.expect("tgt$ ").unwrap();
    // Left arrow insertion mid-line.
    p.send("echo thee").unwrap();
    p.expect("thee").unwrap();
    p.send([keys::LEFT; 2].concat()).unwrap();
    p.send("r\r").unwrap();
    p.expect("three\n").unwrap();
    p.expect("tgt$ ").unwrap();
    // Ctrl-C discards a half-typed line.
    p.send("echo never").unwrap();
    p.expect("never").unwrap();
    p.send(keys::CTRL_C).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    wait_exit(&mut p);
    assert_eq!(
        commands(&gh),
        ["echo one", "echo two", "echo three", "exit"]
    );
}

/// The audit contract (docs/audit-format.md): these names are what every
/// pipeline downstream depends on. Renaming one must fail here.
#[test]
fn audit_field_names_are_pinned() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let (code, _) = refuse(&gh, "bash");
    assert_eq!(code, 1);
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("true").unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    wait_exit(&mut p);
    let common = ["v", "ts", "event", "user", "login", "client"];
    let by_event: &[(&str, &[&str])] = &[
        ("login", &[]),
        ("logout", &[]),
        ("denied", &["request", "reason"]),
        (
            "session_start",
            &[
                "session",
                "host",
                "target",
                "host_key",
                "pid",
                "recording",
                "auth",
            ],
        ),
        ("command", &["session", "host", "seq", "command"]),
        (
            "session_end",
            &[
                "session",
                "host",
                "exit_status",
                "reason",
                "duration_ms",
                "bytes_in",
                "bytes_out",
            ],
        ),
    ];
    for (event, fields) in by_event {
        let recs = gh.records(event);
        assert!(!recs.is_empty(), "no {event} record");
        for r in recs {
            for f in common.iter().chain(fields.iter()) {
                assert!(r.get(*f).is_some(), "{event} lacks {f}: {r}");
            }
            assert_eq!(r["v"], 1);
            assert_eq!(r["user"], gh.user.as_str());
        }
    }
    // The host logs in with the bastion's key (issue 18: `auth`).
    assert_eq!(gh.records("session_start")[0]["auth"], "key");
    let ts = gh.jsonl()[0]["ts"].as_str().unwrap().to_string();
    assert!(
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            .unwrap()
            .is_match(&ts),
        "{ts}"
    );
}

#[test]
fn password_file_authenticates_and_never_leaks() {
    let secret = "Pw-7f3a9-never-in-logs";
    let Some(user) = TempUser::create("gh_pw", secret, false) else {
        return;
    };
    let t = Target::start_with_extra(
        "tgt$ ",
        &format!(
            "Match User {}\n  PasswordAuthentication yes\n  ForceCommand echo pw-login-$((6*7))\n",
            user.name
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{secret}\n")).unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let gh = Gh::builder()
        .host(HostSpec::new("pw01", "127.0.0.1", t.port, &user.name).password_file(&pw))
        .host(HostSpec::new("pw02", "127.0.0.1", t.port, &user.name).password_file(&wrong))
        .known_host(&t.known_hosts_line())
        .build();
    let mut p = gh.spawn(&["-c", "pw01"]);
    p.expect("pw-login-42").unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    assert_eq!(gh.records("session_start")[0]["auth"], "password");
    let mut p = gh.spawn(&["-c", "pw02"]);
    p.expect("refused the login").unwrap();
    assert_eq!(wait_exit(&mut p), 255);
    assert_eq!(gh.records("error")[0]["reason"], "auth_failed");
    let everything = std::fs::read_to_string(gh.jsonl_path()).unwrap();
    assert!(!everything.contains(secret));
    assert!(!p.output().contains("not-the-password"));
}

#[test]
fn sigterm_at_the_menu_and_in_a_session_ends_cleanly() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.signal(nix::sys::signal::Signal::SIGTERM);
    if p.wait_exit(T).is_none() {
        panic!("menu: no exit; output {:?}", p.output());
    }
    gh.wait_for_record(|r| r["event"] == "logout", T);

    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.signal(nix::sys::signal::Signal::SIGTERM);
    if p.wait_exit(T).is_none() {
        panic!("session: no exit; output {:?}", p.output());
    }
    let end = gh.wait_for_record(|r| r["event"] == "session_end", T);
    assert_eq!(end["reason"], "hangup");
    assert_eq!(gh.records("logout").len(), 2);
}

#[test]
fn frozen_target_is_noticed_by_keepalives() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .extra_settings("keepalive_interval = \"1s\"")
        .build();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    // Freeze the target's per-connection sshd: TCP stays up (the kernel
    // still acknowledges), but nothing answers any more.
    p.send_line("kill -STOP $PPID").unwrap();
    p.expect("Connection to web01 lost.").unwrap();
    assert_eq!(wait_exit(&mut p), 255);
    let end = &gh.records("session_end")[0];
    assert_eq!(end["reason"], "disconnect");
    assert!(
        end["detail"].as_str().unwrap().contains("answered nothing"),
        "{end}"
    );
}

#[test]
fn idle_timeout_at_the_menu_logs_out() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder().target("web01", &t).idle_timeout("2s").build();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    p.expect("idle for too long at the menu").unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    let logout = &gh.records("logout")[0];
    assert_eq!(logout["reason"], "idle_timeout");
    // The cursor dialoguer hid is shown again.
    assert!(p.raw_output().windows(6).any(|w| w == b"\x1b[?25h"));
}

#[test]
fn ctrl_d_at_the_menu_leaves() {
    if skip_without_pty() {
        return;
    }
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    // Typing still filters (Ctrl-D is read as Esc by the menu itself).
    p.send("db").unwrap();
    p.expect_screen("db01", T).unwrap();
    p.send(keys::CTRL_D).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    assert!(gh.records("session_start").is_empty());
    gh.wait_for_record(|r| r["event"] == "logout", T);
}

#[test]
fn after_the_menu_sessions_read_the_real_terminal() {
    if skip_without_pty() {
        return;
    }
    // Menu → session → menu → session: the menu's key mode is undone each
    // time, so typed keys and window sizes reach the target.
    let (_t, gh) = one_target();
    let mut p = gh.spawn(&[]);
    for round in 0..2u16 {
        p.expect(MENU).unwrap();
        p.send(keys::ENTER).unwrap();
        p.expect("tgt$ ").unwrap();
        p.resize(90 + round, 30);
        stty_size_until(&mut p, "tgt$ ", 30, 90 + round, T);
        p.send_line("exit").unwrap();
    }
    p.expect(MENU).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
}

#[test]
fn known_rsa_key_is_used_when_the_target_prefers_ed25519() {
    if skip_without_pty() {
        return;
    }
    // The target offers ed25519 (its first key) and RSA; the admin only
    // recorded the RSA one. OpenSSH would then ask for RSA; so must we,
    // rather than calling the ed25519 key "changed".
    let keys = tempfile::tempdir().unwrap();
    let rsa = keys.path().join("rsa_host_key");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let t = Target::start_with_extra("tgt$ ", &format!("HostKey {}\n", rsa.display()));
    let pubkey = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let mut f = pubkey.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}",
        t.port,
        f.next().unwrap(),
        f.next().unwrap()
    );
    let gh = Gh::builder()
        .host(HostSpec::target("web01", &t))
        .known_host(&line)
        .build();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    let fp = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(rsa.with_extension("pub"))
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(gh.records("session_start")[0]["host_key"], fp.as_str());
}

/// Issue 17: on 10,000 hosts, typing a whole name puts that host under
/// Enter (not a longer name that merely starts with it: `host999` once
/// opened `host9998`), a line says how many hosts match, and text that
/// matches nothing says so instead of showing a blank list.
#[test]
fn menu_of_10000_hosts_puts_the_typed_name_under_enter() {
    let t = Target::start(); // only for a client key that exists
    let port = closed_port();
    let mut b = Gh::builder();
    for i in 1..=10_000 {
        b = b.host(
            HostSpec::new(&format!("host{i}"), "127.0.0.1", port, &t.user)
                .key(&t.key_path)
                .description(&format!("rack {}", i % 40)),
        );
    }
    let gh = b.build();
    let mut p = gh.spawn(&[]);
    p.expect(MENU).unwrap();
    let count = |n: &str| regex::Regex::new(&format!(r"(?m)^\s*{n} of 10000 hosts\s*$")).unwrap();
    p.expect_screen(count("10000"), T).unwrap();

    p.send("zzz").unwrap();
    p.expect_screen(
        regex::Regex::new(r"(?m)^\s*no host matches\s*$").unwrap(),
        T,
    )
    .unwrap();
    p.send([keys::BACKSPACE; 3].concat()).unwrap();
    p.expect_screen(count("10000"), T).unwrap();

    // Exact name first, although 10 longer names start with it.
    p.send("host999").unwrap();
    let screen = p
        .expect_screen(regex::Regex::new(r"(?m)^❯ host999 ").unwrap(), T)
        .unwrap();
    assert!(screen.contains("  host9990 "), "prefixes follow:\n{screen}");
    p.send(keys::ENTER).unwrap();
    let picked = p
        .expect(regex::Regex::new(r"Connecting to (\S+)…").unwrap())
        .unwrap();
    assert_eq!(picked.groups[1].as_deref(), Some("host999"));
    p.expect("cannot reach host999").unwrap();
    p.expect(MENU).unwrap();

    // The shortest name, among 1,111 others starting with it.
    p.send("host1").unwrap();
    p.send(keys::ENTER).unwrap();
    let picked = p
        .expect(regex::Regex::new(r"Connecting to (\S+)…").unwrap())
        .unwrap();
    assert_eq!(picked.groups[1].as_deref(), Some("host1"));
    p.expect(MENU).unwrap();

    // One match, counted.
    p.send("host10000").unwrap();
    p.expect_screen(count("1"), T).unwrap();
    p.send(keys::ESC).unwrap();
    assert_eq!(wait_exit(&mut p), 0);
    let hosts: Vec<String> = gh
        .records("error")
        .iter()
        .map(|r| r["host"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(hosts, ["host999", "host1"]);
}
