//! Bulk output through the relay (`operator::bulk_reads`): while the
//! target streams, Gatehouse reads its socket in batches, so the bastion's
//! pty gets a few large writes instead of one per arriving segment; the
//! end of a burst, and whatever follows it, still reach the operator at
//! once. Real binaries, a real bastion sshd whose ForceCommand is
//! Gatehouse, a real target sshd, real ptys.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Base64 of 20 MB of zeros, then a marker the shell computes (so the
/// echoed command line cannot match it).
const STREAM: &str = "head -c 20000000 /dev/zero | base64; echo done-$((6*7))";
/// What reaches the terminal: 76-character lines, each ending CR LF.
const STREAM_BYTES: u64 = 27_368_424;
/// A shorter stream for the tests that only need batching switched on.
const BURST: &str = "head -c 3000000 /dev/zero | base64 -w 0; echo; echo done-$((6*7))";

/// One test at a time: the write count below reads how the relay batched
/// a stream, and another test's stream on these two cores would stall
/// this one's target and end its batches early.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Write system calls `pid` has made so far (`syscw`, /proc/PID/io).
fn write_calls(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Reads the operator's terminal raw and as fast as it comes (`expect`
/// parses every byte, which would make the reader the slowest part) until
/// `marker` has gone by; returns the bytes read.
fn read_until(p: &Pty, marker: &[u8], timeout: Duration) -> u64 {
    let fd = p.master_fd().unwrap();
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0u64;
    loop {
        assert!(
            Instant::now() < deadline,
            "no {:?} within {timeout:?} ({total} bytes read)",
            String::from_utf8_lossy(marker)
        );
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => panic!("the terminal closed before the marker"),
            Ok(n) => {
                total += n as u64;
                tail.extend_from_slice(&buf[..n]);
                if tail.windows(marker.len()).any(|w| w == marker) {
                    return total;
                }
                tail.drain(..tail.len().saturating_sub(marker.len()));
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A target, a bastion sshd running Gatehouse with `settings`, and
/// `ssh -tt web01` through it at the target's prompt. Held for the whole
/// test: one at a time (`ONE_AT_A_TIME`), and the servers live as long.
struct Visit {
    p: Pty,
    /// The Gatehouse process under the bastion's sshd.
    relay: i32,
    _one: std::sync::MutexGuard<'static, ()>,
    _b: Bastion,
    _gh: Gh,
    _t: Target,
}

fn visit_through_bastion(settings: &str) -> Visit {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Target::start();
    let gh = Gh::builder()
        .target("web01", &t)
        .extra_settings(settings)
        .build();
    let b = Bastion::start(&gh);
    let mut p = spawn_pty(b.ssh_cmd(&["-tt", "web01"]), 80, 24);
    p.expect("tgt$ ").unwrap();
    let relay = descendants_of(b.pid().unwrap())
        .into_iter()
        .find(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "gatehouse")
        })
        .expect("gatehouse under the bastion sshd");
    Visit {
        p,
        relay,
        _one: one,
        _b: b,
        _gh: gh,
        _t: t,
    }
}

/// The point of batching: a 27 MB stream (base64 in 76-character lines,
/// as `make bench` sends) reaches the bastion's pty in large writes. Read
/// as each segment arrived, it took 220–340 writes per MB here (one per
/// ~4 KiB segment); batched, 50–85 — also with both cores kept busy.
#[test]
fn a_stream_reaches_the_bastion_pty_in_large_writes() {
    if skip_without_pty() {
        return;
    }
    // No recording: its 64 KiB block writes would count too.
    let mut v = visit_through_bastion("recording = false");
    let (p, relay) = (&mut v.p, v.relay);
    let before = write_calls(relay);
    p.send_line(STREAM).unwrap();
    let read = read_until(p, b"done-42", Duration::from_secs(120));
    assert!(read >= STREAM_BYTES, "{read} bytes read");
    // Writes to the pty, and the audit log's few.
    let writes = write_calls(relay) - before;
    let per_mb = writes as f64 / (STREAM_BYTES as f64 / 1e6);
    eprintln!("{writes} write calls for {STREAM_BYTES} bytes: {per_mb:.0} per MB");
    assert!(
        per_mb < 150.0,
        "{per_mb:.0} write calls per MB of output: the stream was not batched"
    );
    p.send_line("exit 0").unwrap();
    assert_eq!(p.wait_exit(Duration::from_secs(30)), Some(0));
}

/// A stream, a pause, one line, then silence (the next output comes 12 s
/// later): the line must arrive at once, not when a keepalive (30 s here)
/// happens to wake the relay. `settings` go into the config. (No Ctrl-C
/// to cut the silence short: one that reaches bash between two commands
/// of a list can be lost, and the test would then wait for nothing.)
fn output_after_a_stream_arrives(settings: &str) {
    if skip_without_pty() {
        return;
    }
    let mut v = visit_through_bastion(settings);
    let p = &mut v.p;
    p.send_line(&format!(
        "{BURST}; sleep 1; echo after-$((6*7)); sleep 12; echo late-$((2*3))"
    ))
    .unwrap();
    read_until(p, b"done-42", Duration::from_secs(120));
    read_until(p, b"after-42", Duration::from_secs(10));
    read_until(p, b"late-6", Duration::from_secs(30));
    p.send_line("exit 0").unwrap();
    assert_eq!(p.wait_exit(Duration::from_secs(30)), Some(0));
}

/// Batching never holds output back.
#[test]
fn output_after_a_stream_arrives_while_the_target_stays_silent() {
    output_after_a_stream_arrives("");
}

/// The same without a recording: the recording's flush timer is one of
/// the things that wake the relay, so here the batching's own 1 ms cap
/// must (this is the test that fails without that cap).
#[test]
fn output_after_a_stream_arrives_without_a_recording() {
    output_after_a_stream_arrives("recording = false");
}
