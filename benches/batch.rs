//! `make bench` (third part): one command on many hosts (issue 19, point 5).
//!
//! One loopback target sshd reached under BENCH_BATCH_HOSTS host names
//! (default 200), all in group `all`; `batch_parallel` =
//! BENCH_BATCH_PARALLEL (32). Side by side, the same command on every host:
//!
//! - gatehouse: `ssh bastion '@all -- CMD'` (one process, one poll loop);
//! - ssh loop: a shell script running `ssh target CMD` once per host, one
//!   after the other (what a shell loop does);
//! - ssh xargs -P: the same with `xargs -P BENCH_BATCH_PARALLEL`, one
//!   OpenSSH client process per host, as many at once as Gatehouse has.
//!
//! Gatehouse's output is checked: one `HOST: ` line per host, one `exec`
//! and one `session_end` record per host, all with one batch id; the
//! bastion's gatehouse process is sampled for peak RSS and CPU. Runs
//! interleave (BENCH_RUNS, default 3); figures are medians. Prints a table;
//! no assertion anywhere.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.
#![allow(unsafe_code)] // the shared fixture module has its own SAFETY notes

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "measure/mod.rs"]
mod measure;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use measure::{comm, env_num, sample};

use common::{descendants_of, sh_quote, Bastion, Gh, HostSpec, Target};

/// Runs `cmd`, returns (seconds, stdout, exit code, peak RSS MiB, CPU s of
/// the `gatehouse` process under `root`, when given).
fn run(mut cmd: Command, root: Option<i32>) -> (f64, String, i32, f64, f64) {
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let done = Arc::new(AtomicBool::new(false));
    let sampler = root.map(|root| {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut best = (f64::NAN, f64::NAN);
            while !done.load(Ordering::Relaxed) {
                let pid = descendants_of(root)
                    .into_iter()
                    .find(|&p| comm(p) == "gatehouse");
                // f64::max ignores the NaN we start with.
                if let Some((h, c)) = pid.and_then(sample) {
                    best = (best.0.max(h), best.1.max(c));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            best
        })
    });
    let out = child.wait_with_output().expect("wait");
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (hwm, cpu) = sampler
        .map(|t| t.join().unwrap_or((f64::NAN, f64::NAN)))
        .unwrap_or((f64::NAN, f64::NAN));
    (
        secs,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
        hwm,
        cpu,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("batch bench: run with `cargo bench --bench batch` (or `make bench`)");
        return;
    }
    let n = env_num("BENCH_BATCH_HOSTS", 200) as usize;
    let parallel = env_num("BENCH_BATCH_PARALLEL", 32);
    let runs = env_num("BENCH_RUNS", 3).max(1) as usize;
    let cmd = "echo up; uname -s";
    eprintln!("batch bench: {n} host names, batch_parallel = {parallel}, {runs} interleaved runs");

    let target = Target::start();
    let mut b = Gh::builder()
        .no_access()
        .known_host(&target.known_hosts_line())
        .extra_settings(&format!("batch_parallel = {parallel}"));
    let names: Vec<String> = (1..=n).map(|i| format!("h{i:03}")).collect();
    for name in &names {
        b = b.host(HostSpec::target(name, &target).groups(&["all"]));
    }
    let gh = b
        .extra_toml(&format!(
            "[[access]]\nusers = [\"{}\"]\nhosts = [\"@all\"]\nexec = true\n",
            common::current_user()
        ))
        .build();
    let bastion = Bastion::start(&gh);
    let direct: Vec<String> = {
        let c = target.ssh_cmd(&[]);
        std::iter::once(c.get_program().to_string_lossy().into_owned())
            .chain(c.get_args().map(|a| a.to_string_lossy().into_owned()))
            .map(|a| sh_quote(&a))
            .collect()
    };
    let one = format!("{} {}", direct.join(" "), sh_quote(cmd));
    let loop_script = format!("for i in $(seq {n}); do {one} || exit 1; done");
    let xargs_script = format!(
        "seq {n} | xargs -P {parallel} -I{{}} sh -c {}",
        sh_quote(&one)
    );

    let mut times: [Vec<f64>; 3] = Default::default();
    let (mut hwms, mut cpus) = (Vec::new(), Vec::new());
    for r in 0..runs {
        // Gatehouse.
        let before = gh.records("exec").len();
        let (secs, out, code, hwm, cpu) =
            run(bastion.ssh_cmd(&[&format!("@all -- {cmd}")]), bastion.pid());
        let lines: HashSet<&str> = out.lines().collect();
        let missing: Vec<&String> = names
            .iter()
            .filter(|h| {
                !lines.contains(format!("{h}: up").as_str())
                    || !lines.contains(format!("{h}: Linux").as_str())
            })
            .collect();
        let execs = gh.records("exec");
        let new = &execs[before..];
        let batches: HashSet<&str> = new.iter().filter_map(|e| e["batch"].as_str()).collect();
        let ends = gh.records("session_end");
        let ended: HashSet<&str> = ends.iter().filter_map(|e| e["session"].as_str()).collect();
        let unended = new
            .iter()
            .filter(|e| !ended.contains(e["session"].as_str().unwrap_or("")))
            .count();
        if code != 0 || !missing.is_empty() || new.len() != n || batches.len() != 1 || unended > 0 {
            eprintln!(
                "run {r} gatehouse: exit {code}, {} hosts without their lines, {} exec records (want {n}), {} batch ids, {unended} without session_end",
                missing.len(),
                new.len(),
                batches.len()
            );
        } else {
            eprintln!("run {r} gatehouse: {n} hosts, every line and record present ({secs:.2}s)");
        }
        times[0].push(secs);
        hwms.push(hwm);
        cpus.push(cpu);
        // Plain ssh, serial and parallel.
        for (k, script) in [(1, &loop_script), (2, &xargs_script)] {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script);
            let (secs, out, code, _, _) = run(c, None);
            let ups = out.lines().filter(|l| *l == "up").count();
            if code != 0 || ups != n {
                eprintln!("run {r} script {k}: exit {code}, {ups} of {n} hosts answered");
            }
            times[k].push(secs);
        }
    }
    println!();
    println!(
        "{n} hosts (one loopback target under {n} names), `{cmd}`, median of {runs} (figures, not limits)"
    );
    println!(
        "{:<34} {:>9} {:>12} {:>12}",
        "path", "wall s", "peak RSS", "CPU s"
    );
    println!(
        "{:<34} {:>9.2} {:>8.1} MiB {:>12.2}",
        format!("gatehouse @all, batch_parallel {parallel}"),
        median(times[0].clone()),
        median(hwms),
        median(cpus)
    );
    println!(
        "{:<34} {:>9.2} {:>12} {:>12}",
        "ssh, shell loop (serial)",
        median(times[1].clone()),
        "—",
        "—"
    );
    println!(
        "{:<34} {:>9.2} {:>12} {:>12}",
        format!("ssh, xargs -P {parallel}"),
        median(times[2].clone()),
        "—",
        "—"
    );
}
