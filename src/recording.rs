//! Session recordings in asciicast v2
//! (<https://docs.asciinema.org/manual/asciicast/v2/>): a JSON header line,
//! then one `[seconds, code, data]` line per event, appended as the session
//! runs so that a crash loses at most the last moment: events reach the
//! file in whole 64 KiB blocks as they fill, and what is left over at most
//! `FLUSH_AFTER` (20 ms) later, or at the end.
//!
//! Output is decoded as UTF-8 across read boundaries: a character split
//! between two reads is held back until it is complete. Bytes that are not
//! UTF-8 become U+FFFD (the format carries text).
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use serde::Serialize;

#[derive(Debug)]
pub struct RecordingError {
    pub path: PathBuf,
    pub err: io::Error,
}

impl fmt::Display for RecordingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "recording {}: {}", self.path.display(), self.err)
    }
}

#[derive(Serialize)]
struct Header<'a> {
    version: u32,
    width: u16,
    height: u16,
    timestamp: i64,
    env: Env<'a>,
    title: String,
    gatehouse: Meta<'a>,
}

#[derive(Serialize)]
struct Env<'a> {
    #[serde(rename = "TERM")]
    term: &'a str,
}

#[derive(Serialize)]
struct Meta<'a> {
    session: &'a str,
    user: &'a str,
    host: &'a str,
}

pub struct SessionInfo<'a> {
    pub session: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    pub term: &'a str,
    pub cols: u16,
    pub rows: u16,
}

pub struct Recorder {
    file: File,
    path: PathBuf,
    start: Instant,
    /// Bytes of an incomplete UTF-8 character carried to the next event.
    carry: Vec<u8>,
    /// Event lines not yet written (less than a `BLOCK`'s worth past the
    /// last block boundary).
    pending: Vec<u8>,
    /// A write failed: nothing more is written (the session ends on the
    /// error; a retry could repeat what the failed write got out).
    failed: bool,
    /// When `pending` last went from empty to not (`FLUSH_AFTER`).
    pending_since: Option<Instant>,
    /// Bytes in the file (`written` less `pending`).
    on_disk: u64,
    record_input: bool,
    /// `max_recording`: bytes this recording may grow to (`None`: no limit).
    limit: Option<u64>,
    /// Bytes of the recording, written or pending.
    written: u64,
    /// Past the limit: nothing more is written.
    stopped: bool,
    /// `on_disk` at which the page cache is next told to drop what it
    /// has written back (`DROP_EVERY`).
    next_drop: u64,
    /// Stopped and not yet reported (`take_limit_reached`).
    unreported: bool,
}

/// The marker ("m" event) and the line a player shows where a recording
/// stopped at its size limit.
pub const LIMIT_MARKER: &str = "recording stopped: max_recording reached; the session went on";
const LIMIT_NOTICE: &str =
    "\r\n[gatehouse: recording stopped here: size limit (max_recording) reached; the session went on, commands are still in the audit log]\r\n";

/// Event lines are written in whole blocks of this size at offsets that
/// are multiples of it: ext4 then fills each with one large page-cache
/// folio, where event-sized writes at odd offsets take a page at a time —
/// 0.27 against 0.62 s of CPU per GB written, measured with varied event
/// sizes on this project's bench machine (BENCHMARKS.md).
const BLOCK: u64 = 64 * 1024;
/// The longest an event waits in memory for its block to fill: then it is
/// written on its own (`Recorder::flush_due`), so an interactive session's
/// recording and `replay --follow` are never more than this behind.
pub const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// Every `DROP_EVERY` bytes, the recording's pages that the kernel has
/// written back leave the page cache and write-back of the newer ones
/// starts (`POSIX_FADV_DONTNEED` over the whole file). A recording is
/// written once and read rarely: without this, every GB relayed stays in
/// the bastion's memory until pressure evicts it, pushing out the cache
/// that other sessions use, and waits up to 30 s (`dirty_expire`) for the
/// disk. With it, a recording keeps about `DROP_EVERY` of dirty pages and
/// the freed pages are reused at once, which in a VM is the difference
/// between 0.3 and 3-6 s of CPU per GB written (BENCHMARKS.md).
const DROP_EVERY: u64 = 8 << 20;

/// `<log_dir>/sessions/<user>/<session>.cast`
pub fn path_for(log_dir: &Path, user: &str, session: &str) -> PathBuf {
    log_dir
        .join("sessions")
        .join(user)
        .join(format!("{session}.cast"))
}

impl Recorder {
    pub fn create(
        log_dir: &Path,
        info: &SessionInfo<'_>,
        record_input: bool,
    ) -> Result<Recorder, RecordingError> {
        let path = path_for(log_dir, info.user, info.session);
        let err = |err| RecordingError {
            path: path.clone(),
            err,
        };
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .map_err(err)?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(err)?;
        let mut rec = Recorder {
            file,
            path: path.clone(),
            start: Instant::now(),
            carry: Vec::new(),
            pending: Vec::with_capacity(2 * BLOCK as usize),
            pending_since: None,
            failed: false,
            on_disk: 0,
            record_input,
            limit: None,
            written: 0,
            stopped: false,
            unreported: false,
            next_drop: DROP_EVERY,
        };
        let header = Header {
            version: 2,
            width: info.cols,
            height: info.rows,
            timestamp: chrono::Utc::now().timestamp(),
            env: Env { term: info.term },
            title: format!("{}@{} via gatehouse", info.user, info.host),
            gatehouse: Meta {
                session: info.session,
                user: info.user,
                host: info.host,
            },
        };
        let mut line = serde_json::to_vec(&header).map_err(|e| err(e.into()))?;
        line.push(b'\n');
        rec.file.write_all(&line).map_err(err)?;
        rec.written = line.len() as u64;
        rec.on_disk = rec.written;
        Ok(rec)
    }

    /// Caps the file at `limit` bytes (`max_recording`). Past it the
    /// recording ends with a marker and the session goes on: a full disk
    /// would end every session (fail closed), so one busy session must not
    /// fill it. The notice and marker may exceed the cap by their own size.
    pub fn set_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
    }

    /// True once, when the recording has just stopped at its limit (the
    /// session then writes an `error` record, `recording_limit`).
    pub fn take_limit_reached(&mut self) -> bool {
        std::mem::take(&mut self.unreported)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn event(&mut self, code: &str, text: &str) -> Result<(), RecordingError> {
        if self.stopped {
            return Ok(());
        }
        let now = Instant::now();
        let t = now.duration_since(self.start).as_secs_f64();
        let from = self.pending.len();
        if from == 0 {
            self.pending_since = Some(now);
        }
        // `[t, "o", "…"]` with microsecond precision, as asciinema writes it.
        let _ = write!(self.pending, "[{t:.6}, \"{code}\", \"");
        escape_json_into(&mut self.pending, text);
        self.pending.extend_from_slice(b"\"]\n");
        let len = (self.pending.len() - from) as u64;
        if self.limit.is_some_and(|l| self.written + len > l) {
            self.stopped = true;
            self.unreported = true;
            self.pending.truncate(from);
            let _ = write!(self.pending, "[{t:.6}, \"o\", \"");
            escape_json_into(&mut self.pending, LIMIT_NOTICE);
            let _ = write!(self.pending, "\"]\n[{t:.6}, \"m\", \"{LIMIT_MARKER}\"]\n");
        }
        self.written += (self.pending.len() - from) as u64;
        if self.stopped || now >= self.pending_since.unwrap_or(now) + FLUSH_AFTER {
            return self.flush();
        }
        // The whole blocks; the rest waits for more, or for `flush`.
        let whole = (self.written / BLOCK * BLOCK).saturating_sub(self.on_disk) as usize;
        if whole > 0 {
            self.write_pending(whole)?;
            self.pending_since = (!self.pending.is_empty()).then_some(now);
        }
        Ok(())
    }

    /// When `flush` is due: `FLUSH_AFTER` after the oldest pending event.
    pub fn flush_due(&self) -> Option<Instant> {
        self.pending_since
            .filter(|_| !self.pending.is_empty())
            .map(|t| t + FLUSH_AFTER)
    }

    /// Writes every pending event (the relay's timer, the session's end).
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.pending_since = None;
        self.write_pending(self.pending.len())
    }

    /// Writes the first `n` pending bytes.
    fn write_pending(&mut self, n: usize) -> Result<(), RecordingError> {
        if self.failed {
            return Err(RecordingError {
                path: self.path.clone(),
                err: io::Error::other("an earlier write to it failed"),
            });
        }
        if n == 0 {
            return Ok(());
        }
        if let Err(err) = self.file.write_all(&self.pending[..n]) {
            self.failed = true;
            return Err(RecordingError {
                path: self.path.clone(),
                err,
            });
        }
        self.pending.drain(..n);
        self.on_disk += n as u64;
        if self.on_disk >= self.next_drop {
            self.next_drop = self.on_disk + DROP_EVERY;
            // Advice only: where a filesystem does not take it, the
            // recording is the same, it just stays cached.
            let _ = posix_fadvise(&self.file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        }
        Ok(())
    }

    /// Target output as the operator saw it. The hot path of a busy
    /// session: no allocation when the chunk is valid UTF-8 and no
    /// character was split at the previous read.
    pub fn output(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        if self.carry.is_empty() {
            let keep = incomplete_tail(data);
            let (whole, tail) = data.split_at(data.len() - keep);
            if let Ok(text) = std::str::from_utf8(whole) {
                self.carry.extend_from_slice(tail);
                return if text.is_empty() {
                    Ok(())
                } else {
                    self.event("o", text)
                };
            }
        }
        let text = self.decode(data);
        if text.is_empty() {
            return Ok(());
        }
        self.event("o", &text)
    }

    /// Operator keystrokes; only when the admin turned input recording on
    /// (they carry passwords typed at no-echo prompts).
    pub fn input(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        if !self.record_input {
            return Ok(());
        }
        let text = String::from_utf8_lossy(data).into_owned();
        self.event("i", &text)
    }

    pub fn resize(&mut self, cols: u16, rows: u16) -> Result<(), RecordingError> {
        self.event("r", &format!("{cols}x{rows}"))
    }

    /// Joins the carried bytes with `data` and returns the longest complete
    /// UTF-8 prefix, keeping an incomplete trailing character for later.
    fn decode(&mut self, data: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(data);
        let keep = incomplete_tail(&bytes);
        let split = bytes.len() - keep;
        self.carry = bytes[split..].to_vec();
        String::from_utf8_lossy(&bytes[..split]).into_owned()
    }
}

/// A recording dropped without `flush` (an early return, an unwinding
/// panic) still gets its last events; errors have nowhere to go here.
impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.failed {
            let _ = self.flush();
        }
    }
}

/// Appends `text` as the inside of a JSON string (RFC 8259 section 7):
/// runs of plain characters are copied at once; `"`, `\\` and control
/// characters are escaped. Terminal output is mostly plain runs with a
/// `\r\n` or an escape sequence between them.
///
/// The scan for plain runs tests eight bytes at a time (a profile of bulk
/// output behind a bastion had the byte-at-a-time loop at 5% of the relay's
/// CPU, BENCHMARKS.md).
fn escape_json_into(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 8);
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Long plain runs (bulk output) a block of four words at a time.
        if let Some(block) = bytes.get(i..i + 32) {
            let word = |k: usize| {
                escape_mask(u64::from_le_bytes(
                    block[k * 8..k * 8 + 8].try_into().expect("eight bytes"),
                ))
            };
            if word(0) | word(1) | word(2) | word(3) == 0 {
                i += 32;
                continue;
            }
        }
        if let Some(word) = bytes.get(i..i + 8) {
            let m = escape_mask(u64::from_le_bytes(word.try_into().expect("eight bytes")));
            if m == 0 {
                i += 8;
                continue;
            }
            // The first flagged byte is exact: jump straight to it.
            i += (m.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        if b >= 0x20 && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Flags (top bit of each byte) the bytes of `w` that are below 0x20, `"`
/// or `\\`: the classic "has a zero byte" test (`(x - 0x01…) & !x &
/// 0x80…`) applied to `w` itself against 0x20 (a byte below it borrows into
/// its top bit; bytes of 0x80 and up are excluded by `!w`) and to `w` XOR
/// each quote byte. A borrow only travels upwards, so the lowest flag
/// (little-endian: the first byte) is always exact; flags above it may be
/// false, and the caller rechecks from there byte by byte.
fn escape_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    below_space | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))
}

/// How many trailing bytes form the start of a UTF-8 character that is not
/// complete yet (0 to 3).
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let c = b[b.len() - back];
        if c & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte: look further back
        }
        let need = if c & 0b1110_0000 == 0b1100_0000 {
            2
        } else if c & 0b1111_0000 == 0b1110_0000 {
            3
        } else if c & 0b1111_1000 == 0b1111_0000 {
            4
        } else {
            return 0;
        };
        return if need > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_reads() {
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail("é".as_bytes()), 0);
        assert_eq!(incomplete_tail(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_tail(&"你".as_bytes()[..2]), 2);
        assert_eq!(incomplete_tail(&"😀".as_bytes()[..3]), 3);
        assert_eq!(incomplete_tail(b"\xff"), 0);
    }

    /// Issue 12, point 9: past `max_recording` the file stops growing,
    /// ends with a notice and a marker, and says so once.
    #[test]
    fn the_size_limit_stops_the_recording_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let info = SessionInfo {
            session: "S",
            user: "alice",
            host: "web01",
            term: "xterm",
            cols: 80,
            rows: 24,
        };
        let mut r = Recorder::create(dir.path(), &info, false).unwrap();
        r.set_limit(Some(4096));
        let chunk = "x".repeat(1000);
        let mut reported = 0;
        for _ in 0..100 {
            r.output(chunk.as_bytes()).unwrap();
            reported += usize::from(r.take_limit_reached());
        }
        assert_eq!(reported, 1);
        let text = std::fs::read_to_string(r.path()).unwrap();
        assert!(text.len() < 4096 + 1024, "{} bytes", text.len());
        let last: Vec<&str> = text.lines().rev().take(2).collect();
        assert!(
            last[0].contains("\"m\"") && last[0].contains(LIMIT_MARKER),
            "{}",
            last[0]
        );
        assert!(last[1].contains("recording stopped here"), "{}", last[1]);
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }

    #[test]
    fn escaping_matches_serde_json() {
        let samples = [
            "plain",
            "y\r\n",
            "\u{1b}[1;31mred\u{1b}[0m\t\"q\" \\ back\u{0}\u{7f}\u{8}\u{c}\u{1f}",
            "你好 — über",
            "",
        ];
        for s in samples {
            let mut mine = b"\"".to_vec();
            escape_json_into(&mut mine, s);
            mine.push(b'"');
            assert_eq!(
                serde_json::from_slice::<String>(&mine).unwrap(),
                s,
                "{}",
                String::from_utf8_lossy(&mine)
            );
        }
    }

    /// The eight-bytes-at-a-time scan finds every byte that needs escaping
    /// wherever it sits in a word, next to any other byte, at its exact
    /// position.
    #[test]
    fn escaping_finds_every_special_byte_at_every_offset() {
        let fillers = [b'a', b' ', 0x7f, 0x80, 0xc3, 0xff, 0x21, 0x5d];
        for special in (0u8..0x20).chain([b'"', b'\\']) {
            for &fill in &fillers {
                for pos in 0..17 {
                    let mut v = [fill; 17];
                    v[pos] = special;
                    // Bytes >= 0x80 alone are not UTF-8; compare on the
                    // scan itself, then on whole strings below.
                    for s in (0..=v.len() - 8).filter(|&s| s <= pos && pos < s + 8) {
                        let m = escape_mask(u64::from_le_bytes(v[s..s + 8].try_into().unwrap()));
                        assert_eq!(
                            (m.trailing_zeros() / 8) as usize,
                            pos - s,
                            "byte {special:#x} at {pos} among {fill:#x}, word at {s}"
                        );
                    }
                }
            }
        }
        for s in [
            "plain text, no escapes here at all",
            "ÜnïcödéÜnïcödé 你好你好",
        ] {
            for w in s.as_bytes().windows(8) {
                assert_eq!(
                    escape_mask(u64::from_le_bytes(w.try_into().unwrap())),
                    0,
                    "{s}"
                );
            }
        }
        // Whole strings past the 32-byte blocks and the words after them.
        for special in ["\u{1b}", "\"", "\\", "\n", "\u{0}", "\u{1f}"] {
            for pos in 0..80 {
                let mut s = "x".repeat(80);
                s.replace_range(pos..pos + 1, special);
                let mut mine = b"\"".to_vec();
                escape_json_into(&mut mine, &s);
                mine.push(b'"');
                assert_eq!(serde_json::from_slice::<String>(&mine).unwrap(), s);
            }
        }
    }

    fn info(session: &str) -> SessionInfo<'_> {
        SessionInfo {
            session,
            user: "alice",
            host: "web01",
            term: "xterm",
            cols: 80,
            rows: 24,
        }
    }

    /// The output events of a cast file, joined.
    fn output_of(text: &str) -> String {
        text.lines()
            .skip(1)
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|ev| ev[1] == "o")
            .map(|ev| ev[2].as_str().unwrap().to_string())
            .collect()
    }

    /// Bulk output reaches the file in whole 64 KiB blocks at block
    /// offsets; the rest waits at most `FLUSH_AFTER`, then `flush` writes
    /// it, and nothing is lost or doubled.
    #[test]
    fn events_reach_the_file_in_whole_blocks_and_the_rest_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), &info("B"), false).unwrap();
        let mut sent = String::new();
        for i in 0..5000 {
            let chunk = format!("line {i} {}\r\n", "x".repeat(i % 97));
            let before = Instant::now();
            r.output(chunk.as_bytes()).unwrap();
            sent.push_str(&chunk);
            let on_file = std::fs::metadata(r.path()).unwrap().len();
            assert!(on_file <= BLOCK || on_file % BLOCK == 0, "{on_file}");
            match r.flush_due() {
                Some(due) => assert!(due <= Instant::now() + FLUSH_AFTER && due >= before),
                None => assert_eq!(on_file, r.written),
            }
        }
        let on_file = std::fs::metadata(r.path()).unwrap().len();
        assert!(on_file >= 4 * BLOCK, "{on_file}");
        r.flush().unwrap();
        assert_eq!(r.flush_due(), None);
        let text = std::fs::read_to_string(r.path()).unwrap();
        assert_eq!(text.len() as u64, r.written);
        assert_eq!(output_of(&text), sent);
    }

    /// An event written after `FLUSH_AFTER` of waiting takes what waited
    /// with it: a slow trickle is never more than that behind on disk.
    #[test]
    fn an_event_after_the_wait_writes_everything_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), &info("W"), false).unwrap();
        r.output(b"first ").unwrap();
        let due = r.flush_due().expect("pending");
        while Instant::now() < due {
            std::thread::yield_now();
        }
        r.output(b"second").unwrap();
        assert_eq!(r.flush_due(), None);
        let text = std::fs::read_to_string(r.path()).unwrap();
        assert_eq!(output_of(&text), "first second");
    }

    /// A recorder dropped without `flush` (an early return, a panic
    /// unwinding) still writes its last events.
    #[test]
    fn a_dropped_recorder_writes_what_was_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::create(dir.path(), &info("D"), false).unwrap();
        r.output(b"last words").unwrap();
        let path = r.path().to_path_buf();
        assert!(!std::fs::read_to_string(&path)
            .unwrap()
            .contains("last words"));
        drop(r);
        assert_eq!(
            output_of(&std::fs::read_to_string(&path).unwrap()),
            "last words"
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let info = SessionInfo {
            session: "S2",
            user: "alice",
            host: "web01",
            term: "xterm",
            cols: 80,
            rows: 24,
        };
        let mut r = Recorder::create(dir.path(), &info, false).unwrap();
        r.output(b"a\xffb").unwrap();
        r.output("é".as_bytes().split_at(1).0).unwrap();
        r.output("é".as_bytes().split_at(1).1).unwrap();
        r.flush().unwrap();
        let text = std::fs::read_to_string(r.path()).unwrap();
        let out: String = text
            .lines()
            .skip(1)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()[2]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(out, "a\u{fffd}bé");
    }

    #[test]
    fn writes_a_valid_cast() {
        let dir = tempfile::tempdir().unwrap();
        let info = SessionInfo {
            session: "S1",
            user: "alice",
            host: "web01",
            term: "xterm",
            cols: 80,
            rows: 24,
        };
        let mut r = Recorder::create(dir.path(), &info, false).unwrap();
        let bytes = "héllo 你好\r\n".as_bytes();
        for b in bytes.chunks(1) {
            r.output(b).unwrap();
        }
        r.input(b"secret").unwrap();
        r.resize(100, 30).unwrap();
        r.flush().unwrap();
        let text = std::fs::read_to_string(path_for(dir.path(), "alice", "S1")).unwrap();
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["version"], 2);
        assert_eq!(header["width"], 80);
        assert_eq!(header["env"]["TERM"], "xterm");
        assert_eq!(header["gatehouse"]["session"], "S1");
        let mut out = String::new();
        for l in lines {
            let ev: serde_json::Value = serde_json::from_str(l).unwrap();
            match ev[1].as_str().unwrap() {
                "o" => out.push_str(ev[2].as_str().unwrap()),
                "r" => assert_eq!(ev[2], "100x30"),
                other => panic!("unexpected event {other}"),
            }
        }
        assert_eq!(out, "héllo 你好\r\n");
        assert!(!text.contains("secret"));
    }
}
