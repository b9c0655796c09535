//! Who the operator is (from the real uid, never the environment) and where
//! they connect from (sshd's `SSH_CONNECTION`; without it, the utmp entry of
//! the operator's terminal, e.g. a web terminal's peer).
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

/// The operator's `client`: from `SSH_CONNECTION` when sshd started us;
/// otherwise the remote host utmp records for our terminal (what `who`
/// shows: a web terminal such as shellinaboxd's LOGIN service writes its
/// peer there); `"local"` when there is neither.
pub fn client(ssh_connection: Option<&str>) -> String {
    let from_ssh = client_from(ssh_connection);
    if from_ssh != "local" {
        return from_ssh;
    }
    let Ok(tty) = nix::unistd::ttyname(std::io::stdin()) else {
        return from_ssh;
    };
    let Some(line) = tty.to_str().and_then(|t| t.strip_prefix("/dev/")) else {
        return from_ssh;
    };
    // A test hook for an unprivileged run only (a privileged run has no
    // environment left but a vetted few, and reads the system file).
    let path = std::env::var_os("GATEHOUSE_UTMP")
        .filter(|_| !crate::privilege::privileged())
        .unwrap_or_else(|| UTMP.into());
    std::fs::read(path)
        .ok()
        .and_then(|data| utmp_host(&data, line))
        .unwrap_or(from_ssh)
}

/// The system utmp file (glibc: `_PATH_UTMP`).
pub const UTMP: &str = "/var/run/utmp";

/// glibc's `struct utmp` on Linux (x86-64 and the other 64-bit ABIs with
/// 32-bit `ut_tv`): 384 bytes; the offsets we read.
const UTMP_SIZE: usize = 384;
const UT_TYPE: usize = 0;
const UT_LINE: std::ops::Range<usize> = 8..40;
const UT_HOST: std::ops::Range<usize> = 76..332;
const UT_ADDR_V6: std::ops::Range<usize> = 348..364;
const USER_PROCESS: i16 = 7;

fn c_str(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// The remote host of the last live login (`USER_PROCESS`) on terminal
/// `line` (`pts/3`), as the audit trail may show it: an IP address as
/// written, or a host name of safe characters; the record's binary address
/// when the text is unusable. Pure and total over any bytes.
pub fn utmp_host(data: &[u8], line: &str) -> Option<String> {
    let mut found = None;
    for rec in data.chunks_exact(UTMP_SIZE) {
        let kind = i16::from_ne_bytes([rec[UT_TYPE], rec[UT_TYPE + 1]]);
        if kind != USER_PROCESS || c_str(&rec[UT_LINE]) != line.as_bytes() {
            continue;
        }
        let host = String::from_utf8_lossy(c_str(&rec[UT_HOST])).into_owned();
        let text_ok = !host.is_empty()
            && host.len() <= 64
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        found = if let Ok(ip) = host.parse::<IpAddr>() {
            Some(ip.to_string())
        } else if text_ok {
            Some(host)
        } else {
            let a = &rec[UT_ADDR_V6];
            if a.iter().all(|&b| b == 0) {
                None
            } else if a[4..].iter().all(|&b| b == 0) {
                Some(std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string())
            } else {
                let mut b = [0u8; 16];
                b.copy_from_slice(a);
                Some(std::net::Ipv6Addr::from(b).to_string())
            }
        };
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utmp_record(kind: i16, line: &str, host: &[u8], addr: [u8; 16]) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_SIZE];
        r[..2].copy_from_slice(&kind.to_ne_bytes());
        r[UT_LINE][..line.len()].copy_from_slice(line.as_bytes());
        r[UT_HOST][..host.len()].copy_from_slice(host);
        r[UT_ADDR_V6].copy_from_slice(&addr);
        r
    }

    #[test]
    fn utmp_gives_the_terminal_peer() {
        let mut f = utmp_record(USER_PROCESS, "pts/1", b"10.9.8.7", [0; 16]);
        f.extend(utmp_record(8, "pts/3", b"192.0.2.99", [0; 16])); // DEAD_PROCESS
        f.extend(utmp_record(USER_PROCESS, "pts/3", b"203.0.113.5", [0; 16]));
        f.extend(utmp_record(USER_PROCESS, "pts/4", b"web.example", [0; 16]));
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[198, 51, 100, 7]);
        f.extend(utmp_record(USER_PROCESS, "pts/5", b"evil\x1b]0;x\x07", a));
        f.extend(utmp_record(USER_PROCESS, "pts/6", b"evil\n", [0; 16]));
        assert_eq!(utmp_host(&f, "pts/3").as_deref(), Some("203.0.113.5"));
        assert_eq!(utmp_host(&f, "pts/1").as_deref(), Some("10.9.8.7"));
        assert_eq!(utmp_host(&f, "pts/4").as_deref(), Some("web.example"));
        assert_eq!(utmp_host(&f, "pts/5").as_deref(), Some("198.51.100.7"));
        assert_eq!(utmp_host(&f, "pts/6"), None);
        assert_eq!(utmp_host(&f, "pts/9"), None);
        assert_eq!(
            utmp_host(&f[..100], "pts/1"),
            None,
            "a torn file is no entry"
        );
    }

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
