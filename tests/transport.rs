//! The SSH transport to the target, end to end, with the target's sshd
//! offering only chacha20-poly1305: the cipher of the vendored libssh2's
//! one patch (vendor/README.md: ChaCha20 and Poly1305 from libcrypto). Bytes must
//! arrive intact both ways over many packets, and a packet changed on the
//! wire must end the session before any of its bytes reach the operator.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

/// A target whose sshd negotiates chacha20-poly1305 or nothing.
fn chacha_target() -> Target {
    Target::start_with_extra("tgt$ ", "Ciphers chacha20-poly1305@openssh.com\n")
}

/// A config where the current user may run commands on `web01`, reached
/// at `port` (the target's own, or a proxy's in front of it).
fn exec_env(t: &Target, port: u16) -> Gh {
    let user = current_user();
    let line = t.known_hosts_line();
    let key = line.split_once(' ').unwrap().1;
    Gh::builder()
        .host(HostSpec::new("web01", "127.0.0.1", port, &t.user).key(&t.key_path))
        .known_host(&format!("[127.0.0.1]:{port} {key}"))
        .no_access()
        .extra_toml(&format!(
            "[[access]]\nusers = [\"{user}\"]\nhosts = [\"web01\"]\nexec = true\n"
        ))
        .build()
}

/// `gatehouse -c "web01 -- COMMAND"` (sshd's login-shell invocation of an
/// exec request), `stdin` fed to it, killed after `timeout`.
fn exec(gh: &Gh, command: &str, stdin: Vec<u8>, timeout: Duration) -> Ran {
    let mut cmd = gh.command();
    cmd.args(["-c", &format!("web01 -- {command}")]);
    run_timed(cmd, Some(stdin), timeout)
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Bytes no shell or terminal rewrites, different in every packet.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn many_packets_cross_chacha20_poly1305_intact_both_ways() {
    let t = chacha_target();
    let gh = exec_env(&t, t.port);
    // 6 MiB up (stdin → the target's sha256sum) and 6 MiB down (the
    // target's own bytes): ~400 packets each way at the 32 KiB packet
    // size, every length and counter path of the cipher.
    let up = pattern(6 << 20);
    let out = exec(&gh, "sha256sum", up.clone(), T);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let got = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        got.split_whitespace().next(),
        Some(sha256_hex(&up).as_str()),
        "upload arrived changed: {got}"
    );

    let out = exec(
        &gh,
        "head -c 6291456 /dev/urandom | tee down.bin; sha256sum down.bin >&2",
        Vec::new(),
        T,
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout.len(), 6 << 20);
    assert_eq!(
        out.stderr.split_whitespace().next(),
        Some(sha256_hex(&out.stdout).as_str()),
        "download arrived changed"
    );
}

/// A TCP relay to `to` that flips one bit of the server's stream once
/// `after` bytes of it have passed (well past the key exchange, inside
/// encrypted packets). Returns its port and a flag set when it flipped.
fn tampering_proxy(to: u16, after: usize) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let flipped = Arc::new(AtomicBool::new(false));
    let flag = flipped.clone();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let server = TcpStream::connect(("127.0.0.1", to)).unwrap();
        let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while let Ok(n) = c_read.read(&mut buf) {
                if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = s_write.shutdown(Shutdown::Write);
        });
        let (mut s_read, mut c_write) = (server, client);
        let mut seen = 0usize;
        let mut buf = [0u8; 16384];
        while let Ok(n) = s_read.read(&mut buf) {
            if n == 0 {
                break;
            }
            if !flag.load(Ordering::SeqCst) && seen + n > after {
                buf[after.saturating_sub(seen).min(n - 1)] ^= 0x10;
                flag.store(true, Ordering::SeqCst);
            }
            seen += n;
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_write.shutdown(Shutdown::Write);
    });
    (port, flipped)
}

#[test]
fn a_bit_flipped_on_the_wire_ends_the_session_and_no_altered_byte_reaches_the_operator() {
    let t = chacha_target();
    // 256 KiB into the server's stream: the handshake and the login are
    // a few KiB, so the flip lands in the command's output packets.
    let (port, flipped) = tampering_proxy(t.port, 256 << 10);
    let gh = exec_env(&t, port);
    let expected: Vec<u8> = (1..=400_000)
        .flat_map(|i: u32| format!("{i}\n").into_bytes())
        .collect();
    let out = exec(&gh, "seq 1 400000", Vec::new(), T);
    assert!(
        flipped.load(Ordering::SeqCst),
        "the proxy never flipped a bit"
    );
    assert_ne!(out.code, 0, "a tampered session must not end well");
    assert_ne!(out.code, -2, "gatehouse hung on a tampered stream");
    assert!(
        out.stdout.len() < expected.len(),
        "all the output arrived: the flipped packet was accepted"
    );
    assert_eq!(
        &out.stdout[..],
        &expected[..out.stdout.len()],
        "bytes from the altered packet reached the operator"
    );
    assert!(
        !out.stderr.is_empty() && !out.stderr.contains("panicked"),
        "one clear line expected on stderr, got: {:?}",
        out.stderr
    );
    // The trail says the session did not end normally.
    let end = gh
        .records("session_end")
        .pop()
        .unwrap_or_else(|| panic!("no session_end in {:#?}", gh.jsonl()));
    assert_ne!(end["reason"], "exit", "session_end: {end}");
}
