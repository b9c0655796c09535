//! Privilege separation and escape-proofing, end to end, as root: the real
//! binary installed setuid to the `gatehouse` account, throwaway operator
//! accounts whose login shell it is, a bastion sshd configured with the
//! shipped `packaging/sshd_config.d/gatehouse.conf`, a target sshd, and the
//! real OpenSSH client, scp, sftp and rsync (docs/threat-model.md maps each
//! case to its threat).
//!
//! Not root: one loud `SKIPPED` line, never a silent pass.
//!
//! The built-in config path. A privileged Gatehouse reads only the path
//! compiled into it (`config::SYSTEM_CONFIG`). Rather than touching the
//! machine's real `/etc/gatehouse` (an installed Gatehouse, or another run,
//! would be clobbered), this test builds a second copy of the binary with
//! `GATEHOUSE_SYSTEM_CONFIG=/run/gatehouse-privsep-test/etc/config.toml` into
//! its own target dir (`<target>/privsep-test`; the first build takes a
//! minute, later ones are incremental). `/run` is root-only, so nobody can
//! pre-plant that directory. If the test binary was already built with that
//! path it is used as is.
//!
//! All cases share one set-up (users, servers, config at a fixed path) and
//! run in sequence inside one `#[test]`, under a machine-wide lock (two
//! checkouts testing at once take turns instead of deleting each other's
//! set-up); each is a named function whose
//! failure is reported by name, and every account and file made here is
//! removed by a `Drop` guard, panics included.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::unistd::{Group, User};
use serde_json::Value;

const BASE: &str = "/run/gatehouse-privsep-test";
const SYS_CONFIG: &str = "/run/gatehouse-privsep-test/etc/config.toml";
const MENU: &str = "pick a host";
const T: Duration = Duration::from_secs(20);
const SNIPPET: &str = include_str!("../packaging/sshd_config.d/gatehouse.conf");

// ---------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------

/// An exclusive flock(2) on `/run/gatehouse-privsep-test.lock`, waited for.
fn machine_lock() -> nix::fcntl::Flock<fs::File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/run/gatehouse-privsep-test.lock")
        .expect("open the privsep lock file");
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the privsep lock file")
}

/// Everything one run made; `Drop` removes it all.
struct Env {
    bin: PathBuf,
    _prefix: tempfile::TempDir,
    scratch: tempfile::TempDir,
    ops: Vec<String>,
    group: String,
    made_account: bool,
    gh_uid: u32,
    adm_gid: u32,
    target: Option<Target>,
    bastion: Option<Bastion>,
    _tarpit: TcpListener,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.bastion.take();
        self.target.take();
        for op in &self.ops {
            if let Ok(Some(u)) = User::from_name(op) {
                for pid in pids_of_uid(u.uid.as_raw()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            sh(&format!("userdel -r {op} 2>/dev/null"));
        }
        sh(&format!("groupdel {} 2>/dev/null", self.group));
        if self.made_account {
            sh("userdel gatehouse 2>/dev/null; groupdel gatehouse 2>/dev/null");
        }
        let _ = fs::remove_dir_all(BASE);
    }
}

impl Env {
    fn target(&self) -> &Target {
        self.target.as_ref().unwrap()
    }
    fn bastion(&self) -> &Bastion {
        self.bastion.as_ref().unwrap()
    }
    fn op(&self, i: usize) -> &str {
        &self.ops[i]
    }
    fn uid(&self, op: &str) -> u32 {
        User::from_name(op).unwrap().unwrap().uid.as_raw()
    }
    fn log(&self, op: &str) -> PathBuf {
        Path::new(BASE).join("log").join(format!("{op}.jsonl"))
    }
    fn records(&self, op: &str) -> Vec<Value> {
        fs::read_to_string(self.log(op))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL {l:?}: {e}")))
            .collect()
    }
    fn denied(&self, op: &str) -> Vec<String> {
        self.records(op)
            .iter()
            .filter(|r| r["event"] == "denied")
            .map(|r| r["request"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// The OpenSSH client as operator `op`, no user config, key auth.
    fn ssh(&self, op: &str, extra: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.ssh_opts()).arg(format!("{op}@127.0.0.1"));
        c.args(extra);
        c
    }
    fn ssh_opts(&self) -> Vec<String> {
        let b = self.bastion();
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-p".into(),
            b.port.to_string(),
            "-i".into(),
            b.key_path.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }
    /// The same options as one `-e` string for rsync, or `-o` list for scp/sftp.
    fn ssh_e(&self) -> String {
        let mut s = String::from("ssh");
        for o in self.ssh_opts() {
            s.push(' ');
            s.push_str(&sh_quote(&o));
        }
        s
    }
    fn scp_opts(&self) -> Vec<String> {
        let b = self.bastion();
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-P".into(),
            b.port.to_string(),
            "-i".into(),
            b.key_path.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }
    fn scratch(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }
    /// `sh -c CMD` as operator `op`: the "they somehow got a shell" case.
    fn as_op(&self, op: &str, cmd: &str) -> (i32, String) {
        sh(&format!("su -s /bin/sh {op} -c {}", sh_quote(cmd)))
    }
}

fn setup() -> Env {
    let bin_src = privileged_build(SYS_CONFIG, "privsep-test", None);
    let tag = std::process::id() % 100_000;
    let group = format!("ghusers{tag}");
    let ops = vec![format!("ghopa{tag}"), format!("ghopb{tag}")];
    let made_account = User::from_name("gatehouse").ok().flatten().is_none();
    if made_account {
        must("useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gatehouse");
    }
    let gh_uid = User::from_name("gatehouse").unwrap().unwrap().uid.as_raw();
    let adm_gid = Group::from_name("adm")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .unwrap_or(0);

    // The "installed" binary: gatehouse:gatehouse 6755 in a prefix every
    // operator can reach.
    let prefix = tempfile::Builder::new()
        .prefix("gh-privsep-prefix-")
        .tempdir()
        .unwrap();
    fs::set_permissions(prefix.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = prefix.path().join("gatehouse");
    fs::copy(&bin_src, &bin).unwrap();
    must(&format!(
        "chown gatehouse:gatehouse {b} && chmod 6755 {b}",
        b = bin.display()
    ));
    let scratch = tempfile::Builder::new()
        .prefix("gh-privsep-scratch-")
        .tempdir()
        .unwrap();
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let tarpit = TcpListener::bind("127.0.0.1:0").unwrap();

    // Build the guard first so that a failure below still cleans up.
    let mut env = Env {
        bin: bin.clone(),
        _prefix: prefix,
        scratch,
        ops: Vec::new(),
        group: group.clone(),
        made_account,
        gh_uid,
        adm_gid,
        target: None,
        bastion: None,
        _tarpit: tarpit,
    };
    let _ = fs::remove_dir_all(BASE);
    must(&format!("groupadd {group}"));
    for op in &ops {
        must(&format!(
            "useradd -m -s {} -G {group} {op} && usermod -p '*' {op}",
            bin.display()
        ));
        env.ops.push(op.clone());
    }

    // The target serves sftp too (exec_and_transfer_through_the_setuid_binary).
    let target = Target::start_with_extra("tgt$ ", "Subsystem sftp /usr/lib/openssh/sftp-server\n");
    let tarpit_port = env._tarpit.local_addr().unwrap().port();
    // The installed layout (postinst): etc 0750 root:gatehouse, keys 0700
    // gatehouse, log 2750 gatehouse:adm.
    let etc = Path::new(BASE).join("etc");
    must(&format!(
        "install -d -m 0755 {BASE} && install -d -o root -g gatehouse -m 0750 {e} && \
         install -d -o gatehouse -g gatehouse -m 0700 {e}/keys && \
         install -o gatehouse -g gatehouse -m 0600 {k} {e}/keys/target_ed25519 && \
         printf 'not-the-password\\n' > {e}/keys/web01.pw && \
         chown gatehouse:gatehouse {e}/keys/web01.pw && chmod 0600 {e}/keys/web01.pw && \
         install -d -o gatehouse -g adm -m 2750 {BASE}/log && chmod 2750 {BASE}/log",
        e = etc.display(),
        k = target.key_path.display()
    ));
    fs::write(etc.join("known_hosts"), target.known_hosts_line() + "\n").unwrap();
    let config = format!(
        "[settings]\nlog_dir = \"{BASE}/log\"\nknown_hosts = \"{e}/known_hosts\"\n\
         host_key_policy = \"strict\"\nidle_timeout = \"0\"\nconnect_timeout = \"{ct}\"\n\n\
         [[hosts]]\nname = \"web01\"\naddress = \"127.0.0.1\"\nport = {tp}\nuser = \"{tu}\"\n\
         key = \"{e}/keys/target_ed25519\"\npassword_file = \"{e}/keys/web01.pw\"\n\n\
         [[hosts]]\nname = \"slow01\"\naddress = \"127.0.0.1\"\nport = {slow}\nuser = \"nobody\"\n\
         key = \"{e}/keys/target_ed25519\"\n\n\
         [[hosts]]\nname = \"agent01\"\naddress = \"127.0.0.1\"\nport = {tp}\nuser = \"{tu}\"\n\
         agent = true\n\n\
         [[access]]\nunix_groups = [\"{group}\"]\nhosts = [\"*\"]\nexec = true\ntransfer = true\n",
        e = etc.display(),
        tp = target.port,
        tu = target.user,
        slow = tarpit_port,
        // Per connection step, for web01 too: scaled, so a loaded machine's
        // slow handshake is not a failure; slow01 (a tarpit) still ends.
        ct = scaled_setting(3),
    );
    fs::write(SYS_CONFIG, config).unwrap();
    must(&format!(
        "chown root:gatehouse {SYS_CONFIG} {e}/known_hosts && chmod 0640 {SYS_CONFIG} && chmod 0644 {e}/known_hosts",
        e = etc.display()
    ));

    // The bastion: Debian's sftp subsystem line, AcceptEnv for the SendEnv
    // case (to show that even accepted variables change nothing), then the
    // shipped snippet for our group and binary.
    let snippet = SNIPPET
        .replace(
            "Match Group gatehouse-users",
            &format!("Match Group {group}"),
        )
        .replace(
            "ForceCommand /usr/bin/gatehouse",
            &format!("ForceCommand {}", bin.display()),
        )
        // A lax admin, for `another_operators_agent_socket_is_refused`: the
        // snippet's own list (which replaces the global one inside the
        // Match block) lets the operator name an agent socket.
        .replace(
            "AcceptEnv GATEHOUSE_HOST",
            "AcceptEnv GATEHOUSE_HOST SSH_AUTH_SOCK",
        );
    assert!(snippet.contains(&format!("Match Group {group}")));
    assert!(snippet.contains("SSH_AUTH_SOCK"));
    let extra = format!(
        "Subsystem sftp /usr/lib/openssh/sftp-server\n\
         AcceptEnv LANG LC_* LD_PRELOAD GATEHOUSE_CONFIG HOME XDG_CONFIG_HOME\n\
         {snippet}\n"
    );
    let bastion = Bastion::start_raw(&extra);
    // sshd reads AuthorizedKeysFile as the user: let the operators read the
    // (public) authorized_keys in the fixture's dir.
    fs::set_permissions(bastion.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(
        bastion.dir.path().join("authorized_keys"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    env.target = Some(target);
    env.bastion = Some(bastion);
    env
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn proc_status_uid(pid: i32) -> Option<(u32, u32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Uid:"))?;
    let mut f = line.split_whitespace().skip(1);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Pids whose real uid is `uid`.
fn pids_of_uid(uid: u32) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&p| proc_status_uid(p).is_some_and(|(r, _)| r == uid))
        .collect()
}

/// Processes of the operator other than sshd and Gatehouse: an escape.
fn foreign_processes(uid: u32) -> Vec<String> {
    pids_of_uid(uid)
        .into_iter()
        .map(|p| (p, comm(p)))
        .filter(|(_, c)| !c.is_empty() && !c.starts_with("sshd") && c != "gatehouse")
        .map(|(p, c)| format!("{p} {c}"))
        .collect()
}

fn assert_no_foreign(env: &Env, op: &str) {
    let f = foreign_processes(env.uid(op));
    assert!(
        f.is_empty(),
        "operator {op} has processes on the bastion: {f:?}"
    );
}

fn gatehouse_pids(uid: u32) -> Vec<i32> {
    pids_of_uid(uid)
        .into_iter()
        .filter(|&p| comm(p) == "gatehouse")
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + scaled(timeout);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` with stdin from `/dev/null`, killed after `timeout`.
/// Returns (exit code or -1, stdout+stderr).
fn run(mut cmd: Command, timeout: Duration) -> (i32, String) {
    cmd.stdin(Stdio::null());
    let r = run_timed(cmd, None, scaled(timeout));
    let mut s = String::from_utf8_lossy(&r.stdout).into_owned();
    s.push_str(&r.stderr);
    (r.code, s)
}

/// A listener that must never see a connection (the far end of a tunnel).
struct Victim(TcpListener);

impl Victim {
    fn new() -> Victim {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Victim(l)
    }
    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }
    fn assert_untouched(&self, why: &str) {
        // Give a tunnel that would have opened time to connect.
        std::thread::sleep(Duration::from_millis(500));
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, from)) => panic!("{why}: a tunnel reached the victim from {from}"),
            Err(e) => panic!("{why}: accept: {e}"),
        }
    }
}

fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + scaled(timeout);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Kills a background ssh by its pid (we started it).
struct Bg(std::process::Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bg(mut cmd: Command) -> Bg {
    Bg(cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

fn menu_session(env: &Env, op: &str, cols: u16, rows: u16, extra_env: &[(&str, &str)]) -> Pty {
    let mut c = env.ssh(op, &["-tt"]);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let mut p = spawn_pty(c, cols, rows);
    p.expect(MENU).unwrap();
    p
}

fn leave_menu(p: &mut Pty) {
    p.send(keys::ESC).unwrap();
    assert_eq!(p.wait_exit(T), Some(0), "leaving the menu");
}

// ---------------------------------------------------------------------------
// Cases: a normal login
// ---------------------------------------------------------------------------

/// Menu → host → command → logout, with its JSONL written by the setuid
/// process (owner gatehouse, group adm, 0640); meanwhile the operator cannot
/// read that process's memory or environment.
fn normal_login_is_audited_by_the_setuid_process(env: &Env) {
    let op = env.op(0);
    let mut p = menu_session(env, op, 100, 30, &[]);
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("echo privsep-$((6*7))").unwrap();
    p.expect("privsep-42").unwrap();
    let pids = gatehouse_pids(env.uid(op));
    assert_eq!(pids.len(), 1, "one gatehouse process for {op}: {pids:?}");
    let (ruid, euid) = proc_status_uid(pids[0]).unwrap();
    assert_eq!(
        (ruid, euid),
        (env.uid(op), env.gh_uid),
        "real uid operator, effective gatehouse"
    );
    for f in ["environ", "mem", "maps"] {
        let (code, out) = env.as_op(op, &format!("cat /proc/{}/{f} >/dev/null", pids[0]));
        assert_ne!(code, 0, "operator read /proc/PID/{f}: {out}");
    }
    assert_no_foreign(env, op);
    p.send_line("exit").unwrap();
    p.expect(MENU).unwrap();
    leave_menu(&mut p);

    let meta = fs::metadata(env.log(op)).unwrap();
    assert_eq!(meta.uid(), env.gh_uid, "log owned by gatehouse");
    assert_eq!(meta.gid(), env.adm_gid, "log group adm (setgid dir)");
    assert_eq!(meta.mode() & 0o7777, 0o640);
    let recs = env.records(op);
    let events: Vec<&str> = recs.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "login",
            "session_start",
            "command",
            "command",
            "session_end",
            "logout"
        ]
    );
    assert_eq!(recs[2]["command"], "echo privsep-$((6*7))");
    assert!(recs.iter().all(|r| r["user"] == op));
    assert!(recs[0]["client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
}

/// Automation through the setuid binary: `HOST -- COMMAND` runs on the
/// target, and sftp reaches the target's sftp through `GATEHOUSE_HOST`,
/// which the shipped snippet accepts and the environment scrub keeps.
fn exec_and_transfer_through_the_setuid_binary(env: &Env) {
    let op = env.op(0);
    let (code, out) = run(env.ssh(op, &["web01 -- echo via-$((6*7)); exit 3"]), T);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("via-42"), "{out}");
    let src = env.scratch("put.txt");
    fs::write(&src, "privsep upload").unwrap();
    let dst = format!("/tmp/gh-privsep-put-{}", std::process::id());
    let batch = env.scratch("put.batch");
    fs::write(&batch, format!("put {} {dst}\n", src.display())).unwrap();
    let mut c = Command::new("sftp");
    c.args(env.scp_opts())
        .args(["-o", "SetEnv=GATEHOUSE_HOST=web01", "-b"])
        .arg(&batch)
        .arg(format!("{op}@127.0.0.1"));
    let (code, out) = run(c, T);
    let written = fs::read_to_string(&dst).ok();
    let _ = fs::remove_file(&dst);
    assert_eq!(code, 0, "sftp: {out}");
    assert_eq!(written.as_deref(), Some("privsep upload"));
    let recs = env.records(op);
    assert!(recs
        .iter()
        .any(|r| r["event"] == "exec" && r["command"] == "echo via-$((6*7)); exit 3"));
    assert!(
        recs.iter().any(|r| r["event"] == "file"
            && r["op"] == "upload"
            && r["path"] == dst.as_str()
            && r["bytes"] == 14),
        "{recs:#?}"
    );
    assert!(recs.iter().all(|r| r["user"] == op));
    // Many hosts at once, as the setuid binary (issue 19): web01 runs;
    // slow01, a port that accepts and never speaks SSH, times out at its
    // handshake (connect_timeout 3s) without holding up the batch's end;
    // agent01 (`agent = true`) needs the operator's forwarded agent.
    let (code, out) = run(env.ssh(op, &["* -- echo batch-$((6*7))"]), T);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("web01: batch-42"), "{out}");
    assert!(
        out.contains("gatehouse: slow01: not reached: connection timed out"),
        "{out}"
    );
    // agent01 logs in with the operator's agent, which is not forwarded.
    assert!(
        out.contains("gatehouse: agent01: needs your own key: connect with ssh -A"),
        "{out}"
    );
    let recs = env.records(op);
    let exec = recs
        .iter()
        .rev()
        .find(|r| r["event"] == "exec" && r["host"] == "web01")
        .expect("exec record");
    let err = recs
        .iter()
        .rev()
        .find(|r| r["event"] == "error" && r["host"] == "slow01")
        .expect("error record");
    assert!(exec["batch"].is_string(), "{exec}");
    assert_eq!(err["batch"], exec["batch"], "{err}");
    assert_no_foreign(env, op);
}

// ---------------------------------------------------------------------------
// Cases: no way out
// ---------------------------------------------------------------------------

fn shell_and_command_requests_are_refused(env: &Env) {
    let op = env.op(0);
    let marker = env.scratch("ran");
    let touch = format!("sh -c 'touch {}'", marker.display());
    for req in ["bash", "sh -c id", touch.as_str(), "/bin/sh -i"] {
        let (code, out) = run(env.ssh(op, &[req]), T);
        assert_eq!(code, 1, "{req}: {out}");
        assert!(out.contains("gatehouse:"), "{req}: one clear line: {out}");
        assert!(!out.contains("uid="), "{req} ran: {out}");
        assert!(
            env.denied(op).iter().any(|d| d == req),
            "{req}: no denied record"
        );
    }
    assert!(!marker.exists(), "a command ran on the bastion");
    assert_no_foreign(env, op);
}

fn sftp_subsystem_is_refused(env: &Env) {
    let op = env.op(0);
    let (code, out) = run(env.ssh(op, &["-s", "sftp"]), T);
    assert_ne!(code, 0, "{out}");
    assert!(env.denied(op).iter().any(|d| d.contains("sftp-server")));
    // The real sftp client cannot fetch a file either.
    let batch = env.scratch("sftp.batch");
    let got = env.scratch("sftp-got");
    fs::write(&batch, format!("get /etc/hostname {}\n", got.display())).unwrap();
    let mut c = Command::new("sftp");
    c.args(env.scp_opts())
        .arg("-b")
        .arg(&batch)
        .arg(format!("{op}@127.0.0.1"));
    let (code, out) = run(c, T);
    assert_ne!(code, 0, "{out}");
    assert!(!got.exists());
    assert_no_foreign(env, op);
}

fn scp_to_and_from_the_bastion_is_refused(env: &Env) {
    let op = env.op(0);
    let local = env.scratch("upload.txt");
    fs::write(&local, "secret upload").unwrap();
    let remote = format!("/tmp/gh-privsep-upload-{}", std::process::id());
    let fetched = env.scratch("fetched");
    // -O: the classic scp protocol (`scp -t` / `scp -f`); default: SFTP.
    for mode in [&["-O"][..], &[][..]] {
        let mut up = Command::new("scp");
        up.args(env.scp_opts())
            .args(mode)
            .arg(&local)
            .arg(format!("{op}@127.0.0.1:{remote}"));
        let (code, out) = run(up, T);
        assert_ne!(code, 0, "scp {mode:?} upload: {out}");
        assert!(!Path::new(&remote).exists(), "scp {mode:?} wrote a file");
        let mut down = Command::new("scp");
        down.args(env.scp_opts())
            .args(mode)
            .arg(format!("{op}@127.0.0.1:/etc/hostname"))
            .arg(&fetched);
        let (code, out) = run(down, T);
        assert_ne!(code, 0, "scp {mode:?} download: {out}");
        assert!(!fetched.exists(), "scp {mode:?} fetched a file");
    }
    let denied = env.denied(op);
    assert!(denied.iter().any(|d| d.starts_with("scp -t")), "{denied:?}");
    assert!(denied.iter().any(|d| d.starts_with("scp -f")), "{denied:?}");
    assert_no_foreign(env, op);
}

fn rsync_over_ssh_is_refused(env: &Env) {
    if Command::new("rsync").arg("--version").output().is_err() {
        skip("rsync_over_ssh_is_refused: rsync is not installed");
        return;
    }
    let op = env.op(0);
    let local = env.scratch("rsync-src.txt");
    fs::write(&local, "x").unwrap();
    let remote = format!("/tmp/gh-privsep-rsync-{}", std::process::id());
    let mut c = Command::new("rsync");
    c.arg("-e")
        .arg(env.ssh_e())
        .arg(&local)
        .arg(format!("{op}@127.0.0.1:{remote}"));
    let (code, out) = run(c, T);
    assert_ne!(code, 0, "{out}");
    assert!(!Path::new(&remote).exists());
    let got = env.scratch("rsync-got");
    let mut c = Command::new("rsync");
    c.arg("-e")
        .arg(env.ssh_e())
        .arg(format!("{op}@127.0.0.1:/etc/hostname"))
        .arg(&got);
    let (code, out) = run(c, T);
    assert_ne!(code, 0, "{out}");
    assert!(!got.exists());
    assert!(env
        .denied(op)
        .iter()
        .any(|d| d.starts_with("rsync --server")));
    assert_no_foreign(env, op);
}

fn local_forward_opens_no_tunnel(env: &Env) {
    let op = env.op(0);
    let victim = Victim::new();
    let lport = free_port();
    let spec = format!("{lport}:127.0.0.1:{}", victim.port());
    let _ssh = bg(env.ssh(op, &["-N", "-L", &spec]));
    assert!(wait_port(lport, T), "ssh -L did not listen locally");
    let mut s = TcpStream::connect(("127.0.0.1", lport)).unwrap();
    s.set_read_timeout(Some(scaled(Duration::from_secs(5))))
        .unwrap();
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "data came back");
    victim.assert_untouched("ssh -L");
    assert_no_foreign(env, op);
}

fn remote_forward_is_refused(env: &Env) {
    let op = env.op(0);
    let victim = Victim::new();
    let rport = free_port();
    let spec = format!("{rport}:127.0.0.1:{}", victim.port());
    let (code, out) = run(
        env.ssh(op, &["-N", "-o", "ExitOnForwardFailure=yes", "-R", &spec]),
        T,
    );
    assert_ne!(code, 0, "ssh -R stayed up: {out}");
    assert!(
        TcpStream::connect(("127.0.0.1", rport)).is_err(),
        "the bastion listens on the -R port"
    );
    victim.assert_untouched("ssh -R");
}

fn dynamic_forward_opens_no_tunnel(env: &Env) {
    let op = env.op(0);
    let victim = Victim::new();
    let dport = free_port();
    let _ssh = bg(env.ssh(op, &["-N", "-D", &dport.to_string()]));
    assert!(wait_port(dport, T), "ssh -D did not listen locally");
    let mut s = TcpStream::connect(("127.0.0.1", dport)).unwrap();
    s.set_read_timeout(Some(scaled(Duration::from_secs(5))))
        .unwrap();
    // SOCKS5: no auth, then CONNECT 127.0.0.1:victim.
    s.write_all(&[5, 1, 0]).unwrap();
    let mut hello = [0u8; 2];
    s.read_exact(&mut hello).unwrap();
    let p = victim.port().to_be_bytes();
    s.write_all(&[5, 1, 0, 1, 127, 0, 0, 1, p[0], p[1]])
        .unwrap();
    let mut reply = [0u8; 10];
    match s.read(&mut reply) {
        Ok(n) if n >= 2 => assert_ne!(reply[1], 0, "SOCKS CONNECT succeeded"),
        _ => {} // closed: refused
    }
    victim.assert_untouched("ssh -D");
}

fn stdio_forward_is_refused(env: &Env) {
    let op = env.op(0);
    let victim = Victim::new();
    let spec = format!("127.0.0.1:{}", victim.port());
    let (code, out) = run(env.ssh(op, &["-W", &spec]), T);
    assert_ne!(code, 0, "ssh -W: {out}");
    victim.assert_untouched("ssh -W");
}

fn proxy_jump_reaches_nothing(env: &Env) {
    let op = env.op(0);
    let t = env.target();
    let b = env.bastion();
    let cfg = env.scratch("ssh_config");
    fs::write(
        &cfg,
        format!(
            "Host gh-bastion\n  HostName 127.0.0.1\n  Port {bp}\n  User {op}\n  IdentityFile {bk}\n\
             Host gh-target\n  HostName 127.0.0.1\n  Port {tp}\n  User {tu}\n  IdentityFile {tk}\n  ProxyJump gh-bastion\n\
             Host *\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n",
            bp = b.port,
            bk = b.key_path.display(),
            tp = t.port,
            tu = t.user,
            tk = t.key_path.display(),
        ),
    )
    .unwrap();
    let before = t.log().matches("Connection from").count();
    let mut c = Command::new("ssh");
    c.arg("-F").arg(&cfg).args(["gh-target", "true"]);
    let (code, out) = run(c, T);
    assert_ne!(code, 0, "ssh -J reached the target: {out}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        t.log().matches("Connection from").count(),
        before,
        "the target saw a connection through the bastion"
    );
}

/// Even when sshd accepts them (`AcceptEnv`), `LD_PRELOAD`,
/// `GATEHOUSE_CONFIG`, `HOME` and `XDG_CONFIG_HOME` change nothing.
fn send_env_changes_nothing(env: &Env) {
    let op = env.op(0);
    let marker = env.scratch("preload-ran");
    let src = env.scratch("evil.c");
    let so = env.scratch("evil.so");
    fs::write(
        &src,
        format!(
            "#include <fcntl.h>\n#include <string.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void evil(void) {{\n\
               char c[32] = {{0}}; int fd = open(\"/proc/self/comm\", O_RDONLY);\n\
               if (fd < 0) return; read(fd, c, sizeof c - 1); close(fd);\n\
               if (strncmp(c, \"gatehouse\", 9) == 0) close(open(\"{}\", O_CREAT | O_WRONLY, 0666));\n\
             }}\n",
            marker.display()
        ),
    )
    .unwrap();
    must(&format!(
        "cc -shared -fPIC -o {} {}",
        so.display(),
        src.display()
    ));
    let evil_cfg = env.scratch("evil.toml");
    fs::write(
        &evil_cfg,
        "[[hosts]]\nname = \"evil01\"\naddress = \"127.0.0.1\"\nuser = \"root\"\nkey = \"/etc/ssh/ssh_host_ed25519_key\"\n\
         [[access]]\nusers = [\"*\"]\nunix_groups = []\nhosts = [\"*\"]\n",
    )
    .unwrap();
    let so_s = so.display().to_string();
    let cfg_s = evil_cfg.display().to_string();
    let scratch_s = env.scratch.path().display().to_string();
    let mut c = env.ssh(
        op,
        &[
            "-tt",
            "-o",
            "SendEnv=LD_PRELOAD GATEHOUSE_CONFIG HOME XDG_CONFIG_HOME",
        ],
    );
    c.env("LD_PRELOAD", &so_s)
        .env("GATEHOUSE_CONFIG", &cfg_s)
        .env("HOME", &scratch_s)
        .env("XDG_CONFIG_HOME", &scratch_s);
    let mut p = spawn_pty(c, 100, 30);
    p.expect(MENU).unwrap();
    p.expect("slow01").unwrap();
    p.pump(Duration::from_millis(300));
    assert!(
        !p.output().contains("evil01"),
        "GATEHOUSE_CONFIG was honoured"
    );
    leave_menu(&mut p);
    assert!(!marker.exists(), "LD_PRELOAD ran inside gatehouse");
    // The direct request for the planted host is refused as well.
    let (code, out) = run(
        env.ssh(op, &["-o", "SendEnv=GATEHOUSE_CONFIG", "evil01"]),
        T,
    );
    assert_eq!(code, 1, "{out}");
}

fn hostile_term_is_replaced(env: &Env) {
    let op = env.op(0);
    let term = format!("\x1b]0;pwned\x07\x1b[2J{}", "x".repeat(10 * 1024));
    let mut p = menu_session(env, op, 100, 30, &[("TERM", term.as_str())]);
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("echo \"T=$TERM.\"").unwrap();
    p.expect("T=xterm-256color.").unwrap();
    p.send_line("exit").unwrap();
    p.expect(MENU).unwrap();
    leave_menu(&mut p);
    // The records stay valid JSON (records() parses every line).
    assert!(!env.records(op).is_empty());
}

/// Sets the window size of the ssh client's terminal as a client would,
/// without the fixture's screen model (65535×65535 would not fit in memory).
fn stty_size(p: &Pty, rows: u32, cols: u32) {
    let tty = fs::read_link(format!("/proc/{}/fd/0", p.pid())).unwrap();
    must(&format!(
        "stty -F {} rows {rows} cols {cols}",
        tty.display()
    ));
}

/// Asks the target its window size until it reports `want` (a window
/// change travels asynchronously: SIGWINCH → ssh → Gatehouse → the target's
/// pty, racing the typed line). Any size other than `want` or `before`
/// fails at once; `before` only until the scaled deadline.
fn target_size_becomes(p: &mut Pty, want: &str, before: &str) {
    let deadline = Instant::now() + scaled(T);
    let reported = regex::Regex::new(r"S=(\d+ \d+)\.").unwrap();
    loop {
        p.send_line("echo \"S=$(stty size).\"").unwrap();
        let size = p.expect(&reported).unwrap();
        match size.groups[1].as_deref() {
            Some(s) if s == want => return,
            Some(s) if s == before && Instant::now() < deadline => {
                p.pump(Duration::from_millis(100))
            }
            other => panic!("the target's window is {other:?}, not {want}"),
        }
    }
}

fn extreme_window_sizes_are_clamped(env: &Env) {
    let op = env.op(0);
    let mut p = menu_session(env, op, 0, 0, &[]);
    stty_size(&p, 65535, 65535);
    p.pump(Duration::from_millis(500));
    assert!(p.exit_code().is_none(), "gatehouse left on a huge window");
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    // The menu session began 0x0 (→ 80x24): until the huge size arrives,
    // the target may still report that.
    target_size_becomes(&mut p, "1000 1000", "24 80");
    stty_size(&p, 0, 0);
    target_size_becomes(&mut p, "24 80", "1000 1000");
    p.send_line("exit").unwrap();
    p.expect(MENU).unwrap();
    leave_menu(&mut p);
}

fn control_keys_at_the_menu_keep_the_menu(env: &Env) {
    let op = env.op(0);
    let mut p = menu_session(env, op, 100, 30, &[]);
    for key in [keys::CTRL_C, keys::CTRL_Z, keys::CTRL_BACKSLASH] {
        p.send(key).unwrap();
        p.pump(Duration::from_millis(300));
        assert!(p.exit_code().is_none(), "left on {key:?}");
        assert_no_foreign(env, op);
    }
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.send_line("exit").unwrap();
    p.expect(MENU).unwrap();
    // EOF (Ctrl-D) at the menu is a clean way out, as in a shell.
    p.send(keys::CTRL_D).unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
    assert_no_foreign(env, op);
}

fn control_keys_while_connecting_lead_back_to_the_menu(env: &Env) {
    let op = env.op(0);
    let mut p = menu_session(env, op, 100, 30, &[]);
    p.send("slow01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("Connecting to slow01").unwrap();
    for key in [keys::CTRL_C, keys::CTRL_Z, keys::CTRL_BACKSLASH] {
        p.send(key).unwrap();
        p.pump(Duration::from_millis(200));
        assert!(p.exit_code().is_none(), "left on {key:?} while connecting");
        assert_no_foreign(env, op);
    }
    // connect_timeout (3 s, scaled): the failure, then the menu again.
    p.expect(MENU).unwrap();
    p.send(keys::CTRL_D).unwrap();
    assert_eq!(p.wait_exit(T), Some(0));
    assert_no_foreign(env, op);
    assert!(env
        .records(op)
        .iter()
        .any(|r| r["event"] == "error" && r["host"] == "slow01"));
}

fn hangup_at_every_stage_ends_gatehouse(env: &Env) {
    let op = env.op(1);
    let uid = env.uid(op);
    let gone = |what: &str| {
        wait_until(what, T, || gatehouse_pids(uid).is_empty());
        assert_no_foreign(env, op);
    };
    // At the menu.
    let mut p = menu_session(env, op, 100, 30, &[]);
    p.hangup();
    gone("gatehouse to exit after a hang-up at the menu");
    // While connecting.
    let mut p = menu_session(env, op, 100, 30, &[]);
    p.send("slow01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("Connecting to slow01").unwrap();
    p.hangup();
    gone("gatehouse to exit after a hang-up while connecting");
    // In a session.
    let mut p = menu_session(env, op, 100, 30, &[]);
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    p.hangup();
    gone("gatehouse to exit after a hang-up in a session");
    let recs = env.records(op);
    let logouts = recs.iter().filter(|r| r["event"] == "logout").count();
    assert!(logouts >= 3, "a logout record per hang-up: {recs:?}");
    let end = recs
        .iter()
        .rfind(|r| r["event"] == "session_end")
        .expect("session_end after a hang-up");
    assert!(
        end["reason"] == "hangup" || end["reason"] == "disconnect",
        "{end}"
    );
}

// ---------------------------------------------------------------------------
// Cases: even with a shell, no access
// ---------------------------------------------------------------------------

fn a_shell_reads_no_secret_and_changes_no_log(env: &Env) {
    let a = env.op(0);
    let b = env.op(1);
    // Both operators have a log by now.
    let (_, _) = run(env.ssh(b, &["bash"]), T);
    let log_a = env.log(a).display().to_string();
    let log_b = env.log(b).display().to_string();
    let before = fs::read(&log_a).unwrap();
    let etc = format!("{BASE}/etc");
    for cmd in [
        format!("cat {etc}/keys/target_ed25519"),
        format!("cat {etc}/keys/web01.pw"),
        format!("ls {etc}/keys"),
        format!("cat {SYS_CONFIG}"),
        format!("cat {log_b}"),
        format!(": > {log_a}"),
        format!("echo forged >> {log_a}"),
        format!("truncate -s 0 {log_a}"),
        format!("rm -f {log_a}"),
        format!("mv {log_a} {log_a}.old"),
        format!("touch {BASE}/log/new.jsonl"),
        format!("ln -s /etc/passwd {BASE}/log/x.jsonl"),
    ] {
        let (code, out) = env.as_op(a, &cmd);
        assert_ne!(code, 0, "operator with a shell could `{cmd}`: {out}");
    }
    assert_eq!(fs::read(&log_a).unwrap(), before, "the log changed");
    // The setuid binary gives no admin powers and no config override.
    let bin = env.bin.display();
    let (code, out) = env.as_op(a, &format!("{bin} check"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("admin commands are for administrators"),
        "{out}"
    );
    let (code, out) = env.as_op(a, &format!("{bin} check --config {SYS_CONFIG}"));
    assert_ne!(code, 0, "{out}");
    let (code, out) = env.as_op(a, &format!("{bin} --help"));
    assert_eq!(code, 0, "{out}");
    let evil = env.scratch("evil.toml").display().to_string();
    let (code, out) = env.as_op(
        a,
        &format!(
            "GATEHOUSE_CONFIG={evil} HOME=/tmp XDG_CONFIG_HOME=/tmp {bin} -c evil01 </dev/null"
        ),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no such host"), "{out}");
    // Root, through the same setuid binary, may check the config.
    let (code, out) = sh(&format!("{bin} check"));
    assert_eq!(code, 0, "{out}");
}

/// doas-style: a config, key or directory someone else could change means
/// no service (reason in syslog), until the admin fixes it.
fn insecure_files_are_refused(env: &Env) {
    let op = env.op(0);
    let key = format!("{BASE}/etc/keys/target_ed25519");
    for (break_it, fix_it) in [
        (
            format!("chmod 0666 {SYS_CONFIG}"),
            format!("chmod 0640 {SYS_CONFIG}"),
        ),
        (
            format!("chown {op} {key}"),
            format!("chown gatehouse {key}"),
        ),
        (format!("chmod 0604 {key}"), format!("chmod 0600 {key}")),
        (
            format!("chmod g+w {BASE}/etc && chgrp {} {BASE}/etc", env.group),
            format!("chmod g-w {BASE}/etc && chgrp gatehouse {BASE}/etc"),
        ),
        (
            format!("chmod o+w {BASE}/log"),
            format!("chmod o-w {BASE}/log"),
        ),
        // Regression (issue 12, point 7): group-readable, as OpenSSH
        // refuses such a key.
        (format!("chmod 0640 {key}"), format!("chmod 0600 {key}")),
        // Regression (issue 12, point 7): the key reached through a
        // symlink in a directory anyone can write (the resolved path alone
        // is safe, which is all the old check looked at).
        (
            format!(
                "install -d -m 0777 {BASE}/open && ln -s {BASE}/etc/keys {BASE}/open/keys && \
                 sed -i 's#{key}#{BASE}/open/keys/target_ed25519#' {SYS_CONFIG}"
            ),
            format!(
                "sed -i 's#{BASE}/open/keys/target_ed25519#{key}#' {SYS_CONFIG} && rm -rf {BASE}/open"
            ),
        ),
    ] {
        must(&break_it);
        let (code, out) = run(env.ssh(op, &["web01"]), T);
        must(&fix_it);
        assert_eq!(code, 1, "{break_it}: {out}");
        assert!(
            out.contains("service unavailable (unsafe file permissions)"),
            "{break_it}: {out}"
        );
    }
    // Fixed again: a normal refusal (no tty), not "unavailable".
    let (code, out) = run(env.ssh(op, &["web01"]), T);
    assert_eq!(code, 1);
    assert!(out.contains("needs a terminal"), "{out}");
}

/// Regression (issue 12, point 4): an environment entry whose name holds
/// `=` (`==x`) made the setuid process panic (exit 101) while emptying
/// the environment, before the panic guard.
fn env_name_with_equals_is_no_panic(env: &Env) {
    // Run by root, the setuid binary is privileged (real uid 0, effective
    // uid gatehouse), so it scrubs the environment as for an operator.
    let mut c = Command::new(&env.bin);
    c.env_clear()
        .env("=", "x")
        .env("=PATH", "/tmp")
        .env("TERM", "xterm")
        .args(["-c", "no-such-host"]);
    let (code, out) = run(c, T);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no such host"), "{out}");
    assert!(
        !out.contains("panicked") && !out.contains("internal error"),
        "{out}"
    );
}

/// Issue 12, point 1, installed: root ends an operator's session through
/// the setuid binary; another operator cannot, and the operator themself
/// can neither plant a kill note nor end it with a bare SIGUSR1.
fn an_admin_ends_a_session_and_operators_cannot(env: &Env) {
    let op = env.op(0);
    let other = env.op(1);
    let bin = env.bin.display().to_string();
    let mut p = menu_session(env, op, 100, 30, &[]);
    p.send("web01").unwrap();
    p.send(keys::ENTER).unwrap();
    p.expect("tgt$ ").unwrap();
    let (code, out) = sh(&format!("{bin} sessions --json"));
    assert_eq!(code, 0, "{out}");
    let entry: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["user"] == op)
        .unwrap_or_else(|| panic!("{op} not listed: {out}"));
    let session = entry["session"].as_str().unwrap().to_string();
    // Another operator, through the setuid binary: refused.
    let (code, out) = env.as_op(other, &format!("{bin} kill --user {op}"));
    assert_eq!(code, 1, "{out}");
    // The operator cannot write a note, and a bare SIGUSR1 changes nothing.
    let (code, out) = env.as_op(
        op,
        &format!("echo '{{\"by\":\"root\",\"reason\":\"x\"}}' > {BASE}/log/live/{session}.kill"),
    );
    assert_ne!(code, 0, "{out}");
    let (code, out) = env.as_op(op, &format!("kill -USR1 {}", entry["pid"]));
    assert_eq!(code, 0, "the operator may signal their own process: {out}");
    p.send_line("echo alive-$((1+1))").unwrap();
    p.expect("alive-2").unwrap();
    // Root ends it.
    let (code, out) = sh(&format!("{bin} kill {session} --reason 'policy check'"));
    assert_eq!(code, 0, "{out}");
    p.expect("ended by an administrator: policy check").unwrap();
    p.expect(MENU).unwrap();
    leave_menu(&mut p);
    let end = env
        .records(op)
        .into_iter()
        .rfind(|r| r["event"] == "session_end")
        .unwrap();
    assert_eq!(end["session"], session.as_str());
    assert_eq!(end["reason"], "killed");
    assert_eq!(end["detail"], "policy check");
    let sudo = std::env::var("SUDO_USER").unwrap_or_else(|_| "root".into());
    assert_eq!(end["by"], sudo.as_str(), "{end}");
}

/// The live entry of `op`'s running session of `kind`, as root sees it.
fn live_entry(env: &Env, op: &str, kind: &str) -> Value {
    let bin = env.bin.display().to_string();
    let deadline = Instant::now() + scaled(T);
    loop {
        let (code, out) = sh(&format!("{bin} sessions --json"));
        assert_eq!(code, 0, "{out}");
        if let Some(e) = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["user"] == op && v["kind"] == kind)
        {
            return e;
        }
        assert!(Instant::now() < deadline, "no {kind} of {op} listed: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live control reaches `HOST -- COMMAND` as it reaches shells: the
/// operator's own SIGUSR1 changes nothing and they cannot plant a note;
/// root's `gatehouse kill` ends it with the reason.
fn an_admin_ends_an_exec_and_operators_cannot(env: &Env) {
    let op = env.op(0);
    let bin = env.bin.display().to_string();
    let go = env.scratch("exec-go");
    let cmd = format!(
        "while [ ! -e {} ]; do sleep 0.1; done; echo done-$((6*7))",
        go.display()
    );
    let c = env.ssh(op, &[&format!("web01 -- {cmd}")]);
    let h = std::thread::spawn(move || run(c, Duration::from_secs(120)));
    let entry = live_entry(env, op, "exec");
    assert_eq!(entry["command"], cmd.as_str(), "{entry}");
    let session = entry["session"].as_str().unwrap().to_string();
    let (code, out) = env.as_op(
        op,
        &format!("echo '{{\"by\":\"root\",\"reason\":\"x\"}}' > {BASE}/log/live/{session}.kill"),
    );
    assert_ne!(code, 0, "{out}");
    let (code, out) = env.as_op(op, &format!("kill -USR1 {}", entry["pid"]));
    assert_eq!(code, 0, "the operator may signal their own process: {out}");
    fs::write(&go, "").unwrap();
    let (code, out) = h.join().unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("done-42"), "{out}");
    let end = env
        .records(op)
        .into_iter()
        .rfind(|r| r["event"] == "session_end" && r["session"] == session.as_str())
        .expect("session_end");
    assert_eq!(end["reason"], "exit", "{end}");

    // Root ends the next one.
    let c = env.ssh(op, &["web01 -- while echo tick; do sleep 0.2; done"]);
    let h = std::thread::spawn(move || run(c, Duration::from_secs(120)));
    let entry = live_entry(env, op, "exec");
    let session = entry["session"].as_str().unwrap().to_string();
    let (code, out) = sh(&format!("{bin} kill {session} --reason 'policy check'"));
    assert_eq!(code, 0, "{out}");
    let (code, out) = h.join().unwrap();
    assert_eq!(code, 255, "{out}");
    assert!(
        out.contains("gatehouse: web01: ended by an administrator: policy check."),
        "{out}"
    );
    let end = env
        .records(op)
        .into_iter()
        .rfind(|r| r["event"] == "session_end" && r["session"] == session.as_str())
        .expect("session_end");
    assert_eq!(end["reason"], "killed");
    assert_eq!(end["detail"], "policy check");
    let sudo = std::env::var("SUDO_USER").unwrap_or_else(|_| "root".into());
    assert_eq!(end["by"], sudo.as_str(), "{end}");
}

// ---------------------------------------------------------------------------
// Cases: the operator's own agent (issue 18)
// ---------------------------------------------------------------------------

/// An `ssh-agent -D` on the operator's side (the client; it runs as root
/// here, which changes nothing for the bastion) holding one new key that
/// the target accepts. Returns the agent (killed on drop), its socket and
/// the key's fingerprint.
fn operator_agent(env: &Env, name: &str) -> (Bg, PathBuf, String) {
    let sock = env.scratch(&format!("{name}.sock"));
    let key = env.scratch(&format!("{name}_ed25519"));
    let agent = bg({
        let mut c = Command::new("ssh-agent");
        c.arg("-D").arg("-a").arg(&sock);
        c
    });
    wait_until("the ssh-agent socket", T, || sock.exists());
    must(&format!(
        "ssh-keygen -q -t ed25519 -N '' -C {name} -f {k} && SSH_AUTH_SOCK={s} ssh-add {k}",
        k = key.display(),
        s = sock.display()
    ));
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    let authorized = env.target().dir.path().join("authorized_keys");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(authorized)
        .unwrap();
    f.write_all(public.as_bytes()).unwrap();
    let fp = must(&format!("ssh-keygen -lf {}.pub", key.display()))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    (agent, sock, fp)
}

/// `ssh -A` to the setuid Gatehouse, host `agent01` (`agent = true`): sshd
/// makes the forwarded socket in a 0700 directory of the operator's, which
/// the gatehouse account cannot enter; Gatehouse reaches it only by taking
/// the operator's effective uid for the connect, and is the gatehouse
/// account again for the session (it writes the log).
fn forwarded_agent_logs_in_as_the_operator(env: &Env) {
    let op = env.op(0);
    let (_agent, sock, fp) = operator_agent(env, "opagent");
    let mut c = env.ssh(op, &["-A", "-tt", "agent01"]);
    c.env("SSH_AUTH_SOCK", &sock);
    let mut p = spawn_pty(c, 100, 30);
    p.expect("tgt$ ").unwrap();
    let pids = gatehouse_pids(env.uid(op));
    assert_eq!(pids.len(), 1, "one gatehouse process for {op}: {pids:?}");
    assert_eq!(
        proc_status_uid(pids[0]).unwrap(),
        (env.uid(op), env.gh_uid),
        "effective uid back to gatehouse after the agent connect"
    );
    // And still not dumpable (an euid change resets that to the system's
    // fs.suid_dumpable; Gatehouse sets it again).
    let (code, out) = env.as_op(op, &format!("cat /proc/{}/environ >/dev/null", pids[0]));
    assert_ne!(
        code, 0,
        "operator read /proc/PID/environ after the switch: {out}"
    );
    p.send_line("echo agent-$((6*7))").unwrap();
    p.expect("agent-42").unwrap();
    p.send_line("exit").unwrap();
    assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
    let start = env
        .records(op)
        .into_iter()
        .rfind(|r| r["event"] == "session_start" && r["host"] == "agent01")
        .expect("a session_start for agent01");
    assert_eq!(start["auth"], format!("agent {fp}"), "{start}");
}

/// Operator A names a socket that operator B owns (`SetEnv`, which this
/// bastion's lax `AcceptEnv` lets through; the shipped snippet accepts
/// only `GATEHOUSE_HOST`). The socket is world-writable in
/// a world-searchable directory, so the kernel would let A connect: only
/// Gatehouse's owner check refuses it.
fn another_operators_agent_socket_is_refused(env: &Env) {
    let (a, b) = (env.op(0), env.op(1));
    let dir = env.scratch("planted");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("agent.planted");
    let _ = fs::remove_file(&sock);
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::os::unix::fs::chown(&sock, Some(env.uid(b)), None).unwrap();
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).unwrap();
    let before = env.records(a).len();
    // `SetEnv` (the client's `SendEnv` never sends SSH_AUTH_SOCK); the
    // client itself does not use an agent.
    let set = format!("SetEnv=SSH_AUTH_SOCK={}", sock.display());
    let c = env.ssh(
        a,
        &["-tt", "-o", "IdentityAgent=none", "-o", &set, "agent01"],
    );
    let mut p = spawn_pty(c, 100, 30);
    if let Err(e) =
        p.expect("agent01 needs your own key, but your forwarded agent could not be used")
    {
        panic!("{e}; records: {:?}", &env.records(a)[before..]);
    }
    assert_ne!(p.wait_exit(T), Some(0));
    let recs = env.records(a);
    let err = recs[before..]
        .iter()
        .find(|r| r["event"] == "error")
        .unwrap_or_else(|| panic!("no error record: {recs:?}"));
    assert_eq!(err["reason"], "auth_failed", "{err}");
    let want = format!("belongs to uid {}, not to the operator", env.uid(b));
    assert!(err["detail"].as_str().unwrap().contains(&want), "{err}");
}

// ---------------------------------------------------------------------------

#[test]
fn privilege_separation_end_to_end() {
    if !nix::unistd::getuid().is_root() {
        skip(
            "tests/privsep.rs needs root (it creates users, \
             installs a setuid binary and runs sshd as root); run `make test` as root",
        );
        return;
    }
    // The set-up lives at fixed machine-wide places (the compiled-in config
    // path, the `gatehouse` account): two runs at once (two checkouts on one
    // machine) would delete each other's files. Take turns; the lock is
    // released when this process exits, however it exits.
    let _turn = machine_lock();
    let env = setup();
    type Case = fn(&Env);
    let cases: &[(&str, Case)] = &[
        (
            "normal_login_is_audited_by_the_setuid_process",
            normal_login_is_audited_by_the_setuid_process,
        ),
        (
            "exec_and_transfer_through_the_setuid_binary",
            exec_and_transfer_through_the_setuid_binary,
        ),
        (
            "shell_and_command_requests_are_refused",
            shell_and_command_requests_are_refused,
        ),
        ("sftp_subsystem_is_refused", sftp_subsystem_is_refused),
        (
            "scp_to_and_from_the_bastion_is_refused",
            scp_to_and_from_the_bastion_is_refused,
        ),
        ("rsync_over_ssh_is_refused", rsync_over_ssh_is_refused),
        (
            "local_forward_opens_no_tunnel",
            local_forward_opens_no_tunnel,
        ),
        ("remote_forward_is_refused", remote_forward_is_refused),
        (
            "dynamic_forward_opens_no_tunnel",
            dynamic_forward_opens_no_tunnel,
        ),
        ("stdio_forward_is_refused", stdio_forward_is_refused),
        ("proxy_jump_reaches_nothing", proxy_jump_reaches_nothing),
        ("send_env_changes_nothing", send_env_changes_nothing),
        ("hostile_term_is_replaced", hostile_term_is_replaced),
        (
            "extreme_window_sizes_are_clamped",
            extreme_window_sizes_are_clamped,
        ),
        (
            "control_keys_at_the_menu_keep_the_menu",
            control_keys_at_the_menu_keep_the_menu,
        ),
        (
            "control_keys_while_connecting_lead_back_to_the_menu",
            control_keys_while_connecting_lead_back_to_the_menu,
        ),
        (
            "hangup_at_every_stage_ends_gatehouse",
            hangup_at_every_stage_ends_gatehouse,
        ),
        (
            "a_shell_reads_no_secret_and_changes_no_log",
            a_shell_reads_no_secret_and_changes_no_log,
        ),
        ("insecure_files_are_refused", insecure_files_are_refused),
        (
            "env_name_with_equals_is_no_panic",
            env_name_with_equals_is_no_panic,
        ),
        (
            "an_admin_ends_a_session_and_operators_cannot",
            an_admin_ends_a_session_and_operators_cannot,
        ),
        (
            "an_admin_ends_an_exec_and_operators_cannot",
            an_admin_ends_an_exec_and_operators_cannot,
        ),
        (
            "forwarded_agent_logs_in_as_the_operator",
            forwarded_agent_logs_in_as_the_operator,
        ),
        (
            "another_operators_agent_socket_is_refused",
            another_operators_agent_socket_is_refused,
        ),
    ];
    let only = std::env::var("PRIVSEP_CASE").ok();
    // A filter that names no case would pass without running anything.
    if let Some(o) = &only {
        assert!(
            cases.iter().any(|(name, _)| name.contains(o.as_str())),
            "PRIVSEP_CASE={o:?} names no case"
        );
    }
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in cases {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        ran += 1;
        let started = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&env)));
        let ms = started.elapsed().as_millis();
        match r {
            Ok(()) => eprintln!("privsep case {name}: ok ({ms} ms)"),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("privsep case {name}: FAILED ({ms} ms): {msg}");
                failed.push(*name);
            }
        }
    }
    drop(env);
    assert!(ran > 0, "no privsep case ran");
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}
