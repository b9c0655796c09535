//! Replays every recorded session in `tests/corpus/` through the capture
//! engine, in the recorded interleaving, and checks the exact commands.
//!
//! Corpus format (written by `tests/corpus/record.py` from real bash in a
//! real pty): JSON with `cols`, `rows`, `events` — a list of
//! `["i", base64]` (operator → target), `["o", base64]` (target → operator)
//! and `["r", cols, rows]` (window resize) — `expected`, the list of command
//! texts in order, and optionally `secret`, a string or list of strings
//! that must appear in no command.

use base64::Engine as _;
use gatehouse::core::capture::{Capture, Command, Record};
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

enum Event {
    In(Vec<u8>),
    Out(Vec<u8>),
    Resize(u16, u16),
}

struct Case {
    name: String,
    cols: u16,
    rows: u16,
    events: Vec<Event>,
    expected: Vec<String>,
    secrets: Vec<String>,
    /// Commands that must be recorded `verified: false` (the screen
    /// cannot prove them).
    unverified: Vec<String>,
}

fn load(path: &Path) -> Case {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let b64 = |s: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap())
            .unwrap()
    };
    let events = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e[0].as_str().unwrap() {
            "i" => Event::In(b64(&e[1])),
            "o" => Event::Out(b64(&e[1])),
            "r" => Event::Resize(e[1].as_u64().unwrap() as u16, e[2].as_u64().unwrap() as u16),
            other => panic!("unknown event {other}"),
        })
        .collect();
    let secrets = match &v["secret"] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
        _ => vec![],
    };
    Case {
        name: v["name"].as_str().unwrap().to_string(),
        cols: v["cols"].as_u64().unwrap() as u16,
        rows: v["rows"].as_u64().unwrap() as u16,
        events,
        expected: v["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
        secrets,
        unverified: v["unverified"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default(),
    }
}

/// Feeds waiting operator bytes through the gate, as the relay does: up
/// to each held Enter, which must be decided before the rest goes on.
fn pump(cap: &mut Capture, pending: &mut VecDeque<u8>, t: Instant, out: &mut Vec<Record>) {
    while !pending.is_empty() {
        if cap.holding() && !cap.settle(t, false, out) {
            return;
        }
        let buf: Vec<u8> = pending.iter().copied().collect();
        let g = cap.input(&buf, t, out);
        pending.drain(..g.consumed);
        if g.consumed == 0 {
            return;
        }
    }
    if cap.holding() {
        cap.settle(t, false, out);
    }
}

/// Replays a case; `split` > 0 cuts every chunk into pieces of that size,
/// which must not change the result (chunking is arbitrary in the relay).
///
/// Time is simulated: a held Enter is decided as soon as the screen allows,
/// and at the latest when the recorded stream shows its effect (the
/// newline that follows it, or the next keys) — in the live relay the
/// target cannot answer an Enter it has not received.
fn replay(case: &Case, split: usize) -> Vec<Record> {
    let mut cap = Capture::new(case.cols, case.rows);
    let mut out = Vec::new();
    let mut pending = VecDeque::new();
    let mut t = Instant::now();
    let mut after_input = false;
    for e in &case.events {
        t += Duration::from_millis(1);
        let first_output = std::mem::replace(&mut after_input, matches!(e, Event::In(_)));
        match e {
            Event::In(b) => {
                pending.extend(b.iter().copied());
                let size = if split == 0 { b.len().max(1) } else { split };
                // Split input reaches the gate piece by piece.
                let mut queued: VecDeque<u8> = std::mem::take(&mut pending);
                while !queued.is_empty() {
                    let n = size.min(queued.len());
                    pending.extend(queued.drain(..n));
                    pump(&mut cap, &mut pending, t, &mut out);
                    if cap.holding() {
                        pending.extend(queued.drain(..));
                    }
                }
            }
            Event::Out(b) => {
                if !pending.is_empty() && !cap.holding() {
                    // Keys waiting behind a Ctrl-C for the shell's answer:
                    // in the recorded session they went before this output
                    // (it may be their echo), so here their wait ran out.
                    if let Some(d) = cap.deadline() {
                        t = t.max(d);
                        pump(&mut cap, &mut pending, t, &mut out);
                    }
                }
                if cap.holding() && first_output {
                    // Recorded keys came one at a time with pauses: the
                    // screen was quiet before the output that followed a
                    // key. (Output right after output came at once: a
                    // burst of keys redrawn in pieces.)
                    t += Duration::from_millis(150);
                    pump(&mut cap, &mut pending, t, &mut out);
                }
                let size = if split == 0 { b.len().max(1) } else { split };
                for piece in b.chunks(size) {
                    let mut rest = piece;
                    while !rest.is_empty() {
                        let k = rest.iter().position(|&c| c == b'\n');
                        let (now, later) = match k {
                            Some(0) => {
                                if cap.holding() {
                                    // A newline after a held Enter is its
                                    // effect: in the live relay the deadline
                                    // passed first.
                                    // A typed-ahead line's Enter is still
                                    // waiting for its echo unless the screen
                                    // stopped at a prompt that never echoes
                                    // (live: the deadline passes there).
                                    let silent_prompt =
                                        cap.cursor_line().to_lowercase().contains("password");
                                    t += if cap.held_typed_ahead() && !silent_prompt {
                                        Duration::from_millis(150)
                                    } else {
                                        Duration::from_secs(5)
                                    };
                                    pump(&mut cap, &mut pending, t, &mut out);
                                }
                                rest.split_at(1)
                            }
                            Some(k) => rest.split_at(k),
                            None => (rest, &rest[rest.len()..]),
                        };
                        cap.output(now, t, &mut out);
                        pump(&mut cap, &mut pending, t, &mut out);
                        rest = later;
                    }
                }
            }
            Event::Resize(c, r) => cap.resize(*c, *r),
        }
    }
    t += Duration::from_secs(10);
    if cap.holding() {
        cap.settle(t, true, &mut out);
    }
    pump(&mut cap, &mut pending, t, &mut out);
    cap.finish(t, &mut out);
    out
}

fn commands(records: &[Record]) -> Vec<&Command> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Command(c) | Record::Unstopped(c) => Some(c),
            Record::Hidden { .. } => None,
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no corpus in {}", dir.display());
    paths.iter().map(|p| load(p)).collect()
}

fn check(split: usize) {
    let mut failures = Vec::new();
    for case in cases() {
        let records = replay(&case, split);
        let got = commands(&records);
        let texts: Vec<&str> = got.iter().map(|c| c.text.as_str()).collect();
        for s in &case.secrets {
            assert!(
                !records
                    .iter()
                    .any(|r| format!("{r:?}").contains(s.as_str())),
                "{}: secret {s:?} recorded: {texts:?}",
                case.name
            );
        }
        for u in &case.unverified {
            let c = got.iter().find(|c| &c.text == u);
            if c.is_some_and(|c| c.verified) {
                failures.push(format!(
                    "{} (split {split}): {u:?} must be verified: false",
                    case.name
                ));
            }
        }
        if texts != case.expected {
            failures.push(format!(
                "{} (split {split}):\n  expected {:?}\n  got      {:?}",
                case.name, case.expected, got
            ));
        } else {
            eprintln!("ok {} (split {split}): {:?}", case.name, got);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn corpus_as_recorded() {
    check(0);
}

#[test]
fn corpus_split_into_single_bytes() {
    check(1);
}

#[test]
fn corpus_split_into_three_byte_pieces() {
    check(3);
}
