//! The operator side's errors, each written for both of its readers:
//! `Display` is the admin's detail (the path, the uid, the errno — it goes
//! to syslog), `operator_line` the words the operator reads.
//!
//! - [`LoginError`]: a login cannot start (reported by `login::login`,
//!   inside "service unavailable (…)"; unprivileged, the detail goes to
//!   stderr too).
//! - [`FailClosed`]: an exec, a transfer or a batch must stop because a
//!   record or the recording cannot be written (reported where the run is
//!   shown to the operator: `login`'s exec, `Batch::run`).
//!
//! An interactive visit's books have their own [`BooksError`] at the
//! relay's boundary (src/operator/relay.rs), with "session closed" for the
//! operator instead of "stopped".
//!
//! Converting into these types has no side effect: each is reported once,
//! in one place, by whoever gives up.
//!
//! [`BooksError`]: crate::operator::relay::BooksError
#![forbid(unsafe_code)]

use std::fmt;

use crate::audit::AuditError;
use crate::core::config::ConfigError;
use crate::identity::IdentityError;
use crate::privilege::Insecure;
use crate::recording::RecordingError;

#[derive(Debug)]
pub enum LoginError {
    /// The signal self-pipe could not be set up.
    Signals(nix::Error),
    /// The real uid has no usable user name.
    Identity(IdentityError),
    /// The config cannot be read or is invalid (`path:line:column: …`).
    Config(ConfigError),
    /// A file the config trusts could be changed by someone else.
    Insecure(Insecure),
    /// The operator's audit file cannot be opened or the `login` record
    /// written: nothing may happen without it (fail closed).
    Audit(AuditError),
}

impl LoginError {
    /// What the operator reads, inside "service unavailable (…); please
    /// tell your administrator." Nothing about paths or accounts.
    pub fn operator_line(&self) -> &'static str {
        match self {
            LoginError::Signals(_) => "internal error",
            LoginError::Identity(_) => "unknown user",
            LoginError::Config(_) => "configuration error",
            LoginError::Insecure(_) => "unsafe file permissions",
            LoginError::Audit(_) => "the audit log cannot be written",
        }
    }
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            LoginError::Identity(e) => e.fmt(f),
            LoginError::Config(e) => e.fmt(f),
            LoginError::Insecure(e) => e.fmt(f),
            LoginError::Audit(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LoginError {}

impl From<IdentityError> for LoginError {
    fn from(e: IdentityError) -> Self {
        LoginError::Identity(e)
    }
}

impl From<ConfigError> for LoginError {
    fn from(e: ConfigError) -> Self {
        LoginError::Config(e)
    }
}

impl From<Insecure> for LoginError {
    fn from(e: Insecure) -> Self {
        LoginError::Insecure(e)
    }
}

impl From<AuditError> for LoginError {
    fn from(e: AuditError) -> Self {
        LoginError::Audit(e)
    }
}

/// A record, or the recording, of an exec, a transfer or a batch cannot
/// be written: the run stops there (fail closed).
#[derive(Debug)]
pub enum FailClosed {
    Audit(AuditError),
    Recording(RecordingError),
}

impl FailClosed {
    /// What the operator reads after `gatehouse: `.
    pub fn operator_line(&self) -> &'static str {
        match self {
            FailClosed::Audit(_) => "the audit log cannot be written; stopped",
            FailClosed::Recording(_) => "the session recording cannot be written; stopped",
        }
    }
}

impl fmt::Display for FailClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailClosed::Audit(e) => e.fmt(f),
            FailClosed::Recording(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FailClosed {}

impl From<AuditError> for FailClosed {
    fn from(e: AuditError) -> Self {
        FailClosed::Audit(e)
    }
}

impl From<RecordingError> for FailClosed {
    fn from(e: RecordingError) -> Self {
        FailClosed::Recording(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_reads_no_detail_and_the_admin_reads_all_of_it() {
        let e = LoginError::Signals(nix::Error::EMFILE);
        assert_eq!(e.operator_line(), "internal error");
        assert_eq!(
            e.to_string(),
            format!("cannot install signal handlers: {}", nix::Error::EMFILE)
        );
        let e = LoginError::from(IdentityError::NoSuchUser(nix::unistd::Uid::from_raw(4242)));
        assert_eq!(e.operator_line(), "unknown user");
        assert_eq!(e.to_string(), "uid 4242 has no user name (NSS)");
        let e = LoginError::from(Insecure {
            path: "/etc/gatehouse/config.toml".into(),
            why: "writable by others".into(),
        });
        assert_eq!(e.operator_line(), "unsafe file permissions");
        assert!(e
            .to_string()
            .starts_with("/etc/gatehouse/config.toml: writable by others"));
        assert!(!e.operator_line().contains('/'));
    }

    #[test]
    fn a_config_error_shows_the_admin_where_and_the_operator_what() {
        let e = LoginError::from(
            crate::core::config::Config::parse(std::path::Path::new("/c.toml"), "[[hosts]\n")
                .unwrap_err(),
        );
        assert_eq!(e.operator_line(), "configuration error");
        assert!(e.to_string().starts_with("/c.toml:1:"), "{e}");
    }

    #[test]
    fn a_run_that_fails_closed_names_the_file_only_to_the_admin() {
        let audit = FailClosed::from(AuditError::Write {
            path: "/var/log/gatehouse/alice.jsonl".into(),
            err: std::io::Error::from_raw_os_error(nix::libc::ENOSPC),
        });
        assert_eq!(
            audit.operator_line(),
            "the audit log cannot be written; stopped"
        );
        assert!(audit
            .to_string()
            .starts_with("cannot write audit log /var/log/gatehouse/alice.jsonl: "));
        let recording = FailClosed::from(RecordingError {
            path: "/var/log/gatehouse/sessions/alice/s.cast".into(),
            err: std::io::Error::from_raw_os_error(nix::libc::EACCES),
        });
        assert_eq!(
            recording.operator_line(),
            "the session recording cannot be written; stopped"
        );
        assert!(recording
            .to_string()
            .starts_with("recording /var/log/gatehouse/sessions/alice/s.cast: "));
        for e in [audit, recording] {
            assert!(!e.operator_line().contains('/'), "{e}");
        }
    }
}
