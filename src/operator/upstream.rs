//! The connection to a target: TCP with a timeout, the SSH handshake, the
//! host-key check against the admin's known_hosts, authentication with the
//! host's credentials or the operator's own forwarded agent, then a pty and
//! a shell.
//!
//! Policy decides about host keys, never the operator: there is no "trust
//! this key?" prompt.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use nix::sys::socket::{setsockopt, sockopt};
use ssh2::{CheckResult, HashType, HostKeyType, KnownHostFileKind, MethodType, Session};
use zeroize::Zeroizing;

use crate::audit::EndReason;
use crate::core::config::{Host, HostKeyPolicy, Settings};
use crate::core::known_hosts::{host_key_prefs, is_revoked, known_hosts_name};
use crate::operator::error::FailClosed;

/// libssh2's receive window for the session channel. Bounds how much target
/// output libssh2 may hold for a slow operator (memory), while being large
/// enough for bulk output on loopback (see BENCHMARKS.md).
pub const CHANNEL_WINDOW: u32 = 2 * 1024 * 1024;
pub const CHANNEL_PACKET: u32 = 32 * 1024;

/// Cipher preference, both directions: libssh2's own order, chacha20-poly1305
/// first. This libssh2 decrypts AES-GCM and AES-CTR sixteen bytes per
/// OpenSSL call (`transport_decrypt` loops over cipher blocks unless the
/// method needs the whole packet), ~60 million EVP calls per GB; its
/// chacha20-poly1305 (portable C) takes each packet in one call. Measured
/// behind a bastion sshd, interleaved: 20% less relay CPU per GB and
/// 1.4 MiB less peak RSS than AES-256-GCM first (BENCHMARKS.md, "What
/// each change bought").
/// Names this libssh2 build lacks are dropped by `method_pref`.
pub const CIPHER_PREFS: &str =
    "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,\
aes256-ctr,aes192-ctr,aes128-ctr,\
aes256-cbc,rijndael-cbc@lysator.liu.se,aes192-cbc,aes128-cbc,\
blowfish-cbc,arcfour128,arcfour,cast128-cbc,3des-cbc";

pub struct Upstream {
    pub session: Session,
    pub channel: ssh2::Channel,
    /// A clone of the socket, for poll(2): `Session` has no `AsFd`.
    pub socket: TcpStream,
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub host_key: String,
    /// How Gatehouse logged in: `key`, `password`, or `agent SHA256:…`
    /// (the operator's key the target accepted); `session_start.auth`.
    pub auth: String,
}

/// libssh2's "would block" (`LIBSSH2_ERROR_EAGAIN`) on a non-blocking session.
const LIBSSH2_EAGAIN: i32 = -37;

/// A call on a non-blocking session that must be made again later.
pub(crate) fn is_eagain(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::Session(LIBSSH2_EAGAIN))
}

impl Upstream {
    /// What the relay and the exec pump do each turn for the connection:
    /// a window-size request refused with EAGAIN goes again, a keepalive
    /// when it is due (EAGAIN: again in 200 ms). An error is the
    /// connection lost.
    pub(crate) fn upkeep(
        &mut self,
        pending_resize: &mut Option<(u16, u16)>,
        next_keepalive: &mut Instant,
        now: Instant,
    ) -> Result<(), ssh2::Error> {
        if let Some((c, r)) = *pending_resize {
            match self
                .channel
                .request_pty_size(c.into(), r.into(), None, None)
            {
                Err(e) if is_eagain(&e) => {}
                // Sent, or refused for good: not asked again.
                _ => *pending_resize = None,
            }
        }
        if now >= *next_keepalive {
            match self.session.keepalive_send() {
                Ok(secs) => *next_keepalive = now + Duration::from_secs(u64::from(secs.max(1))),
                Err(e) if is_eagain(&e) => *next_keepalive = now + Duration::from_millis(200),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// When a session ends for silence: the target answered nothing since
/// `last_rx` for `silence_limit` (a dead connection), or the operator sent
/// nothing since `last_input` for the idle timeout.
pub(crate) fn lapsed(
    now: Instant,
    (last_rx, silence_limit): (Instant, Duration),
    (last_input, idle_timeout): (Instant, Option<Duration>),
) -> Option<(EndReason, String)> {
    if now.duration_since(last_rx) >= silence_limit {
        return Some((
            EndReason::Disconnect,
            format!(
                "connection lost: the target answered nothing for {}s",
                silence_limit.as_secs()
            ),
        ));
    }
    idle_timeout
        .filter(|idle| now.duration_since(last_input) >= *idle)
        .map(|idle| {
            (
                EndReason::IdleTimeout,
                format!("no input for {}s", idle.as_secs()),
            )
        })
}

/// What went wrong with the operator's own agent (`agent = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentProblem {
    /// No agent was forwarded (`ssh` without `-A`).
    NotForwarded,
    /// The socket or the agent behind it was refused or unusable.
    Refused,
    /// The agent answered, but the target accepted none of its keys.
    NoKeyAccepted,
}

#[derive(Debug)]
pub enum ConnectError {
    Resolve(String),
    /// `why` is short and safe to show the operator; `detail` names the
    /// address, which the operator has no need to learn.
    Connect {
        detail: String,
        why: String,
    },
    Handshake(String),
    HostKeyUnknown {
        fingerprint: String,
    },
    HostKeyMismatch {
        fingerprint: String,
    },
    /// The key is listed as `@revoked` in known_hosts: refused under every
    /// policy, never learnt by `accept-new`.
    HostKeyRevoked {
        fingerprint: String,
    },
    KnownHosts(String),
    Credentials(String),
    Auth(String),
    /// `agent = true` and the operator's agent could not log in (and there
    /// is no `agent_fallback`). `detail` is for the admin.
    Agent {
        problem: AgentProblem,
        detail: String,
    },
    Channel(String),
    Interrupted,
    /// The caller's last check before the channel starts said no (the
    /// `exec` record or the recording could not be written).
    Vetoed(FailClosed),
}

impl ConnectError {
    /// The `reason` of the `error` record.
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectError::Resolve(_) | ConnectError::Connect { .. } => "connect_failed",
            ConnectError::Handshake(_) => "handshake_failed",
            ConnectError::HostKeyUnknown { .. } => "host_key_unknown",
            ConnectError::HostKeyMismatch { .. } => "host_key_mismatch",
            ConnectError::HostKeyRevoked { .. } => "host_key_revoked",
            ConnectError::KnownHosts(_) => "known_hosts_unusable",
            ConnectError::Credentials(_) => "credentials_unusable",
            ConnectError::Auth(_) | ConnectError::Agent { .. } => "auth_failed",
            ConnectError::Channel(_) => "channel_failed",
            ConnectError::Interrupted => "interrupted",
            ConnectError::Vetoed(_) => "audit_failed",
        }
    }

    /// What the operator reads: short, and nothing about credentials.
    pub fn operator_line(&self, host: &str) -> String {
        match self {
            ConnectError::Resolve(_) => format!("cannot reach {host}: its name does not resolve"),
            ConnectError::Connect { why, .. } => format!("cannot reach {host}: {why}"),
            ConnectError::Handshake(_) => format!("cannot reach {host}: SSH handshake failed"),
            ConnectError::HostKeyUnknown { .. }
            | ConnectError::HostKeyMismatch { .. }
            | ConnectError::HostKeyRevoked { .. } => {
                format!("{host}: host key verification failed; the administrator has been told")
            }
            ConnectError::KnownHosts(_) | ConnectError::Credentials(_) => {
                format!("{host} is not usable right now; please tell your administrator")
            }
            ConnectError::Auth(_) => {
                format!("{host} refused the login; please tell your administrator")
            }
            ConnectError::Agent { problem, .. } => match problem {
                AgentProblem::NotForwarded => {
                    format!("{host} needs your own key: connect with ssh -A")
                }
                AgentProblem::Refused => format!(
                    "{host} needs your own key, but your forwarded agent could not be used; \
                     please tell your administrator"
                ),
                AgentProblem::NoKeyAccepted => {
                    format!("{host} accepted none of the keys in your agent")
                }
            },
            ConnectError::Channel(_) => format!("{host} did not open a shell"),
            ConnectError::Interrupted => format!("connecting to {host} was interrupted"),
            ConnectError::Vetoed(e) => e.operator_line().to_string(),
        }
    }

    /// For the admin (the `detail` of the error record).
    pub fn detail(&self) -> String {
        match self {
            ConnectError::Resolve(s)
            | ConnectError::Connect { detail: s, .. }
            | ConnectError::Handshake(s)
            | ConnectError::KnownHosts(s)
            | ConnectError::Credentials(s)
            | ConnectError::Auth(s)
            | ConnectError::Agent { detail: s, .. }
            | ConnectError::Channel(s) => s.clone(),
            ConnectError::Vetoed(e) => e.to_string(),
            ConnectError::HostKeyUnknown { fingerprint } => {
                format!("host key {fingerprint} is not in known_hosts (policy strict)")
            }
            ConnectError::HostKeyMismatch { fingerprint } => format!(
                "host key {fingerprint} does not match known_hosts: possible man-in-the-middle, or the host was reinstalled"
            ),
            ConnectError::HostKeyRevoked { fingerprint } => format!(
                "host key {fingerprint} is marked @revoked in known_hosts: refused"
            ),
            ConnectError::Interrupted => "hang-up while connecting".into(),
        }
    }

    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            ConnectError::HostKeyUnknown { fingerprint }
            | ConnectError::HostKeyMismatch { fingerprint }
            | ConnectError::HostKeyRevoked { fingerprint } => Some(fingerprint),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}

/// The operator's terminal as the target should see it.
pub struct PtyRequest<'a> {
    pub term: &'a str,
    pub cols: u16,
    pub rows: u16,
}

/// What the session channel starts on the target.
pub enum Start<'a> {
    /// A login shell on a pty (the interactive session).
    Shell(&'a PtyRequest<'a>),
    /// One command, as `ssh HOST 'COMMAND'` sends it; a pty only when the
    /// operator has one (`ssh -t`). stdout and stderr stay apart.
    Exec {
        command: &'a str,
        pty: Option<&'a PtyRequest<'a>>,
    },
    /// A subsystem (`sftp`).
    Subsystem(&'a str),
}

/// Connects, verifies, authenticates and starts a shell. Blocking, bounded
/// by `settings.connect_timeout` per step.
pub fn connect(
    host: &Host,
    settings: &Settings,
    pty: &PtyRequest<'_>,
    interrupted: &dyn Fn() -> bool,
) -> Result<Upstream, ConnectError> {
    connect_to(
        host,
        settings,
        &Start::Shell(pty),
        interrupted,
        &mut |_, _| Ok(()),
    )
}

/// `connect`, starting `start` on the channel. `before_start` is called
/// with the verified host key once the login on the target succeeded and
/// before anything starts there (the `exec` record is written then); its
/// `Err` stops everything.
pub fn connect_to(
    host: &Host,
    settings: &Settings,
    start: &Start<'_>,
    interrupted: &dyn Fn() -> bool,
    before_start: &mut dyn FnMut(&str, &str) -> Result<(), FailClosed>,
) -> Result<Upstream, ConnectError> {
    let timeout = settings.connect_timeout;
    let stream = tcp_connect(&host.address, host.port, timeout)?;
    tune_socket(&stream, settings.keepalive_interval);
    let socket = stream.try_clone().map_err(|e| ConnectError::Connect {
        detail: e.to_string(),
        why: "socket error".into(),
    })?;
    if interrupted() {
        return Err(ConnectError::Interrupted);
    }

    let known_text = read_known_hosts(&settings.known_hosts)?;
    let mut session = Session::new().map_err(|e| ConnectError::Handshake(e.to_string()))?;
    session.set_tcp_stream(stream);
    // Ask for a host key of a type known_hosts holds for this host, as
    // OpenSSH does: otherwise a host listed only with its RSA key that
    // prefers ed25519 would look like a changed key.
    if let Some(prefs) = host_key_prefs(&known_text, &known_hosts_name(&host.address, host.port)) {
        let _ = session.method_pref(MethodType::HostKey, &prefs);
    }
    for dir in [MethodType::CryptCs, MethodType::CryptSc] {
        session
            .method_pref(dir, CIPHER_PREFS)
            .map_err(|e| ConnectError::Handshake(format!("cipher preferences: {e}")))?;
    }
    session.set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
    session
        .handshake()
        .map_err(|e| ConnectError::Handshake(format!("{}:{}: {e}", host.address, host.port)))?;

    let host_key = verify_host_key(&session, host, settings, &known_text)?;
    if interrupted() {
        return Err(ConnectError::Interrupted);
    }
    let auth = authenticate(&session, host)?;
    if interrupted() {
        return Err(ConnectError::Interrupted);
    }
    before_start(&host_key, &auth).map_err(ConnectError::Vetoed)?;

    let channel_err = |e: ssh2::Error| ConnectError::Channel(e.to_string());
    let mut channel = session
        .channel_open("session", CHANNEL_WINDOW, CHANNEL_PACKET, None)
        .map_err(channel_err)?;
    let request_pty = |channel: &mut ssh2::Channel, pty: &PtyRequest<'_>| {
        channel.request_pty(
            pty.term,
            None,
            Some((u32::from(pty.cols), u32::from(pty.rows), 0, 0)),
        )
    };
    match start {
        Start::Shell(pty) => {
            // One stream for the terminal; an unread stderr would stall
            // the shared window (crates.md).
            channel
                .handle_extended_data(ssh2::ExtendedData::Merge)
                .map_err(channel_err)?;
            request_pty(&mut channel, pty).map_err(channel_err)?;
            channel.shell().map_err(channel_err)?;
        }
        // stderr stays a stream of its own (`ExtendedData::Normal`, the
        // default); the exec loop reads both.
        Start::Exec { command, pty } => {
            if let Some(pty) = pty {
                request_pty(&mut channel, pty).map_err(channel_err)?;
            }
            channel.exec(command).map_err(channel_err)?;
        }
        Start::Subsystem(name) => channel.subsystem(name).map_err(channel_err)?,
    }
    let secs = settings
        .keepalive_interval
        .as_secs()
        .clamp(1, u32::MAX as u64) as u32;
    // want_reply: the answers are what proves the target is alive (relay).
    session.set_keepalive(true, secs);
    session.set_timeout(0);
    Ok(Upstream {
        session,
        channel,
        socket,
        host_key,
        auth,
    })
}

fn tcp_connect(address: &str, port: u16, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<SocketAddr> = (address, port)
        .to_socket_addrs()
        .map_err(|e| ConnectError::Resolve(format!("cannot resolve {address}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(ConnectError::Resolve(format!("{address} has no address")));
    }
    let deadline = Instant::now() + timeout;
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((addr.to_string(), describe_io(&e))),
        }
    }
    let (at, why) =
        last.unwrap_or_else(|| (format!("{address}:{port}"), "connection timed out".into()));
    Err(ConnectError::Connect {
        detail: format!("{at}: {why}"),
        why,
    })
}

pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "connection timed out".into(),
        _ => e.to_string(),
    }
}

/// libssh2 keepalives are not liveness (it never counts unanswered ones), so
/// the kernel watches the connection too: TCP keepalive, and a user timeout
/// so that unacknowledged data to a dead target fails the socket.
pub(crate) fn tune_socket(stream: &TcpStream, interval: Duration) {
    let secs = interval.as_secs().clamp(5, 3600) as u32;
    let _ = stream.set_nodelay(true);
    let _ = setsockopt(stream, sockopt::KeepAlive, &true);
    let _ = setsockopt(stream, sockopt::TcpKeepIdle, &secs);
    let _ = setsockopt(stream, sockopt::TcpKeepInterval, &secs);
    let _ = setsockopt(stream, sockopt::TcpKeepCount, &3);
    let _ = setsockopt(stream, sockopt::TcpUserTimeout, &(secs * 4 * 1000));
}

/// `SHA256:<unpadded base64>`, as `ssh-keygen -l` prints it.
pub fn fingerprint(session: &Session) -> Option<String> {
    session.host_key_hash(HashType::Sha256).map(|h| {
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(h)
        )
    })
}

fn key_type_name(t: HostKeyType) -> Option<&'static str> {
    Some(match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => return None,
    })
}

/// The known_hosts file as text; a missing file is empty (every key is
/// then unknown).
pub(crate) fn read_known_hosts(path: &Path) -> Result<String, ConnectError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(ConnectError::KnownHosts(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

pub(crate) fn verify_host_key(
    session: &Session,
    host: &Host,
    settings: &Settings,
    known_text: &str,
) -> Result<String, ConnectError> {
    let (key, key_type) = session
        .host_key()
        .ok_or_else(|| ConnectError::Handshake("the target sent no host key".into()))?;
    let fp = fingerprint(session)
        .ok_or_else(|| ConnectError::Handshake("cannot hash the host key".into()))?;
    let mut known = session
        .known_hosts()
        .map_err(|e| ConnectError::KnownHosts(e.to_string()))?;
    let path = &settings.known_hosts;
    // libssh2 knows no markers: an `@revoked` line was skipped, so a key
    // listed only there was "unknown" and `accept-new` appended it as
    // trusted (issue 12, point 6). A revoked key is refused first, for any
    // host name (stricter than OpenSSH, which matches the names too).
    if is_revoked(known_text, key) {
        return Err(ConnectError::HostKeyRevoked { fingerprint: fp });
    }
    // One line at a time: libssh2's read_file stops at the first line it
    // cannot parse, silently hiding every entry after it. Marker lines
    // (`@revoked` handled above, `@cert-authority` not supported; `gatehouse
    // check` warns about it) never count as a trusted key.
    for line in known_text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with('@') {
            continue;
        }
        let _ = known.read_str(l, KnownHostFileKind::OpenSSH);
    }
    let name = known_hosts_name(&host.address, host.port);
    // Port -1: only the exact name, as OpenSSH does (libssh2 would also
    // accept the port-22 entry for any port otherwise).
    match known.check(&name, key) {
        CheckResult::Match => Ok(fp),
        CheckResult::Mismatch => Err(ConnectError::HostKeyMismatch { fingerprint: fp }),
        CheckResult::NotFound => match settings.host_key_policy {
            HostKeyPolicy::Strict => Err(ConnectError::HostKeyUnknown { fingerprint: fp }),
            HostKeyPolicy::AcceptNew => {
                let type_name = key_type_name(key_type)
                    .ok_or_else(|| ConnectError::KnownHosts("unknown host key type".into()))?;
                let b64 = base64::engine::general_purpose::STANDARD.encode(key);
                append_known_host(path, &format!("{name} {type_name} {b64}\n")).map_err(|e| {
                    ConnectError::KnownHosts(format!(
                        "cannot record the new host key in {}: {e}",
                        path.display()
                    ))
                })?;
                Ok(fp)
            }
        },
        CheckResult::Failure => Err(ConnectError::KnownHosts(format!(
            "libssh2 could not check {name} against {}",
            path.display()
        ))),
    }
}

/// Appends one line with one write on O_APPEND, so concurrent first
/// connections cannot tear each other's lines.
fn append_known_host(path: &Path, line: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(line.as_bytes())
}

/// Logs in to the target; `Ok` says how, for `session_start.auth`.
/// `agent = true`: the operator's own agent first, and the bastion's
/// credentials only with `agent_fallback = true` (config.rs refuses an
/// agent host with a credential but no fallback).
pub(crate) fn authenticate(session: &Session, host: &Host) -> Result<String, ConnectError> {
    if !host.agent {
        return held_credentials(session, host, Vec::new());
    }
    match agent_login(session, host) {
        Ok(fingerprint) => Ok(format!("agent {fingerprint}")),
        Err(e) if host.agent_fallback => {
            held_credentials(session, host, vec![format!("agent: {}", e.detail())])
        }
        Err(e) => Err(e),
    }
}

/// The credentials the bastion holds for the host: key, then password.
/// `tried` already lists what failed before (the agent, on a fallback).
fn held_credentials(
    session: &Session,
    host: &Host,
    mut tried: Vec<String>,
) -> Result<String, ConnectError> {
    if let Some(key) = &host.key {
        match session.userauth_pubkey_file(&host.user, None, key, None) {
            Ok(()) if session.authenticated() => return Ok("key".into()),
            Ok(()) => tried.push(format!("key {}: not accepted", key.display())),
            // libssh2 reports an unreadable or encrypted key as a format error.
            Err(e) => tried.push(format!("key {}: {}", key.display(), e.message())),
        }
    }
    if let Some(pw_path) = &host.password_file {
        let password = read_secret(pw_path)?;
        match session.userauth_password(&host.user, &password) {
            Ok(()) if session.authenticated() => return Ok("password".into()),
            Ok(()) => tried.push("password: not accepted".into()),
            Err(e) => tried.push(format!(
                "password from {}: {}",
                pw_path.display(),
                e.message()
            )),
        }
    }
    Err(ConnectError::Auth(format!(
        "{}@{}:{}: {}",
        host.user,
        host.address,
        host.port,
        tried.join("; ")
    )))
}

/// At most this many agent keys are offered to one target (sshd's own
/// `MaxAuthTries` is 6 by default; an agent with hundreds of keys must not
/// keep Gatehouse busy).
pub const MAX_AGENT_KEYS: usize = 16;

/// Logs in with a key from the operator's forwarded agent (issue 18); `Ok`
/// is the accepted key's `SHA256:…` fingerprint.
///
/// The socket is opened and checked as the operator by `agent.rs`, and
/// libssh2 connects to it as the operator through the checked descriptor
/// (`/proc/self/fd/N`, see agent.rs for why this and not the path itself).
/// Every identity is tried in the agent's order: libssh2's own
/// `userauth_agent` stops at the first (crates.md). The connection to the
/// agent is closed before this returns, whatever the outcome: Gatehouse
/// keeps nothing of it (the identity list is freed with the handle) and
/// does not forward it to the target.
fn agent_login(session: &Session, host: &Host) -> Result<String, ConnectError> {
    let at = format!("{}@{}:{}", host.user, host.address, host.port);
    let fail = |problem, why: String| ConnectError::Agent {
        problem,
        detail: format!("{at}: {why}"),
    };
    let sock = crate::operator::agent::open_checked(std::env::var_os("SSH_AUTH_SOCK").as_deref())
        .map_err(|e| match e {
        crate::operator::agent::AgentError::NotForwarded => {
            fail(AgentProblem::NotForwarded, e.to_string())
        }
        crate::operator::agent::AgentError::Refused { .. } => {
            fail(AgentProblem::Refused, e.to_string())
        }
    })?;
    let shown = sock.shown.clone();
    let refused = |why: String| fail(AgentProblem::Refused, format!("agent at {shown}: {why}"));
    let mut agent = session
        .agent()
        .map_err(|e| refused(format!("libssh2: {}", e.message())))?;
    agent
        .set_identity_path(&sock.connect_path())
        .map_err(|e| refused(format!("libssh2: {}", e.message())))?;
    let connected = crate::privilege::as_operator(|| agent.connect());
    // The O_PATH descriptor has done its job once connected (or not).
    drop(sock);
    match connected {
        Err(privilege) => return Err(refused(privilege.to_string())),
        Ok(Err(e)) => return Err(refused(format!("cannot connect: {}", e.message()))),
        Ok(Ok(())) => {}
    }
    let result = try_agent_keys(session, &mut agent, host);
    let _ = agent.disconnect();
    result.map_err(|(problem, why)| match problem {
        AgentProblem::Refused => refused(why),
        _ => fail(problem, why),
    })
}

/// Offers the agent's keys one by one; `Ok` is the accepted key's
/// fingerprint, `Err` the problem and what each key got.
fn try_agent_keys(
    session: &Session,
    agent: &mut ssh2::Agent,
    host: &Host,
) -> Result<String, (AgentProblem, String)> {
    agent.list_identities().map_err(|e| {
        (
            AgentProblem::Refused,
            format!("cannot list keys: {}", e.message()),
        )
    })?;
    let keys = agent.identities().map_err(|e| {
        (
            AgentProblem::Refused,
            format!("cannot list keys: {}", e.message()),
        )
    })?;
    if keys.is_empty() {
        return Err((
            AgentProblem::NoKeyAccepted,
            "the agent holds no keys".into(),
        ));
    }
    let mut tried = Vec::new();
    for key in keys.iter().take(MAX_AGENT_KEYS) {
        let fp = key_fingerprint(key.blob());
        match agent.userauth(&host.user, key) {
            Ok(()) if session.authenticated() => return Ok(fp),
            Ok(()) => tried.push(format!("{fp}: not accepted")),
            Err(e) => {
                tried.push(format!("{fp}: {}", e.message()));
                if session_lost(&e) {
                    break;
                }
            }
        }
    }
    if keys.len() > MAX_AGENT_KEYS {
        tried.push(format!(
            "{} more keys not offered",
            keys.len() - MAX_AGENT_KEYS
        ));
    }
    Err((
        AgentProblem::NoKeyAccepted,
        format!("no agent key accepted: {}", tried.join("; ")),
    ))
}

/// An error after which offering more keys is pointless: the target or the
/// agent went away (e.g. sshd's `MaxAuthTries` reached).
fn session_lost(e: &ssh2::Error) -> bool {
    use libssh2_sys as raw;
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(
            raw::LIBSSH2_ERROR_SOCKET_DISCONNECT
                | raw::LIBSSH2_ERROR_SOCKET_SEND
                | raw::LIBSSH2_ERROR_SOCKET_RECV
                | raw::LIBSSH2_ERROR_SOCKET_TIMEOUT
                | raw::LIBSSH2_ERROR_TIMEOUT
                | raw::LIBSSH2_ERROR_AGENT_PROTOCOL
        )
    )
}

/// `SHA256:<unpadded base64>` of a public key blob, as `ssh-keygen -l` and
/// `ssh-add -l` print it.
pub fn key_fingerprint(blob: &[u8]) -> String {
    use sha2::Digest;
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(blob))
    )
}

/// Reads a password file into memory that is wiped when dropped. The first
/// line is the password; the file's content never appears in any message.
pub(crate) fn read_secret(path: &Path) -> Result<Zeroizing<String>, ConnectError> {
    let raw = Zeroizing::new(std::fs::read(path).map_err(|e| {
        ConnectError::Credentials(format!("cannot read password file {}: {e}", path.display()))
    })?);
    let text = std::str::from_utf8(&raw).map_err(|_| {
        ConnectError::Credentials(format!("password file {} is not UTF-8", path.display()))
    })?;
    let first = text.lines().next().unwrap_or("");
    Ok(Zeroizing::new(first.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_target_ends_before_an_idle_operator_and_neither_ends_early() {
        let t0 = Instant::now();
        let s = |n| Duration::from_secs(n);
        let idle = Some(s(60));
        assert_eq!(lapsed(t0 + s(10), (t0, s(30)), (t0, idle)), None);
        let (reason, detail) = lapsed(t0 + s(30), (t0, s(30)), (t0, idle)).unwrap();
        assert_eq!(reason, EndReason::Disconnect);
        assert_eq!(
            detail,
            "connection lost: the target answered nothing for 30s"
        );
        let late = t0 + s(60);
        let (reason, detail) = lapsed(late, (late, s(30)), (t0, idle)).unwrap();
        assert_eq!(reason, EndReason::IdleTimeout);
        assert_eq!(detail, "no input for 60s");
        assert_eq!(lapsed(late, (late, s(30)), (t0, None)), None);
    }
}
