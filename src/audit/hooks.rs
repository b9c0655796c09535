//! What the login does with its audit log right after opening it, kept
//! here so that `login.rs` needs one call: the syslog copy (if configured)
//! and the cheap abandoned-session sweep of the operator's own file.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use super::{abandoned, AuditLog};
use crate::core::config::Settings;
use crate::report;

/// The system logger's socket.
pub const DEV_LOG: &str = "/dev/log";

pub fn after_open(audit: &mut AuditLog, settings: &Settings, privileged: bool) {
    if let Some(name) = &settings.bastion_name {
        audit.set_bastion(name);
    }
    // No key file, no sealing (`gatehouse seal --init` makes one). A key
    // that exists but cannot be used shows at the first seal (syslog and
    // an `error` record), never as a refused login.
    let sealing = std::fs::symlink_metadata(&settings.seal_key).is_ok();
    if sealing {
        audit.enable_sealing(&settings.seal_key, settings.seal_interval);
    }
    if settings.syslog_copy {
        // The socket is fixed when privileged: an operator must not
        // redirect copies of the audit trail (the setting is for tests and
        // unprivileged set-ups).
        let socket = match &settings.syslog_socket {
            Some(p) if !privileged => p.clone(),
            _ => PathBuf::from(DEV_LOG),
        };
        audit.copy_to_syslog(socket);
    }
    // Bounded: only the tail of the operator's own file. A failure here is
    // reported, not fatal: this login's own records are unaffected, and
    // `gatehouse audit --check` does the full job.
    if let Err(e) = abandoned::sweep_sealed(
        audit.path(),
        Some(abandoned::LOGIN_TAIL_BYTES),
        sealing.then_some(settings.seal_key.as_path()),
    ) {
        report::syslog(&format!("abandoned-session check: {e}"));
    }
}
