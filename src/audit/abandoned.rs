//! No session without an end. A login that dies without writing
//! `session_end` (kill -9, OOM, power loss) leaves a `session_start` whose
//! process is gone. `sweep` finds those and writes the missing end for
//! them, `reason: "abandoned"`, continuing the dead session's hash chain.
//!
//! A session is gone when its `boot_id` is not this boot's, or its `pid`
//! is not running, or that pid now belongs to another program or to a
//! process started after the session did (pid reuse). When we cannot tell
//! (no /proc access), it is treated as alive: a false "abandoned" would be
//! worse than a late one.
//!
//! Sweepers serialise on flock(2) of the JSONL file and re-read it under
//! the lock, so two sweeps never write the same end twice. Writers of live
//! sessions never take the lock (O_APPEND keeps their lines whole).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

use super::chain::{hash_line, Link};
use super::reader::{JsonlReader, Line};
use super::{AuditError, AuditLog, EndReason, Event};

/// `/proc/sys/kernel/random/boot_id`: changes at every boot.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

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

/// Whether the process that wrote a session is still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone(String),
}

/// What /proc says about a pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proc {
    Missing,
    Zombie,
    /// Running: its `comm` and its start time (seconds since the epoch).
    Running {
        comm: String,
        started: Option<i64>,
    },
    /// Exists, but we may not look (hidepid).
    Unknown,
}

pub fn probe(pid: i32) -> Proc {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // hidepid hides other users' processes: ask the kernel directly.
            return match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
                Err(nix::errno::Errno::ESRCH) => Proc::Missing,
                _ => Proc::Unknown,
            };
        }
        Err(_) => return Proc::Unknown,
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return Proc::Unknown;
    };
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    if matches!(rest.first(), Some(&"Z") | Some(&"X")) {
        return Proc::Zombie;
    }
    // Field 22 (starttime, clock ticks since boot) is rest[19].
    let started = rest
        .get(19)
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|ticks| Some(boot_time()? + ticks / clock_ticks()));
    Proc::Running { comm, started }
}

fn clock_ticks() -> i64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&t| t > 0)
        .unwrap_or(100) as i64
}

fn boot_time() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "gatehouse".into())
}

/// The decision, pure over what was observed.
pub fn liveness(
    pid: Option<i64>,
    rec_boot: Option<&str>,
    this_boot: Option<&str>,
    session_started: Option<i64>,
    proc_: impl FnOnce(i32) -> Proc,
    our_comm: &str,
) -> Liveness {
    if let (Some(r), Some(t)) = (rec_boot, this_boot) {
        if r != t {
            return Liveness::Gone("the bastion restarted since (boot id changed)".into());
        }
    }
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|&p| p > 0) else {
        return Liveness::Gone("the session record names no process".into());
    };
    match proc_(pid) {
        Proc::Missing | Proc::Zombie => Liveness::Gone(format!("process {pid} is gone")),
        Proc::Unknown => Liveness::Alive,
        Proc::Running { comm, started } => {
            if comm != "gatehouse" && comm != our_comm {
                return Liveness::Gone(format!("process {pid} is gone (pid now used by {comm:?})"));
            }
            // A process younger than the session cannot have written it
            // (2 s of slack for clock-tick rounding).
            if let (Some(p), Some(s)) = (started, session_started) {
                if p > s + 2 {
                    return Liveness::Gone(format!(
                        "process {pid} is gone (pid reused by a newer gatehouse)"
                    ));
                }
            }
            Liveness::Alive
        }
    }
}

struct Open {
    start: Value,
    start_ms: Option<i64>,
    last_ms: Option<i64>,
    link: Option<Link>,
}

fn ts_ms(rec: &Value) -> Option<i64> {
    let ts = rec.get("ts")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|s| s.as_str()).unwrap_or("")
}

/// Closes the abandoned sessions of one JSONL file. `tail`: only look at
/// the last that many bytes (the cheap check at every login); `None`: the
/// whole file (`gatehouse audit --check`).
pub fn sweep(path: &Path, tail: Option<u64>) -> Result<Vec<Closed>, SweepError> {
    let read_err = |err| SweepError::Read {
        path: path.to_path_buf(),
        err,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
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
        Err((_, nix::errno::Errno::EWOULDBLOCK)) if tail.is_some() => return Ok(Vec::new()),
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
    let mut open: HashMap<String, Open> = HashMap::new();
    while let Some(line) = reader.next_line().map_err(read_err)? {
        let Line::Record { bytes, value, .. } = line else {
            continue;
        };
        let Some(session) = value.get("session").and_then(|s| s.as_str()) else {
            continue;
        };
        let link = value.get("n").and_then(|n| n.as_u64()).map(|n| Link {
            n,
            hash: hash_line(&bytes),
        });
        match str_of(&value, "event") {
            // An exec or transfer starts with its `exec` record.
            "session_start" | "exec" => {
                let ms = ts_ms(&value);
                open.insert(
                    session.to_string(),
                    Open {
                        start_ms: ms,
                        last_ms: ms,
                        link,
                        start: value,
                    },
                );
            }
            "session_end" => {
                open.remove(session);
            }
            _ => {
                if let Some(o) = open.get_mut(session) {
                    o.last_ms = ts_ms(&value).or(o.last_ms);
                    if link.is_some() {
                        o.link = link;
                    }
                }
            }
        }
    }
    let this_boot = boot_id();
    let our_comm = own_comm();
    let mut closed = Vec::new();
    let mut sessions: Vec<(String, Open)> = open.into_iter().collect();
    sessions.sort_by_key(|(_, o)| o.start_ms);
    for (session, o) in sessions {
        let s = &o.start;
        let verdict = liveness(
            s.get("pid").and_then(|p| p.as_i64()),
            s.get("boot_id").and_then(|b| b.as_str()),
            this_boot.as_deref(),
            o.start_ms.map(|ms| ms / 1000),
            probe,
            &our_comm,
        );
        let Liveness::Gone(why) = verdict else {
            continue;
        };
        // The recording's mtime is the last moment the session was seen.
        let rec_ms = s
            .get("recording")
            .and_then(|r| r.as_str())
            .and_then(|r| std::fs::metadata(r).ok())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        let last = o.last_ms.max(rec_ms);
        let duration_ms = match (o.start_ms, last) {
            (Some(a), Some(b)) if b > a => (b - a) as u64,
            _ => 0,
        };
        let (user, login, client, host) = (
            str_of(s, "user"),
            str_of(s, "login"),
            str_of(s, "client"),
            str_of(s, "host"),
        );
        let mut log = AuditLog::open_path(path, user, login, client).map_err(SweepError::Write)?;
        if let Some(link) = o.link.clone() {
            log.resume_chain(&session, link);
        }
        let detail = format!("{why}; the session had no end record");
        log.write(&Event::SessionEnd {
            session: &session,
            host,
            exit_status: None,
            exit_signal: None,
            reason: EndReason::Abandoned,
            detail: Some(&detail),
            duration_ms,
            bytes_in: 0,
            bytes_out: 0,
        })
        .map_err(SweepError::Write)?;
        closed.push(Closed {
            session,
            user: user.to_string(),
            host: host.to_string(),
            detail,
        });
    }
    drop(lock);
    Ok(closed)
}

/// How much of the user's own file every login looks at (bounded work).
pub const LOGIN_TAIL_BYTES: u64 = 128 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn running(comm: &str, started: i64) -> impl FnOnce(i32) -> Proc {
        let comm = comm.to_string();
        move |_| Proc::Running {
            comm,
            started: Some(started),
        }
    }

    #[test]
    fn decisions() {
        let gone = |l: Liveness| matches!(l, Liveness::Gone(_));
        assert!(gone(liveness(
            Some(5),
            Some("a"),
            Some("b"),
            None,
            |_| Proc::Unknown,
            "gatehouse"
        )));
        assert!(gone(liveness(
            Some(5),
            Some("a"),
            Some("a"),
            None,
            |_| Proc::Missing,
            "gatehouse"
        )));
        assert!(gone(liveness(
            Some(5),
            None,
            Some("a"),
            None,
            |_| Proc::Zombie,
            "gatehouse"
        )));
        assert!(gone(liveness(
            Some(5),
            Some("a"),
            Some("a"),
            Some(100),
            running("bash", 50),
            "gatehouse"
        )));
        assert!(gone(liveness(
            Some(5),
            Some("a"),
            Some("a"),
            Some(100),
            running("gatehouse", 500),
            "gatehouse"
        )));
        assert!(gone(liveness(
            None,
            Some("a"),
            Some("a"),
            Some(100),
            |_| Proc::Unknown,
            "gatehouse"
        )));
        assert_eq!(
            liveness(
                Some(5),
                Some("a"),
                Some("a"),
                Some(100),
                running("gatehouse", 99),
                "gatehouse"
            ),
            Liveness::Alive
        );
        assert_eq!(
            liveness(
                Some(5),
                Some("a"),
                Some("a"),
                Some(100),
                |_| Proc::Unknown,
                "gatehouse"
            ),
            Liveness::Alive
        );
    }

    #[test]
    fn probe_sees_ourselves() {
        match probe(std::process::id() as i32) {
            Proc::Running { started, .. } => assert!(started.is_some()),
            other => panic!("{other:?}"),
        }
    }
}
