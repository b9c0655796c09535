//! `--follow`: new records from every file as they are written, new
//! files and rotated ones included.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use super::options::Opts;
use super::table::Printer;
use super::{jsonl_files, next_record, read_err};
use crate::admin::AdminError;
use crate::audit::reader::JsonlReader;

/// A file being followed, and which file it is (rotation makes a new one).
struct Followed {
    reader: JsonlReader,
    ino: u64,
}

pub(super) fn follow(
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
            while let Some(rec) = next_record(&mut f.reader).map_err(read_err(&p))? {
                if opts.filter.matches(&rec) {
                    printer.print(out, &rec)?;
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
