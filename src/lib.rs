//! Gatehouse: an auditing jump-host login shell.
//!
//! `run` decides which world we are in (an operator's login or an admin at
//! a shell), installs the panic guard, and hands over.
//!
//! The tree has three sides and a shared floor (docs/architecture.md):
//! - [`core`]: pure — config, invocation, access and command policy,
//!   capture, the record schema. No terminal, socket or process code;
//!   imports nothing outside itself.
//! - [`operator`]: what runs for an operator — login, menu, session,
//!   relay, upstream, exec, batch, file transfer, agent.
//! - [`admin`]: the tools an admin runs by hand.
//! - shared by both sides: the audit writer and reader ([`audit`]),
//!   [`privilege`], [`identity`], [`process`], [`recording`], [`report`],
//!   [`live`], [`tty`], and [`sys`], the one module with `unsafe`.
//!
//! `admin` never imports `operator`, `operator` never imports `admin`
//! (checked by `make lint`, scripts/layers.sh).
pub mod core;
pub mod operator;

pub mod admin;

pub mod audit;
pub mod identity;
pub mod live;
pub mod privilege;
pub mod process;
pub mod recording;
pub mod report;
pub mod sys;
pub mod tty;

use std::ffi::OsString;

/// Entry point; returns the process exit status.
pub fn run() -> i32 {
    // Never show a Rust panic message or backtrace to an operator: restore
    // the terminal and print one calm line; the details go to syslog.
    std::panic::set_hook(Box::new(|info| {
        tty::emergency_restore();
        report::syslog(&format!("internal error: {info}"));
        report::write_err(
            "\r\ngatehouse: internal error; the session was closed. Please tell your administrator.\r",
        );
    }));
    // Harden the process (every run, once); setuid: take the environment,
    // umask and limits away from the operator before anything reads them
    // (privilege.rs).
    if let Err(e) = privilege::enter() {
        report::admin(privilege::privileged(), &e.to_string());
        report::unavailable("internal error");
        return 1;
    }
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Lossy, so that bytes that are not UTF-8 show as U+FFFD and the
    // request is refused (invocation::classify), instead of vanishing.
    let original =
        std::env::var_os("SSH_ORIGINAL_COMMAND").map(|v| v.to_string_lossy().into_owned());
    let result =
        std::panic::catch_unwind(
            || match core::invocation::parse(&argv, original.as_deref()) {
                Ok(core::invocation::Invocation::Login { request }) => {
                    operator::login::login(&request)
                }
                Ok(core::invocation::Invocation::Admin(cmd)) => admin::run(cmd),
                Err(e) => {
                    eprintln!("gatehouse: {e}");
                    2
                }
            },
        );
    result.unwrap_or(70)
}
