//! Session recordings in asciicast v2
//! (<https://docs.asciinema.org/manual/asciicast/v2/>): a JSON header line,
//! then one `[seconds, code, data]` line per event, appended as the session
//! runs so that a crash loses at most the last moment.
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
use std::time::Instant;

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
    line: Vec<u8>,
    record_input: bool,
    /// `max_recording`: bytes this recording may grow to (`None`: no limit).
    limit: Option<u64>,
    written: u64,
    /// Past the limit: nothing more is written.
    stopped: bool,
    /// Stopped and not yet reported (`take_limit_reached`).
    unreported: bool,
}

/// The marker ("m" event) and the line a player shows where a recording
/// stopped at its size limit.
pub const LIMIT_MARKER: &str = "recording stopped: max_recording reached; the session went on";
const LIMIT_NOTICE: &str =
    "\r\n[gatehouse: recording stopped here: size limit (max_recording) reached; the session went on, commands are still in the audit log]\r\n";

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
            line: Vec::with_capacity(64 * 1024),
            record_input,
            limit: None,
            written: 0,
            stopped: false,
            unreported: false,
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
        let t = self.start.elapsed().as_secs_f64();
        self.line.clear();
        // `[t, "o", "…"]` with microsecond precision, as asciinema writes it.
        let _ = write!(self.line, "[{t:.6}, \"{code}\", \"");
        escape_json_into(&mut self.line, text);
        self.line.extend_from_slice(b"\"]\n");
        if self
            .limit
            .is_some_and(|l| self.written + self.line.len() as u64 > l)
        {
            self.stopped = true;
            self.unreported = true;
            self.line.clear();
            let _ = write!(self.line, "[{t:.6}, \"o\", \"");
            escape_json_into(&mut self.line, LIMIT_NOTICE);
            let _ = write!(self.line, "\"]\n[{t:.6}, \"m\", \"{LIMIT_MARKER}\"]\n");
        }
        self.written += self.line.len() as u64;
        // One write per event: a crash loses at most the last moment.
        self.file
            .write_all(&self.line)
            .map_err(|err| RecordingError {
                path: self.path.clone(),
                err,
            })
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
        for pos in 0..24 {
            let mut s = "x".repeat(24);
            s.replace_range(pos..pos + 1, "\u{1b}");
            let mut mine = b"\"".to_vec();
            escape_json_into(&mut mine, &s);
            mine.push(b'"');
            assert_eq!(serde_json::from_slice::<String>(&mine).unwrap(), s);
        }
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
