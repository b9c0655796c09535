//! The JSONL record types: the contract with every log pipeline downstream
//! (docs/audit-format.md). Add fields freely; never rename or remove one.
//! The writer's types are here; `read` is the one typed reader every tool
//! reads the trail back with.
#![forbid(unsafe_code)]

pub mod read;

use serde::{Deserialize, Serialize};

use crate::core::command_policy::Action;

pub const SCHEMA_VERSION: u32 = 1;

/// Every event a record may carry, as docs/audit-format.md lists them
/// (`gatehouse audit --event` takes these). `read::Body` reads each one.
pub const EVENTS: [&str; 12] = [
    "login",
    "logout",
    "session_start",
    "command",
    "input_hidden",
    "policy",
    "exec",
    "file",
    "session_end",
    "denied",
    "error",
    "seal",
];

/// Fields every record carries; the event-specific ones follow them.
#[derive(Debug, Serialize)]
pub struct Common<'a> {
    pub v: u32,
    pub ts: String,
    pub event: &'static str,
    pub user: &'a str,
    pub login: &'a str,
    pub client: &'a str,
    /// The bastion that wrote the record (`bastion_name`, else its host
    /// name): merged streams of many bastions stay attributable.
    pub bastion: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Exit,
    Hangup,
    IdleTimeout,
    Disconnect,
    Error,
    Abandoned,
    /// An administrator ended it (`gatehouse kill`); `by` and `detail` say
    /// who and why.
    Killed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    NotPermitted,
    NotAHost,
    NoTty,
    NoHosts,
    /// A request in a refused shape (`web01 --`, `-- ls`, control bytes, …).
    BadRequest,
}

/// A `session_end` byte count nobody knows (the sweep of an abandoned
/// session): the field is left out of the record.
pub const UNKNOWN_BYTES: u64 = u64::MAX;

fn is_unknown_bytes(b: &u64) -> bool {
    *b == UNKNOWN_BYTES
}

/// What became of a command a `[[policy]]` rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyOutcome {
    /// `deny`, or a `confirm` the operator answered wrongly: the line was
    /// cancelled on the target.
    Blocked,
    /// `confirm` answered with the host's name: the command ran.
    Confirmed,
    /// `confirm` not answered with the host's name (or given up): the
    /// line was cancelled, as for `deny`.
    Cancelled,
    /// `alert`: the command ran.
    Allowed,
}

/// The event-specific part of a record.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Event<'a> {
    Login {
        pid: u32,
        /// `menu`, `direct` (a host requested on the ssh command line),
        /// `exec` or `transfer`.
        mode: &'static str,
        /// How sshd authenticated the operator (`ExposeAuthInfo`), e.g.
        /// `publickey ssh-ed25519 SHA256:…, keyboard-interactive/pam`.
        #[serde(skip_serializing_if = "Option::is_none")]
        auth: Option<&'a str>,
    },
    Logout {
        duration_ms: u64,
        /// Present when Gatehouse ended the login itself (`idle_timeout`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    SessionStart {
        session: &'a str,
        host: &'a str,
        target: String,
        host_key: &'a str,
        pid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        boot_id: Option<&'a str>,
        /// The process's start time (clock ticks since boot, field 22 of
        /// /proc/PID/stat): with `boot_id` and `pid`, names the process so
        /// that a reused pid is never taken for it (src/process.rs).
        #[serde(skip_serializing_if = "Option::is_none")]
        proc_start: Option<u64>,
        term: &'a str,
        cols: u16,
        rows: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        recording: Option<&'a str>,
        /// How Gatehouse logged in to the target: `key`, `password`, or
        /// `agent SHA256:…` (the operator's own key the target accepted).
        auth: &'a str,
    },
    Command {
        session: &'a str,
        host: &'a str,
        seq: u64,
        command: &'a str,
        /// The screen confirmed the line the shell received.
        verified: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
        /// Bytes of the whole command, when `truncated`.
        #[serde(skip_serializing_if = "Option::is_none")]
        length: Option<usize>,
        source: &'static str,
    },
    /// A line typed while the target did not echo, at a prompt that is not
    /// the shell's (a password): recorded without its content.
    InputHidden {
        session: &'a str,
        host: &'a str,
        seq: u64,
        prompt: &'a str,
    },
    /// A `[[policy]]` rule matched a command (written before the command
    /// runs, or instead of it).
    Policy {
        session: &'a str,
        host: &'a str,
        /// The rule's name, or `gatehouse:unverified`,
        /// `gatehouse:history-expansion` or `gatehouse:too-complex`
        /// (command_policy).
        rule: &'a str,
        action: Action,
        outcome: PolicyOutcome,
        /// The command as recorded (bounded like a `command` record's).
        command: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
        /// Bytes of the whole command, when `truncated` (as `command`).
        #[serde(skip_serializing_if = "Option::is_none")]
        length: Option<usize>,
    },
    SessionEnd {
        session: &'a str,
        host: &'a str,
        exit_status: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_signal: Option<&'a str>,
        reason: EndReason,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<&'a str>,
        /// For `killed`: the administrator who ended it.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<&'a str>,
        duration_ms: u64,
        /// `UNKNOWN_BYTES` leaves the field out: an abandoned session's
        /// counts died with its process, and 0 would be a false figure.
        #[serde(skip_serializing_if = "is_unknown_bytes")]
        bytes_in: u64,
        #[serde(skip_serializing_if = "is_unknown_bytes")]
        bytes_out: u64,
    },
    /// A command (or the sftp subsystem) about to start on a target;
    /// written before it starts, its `session_end` follows.
    Exec {
        session: &'a str,
        host: &'a str,
        /// The command as requested, bounded like `command` records (the
        /// first and last 8 KiB of a longer one); `sftp` for a transfer.
        command: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
        /// The command's length in bytes, when truncated.
        #[serde(skip_serializing_if = "Option::is_none")]
        length: Option<usize>,
        /// `sftp` when this is a file transfer, not a command.
        #[serde(skip_serializing_if = "Option::is_none")]
        subsystem: Option<&'static str>,
        pty: bool,
        /// Shared by the hosts of one many-host request.
        #[serde(skip_serializing_if = "Option::is_none")]
        batch: Option<&'a str>,
        target: String,
        host_key: &'a str,
        /// How Gatehouse logged in to the target, as in `session_start`:
        /// `key`, `password`, or `agent SHA256:…`.
        #[serde(skip_serializing_if = "Option::is_none")]
        auth: Option<&'a str>,
        pid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        boot_id: Option<&'a str>,
        /// The asciicast of a command run with a pty (recording on).
        #[serde(skip_serializing_if = "Option::is_none")]
        recording: Option<&'a str>,
    },
    /// One file operation seen in an sftp transfer.
    File {
        session: &'a str,
        host: &'a str,
        /// `upload`, `download`, `remove`, `rename`, `mkdir`, `rmdir`,
        /// `symlink`, `link`, `setstat`, `copy`.
        op: &'static str,
        path: &'a str,
        /// rename and copy: the new path; symlink and link: the target.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<&'a str>,
        /// upload and download: bytes moved.
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        /// setstat: the permission bits set, octal (`"0644"`).
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
        /// An upload or download whose handle was never closed (the
        /// transfer ended first).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        incomplete: bool,
    },
    Denied {
        request: &'a str,
        reason: DenyReason,
    },
    Error {
        reason: &'static str,
        detail: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        host_key: Option<&'a str>,
        /// The many-host request this host was part of (as `exec`'s).
        #[serde(skip_serializing_if = "Option::is_none")]
        batch: Option<&'a str>,
    },
}

impl Event<'_> {
    /// The session this record belongs to, if any (it then chains there).
    pub fn session(&self) -> Option<&str> {
        match self {
            Event::SessionStart { session, .. }
            | Event::Command { session, .. }
            | Event::InputHidden { session, .. }
            | Event::Policy { session, .. }
            | Event::Exec { session, .. }
            | Event::File { session, .. }
            | Event::SessionEnd { session, .. } => Some(session),
            Event::Error { session, .. } => *session,
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Event::Login { .. } => "login",
            Event::Logout { .. } => "logout",
            Event::SessionStart { .. } => "session_start",
            Event::Command { .. } => "command",
            Event::InputHidden { .. } => "input_hidden",
            Event::Policy { .. } => "policy",
            Event::Exec { .. } => "exec",
            Event::File { .. } => "file",
            Event::SessionEnd { .. } => "session_end",
            Event::Denied { .. } => "denied",
            Event::Error { .. } => "error",
        }
    }
}

/// The hash-chain fields every record ends with (`audit::chain`).
#[derive(Debug, Serialize)]
pub struct Chain<'a> {
    /// Place of the record in its chain (its session, else its login): 1, 2, …
    pub n: u64,
    /// SHA-256 hex of the previous line of the chain; zeros for the first.
    pub prev: &'a str,
}

#[derive(Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    common: Common<'a>,
    #[serde(flatten)]
    event: &'a Event<'a>,
    #[serde(flatten)]
    chain: Chain<'a>,
}

/// One chain as a seal covers it: its id, its last record's `n`, and the
/// SHA-256 of that record's line (so every record before it too, through
/// the hash chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Covered {
    pub chain: String,
    pub n: u64,
    pub hash: String,
}

/// A `seal` record (audit::seal): the common fields, what it covers, and
/// its tag. No `n`/`prev`: it stands outside the chains it covers.
#[derive(Debug, Serialize)]
pub struct SealRecord<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    pub key_id: &'a str,
    pub epoch: u64,
    pub chains: &'a [Covered],
    pub mac: &'a str,
}

/// One record as a JSON line, newline included. Should serde ever fail on
/// these plain types, an `error` line with reason `serialize` (and no
/// other field) stands in for the record (docs/audit-format.md, `error`).
pub fn to_line(common: Common<'_>, event: &Event<'_>, chain: Chain<'_>) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Record {
        common,
        event,
        chain,
    })
    .unwrap_or_else(|_| b"{\"v\":1,\"event\":\"error\",\"reason\":\"serialize\"}".to_vec());
    line.push(b'\n');
    line
}

/// RFC 3339 UTC with milliseconds: `2026-11-28T18:24:56.123Z`.
pub fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    //! docs/audit-format.md is the contract: every event and field the
    //! writer can emit is documented there, and nothing is documented that
    //! is never written.
    use super::*;
    use std::collections::BTreeSet;

    const DOC: &str = include_str!("../../docs/audit-format.md");

    /// The field names of the markdown table that follows `heading`: the
    /// back-quoted names of each row's first cell (`session`, `host`).
    fn documented(heading: &str) -> BTreeSet<String> {
        let start = DOC
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading:?} in docs/audit-format.md"));
        let rest = &DOC[start + heading.len()..];
        let mut fields = BTreeSet::new();
        let mut in_table = false;
        for line in rest.lines() {
            if line.starts_with('|') {
                in_table = true;
                let cell = line.split('|').nth(1).unwrap_or("");
                for name in cell.split('`').skip(1).step_by(2) {
                    fields.insert(name.to_string());
                }
            } else if in_table || line.starts_with("## ") || line.starts_with("### ") {
                break;
            }
        }
        fields
    }

    /// Every variant with every optional field present: all the writer
    /// can emit.
    fn every_event() -> Vec<Event<'static>> {
        vec![
            Event::Login {
                pid: 1,
                mode: "menu",
                auth: Some("publickey"),
            },
            Event::Logout {
                duration_ms: 1,
                reason: Some("idle_timeout"),
            },
            Event::SessionStart {
                session: "S",
                host: "h",
                target: "u@h:22".into(),
                host_key: "SHA256:x",
                pid: 1,
                boot_id: Some("b"),
                proc_start: Some(1),
                term: "xterm",
                cols: 80,
                rows: 24,
                recording: Some("/r.cast"),
                auth: "key",
            },
            Event::Command {
                session: "S",
                host: "h",
                seq: 1,
                command: "ls",
                verified: true,
                truncated: true,
                length: Some(20000),
                source: "keys",
            },
            Event::InputHidden {
                session: "S",
                host: "h",
                seq: 2,
                prompt: "Password:",
            },
            Event::Policy {
                session: "S",
                host: "h",
                rule: "r",
                action: Action::Deny,
                outcome: PolicyOutcome::Blocked,
                command: "rm",
                truncated: true,
                length: Some(20000),
            },
            Event::SessionEnd {
                session: "S",
                host: "h",
                exit_status: Some(0),
                exit_signal: Some("KILL"),
                reason: EndReason::Killed,
                detail: Some("why"),
                by: Some("root"),
                duration_ms: 1,
                bytes_in: 1,
                bytes_out: 1,
            },
            Event::Exec {
                session: "S",
                host: "h",
                command: "uptime",
                truncated: true,
                length: Some(20000),
                subsystem: Some("sftp"),
                pty: true,
                batch: Some("B"),
                target: "u@h:22".into(),
                host_key: "SHA256:x",
                auth: Some("key"),
                pid: 1,
                boot_id: Some("b"),
                recording: Some("/r.cast"),
            },
            Event::File {
                session: "S",
                host: "h",
                op: "setstat",
                path: "/p",
                to: Some("/q"),
                bytes: Some(1),
                mode: Some("0644".into()),
                incomplete: true,
            },
            Event::Denied {
                request: "bash",
                reason: DenyReason::NotPermitted,
            },
            Event::Error {
                reason: "connect_failed",
                detail: "d",
                session: Some("S"),
                host: Some("h"),
                host_key: Some("SHA256:x"),
                batch: Some("B"),
            },
        ]
    }

    fn keys(line: &[u8]) -> BTreeSet<String> {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn common_fields() -> Common<'static> {
        Common {
            v: SCHEMA_VERSION,
            ts: timestamp(),
            event: "x",
            user: "alice",
            login: "L",
            client: "local",
            bastion: "b1",
        }
    }

    #[test]
    fn every_common_field_is_documented_and_nothing_more() {
        let e = Event::Denied {
            request: "bash",
            reason: DenyReason::NoTty,
        };
        let written: BTreeSet<String> =
            keys(&to_line(common_fields(), &e, Chain { n: 1, prev: "0" }))
                .into_iter()
                .filter(|k| !["request", "reason"].contains(&k.as_str()))
                .collect();
        assert_eq!(written, documented("## Fields every record has"));
    }

    #[test]
    fn every_event_and_its_fields_are_documented_and_nothing_more() {
        let common: BTreeSet<String> = documented("## Fields every record has");
        let mut names = BTreeSet::new();
        for e in every_event() {
            names.insert(e.name().to_string());
            let written: BTreeSet<String> =
                keys(&to_line(common_fields(), &e, Chain { n: 1, prev: "0" }))
                    .difference(&common)
                    .cloned()
                    .collect();
            let doc = documented(&format!("### `{}`\n", e.name()));
            assert_eq!(written, doc, "`{}`: written vs documented", e.name());
        }
        // The `event` row lists them all (and `seal`, written by
        // audit::AuditLog's sealing, beside these).
        let row = DOC
            .lines()
            .find(|l| l.starts_with("| `event` |"))
            .expect("the `event` row");
        let listed: BTreeSet<String> = row
            .split('|')
            .nth(3)
            .unwrap()
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .filter(|n| n != "seal")
            .collect();
        assert_eq!(listed, names);
    }
}
