//! Recordings cannot fill the disk (issue 12, point 9): past
//! `max_recording` a session's recording stops with a marker, the audit
//! trail gets one `error` record (`recording_limit`), and the session goes
//! on with its commands still recorded. Real binary, real sshd target.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn recording_stops_at_the_limit_and_the_session_goes_on() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .extra_settings("max_recording = \"16K\"")
        .build();
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line("seq 1 20000 | tail -n 3; echo big-$((1+1))")
        .unwrap();
    p.expect("big-2").unwrap();
    p.send_line("for i in $(seq 1 3000); do echo line-$i; done; echo done-$((2+1))")
        .unwrap();
    p.expect("done-3").unwrap();
    p.send_line("echo after-$((40+2))").unwrap();
    p.expect("after-42").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(p.wait_exit(T), Some(0));

    let errors = gh.records("error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["reason"], "recording_limit");
    let start = gh.records("session_start").pop().unwrap();
    assert_eq!(errors[0]["session"], start["session"]);
    let end = gh.records("session_end").pop().unwrap();
    assert_eq!(end["reason"], "exit", "{end}");
    let commands: Vec<String> = gh
        .records("command")
        .iter()
        .map(|c| c["command"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        commands.iter().any(|c| c == "echo after-$((40+2))"),
        "{commands:?}"
    );

    let cast = start["recording"].as_str().unwrap();
    let text = std::fs::read_to_string(cast).unwrap();
    assert!(text.len() < 16 * 1024 + 1024, "{} bytes", text.len());
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("\"m\"") && last.contains("max_recording"),
        "{last}"
    );
    assert!(!text.contains("after-42"), "recorded past the limit");
}
