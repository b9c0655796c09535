//! Decide once, at the top, which world we are in: a login (sshd started
//! us for an operator) or an admin running the binary by hand.
//!
//! The table (product.md, "How it is started"):
//!
//! | argv                          | meaning                                   |
//! |-------------------------------|-------------------------------------------|
//! | `-gatehouse` (login shell)    | the menu                                  |
//! | `gatehouse -c CMD`            | CMD is the request                        |
//! | `gatehouse -c /path/gatehouse`| the request is `$SSH_ORIGINAL_COMMAND`     |
//! | `gatehouse` (ForceCommand)    | the request is `$SSH_ORIGINAL_COMMAND`     |
//! | `gatehouse check …` etc.      | admin subcommands                         |
//!
//! A login never parses admin subcommands: `ssh bastion audit` asks for a
//! host named "audit".
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// An operator's login; `request` is empty for the menu.
    Login {
        request: String,
    },
    Admin(Admin),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    Check {
        config: Option<PathBuf>,
        /// `--explain USER HOST COMMAND`: how the command policy decides.
        explain: Option<Explain>,
        /// `--sshd`: also ask sshd what each Gatehouse account may do;
        /// `sshd_config` is `--sshd-config PATH` (sshd's `-f`).
        sshd: bool,
        sshd_config: Option<PathBuf>,
    },
    /// Admin tools that take their own arguments (`audit`, `replay`,
    /// `sessions`, `kill`).
    Tool {
        name: String,
        args: Vec<OsString>,
    },
    Help,
    Version,
}

/// `gatehouse check --explain USER HOST 'COMMAND' [--unverified]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explain {
    pub user: String,
    pub host: String,
    pub command: String,
    /// Decide as for a command the screen did not confirm.
    pub unverified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest request we keep (in the record and in messages).
pub const MAX_REQUEST_CHARS: usize = 256;

fn names_gatehouse(cmd: &str) -> bool {
    let cmd = cmd.trim();
    !cmd.is_empty()
        && !cmd.contains(char::is_whitespace)
        && Path::new(cmd).file_name().and_then(|n| n.to_str()) == Some("gatehouse")
}

/// Turns argv and `$SSH_ORIGINAL_COMMAND` into an invocation. Pure.
pub fn parse(argv: &[OsString], original_command: Option<&str>) -> Result<Invocation, UsageError> {
    let original = original_command.unwrap_or("").to_string();
    let argv0 = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let has_dash_c = argv.get(1).is_some_and(|a| a == "-c");
    if argv0.starts_with('-') && !has_dash_c {
        // A login shell without a command: the menu, whatever the
        // environment says (SSH_ORIGINAL_COMMAND exists only under
        // ForceCommand, which always passes -c).
        return Ok(Invocation::Login {
            request: String::new(),
        });
    }
    let Some(first) = argv.get(1) else {
        // ForceCommand, or a person typing `gatehouse`.
        return Ok(Invocation::Login { request: original });
    };
    if first == "-c" {
        let cmd = argv
            .get(2)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        let request = if names_gatehouse(&cmd) { original } else { cmd };
        return Ok(Invocation::Login { request });
    }
    let first = first.to_string_lossy();
    let rest = &argv[2..];
    match first.as_ref() {
        "check" => {
            let mut config = None;
            let mut explain: Option<Explain> = None;
            let mut unverified = false;
            let mut sshd = false;
            let mut sshd_config = None;
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.to_str() {
                    Some("--config") | Some("-f") => match it.next() {
                        Some(p) => config = Some(PathBuf::from(p)),
                        None => return Err(UsageError("--config needs a path".into())),
                    },
                    Some("--explain") => {
                        let mut take = || it.next().map(|v| v.to_string_lossy().into_owned());
                        match (take(), take(), take()) {
                            (Some(user), Some(host), Some(command)) => {
                                explain = Some(Explain {
                                    user,
                                    host,
                                    command,
                                    unverified: false,
                                })
                            }
                            _ => {
                                return Err(UsageError(
                                    "--explain needs USER HOST 'COMMAND'".into(),
                                ))
                            }
                        }
                    }
                    Some("--unverified") => unverified = true,
                    Some("--sshd") => sshd = true,
                    Some("--sshd-config") => match it.next() {
                        Some(p) => {
                            sshd = true;
                            sshd_config = Some(PathBuf::from(p));
                        }
                        None => return Err(UsageError("--sshd-config needs a path".into())),
                    },
                    _ => {
                        return Err(UsageError(format!(
                            "check: unexpected argument {:?}",
                            a.to_string_lossy()
                        )))
                    }
                }
            }
            if let Some(e) = &mut explain {
                e.unverified = unverified;
            } else if unverified {
                return Err(UsageError("--unverified goes with --explain".into()));
            }
            Ok(Invocation::Admin(Admin::Check {
                config,
                explain,
                sshd,
                sshd_config,
            }))
        }
        "audit" | "replay" | "sessions" | "kill" | "seal" => Ok(Invocation::Admin(Admin::Tool {
            name: first.into_owned(),
            args: rest.to_vec(),
        })),
        "help" | "--help" | "-h" => Ok(Invocation::Admin(Admin::Help)),
        "version" | "--version" | "-V" => Ok(Invocation::Admin(Admin::Version)),
        other => Err(UsageError(format!(
            "unknown command {other:?}; try `gatehouse --help`"
        ))),
    }
}

/// What the request is, once the config is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Menu,
    /// Looks like a host name (it may still be unknown or forbidden).
    Host(String),
    /// Anything else: a command line, scp, sftp, rsync, …
    Other(String),
}

pub fn classify(request: &str) -> Request {
    let r = request.trim();
    if r.is_empty() {
        Request::Menu
    } else if crate::config::valid_host_name(r) {
        Request::Host(r.to_string())
    } else {
        Request::Other(bounded(request))
    }
}

/// A request as it may appear in a record or a message: bounded, with
/// control characters made visible.
pub fn bounded(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_REQUEST_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if s.chars().count() > MAX_REQUEST_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn login(r: &str) -> Result<Invocation, UsageError> {
        Ok(Invocation::Login { request: r.into() })
    }

    #[test]
    fn login_shell_is_the_menu() {
        assert_eq!(parse(&argv(&["-gatehouse"]), None), login(""));
        assert_eq!(parse(&argv(&["-gatehouse"]), Some("bash")), login(""));
    }

    #[test]
    fn dash_c_is_the_request() {
        assert_eq!(
            parse(&argv(&["gatehouse", "-c", "web01"]), None),
            login("web01")
        );
        assert_eq!(
            parse(&argv(&["gatehouse", "-c", "scp -t /tmp"]), None),
            login("scp -t /tmp")
        );
        assert_eq!(parse(&argv(&["gatehouse", "-c"]), None), login(""));
    }

    #[test]
    fn dash_c_naming_gatehouse_uses_original_command() {
        assert_eq!(
            parse(
                &argv(&["gatehouse", "-c", "/usr/bin/gatehouse"]),
                Some("db01")
            ),
            login("db01")
        );
        assert_eq!(
            parse(&argv(&["gatehouse", "-c", "/usr/bin/gatehouse"]), None),
            login("")
        );
        // Not gatehouse itself: arguments make it a request of its own.
        assert_eq!(
            parse(&argv(&["gatehouse", "-c", "gatehouse audit"]), Some("x")),
            login("gatehouse audit")
        );
    }

    #[test]
    fn force_command_uses_original_command() {
        assert_eq!(
            parse(&argv(&["/usr/bin/gatehouse"]), Some("web01")),
            login("web01")
        );
        assert_eq!(parse(&argv(&["/usr/bin/gatehouse"]), None), login(""));
        assert_eq!(
            parse(&argv(&["gatehouse"]), Some("rsync --server -e.LsfxC . /")),
            login("rsync --server -e.LsfxC . /")
        );
    }

    #[test]
    fn admin_only_when_run_directly() {
        assert_eq!(
            parse(&argv(&["gatehouse", "check", "--config", "/x.toml"]), None),
            Ok(Invocation::Admin(Admin::Check {
                config: Some("/x.toml".into()),
                explain: None,
                sshd: false,
                sshd_config: None,
            }))
        );
        assert_eq!(
            parse(&argv(&["gatehouse", "check"]), None),
            Ok(Invocation::Admin(Admin::Check {
                config: None,
                explain: None,
                sshd: false,
                sshd_config: None,
            }))
        );
        assert_eq!(
            parse(&argv(&["gatehouse", "check", "--sshd-config", "/s"]), None),
            Ok(Invocation::Admin(Admin::Check {
                config: None,
                explain: None,
                sshd: true,
                sshd_config: Some("/s".into()),
            }))
        );
        assert_eq!(
            parse(
                &argv(&[
                    "gatehouse",
                    "check",
                    "--explain",
                    "alice",
                    "web01",
                    "rm -rf /",
                    "--unverified"
                ]),
                None
            ),
            Ok(Invocation::Admin(Admin::Check {
                config: None,
                explain: Some(Explain {
                    user: "alice".into(),
                    host: "web01".into(),
                    command: "rm -rf /".into(),
                    unverified: true,
                }),
                sshd: false,
                sshd_config: None,
            }))
        );
        assert!(parse(
            &argv(&["gatehouse", "check", "--explain", "alice", "web01"]),
            None
        )
        .is_err());
        assert!(parse(&argv(&["gatehouse", "check", "--unverified"]), None).is_err());
        assert!(parse(&argv(&["gatehouse", "bash"]), None).is_err());
        assert!(parse(&argv(&["gatehouse", "check", "--config"]), None).is_err());
        // Through sshd, "audit" is a host name request.
        assert_eq!(
            parse(&argv(&["gatehouse", "-c", "audit"]), None),
            login("audit")
        );
    }

    #[test]
    fn classify_requests() {
        assert_eq!(classify(""), Request::Menu);
        assert_eq!(classify("  "), Request::Menu);
        assert_eq!(classify("web01"), Request::Host("web01".into()));
        assert_eq!(classify("bash"), Request::Host("bash".into()));
        assert_eq!(
            classify("scp -t /tmp"),
            Request::Other("scp -t /tmp".into())
        );
        assert_eq!(
            classify("/usr/lib/openssh/sftp-server"),
            Request::Other("/usr/lib/openssh/sftp-server".into())
        );
        let long = "x ".repeat(1000);
        match classify(&long) {
            Request::Other(s) => assert_eq!(s.chars().count(), MAX_REQUEST_CHARS + 1),
            r => panic!("{r:?}"),
        }
        assert_eq!(bounded("a\x1b[2Jb"), "a\u{fffd}[2Jb");
    }
}
