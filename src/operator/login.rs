//! An operator's login: operator → config → policy → (direct host | menu)
//! → visit → back to the menu. Nothing the operator asks for is executed.
#![forbid(unsafe_code)]

use std::time::Instant;

use crate::audit::{AuditLog, DenyReason, EndReason, Event};
use crate::core::command_policy::Who;
use crate::core::config::{config_path, Config, Host};
use crate::core::invocation::{self, Malformed, Request};
use crate::core::policy::{self, Grant};
use crate::identity::{self, Operator};
use crate::operator::error::LoginError;
use crate::operator::exec::{Exec, ExecOutcome, Job};
use crate::operator::menu::{self, Choice};
use crate::operator::session::{Outcome, Visit};
use crate::report;
use crate::sys::SignalPipe;
use crate::tty;

use crate::privilege::privileged;

/// An environment value. When privileged, `privilege::enter` has already
/// dropped every variable but a vetted few (TERM, SSH_*).
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// An operator's login for `request` (empty: the menu); returns the exit
/// status.
pub fn login(request: &str) -> i32 {
    let privileged = privileged();
    match start_and_run(request, privileged) {
        Ok(code) => code,
        // The one place a login that cannot start is reported: the
        // admin's detail to syslog (and stderr when unprivileged), one
        // calm line to the operator.
        Err(e) => {
            report::admin(privileged, &e.to_string());
            report::unavailable(e.operator_line());
            1
        }
    }
}

/// Everything up to the `login` record can stop the login (`Err`); after
/// it, the request is decided and carried out, and its exit code returned.
fn start_and_run(request: &str, privileged: bool) -> Result<i32, LoginError> {
    // The process is already hardened (no core, no ptrace by the
    // operator's uid): `privilege::enter`, before either side runs.
    let signals = SignalPipe::install().map_err(LoginError::Signals)?;
    let config = Config::load(&config_path(privileged))?;
    // The config first: it says whether the operator's groups matter.
    let operator = Operator::from_real_uid(config.names_unix_groups())?;
    // Refuse a config that anyone but root or us could change (doas-style).
    crate::privilege::check_files(&config, privileged)?;
    let login_id = uuid::Uuid::now_v7().to_string();
    let client = identity::client(env_var("SSH_CONNECTION").as_deref());
    let mut audit = AuditLog::open(&config.settings.log_dir, &operator.name, &login_id, &client)?;
    crate::audit::hooks::after_open(&mut audit, &config.settings, privileged);
    let started = Instant::now();
    let req = invocation::classify(request, env_var(invocation::HOST_ENV).as_deref());
    let auth = identity::ssh_auth(env_var("SSH_USER_AUTH").as_deref());
    audit.write(&Event::Login {
        pid: std::process::id(),
        mode: mode(&req),
        auth: auth.as_deref(),
    })?;
    let term = tty::term_name(env_var("TERM").as_deref());
    let mut ctx = Ctx {
        config: &config,
        operator: &operator,
        audit: &mut audit,
        signals: &signals,
        term: &term,
        privileged,
    };
    let code = ctx.dispatch(req, request);
    let _ = audit.write(&Event::Logout {
        duration_ms: started.elapsed().as_millis() as u64,
        reason: crate::sys::menu_timed_out().then_some("idle_timeout"),
    });
    Ok(code)
}

/// The `login` record's `mode`.
fn mode(req: &Request) -> &'static str {
    match req {
        Request::Menu => "menu",
        Request::Exec { .. } | Request::Batch { .. } => "exec",
        Request::Transfer { .. } => "transfer",
        _ => "direct",
    }
}

struct Ctx<'a> {
    config: &'a Config,
    operator: &'a Operator,
    audit: &'a mut AuditLog,
    signals: &'a SignalPipe,
    term: &'a str,
    privileged: bool,
}

impl<'a> Ctx<'a> {
    /// Records the refusal (`denied`) and shows its one line.
    fn deny(&mut self, request: &str, reason: DenyReason, line: &str) -> i32 {
        if let Err(e) = self.audit.write(&Event::Denied { request, reason }) {
            report::admin(self.privileged, &e.to_string());
        }
        crate::say_err!("gatehouse: {line}");
        1
    }

    fn dispatch(&mut self, req: Request, raw: &str) -> i32 {
        let config = self.config;
        match decide(req, raw, config, self.operator, tty::is_interactive) {
            Decision::Deny {
                request,
                reason,
                line,
            } => self.deny(&request, reason, &line),
            Decision::Exec { host, command } => self.exec(host, Job::Command(&command)),
            Decision::Transfer(host) => self.exec(host, Job::Sftp),
            Decision::Batch { hosts, command } => crate::operator::batch::Batch {
                audit: self.audit,
                settings: &config.settings,
                signals: self.signals,
                policy: &config.policy,
                who: Who::from(self.operator),
            }
            .run(&hosts, &command),
            Decision::Visit(host) => {
                let outcome = self.visit(host);
                crate::say_err!("gatehouse: {}", outcome.operator_line(&host.name));
                outcome.exit_code()
            }
            Decision::Menu(hosts) => self.menu_loop(hosts),
        }
    }

    fn exec(&mut self, host: &Host, job: Job<'_>) -> i32 {
        let outcome = Exec {
            audit: self.audit,
            user: &self.operator.name,
            settings: &self.config.settings,
            signals: self.signals,
            term: self.term,
            policy: &self.config.policy,
            who: Who::from(self.operator),
        }
        .run(host, job);
        // Reported here, once: the admin's detail of a run that failed
        // closed (the operator's line follows).
        if let ExecOutcome::Failed(e) = &outcome {
            report::syslog(&e.to_string());
        }
        if let Some(line) = outcome.operator_line(&host.name) {
            crate::say_err!("gatehouse: {line}");
        }
        outcome.exit_code()
    }

    fn visit(&mut self, host: &Host) -> Outcome {
        Visit {
            audit: self.audit,
            user: &self.operator.name,
            who: Who::from(self.operator),
            policy: &self.config.policy,
            settings: &self.config.settings,
            signals: self.signals,
            term: self.term,
        }
        .run(host)
    }

    /// `hosts`: those the operator may use, never empty (`decide`).
    fn menu_loop(&mut self, hosts: Vec<&Host>) -> i32 {
        let items = menu::Items::new(&hosts);
        loop {
            if self.signals.must_leave() {
                return 0;
            }
            if let Some(idle) = self.config.settings.idle_timeout {
                crate::sys::arm_menu_timeout(idle.as_secs().min(u32::MAX as u64) as u32);
            }
            // What ends the wait for a key: leaving, the idle timeout, an
            // administrator's kill (SIGUSR1 with the note, as the relay
            // takes it). Any other signal, a bare SIGUSR1 or a resize,
            // leaves the prompt as it is.
            let signals = self.signals;
            let stop = || {
                signals.must_leave()
                    || crate::sys::menu_timed_out()
                    || (signals.kill_pending() && crate::live::kill_note().is_some())
            };
            let choice = menu::choose(&items, &self.operator.name, &stop);
            crate::sys::disarm_menu_timeout();
            if crate::sys::menu_timed_out() {
                crate::say_err!("gatehouse: idle for too long at the menu; goodbye.");
                return 0;
            }
            match choice {
                Ok(Choice::Host(i)) => {
                    let host = hosts[i];
                    crate::say_out!("Connecting to {}…", host.name);
                    let outcome = self.visit(host);
                    crate::say_out!("{}", outcome.operator_line(&host.name));
                    if let Some(code) = after_visit(&outcome) {
                        return code;
                    }
                }
                Ok(Choice::Quit) => return 0,
                Ok(Choice::Interrupted) => {
                    if self.signals.must_leave() {
                        return 0;
                    }
                    // Ctrl-C at the menu: stay at the menu.
                }
                // End of file or I/O error on the terminal (hang-up): leave.
                Err(_) => return 0,
            }
        }
    }
}

/// After a visit started from the menu: `Some(exit code)` ends the login,
/// `None` shows the menu again.
fn after_visit(outcome: &Outcome) -> Option<i32> {
    match outcome {
        // The audit trail is gone: no further session may start.
        Outcome::Failed(_) => Some(1),
        // The operator's terminal is gone: nobody to show a menu to.
        Outcome::Ended(end) if end.reason == EndReason::Hangup => Some(0),
        _ => None,
    }
}

/// What a request leads to, once the config and the operator are known.
/// Pure but for `interactive`, asked only where a terminal is needed.
#[derive(Debug)]
enum Decision<'a> {
    /// Refused: `request` (bounded) and `reason` go into the `denied`
    /// record, `line` to the operator.
    Deny {
        request: String,
        reason: DenyReason,
        line: String,
    },
    /// `HOST`: an interactive visit, then exit with its status.
    Visit(&'a Host),
    /// `HOST -- COMMAND`.
    Exec { host: &'a Host, command: String },
    /// `@group -- COMMAND` / `glob -- COMMAND`: never empty.
    Batch {
        hosts: Vec<&'a Host>,
        command: String,
    },
    /// sftp with `GATEHOUSE_HOST`.
    Transfer(&'a Host),
    /// No request: the menu of these hosts (never empty).
    Menu(Vec<&'a Host>),
}

/// Decides where `req` (classified from `raw`) leads for `operator`. An
/// unknown host and one the operator may not reach at all get the same
/// line (no inventory probing); a pattern leaves out, without a word, the
/// hosts the operator may not run commands on.
// long: one arm per kind of request with the access check it needs;
// pure, each arm unit-tested.
fn decide<'a>(
    req: Request,
    raw: &str,
    config: &'a Config,
    operator: &Operator,
    interactive: impl Fn() -> bool,
) -> Decision<'a> {
    let deny = |reason, line: String| Decision::Deny {
        request: invocation::bounded(raw),
        reason,
        line,
    };
    let no_such_host = |name: &str| {
        deny(
            DenyReason::NotPermitted,
            format!("{name}: no such host among those you may use."),
        )
    };
    // The host named `name` when the operator may do `grant` there.
    let granted = |name: &str, grant: Grant| -> Result<&'a Host, Decision<'a>> {
        let host = policy::lookup(config, operator, name).ok_or_else(|| no_such_host(name))?;
        if policy::permits_to(config, operator, host, grant) {
            return Ok(host);
        }
        let what = match grant {
            Grant::Exec => "run commands",
            Grant::Transfer => "transfer files",
            Grant::Session => "log in",
        };
        Err(deny(
            DenyReason::NotPermitted,
            format!("{name}: you may not {what} there; ask your administrator."),
        ))
    };
    match req {
        Request::Malformed(m) => {
            // sftp without a host is what it always was: not a host.
            let reason = match m {
                Malformed::TransferWithoutHost => DenyReason::NotAHost,
                _ => DenyReason::BadRequest,
            };
            deny(reason, m.line())
        }
        Request::Exec { host, command } => match granted(&host, Grant::Exec) {
            Ok(host) => Decision::Exec { host, command },
            Err(refused) => refused,
        },
        Request::Batch { pattern, command } => {
            let hosts = crate::operator::batch::matching_hosts(&config.hosts, &pattern, |h| {
                policy::permits_to(config, operator, h, Grant::Exec)
            });
            if hosts.is_empty() {
                return deny(
                    DenyReason::NotPermitted,
                    format!("{pattern}: no hosts among those you may run commands on."),
                );
            }
            Decision::Batch { hosts, command }
        }
        Request::Transfer { host } => match granted(&host, Grant::Transfer) {
            Ok(host) => Decision::Transfer(host),
            Err(refused) => refused,
        },
        Request::Other(text) => deny(
            DenyReason::NotAHost,
            format!(
                "this is a jump host; it runs no commands (asked for: {text}). Connect without a command for the menu."
            ),
        ),
        Request::Host(name) => {
            let Some(host) = policy::lookup(config, operator, &name) else {
                return no_such_host(&name);
            };
            if !interactive() {
                return deny(
                    DenyReason::NoTty,
                    format!("{name} needs a terminal: connect with `ssh -t`."),
                );
            }
            Decision::Visit(host)
        }
        Request::Menu => {
            if !interactive() {
                return deny(
                    DenyReason::NoTty,
                    "the host menu needs a terminal: connect with `ssh -t`.".into(),
                );
            }
            let hosts = policy::permitted_hosts(config, operator);
            if hosts.is_empty() {
                // The record holds no request: the menu was asked for.
                return Decision::Deny {
                    request: String::new(),
                    reason: DenyReason::NoHosts,
                    line: "there are no hosts you may use; please ask your administrator.".into(),
                };
            }
            Decision::Menu(hosts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        let host = |name: &str, groups: &str| {
            format!(
                "[[hosts]]\nname = \"{name}\"\naddress = \"a\"\nuser = \"u\"\nkey = \"/k\"\ngroups = [{groups}]\n"
            )
        };
        let text = [
            host("web01", "\"web\""),
            host("web02", "\"web\""),
            host("db01", ""),
            r#"
[[access]]
users = ["alice"]
hosts = ["web01", "db01"]
[[access]]
users = ["alice"]
hosts = ["web01"]
exec = true
[[access]]
users = ["alice"]
hosts = ["db01"]
transfer = true
"#
            .to_string(),
        ]
        .concat();
        Config::parse(Path::new("/c.toml"), &text).unwrap()
    }

    fn op(name: &str) -> Operator {
        Operator {
            uid: 1000,
            name: name.into(),
            groups: Vec::new(),
        }
    }

    /// `decide` for `raw` (and `GATEHOUSE_HOST`), as one line: where it
    /// leads, or `deny <reason> <request>: <line>`.
    fn decided(user: &str, raw: &str, host_env: Option<&str>, tty: bool) -> String {
        let c = config();
        let names = |hs: &[&Host]| {
            hs.iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        match decide(
            invocation::classify(raw, host_env),
            raw,
            &c,
            &op(user),
            || tty,
        ) {
            Decision::Deny {
                request,
                reason,
                line,
            } => format!("deny {reason:?} {request:?}: {line}"),
            Decision::Visit(h) => format!("visit {}", h.name),
            Decision::Exec { host, command } => format!("exec {} {command:?}", host.name),
            Decision::Batch { hosts, command } => format!("batch {} {command:?}", names(&hosts)),
            Decision::Transfer(h) => format!("transfer {}", h.name),
            Decision::Menu(hosts) => format!("menu {}", names(&hosts)),
        }
    }

    #[test]
    fn each_request_leads_where_the_rules_say() {
        let cases: &[(&str, Option<&str>, bool, &str)] = &[
            ("", None, true, "menu web01,db01"),
            ("web01", None, true, "visit web01"),
            ("  web01 ", None, true, "visit web01"),
            ("", Some("db01"), true, "visit db01"),
            ("web01 -- uptime", None, false, "exec web01 \"uptime\""),
            (
                "web01 --  two  blanks",
                None,
                false,
                "exec web01 \" two  blanks\"",
            ),
            ("web* -- uptime", None, false, "batch web01 \"uptime\""),
            ("@web -- uptime", None, false, "batch web01 \"uptime\""),
            ("internal-sftp", Some("db01"), false, "transfer db01"),
            (
                "/usr/lib/openssh/sftp-server -l INFO",
                Some("db01"),
                false,
                "transfer db01",
            ),
        ];
        for (raw, env, tty, want) in cases {
            assert_eq!(decided("alice", raw, *env, *tty), *want, "{raw:?} {env:?}");
        }
    }

    #[test]
    fn refusals_carry_their_reason_the_request_and_one_line() {
        let cases: &[(&str, &str, Option<&str>, bool, &str)] = &[
            // Unknown and forbidden hosts read the same (no probing).
            ("alice", "nosuch", None, true,
             "deny NotPermitted \"nosuch\": nosuch: no such host among those you may use."),
            ("alice", "web02", None, true,
             "deny NotPermitted \"web02\": web02: no such host among those you may use."),
            ("alice", "web02 -- id", None, false,
             "deny NotPermitted \"web02 -- id\": web02: no such host among those you may use."),
            // Reachable, but not for this.
            ("alice", "db01 -- id", None, false,
             "deny NotPermitted \"db01 -- id\": db01: you may not run commands there; ask your administrator."),
            ("alice", "internal-sftp", Some("web01"), false,
             "deny NotPermitted \"internal-sftp\": web01: you may not transfer files there; ask your administrator."),
            ("alice", "db* -- id", None, false,
             "deny NotPermitted \"db* -- id\": db*: no hosts among those you may run commands on."),
            // A session and the menu need a terminal.
            ("alice", "web01", None, false,
             "deny NoTty \"web01\": web01 needs a terminal: connect with `ssh -t`."),
            ("alice", "", None, false,
             "deny NoTty \"\": the host menu needs a terminal: connect with `ssh -t`."),
            // Nothing to show: the record holds no request.
            ("bob", " ", None, true,
             "deny NoHosts \"\": there are no hosts you may use; please ask your administrator."),
            // Not a host at all.
            ("alice", "bash -i", None, true,
             "deny NotAHost \"bash -i\": this is a jump host; it runs no commands (asked for: bash -i). Connect without a command for the menu."),
            ("alice", "internal-sftp", None, false,
             "deny NotAHost \"internal-sftp\": name the host for file transfer: sftp -o SetEnv=GATEHOUSE_HOST=HOST bastion"),
            ("alice", "web01 --", None, false,
             "deny BadRequest \"web01 --\": nothing to run: write `web01 -- COMMAND`."),
        ];
        for (user, raw, env, tty, want) in cases {
            assert_eq!(
                decided(user, raw, *env, *tty),
                *want,
                "{user} {raw:?} {env:?}"
            );
        }
    }

    #[test]
    fn a_refused_request_is_recorded_bounded() {
        let raw = format!("{} x", "a".repeat(400));
        let got = decided("alice", &raw, None, true);
        let request = invocation::bounded(&raw);
        assert!(request.chars().count() < raw.chars().count());
        assert!(
            got.starts_with(&format!("deny NotAHost {request:?}: ")),
            "{got}"
        );
    }

    #[test]
    fn after_a_visit_the_menu_returns_unless_the_books_or_the_terminal_are_gone() {
        let ended = |reason| {
            Outcome::Ended(crate::operator::relay::RelayEnd {
                reason,
                detail: None,
                exit_status: Some(3),
                exit_signal: None,
                bytes_in: 0,
                bytes_out: 0,
                books: None,
            })
        };
        for reason in [
            EndReason::Exit,
            EndReason::IdleTimeout,
            EndReason::Disconnect,
            EndReason::Killed,
            EndReason::Error,
            EndReason::Abandoned,
        ] {
            assert_eq!(after_visit(&ended(reason)), None, "{reason:?}");
        }
        assert_eq!(after_visit(&ended(EndReason::Hangup)), Some(0));
        let unreachable =
            Outcome::ConnectFailed(crate::operator::upstream::ConnectError::Interrupted);
        assert_eq!(after_visit(&unreachable), None);
        let failed = Outcome::Failed("the audit log cannot be written; session closed".into());
        assert_eq!(after_visit(&failed), Some(1));
    }

    #[test]
    fn the_login_record_names_the_mode() {
        let cases = [
            ("", "menu"),
            ("web01", "direct"),
            ("bash", "direct"),
            ("web01 -- id", "exec"),
            ("@web -- id", "exec"),
        ];
        for (raw, want) in cases {
            assert_eq!(mode(&invocation::classify(raw, None)), want, "{raw:?}");
        }
        let sftp = invocation::classify("internal-sftp", Some("db01"));
        assert_eq!(mode(&sftp), "transfer");
    }
}
