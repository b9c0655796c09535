//! No session without an end. A login that dies without writing
//! `session_end` (kill -9, OOM, power loss) leaves a `session_start` whose
//! process is gone. `sweep` finds those and writes the missing end for
//! them, `reason: "abandoned"`, continuing the dead session's hash chain.
//! Its byte counts died with the process, so the record leaves them out
//! (unknown, not 0). The dead process was the whole login: when the login
//! has no `logout`, the sweep writes one too (`reason: "abandoned"`).
//!
//! A session is gone when its `boot_id` is not this boot's, or its `pid`
//! is not running, or that pid now belongs to a process with another start
//! time (`proc_start`; pid reuse) — see `crate::process`. When we cannot tell
//! (no /proc access), it is treated as alive: a false "abandoned" would be
//! worse than a late one.
//!
//! Sweepers serialise on flock(2) of the JSONL file and re-read it under
//! the lock, so two sweeps never write the same end twice. Writers of live
//! sessions never take the lock (O_APPEND keeps their lines whole).
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::chain::{hash_line, Link};
use super::reader::{JsonlReader, Line};
use super::record::read::{Body, Record};
use super::record::UNKNOWN_BYTES;
use super::{AuditError, AuditLog, EndReason, Event};

/// The boot id a `session_start` carries (see `process`).
pub use crate::process::boot_id;
use crate::process::{Liveness, Recorded};

#[derive(Debug)]
pub enum SweepError {
    Read { path: PathBuf, err: io::Error },
    Lock { path: PathBuf, err: nix::Error },
    Write(AuditError),
}

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepError::Read { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            SweepError::Lock { path, err } => write!(f, "cannot lock {}: {err}", path.display()),
            SweepError::Write(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SweepError {}

/// A session the sweep closed.
#[derive(Debug, Clone)]
pub struct Closed {
    pub session: String,
    pub user: String,
    pub host: String,
    pub detail: String,
}

/// A session whose start the sweep saw and whose end it did not (yet).
struct Open {
    /// Its `session_start` (or `exec`).
    start: Record,
    start_ms: Option<i64>,
    /// Its last record's time: the last sign of life in the file.
    last_ms: Option<i64>,
    /// Where its chain stands (the end continues it).
    link: Option<Link>,
}

/// Closes the abandoned sessions of one JSONL file. `tail`: only look at
/// the last that many bytes (the cheap check at every login); `None`: the
/// whole file (`gatehouse audit --check`).
pub fn sweep(path: &Path, tail: Option<u64>) -> Result<Vec<Closed>, SweepError> {
    sweep_sealed(path, tail, None)
}

/// Same, sealing the ends it writes with the sealing key `seal` (a login's
/// sweep, when the bastion seals): otherwise a dead session's chain would
/// stay unsealed for good.
pub fn sweep_sealed(
    path: &Path,
    tail: Option<u64>,
    seal: Option<&Path>,
) -> Result<Vec<Closed>, SweepError> {
    let Some((reader, lock)) = lock_and_open(path, tail)? else {
        return Ok(Vec::new());
    };
    let (open, mut logins) = scan(reader)?;
    let this_boot = boot_id();
    let mut closed = Vec::new();
    let mut sessions: Vec<(String, Open)> = open.into_iter().collect();
    sessions.sort_by_key(|(_, o)| o.start_ms);
    for (session, o) in sessions {
        if let Some(why) = gone(&o.start, o.start_ms, this_boot.as_deref()) {
            closed.push(close(path, seal, &mut logins, session, &o, &why)?);
        }
    }
    drop(lock);
    Ok(closed)
}

/// The file, locked (flock, exclusive) and positioned for the sweep; `None`
/// when there is nothing to do (no file, or at login another sweep holds
/// the lock). The lock is held until the returned guard is dropped.
fn lock_and_open(
    path: &Path,
    tail: Option<u64>,
) -> Result<Option<(JsonlReader, Flock<File>)>, SweepError> {
    let read_err = |err| SweepError::Read {
        path: path.to_path_buf(),
        err,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    // At login (`tail`), never wait: another sweep holding the lock is
    // doing the job, and the operator must not wait behind a full scan.
    let how = if tail.is_some() {
        FlockArg::LockExclusiveNonblock
    } else {
        FlockArg::LockExclusive
    };
    let lock = match Flock::lock(file.try_clone().map_err(read_err)?, how) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) if tail.is_some() => return Ok(None),
        Err((_, err)) => {
            return Err(SweepError::Lock {
                path: path.to_path_buf(),
                err,
            })
        }
    };
    let len = file.metadata().map_err(read_err)?.len();
    let mut reader = JsonlReader::from_file(path, file);
    if let Some(t) = tail {
        reader
            .seek_to_line_after(len.saturating_sub(t))
            .map_err(read_err)?;
    }
    Ok(Some((reader, lock)))
}

/// Reads the file (under the lock): the sessions started and not ended,
/// and the logins.
fn scan(mut reader: JsonlReader) -> Result<(HashMap<String, Open>, Logins), SweepError> {
    let mut open: HashMap<String, Open> = HashMap::new();
    let mut logins = Logins::default();
    let path = reader.path().to_path_buf();
    let read_err = |err| SweepError::Read {
        path: path.clone(),
        err,
    };
    while let Some(line) = reader.next_line().map_err(read_err)? {
        let Line::Record { record, .. } = line else {
            continue;
        };
        let link = record.head.n.map(|n| Link {
            n,
            hash: hash_line(&record.bytes),
        });
        let Some(session) = record.session().map(str::to_string) else {
            logins.note(&record, link);
            continue;
        };
        let ms = record.ts_ms();
        if record.start().is_some() {
            // An exec or transfer starts with its `exec` record.
            open.insert(
                session,
                Open {
                    start_ms: ms,
                    last_ms: ms,
                    link,
                    start: record,
                },
            );
        } else if matches!(record.body, Body::SessionEnd(_)) {
            open.remove(&session);
        } else if let Some(o) = open.get_mut(&session) {
            o.last_ms = ms.or(o.last_ms);
            if link.is_some() {
                o.link = link;
            }
        }
    }
    Ok((open, logins))
}

/// Why the session's process is gone, or `None` while it may be alive.
/// Boot id + pid + process start time, never the process name (issue 12,
/// point 3: a symlinked binary has another name).
fn gone(start: &Record, start_ms: Option<i64>, this_boot: Option<&str>) -> Option<String> {
    let s = start.start()?;
    let verdict = crate::process::judge(
        Recorded {
            pid: s.pid,
            boot_id: s.boot_id,
            start: s.proc_start,
            session_started: start_ms.map(|ms| ms / 1000),
        },
        this_boot,
        crate::process::state,
    );
    match verdict {
        Liveness::Gone(why) => Some(why),
        _ => None,
    }
}

/// Writes the missing `session_end` of a dead session, continuing its
/// chain, and its login's `logout` when the login has none.
fn close(
    path: &Path,
    seal: Option<&Path>,
    logins: &mut Logins,
    session: String,
    o: &Open,
    why: &str,
) -> Result<Closed, SweepError> {
    let h = &o.start.head;
    let text = |f: &Option<String>| f.clone().unwrap_or_default();
    let (user, login, client, host) = (
        text(&h.user),
        text(&h.login),
        text(&h.client),
        text(&h.host),
    );
    // The recording's mtime is the last moment the session was seen.
    let rec_ms = o
        .start
        .start()
        .and_then(|s| s.recording)
        .and_then(|r| std::fs::metadata(r).ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64);
    let last = o.last_ms.max(rec_ms);
    let mut log = AuditLog::open_path(path, &user, &login, &client).map_err(SweepError::Write)?;
    // The dead session's bastion (its records say), not necessarily
    // this host's name: the sweep may run on a copy.
    if let Some(b) = &h.bastion {
        log.set_bastion(b);
    }
    if let Some(key) = seal {
        log.enable_sealing(key, None);
    }
    if let Some(link) = o.link.clone() {
        log.resume_chain(&session, link);
    }
    let detail = format!("{why}; the session had no end record");
    log.write(&Event::SessionEnd {
        session: &session,
        host: &host,
        exit_status: None,
        exit_signal: None,
        reason: EndReason::Abandoned,
        detail: Some(&detail),
        by: None,
        duration_ms: span_ms(o.start_ms, last),
        bytes_in: UNKNOWN_BYTES,
        bytes_out: UNKNOWN_BYTES,
    })
    .map_err(SweepError::Write)?;
    // The process that died was the whole login: close it too, once.
    if let Some(link) = logins.close(&login) {
        log.resume_chain(&login, link);
        log.write(&Event::Logout {
            duration_ms: span_ms(logins.started_ms(&login), last),
            reason: Some("abandoned"),
        })
        .map_err(SweepError::Write)?;
    }
    Ok(Closed {
        session,
        user,
        host,
        detail,
    })
}

/// Milliseconds from `a` to `b`; 0 when either is unknown or out of order.
fn span_ms(a: Option<i64>, b: Option<i64>) -> u64 {
    match (a, b) {
        (Some(a), Some(b)) if b > a => (b - a) as u64,
        _ => 0,
    }
}

/// The logins seen by a sweep (records without a session): which ended
/// with a `logout`, where each one's hash chain stands, when each began.
#[derive(Default)]
struct Logins {
    ended: HashSet<String>,
    links: HashMap<String, Link>,
    started_ms: HashMap<String, i64>,
}

impl Logins {
    fn note(&mut self, rec: &Record, link: Option<Link>) {
        let Some(login) = rec.head.login.as_deref().filter(|l| !l.is_empty()) else {
            return;
        };
        match rec.body {
            Body::Login(_) => {
                if let Some(ms) = rec.ts_ms() {
                    self.started_ms.insert(login.to_string(), ms);
                }
            }
            Body::Logout(_) => {
                self.ended.insert(login.to_string());
            }
            _ => {}
        }
        if let Some(link) = link {
            self.links.insert(login.to_string(), link);
        }
    }

    /// The last link of `login`'s chain when it has no `logout` yet; marks
    /// it ended, so a login with two abandoned sessions gets one logout.
    /// None as well when the sweep did not see the login's own records (a
    /// tail sweep that starts after them): a logout that starts a second
    /// chain for the login would read as tampering; the full sweep
    /// (`gatehouse audit --check`) sees them.
    fn close(&mut self, login: &str) -> Option<Link> {
        let link = self.links.get(login).cloned()?;
        self.ended.insert(login.to_string()).then_some(link)
    }

    fn started_ms(&self, login: &str) -> Option<i64> {
        self.started_ms.get(login).copied()
    }
}

/// How much of the user's own file every login looks at (bounded work).
pub const LOGIN_TAIL_BYTES: u64 = 128 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(v: serde_json::Value) -> Record {
        Record::parse(serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn a_login_is_closed_once_and_only_when_its_chain_was_seen() {
        let mut l = Logins::default();
        let link = Some(Link {
            n: 3,
            hash: "h".into(),
        });
        l.note(
            &typed(
                serde_json::json!({"event":"login","login":"L1","ts":"2026-01-01T00:00:00.000Z"}),
            ),
            link.clone(),
        );
        l.note(
            &typed(
                serde_json::json!({"event":"login","login":"L2","ts":"2026-01-01T00:00:00.000Z"}),
            ),
            link.clone(),
        );
        l.note(
            &typed(serde_json::json!({"event":"logout","login":"L2"})),
            link,
        );
        assert_eq!(l.close("L1").map(|k| k.n), Some(3));
        assert!(l.close("L1").is_none(), "a second logout");
        assert!(l.close("L2").is_none(), "L2 has its logout");
        assert!(l.close("L3").is_none(), "L3's records were not seen");
        assert_eq!(l.started_ms("L1"), Some(1_767_225_600_000));
    }
}
