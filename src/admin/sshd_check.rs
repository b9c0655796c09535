//! `gatehouse check --sshd`: asks sshd itself what it would allow each
//! Gatehouse account (issue 12, point 8). The shipped snippet turns
//! forwarding off only inside `Match Group gatehouse-users`; an account
//! whose shell is Gatehouse but who is not in that group could still
//! `ssh -N -L …` (no shell is ever started, so Gatehouse never sees it).
//!
//! For every account whose login shell is Gatehouse (from the passwd file)
//! and every user the config names (`users`, members of `unix_groups`),
//! this runs `sshd -T -C user=…,host=…,addr=…` — the effective settings for
//! that connection, Match blocks applied — and reports anything that lets
//! the account do something around Gatehouse: TCP, Unix-socket or X11
//! forwarding, tun devices, `~/.ssh/rc`, an `internal-sftp` subsystem or a
//! shell that is not Gatehouse — and agent forwarding when something other
//! than Gatehouse runs for the account.
//!
//! Agent forwarding for an account confined to Gatehouse is not a hole
//! (issue 18): the shipped snippet allows it so that hosts with
//! `agent = true` can use the operator's own key, and nothing but Gatehouse
//! runs for the account to use the socket. It is reported as a note, with
//! the hosts that use it (or the hosts that cannot work without it).
//!
//! This executes sshd, from an admin tool an administrator runs by hand;
//! nothing here is ever reached from the login path, which never executes
//! anything.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::core::config::Config;

/// sshd, by its fixed path (never looked up on PATH).
pub const SSHD: &str = "/usr/sbin/sshd";
/// The connection every account is checked for: a documentation address
/// (RFC 5737) and a name that cannot resolve (RFC 6761), so only Match
/// blocks on User and Group decide.
const CHECK_ADDR: &str = "192.0.2.1";
const CHECK_HOST: &str = "gatehouse-check.invalid";

/// An account to ask sshd about, and its login shell if we know it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Account {
    pub name: String,
    pub shell: Option<String>,
}

fn is_gatehouse(shell: &str) -> bool {
    Path::new(shell).file_name().and_then(|n| n.to_str()) == Some("gatehouse")
}

/// Accounts whose shell is Gatehouse (passwd text), plus the users the
/// config names. Pure over its inputs.
pub fn accounts(passwd: &str, named: &[String]) -> Vec<Account> {
    let mut shells = std::collections::BTreeMap::new();
    for l in passwd.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 7 && !f[0].is_empty() {
            shells.insert(f[0].to_string(), f[6].to_string());
        }
    }
    let mut names: BTreeSet<String> = shells
        .iter()
        .filter(|(_, s)| is_gatehouse(s))
        .map(|(n, _)| n.clone())
        .collect();
    names.extend(named.iter().cloned());
    names
        .into_iter()
        .map(|name| Account {
            shell: shells.get(&name).cloned().or_else(|| {
                nix::unistd::User::from_name(&name)
                    .ok()
                    .flatten()
                    .map(|u| u.shell.display().to_string())
            }),
            name,
        })
        .collect()
}

/// What sshd's effective settings (`sshd -T` output) allow an account
/// around Gatehouse. Pure.
pub fn findings(sshd_t: &str, shell: Option<&str>) -> Vec<String> {
    let get = |k: &str| {
        sshd_t.lines().find_map(|l| {
            let (key, v) = l.split_once(' ')?;
            (key == k).then(|| v.trim().to_string())
        })
    };
    let on = |k: &str| get(k).is_some_and(|v| v != "no");
    let mut f = Vec::new();
    let forwarding_off = get("disableforwarding").as_deref() == Some("yes");
    if !forwarding_off {
        if on("allowtcpforwarding") {
            f.push(format!(
                "TCP forwarding, ssh -L/-R/-D/-W (AllowTcpForwarding {})",
                get("allowtcpforwarding").unwrap_or_default()
            ));
        }
        if on("allowstreamlocalforwarding") {
            f.push("Unix-socket forwarding (AllowStreamLocalForwarding is not no)".into());
        }
        // Confined to Gatehouse, the forwarded agent is used only by
        // Gatehouse (`agent_note`); otherwise the account's own programs
        // could use it to go around Gatehouse.
        if on("allowagentforwarding") && !runs_only_gatehouse(sshd_t, shell) {
            f.push("agent forwarding (AllowAgentForwarding is not no)".into());
        }
        if on("x11forwarding") {
            f.push("X11 forwarding (X11Forwarding yes)".into());
        }
    }
    if on("permittunnel") {
        f.push("tun devices (PermitTunnel is not no)".into());
    }
    if on("permituserrc") {
        f.push("~/.ssh/rc, run before Gatehouse (PermitUserRC yes)".into());
    }
    let force = get("forcecommand").unwrap_or_else(|| "none".into());
    if force == "none" {
        for l in sshd_t.lines() {
            if let Some(rest) = l.strip_prefix("subsystem ") {
                if rest.split_whitespace().nth(1) == Some("internal-sftp") {
                    f.push(format!(
                        "a subsystem without Gatehouse (Subsystem {rest}, no ForceCommand)"
                    ));
                }
            }
        }
        match shell {
            Some(s) if is_gatehouse(s) => {}
            Some(s) => f.push(format!(
                "a shell of its own (login shell {s}, no ForceCommand)"
            )),
            None => f.push("whatever its login shell is (unknown; no ForceCommand)".into()),
        }
    } else if !force.split_whitespace().next().is_some_and(is_gatehouse) {
        f.push(format!("another forced command (ForceCommand {force})"));
    }
    f
}

/// Whether sshd runs nothing but Gatehouse for the account: a forced
/// command that is Gatehouse, or none and a Gatehouse login shell. Pure.
pub fn runs_only_gatehouse(sshd_t: &str, shell: Option<&str>) -> bool {
    let force = sshd_t
        .lines()
        .find_map(|l| l.strip_prefix("forcecommand "))
        .map(str::trim)
        .unwrap_or("none");
    if force == "none" {
        shell.is_some_and(is_gatehouse)
    } else {
        force.split_whitespace().next().is_some_and(is_gatehouse)
    }
}

/// What agent forwarding means for an account confined to Gatehouse, given
/// the hosts with `agent = true` (names): used by them, unused, or needed
/// but off. `None` when it is off and nothing needs it. Pure.
pub fn agent_note(sshd_t: &str, agent_hosts: &[String]) -> Option<String> {
    let get = |k: &str| {
        sshd_t.lines().find_map(|l| {
            let (key, v) = l.split_once(' ')?;
            (key == k).then(|| v.trim().to_string())
        })
    };
    let allowed = get("disableforwarding").as_deref() != Some("yes")
        && get("allowagentforwarding").is_some_and(|v| v != "no");
    let names = || {
        let mut n = agent_hosts
            .iter()
            .take(5)
            .map(|h| super::audit::visible(h, 64))
            .collect::<Vec<_>>()
            .join(", ");
        if agent_hosts.len() > 5 {
            n.push_str(&format!(" and {} more", agent_hosts.len() - 5));
        }
        n
    };
    match (allowed, agent_hosts.is_empty()) {
        (true, false) => Some(format!(
            "agent forwarding (ssh -A) is allowed; Gatehouse uses it only for agent = true hosts: {}",
            names()
        )),
        (true, true) => Some(
            "agent forwarding (ssh -A) is allowed but no host has agent = true \
             (AllowAgentForwarding no would close it)"
                .into(),
        ),
        (false, false) => Some(format!(
            "agent forwarding is off, so agent = true hosts cannot be used: {}",
            names()
        )),
        (false, true) => None,
    }
}

/// Runs the check; prints one line per account; `Ok(true)` when every
/// account is confined.
pub fn run(config: &Config, sshd_config: Option<&Path>) -> Result<bool, String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    let mut named: Vec<String> = Vec::new();
    for rule in &config.access {
        named.extend(rule.users.iter().cloned());
        for g in &rule.unix_groups {
            if let Ok(Some(group)) = nix::unistd::Group::from_name(g) {
                named.extend(group.mem);
            }
        }
    }
    let list = accounts(&passwd, &named);
    let agent_hosts: Vec<String> = config
        .hosts
        .iter()
        .filter(|h| h.agent)
        .map(|h| h.name.clone())
        .collect();
    if list.is_empty() {
        crate::say_out!("sshd: no account has Gatehouse as its shell or is named in the config");
        return Ok(true);
    }
    let mut all_ok = true;
    for a in &list {
        let mut cmd = Command::new(SSHD);
        cmd.arg("-T");
        if let Some(p) = sshd_config {
            cmd.arg("-f").arg(p);
        }
        cmd.arg("-C")
            .arg(format!(
                "user={},host={CHECK_HOST},addr={CHECK_ADDR}",
                a.name
            ))
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {SSHD} -T: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{SSHD} -T -C user={} failed: {}",
                a.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let found = findings(&String::from_utf8_lossy(&out.stdout), a.shell.as_deref());
        let name = super::audit::visible(&a.name, 64);
        if found.is_empty() {
            crate::say_out!("sshd: {name}: OK (confined to Gatehouse)");
            if let Some(note) = agent_note(&String::from_utf8_lossy(&out.stdout), &agent_hosts) {
                crate::say_out!("sshd: {name}: note: {note}");
            }
        } else {
            all_ok = false;
            for f in found {
                crate::say_out!("sshd: {name}: can use {f}");
            }
        }
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = "allowtcpforwarding yes\nallowagentforwarding yes\nx11forwarding yes\n\
        allowstreamlocalforwarding yes\npermittunnel no\npermituserrc yes\nforcecommand none\n\
        subsystem sftp internal-sftp\ndisableforwarding no\n";
    const SHUT: &str = "allowtcpforwarding no\nallowagentforwarding no\nx11forwarding no\n\
        allowstreamlocalforwarding no\npermittunnel no\npermituserrc no\n\
        forcecommand /usr/bin/gatehouse\nsubsystem sftp /usr/lib/openssh/sftp-server\n";

    #[test]
    fn what_sshd_allows_is_reported() {
        // Agent forwarding is not among them: only Gatehouse runs (its
        // login shell), so it is a note (`agent_note`), not a hole.
        let f = findings(OPEN, Some("/usr/bin/gatehouse"));
        assert_eq!(f.len(), 5, "{f:?}");
        assert_eq!(findings(OPEN, Some("/bin/bash")).len(), 7);
        assert!(f[0].starts_with("TCP forwarding"));
        assert!(f.iter().any(|x| x.contains("internal-sftp")));
        assert!(findings(SHUT, Some("/bin/bash")).is_empty());
        let f = findings(&SHUT.replace("/usr/bin/gatehouse", "/bin/true"), None);
        assert_eq!(
            f,
            vec!["another forced command (ForceCommand /bin/true)".to_string()]
        );
        let f = findings(
            &SHUT.replace("forcecommand /usr/bin/gatehouse", "forcecommand none"),
            Some("/bin/bash"),
        );
        assert!(f[0].contains("a shell of its own"), "{f:?}");
        let off = format!("{OPEN}disableforwarding yes\n").replace("disableforwarding no\n", "");
        assert!(!findings(&off, Some("/usr/bin/gatehouse"))
            .iter()
            .any(|x| x.contains("forwarding")));
    }

    /// Issue 18: agent forwarding is a hole only where something other
    /// than Gatehouse runs; for a confined account it is a note.
    #[test]
    fn agent_forwarding_is_a_note_for_confined_accounts() {
        let shut_agent = SHUT.replace("allowagentforwarding no", "allowagentforwarding yes");
        assert!(findings(&shut_agent, Some("/bin/bash")).is_empty());
        let own_shell = shut_agent.replace("forcecommand /usr/bin/gatehouse", "forcecommand none");
        let f = findings(&own_shell, Some("/bin/bash"));
        assert!(f.iter().any(|x| x.starts_with("agent forwarding")), "{f:?}");
        assert!(findings(&own_shell, Some("/usr/bin/gatehouse")).is_empty());
        assert!(runs_only_gatehouse(&shut_agent, None));
        assert!(!runs_only_gatehouse(&own_shell, Some("/bin/sh")));

        let hosts = vec!["web01".to_string(), "db01".to_string()];
        let n = agent_note(&shut_agent, &hosts).unwrap();
        assert!(n.contains("allowed") && n.ends_with("web01, db01"), "{n}");
        assert!(agent_note(&shut_agent, &[])
            .unwrap()
            .contains("no host has agent = true"));
        let n = agent_note(SHUT, &hosts).unwrap();
        assert!(n.contains("is off") && n.contains("web01"), "{n}");
        assert_eq!(agent_note(SHUT, &[]), None);
        let off = format!("{shut_agent}disableforwarding yes\n");
        assert_eq!(agent_note(&off, &[]), None);
        let many: Vec<String> = (0..7).map(|i| format!("h{i}")).collect();
        assert!(agent_note(&shut_agent, &many)
            .unwrap()
            .ends_with("h4 and 2 more"));
    }

    #[test]
    fn accounts_are_gatehouse_shells_and_named_users() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
            alice:x:1000:1000::/home/alice:/usr/bin/gatehouse\n\
            bob:x:1001:1001::/home/bob:/bin/bash\n";
        let a = accounts(passwd, &["bob".to_string()]);
        let names: Vec<&str> = a.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(a[1].shell.as_deref(), Some("/bin/bash"));
    }
}
