//! The client of a login without `SSH_CONNECTION` (issue 12, point 10):
//! behind a web terminal (shellinaboxd's LOGIN service) the operator's
//! address is only in the utmp entry of their terminal, and that is what
//! the audit trail records, not `local`. Real binary in a real pty; the
//! utmp file is a test copy (`GATEHOUSE_UTMP`, honoured only unprivileged).

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

/// One glibc `struct utmp` (384 bytes): USER_PROCESS on `line` from `host`.
fn utmp_record(line: &str, host: &str) -> Vec<u8> {
    let mut r = vec![0u8; 384];
    r[..2].copy_from_slice(&7i16.to_ne_bytes());
    r[8..8 + line.len()].copy_from_slice(line.as_bytes());
    r[44..44 + 5].copy_from_slice(b"alice");
    r[76..76 + host.len()].copy_from_slice(host.as_bytes());
    r
}

#[test]
fn a_web_terminal_login_records_the_utmp_peer() {
    if skip_without_pty() {
        return;
    }
    let gh = Gh::builder().build();
    let utmp = gh.dir.path().join("utmp");
    let tty_file = gh.dir.path().join("tty");
    // The shell learns its terminal, waits until utmp names it, then
    // becomes Gatehouse (as a login service would start it).
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(format!(
        "tty > {}; read go; exec {} -c 'bash -i'",
        sh_quote(&tty_file.display().to_string()),
        sh_quote(&gatehouse_bin().display().to_string())
    ));
    for (k, v) in gh.command().get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.env("GATEHOUSE_UTMP", &utmp);
    let mut p = spawn_pty(c, 80, 24);
    let deadline = std::time::Instant::now() + T;
    let tty = loop {
        let t = std::fs::read_to_string(&tty_file).unwrap_or_default();
        if t.ends_with('\n') {
            break t.trim().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no tty name");
        std::thread::sleep(Duration::from_millis(20));
    };
    let line = tty.strip_prefix("/dev/").expect("a /dev terminal");
    let mut data = utmp_record("pts/999", "192.0.2.1");
    data.extend(utmp_record(line, "203.0.113.77"));
    std::fs::write(&utmp, data).unwrap();
    p.send_line("go").unwrap();
    p.expect("this is a jump host").unwrap();
    p.wait_exit(T);
    let denied = gh.wait_for_record(|r| r["event"] == "denied", T);
    assert_eq!(denied["client"], "203.0.113.77", "{denied}");
    assert_eq!(gh.records("login")[0]["client"], "203.0.113.77");
}
