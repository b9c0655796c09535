//! known_hosts marker lines (issue 12, point 6): a key listed as
//! `@revoked` is refused under every policy with its own reason, and never
//! learnt by `accept-new`; `gatehouse check` warns about `@cert-authority`
//! lines, which Gatehouse cannot honour. Real binary, real sshd target.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

/// `@revoked` plus the fields of the target's own known_hosts line.
fn revoked_line(t: &Target) -> String {
    format!("@revoked {}", t.known_hosts_line().trim())
}

#[test]
fn a_revoked_key_is_refused_and_never_learnt() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    for (policy, listed_too) in [
        ("accept-new", false),
        ("strict", true),
        ("accept-new", true),
    ] {
        let mut b = Gh::builder()
            .host(HostSpec::target("web01", &t))
            .host_key_policy(policy)
            .known_host(&revoked_line(&t));
        if listed_too {
            b = b.known_host(&t.known_hosts_line());
        }
        let gh = b.build();
        let before = std::fs::read_to_string(gh.known_hosts_path()).unwrap();
        let mut p = gh.spawn(&["-c", "web01"]);
        p.expect("host key verification failed").unwrap();
        assert_eq!(p.wait_exit(T), Some(255), "{policy}");
        let err = &gh.records("error")[0];
        assert_eq!(err["reason"], "host_key_revoked", "{policy} {listed_too}");
        assert_eq!(err["host_key"], t.host_key_fingerprint().as_str());
        assert!(gh.records("session_start").is_empty());
        assert_eq!(
            std::fs::read_to_string(gh.known_hosts_path()).unwrap(),
            before,
            "{policy}: the revoked key was appended"
        );
    }
}

#[test]
fn check_warns_about_cert_authority_lines() {
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .known_host("@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
        .build();
    let o = gh.command().arg("check").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let want = format!(
        "{}:2: warning: @cert-authority lines are not supported",
        gh.known_hosts_path().display()
    );
    assert!(err.contains(&want), "{err}");
}
