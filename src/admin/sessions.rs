//! `gatehouse sessions` and `gatehouse kill`: the sessions running now on
//! this bastion, and ending one (product.md, "Live control (admins)").
//!
//! Both read `<log_dir>/live/` (`crate::live`). A session's process is
//! named by boot id + pid + start time (`crate::process`), checked before
//! anything is shown or signalled; `kill` opens a pidfd first and checks
//! the identity after, so the signal can only reach that process even if
//! its pid is reused meanwhile.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::args::{Arg, Args};
use super::{log_dir_from_config, AdminError};
use crate::live::{self, Entry, KillNote, Kind};

pub const SESSIONS_USAGE: &str = "\
Usage: gatehouse sessions [--json] [--log-dir DIR] [--config PATH]

The sessions running now on this bastion, of every kind: interactive
(shell), HOST -- COMMAND (exec), sftp/scp (transfer) and many hosts at
once (batch). For each: user, kind, host (a batch: its pattern and number
of hosts), session id (a batch: the batch id), since, client, pid, idle
time (since the operator's last keystroke; only with a terminal) and an
exec's command as recorded.

  --json             one JSON object per session and line
  --log-dir DIR      read DIR/live instead of the config's log_dir
  --config PATH      the config to take log_dir from
";

pub const KILL_USAGE: &str = "\
Usage: gatehouse kill SESSION [--reason TEXT]
       gatehouse kill --user NAME [--reason TEXT]

Ends a running session (or every session of one user) within a second,
whatever its kind: a shell, an exec, a transfer, or a batch (every host
still running). The operator reads that an administrator ended it, with
the reason; the audit trail gets session_end with reason \"killed\", by
(your name) and detail (the reason), for a batch one per host. SESSION is
a session id (a batch id for a batch), or its first or last characters
when they name one session. Only root or the gatehouse account.

  --reason TEXT      why (shown to the operator and recorded)
  --user NAME        every running session of NAME
  --log-dir DIR      read DIR/live instead of the config's log_dir
  --config PATH      the config to take log_dir from
";

struct Opts {
    json: bool,
    target: Option<String>,
    user: Option<String>,
    reason: Option<String>,
    log_dir: Option<PathBuf>,
    config: Option<PathBuf>,
}

fn parse(tool: &'static str, args: Vec<OsString>) -> Result<Option<Opts>, String> {
    let mut a = Args::new(tool, args);
    let mut o = Opts {
        json: false,
        target: None,
        user: None,
        reason: None,
        log_dir: None,
        config: None,
    };
    let kill = tool == "kill";
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Positional(p) if kill && o.target.is_none() => o.target = Some(p),
            Arg::Positional(p) => return Err(format!("{tool}: unexpected argument {p:?}")),
            Arg::Opt { name, inline } => match name.as_str() {
                "--json" if !kill => o.json = true,
                "--user" if kill => o.user = Some(a.value(&name, inline)?),
                "--reason" if kill => o.reason = Some(a.value(&name, inline)?),
                "--log-dir" => o.log_dir = Some(PathBuf::from(a.value(&name, inline)?)),
                "--config" => o.config = Some(PathBuf::from(a.value(&name, inline)?)),
                "--help" | "-h" => return Ok(None),
                other => {
                    return Err(format!(
                        "{tool}: unknown option {other:?}; see `gatehouse {tool} --help`"
                    ))
                }
            },
        }
    }
    if kill && o.target.is_some() == o.user.is_some() {
        return Err("kill: name one SESSION, or --user NAME".into());
    }
    Ok(Some(o))
}

/// The sessions whose process is running now. Entries left by a process
/// that is gone (kill -9, a reboot) are removed on the way.
fn running(log_dir: &Path) -> Result<Vec<Entry>, AdminError> {
    let all = live::entries(log_dir).map_err(|err| AdminError::ReadDir {
        path: live::dir(log_dir),
        err,
    })?;
    let mut v = Vec::new();
    for e in all {
        if live::is_running(&e) {
            v.push(e);
        } else {
            let _ = std::fs::remove_file(live::entry_path(log_dir, &e.session));
        }
    }
    Ok(v)
}

fn idle_secs(e: &Entry) -> Option<u64> {
    let tty = e.tty.as_deref()?;
    let atime = std::fs::metadata(tty).ok()?.atime();
    let now = chrono::Utc::now().timestamp();
    Some(now.saturating_sub(atime).max(0) as u64)
}

/// Where the session goes: its host, or a batch's size and hosts.
fn target(e: &Entry) -> String {
    let vis = super::audit::visible;
    match (e.kind, e.hosts) {
        (Kind::Batch, Some(n)) => format!(
            "{n} host{}: {}",
            if n == 1 { "" } else { "s" },
            vis(&e.host, 48)
        ),
        _ => vis(&e.host, 64),
    }
}

const HEADER: [&str; 9] = [
    "USER",
    "KIND",
    "HOST",
    "SESSION",
    "SINCE (UTC)",
    "CLIENT",
    "PID",
    "IDLE",
    "COMMAND",
];

/// One line of the table, made safe for the admin's terminal.
fn row(e: &Entry) -> Vec<String> {
    let vis = super::audit::visible;
    let since = e.since.get(..19).unwrap_or(&e.since).replace('T', " ");
    // No terminal (an exec or a transfer without `ssh -t`, a batch): no
    // keystrokes to measure idleness by.
    let idle = match (&e.tty, idle_secs(e)) {
        (None, _) => "-".to_string(),
        (Some(_), Some(s)) => human_secs(s),
        (Some(_), None) => "?".to_string(),
    };
    vec![
        vis(&e.user, 32),
        e.kind.as_str().to_string(),
        target(e),
        vis(&e.session, 64),
        vis(&since, 19),
        vis(&e.client, 64),
        e.pid.to_string(),
        idle,
        vis(e.command.as_deref().unwrap_or(""), 80),
    ]
}

/// The rows under `HEADER`, each column as wide as its widest cell (the
/// last one unpadded; PID right-aligned).
fn table(rows: &[Vec<String>]) -> String {
    let width = |c: usize| {
        rows.iter()
            .map(|r| r[c].chars().count())
            .chain([HEADER[c].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..HEADER.len()).map(width).collect();
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (c, cell) in cells.iter().enumerate() {
            let w = widths[c];
            match c {
                _ if c + 1 == cells.len() => l.push_str(cell),
                6 => l.push_str(&format!("{cell:>w$}  ")),
                _ => l.push_str(&format!("{cell:<w$}  ")),
            }
        }
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut out = line(&HEADER);
    for r in rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out
}

fn human_secs(s: u64) -> String {
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn run_sessions(args: Vec<OsString>) -> i32 {
    let o = match super::parsed(parse("sessions", args), SESSIONS_USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let result = (|| -> Result<(), AdminError> {
        let dir = log_dir_from_config(o.log_dir.clone(), o.config.clone())?;
        let list = running(&dir)?;
        let mut out = io::stdout().lock();
        if o.json {
            for e in &list {
                let mut v = serde_json::to_value(e).map_err(io::Error::other)?;
                v["idle_s"] = serde_json::json!(idle_secs(e));
                writeln!(out, "{v}")?;
            }
            return Ok(());
        }
        if list.is_empty() {
            writeln!(out, "no sessions running")?;
            return Ok(());
        }
        let rows: Vec<Vec<String>> = list.iter().map(row).collect();
        write!(out, "{}", table(&rows))?;
        Ok(())
    })();
    match result {
        Ok(()) => 0,
        Err(AdminError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            crate::say_err!("gatehouse: {e}");
            1
        }
    }
}

/// Who is asking: the real uid's name; under sudo, the person sudo names.
fn admin_name() -> String {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"));
    if uid.is_root() {
        if let Ok(s) = std::env::var("SUDO_USER") {
            if crate::identity::safe_user_name(&s) {
                return s;
            }
        }
    }
    name
}

/// Only root or the account that owns the log directory (the gatehouse
/// account) may end sessions.
fn may_kill(log_dir: &Path) -> Result<(), String> {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return Ok(());
    }
    let owner = std::fs::metadata(log_dir).map(|m| m.uid()).ok();
    if !crate::privilege::privileged() && owner == Some(uid.as_raw()) {
        return Ok(());
    }
    Err("kill: only root or the gatehouse account may end sessions".into())
}

/// A unique session among `list`: the id, or its first or last characters.
fn pick<'a>(list: &'a [Entry], id: &str) -> Result<&'a Entry, String> {
    if let Some(e) = list.iter().find(|e| e.session == id) {
        return Ok(e);
    }
    let m: Vec<&Entry> = list
        .iter()
        .filter(|e| id.len() >= 4 && (e.session.starts_with(id) || e.session.ends_with(id)))
        .collect();
    match m.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "kill: no running session {id:?} (see `gatehouse sessions`)"
        )),
        _ => Err(format!(
            "kill: {id:?} names {} sessions; give more of the id",
            m.len()
        )),
    }
}

/// Ends one session: pidfd, identity check, note, signal, wait.
fn end_one(log_dir: &Path, e: &Entry, note: &KillNote) -> Result<(), String> {
    let pid = i32::try_from(e.pid).map_err(|_| format!("session {}: bad pid", e.session))?;
    // Opened before the check: if the check passes, the pidfd names the
    // session's process, whatever happens to the pid afterwards.
    let pidfd = match crate::sys::PidFd::open(pid) {
        Ok(fd) => Some(fd),
        Err(nix::errno::Errno::ENOSYS) => None,
        Err(_) => return Err(format!("session {}: its process is gone", e.session)),
    };
    if !live::is_running(e) {
        return Err(format!("session {}: its process is gone", e.session));
    }
    live::write_note(log_dir, &e.session, note).map_err(|err| {
        format!(
            "cannot write {}: {err}",
            live::note_path(log_dir, &e.session).display()
        )
    })?;
    let signal = || match &pidfd {
        Some(fd) => fd.signal(Signal::SIGUSR1),
        None => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1),
    };
    if let Err(err) = signal() {
        let _ = std::fs::remove_file(live::note_path(log_dir, &e.session));
        return Err(format!(
            "session {}: cannot signal process {pid}: {err}",
            e.session
        ));
    }
    // The session removes its entry when its session_end is written.
    // Signalled again meanwhile: an exec, transfer or batch blocked writing
    // to an operator who stopped reading is interrupted by SIGUSR1, and one
    // that arrived just before the write blocked is not lost
    // (`SignalPipe::interrupt_on_kill`). Only through the pidfd, which
    // reaches that process and no other; a bare pid could be reused.
    // Generous: a batch ends host by host, and on a loaded machine (a CI
    // run next to a build) one of two hosts took over 5 s once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut next_signal = Instant::now() + Duration::from_millis(250);
    while live::entry_path(log_dir, &e.session).exists() {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "session {}: asked to end, still running after 10 s (process {pid})",
                e.session
            ));
        }
        if now >= next_signal && pidfd.is_some() {
            // Gone meanwhile (ESRCH): the entry is about to go too.
            let _ = signal();
            next_signal = now + Duration::from_millis(250);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub fn run_kill(args: Vec<OsString>) -> i32 {
    let o = match super::parsed(parse("kill", args), KILL_USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let dir = match log_dir_from_config(o.log_dir.clone(), o.config.clone()) {
        Ok(d) => d,
        Err(e) => {
            crate::say_err!("gatehouse: {e}");
            return 1;
        }
    };
    if let Err(m) = may_kill(&dir) {
        crate::say_err!("gatehouse: {m}");
        return 1;
    }
    let list = match running(&dir) {
        Ok(l) => l,
        Err(e) => {
            crate::say_err!("gatehouse: {e}");
            return 1;
        }
    };
    let targets: Vec<&Entry> = match (&o.target, &o.user) {
        (Some(id), _) => match pick(&list, id) {
            Ok(e) => vec![e],
            Err(m) => {
                crate::say_err!("gatehouse: {m}");
                return 1;
            }
        },
        (None, Some(user)) => list.iter().filter(|e| &e.user == user).collect(),
        (None, None) => Vec::new(),
    };
    if targets.is_empty() {
        crate::say_err!(
            "gatehouse: kill: {} has no running session",
            super::audit::visible(o.user.as_deref().unwrap_or(""), 64)
        );
        return 1;
    }
    let note = KillNote {
        by: admin_name(),
        reason: live::printable(
            o.reason.as_deref().unwrap_or("no reason given"),
            live::MAX_REASON_CHARS,
        ),
    };
    let mut failed = 0;
    for e in targets {
        match end_one(&dir, e, &note) {
            Ok(()) => crate::say_out!(
                "ended session {} ({}, {}@{}, pid {})",
                e.session,
                e.kind.as_str(),
                super::audit::visible(&e.user, 32),
                target(e),
                e.pid
            ),
            Err(m) => {
                failed += 1;
                crate::say_err!("gatehouse: {m}");
            }
        }
    }
    i32::from(failed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> Entry {
        Entry {
            session: id.into(),
            kind: Kind::Shell,
            user: "alice".into(),
            host: "web01".into(),
            command: None,
            hosts: None,
            login: "L".into(),
            client: "local".into(),
            pid: 1,
            boot_id: None,
            proc_start: None,
            since: "2026-12-04T10:00:00.000Z".into(),
            tty: None,
        }
    }

    #[test]
    fn sessions_are_picked_by_a_unique_part_of_their_id() {
        let l = vec![entry("0190-aaaa-1111"), entry("0190-bbbb-2222")];
        assert_eq!(
            pick(&l, "0190-bbbb-2222").unwrap().session,
            "0190-bbbb-2222"
        );
        assert_eq!(pick(&l, "1111").unwrap().session, "0190-aaaa-1111");
        assert!(pick(&l, "0190").is_err(), "ambiguous");
        assert!(pick(&l, "11").is_err(), "too short");
        assert!(pick(&l, "9999").is_err());
    }

    #[test]
    fn kill_needs_one_target() {
        let p = |a: &[&str]| parse("kill", a.iter().map(OsString::from).collect());
        assert!(p(&[]).is_err());
        assert!(p(&["S", "--user", "bob"]).is_err());
        assert!(p(&["S", "--reason", "maintenance"]).unwrap().is_some());
        assert!(p(&["--user", "bob"]).unwrap().is_some());
        assert!(parse("sessions", vec!["--json".into()]).unwrap().is_some());
        assert!(parse("sessions", vec!["x".into()]).is_err());
    }

    #[test]
    fn a_batch_is_shown_by_its_size_and_hosts() {
        let mut e = entry("b");
        assert_eq!(target(&e), "web01");
        e.kind = Kind::Batch;
        e.host = "web01,web02,web03".into();
        e.hosts = Some(3);
        assert_eq!(target(&e), "3 hosts: web01,web02,web03");
        e.host = "web01".into();
        e.hosts = Some(1);
        assert_eq!(target(&e), "1 host: web01");
    }

    #[test]
    fn the_table_keeps_its_columns_whatever_the_kinds() {
        let shell = entry("0190-aaaa-1111");
        let mut batch = entry("0190-bbbb-2222");
        batch.kind = Kind::Batch;
        batch.host = "web01,web02,web03".into();
        batch.hosts = Some(3);
        batch.command = Some("uptime".into());
        let t = table(&[row(&shell), row(&batch)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("USER") && lines[0].ends_with("COMMAND"));
        // Every column starts at the same place on every line.
        let at = |l: &str, w: &str| l.find(w).unwrap();
        assert_eq!(at(lines[0], "SESSION"), at(lines[1], "0190-aaaa-1111"));
        assert_eq!(at(lines[0], "SESSION"), at(lines[2], "0190-bbbb-2222"));
        assert_eq!(at(lines[0], "HOST"), at(lines[2], "3 hosts: web01"));
        assert!(lines[1].contains(" shell ") && lines[2].contains(" batch "));
        assert!(lines[2].ends_with("  uptime"), "{t}");
        assert!(!lines[1].ends_with(' '), "no trailing blanks");
    }
}
