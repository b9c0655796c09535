//! `make bench` (second part): an exec stream through Gatehouse, side by
//! side with the plain OpenSSH client and the nested-OpenSSH bastion
//! (issue 11, product.md "Performance").
//!
//! - direct: `ssh target CMD`;
//! - nested: `ssh bastion CMD`, the bastion's ForceCommand running
//!   `ssh target "$SSH_ORIGINAL_COMMAND"` onward;
//! - gatehouse: `ssh bastion 'tgt -- CMD'`, ForceCommand gatehouse.
//!
//! Up: BENCH_EXEC_MB megabytes (default 1024) into `cat > /dev/null`; down:
//! the same out of `head -c N /dev/zero`. Runs interleave and every figure
//! is the median. For the two bastions it also samples the relaying
//! process (gatehouse, or the onward ssh): peak resident memory and CPU
//! seconds. Prints a table; no assertion anywhere.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.
#![allow(unsafe_code)] // the shared fixture module has its own SAFETY notes

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "measure/mod.rs"]
mod measure;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use measure::{comm, env_num, sample};

use common::{descendants_of, sh_quote, Bastion, Gh, Target};

#[derive(Default, Clone, Copy)]
struct Run {
    secs: f64,
    hwm_mib: f64,
    cpu_secs: f64,
}

/// Runs `cmd` moving `bytes` (up: into its stdin; down: out of its
/// stdout) and, when `relay` names one, samples the process of that name
/// under `root` (the bastion sshd) while it runs.
fn run(mut cmd: Command, up: bool, bytes: u64, root: Option<(i32, &str)>) -> Result<Run, String> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(if up { Stdio::piped() } else { Stdio::null() })
        .stdout(if up { Stdio::null() } else { Stdio::piped() })
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = root.map(|(root, name)| {
        let done = done.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            let mut best = (0.0f64, 0.0f64);
            while !done.load(Ordering::Relaxed) {
                // The relaying process: the first of that name under the
                // bastion (for nested, the onward ssh, not the client).
                if let Some(pid) = descendants_of(root).into_iter().find(|&p| comm(p) == name) {
                    if let Some((h, c)) = sample(pid) {
                        best = (best.0.max(h), best.1.max(c));
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            best
        })
    });
    let moved = if up {
        let mut stdin = child.stdin.take().unwrap();
        let chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            stdin
                .write_all(&chunk[..n])
                .map_err(|e| format!("stdin: {e}"))?;
            left -= n as u64;
        }
        drop(stdin);
        bytes
    } else {
        let mut out = child.stdout.take().unwrap();
        std::io::copy(&mut out, &mut std::io::sink()).map_err(|e| e.to_string())?
    };
    let status = child.wait().map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (hwm_mib, cpu_secs) = sampler
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or((f64::NAN, f64::NAN));
    if !status.success() || moved != bytes {
        return Err(format!("exit {status}, moved {moved} of {bytes} bytes"));
    }
    Ok(Run {
        secs,
        hwm_mib,
        cpu_secs,
    })
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
        println!("exec bench: run with `cargo bench --bench exec` (or `make bench`)");
        return;
    }
    let mb = env_num("BENCH_EXEC_MB", 1024);
    let runs = env_num("BENCH_RUNS", 3).max(1) as usize;
    let bytes = mb * 1024 * 1024;
    eprintln!("exec bench: {mb} MiB each way, {runs} interleaved runs");

    let target = Target::start();
    let gh = Gh::builder()
        .target("tgt", &target)
        .no_access()
        .extra_toml(&format!(
            "[[access]]\nusers = [\"{}\"]\nhosts = [\"tgt\"]\nexec = true\n",
            common::current_user()
        ))
        .build();
    let onward: Vec<String> = {
        let c = target.ssh_cmd(&[]);
        std::iter::once(c.get_program().to_string_lossy().into_owned())
            .chain(c.get_args().map(|a| a.to_string_lossy().into_owned()))
            .map(|a| sh_quote(&a))
            .collect()
    };
    let nested = Bastion::start_with(
        &format!("{} \"$SSH_ORIGINAL_COMMAND\"", onward.join(" ")),
        &[],
    );
    let gatehouse = Bastion::start(&gh);
    // BENCH_BASELINE_BIN: an older gatehouse behind its own bastion, in the
    // same rounds (before/after of a change, as in the relay bench).
    let baseline = std::env::var("BENCH_BASELINE_BIN").ok();
    let baseline_comm: String = baseline
        .as_deref()
        .and_then(|b| std::path::Path::new(b).file_name())
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    let before = baseline.as_ref().map(|bin| {
        let cfg = gh.config_path().display().to_string();
        Bastion::start_with(bin, &[("GATEHOUSE_CONFIG", cfg.as_str())])
    });

    let up_cmd = "cat > /dev/null";
    let down_cmd = format!("head -c {bytes} /dev/zero");
    type Side<'a> = (
        &'a str,
        Box<dyn Fn(&str) -> Command + 'a>,
        Option<(i32, &'a str)>,
    );
    let mut sides: Vec<Side> = vec![
        ("direct ssh", Box::new(|c: &str| target.ssh_cmd(&[c])), None),
        (
            "nested OpenSSH",
            Box::new(|c: &str| nested.ssh_cmd(&[c])),
            nested.pid().map(|p| (p, "ssh")),
        ),
        (
            "gatehouse",
            Box::new(|c: &str| gatehouse.ssh_cmd(&[&format!("tgt -- {c}")])),
            gatehouse.pid().map(|p| (p, "gatehouse")),
        ),
    ];
    if let Some(b) = &before {
        sides.push((
            "gatehouse before",
            Box::new(move |c: &str| b.ssh_cmd(&[&format!("tgt -- {c}")])),
            b.pid().map(|p| (p, baseline_comm.as_str())),
        ));
    }
    // results[side][direction] = runs
    let mut results: Vec<[Vec<Run>; 2]> = vec![Default::default(); sides.len()];
    for r in 0..runs {
        for (i, (name, cmd, root)) in sides.iter().enumerate() {
            for (d, up) in [(0, true), (1, false)] {
                let c = cmd(if up { up_cmd } else { &down_cmd });
                match run(c, up, bytes, *root) {
                    Ok(x) => results[i][d].push(x),
                    Err(e) => eprintln!("run {r} {name} {}: {e}", if up { "up" } else { "down" }),
                }
            }
        }
    }
    println!();
    println!("exec stream, {mb} MiB each way, median of {runs} (loopback; figures, not limits)");
    println!(
        "{:<16} {:>10} {:>10} {:>9} {:>9} {:>12} {:>10} {:>10}",
        "path", "up MB/s", "down MB/s", "up ×", "down ×", "relay RSS", "up s/GB", "down s/GB"
    );
    let mbps = |v: &[Run]| median(v.iter().map(|r| mb as f64 / r.secs).collect());
    // Relay CPU seconds per GiB moved, per direction.
    let per_gb = |v: &[Run]| median(v.iter().map(|r| r.cpu_secs * 1024.0 / mb as f64).collect());
    let base = (mbps(&results[0][0]), mbps(&results[0][1]));
    for (i, (name, _, _)) in sides.iter().enumerate() {
        let (u, d) = (mbps(&results[i][0]), mbps(&results[i][1]));
        let all: Vec<Run> = results[i].iter().flatten().copied().collect();
        let hwm = median(all.iter().map(|r| r.hwm_mib).collect());
        println!(
            "{:<16} {:>10.1} {:>10.1} {:>8.2}x {:>8.2}x {:>9.1} MiB {:>10.2} {:>10.2}",
            name,
            u,
            d,
            u / base.0,
            d / base.1,
            hwm,
            per_gb(&results[i][0]),
            per_gb(&results[i][1]),
        );
    }
    println!("(×: throughput relative to direct ssh; relay: gatehouse, or the onward ssh of the nested bastion; s/GB: the relay's CPU seconds per GiB moved, sampled every 50 ms)");
}
