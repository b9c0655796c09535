//! Why a login cannot start, written for both of its readers: `Display`
//! is the admin's detail (the path, the uid, the errno — it goes to
//! syslog, and to stderr when unprivileged), `operator_line` the few
//! words the operator reads inside "service unavailable (…)".
//!
//! Converting into `LoginError` has no side effect: it is reported once,
//! where `login` gives up (`operator::login::login`).
#![forbid(unsafe_code)]

use std::fmt;

use crate::audit::AuditError;
use crate::core::config::ConfigError;
use crate::identity::IdentityError;
use crate::privilege::Insecure;

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
}
