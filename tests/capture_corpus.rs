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
use gatehouse::capture::{Capture, Command};
use std::path::Path;

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
    }
}

/// Replays a case; `split` > 0 cuts every chunk into pieces of that size,
/// which must not change the result (chunking is arbitrary in the relay).
fn replay(case: &Case, split: usize) -> Vec<Command> {
    let mut cap = Capture::new(case.cols, case.rows);
    let mut out = Vec::new();
    for e in &case.events {
        match e {
            Event::In(b) | Event::Out(b) => {
                let size = if split == 0 { b.len().max(1) } else { split };
                for piece in b.chunks(size) {
                    if matches!(e, Event::In(_)) {
                        cap.input(piece, &mut out);
                    } else {
                        cap.output(piece, &mut out);
                    }
                }
            }
            Event::Resize(c, r) => cap.resize(*c, *r),
        }
    }
    cap.finish(&mut out);
    out
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
        let got = replay(&case, split);
        let texts: Vec<&str> = got.iter().map(|c| c.text.as_str()).collect();
        for s in &case.secrets {
            assert!(
                !got.iter().any(|c| c.text.contains(s.as_str())),
                "{}: secret {s:?} recorded: {texts:?}",
                case.name
            );
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
