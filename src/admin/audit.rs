//! `gatehouse audit`: read the JSONL trail under log_dir. Filters, an
//! aligned table (or the records unchanged with `--json`), `--follow`
//! across every user's file, and the two repair/inspection passes:
//! `--check` (close abandoned sessions) and `--verify` (hash chains).
//!
//! Everything streams: one line in memory per file, plus a small heap to
//! merge the files in time order.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::args::{Arg, Args};
use super::filter::{parse_when, ts_key, Filter};
use super::ids::{self, Lookup};
use super::{log_dir_from_config, AdminError};
use crate::audit::abandoned;
use crate::audit::reader::{JsonlReader, Line};

pub const USAGE: &str = "\
Usage: gatehouse audit [OPTIONS]

Reads <log_dir>/*.jsonl (log_dir from the config) and prints the records
that match every filter, oldest first, as a table or (--json) unchanged.

Filters (repeat --user/--host/--session to allow several):
  --user NAME            records of this unix user
  --host NAME|GLOB       records about this host (web01, 'db*')
  --bastion NAME|GLOB    records written by this bastion (the `bastion` field)
  --session ID           a session: its id, the short form this table prints,
                         or any other unambiguous prefix or suffix of the id
  --event LIST           comma-separated: login,logout,session_start,command,
                         input_hidden,policy,exec,file,session_end,denied,error,seal
  --unverified           only commands the screen could not confirm (their
                         text is the keys' reconstruction; the table marks
                         them [unverified])
  --since WHEN           at or after WHEN: RFC 3339, a date, or an age (2h, 30m, 7d)
  --until WHEN           at or before WHEN
  --grep REGEX           commands (and refused requests) matching REGEX
  -i, --ignore-case      --grep ignores case
  -F, --fixed-strings    --grep PATTERN is plain text, not a regex

Output:
  --json                 the matching lines exactly as stored (for jq)
  --color auto|always|never   (auto: only on a terminal; NO_COLOR is honoured)
                         On a terminal each line is cut to its width (…) and
                         CLIENT is left out when it is narrow; piped, whole lines
  -f, --follow           keep printing new records, from every file (new files
                         too); history is shown only with --since

Maintenance:
  --check                write `session_end` (reason abandoned) for sessions
                         whose process is gone; prints what it closed
  --verify               check every hash chain; report the first broken link
                         of each session or login; exit 1 if any. Reads the
                         rotated files (<user>.jsonl-DATE) too
  --key KEY              with --verify: check the forward-secure seals with
                         this verification key (`gatehouse seal --init`
                         printed it), or with the key in file KEY; repeat
                         for several bastions. Says how far the seals reach
  --seal-key PATH        with --key: the bastion's sealing key file, to see
                         whether it was replaced and whether the newest
                         seals were cut off (default: the config's seal_key,
                         when no --dir is given)

  --dir DIR              read DIR instead of the config's log_dir: its
                         <user>.jsonl files and those one level down (a
                         central store: DIR/<bastion>/<user>.jsonl); repeat
                         to merge many; --log-dir DIR is the same
  --config PATH          the config to take log_dir from (default: as the
                         login shell finds it: GATEHOUSE_CONFIG, then
                         ~/.config/gatehouse/config.toml, then /etc/gatehouse)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Show,
    Check,
    Verify,
}

struct Opts {
    filter: Filter,
    json: bool,
    color: bool,
    follow: bool,
    mode: Mode,
    dirs: Vec<PathBuf>,
    config: Option<PathBuf>,
    keys: Vec<String>,
    seal_key: Option<PathBuf>,
}

fn parse(args: Vec<OsString>) -> Result<Option<Opts>, String> {
    let mut a = Args::new("audit", args);
    let mut filter = Filter::default();
    let (mut json, mut follow, mut mode) = (false, false, Mode::Show);
    let (mut dirs, mut config) = (Vec::new(), None);
    let (mut keys, mut seal_key) = (Vec::new(), None);
    let mut color = None;
    let (mut grep, mut icase, mut fixed) = (None, false, false);
    let now = chrono::Utc::now();
    while let Some(arg) = a.next()? {
        let (name, inline) = match arg {
            Arg::Opt { name, inline } => (name, inline),
            Arg::Positional(p) => return Err(format!("audit: unexpected argument {p:?}")),
        };
        match name.as_str() {
            "--user" | "-u" => filter.users.push(a.value(&name, inline)?),
            "--host" => {
                let v = a.value(&name, inline)?;
                let p = glob::Pattern::new(&v)
                    .map_err(|e| format!("audit: --host {v:?} is not a valid pattern: {e}"))?;
                filter.hosts.push(p);
            }
            "--session" | "-s" => filter.sessions.push(a.value(&name, inline)?),
            "--bastion" => {
                let v = a.value(&name, inline)?;
                let p = glob::Pattern::new(&v)
                    .map_err(|e| format!("audit: --bastion {v:?} is not a valid pattern: {e}"))?;
                filter.bastions.push(p);
            }
            "--event" | "-e" => {
                for e in a.value(&name, inline)?.split(',').filter(|e| !e.is_empty()) {
                    const KNOWN: [&str; 12] = [
                        "login",
                        "logout",
                        "session_start",
                        "command",
                        "input_hidden",
                        "policy",
                        "exec",
                        "file",
                        "session_end",
                        "denied",
                        "error",
                        "seal",
                    ];
                    if !KNOWN.contains(&e) {
                        return Err(format!(
                            "audit: unknown event {e:?}; events are {}",
                            KNOWN.join(", ")
                        ));
                    }
                    filter.events.push(e.to_string());
                }
            }
            "--since" => {
                let v = a.value(&name, inline)?;
                filter.since = Some(ts_key(
                    parse_when(&v, now).map_err(|e| format!("audit: --since: {e}"))?,
                ));
            }
            "--until" => {
                let v = a.value(&name, inline)?;
                filter.until = Some(ts_key(
                    parse_when(&v, now).map_err(|e| format!("audit: --until: {e}"))?,
                ));
            }
            "--grep" | "-g" => grep = Some(a.value(&name, inline)?),
            "--ignore-case" | "-i" => icase = true,
            "--fixed-strings" | "-F" => fixed = true,
            "--json" => json = true,
            "--color" | "--colour" => {
                color = Some(match a.value(&name, inline)?.as_str() {
                    "always" => true,
                    "never" => false,
                    "auto" => io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                    v => {
                        return Err(format!(
                            "audit: --color must be auto, always or never, not {v:?}"
                        ))
                    }
                })
            }
            "--follow" | "-f" => follow = true,
            "--unverified" => filter.unverified = true,
            "--check" => mode = Mode::Check,
            "--verify" => mode = Mode::Verify,
            "--log-dir" | "--dir" => dirs.push(PathBuf::from(a.value(&name, inline)?)),
            "--key" => keys.push(a.value(&name, inline)?),
            "--seal-key" => seal_key = Some(PathBuf::from(a.value(&name, inline)?)),
            "--config" => config = Some(PathBuf::from(a.value(&name, inline)?)),
            "--help" | "-h" => return Ok(None),
            other => {
                return Err(format!(
                    "audit: unknown option {other:?}; see `gatehouse audit --help`"
                ))
            }
        }
    }
    if let Some(g) = grep {
        let pat = if fixed { regex::escape(&g) } else { g.clone() };
        let re = regex::RegexBuilder::new(&pat)
            .case_insensitive(icase)
            .size_limit(1 << 22)
            .build()
            .map_err(|e| {
                format!("audit: --grep {g:?} is not a valid regex (use -F for plain text): {e}")
            })?;
        filter.grep = Some(re);
    }
    if (!keys.is_empty() || seal_key.is_some()) && mode != Mode::Verify {
        return Err("audit: --key and --seal-key go with --verify".into());
    }
    if follow && mode != Mode::Show {
        return Err("audit: --follow cannot be combined with --check or --verify".into());
    }
    let color = color
        .unwrap_or_else(|| io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    Ok(Some(Opts {
        filter,
        json,
        color: color && !json,
        follow,
        mode,
        dirs,
        config,
        keys,
        seal_key,
    }))
}

pub fn run(args: Vec<OsString>) -> i32 {
    let mut opts = match super::parsed(parse(args), USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let dirs = if opts.dirs.is_empty() {
        match log_dir_from_config(None, opts.config.clone()) {
            Ok(d) => vec![d],
            Err(e) => {
                crate::say_err!("gatehouse: {e}");
                return 1;
            }
        }
    } else {
        opts.dirs.clone()
    };
    let dir = dirs.as_slice();
    let result = match opts.mode {
        Mode::Show => resolve_sessions(&mut opts, dir).and_then(|()| show(&opts, dir)),
        Mode::Check => check(&opts, dir),
        Mode::Verify => verify(&opts, dir),
    };
    match result {
        Ok(code) => code,
        // `gatehouse audit | head`: a closed pipe is a normal end.
        Err(AdminError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            crate::say_err!("gatehouse: {e}");
            1
        }
    }
}

/// Each `--session` as typed → the full id it names (`ids::lookup`: a
/// prefix or suffix, such as the short form the table prints). Ambiguous:
/// an error listing the candidates. Naming no session yet: kept as typed
/// (with --follow it may name a session still to come).
fn resolve_sessions(opts: &mut Opts, dir: &[PathBuf]) -> Result<(), AdminError> {
    if opts.filter.sessions.is_empty() {
        return Ok(());
    }
    // Every session once, in the order met, with what tells it apart.
    let mut known: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for p in jsonl_files(dir, &opts.filter.users)? {
        let Ok(mut r) = JsonlReader::open(&p) else {
            continue; // `show` reports it
        };
        while let Some(line) = r.next_line().map_err(read_err(&p))? {
            let Line::Record { value, .. } = line else {
                continue; // `show` reports corrupt lines
            };
            let Some(id) = value.get("session").and_then(|v| v.as_str()) else {
                continue;
            };
            if seen.insert(id.to_string()) {
                let ts = s(&value, "ts");
                known.push((
                    id.to_string(),
                    format!(
                        "{}  {}  {}@{}",
                        visible(id, 64),
                        ts.get(..19).unwrap_or(ts).replace('T', " "),
                        visible(s(&value, "user"), 32),
                        visible(s(&value, "host"), 64)
                    ),
                ));
            }
        }
    }
    for typed in opts.filter.sessions.iter_mut() {
        match ids::lookup(typed, known.iter().map(|(id, _)| id.as_str())) {
            Lookup::Found(id) => *typed = id,
            Lookup::None if !opts.follow => {
                crate::say_err!("gatehouse: no session matches {:?}", visible(typed, 64));
            }
            Lookup::None => {}
            Lookup::Ambiguous(ids) => {
                let candidates = ids
                    .iter()
                    .filter_map(|id| known.iter().find(|(k, _)| k == id))
                    .map(|(_, line)| line.clone())
                    .collect();
                return Err(AdminError::Ambiguous {
                    typed: visible(typed, 64),
                    candidates,
                });
            }
        }
    }
    Ok(())
}

/// The users' files of every directory, sorted (`files::jsonl_files`).
fn jsonl_files(dirs: &[PathBuf], users: &[String]) -> Result<Vec<PathBuf>, AdminError> {
    super::files::jsonl_files(dirs, users, false).map(|(f, _)| f)
}

fn corrupt(path: &Path, no: u64, why: &str) {
    crate::say_err!("{}:{no}: {why}; skipped", path.display());
}

/// Reads records from one file, reporting corrupt lines as it goes.
fn next_record(r: &mut JsonlReader) -> io::Result<Option<(Vec<u8>, Value)>> {
    loop {
        match r.next_line()? {
            None => return Ok(None),
            Some(Line::Corrupt { no, why }) => corrupt(r.path(), no, &why),
            Some(Line::Record { bytes, value, .. }) => return Ok(Some((bytes, value))),
        }
    }
}

fn read_err(path: &Path) -> impl Fn(io::Error) -> AdminError + '_ {
    move |err| AdminError::Read {
        path: path.to_path_buf(),
        err,
    }
}

fn show(opts: &Opts, dir: &[PathBuf]) -> Result<i32, AdminError> {
    let files = jsonl_files(dir, &opts.filter.users)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut printer = Printer::new(opts.json, opts.color);
    let mut readers: Vec<JsonlReader> = Vec::new();
    for p in &files {
        match JsonlReader::open(p) {
            Ok(r) => readers.push(r),
            Err(e) => crate::say_err!("gatehouse: cannot read {}: {e}", p.display()),
        }
    }
    let history = !opts.follow || opts.filter.since.is_some();
    if history {
        // Merge the files in time order: a heap of each file's next record.
        let mut heap = BinaryHeap::new();
        let mut pending: Vec<Option<(Vec<u8>, Value)>> = Vec::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            let rec = next_record(r).map_err(read_err(r.path()))?;
            if let Some((_, v)) = &rec {
                heap.push(Reverse((ts_of(v), i)));
            }
            pending.push(rec);
        }
        while let Some(Reverse((_, i))) = heap.pop() {
            if let Some((bytes, value)) = pending[i].take() {
                if opts.filter.matches(&value) {
                    printer.print(&mut out, &bytes, &value)?;
                }
            }
            let r = &mut readers[i];
            let rec = next_record(r).map_err(read_err(r.path()))?;
            if let Some((_, v)) = &rec {
                heap.push(Reverse((ts_of(v), i)));
            }
            pending[i] = rec;
        }
        if !opts.follow {
            for r in &readers {
                if let Some(no) = r.truncated_tail() {
                    corrupt(r.path(), no, "truncated record (no newline at the end: cut short, or still being written)");
                }
            }
        }
    } else {
        for r in readers.iter_mut() {
            r.skip_to_end_counting().map_err(read_err(r.path()))?;
        }
    }
    out.flush()?;
    if !opts.follow {
        return Ok(0);
    }
    follow(opts, dir, files, readers, &mut printer, &mut out)
}

fn ts_of(v: &Value) -> String {
    v.get("ts")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string()
}

/// A file being followed, and which file it is (rotation makes a new one).
struct Followed {
    reader: JsonlReader,
    ino: u64,
}

fn follow(
    opts: &Opts,
    dir: &[PathBuf],
    files: Vec<PathBuf>,
    readers: Vec<JsonlReader>,
    printer: &mut Printer,
    out: &mut impl Write,
) -> Result<i32, AdminError> {
    let mut followed: HashMap<PathBuf, Followed> = HashMap::new();
    for (p, r) in files.into_iter().zip(readers) {
        let ino = std::fs::metadata(&p).map(|m| m.ino()).unwrap_or(0);
        followed.insert(p, Followed { reader: r, ino });
    }
    // An admin tool, not a daemon: polling the directory a few times a
    // second is cheap and needs no inotify dependency.
    loop {
        let mut wrote = false;
        let now_files = jsonl_files(dir, &opts.filter.users)?;
        for p in now_files {
            let meta = std::fs::metadata(&p).ok();
            let ino = meta.as_ref().map(|m| m.ino()).unwrap_or(0);
            let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let reopen = match followed.get(&p) {
                None => true,
                // Rotated (a new file under the name) or truncated in place.
                Some(f) => f.ino != ino || len < f.reader.offset(),
            };
            if reopen {
                match JsonlReader::open(&p) {
                    Ok(reader) => {
                        followed.insert(p.clone(), Followed { reader, ino });
                    }
                    Err(_) => continue,
                }
            }
            let Some(f) = followed.get_mut(&p) else {
                continue;
            };
            while let Some((bytes, value)) = next_record(&mut f.reader).map_err(read_err(&p))? {
                if opts.filter.matches(&value) {
                    printer.print(out, &bytes, &value)?;
                    wrote = true;
                }
            }
        }
        if wrote {
            out.flush()?;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn check(opts: &Opts, dir: &[PathBuf]) -> Result<i32, AdminError> {
    let mut out = io::stdout().lock();
    let mut total = 0;
    let mut failed = false;
    for p in jsonl_files(dir, &opts.filter.users)? {
        match abandoned::sweep(&p, None) {
            Ok(closed) => {
                for c in &closed {
                    writeln!(
                        out,
                        "{}: closed session {} ({}@{}): {}",
                        p.display(),
                        c.session,
                        c.user,
                        c.host,
                        c.detail
                    )?;
                }
                total += closed.len();
            }
            Err(e) => {
                crate::say_err!("gatehouse: {e}");
                failed = true;
            }
        }
    }
    writeln!(out, "{total} abandoned session(s) closed")?;
    Ok(if failed { 1 } else { 0 })
}

fn verify(opts: &Opts, dirs: &[PathBuf]) -> Result<i32, AdminError> {
    let mut keys = Vec::new();
    for k in &opts.keys {
        keys.push(super::files::verification_key(k)?);
    }
    // The key file: as given, or this bastion's own (reading the config's
    // log_dir means we are on the bastion).
    let key_file = match (&opts.seal_key, opts.dirs.is_empty() && !keys.is_empty()) {
        (Some(p), _) => Some(p.clone()),
        // Missing, it fails verification: a deleted key file hides a cut
        // of the newest seals.
        (None, true) => super::seal_key_from_config(opts.config.clone()).ok(),
        (None, false) => None,
    };
    let (files, skipped_compressed) = super::files::jsonl_files(dirs, &opts.filter.users, true)?;
    super::verify::verify(&super::verify::VerifyOpts {
        files: &files,
        keys: &keys,
        key_file: key_file.as_deref(),
        skipped_compressed,
    })
}

// ---------------------------------------------------------------------------
// the table
// ---------------------------------------------------------------------------

struct Printer {
    json: bool,
    color: bool,
    header_done: bool,
    /// On a terminal, its width: every line is cut to it (the detail, last,
    /// ends in `…`) instead of wrapping. None (a pipe, a file): whole lines.
    width: Option<usize>,
}

const WIDTHS: [usize; 6] = [19, 10, 21, 10, 8, 13];
const HEADS: [&str; 6] = ["TIME (UTC)", "USER", "CLIENT", "HOST", "SESSION", "EVENT"];
/// The CLIENT column, left out on a terminal too narrow to show it and
/// still `MIN_DETAIL` columns of detail (the command is what one reads).
const CLIENT: usize = 2;
const MIN_DETAIL: usize = 30;

/// Columns before the detail, with or without CLIENT.
fn prefix_width(client: bool) -> usize {
    WIDTHS
        .iter()
        .enumerate()
        .filter(|&(i, _)| client || i != CLIENT)
        .map(|(_, w)| w + 2)
        .sum()
}

impl Printer {
    fn new(json: bool, color: bool) -> Printer {
        let width = if json {
            None
        } else {
            console::Term::stdout()
                .size_checked()
                .map(|(_, cols)| cols as usize)
                .filter(|&c| c > 0)
        };
        Printer {
            json,
            color,
            header_done: false,
            width,
        }
    }

    fn client_column(&self) -> bool {
        self.width
            .map_or(true, |w| w >= prefix_width(true) + MIN_DETAIL)
    }

    /// `line` cut to the terminal's width (escape sequences do not count).
    fn fit(&self, line: &str) -> String {
        match self.width {
            Some(w) => console::truncate_str(line, w, "…").into_owned(),
            None => line.to_string(),
        }
    }

    fn print(&mut self, out: &mut impl Write, bytes: &[u8], rec: &Value) -> io::Result<()> {
        if self.json {
            out.write_all(bytes)?;
            return out.write_all(b"\n");
        }
        let client = self.client_column();
        if !self.header_done {
            self.header_done = true;
            let mut line = String::new();
            for (i, (h, w)) in HEADS.iter().zip(WIDTHS).enumerate() {
                if client || i != CLIENT {
                    line.push_str(&format!("{h:<w$}  "));
                }
            }
            line.push_str("DETAIL");
            let line = self.fit(&line);
            if self.color {
                writeln!(out, "\x1b[1m{line}\x1b[0m")?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
        let line = self.fit(&row(rec, self.color, client));
        if self.color && self.width.is_some() {
            // A cut inside the coloured EVENT cell must not colour what follows.
            return writeln!(out, "{line}\x1b[0m");
        }
        writeln!(out, "{line}")
    }
}

fn s<'a>(rec: &'a Value, k: &str) -> &'a str {
    rec.get(k).and_then(|v| v.as_str()).unwrap_or("")
}

/// Text from the log, made safe for a terminal: control characters
/// (escape sequences in a command!) are shown, not obeyed, and so are
/// format characters (bidi overrides like U+202E would reorder the line);
/// bounded.
pub fn visible(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str(" ⏎ "),
            '\t' => out.push(' '),
            c if c.is_control() || super::escapes::is_format_char(c) => {
                out.push_str(&c.escape_default().to_string())
            }
            c => out.push(c),
        }
    }
    out
}

fn detail(rec: &Value) -> String {
    let n = |k: &str| rec.get(k).and_then(|v| v.as_u64());
    match s(rec, "event") {
        "command" => {
            let mut d = visible(s(rec, "command"), 4000);
            if rec.get("verified").and_then(|v| v.as_bool()) == Some(false) {
                // Not confirmed by the screen: the keys' reconstruction.
                d.insert_str(0, "[unverified] ");
            }
            if rec.get("truncated").and_then(|t| t.as_bool()) == Some(true) {
                d.push_str("  [truncated]");
            }
            d
        }
        "input_hidden" => format!("(hidden input at {:?})", visible(s(rec, "prompt"), 200)),
        "login" => format!(
            "{} (pid {})",
            s(rec, "mode"),
            n("pid").map(|p| p.to_string()).unwrap_or_default()
        ),
        "logout" => match rec.get("reason").and_then(|r| r.as_str()) {
            Some(r) => format!(
                "{} after {}",
                visible(r, 32),
                human_ms(n("duration_ms").unwrap_or(0))
            ),
            None => format!("after {}", human_ms(n("duration_ms").unwrap_or(0))),
        },
        "session_start" => {
            let mut d = format!(
                "{} {}",
                visible(s(rec, "target"), 200),
                visible(s(rec, "host_key"), 100)
            );
            if rec.get("recording").is_some() {
                d.push_str(" [recorded]");
            }
            d
        }
        "session_end" => {
            let status = match rec.get("exit_status") {
                Some(Value::Number(x)) => format!(" status {x}"),
                _ => String::new(),
            };
            // No counts (an abandoned session's died with its process):
            // say so, never print a 0 nobody measured.
            let bytes = match (n("bytes_in"), n("bytes_out")) {
                (Some(i), Some(o)) => format!("{} in / {} out", human_bytes(i), human_bytes(o)),
                _ => "bytes unknown".to_string(),
            };
            let mut d = format!(
                "{}{status} after {}, {bytes}",
                s(rec, "reason"),
                human_ms(n("duration_ms").unwrap_or(0)),
            );
            if let Some(x) = rec.get("detail").and_then(|d| d.as_str()) {
                d.push_str(&format!(" ({})", visible(x, 300)));
            }
            d
        }
        "policy" => format!(
            "{} {} by {}: {}",
            visible(s(rec, "action"), 16),
            visible(s(rec, "outcome"), 16),
            visible(s(rec, "rule"), 80),
            visible(s(rec, "command"), 4000)
        ),
        "exec" => {
            let mut d = match rec.get("subsystem").and_then(|v| v.as_str()) {
                Some(sub) => format!("[{}]", visible(sub, 20)),
                None => visible(s(rec, "command"), 4000),
            };
            if rec.get("pty").and_then(|t| t.as_bool()) == Some(true) {
                d.push_str("  [pty]");
            }
            d
        }
        "file" => {
            let mut d = format!("{} {}", s(rec, "op"), visible(s(rec, "path"), 1000));
            if let Some(to) = rec.get("to").and_then(|v| v.as_str()) {
                d.push_str(&format!(" → {}", visible(to, 1000)));
            }
            if let Some(b) = n("bytes") {
                d.push_str(&format!(" ({})", human_bytes(b)));
            }
            d
        }
        "denied" => format!("{}: {}", s(rec, "reason"), visible(s(rec, "request"), 300)),
        "error" => format!("{}: {}", s(rec, "reason"), visible(s(rec, "detail"), 300)),
        "seal" => format!(
            "epoch {} of key {}, {} chain(s)",
            n("epoch").unwrap_or(0),
            visible(s(rec, "key_id"), 16),
            rec.get("chains")
                .and_then(|c| c.as_array())
                .map_or(0, Vec::len)
        ),
        _ => String::new(),
    }
}

fn row(rec: &Value, color: bool, client: bool) -> String {
    let ts = s(rec, "ts");
    let time = ts.get(..19).unwrap_or(ts).replace('T', " ");
    let session = s(rec, "session");
    let short = ids::short(session);
    let event = s(rec, "event");
    let cells = [
        time,
        visible(s(rec, "user"), 32),
        visible(s(rec, "client"), 64),
        visible(s(rec, "host"), 64),
        short.to_string(),
        visible(event, 32),
    ];
    let mut line = String::new();
    for (i, (c, w)) in cells.iter().zip(WIDTHS).enumerate() {
        if i == CLIENT && !client {
            continue;
        }
        let cell = format!("{c:<w$}");
        if color && i == 5 {
            line.push_str(&format!("{}{cell}\x1b[0m", event_color(rec)));
        } else {
            line.push_str(&cell);
        }
        line.push_str("  ");
    }
    line.push_str(&detail(rec));
    line
}

fn event_color(rec: &Value) -> &'static str {
    match s(rec, "event") {
        "denied" | "error" => "\x1b[31m",
        "policy" => "\x1b[35m",
        "session_end" if s(rec, "reason") == "abandoned" => "\x1b[33m",
        "session_start" | "session_end" => "\x1b[32m",
        "command" | "exec" | "file" => "\x1b[1m",
        _ => "\x1b[2m",
    }
}

fn human_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{}.{}s", s, (ms % 1000) / 100)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b < 10 * 1024 => format!("{b} B"),
        b if b < 10 * 1024 * 1024 => format!("{} KiB", b / 1024),
        b => format!("{} MiB", b / (1024 * 1024)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_are_aligned_and_safe() {
        let r = json!({"ts":"2026-11-28T18:24:56.123Z","event":"command","user":"alice",
            "client":"10.0.0.5:51234","host":"web01","session":"0190-ffff0001",
            "command":"echo \u{1b}[2J\nls"});
        let line = row(&r, false, true);
        assert!(
            line.starts_with("2026-11-28 18:24:56  alice       10.0.0.5:51234"),
            "{line}"
        );
        assert!(line.contains("ffff0001"));
        assert!(line.ends_with("echo \\u{1b}[2J ⏎ ls"), "{line}");
        assert!(!line.contains('\u{1b}'));
    }

    /// Regression (issue 12, point 2): bidi and format characters in a
    /// record are shown escaped, not raw.
    #[test]
    fn bidi_and_format_characters_are_escaped() {
        let r = json!({"ts":"2026-11-28T18:24:56.123Z","event":"command","user":"alice",
            "client":"local","host":"web01","session":"S",
            "command":"echo safe \u{202e}fr- mr\u{2066}\u{200b}\u{feff}"});
        let line = row(&r, false, true);
        for c in ['\u{202e}', '\u{2066}', '\u{200b}', '\u{feff}'] {
            assert!(!line.contains(c), "{c:?} raw in {line:?}");
        }
        assert!(
            line.ends_with("echo safe \\u{202e}fr- mr\\u{2066}\\u{200b}\\u{feff}"),
            "{line}"
        );
    }

    #[test]
    fn on_a_terminal_lines_fit_its_width() {
        let r = json!({"ts":"2026-11-28T18:24:56.123Z","event":"command","user":"alice",
            "client":"10.0.0.5:51234","host":"web01","session":"0190-ffff0001",
            "command": format!("echo {}", "x".repeat(300))});
        let mut out = Vec::new();
        let mut p = Printer::new(false, true);
        p.width = Some(140);
        p.print(&mut out, b"", &r).unwrap();
        p.print(&mut out, b"", &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        for (i, line) in text.lines().enumerate() {
            let w = console::measure_text_width(line);
            // The header is short; a long row is cut exactly at the edge.
            assert!(if i == 0 { w <= 140 } else { w == 140 }, "{line:?}");
        }
        assert!(text.contains("CLIENT") && text.contains("10.0.0.5:51234"));
        assert!(text.lines().nth(1).unwrap().contains("echo xxx"));
        assert!(text.trim_end().trim_end_matches("\x1b[0m").ends_with('…'));
        // Narrower: CLIENT goes, the command stays readable.
        let mut out = Vec::new();
        let mut p = Printer::new(false, false);
        p.width = Some(100);
        p.print(&mut out, b"", &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("CLIENT") && !text.contains("10.0.0.5"),
            "{text}"
        );
        assert!(text.lines().nth(1).unwrap().contains("echo xxxxxxxxxx"));
        // A pipe (no width): whole lines.
        let mut out = Vec::new();
        let mut p = Printer::new(false, false);
        p.width = None;
        p.print(&mut out, b"", &r).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(&"x".repeat(300)));
    }

    #[test]
    fn policy_rows_say_rule_action_outcome() {
        let r = json!({"ts":"2026-11-28T18:24:56.123Z","event":"policy","user":"alice",
            "client":"local","host":"web01","session":"0190-ffff0001","rule":"no-root-wipe",
            "action":"deny","outcome":"blocked","command":"rm -rf /\u{1b}[2J"});
        let line = row(&r, false, true);
        assert!(
            line.ends_with("deny blocked by no-root-wipe: rm -rf /\\u{1b}[2J"),
            "{line}"
        );
        let p = |a: &[&str]| parse(a.iter().map(OsString::from).collect()).map(|_| ());
        assert!(p(&["--event", "policy"]).is_ok());
    }

    #[test]
    fn exec_and_file_rows_say_what_happened() {
        let e = json!({"event":"exec","command":"systemctl status nginx","pty":false});
        assert_eq!(detail(&e), "systemctl status nginx");
        let e = json!({"event":"exec","command":"sftp","subsystem":"sftp","pty":false});
        assert_eq!(detail(&e), "[sftp]");
        let f = json!({"event":"file","op":"rename","path":"/a\u{1b}[2J","to":"/b"});
        assert_eq!(detail(&f), "rename /a\\u{1b}[2J → /b");
        let f = json!({"event":"file","op":"upload","path":"/srv/x","bytes":2048});
        assert!(detail(&f).starts_with("upload /srv/x ("), "{}", detail(&f));
        let p = |a: &[&str]| parse(a.iter().map(OsString::from).collect()).map(|_| ());
        assert!(p(&["--event", "exec,file"]).is_ok());
    }

    #[test]
    fn parse_rejects_nonsense() {
        let p = |a: &[&str]| parse(a.iter().map(OsString::from).collect()).map(|_| ());
        assert!(p(&["--event", "nope"]).is_err());
        assert!(p(&["--since", "yesterday"]).is_err());
        assert!(p(&["--grep", "("]).is_err());
        assert!(p(&["--grep", "(", "-F"]).is_ok());
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["--follow", "--verify"]).is_err());
    }
}
