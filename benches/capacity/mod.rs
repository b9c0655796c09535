//! `BENCH_MODE=capacity make bench` (or `make capacity`): many concurrent
//! operators through one bastion sshd whose ForceCommand is Gatehouse
//! (issue 13, point 4). Not part of `make test`: it takes minutes and
//! measures, it does not assert.
//!
//! `BENCH_SESSIONS` (200) sessions log in, `BENCH_BATCH` (10) at a time;
//! then every session is sent one command at once and each must answer
//! (no session starved); then all idle for `BENCH_IDLE_SECS` (10). Reported:
//! the bastion's memory per session (sum of RSS, and of PSS, which shares
//! libraries and the binary fairly between processes), CPU per login, CPU
//! per idle session, how long the slowest session took to answer, and the
//! audit check: every command recorded exactly once.

use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{self, spawn_pty, Bastion, Gh, Pty, Target};
use crate::{
    commit_id, env_num, fmt, machine, out_path, status_mib, target_dir, tree_cpu, tree_cpu_since,
    PROMPT,
};

/// A `kB` field of /proc/PID/smaps_rollup (Pss), in MiB.
fn rollup_mib(pid: i32, field: &str) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// utime+stime of `pid` and of its children that ended and were waited for
/// (cutime+cstime): sshd's pre-authentication child does the key exchange
/// and exits, so a login's cost is only seen in its parent's children time.
fn cpu_with_children(pid: i32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let sum: f64 = (11..15)
        .map(|i| f.get(i)?.parse::<f64>().ok())
        .sum::<Option<f64>>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some(sum / hz)
}

/// The command session `i` runs: its output (`cap-7.`) differs from its echo.
fn command(i: usize) -> String {
    format!("printf 'cap-%s.\\n' {i}")
}

pub fn main() {
    let n = env_num("BENCH_SESSIONS", 200) as usize;
    let batch = env_num("BENCH_BATCH", 10).max(1) as usize;
    let idle = Duration::from_secs(env_num("BENCH_IDLE_SECS", 10));
    let commit = commit_id();
    eprintln!(
        "capacity: commit {commit}, {n} sessions through one bastion sshd, {batch} at a time"
    );

    let target = Target::start();
    let gh = Gh::builder().target("tgt", &target).build();
    let bastion = Bastion::start(&gh);
    let listener = bastion.pid().expect("bastion sshd runs");

    // Log in, a batch at a time (MaxStartups bounds unauthenticated
    // connections; operators do not all press Enter in the same ms).
    let t0 = Instant::now();
    let mut sessions: Vec<(usize, Pty)> = Vec::with_capacity(n);
    let mut failed_logins = 0;
    let mut i = 0;
    while i < n {
        let fresh: Vec<(usize, Pty)> = (i..(i + batch).min(n))
            .map(|k| (k, spawn_pty(bastion.ssh_cmd(&["-tt", "tgt"]), 80, 24)))
            .collect();
        i += fresh.len();
        for (k, mut p) in fresh {
            match p.expect_within(PROMPT, Duration::from_secs(120)) {
                Ok(_) => sessions.push((k, p)),
                Err(e) => {
                    failed_logins += 1;
                    eprintln!("session {k}: no prompt: {e}");
                }
            }
        }
        eprintln!(
            "capacity: {} sessions up after {:.1} s",
            sessions.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    let login_s = t0.elapsed().as_secs_f64();
    let up = sessions.len().max(1) as f64;

    // What every process under the listener has used so far (the logins),
    // and its memory now.
    std::thread::sleep(Duration::from_secs(1));
    let pids = common::descendants_of(listener);
    let login_cpu: f64 = pids.iter().filter_map(|&p| cpu_with_children(p)).sum();
    let rss: f64 = pids.iter().filter_map(|&p| status_mib(p, "VmRSS")).sum();
    let pss: f64 = pids.iter().filter_map(|&p| rollup_mib(p, "Pss:")).sum();
    let gh_pids: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|&p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "gatehouse")
        })
        .collect();
    let gh_rss: f64 = gh_pids.iter().filter_map(|&p| status_mib(p, "VmRSS")).sum();
    let gh_pss: f64 = gh_pids.iter().filter_map(|&p| rollup_mib(p, "Pss:")).sum();

    // One command to every session at once; each must answer.
    let sent = Instant::now();
    for (k, p) in sessions.iter_mut() {
        if let Err(e) = p.send_line(&command(*k)) {
            eprintln!("session {k}: send: {e}");
        }
    }
    let mut answered = 0;
    let mut slowest: f64 = 0.0;
    for (k, p) in sessions.iter_mut() {
        match p.expect_within(format!("cap-{k}.").as_str(), Duration::from_secs(120)) {
            Ok(_) => {
                answered += 1;
                slowest = slowest.max(sent.elapsed().as_secs_f64());
            }
            Err(e) => eprintln!("session {k}: no answer: {e}"),
        }
    }
    for (_, p) in sessions.iter_mut() {
        let _ = p.expect_within(PROMPT, Duration::from_secs(30));
    }

    // Idle: nobody types, nothing prints.
    std::thread::sleep(Duration::from_secs(2));
    let before = tree_cpu(listener);
    std::thread::sleep(idle);
    let idle_cpu = tree_cpu_since(listener, &before);

    // Leave, then check the audit trail.
    for (_, p) in sessions.iter_mut() {
        let _ = p.send_line("exit");
    }
    for (_, p) in sessions.iter_mut() {
        p.wait_exit(Duration::from_secs(30));
    }
    let commands = gh.records("command");
    let mut once = 0;
    let mut not_once = Vec::new();
    for (k, _) in &sessions {
        let c = command(*k);
        match commands
            .iter()
            .filter(|r| r["command"] == c.as_str())
            .count()
        {
            1 => once += 1,
            m => not_once.push((*k, m)),
        }
    }

    let mut out = String::new();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        out,
        "\nGatehouse capacity, commit {commit}: {n} sessions through one bastion sshd (ForceCommand gatehouse), load average {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let rows: Vec<(&str, &str, f64)> = vec![
        ("sessions up", "", sessions.len() as f64),
        ("logins failed", "", failed_logins as f64),
        ("time to log all in", "s", login_s),
        ("bastion CPU per login", "s", login_cpu / up),
        ("bastion RSS per session (sum)", "MiB", rss / up),
        ("bastion PSS per session", "MiB", pss / up),
        ("gatehouse RSS per session", "MiB", gh_rss / up),
        ("gatehouse PSS per session", "MiB", gh_pss / up),
        ("processes under the bastion", "", pids.len() as f64),
        ("sessions that answered", "", answered as f64),
        ("slowest answer (all sent at once)", "s", slowest),
        (
            "bastion CPU per idle session",
            "ms/min",
            idle_cpu / up * 1e3 * 60.0 / idle.as_secs_f64().max(1e-9),
        ),
        ("commands recorded exactly once", "", once as f64),
    ];
    for (name, unit, v) in &rows {
        let _ = writeln!(out, "{name:<36} {unit:>6} {:>10}", fmt(*v));
    }
    if !not_once.is_empty() {
        let _ = writeln!(
            out,
            "NOT recorded exactly once (session, count): {not_once:?}"
        );
    }
    print!("{out}");
    let doc = json!({
        "commit": commit,
        "sessions": n,
        "idle_secs": idle.as_secs(),
        "figures": rows.iter().map(|(name, unit, v)| json!({"figure": name, "unit": unit, "value": v})).collect::<Vec<_>>(),
        "not_recorded_once": not_once,
        "machine": machine(),
    });
    let path = out_path("BENCH_JSON", target_dir().join("bench-capacity.json"));
    match fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()) {
        Ok(()) => println!("\nwritten: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
