//! Gatehouse: an auditing jump-host login shell.
//!
//! `run` decides which world we are in (an operator's login or an admin at
//! a shell), installs the panic guard, and hands over.
pub mod admin;
pub mod agent;
pub mod audit;
pub mod batch;
pub mod capture;
pub mod command_policy;
pub mod config;
pub mod exec;
pub mod identity;
pub mod invocation;
pub mod live;
pub mod login;
pub mod menu;
pub mod policy;
pub mod privilege;
pub mod process;
pub mod recording;
pub mod relay;
pub mod report;
pub mod session;
pub mod sftp;
pub mod sys;
pub mod text;
pub mod tty;
pub mod upstream;

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
    // Setuid: take the environment, umask and limits away from the
    // operator before anything reads them (privilege.rs).
    if let Err(e) = privilege::enter() {
        report::admin(true, &e);
        report::unavailable("internal error");
        return 1;
    }
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Lossy, so that bytes that are not UTF-8 show as U+FFFD and the
    // request is refused (invocation::classify), instead of vanishing.
    let original =
        std::env::var_os("SSH_ORIGINAL_COMMAND").map(|v| v.to_string_lossy().into_owned());
    let result = std::panic::catch_unwind(|| match invocation::parse(&argv, original.as_deref()) {
        Ok(invocation::Invocation::Login { request }) => login::login(&request),
        Ok(invocation::Invocation::Admin(cmd)) => {
            let harmless = matches!(cmd, invocation::Admin::Help | invocation::Admin::Version);
            match privilege::admin_allowed() {
                Err(e) if !harmless => {
                    eprintln!("gatehouse: {e}");
                    1
                }
                _ => admin::run(cmd),
            }
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            2
        }
    });
    result.unwrap_or(70)
}
