//! Arbitrary interleavings of operator input, target output and window
//! resizes into one capture engine: it must never panic, never emit text
//! with control characters or over the bound, and never grow without bound.
//!
//! Layout of the fuzz input: a sequence of records, each a tag byte then,
//! for input/output, a length byte and that many bytes; for a resize, four
//! bytes of cols and rows.
//!
//! Run: `cd fuzz && cargo +nightly fuzz run capture`
#![no_main]

use gatehouse::core::capture::{Capture, Record, MAX_COMMAND_BYTES};
use std::time::{Duration, Instant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&c0, mut rest)) = data.split_first() else {
        return;
    };
    let mut cap = Capture::new(u16::from(c0) * 3, u16::from(c0 >> 2));
    let mut out = Vec::new();
    let mut now = Instant::now();
    while let Some((&tag, r)) = rest.split_first() {
        now += Duration::from_millis(u64::from(tag >> 3) * 10);
        rest = r;
        match tag % 8 {
            0 => {
                if rest.len() < 4 {
                    break;
                }
                let cols = u16::from_le_bytes([rest[0], rest[1]]);
                let rows = u16::from_le_bytes([rest[2], rest[3]]);
                cap.resize(cols % 600, rows % 600);
                rest = &rest[4..];
            }
            t => {
                let Some((&len, r)) = rest.split_first() else {
                    break;
                };
                let n = usize::from(len).min(r.len());
                let (chunk, r) = r.split_at(n);
                rest = r;
                if t < 4 {
                    // Through the gate, as the relay feeds it.
                    let mut keys = chunk;
                    while !keys.is_empty() {
                        if cap.holding() && !cap.settle(now, t == 3, &mut out) {
                            break;
                        }
                        let g = cap.input(keys, now, &mut out);
                        keys = &keys[g.consumed..];
                    }
                } else {
                    cap.output(chunk, now, &mut out);
                    cap.settle(now, false, &mut out);
                }
            }
        }
        assert!(cap.approx_heap_bytes() < 40 << 20);
    }
    cap.finish(now, &mut out);
    for r in &out {
        if let Record::Command(c) = r {
            assert!(!c.text.trim().is_empty());
            // Over the bound: 8 KiB + `…` + 8 KiB.
            assert!(c.text.len() <= MAX_COMMAND_BYTES + '…'.len_utf8());
        }
    }
});
