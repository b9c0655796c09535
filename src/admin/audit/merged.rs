//! The records of every file, merged in time order (`ts` is fixed-width
//! UTC, so text order is time order): a heap of each file's next record.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::path::PathBuf;

use super::follow::follow;
use super::options::Opts;
use super::table::Printer;
use super::{corrupt, jsonl_files, next_record, read_err};
use crate::admin::AdminError;
use crate::audit::reader::JsonlReader;
use crate::core::record::read::Record;

pub(super) fn show(opts: &Opts, dir: &[PathBuf]) -> Result<i32, AdminError> {
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
        merge(opts, &mut readers, &mut printer, &mut out)?;
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

/// Prints the matching records of every reader, oldest first.
fn merge(
    opts: &Opts,
    readers: &mut [JsonlReader],
    printer: &mut Printer,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    // A heap of each file's next record, by time.
    let mut heap = BinaryHeap::new();
    let mut pending: Vec<Option<Record>> = Vec::with_capacity(readers.len());
    for (i, r) in readers.iter_mut().enumerate() {
        let rec = next_record(r).map_err(read_err(r.path()))?;
        if let Some(rec) = &rec {
            heap.push(Reverse((ts_of(rec), i)));
        }
        pending.push(rec);
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        if let Some(rec) = pending[i].take() {
            if opts.filter.matches(&rec) {
                printer.print(out, &rec)?;
            }
        }
        let r = &mut readers[i];
        let rec = next_record(r).map_err(read_err(r.path()))?;
        if let Some(rec) = &rec {
            heap.push(Reverse((ts_of(rec), i)));
        }
        pending[i] = rec;
    }
    Ok(())
}

fn ts_of(rec: &Record) -> String {
    rec.head.ts.clone().unwrap_or_default()
}
