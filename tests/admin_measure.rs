//! Measurements, not assertions (ignored by default; run with
//! `cargo test --release --test admin_measure -- --ignored --nocapture`):
//! session throughput with recording on and off, the disk cost of a busy
//! session, and the example output shown in the README.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(120);

/// MB/s of `yes | head -c BYTES` through Gatehouse, and (cast size, bytes out).
fn one_run(gh: &Gh, bytes: u64) -> (f64, Option<(u64, u64)>) {
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    p.send_line(&format!("yes | head -c {bytes}; echo DONE-$((40+2))"))
        .unwrap();
    // The echo of the typed line contains "DONE-$((40+2))", not "DONE-42".
    let start = Instant::now();
    let n = p.read_until_raw(b"DONE-42", T).unwrap();
    let secs = start.elapsed().as_secs_f64();
    p.send_line("exit").unwrap();
    p.wait_exit(T).expect("exit");
    let end = gh.records("session_end").pop().unwrap();
    let start_rec = gh.records("session_start").pop().unwrap();
    let cast = start_rec["recording"]
        .as_str()
        .and_then(|f| std::fs::metadata(f).ok())
        .map(|m| (m.len(), end["bytes_out"].as_u64().unwrap()));
    (n as f64 / secs / 1e6, cast)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore]
fn recording_overhead() {
    let t = Target::start();
    let on = Gh::builder().target("web01", &t).build();
    let off = Gh::builder()
        .target("web01", &t)
        .extra_settings("recording = false")
        .build();
    let bytes = 100_000_000;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut ratio = 0.0;
    for _ in 0..3 {
        let (r, cast) = one_run(&on, bytes);
        a.push(r);
        if let Some((size, out)) = cast {
            ratio = size as f64 / out as f64;
        }
        b.push(one_run(&off, bytes).0);
    }
    let (ma, mb) = (median(a.clone()), median(b.clone()));
    println!("throughput, recording on : median {ma:.0} MB/s  runs {a:.0?}");
    println!("throughput, recording off: median {mb:.0} MB/s  runs {b:.0?}");
    println!("recording on / off: {:.2}", ma / mb);
    println!(
        "disk: {ratio:.2} bytes of .cast per byte of output; at the measured rate a session \
         printing flat out for an hour writes {:.0} GB; at 1 MB/s of output {:.1} GB/hour",
        ma * 1e6 * 3600.0 * ratio / 1e9,
        1e6 * 3600.0 * ratio / 1e9
    );
}

#[test]
#[ignore]
fn readme_example_output() {
    let t = Target::start();
    let gh = Gh::with_targets(&[("web01", &t)]);
    let mut p = gh.spawn(&["-c", "web01"]);
    p.expect("tgt$ ").unwrap();
    for c in ["uname -r", "systemctl restart nginx"] {
        p.send_line(c).unwrap();
        p.expect("tgt$ ").unwrap();
    }
    p.send_line("exit").unwrap();
    p.wait_exit(T);
    let _ = gh.command().args(["-c", "scp -t /etc"]).output();
    let mut k = gh.spawn(&["-c", "web01"]);
    k.expect("tgt$ ").unwrap();
    k.send_line("tail -f /dev/null &").unwrap();
    gh.wait_for_record(|r| r["event"] == "command", T);
    k.signal(nix::sys::signal::Signal::SIGKILL);
    k.wait_exit(T);
    for args in [
        vec!["audit", "--check"],
        vec!["audit"],
        vec!["audit", "--grep", "systemctl", "--json"],
        vec!["audit", "--event", "session_end", "--since", "1h"],
        vec!["audit", "--verify"],
    ] {
        let o = gh.command().args(&args).output().unwrap();
        println!("$ gatehouse {}", args.join(" "));
        print!("{}", String::from_utf8_lossy(&o.stdout));
        print!("{}", String::from_utf8_lossy(&o.stderr));
    }
    // A copy of the trail with one command line deleted.
    let copy = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(gh.jsonl_path()).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"uname -r\""))
        .collect();
    std::fs::write(copy.path().join("alice.jsonl"), kept.join("\n") + "\n").unwrap();
    let dir = copy.path().display().to_string();
    let o = gh
        .command()
        .args(["audit", "--verify", "--log-dir", &dir])
        .output()
        .unwrap();
    println!("$ gatehouse audit --verify --log-dir {dir}");
    print!("{}", String::from_utf8_lossy(&o.stdout));
}
