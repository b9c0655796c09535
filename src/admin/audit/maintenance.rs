//! `--check` (write the end of sessions whose process is gone) and
//! `--verify` (hash chains and seals: `admin::verify`).
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::path::PathBuf;

use super::options::Opts;
use super::{jsonl_files, visible};
use crate::admin::{files, verify as chains, AdminError};
use crate::audit::abandoned;

pub(super) fn check(opts: &Opts, dir: &[PathBuf]) -> Result<i32, AdminError> {
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
                        visible(&c.session, 64),
                        visible(&c.user, 32),
                        visible(&c.host, 64),
                        visible(&c.detail, 300)
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

pub(super) fn verify(opts: &Opts, dirs: &[PathBuf]) -> Result<i32, AdminError> {
    let mut keys = Vec::new();
    for k in &opts.keys {
        keys.push(files::verification_key(k)?);
    }
    // The key file: as given, or this bastion's own (reading the config's
    // log_dir means we are on the bastion).
    let key_file = match (&opts.seal_key, opts.dirs.is_empty() && !keys.is_empty()) {
        (Some(p), _) => Some(p.clone()),
        // Missing, it fails verification: a deleted key file hides a cut
        // of the newest seals.
        (None, true) => crate::admin::seal_key_from_config(opts.config.clone()).ok(),
        (None, false) => None,
    };
    let (files, skipped_compressed) = files::jsonl_files(dirs, &opts.filter.users, true)?;
    chains::verify(&chains::VerifyOpts {
        files: &files,
        keys: &keys,
        key_file: key_file.as_deref(),
        skipped_compressed,
    })
}
