//! "Gatehouse never executes anything", as a test (issue 12, point 5): a
//! PATH whose first directory holds planted programs under every name a
//! library might run (`tput` above all: crossterm ran `tput cols` / `tput
//! lines` when the window size read 0×0), each of which would leave a
//! marker. Gatehouse then goes through every stage — the menu, a session
//! in a 0×0 window, resizes, commands, the way back to the menu, hang-ups
//! at the menu, while connecting and in a session, the admin tools — and
//! the marker must not exist.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);
const MENU: &str = "pick a host";

const PLANTED: &[&str] = &[
    "tput",
    "stty",
    "tset",
    "resize",
    "infocmp",
    "clear",
    "reset",
    "sh",
    "bash",
    "dash",
    "zsh",
    "ssh",
    "ssh-askpass",
    "sftp",
    "scp",
    "less",
    "more",
    "pager",
    "sensible-pager",
    "vi",
    "vim",
    "nano",
    "editor",
    "sensible-editor",
    "xdg-open",
    "sensible-browser",
    "logger",
    "sendmail",
    "cat",
    "env",
    "ls",
    "id",
    "whoami",
    "hostname",
    "uname",
    "getent",
    "groups",
    "who",
    "w",
    "last",
    "ps",
    "kill",
    "sudo",
    "su",
    "login",
    "sshd",
    "asciinema",
    "jq",
    "gatehouse",
];

fn plant(dir: &Path, marker: &Path) {
    for name in PLANTED {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho \"{name} $*\" >> '{}'\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn planted_programs_are_never_run_at_any_stage() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    // A host that accepts TCP and never answers: the "connecting" stage.
    let tarpit = TcpListener::bind("127.0.0.1:0").unwrap();
    let tarpit_port = tarpit.local_addr().unwrap().port();
    let gh = Gh::builder()
        .target("web01", &t)
        .host(HostSpec::new("slow01", "127.0.0.1", tarpit_port, "nobody").key(&t.key_path))
        .extra_settings("connect_timeout = \"30s\"")
        .build();
    let planted = gh.dir.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    let marker = gh.dir.path().join("EXECUTED");
    plant(&planted, &marker);
    let path = format!(
        "{}:{}",
        planted.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let spawn = |args: &[&str], cols: u16, rows: u16| {
        let mut c = gh.command();
        c.env("PATH", &path).args(args);
        spawn_pty(c, cols, rows)
    };
    let executed = || std::fs::read_to_string(&marker).unwrap_or_default();

    // The menu and a session, in a window that reports 0×0.
    let mut p = spawn(&[], 0, 0);
    p.expect(MENU).unwrap();
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("echo in-session").unwrap();
    p.expect("in-session").unwrap();
    p.resize(0, 0);
    p.resize(100, 30);
    p.send_line("stty size").unwrap();
    p.expect("30 100").unwrap();
    p.send_line("exit").unwrap();
    p.expect(MENU).unwrap();
    assert_eq!(executed(), "", "ran something in a session");
    p.resize(0, 0);
    p.hangup();
    p.wait_exit(T);

    // A direct request, 0×0.
    let mut p = spawn(&["-c", "web01"], 0, 0);
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    p.wait_exit(T);

    // Hang-up while connecting and in a session.
    let mut p = spawn(&[], 80, 24);
    p.expect(MENU).unwrap();
    p.send("slow01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("Connecting to slow01").unwrap();
    p.hangup();
    p.wait_exit(T);
    let mut p = spawn(&["-c", "web01"], 0, 0);
    p.expect("tgt$ ").unwrap();
    p.hangup();
    p.wait_exit(T);

    // Refusals and the admin tools.
    for args in [
        &["-c", "bash -i"][..],
        &["-c", "scp -t /tmp"],
        &["check"],
        &["audit"],
        &["audit", "--check"],
        &["audit", "--verify"],
        &["sessions"],
    ] {
        let o = gh.command().env("PATH", &path).args(args).output().unwrap();
        assert!(o.status.code().is_some(), "{args:?} died");
    }
    drop(tarpit);
    assert_eq!(executed(), "", "Gatehouse ran planted programs");
}
