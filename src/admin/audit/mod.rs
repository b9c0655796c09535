//! `gatehouse audit`: read the JSONL trail under log_dir. Filters, an
//! aligned table (or the records unchanged with `--json`), `--follow`
//! across every user's file, and the two repair/inspection passes:
//! `--check` (close abandoned sessions) and `--verify` (hash chains).
//!
//! Everything streams: one line in memory per file, plus a small heap to
//! merge the files in time order. The parts: `options` (the command
//! line), `resolve` (`--session` as typed → an id), `merged` (the files
//! in time order), `follow` (new records as they come), `maintenance`
//! (`--check`, `--verify`), `table` (what a record looks like on screen).
#![forbid(unsafe_code)]

mod follow;
mod maintenance;
mod merged;
mod options;
mod resolve;
mod table;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::{log_dir_from_config, AdminError};
use crate::audit::reader::{JsonlReader, Line};
use crate::core::record::read::Record;
use options::Mode;
pub use table::visible;

pub const USAGE: &str = "\
Usage: gatehouse audit [OPTIONS]

Reads <log_dir>/*.jsonl (log_dir from the config) and prints the records
that match every filter, oldest first, as a table or (--json) unchanged.

Filters (repeat --user/--host/--session to allow several):
  -u, --user NAME        records of this unix user
  --host NAME|GLOB       records about this host (web01, 'db*')
  --bastion NAME|GLOB    records written by this bastion (the `bastion` field)
  -s, --session ID       a session: its id, the short form this table prints,
                         or any other unambiguous prefix or suffix of the id
  -e, --event LIST       comma-separated: login,logout,session_start,command,
                         input_hidden,policy,exec,file,session_end,denied,error,seal
  --unverified           only commands the screen could not confirm (their
                         text is the keys' reconstruction; the table marks
                         them [unverified])
  --since WHEN           at or after WHEN: RFC 3339, a date, or an age (2h, 30m, 7d)
  --until WHEN           at or before WHEN
  -g, --grep REGEX       commands (and refused requests) matching REGEX
  -i, --ignore-case      --grep ignores case
  -F, --fixed-strings    --grep PATTERN is plain text, not a regex

Output:
  --json                 the matching lines exactly as stored (for jq)
  --color, --colour auto|always|never
                         auto: only on a terminal; NO_COLOR is honoured.
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

pub fn run(args: Vec<OsString>) -> i32 {
    let mut opts = match super::parsed(options::parse(args), USAGE) {
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
        Mode::Show => resolve::sessions(&mut opts, dir).and_then(|()| merged::show(&opts, dir)),
        Mode::Check => maintenance::check(&opts, dir),
        Mode::Verify => maintenance::verify(&opts, dir),
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

/// The users' files of every directory, sorted (`files::jsonl_files`).
fn jsonl_files(dirs: &[PathBuf], users: &[String]) -> Result<Vec<PathBuf>, AdminError> {
    super::files::jsonl_files(dirs, users, false).map(|(f, _)| f)
}

fn corrupt(path: &Path, no: u64, why: &str) {
    crate::say_err!("{}:{no}: {why}; skipped", path.display());
}

/// Reads records from one file, reporting corrupt lines as it goes.
fn next_record(r: &mut JsonlReader) -> io::Result<Option<Record>> {
    loop {
        match r.next_line()? {
            None => return Ok(None),
            Some(Line::Corrupt { no, why }) => corrupt(r.path(), no, &why),
            Some(Line::Record { record, .. }) => return Ok(Some(record)),
        }
    }
}

fn read_err(path: &Path) -> impl Fn(io::Error) -> AdminError + '_ {
    move |err| AdminError::Read {
        path: path.to_path_buf(),
        err,
    }
}
