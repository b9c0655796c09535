//! One visit to one host: connect, `session_start`, the relay with capture
//! feeding `command` records, `session_end`. Every record is written before
//! the thing it announces goes on; a record that cannot be written ends the
//! visit (fail closed).
#![forbid(unsafe_code)]

use std::time::Instant;

use crate::audit::{AuditLog, EndReason, Event};
use crate::core::capture::{self, Capture};
use crate::core::command_policy::{Action, CommandPolicy, Who};
use crate::core::config::{Host, Settings};
use crate::core::record::PolicyOutcome;
use crate::operator::relay::{self, BooksError, Observer, RelayConfig, RelayEnd, Release};
use crate::operator::upstream::{self, ConnectError, PtyRequest};
use crate::recording::{Recorder, SessionInfo};
use crate::sys::SignalPipe;
use crate::tty::{self, RawMode};

pub enum Outcome {
    Ended(RelayEnd),
    ConnectFailed(ConnectError),
    /// The audit trail failed; the message is for the operator.
    Failed(String),
}

impl Outcome {
    /// One line for the operator once the terminal is back to normal.
    pub fn operator_line(&self, host: &str) -> String {
        match self {
            Outcome::Ended(end) => match end.reason {
                EndReason::Exit => match (&end.exit_status, &end.exit_signal) {
                    (_, Some(sig)) => format!("Session on {host} ended (killed by signal {sig})."),
                    (Some(0), _) => format!("Session on {host} ended."),
                    (Some(s), _) => format!("Session on {host} ended (exit status {s})."),
                    (None, None) => format!("Session on {host} ended."),
                },
                EndReason::IdleTimeout => {
                    format!("Session on {host} closed: idle for too long.")
                }
                EndReason::Disconnect if end.detail.as_deref() == Some(relay::ESCAPE_DETAIL) => {
                    format!("Disconnected from {host}.")
                }
                EndReason::Disconnect => format!("Connection to {host} lost."),
                EndReason::Hangup => format!("Session on {host} hung up."),
                EndReason::Killed => format!(
                    "Session on {host} was ended by an administrator: {}.",
                    end.detail.as_deref().unwrap_or("no reason given")
                ),
                EndReason::Error | EndReason::Abandoned => format!(
                    "Session on {host} ended: {}.",
                    end.detail.as_deref().unwrap_or("error")
                ),
            },
            Outcome::ConnectFailed(e) => e.operator_line(host),
            Outcome::Failed(m) => m.clone(),
        }
    }

    /// The status a direct request (`ssh -t bastion web01`) exits with, as
    /// `ssh` would: the target's, or 255 when there is none.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Ended(RelayEnd {
                exit_status: Some(s),
                exit_signal: None,
                ..
            }) => *s,
            _ => 255,
        }
    }
}

/// Keys that clear a line on the target after a policy block: end of line,
/// then kill to its start (readline, zsh, fish; the kernel's VKILL for a
/// shell without a line editor). No interrupt: with keys typed ahead
/// behind it, Ctrl-C was unreliable (the kernel flushes unread input at
/// SIGINT, and bash dropped the first key after it). The earlier lines of a
/// blocked multi-line command stay open in the shell (its continuation
/// prompt shows it); the capture keeps them, so whatever completes them is
/// checked as the whole command (`Capture::blocked`).
const CANCEL_LINE: &[u8] = b"\x05\x15";

/// A command waiting for the operator's answer to a `confirm` rule.
struct Asking {
    command: capture::Command,
    rule: String,
}

struct Bookkeeper<'a> {
    audit: &'a mut AuditLog,
    recording: Option<Recorder>,
    capture: Capture,
    session: &'a str,
    host: &'a str,
    seq: u64,
    found: Vec<capture::Record>,
    policy: &'a CommandPolicy,
    who: Who<'a>,
    host_cfg: &'a Host,
    asking: Option<Asking>,
}

impl Bookkeeper<'_> {
    /// The recording stopped at `max_recording`: say so once in the audit
    /// trail; the session goes on (commands are still recorded).
    fn recording_limit(&mut self) -> Result<(), BooksError> {
        if !self
            .recording
            .as_mut()
            .is_some_and(|r| r.take_limit_reached())
        {
            return Ok(());
        }
        self.audit
            .write(&Event::Error {
                reason: "recording_limit",
                detail:
                    "the session recording reached max_recording and stopped; the session goes on",
                session: Some(self.session),
                host: Some(self.host),
                host_key: None,
                batch: None,
            })
            .map_err(BooksError::from)
    }

    fn write_command(&mut self, c: &capture::Command) -> Result<(), BooksError> {
        self.seq += 1;
        self.audit
            .write(&Event::Command {
                session: self.session,
                host: self.host,
                seq: self.seq,
                command: &c.text,
                verified: c.verified,
                truncated: c.truncated,
                length: c.truncated.then_some(c.length),
                source: c.source.as_str(),
            })
            .map_err(BooksError::from)
    }

    fn write_policy(
        &mut self,
        c: &capture::Command,
        rule: &str,
        action: Action,
        outcome: PolicyOutcome,
    ) -> Result<(), BooksError> {
        self.audit
            .write(&Event::Policy {
                session: self.session,
                host: self.host,
                rule,
                action,
                outcome,
                command: &c.text,
                truncated: c.truncated,
                length: c.truncated.then_some(c.length),
            })
            .map_err(BooksError::from)
    }

    /// Writes the records of a decided Enter, the policy applied to its
    /// command: what the relay does with the Enter.
    fn decide(&mut self) -> Result<Release, BooksError> {
        let mut release = Release::Forward;
        for r in std::mem::take(&mut self.found) {
            let c = match r {
                capture::Record::Command(c) => c,
                hidden => {
                    self.found.push(hidden);
                    self.flush()?;
                    continue;
                }
            };
            let decision = self
                .policy
                .decide(&self.who, self.host_cfg, &c.text, c.verified)
                .map(|d| (d.rule.to_string(), d.action, d.operator_line()));
            // The line may be the rest of one the screen said had run
            // (capture's `also`: a prompt drawn with no Enter, which a
            // program can fake). A rule that matches the two joined, and
            // not the line before alone (that one ran and is on record
            // already), decides as well; its record shows the joined text.
            let mut on_record = c.clone();
            let still_held = c.also.as_ref().is_some_and(|s| s.blocked);
            let decision = match (decision, &c.also) {
                // The shell may still hold a blocked line, which this
                // Enter would run with it: the two joined, or the blocked
                // line alone, decide as well.
                (None, Some(split)) if split.blocked => {
                    [&split.joined, &split.before].into_iter().find_map(|text| {
                        self.policy
                            .decide(&self.who, self.host_cfg, text, false)
                            .map(|d| {
                                on_record.text = split.joined.clone();
                                on_record.length = split.joined.len();
                                (d.rule.to_string(), d.action, d.operator_line())
                            })
                    })
                }
                (None, Some(split)) => {
                    let before = self
                        .policy
                        .decide(&self.who, self.host_cfg, &split.before, false)
                        .map(|d| d.rule.to_string());
                    self.policy
                        .decide(&self.who, self.host_cfg, &split.joined, false)
                        .filter(|d| before.as_deref() != Some(d.rule))
                        .map(|d| {
                            on_record.text = split.joined.clone();
                            on_record.length = split.joined.len();
                            (d.rule.to_string(), d.action, d.operator_line())
                        })
                }
                (d, _) => d,
            };
            match decision {
                None => self.write_command(&c)?,
                Some((rule, Action::Alert, _)) => {
                    self.write_policy(&on_record, &rule, Action::Alert, PolicyOutcome::Allowed)?;
                    self.write_command(&c)?;
                }
                Some((rule, Action::Deny, line)) => {
                    self.write_policy(&on_record, &rule, Action::Deny, PolicyOutcome::Blocked)?;
                    self.capture.blocked(&on_record.text);
                    let notice = if still_held {
                        format!("{line} (the shell still holds the blocked line: Ctrl-C drops it)")
                    } else {
                        line
                    };
                    release = Release::Block {
                        cancel: CANCEL_LINE.to_vec(),
                        notice,
                        repaint: self.capture.repaint_line(),
                    };
                }
                Some((rule, Action::Confirm, line)) => {
                    let question = format!(
                        "{line}\r\n\x1b[Kgatehouse: type the host's name ({}) to run it:",
                        self.host
                    );
                    // What a yes runs: with a blocked line still held,
                    // the two joined.
                    let command = if still_held { on_record } else { c };
                    self.asking = Some(Asking { command, rule });
                    release = Release::Ask { question };
                }
            }
        }
        Ok(release)
    }

    /// Writes commands the capture found after they ran (in the output or
    /// at the next key): a line accepted by a key other than Enter, an
    /// editor that exited without one, a multi-line command closed by the
    /// next prompt. No rule could be applied to them; one that matches is
    /// on record with `outcome: allowed`, before the command, so that the
    /// log pipeline sees it.
    fn flush_late(&mut self) -> Result<(), BooksError> {
        for r in std::mem::take(&mut self.found) {
            if let capture::Record::Unstopped(c) = &r {
                // Blocked, and run all the same: on record as such, and the
                // session ends (its shell runs what the policy stops).
                let rule = self
                    .policy
                    .decide(&self.who, self.host_cfg, &c.text, c.verified)
                    .map(|d| (d.rule.to_string(), d.action));
                if let Some((rule, action)) = &rule {
                    self.write_policy(c, rule, *action, PolicyOutcome::Ran)?;
                }
                self.found.push(r.clone());
                self.flush()?;
                return Err(BooksError::Unstopped {
                    rule: rule.map(|(r, _)| r).unwrap_or_default(),
                });
            }
            if let capture::Record::Command(c) = &r {
                let matched = self
                    .policy
                    .decide(&self.who, self.host_cfg, &c.text, c.verified)
                    .map(|d| (d.rule.to_string(), d.action));
                if let Some((rule, action)) = matched {
                    self.write_policy(c, &rule, action, PolicyOutcome::Allowed)?;
                }
            }
            self.found.push(r);
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what the capture found. Called before the Enter that the
    /// records account for is forwarded.
    fn flush(&mut self) -> Result<(), BooksError> {
        for r in std::mem::take(&mut self.found) {
            self.seq += 1;
            let event = match &r {
                capture::Record::Command(c) | capture::Record::Unstopped(c) => Event::Command {
                    session: self.session,
                    host: self.host,
                    seq: self.seq,
                    command: &c.text,
                    verified: c.verified,
                    truncated: c.truncated,
                    length: c.truncated.then_some(c.length),
                    source: c.source.as_str(),
                },
                capture::Record::Hidden { prompt } => Event::InputHidden {
                    session: self.session,
                    host: self.host,
                    seq: self.seq,
                    prompt,
                },
            };
            self.audit.write(&event)?;
        }
        Ok(())
    }
}

/// The books failed: the admin's detail to syslog (the audit trail may be
/// what failed), the operator's line back.
fn report(e: BooksError) -> String {
    crate::report::syslog(&e.to_string());
    e.operator_line().to_string()
}

impl Observer for Bookkeeper<'_> {
    fn input(&mut self, data: &[u8], now: Instant) -> Result<relay::Gate, BooksError> {
        // Records found at a key are of lines that already ran (one the
        // shell took with no Enter, a multi-line command its next prompt
        // closed): late, so checked against the policy for the record only.
        let gate = self.capture.input(data, now, &mut self.found);
        if let Some(r) = &mut self.recording {
            r.input(&data[..gate.consumed])?;
        }
        self.recording_limit()?;
        self.flush_late()?;
        Ok(gate)
    }
    fn output(&mut self, data: &[u8], now: Instant) -> Result<(), BooksError> {
        if let Some(r) = &mut self.recording {
            r.output(data)?;
        }
        self.recording_limit()?;
        self.capture.output(data, now, &mut self.found);
        if self.found.is_empty() {
            Ok(())
        } else {
            self.flush_late()
        }
    }
    fn resize(&mut self, cols: u16, rows: u16) -> Result<(), BooksError> {
        if let Some(r) = &mut self.recording {
            r.resize(cols, rows)?;
        }
        self.capture.resize(cols, rows);
        Ok(())
    }
    fn deadline(&self) -> Option<Instant> {
        self.capture.deadline()
    }
    fn timer(&self) -> Option<Instant> {
        let flush = self.recording.as_ref().and_then(Recorder::flush_due);
        [self.audit.seal_due(), flush].into_iter().flatten().min()
    }
    fn on_timer(&mut self, now: Instant) -> Result<(), BooksError> {
        if let Some(r) = &mut self.recording {
            if r.flush_due().is_some_and(|t| now >= t) {
                r.flush()?;
            }
        }
        // A failed seal is an `error` record and a retry an interval later
        // (`AuditLog::seal_now`): no busy loop; only an unwritable trail
        // ends the session.
        if self.audit.seal_due().is_some_and(|t| now >= t) {
            self.audit.seal_now()?;
        }
        Ok(())
    }
    fn settle(&mut self, now: Instant) -> Result<Option<Release>, BooksError> {
        if !self.capture.settle(now, false, &mut self.found) {
            self.flush()?;
            return Ok(None);
        }
        // On disk before the Enter goes on (fail closed: an error here
        // ends the session with the Enter still held).
        self.decide().map(Some)
    }
    fn answer(&mut self, answer: Option<&str>) -> Result<(Release, Vec<u8>), BooksError> {
        // Below the question and its answer, the line as the target has
        // it, so that the Enter's echo and the output follow it; the
        // question stays on the screen as a block's notice does.
        let mut redraw = b"\r\n".to_vec();
        redraw.extend_from_slice(&self.capture.repaint_line());
        let Some(Asking { command, rule }) = self.asking.take() else {
            return Ok((Release::Forward, redraw));
        };
        if answer.map(str::trim) == Some(self.host) {
            self.write_policy(&command, &rule, Action::Confirm, PolicyOutcome::Confirmed)?;
            self.write_command(&command)?;
            return Ok((Release::Forward, redraw));
        }
        self.write_policy(&command, &rule, Action::Confirm, PolicyOutcome::Cancelled)?;
        self.capture.blocked(&command.text);
        Ok((
            Release::Block {
                cancel: CANCEL_LINE.to_vec(),
                notice: format!(
                    "gatehouse: not confirmed; the command did not run (policy \"{rule}\")"
                ),
                repaint: self.capture.repaint_line(),
            },
            // The notice goes below the answer, then the line.
            Vec::new(),
        ))
    }
}

pub struct Visit<'a> {
    pub audit: &'a mut AuditLog,
    pub user: &'a str,
    /// The operator and their groups, for `[[policy]]` rules.
    pub who: Who<'a>,
    pub policy: &'a CommandPolicy,
    pub settings: &'a Settings,
    pub signals: &'a SignalPipe,
    pub term: &'a str,
}

impl Visit<'_> {
    // long: one visit's records in the order they are written (error or
    // session_start, relay, session_end), each with its fail-closed exit:
    // read top to bottom, it is the record order of docs/audit-format.md.
    pub fn run(&mut self, host: &Host) -> Outcome {
        let session_id = uuid::Uuid::now_v7().to_string();
        let (cols, rows) = tty::window_size();
        let started = Instant::now();
        let pty = PtyRequest {
            term: self.term,
            cols,
            rows,
        };
        let signals = self.signals;
        // The config, the menu and the login are done with (and again
        // below for the key exchange): their code need not stay resident
        // for the session's life.
        crate::sys::forget_read_only_pages();
        let mut up = match upstream::connect(host, self.settings, &pty, &|| signals.must_leave()) {
            Ok(up) => up,
            Err(e) => {
                let detail = e.detail();
                let written = self.audit.write(&Event::Error {
                    reason: e.reason(),
                    detail: &detail,
                    session: Some(&session_id),
                    host: Some(&host.name),
                    host_key: e.fingerprint(),
                    batch: None,
                });
                if let Err(ae) = written {
                    return Outcome::Failed(report(ae.into()));
                }
                return Outcome::ConnectFailed(e);
            }
        };
        let recording = if self.settings.recording {
            let info = SessionInfo {
                session: &session_id,
                user: self.user,
                host: &host.name,
                term: self.term,
                cols,
                rows,
            };
            match Recorder::create(&self.settings.log_dir, &info, self.settings.record_input) {
                Ok(mut r) => {
                    r.set_limit(self.settings.max_recording);
                    Some(r)
                }
                Err(e) => {
                    let detail = e.to_string();
                    let _ = self.audit.write(&Event::Error {
                        reason: "recording_failed",
                        detail: &detail,
                        session: Some(&session_id),
                        host: Some(&host.name),
                        host_key: None,
                        batch: None,
                    });
                    return Outcome::Failed(report(e.into()));
                }
            }
        } else {
            None
        };
        let recording_path = recording.as_ref().map(|r| r.path().display().to_string());
        let boot_id = crate::audit::abandoned::boot_id();
        if let Err(e) = self.audit.write(&Event::SessionStart {
            session: &session_id,
            host: &host.name,
            target: format!("{}@{}:{}", host.user, host.address, host.port),
            host_key: &up.host_key,
            pid: std::process::id(),
            boot_id: boot_id.as_deref(),
            proc_start: crate::process::own_start(),
            term: self.term,
            cols,
            rows,
            recording: recording_path.as_deref(),
            auth: &up.auth,
        }) {
            return Outcome::Failed(report(e.into()));
        }

        // Visible to `gatehouse sessions` / `kill` until dropped.
        let _live = crate::live::register(
            &self.settings.log_dir,
            self.audit,
            self.user,
            &session_id,
            &host.name,
        );

        let mut rec = Bookkeeper {
            audit: self.audit,
            recording,
            capture: Capture::new(cols, rows),
            session: &session_id,
            host: &host.name,
            seq: 0,
            found: Vec::new(),
            policy: self.policy,
            who: self.who,
            host_cfg: host,
            asking: None,
        };
        crate::sys::forget_read_only_pages();
        let mut end = match RawMode::enter() {
            Ok(_raw) => relay::run(
                &mut up,
                self.signals,
                &RelayConfig {
                    idle_timeout: self.settings.idle_timeout,
                    keepalive: self.settings.keepalive_interval,
                },
                &mut rec,
            ),
            Err(e) => RelayEnd {
                reason: EndReason::Error,
                detail: Some(format!("cannot set the terminal to raw mode: {e}")),
                exit_status: None,
                exit_signal: None,
                bytes_in: 0,
                bytes_out: 0,
                books: None,
            },
        };
        rec.capture.finish(Instant::now(), &mut rec.found);
        let recorded = rec
            .recording
            .as_mut()
            .map_or(Ok(()), Recorder::flush)
            .map_err(BooksError::from);
        let flushed = rec.flush_late().and(recorded);
        let killed_by = (end.reason == EndReason::Killed)
            .then(crate::live::kill_note)
            .flatten()
            .map(|n| n.by);
        let written = self.audit.write(&Event::SessionEnd {
            session: &session_id,
            host: &host.name,
            exit_status: end.exit_status,
            exit_signal: end.exit_signal.as_deref(),
            reason: end.reason,
            detail: end.detail.as_deref(),
            by: killed_by.as_deref(),
            duration_ms: started.elapsed().as_millis() as u64,
            bytes_in: end.bytes_in,
            bytes_out: end.bytes_out,
        });
        // The first failure is what the admin needs; the rest follow from it.
        match (end.books.take(), flushed, written) {
            (Some(e), _, _) | (None, Err(e), _) => Outcome::Failed(report(e)),
            (None, Ok(()), Err(e)) => Outcome::Failed(report(e.into())),
            (None, Ok(()), Ok(())) => Outcome::Ended(end),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The pure parts of a visit, without a pty or a target: the operator's
    //! line and exit status for every way a visit ends, and the bookkeeper's
    //! records and relay decisions for `[[policy]]` rules (an audit file in
    //! a temp dir).
    use super::*;
    use crate::core::config::Config;

    const CONFIG: &str = r#"
[[hosts]]
name = "web01"
address = "127.0.0.1"
user = "deploy"
key = "/nonexistent/key"

[[access]]
users = ["alice"]
hosts = ["web01"]

[[policy]]
name = "no-rm"
action = "deny"
commands = ["^rm "]

[[policy]]
name = "ask-reboot"
action = "confirm"
commands = ["^reboot"]

[[policy]]
name = "watch-sudo"
action = "alert"
commands = ["^sudo "]
"#;

    fn ended(reason: EndReason, status: Option<i32>, signal: Option<&str>) -> Outcome {
        Outcome::Ended(RelayEnd {
            reason,
            detail: None,
            exit_status: status,
            exit_signal: signal.map(str::to_string),
            bytes_in: 0,
            bytes_out: 0,
            books: None,
        })
    }

    fn with_detail(reason: EndReason, detail: &str) -> Outcome {
        let Outcome::Ended(mut end) = ended(reason, None, None) else {
            unreachable!()
        };
        end.detail = Some(detail.to_string());
        Outcome::Ended(end)
    }

    #[test]
    fn operator_line_says_how_the_visit_ended() {
        let cases = [
            (
                ended(EndReason::Exit, Some(0), None),
                "Session on web01 ended.",
            ),
            (
                ended(EndReason::Exit, None, None),
                "Session on web01 ended.",
            ),
            (
                ended(EndReason::Exit, Some(3), None),
                "Session on web01 ended (exit status 3).",
            ),
            (
                ended(EndReason::Exit, None, Some("KILL")),
                "Session on web01 ended (killed by signal KILL).",
            ),
            (
                ended(EndReason::IdleTimeout, None, None),
                "Session on web01 closed: idle for too long.",
            ),
            (
                with_detail(EndReason::Disconnect, relay::ESCAPE_DETAIL),
                "Disconnected from web01.",
            ),
            (
                with_detail(EndReason::Disconnect, "connection lost: reset"),
                "Connection to web01 lost.",
            ),
            (
                ended(EndReason::Hangup, None, None),
                "Session on web01 hung up.",
            ),
            (
                with_detail(EndReason::Killed, "maintenance"),
                "Session on web01 was ended by an administrator: maintenance.",
            ),
            (
                ended(EndReason::Killed, None, None),
                "Session on web01 was ended by an administrator: no reason given.",
            ),
            (
                with_detail(EndReason::Error, "poll: EBADF"),
                "Session on web01 ended: poll: EBADF.",
            ),
            (
                ended(EndReason::Error, None, None),
                "Session on web01 ended: error.",
            ),
            (
                Outcome::Failed("the audit trail failed".into()),
                "the audit trail failed",
            ),
        ];
        for (outcome, want) in cases {
            assert_eq!(outcome.operator_line("web01"), want);
        }
    }

    #[test]
    fn exit_code_is_the_targets_status_or_255() {
        assert_eq!(ended(EndReason::Exit, Some(0), None).exit_code(), 0);
        assert_eq!(ended(EndReason::Exit, Some(7), None).exit_code(), 7);
        // Killed by a signal, or no status at all: what ssh exits with.
        assert_eq!(
            ended(EndReason::Exit, Some(0), Some("TERM")).exit_code(),
            255
        );
        assert_eq!(ended(EndReason::Exit, None, None).exit_code(), 255);
        assert_eq!(Outcome::Failed("x".into()).exit_code(), 255);
    }

    /// A bookkeeper over `CONFIG` writing to `<dir>/alice.jsonl`; `check`
    /// gets it and the records written so far.
    fn with_books(check: impl FnOnce(&mut Bookkeeper<'_>, &dyn Fn() -> Vec<serde_json::Value>)) {
        let dir = tempfile::tempdir().unwrap();
        let config =
            Config::parse(std::path::Path::new("/etc/gatehouse/config.toml"), CONFIG).unwrap();
        let host = config.host("web01").unwrap();
        let mut audit = AuditLog::open(dir.path(), "alice", "L1", "local").unwrap();
        let groups = Vec::new();
        let mut books = Bookkeeper {
            audit: &mut audit,
            recording: None,
            capture: Capture::new(80, 24),
            session: "S1",
            host: "web01",
            seq: 0,
            found: Vec::new(),
            policy: &config.policy,
            who: Who {
                user: "alice",
                groups: &groups,
            },
            host_cfg: host,
            asking: None,
        };
        let path = dir.path().join("alice.jsonl");
        let records = move || {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        check(&mut books, &records);
    }

    fn typed(text: &str) -> capture::Record {
        capture::Record::Command(capture::Command {
            text: text.to_string(),
            truncated: false,
            length: text.len(),
            verified: true,
            source: capture::Source::Keys,
            also: None,
        })
    }

    fn summary(records: &[serde_json::Value]) -> Vec<String> {
        records
            .iter()
            .map(|r| match r["event"].as_str().unwrap() {
                "command" => format!("command {} #{}", r["command"], r["seq"]),
                "policy" => format!("policy {} {} {}", r["rule"], r["action"], r["outcome"]),
                "input_hidden" => format!("input_hidden #{}", r["seq"]),
                other => other.to_string(),
            })
            .collect()
    }

    #[test]
    fn an_allowed_command_is_recorded_and_forwarded() {
        with_books(|books, records| {
            books.found.push(typed("ls -la"));
            assert!(matches!(books.decide().unwrap(), Release::Forward));
            assert_eq!(summary(&records()), ["command \"ls -la\" #1"]);
        });
    }

    #[test]
    fn an_alert_rule_records_the_policy_then_the_command_and_forwards() {
        with_books(|books, records| {
            books.found.push(typed("sudo id"));
            assert!(matches!(books.decide().unwrap(), Release::Forward));
            assert_eq!(
                summary(&records()),
                [
                    "policy \"watch-sudo\" \"alert\" \"allowed\"",
                    "command \"sudo id\" #1"
                ]
            );
        });
    }

    #[test]
    fn a_denied_command_is_blocked_with_a_policy_record_and_no_command_record() {
        with_books(|books, records| {
            books.found.push(typed("rm -rf /srv"));
            match books.decide().unwrap() {
                Release::Block { cancel, notice, .. } => {
                    assert_eq!(cancel, CANCEL_LINE);
                    assert!(notice.contains("no-rm"), "{notice}");
                }
                _ => panic!("a denied command must be blocked"),
            }
            assert_eq!(
                summary(&records()),
                ["policy \"no-rm\" \"deny\" \"blocked\""]
            );
        });
    }

    #[test]
    fn a_confirm_rule_asks_and_the_host_name_runs_it() {
        with_books(|books, records| {
            books.found.push(typed("reboot"));
            match books.decide().unwrap() {
                Release::Ask { question } => assert!(question.contains("(web01)"), "{question}"),
                _ => panic!("a confirm rule must ask"),
            }
            // Nothing is on record until the operator answers.
            assert!(records().is_empty());
            let (release, _) = books.answer(Some(" web01 ")).unwrap();
            assert!(matches!(release, Release::Forward));
            assert_eq!(
                summary(&records()),
                [
                    "policy \"ask-reboot\" \"confirm\" \"confirmed\"",
                    "command \"reboot\" #1"
                ]
            );
        });
    }

    #[test]
    fn a_confirm_rule_with_another_answer_or_none_blocks_it() {
        for answer in [Some("web02"), None] {
            with_books(|books, records| {
                books.found.push(typed("reboot"));
                assert!(matches!(books.decide().unwrap(), Release::Ask { .. }));
                match books.answer(answer).unwrap().0 {
                    Release::Block { cancel, notice, .. } => {
                        assert_eq!(cancel, CANCEL_LINE);
                        assert!(notice.contains("not confirmed"), "{notice}");
                    }
                    _ => panic!("an unconfirmed command must be blocked ({answer:?})"),
                }
                assert_eq!(
                    summary(&records()),
                    ["policy \"ask-reboot\" \"confirm\" \"cancelled\""]
                );
            });
        }
    }

    #[test]
    fn an_answer_with_nothing_asked_forwards_and_records_nothing() {
        with_books(|books, records| {
            let (release, _) = books.answer(Some("web01")).unwrap();
            assert!(matches!(release, Release::Forward));
            assert!(records().is_empty());
        });
    }

    #[test]
    fn hidden_input_and_commands_share_one_sequence() {
        with_books(|books, records| {
            books.found.push(typed("passwd"));
            books.found.push(capture::Record::Hidden {
                prompt: "New password:".into(),
            });
            books.found.push(typed("ls"));
            assert!(matches!(books.decide().unwrap(), Release::Forward));
            assert_eq!(
                summary(&records()),
                [
                    "command \"passwd\" #1",
                    "input_hidden #2",
                    "command \"ls\" #3"
                ]
            );
        });
    }
}
