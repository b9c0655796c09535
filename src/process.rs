//! Which process is which. A pid alone names nothing for long (pids are
//! reused), and a process name says nothing at all (running the binary
//! through a symlink changes it). A process is named here by the boot it
//! runs in (`/proc/sys/kernel/random/boot_id`), its pid, and its start time
//! (field 22 of `/proc/PID/stat`, clock ticks since boot): no two processes
//! of one boot share that pair, so a reused pid can never be mistaken for
//! the process a record names.
//!
//! Used by the abandoned-session sweeper (is the writer of this session
//! still alive?) and by `gatehouse sessions` / `kill` (is this the session's
//! process, right now?).
#![forbid(unsafe_code)]

use std::io;

/// `/proc/sys/kernel/random/boot_id`: changes at every boot.
pub fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// What /proc says about a pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Missing,
    Zombie,
    /// Running since `start` (clock ticks since boot); `started` is the
    /// same moment in seconds since the epoch, when it can be computed.
    Running {
        start: u64,
        started: Option<i64>,
    },
    /// Exists, but we may not look (hidepid), or /proc said nothing usable.
    Unknown,
}

/// The start time (clock ticks since boot) and state letter from the text
/// of `/proc/PID/stat`. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted from the
/// last `)`. Pure.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let close = stat.rfind(')')?;
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    // Field 3 is rest[0]; field 22 (starttime) is rest[19].
    let start = rest.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The state of `pid` now.
pub fn state(pid: i32) -> State {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // hidepid hides other users' processes: ask the kernel directly.
            return match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
                Err(nix::errno::Errno::ESRCH) => State::Missing,
                _ => State::Unknown,
            };
        }
        Err(_) => return State::Unknown,
    };
    match parse_stat(&stat) {
        Some(('Z' | 'X', _)) => State::Zombie,
        Some((_, start)) => State::Running {
            start,
            started: boot_time().map(|b| b + (start / clock_ticks()) as i64),
        },
        None => State::Unknown,
    }
}

/// This process's start time (clock ticks since boot), for `session_start`.
pub fn own_start() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat).map(|(_, s)| s)
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&t| t > 0)
        .unwrap_or(100) as u64
}

fn boot_time() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// What a record says about the process that wrote it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recorded<'a> {
    pub pid: Option<i64>,
    pub boot_id: Option<&'a str>,
    /// `proc_start` (clock ticks since boot); absent in records written
    /// before it existed.
    pub start: Option<u64>,
    /// When the session began (seconds since the epoch), for old records.
    pub session_started: Option<i64>,
}

/// Whether the process a record names is still the one running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone(String),
}

/// The decision, pure over what was observed. When we cannot tell (no
/// /proc access), the process counts as alive: a false "gone" would close
/// a live session's record.
pub fn judge(
    rec: Recorded<'_>,
    this_boot: Option<&str>,
    state: impl FnOnce(i32) -> State,
) -> Liveness {
    if let (Some(r), Some(t)) = (rec.boot_id, this_boot) {
        if r != t {
            return Liveness::Gone("the bastion restarted since (boot id changed)".into());
        }
    }
    let Some(pid) = rec
        .pid
        .and_then(|p| i32::try_from(p).ok())
        .filter(|&p| p > 0)
    else {
        return Liveness::Gone("the session record names no process".into());
    };
    match state(pid) {
        State::Missing | State::Zombie => Liveness::Gone(format!("process {pid} is gone")),
        State::Unknown => Liveness::Alive,
        State::Running { start, started } => match rec.start {
            Some(s) if s != start => Liveness::Gone(format!(
                "process {pid} is gone (the pid now belongs to a process started later)"
            )),
            Some(_) => Liveness::Alive,
            // An older record without `proc_start`: a process younger than
            // the session cannot have written it (2 s of slack for
            // clock-tick rounding).
            None => match (started, rec.session_started) {
                (Some(p), Some(s)) if p > s + 2 => Liveness::Gone(format!(
                    "process {pid} is gone (the pid now belongs to a process started later)"
                )),
                _ => Liveness::Alive,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(start: u64) -> impl FnOnce(i32) -> State {
        move |_| State::Running {
            start,
            started: Some(1000),
        }
    }

    fn rec(start: Option<u64>) -> Recorded<'static> {
        Recorded {
            pid: Some(5),
            boot_id: Some("a"),
            start,
            session_started: Some(1000),
        }
    }

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let fields = (3..=22)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!("42 (a) b (c) S {}", &fields[2..]);
        assert_eq!(parse_stat(&line), Some(('S', 22)));
        assert_eq!(parse_stat("42 (x"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn identity_is_boot_pid_and_start_time() {
        let gone = |l: Liveness| matches!(l, Liveness::Gone(_));
        assert_eq!(
            judge(rec(Some(77)), Some("a"), running(77)),
            Liveness::Alive
        );
        // The pid is reused by a later process: gone, whatever its name.
        assert!(gone(judge(rec(Some(77)), Some("a"), running(78))));
        assert!(gone(judge(rec(Some(77)), Some("b"), running(77))));
        assert!(gone(judge(rec(Some(77)), Some("a"), |_| State::Missing)));
        assert!(gone(judge(rec(Some(77)), Some("a"), |_| State::Zombie)));
        assert_eq!(
            judge(rec(Some(77)), Some("a"), |_| State::Unknown),
            Liveness::Alive
        );
        let no_pid = Recorded {
            pid: None,
            ..rec(Some(1))
        };
        assert!(gone(judge(no_pid, Some("a"), |_| State::Unknown)));
    }

    #[test]
    fn old_records_fall_back_to_the_start_second() {
        let young = |_| State::Running {
            start: 1,
            started: Some(1500),
        };
        assert!(matches!(
            judge(rec(None), Some("a"), young),
            Liveness::Gone(_)
        ));
        assert_eq!(judge(rec(None), Some("a"), running(1)), Liveness::Alive);
    }

    #[test]
    fn we_are_alive_to_ourselves() {
        let me = Recorded {
            pid: Some(i64::from(std::process::id())),
            boot_id: None,
            start: own_start(),
            session_started: None,
        };
        assert!(me.start.is_some());
        assert_eq!(judge(me, None, state), Liveness::Alive);
        let other = Recorded {
            start: me.start.map(|s| s + 1),
            ..me
        };
        assert!(matches!(judge(other, None, state), Liveness::Gone(_)));
    }
}
