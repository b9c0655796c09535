//! Shared fixtures for the integration tests: throwaway OpenSSH servers on
//! loopback (`Target`, `Bastion`), a Gatehouse environment in a temp dir
//! (`Gh`), and a pty driver (`Pty`) to run real binaries in a real terminal.
//!
//! Modelled on wezterm-ssh's `tests/sshd.rs`: keys and an `sshd_config` in a
//! temp dir, `/usr/sbin/sshd -D -e -E LOG -f CONFIG`, killed on `Drop`.
//! Works as root (CI; needs `/run/sshd`, created here) and as an
//! unprivileged user (sshd then only serves that user, which is all we need).
//!
//! No fixed sleeps: readiness is "the log says it listens and the port
//! accepts", and every wait has a deadline. Every deadline given to a helper
//! here is multiplied by one factor, `GATEHOUSE_TEST_TIMEOUT_SCALE` (default
//! `DEFAULT_TIMEOUT_SCALE`), so a loaded machine needs one knob, not edits to
//! each test; a wait ends as soon as its event happens, so a large factor
//! costs nothing while tests pass.
#![allow(dead_code)]
// The pty driver needs two syscalls nix has no safe wrapper for
// (TIOCSWINSZ, TIOCSCTTY in the child before exec). Each block says why it is
// sound; nothing else in this module is unsafe.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{getuid, Pid, User};
use serde_json::Value;
use tempfile::TempDir;

/// Default deadline for `Pty::expect` and friends (before scaling).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The environment variable that multiplies every deadline of the fixtures.
pub const TIMEOUT_SCALE_VAR: &str = "GATEHOUSE_TEST_TIMEOUT_SCALE";

/// The factor used when `GATEHOUSE_TEST_TIMEOUT_SCALE` is unset. A deadline
/// only costs time when a test is failing anyway (every wait ends at the
/// event it waits for), so the default is sized for a 2-core box that is
/// busy with other builds (issue 17: 15 s was not enough there), not for an
/// idle one.
pub const DEFAULT_TIMEOUT_SCALE: f64 = 4.0;

/// The one deadline scale factor of the whole suite: `GATEHOUSE_TEST_TIMEOUT_SCALE`
/// (a positive number, e.g. `10` on a very slow machine, `1` to find hangs
/// fast), or `DEFAULT_TIMEOUT_SCALE`.
pub fn timeout_scale() -> f64 {
    static SCALE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SCALE.get_or_init(|| {
        std::env::var(TIMEOUT_SCALE_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(DEFAULT_TIMEOUT_SCALE)
    })
}

/// `d` times the suite's deadline scale factor. Every wait helper here
/// applies it to the deadline it is given; a test that builds its own wait
/// loop calls it too. Never use it for a duration the product measures (an
/// idle timeout the test waits through): see `scaled_setting`.
pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(timeout_scale())
}

/// A product setting (`idle_timeout`, `connect_timeout`) that must not
/// expire while a loaded machine is still setting the test up: `secs`
/// scaled, whole seconds, as the config writes durations (`"12s"`).
pub fn scaled_setting(secs: u64) -> String {
    format!("{}s", (secs as f64 * timeout_scale()).ceil() as u64)
}

const SSHD: &str = "/usr/sbin/sshd";

/// The gatehouse binary cargo built for this test run.
pub fn gatehouse_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

/// Runs `cmd` with `sh -c`: (exit code, stdout then stderr).
pub fn sh(cmd: &str) -> (i32, String) {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `sh`, and the test fails with the output unless it exits 0.
pub fn must(cmd: &str) -> String {
    let (code, out) = sh(cmd);
    assert_eq!(code, 0, "`{cmd}` failed: {out}");
    out
}

/// The binary built with `GATEHOUSE_SYSTEM_CONFIG=sys_config` (the
/// privileged suites' built-in config path) into its own target dir
/// `target/<dir>`, seeded from `target/<seed>` when that exists so only
/// Gatehouse itself is compiled. When this build already has that path,
/// it is the binary under test.
pub fn privileged_build(sys_config: &str, dir: &str, seed: Option<&str>) -> PathBuf {
    if gatehouse::core::config::SYSTEM_CONFIG == sys_config {
        return gatehouse_bin();
    }
    let root = gatehouse_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let target = root.join(dir);
    if let Some(seed) = seed.map(|s| root.join(s)) {
        if !target.exists() && seed.exists() {
            let _ = sh(&format!(
                "cp -a {} {}",
                sh_quote(&seed.display().to_string()),
                sh_quote(&target.display().to_string())
            ));
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--bin", "gatehouse", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .env("GATEHOUSE_SYSTEM_CONFIG", sys_config)
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build of the privileged copy failed"
    );
    target.join("debug/gatehouse")
}

/// Name of the current unix user, from the real uid (not `$USER`).
pub fn current_user() -> String {
    User::from_uid(getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| {
            let out = Command::new("id").arg("-un").output().expect("run id -un");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
}

/// A port that was free a moment ago on 127.0.0.1 (callers retry on collision).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A loopback port on which nothing listens (for "unreachable host" tests).
pub fn closed_port() -> u16 {
    // Bound and released: nothing listens there unless another test grabs it
    // in the meantime, which the kernel's port allocator makes unlikely.
    free_port()
}

fn ssh_keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "gatehouse-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (is openssh-client installed?)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

fn write_file(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Single-quote a string for /bin/sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether a non-root sshd can give sessions a pty here. sshd chowns the
/// new pty to group `tty` and dies if it cannot; an unprivileged sshd can
/// only avoid that when devpts already creates ptys in that group (`gid=5`,
/// as systemd mounts it). Some containers mount devpts without it.
/// Err carries the reason, for a skip message.
pub fn sshd_pty_supported() -> Result<(), String> {
    if getuid().is_root() {
        return Ok(());
    }
    let Ok(Some(tty)) = nix::unistd::Group::from_name("tty") else {
        return Ok(()); // no tty group: sshd uses the user's own group
    };
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let want = format!("gid={}", tty.gid);
    let ok = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == "/dev/pts" && f[3].split(',').any(|o| o == want)
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unprivileged sshd cannot allocate ptys here: /dev/pts is not mounted with {want} \
             (sshd's chown of the pty to group tty fails); run as root or mount devpts with {want}"
        ))
    }
}

// ---------------------------------------------------------------------------
// /proc helpers
// ---------------------------------------------------------------------------

fn proc_ppid_comm(pid: i32) -> Option<(i32, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ..."; comm may contain spaces and parens.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, comm))
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Direct children of `pid` (from /proc).
pub fn children_of(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| proc_ppid_comm(p).is_some_and(|(pp, _)| pp == pid))
        .collect()
}

/// All descendants of `pid`, parents before children (not `pid` itself).
pub fn descendants_of(pid: i32) -> Vec<i32> {
    let table: Vec<(i32, i32)> = all_pids()
        .into_iter()
        .filter_map(|p| proc_ppid_comm(p).map(|(pp, _)| (p, pp)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &table {
            if pp == parent && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// sshd
// ---------------------------------------------------------------------------

/// One throwaway OpenSSH server on 127.0.0.1. `Target` and `Bastion` deref to it.
pub struct Sshd {
    /// The temp dir holding keys, config, log and the target's `home/`.
    pub dir: TempDir,
    pub port: u16,
    /// The unix user tests log in as (the current user, from the real uid).
    pub user: String,
    /// Client private key (ed25519, no passphrase) authorized on this server.
    pub key_path: PathBuf,
    pub host_key_path: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
    fingerprint: String,
}

impl Sshd {
    /// Generate keys, write the config (built by `extra_config`, given the
    /// temp dir, appended to the common part) and start sshd on a free port.
    fn start(extra_config: impl Fn(&Path) -> String) -> Sshd {
        if getuid().is_root() {
            // sshd's privilege-separation directory; absent on a fresh box.
            let _ = fs::create_dir_all("/run/sshd");
        }
        let dir = tempfile::Builder::new()
            .prefix("gh-sshd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path().to_path_buf();
        let host_key_path = d.join("ssh_host_ed25519_key");
        let key_path = d.join("client_ed25519");
        ssh_keygen(&host_key_path);
        ssh_keygen(&key_path);
        let client_pub = fs::read_to_string(d.join("client_ed25519.pub")).unwrap();
        write_file(&d.join("authorized_keys"), &client_pub, 0o600);

        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(d.join("ssh_host_ed25519_key.pub"))
            .output()
            .expect("ssh-keygen -lf");
        let fingerprint = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("fingerprint in ssh-keygen -lf output")
            .to_string();

        let config_path = d.join("sshd_config");
        let log_path = d.join("sshd.log");
        let extra = extra_config(&d);
        let mut last_log = String::new();
        for _attempt in 0..8 {
            let port = free_port();
            let config = format!(
                "ListenAddress 127.0.0.1\n\
                 Port {port}\n\
                 HostKey {hk}\n\
                 PidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\n\
                 LogLevel VERBOSE\n\
                 PrintMotd no\n\
                 PrintLastLog no\n\
                 UseDNS no\n\
                 MaxStartups 200\n\
                 MaxSessions 100\n\
                 {extra}",
                hk = host_key_path.display(),
                d = d.display(),
            );
            write_file(&config_path, &config, 0o600);
            let _ = fs::remove_file(&log_path);
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-E"])
                .arg(&log_path)
                .arg("-f")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("start {SSHD}: {e} (is openssh-server installed? run scripts/deps.sh)")
                });
            match wait_listening(&mut child, port, &log_path, Duration::from_secs(10)) {
                Ok(()) => {
                    return Sshd {
                        dir,
                        port,
                        user: current_user(),
                        key_path,
                        host_key_path,
                        config_path,
                        log_path,
                        child: Some(child),
                        fingerprint,
                    }
                }
                Err(retry) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = fs::read_to_string(&log_path).unwrap_or_default();
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!(
            "sshd did not start; config {}:\n{}\nlog:\n{last_log}",
            config_path.display(),
            fs::read_to_string(&config_path).unwrap_or_default()
        );
    }

    /// The line `ssh-keyscan -p PORT 127.0.0.1` would print for the host key:
    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self) -> String {
        let pubkey = fs::read_to_string(self.host_key_path.with_extension("pub")).unwrap();
        let mut f = pubkey.split_whitespace();
        let (kind, blob) = (f.next().unwrap(), f.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {blob}", self.port)
    }

    /// `SHA256:…` exactly as `ssh-keygen -lf` prints it.
    pub fn host_key_fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The sshd log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Pid of the listening sshd (None once stopped).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Per-connection sshd processes: the direct children of the listener.
    pub fn session_children(&self) -> Vec<i32> {
        self.pid().map(children_of).unwrap_or_default()
    }

    /// Wait until at least `n` connections are being served (authenticated or
    /// not); returns false on timeout.
    pub fn wait_sessions(&self, n: usize, timeout: Duration) -> bool {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if self.session_children().len() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Simulate the connection dying: SIGKILL every per-connection sshd
    /// process (not the shells: they then get SIGHUP from their pty, and no
    /// exit-status is ever sent). The listener keeps running. Returns the
    /// number of processes killed.
    pub fn kill_sessions(&self) -> usize {
        let Some(listener) = self.pid() else { return 0 };
        let victims: Vec<i32> = descendants_of(listener)
            .into_iter()
            .filter(|&p| proc_ppid_comm(p).is_some_and(|(_, comm)| comm.starts_with("sshd")))
            .collect();
        for &p in &victims {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        victims.len()
    }

    /// Stop the server and everything it started (idempotent; Drop calls it).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let listener = child.id() as i32;
        // Collect the tree first: once the listener dies its children are
        // re-parented and can no longer be found from it.
        let tree = descendants_of(listener);
        let _ = kill(Pid::from_raw(listener), Signal::SIGKILL);
        for &p in &tree {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        let _ = child.wait();
        // SIGKILL is asynchronous: wait (bounded) until they are really gone.
        let deadline = Instant::now() + scaled(Duration::from_secs(5));
        while tree.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `ssh` (OpenSSH client) to this server, ignoring the user's ssh config
    /// and known_hosts. `extra` comes after the destination: OpenSSH still
    /// parses options there (`-tt`), and the first non-option starts the
    /// remote command.
    pub fn ssh_cmd(&self, extra: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg("/dev/null")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-i")
            .arg(&self.key_path)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{}@127.0.0.1", self.user))
            .args(extra);
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Err(true): retry on another port; Err(false): give up.
fn wait_listening(child: &mut Child, port: u16, log: &Path, timeout: Duration) -> Result<(), bool> {
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let text = fs::read_to_string(log).unwrap_or_default();
            return Err(text.contains("Address already in use") || text.contains("Cannot bind"));
        }
        let text = fs::read_to_string(log).unwrap_or_default();
        // The log line proves *our* sshd holds the port (a connect alone could
        // reach whoever else grabbed it).
        if text.contains(&format!("Server listening on 127.0.0.1 port {port}"))
            && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A throwaway target server whose shell is a deterministic bash:
/// prompt `tgt$ `, `PS2='> '`, HOME and HISTFILE in its temp dir, no rc files.
/// A non-empty `SSH_ORIGINAL_COMMAND` (`ssh target CMD`) runs CMD with that
/// bash instead (`bash --norc --noprofile -c CMD`).
pub struct Target(Sshd);

impl Target {
    pub fn start() -> Target {
        Self::start_with_prompt("tgt$ ")
    }

    /// Same, with another PS1.
    pub fn start_with_prompt(ps1: &str) -> Target {
        Self::start_with_extra(ps1, "")
    }

    /// Same, with more sshd_config text after the common part (e.g. a
    /// `Match User …` block, which overrides the settings above it).
    pub fn start_with_extra(ps1: &str, more: &str) -> Target {
        let ps1 = ps1.to_string();
        let more = more.to_string();
        Target(Sshd::start(move |d| {
            let home = d.join("home");
            fs::create_dir_all(&home).unwrap();
            let h = home.display().to_string();
            let script = d.join("target-shell.sh");
            let body = format!(
                "#!/bin/sh\n\
                 # ForceCommand of the test target: a deterministic bash (TERM kept from sshd).\n\
                 if [ -n \"$SSH_ORIGINAL_COMMAND\" ]; then\n  \
                   exec env HOME={hq} HISTFILE={hfq} PS1={ps1q} PS2='> ' bash --norc --noprofile -c \"$SSH_ORIGINAL_COMMAND\"\n\
                 fi\n\
                 exec env HOME={hq} HISTFILE={hfq} PS1={ps1q} PS2='> ' bash --norc --noprofile -i\n",
                hq = sh_quote(&h),
                hfq = sh_quote(&format!("{h}/.bash_history")),
                ps1q = sh_quote(&ps1),
            );
            write_file(&script, &body, 0o755);
            format!("ForceCommand {}\n{more}", script.display())
        }))
    }

    /// The target user's HOME (where `.bash_history` lands).
    pub fn home(&self) -> PathBuf {
        self.0.dir.path().join("home")
    }

    /// `rows cols` of the interactive shell's terminal, as the kernel has it
    /// (`stty -F` on the pty of the one bash served here), read from
    /// outside: nothing is typed into the session. None when there is no
    /// such shell (yet).
    pub fn shell_tty_size(&self) -> Option<String> {
        let listener = self.pid()?;
        descendants_of(listener).into_iter().find_map(|p| {
            if proc_ppid_comm(p)?.1 != "bash" {
                return None;
            }
            let tty = fs::read_link(format!("/proc/{p}/fd/0")).ok()?;
            if !tty.starts_with("/dev/pts") {
                return None;
            }
            let out = Command::new("stty")
                .arg("-F")
                .arg(&tty)
                .arg("size")
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
    }

    /// Waits until the shell's terminal is `rows`x`cols` (a window change
    /// travels asynchronously from the operator's terminal to the target's
    /// pty), watching from outside the session so that no command races
    /// it. Panics at the scaled deadline.
    pub fn wait_shell_tty_size(&self, rows: u16, cols: u16, timeout: Duration) {
        let want = format!("{rows} {cols}");
        let deadline = Instant::now() + scaled(timeout);
        loop {
            let got = self.shell_tty_size();
            if got.as_deref() == Some(want.as_str()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the target's terminal never became {cols}x{rows}: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl std::ops::Deref for Target {
    type Target = Sshd;
    fn deref(&self) -> &Sshd {
        &self.0
    }
}
impl std::ops::DerefMut for Target {
    fn deref_mut(&mut self) -> &mut Sshd {
        &mut self.0
    }
}

/// A second sshd playing the bastion: `ForceCommand` is the gatehouse binary
/// and `SetEnv GATEHOUSE_CONFIG=…` passes the config; forwarding is off.
pub struct Bastion(Sshd);

impl Bastion {
    /// Bastion running Gatehouse with `gh`'s config.
    pub fn start(gh: &Gh) -> Bastion {
        let cfg = gh.config_path().display().to_string();
        Self::start_with(
            &gatehouse_bin().display().to_string(),
            &[("GATEHOUSE_CONFIG", cfg.as_str())],
        )
    }

    /// Bastion with any forced command (e.g. `ssh -tt … target` for the
    /// "nested OpenSSH" benchmark) and `SetEnv` pairs.
    pub fn start_with(force_command: &str, set_env: &[(&str, &str)]) -> Bastion {
        let mut extra = String::from(
            "PermitTTY yes\n\
             AllowTcpForwarding no\n\
             AllowStreamLocalForwarding no\n\
             X11Forwarding no\n\
             PermitTunnel no\n\
             AllowAgentForwarding no\n\
             PermitUserRC no\n",
        );
        if !set_env.is_empty() {
            extra.push_str("SetEnv");
            for (k, v) in set_env {
                extra.push_str(&format!(" \"{k}={v}\""));
            }
            extra.push('\n');
        }
        extra.push_str(&format!("ForceCommand {force_command}\n"));
        Bastion(Sshd::start(move |_| extra.clone()))
    }
}

impl std::ops::Deref for Bastion {
    type Target = Sshd;
    fn deref(&self) -> &Sshd {
        &self.0
    }
}
impl std::ops::DerefMut for Bastion {
    fn deref_mut(&mut self) -> &mut Sshd {
        &mut self.0
    }
}

// ---------------------------------------------------------------------------
// Gatehouse environment
// ---------------------------------------------------------------------------

/// TOML basic string (JSON string escaping is a subset TOML accepts).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn toml_list(items: &[String]) -> String {
    let v: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", v.join(", "))
}

/// One `[[hosts]]` entry.
#[derive(Clone, Debug)]
pub struct HostSpec {
    pub name: String,
    pub address: String,
    pub port: Option<u16>,
    pub user: String,
    pub key: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub description: Option<String>,
    pub groups: Vec<String>,
}

impl HostSpec {
    pub fn new(name: &str, address: &str, port: u16, user: &str) -> HostSpec {
        HostSpec {
            name: name.into(),
            address: address.into(),
            port: Some(port),
            user: user.into(),
            key: None,
            password_file: None,
            description: None,
            groups: Vec::new(),
        }
    }
    /// A host entry pointing at `t` (127.0.0.1, its port, user and client key).
    pub fn target(name: &str, t: &Sshd) -> HostSpec {
        HostSpec::new(name, "127.0.0.1", t.port, &t.user).key(&t.key_path)
    }
    pub fn key(mut self, p: &Path) -> Self {
        self.key = Some(p.to_path_buf());
        self
    }
    pub fn password_file(mut self, p: &Path) -> Self {
        self.password_file = Some(p.to_path_buf());
        self
    }
    pub fn description(mut self, d: &str) -> Self {
        self.description = Some(d.into());
        self
    }
    pub fn groups(mut self, g: &[&str]) -> Self {
        self.groups = g.iter().map(|s| s.to_string()).collect();
        self
    }
    fn to_toml(&self) -> String {
        let mut s = format!(
            "[[hosts]]\nname = {}\naddress = {}\n",
            toml_str(&self.name),
            toml_str(&self.address)
        );
        if let Some(p) = self.port {
            s += &format!("port = {p}\n");
        }
        s += &format!("user = {}\n", toml_str(&self.user));
        if let Some(k) = &self.key {
            s += &format!("key = {}\n", toml_str(&k.display().to_string()));
        }
        if let Some(k) = &self.password_file {
            s += &format!("password_file = {}\n", toml_str(&k.display().to_string()));
        }
        if let Some(d) = &self.description {
            s += &format!("description = {}\n", toml_str(d));
        }
        if !self.groups.is_empty() {
            s += &format!("groups = {}\n", toml_list(&self.groups));
        }
        s
    }
}

/// One `[[access]]` rule; empty lists are left out of the TOML.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub users: Vec<String>,
    pub unix_groups: Vec<String>,
    pub hosts: Vec<String>,
}

impl Access {
    pub fn new(users: &[&str], unix_groups: &[&str], hosts: &[&str]) -> Access {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Access {
            users: v(users),
            unix_groups: v(unix_groups),
            hosts: v(hosts),
        }
    }
    fn to_toml(&self) -> String {
        let mut s = String::from("[[access]]\n");
        if !self.users.is_empty() {
            s += &format!("users = {}\n", toml_list(&self.users));
        }
        if !self.unix_groups.is_empty() {
            s += &format!("unix_groups = {}\n", toml_list(&self.unix_groups));
        }
        s += &format!("hosts = {}\n", toml_list(&self.hosts));
        s
    }
}

/// Builder for `Gh`. Defaults: `host_key_policy = "strict"`,
/// `idle_timeout = "0"`, one access rule giving the current user `*`.
pub struct GhBuilder {
    host_key_policy: String,
    idle_timeout: String,
    hosts: Vec<HostSpec>,
    access: Option<Vec<Access>>,
    known_hosts: Vec<String>,
    extra_settings: String,
    extra_toml: String,
}

impl GhBuilder {
    pub fn host_key_policy(mut self, p: &str) -> Self {
        self.host_key_policy = p.into();
        self
    }
    pub fn idle_timeout(mut self, t: &str) -> Self {
        self.idle_timeout = t.into();
        self
    }
    pub fn host(mut self, h: HostSpec) -> Self {
        self.hosts.push(h);
        self
    }
    /// Host `name` → `t`, and `t`'s key in known_hosts.
    pub fn target(self, name: &str, t: &Sshd) -> Self {
        self.host(HostSpec::target(name, t))
            .known_host(&t.known_hosts_line())
    }
    /// Add an access rule (the first call replaces the default rule).
    pub fn access(mut self, a: Access) -> Self {
        self.access.get_or_insert_with(Vec::new).push(a);
        self
    }
    /// No `[[access]]` rule at all.
    pub fn no_access(mut self) -> Self {
        self.access = Some(Vec::new());
        self
    }
    /// A line for the known_hosts file.
    pub fn known_host(mut self, line: &str) -> Self {
        self.known_hosts.push(line.trim_end().to_string());
        self
    }
    /// Raw lines appended inside `[settings]`.
    pub fn extra_settings(mut self, toml: &str) -> Self {
        self.extra_settings.push_str(toml);
        self.extra_settings.push('\n');
        self
    }
    /// Raw TOML appended at the end of the file.
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push_str(toml);
        self.extra_toml.push('\n');
        self
    }
    pub fn build(self) -> Gh {
        let dir = tempfile::Builder::new()
            .prefix("gh-env-")
            .tempdir()
            .expect("tempdir");
        let user = current_user();
        let log_dir = dir.path().join("log");
        fs::create_dir_all(&log_dir).unwrap();
        let known_hosts = dir.path().join("known_hosts");
        let mut kh = self.known_hosts.join("\n");
        if !kh.is_empty() {
            kh.push('\n');
        }
        fs::write(&known_hosts, kh).unwrap();
        let mut toml = format!(
            "[settings]\nlog_dir = {}\nknown_hosts = {}\nhost_key_policy = {}\nidle_timeout = {}\n{}\n",
            toml_str(&log_dir.display().to_string()),
            toml_str(&known_hosts.display().to_string()),
            toml_str(&self.host_key_policy),
            toml_str(&self.idle_timeout),
            self.extra_settings,
        );
        for h in &self.hosts {
            toml += &h.to_toml();
            toml.push('\n');
        }
        let access = self
            .access
            .unwrap_or_else(|| vec![Access::new(&[user.as_str()], &[], &["*"])]);
        for a in &access {
            toml += &a.to_toml();
            toml.push('\n');
        }
        toml += &self.extra_toml;
        let config_path = dir.path().join("config.toml");
        fs::write(&config_path, toml).unwrap();
        Gh {
            dir,
            user,
            config_path,
            log_dir,
            known_hosts,
        }
    }
}

/// A Gatehouse test environment: `config.toml`, `log/`, `known_hosts` in a temp dir.
pub struct Gh {
    pub dir: TempDir,
    pub user: String,
    config_path: PathBuf,
    log_dir: PathBuf,
    known_hosts: PathBuf,
}

impl Gh {
    pub fn builder() -> GhBuilder {
        GhBuilder {
            host_key_policy: "strict".into(),
            idle_timeout: "0".into(),
            hosts: Vec::new(),
            access: None,
            known_hosts: Vec::new(),
            extra_settings: String::new(),
            extra_toml: String::new(),
        }
    }

    /// Shortcut: these targets under these names, default settings and access.
    pub fn with_targets(targets: &[(&str, &Target)]) -> Gh {
        targets
            .iter()
            .fold(Gh::builder(), |b, (name, t)| b.target(name, t))
            .build()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }
    pub fn known_hosts_path(&self) -> &Path {
        &self.known_hosts
    }
    /// `<log_dir>/<user>.jsonl`
    pub fn jsonl_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}.jsonl", self.user))
    }
    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.config_path).unwrap()
    }
    /// Overwrite config.toml (e.g. with a broken one).
    pub fn write_config(&self, text: &str) {
        fs::write(&self.config_path, text).unwrap();
    }

    /// All complete records of `<log_dir>/<user>.jsonl` (missing file → empty).
    /// Panics on a line that is not JSON: that is a broken audit trail.
    pub fn jsonl(&self) -> Vec<Value> {
        let Ok(bytes) = fs::read(self.jsonl_path()) else {
            return Vec::new();
        };
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => &bytes[..=i],
            None => return Vec::new(), // a record still being written
        };
        complete
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(|l| {
                serde_json::from_slice(l).unwrap_or_else(|e| {
                    panic!(
                        "{}: not a JSON line ({e}): {:?}",
                        self.jsonl_path().display(),
                        String::from_utf8_lossy(l)
                    )
                })
            })
            .collect()
    }

    /// Records whose `event` equals `event`.
    pub fn records(&self, event: &str) -> Vec<Value> {
        self.jsonl()
            .into_iter()
            .filter(|r| r["event"] == event)
            .collect()
    }

    /// Poll the JSONL until a record matches; panics (showing every record)
    /// at the deadline.
    pub fn wait_for_record(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let recs = self.jsonl();
            if let Some(r) = recs.iter().find(|r| pred(r)) {
                return r.clone();
            }
            if Instant::now() >= deadline {
                let all: Vec<String> = recs.iter().map(|r| r.to_string()).collect();
                panic!(
                    "no matching record in {} after {timeout:?}; records:\n{}",
                    self.jsonl_path().display(),
                    all.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The gatehouse binary with `GATEHOUSE_CONFIG` pointing here, the SSH_*
    /// variables of the outer environment removed and `TERM=xterm-256color`.
    pub fn command(&self) -> Command {
        let mut c = Command::new(gatehouse_bin());
        c.env("GATEHOUSE_CONFIG", &self.config_path)
            .env("TERM", "xterm-256color")
            .env_remove("SSH_ORIGINAL_COMMAND")
            .env_remove("SSH_CONNECTION")
            .env_remove("SSH_CLIENT")
            .env_remove("SSH_TTY");
        c
    }

    /// `gatehouse ARGS` in an 80x24 pty.
    pub fn spawn(&self, args: &[&str]) -> Pty {
        self.spawn_sized(args, 80, 24)
    }

    /// `gatehouse ARGS` in a `cols`x`rows` pty (a wide one for the audit
    /// table, which cuts its lines to the terminal's width).
    pub fn spawn_sized(&self, args: &[&str], cols: u16, rows: u16) -> Pty {
        let mut c = self.command();
        c.args(args);
        spawn_pty(c, cols, rows)
    }
}

// ---------------------------------------------------------------------------
// pty driver
// ---------------------------------------------------------------------------

/// Keys as a terminal sends them.
pub mod keys {
    pub const ENTER: &[u8] = b"\r";
    pub const ESC: &[u8] = b"\x1b";
    pub const TAB: &[u8] = b"\t";
    pub const BACKSPACE: &[u8] = b"\x7f";
    pub const CTRL_C: &[u8] = b"\x03";
    pub const CTRL_D: &[u8] = b"\x04";
    pub const CTRL_R: &[u8] = b"\x12";
    pub const CTRL_U: &[u8] = b"\x15";
    pub const CTRL_W: &[u8] = b"\x17";
    pub const CTRL_Z: &[u8] = b"\x1a";
    pub const CTRL_BACKSLASH: &[u8] = b"\x1c";
    pub const UP: &[u8] = b"\x1b[A";
    pub const DOWN: &[u8] = b"\x1b[B";
    pub const RIGHT: &[u8] = b"\x1b[C";
    pub const LEFT: &[u8] = b"\x1b[D";
    pub const HOME: &[u8] = b"\x1b[H";
    pub const END: &[u8] = b"\x1b[F";
}

/// What `expect` looks for: a literal (`&str`, `String`) or a `regex::Regex`,
/// matched against the output with ANSI escape sequences stripped.
pub trait Needle {
    /// (start, end, capture groups) of the first match in `hay`.
    fn find_in(&self, hay: &str) -> Option<(usize, usize, Vec<Option<String>>)>;
    fn describe(&self) -> String;
}

impl Needle for &str {
    fn find_in(&self, hay: &str) -> Option<(usize, usize, Vec<Option<String>>)> {
        hay.find(*self).map(|i| (i, i + self.len(), Vec::new()))
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}
impl Needle for String {
    fn find_in(&self, hay: &str) -> Option<(usize, usize, Vec<Option<String>>)> {
        self.as_str().find_in(hay)
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}
impl Needle for &String {
    fn find_in(&self, hay: &str) -> Option<(usize, usize, Vec<Option<String>>)> {
        self.as_str().find_in(hay)
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}
impl Needle for regex::Regex {
    fn find_in(&self, hay: &str) -> Option<(usize, usize, Vec<Option<String>>)> {
        let c = self.captures(hay)?;
        let m = c.get(0).unwrap();
        let groups = c
            .iter()
            .map(|g| g.map(|g| g.as_str().to_string()))
            .collect();
        Some((m.start(), m.end(), groups))
    }
    fn describe(&self) -> String {
        format!("regex /{}/", self.as_str())
    }
}
impl Needle for &regex::Regex {
    fn find_in(&self, hay: &str) -> Option<(usize, usize, Vec<Option<String>>)> {
        (*self).find_in(hay)
    }
    fn describe(&self) -> String {
        (*self).describe()
    }
}

/// A successful `expect`: the (ANSI-stripped) text consumed.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// Output between the previous match and this one.
    pub before: String,
    /// The matched text.
    pub matched: String,
    /// Regex groups (index 0 = whole match); empty for literals.
    pub groups: Vec<Option<String>>,
}

impl Found {
    /// `before + matched`.
    pub fn text(&self) -> String {
        format!("{}{}", self.before, self.matched)
    }
}

/// A failed wait; its Debug (what `unwrap` prints) shows the recent output.
pub struct PtyError {
    pub message: String,
    /// The last output seen, ANSI stripped.
    pub last_output: String,
}

impl fmt::Display for PtyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n---- last output (ANSI stripped) ----\n{}\n---- end of output ----",
            self.message, self.last_output
        )
    }
}
impl fmt::Debug for PtyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl std::error::Error for PtyError {}

/// Removes escape sequences (CSI, OSC, DCS/SOS/PM/APC, 2-byte ESC) and
/// control characters other than `\n` and `\t` (so `\r` goes too), and
/// decodes UTF-8 incrementally (invalid bytes become U+FFFD).
#[derive(Default)]
struct Stripper {
    state: StripState,
    utf8: Vec<u8>,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum StripState {
    #[default]
    Ground,
    Esc,
    EscInter,
    Csi,
    Osc,
    Str,
    StrEsc,
}

impl Stripper {
    fn feed(&mut self, bytes: &[u8], out: &mut String) {
        use StripState::*;
        for &b in bytes {
            self.state = match (self.state, b) {
                (Ground, 0x1b) => Esc,
                (Ground, b'\n' | b'\t') => {
                    out.push(b as char);
                    Ground
                }
                (Ground, 0..=0x1f | 0x7f) => Ground,
                (Ground, _) => {
                    self.push_utf8(b, out);
                    Ground
                }
                (Esc, b'[') => Csi,
                (Esc, b']') => Osc,
                (Esc, b'P' | b'X' | b'^' | b'_') => Str,
                (Esc, 0x20..=0x2f) => EscInter,
                (Esc, 0x1b) => Esc,
                (Esc, _) => Ground,
                (EscInter, 0x20..=0x2f) => EscInter,
                (EscInter, _) => Ground,
                (Csi, 0x1b) => Esc,
                (Csi, 0x40..=0x7e) => Ground,
                (Csi, _) => Csi,
                (Osc, 0x07) => Ground,
                (Osc | Str, 0x1b) => StrEsc,
                (Osc, _) => Osc,
                (Str, _) => Str,
                (StrEsc, b'\\') => Ground,
                (StrEsc, _) => Ground,
            };
        }
    }

    fn push_utf8(&mut self, b: u8, out: &mut String) {
        self.utf8.push(b);
        loop {
            match std::str::from_utf8(&self.utf8) {
                Ok(s) => {
                    out.push_str(s);
                    self.utf8.clear();
                    return;
                }
                Err(e) if e.error_len().is_none() => return, // incomplete
                Err(e) => {
                    let good = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.utf8[..good]).unwrap());
                    out.push('\u{fffd}');
                    let bad = good + e.error_len().unwrap();
                    self.utf8.drain(..bad);
                    if self.utf8.is_empty() {
                        return;
                    }
                }
            }
        }
    }
}

/// Strip ANSI escape sequences and control characters (except `\n`, `\t`).
pub fn strip_ansi(bytes: &[u8]) -> String {
    let mut out = String::new();
    Stripper::default().feed(bytes, &mut out);
    out
}

/// A child process on a real pty (it is the session leader and the pty is its
/// controlling terminal, as under sshd).
pub struct Pty {
    master: Option<File>,
    child: Child,
    status: Option<ExitStatus>,
    stripper: Stripper,
    text: String,
    consumed: usize,
    raw: Vec<u8>,
    eof: bool,
    screen: vt100::Parser,
    /// Deadline used by `expect`, `send`, … (default 15 s), before the
    /// suite's scale factor (`timeout_scale`) is applied.
    pub timeout: Duration,
}

/// TIOCSWINSZ on a pty fd (the master: the kernel then sends SIGWINCH to
/// the pty's foreground process group). `Pty::resize` for the usual case;
/// this for a thread that holds its own dup of the master.
pub fn set_winsize(fd: &impl AsRawFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which points
    // to a live, initialised local; `fd` is an open pty fd owned by the caller.
    let r = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Run `cmd` on a new pty of `cols`×`rows`. Stdin/stdout/stderr become the
/// pty; the child gets its own session with the pty as controlling terminal.
/// `TERM=xterm-256color` is set unless `cmd` sets TERM. Use
/// `CommandExt::arg0` on `cmd` for a login-shell `argv[0]` (`-gatehouse`).
pub fn spawn_pty(mut cmd: Command, cols: u16, rows: u16) -> Pty {
    let master =
        posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).expect("posix_openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let slave_name = ptsname_r(&master).expect("ptsname_r");
    set_winsize(&master, cols, rows).expect("TIOCSWINSZ");
    // std opens with O_CLOEXEC, so no other child inherits the slave.
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(&slave_name)
        .expect("open pty slave");
    let stdio = || Stdio::from(OwnedFd::from(slave.try_clone().expect("dup slave")));
    cmd.stdin(stdio()).stdout(stdio()).stderr(stdio());
    if !cmd.get_envs().any(|(k, _)| k == OsStr::new("TERM")) {
        cmd.env("TERM", "xterm-256color");
    }
    // SAFETY: the closure runs in the forked child before exec and only makes
    // two async-signal-safe syscalls (setsid, ioctl) on fds it owns; no
    // allocation, no locks.
    unsafe {
        cmd.pre_exec(|| {
            if nix::libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    drop(cmd); // closes the parent's copies of the slave
    drop(slave);
    let master = File::from(OwnedFd::from(master));
    let fl = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL).unwrap());
    fcntl(&master, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK)).unwrap();
    let nz = |n: u16| std::num::NonZeroU16::new(n.max(1)).unwrap();
    Pty {
        master: Some(master),
        child,
        status: None,
        stripper: Stripper::default(),
        text: String::new(),
        consumed: 0,
        raw: Vec::new(),
        eof: false,
        screen: vt100::Parser::new(nz(rows), nz(cols), 0),
        timeout: DEFAULT_TIMEOUT,
    }
}

impl Pty {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The master side, for tests that read the raw stream themselves (a
    /// slow reader, exact byte counts). Non-blocking. What is read through
    /// it is not seen by `expect`/`output`/`screen_text`. None after hangup.
    pub fn master_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.master.as_ref().map(|m| m.as_fd())
    }

    /// Wait for `needle` with the default timeout (`self.timeout`).
    pub fn expect(&mut self, needle: impl Needle) -> Result<Found, PtyError> {
        self.expect_within(needle, self.timeout)
    }

    /// Wait for `needle` in the ANSI-stripped output after the previous
    /// match; consumes up to the end of the match.
    pub fn expect_within(
        &mut self,
        needle: impl Needle,
        timeout: Duration,
    ) -> Result<Found, PtyError> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let hay = &self.text[self.consumed..];
            if let Some((s, e, groups)) = needle.find_in(hay) {
                let found = Found {
                    before: hay[..s].to_string(),
                    matched: hay[s..e].to_string(),
                    groups,
                };
                self.consumed += e;
                return Ok(found);
            }
            if self.eof {
                return Err(self.error(format!(
                    "end of output (child exited or pty hung up) while waiting for {}",
                    needle.describe()
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.error(format!(
                    "timed out after {timeout:?} waiting for {}",
                    needle.describe()
                )));
            }
            self.read_some(deadline - now);
        }
    }

    /// Wait until the output ends (child exited and closed the pty).
    pub fn expect_eof(&mut self, timeout: Duration) -> Result<String, PtyError> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        while !self.eof {
            let now = Instant::now();
            if now >= deadline {
                return Err(self.error(format!("timed out after {timeout:?} waiting for EOF")));
            }
            self.read_some(deadline - now);
        }
        let rest = self.text[self.consumed..].to_string();
        self.consumed = self.text.len();
        Ok(rest)
    }

    /// Wait until the parsed screen (vt100 model of what a terminal shows)
    /// contains `needle`; returns the screen text.
    pub fn expect_screen(
        &mut self,
        needle: impl Needle,
        timeout: Duration,
    ) -> Result<String, PtyError> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen_text();
            if needle.find_in(&screen).is_some() {
                return Ok(screen);
            }
            let now = Instant::now();
            if self.eof || now >= deadline {
                let msg = format!(
                    "screen never showed {} ({}); screen:\n{screen}",
                    needle.describe(),
                    if self.eof { "EOF" } else { "timeout" }
                );
                return Err(self.error(msg));
            }
            self.read_some(deadline - now);
        }
    }

    /// For throughput measurements: read until the raw bytes `marker` appear,
    /// WITHOUT keeping, stripping or screen-parsing the output (the vt100
    /// model alone parses ~24 MiB/s and would cap the measurement). Returns
    /// the number of bytes read, marker included. Output read this way is not
    /// visible to `expect`/`output`/`screen_text`.
    pub fn read_until_raw(&mut self, marker: &[u8], timeout: Duration) -> Result<u64, PtyError> {
        assert!(!marker.is_empty());
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        let mut total = 0u64;
        let mut tail: Vec<u8> = Vec::with_capacity(marker.len() * 2 + 65536);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let Some(m) = self.master.as_ref() else {
                return Err(self.error("read_until_raw after hangup".into()));
            };
            match (&*m).read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    total += n as u64;
                    tail.extend_from_slice(&buf[..n]);
                    if tail.windows(marker.len()).any(|w| w == marker) {
                        return Ok(total);
                    }
                    let keep = marker.len() - 1;
                    let cut = tail.len() - keep.min(tail.len());
                    tail.drain(..cut);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => self.eof = true,
            }
            if self.eof {
                return Err(self.error(format!(
                    "EOF after {total} bytes waiting for raw {:?}",
                    String::from_utf8_lossy(marker)
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.error(format!(
                    "timed out after {timeout:?} ({total} bytes) waiting for raw {:?}",
                    String::from_utf8_lossy(marker)
                )));
            }
            self.wait_io(PollFlags::POLLIN, deadline - now);
        }
    }

    /// Read whatever arrives during `dur`.
    pub fn pump(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        loop {
            let now = Instant::now();
            if now >= deadline || self.eof {
                return;
            }
            self.read_some(deadline - now);
        }
    }

    /// Text of the current screen (vt100 model).
    pub fn screen_text(&self) -> String {
        self.screen.screen().contents()
    }
    /// The vt100 model itself (cursor, alternate screen, attributes).
    pub fn screen(&self) -> &vt100::Screen {
        self.screen.screen()
    }
    /// All output so far, ANSI stripped.
    pub fn output(&self) -> &str {
        &self.text
    }
    /// Stripped output not yet consumed by `expect`.
    pub fn pending_output(&self) -> &str {
        &self.text[self.consumed..]
    }
    /// All output so far, raw bytes.
    pub fn raw_output(&self) -> &[u8] {
        &self.raw
    }
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Write bytes to the child (keystrokes), reading its output meanwhile so
    /// neither side can block the other.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), PtyError> {
        let mut buf = bytes.as_ref();
        let deadline = Instant::now() + scaled(self.timeout);
        while !buf.is_empty() {
            let Some(m) = self.master.as_ref() else {
                return Err(self.error("send after hangup".into()));
            };
            match (&*m).write(buf) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(self.error("timed out writing to the pty".into()));
                    }
                    self.wait_io(PollFlags::POLLOUT, Duration::from_millis(50));
                    self.read_some(Duration::ZERO);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(format!("write to pty: {e}"))),
            }
        }
        Ok(())
    }

    /// `line` then Enter (`\r`, as a terminal sends it).
    pub fn send_line(&mut self, line: &str) -> Result<(), PtyError> {
        self.send(format!("{line}\r"))
    }

    /// Set the window size; the kernel sends SIGWINCH to the foreground
    /// process group of the pty.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        if let Some(m) = &self.master {
            set_winsize(m, cols, rows).expect("TIOCSWINSZ");
        }
        let nz = |n: u16| std::num::NonZeroU16::new(n.max(1)).unwrap();
        self.screen.set_size(nz(rows), nz(cols));
    }

    /// Close the master side: the child (session leader) and its foreground
    /// group get SIGHUP, and their tty reads/writes fail (EIO), as when an
    /// ssh connection drops. No more output can be read afterwards.
    pub fn hangup(&mut self) {
        self.master = None;
        self.eof = true;
    }

    /// Send a signal to the child process.
    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid()), sig);
    }

    /// Exit status within `timeout` (None if still running): the exit code,
    /// or 128+signal when killed by a signal, as a shell reports it. Output is
    /// read meanwhile so the child never blocks on a full pty.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exit_code() {
                return Some(code);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let step = (deadline - now).min(Duration::from_millis(20));
            if self.master.is_some() && !self.eof {
                self.read_some(step);
            } else {
                std::thread::sleep(step);
            }
        }
    }

    /// Exit status if the child has exited (non-blocking).
    pub fn exit_code(&mut self) -> Option<i32> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
            .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
    }

    /// The raw `ExitStatus` once exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.exit_code();
        self.status
    }

    fn wait_io(&self, flags: PollFlags, dur: Duration) -> bool {
        let Some(m) = &self.master else { return false };
        let mut fds = [PollFd::new(m.as_fd(), flags)];
        let ms = dur.as_millis().min(i32::MAX as u128) as i32;
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
    }

    /// Wait up to `dur` for output and read all that is available.
    fn read_some(&mut self, dur: Duration) {
        if self.master.is_none() {
            self.eof = true;
            return;
        }
        self.wait_io(PollFlags::POLLIN, dur);
        let mut buf = [0u8; 65536];
        loop {
            let m = self.master.as_ref().unwrap();
            match (&*m).read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => {
                    let chunk = &buf[..n];
                    self.raw.extend_from_slice(chunk);
                    self.screen.process(chunk);
                    self.stripper.feed(chunk, &mut self.text);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EIO: every slave fd is closed (the child and its children exited).
                Err(_) => {
                    self.eof = true;
                    return;
                }
            }
        }
    }

    fn error(&self, message: String) -> PtyError {
        // Last ~3000 characters, cut on a char boundary.
        let mut start = self.text.len().saturating_sub(3000);
        while !self.text.is_char_boundary(start) {
            start += 1;
        }
        PtyError {
            message: format!("{message} [pid {}]", self.pid()),
            last_output: self.text[start..].to_string(),
        }
    }
}

/// A window size change travels asynchronously (SIGWINCH → the relay or
/// ssh client → a window-change request → the target's pty), racing the
/// next line typed. Runs `stty size` at the target's `prompt` until it
/// prints `rows cols`, pausing briefly between tries; returns how many
/// times it ran (each is a typed command). Panics at the scaled deadline.
pub fn stty_size_until(
    p: &mut Pty,
    prompt: &str,
    rows: u16,
    cols: u16,
    timeout: Duration,
) -> usize {
    let want = format!("\n{rows} {cols}\n");
    let deadline = Instant::now() + scaled(timeout);
    for tries in 1.. {
        p.send_line("stty size").unwrap();
        let f = p.expect(prompt).unwrap();
        if f.before.contains(&want) {
            return tries;
        }
        assert!(
            Instant::now() < deadline,
            "the target never saw {cols}x{rows} after {tries} tries; last: {:?}",
            f.before
        );
        p.pump(Duration::from_millis(100));
    }
    unreachable!()
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.master = None; // hang up first, then make sure
        if self.exit_code().is_none() {
            let pid = Pid::from_raw(self.pid());
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = kill(pid, Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Appended for tests/privsep.rs
// ---------------------------------------------------------------------------

impl Bastion {
    /// A bastion whose config is the common part plus exactly `extra` (for
    /// the shipped `packaging/sshd_config.d/gatehouse.conf`, whose `Match`
    /// block must come last).
    pub fn start_raw(extra: &str) -> Bastion {
        let extra = extra.to_string();
        Bastion(Sshd::start(move |_| extra.clone()))
    }
}

/// The text of `path` once it contains `needle` (read again every 50 ms),
/// or what it holds when `timeout` runs out: for files another process
/// writes as it goes (a live session's recording).
pub fn file_text_once_it_holds(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reports a skipped test so that it cannot pass silently: on stderr (shown
/// with `--nocapture`) and appended to `target/tmp/skipped.txt`, which
/// `make test` prints after its summary and counts as skipped.
pub fn skip(why: &str) {
    eprintln!("SKIPPED (loudly): {why}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.txt");
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let _ = writeln!(f, "{test}: {why}");
    }
}

/// True (after a loud skip) when sshd cannot give sessions a pty here.
pub fn skip_without_pty() -> bool {
    match sshd_pty_supported() {
        Ok(()) => false,
        Err(why) => {
            skip(&why);
            true
        }
    }
}

/// A throwaway unix account with a password (and optionally sudo rights),
/// removed on drop, panics included. Root only: `None` after a loud skip
/// otherwise (or when sudo is wanted but not installed).
pub struct TempUser {
    pub name: String,
    sudo: bool,
}

impl TempUser {
    pub fn create(prefix: &str, password: &str, sudo: bool) -> Option<TempUser> {
        if !getuid().is_root() {
            skip(&format!(
                "{prefix}: creating a user with a password needs root"
            ));
            return None;
        }
        if sudo && !Path::new("/usr/bin/sudo").exists() {
            skip("sudo is not installed (apt-get install -y sudo)");
            return None;
        }
        let name = format!("{prefix}_{}", std::process::id());
        let ok = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "useradd {name} failed");
        let user = TempUser { name, sudo };
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        writeln!(chpasswd.stdin.take().unwrap(), "{}:{password}", user.name).unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
        if sudo {
            fs::write(
                user.sudoers(),
                format!("{0} ALL=(ALL) ALL\nDefaults:{0} lecture=never\n", user.name),
            )
            .unwrap();
        }
        Some(user)
    }

    fn sudoers(&self) -> PathBuf {
        Path::new("/etc/sudoers.d").join(&self.name)
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        if self.sudo {
            let _ = fs::remove_file(self.sudoers());
        }
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// What [`run_timed`] saw of a finished (or killed) command.
pub struct Ran {
    /// Exit code; -1 for a signal, -2 when killed at the timeout.
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `cmd` with stdout and stderr captured (read on threads, so neither
/// pipe can fill and stall it), `input` written to its stdin when given
/// (otherwise stdin is as the caller set it), killed after `timeout`.
pub fn run_timed(mut cmd: Command, input: Option<Vec<u8>>, timeout: Duration) -> Ran {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let feeder = input.map(|bytes| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -2;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    Ran {
        code,
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    }
}
