//! `--session` as typed (a whole id, the table's short form, any
//! unambiguous prefix or suffix) → the full id it names.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::path::PathBuf;

use super::options::Opts;
use super::{jsonl_files, read_err, visible};
use crate::admin::ids::{self, Lookup};
use crate::admin::AdminError;
use crate::audit::reader::{JsonlReader, Line};

/// Each `--session` as typed → the full id it names (`ids::lookup`: a
/// prefix or suffix, such as the short form the table prints). Ambiguous:
/// an error listing the candidates. Naming no session yet: kept as typed
/// (with --follow it may name a session still to come).
pub(super) fn sessions(opts: &mut Opts, dir: &[PathBuf]) -> Result<(), AdminError> {
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
            let Line::Record { record, .. } = line else {
                continue; // `show` reports corrupt lines
            };
            let h = &record.head;
            let Some(id) = &h.session else {
                continue;
            };
            if seen.insert(id.clone()) {
                let text = |f: &Option<String>| f.clone().unwrap_or_default();
                let ts = text(&h.ts);
                known.push((
                    id.clone(),
                    format!(
                        "{}  {}  {}@{}",
                        visible(id, 64),
                        ts.get(..19).unwrap_or(&ts).replace('T', " "),
                        visible(&text(&h.user), 32),
                        visible(&text(&h.host), 64)
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
