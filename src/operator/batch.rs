//! Many hosts at once: `@web -- uptime`, `web* -- uptime` (issue 19;
//! product.md, "Automation and file transfer").
//!
//! One process, one poll(2) loop, no thread or process per host: each host
//! is a small state machine (TCP connect → SSH handshake → host-key check →
//! login → `exec` record → channel → command → end) driven by non-blocking
//! libssh2 calls, which return EAGAIN and are called again, with the same
//! arguments, once the socket is ready. At most `batch_parallel` hosts are
//! in flight; the next one starts when one ends.
//!
//! The libssh2 rules of src/operator/exec.rs hold per session: every turn, each
//! session is driven until it would block (its channel drained until
//! WouldBlock), then its socket is polled for exactly the directions its
//! `block_directions()` reports.
//!
//! Output: each host has a line buffer per stream; a complete line goes to
//! our stdout (or stderr) as `HOST: line` in one piece, so lines of two
//! hosts never mix inside a line and the two streams stay apart. A line
//! longer than `MAX_LINE` is written in pieces, each but the last ending
//! with `CUT_MARKER`. Memory per host is bounded by those buffers plus the
//! channel window (`BATCH_WINDOW`), since our writes to sshd's descriptors
//! block (a slow reader stops our reads, which closes the SSH windows).
//!
//! stdin: none. The command gets EOF at once (the operator's stdin cannot
//! sensibly be copied to many hosts).
//!
//! Stopping: a hang-up (SIGHUP, SIGTERM, the operator's stdout gone — how
//! a client's Ctrl-C shows without a pty), a Ctrl-C with `ssh -t` (SIGINT
//! from the bastion pty) or `gatehouse kill` ends every host in flight: its
//! channel and connection are closed, its `session_end` written (`hangup`
//! / `killed`), and hosts not yet started are not started. Closing the
//! connection is all SSH offers here (libssh2 cannot send the `signal`
//! request, and OpenSSH refuses it for forced commands): the target's sshd
//! closes the command's stdin, stdout and stderr, and the command ends at
//! its next write (SIGPIPE) or read (EOF), as with a plain `ssh HOST CMD`
//! whose client goes away.
#![forbid(unsafe_code)]

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::socket::{self as sock, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
use ssh2::{BlockDirections, Channel, MethodType, Session};
use zeroize::Zeroizing;

use crate::audit::{AuditLog, EndReason, Event};
use crate::core::command_policy::{CommandPolicy, Who};
use crate::core::config::{Host, HostPattern, Settings};
use crate::operator::error::FailClosed;
use crate::operator::exec::{
    policy_gate, stop_writing, timeout_until, write_all_fd, MISSED_KEEPALIVES,
};
use crate::operator::upstream::{
    self, is_eagain, AgentProblem, ConnectError, CHANNEL_PACKET, CIPHER_PREFS,
};
use crate::sys::{Sig, SignalPipe};

/// The longest line kept whole; a longer one is written in pieces.
pub const MAX_LINE: usize = 16 * 1024;
/// Ends a piece of a line that goes on in the next output line.
pub const CUT_MARKER: &[u8] = b" [gatehouse: line continues]";
/// The channel window per host: enough for line-oriented output, small
/// enough that `batch_parallel` hosts stay within a few tens of MiB.
const BATCH_WINDOW: u32 = 256 * 1024;
const READ_CHUNK: usize = 32 * 1024;

/// The hosts of a many-host request: every host matching `pattern` (`@group`
/// or a glob) on which `may_exec` says the operator may run commands, in
/// config order. Hosts the operator may not use are simply absent.
pub fn matching_hosts<'a>(
    hosts: &'a [Host],
    pattern: &str,
    may_exec: impl Fn(&Host) -> bool,
) -> Vec<&'a Host> {
    let pattern = match pattern.strip_prefix('@') {
        Some(g) => HostPattern::Group(g.to_string()),
        None => match glob::Pattern::new(pattern) {
            Ok(p) => HostPattern::Glob(p),
            Err(_) => return Vec::new(),
        },
    };
    hosts
        .iter()
        .filter(|h| pattern.matches(h) && may_exec(h))
        .collect()
}

/// One host's unfinished line of one stream. Total over any bytes.
#[derive(Default)]
pub struct LineBuf {
    part: Vec<u8>,
}

impl LineBuf {
    /// Appends to `out` every line that `data` completes, as `prefix`, the
    /// line and `\n`; keeps the unfinished rest (at most `MAX_LINE` bytes).
    pub fn feed(&mut self, prefix: &[u8], mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            let nl = data.iter().position(|&b| b == b'\n');
            let piece = nl.unwrap_or(data.len());
            let room = MAX_LINE - self.part.len();
            if piece <= room {
                self.part.extend_from_slice(&data[..piece]);
                match nl {
                    Some(_) => {
                        self.emit(prefix, out);
                        data = &data[piece + 1..];
                    }
                    None => data = &[],
                }
            } else {
                self.part.extend_from_slice(&data[..room]);
                data = &data[room..];
                self.cut(prefix, out);
            }
        }
    }

    /// The stream ended: an unfinished last line is written with a `\n`.
    pub fn finish(&mut self, prefix: &[u8], out: &mut Vec<u8>) {
        if !self.part.is_empty() {
            self.emit(prefix, out);
        }
    }

    fn emit(&mut self, prefix: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(prefix);
        out.extend_from_slice(&self.part);
        out.push(b'\n');
        self.part.clear();
    }

    /// Writes the full buffer as a piece of a longer line; a UTF-8
    /// character cut in two waits for the next piece.
    fn cut(&mut self, prefix: &[u8], out: &mut Vec<u8>) {
        let keep = incomplete_utf8_tail(&self.part);
        let tail = self.part.split_off(self.part.len() - keep);
        out.extend_from_slice(prefix);
        out.extend_from_slice(&self.part);
        out.extend_from_slice(CUT_MARKER);
        out.push(b'\n');
        self.part = tail;
    }
}

/// How many bytes at the end of `b` are the start of a UTF-8 sequence
/// that is not complete yet (0 for anything else, binary included).
fn incomplete_utf8_tail(b: &[u8]) -> usize {
    for k in 1..=3.min(b.len()) {
        let c = b[b.len() - k];
        if c & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let need = match c {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if need > k { k } else { 0 };
    }
    0
}

/// How one host of the batch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Exited(i32),
    Signalled(String),
    /// Never ran (a policy rule, unreachable, stopped before its turn);
    /// the text says why.
    NotRun(String),
    /// Started, but ended otherwise (connection lost, stopped).
    Ended(String),
}

impl Fate {
    /// The operator's summary line for a host that did not exit 0.
    pub fn summary(&self, host: &str) -> Option<String> {
        match self {
            Fate::Exited(0) => None,
            Fate::Exited(n) => Some(format!("{host}: exit status {n}")),
            Fate::Signalled(s) => Some(format!("{host}: killed by signal {s}")),
            Fate::NotRun(why) | Fate::Ended(why) => Some(format!("{host}: {why}")),
        }
    }
}

/// Why a host could not be reached, without its name (the summary line
/// starts with it); as short as `ConnectError::operator_line`.
fn not_reached(e: &ConnectError) -> String {
    match e {
        ConnectError::Resolve(_) => "not reached: its name does not resolve".into(),
        ConnectError::Connect { why, .. } => format!("not reached: {why}"),
        ConnectError::Handshake(_) => "not reached: SSH handshake failed".into(),
        ConnectError::HostKeyUnknown { .. }
        | ConnectError::HostKeyMismatch { .. }
        | ConnectError::HostKeyRevoked { .. } => {
            "not reached: host key verification failed; the administrator has been told".into()
        }
        ConnectError::KnownHosts(_) | ConnectError::Credentials(_) => {
            "not usable right now; please tell your administrator".into()
        }
        ConnectError::Auth(_) => "refused the login; please tell your administrator".into(),
        ConnectError::Agent { problem, .. } => match problem {
            AgentProblem::NotForwarded => "needs your own key: connect with ssh -A".into(),
            AgentProblem::Refused => {
                "needs your own key, but your forwarded agent could not be used; \
                 please tell your administrator"
                    .into()
            }
            AgentProblem::NoKeyAccepted => "accepted none of the keys in your agent".into(),
        },
        ConnectError::Channel(_) => "did not start the command".into(),
        ConnectError::Interrupted => "not run: stopped".into(),
        ConnectError::Vetoed(e) => e.operator_line().to_string(),
    }
}

/// What the summary says of a host the batch stopped (`detail`: the
/// signal, or the administrator's reason for a `gatehouse kill`).
fn stopped_because(reason: EndReason, detail: &str) -> String {
    match reason {
        EndReason::Killed => format!("ended by an administrator: {detail}"),
        _ => format!("stopped: {detail}"),
    }
}

/// The hosts of a batch, for its `live/` entry: names joined by commas,
/// bounded (the count is there too).
fn host_list(hosts: &[&Host]) -> String {
    const MAX: usize = 256;
    let mut s = String::new();
    for (i, h) in hosts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        if s.len() + h.name.len() > MAX {
            s.push('…');
            break;
        }
        s.push_str(&h.name);
    }
    s
}

/// The whole batch: 0 when every host exited 0, else 1.
pub struct Batch<'a> {
    pub audit: &'a mut AuditLog,
    pub settings: &'a Settings,
    pub signals: &'a SignalPipe,
    pub policy: &'a CommandPolicy,
    pub who: Who<'a>,
}

/// What every host's state machine shares within one turn.
struct Cx<'a> {
    audit: &'a mut AuditLog,
    settings: &'a Settings,
    batch: &'a str,
    command: &'a str,
    recorded: &'a str,
    length: Option<usize>,
    buf: Vec<u8>,
    out: Vec<u8>,
    signals: &'a SignalPipe,
    /// Our stdout or stderr failed (or a write was given up for a hang-up
    /// or a kill): the operator is gone, or not reading.
    operator_gone: bool,
}

impl Cx<'_> {
    fn write_out(&mut self, stderr: bool) {
        if self.out.is_empty() {
            return;
        }
        if self.operator_gone {
            // Nobody takes it: writing again would only block the stop.
            self.out.clear();
            return;
        }
        let must_stop = || stop_writing(self.signals);
        let r = if stderr {
            write_all_fd(io::stderr().as_fd(), &self.out, &must_stop)
        } else {
            write_all_fd(io::stdout().as_fd(), &self.out, &must_stop)
        };
        if r.is_err() {
            self.operator_gone = true;
        }
        self.out.clear();
    }
}

enum Phase {
    /// Non-blocking TCP connect in progress; `rest`: addresses to try next.
    Tcp {
        stream: TcpStream,
        rest: Vec<SocketAddr>,
        last_error: String,
    },
    Handshake,
    Auth {
        key_done: bool,
    },
    Open,
    Start(Channel),
    Run(Channel),
}

enum Step {
    /// Blocked: poll the socket.
    Wait,
    Done(Fate),
}

struct Conn<'h> {
    host: &'h Host,
    session_id: String,
    started: Instant,
    phase: Phase,
    session: Option<Session>,
    /// A clone of the socket, for poll(2) and for shutting it down.
    socket: TcpStream,
    /// End of the current connect step (`connect_timeout` each).
    deadline: Instant,
    prefix: Vec<u8>,
    out: LineBuf,
    err: LineBuf,
    exec_written: bool,
    eof_sent: bool,
    remote_eof: bool,
    last_rx: Instant,
    next_keepalive: Instant,
    bytes_out: u64,
    auth_tried: Vec<String>,
    /// How the login succeeded (`key`, `password`, `agent SHA256:…`).
    auth: String,
    password: Option<Zeroizing<String>>,
    /// The verified host key, for the `exec` record.
    host_key: String,
}

fn tcp_start(addr: SocketAddr) -> io::Result<TcpStream> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd: OwnedFd = sock::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    match sock::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

impl<'h> Conn<'h> {
    /// Resolves the host and starts its TCP connect (resolution blocks, as
    /// for a single host; a batch names hosts by address in practice).
    fn start(
        host: &'h Host,
        session_id: String,
        settings: &Settings,
    ) -> Result<Self, ConnectError> {
        let unreachable = |detail: String, why: String| ConnectError::Connect { detail, why };
        let mut addrs: Vec<SocketAddr> = (host.address.as_str(), host.port)
            .to_socket_addrs()
            .map_err(|e| ConnectError::Resolve(format!("cannot resolve {}: {e}", host.address)))?
            .collect();
        addrs.reverse();
        let mut last_error = format!("{} has no address", host.address);
        while let Some(addr) = addrs.pop() {
            match tcp_start(addr) {
                Ok(stream) => {
                    let socket = stream
                        .try_clone()
                        .map_err(|e| unreachable(e.to_string(), "socket error".into()))?;
                    let now = Instant::now();
                    return Ok(Conn {
                        host,
                        session_id,
                        started: now,
                        phase: Phase::Tcp {
                            stream,
                            rest: addrs,
                            last_error: String::new(),
                        },
                        session: None,
                        socket,
                        deadline: now + settings.connect_timeout,
                        prefix: format!("{}: ", host.name).into_bytes(),
                        out: LineBuf::default(),
                        err: LineBuf::default(),
                        exec_written: false,
                        eof_sent: false,
                        remote_eof: false,
                        last_rx: now,
                        next_keepalive: now,
                        bytes_out: 0,
                        auth_tried: Vec::new(),
                        auth: String::new(),
                        password: None,
                        host_key: String::new(),
                    });
                }
                Err(e) => last_error = format!("{addr}: {}", upstream::describe_io(&e)),
            }
        }
        let why = last_error
            .rsplit_once(": ")
            .map(|(_, w)| w.to_string())
            .unwrap_or_else(|| "connection failed".into());
        Err(unreachable(last_error, why))
    }

    fn session(&self) -> &Session {
        // Set when the TCP connect completes; every later phase has it.
        self.session.as_ref().expect("session after connect")
    }

    /// Drives this host until it would block or is over. `Err`: the audit
    /// trail failed (the whole batch stops).
    fn advance(&mut self, cx: &mut Cx<'_>) -> Result<Step, FailClosed> {
        loop {
            let now = Instant::now();
            let connecting = !matches!(self.phase, Phase::Run(_));
            if connecting && now >= self.deadline {
                let e = ConnectError::Connect {
                    detail: format!(
                        "{}:{}: no progress for {}s",
                        self.host.address,
                        self.host.port,
                        cx.settings.connect_timeout.as_secs()
                    ),
                    why: "connection timed out".into(),
                };
                return self.fail(cx, e);
            }
            // Each phase: `Ok(None)` go on to the next (or the same) phase
            // now, `Ok(Some(step))` stop here for this turn.
            let stop = match std::mem::replace(&mut self.phase, Phase::Handshake) {
                Phase::Tcp {
                    stream,
                    rest,
                    last_error,
                } => self.tcp(cx, now, stream, rest, last_error)?,
                Phase::Handshake => self.handshake(cx, now)?,
                Phase::Auth { key_done } => self.logged_in(cx, now, key_done)?,
                Phase::Open => self.open_channel(cx)?,
                Phase::Start(ch) => self.exec_command(cx, now, ch)?,
                Phase::Run(mut ch) => {
                    let step = self.run_turn(&mut ch, cx, now);
                    self.phase = Phase::Run(ch);
                    return match step {
                        Ok(None) => Ok(Step::Wait),
                        Ok(Some(fate)) => self.end(cx, fate, EndReason::Exit, None),
                        Err(detail) => {
                            let fate = Fate::Ended("connection lost".into());
                            self.end(cx, fate, EndReason::Disconnect, Some(detail))
                        }
                    };
                }
            };
            if let Some(step) = stop {
                return Ok(step);
            }
        }
    }

    /// The TCP connect: done, still in progress, or failed (then the next
    /// address is tried).
    fn tcp(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        stream: TcpStream,
        mut rest: Vec<SocketAddr>,
        mut last_error: String,
    ) -> Result<Option<Step>, FailClosed> {
        let err = sock::getsockopt(&stream, sockopt::SocketError).unwrap_or(0);
        if err != 0 {
            let e = io::Error::from_raw_os_error(err);
            last_error = upstream::describe_io(&e);
            match rest.pop().map(tcp_start) {
                Some(Ok(s)) => match s.try_clone() {
                    Ok(c) => {
                        self.socket = c;
                        self.phase = Phase::Tcp {
                            stream: s,
                            rest,
                            last_error,
                        };
                        return Ok(None);
                    }
                    Err(e) => last_error = e.to_string(),
                },
                Some(Err(e)) => last_error = upstream::describe_io(&e),
                None => {}
            }
            let e = ConnectError::Connect {
                detail: format!("{}:{}: {last_error}", self.host.address, self.host.port),
                why: last_error,
            };
            return self.fail(cx, e).map(Some);
        }
        if stream.peer_addr().is_err() {
            self.phase = Phase::Tcp {
                stream,
                rest,
                last_error,
            };
            return Ok(Some(Step::Wait));
        }
        if let Err(e) = self.open_session(stream, cx.settings) {
            return self.fail(cx, e).map(Some);
        }
        self.deadline = now + cx.settings.connect_timeout;
        self.phase = Phase::Handshake;
        Ok(None)
    }

    /// The SSH handshake, then the host key against known_hosts.
    fn handshake(&mut self, cx: &mut Cx<'_>, now: Instant) -> Result<Option<Step>, FailClosed> {
        let mut session = self.session.take().expect("session after connect");
        let r = session.handshake();
        self.session = Some(session);
        match r {
            Err(e) if is_eagain(&e) => return Ok(Some(Step::Wait)),
            Err(e) => {
                let e = ConnectError::Handshake(format!(
                    "{}:{}: {e}",
                    self.host.address, self.host.port
                ));
                return self.fail(cx, e).map(Some);
            }
            Ok(()) => {}
        }
        let known = match upstream::read_known_hosts(&cx.settings.known_hosts) {
            Ok(k) => k,
            Err(e) => return self.fail(cx, e).map(Some),
        };
        let host_key =
            match upstream::verify_host_key(self.session(), self.host, cx.settings, &known) {
                Ok(k) => k,
                Err(e) => return self.fail(cx, e).map(Some),
            };
        self.host_key = host_key;
        self.deadline = now + cx.settings.connect_timeout;
        self.phase = Phase::Auth { key_done: false };
        Ok(None)
    }

    /// One step of the login; once logged in, the `exec` record, before
    /// anything starts.
    fn logged_in(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        key_done: bool,
    ) -> Result<Option<Step>, FailClosed> {
        match self.authenticate(key_done, cx.settings) {
            Ok(Some(next)) => {
                self.phase = next;
                if matches!(self.phase, Phase::Auth { .. }) {
                    return Ok(Some(Step::Wait));
                }
                return Ok(None);
            }
            Ok(None) => {}
            Err(e) => return self.fail(cx, e).map(Some),
        }
        let host_key = std::mem::take(&mut self.host_key);
        cx.audit.write(&Event::Exec {
            recording: None,
            session: &self.session_id,
            host: &self.host.name,
            command: cx.recorded,
            truncated: cx.length.is_some(),
            length: cx.length,
            subsystem: None,
            pty: false,
            batch: Some(cx.batch),
            target: format!(
                "{}@{}:{}",
                self.host.user, self.host.address, self.host.port
            ),
            host_key: &host_key,
            auth: Some(&self.auth),
            pid: std::process::id(),
            boot_id: crate::audit::abandoned::boot_id().as_deref(),
        })?;
        self.exec_written = true;
        self.deadline = now + cx.settings.connect_timeout;
        self.phase = Phase::Open;
        Ok(None)
    }

    fn open_channel(&mut self, cx: &mut Cx<'_>) -> Result<Option<Step>, FailClosed> {
        match self
            .session()
            .channel_open("session", BATCH_WINDOW, CHANNEL_PACKET, None)
        {
            Ok(ch) => self.phase = Phase::Start(ch),
            Err(e) if is_eagain(&e) => {
                self.phase = Phase::Open;
                return Ok(Some(Step::Wait));
            }
            Err(e) => {
                return self
                    .fail(cx, ConnectError::Channel(e.to_string()))
                    .map(Some)
            }
        }
        Ok(None)
    }

    /// Starts the command on the open channel.
    fn exec_command(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        mut ch: Channel,
    ) -> Result<Option<Step>, FailClosed> {
        match ch.exec(cx.command) {
            Ok(()) => {
                let secs = cx
                    .settings
                    .keepalive_interval
                    .as_secs()
                    .clamp(1, u32::MAX as u64) as u32;
                self.session().set_keepalive(true, secs);
                self.last_rx = now;
                self.next_keepalive = now + cx.settings.keepalive_interval;
                self.phase = Phase::Run(ch);
                Ok(None)
            }
            Err(e) if is_eagain(&e) => {
                self.phase = Phase::Start(ch);
                Ok(Some(Step::Wait))
            }
            Err(e) => self
                .fail(cx, ConnectError::Channel(e.to_string()))
                .map(Some),
        }
    }

    fn open_session(&mut self, stream: TcpStream, settings: &Settings) -> Result<(), ConnectError> {
        upstream::tune_socket(&stream, settings.keepalive_interval);
        let known_text = upstream::read_known_hosts(&settings.known_hosts)?;
        let mut session = Session::new().map_err(|e| ConnectError::Handshake(e.to_string()))?;
        session.set_tcp_stream(stream);
        let name = crate::core::known_hosts::known_hosts_name(&self.host.address, self.host.port);
        if let Some(prefs) = crate::core::known_hosts::host_key_prefs(&known_text, &name) {
            let _ = session.method_pref(MethodType::HostKey, &prefs);
        }
        for dir in [MethodType::CryptCs, MethodType::CryptSc] {
            session
                .method_pref(dir, CIPHER_PREFS)
                .map_err(|e| ConnectError::Handshake(format!("cipher preferences: {e}")))?;
        }
        session.set_blocking(false);
        self.session = Some(session);
        Ok(())
    }

    /// One restartable step of the login: `Ok(None)` logged in;
    /// `Ok(Some(phase))` the phase to be in next (the same one: would block).
    fn authenticate(
        &mut self,
        key_done: bool,
        settings: &Settings,
    ) -> Result<Option<Phase>, ConnectError> {
        let host = self.host;
        if host.agent {
            // The operator's forwarded agent (`agent = true`, issue 18):
            // upstream's login, blocking and bounded by `connect_timeout`
            // (libssh2's agent calls talk to the local agent socket and the
            // target in turn). Other hosts wait meanwhile; a batch of agent
            // hosts logs in one host at a time.
            let session = self.session();
            session.set_blocking(true);
            session.set_timeout(settings.connect_timeout.as_millis().min(u32::MAX as u128) as u32);
            let r = upstream::authenticate(session, host);
            session.set_timeout(0);
            session.set_blocking(false);
            self.auth = r?;
            return Ok(None);
        }
        if !key_done {
            if let Some(key) = &host.key {
                match self
                    .session()
                    .userauth_pubkey_file(&host.user, None, key, None)
                {
                    Err(e) if is_eagain(&e) => return Ok(Some(Phase::Auth { key_done: false })),
                    Ok(()) if self.session().authenticated() => {
                        self.auth = "key".into();
                        return Ok(None);
                    }
                    Ok(()) => self
                        .auth_tried
                        .push(format!("key {}: not accepted", key.display())),
                    Err(e) => {
                        self.auth_tried
                            .push(format!("key {}: {}", key.display(), e.message()))
                    }
                }
            }
        }
        if let Some(pw_path) = &host.password_file {
            if self.password.is_none() {
                self.password = Some(upstream::read_secret(pw_path)?);
            }
            let password = self.password.as_deref().map(String::as_str).unwrap_or("");
            match self.session().userauth_password(&host.user, password) {
                Err(e) if is_eagain(&e) => return Ok(Some(Phase::Auth { key_done: true })),
                Ok(()) if self.session().authenticated() => {
                    self.password = None;
                    self.auth = "password".into();
                    return Ok(None);
                }
                Ok(()) => self.auth_tried.push("password: not accepted".into()),
                Err(e) => self.auth_tried.push(format!(
                    "password from {}: {}",
                    pw_path.display(),
                    e.message()
                )),
            }
        }
        self.password = None;
        let tried = self.auth_tried.join("; ");
        Err(ConnectError::Auth(format!(
            "{}@{}:{}: {tried}",
            host.user, host.address, host.port
        )))
    }

    /// One turn of a running command: stdin EOF, both streams drained,
    /// the end noticed, liveness. `Ok(Some)`: the channel closed.
    fn run_turn(
        &mut self,
        ch: &mut Channel,
        cx: &mut Cx<'_>,
        now: Instant,
    ) -> Result<Option<Fate>, String> {
        let lost = |e: &dyn std::fmt::Display| format!("connection lost: {e}");
        if !self.eof_sent {
            match ch.send_eof() {
                Err(e) if is_eagain(&e) => {}
                // Sent, or the command already closed its side.
                _ => self.eof_sent = true,
            }
        }
        for stderr in [false, true] {
            loop {
                let r = if stderr {
                    ch.stderr().read(&mut cx.buf)
                } else {
                    ch.read(&mut cx.buf)
                };
                match r {
                    Ok(0) => {
                        if !stderr && ch.eof() {
                            self.remote_eof = true;
                        }
                        break;
                    }
                    Ok(n) => {
                        self.last_rx = Instant::now();
                        self.bytes_out += n as u64;
                        let lines = if stderr { &mut self.err } else { &mut self.out };
                        let data = std::mem::take(&mut cx.buf);
                        lines.feed(&self.prefix, &data[..n], &mut cx.out);
                        cx.buf = data;
                        // Out as they arrive, a bounded piece at a time.
                        if cx.out.len() >= READ_CHUNK {
                            cx.write_out(stderr);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        cx.write_out(stderr);
                        return Err(lost(&e));
                    }
                }
            }
            cx.write_out(stderr);
        }
        if self.remote_eof {
            match ch.wait_close() {
                Ok(()) => {
                    return Ok(Some(match ch.exit_signal() {
                        Ok(s) if s.exit_signal.is_some() => {
                            Fate::Signalled(s.exit_signal.unwrap_or_default())
                        }
                        _ => Fate::Exited(
                            ch.exit_status().unwrap_or(crate::operator::exec::NO_STATUS),
                        ),
                    }))
                }
                Err(e) if is_eagain(&e) => {}
                Err(e) => return Err(lost(&e)),
            }
        }
        if now >= self.next_keepalive {
            match self.session().keepalive_send() {
                Ok(secs) => self.next_keepalive = now + Duration::from_secs(u64::from(secs.max(1))),
                Err(e) if is_eagain(&e) => self.next_keepalive = now + Duration::from_millis(200),
                Err(e) => return Err(lost(&e)),
            }
        }
        let silence = cx.settings.keepalive_interval * MISSED_KEEPALIVES;
        if now.duration_since(self.last_rx) >= silence {
            return Err(format!(
                "connection lost: the target answered nothing for {}s",
                silence.as_secs()
            ));
        }
        Ok(None)
    }

    /// When this host next needs a turn without socket activity.
    fn wake_at(&self, settings: &Settings) -> Instant {
        match self.phase {
            Phase::Run(_) => self
                .next_keepalive
                .min(self.last_rx + settings.keepalive_interval * MISSED_KEEPALIVES),
            _ => self.deadline,
        }
    }

    fn poll_flags(&self) -> PollFlags {
        match (&self.phase, &self.session) {
            (Phase::Tcp { .. }, _) | (_, None) => PollFlags::POLLOUT,
            (_, Some(s)) => match s.block_directions() {
                BlockDirections::Outbound | BlockDirections::Both => {
                    PollFlags::POLLIN | PollFlags::POLLOUT
                }
                _ => PollFlags::POLLIN,
            },
        }
    }

    /// Could not connect or start: the `error` record (with the batch), and
    /// the `session_end` too when the `exec` record was already written.
    fn fail(&mut self, cx: &mut Cx<'_>, e: ConnectError) -> Result<Step, FailClosed> {
        let detail = e.detail();
        cx.audit.write(&Event::Error {
            reason: e.reason(),
            detail: &detail,
            session: Some(&self.session_id),
            host: Some(&self.host.name),
            host_key: e.fingerprint(),
            batch: Some(cx.batch),
        })?;
        let fate = Fate::NotRun(not_reached(&e));
        if self.exec_written {
            return self.end(cx, fate, EndReason::Error, Some(detail));
        }
        self.close();
        Ok(Step::Done(fate))
    }

    /// The end of a host that had its `exec` record: what is left of its
    /// output, its `session_end`, the connection closed.
    fn end(
        &mut self,
        cx: &mut Cx<'_>,
        fate: Fate,
        reason: EndReason,
        detail: Option<String>,
    ) -> Result<Step, FailClosed> {
        self.out.finish(&self.prefix, &mut cx.out);
        cx.write_out(false);
        self.err.finish(&self.prefix, &mut cx.out);
        cx.write_out(true);
        let (exit_status, exit_signal) = match &fate {
            Fate::Exited(n) => (Some(*n), None),
            Fate::Signalled(s) => (None, Some(s.as_str())),
            _ => (None, None),
        };
        let by = (reason == EndReason::Killed)
            .then(crate::live::kill_note)
            .flatten()
            .map(|n| n.by);
        cx.audit.write(&Event::SessionEnd {
            session: &self.session_id,
            host: &self.host.name,
            exit_status,
            exit_signal,
            reason,
            detail: detail.as_deref(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            bytes_in: 0,
            bytes_out: self.bytes_out,
            by: by.as_deref(),
        })?;
        self.close();
        Ok(Step::Done(fate))
    }

    /// Stopped from outside (hang-up, Ctrl-C, `gatehouse kill`).
    fn stop(
        &mut self,
        cx: &mut Cx<'_>,
        reason: EndReason,
        detail: &str,
    ) -> Result<Fate, FailClosed> {
        let why = stopped_because(reason, detail);
        if self.exec_written {
            return match self.end(cx, Fate::Ended(why), reason, Some(detail.to_string()))? {
                Step::Done(f) => Ok(f),
                Step::Wait => unreachable!("end is final"),
            };
        }
        // Not logged in yet: nothing ran, nothing to record but why.
        let cause = match reason {
            EndReason::Killed => why.clone(),
            _ => detail.to_string(),
        };
        cx.audit.write(&Event::Error {
            reason: ConnectError::Interrupted.reason(),
            detail: &format!("stopped while connecting: {cause}"),
            session: Some(&self.session_id),
            host: Some(&self.host.name),
            host_key: None,
            batch: Some(cx.batch),
        })?;
        self.close();
        Ok(Fate::NotRun(format!("not run: {why}")))
    }

    /// Closes the channel and the connection without waiting: one try at a
    /// polite close, then the socket is shut so that libssh2's clean-up on
    /// drop fails fast instead of waiting for a target that may be gone.
    fn close(&mut self) {
        if let Phase::Run(ch) | Phase::Start(ch) = &mut self.phase {
            let _ = ch.close();
        }
        if let Some(s) = &self.session {
            let _ = s.disconnect(
                Some(ssh2::DisconnectCode::ByApplication),
                "batch over",
                None,
            );
        }
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

impl Batch<'_> {
    /// Runs `command` on `hosts` (already filtered: the operator may exec
    /// on each), writes every record, prints the summary; returns the exit
    /// status.
    // long: the batch's life in order (live entry, signals, fan-out,
    // wait, records, summary) with the fail-closed exit between each; the
    // phases themselves are functions.
    pub fn run(&mut self, hosts: &[&Host], command: &str) -> i32 {
        let batch_id = uuid::Uuid::now_v7().to_string();
        // With `ssh -t`, Ctrl-C arrives as SIGINT; without a terminal it is
        // the client closing the connection (stdout POLLHUP below).
        if let Err(e) = self.signals.catch_interrupt() {
            crate::report::syslog(&format!("cannot catch SIGINT: {e}"));
        }
        let (recorded, length) = crate::core::invocation::recorded_command(command);
        // Visible to `gatehouse sessions` / `kill` (under the batch id)
        // until this returns, after every host's `session_end`.
        let names = host_list(hosts);
        let live = crate::live::register_activity(
            &self.settings.log_dir,
            self.audit,
            self.who.user,
            &batch_id,
            crate::live::Activity::Batch {
                hosts: &names,
                count: hosts.len(),
                command: &recorded,
            },
        );
        let mut cx = Cx {
            audit: &mut *self.audit,
            settings: self.settings,
            batch: &batch_id,
            command,
            recorded: &recorded,
            length,
            buf: vec![0u8; READ_CHUNK],
            out: Vec::new(),
            signals: self.signals,
            operator_gone: false,
        };
        // `gatehouse kill` must reach a batch blocked writing to an operator
        // who stopped reading (`exec::write_all_fd`).
        if let Err(e) = self.signals.interrupt_on_kill() {
            crate::report::syslog(&format!("cannot set up SIGUSR1: {e}"));
        }
        let parallel = self.settings.batch_parallel.max(1);
        let mut fates: Vec<Option<Fate>> = vec![None; hosts.len()];
        let mut next = 0;
        let mut active: Vec<(usize, Conn)> = Vec::new();
        let mut stop: Option<(EndReason, String)> = None;
        let mut failed: Option<FailClosed> = None;

        'batch: loop {
            // 1. Start hosts while there is room.
            while stop.is_none() && active.len() < parallel && next < hosts.len() {
                let i = next;
                next += 1;
                match launch(&mut cx, self.policy, &self.who, self.settings, hosts[i]) {
                    Ok(Ok(c)) => active.push((i, c)),
                    Ok(Err(fate)) => fates[i] = Some(fate),
                    Err(m) => {
                        failed = Some(m);
                        break 'batch;
                    }
                }
            }

            // 2. Drive every host until it would block.
            let finished = match drive(&mut cx, &mut active, &mut fates) {
                Ok(f) => f,
                Err(m) => {
                    failed = Some(m);
                    break 'batch;
                }
            };
            if cx.operator_gone && stop.is_none() {
                // A write given up for an administrator's kill, or the
                // operator gone.
                stop = Some(match crate::live::kill_note() {
                    Some(note) => (EndReason::Killed, note.reason),
                    None => (EndReason::Hangup, "the operator's connection closed".into()),
                });
            }

            // 3. Stopping: every host in flight ends now, records written.
            if let Some((reason, detail)) = &stop {
                if let Err(m) = stop_all(&mut cx, &mut active, &mut fates, *reason, detail) {
                    failed = Some(m);
                }
                break;
            }
            if active.is_empty() {
                if next >= hosts.len() {
                    break;
                }
                continue;
            }
            if finished {
                // Room for the next host before waiting.
                continue;
            }

            // 4. Wait for any socket, a signal, or the operator leaving.
            stop = wait(&mut active, self.signals, self.settings);
        }

        // Every `session_end` is written: out of `live/` before the summary,
        // whose write may wait for a slow reader.
        drop(live);
        if let Some(e) = failed {
            // Fail closed: nothing more runs; what is in flight is cut.
            for (_, mut c) in active {
                c.close();
            }
            // Reported here, once: the admin's detail, the operator's line.
            crate::report::syslog(&e.to_string());
            crate::say_err!("gatehouse: {}", e.operator_line());
            return 1;
        }
        summary(hosts, fates, stop.as_ref())
    }
}

/// Step 1 for one host: the `[[policy]]` decision, then the TCP connect.
/// `Ok(Err(fate))`: it does not run; `Err`: the audit trail failed.
fn launch<'h>(
    cx: &mut Cx<'_>,
    policy: &CommandPolicy,
    who: &Who<'_>,
    settings: &Settings,
    host: &'h Host,
) -> Result<Result<Conn<'h>, Fate>, FailClosed> {
    let session_id = uuid::Uuid::now_v7().to_string();
    if let Some(line) = policy_gate(cx.audit, policy, who, host, &session_id, cx.command)? {
        return Ok(Err(Fate::NotRun(line)));
    }
    match Conn::start(host, session_id.clone(), settings) {
        Ok(c) => Ok(Ok(c)),
        Err(e) => {
            let detail = e.detail();
            cx.audit.write(&Event::Error {
                reason: e.reason(),
                detail: &detail,
                session: Some(&session_id),
                host: Some(&host.name),
                host_key: None,
                batch: Some(cx.batch),
            })?;
            Ok(Err(Fate::NotRun(not_reached(&e))))
        }
    }
}

/// Step 2: drives every host until it would block; true when one
/// finished (there is room for the next). `Err`: the audit trail failed.
fn drive(
    cx: &mut Cx<'_>,
    active: &mut Vec<(usize, Conn<'_>)>,
    fates: &mut [Option<Fate>],
) -> Result<bool, FailClosed> {
    let mut k = 0;
    let mut finished = false;
    while k < active.len() {
        match active[k].1.advance(cx)? {
            Step::Wait => k += 1,
            Step::Done(fate) => {
                let (i, _) = active.remove(k);
                fates[i] = Some(fate);
                finished = true;
            }
        }
    }
    Ok(finished)
}

/// Step 3: every host in flight ends now, its records written.
fn stop_all(
    cx: &mut Cx<'_>,
    active: &mut Vec<(usize, Conn<'_>)>,
    fates: &mut [Option<Fate>],
    reason: EndReason,
    detail: &str,
) -> Result<(), FailClosed> {
    for (i, mut c) in active.drain(..) {
        fates[i] = Some(c.stop(cx, reason, detail)?);
    }
    Ok(())
}

/// Step 4: waits for any socket, a signal, or the operator leaving.
/// Returns what stops the batch, if anything does.
fn wait(
    active: &mut [(usize, Conn<'_>)],
    signals: &SignalPipe,
    settings: &Settings,
) -> Option<(EndReason, String)> {
    let mut stop = None;
    let now = Instant::now();
    let wake = active
        .iter()
        .map(|(_, c)| c.wake_at(settings))
        .min()
        .unwrap_or(now);
    let stdout = io::stdout();
    let mut fds: Vec<PollFd> = active
        .iter()
        .map(|(_, c)| PollFd::new(c.socket.as_fd(), c.poll_flags()))
        .collect();
    fds.push(PollFd::new(signals.fd(), PollFlags::POLLIN));
    // No events asked: POLLHUP/POLLERR still come, which is how a
    // client gone while every command is silent shows.
    fds.push(PollFd::new(stdout.as_fd(), PollFlags::empty()));
    match poll(&mut fds, timeout_until(wake, now)) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Some((EndReason::Error, format!("poll: {e}"))),
    }
    let n = active.len();
    // Only incoming bytes prove the target alive (a writable
    // socket does not).
    let ready: Vec<bool> = fds[..n]
        .iter()
        .map(|f| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
        .collect();
    let sig_ready = fds[n].revents().is_some_and(|r| !r.is_empty());
    let operator_gone = fds[n + 1]
        .revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
    drop(fds);
    let now = Instant::now();
    for ((_, c), r) in active.iter_mut().zip(ready) {
        if r {
            c.last_rx = now;
        }
    }
    if operator_gone {
        stop = Some((EndReason::Hangup, "the operator's connection closed".into()));
    }
    if sig_ready || signals.must_leave() {
        for s in signals.take_pending() {
            match s {
                Sig::Hangup => stop = Some((EndReason::Hangup, "SIGHUP".into())),
                Sig::Terminate => stop = Some((EndReason::Hangup, "SIGTERM".into())),
                Sig::WindowChange => {}
                Sig::Kill => {
                    if let Some(note) = crate::live::kill_note() {
                        stop = Some((EndReason::Killed, note.reason));
                    }
                }
            }
        }
        if signals.take_interrupt() {
            stop = Some((EndReason::Hangup, "interrupted (Ctrl-C)".into()));
        }
    }
    stop
}

/// One line per host that did not exit 0; the batch's exit status.
fn summary(hosts: &[&Host], fates: Vec<Option<Fate>>, stop: Option<&(EndReason, String)>) -> i32 {
    let mut all_ok = true;
    for (host, fate) in hosts.iter().zip(fates) {
        let fate = fate.unwrap_or_else(|| {
            Fate::NotRun(match stop {
                Some((reason, detail)) => {
                    format!("not run: {}", stopped_because(*reason, detail))
                }
                None => "not run: stopped".into(),
            })
        });
        if let Some(line) = fate.summary(&host.name) {
            all_ok = false;
            crate::say_err!("gatehouse: {line}");
        }
    }
    if all_ok {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut lb = LineBuf::default();
        let mut out = Vec::new();
        for c in chunks {
            lb.feed(b"h: ", c, &mut out);
        }
        lb.finish(b"h: ", &mut out);
        out
    }

    #[test]
    fn lines_are_prefixed_whole_whatever_the_chunks() {
        assert_eq!(feed_all(&[b"a\nb", b"c\n", b"\n"]), b"h: a\nh: bc\nh: \n");
        assert_eq!(feed_all(&[b"no newline"]), b"h: no newline\n");
        assert_eq!(feed_all(&[b""]), b"");
        // Byte by byte gives the same as all at once.
        let text = b"one\ntwo\n\nthree";
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(feed_all(&bytes), feed_all(&[text]));
        // Nothing is written before its line is complete.
        let mut lb = LineBuf::default();
        let mut out = Vec::new();
        lb.feed(b"h: ", b"partial", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn an_overlong_line_is_cut_with_a_marker_and_memory_stays_bounded() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let mut lb = LineBuf::default();
        let mut out = Vec::new();
        for c in long.chunks(1000) {
            lb.feed(b"h: ", c, &mut out);
            assert!(lb.part.len() <= MAX_LINE);
        }
        lb.feed(b"h: ", b"\n", &mut out);
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 3);
        for l in &lines[..2] {
            assert!(l.starts_with(b"h: ") && l.ends_with(CUT_MARKER));
            assert_eq!(l.len(), 3 + MAX_LINE + CUT_MARKER.len());
        }
        assert_eq!(lines[2], [b"h: ".as_slice(), &[b'x'; 10]].concat());
    }

    #[test]
    fn a_cut_never_splits_a_utf8_character() {
        let mut text = vec![b'a'; MAX_LINE - 1];
        text.extend_from_slice("é and more".as_bytes());
        let out = feed_all(&[&text]);
        let s = String::from_utf8(out).expect("still UTF-8");
        assert!(s.contains("é and more"), "{s:.40}");
        assert_eq!(incomplete_utf8_tail(b"ab\xc3"), 1);
        assert_eq!(incomplete_utf8_tail(b"ab\xe2\x82"), 2);
        assert_eq!(incomplete_utf8_tail("ab€".as_bytes()), 0);
        assert_eq!(incomplete_utf8_tail(b"\xff\xfe"), 0);
    }

    #[test]
    fn summaries_name_the_host_and_why() {
        assert_eq!(Fate::Exited(0).summary("web01"), None);
        assert_eq!(
            Fate::Exited(3).summary("web01").as_deref(),
            Some("web01: exit status 3")
        );
        assert_eq!(
            Fate::Signalled("TERM".into()).summary("web01").as_deref(),
            Some("web01: killed by signal TERM")
        );
        let refused = ConnectError::Connect {
            detail: "127.0.0.1:1: connection refused".into(),
            why: "connection refused".into(),
        };
        assert_eq!(
            Fate::NotRun(not_reached(&refused))
                .summary("web09")
                .as_deref(),
            Some("web09: not reached: connection refused")
        );
    }

    #[test]
    fn a_killed_batch_says_an_administrator_ended_it() {
        assert_eq!(
            stopped_because(EndReason::Killed, "maintenance"),
            "ended by an administrator: maintenance"
        );
        assert_eq!(
            stopped_because(EndReason::Hangup, "SIGHUP"),
            "stopped: SIGHUP"
        );
        let f = Fate::Ended(stopped_because(EndReason::Killed, "runaway"));
        assert_eq!(
            f.summary("web02").as_deref(),
            Some("web02: ended by an administrator: runaway")
        );
    }

    #[test]
    fn the_live_entry_names_the_hosts_bounded() {
        let a = host("web01", &[]);
        let b = host("web02", &[]);
        assert_eq!(host_list(&[&a, &b]), "web01,web02");
        let many: Vec<Host> = (0..100)
            .map(|i| host(&format!("host{i:03}"), &[]))
            .collect();
        let refs: Vec<&Host> = many.iter().collect();
        let l = host_list(&refs);
        assert!(l.len() <= 256 + '…'.len_utf8(), "{}", l.len());
        assert!(l.starts_with("host000,host001,") && l.ends_with('…'), "{l}");
    }

    fn host(name: &str, groups: &[&str]) -> Host {
        Host {
            name: name.into(),
            address: "a".into(),
            port: 22,
            user: "u".into(),
            key: None,
            password_file: None,
            description: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            agent: false,
            agent_fallback: false,
        }
    }

    #[test]
    fn patterns_pick_permitted_hosts_in_config_order() {
        let hosts = vec![
            host("web01", &["web", "prod"]),
            host("db01", &["prod"]),
            host("web02", &["web"]),
            host("web03", &["web"]),
        ];
        let names = |p: &str, ok: &dyn Fn(&Host) -> bool| -> Vec<String> {
            matching_hosts(&hosts, p, ok)
                .iter()
                .map(|h| h.name.clone())
                .collect()
        };
        let all = |_: &Host| true;
        assert_eq!(names("@web", &all), ["web01", "web02", "web03"]);
        assert_eq!(names("@prod", &all), ["web01", "db01"]);
        assert_eq!(names("web0[12]", &all), ["web01", "web02"]);
        assert_eq!(names("*", &all), ["web01", "db01", "web02", "web03"]);
        assert!(names("@nosuch", &all).is_empty());
        // Not permitted: not there at all.
        let no_web03 = |h: &Host| h.name != "web03";
        assert_eq!(names("web*", &no_web03), ["web01", "web02"]);
    }
}
