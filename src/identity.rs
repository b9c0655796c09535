//! Who the operator is (from the real uid, never the environment) and where
//! they connect from (sshd's `SSH_CONNECTION`).
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::fmt;
use std::net::IpAddr;

use nix::unistd::{getgrouplist, getuid, Gid, Group, Uid, User};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub uid: u32,
    pub name: String,
    /// Names of every group the user is in (primary and supplementary),
    /// as NSS reports them, so LDAP/SSSD groups count.
    pub groups: Vec<String>,
}

#[derive(Debug)]
pub enum IdentityError {
    Lookup(Uid, nix::Error),
    NoSuchUser(Uid),
    UnsafeName(Uid),
    LookupName(String, nix::Error),
    UnknownUser(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Lookup(uid, e) => write!(f, "cannot look up uid {uid}: {e}"),
            IdentityError::NoSuchUser(uid) => write!(f, "uid {uid} has no user name (NSS)"),
            IdentityError::UnsafeName(uid) => {
                write!(f, "the user name of uid {uid} is not usable in a file name")
            }
            IdentityError::LookupName(name, e) => write!(f, "cannot look up user {name:?}: {e}"),
            IdentityError::UnknownUser(name) => write!(f, "no user named {name:?} (NSS)"),
        }
    }
}

impl Operator {
    /// The operator behind the real uid. This is the only constructor used
    /// outside tests, so an `Operator` always means "the real uid".
    pub fn from_real_uid() -> Result<Operator, IdentityError> {
        let uid = getuid();
        let user = User::from_uid(uid)
            .map_err(|e| IdentityError::Lookup(uid, e))?
            .ok_or(IdentityError::NoSuchUser(uid))?;
        if !safe_user_name(&user.name) {
            return Err(IdentityError::UnsafeName(uid));
        }
        let groups = group_names(&user);
        Ok(Operator {
            uid: uid.as_raw(),
            name: user.name,
            groups,
        })
    }
}

/// Names of every group `user` is in (primary and supplementary), as NSS
/// reports them.
fn group_names(user: &User) -> Vec<String> {
    let mut groups = Vec::new();
    let gids: Vec<Gid> = CString::new(user.name.as_str())
        .ok()
        .and_then(|c| getgrouplist(&c, user.gid).ok())
        .unwrap_or_else(|| vec![user.gid]);
    for gid in gids {
        if let Ok(Some(g)) = Group::from_gid(gid) {
            if !groups.contains(&g.name) {
                groups.push(g.name);
            }
        }
    }
    groups
}

/// The unix groups of the user called `name`, looked up through NSS (so
/// LDAP/SSSD users work), for an admin's `gatehouse check --explain`. It
/// gives names only, never an `Operator`: that always means the real uid.
pub fn groups_of_user(name: &str) -> Result<Vec<String>, IdentityError> {
    let user = User::from_name(name)
        .map_err(|e| IdentityError::LookupName(name.to_string(), e))?
        .ok_or_else(|| IdentityError::UnknownUser(name.to_string()))?;
    Ok(group_names(&user))
}

/// The user name becomes `<log_dir>/<name>.jsonl`: it must not be able to
/// climb out of the directory or hide in it.
pub fn safe_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@' | b'$'))
}

/// `ip:port` of the operator from `SSH_CONNECTION` ("client_ip client_port
/// server_ip server_port"); `"local"` when not run by sshd. The value is
/// parsed, not copied, so it cannot smuggle text into the audit trail.
pub fn client_from(ssh_connection: Option<&str>) -> String {
    let parsed = ssh_connection.and_then(|s| {
        let mut it = s.split_ascii_whitespace();
        let ip: IpAddr = it.next()?.parse().ok()?;
        let port: u16 = it.next()?.parse().ok()?;
        Some(match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        })
    });
    parsed.unwrap_or_else(|| "local".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address() {
        assert_eq!(
            client_from(Some("10.0.0.5 51234 10.0.0.1 22")),
            "10.0.0.5:51234"
        );
        assert_eq!(client_from(Some("::1 40000 ::1 22")), "[::1]:40000");
        assert_eq!(client_from(None), "local");
        assert_eq!(client_from(Some("evil\"} 1 2 3")), "local");
        assert_eq!(client_from(Some("10.0.0.5 99999 x y")), "local");
    }

    #[test]
    fn user_names_for_files() {
        assert!(safe_user_name("alice"));
        assert!(safe_user_name("svc-deploy.2"));
        assert!(!safe_user_name(".."));
        assert!(!safe_user_name("a/b"));
        assert!(!safe_user_name(""));
    }

    #[test]
    fn groups_by_name() {
        let op = Operator::from_real_uid().unwrap();
        assert_eq!(groups_of_user(&op.name).unwrap(), op.groups);
        assert!(matches!(
            groups_of_user("no-such-user-gatehouse-test"),
            Err(IdentityError::UnknownUser(_))
        ));
    }

    #[test]
    fn real_uid_resolves() {
        let op = Operator::from_real_uid().unwrap();
        assert_eq!(op.uid, getuid().as_raw());
        assert!(!op.groups.is_empty());
    }
}
