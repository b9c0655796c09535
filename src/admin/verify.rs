//! `gatehouse audit --verify [--key KEY]…`: the hash chains of every file
//! (keyless: careless edits), and with the verification keys the
//! forward-secure seals (audit::seal): every seal's tag, that each seal's
//! epochs follow on without a hole or a repeat, that what a seal covers is
//! what the file holds, and how far the seals reach (unsealed tails are
//! reported, not failed). Streams each file; keeps one entry per chain not
//! yet closed-and-sealed and a few fields per seal.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::AdminError;
use crate::audit::reader::{JsonlReader, Line};
use crate::audit::seal::{self, KeyPath, VerificationKey};
use crate::core::chain::{hash_line, Verifier};
use crate::core::record::read::{self, Body, Record};

/// What verification was asked for.
pub struct VerifyOpts<'a> {
    pub files: &'a [PathBuf],
    pub keys: &'a [VerificationKey],
    /// The bastion's key file, to learn the epoch of the next seal (a cut
    /// of the newest seals shows) and whether it descends from a key.
    pub key_file: Option<&'a Path>,
    /// `.gz` files in the directories that were not read (their seals'
    /// epochs will look missing).
    pub skipped_compressed: usize,
}

/// Lines remembered to recognise a repeated delivery (a shipper's
/// at-least-once retry writes a line again, close to the first copy).
const RECENT_LINES: usize = 100_000;

/// Recently seen lines of a file, by their SHA-256.
#[derive(Default)]
struct Recent {
    order: VecDeque<[u8; 32]>,
    seen: HashSet<[u8; 32]>,
}

impl Recent {
    /// True when `bytes` were seen before (not inserted again).
    fn repeated(&mut self, bytes: &[u8]) -> bool {
        use sha2::Digest;
        let h: [u8; 32] = sha2::Sha256::digest(bytes).into();
        if !self.seen.insert(h) {
            return true;
        }
        self.order.push_back(h);
        if self.order.len() > RECENT_LINES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        false
    }
}

/// Most unsealed tails listed per file; the rest are counted.
const MAX_TAILS_LISTED: usize = 10;

/// A chain as the seals see it, within one file.
struct ChainState {
    n: u64,
    hash: String,
    /// Highest `n` a seal covered.
    sealed_n: u64,
    /// First record after `sealed_n`: its n, ts, line.
    tail: Option<(u64, String, u64)>,
    closed: bool,
    label: String,
}

/// A seal met in a file, checked once all are known.
struct SealSeen {
    file: usize,
    line: u64,
    key_id: String,
    bastion: String,
    epoch: u64,
    ts: String,
    body: Vec<u8>,
    mac: String,
}

pub fn verify(o: &VerifyOpts<'_>) -> Result<i32, AdminError> {
    verify_into(&mut io::stdout().lock(), o)
}

/// The report goes to `out`; 0 when intact, 1 when not.
pub fn verify_into(out: &mut impl Write, o: &VerifyOpts<'_>) -> Result<i32, AdminError> {
    let mut bad = false;
    let mut seals: Vec<SealSeen> = Vec::new();
    for (fi, p) in o.files.iter().enumerate() {
        bad |= verify_file(out, fi, p, o, &mut seals)?;
    }
    bad |= check_seals(out, o, &seals)?;
    Ok(if bad { 1 } else { 0 })
}

/// How a chain is named in the report: its session (and host), or its
/// login.
fn label_of(rec: &Record, chain: &str) -> String {
    match (rec.session(), &rec.head.host) {
        (Some(s), Some(h)) => format!("session {s} (host {})", super::audit::visible(h, 64)),
        (Some(s), None) => format!("session {s}"),
        (None, _) => format!("login {chain}"),
    }
}

/// One file: chains, and the seals' coverage. True when something is wrong.
fn verify_file(
    out: &mut impl Write,
    fi: usize,
    p: &Path,
    o: &VerifyOpts<'_>,
    seals: &mut Vec<SealSeen>,
) -> Result<bool, AdminError> {
    let read_err = |err| AdminError::Read {
        path: p.to_path_buf(),
        err,
    };
    let mut r = JsonlReader::open(p).map_err(read_err)?;
    let mut f = FileCheck::new(p, fi);
    while let Some(line) = r.next_line().map_err(read_err)? {
        f.line(out, line, seals)?;
    }
    if let Some(no) = r.truncated_tail() {
        writeln!(
            out,
            "{}:{no}: truncated record (no newline at the end)",
            p.display()
        )?;
    }
    f.finish(out, o)
}

/// One file being verified: its chains, its seals, what was wrong.
struct FileCheck<'a> {
    path: &'a Path,
    /// The file's index in `VerifyOpts::files` (seals name it).
    fi: usize,
    v: Verifier,
    breaks: u64,
    corrupt_lines: u64,
    seal_problems: u64,
    /// Sessions' names for the report ("session S (host H)"), from their
    /// `session_start`.
    chain_names: HashMap<String, String>,
    /// Where each chain stands, for the seals.
    chains: HashMap<String, ChainState>,
    seals_here: u64,
    last_seal_ts: Option<String>,
    recent: Recent,
    repeated: u64,
}

impl<'a> FileCheck<'a> {
    fn new(path: &'a Path, fi: usize) -> FileCheck<'a> {
        FileCheck {
            path,
            fi,
            v: Verifier::new(),
            breaks: 0,
            corrupt_lines: 0,
            seal_problems: 0,
            chain_names: HashMap::new(),
            chains: HashMap::new(),
            seals_here: 0,
            last_seal_ts: None,
            recent: Recent::default(),
            repeated: 0,
        }
    }

    fn line(
        &mut self,
        out: &mut impl Write,
        line: Line,
        seals: &mut Vec<SealSeen>,
    ) -> io::Result<()> {
        let shown = self.path.display();
        let (no, rec) = match line {
            Line::Corrupt { no, why } => {
                writeln!(out, "{shown}:{no}: {why} (edited or damaged)")?;
                self.corrupt_lines += 1;
                return Ok(());
            }
            Line::Record { no, record } => (no, record),
        };
        // Every record is unique (its chain, n and prev): the very same
        // bytes again are a repeated delivery (rsyslog/RELP retries are
        // at-least-once), not a change. Reported, then skipped.
        if self.recent.repeated(&rec.bytes) {
            writeln!(
                out,
                "{shown}:{no}: the same bytes as an earlier line: delivered twice by the log shipping; ignored"
            )?;
            self.repeated += 1;
            return Ok(());
        }
        match &rec.body {
            Body::Seal(seal) => self.seal(out, no, &rec, seal, seals),
            _ => self.record(out, no, &rec),
        }
    }

    /// A seal: what it covers must be where the chains stand.
    fn seal(
        &mut self,
        out: &mut impl Write,
        no: u64,
        rec: &Record,
        seal: &read::Seal,
        seals: &mut Vec<SealSeen>,
    ) -> io::Result<()> {
        let shown = self.path.display();
        self.seals_here += 1;
        let Some((body, epoch, key_id, covered)) = seal::body_of(&rec.head, seal) else {
            writeln!(
                out,
                "{shown}:{no}: a seal record with missing or malformed fields"
            )?;
            self.seal_problems += 1;
            return Ok(());
        };
        for c in &covered {
            if let Some(m) = self.cover(c, epoch) {
                writeln!(out, "{shown}:{no}: {m}")?;
                self.seal_problems += 1;
            }
        }
        let ts = rec.head.ts.clone().unwrap_or_default();
        self.last_seal_ts = Some(ts.clone());
        seals.push(SealSeen {
            file: self.fi,
            line: no,
            key_id,
            bastion: rec.head.bastion.clone().unwrap_or_default(),
            epoch,
            ts,
            body,
            mac: seal.mac.clone().unwrap_or_default(),
        });
        Ok(())
    }

    /// One chain a seal covers, checked against the file; what is wrong.
    fn cover(&mut self, c: &seal::Covered, epoch: u64) -> Option<String> {
        let problem = match self.chains.get_mut(&c.chain) {
            None => Some(format!(
                "seal (epoch {epoch}) covers chain {} up to n={}, but no record of it is before the seal: records removed",
                c.chain, c.n
            )),
            Some(st) if st.n != c.n => Some(format!(
                "seal (epoch {epoch}) covers {} up to n={}, but the last record before it is n={}: sealed records were removed, added or reordered",
                st.label, c.n, st.n
            )),
            Some(st) if st.hash != c.hash => Some(format!(
                "seal (epoch {epoch}) covers {} up to n={}, but that record's hash differs: a sealed record was changed",
                st.label, c.n
            )),
            Some(st) => {
                st.sealed_n = c.n;
                st.tail = None;
                None
            }
        };
        // A closed chain sealed to its end needs no more memory.
        if self
            .chains
            .get(&c.chain)
            .is_some_and(|st| st.closed && st.tail.is_none())
        {
            self.chains.remove(&c.chain);
        }
        problem
    }

    /// Any other record: its link in the chain, and where the chain stands
    /// for the seals.
    fn record(&mut self, out: &mut impl Write, no: u64, rec: &Record) -> io::Result<()> {
        if let (Body::SessionStart(_), Some(s)) = (&rec.body, rec.session()) {
            self.chain_names.insert(s.to_string(), label_of(rec, s));
        }
        if let Some(b) = self.v.feed(no, rec) {
            let kind = if rec.session().is_some() {
                self.chain_names
                    .get(&b.chain)
                    .cloned()
                    .unwrap_or_else(|| format!("session {}", b.chain))
            } else {
                format!("login {}", b.chain)
            };
            writeln!(
                out,
                "{}:{}: {kind}: {}",
                self.path.display(),
                b.line,
                b.what
            )?;
            self.breaks += 1;
        }
        // The seals' view: where each chain stands in this file.
        let (Some(chain), Some(n)) = (rec.chain(), rec.head.n) else {
            return Ok(());
        };
        let st = self
            .chains
            .entry(chain.to_string())
            .or_insert_with(|| ChainState {
                n: 0,
                hash: String::new(),
                sealed_n: 0,
                tail: None,
                closed: false,
                label: label_of(rec, chain),
            });
        st.n = n;
        st.hash = hash_line(&rec.bytes);
        st.closed |= rec.closes_chain();
        if st.tail.is_none() {
            st.tail = Some((n, rec.head.ts.clone().unwrap_or_default(), no));
        }
        Ok(())
    }

    /// The unsealed tails and the file's summary line; true when something
    /// is wrong.
    fn finish(self, out: &mut impl Write, o: &VerifyOpts<'_>) -> Result<bool, AdminError> {
        let shown = self.path.display();
        // Unsealed tails: reported once there is sealing to speak of.
        let mut tails: Vec<&ChainState> = self
            .chains
            .values()
            .filter(|st| st.tail.is_some())
            .collect();
        let sealing = self.seals_here > 0 || !o.keys.is_empty();
        if sealing && !tails.is_empty() {
            tails.sort_by_key(|st| st.tail.as_ref().map(|t| t.2));
            for st in tails.iter().take(MAX_TAILS_LISTED) {
                if let Some((n, ts, line)) = &st.tail {
                    writeln!(
                        out,
                        "{shown}:{line}: {}: not sealed from n={n} ({ts}) to n={}{}",
                        st.label,
                        st.n,
                        if st.closed { "" } else { " (still open?)" }
                    )?;
                }
            }
            if tails.len() > MAX_TAILS_LISTED {
                writeln!(
                    out,
                    "{shown}: … and {} more chain(s) with unsealed records",
                    tails.len() - MAX_TAILS_LISTED
                )?;
            }
        }
        let bad = self.breaks > 0 || self.corrupt_lines > 0 || self.seal_problems > 0;
        let mut summary = format!(
            "{shown}: {}: {} chained record(s) checked, {} broken chain(s), {} damaged line(s)",
            if bad { "BROKEN" } else { "OK" },
            self.v.checked,
            self.breaks,
            self.corrupt_lines
        );
        if self.repeated > 0 {
            summary.push_str(&format!(", {} repeated line(s) ignored", self.repeated));
        }
        if self.v.unchained > 0 {
            summary.push_str(&format!(
                ", {} record(s) from before chaining not checked",
                self.v.unchained
            ));
        }
        if sealing {
            summary.push_str(&format!(
                "; {} seal(s){}, {} chain(s) with an unsealed tail",
                self.seals_here,
                match &self.last_seal_ts {
                    Some(ts) => format!(", sealed through {ts}"),
                    None => String::new(),
                },
                tails.len()
            ));
            if self.seal_problems > 0 {
                summary.push_str(&format!(", {} seal problem(s)", self.seal_problems));
            }
        }
        writeln!(out, "{summary}")?;
        Ok(bad)
    }
}

/// The seals of every file together: tags, and epochs without holes or
/// repeats per key. True when something is wrong.
fn check_seals(
    out: &mut impl Write,
    o: &VerifyOpts<'_>,
    seals: &[SealSeen],
) -> Result<bool, AdminError> {
    let mut bad = false;
    let mut by_key: BTreeMap<&str, Vec<&SealSeen>> = BTreeMap::new();
    for s in seals {
        by_key.entry(&s.key_id).or_default().push(s);
    }
    let key_state = match o.key_file {
        Some(p) => match KeyPath::new(p).state() {
            Ok(st) => Some(st),
            Err(e) => {
                writeln!(out, "seals: cannot read the key file: {e}")?;
                bad = true;
                None
            }
        },
        None => None,
    };
    if o.keys.is_empty() {
        if !seals.is_empty() {
            writeln!(
                out,
                "seals: {} seal(s) not checked: give the verification key with --key",
                seals.len()
            )?;
        }
        return Ok(bad);
    }
    for (key_id, list) in by_key {
        bad |= check_key(out, o, key_id, list, key_state.as_ref())?;
    }
    // Whether the bastion's key file is the one these keys started.
    if let (Some(p), Some(state)) = (o.key_file, &key_state) {
        bad |= check_key_file(out, o, p, state)?;
    }
    Ok(bad)
}

/// The seals of one key: known key, epochs in a row, every tag, and (with
/// the key file) none cut off at the end. True when something is wrong.
fn check_key(
    out: &mut impl Write,
    o: &VerifyOpts<'_>,
    key_id: &str,
    mut list: Vec<&SealSeen>,
    key_state: Option<&(String, u64)>,
) -> io::Result<bool> {
    let at = |s: &SealSeen| format!("{}:{}", o.files[s.file].display(), s.line);
    let mut bad = false;
    let bastions: Vec<&str> = {
        let mut b: Vec<&str> = list.iter().map(|s| s.bastion.as_str()).collect();
        b.sort_unstable();
        b.dedup();
        b
    };
    let Some(vk) = o.keys.iter().find(|k| k.key_id == key_id) else {
        writeln!(
            out,
            "seals: {} seal(s) of bastion {} were made with key {key_id}, which no --key names: \
             the sealing key was replaced (or give that bastion's key too); first at {}",
            list.len(),
            bastions.join(", "),
            at(list[0])
        )?;
        return Ok(true);
    };
    list.sort_by_key(|s| s.epoch);
    let mut r = vk.ratchet();
    let (mut valid, mut invalid) = (0u64, 0u64);
    let mut prev: Option<&SealSeen> = None;
    let first = list[0].epoch;
    for s in &list {
        if let Some(p) = prev {
            if p.epoch == s.epoch {
                writeln!(
                    out,
                    "{}: seal epoch {} also at {}: a seal was copied",
                    at(s),
                    s.epoch,
                    at(p)
                )?;
                bad = true;
            } else if s.epoch > p.epoch + 1 {
                writeln!(
                    out,
                    "seals of key {key_id}: epochs {}..{} are missing (between {} and {}): seals were removed with the records they covered, or they are in files not read{}",
                    p.epoch + 1,
                    s.epoch - 1,
                    at(p),
                    at(s),
                    compressed_note(o)
                )?;
                bad = true;
            }
        }
        r.advance_to(s.epoch);
        if r.verify(&s.body, &s.mac) {
            valid += 1;
        } else {
            writeln!(
                out,
                "{}: seal epoch {}: the tag does not verify: the seal or the record was changed, or forged",
                at(s),
                s.epoch
            )?;
            invalid += 1;
            bad = true;
        }
        prev = Some(s);
    }
    let last = list[list.len() - 1];
    writeln!(
        out,
        "seals of key {key_id} (bastion {}): epochs {first}..{}, {valid} valid, {invalid} invalid; last seal {}{}",
        bastions.join(", "),
        last.epoch,
        last.ts,
        if first > 0 {
            format!("; epochs before {first} are not in these files (rotated away?)")
        } else {
            String::new()
        }
    )?;
    if let Some((state_id, next_epoch)) = key_state {
        if state_id == key_id && *next_epoch > last.epoch + 1 {
            writeln!(
                out,
                "seals of key {key_id}: the key file is at epoch {next_epoch}, but the last seal found is epoch {}: seals {}..{} were cut off{}",
                last.epoch,
                last.epoch + 1,
                next_epoch - 1,
                compressed_note(o)
            )?;
            bad = true;
        }
    }
    Ok(bad)
}

/// Whether the bastion's key file (`state`: its key id and epoch) descends
/// from one of the verification keys. True when it does not.
fn check_key_file(
    out: &mut impl Write,
    o: &VerifyOpts<'_>,
    p: &Path,
    (state_id, epoch): &(String, u64),
) -> io::Result<bool> {
    let shown = p.display();
    let Some(vk) = o.keys.iter().find(|k| &k.key_id == state_id) else {
        writeln!(
            out,
            "key file {shown}: key {state_id}, which no --key names: the sealing key was replaced"
        )?;
        return Ok(true);
    };
    match KeyPath::new(p).descends_from(vk) {
        Ok(true) => {
            writeln!(
                out,
                "key file {shown}: at epoch {epoch}, descends from verification key {state_id}"
            )?;
            Ok(false)
        }
        Ok(false) => {
            writeln!(
                out,
                "key file {shown}: names key {state_id} but does NOT descend from it: it was replaced"
            )?;
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "key file: {e}")?;
            Ok(true)
        }
    }
}

fn compressed_note(o: &VerifyOpts<'_>) -> String {
    if o.skipped_compressed > 0 {
        format!(
            " ({} compressed file(s) were not read: decompress them next to the others)",
            o.skipped_compressed
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, EndReason, Event};
    use serde_json::Value;
    use std::time::Duration;

    struct Bastion {
        dir: tempfile::TempDir,
        key: PathBuf,
        vk: VerificationKey,
    }

    fn bastion() -> Bastion {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("seal/key");
        let vk = KeyPath::new(&key).init().unwrap();
        Bastion { dir, key, vk }
    }

    impl Bastion {
        fn log(&self, user: &str, login: &str) -> AuditLog {
            let mut log = AuditLog::open(&self.logs(), user, login, "10.0.0.1:5000").unwrap();
            log.set_bastion("bastion-a");
            log.enable_sealing(&self.key, Some(Duration::from_secs(900)));
            log
        }
        fn logs(&self) -> PathBuf {
            self.dir.path().join("logs")
        }
        fn file(&self, user: &str) -> PathBuf {
            self.logs().join(format!("{user}.jsonl"))
        }
        /// (exit code, report)
        fn verify(&self, key_file: bool) -> (i32, String) {
            self.verify_with(&[&self.vk], key_file)
        }
        fn verify_with(&self, keys: &[&VerificationKey], key_file: bool) -> (i32, String) {
            let (files, skipped) =
                super::super::files::jsonl_files(&[self.logs()], &[], true).unwrap();
            let keys: Vec<VerificationKey> = keys
                .iter()
                .map(|k| VerificationKey::parse(&k.text()).unwrap())
                .collect();
            let mut out = Vec::new();
            let code = verify_into(
                &mut out,
                &VerifyOpts {
                    files: &files,
                    keys: &keys,
                    key_file: key_file.then_some(self.key.as_path()),
                    skipped_compressed: skipped,
                },
            )
            .unwrap();
            (code, String::from_utf8(out).unwrap())
        }
    }

    /// One login with one session of `cmds` commands, ended and logged out.
    fn session(log: &mut AuditLog, sid: &str, cmds: &[&str]) {
        log.write(&Event::Login {
            pid: 1,
            mode: "menu",
            auth: None,
        })
        .unwrap();
        log.write(&Event::SessionStart {
            session: sid,
            host: "web01",
            target: "deploy@10.1.2.3:22".into(),
            host_key: "SHA256:x",
            pid: 1,
            boot_id: None,
            proc_start: None,
            term: "xterm",
            cols: 80,
            rows: 24,
            recording: None,
            auth: "key",
        })
        .unwrap();
        for (i, c) in cmds.iter().enumerate() {
            log.write(&Event::Command {
                session: sid,
                host: "web01",
                seq: i as u64 + 1,
                command: c,
                verified: true,
                truncated: false,
                length: None,
                source: "keys",
            })
            .unwrap();
        }
        log.write(&Event::SessionEnd {
            session: sid,
            host: "web01",
            exit_status: Some(0),
            exit_signal: None,
            reason: EndReason::Exit,
            detail: None,
            by: None,
            duration_ms: 5,
            bytes_in: 1,
            bytes_out: 2,
        })
        .unwrap();
        log.write(&Event::Logout {
            duration_ms: 6,
            reason: None,
        })
        .unwrap();
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// What a root attacker without the old keys can do: rewrite the file
    /// and recompute every `n`/`prev` (and, with `fix_seals`, the hashes
    /// the seals name), so that the keyless chain checks pass.
    fn rewrite(p: &Path, lines: Vec<String>, fix_seals: bool) {
        let mut links: HashMap<String, (u64, String)> = HashMap::new();
        let mut out = String::new();
        for l in lines {
            let mut v: Value = serde_json::from_str(&l).unwrap();
            if v["event"] == "seal" {
                if fix_seals {
                    let mut chains = v["chains"].as_array().unwrap().clone();
                    for c in chains.iter_mut() {
                        let (n, h) = links[c["chain"].as_str().unwrap()].clone();
                        c["n"] = n.into();
                        c["hash"] = h.into();
                    }
                    v["chains"] = chains.into();
                }
                out.push_str(&serde_json::to_string(&v).unwrap());
                out.push('\n');
                continue;
            }
            let chain = Record::parse(l.clone().into_bytes())
                .unwrap()
                .chain()
                .unwrap()
                .to_string();
            let (n, prev) = match links.get(&chain) {
                Some((n, h)) => (n + 1, h.clone()),
                None => (1, crate::core::chain::GENESIS.to_string()),
            };
            v["n"] = n.into();
            v["prev"] = prev.into();
            let text = serde_json::to_string(&v).unwrap();
            links.insert(chain, (n, hash_line(text.as_bytes())));
            out.push_str(&text);
            out.push('\n');
        }
        std::fs::write(p, out).unwrap();
    }

    fn honest() -> Bastion {
        let b = bastion();
        session(
            &mut b.log("alice", "L1"),
            "S1",
            &["id", "rm -rf /tmp/x", "ls"],
        );
        session(&mut b.log("bob", "L2"), "S2", &["uptime"]);
        session(&mut b.log("alice", "L3"), "S3", &["whoami", "df"]);
        b
    }

    #[test]
    fn an_honest_sealed_log_verifies() {
        let b = honest();
        let text = std::fs::read_to_string(b.file("alice")).unwrap();
        // A seal after each session end and each logout.
        assert_eq!(text.matches("\"event\":\"seal\"").count(), 4, "{text}");
        assert!(text
            .lines()
            .all(|l| l.contains("\"bastion\":\"bastion-a\"")));
        let (code, out) = b.verify(true);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("epochs 0..5, 6 valid, 0 invalid"), "{out}");
        assert!(out.contains("0 chain(s) with an unsealed tail"), "{out}");
        assert!(out.contains("descends from verification key"), "{out}");
    }

    #[test]
    fn an_edited_sealed_record_is_detected_even_rechained() {
        let b = honest();
        let p = b.file("alice");
        let mut l = lines(&p);
        let i = l.iter().position(|x| x.contains("rm -rf /tmp/x")).unwrap();
        l[i] = l[i].replace("rm -rf /tmp/x", "ls /tmp");
        // The chain recomputed: the keyless check alone would pass.
        rewrite(&p, l.clone(), false);
        let (code, out) = b.verify(false);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("a sealed record was changed"), "{out}");
        // The seal's hash made to match: then its tag fails.
        rewrite(&p, l, true);
        let (code, out) = b.verify(false);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("the tag does not verify"), "{out}");
    }

    #[test]
    fn a_deleted_sealed_record_is_detected() {
        let b = honest();
        let p = b.file("alice");
        let mut l = lines(&p);
        l.retain(|x| !x.contains("rm -rf /tmp/x"));
        rewrite(&p, l, false);
        let (code, out) = b.verify(false);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("last record before it is n=4"), "{out}");
    }

    #[test]
    fn reordered_sealed_records_are_detected() {
        let b = honest();
        let p = b.file("alice");
        let mut l = lines(&p);
        let i = l
            .iter()
            .position(|x| x.contains("\"command\":\"id\""))
            .unwrap();
        l.swap(i, i + 1);
        rewrite(&p, l, true);
        let (code, out) = b.verify(false);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("the tag does not verify"), "{out}");
    }

    #[test]
    fn a_cut_sealed_tail_is_detected() {
        let b = honest();
        let p = b.file("alice");
        let l = lines(&p);
        // The last login of alice (L3) and its seals: gone.
        let i = l
            .iter()
            .position(|x| x.contains("\"login\":\"L3\""))
            .unwrap();
        std::fs::write(&p, l[..i].join("\n") + "\n").unwrap();
        // Off the bastion (no key file): the newest seals are the hole's
        // end only if another file sealed later; here L3 was last, so the
        // key file is what shows it.
        let (code, out) = b.verify(true);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("seals 4..5 were cut off"), "{out}");
        // A cut in the middle of the epochs shows without the key file.
        let b = honest();
        session(&mut b.log("bob", "L4"), "S4", &["true"]);
        let p = b.file("alice");
        let l = lines(&p);
        let i = l
            .iter()
            .position(|x| x.contains("\"login\":\"L3\""))
            .unwrap();
        std::fs::write(&p, l[..i].join("\n") + "\n").unwrap();
        let (code, out) = b.verify(false);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("epochs 4..5 are missing"), "{out}");
    }

    #[test]
    fn a_repeated_delivery_is_reported_not_failed() {
        let b = honest();
        let p = b.file("alice");
        let mut l = lines(&p);
        // A shipper retried two lines (a record and a seal) after others.
        let seal = l
            .iter()
            .position(|x| x.contains("\"event\":\"seal\""))
            .unwrap();
        l.insert(seal + 2, l[seal].clone());
        l.insert(seal + 3, l[1].clone());
        std::fs::write(&p, l.join("\n") + "\n").unwrap();
        let (code, out) = b.verify(true);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("2 repeated line(s) ignored"), "{out}");
        assert!(out.contains("delivered twice"), "{out}");
    }

    #[test]
    fn a_replaced_key_file_is_detected() {
        let b = honest();
        // Root replaces the key with one of their own, then seals more.
        std::fs::remove_file(&b.key).unwrap();
        let vk2 = KeyPath::new(&b.key).init().unwrap();
        session(&mut b.log("alice", "L9"), "S9", &["history -c"]);
        let (code, out) = b.verify(true);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(&format!("made with key {}", vk2.key_id)),
            "{out}"
        );
        assert!(out.contains("the sealing key was replaced"), "{out}");
        // Both keys given (an attacker's key is no proof): still the
        // first key's seals are intact, and the second is a second key.
        let (_, out) = b.verify_with(&[&b.vk, &vk2], true);
        assert!(out.contains("epochs 0..5, 6 valid"), "{out}");
    }

    #[test]
    fn an_unsealed_tail_is_reported_not_failed() {
        let b = honest();
        let mut log = b.log("alice", "L5");
        log.write(&Event::Login {
            pid: 1,
            mode: "menu",
            auth: None,
        })
        .unwrap();
        log.write(&Event::Denied {
            request: "bash",
            reason: crate::audit::DenyReason::NotPermitted,
        })
        .unwrap();
        let (code, out) = b.verify(true);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("login L5: not sealed from n=1"), "{out}");
        assert!(out.contains("1 chain(s) with an unsealed tail"), "{out}");
        // Sealing on demand (the interval's timer) covers it.
        log.seal_now().unwrap();
        let (code, out) = b.verify(true);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("0 chain(s) with an unsealed tail"), "{out}");
    }

    #[test]
    fn seals_survive_logrotate_create() {
        // packaging/logrotate.d/gatehouse rotates by rename + create: a
        // running login keeps writing (and sealing) into the renamed file.
        let b = bastion();
        let mut running = b.log("alice", "L1");
        running
            .write(&Event::Login {
                pid: 1,
                mode: "menu",
                auth: None,
            })
            .unwrap();
        std::fs::rename(b.file("alice"), b.logs().join("alice.jsonl-20261204")).unwrap();
        std::fs::write(b.logs().join("alice.jsonl-20261127.gz"), b"").unwrap();
        session(&mut b.log("alice", "L2"), "S2", &["ls"]);
        running
            .write(&Event::Logout {
                duration_ms: 1,
                reason: None,
            })
            .unwrap();
        let (code, out) = b.verify(true);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("epochs 0..2, 3 valid"), "{out}");
        // Without the rotated file, its seal is missing, and the report
        // says where it may be.
        std::fs::remove_file(b.logs().join("alice.jsonl-20261204")).unwrap();
        let (code, out) = b.verify(true);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("compressed file(s) were not read"), "{out}");
    }

    #[test]
    fn a_dead_sessions_abandoned_end_is_sealed_by_the_sweep() {
        let b = bastion();
        let mut log = b.log("alice", "L1");
        log.write(&Event::Login {
            pid: 1,
            mode: "menu",
            auth: None,
        })
        .unwrap();
        log.write(&Event::SessionStart {
            session: "S1",
            host: "web01",
            target: "deploy@10.1.2.3:22".into(),
            host_key: "SHA256:x",
            // No such process: the session's process is gone.
            pid: 2_000_000_000,
            boot_id: None,
            proc_start: None,
            term: "xterm",
            cols: 80,
            rows: 24,
            recording: None,
            auth: "key",
        })
        .unwrap();
        drop(log); // killed -9: no end, no seal
        let (_, out) = b.verify(true);
        assert!(out.contains("session S1 (host web01): not sealed"), "{out}");
        let closed =
            crate::audit::abandoned::sweep_sealed(&b.file("alice"), None, Some(&b.key)).unwrap();
        assert_eq!(closed.len(), 1);
        let (code, out) = b.verify(true);
        assert_eq!(code, 0, "{out}");
        assert!(!out.contains("not sealed"), "{out}");
    }

    #[test]
    fn the_interval_seals_a_busy_chain() {
        let b = bastion();
        let mut log = AuditLog::open(&b.logs(), "alice", "L1", "local").unwrap();
        log.enable_sealing(&b.key, Some(Duration::ZERO));
        log.write(&Event::Login {
            pid: 1,
            mode: "menu",
            auth: None,
        })
        .unwrap();
        let text = std::fs::read_to_string(b.file("alice")).unwrap();
        assert_eq!(text.matches("\"event\":\"seal\"").count(), 1, "{text}");
        assert!(log.seal_due().is_none());
    }

    #[test]
    fn a_broken_key_file_is_an_error_record_not_a_stop() {
        let b = bastion();
        std::fs::write(&b.key, "garbage").unwrap();
        let mut log = b.log("alice", "L1");
        session(&mut log, "S1", &["ls"]);
        let text = std::fs::read_to_string(b.file("alice")).unwrap();
        assert!(text.contains("\"reason\":\"seal_failed\""), "{text}");
        assert!(text.contains("\"event\":\"logout\""), "{text}");
    }

    /// Forward compatibility: a newer writer's records (an event and
    /// fields this version does not know) are chain-checked over their
    /// bytes as stored, and an edit inside an unknown field is caught.
    #[test]
    fn a_newer_writers_records_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), "alice", "L1", "local").unwrap();
        session(&mut log, "S1", &["ls"]);
        let p = dir.path().join("alice.jsonl");
        let first = format!(
            r#"{{"v":1,"ts":"2026-12-01T10:00:00.000Z","event":"port_forward","user":"alice","login":"L2","client":"local","session":"S2","host":"web01","listen":{{"addr":"127.0.0.1","port":8080}},"n":1,"prev":"{}"}}"#,
            crate::core::chain::GENESIS
        );
        let second = format!(
            r#"{{"v":1,"ts":"2026-12-01T10:00:01.000Z","event":"session_end","user":"alice","login":"L2","client":"local","session":"S2","host":"web01","exit_status":0,"reason":"exit","duration_ms":1000,"bytes_in":0,"bytes_out":0,"energy_j":1.5,"n":2,"prev":"{}"}}"#,
            hash_line(first.as_bytes())
        );
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str(&format!("{first}\n{second}\n"));
        std::fs::write(&p, &text).unwrap();
        let run = || {
            let mut out = Vec::new();
            let code = verify_into(
                &mut out,
                &VerifyOpts {
                    files: std::slice::from_ref(&p),
                    keys: &[],
                    key_file: None,
                    skipped_compressed: 0,
                },
            )
            .unwrap();
            (code, String::from_utf8(out).unwrap())
        };
        let (code, report) = run();
        assert_eq!(code, 0, "{report}");
        assert!(
            report.contains(": OK: 7 chained record(s) checked, 0 broken chain(s)"),
            "{report}"
        );
        std::fs::write(&p, text.replace("\"port\":8080", "\"port\":8081")).unwrap();
        let (code, report) = run();
        assert_eq!(code, 1, "{report}");
        assert!(
            report.contains(":7: session S2: `prev` does not match the hash of line 6"),
            "{report}"
        );
    }

    /// A line with a field twice is reported, not read one way or the
    /// other (jq takes the last copy, other parsers the first).
    #[test]
    fn a_repeated_field_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), "alice", "L1", "local").unwrap();
        session(&mut log, "S1", &["ls", "id"]);
        let p = dir.path().join("alice.jsonl");
        let text = std::fs::read_to_string(&p).unwrap().replace(
            "\"command\":\"id\"",
            "\"command\":\"id\",\"command\":\"rm -rf /\"",
        );
        std::fs::write(&p, text).unwrap();
        let mut out = Vec::new();
        let o = VerifyOpts {
            files: std::slice::from_ref(&p),
            keys: &[],
            key_file: None,
            skipped_compressed: 0,
        };
        assert_eq!(verify_into(&mut out, &o).unwrap(), 1);
        let report = String::from_utf8(out).unwrap();
        assert!(
            report.contains(":4: not a record (duplicate field `command`"),
            "{report}"
        );
        assert!(report.contains("BROKEN"), "{report}");
    }
}
