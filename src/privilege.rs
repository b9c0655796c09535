//! Privilege separation: what changes when Gatehouse runs setuid to the
//! dedicated `gatehouse` account (real uid ≠ effective uid).
//!
//! Installed, the binary is `gatehouse:gatehouse 6755` (setuid and setgid
//! to the gatehouse account, made so by postinst's dpkg-statoverride). The operator is the
//! real uid; the effective uid is the only account that can read the target
//! credentials and write the audit trail. So the moment we start we are a
//! setuid program run by an untrusted user who controls our environment,
//! our umask, our resource limits and our file descriptors. `enter` takes
//! that control away before anything else runs; `check_files` refuses a
//! config whose trust chain someone other than root or us could change (as
//! OpenBSD doas refuses a writable doas.conf). docs/threat-model.md lists
//! each threat and the test that proves the mitigation.
#![forbid(unsafe_code)]

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use nix::unistd::{geteuid, getuid};

use crate::core::config::Config;

/// Real and effective ids differ: we run setuid/setgid for an operator.
pub fn privileged() -> bool {
    use nix::unistd::{getegid, getgid};
    getuid() != geteuid() || getgid() != getegid()
}

/// What the process's own set-up (`enter`) or an identity switch
/// (`as_operator`) can fail on. `Display` is for the admin (syslog); the
/// operator reads only "service unavailable (internal error)" or, for the
/// agent, that it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivilegeError {
    Harden(nix::Error),
    ReadFileSizeLimit(nix::Error),
    /// The hard `RLIMIT_FSIZE` the operator left us, in bytes.
    FiniteFileSizeLimit(u64),
    LiftFileSizeLimit(nix::Error),
    ToOperatorGroup(nix::Error),
    ToOperatorUser(nix::Error),
    /// Taking back the gatehouse account's uid (then gid) failed: the
    /// thread stays the operator.
    BackToUid(u32, nix::Error),
    BackToGid(u32, nix::Error),
    HardenAgain(nix::Error),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::Harden(e) => write!(f, "cannot harden the process: {e}"),
            PrivilegeError::ReadFileSizeLimit(e) => {
                write!(f, "cannot read the file size limit: {e}")
            }
            PrivilegeError::FiniteFileSizeLimit(hard) => write!(
                f,
                "the file size limit is {hard} bytes; audit records could be cut short"
            ),
            PrivilegeError::LiftFileSizeLimit(e) => {
                write!(f, "cannot lift the file size limit: {e}")
            }
            PrivilegeError::ToOperatorGroup(e) => {
                write!(f, "cannot switch to the operator's group: {e}")
            }
            PrivilegeError::ToOperatorUser(e) => {
                write!(f, "cannot switch to the operator's uid: {e}")
            }
            PrivilegeError::BackToUid(uid, e) => write!(f, "cannot take back uid {uid}: {e}"),
            PrivilegeError::BackToGid(gid, e) => write!(f, "cannot take back gid {gid}: {e}"),
            PrivilegeError::HardenAgain(e) => write!(f, "cannot harden the process again: {e}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// Environment variables a privileged Gatehouse keeps; every other one is
/// removed before any library can read it (`LD_*` is already dropped by
/// ld.so in secure mode, but `OPENSSL_*`, `SSL_CERT_*`, `GATEHOUSE_CONFIG`,
/// `HOME`, `XDG_*`, `TZ`, `RUST_*`, locale and whatever the operator sent
/// with `SendEnv` go too). The kept ones are checked by `keep_value`.
const KEPT_ENV: &[&str] = &[
    "TERM",
    "SSH_CONNECTION",
    "SSH_CLIENT",
    "SSH_TTY",
    "SSH_ORIGINAL_COMMAND",
    // Names the target of an sftp/scp transfer (sshd `AcceptEnv`); it is
    // checked as a host name and goes through the access rules.
    "GATEHOUSE_HOST",
    // ExposeAuthInfo: the file saying how sshd authenticated the operator,
    // read with the real uid (`identity::ssh_auth`).
    "SSH_USER_AUTH",
    // The operator's forwarded agent (`ssh -A`), for hosts with
    // `agent = true`. Only a path; `agent.rs` opens it as the operator and
    // checks what it finds there (issue 18).
    "SSH_AUTH_SOCK",
];

/// The `PATH` of a privileged Gatehouse. It executes nothing; this is only
/// so that no library finds an operator-chosen directory first.
const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// What every run does before anything else, called first thing in `run`,
/// while the process is still single-threaded: hardening for every run,
/// the rest only when privileged (unprivileged, the person running us is
/// their own admin).
pub fn enter() -> Result<(), PrivilegeError> {
    // Not dumpable, no core: credentials (and, for `seal`, the sealing
    // key) pass through our memory, and a non-dumpable process's /proc/PID
    // files belong to root, so the operator cannot ptrace us or read our
    // memory or environment. The one place it is done for the process, on
    // both sides and unprivileged too (a demo's keys are secrets as well);
    // `as_operator` repeats it only because an euid change resets it.
    crate::sys::harden_process().map_err(PrivilegeError::Harden)?;
    if !privileged() {
        return Ok(());
    }
    // The operator's umask would decide the mode of the audit files we
    // create (a umask of 0277 would make their own log unwritable to us, a
    // umask of 0077 unreadable to the admins' group).
    nix::sys::stat::umask(Mode::from_bits_truncate(0o027));
    raise_file_size_limit()?;
    scrub_environment();
    Ok(())
}

/// A file-size limit set by the operator would cut an audit record in the
/// middle (a partial `write`, then SIGXFSZ). Raise the soft limit to the
/// hard one, and refuse to run when the hard limit is finite.
fn raise_file_size_limit() -> Result<(), PrivilegeError> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let (_, hard) = getrlimit(Resource::RLIMIT_FSIZE).map_err(PrivilegeError::ReadFileSizeLimit)?;
    if hard != RLIM_INFINITY {
        return Err(PrivilegeError::FiniteFileSizeLimit(hard));
    }
    setrlimit(Resource::RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY)
        .map_err(PrivilegeError::LiftFileSizeLimit)
}

/// Empties the environment but the vetted `KEPT_ENV`, and fixes `PATH`.
/// The environment is cleared wholesale (`sys::clear_environment`) rather
/// than name by name: an entry like `==x` (name "=") cannot be removed with
/// `std::env::remove_var`, which panics on it — before the panic guard, in
/// a setuid process (issue 12, point 4).
fn scrub_environment() {
    // Root's own environment is trusted: under sudo, `gatehouse kill`
    // records the person sudo names (`by`), not just "root".
    let root_only: &[&str] = if getuid().is_root() {
        &["SUDO_USER"]
    } else {
        &[]
    };
    let kept: Vec<(&str, String)> = KEPT_ENV
        .iter()
        .chain(root_only)
        .filter_map(|&n| {
            let v = std::env::var(n).ok()?;
            keep_value(n, &v).then_some((n, v))
        })
        .collect();
    crate::sys::clear_environment();
    for (name, value) in kept {
        std::env::set_var(name, value);
    }
    std::env::set_var("PATH", SAFE_PATH);
}

/// Whether a kept variable's value is plausible; an implausible one is
/// dropped (the code reading it then falls back to a safe default).
/// `TERM` must be what `tty::term_name` accepts as it is; the sshd-set ones
/// are bounded (sshd sets them, but `SendEnv` through a lax `AcceptEnv *`
/// could override them).
pub fn keep_value(name: &str, value: &str) -> bool {
    match name {
        "TERM" => crate::tty::term_name(Some(value)) == value,
        // More than any SSH packet can carry (256 KiB), so that a long
        // request reaches `invocation::classify`, which refuses anything
        // over 64 KiB with its own line instead of showing the menu.
        "SSH_ORIGINAL_COMMAND" => value.len() <= 512 * 1024,
        "SSH_AUTH_SOCK" => crate::core::agent_socket::socket_path(value).is_ok(),
        _ => value.len() <= 256 && !value.chars().any(char::is_control),
    }
}

/// Admin subcommands read every log and the whole config. Through the
/// setuid binary, only root may run them; an operator who somehow has a
/// shell must not read other operators' logs with our privileges.
pub fn admin_allowed() -> bool {
    !privileged() || getuid().is_root()
}

/// Runs `f` with the operator's identity as the effective uid and gid (the
/// real ones), in the calling thread only, and takes the gatehouse
/// account's back before returning.
///
/// For the one thing Gatehouse must do *as the operator*: reach the
/// operator's forwarded agent socket (issue 18), which sshd creates in a
/// 0700 directory of theirs. Doing it as the operator means the kernel
/// applies the operator's own permissions to the path, so pointing
/// `SSH_AUTH_SOCK` at anything the operator could not reach themselves
/// (another operator's agent, a socket only the gatehouse account may use)
/// fails exactly as it would for them; and the agent sees the operator as
/// its peer (ssh-agent refuses a peer whose euid is not its owner's). Keep
/// `f` to the syscalls that need it: while it runs, this thread cannot
/// read the credentials or open the log.
///
/// Why the effective ids and not only the filesystem ones (`setfsuid`):
/// those would do for the path and the `connect` permission, but the peer
/// credentials a socket carries are the effective ids. Why per thread
/// (`sys::set_thread_euid`): glibc's `seteuid` changes every thread of the
/// process, so a second thread opening a file meanwhile would do it as the
/// operator; the raw syscall changes only ours.
///
/// The saved set-user-ID (and set-group-ID) keep the gatehouse account, so
/// switching back is always allowed. If it still failed, the thread stays
/// the operator — less privileged, never more — and the caller gets `Err`;
/// the next audit write then fails closed. A change of effective uid resets
/// "dumpable" to the system's `fs.suid_dumpable`, so the process is made
/// non-dumpable again afterwards. Unprivileged (real = effective), `f`
/// just runs.
pub fn as_operator<T>(f: impl FnOnce() -> T) -> Result<T, PrivilegeError> {
    use nix::unistd::{getegid, getgid};
    let (ruid, euid) = (getuid().as_raw(), geteuid().as_raw());
    let (rgid, egid) = (getgid().as_raw(), getegid().as_raw());
    if ruid == euid && rgid == egid {
        return Ok(f());
    }
    use crate::sys::{set_thread_egid, set_thread_euid};
    // Down: group first, while the uid could still need it; up: uid first.
    set_thread_egid(rgid).map_err(PrivilegeError::ToOperatorGroup)?;
    if let Err(e) = set_thread_euid(ruid) {
        let _ = set_thread_egid(egid);
        return Err(PrivilegeError::ToOperatorUser(e));
    }
    let out = f();
    set_thread_euid(euid).map_err(|e| PrivilegeError::BackToUid(euid, e))?;
    set_thread_egid(egid).map_err(|e| PrivilegeError::BackToGid(egid, e))?;
    crate::sys::harden_process().map_err(PrivilegeError::HardenAgain)?;
    Ok(out)
}

/// A file or directory the config depends on that someone else could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insecure {
    pub path: PathBuf,
    pub why: String,
}

impl fmt::Display for Insecure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; refusing to start (files Gatehouse trusts must be owned by root or uid {} \
             and not writable by group or others; secrets not readable by others)",
            self.path.display(),
            self.why,
            geteuid()
        )
    }
}

impl std::error::Error for Insecure {}

/// The ownership and mode bits we judge (one `stat`), as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub is_dir: bool,
}

impl Meta {
    fn of(m: &std::fs::Metadata) -> Meta {
        Meta {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            is_dir: m.is_dir(),
        }
    }
}

/// How a path is used, which decides what is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory on the way to a trusted file. A sticky world-writable
    /// directory (`/tmp`) is allowed here: nobody else can replace an entry
    /// in it that they do not own, and the next component is checked too.
    Ancestor,
    /// The directory that holds a trusted file: nobody else may add,
    /// rename or remove entries, sticky or not.
    Parent,
    /// A trusted file (config, known_hosts) or the log directory.
    Trusted,
    /// A credential (key, password file): also not readable by others.
    Secret,
}

/// The pure verdict on one path: `Err(why)` when someone other than root
/// or `trusted_uid` could change it. Group write is allowed only for group
/// 0 (root's own group); never for any other group, because the setuid
/// binary's effective gid is the operator's own.
pub fn verdict(m: Meta, kind: Kind, trusted_uid: u32) -> Result<(), String> {
    if m.uid != 0 && m.uid != trusted_uid {
        return Err(format!("owned by uid {}", m.uid));
    }
    let sticky_dir = m.is_dir && m.mode & 0o1000 != 0;
    let exempt = kind == Kind::Ancestor && sticky_dir;
    if m.mode & 0o002 != 0 && !exempt {
        return Err("writable by others".into());
    }
    if m.mode & 0o020 != 0 && m.gid != 0 && !exempt {
        return Err(format!("writable by group {}", m.gid));
    }
    // As OpenSSH refuses a private key that group or others can read
    // ("UNPROTECTED PRIVATE KEY FILE", sshkey_perm_ok: mode & 077).
    if kind == Kind::Secret && !m.is_dir && m.mode & 0o077 != 0 {
        return Err(format!(
            "a secret with mode {:04o} (group and others must have no access)",
            m.mode & 0o7777
        ));
    }
    Ok(())
}

/// Checks `path` and every directory above it, twice: the directories of
/// the path *as given* (each one `stat`ed where it stands, so the directory
/// holding a symlink on the way is judged, as doas and OpenSSH's
/// `safe_path` walk it), and the directories of the path the symlinks
/// resolve to (the ones actually used). A missing final component is
/// allowed (a log directory Gatehouse will create, an `accept-new`
/// known_hosts), but then its parent must be safe as a `Parent`.
pub fn check_path(path: &Path, kind: Kind, trusted_uid: u32) -> Result<(), Insecure> {
    let err = |p: &Path, why: String| Insecure {
        path: p.to_path_buf(),
        why,
    };
    let given = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| err(path, format!("cannot resolve: {e}")))?
            .join(path)
    };
    let leaf_exists = std::fs::metadata(&given).is_ok();
    let resolved = if leaf_exists {
        std::fs::canonicalize(&given).map_err(|e| err(&given, format!("cannot resolve: {e}")))?
    } else {
        let parent = given.parent().unwrap_or(Path::new("/"));
        std::fs::canonicalize(parent).map_err(|e| err(parent, format!("cannot resolve: {e}")))?
    };
    let judge = |chain: Vec<&Path>, leaf_in_chain: bool| -> Result<(), Insecure> {
        for (i, p) in chain.iter().enumerate() {
            let meta = std::fs::metadata(p).map_err(|e| err(p, format!("cannot stat: {e}")))?;
            let k = match (i, leaf_in_chain) {
                (0, true) => kind,
                (0, false) | (1, true) => Kind::Parent,
                _ => Kind::Ancestor,
            };
            verdict(Meta::of(&meta), k, trusted_uid).map_err(|why| err(p, why))?;
        }
        Ok(())
    };
    let as_given: Vec<&Path> = if leaf_exists {
        given.ancestors().collect()
    } else {
        given.ancestors().skip(1).collect()
    };
    judge(as_given, leaf_exists)?;
    judge(resolved.ancestors().collect(), leaf_exists)
}

/// Every path the config trusts: the config itself, known_hosts, each
/// host's key and password file, and the log directory.
pub fn trusted_paths(config: &Config) -> Vec<(PathBuf, Kind)> {
    let mut v = vec![
        (config.path.clone(), Kind::Trusted),
        (config.settings.known_hosts.clone(), Kind::Trusted),
        (config.settings.log_dir.clone(), Kind::Trusted),
    ];
    // Hosts mostly share a few credentials: look each path up by its bytes
    // (a `Path` comparison walks components; 10,000 hosts times the list
    // was a millisecond of every start, issue 13). Two spellings of one
    // path are merely checked twice.
    let mut seen: std::collections::HashSet<&std::ffi::OsStr> =
        v.iter().map(|(p, _)| p.as_os_str()).collect();
    let mut secrets = Vec::new();
    for h in &config.hosts {
        for p in h.key.iter().chain(h.password_file.iter()) {
            if seen.insert(p.as_os_str()) {
                secrets.push((p.clone(), Kind::Secret));
            }
        }
    }
    v.extend(secrets);
    v
}

/// Privileged: `Err` on the first path someone else could change (the
/// caller refuses to start). Unprivileged: the same findings go to syslog
/// as warnings, and the login goes on (the user is their own admin).
pub fn check_files(config: &Config, privileged: bool) -> Result<(), Insecure> {
    let euid = geteuid().as_raw();
    for (path, kind) in trusted_paths(config) {
        if let Err(e) = check_path(&path, kind, euid) {
            if privileged {
                return Err(e);
            }
            crate::report::syslog(&format!("warning: {e}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GH: u32 = 998;

    fn m(uid: u32, gid: u32, mode: u32, is_dir: bool) -> Meta {
        Meta {
            uid,
            gid,
            mode,
            is_dir,
        }
    }

    #[test]
    fn owners() {
        assert!(verdict(m(0, 0, 0o640, false), Kind::Trusted, GH).is_ok());
        assert!(verdict(m(GH, GH, 0o600, false), Kind::Secret, GH).is_ok());
        assert_eq!(
            verdict(m(1000, 0, 0o600, false), Kind::Trusted, GH),
            Err("owned by uid 1000".into())
        );
    }

    #[test]
    fn write_bits() {
        assert_eq!(
            verdict(m(0, 0, 0o646, false), Kind::Trusted, GH),
            Err("writable by others".into())
        );
        assert_eq!(
            verdict(m(0, 1000, 0o660, false), Kind::Trusted, GH),
            Err("writable by group 1000".into())
        );
        // Root's own group may write (only root-equivalent admins are in it).
        assert!(verdict(m(0, 0, 0o660, false), Kind::Trusted, GH).is_ok());
        // The packaged log dir: 2750 gatehouse:adm.
        assert!(verdict(m(GH, 4, 0o42750, true), Kind::Trusted, GH).is_ok());
    }

    #[test]
    fn sticky_only_above_the_parent() {
        let tmp = m(0, 0, 0o41777, true);
        assert!(verdict(tmp, Kind::Ancestor, GH).is_ok());
        assert!(verdict(tmp, Kind::Parent, GH).is_err());
        assert!(verdict(m(0, 0, 0o40777, true), Kind::Ancestor, GH).is_err());
    }

    #[test]
    fn secrets_not_world_readable() {
        assert!(verdict(m(GH, GH, 0o604, false), Kind::Secret, GH).is_err());
        assert!(verdict(m(GH, GH, 0o600, false), Kind::Secret, GH).is_ok());
        assert!(verdict(m(GH, GH, 0o400, false), Kind::Secret, GH).is_ok());
        // Regression (issue 12, point 7): group-readable is refused, as
        // OpenSSH refuses such a private key.
        assert_eq!(
            verdict(m(GH, GH, 0o640, false), Kind::Secret, GH),
            Err("a secret with mode 0640 (group and others must have no access)".into())
        );
        assert!(verdict(m(GH, GH, 0o610, false), Kind::Secret, GH).is_err());
        // A readable config is fine: it holds no secrets itself.
        assert!(verdict(m(0, 0, 0o644, false), Kind::Trusted, GH).is_ok());
    }

    #[test]
    fn env_values() {
        assert!(keep_value("TERM", "xterm-256color"));
        assert!(!keep_value("TERM", "\x1b]0;pwn\x07"));
        assert!(!keep_value("TERM", &"x".repeat(10_000)));
        assert!(keep_value("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22"));
        assert!(!keep_value("SSH_CONNECTION", "a\nb"));
        assert!(!keep_value("SSH_TTY", &"x".repeat(300)));
        // Long enough for classify to refuse it with its own line.
        assert!(keep_value("SSH_ORIGINAL_COMMAND", &"x".repeat(70 * 1024)));
        assert!(keep_value("GATEHOUSE_HOST", "web01"));
        assert!(!keep_value("GATEHOUSE_HOST", "web01[2J"));
        assert!(!keep_value("GATEHOUSE_HOST", &"w".repeat(300)));
    }

    #[test]
    fn real_paths() {
        let euid = geteuid().as_raw();
        assert!(check_path(Path::new("/usr/bin/env"), Kind::Trusted, euid).is_ok());
        // A missing file in a root-owned directory: judged by its parent.
        assert!(check_path(Path::new("/usr/bin/no-such-file"), Kind::Trusted, euid).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = check_path(&f, Kind::Trusted, euid).unwrap_err();
        assert_eq!(e.why, "writable by others");
        // Directly in /tmp (sticky, world-writable) is refused: anyone can
        // create a missing file there.
        assert!(check_path(Path::new("/tmp/gh-no-such"), Kind::Trusted, euid).is_err());
    }

    /// Regression (issue 12, point 7): a symlink on the configured path
    /// sits in a directory that must be judged too, although the resolved
    /// path never passes through it.
    #[test]
    fn the_directory_holding_a_symlink_is_checked() {
        use std::os::unix::fs::PermissionsExt;
        let euid = geteuid().as_raw();
        let dir = tempfile::tempdir().unwrap();
        let safe = dir.path().join("safe");
        std::fs::create_dir(&safe).unwrap();
        let key = safe.join("key");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::os::unix::fs::symlink(&safe, open.join("keys")).unwrap();
        let via_link = open.join("keys").join("key");
        assert!(check_path(&key, Kind::Secret, euid).is_ok());
        assert!(check_path(&via_link, Kind::Secret, euid).is_ok());
        // Anyone may now swap the symlink for one of their own.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_path(&via_link, Kind::Secret, euid).unwrap_err();
        assert_eq!(e.path, open);
        assert_eq!(e.why, "writable by others");
        // The resolved path alone passes: that was the bug.
        assert!(check_path(&key, Kind::Secret, euid).is_ok());
    }
}
