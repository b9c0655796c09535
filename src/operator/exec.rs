//! Automation: `HOST -- COMMAND` on an exec channel, and the byte pump that
//! file transfer (src/operator/sftp.rs) shares with it.
//!
//! One poll(2) loop, like the interactive relay (src/operator/relay.rs), with the
//! same libssh2 rules: drain the channel until WouldBlock before polling
//! (libssh2 may hold decrypted data while the socket is not readable); poll
//! the socket for exactly the directions `block_directions()` reports;
//! `read` → `Ok(0)` is end-of-file only when `eof()` says so; a channel
//! write may be partial or refused, so unsent bytes wait in our own bounded
//! buffer and a full buffer stops stdin reads (backpressure).
//!
//! What differs from the interactive relay:
//! - stdout and stderr stay apart (`ExtendedData::Normal`): both streams
//!   are drained every turn, since they share one window and an unread
//!   stderr would stall stdout;
//! - bytes are bytes: no escapes, no capture, no terminal unless the
//!   operator has one (`ssh -t`, then the target gets a pty too);
//! - EOF on stdin is passed on (`send_eof`), and the session lasts until the
//!   target *closes* the channel, not until its EOF: a command that closes
//!   its output early still gets its stdin and reports its exit status, as
//!   with `ssh`;
//! - the target's exit status becomes ours; a command killed by a signal
//!   gives 255, which is what the OpenSSH client exits with (it ignores
//!   `exit-signal`).
//!
//! Writes to our stdout and stderr block, as in the relay: those
//! descriptors belong to sshd and stay blocking, and a slow reader on the
//! operator's side stops our channel reads, which closes the SSH window to
//! the target. Memory stays bounded by the channel window plus our buffers.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ssh2::BlockDirections;

use crate::audit::{AuditLog, EndReason, Event};
use crate::core::command_policy::{Action, CommandPolicy, Who};
use crate::core::config::{Host, Settings};
use crate::core::record::PolicyOutcome;
use crate::operator::error::FailClosed;
use crate::operator::upstream::{
    self, is_eagain, lapsed, ConnectError, PtyRequest, Start, Upstream,
};
use crate::recording::{Recorder, SessionInfo};
use crate::sys::{Sig, SignalPipe};
use crate::tty::{self, RawMode};

/// Operator bytes waiting for the remote window. Larger than one SFTP
/// packet (256 KiB) plus one read, so a whole packet always fits.
const TO_REMOTE_CAP: usize = 320 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Keepalives without any answer before the target counts as gone
/// (OpenSSH's ServerAliveCountMax default).
pub(crate) const MISSED_KEEPALIVES: u32 = 3;
/// The exit status of a command that died of a signal, or of a session
/// that ended without a status: what the OpenSSH client exits with.
pub const NO_STATUS: i32 = 255;

/// Watches (and may stop) the bytes of a stream as they pass: the SFTP
/// parser for transfers. It returns what may be forwarded; an `Err` ends
/// the stream with an `error` (`reason`, `detail`) instead of relaying blind.
pub trait Tap {
    fn to_target(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TapError>;
    fn to_operator(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TapError>;
    /// The operator's terminal changed size (pty sessions only).
    fn resize(&mut self, _cols: u16, _rows: u16) -> Result<(), TapError> {
        Ok(())
    }
    /// When the tap wants a turn even if no byte passes (a recording's
    /// pending events, `Recorder::flush_due`).
    fn timer(&self) -> Option<Instant> {
        None
    }
    /// That time came; also called once as the stream ends.
    fn on_timer(&mut self) -> Result<(), TapError> {
        Ok(())
    }
}

/// A command with a pty (`ssh -t bastion 'web01 -- top'`) is a terminal
/// session: it is recorded (asciicast) like a visit, when recording is on.
struct RecordingTap(Recorder);

fn recording_error(e: &crate::recording::RecordingError) -> TapError {
    TapError {
        reason: "recording_failed",
        detail: "the session recording cannot be written".into(),
        admin: Some(e.to_string()),
    }
}

impl Tap for RecordingTap {
    fn to_target(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TapError> {
        self.0.input(data).map_err(|e| recording_error(&e))?;
        out.extend_from_slice(data);
        Ok(())
    }
    fn to_operator(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TapError> {
        out.extend_from_slice(data);
        self.0.output(data).map_err(|e| recording_error(&e))
    }
    fn resize(&mut self, cols: u16, rows: u16) -> Result<(), TapError> {
        self.0.resize(cols, rows).map_err(|e| recording_error(&e))
    }
    fn timer(&self) -> Option<Instant> {
        self.0.flush_due()
    }
    fn on_timer(&mut self) -> Result<(), TapError> {
        self.0.flush().map_err(|e| recording_error(&e))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapError {
    /// The `reason` of the `error` record (`sftp_protocol`, `audit_failed`).
    pub reason: &'static str,
    /// The `detail` of the `error` record, and what the operator reads.
    pub detail: String,
    /// The admin's fuller detail (a path, an errno) when `detail` leaves
    /// it out: for syslog, written where the stream's end is handled
    /// (`Exec::run`), not where the error is made.
    pub admin: Option<String>,
}

#[derive(Debug)]
pub struct StreamEnd {
    pub reason: EndReason,
    pub detail: Option<String>,
    /// Set when a tap stopped the stream.
    pub tap_error: Option<TapError>,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl StreamEnd {
    /// What Gatehouse exits with, as `ssh` would.
    pub fn exit_code(&self) -> i32 {
        match (self.exit_status, &self.exit_signal) {
            (Some(s), None) if self.reason == EndReason::Exit => s,
            _ => NO_STATUS,
        }
    }
}

/// Writes all of `data` to a blocking descriptor of sshd's (see the header).
/// A signal interrupts a write the operator's side does not take (they
/// stopped reading), with `EINTR` or, when some bytes went, a short count:
/// `must_stop` then says whether to give up (a hang-up, or an
/// administrator's kill) with `EINTR`, or to go on writing.
pub(crate) fn write_all_fd(
    fd: BorrowedFd<'_>,
    mut data: &[u8],
    must_stop: &dyn Fn() -> bool,
) -> Result<(), Errno> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => {
                data = &data[n..];
                if !data.is_empty() && must_stop() {
                    return Err(Errno::EINTR);
                }
            }
            Err(Errno::EINTR) if must_stop() => return Err(Errno::EINTR),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                // Someone made it non-blocking; wait instead of spinning.
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                if poll(&mut fds, PollTimeout::NONE) == Err(Errno::EINTR) && must_stop() {
                    return Err(Errno::EINTR);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a write to the operator that a signal interrupted should give
/// up: the session is leaving (SIGHUP, SIGTERM) or an administrator asked
/// it to end (SIGUSR1 came, and the note is there; `live::kill_note`). A
/// short write with no signal costs two atomic loads.
pub(crate) fn stop_writing(signals: &SignalPipe) -> bool {
    signals.must_leave() || (signals.kill_pending() && crate::live::kill_note().is_some())
}

/// How a session ends whose write to the operator failed: killed, when
/// an administrator's note is there (the write was given up for it);
/// else the operator is gone. The interactive relay's too.
pub(crate) fn write_failed(what: &str, e: Errno) -> (EndReason, String) {
    match crate::live::kill_note() {
        Some(note) => (EndReason::Killed, note.reason),
        None => (EndReason::Hangup, format!("{what}: {e}")),
    }
}

/// Bytes for the channel, sent from an offset so a partial write costs no
/// copy; the buffer is compacted only when more must fit.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    start: usize,
}

impl Pending {
    fn len(&self) -> usize {
        self.buf.len() - self.start
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes the buffer hold only unsent bytes, ready to be appended to.
    fn compact(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        &mut self.buf
    }
    /// Writes as much as the remote window takes; the rest waits.
    fn flush(&mut self, channel: &mut ssh2::Channel) -> io::Result<u64> {
        let mut sent = 0u64;
        while self.start < self.buf.len() {
            match channel.write(&self.buf[self.start..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.start += n;
                    sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(sent)
    }
}

pub(crate) fn timeout_until(deadline: Instant, now: Instant) -> PollTimeout {
    let ms = deadline.saturating_duration_since(now).as_millis();
    // Round up so we never wake just before the deadline and spin.
    PollTimeout::try_from((ms + 1).min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
}

pub struct StreamConfig {
    /// No bytes from the operator for this long ends the stream (terminal
    /// sessions and sftp; see `Exec::run`).
    pub idle_timeout: Option<Duration>,
    pub keepalive: Duration,
    /// The operator has a terminal and the target a pty: pass window sizes.
    pub pty: bool,
}

/// Why the pump stops early: the `session_end` reason and its detail.
type Stop = (EndReason, String);

fn lost(e: &dyn std::fmt::Display) -> Stop {
    (EndReason::Disconnect, format!("connection lost: {e}"))
}

/// Pumps stdin → channel, channel stdout → stdout, channel stderr →
/// stderr until the target closes the channel (or something ends it).
pub fn pump(
    up: &mut Upstream,
    signals: &SignalPipe,
    cfg: &StreamConfig,
    tap: Option<&mut dyn Tap>,
) -> StreamEnd {
    up.session.set_blocking(false);
    // `gatehouse kill` must reach a pump blocked writing to an operator who
    // stopped reading (see `write_all_fd`).
    if let Err(e) = signals.interrupt_on_kill() {
        crate::report::syslog(&format!("cannot set up SIGUSR1: {e}"));
    }
    let now = Instant::now();
    let mut p = Pump {
        up,
        signals,
        cfg,
        tap,
        end: StreamEnd {
            reason: EndReason::Exit,
            detail: None,
            tap_error: None,
            exit_status: None,
            exit_signal: None,
            bytes_in: 0,
            bytes_out: 0,
        },
        stdin: io::stdin(),
        stdout: io::stdout(),
        stderr: io::stderr(),
        buf: vec![0u8; READ_CHUNK],
        in_buf: vec![0u8; READ_CHUNK],
        tapped: Vec::new(),
        to_remote: Pending::default(),
        stdin_open: true,
        eof_sent: false,
        remote_eof: false,
        pending_resize: None,
        last_input: now,
        next_keepalive: now + cfg.keepalive,
        silence_limit: cfg.keepalive * MISSED_KEEPALIVES,
        last_rx: now,
    };
    let outcome = loop {
        match p.turn() {
            Ok(false) => {}
            Ok(true) => break Ok(()),
            Err(stop) => break Err(stop),
        }
    };
    p.wind_down(outcome)
}

/// The pump's state between turns of its loop.
struct Pump<'a, 't> {
    up: &'a mut Upstream,
    signals: &'a SignalPipe,
    cfg: &'a StreamConfig,
    tap: Option<&'t mut dyn Tap>,
    end: StreamEnd,
    stdin: io::Stdin,
    stdout: io::Stdout,
    stderr: io::Stderr,
    /// Channel reads.
    buf: Vec<u8>,
    /// stdin reads.
    in_buf: Vec<u8>,
    /// What the tap lets through to the operator.
    tapped: Vec<u8>,
    to_remote: Pending,
    stdin_open: bool,
    eof_sent: bool,
    remote_eof: bool,
    /// A window size the channel refused with EAGAIN, to retry.
    pending_resize: Option<(u16, u16)>,
    last_input: Instant,
    next_keepalive: Instant,
    silence_limit: Duration,
    last_rx: Instant,
}

impl Pump<'_, '_> {
    /// One turn of the loop; `Ok(true)` when the target closed the channel.
    fn turn(&mut self) -> Result<bool, Stop> {
        if self.drain()? {
            return Ok(true);
        }
        self.flush()?;
        let now = Instant::now();
        self.housekeeping(now)?;
        if let Some(t) = self.tap.as_deref_mut() {
            if t.timer().is_some_and(|due| now >= due) {
                if let Err(e) = t.on_timer() {
                    return Err(self.tap_failed(e));
                }
            }
        }
        let (sig_ready, stdin_ready) = self.wait(now)?;
        if sig_ready || self.signals.must_leave() {
            self.on_signals()?;
        }
        if stdin_ready {
            self.read_stdin()?;
        }
        Ok(false)
    }

    /// A tap refused bytes: the stream ends with its error.
    fn tap_failed(&mut self, e: TapError) -> Stop {
        let d = e.detail.clone();
        self.end.tap_error = Some(e);
        (EndReason::Error, d)
    }

    /// 1. Drain both streams until libssh2 would block. `Ok(true)` when
    ///    the target is done.
    fn drain(&mut self) -> Result<bool, Stop> {
        loop {
            match self.up.channel.read(&mut self.buf) {
                Ok(0) => {
                    if self.up.channel.eof() {
                        self.remote_eof = true;
                    }
                    break;
                }
                Ok(n) => {
                    self.last_rx = Instant::now();
                    let data = match self.tap.as_deref_mut() {
                        None => &self.buf[..n],
                        Some(t) => {
                            self.tapped.clear();
                            if let Err(e) = t.to_operator(&self.buf[..n], &mut self.tapped) {
                                return Err(self.tap_failed(e));
                            }
                            &self.tapped[..]
                        }
                    };
                    let must_stop = || stop_writing(self.signals);
                    if let Err(e) = write_all_fd(self.stdout.as_fd(), data, &must_stop) {
                        return Err(write_failed("operator's stdout", e));
                    }
                    self.end.bytes_out += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(lost(&e)),
            }
        }
        loop {
            match self.up.channel.stderr().read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.last_rx = Instant::now();
                    let must_stop = || stop_writing(self.signals);
                    if let Err(e) = write_all_fd(self.stderr.as_fd(), &self.buf[..n], &must_stop) {
                        return Err(write_failed("operator's stderr", e));
                    }
                    self.end.bytes_out += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(lost(&e)),
            }
        }
        // The target sent EOF: done once it also closes the channel (the
        // exit status comes before the close).
        if self.remote_eof {
            match self.up.channel.wait_close() {
                Ok(()) => return Ok(true),
                Err(e) if is_eagain(&e) => {}
                Err(e) => return Err(lost(&e)),
            }
        }
        Ok(false)
    }

    /// 2. Flush the operator's bytes as far as the window allows; pass
    ///    their EOF on once everything before it is out.
    fn flush(&mut self) -> Result<(), Stop> {
        match self.to_remote.flush(&mut self.up.channel) {
            Ok(n) => self.end.bytes_in += n,
            // The command ended its side: the rest of stdin has nowhere to
            // go, as with ssh (`yes | ssh host 'head -c 10'` exits 0).
            Err(_) if self.up.channel.eof() => {
                self.to_remote = Pending::default();
                self.stdin_open = false;
                self.eof_sent = true;
            }
            Err(e) => return Err(lost(&e)),
        }
        if !self.stdin_open && !self.eof_sent && self.to_remote.is_empty() {
            match self.up.channel.send_eof() {
                Ok(()) => self.eof_sent = true,
                Err(e) if is_eagain(&e) => {}
                Err(e) => return Err(lost(&e)),
            }
        }
        Ok(())
    }

    /// 3. Requests refused with EAGAIN earlier, liveness, idleness.
    fn housekeeping(&mut self, now: Instant) -> Result<(), Stop> {
        self.up
            .upkeep(&mut self.pending_resize, &mut self.next_keepalive, now)
            .map_err(|e| lost(&e))?;
        match lapsed(
            now,
            (self.last_rx, self.silence_limit),
            (self.last_input, self.cfg.idle_timeout),
        ) {
            Some(end) => Err(end),
            None => Ok(()),
        }
    }

    /// 4. Wait. stdin is left out while its buffer is full (backpressure)
    ///    and after its EOF. Returns (a signal is pending, stdin is ready).
    fn wait(&mut self, now: Instant) -> Result<(bool, bool), Stop> {
        let dirs = self.up.session.block_directions();
        let mut sock_flags = PollFlags::POLLIN;
        if matches!(dirs, BlockDirections::Outbound | BlockDirections::Both) {
            sock_flags |= PollFlags::POLLOUT;
        }
        let want_stdin = self.stdin_open && self.to_remote.len() < TO_REMOTE_CAP;
        // stdout with no events: poll still reports POLLHUP/POLLERR, which
        // is how we learn that the operator's connection is gone while
        // the command is silent (else we would wait for it to print).
        let mut all = [
            PollFd::new(self.up.socket.as_fd(), sock_flags),
            PollFd::new(self.signals.fd(), PollFlags::POLLIN),
            PollFd::new(self.stdout.as_fd(), PollFlags::empty()),
            PollFd::new(self.stdin.as_fd(), PollFlags::POLLIN),
        ];
        let fds = &mut all[..if want_stdin { 4 } else { 3 }];
        let mut deadline = self.next_keepalive.min(self.last_rx + self.silence_limit);
        if let Some(idle) = self.cfg.idle_timeout {
            deadline = deadline.min(self.last_input + idle);
        }
        if let Some(t) = self.tap.as_deref().and_then(|t| t.timer()) {
            deadline = deadline.min(t);
        }
        match poll(fds, timeout_until(deadline, now)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err((EndReason::Error, format!("poll: {e}"))),
        }
        let socket_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let sig_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        let operator_gone = fds[2]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
        let stdin_ready = want_stdin && fds[3].revents().is_some_and(|r| !r.is_empty());
        if socket_ready {
            self.last_rx = Instant::now();
        }
        if operator_gone {
            return Err((EndReason::Hangup, "the operator's connection closed".into()));
        }
        Ok((sig_ready, stdin_ready))
    }

    /// 5. Signals.
    fn on_signals(&mut self) -> Result<(), Stop> {
        for s in self.signals.take_pending() {
            match s {
                Sig::Hangup => return Err((EndReason::Hangup, "SIGHUP".into())),
                Sig::Terminate => return Err((EndReason::Hangup, "SIGTERM".into())),
                Sig::WindowChange if self.cfg.pty => {
                    let (c, r) = tty::window_size();
                    self.pending_resize = Some((c, r));
                    if let Some(t) = self.tap.as_deref_mut() {
                        if let Err(e) = t.resize(c, r) {
                            return Err(self.tap_failed(e));
                        }
                    }
                }
                Sig::WindowChange => {}
                // `gatehouse kill`: only with the admin's note (live.rs).
                Sig::Kill => {
                    if let Some(note) = crate::live::kill_note() {
                        return Err((EndReason::Killed, note.reason));
                    }
                }
            }
        }
        Ok(())
    }

    /// 6. stdin.
    fn read_stdin(&mut self) -> Result<(), Stop> {
        let room = TO_REMOTE_CAP - self.to_remote.len();
        let want = room.min(self.in_buf.len());
        match nix::unistd::read(self.stdin.as_fd(), &mut self.in_buf[..want]) {
            Ok(0) => self.stdin_open = false,
            Ok(n) => {
                self.last_input = Instant::now();
                let out = self.to_remote.compact();
                match self.tap.as_deref_mut() {
                    None => out.extend_from_slice(&self.in_buf[..n]),
                    Some(t) => {
                        if let Err(e) = t.to_target(&self.in_buf[..n], out) {
                            return Err(self.tap_failed(e));
                        }
                    }
                }
                // Send at once (latency); the rest waits for the window
                // (an error is looked at in step 2 of the next turn).
                if let Ok(n) = self.to_remote.flush(&mut self.up.channel) {
                    self.end.bytes_in += n;
                }
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
            // A stdin that cannot be read (closed, EIO after a hang-up)
            // is an EOF to the target.
            Err(_) => self.stdin_open = false,
        }
        Ok(())
    }

    /// Wind down in blocking mode, bounded, so a dead target cannot hang us.
    fn wind_down(self, outcome: Result<(), Stop>) -> StreamEnd {
        let Pump {
            up, mut end, tap, ..
        } = self;
        // The tap's last turn (a recording's pending events); a failure is
        // recorded as the stream's error unless it already has one.
        if let Some(Err(e)) = tap.map(|t| t.on_timer()) {
            end.tap_error.get_or_insert(e);
        }
        up.session.set_blocking(true);
        up.session.set_timeout(3000);
        match outcome {
            Ok(()) => match up.channel.exit_signal() {
                Ok(sig) if sig.exit_signal.is_some() => end.exit_signal = sig.exit_signal,
                _ => end.exit_status = up.channel.exit_status().ok(),
            },
            Err((reason, detail)) => {
                end.reason = reason;
                end.detail = Some(detail);
                if reason != EndReason::Disconnect {
                    let _ = up.channel.close();
                }
            }
        }
        let _ = up.session.disconnect(
            Some(ssh2::DisconnectCode::ByApplication),
            "session over",
            None,
        );
        end
    }
}

/// One `HOST -- COMMAND` run, records included.
pub struct Exec<'a> {
    pub audit: &'a mut AuditLog,
    /// The operator's name (recordings are filed under it).
    pub user: &'a str,
    pub settings: &'a Settings,
    pub signals: &'a SignalPipe,
    pub term: &'a str,
    /// `[[policy]]` rules apply to exec commands as to typed ones.
    pub policy: &'a CommandPolicy,
    pub who: Who<'a>,
}

/// How an exec or a transfer went, for the operator and the exit status.
pub enum ExecOutcome {
    Ended(StreamEnd),
    ConnectFailed(ConnectError),
    /// A record or the recording could not be written (fail closed).
    Failed(FailClosed),
    /// A `[[policy]]` rule stopped the command before anything was
    /// connected; the line is for the operator.
    Blocked(String),
}

impl ExecOutcome {
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecOutcome::Ended(end) => end.exit_code(),
            // As ssh: 255 when the connection could not be made.
            ExecOutcome::ConnectFailed(_) => NO_STATUS,
            ExecOutcome::Failed(_) | ExecOutcome::Blocked(_) => 1,
        }
    }

    /// The line the operator reads on stderr, if any. A command that ran
    /// gets none, whatever its status: scripts read stderr.
    pub fn operator_line(&self, host: &str) -> Option<String> {
        match self {
            ExecOutcome::Ended(end) => match end.reason {
                EndReason::Exit => None,
                EndReason::Disconnect => Some(format!("connection to {host} lost.")),
                EndReason::IdleTimeout => Some(format!("{host}: idle for too long; closed.")),
                EndReason::Hangup => None,
                EndReason::Killed => Some(format!(
                    "{host}: ended by an administrator: {}.",
                    end.detail.as_deref().unwrap_or("no reason given")
                )),
                EndReason::Error | EndReason::Abandoned => Some(format!(
                    "{host}: stopped: {}.",
                    end.detail.as_deref().unwrap_or("error")
                )),
            },
            ExecOutcome::ConnectFailed(e) => Some(e.operator_line(host)),
            ExecOutcome::Failed(e) => Some(e.operator_line().to_string()),
            ExecOutcome::Blocked(m) => Some(m.clone()),
        }
    }
}

/// `[[policy]]` for a command about to run on `host` without a terminal,
/// before anything is connected. The requested text is exactly what the
/// target's shell gets (`verified`). There is no terminal to ask a
/// `confirm` question on: it is cancelled, and says how to run the command
/// instead. A match is recorded (`policy`, under `session`).
///
/// `Ok(None)`: go on (no rule, or an alert). `Ok(Some(line))`: stopped;
/// the line is for the operator (without `gatehouse: `). `Err`: the
/// record could not be written (fail closed).
pub(crate) fn policy_gate(
    audit: &mut AuditLog,
    policy: &CommandPolicy,
    who: &Who<'_>,
    host: &Host,
    session: &str,
    command: &str,
) -> Result<Option<String>, FailClosed> {
    let Some((rule, action, line)) = policy
        .decide(who, host, command, true)
        .map(|d| (d.rule.to_string(), d.action, d.operator_line()))
    else {
        return Ok(None);
    };
    let line = line
        .strip_prefix("gatehouse: ")
        .unwrap_or(&line)
        .to_string();
    let outcome = match action {
        Action::Deny => PolicyOutcome::Blocked,
        Action::Confirm => PolicyOutcome::Cancelled,
        Action::Alert => PolicyOutcome::Allowed,
    };
    let (recorded, length) = crate::core::invocation::recorded_command(command);
    audit.write(&Event::Policy {
        session,
        host: &host.name,
        rule: &rule,
        action,
        outcome,
        command: &recorded,
        truncated: length.is_some(),
        length,
    })?;
    Ok(match action {
        Action::Deny => Some(line),
        Action::Confirm => Some(format!(
            "{line}; it cannot be confirmed without a session: run it in an interactive session on {}",
            host.name
        )),
        Action::Alert => None,
    })
}

/// What starts on the target.
#[derive(Debug, Clone, Copy)]
pub enum Job<'a> {
    Command(&'a str),
    Sftp,
}

impl Exec<'_> {
    /// Connects, writes `exec`, pumps, writes `session_end`. Every record
    /// is written before what it announces goes on; one that cannot be
    /// written stops the run (fail closed).
    // long: the records in the order they are written (exec, stream,
    // session_end), each with its fail-closed exit; the stream is `Pump`.
    pub fn run(&mut self, host: &Host, job: Job<'_>) -> ExecOutcome {
        let session_id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        // A pty only for a command, and only when the operator has a
        // terminal (`ssh -t`), as ssh decides.
        let pty = matches!(job, Job::Command(_)) && tty::is_interactive();
        let (cols, rows) = tty::window_size();
        let pty_req = PtyRequest {
            term: self.term,
            cols,
            rows,
        };
        let start = match job {
            Job::Command(command) => Start::Exec {
                command,
                pty: pty.then_some(&pty_req),
            },
            Job::Sftp => Start::Subsystem("sftp"),
        };
        let (command, length) = match job {
            Job::Command(c) => crate::core::invocation::recorded_command(c),
            Job::Sftp => ("sftp".to_string(), None),
        };
        // `[[policy]]`, before anything is connected.
        if let Job::Command(c) = job {
            match policy_gate(self.audit, self.policy, &self.who, host, &session_id, c) {
                Ok(None) => {}
                Ok(Some(line)) => return ExecOutcome::Blocked(line),
                Err(m) => return ExecOutcome::Failed(m),
            }
        }
        let boot_id = crate::audit::abandoned::boot_id();
        let signals = self.signals;
        let audit = &mut *self.audit;
        let settings = self.settings;
        let user = self.user;
        let term = self.term;
        let mut recorder: Option<Recorder> = None;
        let mut recorded = false;
        // The `exec` record (and a pty session's recording) is made once
        // the target is verified and logged in to, and before the command
        // starts there.
        let mut record_exec = |host_key: &str, auth: &str| {
            if pty && settings.recording {
                let info = SessionInfo {
                    session: &session_id,
                    user,
                    host: &host.name,
                    term,
                    cols,
                    rows,
                };
                recorder = Some(start_recording(audit, settings, &info)?);
            }
            let recording = recorder.as_ref().map(|r| r.path().display().to_string());
            recorded = true;
            audit
                .write(&Event::Exec {
                    recording: recording.as_deref(),
                    session: &session_id,
                    host: &host.name,
                    command: &command,
                    truncated: length.is_some(),
                    length,
                    subsystem: matches!(job, Job::Sftp).then_some("sftp"),
                    pty,
                    batch: None,
                    target: format!("{}@{}:{}", host.user, host.address, host.port),
                    host_key,
                    auth: Some(auth),
                    pid: std::process::id(),
                    boot_id: boot_id.as_deref(),
                })
                .map_err(FailClosed::Audit)
        };
        // As for an interactive session (src/operator/session.rs): the
        // code of the start, then of the key exchange, leaves the
        // resident set before the bytes flow.
        crate::sys::forget_read_only_pages();
        let connected = upstream::connect_to(
            host,
            self.settings,
            &start,
            &|| signals.must_leave(),
            &mut record_exec,
        );
        let mut up = match connected {
            Ok(up) => up,
            Err(ConnectError::Vetoed(m)) => return ExecOutcome::Failed(m),
            Err(e) => return self.connect_failed(e, &session_id, host, recorded, started),
        };
        // Visible to `gatehouse sessions` / `kill` from the `exec` record
        // until this returns: after `session_end` on every way out (a
        // `kill -9` leaves the entry to the readers' process check).
        let what = match job {
            Job::Command(_) => crate::live::Activity::Exec {
                host: &host.name,
                command: &command,
            },
            Job::Sftp => crate::live::Activity::Transfer { host: &host.name },
        };
        let _live = crate::live::register_activity(
            &self.settings.log_dir,
            self.audit,
            self.user,
            &session_id,
            what,
        );
        let end = match self.stream(&mut up, job, pty, recorder, &session_id, host) {
            Ok(end) => end,
            Err(outcome) => return outcome,
        };
        self.close(end, &session_id, host, started)
    }

    /// Connecting failed: the error record, and `session_end` when `exec`
    /// was already written (`recorded`).
    fn connect_failed(
        &mut self,
        e: ConnectError,
        session_id: &str,
        host: &Host,
        recorded: bool,
        started: Instant,
    ) -> ExecOutcome {
        let detail = e.detail();
        let mut written = self.audit.write(&Event::Error {
            reason: e.reason(),
            detail: &detail,
            session: Some(session_id),
            host: Some(&host.name),
            host_key: e.fingerprint(),
            batch: None,
        });
        // The target refused the command after `exec` was written
        // (no such subsystem, exec refused): close what was opened.
        if recorded && written.is_ok() {
            written = self.audit.write(&Event::SessionEnd {
                session: session_id,
                host: &host.name,
                exit_status: None,
                exit_signal: None,
                reason: EndReason::Error,
                detail: Some(&detail),
                duration_ms: started.elapsed().as_millis() as u64,
                bytes_in: 0,
                bytes_out: 0,
                by: None,
            });
        }
        if let Err(ae) = written {
            return ExecOutcome::Failed(ae.into());
        }
        ExecOutcome::ConnectFailed(e)
    }

    /// Pumps the job's streams through the right tap (a pty command's
    /// recording, sftp's audit) until the target is done.
    // `Err` is the run's outcome, returned once straight up to `run`: a
    // box would only move the same bytes through the heap.
    #[allow(clippy::result_large_err)]
    fn stream(
        &mut self,
        up: &mut Upstream,
        job: Job<'_>,
        pty: bool,
        recorder: Option<Recorder>,
        session_id: &str,
        host: &Host,
    ) -> Result<StreamEnd, ExecOutcome> {
        let cfg = StreamConfig {
            // A terminal session or an sftp prompt can be walked away
            // from; a command without a terminal may rightly run for hours
            // without reading stdin.
            idle_timeout: if pty || matches!(job, Job::Sftp) {
                self.settings.idle_timeout
            } else {
                None
            },
            keepalive: self.settings.keepalive_interval,
            pty,
        };
        crate::sys::forget_read_only_pages();
        Ok(match job {
            Job::Command(_) if pty => match RawMode::enter() {
                Ok(_raw) => match recorder {
                    Some(r) => pump(up, self.signals, &cfg, Some(&mut RecordingTap(r))),
                    None => pump(up, self.signals, &cfg, None),
                },
                Err(e) => failed_end(format!("cannot set the terminal to raw mode: {e}")),
            },
            Job::Command(_) => pump(up, self.signals, &cfg, None),
            Job::Sftp => {
                let mut tap =
                    crate::operator::sftp::AuditTap::new(self.audit, session_id, &host.name);
                let end = pump(up, self.signals, &cfg, Some(&mut tap));
                match tap.finish() {
                    Ok(()) => end,
                    Err(e) => return Err(ExecOutcome::Failed(e.into())),
                }
            }
        })
    }

    /// The end's records: a tap's error, then `session_end`.
    fn close(
        &mut self,
        end: StreamEnd,
        session_id: &str,
        host: &Host,
        started: Instant,
    ) -> ExecOutcome {
        if let Some(te) = &end.tap_error {
            if let Some(admin) = &te.admin {
                crate::report::syslog(admin);
            }
            if let Err(e) = self.audit.write(&Event::Error {
                reason: te.reason,
                detail: &te.detail,
                session: Some(session_id),
                host: Some(&host.name),
                host_key: None,
                batch: None,
            }) {
                return ExecOutcome::Failed(e.into());
            }
        }
        let killed_by = (end.reason == EndReason::Killed)
            .then(crate::live::kill_note)
            .flatten()
            .map(|n| n.by);
        if let Err(e) = self.audit.write(&Event::SessionEnd {
            session: session_id,
            host: &host.name,
            exit_status: end.exit_status,
            exit_signal: end.exit_signal.as_deref(),
            reason: end.reason,
            detail: end.detail.as_deref(),
            duration_ms: started.elapsed().as_millis() as u64,
            bytes_in: end.bytes_in,
            bytes_out: end.bytes_out,
            by: killed_by.as_deref(),
        }) {
            return ExecOutcome::Failed(e.into());
        }
        ExecOutcome::Ended(end)
    }
}

/// A pty command's recording; when it cannot be made, the error record
/// (best effort: the run stops either way) and the operator's line.
fn start_recording(
    audit: &mut AuditLog,
    settings: &Settings,
    info: &SessionInfo<'_>,
) -> Result<Recorder, FailClosed> {
    Recorder::create(&settings.log_dir, info, settings.record_input).map_err(|e| {
        let _ = audit.write(&Event::Error {
            reason: "recording_failed",
            detail: &e.to_string(),
            session: Some(info.session),
            host: Some(info.host),
            host_key: None,
            batch: None,
        });
        FailClosed::Recording(e)
    })
}

fn failed_end(detail: String) -> StreamEnd {
    StreamEnd {
        reason: EndReason::Error,
        detail: Some(detail),
        tap_error: None,
        exit_status: None,
        exit_signal: None,
        bytes_in: 0,
        bytes_out: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(reason: EndReason, status: Option<i32>, signal: Option<&str>) -> StreamEnd {
        StreamEnd {
            reason,
            detail: Some("why".into()),
            tap_error: None,
            exit_status: status,
            exit_signal: signal.map(str::to_string),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    #[test]
    fn timeout_until_rounds_up_and_clamps() {
        let now = Instant::now();
        // Rounded up: never wake a hair before the deadline and spin.
        assert_eq!(
            timeout_until(now + Duration::from_micros(1500), now),
            PollTimeout::from(2u8)
        );
        // A deadline already past polls without really waiting.
        assert_eq!(
            timeout_until(now - Duration::from_secs(1), now),
            PollTimeout::from(1u8)
        );
        // Far deadlines are clamped, not wrapped into a negative (forever).
        assert_eq!(
            timeout_until(now + Duration::from_secs(u32::MAX as u64 * 10), now),
            PollTimeout::MAX
        );
    }

    #[test]
    fn pending_compacts_only_what_was_sent() {
        let mut p = Pending::default();
        assert!(p.is_empty());
        p.compact().extend_from_slice(b"abcdef");
        // As after a partial channel write of 4 bytes.
        p.start = 4;
        assert_eq!(p.len(), 2);
        p.compact().extend_from_slice(b"gh");
        assert_eq!((p.buf.as_slice(), p.start, p.len()), (&b"efgh"[..], 0, 4));
    }

    #[test]
    fn exit_codes_follow_ssh() {
        assert_eq!(end(EndReason::Exit, Some(0), None).exit_code(), 0);
        assert_eq!(end(EndReason::Exit, Some(42), None).exit_code(), 42);
        // A signal: the OpenSSH client ignores exit-signal and exits 255.
        assert_eq!(end(EndReason::Exit, None, Some("TERM")).exit_code(), 255);
        assert_eq!(end(EndReason::Exit, None, None).exit_code(), 255);
        assert_eq!(end(EndReason::Disconnect, Some(0), None).exit_code(), 255);
        assert_eq!(end(EndReason::Error, Some(0), None).exit_code(), 255);
        let failed = ExecOutcome::Failed(FailClosed::Audit(crate::audit::AuditError::NotAFile {
            path: "/l/alice.jsonl".into(),
        }));
        assert_eq!(failed.exit_code(), 1);
        assert_eq!(
            failed.operator_line("web01").as_deref(),
            Some("the audit log cannot be written; stopped")
        );
    }

    #[test]
    fn a_command_that_ran_prints_nothing_of_ours() {
        // Scripts read stderr: a finished command, whatever its status,
        // gets no line from Gatehouse.
        for e in [
            end(EndReason::Exit, Some(3), None),
            end(EndReason::Exit, None, Some("KILL")),
        ] {
            assert_eq!(ExecOutcome::Ended(e).operator_line("web01"), None);
        }
        let lost = ExecOutcome::Ended(end(EndReason::Disconnect, None, None));
        assert_eq!(
            lost.operator_line("web01").as_deref(),
            Some("connection to web01 lost.")
        );
        let stopped = ExecOutcome::Ended(end(EndReason::Error, None, None));
        assert_eq!(
            stopped.operator_line("web01").as_deref(),
            Some("web01: stopped: why.")
        );
    }
}
