//! Subcommands for admins who run the binary by hand. The login path never
//! reaches this module.
//!
//! Every admin command goes through `run`, which refuses all but help and
//! version when a setuid binary is run by an operator (real uid not root):
//! they would read the config and every user's records with the gatehouse
//! account's rights.
#![forbid(unsafe_code)]

mod args;
pub mod audit;
pub mod escapes;
pub mod explain;
pub mod files;
pub mod filter;
pub mod ids;
pub mod replay;
pub mod seal;
pub mod sessions;
pub mod sshd_check;
pub mod verify;

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::core::config::config_path;
use crate::core::config::Config;
use crate::core::invocation::Admin;
use crate::privilege::privileged;

/// What can stop an admin tool; each message names the file.
#[derive(Debug)]
pub enum AdminError {
    Config(String),
    ReadDir {
        path: PathBuf,
        err: io::Error,
    },
    Read {
        path: PathBuf,
        err: io::Error,
    },
    NotFound(String),
    /// A typed session id that names several sessions: the text typed and
    /// one line per candidate (its id, then what tells them apart).
    Ambiguous {
        typed: String,
        candidates: Vec<String>,
    },
    Io(io::Error),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Config(m) => f.write_str(m),
            AdminError::ReadDir { path, err } => {
                write!(f, "cannot list {}: {err}", path.display())
            }
            AdminError::Read { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            AdminError::NotFound(m) => f.write_str(m),
            AdminError::Ambiguous { typed, candidates } => {
                write!(
                    f,
                    "session {typed:?} is ambiguous: it matches {} sessions; give more of the id:",
                    candidates.len()
                )?;
                for c in candidates {
                    write!(f, "\n  {c}")?;
                }
                Ok(())
            }
            AdminError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for AdminError {
    fn from(e: io::Error) -> Self {
        AdminError::Io(e)
    }
}

/// log_dir: `--log-dir`, or the config's (`--config`, or the usual search).
/// Privileged (a root admin running the setuid binary), only the system
/// config is read.
/// The shared first step of an admin tool: its options, or the exit code
/// after `--help` (usage on stdout, 0) or a usage error (stderr, 2).
fn parsed<T>(r: Result<Option<T>, String>, usage: &str) -> Result<T, i32> {
    match r {
        Ok(Some(o)) => Ok(o),
        Ok(None) => {
            crate::report::write_out(usage.trim_end());
            Err(0)
        }
        Err(e) => {
            crate::say_err!("gatehouse: {e}");
            Err(2)
        }
    }
}

pub fn log_dir_from_config(
    log_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<PathBuf, AdminError> {
    if let Some(d) = log_dir {
        return Ok(d);
    }
    let privileged = privileged();
    let path = match config {
        Some(_) if privileged => {
            return Err(AdminError::Config(
                "--config is not allowed when running with privileges".into(),
            ))
        }
        Some(p) => p,
        None => config_path(privileged),
    };
    Config::load(&path)
        .map(|c| c.settings.log_dir)
        .map_err(|e| AdminError::Config(format!("{e}; {}", where_hint(privileged))))
}

/// The sealing key file the config names (`seal_key`), found the way
/// `log_dir_from_config` finds the config.
pub fn seal_key_from_config(config: Option<PathBuf>) -> Result<PathBuf, AdminError> {
    let privileged = privileged();
    let path = match config {
        Some(_) if privileged => {
            return Err(AdminError::Config(
                "--config is not allowed when running with privileges".into(),
            ))
        }
        Some(p) => p,
        None => config_path(privileged),
    };
    Config::load(&path)
        .map(|c| c.settings.seal_key)
        .map_err(|e| AdminError::Config(format!("{e}; {}", where_hint(privileged))))
}

/// What to do when the config that names log_dir cannot be read (issue 17:
/// a plain `gatehouse audit` on a machine without /etc/gatehouse only named
/// the missing file).
fn where_hint(privileged: bool) -> &'static str {
    if privileged {
        "read a log dir directly with --log-dir DIR"
    } else {
        "point the tool at a config with --config PATH (or GATEHOUSE_CONFIG=PATH), \
         or at a log dir with --log-dir DIR"
    }
}

/// "1 host", "2 hosts", "0 hosts".
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `check --explain`: the user's groups from NSS, the host from the
/// config, then the explanation on stdout. 1 when either is unknown.
fn explain_command(config: &Config, e: &crate::core::invocation::Explain) -> i32 {
    let Some(host) = config.host(&e.host) else {
        crate::say_err!(
            "gatehouse: --explain: no host named {:?} in the config",
            e.host
        );
        return 1;
    };
    let groups = match crate::identity::groups_of_user(&e.user) {
        Ok(g) => g,
        Err(err) => {
            crate::say_err!("gatehouse: --explain: {err}");
            return 1;
        }
    };
    let who = crate::core::command_policy::Who {
        user: &e.user,
        groups: &groups,
    };
    let text = explain::render(config, &who, host, &e.command, !e.unverified);
    crate::report::write_out(text.trim_end());
    0
}

pub const HELP: &str = "\
gatehouse — an auditing jump-host login shell

As an operator's login shell (or sshd ForceCommand) it shows the hosts the
operator may use, relays the session, and writes every command to
<log_dir>/<user>.jsonl. It never runs anything on this machine.

Usage (admins):
  gatehouse check [--config PATH] [--sshd [--sshd-config PATH]]
                                    validate the config; exit 0 when valid;
                                    --sshd: ask sshd (sshd -T) whether any
                                    Gatehouse account can forward or get
                                    around Gatehouse (see check --help)
  gatehouse check --explain USER HOST 'COMMAND' [--unverified]
                                    how the [[policy]] rules decide COMMAND
  gatehouse audit [FILTERS] [--json] [--follow] [--check] [--verify]
                                    read the audit trail (see audit --help)
  gatehouse replay SESSION|FILE [--speed N] [--idle-limit S] [--follow] [--raw]
                                    play a session recording (see replay --help)
  gatehouse seal --init             make this bastion's forward-secure sealing
                                    key; prints the verification key to keep
                                    off the bastion (see seal --help)
  gatehouse sessions [--json]       the sessions running now
  gatehouse kill SESSION|--user NAME [--reason TEXT]
                                    end running sessions (see kill --help)
  gatehouse --help | --version

Login invocations (set by sshd, never typed):
  -gatehouse                 login shell: the host menu
  gatehouse -c REQUEST       REQUEST is a host name (or refused)
  gatehouse                  ForceCommand: the request is $SSH_ORIGINAL_COMMAND

Config: /etc/gatehouse/config.toml when installed setuid; otherwise
$GATEHOUSE_CONFIG, then ~/.config/gatehouse/config.toml, then the system path.
";

/// `gatehouse check --help`. The options are parsed in
/// src/core/invocation.rs; keep the two in step.
pub const CHECK_USAGE: &str = "\
Usage: gatehouse check [--config PATH] [--sshd [--sshd-config PATH]]
       gatehouse check --explain USER HOST 'COMMAND' [--unverified] [--config PATH]

Validates the config: prints path:line:column and what is wrong, exit 1,
when it is invalid; otherwise one OK line (hosts, access rules, policy
rules, the log directory), exit 0. Warns about known_hosts lines it
cannot honour (@cert-authority).

  -f, --config PATH      the config to check (not allowed when running with
                         privileges: the built-in path is checked then)
  --sshd                 also ask sshd (sshd -T -C user=...) whether any
                         Gatehouse account can forward, run ~/.ssh/rc or a
                         subsystem, or get around Gatehouse (exit 1 if so)
  --sshd-config PATH     the sshd config for --sshd (implies it)
  --explain USER HOST 'COMMAND'
                         after the check, how the [[policy]] rules decide
                         COMMAND typed by USER on HOST
  --unverified           with --explain: decide as for a command the screen
                         did not confirm
";

/// `gatehouse check`: known_hosts lines Gatehouse cannot honour are
/// warnings (the config is still valid): `path:line: warning: …`.
fn known_hosts_warnings(path: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for (line, marker) in crate::core::known_hosts::unsupported_markers(&text) {
        crate::say_err!(
            "{}:{line}: warning: {} lines are not supported and trust nothing \
             (host certificates cannot be checked); list the host keys themselves",
            path.display(),
            audit::visible(&marker, 40)
        );
    }
}

/// Runs one admin command. The one permission check for all of them is
/// here: through the setuid binary (real uid not root) only help and
/// version run; every other command would read the config, every user's
/// records or the sealing key, or signal sessions, with the gatehouse
/// account's rights.
pub fn run(cmd: Admin) -> i32 {
    if cmd.needs_admin() && !crate::privilege::admin_allowed() {
        crate::say_err!(
            "gatehouse: admin commands are for administrators: run them as root (or as the gatehouse account)"
        );
        return 1;
    }
    match cmd {
        Admin::Help => {
            crate::report::write_out(HELP.trim_end());
            0
        }
        Admin::Version => {
            crate::say_out!("gatehouse {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Admin::CheckHelp => {
            crate::report::write_out(CHECK_USAGE.trim_end());
            0
        }
        Admin::Check {
            config,
            explain,
            sshd,
            sshd_config,
        } => {
            let privileged = privileged();
            let path = match config {
                // An operator with a setuid binary must not make us read
                // files as the gatehouse account.
                Some(_) if privileged => {
                    crate::say_err!(
                        "gatehouse: --config is not allowed when running with privileges"
                    );
                    return 1;
                }
                Some(p) => p,
                None => config_path(privileged),
            };
            match Config::load(&path) {
                Ok(c) => {
                    known_hosts_warnings(&c.settings.known_hosts);
                    let rules = match c.policy.rules.len() {
                        0 => String::new(),
                        n => format!(", {}", counted(n, "policy rule", "policy rules")),
                    };
                    crate::say_out!(
                        "{}: OK ({}, {}{rules}; logs in {})",
                        path.display(),
                        counted(c.hosts.len(), "host", "hosts"),
                        counted(c.access.len(), "access rule", "access rules"),
                        c.settings.log_dir.display()
                    );
                    if let Some(e) = explain {
                        return explain_command(&c, &e);
                    }
                    if !sshd {
                        return 0;
                    }
                    match sshd_check::run(&c, sshd_config.as_deref()) {
                        Ok(true) => 0,
                        Ok(false) => {
                            crate::say_err!(
                                "gatehouse: some accounts can reach past Gatehouse through sshd; \
                                 see packaging/sshd_config.d/gatehouse.conf"
                            );
                            1
                        }
                        Err(e) => {
                            crate::say_err!("gatehouse: {e}");
                            1
                        }
                    }
                }
                Err(e) => {
                    crate::say_err!("{e}");
                    1
                }
            }
        }
        Admin::Audit { args } => audit::run(args),
        Admin::Replay { args } => replay::run(args),
        Admin::Sessions { args } => sessions::run_sessions(args),
        Admin::Kill { args } => sessions::run_kill(args),
        Admin::Seal { args } => seal::run(args),
    }
}
