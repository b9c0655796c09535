//! Who the operator is (from the real uid, never the environment), where
//! they connect from (sshd's `SSH_CONNECTION`; without it, the utmp entry of
//! the operator's terminal, e.g. a web terminal's peer), and how sshd
//! authenticated them (the `SSH_USER_AUTH` file of `ExposeAuthInfo`).
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::fmt;
use std::net::IpAddr;

use nix::unistd::{getgrouplist, getuid, Gid, Group, Uid, User};

pub use crate::core::policy::Operator;

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
    ///
    /// `with_groups`: also list their groups. Only rules that name
    /// `unix_groups` look at them, and the lookup enumerates every group
    /// source NSS has, which loads its modules (libnss_systemd and its
    /// libraries on Debian: half a megabyte of the relay's resident set,
    /// and a millisecond of the start, issue 13) even when `files` already
    /// knew the user.
    pub fn from_real_uid(with_groups: bool) -> Result<Operator, IdentityError> {
        let uid = getuid();
        let user = User::from_uid(uid)
            .map_err(|e| IdentityError::Lookup(uid, e))?
            .ok_or(IdentityError::NoSuchUser(uid))?;
        if !safe_user_name(&user.name) {
            return Err(IdentityError::UnsafeName(uid));
        }
        let groups = if with_groups {
            group_names(&user)
        } else {
            Vec::new()
        };
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

/// How the operator authenticated to sshd, for the `login` record's `auth`:
/// from the file named by `SSH_USER_AUTH` (sshd's `ExposeAuthInfo yes`),
/// e.g. `publickey ssh-ed25519 SHA256:…, keyboard-interactive/pam`. `None`
/// when sshd exposes nothing or the file is unusable: `auth` is optional.
pub fn ssh_auth(path: Option<&str>) -> Option<String> {
    let text = read_auth_file(std::path::Path::new(path?))?;
    summarize_auth(&text)
}

/// The most of the file we read: a few methods, each at most a public key
/// (an RSA-16384 key is ~2.8 KiB of base64).
const AUTH_FILE_MAX: u64 = 16 * 1024;

/// Reads the `SSH_USER_AUTH` file as the operator would. The file belongs to
/// the operator (sshd creates it as them) and its name comes from our
/// environment, so: opened with the real ids (the effective ones could read
/// what the operator may not), never through a symbolic link, non-blocking
/// (a FIFO cannot hang us), only a regular file the real uid owns, bounded.
fn read_auth_file(path: &std::path::Path) -> Option<String> {
    use nix::fcntl::OFlag;
    use nix::unistd::{getegid, getgid, setegid, seteuid};
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

    let (euid, egid) = (nix::unistd::geteuid(), getegid());
    let swap = euid != getuid() || egid != getgid();
    // Group first: once the effective uid is the operator's, changing the
    // effective gid back to the saved one is still allowed, but only ever to
    // the real or saved ids.
    if swap && (setegid(getgid()).is_err() || seteuid(getuid()).is_err()) {
        let _ = seteuid(euid);
        let _ = setegid(egid);
        return None;
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path);
    if swap {
        // Back to the privileged ids; failing that, nothing after us may run.
        if seteuid(euid).is_err() || setegid(egid).is_err() {
            std::process::abort();
        }
    }
    let file = opened.ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.uid() != getuid().as_raw() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(AUTH_FILE_MAX).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The audit form of sshd's auth info: one entry per line sshd wrote
/// (`method[/submethod] [key-type base64-key [info]]`), joined by `, `. A key
/// becomes its type and `SHA256:` fingerprint as `ssh-keygen -l` prints it
/// (of the plain key for a certificate, as sshd logs it), never the key;
/// anything else after the method is left out. Total and bounded over any
/// text; `None` when no line is usable.
pub fn summarize_auth(text: &str) -> Option<String> {
    let safe = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'/'))
    };
    let mut parts = Vec::new();
    // Only complete lines: a file cut at the bound ends in a partial one.
    for line in text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .take(16)
    {
        let mut f = line.trim_end_matches('\n').split(' ');
        let Some(method) = f.next().filter(|m| safe(m)) else {
            continue;
        };
        let mut entry = method.to_string();
        if let (Some(kind), Some(fp)) = (
            f.next().filter(|k| safe(k)),
            f.next().and_then(key_fingerprint),
        ) {
            entry.push_str(&format!(" {kind} {fp}"));
        }
        parts.push(entry);
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `SHA256:<unpadded base64>` of an OpenSSH public key blob (base64), as
/// `ssh-keygen -l` and sshd's log print it; for a certificate, of the
/// certified plain key. `None` when the text is not such a blob.
fn key_fingerprint(b64: &str) -> Option<String> {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let blob = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let plain = plain_key(&blob)?;
    let digest = Sha256::digest(&plain);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

/// The plain public key blob of `blob`: itself, or for an OpenSSH
/// certificate (PROTOCOL.certkeys: type, nonce, then the plain key's
/// fields) the plain type followed by those fields.
fn plain_key(blob: &[u8]) -> Option<Vec<u8>> {
    /// One SSH wire `string`: u32 length, bytes. Returns (whole, rest).
    fn string(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let end = 4usize.checked_add(len)?;
        Some((b.get(..end)?, b.get(end..)?))
    }
    let (kind, rest) = string(blob)?;
    let kind = std::str::from_utf8(&kind[4..]).ok()?;
    let Some(base) = kind.strip_suffix("-cert-v01@openssh.com") else {
        return Some(blob.to_vec());
    };
    // How many wire fields the plain key has after its type.
    let fields = match base {
        "ssh-ed25519" => 1,
        "ssh-rsa" | "sk-ssh-ed25519@openssh.com" => 2,
        "sk-ecdsa-sha2-nistp256@openssh.com" => 3,
        "ssh-dss" => 4,
        b if b.starts_with("ecdsa-sha2-") => 2,
        _ => return None,
    };
    let (_nonce, mut rest) = string(rest)?;
    let mut plain = (base.len() as u32).to_be_bytes().to_vec();
    plain.extend_from_slice(base.as_bytes());
    for _ in 0..fields {
        let (field, next) = string(rest)?;
        plain.extend_from_slice(field);
        rest = next;
    }
    Some(plain)
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

    /// A public key line as ssh-keygen writes it, and its fingerprint as
    /// `ssh-keygen -lf` prints it (fixed vectors, generated once).
    const ED_PUB: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIAoYKHxZPWujsx96rfmjKuAhkQ5CPunTGLWBq9wS8c7S";
    const ED_FP: &str = "SHA256:E4wtOrQk3zmrKIkuKU2TtoUiU3GpIi0V3M3Tw9ODMgo";

    #[test]
    fn auth_info_becomes_methods_types_and_fingerprints() {
        let fp = key_fingerprint(ED_PUB).unwrap();
        assert_eq!(fp, ED_FP);
        let text = format!("publickey ssh-ed25519 {ED_PUB}\nkeyboard-interactive/pam\n");
        let got = summarize_auth(&text).unwrap();
        assert_eq!(
            got,
            format!("publickey ssh-ed25519 {fp}, keyboard-interactive/pam")
        );
        assert!(!got.contains(ED_PUB), "never the key itself");
        assert_eq!(summarize_auth("password\n").as_deref(), Some("password"));
    }

    #[test]
    fn auth_info_is_total_and_bounded() {
        assert_eq!(summarize_auth(""), None);
        // A torn last line (the read bound) is left out.
        assert_eq!(summarize_auth("publickey ssh-ed25519 AAAA"), None);
        // Hostile text never reaches the record.
        assert_eq!(summarize_auth("evil\"}\x1b[2J x\n"), None);
        assert_eq!(
            summarize_auth("publickey ssh-ed25519 not-base64!\n").as_deref(),
            Some("publickey")
        );
        let many = "password\n".repeat(1000);
        assert_eq!(
            summarize_auth(&many).unwrap().matches("password").count(),
            16
        );
    }

    #[test]
    fn certificate_fingerprint_is_the_plain_keys() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let plain = b64.decode(ED_PUB).unwrap();
        let pk = &plain[4 + 11..]; // after string "ssh-ed25519": string pk
        let s = |b: &[u8]| {
            let mut v = (b.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(b);
            v
        };
        let mut cert = s(b"ssh-ed25519-cert-v01@openssh.com");
        cert.extend(s(b"nonce-nonce-nonce"));
        cert.extend_from_slice(pk);
        cert.extend(s(b"...the rest of the certificate..."));
        assert_eq!(
            key_fingerprint(&b64.encode(&cert)),
            key_fingerprint(ED_PUB),
            "a certificate is named by the key it certifies"
        );
        assert_eq!(key_fingerprint(&b64.encode(&cert[..30])), None);
    }

    #[test]
    fn auth_file_is_read_safely() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth");
        std::fs::write(&file, format!("publickey ssh-ed25519 {ED_PUB}\n")).unwrap();
        let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
        assert!(ssh_auth(Some(&p(&file)))
            .unwrap()
            .starts_with("publickey ssh-ed25519 SHA256:"));
        let link = dir.path().join("link");
        symlink(&file, &link).unwrap();
        assert_eq!(
            ssh_auth(Some(&p(&link))),
            None,
            "a symbolic link is not followed"
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            ssh_auth(Some(&p(&fifo))),
            None,
            "a FIFO neither blocks nor counts"
        );
        assert_eq!(ssh_auth(Some(&p(dir.path()))), None);
        assert_eq!(ssh_auth(Some("/nonexistent/auth")), None);
        assert_eq!(ssh_auth(None), None);
        let big = dir.path().join("big");
        let mut text = format!("publickey ssh-ed25519 {ED_PUB}\n");
        text.push_str(&"x".repeat(64 * 1024));
        text.push_str("\npassword\n");
        std::fs::write(&big, text).unwrap();
        assert!(
            !ssh_auth(Some(&p(&big))).unwrap().contains("password"),
            "read only up to the bound"
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
        let op = Operator::from_real_uid(true).unwrap();
        assert_eq!(groups_of_user(&op.name).unwrap(), op.groups);
        assert!(matches!(
            groups_of_user("no-such-user-gatehouse-test"),
            Err(IdentityError::UnknownUser(_))
        ));
    }

    #[test]
    fn real_uid_resolves() {
        let op = Operator::from_real_uid(true).unwrap();
        assert_eq!(op.uid, getuid().as_raw());
        assert!(!op.groups.is_empty());
        let without = Operator::from_real_uid(false).unwrap();
        assert_eq!((without.uid, &without.name), (op.uid, &op.name));
        assert!(without.groups.is_empty());
    }
}
