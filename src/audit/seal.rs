//! Forward-secure sealing (as journald's FSS does it, with a MAC ratchet):
//! the bastion holds one evolving key; each seal is a MAC under the current
//! key, after which the key is replaced by the next one and the old one is
//! destroyed. Whoever becomes root later finds only the current key, from
//! which no earlier key can be computed, so they cannot forge a seal for
//! the past. The admin keeps the first key (the verification key) off the
//! bastion; from it the verifier recomputes every later key.
//!
//! Primitives: HMAC-SHA-256 only (RFC 2104, `hmac` + `sha2` crates), used
//! as a PRF with distinct labels (Bellare–Yee forward-secure MAC):
//!
//! ```text
//! K(e+1)  = HMAC(K(e), "gatehouse seal v1: next key")
//! M(e)    = HMAC(K(e), "gatehouse seal v1: mac key")
//! tag     = HMAC(M(e), body)          body: the seal record's canonical JSON
//! key_id  = first 8 bytes of HMAC(K(0), "gatehouse seal v1: key id"), hex
//! ```
//!
//! One seal = one epoch: epochs of one key are 0, 1, 2, … with no gap and
//! no repeat, across every file of the bastion, so a seal that disappears
//! leaves a hole the verifier sees. docs/audit-format.md, "Sealing", says
//! what this proves and what it does not.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::core::record::read::{Head, Seal};

type HmacSha256 = Hmac<Sha256>;

/// How the verification key is written: this prefix, then 64 hex digits.
pub const KEY_PREFIX: &str = "gatehouse-seal-v1:";

const LABEL_NEXT: &[u8] = b"gatehouse seal v1: next key";
const LABEL_MAC: &[u8] = b"gatehouse seal v1: mac key";
const LABEL_ID: &[u8] = b"gatehouse seal v1: key id";

/// The key file's format version.
const FILE_VERSION: u32 = 1;

fn prf(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (RFC 2104): `InvalidLength` is never
    // returned for it, so this arm cannot run.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC accepts every key length")
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The public name of a key (in every seal): tells the verifier which
/// verification key a seal needs, and shows a replaced key at once.
fn key_id(first: &[u8; 32]) -> String {
    hex(&prf(first, LABEL_ID)[..8])
}

/// One step of the ratchet: epoch `epoch` and its key. Wiped on drop.
#[derive(Clone)]
pub struct Ratchet {
    pub epoch: u64,
    key: Zeroizing<[u8; 32]>,
}

impl Ratchet {
    fn new(epoch: u64, key: [u8; 32]) -> Ratchet {
        Ratchet {
            epoch,
            key: Zeroizing::new(key),
        }
    }

    /// The next epoch's key; this one should then be forgotten.
    pub fn next(&self) -> Ratchet {
        Ratchet::new(self.epoch + 1, prf(&self.key, LABEL_NEXT))
    }

    /// Moves forward to `epoch` (never back: that is the point).
    pub fn advance_to(&mut self, epoch: u64) {
        while self.epoch < epoch {
            *self = self.next();
        }
    }

    fn mac_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(prf(&self.key, LABEL_MAC))
    }

    /// The seal tag of `body` for this epoch, hex.
    pub fn tag(&self, body: &[u8]) -> String {
        hex(&prf(&self.mac_key(), body))
    }

    /// Whether `tag` (hex) is this epoch's tag of `body`; constant time.
    pub fn verify(&self, body: &[u8], tag: &str) -> bool {
        let Some(want) = unhex32(tag) else {
            return false;
        };
        let Ok(mut m) = HmacSha256::new_from_slice(&*self.mac_key()) else {
            return false;
        };
        m.update(body);
        m.verify_slice(&want).is_ok()
    }
}

/// What the admin keeps off the bastion: the first key. With it every
/// later key can be computed, so it must be kept as secret as the bastion
/// key itself (it can forge seals): in a vault, not on the bastion.
pub struct VerificationKey {
    first: Zeroizing<[u8; 32]>,
    pub key_id: String,
}

impl VerificationKey {
    /// `gatehouse-seal-v1:<64 hex>`; surrounding blanks are ignored.
    pub fn parse(text: &str) -> Result<VerificationKey, String> {
        let t = text.trim();
        let Some(h) = t.strip_prefix(KEY_PREFIX) else {
            return Err(format!(
                "a verification key starts with {KEY_PREFIX:?} (as `gatehouse seal --init` printed it)"
            ));
        };
        let first = unhex32(h).ok_or_else(|| {
            format!("a verification key is {KEY_PREFIX} followed by 64 hex digits")
        })?;
        Ok(VerificationKey {
            key_id: key_id(&first),
            first: Zeroizing::new(first),
        })
    }

    pub fn text(&self) -> String {
        format!("{KEY_PREFIX}{}", hex(&*self.first))
    }

    /// Epoch 0 of this key.
    pub fn ratchet(&self) -> Ratchet {
        Ratchet::new(0, *self.first)
    }
}

/// The key file as stored (one JSON line, mode 0600).
#[derive(Serialize, Deserialize)]
struct KeyFile {
    v: u32,
    key_id: String,
    epoch: u64,
    key: String,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Everything that can stop sealing; each names its file.
#[derive(Debug)]
pub enum SealError {
    Exists(PathBuf),
    Io {
        path: PathBuf,
        what: &'static str,
        err: io::Error,
    },
    Corrupt {
        path: PathBuf,
        why: String,
    },
    /// Writing the seal record itself failed (after the key moved on).
    Record(String),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Exists(p) => write!(
                f,
                "{} exists: this bastion already has a sealing key (seals made with it stay \
                 verifiable with its verification key; remove the file only to start a new key)",
                p.display()
            ),
            SealError::Io { path, what, err } => {
                write!(f, "sealing key {}: cannot {what}: {err}", path.display())
            }
            SealError::Corrupt { path, why } => {
                write!(f, "sealing key {}: {why}", path.display())
            }
            SealError::Record(m) => write!(f, "cannot write the seal record: {m}"),
        }
    }
}

impl std::error::Error for SealError {}

/// The sealing key on disk: `path`, with `path.lock` (flock: one sealer at
/// a time across every Gatehouse process of the bastion) and `path.new`
/// (the next state, written before the old one is destroyed).
#[derive(Debug, Clone)]
pub struct KeyPath {
    path: PathBuf,
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

impl KeyPath {
    pub fn new(path: &Path) -> KeyPath {
        KeyPath {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &'static str) -> impl FnOnce(io::Error) -> SealError + '_ {
        move |err| SealError::Io {
            path: self.path.clone(),
            what,
            err,
        }
    }

    /// `gatehouse seal --init`: a fresh key (epoch 0) from the OS CSPRNG.
    /// Creates the directory (0700) when missing; never replaces a key.
    /// Returns the verification key.
    pub fn init(&self) -> Result<VerificationKey, SealError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                // Directories above it stay traversable (0755, like
                // /var/lib); the key's own is private.
                if let Some(up) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(up)
                        .map_err(self.io("create its directory"))?;
                }
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(dir)
                    .map_err(self.io("create its directory"))?;
            }
        }
        let mut first = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *first).map_err(|e| SealError::Io {
            path: self.path.clone(),
            what: "get random bytes",
            err: io::Error::other(e.to_string()),
        })?;
        let vk = VerificationKey {
            key_id: key_id(&first),
            first,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(|err| {
                if err.kind() == io::ErrorKind::AlreadyExists {
                    SealError::Exists(self.path.clone())
                } else {
                    SealError::Io {
                        path: self.path.clone(),
                        what: "create it",
                        err,
                    }
                }
            })?;
        let text = state_text(&vk.ratchet(), &vk.key_id);
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(self.io("write it"))?;
        sync_dir(&self.path);
        Ok(vk)
    }

    /// The key's id and the epoch its next seal will use, read under the
    /// shared lock so that every seal of an earlier epoch is on disk
    /// (sealers write their record before they unlock). For `--verify`.
    pub fn state(&self) -> Result<(String, u64), SealError> {
        let _lock = self.lock(FlockArg::LockShared, false)?;
        let r = self.load()?;
        Ok((r.1, r.0.epoch))
    }

    /// The current key, with the proof that it descends from `vk`:
    /// `Ok(true)` when it does (the key file was not replaced).
    pub fn descends_from(&self, vk: &VerificationKey) -> Result<bool, SealError> {
        let _lock = self.lock(FlockArg::LockShared, false)?;
        let (cur, id) = self.load()?;
        if id != vk.key_id {
            return Ok(false);
        }
        let mut r = vk.ratchet();
        r.advance_to(cur.epoch);
        Ok(*r.key == *cur.key)
    }

    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.path, ".lock")
    }

    /// `seal --init`: the lock file exists from the start, so that a
    /// verifier running as root never creates it (root-owned, the sealing
    /// account could not open it).
    pub fn create_lock_file(&self) -> Result<(), SealError> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(self.lock_path())
            .map(drop)
            .map_err(self.io("create its lock file"))
    }

    /// The lock; a sealer creates the lock file if it is missing, a
    /// reader (`create` false) goes without when it is.
    fn lock(&self, how: FlockArg, create: bool) -> Result<Option<Flock<File>>, SealError> {
        let f = match OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(self.lock_path())
        {
            Ok(f) => f,
            Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("open its lock file")(e)),
        };
        Flock::lock(f, how)
            .map(Some)
            .map_err(|(_, e)| SealError::Io {
                path: self.path.clone(),
                what: "lock it",
                err: io::Error::from(e),
            })
    }

    fn read_state(path: &Path) -> io::Result<Option<(Ratchet, String)>> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)?;
        let mut text = Zeroizing::new(String::new());
        f.take(4096).read_to_string(&mut text)?;
        let Ok(kf) = serde_json::from_str::<KeyFile>(text.trim()) else {
            return Ok(None);
        };
        if kf.v != FILE_VERSION {
            return Ok(None);
        }
        Ok(unhex32(&kf.key).map(|k| (Ratchet::new(kf.epoch, k), kf.key_id.clone())))
    }

    /// The current state. A key file torn by a crash in the middle of an
    /// evolution is recovered from `.new` (written and synced first).
    fn load(&self) -> Result<(Ratchet, String), SealError> {
        match Self::read_state(&self.path) {
            Ok(Some(s)) => Ok(s),
            Ok(None) => match Self::read_state(&sibling(&self.path, ".new")) {
                Ok(Some(s)) => Ok(s),
                _ => Err(SealError::Corrupt {
                    path: self.path.clone(),
                    why: "not a Gatehouse sealing key (damaged?)".into(),
                }),
            },
            Err(err) => Err(SealError::Io {
                path: self.path.clone(),
                what: "read it",
                err,
            }),
        }
    }

    /// One seal: under the exclusive lock, take the current epoch's key,
    /// move the file on to the next key and destroy this one (write the
    /// next state to `.new` + fsync, overwrite the key file in place with
    /// it + fsync, rename `.new` over it + fsync the directory), and only
    /// then hand the epoch to `write`, which computes the tag and writes
    /// the seal record, before the lock is released. So no tag is ever on
    /// disk while the key that made it still is.
    pub fn seal<T>(
        &self,
        write: impl FnOnce(&Ratchet, &str) -> Result<T, String>,
    ) -> Result<T, SealError> {
        let _lock = self.lock(FlockArg::LockExclusive, true)?;
        let (cur, id) = self.load()?;
        let next = cur.next();
        let text = Zeroizing::new(state_text(&next, &id));
        let new_path = sibling(&self.path, ".new");
        let mut nf = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&new_path)
            .map_err(self.io("write its next state"))?;
        nf.write_all(text.as_bytes())
            .and_then(|()| nf.sync_all())
            .map_err(self.io("write its next state"))?;
        drop(nf);
        // Overwrite the old key's bytes where they are (a rename alone
        // would leave them in a freed block for a later root to find).
        let mut old = OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(self.io("overwrite it"))?;
        old.seek(SeekFrom::Start(0))
            .and_then(|_| old.write_all(text.as_bytes()))
            .and_then(|()| old.set_len(text.len() as u64))
            .and_then(|()| old.sync_all())
            .map_err(self.io("overwrite it"))?;
        drop(old);
        std::fs::rename(&new_path, &self.path).map_err(self.io("replace it"))?;
        sync_dir(&self.path);
        write(&cur, &id).map_err(SealError::Record)
    }
}

fn state_text(r: &Ratchet, key_id: &str) -> String {
    let kf = KeyFile {
        v: FILE_VERSION,
        key_id: key_id.to_string(),
        epoch: r.epoch,
        key: hex(&*r.key),
    };
    let mut s = serde_json::to_string(&kf).unwrap_or_default();
    s.push('\n');
    s
}

/// A rename is durable once its directory is synced; best effort (some
/// file systems refuse fsync on a directory).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// One chain as a seal covers it (part of the record schema).
pub use crate::core::record::Covered;

/// What a seal's tag is computed over: the seal record's fields that say
/// what is sealed, by whom, when, as canonical JSON (serde_json writes
/// struct fields in this order, strings escaped: unambiguous).
#[derive(Serialize)]
pub struct SealBody<'a> {
    pub v: u32,
    pub key_id: &'a str,
    pub epoch: u64,
    pub ts: &'a str,
    pub bastion: &'a str,
    pub user: &'a str,
    pub login: &'a str,
    pub client: &'a str,
    pub chains: &'a [Covered],
}

impl SealBody<'_> {
    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The seal body of a stored `seal` record, to check its `mac`; `None`
/// when a field is missing or of the wrong type (not a seal we wrote).
pub fn body_of(head: &Head, seal: &Seal) -> Option<(Vec<u8>, u64, String, Vec<Covered>)> {
    let chains = seal.chains.clone()?;
    let epoch = seal.epoch?;
    let key_id = seal.key_id.as_deref()?;
    let body = SealBody {
        v: head.v? as u32,
        key_id,
        epoch,
        ts: head.ts.as_deref()?,
        bastion: head.bastion.as_deref()?,
        user: head.user.as_deref()?,
        login: head.login.as_deref()?,
        client: head.client.as_deref()?,
        chains: &chains,
    }
    .bytes();
    Some((body, epoch, key_id.to_string(), chains))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_rfc4231() {
        // RFC 4231 test case 2: key "Jefe" (short keys are zero-padded by
        // HMAC, so a 32-byte zero-padded key gives the same tag).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex(&prf(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ratchet_is_one_way_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let kp = KeyPath::new(&dir.path().join("seal/key"));
        let vk = kp.init().unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(kp.path()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(kp.init(), Err(SealError::Exists(_))));
        let mut tags = Vec::new();
        for i in 0..3u64 {
            let t = kp
                .seal(|r, id| {
                    assert_eq!(id, vk.key_id);
                    assert_eq!(r.epoch, i);
                    Ok(r.tag(b"body"))
                })
                .unwrap();
            tags.push(t);
        }
        assert_eq!(kp.state().unwrap(), (vk.key_id.clone(), 3));
        assert!(kp.descends_from(&vk).unwrap());
        // The verifier recomputes each epoch's tag from the first key.
        let mut r = vk.ratchet();
        for (i, t) in tags.iter().enumerate() {
            r.advance_to(i as u64);
            assert!(r.verify(b"body", t));
            assert!(!r.verify(b"bodY", t));
        }
        // Every tag differs: the key really moved on.
        assert_ne!(tags[0], tags[1]);
        // No earlier key is left on disk.
        let text = std::fs::read_to_string(kp.path()).unwrap();
        assert!(!text.contains(&hex(&*vk.ratchet().key)));
        assert!(!text.contains(&hex(&*vk.ratchet().next().key)));
        assert!(!sibling(kp.path(), ".new").exists());
        // A different key does not verify and is not an ancestor.
        let other = KeyPath::new(&dir.path().join("other"));
        let vk2 = other.init().unwrap();
        assert_ne!(vk2.key_id, vk.key_id);
        assert!(!kp.descends_from(&vk2).unwrap());
        assert!(!vk2.ratchet().verify(b"body", &tags[0]));
    }

    /// Not an assertion on time (the machine is shared): prints what one
    /// seal costs here (three fsyncs), for docs and the report.
    #[test]
    fn seal_cost_is_printed() {
        let dir = tempfile::tempdir().unwrap();
        let kp = KeyPath::new(&dir.path().join("key"));
        kp.init().unwrap();
        let start = std::time::Instant::now();
        for _ in 0..20 {
            kp.seal(|r, _| Ok(r.tag(b"x"))).unwrap();
        }
        eprintln!("one seal: {:?} (mean of 20)", start.elapsed() / 20);
        assert_eq!(kp.state().unwrap().1, 20);
    }

    #[test]
    fn verification_key_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let vk = KeyPath::new(&dir.path().join("k")).init().unwrap();
        let text = vk.text();
        assert!(text.starts_with(KEY_PREFIX) && text.len() == KEY_PREFIX.len() + 64);
        let back = VerificationKey::parse(&format!(" {text}\n")).unwrap();
        assert_eq!(back.key_id, vk.key_id);
        assert!(VerificationKey::parse("gatehouse-seal-v1:zz").is_err());
        assert!(VerificationKey::parse(&text[1..]).is_err());
    }

    #[test]
    fn torn_key_file_recovers_from_new() {
        let dir = tempfile::tempdir().unwrap();
        let kp = KeyPath::new(&dir.path().join("key"));
        let vk = kp.init().unwrap();
        let next = state_text(&vk.ratchet().next(), &vk.key_id);
        std::fs::write(sibling(kp.path(), ".new"), &next).unwrap();
        std::fs::write(kp.path(), &next[..10]).unwrap();
        assert_eq!(kp.state().unwrap().1, 1);
        std::fs::remove_file(sibling(kp.path(), ".new")).unwrap();
        assert!(matches!(kp.state(), Err(SealError::Corrupt { .. })));
    }
}
