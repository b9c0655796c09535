//! How fast `Recorder::output` turns terminal output into asciicast lines:
//! `cargo run --release --example recording_throughput [DIR]`.
//! Feeds 64 KiB chunks (what the relay reads at once) of three kinds of
//! output for a fixed volume each and prints MB/s of input consumed and
//! the bytes written per input byte (disk cost).
use std::time::Instant;

use gatehouse::recording::{Recorder, SessionInfo};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("gh-rec-bench-{}", std::process::id()));
    let kinds: [(&str, Vec<u8>); 3] = [
        ("yes (\"y\\r\\n\")", b"y\r\n".repeat(64 * 1024 / 3 + 1)),
        (
            "ls -l text",
            b"-rw-r--r-- 1 deploy deploy   4096 Nov 28 18:24 access.log.2026-11-28.gz\r\n"
                .repeat(1000),
        ),
        (
            "colour + UTF-8",
            "\x1b[1;32mok\x1b[0m 你好 — über résumé \x1b[31merror\x1b[0m\r\n"
                .as_bytes()
                .repeat(1200),
        ),
    ];
    for (i, (name, pattern)) in kinds.iter().enumerate() {
        let chunk: Vec<u8> = pattern.iter().copied().cycle().take(64 * 1024).collect();
        let session = format!("bench{i}");
        let info = SessionInfo {
            session: &session,
            user: "bench",
            host: "h",
            term: "xterm",
            cols: 80,
            rows: 24,
        };
        let mut r = Recorder::create(&dir, &info, false).expect("create recording");
        let total: usize = 512 << 20;
        let cpu0 = cpu_secs();
        let (u0, s0) = user_sys();
        let start = Instant::now();
        let mut fed = 0;
        while fed < total {
            r.output(&chunk).expect("record");
            fed += chunk.len();
        }
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu0;
        let (u1, s1) = user_sys();
        let written = std::fs::metadata(r.path()).map(|m| m.len()).unwrap_or(0);
        println!(
            "{name:<16} {:>6.0} MB/s wall  {:>6.0} MB per CPU-second   {:.2} bytes on disk per byte of output   (user {:.0}% / kernel {:.0}%)",
            fed as f64 / secs / 1e6,
            fed as f64 / cpu / 1e6,
            written as f64 / fed as f64,
            100.0 * (u1 - u0) / cpu,
            100.0 * (s1 - s0) / cpu
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// User + system CPU time of this process: the machine may be shared, so
/// wall-clock MB/s understates what recording costs.
fn cpu_secs() -> f64 {
    let (u, s) = user_sys();
    u + s
}

fn user_sys() -> (f64, f64) {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    (tv(u.user_time()), tv(u.system_time()))
}
