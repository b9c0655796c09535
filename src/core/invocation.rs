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
    /// `check --help` (or `-h`): check's usage, as each tool below prints
    /// its own.
    CheckHelp,
    /// The tools below take their own options, which each parses (its
    /// `--help` included): `args` is what follows the command's name.
    /// `audit`: read the trail (src/admin/audit.rs).
    Audit {
        args: Vec<OsString>,
    },
    /// `replay`: play a session recording.
    Replay {
        args: Vec<OsString>,
    },
    /// `sessions`: the sessions running now.
    Sessions {
        args: Vec<OsString>,
    },
    /// `kill`: end running sessions.
    Kill {
        args: Vec<OsString>,
    },
    /// `seal`: the forward-secure sealing key.
    Seal {
        args: Vec<OsString>,
    },
    Help,
    Version,
}

impl Admin {
    /// Whether only an administrator may run it: every command reads the
    /// config or the audit trail, or acts on sessions, except help and
    /// version, which show nothing of this bastion.
    pub fn needs_admin(&self) -> bool {
        !matches!(self, Admin::Help | Admin::Version)
    }
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
// long: one table of the shapes argv can take (login shell, `-c`,
// subcommands and their options), an arm or two each, read in one place.
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
                    Some("--help") | Some("-h") => return Ok(Invocation::Admin(Admin::CheckHelp)),
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
                            "check: unexpected argument {:?}; see `gatehouse check --help`",
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
        "audit" => Ok(Invocation::Admin(Admin::Audit {
            args: rest.to_vec(),
        })),
        "replay" => Ok(Invocation::Admin(Admin::Replay {
            args: rest.to_vec(),
        })),
        "sessions" => Ok(Invocation::Admin(Admin::Sessions {
            args: rest.to_vec(),
        })),
        "kill" => Ok(Invocation::Admin(Admin::Kill {
            args: rest.to_vec(),
        })),
        "seal" => Ok(Invocation::Admin(Admin::Seal {
            args: rest.to_vec(),
        })),
        "help" | "--help" | "-h" => Ok(Invocation::Admin(Admin::Help)),
        "version" | "--version" | "-V" => Ok(Invocation::Admin(Admin::Version)),
        other => Err(UsageError(format!(
            "unknown command {other:?}; try `gatehouse --help`"
        ))),
    }
}

/// The longest request we take: 64 KiB. A command line longer than that
/// is not typed; it is an accident or an attack. (The privileged
/// environment scrub keeps a longer `SSH_ORIGINAL_COMMAND` so that it gets
/// here and is refused with its own line.)
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The `AcceptEnv` variable that names the target of a transfer (or of an
/// interactive session when there is no request): `ssh -o
/// SetEnv=GATEHOUSE_HOST=web01 bastion`.
pub const HOST_ENV: &str = "GATEHOUSE_HOST";

/// What the request is, once parsed. Pure: the config decides later
/// whether the host exists and what the operator may do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Menu,
    /// Looks like a host name (it may still be unknown or forbidden).
    Host(String),
    /// `HOST -- COMMAND`: `command` is the text after the first ` -- `,
    /// byte for byte, passed to the target as one string the way
    /// `ssh HOST 'COMMAND'` passes it.
    Exec {
        host: String,
        command: String,
    },
    /// `@group -- COMMAND` / `web* -- COMMAND`: the command on every
    /// matching host the operator may `exec` on (src/operator/batch.rs). `pattern`
    /// is `@` and a group name, or a glob over host names.
    Batch {
        pattern: String,
        command: String,
    },
    /// An sftp server was asked for (sftp, or scp in its sftp mode); the
    /// host comes from `GATEHOUSE_HOST`.
    Transfer {
        host: String,
    },
    /// A request in a shape we refuse with a precise line.
    Malformed(Malformed),
    /// Anything else: a command line, legacy scp, rsync, …
    Other(String),
}

/// The hostile or mistaken request shapes, each with its own line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// `web01 --`
    NoCommand {
        host: String,
    },
    /// `-- uptime`
    NoHost,
    /// `web 01 -- uptime`, `x;y -- uptime`, `@a/b -- uptime`
    BadHost,
    /// Control characters (other than tab and newline) or bytes that are
    /// not UTF-8 (they arrive as U+FFFD): nothing we could pass on intact.
    OddBytes,
    TooLong {
        bytes: usize,
    },
    /// An sftp server was asked for without naming the host.
    TransferWithoutHost,
    /// `GATEHOUSE_HOST` is set but is not a host name.
    BadHostEnv,
}

impl Malformed {
    /// The one line the operator reads.
    pub fn line(&self) -> String {
        match self {
            Malformed::NoCommand { host } => {
                format!("nothing to run: write `{host} -- COMMAND`.")
            }
            Malformed::NoHost => "no host before `--`: write `HOST -- COMMAND`.".into(),
            Malformed::BadHost => {
                "the text before `--` is not a host name: write `HOST -- COMMAND`.".into()
            }
            Malformed::OddBytes => {
                "the request holds control characters or bytes that are not UTF-8; refused.".into()
            }
            Malformed::TooLong { bytes } => {
                format!("the request is {bytes} bytes long; the limit is {MAX_REQUEST_BYTES}.")
            }
            Malformed::TransferWithoutHost => {
                format!("name the host for file transfer: sftp -o SetEnv={HOST_ENV}=HOST bastion")
            }
            Malformed::BadHostEnv => format!("{HOST_ENV} is not a host name."),
        }
    }
}

/// Whether the request asks for an sftp server: what sshd passes for the
/// `sftp` subsystem (the `Subsystem` line's command, e.g.
/// `/usr/lib/openssh/sftp-server -l INFO`, or `internal-sftp`), as the
/// login shell's `-c` argument or as `$SSH_ORIGINAL_COMMAND`.
pub fn asks_for_sftp(request: &str) -> bool {
    let first = request.split_whitespace().next().unwrap_or("");
    first == "internal-sftp"
        || Path::new(first).file_name().and_then(|n| n.to_str()) == Some("sftp-server")
}

/// Finds the first `--` that stands as a word; returns the text before it
/// and the text after it minus the one blank that separates it.
fn split_dashes(r: &str) -> Option<(&str, &str)> {
    let b = r.as_bytes();
    let mut i = 0;
    while let Some(off) = r[i..].find("--") {
        let at = i + off;
        let left_ok = at == 0 || b[at - 1].is_ascii_whitespace();
        let end = at + 2;
        let right_ok = end == b.len() || b[end].is_ascii_whitespace();
        if left_ok && right_ok {
            let after = if end < b.len() { &r[end + 1..] } else { "" };
            return Some((&r[..at], after));
        }
        i = end;
    }
    None
}

/// `@group` or a glob: the request names several hosts.
fn is_host_pattern(host: &str) -> bool {
    host.starts_with('@') || host.contains(['*', '?', '['])
}

/// `@` and a name shaped like a host name, or a glob made of host-name
/// characters and `*?[]!` that compiles: nothing a shell or a path could
/// read differently.
fn valid_host_pattern(p: &str) -> bool {
    if let Some(group) = p.strip_prefix('@') {
        return crate::core::config::valid_host_name(group);
    }
    p.len() <= 63
        && p.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, b'.' | b'_' | b'-' | b'*' | b'?' | b'[' | b']' | b'!')
        })
        && glob::Pattern::new(p).is_ok()
}

fn odd_char(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n') || c == '\u{fffd}'
}

/// Turns the request text (and `GATEHOUSE_HOST`) into a `Request`. Pure.
pub fn classify(request: &str, host_env: Option<&str>) -> Request {
    if request.len() > MAX_REQUEST_BYTES {
        return Request::Malformed(Malformed::TooLong {
            bytes: request.len(),
        });
    }
    let host_env = host_env.map(str::trim).filter(|h| !h.is_empty());
    let named_host = || match host_env {
        Some(h) if crate::core::config::valid_host_name(h) => Ok(h.to_string()),
        Some(_) => Err(Request::Malformed(Malformed::BadHostEnv)),
        None => Err(Request::Malformed(Malformed::TransferWithoutHost)),
    };
    let r = request.trim();
    if r.is_empty() {
        return match host_env {
            None => Request::Menu,
            Some(_) => named_host().map(Request::Host).unwrap_or_else(|e| e),
        };
    }
    if let Some((host, command)) = split_dashes(request) {
        let host = host.trim();
        if host.is_empty() {
            return Request::Malformed(Malformed::NoHost);
        }
        if host.chars().any(odd_char) || command.chars().any(odd_char) {
            return Request::Malformed(Malformed::OddBytes);
        }
        let many = is_host_pattern(host);
        if !many && !crate::core::config::valid_host_name(host) {
            return Request::Malformed(Malformed::BadHost);
        }
        if many && !valid_host_pattern(host) {
            return Request::Malformed(Malformed::BadHost);
        }
        if command.trim().is_empty() {
            return Request::Malformed(Malformed::NoCommand {
                host: host.to_string(),
            });
        }
        if many {
            return Request::Batch {
                pattern: host.to_string(),
                command: command.to_string(),
            };
        }
        return Request::Exec {
            host: host.to_string(),
            command: command.to_string(),
        };
    }
    if asks_for_sftp(r) {
        return named_host()
            .map(|host| Request::Transfer { host })
            .unwrap_or_else(|e| e);
    }
    if crate::core::config::valid_host_name(r) {
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

/// Commands longer than this are recorded by their first and last half.
pub const MAX_RECORDED_COMMAND: usize = 16 * 1024;

/// A command as the `exec` record holds it: whole when up to 16 KiB,
/// else its first 8 KiB and its last 8 KiB joined by `…` (so the end of
/// an over-long command is always on record), with its length in bytes.
pub fn recorded_command(command: &str) -> (String, Option<usize>) {
    if command.len() <= MAX_RECORDED_COMMAND {
        return (command.to_string(), None);
    }
    let half = MAX_RECORDED_COMMAND / 2;
    let mut head = half;
    while !command.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = command.len() - half;
    while !command.is_char_boundary(tail) {
        tail += 1;
    }
    (
        format!("{}…{}", &command[..head], &command[tail..]),
        Some(command.len()),
    )
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
    fn every_admin_command_parses_to_its_own_variant() {
        let admin = |args: &[&str]| match parse(&argv(args), None) {
            Ok(Invocation::Admin(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        };
        let rest = || vec![OsString::from("--user"), OsString::from("alice")];
        let tools = [
            ("audit", Admin::Audit { args: rest() }),
            ("replay", Admin::Replay { args: rest() }),
            ("sessions", Admin::Sessions { args: rest() }),
            ("kill", Admin::Kill { args: rest() }),
            ("seal", Admin::Seal { args: rest() }),
        ];
        for (name, want) in tools {
            let got = admin(&["gatehouse", name, "--user", "alice"]);
            assert_eq!(got, want, "{name}");
            assert!(got.needs_admin(), "{name}");
        }
        // A tool's own --help is its business, not ours.
        assert_eq!(
            admin(&["gatehouse", "audit", "--help"]),
            Admin::Audit {
                args: vec![OsString::from("--help")]
            }
        );
        assert!(admin(&["gatehouse", "check"]).needs_admin());
        // `check` parses its own options here, --help among them, as the
        // tools do theirs; and like theirs it is an admin command.
        for help in ["--help", "-h"] {
            assert_eq!(admin(&["gatehouse", "check", help]), Admin::CheckHelp);
            assert_eq!(
                admin(&["gatehouse", "check", "--sshd", "--config", "/x", help]),
                Admin::CheckHelp,
                "{help} after other options"
            );
        }
        assert!(Admin::CheckHelp.needs_admin());
        for help in ["help", "--help", "-h"] {
            assert_eq!(admin(&["gatehouse", help]), Admin::Help, "{help}");
        }
        for version in ["version", "--version", "-V"] {
            assert_eq!(admin(&["gatehouse", version]), Admin::Version, "{version}");
        }
    }

    #[test]
    fn help_and_version_need_no_privilege() {
        assert!(!Admin::Help.needs_admin());
        assert!(!Admin::Version.needs_admin());
    }

    #[test]
    fn an_unknown_command_is_a_usage_error_naming_it() {
        // `verify` is `audit --verify`, `explain` is `check --explain`.
        for name in ["verify", "explain", "Audit", "tool", "--config"] {
            assert_eq!(
                parse(&argv(&["gatehouse", name]), None),
                Err(UsageError(format!(
                    "unknown command {name:?}; try `gatehouse --help`"
                ))),
                "{name}"
            );
        }
    }

    #[test]
    fn classify_requests() {
        let c = |r: &str| classify(r, None);
        assert_eq!(c(""), Request::Menu);
        assert_eq!(c("  "), Request::Menu);
        assert_eq!(c("web01"), Request::Host("web01".into()));
        assert_eq!(c("bash"), Request::Host("bash".into()));
        assert_eq!(c("scp -t /tmp"), Request::Other("scp -t /tmp".into()));
        assert_eq!(
            c("rsync --server -e.LsfxC . /"),
            Request::Other("rsync --server -e.LsfxC . /".into())
        );
        let long = "x ".repeat(1000);
        match c(&long) {
            Request::Other(s) => assert_eq!(s.chars().count(), MAX_REQUEST_CHARS + 1),
            r => panic!("{r:?}"),
        }
        assert_eq!(bounded("a\x1b[2Jb"), "a\u{fffd}[2Jb");
    }

    fn exec(host: &str, command: &str) -> Request {
        Request::Exec {
            host: host.into(),
            command: command.into(),
        }
    }

    #[test]
    fn exec_requests_pass_the_command_verbatim() {
        let c = |r: &str| classify(r, None);
        assert_eq!(
            c("web01 -- systemctl status nginx"),
            exec("web01", "systemctl status nginx")
        );
        // Everything after the first ` -- ` is the command, untouched:
        // quotes, a second `--`, leading blanks, newlines, `$(…)`.
        assert_eq!(
            c("web01 -- echo 'a  b' -- \"$(id)\""),
            exec("web01", "echo 'a  b' -- \"$(id)\"")
        );
        assert_eq!(c("web01 --  ls"), exec("web01", " ls"));
        assert_eq!(c("  web01   -- ls"), exec("web01", "ls"));
        assert_eq!(
            c("web01 -- cd /x\nmake\tall"),
            exec("web01", "cd /x\nmake\tall")
        );
        assert_eq!(c("web01\t--\tls"), exec("web01", "ls"));
        // `--` glued to a word is not the separator.
        assert_eq!(c("web01 --ls"), Request::Other("web01 --ls".into()));
        assert_eq!(c("a --b c"), Request::Other("a --b c".into()));
    }

    #[test]
    fn hostile_exec_requests() {
        let c = |r: &str| classify(r, None);
        let m = |x: Malformed| Request::Malformed(x);
        assert_eq!(
            c("web01 --"),
            m(Malformed::NoCommand {
                host: "web01".into()
            })
        );
        assert_eq!(
            c("web01 --   "),
            m(Malformed::NoCommand {
                host: "web01".into()
            })
        );
        assert_eq!(c("-- uptime"), m(Malformed::NoHost));
        assert_eq!(c("   -- uptime"), m(Malformed::NoHost));
        assert_eq!(c("--"), m(Malformed::NoHost));
        assert_eq!(c("web 01 -- uptime"), m(Malformed::BadHost));
        assert_eq!(c("x;y -- uptime"), m(Malformed::BadHost));
        assert_eq!(c("../etc -- uptime"), m(Malformed::BadHost));
        assert_eq!(c("@a/b -- uptime"), m(Malformed::BadHost));
        assert_eq!(c("@ -- uptime"), m(Malformed::BadHost));
        assert_eq!(c("web[ -- uptime"), m(Malformed::BadHost));
        assert_eq!(c("w$(x)* -- uptime"), m(Malformed::BadHost));
        assert_eq!(
            c("@web --"),
            m(Malformed::NoCommand {
                host: "@web".into()
            })
        );
        assert_eq!(c("web01 -- echo \x1b[2J"), m(Malformed::OddBytes));
        assert_eq!(c("web01 -- ls\r"), m(Malformed::OddBytes));
        assert_eq!(c("web01 -- cat \u{fffd}"), m(Malformed::OddBytes));
        assert_eq!(c("web\x0701 -- ls"), m(Malformed::OddBytes));
        let huge = format!("web01 -- {}", "x".repeat(MAX_REQUEST_BYTES));
        assert_eq!(c(&huge), m(Malformed::TooLong { bytes: huge.len() }));
        // Exactly at the limit is fine.
        let edge = format!("web01 -- {}", "y".repeat(MAX_REQUEST_BYTES - 9));
        assert!(matches!(c(&edge), Request::Exec { .. }));
        // Every refusal has a line to show.
        for r in [
            "web01 --",
            "-- x",
            "a b -- x",
            "@g/ -- x",
            "w -- \x01",
            &huge,
        ] {
            match c(r) {
                Request::Malformed(x) => assert!(!x.line().is_empty()),
                other => panic!("{r:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn group_and_glob_requests_are_batches() {
        let batch = |p: &str, cmd: &str| Request::Batch {
            pattern: p.into(),
            command: cmd.into(),
        };
        let c = |r: &str| classify(r, None);
        assert_eq!(c("@web -- uptime"), batch("@web", "uptime"));
        assert_eq!(c("web* -- uptime -p"), batch("web*", "uptime -p"));
        assert_eq!(c("db0? -- ls"), batch("db0?", "ls"));
        assert_eq!(c("web0[12] -- ls"), batch("web0[12]", "ls"));
        assert_eq!(c("* -- ls"), batch("*", "ls"));
        // A plain name stays a single-host exec.
        assert_eq!(c("web01 -- ls"), exec("web01", "ls"));
    }

    #[test]
    fn long_commands_keep_both_ends() {
        assert_eq!(recorded_command("ls"), ("ls".to_string(), None));
        let long = format!(
            "{}{}{}",
            "a".repeat(9000),
            "é".repeat(2000),
            "z".repeat(9000)
        );
        let (text, len) = recorded_command(&long);
        assert_eq!(len, Some(long.len()));
        assert!(text.starts_with(&"a".repeat(8192)));
        assert!(text.ends_with(&"z".repeat(8192)));
        assert!(text.contains('…'));
        assert!(text.len() <= MAX_RECORDED_COMMAND + 3);
        // A cut inside a multi-byte character moves to its boundary.
        let wide = "é".repeat(10_000);
        let (text, _) = recorded_command(&wide);
        assert!(text.chars().filter(|&c| c == 'é').count() >= 8190);
    }

    #[test]
    fn sftp_requests_need_gatehouse_host() {
        for server in [
            "/usr/lib/openssh/sftp-server",
            "/usr/libexec/sftp-server -l INFO",
            "internal-sftp",
            "sftp-server",
        ] {
            assert_eq!(
                classify(server, Some("web01")),
                Request::Transfer {
                    host: "web01".into()
                },
                "{server}"
            );
            assert_eq!(
                classify(server, None),
                Request::Malformed(Malformed::TransferWithoutHost)
            );
            assert_eq!(
                classify(server, Some("web01; rm -rf /")),
                Request::Malformed(Malformed::BadHostEnv)
            );
        }
        assert_eq!(
            classify("/usr/bin/sftp-server2", Some("web01")),
            Request::Other("/usr/bin/sftp-server2".into())
        );
    }

    #[test]
    fn gatehouse_host_names_the_session_host() {
        assert_eq!(classify("", Some("web01")), Request::Host("web01".into()));
        assert_eq!(classify("", Some(" ")), Request::Menu);
        assert_eq!(
            classify("", Some("../x")),
            Request::Malformed(Malformed::BadHostEnv)
        );
        // An explicit request wins over the variable.
        assert_eq!(
            classify("db01", Some("web01")),
            Request::Host("db01".into())
        );
        assert_eq!(classify("db01 -- ls", Some("web01")), exec("db01", "ls"));
    }
}
