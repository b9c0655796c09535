//! The relay: one poll(2) loop between the operator's terminal, the SSH
//! channel and the signal pipe. No threads, no timed wake-ups but the
//! keepalive and the idle deadline, bounded buffers both ways.
//!
//! libssh2 rules followed here (docs/architecture.md): drain the channel
//! until WouldBlock before polling, because libssh2 may hold decrypted data
//! while the socket is not readable; poll the socket for exactly the
//! directions `block_directions()` reports (plus readable, for new data);
//! `read` → `Ok(0)` is end-of-file only when `eof()` says so; a write may
//! be partial or refused, so unsent bytes wait in our own bounded buffer.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ssh2::BlockDirections;

use crate::audit::EndReason;
use crate::sys::{Sig, SignalPipe};
use crate::upstream::Upstream;

/// Operator bytes waiting for the remote window; when full, we stop reading
/// the terminal (backpressure) instead of growing.
const TO_REMOTE_CAP: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;
const LIBSSH2_EAGAIN: i32 = -37;
/// Keepalives without any answer before the target counts as gone
/// (OpenSSH's ServerAliveCountMax default).
const MISSED_KEEPALIVES: u32 = 3;
/// `detail` of a session the operator left with `~.`.
pub const ESCAPE_DETAIL: &str = "operator typed ~.";

/// What the session's bookkeeping (capture, audit, recording) sees. An
/// `Err` ends the session: the audit trail could not keep up (fail closed).
pub trait Observer {
    fn input(&mut self, data: &[u8]) -> Result<(), String>;
    fn output(&mut self, data: &[u8]) -> Result<(), String>;
    fn resize(&mut self, cols: u16, rows: u16) -> Result<(), String>;
}

#[derive(Debug)]
pub struct RelayEnd {
    pub reason: EndReason,
    pub detail: Option<String>,
    pub exit_status: Option<i32>,
    pub exit_signal: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
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

fn is_eagain(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::Session(LIBSSH2_EAGAIN))
}

/// Writes all of `data` to stdout. The descriptor is shared with sshd and
/// stays blocking (never set O_NONBLOCK on it): a slow terminal blocks us,
/// which stops channel reads, which throttles the target through the SSH
/// window. That is the backpressure.
fn write_stdout(mut data: &[u8]) -> Result<(), Errno> {
    let out = io::stdout();
    while !data.is_empty() {
        match nix::unistd::write(out.as_fd(), data) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                // Someone else made it non-blocking; wait instead of spinning.
                let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

/// Runs the session until it ends; the terminal must already be raw.
pub fn run(
    up: &mut Upstream,
    signals: &SignalPipe,
    cfg: &RelayConfig,
    obs: &mut dyn Observer,
) -> RelayEnd {
    let mut end = RelayEnd {
        reason: EndReason::Exit,
        detail: None,
        exit_status: None,
        exit_signal: None,
        bytes_in: 0,
        bytes_out: 0,
    };
    up.session.set_blocking(false);

    let stdin = io::stdin();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut in_buf = vec![0u8; 16 * 1024];
    let mut to_remote: Vec<u8> = Vec::with_capacity(TO_REMOTE_CAP);
    let mut filtered: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut escapes = Escapes::default();
    let mut pending_resize: Option<(u16, u16)> = None;
    let mut last_input = Instant::now();
    let mut next_keepalive = Instant::now() + cfg.keepalive;
    // Liveness, as OpenSSH's ServerAliveCountMax: keepalives ask for a
    // reply, so a target that sends nothing at all for this long is gone
    // (frozen, or the network black-holed) even if TCP says otherwise.
    let silence_limit = cfg.keepalive * MISSED_KEEPALIVES;
    let mut last_rx = Instant::now();
    let mut remote_eof = false;

    let outcome: Result<(), (EndReason, String)> = 'relay: loop {
        // 1. Drain the channel until libssh2 would block.
        loop {
            match up.channel.read(&mut buf) {
                Ok(0) => {
                    if up.channel.eof() {
                        remote_eof = true;
                    }
                    break;
                }
                Ok(n) => {
                    last_rx = Instant::now();
                    let data = &buf[..n];
                    // The operator first (echo latency), then the books. A
                    // recording that fails ends the session right here, so
                    // at most this one chunk was seen and not recorded.
                    if let Err(e) = write_stdout(data) {
                        break 'relay Err((EndReason::Hangup, format!("operator terminal: {e}")));
                    }
                    if let Err(m) = obs.output(data) {
                        break 'relay Err((EndReason::Error, m));
                    }
                    end.bytes_out += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    break 'relay Err((EndReason::Disconnect, format!("connection lost: {e}")))
                }
            }
        }
        if remote_eof {
            break 'relay Ok(());
        }

        // 2. Flush what the operator typed, as far as the window allows.
        if let Err(e) = flush(&mut up.channel, &mut to_remote) {
            break 'relay Err((EndReason::Disconnect, format!("connection lost: {e}")));
        }

        // 3. Requests that may have been refused with EAGAIN earlier.
        if let Some((c, r)) = pending_resize {
            match up.channel.request_pty_size(c.into(), r.into(), None, None) {
                Ok(()) => pending_resize = None,
                Err(e) if is_eagain(&e) => {}
                Err(_) => pending_resize = None,
            }
        }
        let now = Instant::now();
        if now >= next_keepalive {
            match up.session.keepalive_send() {
                Ok(secs) => {
                    next_keepalive = now + Duration::from_secs(u64::from(secs.max(1)));
                }
                Err(e) if is_eagain(&e) => next_keepalive = now + Duration::from_millis(200),
                Err(e) => {
                    break 'relay Err((EndReason::Disconnect, format!("connection lost: {e}")))
                }
            }
        }
        if now.duration_since(last_rx) >= silence_limit {
            break 'relay Err((
                EndReason::Disconnect,
                format!(
                    "connection lost: the target answered nothing for {}s",
                    silence_limit.as_secs()
                ),
            ));
        }
        if let Some(idle) = cfg.idle_timeout {
            if now.duration_since(last_input) >= idle {
                break 'relay Err((
                    EndReason::IdleTimeout,
                    format!("no input for {}s", idle.as_secs()),
                ));
            }
        }

        // 4. Wait for something to do.
        let dirs = up.session.block_directions();
        let mut sock_flags = PollFlags::POLLIN;
        if matches!(dirs, BlockDirections::Outbound | BlockDirections::Both) {
            sock_flags |= PollFlags::POLLOUT;
        }
        let want_stdin = to_remote.len() < TO_REMOTE_CAP;
        // A fixed array (no allocation per turn); stdin is left out of the
        // set while the outgoing buffer is full (backpressure).
        let mut all = [
            PollFd::new(up.socket.as_fd(), sock_flags),
            PollFd::new(signals.fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
        ];
        let fds = &mut all[..if want_stdin { 3 } else { 2 }];
        let mut deadline = next_keepalive.min(last_rx + silence_limit);
        if let Some(idle) = cfg.idle_timeout {
            deadline = deadline.min(last_input + idle);
        }
        match poll(fds, timeout_until(Some(deadline), now)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => break 'relay Err((EndReason::Error, format!("poll: {e}"))),
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            last_rx = Instant::now();
        }
        let sig_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = want_stdin && fds[2].revents().is_some_and(|r| !r.is_empty());

        // 5. Signals.
        if sig_ready || signals.must_leave() {
            for s in signals.take_pending() {
                match s {
                    Sig::Hangup => break 'relay Err((EndReason::Hangup, "SIGHUP".into())),
                    Sig::Terminate => break 'relay Err((EndReason::Hangup, "SIGTERM".into())),
                    Sig::WindowChange => {
                        let (c, r) = crate::tty::window_size();
                        pending_resize = Some((c, r));
                        if let Err(m) = obs.resize(c, r) {
                            break 'relay Err((EndReason::Error, m));
                        }
                    }
                    // `gatehouse kill`: only with the admin's note (live.rs).
                    Sig::Kill => {
                        if let Some(note) = crate::live::kill_note() {
                            break 'relay Err((EndReason::Killed, note.reason));
                        }
                    }
                }
            }
        }

        // 6. The operator typed something.
        if stdin_ready {
            let room = TO_REMOTE_CAP - to_remote.len();
            let want = room.min(in_buf.len());
            match nix::unistd::read(stdin.as_fd(), &mut in_buf[..want]) {
                Ok(0) => {
                    break 'relay Err((EndReason::Hangup, "operator terminal closed".into()));
                }
                Ok(n) => {
                    last_input = Instant::now();
                    filtered.clear();
                    let quit = escapes.filter(&in_buf[..n], &mut filtered);
                    if !filtered.is_empty() {
                        if let Err(m) = obs.input(&filtered) {
                            break 'relay Err((EndReason::Error, m));
                        }
                        end.bytes_in += filtered.len() as u64;
                        to_remote.extend_from_slice(&filtered);
                        // Send at once: a keystroke should not wait for a
                        // round of channel reads (echo latency).
                        if let Err(e) = flush(&mut up.channel, &mut to_remote) {
                            break 'relay Err((
                                EndReason::Disconnect,
                                format!("connection lost: {e}"),
                            ));
                        }
                    }
                    if quit {
                        break 'relay Err((EndReason::Disconnect, ESCAPE_DETAIL.into()));
                    }
                }
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(e) => {
                    break 'relay Err((EndReason::Hangup, format!("operator terminal: {e}")));
                }
            }
        }
    };

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
        Err((reason, detail)) => {
            end.reason = reason;
            end.detail = Some(detail);
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
