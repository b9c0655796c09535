//! The relay: one poll(2) loop between the operator's terminal, the SSH
//! channel and the signal pipe. No threads, no timed wake-ups but the
//! keepalive, the idle deadline, the recording's flush and — only while
//! the target streams — the 1 ms cap of batched reads (`bulk_reads`),
//! bounded buffers both ways.
//!
//! libssh2 rules followed here (docs/architecture.md): drain the channel
//! until WouldBlock before polling, because libssh2 may hold decrypted data
//! while the socket is not readable; poll the socket for exactly the
//! directions `block_directions()` reports (plus readable, for new data);
//! `read` → `Ok(0)` is end-of-file only when `eof()` says so; a write may
//! be partial or refused, so unsent bytes wait in our own bounded buffer.
//!
//! Writes to the operator's terminal block: stdout is shared with sshd and
//! stays blocking (never O_NONBLOCK), so a slow terminal blocks us, which
//! stops channel reads, which throttles the target through the SSH window.
//! That is the backpressure. An operator who stops reading altogether
//! would hold such a write, and the session, forever: while the relay runs,
//! SIGUSR1 (`gatehouse kill`) interrupts it (`SignalPipe::interrupt_on_kill`)
//! and a write interrupted with the administrator's note there gives up
//! (`exec::write_all_fd`), so the session still ends `killed`.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ssh2::BlockDirections;

use crate::audit::{AuditError, EndReason};
use crate::operator::bulk_reads::{BulkReads, LowWater, BATCH};
use crate::operator::exec::{stop_writing, write_all_fd, write_failed};
use crate::operator::upstream::{lapsed, Upstream};
use crate::recording::RecordingError;
use crate::sys::{Sig, SignalPipe};

/// Operator bytes waiting for the remote window; when full, we stop reading
/// the terminal (backpressure) instead of growing.
const TO_REMOTE_CAP: usize = 64 * 1024;
/// One channel read: as large as the OpenSSH client's (256 KiB), so bulk output
/// costs one terminal write and one recording event per 256 KiB, not per 64.
const READ_CHUNK: usize = 256 * 1024;
/// Keepalives without any answer before the target counts as gone
/// (OpenSSH's ServerAliveCountMax default).
const MISSED_KEEPALIVES: u32 = 3;
/// `detail` of a session the operator left with `~.`.
pub const ESCAPE_DETAIL: &str = "operator typed ~.";

/// Why the books of a session (audit trail, recording) could not be kept.
/// The session ends (fail closed). `Display` is the admin's detail;
/// [`BooksError::operator_line`] what the operator reads.
#[derive(Debug)]
pub enum BooksError {
    Audit(AuditError),
    Recording(RecordingError),
    /// A line the policy blocked ran anyway (the shell's cancel keys were
    /// bound to run it): the session cannot be trusted to the policy.
    Unstopped {
        rule: String,
    },
}

impl BooksError {
    pub fn operator_line(&self) -> &'static str {
        match self {
            BooksError::Audit(_) => "the audit log cannot be written; session closed",
            BooksError::Recording(_) => "the session recording cannot be written; session closed",
            BooksError::Unstopped { .. } => {
                "the shell ran a command the policy blocked; session closed"
            }
        }
    }
}

impl std::fmt::Display for BooksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BooksError::Audit(e) => write!(f, "{e}"),
            BooksError::Recording(e) => write!(f, "{e}"),
            BooksError::Unstopped { rule } => write!(
                f,
                "the shell ran a line policy \"{rule}\" blocked: the keys sent to cancel it \
                 are bound to run it (bind/bindkey/stty eol); the session was ended"
            ),
        }
    }
}

impl std::error::Error for BooksError {}

impl From<AuditError> for BooksError {
    fn from(e: AuditError) -> Self {
        BooksError::Audit(e)
    }
}

impl From<RecordingError> for BooksError {
    fn from(e: RecordingError) -> Self {
        BooksError::Recording(e)
    }
}

/// What the session's bookkeeping (capture, audit, recording, policy)
/// sees. An `Err` ends the session: the audit trail could not keep up
/// (fail closed).
pub trait Observer {
    /// Operator bytes (after `~` escapes), before any is forwarded: says
    /// how many may go now and which are an Enter held for a decision.
    fn input(&mut self, data: &[u8], now: Instant) -> Result<Gate, BooksError>;
    fn output(&mut self, data: &[u8], now: Instant) -> Result<(), BooksError>;
    fn resize(&mut self, cols: u16, rows: u16) -> Result<(), BooksError>;
    /// While an Enter is held: when `settle` must be called at the latest.
    fn deadline(&self) -> Option<Instant>;
    /// Tries to decide the held Enter; `Some` once decided, with every
    /// record it needs already written.
    fn settle(&mut self, now: Instant) -> Result<Option<Release>, BooksError>;
    /// The operator's answer to an [`Release::Ask`] (`None`: they gave up);
    /// returns `Forward` or `Block`, and the bytes that repaint the screen.
    fn answer(&mut self, answer: Option<&str>) -> Result<(Release, Vec<u8>), BooksError>;
    /// When the books want a turn of their own even if nothing happens (an
    /// idle session's records sealed at `seal_interval`).
    fn timer(&self) -> Option<Instant> {
        None
    }
    /// That time came.
    fn on_timer(&mut self, _now: Instant) -> Result<(), BooksError> {
        Ok(())
    }
}

/// Longest answer to a policy question we keep.
const MAX_ANSWER: usize = 256;

pub use crate::core::capture::Gate;

/// What happens to a decided Enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Send it on.
    Forward,
    /// Never send it: send `cancel` instead (to clear the line on the
    /// target) and show the operator `notice`.
    /// `repaint` draws the line being typed again below the notice, so
    /// that the shell's redraw (relative to its cursor) finds it.
    Block {
        cancel: Vec<u8>,
        notice: String,
        repaint: Vec<u8>,
    },
    /// Ask the operator first (`question`, one line); their answer goes to
    /// [`Observer::answer`], which decides.
    Ask { question: String },
}

#[derive(Debug)]
pub struct RelayEnd {
    pub reason: EndReason,
    pub detail: Option<String>,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The bookkeeping failed: what the session must report (fail closed).
    pub books: Option<BooksError>,
}

/// OpenSSH-style escapes: `~.` at the start of a line ends the session,
/// `~~` sends one `~`. Pure, so it is tested on its own.
#[derive(Debug, Default)]
pub struct Escapes {
    mid_line: bool,
    saw_tilde: bool,
}

impl Escapes {
    /// Copies `input` to `out` minus escapes; true when `~.` was typed
    /// (bytes after it are dropped).
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.saw_tilde {
                self.saw_tilde = false;
                match b {
                    b'.' => return true,
                    b'~' => {
                        out.push(b'~');
                        self.mid_line = true;
                        continue;
                    }
                    _ => out.push(b'~'),
                }
            } else if b == b'~' && !self.mid_line {
                self.saw_tilde = true;
                continue;
            }
            out.push(b);
            self.mid_line = !matches!(b, b'\r' | b'\n');
        }
        false
    }
}

/// Writes all of `data` to the operator's terminal (blocking, see the
/// header). A write given up for an administrator's kill ends the session
/// `killed` with the note's reason; any other failure is a hang-up.
fn write_stdout(signals: &SignalPipe, data: &[u8]) -> Result<(), Stop> {
    write_all_fd(io::stdout().as_fd(), data, &|| stop_writing(signals))
        .map_err(|e| Stop::from(write_failed("operator terminal", e)))
}

/// Writes as much of `pending` as the remote window takes; the rest waits.
fn flush(channel: &mut ssh2::Channel, pending: &mut Vec<u8>) -> io::Result<()> {
    while !pending.is_empty() {
        match channel.write(pending) {
            Ok(0) => break,
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn timeout_until(deadline: Option<Instant>, now: Instant) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d.saturating_duration_since(now).as_millis();
            // Round up so we never wake just before the deadline and spin.
            PollTimeout::try_from((ms + 1).min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
        }
    }
}

pub struct RelayConfig {
    pub idle_timeout: Option<Duration>,
    pub keepalive: Duration,
}

/// Why the loop stops: a reason and its detail for `session_end`, and the
/// bookkeeping error when that is what stopped it.
struct Stop {
    reason: EndReason,
    detail: String,
    books: Option<BooksError>,
}

impl From<(EndReason, String)> for Stop {
    fn from((reason, detail): (EndReason, String)) -> Self {
        Stop {
            reason,
            detail,
            books: None,
        }
    }
}

impl From<BooksError> for Stop {
    fn from(e: BooksError) -> Self {
        Stop {
            reason: EndReason::Error,
            detail: e.operator_line().to_string(),
            books: Some(e),
        }
    }
}

fn lost(e: impl std::fmt::Display) -> (EndReason, String) {
    (EndReason::Disconnect, format!("connection lost: {e}"))
}

/// The relay's state between turns of the loop. Each phase of a turn is
/// one method; a phase that ends the session returns `Err(Stop)`.
struct Relay<'a> {
    up: &'a mut Upstream,
    signals: &'a SignalPipe,
    obs: &'a mut dyn Observer,
    cfg: &'a RelayConfig,
    buf: Vec<u8>,
    /// Operator bytes read but not yet through the observer's gate.
    inbox: Vec<u8>,
    /// An Enter the observer holds until it has decided (and recorded) it.
    held: Vec<u8>,
    /// Bytes on their way to the target, waiting for its window.
    to_remote: Vec<u8>,
    escapes: Escapes,
    pending_resize: Option<(u16, u16)>,
    last_input: Instant,
    next_keepalive: Instant,
    last_rx: Instant,
    silence_limit: Duration,
    bytes_in: u64,
    bytes_out: u64,
    /// Batched socket reads while the target streams (`bulk_reads`).
    bulk: BulkReads,
}

impl Relay<'_> {
    /// 1. Drain the channel until libssh2 would block. `Ok(true)` at EOF.
    fn drain_channel(&mut self) -> Result<bool, Stop> {
        loop {
            match self.up.channel.read(&mut self.buf) {
                Ok(0) => return Ok(self.up.channel.eof()),
                Ok(n) => {
                    self.last_rx = Instant::now();
                    let data = &self.buf[..n];
                    // The operator first (echo latency), then the books. A
                    // recording that fails ends the session right here, so
                    // at most this one chunk was seen and not recorded.
                    write_stdout(self.signals, data)?;
                    self.obs.output(data, self.last_rx)?;
                    self.bytes_out += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(lost(e).into()),
            }
        }
    }

    /// 2. Decide a held Enter if the observer can; then let waiting keys
    ///    through the gate up to the next Enter.
    fn gate(&mut self, now: Instant) -> Result<(), Stop> {
        loop {
            if !self.held.is_empty() {
                let mut release = self.obs.settle(now)?;
                if let Some(Release::Ask { question }) = &release {
                    let answer = self.ask(question)?;
                    let (r, redraw) = self.obs.answer(answer.as_deref())?;
                    write_stdout(self.signals, &redraw)?;
                    release = Some(r);
                }
                match release {
                    None => return Ok(()),
                    Some(Release::Ask { .. }) => {
                        return Err(Stop::from((EndReason::Error, "policy asked twice".into())))
                    }
                    Some(Release::Forward) => {
                        let held = std::mem::take(&mut self.held);
                        self.send(&held);
                    }
                    Some(Release::Block {
                        cancel,
                        notice,
                        repaint,
                    }) => {
                        self.held.clear();
                        self.send(&cancel);
                        // The raw terminal needs \r\n.
                        let mut line = format!("\r\n{notice}\r\n").into_bytes();
                        line.extend_from_slice(&repaint);
                        write_stdout(self.signals, &line)?;
                    }
                }
            }
            if self.inbox.is_empty() {
                return Ok(());
            }
            let g = self.obs.input(&self.inbox, now)?;
            // Straight from the inbox (no copy per keystroke).
            self.bytes_in += g.forward as u64;
            self.to_remote.extend_from_slice(&self.inbox[..g.forward]);
            self.held
                .extend_from_slice(&self.inbox[g.forward..g.consumed]);
            self.inbox.drain(..g.consumed);
            if self.held.is_empty() && g.consumed == 0 {
                return Ok(());
            }
        }
    }

    /// Draws `question` below the cursor and reads one line of answer from
    /// the operator, echoing it (the target sees none of this). Ctrl-C,
    /// Ctrl-D or Escape give up. Signals still end the session.
    fn ask(&mut self, question: &str) -> Result<Option<String>, Stop> {
        let signals = self.signals;
        let out = |b: &[u8]| write_stdout(signals, b);
        out(format!("\r\n\x1b[K{question} ").as_bytes())?;
        let mut answer = String::new();
        // Keys typed ahead before the question was drawn are not an answer
        // (a paste of `CMD\rweb01\r` must not confirm itself): they wait,
        // and go to the target after the answer, in order.
        let ahead = std::mem::take(&mut self.inbox);
        let mut pending: Vec<u8> = Vec::new();
        let restore = |rest: Vec<u8>, inbox: &mut Vec<u8>| {
            let mut all = ahead.clone();
            all.extend_from_slice(&rest);
            *inbox = all;
        };
        loop {
            while !pending.is_empty() {
                let b = pending.remove(0);
                match b {
                    b'\r' | b'\n' => {
                        // Keys typed after the answer stay for the target.
                        // (The line below the answer is the observer's.)
                        restore(std::mem::take(&mut pending), &mut self.inbox);
                        return Ok(Some(answer));
                    }
                    0x03 | 0x04 | 0x1b => {
                        restore(std::mem::take(&mut pending), &mut self.inbox);
                        return Ok(None);
                    }
                    0x7f | 0x08 if answer.pop().is_some() => out(b"\x08 \x08")?,
                    0x20..=0x7e if answer.len() < MAX_ANSWER => {
                        answer.push(char::from(b));
                        out(&[b])?;
                    }
                    _ => {}
                }
            }
            let stdin = io::stdin();
            let mut fds = [
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.signals.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(Stop::from((EndReason::Error, format!("poll: {e}")))),
            }
            if fds[1].revents().is_some_and(|r| !r.is_empty()) || self.signals.must_leave() {
                // Hang-up, terminate or kill end the session; a resize is
                // passed on.
                self.signals(signals)?;
            }
            if !fds[0].revents().is_some_and(|r| !r.is_empty()) {
                continue;
            }
            let mut buf = [0u8; 256];
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) => {
                    return Err(Stop::from((
                        EndReason::Hangup,
                        "operator terminal closed".into(),
                    )))
                }
                Ok(n) => {
                    self.last_input = Instant::now();
                    pending.extend_from_slice(&buf[..n]);
                }
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(e) => {
                    return Err(Stop::from((
                        EndReason::Hangup,
                        format!("operator terminal: {e}"),
                    )))
                }
            }
        }
    }

    fn send(&mut self, data: &[u8]) {
        self.bytes_in += data.len() as u64;
        self.to_remote.extend_from_slice(data);
    }

    /// 3. Write what waits for the target, as far as its window allows.
    fn flush(&mut self) -> Result<(), Stop> {
        Ok(flush(&mut self.up.channel, &mut self.to_remote).map_err(lost)?)
    }

    /// 4. Requests refused with EAGAIN earlier, keepalive, liveness, idle.
    fn housekeeping(&mut self, now: Instant) -> Result<(), Stop> {
        self.up
            .upkeep(&mut self.pending_resize, &mut self.next_keepalive, now)
            .map_err(lost)?;
        match lapsed(
            now,
            (self.last_rx, self.silence_limit),
            (self.last_input, self.cfg.idle_timeout),
        ) {
            Some(end) => Err(end.into()),
            None => Ok(()),
        }
    }

    /// 5. Wait for the socket, a signal, the operator, or a deadline.
    ///    Returns (signal ready, stdin ready).
    fn wait(&mut self, signals: &SignalPipe, now: Instant) -> Result<(bool, bool), Stop> {
        let dirs = self.up.session.block_directions();
        let mut sock_flags = PollFlags::POLLIN;
        if matches!(dirs, BlockDirections::Outbound | BlockDirections::Both) {
            sock_flags |= PollFlags::POLLOUT;
        }
        // Backpressure: the terminal is not read while the target's window
        // or a held Enter leaves bytes waiting.
        let want_stdin = self.to_remote.len() + self.inbox.len() < TO_REMOTE_CAP;
        let stdin = io::stdin();
        let mut all = [
            PollFd::new(self.up.socket.as_fd(), sock_flags),
            PollFd::new(signals.fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
        ];
        let fds = &mut all[..if want_stdin { 3 } else { 2 }];
        let mut deadline = self.next_keepalive.min(self.last_rx + self.silence_limit);
        if let Some(idle) = self.cfg.idle_timeout {
            deadline = deadline.min(self.last_input + idle);
        }
        if let Some(d) = self.obs.deadline() {
            deadline = deadline.min(d);
        }
        if let Some(d) = self.obs.timer() {
            deadline = deadline.min(d);
        }
        let mut timeout = timeout_until(Some(deadline), now);
        if let Some(ms) = self.bulk.hold_ms() {
            timeout = timeout.min(PollTimeout::from(ms));
        }
        match poll(fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Stop::from((EndReason::Error, format!("poll: {e}")))),
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            self.last_rx = Instant::now();
        }
        let sig = fds[1].revents().is_some_and(|r| !r.is_empty());
        let input = want_stdin && fds[2].revents().is_some_and(|r| !r.is_empty());
        Ok((sig, input))
    }

    /// 6. Signals: hang-up and terminate end the session; a window change
    ///    is passed on.
    fn signals(&mut self, signals: &SignalPipe) -> Result<(), Stop> {
        for s in signals.take_pending() {
            match s {
                Sig::Hangup => return Err(Stop::from((EndReason::Hangup, "SIGHUP".into()))),
                Sig::Terminate => return Err(Stop::from((EndReason::Hangup, "SIGTERM".into()))),
                Sig::WindowChange => {
                    let (c, r) = crate::tty::window_size();
                    self.pending_resize = Some((c, r));
                    self.obs.resize(c, r)?;
                }
                // `gatehouse kill`: only with the admin's note (live.rs).
                Sig::Kill => {
                    if let Some(note) = crate::live::kill_note() {
                        return Err(Stop::from((EndReason::Killed, note.reason)));
                    }
                }
            }
        }
        Ok(())
    }

    /// 7. The operator typed something: into the inbox, minus escapes.
    fn read_operator(&mut self) -> Result<(), Stop> {
        let room = TO_REMOTE_CAP.saturating_sub(self.to_remote.len() + self.inbox.len());
        let mut in_buf = [0u8; 16 * 1024];
        let want = room.min(in_buf.len());
        if want == 0 {
            return Ok(());
        }
        match nix::unistd::read(io::stdin().as_fd(), &mut in_buf[..want]) {
            Ok(0) => Err((EndReason::Hangup, "operator terminal closed".to_string()).into()),
            Ok(n) => {
                self.last_input = Instant::now();
                let quit = self.escapes.filter(&in_buf[..n], &mut self.inbox);
                if quit {
                    // Keys typed before `~.` still count; the rest is gone.
                    let now = Instant::now();
                    self.gate(now)?;
                    return Err(Stop::from((EndReason::Disconnect, ESCAPE_DETAIL.into())));
                }
                Ok(())
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err((EndReason::Hangup, format!("operator terminal: {e}")).into()),
        }
    }

    /// Sets the socket's low-water mark (`bulk_reads`). Should that fail
    /// on the way back to 1, batching stays on, so every wait stays
    /// capped and the next quiet turn tries again.
    fn low_water(&mut self, to: Option<LowWater>) {
        let Some(to) = to else { return };
        let bytes = match to {
            LowWater::Batch => BATCH,
            LowWater::Single => 1,
        };
        if crate::sys::set_receive_low_water(self.up.socket.as_fd(), bytes).is_err()
            && to == LowWater::Single
        {
            self.bulk.keep_batching();
        }
    }

    fn turn(&mut self, signals: &SignalPipe) -> Result<bool, Stop> {
        let before = self.bytes_out;
        if self.drain_channel()? {
            return Ok(true);
        }
        let change = self.bulk.drained(self.bytes_out - before, Instant::now());
        self.low_water(change);
        self.gate(Instant::now())?;
        self.flush()?;
        let now = Instant::now();
        self.housekeeping(now)?;
        if self.obs.timer().is_some_and(|t| now >= t) {
            self.obs.on_timer(now)?;
        }
        let (sig, input) = self.wait(signals, now)?;
        if sig || signals.must_leave() {
            self.signals(signals)?;
        }
        if input {
            self.read_operator()?;
            let change = self.bulk.typed(Instant::now());
            self.low_water(change);
            // Keys go out at once: a keystroke should not wait for a round
            // of channel reads (echo latency).
            self.gate(Instant::now())?;
            self.flush()?;
        }
        Ok(false)
    }
}

/// Runs the session until it ends; the terminal must already be raw.
pub fn run(
    up: &mut Upstream,
    signals: &SignalPipe,
    cfg: &RelayConfig,
    obs: &mut dyn Observer,
) -> RelayEnd {
    up.session.set_blocking(false);
    // `gatehouse kill` must reach a relay blocked writing to an operator
    // who stopped reading (see the header); undone below, as it ends.
    if let Err(e) = signals.interrupt_on_kill() {
        crate::report::syslog(&format!("cannot set up SIGUSR1: {e}"));
    }
    let now = Instant::now();
    let mut r = Relay {
        up,
        signals,
        obs,
        cfg,
        buf: vec![0u8; READ_CHUNK],
        inbox: Vec::with_capacity(16 * 1024),
        held: Vec::new(),
        to_remote: Vec::with_capacity(TO_REMOTE_CAP),
        escapes: Escapes::default(),
        pending_resize: None,
        last_input: now,
        next_keepalive: now + cfg.keepalive,
        // Liveness, as OpenSSH's ServerAliveCountMax: keepalives ask for a
        // reply, so a target that sends nothing at all for this long is
        // gone (frozen, or the network black-holed) even if TCP says not.
        silence_limit: cfg.keepalive * MISSED_KEEPALIVES,
        last_rx: now,
        bytes_in: 0,
        bytes_out: 0,
        bulk: BulkReads::new(now),
    };
    let outcome: Result<(), Stop> = loop {
        match r.turn(signals) {
            Ok(false) => {}
            Ok(true) => break Ok(()),
            Err(stop) => break Err(stop),
        }
    };
    // The menu may follow: its prompt must not see EINTR from a kill
    // request (`SignalPipe::restart_on_kill`).
    if let Err(e) = signals.restart_on_kill() {
        crate::report::syslog(&format!("cannot set up SIGUSR1: {e}"));
    }
    let mut end = RelayEnd {
        reason: EndReason::Exit,
        detail: None,
        exit_status: None,
        exit_signal: None,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        books: None,
    };
    // The wind-down below reads in blocking mode: small replies must not
    // wait for a batch.
    if r.bulk.hold_ms().is_some() {
        let _ = crate::sys::set_receive_low_water(r.up.socket.as_fd(), 1);
    }
    let up = r.up;

    // Wind down in blocking mode, bounded, so a dead target cannot hang us.
    up.session.set_blocking(true);
    up.session.set_timeout(3000);
    match outcome {
        Ok(()) => {
            let _ = up.channel.wait_close();
            match up.channel.exit_signal() {
                Ok(sig) if sig.exit_signal.is_some() => {
                    end.exit_signal = sig.exit_signal;
                    end.reason = EndReason::Exit;
                }
                _ => {
                    end.exit_status = up.channel.exit_status().ok();
                }
            }
        }
        Err(Stop {
            reason,
            detail,
            books,
        }) => {
            end.reason = reason;
            end.detail = Some(detail);
            end.books = books;
            // A lost connection has nothing left to close.
            if reason != EndReason::Disconnect || end.detail.as_deref() == Some(ESCAPE_DETAIL) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut e = Escapes::default();
        let mut out = Vec::new();
        for chunk in input {
            if e.filter(chunk, &mut out) {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn timeout_rounds_up_and_never_waits_forever_with_a_deadline() {
        let now = Instant::now();
        assert_eq!(timeout_until(None, now), PollTimeout::NONE);
        // Rounded up: never wake a hair early and spin.
        assert_eq!(
            timeout_until(Some(now + Duration::from_micros(1500)), now),
            PollTimeout::from(2u8)
        );
        // A deadline in the past polls without waiting (1 ms at most).
        assert_eq!(
            timeout_until(Some(now - Duration::from_secs(1)), now),
            PollTimeout::from(1u8)
        );
        // Far deadlines are clamped, not wrapped.
        assert_eq!(
            timeout_until(Some(now + Duration::from_secs(u32::MAX as u64 * 10)), now),
            PollTimeout::MAX
        );
    }

    #[test]
    fn tilde_dot_at_line_start_quits() {
        assert_eq!(run(&[b"~."]), (vec![], true));
        assert_eq!(run(&[b"ls\r", b"~", b"."]), (b"ls\r".to_vec(), true));
    }

    #[test]
    fn tilde_mid_line_is_text() {
        assert_eq!(run(&[b"cd ~.", b"\r"]), (b"cd ~.\r".to_vec(), false));
    }

    #[test]
    fn double_tilde_sends_one() {
        assert_eq!(run(&[b"~~."]), (b"~.".to_vec(), false));
        assert_eq!(run(&[b"~x"]), (b"~x".to_vec(), false));
    }
}
