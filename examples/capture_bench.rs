//! Throughput of the capture engine, in MB/s (10^6 bytes per second).
//!
//! (a) bulk output like `cat bigfile` / `yes` after a command was typed,
//!     in 32 KiB chunks as the relay reads them;
//! (b) interactive typing: one key in, its echo out, Enter, a line of
//!     output and a new prompt;
//! (c) for reference, the same bulk output through vt100 alone.
//!
//! Run: `cargo run --release --example capture_bench`

use gatehouse::core::capture::Capture;
use std::time::Instant;

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn bulk_text(total: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(total + 128);
    let mut i = 0u64;
    while v.len() < total {
        if i % 3 == 0 {
            v.extend_from_slice(b"y\r\n");
        } else {
            v.extend_from_slice(
                format!(
                    "{i:08} the quick brown fox jumps over the lazy dog \x1b[1mbold\x1b[0m\r\n"
                )
                .as_bytes(),
            );
        }
        i += 1;
    }
    v
}

/// Keys through the gate as the relay does; a held Enter is decided at once.
fn keys(cap: &mut Capture, mut bytes: &[u8], out: &mut Vec<gatehouse::core::capture::Record>) {
    let now = Instant::now();
    while !bytes.is_empty() {
        let g = cap.input(bytes, now, out);
        bytes = &bytes[g.consumed..];
        if cap.holding() {
            cap.settle(now, true, out);
        }
    }
}

fn main() {
    let total = 256 << 20;
    let data = bulk_text(total);
    let mut out = Vec::new();

    // (a) bulk.
    let mut cap = Capture::new(80, 24);
    cap.output(b"tgt$ ", Instant::now(), &mut out);
    for &b in b"cat bigfile\r" {
        keys(&mut cap, &[b], &mut out);
    }
    let start = Instant::now();
    cap.output(b"cat bigfile\r\n", Instant::now(), &mut out);
    for chunk in data.chunks(32 * 1024) {
        cap.output(chunk, Instant::now(), &mut out);
    }
    cap.output(b"tgt$ ", Instant::now(), &mut out);
    keys(&mut cap, b"l", &mut out); // forces the resynchronisation
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(out.len(), 1);
    println!(
        "bulk output:        {:8.1} MB/s ({} MB)",
        mbps(data.len(), secs),
        data.len() / 1_000_000
    );

    // (b) interactive typing.
    let mut cap = Capture::new(80, 24);
    out.clear();
    cap.output(b"tgt$ ", Instant::now(), &mut out);
    let cmd = b"echo hello world and some more words here";
    let rounds = 20_000;
    let mut bytes = 0;
    let start = Instant::now();
    for _ in 0..rounds {
        for &b in cmd {
            keys(&mut cap, &[b], &mut out);
            cap.output(&[b], Instant::now(), &mut out);
            bytes += 2;
        }
        keys(&mut cap, b"\r", &mut out);
        let reply = b"\r\nhello world and some more words here\r\ntgt$ ";
        cap.output(reply, Instant::now(), &mut out);
        bytes += 1 + reply.len();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(out.len(), rounds);
    println!(
        "interactive typing: {:8.1} MB/s ({} commands/s)",
        mbps(bytes, secs),
        (rounds as f64 / secs) as u64
    );

    // (c) reference: vt100 alone.
    let part = &data[..32 << 20];
    let mut parser = vt100::Parser::new(
        std::num::NonZeroU16::new(24).unwrap(),
        std::num::NonZeroU16::new(80).unwrap(),
        0,
    );
    let start = Instant::now();
    for chunk in part.chunks(32 * 1024) {
        parser.process(chunk);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "vt100 alone:        {:8.1} MB/s (reference)",
        mbps(part.len(), secs)
    );
}
