//! Streaming JSONL reading for the admin tools and the abandoned-session
//! sweep: one line at a time through a buffer, never a whole-file load, a
//! bound on line length, and a partial last line held back (it may still
//! be being written) until it is complete or the caller gives up on it.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::core::record::read::Record;

/// No record we write comes near this (commands are cut at 16 KiB); a
/// longer "line" is corruption, and must not grow memory without bound.
pub const MAX_LINE: usize = 1 << 20;

/// One complete line of a JSONL file.
// Nearly every line is a record: boxing it to shrink the rare corrupt
// line would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Line {
    /// A record: its bytes as stored (no newline) and their typed view.
    Record { no: u64, record: Record },
    /// A line that is not a record (`read::NotARecord`); `why` says what
    /// is wrong.
    Corrupt { no: u64, why: String },
}

pub struct JsonlReader {
    path: PathBuf,
    reader: BufReader<File>,
    /// Number of the next line (1-based).
    next_no: u64,
    partial: Vec<u8>,
    overflow: bool,
    /// Byte offset just after the last complete line returned.
    offset: u64,
}

impl JsonlReader {
    pub fn open(path: &Path) -> io::Result<JsonlReader> {
        Ok(Self::from_file(path, File::open(path)?))
    }

    pub fn from_file(path: &Path, file: File) -> JsonlReader {
        JsonlReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, file),
            next_no: 1,
            partial: Vec::new(),
            overflow: false,
            offset: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Start at the first line that begins at or after `pos` (line numbers
    /// are then unknown: they count from this point).
    pub fn seek_to_line_after(&mut self, pos: u64) -> io::Result<()> {
        if pos == 0 {
            return Ok(());
        }
        self.reader.seek(SeekFrom::Start(pos - 1))?;
        // Skip the rest of the line that `pos - 1` is in (if it is a
        // newline, that skips nothing else).
        let mut skipped = Vec::new();
        let n = self.reader.read_until(b'\n', &mut skipped)?;
        self.offset = pos - 1 + n as u64;
        self.next_no = 1;
        Ok(())
    }

    /// Skip to the end of the file (for `--follow` without history).
    pub fn seek_to_end(&mut self) -> io::Result<()> {
        let end = self.reader.seek(SeekFrom::End(0))?;
        self.offset = end;
        Ok(())
    }

    /// Count lines while skipping to the end, so that later line numbers
    /// stay true. Streaming.
    pub fn skip_to_end_counting(&mut self) -> io::Result<()> {
        while let Some(_l) = self.next_raw()? {}
        Ok(())
    }

    pub fn line_no_base(&self) -> u64 {
        self.next_no
    }

    /// The next complete line, parsed; `None` at the end of what is
    /// written so far (call again later to follow a growing file).
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        let Some((no, bytes, overflow)) = self.next_raw()? else {
            return Ok(None);
        };
        if overflow {
            return Ok(Some(Line::Corrupt {
                no,
                why: format!("line longer than {MAX_LINE} bytes; skipped"),
            }));
        }
        Ok(Some(parse(no, bytes)))
    }

    /// A partial last line left when the caller stops reading: a record
    /// whose write was cut short (crash, disk full) or is still under way.
    pub fn truncated_tail(&self) -> Option<u64> {
        (!self.partial.is_empty()).then_some(self.next_no)
    }

    /// The next complete line as bytes (no newline) with its number, or
    /// `None` so far; `true` when it was longer than `MAX_LINE` (cut).
    pub fn next_raw(&mut self) -> io::Result<Option<(u64, Vec<u8>, bool)>> {
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(None);
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = MAX_LINE.saturating_sub(self.partial.len());
            let body = if done { take - 1 } else { take };
            if body > room {
                self.overflow = true;
            } else if !self.overflow {
                self.partial.extend_from_slice(&buf[..body]);
            }
            self.reader.consume(take);
            self.offset += take as u64;
            if done {
                let no = self.next_no;
                self.next_no += 1;
                let overflow = std::mem::replace(&mut self.overflow, false);
                let bytes = std::mem::take(&mut self.partial);
                return Ok(Some((no, bytes, overflow)));
            }
        }
    }
}

fn parse(no: u64, bytes: Vec<u8>) -> Line {
    match Record::parse(bytes) {
        Ok(record) => Line::Record { no, record },
        Err(e) => Line::Corrupt {
            no,
            why: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_corrupt_and_partial() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, "{\"a\":1}\nnot json\n[1]\n{\"b\":2}\n{\"c\":").unwrap();
        let mut r = JsonlReader::open(&p).unwrap();
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push(match l {
                Line::Record { no, .. } => format!("{no}:ok"),
                Line::Corrupt { no, .. } => format!("{no}:bad"),
            });
        }
        assert_eq!(got, ["1:ok", "2:bad", "3:bad", "4:ok"]);
        assert_eq!(r.truncated_tail(), Some(5));
        // The writer finishes the line: it is read whole.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"3}\n").unwrap();
        match r.next_line().unwrap() {
            Some(Line::Record { no: 5, record }) => assert_eq!(record.bytes, b"{\"c\":3}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.truncated_tail(), None);
    }

    #[test]
    fn huge_line_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let mut text = "x".repeat(MAX_LINE + 10);
        text.push_str("\n{\"ok\":true}\n");
        std::fs::write(&p, text).unwrap();
        let mut r = JsonlReader::open(&p).unwrap();
        assert!(matches!(
            r.next_line().unwrap(),
            Some(Line::Corrupt { no: 1, .. })
        ));
        assert!(matches!(
            r.next_line().unwrap(),
            Some(Line::Record { no: 2, .. })
        ));
    }
}
