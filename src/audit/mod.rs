//! The per-user audit trail: `<log_dir>/<user>.jsonl`, one record per
//! line, each written with a single write(2) on an O_APPEND descriptor so
//! that concurrent logins of one user never interleave inside a line.
//! If a record cannot be written, the caller must not go on (fail closed).
#![forbid(unsafe_code)]

pub mod abandoned;
pub mod hooks;
pub mod reader;
pub mod seal;

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::core::{chain, record};
pub use record::{DenyReason, EndReason, Event};

#[derive(Debug)]
pub enum AuditError {
    Open {
        path: PathBuf,
        err: io::Error,
    },
    NotAFile {
        path: PathBuf,
    },
    Write {
        path: PathBuf,
        err: io::Error,
    },
    Short {
        path: PathBuf,
        written: usize,
        len: usize,
    },
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Open { path, err } => {
                write!(f, "cannot open audit log {}: {err}", path.display())
            }
            AuditError::NotAFile { path } => {
                write!(f, "audit log {} is not a regular file", path.display())
            }
            AuditError::Write { path, err } => {
                write!(f, "cannot write audit log {}: {err}", path.display())
            }
            AuditError::Short { path, written, len } => write!(
                f,
                "short write to audit log {} ({written} of {len} bytes; disk full?)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for AuditError {}

pub struct AuditLog {
    file: File,
    path: PathBuf,
    user: String,
    login: String,
    client: String,
    /// Where each chain this process writes stands (the login's, and one
    /// per open session): a handful of entries.
    chains: HashMap<String, chain::Link>,
    /// `syslog_copy`: also send every record to this datagram socket.
    syslog: Option<PathBuf>,
    /// The `bastion` field of every record.
    bastion: String,
    /// Forward-secure sealing, once `gatehouse seal --init` made a key.
    sealing: Option<Sealing>,
    /// Chains with records no seal covers yet: where each stands, and
    /// since when it has had unsealed records.
    unsealed: Vec<(seal::Covered, Instant)>,
}

/// The sealing key, and how long a chain may keep unsealed records while
/// records keep coming (`seal_interval`; `None`: only at ends).
struct Sealing {
    key: seal::KeyPath,
    interval: Option<Duration>,
}

/// The host name (`bastion` when `[settings] bastion_name` is not set).
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl AuditLog {
    /// Opens (creating, mode 0640) `<log_dir>/<user>.jsonl` for appending.
    /// `user` must already be a safe file name (see `identity`).
    pub fn open(log_dir: &Path, user: &str, login: &str, client: &str) -> Result<Self, AuditError> {
        Self::open_path(&log_dir.join(format!("{user}.jsonl")), user, login, client)
    }

    /// Same, for an explicit file (the abandoned-session sweep writes into
    /// the file it scanned, on behalf of the dead login).
    pub fn open_path(
        path: &Path,
        user: &str,
        login: &str,
        client: &str,
    ) -> Result<Self, AuditError> {
        let path = path.to_path_buf();
        let log_dir = path.parent().unwrap_or(Path::new("."));
        if !log_dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(log_dir)
                .map_err(|err| AuditError::Open {
                    path: path.clone(),
                    err,
                })?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            // A symlink planted in the log dir must not redirect our writes.
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(|err| AuditError::Open {
                path: path.clone(),
                err,
            })?;
        let meta = file.metadata().map_err(|err| AuditError::Open {
            path: path.clone(),
            err,
        })?;
        if !meta.is_file() {
            return Err(AuditError::NotAFile { path });
        }
        Ok(AuditLog {
            file,
            path,
            user: user.to_string(),
            login: login.to_string(),
            client: client.to_string(),
            chains: HashMap::new(),
            syslog: None,
            bastion: host_name(),
            sealing: None,
            unsealed: Vec::new(),
        })
    }

    /// The login id every record of this login carries.
    pub fn login(&self) -> &str {
        &self.login
    }

    /// The operator's `client`, as every record carries it.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The `bastion` every record of this log names (default: host name).
    pub fn set_bastion(&mut self, name: &str) {
        self.bastion = name.to_string();
    }

    /// Seal with the key at `key` (it must exist: `gatehouse seal --init`)
    /// at every session end and logout, and when a chain has had unsealed
    /// records for `interval`.
    pub fn enable_sealing(&mut self, key: &Path, interval: Option<Duration>) {
        self.sealing = Some(Sealing {
            key: seal::KeyPath::new(key),
            interval,
        });
    }

    /// Sends a copy of every record to syslog (`syslog_copy = true`):
    /// `/dev/log` normally, another socket only in unprivileged runs.
    pub fn copy_to_syslog(&mut self, socket: PathBuf) {
        self.syslog = Some(socket);
    }

    /// Continue a chain another process started (a dead session's).
    pub fn resume_chain(&mut self, chain: &str, link: chain::Link) {
        self.chains.insert(chain.to_string(), link);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn login_id(&self) -> &str {
        &self.login
    }

    /// Appends one record with one write(2). A short write is an error: the
    /// line would be torn, and the caller must stop. With sealing on, a
    /// `session_end` or `logout` is sealed right after it is written, and
    /// so is any record once its chain has had unsealed records for
    /// `seal_interval`; a seal that fails is reported (syslog and an
    /// `error` record), not fatal: the record itself is on disk.
    pub fn write(&mut self, event: &Event<'_>) -> Result<(), AuditError> {
        self.write_record(event)?;
        let ends = matches!(event, Event::SessionEnd { .. } | Event::Logout { .. });
        if self.sealing.is_some() && (ends || self.seal_due().is_some_and(|d| d <= Instant::now()))
        {
            self.seal_now()?;
        }
        Ok(())
    }

    fn common(&self, event: &'static str) -> record::Common<'_> {
        record::Common {
            v: record::SCHEMA_VERSION,
            ts: record::timestamp(),
            event,
            user: &self.user,
            login: &self.login,
            client: &self.client,
            bastion: &self.bastion,
        }
    }

    fn write_record(&mut self, event: &Event<'_>) -> Result<(), AuditError> {
        let key = event.session().unwrap_or(&self.login).to_string();
        let (n, prev) = chain::Link::next(self.chains.get(&key));
        let line = record::to_line(
            self.common(event.name()),
            event,
            record::Chain { n, prev: &prev },
        );
        self.append(&line)?;
        let hash = chain::hash_line(&line);
        if self.sealing.is_some() {
            let covered = seal::Covered {
                chain: key.clone(),
                n,
                hash: hash.clone(),
            };
            match self.unsealed.iter_mut().find(|(c, _)| c.chain == key) {
                Some((c, _)) => *c = covered,
                None => self.unsealed.push((covered, Instant::now())),
            }
        }
        if matches!(event, Event::SessionEnd { .. }) {
            self.chains.remove(&key);
        } else {
            self.chains.insert(key, chain::Link { n, hash });
        }
        if let Some(sock) = &self.syslog {
            syslog_copy(sock, &line);
        }
        Ok(())
    }

    /// When the oldest unsealed record must be sealed at the latest
    /// (`None`: nothing to seal, sealing off, or no interval). For a
    /// caller with a timer (an idle session's poll loop): call
    /// [`AuditLog::seal_now`] then.
    pub fn seal_due(&self) -> Option<Instant> {
        let interval = self.sealing.as_ref()?.interval?;
        self.unsealed
            .iter()
            .map(|(_, since)| *since + interval)
            .min()
    }

    /// Seals every chain of this log that has unsealed records, in one
    /// seal (one epoch of the key). `Err` only when a record cannot be
    /// written (the caller stops, as for any record).
    pub fn seal_now(&mut self) -> Result<(), AuditError> {
        let Some(sealing) = &self.sealing else {
            return Ok(());
        };
        if self.unsealed.is_empty() {
            return Ok(());
        }
        let key = sealing.key.clone();
        let chains: Vec<seal::Covered> = self.unsealed.iter().map(|(c, _)| c.clone()).collect();
        let mut written: Option<Vec<u8>> = None;
        let result = key.seal(|ratchet, key_id| {
            let common = self.common("seal");
            let body = seal::SealBody {
                v: common.v,
                key_id,
                epoch: ratchet.epoch,
                ts: &common.ts,
                bastion: common.bastion,
                user: common.user,
                login: common.login,
                client: common.client,
                chains: &chains,
            };
            let mac = ratchet.tag(&body.bytes());
            let mut line = serde_json::to_vec(&record::SealRecord {
                common,
                key_id,
                epoch: ratchet.epoch,
                chains: &chains,
                mac: &mac,
            })
            .map_err(|e| e.to_string())?;
            line.push(b'\n');
            append_to(&mut self.file, &self.path, &line).map_err(|e| e.to_string())?;
            written = Some(line);
            Ok(())
        });
        match result {
            Ok(()) => {
                self.unsealed.clear();
                if let (Some(sock), Some(line)) = (&self.syslog, &written) {
                    syslog_copy(sock, line);
                }
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                crate::report::syslog(&msg);
                // Try again at the next end, or an interval from now.
                let now = Instant::now();
                for (_, since) in self.unsealed.iter_mut() {
                    *since = now;
                }
                if let seal::SealError::Record(_) = e {
                    return Err(AuditError::Write {
                        path: self.path.clone(),
                        err: io::Error::other(msg),
                    });
                }
                self.write_record(&Event::Error {
                    reason: "seal_failed",
                    detail: &msg,
                    session: None,
                    host: None,
                    host_key: None,
                    batch: None,
                })
            }
        }
    }

    fn append(&mut self, line: &[u8]) -> Result<(), AuditError> {
        append_to(&mut self.file, &self.path, line)
    }
}

fn append_to(file: &mut File, path: &Path, line: &[u8]) -> Result<(), AuditError> {
    loop {
        match file.write(line) {
            Ok(n) if n == line.len() => return Ok(()),
            Ok(n) => {
                return Err(AuditError::Short {
                    path: path.to_path_buf(),
                    written: n,
                    len: line.len(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(AuditError::Write {
                    path: path.to_path_buf(),
                    err,
                })
            }
        }
    }
}

/// syslog facility authpriv, severity info: `<86>`.
const SYSLOG_PRI: u8 = 10 * 8 + 6;

/// One datagram per record, RFC 3164 style without timestamp/hostname (the
/// local daemon adds them); the message is the JSON record unchanged.
/// Best effort: the JSONL is the record of truth, syslog is a copy.
fn syslog_copy(socket: &Path, line: &[u8]) {
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut msg = format!("<{SYSLOG_PRI}>gatehouse[{}]: ", std::process::id()).into_bytes();
    msg.extend_from_slice(body);
    let _ = sock.send_to(&msg, socket);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_contract_fields() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), "alice", "L1", "10.0.0.1:5000").unwrap();
        log.write(&Event::Command {
            session: "S1",
            host: "web01",
            seq: 1,
            command: "echo \"hi\"\n\u{1b}[31m\u{0}",
            verified: false,
            truncated: true,
            length: Some(20000),
            source: "keys",
        })
        .unwrap();
        log.write(&Event::Denied {
            request: "bash",
            reason: DenyReason::NotPermitted,
        })
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join("alice.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let c = &lines[0];
        assert_eq!(c["v"], 1);
        assert_eq!(c["event"], "command");
        assert_eq!(c["user"], "alice");
        assert_eq!(c["login"], "L1");
        assert_eq!(c["client"], "10.0.0.1:5000");
        assert_eq!(c["command"], "echo \"hi\"\n\u{1b}[31m\u{0}");
        assert_eq!(c["truncated"], true);
        assert_eq!(c["length"], 20000);
        assert_eq!(c["verified"], false);
        let ts = c["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-28T18:24:56.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
        assert_eq!(lines[1]["reason"], "not_permitted");
        assert_eq!(lines[1]["request"], "bash");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("alice.jsonl"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn policy_record_has_the_contract_fields() {
        use crate::core::command_policy::Action;
        use crate::core::record::PolicyOutcome;
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), "alice", "L1", "local").unwrap();
        for (action, outcome, want) in [
            (Action::Deny, PolicyOutcome::Blocked, ("deny", "blocked")),
            (
                Action::Confirm,
                PolicyOutcome::Confirmed,
                ("confirm", "confirmed"),
            ),
            (
                Action::Confirm,
                PolicyOutcome::Cancelled,
                ("confirm", "cancelled"),
            ),
            (Action::Alert, PolicyOutcome::Allowed, ("alert", "allowed")),
            (Action::Deny, PolicyOutcome::Ran, ("deny", "ran")),
        ] {
            log.write(&Event::Policy {
                session: "S1",
                host: "web01",
                rule: "no-root-wipe",
                action,
                outcome,
                command: "sudo rm -rf /",
                truncated: false,
                length: None,
            })
            .unwrap();
            let text = std::fs::read_to_string(log.path()).unwrap();
            let r: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
            assert_eq!(r["event"], "policy");
            assert_eq!(r["session"], "S1");
            assert_eq!(r["host"], "web01");
            assert_eq!(r["rule"], "no-root-wipe");
            assert_eq!(
                (r["action"].as_str(), r["outcome"].as_str()),
                (Some(want.0), Some(want.1))
            );
            assert_eq!(r["command"], "sudo rm -rf /");
            assert!(r.get("truncated").is_none());
            assert!(r.get("length").is_none());
        }
        // It chains in its session: n counts on from the session's records.
        let text = std::fs::read_to_string(log.path()).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["n"], 5);
    }

    #[test]
    fn records_chain_per_session_and_login() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), "alice", "L1", "local").unwrap();
        log.write(&Event::Login {
            pid: 1,
            mode: "menu",
            auth: None,
        })
        .unwrap();
        for seq in 1..=2 {
            log.write(&Event::Command {
                session: "S1",
                host: "web01",
                seq,
                command: "ls",
                verified: true,
                truncated: false,
                length: None,
                source: "keys",
            })
            .unwrap();
        }
        log.write(&Event::Logout {
            duration_ms: 5,
            reason: None,
        })
        .unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let recs: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(recs[0]["n"], 1);
        assert_eq!(recs[0]["prev"], chain::GENESIS);
        assert_eq!(recs[1]["n"], 1);
        assert_eq!(recs[2]["n"], 2);
        assert_eq!(
            recs[2]["prev"],
            chain::hash_line(lines[1].as_bytes()).as_str()
        );
        assert_eq!(recs[3]["n"], 2);
        assert_eq!(
            recs[3]["prev"],
            chain::hash_line(lines[0].as_bytes()).as_str()
        );
        let mut v = chain::Verifier::new();
        for (i, l) in lines.iter().enumerate() {
            let r = record::read::Record::parse(l.as_bytes().to_vec()).unwrap();
            assert_eq!(v.feed(i as u64 + 1, &r), None);
        }
    }

    #[test]
    fn syslog_copy_sends_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("log.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
        let mut log = AuditLog::open(dir.path(), "alice", "L1", "local").unwrap();
        log.copy_to_syslog(sock_path);
        log.write(&Event::Logout {
            duration_ms: 5,
            reason: None,
        })
        .unwrap();
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(msg.starts_with("<86>gatehouse["), "{msg}");
        let json = &msg[msg.find("]: ").unwrap() + 3..];
        let on_disk = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(json, on_disk.trim_end());
    }

    #[test]
    fn symlinked_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("bob.jsonl")).unwrap();
        assert!(AuditLog::open(dir.path(), "bob", "L", "local").is_err());
    }
}
