//! The sessions running now, for `gatehouse sessions` and `gatehouse kill`.
//!
//! Each running session has `<log_dir>/live/<session>.json`, written right
//! after its `session_start` (an exec or a transfer: its `exec` record; a
//! batch: before its first host starts, under the batch id) and removed
//! when it ends: what kind it is, who, where, since when, and the identity
//! of its process (boot id + pid + start time, see `process`). A session
//! killed with -9 leaves its file behind; readers check the process
//! identity, so such a file is shown as nothing and removed.
//!
//! To end a session, an administrator writes `<session>.kill` (who, why)
//! next to it, then sends SIGUSR1 to the verified process. The session acts
//! on SIGUSR1 only when that note is there: the directory belongs to the
//! gatehouse account (0750), so an operator can signal their own process
//! but cannot write the note, and a bare SIGUSR1 changes nothing.
#![forbid(unsafe_code)]

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What a running session relays. Entries written before kinds existed
/// have none: they were all shells.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An interactive session (the menu or a host name).
    #[default]
    Shell,
    /// `HOST -- COMMAND`.
    Exec,
    /// sftp/scp through the target's sftp subsystem.
    Transfer,
    /// `@group -- COMMAND` / `glob -- COMMAND` over many hosts.
    Batch,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Shell => "shell",
            Kind::Exec => "exec",
            Kind::Transfer => "transfer",
            Kind::Batch => "batch",
        }
    }
}

/// One running session, as its `.json` file holds it. Fields added after
/// the first version are optional, so older files still read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The session id; for a batch, the batch id (the `batch` field of
    /// its hosts' records).
    pub session: String,
    #[serde(default)]
    pub kind: Kind,
    pub user: String,
    /// The host; for a batch, its hosts' names (comma-separated, at most
    /// 256 bytes then `…`).
    pub host: String,
    /// An exec's (or a batch's) command as its `exec` records hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// A batch's number of hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<usize>,
    pub login: String,
    pub client: String,
    pub pid: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_start: Option<u64>,
    /// RFC 3339, as the records' `ts`.
    pub since: String,
    /// The operator's terminal (`/dev/pts/N`): its access time is the
    /// moment of the last keystroke, which gives the idle time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
}

/// Why an administrator ended a session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KillNote {
    pub by: String,
    pub reason: String,
}

/// The bounds on a note: it is read by the setuid process.
const MAX_NOTE_BYTES: u64 = 4096;
/// The bound on an entry as read back: a recorded command is at most
/// 16 KiB and a few bytes, up to six times that once JSON-escaped.
const MAX_ENTRY_BYTES: u64 = 128 * 1024;
pub const MAX_REASON_CHARS: usize = 200;

pub fn dir(log_dir: &Path) -> PathBuf {
    log_dir.join("live")
}

pub fn entry_path(log_dir: &Path, session: &str) -> PathBuf {
    dir(log_dir).join(format!("{session}.json"))
}

pub fn note_path(log_dir: &Path, session: &str) -> PathBuf {
    dir(log_dir).join(format!("{session}.kill"))
}

/// The note of the session this process runs, if it has one (set by
/// `register`, cleared when the registration drops). One process runs one
/// session at a time.
static NOTE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// What a session is, for its entry.
#[derive(Debug, Clone, Copy)]
pub enum Activity<'a> {
    Shell {
        host: &'a str,
    },
    /// `command` as recorded (`invocation::recorded_command`).
    Exec {
        host: &'a str,
        command: &'a str,
    },
    Transfer {
        host: &'a str,
    },
    /// `hosts`: their names (bounded); `command` as recorded.
    Batch {
        hosts: &'a str,
        count: usize,
        command: &'a str,
    },
}

/// The session's place in `live/`; dropping it removes the entry and any
/// note.
pub struct Registration {
    entry: PathBuf,
    note: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.entry);
        let _ = fs::remove_file(&self.note);
        if let Ok(mut n) = NOTE.lock() {
            *n = None;
        }
    }
}

/// Writes this process's entry for the interactive `session` on `host`
/// (see `register_activity`).
pub fn register(
    log_dir: &Path,
    audit: &crate::audit::AuditLog,
    user: &str,
    session: &str,
    host: &str,
) -> Option<Registration> {
    register_activity(log_dir, audit, user, session, Activity::Shell { host })
}

/// Writes this process's entry for `session`. Best effort: a session whose
/// entry cannot be written still runs and is still audited; it is only
/// invisible to `gatehouse sessions` (the reason goes to syslog).
pub fn register_activity(
    log_dir: &Path,
    audit: &crate::audit::AuditLog,
    user: &str,
    session: &str,
    what: Activity<'_>,
) -> Option<Registration> {
    let (kind, host, command, hosts) = match what {
        Activity::Shell { host } => (Kind::Shell, host, None, None),
        Activity::Exec { host, command } => (Kind::Exec, host, Some(command.to_string()), None),
        Activity::Transfer { host } => (Kind::Transfer, host, None, None),
        Activity::Batch {
            hosts,
            count,
            command,
        } => (Kind::Batch, hosts, Some(command.to_string()), Some(count)),
    };
    let entry = Entry {
        session: session.to_string(),
        kind,
        user: user.to_string(),
        host: host.to_string(),
        command,
        hosts,
        login: audit.login().to_string(),
        client: audit.client().to_string(),
        pid: i64::from(std::process::id()),
        boot_id: crate::process::boot_id(),
        proc_start: crate::process::own_start(),
        since: crate::core::record::timestamp(),
        tty: nix::unistd::ttyname(std::io::stdin())
            .ok()
            .map(|p| p.display().to_string()),
    };
    let path = entry_path(log_dir, session);
    let written = (|| -> std::io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir(log_dir))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)?;
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        f.write_all(&line)
    })();
    if let Err(e) = written {
        crate::report::syslog(&format!(
            "warning: cannot write {}: {e}; `gatehouse sessions` will not show session {session}",
            path.display()
        ));
        return None;
    }
    let note = note_path(log_dir, session);
    if let Ok(mut n) = NOTE.lock() {
        *n = Some(note.clone());
    }
    Some(Registration { entry: path, note })
}

/// The administrator's note for the running session, if there is one (the
/// relay asks when SIGUSR1 arrives). Only a note owned by root or by our
/// effective uid counts, bounded in size, reason made printable.
pub fn kill_note() -> Option<KillNote> {
    let path = NOTE.lock().ok()?.clone()?;
    read_note(&path)
}

fn read_note(path: &Path) -> Option<KillNote> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || (meta.uid() != 0 && meta.uid() != euid) {
        return None;
    }
    let mut text = String::new();
    f.take(MAX_NOTE_BYTES).read_to_string(&mut text).ok()?;
    let note: KillNote = serde_json::from_str(&text).ok()?;
    Some(KillNote {
        by: printable(&note.by, 64),
        reason: printable(&note.reason, MAX_REASON_CHARS),
    })
}

/// Text an admin typed, made safe for the operator's terminal and the
/// record: control and format characters become U+FFFD; bounded.
pub fn printable(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_control() || crate::core::text::is_format_char(c) {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Every entry under `log_dir/live`, unchecked (the admin side checks each
/// process). A damaged entry is skipped.
pub fn entries(log_dir: &Path) -> std::io::Result<Vec<Entry>> {
    let rd = match fs::read_dir(dir(log_dir)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut v = Vec::new();
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Ok(f) = fs::File::open(&p) else { continue };
        let mut text = String::new();
        if f.take(MAX_ENTRY_BYTES).read_to_string(&mut text).is_err() {
            continue;
        }
        if let Ok(entry) = serde_json::from_str::<Entry>(&text) {
            v.push(entry);
        }
    }
    v.sort_by(|a, b| a.since.cmp(&b.since));
    Ok(v)
}

/// Whether the entry's process is the one running now (boot id, pid and
/// start time all match).
pub fn is_running(e: &Entry) -> bool {
    crate::process::judge(
        crate::process::Recorded {
            pid: Some(e.pid),
            boot_id: e.boot_id.as_deref(),
            start: e.proc_start,
            session_started: None,
        },
        crate::process::boot_id().as_deref(),
        crate::process::state,
    ) == crate::process::Liveness::Alive
}

/// Leaves the note for `session` (atomically: written aside, then renamed).
pub fn write_note(log_dir: &Path, session: &str, note: &KillNote) -> std::io::Result<()> {
    let path = note_path(log_dir, session);
    let tmp = dir(log_dir).join(format!(".{session}.kill.{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(&tmp)?;
    let mut text = serde_json::to_vec(note)?;
    text.push(b'\n');
    let r = f.write_all(&text).and_then(|()| fs::rename(&tmp, &path));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_bounded_and_printable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.kill");
        let long = "x".repeat(5000);
        fs::write(
            &p,
            serde_json::to_vec(&KillNote {
                by: "root".into(),
                reason: "bye\x1b]52;c;AAAA\x07\u{202e}".into(),
            })
            .unwrap(),
        )
        .unwrap();
        let n = read_note(&p).unwrap();
        assert_eq!(n.by, "root");
        assert_eq!(n.reason, "bye\u{fffd}]52;c;AAAA\u{fffd}\u{fffd}");
        fs::write(&p, format!("{{\"by\":\"a\",\"reason\":\"{long}\"}}")).unwrap();
        assert!(read_note(&p).is_none(), "over 4 KiB is not a note");
        assert!(read_note(&dir.path().join("none")).is_none());
    }

    #[test]
    fn entries_of_every_kind_read_back_and_old_ones_are_shells() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(super::dir(dir.path())).unwrap();
        // Written before kinds existed (no kind, command or hosts).
        let old = r#"{"session":"s-old","user":"alice","host":"web01","login":"L","client":"local","pid":7,"since":"2026-12-04T10:00:00.000Z"}"#;
        fs::write(entry_path(dir.path(), "s-old"), old).unwrap();
        let exec = Entry {
            session: "s-exec".into(),
            kind: Kind::Exec,
            user: "bob".into(),
            host: "web02".into(),
            command: Some("tail -f /var/log/syslog".into()),
            hosts: None,
            login: "L".into(),
            client: "10.0.0.1".into(),
            pid: 8,
            boot_id: None,
            proc_start: None,
            since: "2026-12-04T10:00:01.000Z".into(),
            tty: None,
        };
        let batch = Entry {
            session: "s-batch".into(),
            kind: Kind::Batch,
            host: "web01,web02,web03".into(),
            command: Some("uptime".into()),
            hosts: Some(3),
            since: "2026-12-04T10:00:02.000Z".into(),
            ..exec.clone()
        };
        for e in [&exec, &batch] {
            let text = serde_json::to_string(e).unwrap();
            assert!(text.contains(&format!("\"kind\":\"{}\"", e.kind.as_str())));
            fs::write(entry_path(dir.path(), &e.session), text).unwrap();
        }
        // A field from a later version is ignored, not a damaged entry.
        fs::write(
            entry_path(dir.path(), "s-new"),
            r#"{"session":"s-new","kind":"transfer","user":"c","host":"db01","login":"L","client":"local","pid":9,"since":"2026-12-04T10:00:03.000Z","later":1}"#,
        )
        .unwrap();
        let got = entries(dir.path()).unwrap();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].session, "s-old");
        assert_eq!(got[0].kind, Kind::Shell);
        assert_eq!(got[0].command, None);
        assert_eq!(got[1], exec);
        assert_eq!(got[2], batch);
        assert_eq!(got[3].kind, Kind::Transfer);
    }
}
