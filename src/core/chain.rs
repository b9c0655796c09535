//! Tamper evidence: every record carries `n` (its place in its chain, 1, 2,
//! …) and `prev` (SHA-256, lowercase hex, of the exact bytes of the previous
//! line of the same chain, newline excluded). A record's chain is its
//! `session` when it has one, otherwise its `login`. Each chain is written
//! by exactly one process (ids are unique per login), so concurrent logins
//! of one user appending to the same file need no coordination.
//!
//! The verifier is pure: feed it lines in file order, it reports the first
//! broken link of each chain. See docs/audit-format.md for what this does
//! and does not protect against.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::record::read::{Body, Record};

/// `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 of a line (without its newline), lowercase hex.
pub fn hash_line(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let digest = Sha256::digest(line);
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Where a chain stands: the last record's `n` and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub n: u64,
    pub hash: String,
}

impl Link {
    /// `(n, prev)` for the record that follows this one.
    pub fn next(this: Option<&Link>) -> (u64, String) {
        match this {
            Some(l) => (l.n + 1, l.hash.clone()),
            None => (1, GENESIS.to_string()),
        }
    }
}

/// A broken link: what is wrong, at which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub line: u64,
    pub chain: String,
    pub what: String,
}

#[derive(Debug)]
struct State {
    n: u64,
    hash: String,
    line: u64,
    broken: bool,
}

/// Checks chains record by record. Memory: one entry per chain still open
/// (a session chain is dropped at its `session_end`, a login chain at its
/// `logout`).
#[derive(Debug, Default)]
pub struct Verifier {
    chains: HashMap<String, State>,
    /// Records written before chaining existed (no `n`/`prev`).
    pub unchained: u64,
    pub checked: u64,
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier::default()
    }

    /// One record, in file order (its hash is taken over `rec.bytes`, the
    /// line exactly as stored).
    pub fn feed(&mut self, line_no: u64, rec: &Record) -> Option<Break> {
        // A seal stands outside the chains it covers (its MAC and its
        // epoch protect it: audit::seal).
        if matches!(rec.body, Body::Seal(_)) {
            return None;
        }
        let (Some(chain), Some(n), Some(prev)) =
            (rec.chain(), rec.head.n, rec.head.prev.as_deref())
        else {
            self.unchained += 1;
            return None;
        };
        self.checked += 1;
        let hash = hash_line(&rec.bytes);
        let closes = rec.closes_chain();
        let brk = |what: String| Break {
            line: line_no,
            chain: chain.to_string(),
            what,
        };
        let result = match self.chains.get_mut(chain) {
            None => {
                let r = if n != 1 {
                    Some(brk(format!(
                        "the chain starts at record n={n}: {} earlier record(s) missing",
                        n - 1
                    )))
                } else if prev != GENESIS {
                    Some(brk(
                        "the first record of the chain does not start from the genesis hash".into(),
                    ))
                } else {
                    None
                };
                self.chains.insert(
                    chain.to_string(),
                    State {
                        n,
                        hash,
                        line: line_no,
                        broken: r.is_some(),
                    },
                );
                r
            }
            Some(st) if st.broken => None,
            Some(st) => {
                let r = if n <= st.n {
                    Some(brk(format!(
                        "record n={n} comes after n={} (line {}): reordered or duplicated",
                        st.n, st.line
                    )))
                } else if n > st.n + 1 {
                    Some(brk(format!(
                        "record n={n} follows n={} (line {}): {} record(s) deleted",
                        st.n,
                        st.line,
                        n - st.n - 1
                    )))
                } else if prev != st.hash {
                    Some(brk(format!(
                        "`prev` does not match the hash of line {} (n={}): that line was edited, or replaced",
                        st.line, st.n
                    )))
                } else {
                    None
                };
                st.broken = r.is_some();
                st.n = n;
                st.hash = hash;
                st.line = line_no;
                r
            }
        };
        if closes && result.is_none() {
            self.chains.remove(chain);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(chain: &str, n: u64, prev: &str, text: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "event": "command", "login": "L", "session": chain, "command": text, "n": n, "prev": prev
        }))
        .unwrap()
    }

    fn chain(k: usize) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut link: Option<Link> = None;
        for i in 0..k {
            let (n, prev) = Link::next(link.as_ref());
            let l = line("S", n, &prev, &format!("cmd {i}"));
            link = Some(Link {
                n,
                hash: hash_line(&l),
            });
            out.push(l);
        }
        out
    }

    fn verify(lines: &[Vec<u8>]) -> Vec<Break> {
        let mut v = Verifier::new();
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let rec = Record::parse(l.clone()).unwrap();
                v.feed(i as u64 + 1, &rec)
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify(&chain(5)).is_empty());
    }

    #[test]
    fn hash_ignores_the_newline() {
        assert_eq!(hash_line(b"abc\n"), hash_line(b"abc"));
        assert_eq!(
            hash_line(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn deleted_line_is_caught() {
        let mut c = chain(5);
        c.remove(2);
        let b = verify(&c);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].line, 3);
        assert!(b[0].what.contains("deleted"), "{}", b[0].what);
    }

    #[test]
    fn edited_line_is_caught_at_the_next_one() {
        let mut c = chain(5);
        c[1] = String::from_utf8(c[1].clone())
            .unwrap()
            .replace("cmd 1", "cmd X")
            .into_bytes();
        let b = verify(&c);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].line, 3);
        assert!(b[0].what.contains("line 2"), "{}", b[0].what);
    }

    #[test]
    fn reordered_lines_are_caught() {
        let mut c = chain(5);
        c.swap(1, 2);
        let b = verify(&c);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].line, 2);
    }

    #[test]
    fn missing_head_is_caught() {
        let c = chain(3);
        let b = verify(&c[1..]);
        assert_eq!(b.len(), 1);
        assert!(b[0].what.contains("starts at record n=2"));
    }

    #[test]
    fn interleaved_chains_are_independent() {
        let a = chain(3);
        let mut b_link = None;
        let mut all = Vec::new();
        for (i, l) in a.iter().enumerate() {
            all.push(l.clone());
            let (n, prev) = Link::next(b_link.as_ref());
            let bl = line("T", n, &prev, &format!("other {i}"));
            b_link = Some(Link {
                n,
                hash: hash_line(&bl),
            });
            all.push(bl);
        }
        assert!(verify(&all).is_empty());
    }
}
