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
use serde::Deserialize;
use serde_json::Value;

use super::args::{Arg, Args};
use super::audit::visible;
use super::escapes::{self, ReplayFilter};
use super::{log_dir_from_config, AdminError};
use crate::audit::reader::{JsonlReader, Line};
use crate::core::record::read::{self, lenient, Body};
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

/// The asciicast v2 header (`recording` writes it): what replay shows and
/// needs. Lenient like the audit records: a field of another type is
/// absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Header {
    #[serde(deserialize_with = "lenient")]
    version: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    width: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    height: Option<u64>,
    /// Unix seconds.
    #[serde(deserialize_with = "lenient")]
    timestamp: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    idle_time_limit: Option<f64>,
    /// Gatehouse's own: which session this is.
    #[serde(deserialize_with = "meta")]
    gatehouse: Meta,
}

/// `gatehouse` when it is an object (a struct would also read from an
/// array, by position), else empty.
fn meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Meta, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::Object(_) => Meta::deserialize(v).unwrap_or_default(),
        _ => Meta::default(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta {
    #[serde(deserialize_with = "lenient")]
    session: String,
    #[serde(deserialize_with = "lenient")]
    user: String,
    #[serde(deserialize_with = "lenient")]
    host: String,
}

/// One line after the header.
enum CastLine {
    /// `[time, code, data]`.
    Event { t: f64, code: String, data: String },
    /// An array of another shape.
    Malformed,
    /// Not a JSON array at all.
    NotAnEvent,
}

fn cast_line(bytes: &[u8]) -> CastLine {
    let Ok(Value::Array(ev)) = serde_json::from_slice::<Value>(bytes) else {
        return CastLine::NotAnEvent;
    };
    match (
        ev.first().and_then(|t| t.as_f64()),
        ev.get(1).and_then(|c| c.as_str()),
        ev.get(2).and_then(|d| d.as_str()),
    ) {
        (Some(t), Some(code), Some(data)) => CastLine::Event {
            t,
            code: code.to_string(),
            data: data.to_string(),
        },
        _ => CastLine::Malformed,
    }
}

/// How playing ended, for the closing lines.
#[derive(Default)]
struct Played {
    bad_lines: u64,
    ended_by_key: bool,
}

fn play(o: &Opts) -> Result<(), AdminError> {
    let path = resolve(o)?;
    let mut reader = JsonlReader::open(&path).map_err(read_err(&path))?;
    let header = read_header(o, &path, &mut reader)?;
    let mut end_watch = end_watch(o, &path, &header);
    if o.raw {
        crate::say_err!(
            "gatehouse: warning: --raw passes the recording to your terminal unfiltered; \
             it can set your clipboard and title and make your terminal answer queries"
        );
    }
    let mut term = Terminal::new(o.raw);
    announce(&path, &header, term.raw.is_some());
    let played = play_events(o, &path, &mut reader, &mut term, &mut end_watch, &header)?;
    let filtered = term.filter.dropped();
    drop(term);
    if filtered > 0 {
        crate::say_err!(
            "gatehouse: {filtered} escape sequence(s) that could act on your terminal were not passed (--raw would pass them)"
        );
    }
    if played.bad_lines > 1 {
        crate::say_err!("gatehouse: {} damaged line(s) skipped", played.bad_lines);
    }
    crate::say_err!(
        "\ngatehouse: {}",
        if played.ended_by_key {
            "replay stopped"
        } else {
            "end of recording"
        }
    );
    Ok(())
}

fn read_err(path: &Path) -> impl Fn(io::Error) -> AdminError + '_ {
    move |err| AdminError::Read {
        path: path.to_path_buf(),
        err,
    }
}

/// The first line: an asciicast v2 header. Following a fresh session, it
/// may still be being written: wait for it.
fn read_header(o: &Opts, path: &Path, reader: &mut JsonlReader) -> Result<Header, AdminError> {
    let not_cast = |what: &str| AdminError::NotFound(format!("{}: {what}", path.display()));
    loop {
        match reader.next_raw().map_err(read_err(path))? {
            Some((_, bytes, false)) => {
                return match read::object::<Header>(&bytes) {
                    Ok(h) if h.version == Some(2) => Ok(h),
                    _ => Err(not_cast("not an asciicast v2 recording (bad header line)")),
                }
            }
            Some(_) => return Err(not_cast("not an asciicast v2 recording")),
            None if o.follow => std::thread::sleep(Duration::from_millis(100)),
            None => return Err(not_cast("empty recording")),
        }
    }
}

/// `--follow`: the audit trail that will say when the session ended,
/// `<log_dir>/sessions/<user>/<id>.cast` → `<log_dir>/<user>.jsonl`.
fn end_watch(o: &Opts, path: &Path, header: &Header) -> Option<EndWatch> {
    let m = &header.gatehouse;
    if !o.follow || m.session.is_empty() || m.user.is_empty() {
        return None;
    }
    let log_dir = path.parent()?.parent()?.parent()?;
    Some(EndWatch {
        reader: None,
        done: false,
        jsonl: log_dir.join(format!("{}.jsonl", m.user)),
        session: m.session.clone(),
    })
}

/// The line that says what is being replayed; from the file, so shown
/// escaped, never obeyed.
fn announce(path: &Path, header: &Header, keys: bool) {
    let m = &header.gatehouse;
    let started = header
        .timestamp
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let name = if m.session.is_empty() {
        path.display().to_string()
    } else {
        m.session.clone()
    };
    crate::say_err!(
        "gatehouse: replaying {} ({}@{}, {}x{}, {started}){}\r",
        visible(&name, 200),
        visible(&m.user, 64),
        visible(&m.host, 64),
        header.width.unwrap_or(0),
        header.height.unwrap_or(0),
        if keys { "; q quits, space pauses" } else { "" }
    );
}

/// The recording's output events, with their timing (not when
/// following: live output comes in real time), until the end, a key, or
/// a signal.
fn play_events(
    o: &Opts,
    path: &Path,
    reader: &mut JsonlReader,
    term: &mut Terminal,
    end_watch: &mut Option<EndWatch>,
    header: &Header,
) -> Result<Played, AdminError> {
    let idle_limit = o.idle_limit.or(header.idle_time_limit);
    let stdout = io::stdout();
    let mut prev_t = 0.0f64;
    let mut played = Played::default();
    loop {
        let Some((no, bytes, cut)) = reader.next_raw().map_err(read_err(path))? else {
            if !o.follow {
                break;
            }
            if end_watch.as_mut().is_some_and(|w| w.ended()) {
                // The session is over: print what was written between our
                // last read and its end, then stop.
                while let Some((_, b, false)) = reader.next_raw().map_err(read_err(path))? {
                    if let CastLine::Event { code, data, .. } = cast_line(&b) {
                        if code == "o" {
                            term.show(&mut stdout.lock(), &data)?;
                        }
                    }
                }
                break;
            }
            if term.wait(Duration::from_millis(100)) == Key::Quit {
                played.ended_by_key = true;
                break;
            }
            continue;
        };
        if cut {
            played.bad_lines += 1;
            continue;
        }
        let (t, data) = match cast_line(&bytes) {
            CastLine::Event { t, code, data } if code == "o" => (t, data),
            CastLine::Event { .. } => continue,
            CastLine::Malformed => {
                played.bad_lines += 1;
                continue;
            }
            CastLine::NotAnEvent => {
                if played.bad_lines == 0 {
                    crate::say_err!(
                        "gatehouse: {}:{no}: not an event line; skipped\r",
                        path.display()
                    );
                }
                played.bad_lines += 1;
                continue;
            }
        };
        // Following, the history is shown at once and live output as it
        // comes: its pauses have already happened in real time.
        if !o.follow && pause(o, term, t - prev_t, idle_limit) == Key::Quit {
            played.ended_by_key = true;
            break;
        }
        prev_t = t;
        term.show(&mut stdout.lock(), &data)?;
        if crate::sys::interrupted() {
            played.ended_by_key = true;
            break;
        }
    }
    Ok(played)
}

/// Waits the recorded gap `gap` seconds, capped by the idle limit and
/// scaled by `--speed`; what the keyboard said meanwhile.
fn pause(o: &Opts, term: &mut Terminal, gap: f64, idle_limit: Option<f64>) -> Key {
    let mut delay = gap.max(0.0);
    if let Some(l) = idle_limit {
        delay = delay.min(l);
    }
    delay /= o.speed;
    if delay > 0.0005 {
        term.wait(Duration::from_secs_f64(delay.min(86_400.0)))
    } else {
        Key::None
    }
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

    /// The header recording.rs writes is read typed; a field of another
    /// type is absent, and only a v2 object is a header.
    #[test]
    fn the_header_is_read_typed() {
        let h: Header = read::object(
            br#"{"version":2,"width":120,"height":40,"timestamp":1764354296,"idle_time_limit":2,"env":{"TERM":"xterm"},"title":"t","gatehouse":{"session":"S1","user":"alice","host":"web01"}}"#,
        )
        .unwrap();
        assert_eq!(h.version, Some(2));
        assert_eq!((h.width, h.height), (Some(120), Some(40)));
        assert_eq!(h.idle_time_limit, Some(2.0));
        assert_eq!(h.timestamp, Some(1_764_354_296));
        assert_eq!(
            (
                h.gatehouse.session.as_str(),
                h.gatehouse.user.as_str(),
                h.gatehouse.host.as_str()
            ),
            ("S1", "alice", "web01")
        );
        let odd: Header =
            read::object(br#"{"version":2,"width":"wide","gatehouse":["S1"]}"#).unwrap();
        assert_eq!((odd.width, odd.gatehouse.session.as_str()), (None, ""));
        assert!(read::object::<Header>(b"[2, 80, 24]").is_err());
    }

    #[test]
    fn cast_lines() {
        assert!(matches!(
            cast_line(br#"[0.5, "o", "hi"]"#),
            CastLine::Event { t, ref code, ref data } if t == 0.5 && code == "o" && data == "hi"
        ));
        assert!(matches!(cast_line(br#"[0.5, "o"]"#), CastLine::Malformed));
        assert!(matches!(
            cast_line(br#"["x", "o", "hi"]"#),
            CastLine::Malformed
        ));
        assert!(matches!(cast_line(br#"{"o": 1}"#), CastLine::NotAnEvent));
        assert!(matches!(cast_line(b"garbage"), CastLine::NotAnEvent));
    }
}
