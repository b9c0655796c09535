//! The operator's own key to the target (issue 18), end to end: a real
//! `ssh-agent` on the operator's side, the real OpenSSH client with `-A`
//! through a bastion sshd configured with the shipped snippet, Gatehouse as
//! its forced command, and a target sshd that accepts only the operator's
//! key. Then what goes wrong: no agent forwarded, an agent without the right
//! key, the bastion-held key as a declared fallback, and agent sockets that
//! are not the operator's own (a symlink; root only: a socket owned by
//! someone else, with a loud skip otherwise).
//!
//! The setuid path (the effective uid switched to the operator for the
//! connect) is exercised by tests/privsep.rs as root.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// An `ssh-agent -D` of our own on a socket in a temp dir; killed on drop.
struct Agent {
    dir: tempfile::TempDir,
    sock: PathBuf,
    child: Child,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("gh-agent-")
            .tempdir()
            .unwrap();
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent (openssh-client)");
        let deadline = Instant::now() + scaled(Duration::from_secs(10));
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent made no socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        Agent { dir, sock, child }
    }

    /// A new ed25519 key in the agent's dir, not yet added.
    fn new_key(&self, name: &str) -> PathBuf {
        let k = self.dir.path().join(name);
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&k)
            .status()
            .unwrap();
        assert!(st.success());
        k
    }

    fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-add: {out:?}");
    }

    /// Sockets the agent holds open (its listener plus one per client), or
    /// `None` when its fds cannot be read (ssh-agent makes itself
    /// non-dumpable: only root reads them).
    fn open_sockets(&self) -> Option<usize> {
        let dir = fs::read_dir(format!("/proc/{}/fd", self.child.id())).ok()?;
        Some(
            dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count(),
        )
    }

    /// Fingerprints as `ssh-add -l` lists them, in the agent's order.
    fn listed(&self) -> Vec<String> {
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &self.sock)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// The target now accepts exactly these public keys.
fn authorize_only(t: &Target, keys: &[&Path]) {
    let text: String = keys
        .iter()
        .map(|k| fs::read_to_string(k.with_extension("pub")).unwrap())
        .collect();
    fs::write(t.dir.path().join("authorized_keys"), text).unwrap();
}

/// `web01` → `t` with `agent = true` (plus `more` TOML lines), no key.
fn agent_host(t: &Target, more: &str) -> Gh {
    Gh::builder()
        .known_host(&t.known_hosts_line())
        .extra_toml(&format!(
            "[[hosts]]\nname = \"web01\"\naddress = \"127.0.0.1\"\nport = {}\nuser = {:?}\n\
             agent = true\n{more}",
            t.port, t.user
        ))
        .build()
}

/// A bastion sshd running Gatehouse with `gh`'s config for the current
/// user through the shipped snippet (which allows agent forwarding there).
fn bastion(gh: &Gh) -> Bastion {
    let snippet = include_str!("../packaging/sshd_config.d/gatehouse.conf")
        .replace(
            "Match Group gatehouse-users",
            &format!("Match User {}", current_user()),
        )
        .replace(
            "ForceCommand /usr/bin/gatehouse",
            &format!("ForceCommand {}", gatehouse_bin().display()),
        );
    assert!(
        snippet.contains("AllowAgentForwarding yes"),
        "the shipped snippet must allow agent forwarding for Gatehouse accounts"
    );
    Bastion::start_raw(&format!(
        "SetEnv \"GATEHOUSE_CONFIG={}\"\n{snippet}\n",
        gh.config_path().display()
    ))
}

/// `ssh [-A] -tt bastion web01` with the operator's agent (or none).
fn operator_ssh(b: &Bastion, agent: Option<&Agent>, forward: bool) -> Pty {
    let mut c = b.ssh_cmd(&[if forward { "-A" } else { "-a" }, "-tt", "web01"]);
    match agent {
        Some(a) => c.env("SSH_AUTH_SOCK", &a.sock),
        None => c.env_remove("SSH_AUTH_SOCK"),
    };
    spawn_pty(c, 80, 24)
}

fn error_record(gh: &Gh) -> Value {
    gh.wait_for_record(|r| r["event"] == "error", T)
}

#[test]
fn the_operators_agent_key_logs_in_and_the_record_names_it() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let agent = Agent::start();
    let wrong = agent.new_key("wrong");
    let mine = agent.new_key("mine");
    // The wrong key first: libssh2's userauth_agent alone would stop there.
    agent.add(&wrong);
    agent.add(&mine);
    assert_eq!(agent.listed(), [fingerprint(&wrong), fingerprint(&mine)]);
    authorize_only(&t, &[&mine]);
    let gh = agent_host(&t, "");
    let b = bastion(&gh);

    let mut p = operator_ssh(&b, Some(&agent), true);
    p.expect("tgt$ ").unwrap();
    // Gatehouse closed its agent connection once logged in: the agent is
    // left with its listener alone (the forwarded connection's close
    // travels back through sshd and ssh, so wait for it, bounded).
    match agent.open_sockets() {
        Some(_) => {
            let deadline = Instant::now() + scaled(T);
            while agent.open_sockets() != Some(1) {
                assert!(
                    Instant::now() < deadline,
                    "the agent still has {:?} sockets open during the session",
                    agent.open_sockets()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        None => skip("agent: cannot read ssh-agent's fds (not root): agent close not checked"),
    }
    p.send_line("echo via-$((40+2))").unwrap();
    p.expect("via-42").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());

    let start = gh.wait_for_record(|r| r["event"] == "session_start", T);
    assert_eq!(
        start["auth"],
        format!("agent {}", fingerprint(&mine)),
        "{start}"
    );
    assert!(gh.records("error").is_empty(), "{:?}", gh.records("error"));
    // The target was offered the wrong key first, then accepted the right one.
    let log = t.log();
    let wrong_at = log.find(&fingerprint(&wrong));
    let accepted_at = log.find(&format!("Accepted publickey for {}", t.user));
    assert!(
        wrong_at.is_some() && accepted_at.is_some() && wrong_at < accepted_at,
        "{log}"
    );
    assert!(log.contains(&fingerprint(&mine)), "{log}");
}

#[test]
fn without_a_forwarded_agent_the_operator_is_told_to_use_ssh_a() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let agent = Agent::start();
    let mine = agent.new_key("mine");
    agent.add(&mine);
    authorize_only(&t, &[&mine]);
    let gh = agent_host(&t, "");
    let b = bastion(&gh);

    // An agent on the operator's side, but not forwarded (`ssh -a`).
    let mut p = operator_ssh(&b, Some(&agent), false);
    p.expect("web01 needs your own key: connect with ssh -A")
        .unwrap();
    assert_ne!(p.wait_exit(T), Some(0));
    let e = error_record(&gh);
    assert_eq!(e["reason"], "auth_failed", "{e}");
    assert_eq!(e["host"], "web01", "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("SSH_AUTH_SOCK is not set"),
        "{e}"
    );
    assert!(gh.records("session_start").is_empty());
    assert!(!t.log().contains("Accepted publickey"), "{}", t.log());
}

#[test]
fn an_agent_without_the_accepted_key_is_refused() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let agent = Agent::start();
    let wrong = agent.new_key("wrong");
    let mine = agent.new_key("mine");
    agent.add(&wrong);
    authorize_only(&t, &[&mine]);
    let gh = agent_host(&t, "");
    let b = bastion(&gh);

    let mut p = operator_ssh(&b, Some(&agent), true);
    p.expect("web01 accepted none of the keys in your agent")
        .unwrap();
    assert_ne!(p.wait_exit(T), Some(0));
    let e = error_record(&gh);
    assert_eq!(e["reason"], "auth_failed", "{e}");
    let detail = e["detail"].as_str().unwrap();
    assert!(detail.contains("no agent key accepted"), "{e}");
    assert!(detail.contains(&fingerprint(&wrong)), "{e}");
    assert!(gh.records("session_start").is_empty());
}

#[test]
fn agent_fallback_uses_the_bastion_key_and_the_record_says_so() {
    if skip_without_pty() {
        return;
    }
    let t = Target::start();
    let agent = Agent::start();
    let wrong = agent.new_key("wrong");
    agent.add(&wrong);
    // The target accepts the bastion-held key only.
    authorize_only(&t, &[&t.key_path]);
    let key = format!("key = {:?}\n", t.key_path.display().to_string());

    // Without `agent_fallback` the config refuses the unused key.
    let gh = agent_host(&t, &key);
    let o = gh.command().arg("check").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("agent_fallback = true"), "{out}");

    let gh = agent_host(&t, &format!("{key}agent_fallback = true\n"));
    let b = bastion(&gh);
    let mut p = operator_ssh(&b, Some(&agent), true);
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
    let start = gh.wait_for_record(|r| r["event"] == "session_start", T);
    assert_eq!(start["auth"], "key", "{start}");
}

/// Gatehouse started directly (as a login shell would be), with
/// `SSH_AUTH_SOCK` naming `sock`: the connect must be refused with the
/// operator's line and an `auth_failed` record whose detail has `why`.
fn refused_socket(sock: &Path, why: &str) {
    let t = Target::start();
    let gh = agent_host(&t, "");
    let mut c = gh.command();
    c.args(["-c", "web01"]).env("SSH_AUTH_SOCK", sock);
    let mut p = spawn_pty(c, 80, 24);
    p.expect("web01 needs your own key, but your forwarded agent could not be used")
        .unwrap();
    assert_ne!(p.wait_exit(T), Some(0));
    let e = error_record(&gh);
    assert_eq!(e["reason"], "auth_failed", "{e}");
    assert!(e["detail"].as_str().unwrap().contains(why), "{e}");
    assert!(gh.records("session_start").is_empty());
}

#[test]
fn a_symlink_to_an_agent_is_not_followed() {
    if skip_without_pty() {
        return;
    }
    let agent = Agent::start();
    let mine = agent.new_key("mine");
    agent.add(&mine);
    let link = agent.dir.path().join("link");
    std::os::unix::fs::symlink(&agent.sock, &link).unwrap();
    refused_socket(&link, "symbolic link");
}

/// A socket someone else owns (planted where the operator's agent should
/// be) is refused even when the kernel would let the operator connect: as
/// root, Gatehouse could connect to anything, so only the owner check
/// stands between it and the planted socket.
#[test]
fn a_socket_planted_by_someone_else_is_refused() {
    if skip_without_pty() {
        return;
    }
    if !nix::unistd::getuid().is_root() {
        skip("agent: a socket owned by another user needs root to make (chown)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.planted");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .map_or(65534, |u| u.uid.as_raw());
    std::os::unix::fs::chown(&sock, Some(nobody), None).unwrap();
    refused_socket(
        &sock,
        &format!("belongs to uid {nobody}, not to the operator"),
    );
}
