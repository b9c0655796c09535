//! Which files `gatehouse audit` reads: the users' JSONL files of one or
//! more directories (a bastion's log_dir, or a central store with one
//! directory per bastion), and for `--verify` the rotated ones too.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::AdminError;
use crate::audit::seal::{VerificationKey, KEY_PREFIX};

/// The user a file belongs to: `alice.jsonl` → alice; rotated
/// (`alice.jsonl-20261204`, `alice.jsonl.1`) → alice, with `true`.
fn user_of(name: &str) -> Option<(&str, bool)> {
    if let Some(u) = name.strip_suffix(".jsonl") {
        return Some((u, false));
    }
    let i = name.find(".jsonl-").or_else(|| name.find(".jsonl."))?;
    Some((&name[..i], true))
}

/// Every `<user>.jsonl` in each of `dirs` and one level below (a central
/// store: `DIR/<bastion>/<user>.jsonl`), only the named users' when
/// `users` is not empty, sorted per directory. With `rotated`, also the
/// rotated files logrotate leaves uncompressed; compressed ones (`.gz`,
/// `.xz`, `.zst`) are counted, not read.
pub fn jsonl_files(
    dirs: &[PathBuf],
    users: &[String],
    rotated: bool,
) -> Result<(Vec<PathBuf>, usize), AdminError> {
    let mut files = Vec::new();
    let mut compressed = 0;
    for dir in dirs {
        let mut here = Vec::new();
        scan(dir, users, rotated, &mut here, &mut compressed, true)?;
        here.sort();
        files.extend(here);
    }
    Ok((files, compressed))
}

fn scan(
    dir: &Path,
    users: &[String],
    rotated: bool,
    out: &mut Vec<PathBuf>,
    compressed: &mut usize,
    top: bool,
) -> Result<(), AdminError> {
    let rd = std::fs::read_dir(dir).map_err(|err| AdminError::ReadDir {
        path: dir.to_path_buf(),
        err,
    })?;
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        // Symlinks are followed, as before `--dir` became repeatable.
        if p.is_dir() {
            // One level down only; `sessions/` holds recordings, no JSONL.
            if top && p.file_name().is_some_and(|n| n != "sessions") {
                // An unreadable sub-directory is not this tool's business.
                let _ = scan(&p, users, rotated, out, compressed, false);
            }
            continue;
        }
        if !p.is_file() {
            continue;
        }
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((user, is_rotated)) = user_of(name) else {
            continue;
        };
        if !users.is_empty() && !users.iter().any(|u| u == user) {
            continue;
        }
        if is_rotated {
            if !rotated {
                continue;
            }
            if [".gz", ".xz", ".zst", ".bz2"]
                .iter()
                .any(|x| name.ends_with(x))
            {
                *compressed += 1;
                continue;
            }
        }
        out.push(p);
    }
    Ok(())
}

/// `--key KEY`: the key itself, or a file holding it (keeps it out of
/// `ps` and shell history).
pub fn verification_key(arg: &str) -> Result<VerificationKey, AdminError> {
    if arg.trim().starts_with(KEY_PREFIX) {
        return VerificationKey::parse(arg)
            .map_err(|e| AdminError::Config(format!("audit: --key: {e}")));
    }
    let text = std::fs::read_to_string(arg).map_err(|err| {
        AdminError::Config(format!(
            "audit: --key {arg:?} is neither a verification key ({KEY_PREFIX}…) nor a readable file: {err}"
        ))
    })?;
    VerificationKey::parse(&text)
        .map_err(|e| AdminError::Config(format!("audit: --key {arg}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_many_bastions_and_rotations() {
        let d = tempfile::tempdir().unwrap();
        let b1 = d.path().join("b1");
        let b2 = d.path().join("b2");
        std::fs::create_dir_all(b1.join("sessions/alice")).unwrap();
        std::fs::create_dir_all(&b2).unwrap();
        for f in [
            "b1/alice.jsonl",
            "b1/alice.jsonl-20261204",
            "b1/alice.jsonl-20261127.gz",
            "b1/bob.jsonl",
            "b1/sessions/alice/x.jsonl",
            "b2/alice.jsonl",
            "b2/notes.txt",
            "top.jsonl",
        ] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let names = |(v, c): (Vec<PathBuf>, usize)| {
            let v: Vec<String> = v
                .iter()
                .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
                .collect();
            (v, c)
        };
        let all = names(jsonl_files(&[d.path().to_path_buf()], &[], false).unwrap());
        let mut got = all.0.clone();
        got.sort();
        assert_eq!(
            got,
            [
                "b1/alice.jsonl",
                "b1/bob.jsonl",
                "b2/alice.jsonl",
                "top.jsonl"
            ]
        );
        let (v, c) =
            names(jsonl_files(&[b1.clone(), b2.clone()], &["alice".into()], true).unwrap());
        assert_eq!(
            v,
            [
                "b1/alice.jsonl",
                "b1/alice.jsonl-20261204",
                "b2/alice.jsonl"
            ]
        );
        assert_eq!(c, 1);
    }
}
