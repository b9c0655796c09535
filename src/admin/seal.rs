//! `gatehouse seal --init`: make this bastion's forward-secure sealing key
//! (audit::seal) and print its verification key, once, for the admin to
//! keep off the bastion. From then on every login seals its chains.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::args::{Arg, Args};
use crate::audit::seal::KeyPath;

pub const USAGE: &str = "\
Usage: gatehouse seal --init [--config PATH] [--seal-key PATH] [--owner USER]

Creates the forward-secure sealing key (the config's seal_key, default
/var/lib/gatehouse/seal/key; mode 0600, in a directory of its own owned by
the account Gatehouse runs as) and prints the verification key on the last
line of its output. Keep that key OFF this bastion (a password vault): with
it anyone can check the seals — and forge them. It is never shown again.

From then on Gatehouse seals every chain at each session end and logout,
and every seal_interval (default 15m) while records keep coming; each seal
moves the key on and destroys the one before. Check with:
  gatehouse audit --verify --key KEY

Options:
  --config PATH     the config naming seal_key (not when running setuid)
  --seal-key PATH   make the key here instead
  --owner USER      the account that will seal (default: gatehouse, when it
                    exists and this runs as root)
";

struct Opts {
    config: Option<PathBuf>,
    seal_key: Option<PathBuf>,
    owner: Option<String>,
}

fn parse(args: Vec<OsString>) -> Result<Option<Opts>, String> {
    let mut a = Args::new("seal", args);
    let mut init = false;
    let mut o = Opts {
        config: None,
        seal_key: None,
        owner: None,
    };
    while let Some(arg) = a.next()? {
        let (name, inline) = match arg {
            Arg::Opt { name, inline } => (name, inline),
            Arg::Positional(p) => return Err(format!("seal: unexpected argument {p:?}")),
        };
        match name.as_str() {
            "--init" => init = true,
            "--config" => o.config = Some(PathBuf::from(a.value(&name, inline)?)),
            "--seal-key" => o.seal_key = Some(PathBuf::from(a.value(&name, inline)?)),
            "--owner" => o.owner = Some(a.value(&name, inline)?),
            "--help" | "-h" => return Ok(None),
            other => {
                return Err(format!(
                    "seal: unknown option {other:?}; see `gatehouse seal --help`"
                ))
            }
        }
    }
    if !init {
        return Err(
            "seal: say --init to create the sealing key; see `gatehouse seal --help`".into(),
        );
    }
    Ok(Some(o))
}

pub fn run(args: Vec<OsString>) -> i32 {
    let o = match super::parsed(parse(args), USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let path = match o.seal_key {
        Some(p) => p,
        None => match super::seal_key_from_config(o.config) {
            Ok(p) => p,
            Err(e) => {
                crate::say_err!("gatehouse: {e}");
                return 1;
            }
        },
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir_existed = dir.as_os_str().is_empty() || dir.is_dir();
    let key = KeyPath::new(&path);
    let vk = match key.init() {
        Ok(vk) => vk,
        Err(e) => {
            crate::say_err!("gatehouse: {e}");
            return 1;
        }
    };
    if let Err(e) = hand_over(&key, &dir, dir_existed, o.owner.as_deref()) {
        crate::say_err!("gatehouse: {e}");
        let _ = std::fs::remove_file(key.path());
        let _ = std::fs::remove_file(key.lock_path());
        return 1;
    }
    crate::say_out!(
        "Sealing key created: {} (key id {}).\n\
         Keep the verification key below OFF this bastion; it is not shown again.\n\
         Check the seals with: gatehouse audit --verify --key KEY",
        path.display(),
        vk.key_id
    );
    crate::say_out!("{}", vk.text());
    0
}

/// As root: give the key, its lock file and (when we made it) its
/// directory to the account that seals. Without that account, or not as
/// root, the files stay ours (an unprivileged Gatehouse seals as us).
fn hand_over(
    key: &KeyPath,
    dir: &Path,
    dir_existed: bool,
    owner: Option<&str>,
) -> Result<(), String> {
    key.create_lock_file().map_err(|e| e.to_string())?;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let name = owner.unwrap_or("gatehouse");
    let user = match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) if owner.is_none() => return Ok(()),
        Ok(None) => return Err(format!("--owner: no account named {name:?}")),
        Err(e) => return Err(format!("cannot look up the account {name:?}: {e}")),
    };
    let chown = |p: &Path| {
        nix::unistd::chown(p, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("cannot give {} to {name}: {e}", p.display()))
    };
    chown(key.path())?;
    chown(&key.lock_path())?;
    if !dir_existed {
        chown(dir)?;
    } else if let Ok(m) = std::fs::metadata(dir) {
        // The key is replaced by rename: the sealing account must be able
        // to write the directory.
        if m.uid() != user.uid.as_raw() {
            return Err(format!(
                "{} is not owned by {name}, which must replace the key in it: use a directory of its own (the default /var/lib/gatehouse/seal)",
                dir.display()
            ));
        }
    }
    Ok(())
}
