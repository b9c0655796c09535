//! `gatehouse check --sshd` (issue 12, point 8): sshd itself says what each
//! account Gatehouse serves may do. An account outside the snippet's
//! `Match Group` could forward ports with `ssh -N -L` (no shell, so
//! Gatehouse never runs); the check names it, and passes once sshd confines
//! the account. Real `/usr/sbin/sshd -T` with a config in a temp dir.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn sshd_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let key = dir.join("host_ed25519");
    if !key.exists() {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
    }
    let p = dir.join("sshd_config");
    std::fs::write(
        &p,
        format!(
            "HostKey {}\nSubsystem sftp internal-sftp\n{body}\n",
            key.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn check_sshd_names_an_account_that_could_forward() {
    if !Path::new("/usr/sbin/sshd").exists() {
        skip("check_sshd: /usr/sbin/sshd is not installed");
        return;
    }
    // One host logs in with the operator's own agent (issue 18).
    let gh = Gh::builder()
        .extra_toml(
            "[[hosts]]\nname = \"agent01\"\naddress = \"127.0.0.1\"\nuser = \"u\"\nagent = true\n",
        )
        .build();
    let dir = tempfile::tempdir().unwrap();
    let me = current_user();
    // The shipped snippet, but for a group the account is not in.
    let snippet = include_str!("../packaging/sshd_config.d/gatehouse.conf")
        .replace(
            "Match Group gatehouse-users",
            "Match Group no-such-group-gh",
        )
        .replace("/usr/bin/gatehouse", &gatehouse_bin().display().to_string());
    let open = sshd_config(dir.path(), &snippet);
    let o = gh
        .command()
        .args(["check", "--sshd-config"])
        .arg(&open)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    if out.contains("failed:") && !nix::unistd::getuid().is_root() {
        skip(&format!(
            "check_sshd: sshd -T does not run unprivileged here: {out}"
        ));
        return;
    }
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("sshd: {me}: can use TCP forwarding")),
        "{out}"
    );
    assert!(out.contains("internal-sftp"), "{out}");
    // Not confined: its own shell could use a forwarded agent.
    assert!(
        out.contains(&format!("sshd: {me}: can use agent forwarding")),
        "{out}"
    );

    // The same snippet matching the account: confined.
    let snippet = snippet.replace("Match Group no-such-group-gh", &format!("Match User {me}"));
    let shut = sshd_config(dir.path(), &snippet);
    let o = gh
        .command()
        .args(["check", "--sshd-config"])
        .arg(&shut)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(out.contains(&format!("sshd: {me}: OK")), "{out}");
    assert!(!out.contains(&format!("sshd: {me}: can use")), "{out}");
    // Confined: the snippet's agent forwarding is reported, with the host
    // that uses it, as a note.
    assert!(
        out.contains(&format!(
            "sshd: {me}: note: agent forwarding (ssh -A) is allowed; \
             Gatehouse uses it only for agent = true hosts: agent01"
        )),
        "{out}"
    );
    // Other accounts whose shell is Gatehouse (left by another test run on
    // this machine) may still be reported; only then is the status 1.
    if !out.contains(": can use ") {
        assert_eq!(o.status.code(), Some(0), "{out}");
    }
}
