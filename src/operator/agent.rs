//! The operator's own forwarded agent (`ssh -A`, issue 18): where its
//! socket is, whether it is the operator's own, and a path to it that
//! libssh2 can connect to without any race.
//!
//! `SSH_AUTH_SOCK` names a socket that sshd created in a 0700 directory
//! owned by the operator. Gatehouse runs setuid to the gatehouse account,
//! which cannot reach it; and it must not reach anything the operator could
//! not reach themselves either, so every step that touches the path runs
//! *as the operator* (`privilege::as_operator`: the effective uid switched
//! only for those syscalls).
//!
//! Why not just give libssh2 the path: libssh2's agent client connects by
//! path itself (`agent_connect_unix`) and has no way to take a socket we
//! connected; re-implementing the agent protocol with libssh2's signing
//! callback would need raw FFI, which this crate keeps out of everything but
//! `sys.rs`. Checking the path and then letting libssh2 connect by the same
//! name would race: between our check and its `connect`, whoever may write
//! the directory could swap the socket. So we open the socket's inode with
//! `O_PATH | O_NOFOLLOW` (a symlink is opened as itself and refused, never
//! followed), check *that open inode* (`fstat`: a socket, owned by the
//! operator's real uid), and give libssh2 `/proc/self/fd/N`: the kernel
//! resolves that magic link to the very inode we checked, whatever happens
//! to the name meanwhile (and a non-dumpable process may still use its own
//! `/proc/self/fd`). libssh2's `connect` then also runs as the operator, so
//! the kernel's own permission check on the socket is the operator's.
//!
//! Only the owner is judged, not the directories on the way: an inode owned
//! by the operator can only have been made by the operator or root, the
//! path is resolved with the operator's own permissions, and what is
//! connected to is the inode that was judged.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::core::agent_socket::socket_path;

/// Why the forwarded agent cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// No `SSH_AUTH_SOCK`: the operator did not forward an agent.
    NotForwarded,
    /// `SSH_AUTH_SOCK` is set, but what it names is refused. `path` is
    /// bounded and printable; `why` is for the admin.
    Refused { path: String, why: String },
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::NotForwarded => {
                f.write_str("no forwarded agent (SSH_AUTH_SOCK is not set: not ssh -A)")
            }
            AgentError::Refused { path, why } => {
                write!(f, "forwarded agent socket {path} refused: {why}")
            }
        }
    }
}

/// What `fstat` says about the opened name, as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Socket,
    Symlink,
    Other,
}

/// Why the inode the name led to is not the operator's agent socket.
/// `Display` is the `why` of [`AgentError::Refused`] (for the admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    Symlink,
    NotASocket,
    NotTheOperators { owner: u32, operator: u32 },
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::Symlink => f.write_str("it is a symbolic link (never followed)"),
            Unfit::NotASocket => f.write_str("it is not a socket"),
            Unfit::NotTheOperators { owner, operator } => write!(
                f,
                "it belongs to uid {owner}, not to the operator (uid {operator})"
            ),
        }
    }
}

/// The verdict on the inode the name led to. Pure.
pub fn judge(kind: FileKind, owner: u32, operator: u32) -> Result<(), Unfit> {
    match kind {
        FileKind::Symlink => return Err(Unfit::Symlink),
        FileKind::Other => return Err(Unfit::NotASocket),
        FileKind::Socket => {}
    }
    if owner != operator {
        return Err(Unfit::NotTheOperators { owner, operator });
    }
    Ok(())
}

/// The operator's agent socket, opened (`O_PATH`, not connected) and
/// checked. Dropping it closes the descriptor.
pub struct CheckedSocket {
    inode: File,
    /// `SSH_AUTH_SOCK` as given, for messages.
    pub shown: String,
}

impl CheckedSocket {
    /// The path libssh2 connects to: `/proc/self/fd/N`, the checked inode
    /// and nothing else (see the module header).
    pub fn connect_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.inode.as_raw_fd()))
    }
}

/// Opens and checks the socket `SSH_AUTH_SOCK` (`value`) names, as the
/// operator. `NotForwarded` when unset or empty.
pub fn open_checked(value: Option<&OsStr>) -> Result<CheckedSocket, AgentError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Err(AgentError::NotForwarded);
    };
    let shown = shown(value);
    let refused = |why: String| AgentError::Refused {
        path: shown.clone(),
        why,
    };
    let text = std::str::from_utf8(value.as_bytes())
        .map_err(|_| refused("SSH_AUTH_SOCK is not UTF-8".into()))?;
    let path = socket_path(text).map_err(|w| refused(format!("SSH_AUTH_SOCK: {w}")))?;
    let opened = crate::privilege::as_operator(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_PATH | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .and_then(|f| f.metadata().map(|m| (f, m)))
    })
    .map_err(|e| refused(e.to_string()))?;
    let (inode, meta) =
        opened.map_err(|e| refused(format!("cannot open it as the operator: {e}")))?;
    let ft = meta.file_type();
    let kind = if ft.is_socket() {
        FileKind::Socket
    } else if ft.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    };
    judge(kind, meta.uid(), nix::unistd::getuid().as_raw()).map_err(|u| refused(u.to_string()))?;
    Ok(CheckedSocket { inode, shown })
}

/// `SSH_AUTH_SOCK` for a message: bounded, control characters escaped.
fn shown(value: &OsStr) -> String {
    let lossy = String::from_utf8_lossy(value.as_bytes());
    let mut s: String = lossy
        .chars()
        .take(120)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if lossy.chars().count() > 120 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn only_the_operators_own_socket_passes() {
        assert_eq!(judge(FileKind::Socket, 1000, 1000), Ok(()));
        let theirs = judge(FileKind::Socket, 1001, 1000).unwrap_err();
        assert_eq!(
            theirs,
            Unfit::NotTheOperators {
                owner: 1001,
                operator: 1000
            }
        );
        assert_eq!(
            theirs.to_string(),
            "it belongs to uid 1001, not to the operator (uid 1000)"
        );
        // Root's socket is not the operator's either.
        assert!(judge(FileKind::Socket, 0, 1000).is_err());
        assert_eq!(judge(FileKind::Symlink, 1000, 1000), Err(Unfit::Symlink));
        assert_eq!(judge(FileKind::Other, 1000, 1000), Err(Unfit::NotASocket));
    }

    #[test]
    fn shown_is_bounded_and_escaped() {
        assert_eq!(shown(OsStr::new("/tmp/a\x1b[2J")), "/tmp/a\\u{1b}[2J");
        let long = "x".repeat(500);
        assert_eq!(shown(OsStr::new(&long)).chars().count(), 121);
    }

    /// The real filesystem: the socket itself passes and its connect path
    /// reaches it; a symlink to it, a regular file, a missing name do not.
    #[test]
    fn open_checked_on_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.1");
        let listener = UnixListener::bind(&sock).unwrap();
        let ok = open_checked(Some(sock.as_os_str())).unwrap();
        let cp = ok.connect_path();
        assert!(cp.starts_with("/proc/self/fd/"), "{}", cp.display());
        std::os::unix::net::UnixStream::connect(&cp).unwrap();
        listener.accept().unwrap();

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&sock, &link).unwrap();
        let e = open_checked(Some(link.as_os_str())).err().unwrap();
        assert!(e.to_string().contains("symbolic link"), "{e}");

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = open_checked(Some(file.as_os_str())).err().unwrap();
        assert!(e.to_string().contains("not a socket"), "{e}");

        let e = open_checked(Some(dir.path().join("gone").as_os_str()))
            .err()
            .unwrap();
        assert!(e.to_string().contains("cannot open it"), "{e}");

        assert_eq!(open_checked(None).err(), Some(AgentError::NotForwarded));
        assert_eq!(
            open_checked(Some(OsStr::new(""))).err(),
            Some(AgentError::NotForwarded)
        );
    }
}
