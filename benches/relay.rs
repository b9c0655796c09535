//! `make bench`: Gatehouse side by side with the OpenSSH client, through
//! real ptys, against one loopback target sshd (issue 6, product.md
//! "Performance").
//!
//! A = `ssh -tt` to the target; B = `gatehouse -c tgt` (direct-host mode,
//! recording and capture on) to the same target; C = `ssh -tt bastion`
//! where the bastion sshd's ForceCommand is the OpenSSH client onward
//! (nested OpenSSH); D = `ssh -tt bastion tgt` where the ForceCommand is
//! gatehouse. Runs interleave A/B/C/D, A/B/C/D, … and every figure is the
//! median over the runs. For C and D the bastion's CPU is the sum of
//! utime+stime of every process under the bastion's sshd listener (the
//! per-connection sshd processes and the relay), from /proc. Then
//! Gatehouse-only figures measured in-process: a 10,000-host inventory,
//! the capture engine, the recorder, the JSONL log.
//!
//! Prints the tables and writes the same as JSON (`$BENCH_JSON`, default
//! `<target dir>/bench.json`) and a chart (`$BENCH_SVG`, default
//! `docs/bench.svg`). No assertion anywhere: humans read it.
//!
//! `BENCH_MODE=capacity` runs only the capacity figure instead: `BENCH_SESSIONS`
//! (200) concurrent sessions through one bastion sshd (see `capacity`).
//!
//! Knobs (environment): BENCH_RUNS (3), BENCH_MB (100, output megabytes per
//! throughput run), BENCH_KEYS (500), BENCH_IDLE_SECS (5), BENCH_ONLY (a
//! subset of the letters ABCDG, G = the Gatehouse-only figures; default
//! all), BENCH_SKIP_CD=1 (= BENCH_ONLY=ABG), BENCH_BASELINE_BIN=PATH (adds
//! E: that gatehouse binary as D, interleaved with the rest, for before /
//! after figures of a change; G then also starts it to the 10,000-host
//! menu, in turn with this build).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.
#![allow(unsafe_code)] // the shared fixture module has its own SAFETY notes

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "capacity/mod.rs"]
mod capacity;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{sh_quote, spawn_pty, Bastion, Gh, Pty, Sshd, Target};
use serde_json::{json, Value};

const PROMPT: &str = "tgt$ ";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// utime+stime of `pid` in seconds (clock ticks: 10 ms resolution).
fn cpu_secs(pid: i32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based).
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some((ut + st) / hz)
}

/// Context switches of `pid` so far, voluntary and not (/proc/PID/status):
/// each is a wake-up, the cost batched reads cut (BENCHMARKS.md).
fn switches(pid: i32) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .parse()
            .ok()
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// A `kB` field of /proc/PID/status (VmHWM, VmRSS), in MiB.
fn status_mib(pid: i32, field: &str) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The relaying process under a bastion sshd: its descendant named `name`.
fn find_descendant(root: i32, name: &str, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = common::descendants_of(root)
            .into_iter()
            .find(|&p| comm(p) == name)
        {
            return Some(p);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// statistics
// ---------------------------------------------------------------------------

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

fn median(v: &[f64]) -> f64 {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    percentile(&finite, 50.0)
}

// ---------------------------------------------------------------------------
// one interactive run
// ---------------------------------------------------------------------------

/// What one session run measured.
#[derive(Default, Clone)]
struct Run {
    first_prompt_ms: f64,
    echo_p50_ms: f64,
    echo_p99_ms: f64,
    throughput_mbs: f64,
    bytes: u64,
    cpu_s_per_gb: f64,
    hwm_mib: f64,
    idle_cpu_s: f64,
    /// Behind a bastion: every process under its sshd listener.
    bastion_cpu_s_per_gb: f64,
    /// Context switches per MB relayed: the relay, and (behind a bastion)
    /// every process under the bastion's sshd.
    switches_per_mb: f64,
    bastion_switches_per_mb: f64,
    bastion_hwm_mib: f64,
    bastion_idle_cpu_s: f64,
}

struct Sizes {
    mb: u64,
    keys: usize,
    idle: Duration,
}

/// Where the relaying process runs.
#[derive(Clone, Copy)]
enum Side<'a> {
    /// In the operator's pty (A, B): the pty's child is the relay.
    Local,
    /// Under a bastion sshd (C, D): the relay is the descendant of the
    /// listener named `relay`; the bastion is every descendant.
    Bastion { listener: i32, relay: &'a str },
}

/// `count` (CPU seconds, context switches) of every process under `root`
/// (not `root` itself).
fn tree_of(root: i32, count: fn(i32) -> Option<f64>) -> HashMap<i32, f64> {
    common::descendants_of(root)
        .into_iter()
        .filter_map(|p| Some((p, count(p)?)))
        .collect()
}

fn tree_cpu(root: i32) -> HashMap<i32, f64> {
    tree_of(root, cpu_secs)
}

/// How much `count` grew under `root` since `before` (processes that
/// started since count whole; ones that ended since are lost, which is why
/// the snapshots are taken inside one session).
fn tree_since(root: i32, before: &HashMap<i32, f64>, count: fn(i32) -> Option<f64>) -> f64 {
    tree_of(root, count)
        .iter()
        .map(|(p, c)| c - before.get(p).copied().unwrap_or(0.0))
        .sum()
}

fn tree_cpu_since(root: i32, before: &HashMap<i32, f64>) -> f64 {
    tree_since(root, before, cpu_secs)
}

fn tree_hwm_mib(root: i32) -> f64 {
    common::descendants_of(root)
        .into_iter()
        .filter_map(|p| status_mib(p, "VmHWM"))
        .sum()
}

/// Drives one session in `pty` (started at `started`).
fn session_run(mut pty: Pty, started: Instant, side: Side<'_>, sz: &Sizes) -> Result<Run, String> {
    let mut r = Run::default();
    pty.expect_within(PROMPT, Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    r.first_prompt_ms = started.elapsed().as_secs_f64() * 1e3;
    let (pid, listener) = match side {
        Side::Local => (pty.pid(), None),
        Side::Bastion { listener, relay } => (
            find_descendant(listener, relay, Duration::from_secs(5))
                .ok_or("relaying process not found")?,
            Some(listener),
        ),
    };

    // Keystroke echo into `cat` (canonical mode: the target's tty echoes).
    pty.send_line("cat > /dev/null")
        .map_err(|e| e.to_string())?;
    pty.read_until_raw(b"/dev/null\r\n", Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let mut lat = Vec::with_capacity(sz.keys);
    for i in 0..sz.keys {
        let c = b'a' + (i % 26) as u8;
        let t = Instant::now();
        pty.send([c]).map_err(|e| e.to_string())?;
        pty.read_until_raw(&[c], Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        if i % 64 == 63 {
            pty.send(b"\r").map_err(|e| e.to_string())?;
            pty.read_until_raw(b"\n", Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
        }
    }
    r.echo_p50_ms = percentile(&lat, 50.0);
    r.echo_p99_ms = percentile(&lat, 99.0);
    pty.send(b"\r\x04").map_err(|e| e.to_string())?;
    pty.read_until_raw(PROMPT.as_bytes(), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;

    // Output throughput: base64 of zeros, 76-column lines. The marker is
    // computed by the shell so the echoed command line does not match it.
    let input_bytes = sz.mb * 1_000_000 * 3 / 4;
    let cpu0 = cpu_secs(pid).unwrap_or(f64::NAN);
    let tree0 = listener.map(tree_cpu).unwrap_or_default();
    let sw0 = switches(pid).unwrap_or(f64::NAN);
    let tree_sw0 = listener.map(|l| tree_of(l, switches)).unwrap_or_default();
    let t = Instant::now();
    pty.send_line(&format!(
        "head -c {input_bytes} /dev/zero | base64; echo MARK$((6*7))"
    ))
    .map_err(|e| e.to_string())?;
    r.bytes = pty
        .read_until_raw(b"MARK42", Duration::from_secs(600))
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid).unwrap_or(f64::NAN) - cpu0;
    let gb = r.bytes as f64 / 1e9;
    r.throughput_mbs = r.bytes as f64 / 1e6 / secs;
    r.cpu_s_per_gb = cpu / gb;
    r.bastion_cpu_s_per_gb = listener.map_or(f64::NAN, |l| tree_cpu_since(l, &tree0) / gb);
    let mb = r.bytes as f64 / 1e6;
    r.switches_per_mb = (switches(pid).unwrap_or(f64::NAN) - sw0) / mb;
    r.bastion_switches_per_mb =
        listener.map_or(f64::NAN, |l| tree_since(l, &tree_sw0, switches) / mb);
    // The prompt usually arrives in the marker's read: do not wait for it.
    std::thread::sleep(Duration::from_millis(200));

    // Idle: nothing typed, nothing printed.
    let c0 = cpu_secs(pid).unwrap_or(f64::NAN);
    let tree0 = listener.map(tree_cpu).unwrap_or_default();
    std::thread::sleep(sz.idle);
    r.idle_cpu_s = cpu_secs(pid).unwrap_or(f64::NAN) - c0;
    r.bastion_idle_cpu_s = listener.map_or(f64::NAN, |l| tree_cpu_since(l, &tree0));

    // Peak RSS just before the relay exits (VmHWM only grows).
    r.hwm_mib = status_mib(pid, "VmHWM").unwrap_or(f64::NAN);
    r.bastion_hwm_mib = listener.map_or(f64::NAN, tree_hwm_mib);
    pty.send_line("exit").map_err(|e| e.to_string())?;
    pty.wait_exit(Duration::from_secs(10));
    Ok(r)
}

fn ssh_tt(t: &Sshd) -> Command {
    t.ssh_cmd(&["-tt"])
}

fn run_a(t: &Target, sz: &Sizes) -> Result<Run, String> {
    let started = Instant::now();
    let pty = spawn_pty(ssh_tt(t), 80, 24);
    session_run(pty, started, Side::Local, sz)
}

fn run_b(gh: &Gh, sz: &Sizes) -> Result<Run, String> {
    let started = Instant::now();
    let pty = gh.spawn(&["-c", "tgt"]);
    session_run(pty, started, Side::Local, sz)
}

fn run_bastion(b: &Bastion, extra: &[&str], relay: &str, sz: &Sizes) -> Result<Run, String> {
    let started = Instant::now();
    let pty = spawn_pty(b.ssh_cmd(extra), 80, 24);
    let listener = b.pid().ok_or("bastion sshd not running")?;
    session_run(pty, started, Side::Bastion { listener, relay }, sz)
}

/// The bastion of C: its ForceCommand is the OpenSSH client to the target.
fn nested_bastion(target: &Target) -> Bastion {
    let c = ssh_tt(target);
    let onward: Vec<String> = std::iter::once(c.get_program().to_string_lossy().into_owned())
        .chain(c.get_args().map(|a| a.to_string_lossy().into_owned()))
        .map(|a| sh_quote(&a))
        .collect();
    Bastion::start_with(&onward.join(" "), &[])
}

// ---------------------------------------------------------------------------
// time to menu
// ---------------------------------------------------------------------------

fn time_to_menu(config: &std::path::Path, n: usize) -> Vec<f64> {
    time_to_menu_of(&common::gatehouse_bin(), config, n)
}

/// This build and `baseline` in turn, `n` starts each: (this, baseline).
fn time_to_menu_interleaved(
    baseline: &std::path::Path,
    config: &std::path::Path,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut this, mut base) = (Vec::new(), Vec::new());
    for _ in 0..n {
        this.extend(time_to_menu(config, 1));
        base.extend(time_to_menu_of(baseline, config, 1));
    }
    (this, base)
}

fn time_to_menu_of(bin: &std::path::Path, config: &std::path::Path, n: usize) -> Vec<f64> {
    let mut v = Vec::new();
    for _ in 0..n {
        let mut c = Command::new(bin);
        c.env("GATEHOUSE_CONFIG", config)
            .env_remove("SSH_ORIGINAL_COMMAND")
            .env_remove("SSH_CONNECTION");
        let t = Instant::now();
        let mut pty = spawn_pty(c, 80, 24);
        if pty
            .expect_within("pick a host", Duration::from_secs(20))
            .is_ok()
        {
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let _ = pty.send(b"\x1b");
        pty.wait_exit(Duration::from_secs(5));
    }
    v
}

/// A config with `n` hosts (all pointing at the target) for the menu figures.
fn big_config(gh: &Gh, t: &Target, n: usize) -> PathBuf {
    let mut toml = format!(
        "[settings]\nlog_dir = {:?}\nknown_hosts = {:?}\nhost_key_policy = \"strict\"\n\n",
        gh.log_dir().display().to_string(),
        gh.known_hosts_path().display().to_string()
    );
    let key = t.key_path.display().to_string();
    for i in 0..n {
        let _ = write!(
            toml,
            "[[hosts]]\nname = \"{kind}{i:05}\"\naddress = \"10.{a}.{b}.{c}\"\nport = {port}\n\
             user = \"deploy\"\nkey = {key:?}\ndescription = \"{desc} in rack {r}\"\n\
             groups = [\"{kind}\", \"dc{dc}\"]\n\n",
            kind = ["web", "db", "cache", "batch"][i % 4],
            a = (i >> 16) & 255,
            b = (i >> 8) & 255,
            c = i & 255,
            port = t.port,
            desc = ["frontend", "primary database", "redis", "cron worker"][i % 4],
            r = i % 97,
            dc = i % 3,
        );
    }
    toml.push_str("[[access]]\nunix_groups = [\"root\", \"users\"]\nhosts = [\"*\"]\n");
    let _ = writeln!(
        toml,
        "\n[[access]]\nusers = [{:?}]\nhosts = [\"@web\", \"db*\", \"cache*\", \"batch*\"]",
        gh.user
    );
    let p = gh.dir.path().join(format!("config-{n}.toml"));
    fs::write(&p, toml).unwrap();
    p
}

// ---------------------------------------------------------------------------
// in-process figures
// ---------------------------------------------------------------------------

fn inventory_figures(path: &std::path::Path) -> (f64, f64, f64, usize) {
    let mut loads = Vec::new();
    let mut cfg = None;
    for _ in 0..5 {
        let t = Instant::now();
        cfg = Some(gatehouse::core::config::Config::load(path).expect("10k config loads"));
        loads.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cfg = cfg.unwrap();
    let hosts: Vec<&gatehouse::core::config::Host> = cfg.hosts.iter().collect();
    let items = gatehouse::operator::menu::Items::new(&hosts);

    // What the menu does per key: rank every host (src/operator/menu.rs `rank`).
    let typed = "web0042 rack";
    let mut per_key = Vec::new();
    for _ in 0..3 {
        for end in 1..=typed.len() {
            let term = &typed[..end];
            let t = Instant::now();
            std::hint::black_box(items.rank(term));
            per_key.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    (
        median(&loads),
        median(&per_key),
        percentile(&per_key, 100.0),
        items.len(),
    )
}

/// Terminal output like a busy session: long text lines, colour, prompts.
fn sample_output() -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0u64;
    while v.len() < 1 << 20 {
        match i % 4 {
            0 => v.extend_from_slice(
                b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
            ),
            1 => {
                let _ = write!(VecW(&mut v), "\x1b[01;34mdir{i}\x1b[0m  \x1b[01;32mrun{i}.sh\x1b[0m  file{i}.txt  Ünïcödé-{i}\r\n");
            }
            2 => {
                let _ = write!(
                    VecW(&mut v),
                    "2026-01-01T00:00:{:02}Z INFO request id={i} status=200 bytes={}\r\n",
                    i % 60,
                    i * 7
                );
            }
            _ => v.extend_from_slice(b"\x1b]0;deploy@web01: ~\x07tgt$ "),
        }
        i += 1;
    }
    v
}

struct VecW<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for VecW<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// MB/s of `Capture::output` over `sample_output`, 16 KiB chunks (a
/// typical libssh2 read), for about a second.
fn capture_throughput(sample: &[u8]) -> f64 {
    let mut cap = gatehouse::core::capture::Capture::new(80, 24);
    let mut found = Vec::new();
    // The command is decided (and released) before its output starts, as
    // in the relay: what follows is bulk output of a running command.
    let t0 = Instant::now();
    cap.output(b"tgt$ ", t0, &mut found);
    cap.input(b"cat big.log", t0, &mut found);
    cap.output(b"cat big.log", t0, &mut found);
    cap.input(b"\r", t0, &mut found);
    cap.settle(t0, true, &mut found);
    let mut bytes = 0u64;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) || bytes < 64 << 20 {
        for c in sample.chunks(16 * 1024) {
            cap.output(c, t, &mut found);
        }
        bytes += sample.len() as u64;
        if t.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
}

/// MB/s of `Recorder::output` (asciicast lines to a file in a temp dir).
fn recorder_throughput(sample: &[u8]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let info = gatehouse::recording::SessionInfo {
        session: "bench",
        user: "bench",
        host: "tgt",
        term: "xterm",
        cols: 80,
        rows: 24,
    };
    let mut rec = gatehouse::recording::Recorder::create(dir.path(), &info, false).unwrap();
    let mut bytes = 0u64;
    let t = Instant::now();
    while bytes < 256 << 20 {
        for c in sample.chunks(16 * 1024) {
            rec.output(c).unwrap();
        }
        bytes += sample.len() as u64;
    }
    bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
}

/// µs per `AuditLog::write` of a command record (p50, p99).
fn jsonl_latency(n: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = gatehouse::audit::AuditLog::open(dir.path(), "bench", "L", "local").unwrap();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let cmd = format!("systemctl restart nginx && journalctl -u nginx -n {i}");
        let t = Instant::now();
        log.write(&gatehouse::audit::Event::Command {
            session: "0190f7e2-8d3c-7b4a-9c1e-2f5d6a7b8c9d",
            host: "web01",
            seq: i as u64,
            command: &cmd,
            verified: true,
            truncated: false,
            length: None,
            source: "keys",
        })
        .unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (percentile(&v, 50.0), percentile(&v, 99.0))
}

// ---------------------------------------------------------------------------
// report
// ---------------------------------------------------------------------------

struct Figure {
    name: &'static str,
    unit: &'static str,
    get: fn(&Run) -> f64,
    /// Shown for A/B (local), for C/D (bastion), or both.
    local: bool,
    bastion: bool,
}

const FIGURES: &[Figure] = &[
    Figure {
        name: "output throughput",
        unit: "MB/s",
        get: |r| r.throughput_mbs,
        local: true,
        bastion: true,
    },
    Figure {
        name: "echo latency p50",
        unit: "ms",
        get: |r| r.echo_p50_ms,
        local: true,
        bastion: true,
    },
    Figure {
        name: "echo latency p99",
        unit: "ms",
        get: |r| r.echo_p99_ms,
        local: true,
        bastion: true,
    },
    Figure {
        name: "bastion CPU per GB",
        unit: "s/GB",
        get: |r| r.bastion_cpu_s_per_gb,
        local: false,
        bastion: true,
    },
    Figure {
        name: "relay CPU per GB",
        unit: "s/GB",
        get: |r| r.cpu_s_per_gb,
        local: true,
        bastion: true,
    },
    Figure {
        name: "relay context switches per MB",
        unit: "",
        get: |r| r.switches_per_mb,
        local: true,
        bastion: true,
    },
    Figure {
        name: "bastion context switches per MB",
        unit: "",
        get: |r| r.bastion_switches_per_mb,
        local: false,
        bastion: true,
    },
    Figure {
        name: "relay peak RSS (VmHWM)",
        unit: "MiB",
        get: |r| r.hwm_mib,
        local: true,
        bastion: true,
    },
    Figure {
        name: "bastion peak RSS (sum)",
        unit: "MiB",
        get: |r| r.bastion_hwm_mib,
        local: false,
        bastion: true,
    },
    Figure {
        name: "time to first prompt",
        unit: "ms",
        get: |r| r.first_prompt_ms,
        local: true,
        bastion: true,
    },
    Figure {
        name: "idle CPU (relay)",
        unit: "s",
        get: |r| r.idle_cpu_s,
        local: true,
        bastion: true,
    },
    Figure {
        name: "idle CPU (bastion)",
        unit: "s",
        get: |r| r.bastion_idle_cpu_s,
        local: false,
        bastion: true,
    },
];

fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn fmt(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn commit_id() -> String {
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty {
        format!("{commit}+dirty")
    } else {
        commit
    }
}

fn machine() -> Value {
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "loadavg": fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

fn out_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The relays, in the order of a round.
const LABELS: [(&str, &str); 5] = [
    ("A", "direct ssh"),
    ("B", "gatehouse (local)"),
    ("C", "nested ssh (bastion)"),
    ("D", "gatehouse (bastion)"),
    ("E", "baseline gatehouse (bastion)"),
];

/// A bar chart of throughput and CPU per GB for the four relays (relay CPU
/// for A/B, bastion CPU for C/D), written by hand: a few rectangles need no
/// plotting crate.
fn chart_svg(medians: &[(f64, f64); 4], title: &str) -> String {
    let panels = [
        ("output throughput, MB/s (higher is better)", 0usize),
        (
            "CPU seconds per GB relayed (lower is better; C, D: whole bastion)",
            1usize,
        ),
    ];
    let colors = ["#9e9e9e", "#1f77b4", "#bdbdbd", "#ff7f0e"];
    let (w, bar_h, gap, left) = (720.0, 22.0, 6.0, 190.0);
    let panel_h = 4.0 * (bar_h + gap) + 40.0;
    let h = 50.0 + panel_h * 2.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        xml_escape(title)
    );
    for (pi, (name, idx)) in panels.iter().enumerate() {
        let top = 40.0 + pi as f64 * panel_h;
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{}</text>",
            top + 16.0,
            xml_escape(name)
        );
        let vals: Vec<f64> = medians
            .iter()
            .map(|m| if *idx == 0 { m.0 } else { m.1 })
            .collect();
        let max = vals
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            .max(1e-9);
        for (i, v) in vals.iter().enumerate() {
            let y = top + 26.0 + i as f64 * (bar_h + gap);
            let len = if v.is_finite() {
                v / max * (w - left - 90.0)
            } else {
                0.0
            };
            let _ = writeln!(
                svg,
                "<text x=\"10\" y=\"{ty}\">{label} {desc}</text>\
                 <rect x=\"{left}\" y=\"{y}\" width=\"{len:.1}\" height=\"{bar_h}\" fill=\"{c}\"/>\
                 <text x=\"{tx:.1}\" y=\"{ty}\">{val}</text>",
                ty = y + 16.0,
                label = LABELS[i].0,
                desc = LABELS[i].1,
                c = colors[i],
                tx = left + len + 6.0,
                val = fmt(*v),
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("relay bench: run with `cargo bench --bench relay` (or `make bench`)");
        return;
    }
    if std::env::var("BENCH_MODE").is_ok_and(|m| m == "capacity") {
        capacity::main();
        return;
    }
    let runs = env_num("BENCH_RUNS", 3).max(1) as usize;
    let sz = Sizes {
        mb: env_num("BENCH_MB", 100),
        keys: env_num("BENCH_KEYS", 500) as usize,
        idle: Duration::from_secs(env_num("BENCH_IDLE_SECS", 5)),
    };
    let mut only = std::env::var("BENCH_ONLY").unwrap_or_else(|_| "ABCDG".into());
    if env_num("BENCH_SKIP_CD", 0) != 0 {
        only.retain(|c| !matches!(c, 'C' | 'D'));
    }
    let commit = commit_id();
    eprintln!(
        "bench: commit {commit}, {runs} interleaved runs of {only}, {} MB output, {} keys, {} s idle",
        sz.mb,
        sz.keys,
        sz.idle.as_secs()
    );

    let target = Target::start();
    let gh = Gh::builder().target("tgt", &target).build();
    let bastion_c = only.contains('C').then(|| nested_bastion(&target));
    let bastion_d = only.contains('D').then(|| Bastion::start(&gh));
    let baseline = std::env::var("BENCH_BASELINE_BIN").ok();
    if baseline.is_some() {
        only.push('E');
    }
    // The kernel's process name: the file name, cut at 15 bytes.
    let baseline_comm: String = baseline
        .as_deref()
        .and_then(|b| std::path::Path::new(b).file_name())
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    let bastion_e = baseline.as_ref().map(|bin| {
        let cfg = gh.config_path().display().to_string();
        Bastion::start_with(bin, &[("GATEHOUSE_CONFIG", cfg.as_str())])
    });

    // A/B/C/D interleaved: whatever the machine's load does over time hits
    // every relay alike, so the ratios hold even when absolute figures move.
    let mut all_runs: [Vec<Run>; 5] = Default::default();
    for i in 0..runs {
        for (k, (label, _)) in LABELS.iter().enumerate() {
            if !only.contains(label) {
                continue;
            }
            let r = match k {
                0 => run_a(&target, &sz),
                1 => run_b(&gh, &sz),
                2 => run_bastion(bastion_c.as_ref().unwrap(), &["-tt"], "ssh", &sz),
                3 => run_bastion(
                    bastion_d.as_ref().unwrap(),
                    &["-tt", "tgt"],
                    "gatehouse",
                    &sz,
                ),
                _ => run_bastion(
                    bastion_e.as_ref().unwrap(),
                    &["-tt", "tgt"],
                    &baseline_comm,
                    &sz,
                ),
            };
            match r {
                Ok(r) => {
                    eprintln!(
                        "run {}/{runs} {label}: {:.1} MB/s, echo p50 {:.3} ms, relay {:.2} s/GB, bastion {:.2} s/GB, HWM {:.1} MiB, prompt {:.0} ms, idle {:.2} s",
                        i + 1,
                        r.throughput_mbs,
                        r.echo_p50_ms,
                        r.cpu_s_per_gb,
                        r.bastion_cpu_s_per_gb,
                        r.hwm_mib,
                        r.first_prompt_ms,
                        r.idle_cpu_s
                    );
                    all_runs[k].push(r);
                }
                Err(e) => eprintln!("run {}/{runs} {label}: FAILED: {e}", i + 1),
            }
        }
    }
    let bytes: Vec<u64> = all_runs
        .iter()
        .filter_map(|v| v.first().map(|r| r.bytes))
        .collect();
    if bytes.windows(2).any(|w| w[0] != w[1]) {
        eprintln!("note: the relays read different byte counts {bytes:?} (marker detection; should match)");
    }

    // Gatehouse only.
    let mut gonly: Vec<(&str, &str, f64)> = Vec::new();
    let mut nlabels = 0;
    if only.contains('G') {
        let menu_1 = time_to_menu(gh.config_path(), 5);
        let big = big_config(&gh, &target, 10_000);
        // With a baseline binary, both start in turn (before / after).
        let (menu_10k, menu_10k_base) = match &baseline {
            Some(b) => time_to_menu_interleaved(std::path::Path::new(b), &big, 9),
            None => (time_to_menu(&big, 5), Vec::new()),
        };
        let (load_ms, filter_p50, filter_max, n) = inventory_figures(&big);
        nlabels = n;
        let sample = sample_output();
        let cap_mbs = capture_throughput(&sample);
        let rec_mbs = recorder_throughput(&sample);
        let (jsonl_p50, jsonl_p99) = jsonl_latency(10_000);
        gonly = vec![
            ("time to menu (1 host)", "ms", median(&menu_1)),
            ("time to menu (10,000 hosts)", "ms", median(&menu_10k)),
            (
                "time to menu (10,000 hosts), E",
                "ms",
                if menu_10k_base.is_empty() {
                    f64::NAN
                } else {
                    median(&menu_10k_base)
                },
            ),
            ("config load (10,000 hosts)", "ms", load_ms),
            ("menu filter per key p50", "ms", filter_p50),
            ("menu filter per key max", "ms", filter_max),
            ("capture engine throughput", "MB/s", cap_mbs),
            ("recorder throughput", "MB/s", rec_mbs),
            ("JSONL append p50", "us", jsonl_p50),
            ("JSONL append p99", "us", jsonl_p99),
        ];
    }

    // Tables.
    let med = |k: usize, f: &Figure| median(&all_runs[k].iter().map(f.get).collect::<Vec<_>>());
    let mut out = String::new();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        out,
        "\nGatehouse bench, commit {commit}: medians of {}/{}/{}/{} A/B/C/D interleaved runs, {} MB, load average {}",
        all_runs[0].len(),
        all_runs[1].len(),
        all_runs[2].len(),
        all_runs[3].len(),
        sz.mb,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        out,
        "\nlocal: A = ssh -tt target, B = gatehouse -c tgt (recording + capture on)"
    );
    let _ = writeln!(
        out,
        "{:<26} {:>6} {:>10} {:>10} {:>7}",
        "figure", "unit", "A ssh", "B gh", "B/A"
    );
    let mut figures = Vec::new();
    for f in FIGURES.iter().filter(|f| f.local) {
        let (a, b) = (med(0, f), med(1, f));
        let _ = writeln!(
            out,
            "{:<26} {:>6} {:>10} {:>10} {:>7}",
            f.name,
            f.unit,
            fmt(a),
            fmt(b),
            fmt(b / a)
        );
    }
    let _ = writeln!(
        out,
        "\nbehind a bastion sshd: C = ForceCommand ssh -tt target (nested OpenSSH), D = ForceCommand gatehouse"
    );
    let _ = writeln!(
        out,
        "{:<26} {:>6} {:>10} {:>10} {:>7}",
        "figure", "unit", "C nested", "D gh", "D/C"
    );
    for f in FIGURES.iter().filter(|f| f.bastion) {
        let (c, d) = (med(2, f), med(3, f));
        let _ = writeln!(
            out,
            "{:<26} {:>6} {:>10} {:>10} {:>7}",
            f.name,
            f.unit,
            fmt(c),
            fmt(d),
            fmt(d / c)
        );
    }
    if !all_runs[4].is_empty() {
        let _ = writeln!(
            out,
            "\nbefore / after behind the bastion: E = {} (baseline), D = this build",
            baseline.as_deref().unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "{:<26} {:>6} {:>10} {:>10} {:>7} {:>7}",
            "figure", "unit", "E before", "D after", "D/E", "E/C"
        );
        for f in FIGURES.iter().filter(|f| f.bastion) {
            let (c, d, e) = (med(2, f), med(3, f), med(4, f));
            let _ = writeln!(
                out,
                "{:<26} {:>6} {:>10} {:>10} {:>7} {:>7}",
                f.name,
                f.unit,
                fmt(e),
                fmt(d),
                fmt(d / e),
                fmt(e / c)
            );
        }
    }
    for f in FIGURES {
        let runs_of = |k: usize| all_runs[k].iter().map(f.get).collect::<Vec<_>>();
        let (a, b, c, d) = (med(0, f), med(1, f), med(2, f), med(3, f));
        figures.push(json!({
            "figure": f.name, "unit": f.unit,
            "a": a, "b": b, "ratio_b_a": b / a,
            "c": c, "d": d, "ratio_d_c": d / c,
            "a_runs": runs_of(0), "b_runs": runs_of(1),
            "c_runs": runs_of(2), "d_runs": runs_of(3),
            "e": med(4, f), "e_runs": runs_of(4),
        }));
    }
    if !gonly.is_empty() {
        let _ = writeln!(out, "\nGatehouse only ({nlabels} menu labels):");
    }
    let mut only_json = Vec::new();
    for (name, unit, v) in &gonly {
        let _ = writeln!(out, "{name:<30} {unit:>5} {:>10}", fmt(*v));
        only_json.push(json!({"figure": name, "unit": unit, "value": v}));
    }
    print!("{out}");

    let doc: Value = json!({
        "commit": commit,
        "runs": runs,
        "output_mb": sz.mb,
        "keys": sz.keys,
        "idle_secs": sz.idle.as_secs(),
        "bytes_per_throughput_run": bytes.first(),
        "figures": figures,
        "gatehouse_only": only_json,
        "machine": machine(),
    });
    let path = out_path("BENCH_JSON", target_dir().join("bench.json"));
    match fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()) {
        Ok(()) => println!("\nwritten: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
    if all_runs[..4].iter().all(|r| !r.is_empty()) {
        let tp = &FIGURES[0];
        let m: [(f64, f64); 4] = std::array::from_fn(|k| {
            let cpu = if k < 2 {
                med(k, &FIGURES[4])
            } else {
                med(k, &FIGURES[3])
            };
            (med(k, tp), cpu)
        });
        let title = format!(
            "Gatehouse vs OpenSSH, {} MB through loopback, medians of {runs} interleaved runs ({commit})",
            sz.mb
        );
        let svg = out_path(
            "BENCH_SVG",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/bench.svg"),
        );
        match fs::write(&svg, chart_svg(&m, &title)) {
            Ok(()) => println!("written: {}", svg.display()),
            Err(e) => eprintln!("cannot write {}: {e}", svg.display()),
        }
    }
}
