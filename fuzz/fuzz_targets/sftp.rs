//! The SFTP watcher is total and bounded: any bytes, in any direction and
//! split anywhere, give packets, operations or an error, never a panic;
//! it never holds more than one packet per direction, never forwards a
//! byte it was not given, and forwards nothing after an error.
#![no_main]

use gatehouse::core::sftp::{Dir, Watcher, MAX_PACKET};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut w = Watcher::new();
    let mut ops = Vec::new();
    let (mut fed, mut out) = ([0usize; 2], [Vec::new(), Vec::new()]);
    // A valid opening half the time, so the fuzzer reaches the requests.
    if data.first().is_some_and(|b| b & 1 == 1) {
        let init = [0, 0, 0, 5, 1, 0, 0, 0, 3];
        let version = [0, 0, 0, 5, 2, 0, 0, 0, 3];
        w.feed(Dir::ToServer, &init, &mut out[0], &mut ops).unwrap();
        w.feed(Dir::ToClient, &version, &mut out[1], &mut ops).unwrap();
        out = [Vec::new(), Vec::new()];
    }
    // Chunks: [direction/length byte, bytes…].
    let mut rest = data.get(1..).unwrap_or(&[]);
    while let Some((&head, tail)) = rest.split_first() {
        let dir = if head & 0x80 == 0 { 0 } else { 1 };
        let n = (usize::from(head & 0x7f) * 37).min(tail.len());
        let (chunk, more) = tail.split_at(n.max(1).min(tail.len()));
        rest = more;
        let before = out[dir].len();
        let d = if dir == 0 { Dir::ToServer } else { Dir::ToClient };
        let r = w.feed(d, chunk, &mut out[dir], &mut ops);
        fed[dir] += chunk.len();
        assert!(out[dir].len() - before <= chunk.len() + 4 + MAX_PACKET);
        assert!(out[dir].len() <= fed[dir]);
        assert!(w.buffered() <= 2 * (4 + MAX_PACKET));
        if r.is_err() {
            return;
        }
    }
    w.finish(&mut ops);
    for op in &ops {
        assert!(op.path.chars().count() <= gatehouse::core::sftp::MAX_RECORDED_PATH + 1);
    }
});
