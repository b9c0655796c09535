//! `gatehouse replay SESSION|FILE`: plays an asciicast v2 recording in the
//! terminal with its original timing (`--speed`, `--idle-limit`), or
//! follows a live one as it is written (`--follow`, like `tail -f`) until
//! its `session_end` is in the audit trail.
//!
//! The recorded output goes to stdout through `escapes::ReplayFilter`:
//! what drawing needs passes, what could act on the admin's terminal
//! (clipboard, title, reports and queries, DCS/APC/PM strings) does not;
//! `--raw` opts out, with a warning. When stdin is a terminal it is put in
//! raw mode only to read `q`/Ctrl-C (quit) and space (pause); a guard
//! restores it and resets everything the recording may have left switched
//! on (`escapes::restore`), on every exit — Ctrl-C, SIGINT, SIGTERM and
//! SIGHUP included.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::Value;

use super::args::{Arg, Args};
use super::escapes::{self, ReplayFilter};
use super::{log_dir_from_config, AdminError};
use crate::audit::reader::{JsonlReader, Line};
use crate::core::record::read::Body;
use crate::tty::RawMode;

pub const USAGE: &str = "\
Usage: gatehouse replay SESSION|FILE [OPTIONS]

Plays a session recording (asciicast v2) in this terminal. SESSION is a
session id from the audit trail: whole, the short form `gatehouse audit`
prints, or any unambiguous prefix or suffix of it (an ambiguous one lists
the candidates); the file is <log_dir>/sessions/<user>/SESSION.cast.

  --speed N          play N times faster (0.5 = half speed); default 1
  --idle-limit S     cap every pause at S seconds
  -f, --follow       watch a live session: print what is recorded so far at
                     once, then new output as it is written, until the
                     session ends (its session_end is in the audit trail)
  --raw              pass the recording to the terminal unfiltered (it can
                     then set your clipboard and title or type answers
                     into your terminal: only for recordings you trust)
  --log-dir DIR      find SESSION under DIR instead of the config's log_dir
                     (--dir DIR is the same)
  --config PATH      the config to take log_dir from

Keys: q or Ctrl-C quits, space pauses and resumes.
";

struct Opts {
    target: String,
    speed: f64,
    idle_limit: Option<f64>,
    follow: bool,
    raw: bool,
    log_dir: Option<PathBuf>,
    config: Option<PathBuf>,
}

fn positive(name: &str, v: &str) -> Result<f64, String> {
    let t = v.trim().trim_end_matches('s');
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("replay: {name} needs a positive number, not {v:?}")),
    }
}

fn parse(args: Vec<OsString>) -> Result<Option<Opts>, String> {
    let mut a = Args::new("replay", args);
    let mut target = None;
    let mut o = Opts {
        target: String::new(),
        speed: 1.0,
        idle_limit: None,
        follow: false,
        raw: false,
        log_dir: None,
        config: None,
    };
    while let Some(arg) = a.next()? {
        match arg {
            Arg::Positional(p) if target.is_none() => target = Some(p),
            Arg::Positional(p) => return Err(format!("replay: unexpected argument {p:?}")),
            Arg::Opt { name, inline } => match name.as_str() {
                "--speed" => o.speed = positive(&name, &a.value(&name, inline)?)?,
                "--idle-limit" => o.idle_limit = Some(positive(&name, &a.value(&name, inline)?)?),
                "--follow" | "-f" => o.follow = true,
                "--raw" => o.raw = true,
                "--log-dir" | "--dir" => o.log_dir = Some(PathBuf::from(a.value(&name, inline)?)),
                "--config" => o.config = Some(PathBuf::from(a.value(&name, inline)?)),
                "--help" | "-h" => return Ok(None),
                other => {
                    return Err(format!(
                        "replay: unknown option {other:?}; see `gatehouse replay --help`"
                    ))
                }
            },
        }
    }
    o.target = target.ok_or("replay: which session? give a session id or a .cast file")?;
    Ok(Some(o))
}

pub fn run(args: Vec<OsString>) -> i32 {
    let opts = match super::parsed(parse(args), USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match play(&opts) {
        Ok(()) => 0,
        Err(AdminError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            crate::say_err!("gatehouse: {e}");
            1
        }
    }
}

/// A file path as given, or a session id looked up under log_dir.
fn resolve(o: &Opts) -> Result<PathBuf, AdminError> {
    let p = Path::new(&o.target);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let id = &o.target;
    if id.contains('/') || id.starts_with('.') || id.is_empty() {
        return Err(AdminError::NotFound(format!("{id}: no such file")));
    }
    let dir = log_dir_from_config(o.log_dir.clone(), o.config.clone())?;
    let sessions = dir.join("sessions");
    let rd = std::fs::read_dir(&sessions).map_err(|err| AdminError::ReadDir {
        path: sessions.clone(),
        err,
    })?;
    // Every recording: (session id, user, path). An id can be typed whole
    // or as any unambiguous prefix or suffix (the audit table's short form).
    let mut casts: Vec<(String, String, PathBuf)> = Vec::new();
    for user_dir in rd.filter_map(|e| e.ok()) {
        let user = user_dir.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(user_dir.path()) else {
            continue;
        };
        for f in files.filter_map(|e| e.ok()) {
            let path = f.path();
            if path.extension().is_some_and(|x| x == "cast") {
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    casts.push((stem.to_string(), user.clone(), path.clone()));
                }
            }
        }
    }
    casts.sort();
    match super::ids::lookup(id, casts.iter().map(|(s, _, _)| s.as_str())) {
        super::ids::Lookup::Found(full) => Ok(casts
            .into_iter()
            .find(|(s, _, _)| *s == full)
            .map(|(_, _, p)| p)
            .unwrap_or_default()),
        super::ids::Lookup::Ambiguous(ids) => Err(AdminError::Ambiguous {
            typed: id.clone(),
            candidates: ids
                .iter()
                .filter_map(|i| casts.iter().find(|(s, _, _)| s == i))
                .map(|(s, u, _)| format!("{s}  (user {u})"))
                .collect(),
        }),
        super::ids::Lookup::None => Err(AdminError::NotFound(format!(
            "no recording of session {id} under {}",
            sessions.display()
        ))),
    }
}

/// What the keyboard asked for.
#[derive(PartialEq, Eq)]
enum Key {
    None,
    Quit,
}

/// The terminal while we play: stdin raw (if it is a terminal), the
/// output filtered, and the screen reset on the way out.
struct Terminal {
    raw: Option<RawMode>,
    out_tty: bool,
    filter: ReplayFilter,
    /// `--raw`: no filter; the restore then assumes the worst.
    unfiltered: bool,
    /// Readable when SIGINT, SIGTERM or SIGHUP arrived.
    interrupts: Option<std::os::fd::OwnedFd>,
    paused: bool,
}

impl Terminal {
    fn new(unfiltered: bool) -> Terminal {
        // Before raw mode: a signal from now on ends the replay through
        // `Drop`, never in the middle of a sequence.
        let interrupts = crate::sys::catch_interrupts().ok();
        let raw = if io::stdin().is_terminal() {
            RawMode::enter().ok()
        } else {
            None
        };
        let out_tty = io::stdout().is_terminal();
        if out_tty {
            let mut o = io::stdout().lock();
            let _ = o.write_all(escapes::SAVE_TITLE.as_bytes());
            let _ = o.flush();
        }
        Terminal {
            raw,
            out_tty,
            filter: ReplayFilter::new(),
            unfiltered,
            interrupts,
            paused: false,
        }
    }

    /// Writes recorded output, filtered unless `--raw`.
    fn show(&mut self, out: &mut impl Write, data: &str) -> io::Result<()> {
        if self.unfiltered {
            out.write_all(data.as_bytes())?;
        } else {
            out.write_all(self.filter.feed(data).as_bytes())?;
        }
        out.flush()
    }

    /// Waits `dur` (forever while paused), reading keys if we can; a
    /// signal also ends the wait with `Quit`.
    fn wait(&mut self, dur: Duration) -> Key {
        let deadline = Instant::now() + dur;
        loop {
            if crate::sys::interrupted() {
                return Key::Quit;
            }
            let timeout = if self.paused && self.raw.is_some() {
                PollTimeout::NONE
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Key::None;
                }
                PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            };
            let stdin = io::stdin();
            let mut fds = Vec::with_capacity(2);
            if let Some(i) = &self.interrupts {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            let keys_at = fds.len();
            if self.raw.is_some() {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(0) => continue,
                Ok(_) => {
                    let key_ready = fds
                        .get(keys_at)
                        .and_then(|f| f.revents())
                        .is_some_and(|r| !r.is_empty());
                    if !key_ready {
                        continue; // a signal: checked at the top
                    }
                    let mut buf = [0u8; 64];
                    let n = match stdin.lock().read(&mut buf) {
                        Ok(0) | Err(_) => return Key::Quit, // terminal gone
                        Ok(n) => n,
                    };
                    for &b in &buf[..n] {
                        match b {
                            b'q' | b'Q' | 0x03 | 0x04 => return Key::Quit,
                            b' ' => self.paused = !self.paused,
                            _ => {}
                        }
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Key::Quit,
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.out_tty {
            let reset = if self.unfiltered {
                escapes::restore(true, true)
            } else {
                escapes::restore(self.filter.alt_screen(), self.filter.moved_margins())
            };
            let mut o = io::stdout().lock();
            let _ = o.write_all(reset.as_bytes());
            let _ = o.flush();
        }
        // Dropping `raw` restores the saved termios.
        self.raw = None;
    }
}

/// Watches the audit trail for the end of one session (`--follow`).
struct EndWatch {
    reader: Option<JsonlReader>,
    done: bool,
    jsonl: PathBuf,
    session: String,
}

impl EndWatch {
    fn ended(&mut self) -> bool {
        if self.done {
            return true;
        }
        if self.reader.is_none() {
            self.reader = JsonlReader::open(&self.jsonl).ok();
        }
        let Some(r) = &mut self.reader else {
            return false;
        };
        while let Ok(Some(line)) = r.next_line() {
            if let Line::Record { record, .. } = line {
                if matches!(record.body, Body::SessionEnd(_))
                    && record.session() == Some(self.session.as_str())
                {
                    self.done = true;
                    return true;
                }
            }
        }
        false
    }
}

fn play(o: &Opts) -> Result<(), AdminError> {
    let path = resolve(o)?;
    let read_err = |err| AdminError::Read {
        path: path.clone(),
        err,
    };
    let mut reader = JsonlReader::open(&path).map_err(read_err)?;
    // The header may still be being written when following a fresh session.
    let header: Value = loop {
        match reader.next_raw().map_err(read_err)? {
            Some((_, bytes, false)) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(h) if h.get("version").and_then(|v| v.as_u64()) == Some(2) => break h,
                _ => {
                    return Err(AdminError::NotFound(format!(
                        "{}: not an asciicast v2 recording (bad header line)",
                        path.display()
                    )))
                }
            },
            Some(_) => {
                return Err(AdminError::NotFound(format!(
                    "{}: not an asciicast v2 recording",
                    path.display()
                )))
            }
            None if o.follow => std::thread::sleep(Duration::from_millis(100)),
            None => {
                return Err(AdminError::NotFound(format!(
                    "{}: empty recording",
                    path.display()
                )))
            }
        }
    };
    let meta = header.get("gatehouse");
    let field = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let (session, user, host) = (field("session"), field("user"), field("host"));
    let idle_limit = o
        .idle_limit
        .or_else(|| header.get("idle_time_limit").and_then(|v| v.as_f64()));
    let started = header
        .get("timestamp")
        .and_then(|t| t.as_i64())
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    // <log_dir>/sessions/<user>/<id>.cast → <log_dir>/<user>.jsonl
    let mut end_watch = match (
        o.follow,
        path.parent()
            .and_then(|p| p.parent())
            .and_then(|p| p.parent()),
    ) {
        (true, Some(log_dir)) if !session.is_empty() && !user.is_empty() => Some(EndWatch {
            reader: None,
            done: false,
            jsonl: log_dir.join(format!("{user}.jsonl")),
            session: session.clone(),
        }),
        _ => None,
    };
    if o.raw {
        crate::say_err!(
            "gatehouse: warning: --raw passes the recording to your terminal unfiltered; \
             it can set your clipboard and title and make your terminal answer queries"
        );
    }
    let mut term = Terminal::new(o.raw);
    let keys = if term.raw.is_some() {
        "; q quits, space pauses"
    } else {
        ""
    };
    crate::say_err!(
        "gatehouse: replaying {} ({}@{}, {}x{}, {started}){keys}\r",
        super::audit::visible(
            &if session.is_empty() {
                path.display().to_string()
            } else {
                session.clone()
            },
            200
        ),
        super::audit::visible(&user, 64),
        super::audit::visible(&host, 64),
        // From the file: shown, never obeyed.
        header.get("width").and_then(|v| v.as_u64()).unwrap_or(0),
        header.get("height").and_then(|v| v.as_u64()).unwrap_or(0),
    );
    let stdout = io::stdout();
    let mut prev_t = 0.0f64;
    let mut bad_lines = 0u64;
    let mut ended_by_key = false;
    loop {
        let Some((no, bytes, cut)) = reader.next_raw().map_err(read_err)? else {
            if !o.follow {
                break;
            }
            if end_watch.as_mut().is_some_and(|w| w.ended()) {
                // The session is over: print what was written between our
                // last read and its end, then stop.
                while let Some((_, b, false)) = reader.next_raw().map_err(read_err)? {
                    emit(&stdout, &mut term, &b)?;
                }
                break;
            }
            if term.wait(Duration::from_millis(100)) == Key::Quit {
                ended_by_key = true;
                break;
            }
            continue;
        };
        if cut {
            bad_lines += 1;
            continue;
        }
        let Ok(Value::Array(ev)) = serde_json::from_slice::<Value>(&bytes) else {
            if bad_lines == 0 {
                crate::say_err!(
                    "gatehouse: {}:{no}: not an event line; skipped\r",
                    path.display()
                );
            }
            bad_lines += 1;
            continue;
        };
        let (Some(t), Some(code), Some(data)) = (
            ev.first().and_then(|t| t.as_f64()),
            ev.get(1).and_then(|c| c.as_str()),
            ev.get(2).and_then(|d| d.as_str()),
        ) else {
            bad_lines += 1;
            continue;
        };
        if code != "o" {
            continue;
        }
        // Following, the history is shown at once and live output as it
        // comes: its pauses have already happened in real time.
        if !o.follow {
            let mut delay = (t - prev_t).max(0.0);
            if let Some(l) = idle_limit {
                delay = delay.min(l);
            }
            delay /= o.speed;
            if delay > 0.0005
                && term.wait(Duration::from_secs_f64(delay.min(86_400.0))) == Key::Quit
            {
                ended_by_key = true;
                break;
            }
        }
        prev_t = t;
        term.show(&mut stdout.lock(), data)?;
        if crate::sys::interrupted() {
            ended_by_key = true;
            break;
        }
    }
    let filtered = term.filter.dropped();
    drop(term);
    if filtered > 0 {
        crate::say_err!(
            "gatehouse: {filtered} escape sequence(s) that could act on your terminal were not passed (--raw would pass them)"
        );
    }
    if bad_lines > 1 {
        crate::say_err!("gatehouse: {} damaged line(s) skipped", bad_lines);
    }
    crate::say_err!(
        "\ngatehouse: {}",
        if ended_by_key {
            "replay stopped"
        } else {
            "end of recording"
        }
    );
    Ok(())
}

fn emit(stdout: &io::Stdout, term: &mut Terminal, line: &[u8]) -> Result<(), AdminError> {
    if let Ok(Value::Array(ev)) = serde_json::from_slice::<Value>(line) {
        if ev.get(1).and_then(|c| c.as_str()) == Some("o") {
            if let Some(d) = ev.get(2).and_then(|d| d.as_str()) {
                term.show(&mut stdout.lock(), d)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let p = |a: &[&str]| parse(a.iter().map(OsString::from).collect());
        let o = p(&["S1", "--speed", "4", "--idle-limit=2"])
            .unwrap()
            .unwrap();
        assert_eq!(o.target, "S1");
        assert_eq!(o.speed, 4.0);
        assert_eq!(o.idle_limit, Some(2.0));
        assert!(p(&["S1", "--speed", "0"]).is_err());
        assert!(p(&["S1", "--speed", "fast"]).is_err());
        assert!(p(&[]).is_err());
        assert!(p(&["a", "b"]).is_err());
    }
}
