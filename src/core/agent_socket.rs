//! Whether an `SSH_AUTH_SOCK` value is a plausible socket path. Pure; the
//! operator may control the value (an `AcceptEnv` that lets it through),
//! so it is hostile input. Used when the environment is scrubbed
//! (src/privilege.rs) and before the socket is opened as the operator
//! (src/operator/agent.rs).
#![forbid(unsafe_code)]

use std::path::{Component, Path};

/// Longest `SSH_AUTH_SOCK` accepted. sshd's is ~40 bytes
/// (`/tmp/ssh-XXXXXXXXXX/agent.PID`); a unix socket path is at most 107.
pub const MAX_PATH: usize = 512;

/// The value of `SSH_AUTH_SOCK` as a path, if it is a plausible one:
/// absolute, bounded, printable, no `..`. Pure; the operator may control
/// this value (an `AcceptEnv` that lets `SSH_AUTH_SOCK` through), so it is
/// hostile input.
pub fn socket_path(value: &str) -> Result<&Path, String> {
    if value.is_empty() {
        return Err("it is empty".into());
    }
    if value.len() > MAX_PATH {
        return Err(format!("it is longer than {MAX_PATH} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err("it holds control characters".into());
    }
    let p = Path::new(value);
    if !p.is_absolute() {
        return Err("it is not an absolute path".into());
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err("it has a `..` component".into());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_socket_paths_are_refused() {
        assert!(socket_path("/tmp/ssh-AbCdEf1234/agent.4321").is_ok());
        assert_eq!(socket_path(""), Err("it is empty".into()));
        assert!(socket_path("agent.1").unwrap_err().contains("absolute"));
        assert!(socket_path("/tmp/../home/bob/agent")
            .unwrap_err()
            .contains(".."));
        assert!(socket_path("/tmp/a\nb").unwrap_err().contains("control"));
        assert!(socket_path("/tmp/a\u{1b}[2Jb")
            .unwrap_err()
            .contains("control"));
        assert!(socket_path(&format!("/{}", "a".repeat(MAX_PATH)))
            .unwrap_err()
            .contains("longer"));
    }
}
