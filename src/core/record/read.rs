//! Records read back: the one typed view of a stored JSONL line that every
//! reader uses (`gatehouse audit`, its filters and table, `--verify`,
//! `replay --follow`, the abandoned-session sweep). The writer's types are
//! in the parent module; docs/audit-format.md is the contract between them.
//!
//! Forward compatible, as the contract asks of every parser: a record is
//! read, never rejected, for what it has. Fields this reader does not know
//! are skipped by the typed view and kept in `Record::bytes`, the line
//! exactly as stored (`--json` prints it, the hash chain hashes it; nothing
//! is ever re-serialised). An event this reader does not know is
//! `Body::Other`, with its common fields (time, user, session, chain) read
//! as for any record, so a newer writer's records are listed, filtered and
//! verified by an older reader. A field of an unexpected type reads as
//! absent, as a string-keyed lookup would have found it: a damaged or
//! edited line is still shown and chain-checked, and the chain says what
//! happened to it.
//!
//! What is refused: a line that is not a JSON object, and an object with a
//! field twice — JSON parsers disagree on which copy counts (serde_json and
//! jq take the last, others the first), so such a line could say one thing
//! to `gatehouse audit` and another to a SIEM. The writer never makes one.
#![forbid(unsafe_code)]

use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::Deserialize;

use super::Covered;

/// A field's value, or its type's default (`None`, `""`, `false`) when it
/// has another type than this reader expects: read what is there, as a
/// string-keyed lookup does, rather than lose the whole record. For
/// `#[serde(deserialize_with = "lenient")]` (also used for the asciicast
/// header `replay` reads).
pub fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// A struct of record fields, every one optional and lenient (`lenient`):
/// a missing field is its default, a mistyped one too. One attribute per
/// field would hide the fields behind the attributes.
macro_rules! fields {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(default)]
        pub struct $name {
            $($(#[$fmeta])* #[serde(deserialize_with = "lenient")] pub $field: $ty,)*
        }
    };
}

fields! {
    /// The fields every record has (docs/audit-format.md, "Fields every
    /// record has"), and `session`/`host`, which every record of a
    /// session carries whatever its event.
    pub struct Head {
        pub v: Option<u64>,
        /// RFC 3339 UTC, fixed width: text order is time order.
        pub ts: Option<String>,
        pub event: Option<String>,
        pub user: Option<String>,
        pub login: Option<String>,
        pub client: Option<String>,
        /// Absent in records written before the field existed.
        pub bastion: Option<String>,
        pub session: Option<String>,
        pub host: Option<String>,
        /// The hash chain (`core::chain`); absent in `seal` records and in
        /// records written before chaining.
        pub n: Option<u64>,
        pub prev: Option<String>,
    }
}

fields! {
    pub struct Login {
        pub pid: Option<i64>,
        /// `menu`, `direct`, `exec` or `transfer` (the set may grow).
        pub mode: String,
        pub auth: Option<String>,
    }
}

fields! {
    pub struct Logout {
        pub duration_ms: Option<u64>,
        /// `idle_timeout`, `abandoned`; absent when the operator left.
        pub reason: Option<String>,
    }
}

fields! {
    pub struct SessionStart {
        pub target: String,
        pub host_key: String,
        pub pid: Option<i64>,
        pub boot_id: Option<String>,
        pub proc_start: Option<u64>,
        pub term: String,
        pub cols: Option<u64>,
        pub rows: Option<u64>,
        pub recording: Option<String>,
        pub auth: Option<String>,
    }
}

fields! {
    pub struct Command {
        pub seq: Option<u64>,
        pub command: String,
        /// `Some(false)`: the screen did not confirm the line.
        pub verified: Option<bool>,
        pub truncated: bool,
        pub length: Option<u64>,
        /// `keys` or `screen` (the set may grow).
        pub source: Option<String>,
    }
}

fields! {
    pub struct InputHidden {
        pub seq: Option<u64>,
        pub prompt: String,
    }
}

fields! {
    /// Text, not the writer's enums: a newer writer may add an action or
    /// an outcome, and this reader must still show it.
    pub struct Policy {
        pub rule: String,
        pub action: String,
        pub outcome: String,
        pub command: String,
        pub truncated: bool,
        pub length: Option<u64>,
    }
}

fields! {
    pub struct Exec {
        pub command: String,
        pub truncated: bool,
        pub length: Option<u64>,
        pub auth: Option<String>,
        /// `sftp` for a transfer.
        pub subsystem: Option<String>,
        pub pty: bool,
        pub batch: Option<String>,
        pub target: String,
        pub host_key: String,
        pub pid: Option<i64>,
        pub boot_id: Option<String>,
        /// Not written for an exec today; read when present, as for
        /// `session_start`, so the abandoned-session check can use it.
        pub proc_start: Option<u64>,
        pub recording: Option<String>,
    }
}

fields! {
    pub struct File {
        /// `upload`, `download`, `remove`, … (the set may grow).
        pub op: String,
        pub path: String,
        pub to: Option<String>,
        pub bytes: Option<u64>,
        pub mode: Option<String>,
        pub incomplete: bool,
    }
}

fields! {
    pub struct SessionEnd {
        pub exit_status: Option<i64>,
        pub exit_signal: Option<String>,
        /// Text, not `EndReason`: the set may grow.
        pub reason: String,
        pub detail: Option<String>,
        pub by: Option<String>,
        pub duration_ms: Option<u64>,
        /// Absent when unknown (an abandoned session's).
        pub bytes_in: Option<u64>,
        pub bytes_out: Option<u64>,
    }
}

fields! {
    pub struct Denied {
        pub request: String,
        pub reason: String,
    }
}

fields! {
    /// The `error` event (not named `Error`: it is no Rust error type).
    pub struct Failure {
        pub reason: String,
        pub detail: String,
        pub host_key: Option<String>,
        pub batch: Option<String>,
    }
}

fields! {
    /// Every field optional: a seal missing one cannot be checked, and the
    /// verifier says so (`audit::seal::body_of`).
    pub struct Seal {
        pub key_id: Option<String>,
        pub epoch: Option<u64>,
        pub chains: Option<Vec<Covered>>,
        pub mac: Option<String>,
    }
}

/// The event-specific part of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Login(Login),
    Logout(Logout),
    SessionStart(SessionStart),
    Command(Command),
    InputHidden(InputHidden),
    Policy(Policy),
    Exec(Exec),
    File(File),
    SessionEnd(SessionEnd),
    Denied(Denied),
    Error(Failure),
    Seal(Seal),
    /// An event this reader does not know (a newer writer's), or none:
    /// its name is `Head::event`, its fields are in `Record::bytes`.
    Other,
}

impl Body {
    /// The part of `line` that `event` names. The one place that maps
    /// event names to types (`super::EVENTS` lists them; a unit test keeps
    /// the two in step).
    fn parse(event: Option<&str>, line: &[u8]) -> serde_json::Result<Body> {
        use serde_json::from_slice as p;
        Ok(match event.unwrap_or("") {
            "login" => Body::Login(p(line)?),
            "logout" => Body::Logout(p(line)?),
            "session_start" => Body::SessionStart(p(line)?),
            "command" => Body::Command(p(line)?),
            "input_hidden" => Body::InputHidden(p(line)?),
            "policy" => Body::Policy(p(line)?),
            "exec" => Body::Exec(p(line)?),
            "file" => Body::File(p(line)?),
            "session_end" => Body::SessionEnd(p(line)?),
            "denied" => Body::Denied(p(line)?),
            "error" => Body::Error(p(line)?),
            "seal" => Body::Seal(p(line)?),
            _ => Body::Other,
        })
    }
}

/// How a session began: the process that ran it (`session_start`, or
/// `exec` for a command or transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start<'a> {
    pub pid: Option<i64>,
    pub boot_id: Option<&'a str>,
    pub proc_start: Option<u64>,
    pub recording: Option<&'a str>,
}

/// One stored record: its bytes exactly as stored (no newline), and the
/// typed view of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub bytes: Vec<u8>,
    pub head: Head,
    pub body: Body,
}

/// Why a line is not a record.
#[derive(Debug)]
pub enum NotARecord {
    NotJson(serde_json::Error),
    NotAnObject,
    /// A field twice (or, in principle, any other shape a lenient read
    /// cannot take): see the module header.
    Ambiguous(serde_json::Error),
}

/// `T` read from a line that must be one JSON object (a struct would also
/// read from an array, its fields by position).
pub fn object<T: DeserializeOwned>(line: &[u8]) -> Result<T, NotARecord> {
    let first = line.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(line) {
            Ok(_) => NotARecord::NotAnObject,
            Err(e) => NotARecord::NotJson(e),
        });
    }
    serde_json::from_slice(line).map_err(classify)
}

/// A syntax error is not JSON; a data error in an object whose every field
/// is lenient is a repeated field.
fn classify(e: serde_json::Error) -> NotARecord {
    match e.classify() {
        serde_json::error::Category::Data => NotARecord::Ambiguous(e),
        _ => NotARecord::NotJson(e),
    }
}

impl std::fmt::Display for NotARecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotARecord::NotJson(e) => write!(f, "not valid JSON ({e})"),
            NotARecord::NotAnObject => write!(f, "not a JSON object"),
            NotARecord::Ambiguous(e) => write!(
                f,
                "not a record ({e}): readers would disagree on what it says"
            ),
        }
    }
}

impl Record {
    /// Reads one stored line (without its newline).
    pub fn parse(bytes: Vec<u8>) -> Result<Record, NotARecord> {
        let head: Head = object(&bytes)?;
        let body = Body::parse(head.event.as_deref(), &bytes).map_err(classify)?;
        Ok(Record { bytes, head, body })
    }

    /// The event's name as stored (`""` when there is none).
    pub fn event(&self) -> &str {
        self.head.event.as_deref().unwrap_or("")
    }

    pub fn session(&self) -> Option<&str> {
        self.head.session.as_deref()
    }

    /// The hash chain the record belongs to: its session if it has one,
    /// else its login (`core::chain`).
    pub fn chain(&self) -> Option<&str> {
        self.session().or(self.head.login.as_deref())
    }

    /// Whether the record ends its chain: a `session_end`, or the `logout`
    /// of a login's own chain.
    pub fn closes_chain(&self) -> bool {
        match self.body {
            Body::SessionEnd(_) => true,
            Body::Logout(_) => self.session().is_none(),
            _ => false,
        }
    }

    /// The process of a session's first record (`session_start`, `exec`).
    pub fn start(&self) -> Option<Start<'_>> {
        match &self.body {
            Body::SessionStart(s) => Some(Start {
                pid: s.pid,
                boot_id: s.boot_id.as_deref(),
                proc_start: s.proc_start,
                recording: s.recording.as_deref(),
            }),
            Body::Exec(e) => Some(Start {
                pid: e.pid,
                boot_id: e.boot_id.as_deref(),
                proc_start: e.proc_start,
                recording: e.recording.as_deref(),
            }),
            _ => None,
        }
    }

    /// The time as milliseconds since the epoch, when `ts` is RFC 3339.
    pub fn ts_ms(&self) -> Option<i64> {
        let ts = self.head.ts.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(ts)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        to_line, Chain, Common, DenyReason, EndReason, Event, PolicyOutcome, SealRecord, EVENTS,
    };
    use super::*;
    use crate::core::chain::{hash_line, Link, Verifier};
    use crate::core::command_policy::Action;

    fn common(event: &'static str) -> Common<'static> {
        Common {
            v: 1,
            ts: "2026-11-28T21:07:48.104Z".into(),
            event,
            user: "alice",
            login: "L1",
            client: "203.0.113.7:51234",
            bastion: "bastion1",
        }
    }

    /// One of each event the writer writes. The match has no wildcard arm:
    /// a new `Event` variant does not compile until it has a sample here.
    /// Long because it is a table: one entry per event, every field set.
    fn samples() -> Vec<Event<'static>> {
        let all = vec![
            Event::Login {
                pid: 25110,
                mode: "menu",
                auth: Some("publickey ssh-ed25519 SHA256:E4wt"),
            },
            Event::Logout {
                duration_ms: 1234,
                reason: Some("idle_timeout"),
            },
            Event::SessionStart {
                session: "S1",
                host: "web01",
                target: "deploy@10.1.2.3:22".into(),
                host_key: "SHA256:uQ0f",
                pid: 25110,
                boot_id: Some("6f1e2f6c"),
                proc_start: Some(987),
                term: "xterm-256color",
                cols: 120,
                rows: 40,
                recording: Some("/var/log/gatehouse/sessions/alice/S1.cast"),
                auth: "agent SHA256:abc",
            },
            Event::Command {
                session: "S1",
                host: "web01",
                seq: 1,
                command: "echo \"hi\"\n\u{1b}[31m",
                verified: false,
                truncated: true,
                length: Some(20000),
                source: "screen",
            },
            Event::InputHidden {
                session: "S1",
                host: "web01",
                seq: 2,
                prompt: "[sudo] password for alice: ",
            },
            Event::Policy {
                session: "S1",
                host: "web01",
                rule: "no-root-wipe",
                action: Action::Confirm,
                outcome: PolicyOutcome::Cancelled,
                command: "rm -rf /",
                truncated: false,
                length: None,
            },
            Event::Exec {
                session: "S2",
                host: "web02",
                command: "sftp",
                truncated: false,
                length: None,
                subsystem: Some("sftp"),
                pty: true,
                batch: Some("B1"),
                target: "deploy@10.1.2.4:22".into(),
                host_key: "SHA256:k2",
                auth: Some("key"),
                pid: 7,
                boot_id: Some("b"),
                recording: Some("/r.cast"),
            },
            Event::File {
                session: "S2",
                host: "web02",
                op: "rename",
                path: "/a",
                to: Some("/b"),
                bytes: Some(2048),
                mode: Some("0644".into()),
                incomplete: true,
            },
            Event::SessionEnd {
                session: "S1",
                host: "web01",
                exit_status: Some(-1),
                exit_signal: Some("KILL"),
                reason: EndReason::Killed,
                detail: Some("maintenance"),
                by: Some("root"),
                duration_ms: 5000,
                bytes_in: super::super::UNKNOWN_BYTES,
                bytes_out: 99,
            },
            Event::Denied {
                request: "db01",
                reason: DenyReason::NotPermitted,
            },
            Event::Error {
                reason: "host_key_mismatch",
                detail: "the key changed",
                session: Some("S3"),
                host: Some("web03"),
                host_key: Some("SHA256:bad"),
                batch: Some("B1"),
            },
        ];
        for e in &all {
            match e {
                Event::Login { .. }
                | Event::Logout { .. }
                | Event::SessionStart { .. }
                | Event::Command { .. }
                | Event::InputHidden { .. }
                | Event::Policy { .. }
                | Event::Exec { .. }
                | Event::File { .. }
                | Event::SessionEnd { .. }
                | Event::Denied { .. }
                | Event::Error { .. } => {}
            }
        }
        all
    }

    fn written(event: &Event<'_>, n: u64) -> Vec<u8> {
        let mut line = to_line(
            common(event.name()),
            event,
            Chain {
                n,
                prev: crate::core::chain::GENESIS,
            },
        );
        assert_eq!(line.pop(), Some(b'\n'));
        line
    }

    fn sealed() -> Vec<u8> {
        let chains = [Covered {
            chain: "S1".into(),
            n: 4,
            hash: "ab".repeat(32),
        }];
        serde_json::to_vec(&SealRecord {
            common: common("seal"),
            key_id: "0123456789abcdef",
            epoch: 7,
            chains: &chains,
            mac: &"cd".repeat(32),
        })
        .unwrap()
    }

    /// Every event the writer produces reads back as its own type, every
    /// field as written, and the bytes untouched.
    #[test]
    fn every_event_the_writer_writes_reads_back_typed() {
        let mut names: Vec<&str> = Vec::new();
        for event in samples() {
            let line = written(&event, 3);
            let r = Record::parse(line.clone()).unwrap();
            assert_eq!(r.bytes, line, "kept as stored");
            assert_eq!(r.event(), event.name());
            assert_eq!(r.head.v, Some(1));
            assert_eq!(r.head.ts.as_deref(), Some("2026-11-28T21:07:48.104Z"));
            assert_eq!(r.head.user.as_deref(), Some("alice"));
            assert_eq!(r.head.login.as_deref(), Some("L1"));
            assert_eq!(r.head.client.as_deref(), Some("203.0.113.7:51234"));
            assert_eq!(r.head.bastion.as_deref(), Some("bastion1"));
            assert_eq!(r.head.n, Some(3));
            assert_eq!(r.head.prev.as_deref(), Some(crate::core::chain::GENESIS));
            assert_eq!(r.session(), event.session(), "{}", event.name());
            assert_eq!(r.chain(), Some(event.session().unwrap_or("L1")));
            assert_fields(&event, &r.body);
            names.push(event.name());
        }
        let r = Record::parse(sealed()).unwrap();
        let Body::Seal(s) = &r.body else {
            panic!("{:?}", r.body)
        };
        assert_eq!(s.key_id.as_deref(), Some("0123456789abcdef"));
        assert_eq!(s.epoch, Some(7));
        assert_eq!(s.chains.as_ref().map(|c| c[0].n), Some(4));
        assert_eq!(s.mac, Some("cd".repeat(32)));
        assert_eq!((r.head.n, r.chain()), (None, Some("L1")));
        names.push("seal");
        assert_eq!(names, EVENTS, "one sample per event of the schema");
    }

    /// The typed fields equal what the writer wrote. Long because it is a
    /// table: every field of every event, written → read.
    fn assert_fields(event: &Event<'_>, body: &Body) {
        let s = |x: &str| x.to_string();
        let want = match *event {
            Event::Login { pid, mode, auth } => Body::Login(Login {
                pid: Some(pid.into()),
                mode: s(mode),
                auth: auth.map(s),
            }),
            Event::Logout {
                duration_ms,
                reason,
            } => Body::Logout(Logout {
                duration_ms: Some(duration_ms),
                reason: reason.map(s),
            }),
            Event::SessionStart {
                ref target,
                host_key,
                pid,
                boot_id,
                proc_start,
                term,
                cols,
                rows,
                recording,
                auth,
                ..
            } => Body::SessionStart(SessionStart {
                target: target.clone(),
                host_key: s(host_key),
                pid: Some(pid.into()),
                boot_id: boot_id.map(s),
                proc_start,
                term: s(term),
                cols: Some(cols.into()),
                rows: Some(rows.into()),
                recording: recording.map(s),
                auth: Some(s(auth)),
            }),
            Event::Command {
                seq,
                command,
                verified,
                truncated,
                length,
                source,
                ..
            } => Body::Command(Command {
                seq: Some(seq),
                command: s(command),
                verified: Some(verified),
                truncated,
                length: length.map(|l| l as u64),
                source: Some(s(source)),
            }),
            Event::InputHidden { seq, prompt, .. } => Body::InputHidden(InputHidden {
                seq: Some(seq),
                prompt: s(prompt),
            }),
            Event::Policy {
                rule,
                action,
                outcome,
                command,
                truncated,
                length,
                ..
            } => Body::Policy(Policy {
                rule: s(rule),
                action: serde_json::to_value(action)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .into(),
                outcome: serde_json::to_value(outcome)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .into(),
                command: s(command),
                truncated,
                length: length.map(|l| l as u64),
            }),
            Event::Exec {
                command,
                truncated,
                length,
                subsystem,
                pty,
                batch,
                ref target,
                host_key,
                auth,
                pid,
                boot_id,
                recording,
                ..
            } => Body::Exec(Exec {
                command: s(command),
                truncated,
                length: length.map(|l| l as u64),
                auth: auth.map(s),
                subsystem: subsystem.map(s),
                pty,
                batch: batch.map(s),
                target: target.clone(),
                host_key: s(host_key),
                pid: Some(pid.into()),
                boot_id: boot_id.map(s),
                proc_start: None,
                recording: recording.map(s),
            }),
            Event::File {
                op,
                path,
                to,
                bytes,
                ref mode,
                incomplete,
                ..
            } => Body::File(File {
                op: s(op),
                path: s(path),
                to: to.map(s),
                bytes,
                mode: mode.clone(),
                incomplete,
            }),
            Event::SessionEnd {
                exit_status,
                exit_signal,
                reason,
                detail,
                by,
                duration_ms,
                bytes_in,
                bytes_out,
                ..
            } => {
                let known = |b: u64| (b != super::super::UNKNOWN_BYTES).then_some(b);
                Body::SessionEnd(SessionEnd {
                    exit_status: exit_status.map(i64::from),
                    exit_signal: exit_signal.map(s),
                    reason: serde_json::to_value(reason)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .into(),
                    detail: detail.map(s),
                    by: by.map(s),
                    duration_ms: Some(duration_ms),
                    bytes_in: known(bytes_in),
                    bytes_out: known(bytes_out),
                })
            }
            Event::Denied { request, reason } => Body::Denied(Denied {
                request: s(request),
                reason: serde_json::to_value(reason)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .into(),
            }),
            Event::Error {
                reason,
                detail,
                host_key,
                batch,
                ..
            } => Body::Error(Failure {
                reason: s(reason),
                detail: s(detail),
                host_key: host_key.map(s),
                batch: batch.map(s),
            }),
        };
        assert_eq!(body, &want, "{}", event.name());
    }

    /// Forward compatibility: a newer writer's event, and fields this
    /// reader does not know on a known event, are read for what they
    /// have, kept byte for byte, and chain-verified like any record.
    #[test]
    fn an_unknown_event_and_unknown_fields_are_kept() {
        let first = br#"{"v":1,"ts":"2026-12-01T10:00:00.000Z","event":"port_forward","user":"alice","login":"L1","client":"local","bastion":"b1","session":"S9","host":"web01","listen":"127.0.0.1:8080","limits":{"max":[1,2,{"x":null}]},"n":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000"}"#.to_vec();
        let r1 = Record::parse(first.clone()).unwrap();
        assert_eq!(r1.body, Body::Other);
        assert_eq!(r1.event(), "port_forward");
        assert_eq!(r1.bytes, first);
        assert_eq!(r1.session(), Some("S9"));
        assert_eq!(r1.head.host.as_deref(), Some("web01"));
        assert_eq!(r1.head.ts.as_deref(), Some("2026-12-01T10:00:00.000Z"));
        assert!(r1.start().is_none() && !r1.closes_chain());
        let second = format!(
            r#"{{"v":1,"ts":"2026-12-01T10:00:01.000Z","event":"command","user":"alice","login":"L1","client":"local","session":"S9","host":"web01","seq":1,"command":"ls","verified":true,"source":"keys","risk":{{"score":0.7}},"tags":["a"],"n":2,"prev":"{}"}}"#,
            hash_line(&first)
        )
        .into_bytes();
        let r2 = Record::parse(second.clone()).unwrap();
        let Body::Command(c) = &r2.body else {
            panic!("{:?}", r2.body)
        };
        assert_eq!((c.command.as_str(), c.verified), ("ls", Some(true)));
        assert_eq!(r2.bytes, second, "unknown fields stay in the bytes");
        // The chain hashes the bytes as stored, unknown fields included.
        let mut v = Verifier::new();
        assert_eq!(v.feed(1, &r1), None);
        assert_eq!(v.feed(2, &r2), None);
        assert_eq!(v.checked, 2);
        let link = Link {
            n: 2,
            hash: hash_line(&second),
        };
        assert_eq!(Link::next(Some(&link)).1, hash_line(&r2.bytes));
    }

    /// A field of another type than expected reads as absent (as a lookup
    /// found it), never as a lost record.
    #[test]
    fn a_mistyped_field_reads_as_absent() {
        let r = Record::parse(
            br#"{"event":"session_end","session":["S"],"login":"L","n":"2","reason":7,"bytes_in":-1,"bytes_out":5,"exit_status":null}"#.to_vec(),
        )
        .unwrap();
        assert_eq!((r.session(), r.chain(), r.head.n), (None, Some("L"), None));
        let Body::SessionEnd(e) = &r.body else {
            panic!("{:?}", r.body)
        };
        assert_eq!(e.reason, "");
        assert_eq!(
            (e.bytes_in, e.bytes_out, e.exit_status),
            (None, Some(5), None)
        );
        assert!(r.closes_chain());
    }

    #[test]
    fn what_is_not_a_record() {
        let why = |l: &str| {
            Record::parse(l.as_bytes().to_vec())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(why("[1,2]"), "not a JSON object");
        assert_eq!(why(" 3"), "not a JSON object");
        assert!(why("not json").starts_with("not valid JSON ("));
        assert!(why("{\"c\":").starts_with("not valid JSON ("));
        assert!(why("{} x").starts_with("not valid JSON ("));
        // Parsers disagree on which copy of a repeated field counts.
        assert!(why(r#"{"event":"login","n":1,"n":2}"#).contains("duplicate field `n`"));
        assert!(why(r#"{"event":"command","command":"ls","command":"rm"}"#).contains("duplicate"));
        // An empty object is a record with nothing in it.
        assert_eq!(Record::parse(b"{}".to_vec()).unwrap().body, Body::Other);
    }

    /// `EVENTS` and `Body::parse` name the same events.
    #[test]
    fn every_listed_event_has_a_type() {
        for e in EVENTS {
            let r = Record::parse(format!(r#"{{"event":"{e}"}}"#).into_bytes()).unwrap();
            assert_ne!(r.body, Body::Other, "{e}");
        }
    }

    /// docs/audit-format.md is the contract: its event list is `EVENTS`,
    /// and every example record in it reads, typed.
    #[test]
    fn the_documented_format_is_read() {
        let doc = include_str!("../../../docs/audit-format.md");
        let row = doc
            .lines()
            .find(|l| l.starts_with("| `event` | string |"))
            .expect("the event row of the common fields table");
        let listed: Vec<&str> = row
            .split('`')
            .skip(3)
            .step_by(2)
            .filter(|w| !w.contains(' '))
            .collect();
        assert_eq!(listed, EVENTS);
        let mut examples = 0;
        let mut in_json = false;
        for line in doc.lines() {
            match line.trim() {
                "```json" => in_json = true,
                "```" => in_json = false,
                l if in_json && l.starts_with('{') => {
                    let r = Record::parse(l.as_bytes().to_vec()).unwrap();
                    assert_ne!(r.body, Body::Other, "{l}");
                    assert!(r.head.n.is_some() && r.chain().is_some(), "{l}");
                    examples += 1;
                }
                _ => {}
            }
        }
        assert!(examples >= 3, "{examples} examples found");
    }
}
