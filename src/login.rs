//! An operator's login: operator → config → policy → (direct host | menu)
//! → visit → back to the menu. Nothing the operator asks for is executed.
#![forbid(unsafe_code)]

use std::time::Instant;

use crate::audit::{AuditLog, DenyReason, Event};
use crate::command_policy::Who;
use crate::config::{config_path, Config};
use crate::exec::{Exec, Job};
use crate::identity::{self, Operator};
use crate::invocation::{self, Malformed, Request};
use crate::menu::{self, Choice};
use crate::policy::{self, Grant};
use crate::report;
use crate::session::{Outcome, Visit};
use crate::sys::SignalPipe;
use crate::tty;

use crate::privilege::privileged;

/// An environment value. When privileged, `privilege::enter` has already
/// dropped every variable but a vetted few (TERM, SSH_*).
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn login(request: &str) -> i32 {
    let privileged = privileged();
    // No core dumps and no ptrace by the operator's uid: credentials pass
    // through this process's memory.
    if let Err(e) = crate::sys::harden_process() {
        report::admin(privileged, &format!("cannot harden the process: {e}"));
        report::unavailable("internal error");
        return 1;
    }
    let signals = match SignalPipe::install() {
        Ok(s) => s,
        Err(e) => {
            report::admin(privileged, &format!("cannot install signal handlers: {e}"));
            report::unavailable("internal error");
            return 1;
        }
    };
    let path = config_path(privileged);
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            report::admin(privileged, &e.to_string());
            report::unavailable("configuration error");
            return 1;
        }
    };
    // The config first: it says whether the operator's groups matter.
    let operator = match Operator::from_real_uid(config.names_unix_groups()) {
        Ok(o) => o,
        Err(e) => {
            report::admin(privileged, &e.to_string());
            report::unavailable("unknown user");
            return 1;
        }
    };
    // Refuse a config that anyone but root or us could change (doas-style).
    if let Err(e) = crate::privilege::check_files(&config, privileged) {
        report::admin(privileged, &e.to_string());
        report::unavailable("unsafe file permissions");
        return 1;
    }
    let login_id = uuid::Uuid::now_v7().to_string();
    let client = identity::client(env_var("SSH_CONNECTION").as_deref());
    let mut audit =
        match AuditLog::open(&config.settings.log_dir, &operator.name, &login_id, &client) {
            Ok(a) => a,
            Err(e) => {
                report::admin(privileged, &e.to_string());
                report::unavailable("the audit log cannot be written");
                return 1;
            }
        };
    crate::audit::hooks::after_open(&mut audit, &config.settings, privileged);
    let started = Instant::now();
    let req = invocation::classify(request, env_var(invocation::HOST_ENV).as_deref());
    let mode = match req {
        Request::Menu => "menu",
        Request::Exec { .. } | Request::Batch { .. } => "exec",
        Request::Transfer { .. } => "transfer",
        _ => "direct",
    };
    let auth = identity::ssh_auth(env_var("SSH_USER_AUTH").as_deref());
    if let Err(e) = audit.write(&Event::Login {
        pid: std::process::id(),
        mode,
        auth: auth.as_deref(),
    }) {
        report::admin(privileged, &e.to_string());
        report::unavailable("the audit log cannot be written");
        return 1;
    }
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
    code
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
    fn deny(&mut self, request: &str, reason: DenyReason, line: &str) -> i32 {
        let request = invocation::bounded(request);
        if let Err(e) = self.audit.write(&Event::Denied {
            request: &request,
            reason,
        }) {
            report::admin(self.privileged, &e.to_string());
        }
        crate::say_err!("gatehouse: {line}");
        1
    }

    fn dispatch(&mut self, req: Request, raw: &str) -> i32 {
        match req {
            Request::Malformed(m) => {
                // sftp without a host is what it always was: not a host.
                let reason = match m {
                    Malformed::TransferWithoutHost => DenyReason::NotAHost,
                    _ => DenyReason::BadRequest,
                };
                self.deny(raw, reason, &m.line())
            }
            Request::Exec { host, command } => {
                let Some(h) = self.granted(raw, &host, Grant::Exec) else {
                    return 1;
                };
                self.exec(h, Job::Command(&command))
            }
            Request::Batch { pattern, command } => {
                let config = self.config;
                let operator = self.operator;
                // Hosts the operator may not run commands on are left out
                // without a word: a pattern must not probe the inventory.
                let hosts = crate::batch::matching_hosts(&config.hosts, &pattern, |h| {
                    policy::permits_to(config, operator, h, Grant::Exec)
                });
                if hosts.is_empty() {
                    return self.deny(
                        raw,
                        DenyReason::NotPermitted,
                        &format!("{pattern}: no hosts among those you may run commands on."),
                    );
                }
                crate::batch::Batch {
                    audit: self.audit,
                    settings: &config.settings,
                    signals: self.signals,
                    policy: &config.policy,
                    who: Who::from(operator),
                }
                .run(&hosts, &command)
            }
            Request::Transfer { host } => {
                let Some(h) = self.granted(raw, &host, Grant::Transfer) else {
                    return 1;
                };
                self.exec(h, Job::Sftp)
            }
            Request::Other(text) => self.deny(
                raw,
                DenyReason::NotAHost,
                &format!(
                    "this is a jump host; it runs no commands (asked for: {text}). Connect without a command for the menu."
                ),
            ),
            Request::Host(name) => {
                let Some(host) = policy::lookup(self.config, self.operator, &name) else {
                    return self.deny(
                        raw,
                        DenyReason::NotPermitted,
                        &format!("{name}: no such host among those you may use."),
                    );
                };
                if !tty::is_interactive() {
                    return self.deny(
                        raw,
                        DenyReason::NoTty,
                        &format!("{name} needs a terminal: connect with `ssh -t`."),
                    );
                }
                let outcome = self.visit(host);
                crate::say_err!("gatehouse: {}", outcome.operator_line(&host.name));
                outcome.exit_code()
            }
            Request::Menu => {
                if !tty::is_interactive() {
                    return self.deny(
                        raw,
                        DenyReason::NoTty,
                        "the host menu needs a terminal: connect with `ssh -t`.",
                    );
                }
                self.menu_loop()
            }
        }
    }

    /// The host named `name` when the operator may do `grant` there; else
    /// the refusal is recorded and shown, and `None`. An unknown host and
    /// one the operator may not reach at all get the same line.
    fn granted(&mut self, raw: &str, name: &str, grant: Grant) -> Option<&'a crate::config::Host> {
        let config = self.config;
        let Some(host) = policy::lookup(config, self.operator, name) else {
            self.deny(
                raw,
                DenyReason::NotPermitted,
                &format!("{name}: no such host among those you may use."),
            );
            return None;
        };
        if !policy::permits_to(config, self.operator, host, grant) {
            let what = match grant {
                Grant::Exec => "run commands",
                Grant::Transfer => "transfer files",
                Grant::Session => "log in",
            };
            self.deny(
                raw,
                DenyReason::NotPermitted,
                &format!("{name}: you may not {what} there; ask your administrator."),
            );
            return None;
        }
        Some(host)
    }

    fn exec(&mut self, host: &crate::config::Host, job: Job<'_>) -> i32 {
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
        if let Some(line) = outcome.operator_line(&host.name) {
            crate::say_err!("gatehouse: {line}");
        }
        outcome.exit_code()
    }

    fn visit(&mut self, host: &crate::config::Host) -> Outcome {
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

    fn menu_loop(&mut self) -> i32 {
        let hosts = policy::permitted_hosts(self.config, self.operator);
        if hosts.is_empty() {
            return self.deny(
                "",
                DenyReason::NoHosts,
                "there are no hosts you may use; please ask your administrator.",
            );
        }
        let items = menu::Items::new(&hosts);
        loop {
            if self.signals.must_leave() {
                return 0;
            }
            if let Some(idle) = self.config.settings.idle_timeout {
                crate::sys::arm_menu_timeout(idle.as_secs().min(u32::MAX as u64) as u32);
            }
            let choice = menu::choose(&items, &self.operator.name);
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
                    match &outcome {
                        // The audit trail is gone: no further session may start.
                        Outcome::Failed(_) => return 1,
                        // The operator's terminal is gone: nobody to show a menu to.
                        Outcome::Ended(end) if end.reason == crate::audit::EndReason::Hangup => {
                            return 0
                        }
                        _ => {}
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
