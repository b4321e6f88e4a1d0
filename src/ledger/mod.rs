//! The ledger: every mutation of a plane, hash-chained and provable
//! (`store-format.md`, "Ledger").
//!
//! Each plane has an append-only file `.cp/planes/<plane>/ledger` of JSON
//! lines, one [`Entry`] per mutation (init, snapshot, rollback, restore,
//! compile, own, disown, quarantine, plane add, checkpoint delete, prune, ...). Entry `seq` (0-based)
//! carries the hash of entry `seq - 1` in `prev`, and its own `hash` is
//! `BLAKE3(prev ‖ body)`, where `prev` is the 32 raw bytes (zeros for entry
//! 0) and `body` the entry's canonical JSON without `hash`: editing,
//! removing, inserting or reordering an entry breaks the chain at that
//! entry ([`Ledger::verify`] names it).
//!
//! The entry hashes are also the leaves of an append-only Merkle tree with
//! RFC 6962 semantics ([`merkle`]), as in Certificate Transparency: a head
//! (size, root) commits to every entry, an inclusion proof shows one entry
//! is in it, and a consistency proof shows a later head extends an earlier
//! one — all checkable offline by someone who holds only a head.
//!
//! An entry is written and fsynced, under the store lock, before the
//! command reports success. A crash after a command moved HEAD but before
//! its entry was written is repaired by the next command that takes the
//! lock ([`reconcile`]): it records the snapshots HEAD gained since the last
//! entry, marked as recorded late.

pub mod merkle;

use crate::error::{Error, IoResultExt, Result};
use crate::id::SnapshotId;
use crate::object::SnapshotKind;
use crate::store::Store;
use crate::store::lock::StoreLock;
use merkle::{Hash, Tree};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// File name of a plane's ledger, in `.cp/planes/<plane>/`.
pub const LEDGER_FILE: &str = "ledger";
/// Directory of its Merkle tree (derived from the ledger; see [`merkle::Tree`]).
pub const TREE_DIR: &str = "ledger.tree";
/// The lock file next to the ledger: `flock`ed exclusively while the
/// ledger and its tree are read or written together (a reader that found
/// the ledger one entry ahead of its tree would rebuild the tree under a
/// writer's feet).
pub const LOCK_FILE: &str = "ledger.lock";
/// The `sshsig` namespace of ledger entry signatures.
pub const SIG_NAMESPACE: &str = "cplane-ledger";
/// The intent file next to the ledger: the event of a command that is
/// about to change the plane without moving HEAD (own, disown, compile,
/// restore, quarantine, key trust/revoke), written and fsynced before the
/// change and removed once its entry is appended. A crash in between leaves
/// it for the next command, which records it ([`reconcile`]).
pub const PENDING_FILE: &str = "ledger.pending";
/// File in [`TREE_DIR`] with each entry's byte offset in the ledger.
pub const OFFSETS: &str = "offsets";
/// Paths recorded per entry; the rest are counted in `paths_omitted`.
pub const MAX_PATHS: usize = 100;

/// What a command did, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `cplane init` sealed the plane's first checkpoint.
    Init,
    /// `cplane snapshot` sealed a checkpoint.
    Snapshot,
    /// `cplane rollback` put a checkpoint's state in place.
    Rollback,
    /// `cplane restore` put some paths back.
    Restore,
    /// `cplane compile` rewrote the compiled ownership registry.
    Compile,
    /// `cplane own` declared owners.
    Own,
    /// `cplane disown` removed declarations.
    Disown,
    /// `cplane quarantine` moved unmapped files out.
    Quarantine,
    /// `cplane plane add` defined the plane.
    PlaneAdd,
    /// `cplane key trust` added a trusted key.
    KeyTrust,
    /// `cplane key revoke` revoked one.
    KeyRevoke,
    /// `cplane install` installed a package.
    Install,
    /// `cplane uninstall` removed one.
    Uninstall,
    /// `cplane checkpoints delete` removed checkpoint refs.
    CheckpointDelete,
    /// `cplane prune` removed the checkpoint refs its keep policy does not keep.
    Prune,
    /// `cplane plane remove` removed a plane (recorded in the ledger of
    /// the plane that covers its files again, else of `main`).
    PlaneRemove,
    /// `cplane gc` removed the objects no root reaches (one entry per plane).
    Gc,
}

impl Op {
    /// Every op, for help texts and `--op` checks.
    pub const ALL: [Op; 17] = [
        Op::Init,
        Op::Snapshot,
        Op::Rollback,
        Op::Restore,
        Op::Compile,
        Op::Own,
        Op::Disown,
        Op::Quarantine,
        Op::PlaneAdd,
        Op::KeyTrust,
        Op::KeyRevoke,
        Op::Install,
        Op::Uninstall,
        Op::CheckpointDelete,
        Op::Prune,
        Op::PlaneRemove,
        Op::Gc,
    ];

    /// The name recorded in an entry's `op`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Init => "init",
            Op::Snapshot => "snapshot",
            Op::Rollback => "rollback",
            Op::Restore => "restore",
            Op::Compile => "compile",
            Op::Own => "own",
            Op::Disown => "disown",
            Op::Quarantine => "quarantine",
            Op::PlaneAdd => "plane-add",
            Op::KeyTrust => "key-trust",
            Op::KeyRevoke => "key-revoke",
            Op::Install => "install",
            Op::Uninstall => "uninstall",
            Op::CheckpointDelete => "checkpoint-delete",
            Op::Prune => "prune",
            Op::PlaneRemove => "plane-remove",
            Op::Gc => "gc",
        }
    }

    /// The roles whose keys may sign this operation: admin for the trusted
    /// keys themselves and for removing a plane, admin or maintainer for
    /// everything else (an auditor's key signs no change).
    pub fn allowed_roles(self) -> &'static [crate::keys::Role] {
        use crate::keys::Role;
        match self {
            Op::KeyTrust | Op::KeyRevoke | Op::PlaneRemove => &[Role::Admin],
            _ => &[Role::Admin, Role::Maintainer],
        }
    }

    /// The op named `s`.
    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// What a command reports to the ledger ([`Ledger::append`]).
#[derive(Debug, Clone)]
pub struct Event {
    /// The operation.
    pub op: Op,
    /// Refs it created or moved (`HEAD`, `checkpoints/NAME`).
    pub refs: Vec<String>,
    /// Plane paths it touched (the first [`MAX_PATHS`] are kept).
    pub paths: Vec<String>,
    /// The snapshot it produced, if any.
    pub snapshot: Option<SnapshotId>,
    /// One line for humans.
    pub message: String,
    /// For `key-trust`: the allowed_signers line trusted; for
    /// `key-revoke`: the `SHA256:` fingerprint revoked.
    pub key: Option<String>,
}

impl Event {
    /// An event with no refs, paths or snapshot.
    pub fn new(op: Op, message: impl Into<String>) -> Event {
        Event {
            op,
            refs: Vec::new(),
            paths: Vec::new(),
            snapshot: None,
            message: message.into(),
            key: None,
        }
    }
}

/// One ledger entry, as stored: one line of canonical JSON, fields in this
/// order (`store-format.md`, "Ledger").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// 0-based position; also the entry's leaf index in the Merkle tree.
    pub seq: u64,
    /// UTC time, RFC 3339 with nanoseconds (`2026-11-30T13:12:42.123456789Z`).
    pub time: String,
    /// Who: `user:NAME` (the OS user), or `cplane` for an entry recorded late.
    pub actor: String,
    /// [`Op::as_str`].
    pub op: String,
    /// The plane.
    pub plane: String,
    /// Refs created or moved.
    pub refs: Vec<String>,
    /// Paths touched (at most [`MAX_PATHS`]).
    pub paths: Vec<String>,
    /// Paths touched beyond those listed.
    pub paths_omitted: u64,
    /// The snapshot produced (hex id), if any.
    pub snapshot: Option<String>,
    /// The plane's HEAD after the operation (hex id), if it has one.
    pub head: Option<String>,
    /// One line for humans.
    pub message: String,
    /// On `key-trust`: the allowed_signers line it trusted; on
    /// `key-revoke`: the fingerprint it revoked. The ledger, not the
    /// registry file, is what [`Ledger::verify`] trusts keys by. Absent on
    /// other entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Hex of the previous entry's hash (64 zeros for entry 0).
    pub prev: String,
    /// Hex of `BLAKE3(prev ‖ body)`.
    pub hash: String,
    /// When a key signed the entry: the armored `sshsig` (namespace
    /// [`SIG_NAMESPACE`]) over the 32 raw bytes of `hash`. Absent (not
    /// `null`) on an unsigned entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// The entry without its hash: what the hash covers.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    op: &'a str,
    plane: &'a str,
    refs: &'a [String],
    paths: &'a [String],
    paths_omitted: u64,
    snapshot: &'a Option<String>,
    head: &'a Option<String>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: &'a Option<String>,
    prev: &'a str,
}

impl Entry {
    fn body(&self) -> Body<'_> {
        Body {
            seq: self.seq,
            time: &self.time,
            actor: &self.actor,
            op: &self.op,
            plane: &self.plane,
            refs: &self.refs,
            paths: &self.paths,
            paths_omitted: self.paths_omitted,
            snapshot: &self.snapshot,
            head: &self.head,
            message: &self.message,
            key: &self.key,
            prev: &self.prev,
        }
    }

    /// `BLAKE3(prev ‖ canonical body)`; `None` when `prev` is not 64 hex digits.
    pub fn compute_hash(&self) -> Option<Hash> {
        let prev = from_hex(&self.prev)?;
        let body = serde_json::to_vec(&self.body()).ok()?;
        let mut h = blake3::Hasher::new();
        h.update(&prev);
        h.update(&body);
        Some(*h.finalize().as_bytes())
    }

    /// The stored hash, as bytes.
    pub fn hash_bytes(&self) -> Option<Hash> {
        from_hex(&self.hash)
    }

    /// The canonical line (without the line feed).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The entry's Merkle leaf hash: `leaf_hash(hash)`.
    pub fn leaf(&self) -> Option<Hash> {
        self.hash_bytes().map(|h| merkle::leaf_hash(&h))
    }

    /// True when the entry touched `path`: it lists the path, a directory
    /// above it or a path below it.
    pub fn touches(&self, path: &str) -> bool {
        self.paths.iter().any(|p| {
            p == path
                || path.strip_prefix(p.as_str()).is_some_and(|r| r.starts_with('/'))
                || p.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
                || path.is_empty()
        })
    }
}

fn from_hex(s: &str) -> Option<Hash> {
    crate::id::ObjectId::from_hex(s).map(|id| id.0)
}

fn hex(h: &Hash) -> String {
    crate::id::to_hex(h)
}

/// The head of a ledger: its size and Merkle root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root over the entries' hashes ([`merkle::empty_root`] when empty).
    pub root: Hash,
}

impl Head {
    /// `SIZE:ROOT`, the form `cplane ledger prove --since` takes.
    pub fn to_arg(&self) -> String {
        format!("{}:{}", self.size, hex(&self.root))
    }

    /// The text a signed head signs (namespace [`SIG_NAMESPACE`], as
    /// entries: an entry signature covers 32 raw bytes, a head this longer
    /// text, so one can never pass for the other):
    /// `cplane-ledger-head v1\nplane NAME\nsize N\nroot HEX\n`.
    pub fn signed_text(&self, plane: &str) -> String {
        format!(
            "cplane-ledger-head v1\nplane {plane}\nsize {}\nroot {}\n",
            self.size,
            hex(&self.root)
        )
    }

    /// Parses `SIZE:ROOT`.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(s: &str) -> std::result::Result<Head, String> {
        let (size, root) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not SIZE:ROOT (as `cplane ledger head` prints it)"))?;
        let size = size
            .parse()
            .map_err(|_| format!("{size:?} is not a number of entries"))?;
        let root = from_hex(root).ok_or_else(|| format!("{root:?} is not 64 hex digits"))?;
        Ok(Head { size, root })
    }
}

/// The first problem [`Ledger::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The entry (0-based position) where the ledger stops being trustworthy.
    pub seq: u64,
    /// Its line in the file (1-based), 0 when the problem is not one line.
    pub line: u64,
    /// What is wrong, in one sentence.
    pub problem: String,
}

/// What [`Ledger::verify`] found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Entries that chain correctly, from the start.
    pub good: u64,
    /// The first broken entry, if any.
    pub broken: Option<Broken>,
    /// The head of the good entries.
    pub head: Option<Head>,
    /// An incomplete last line (an interrupted write, not tampering): its byte length.
    pub torn_tail: Option<u64>,
    /// The plane's HEAD is not the one the last entry records: a command was
    /// interrupted before recording (the next command that writes records
    /// it), or entries at the end were removed.
    pub head_unrecorded: Option<String>,
    /// The Merkle tree files were short (a crash) and were rebuilt.
    pub tree_rebuilt: bool,
    /// This user may not read or write the tree files: they were not compared.
    pub tree_unchecked: bool,
    /// Entries (of the good ones) that carry a signature.
    pub signed: u64,
    /// Entries whose signature does not check out against the keys the
    /// ledger trusted at their place (or that should be signed and are not):
    /// (seq, what is wrong).
    pub bad_signatures: Vec<(u64, String)>,
    /// The registry file trusts other keys than the ledger's own
    /// `key-trust`/`key-revoke` entries do.
    pub registry_mismatch: Option<String>,
}

impl VerifyReport {
    /// True when nothing is wrong: no broken entry, no bad signature, and
    /// HEAD is the one the last entry records.
    pub fn is_clean(&self) -> bool {
        self.broken.is_none()
            && self.bad_signatures.is_empty()
            && self.head_unrecorded.is_none()
            && self.registry_mismatch.is_none()
    }
}

impl VerifyReport {
    /// The report as findings (`CP401` broken, `CP402` signature, `CP403`
    /// HEAD unrecorded), on the plane root, naming the ledger file.
    pub fn findings(&self, ledger: &Path) -> Vec<crate::finding::Finding> {
        use crate::finding::{Code, Finding};
        let root = crate::path::RelPath::root;
        let mut out = Vec::new();
        if let Some(b) = &self.broken {
            let at = if b.problem.starts_with("entry ") {
                String::new()
            } else {
                format!("entry {}: ", b.seq)
            };
            out.push(Finding::new(
                Code::LedgerBroken,
                root(),
                format!("{}: {at}{}", ledger.display(), b.problem),
            ));
        }
        for (seq, p) in &self.bad_signatures {
            out.push(Finding::new(
                Code::LedgerSignature,
                root(),
                format!("{}: entry {seq}: {p}", ledger.display()),
            ));
        }
        if let Some(m) = &self.registry_mismatch {
            out.push(Finding::new(
                Code::LedgerSignature,
                crate::path::RelPath::parse(b"registries/allowed_signers").unwrap_or_else(root),
                m.clone(),
            ));
        }
        if let Some(h) = &self.head_unrecorded {
            out.push(Finding::new(
                Code::LedgerHeadUnrecorded,
                root(),
                format!(
                    "HEAD {} is not the HEAD the last entry of {} records: a command was interrupted before its entry, or entries at the end were removed",
                    h.get(..12).unwrap_or(h),
                    ledger.display()
                ),
            ));
        }
        out
    }
}

/// What is wrong with the signature of `e`, checked against `signers` (the
/// keys trusted at the entry's place in the ledger, see [`Trust`]; the
/// entry's time is used only for `valid-after`/`valid-before`): `None` for
/// an unsigned entry or a good signature by a key whose role may sign the
/// entry's operation and whose fingerprint is the entry's actor.
pub fn signature_problem(e: &Entry, signers: &[crate::keys::Signer]) -> Option<String> {
    let sig = e.sig.as_ref()?;
    let Some(h) = e.hash_bytes() else {
        return Some("its hash is not 64 hex digits".into());
    };
    let at = e
        .time
        .get(..19)
        .map(|t| t.replace(['-', ':', 'T'], ""))
        .and_then(|t| crate::keys::UtcTime::parse_openssh(&format!("{t}Z")));
    let Some(at) = at else {
        return Some(format!("its time {:?} is not an RFC 3339 UTC time", e.time));
    };
    let signer = match crate::keys::verify_at(sig, SIG_NAMESPACE, &h, signers, at) {
        Ok(s) => s,
        Err(err) => return Some(err.to_string()),
    };
    let fp = signer.fingerprint();
    if e.actor != format!("key:{fp}") {
        return Some(format!("signed by {fp}, but its actor says {}", e.actor));
    }
    match Op::parse(&e.op) {
        Some(op) if op.allowed_roles().contains(&signer.role) => None,
        Some(op) => Some(format!(
            "{} is signed by {fp} ({}), a {} key; only {} keys may sign it",
            op.as_str(),
            signer.principals.join(","),
            signer.role.as_str(),
            op.allowed_roles()
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )),
        None => Some(format!("its operation {:?} is unknown", e.op)),
    }
}

/// The keys a ledger trusts, replayed from its own `key-trust` and
/// `key-revoke` entries in ledger order (not from the registry file, which
/// anyone who can write the plane can edit, restore or roll back): a key is
/// trusted from the entry after the `key-trust` that added it until its
/// `key-revoke`. Until the first admin key is trusted (trust on first use),
/// a `key-trust` needs no signature; from then on every entry must be
/// signed by a trusted key whose role may sign its operation.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The keys trusted now.
    pub signers: Vec<crate::keys::Signer>,
    /// The entry that first trusted an admin key.
    pub admin_since: Option<u64>,
    /// Revoked keys: (fingerprint, the entry that revoked it).
    pub revoked: Vec<(String, u64)>,
}

/// The `SHA256:` fingerprint of the key that made an armored sshsig.
fn sig_fingerprint(armored: &str) -> Option<String> {
    let sig = ssh_key::SshSig::from_pem(armored).ok()?;
    Some(crate::keys::fingerprint(&ssh_key::PublicKey::from(
        sig.public_key().clone(),
    )))
}

impl Trust {
    /// What is wrong with `e` at this point of the ledger, if anything.
    fn problem(&self, e: &Entry) -> Option<String> {
        // A signature covers the stored hash: the hash must be the entry's
        // (replay reads entries the chain check may not have seen).
        if e.compute_hash().is_none_or(|h| Some(h) != e.hash_bytes()) {
            return Some("its contents do not match its hash (edited)".into());
        }
        if let Some(sig) = &e.sig
            && self.admin_since.is_none()
        {
            // Before the first admin key nothing is enforced (trust on first
            // use), but a signature must still be one: by the key it names.
            let own = ssh_key::SshSig::from_pem(sig).ok().and_then(|s| {
                let key = ssh_key::PublicKey::from(s.public_key().clone());
                let line = format!(
                    "signer namespaces=\"{SIG_NAMESPACE}\" {} cplane-role=admin\n",
                    key.to_openssh().ok()?
                );
                crate::keys::parse_allowed_signers(&line, "the entry's own key").ok()
            });
            return match own {
                Some(list) => signature_problem(e, &list),
                None => Some("its signature is not an sshsig signature".into()),
            };
        }
        let bootstrap = self.admin_since.is_none() && e.op == Op::KeyTrust.as_str();
        if let Some(sig) = &e.sig {
            return signature_problem(e, &self.signers).filter(|_| !bootstrap).map(|p| {
                let fp = sig_fingerprint(sig);
                match self.revoked.iter().find(|(r, _)| Some(r) == fp.as_ref()) {
                    Some((r, n)) => format!("it is signed by {r}, which entry {n} revoked"),
                    None => p,
                }
            });
        }
        if e.actor.starts_with("key:") {
            return Some(format!("its actor is {} but it carries no signature", e.actor));
        }
        match self.admin_since {
            Some(k) if !bootstrap => Some(format!(
                "it is not signed, but the plane has trusted an admin key since entry {k}: every later entry must be signed"
            )),
            _ => None,
        }
    }

    /// Applies a `key-trust` or `key-revoke` entry (others change nothing).
    fn apply(&mut self, e: &Entry) -> Option<String> {
        let key = e.key.as_deref();
        if e.op == Op::KeyTrust.as_str() {
            let line = key?;
            match crate::keys::parse_allowed_signers(line, &format!("ledger entry {}", e.seq)) {
                Ok(list) => {
                    if let Some((fp, n)) = list
                        .iter()
                        .find_map(|s| self.revoked.iter().find(|(r, _)| *r == s.fingerprint()))
                    {
                        return Some(format!(
                            "it trusts {fp}, which entry {n} revoked: a revoked key is never trusted again"
                        ));
                    }
                    for s in list {
                        if s.role == crate::keys::Role::Admin && self.admin_since.is_none() {
                            self.admin_since = Some(e.seq);
                        }
                        self.signers.retain(|t| t.key.key_data() != s.key.key_data());
                        self.signers.push(s);
                    }
                    None
                }
                Err(err) => Some(format!("the key it trusts does not parse: {err}")),
            }
        } else if e.op == Op::KeyRevoke.as_str() {
            let fp = key?;
            self.signers.retain(|s| s.fingerprint() != fp);
            self.revoked.push((fp.to_string(), e.seq));
            None
        } else {
            None
        }
    }

    /// Replays `entries` (in order): the trust after them, and what is
    /// wrong with each entry on the way. Signatures are checked in parallel
    /// between key changes.
    pub fn replay(entries: &[&Entry]) -> (Trust, Vec<(u64, String)>) {
        use rayon::prelude::*;
        let mut trust = Trust::default();
        let mut problems = Vec::new();
        let is_key_op = |e: &Entry| e.op == Op::KeyTrust.as_str() || e.op == Op::KeyRevoke.as_str();
        let mut i = 0;
        while i < entries.len() {
            let j = entries[i..]
                .iter()
                .position(|e| is_key_op(e))
                .map_or(entries.len(), |p| i + p);
            let found: Vec<(u64, String)> = entries[i..j]
                .par_iter()
                .filter_map(|e| trust.problem(e).map(|p| (e.seq, p)))
                .collect();
            problems.extend(found);
            if let Some(e) = entries.get(j) {
                match trust.problem(e) {
                    // A key change that does not check out is not applied.
                    Some(p) => problems.push((e.seq, p)),
                    None => {
                        if let Some(p) = trust.apply(e) {
                            problems.push((e.seq, p));
                        }
                    }
                }
            }
            i = j + 1;
        }
        (trust, problems)
    }
}

/// One plane's ledger.
#[derive(Debug)]
pub struct Ledger {
    plane: String,
    path: PathBuf,
    tree_dir: PathBuf,
    /// A reader that may not write the store builds its tree here instead
    /// (a private temporary directory, removed with the ledger value).
    private: std::sync::OnceLock<Option<tempfile::TempDir>>,
}

/// True when `e` says this user may not write there (a reader of a store
/// it does not own).
fn is_read_only(e: &merkle::TreeError) -> bool {
    matches!(e, merkle::TreeError::Io { source, .. }
        if matches!(source.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem))
}

/// The OS user running cplane, as `user:NAME`: the name `/etc/passwd`
/// gives the real uid, else `USER` or `LOGNAME`, else `uid:N`.
pub fn os_actor() -> String {
    let uid = rustix::process::getuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let from_passwd = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid.to_string()).then(|| name.to_string())
    });
    let from_env = || std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).ok();
    match from_passwd.or_else(from_env) {
        Some(n) if !n.is_empty() && !n.contains(char::is_control) && !n.contains(char::is_whitespace) => {
            format!("user:{n}")
        }
        _ => format!("uid:{uid}"),
    }
}

/// RFC 3339 UTC with nanoseconds.
fn now_rfc3339() -> String {
    let ns = crate::store::index::now_ns();
    let s = crate::timefmt::rfc3339(ns);
    format!("{}.{:09}Z", s.trim_end_matches('Z'), ns.rem_euclid(1_000_000_000))
}

/// Holds the ledger's lock until dropped (nothing when the store is not
/// writable by this user: such a reader reads unlocked).
struct Guard(#[allow(dead_code)] Option<File>);

fn damaged(path: &Path, reason: String) -> Error {
    Error::DamagedFile {
        path: path.to_path_buf(),
        reason,
    }
}

impl Ledger {
    /// The ledger of `plane` in `store` (which need not exist yet).
    pub fn of(store: &Store, plane: &str) -> Ledger {
        let dir = store.plane_dir(plane);
        Ledger {
            plane: plane.to_string(),
            path: dir.join(LEDGER_FILE),
            tree_dir: dir.join(TREE_DIR),
            private: std::sync::OnceLock::new(),
        }
    }

    /// The ledger of `plane` kept in `dir` (`dir/ledger`, `dir/ledger.tree/`)
    /// rather than in a store's plane directory: a remote's ledger being
    /// verified before a pull keeps it (`crate::remote::pull`).
    pub fn at(dir: &Path, plane: &str) -> Ledger {
        Ledger {
            plane: plane.to_string(),
            path: dir.join(LEDGER_FILE),
            tree_dir: dir.join(TREE_DIR),
            private: std::sync::OnceLock::new(),
        }
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys the ledger trusts now ([`Trust::replay`] over every entry).
    ///
    /// # Errors
    /// I/O reading the ledger.
    pub fn trust(&self) -> Result<Trust> {
        // Only key-trust and key-revoke entries change it: the others are
        // not even parsed (a cheap byte test first).
        let bytes = self.read_all()?;
        let body = &bytes[..complete_len(&bytes)];
        // One SIMD search over the file for the key operations, then only
        // their lines are parsed (on a 100,000-entry ledger this is what
        // every writing command pays).
        let mut entries: Vec<Entry> = Vec::new();
        let mut next_line = 0;
        for hit in memchr::memmem::find_iter(body, b"\"op\":\"key-") {
            if hit < next_line {
                continue;
            }
            let from = memchr::memrchr(b'\n', &body[..hit]).map_or(0, |p| p + 1);
            let to = memchr::memchr(b'\n', &body[hit..]).map_or(body.len(), |p| hit + p);
            next_line = to;
            if let Ok(e) = serde_json::from_slice::<Entry>(&body[from..to]) {
                entries.push(e);
            }
        }
        let refs: Vec<&Entry> = entries.iter().collect();
        Ok(Trust::replay(&refs).0)
    }

    /// The private directory a reader without write access builds its tree in.
    fn private_dir(&self) -> Result<&Path> {
        self.private
            .get_or_init(|| tempfile::Builder::new().prefix("cplane-ledger-").tempdir().ok())
            .as_ref()
            .map(tempfile::TempDir::path)
            .ok_or_else(|| {
                damaged(
                    &self.tree_dir,
                    "no temporary directory to check the tree in (TMPDIR)".into(),
                )
            })
    }

    fn guard(&self) -> Result<Guard> {
        let path = self.path.with_file_name(LOCK_FILE);
        if let Some(dir) = path.parent()
            && !dir.is_dir()
        {
            return Ok(Guard(None));
        }
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                return Ok(Guard(None));
            }
            Err(e) => return Err(e).at(&path),
        };
        file.lock().at(&path)?;
        Ok(Guard(Some(file)))
    }

    /// Every complete entry, in file order, parsed (not verified; see
    /// [`Ledger::verify`]; a torn, unterminated last line is left out).
    ///
    /// # Errors
    /// [`Error::DamagedFile`] naming the line that is not a ledger entry
    /// (never a silently shorter list); I/O reading the file.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let bytes = self.read_all()?;
        let end = complete_len(&bytes);
        bytes[..end]
            .split(|&b| b == b'\n')
            .take_while(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_slice::<Entry>(l).map_err(|e| {
                    damaged(
                        &self.path,
                        format!(
                            "line {} is not a ledger entry ({e}); `cplane ledger verify` says what happened",
                            i + 1
                        ),
                    )
                })
            })
            .collect()
    }

    /// Entry `seq`, read through the offsets file (`ledger.tree/offsets`: the
    /// byte offset of each entry's line, 8 bytes little-endian each, derived
    /// like the tree) without reading the ledger before it; by scanning the
    /// ledger when the offsets file is short or wrong.
    ///
    /// # Errors
    /// I/O reading the ledger.
    pub fn entry(&self, seq: u64) -> Result<Option<Entry>> {
        if let Some(e) = self.entry_by_offset(seq) {
            return Ok(Some(e));
        }
        // Missing or stale offsets (a ledger written before them, a crash):
        // rebuilt once from the ledger, then read through.
        let _g = self.guard()?;
        let _ = self.rebuild_offsets();
        if let Some(e) = self.entry_by_offset(seq) {
            return Ok(Some(e));
        }
        Ok(self.entries()?.into_iter().nth(seq as usize).filter(|e| e.seq == seq))
    }

    /// Rewrites the offsets file from the ledger's complete lines.
    fn rebuild_offsets(&self) -> Result<()> {
        let bytes = self.read_all()?;
        let end = complete_len(&bytes);
        let mut all = Vec::new();
        let mut pos = 0u64;
        for l in bytes[..end].split_inclusive(|&b| b == b'\n') {
            all.extend_from_slice(&pos.to_le_bytes());
            pos += l.len() as u64;
        }
        std::fs::create_dir_all(&self.tree_dir).at(&self.tree_dir)?;
        let path = self.tree_dir.join(OFFSETS);
        std::fs::write(&path, &all).at(&path)
    }

    fn entry_by_offset(&self, seq: u64) -> Option<Entry> {
        use std::os::unix::fs::FileExt;
        let offsets = File::open(self.tree_dir.join(OFFSETS)).ok()?;
        let mut at = [0u8; 8];
        offsets.read_exact_at(&mut at, seq.checked_mul(8)?).ok()?;
        let at = u64::from_le_bytes(at);
        let f = File::open(&self.path).ok()?;
        let mut line = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = f.read_at(&mut chunk, at + line.len() as u64).ok()?;
            if n == 0 {
                return None;
            }
            match chunk[..n].iter().position(|&b| b == b'\n') {
                Some(p) => {
                    line.extend_from_slice(&chunk[..p]);
                    break;
                }
                None => line.extend_from_slice(&chunk[..n]),
            }
        }
        serde_json::from_slice::<Entry>(&line).ok().filter(|e| e.seq == seq)
    }

    /// Records where entry `seq`'s line starts; rebuilds the offsets file
    /// first when it is not exactly `seq` entries long.
    fn note_offset(&self, seq: u64, at: u64) -> Result<()> {
        let path = self.tree_dir.join(OFFSETS);
        let have = std::fs::metadata(&path).map_or(0, |m| m.len());
        if have != seq * 8 {
            // Out of step (a ledger from before offsets, a crash): rebuilt
            // from the ledger, which holds the line just written already.
            return self.rebuild_offsets();
        }
        let mut f = OpenOptions::new().append(true).open(&path).at(&path)?;
        f.write_all(&at.to_le_bytes()).at(&path)
    }

    fn read_all(&self) -> Result<Vec<u8>> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).at(&self.path),
        }
    }

    /// The last complete entry, checked against its own hash; `None` for an
    /// empty or missing ledger. Reads only the end of the file.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] when the last line is not an entry or its hash
    /// does not match; I/O.
    pub fn last(&self) -> Result<Option<Entry>> {
        let Some((line, _)) = self.last_line()? else {
            return Ok(None);
        };
        let e: Entry = serde_json::from_slice(&line).map_err(|err| {
            damaged(
                &self.path,
                format!("its last entry is not a ledger entry ({err}); run `cplane ledger verify`"),
            )
        })?;
        if e.compute_hash().is_none_or(|h| Some(h) != e.hash_bytes()) {
            return Err(damaged(
                &self.path,
                format!(
                    "its last entry ({}) does not match its hash: the ledger was edited; run `cplane ledger verify`",
                    e.seq
                ),
            ));
        }
        Ok(Some(e))
    }

    /// The last complete line and the file length up to its end (a torn,
    /// unterminated tail after it is not included).
    fn last_line(&self) -> Result<Option<(Vec<u8>, u64)>> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(&self.path),
        };
        let len = f.metadata().at(&self.path)?.len();
        // Read backwards in growing chunks until the line before the last
        // complete one starts (entries may be long: up to MAX_PATHS paths).
        let mut chunk = 64 * 1024u64;
        loop {
            let from = len.saturating_sub(chunk);
            f.seek(SeekFrom::Start(from)).at(&self.path)?;
            let mut buf = Vec::with_capacity((len - from) as usize);
            (&mut f).take(len - from).read_to_end(&mut buf).at(&self.path)?;
            let end = complete_len(&buf);
            if end == 0 {
                if from == 0 {
                    return Ok(None);
                }
                chunk *= 4;
                continue;
            }
            let body = &buf[..end - 1];
            match body.iter().rposition(|&b| b == b'\n') {
                Some(p) => return Ok(Some((body[p + 1..].to_vec(), from + end as u64))),
                None if from == 0 => return Ok(Some((body.to_vec(), end as u64))),
                None => chunk *= 4,
            }
        }
    }

    /// The head: size and Merkle root.
    ///
    /// # Errors
    /// As [`Ledger::last`]; the Merkle tree files unreadable or short (they
    /// are rebuilt by the next command that writes).
    pub fn head(&self) -> Result<Head> {
        let _g = self.guard()?;
        let size = self.last()?.map_or(0, |e| e.seq + 1);
        if size == 0 {
            // Nothing to open (and nothing created by a reader).
            return Ok(Head {
                size,
                root: merkle::empty_root(),
            });
        }
        let tree = self.open_tree(size)?;
        Ok(Head {
            size,
            root: tree.root(size).map_err(|e| self.tree_error(e))?,
        })
    }

    /// The Merkle tree of a ledger of `size` entries, rebuilt from the
    /// entries when its files are missing or short.
    fn open_tree(&self, size: u64) -> Result<Tree> {
        self.check_not_truncated(size)?;
        let tree = match Tree::open(&self.tree_dir, size) {
            Ok(Some(t)) => t,
            Ok(None) => self.rebuild_tree(size)?,
            // Not ours to write: the same tree, built from the entries in a
            // private directory (what it must be anyway).
            Err(e) if is_read_only(&e) => self.rebuild_tree_in(self.private_dir()?, size)?,
            Err(e) => return Err(self.tree_error(e)),
        };
        // Proofs are served from the tree: it must end with the ledger's
        // last entry (a rewritten ledger under an old tree does not).
        if size > 0 {
            let last = self.last()?;
            let stored = tree.leaf(size - 1).map_err(|e| self.tree_error(e))?;
            if last.as_ref().and_then(Entry::leaf) != Some(stored) {
                return Err(damaged(
                    &self.path,
                    format!(
                        "its last entry ({}) is not the one its Merkle tree ({}) holds: the ledger was rewritten, or the tree damaged; run `cplane ledger verify`",
                        size - 1,
                        self.tree_dir.display()
                    ),
                ));
            }
        }
        Ok(tree)
    }

    /// Rebuilds the tree (derived data) from the entries, which must be
    /// exactly `size` well-formed lines, and makes it durable.
    fn rebuild_tree(&self, size: u64) -> Result<Tree> {
        let tree = self.rebuild_tree_in(&self.tree_dir, size)?;
        let _ = self.rebuild_offsets();
        Ok(tree)
    }

    fn rebuild_tree_in(&self, dir: &Path, size: u64) -> Result<Tree> {
        let entries = self.entries()?;
        if entries.len() as u64 != size {
            return Err(damaged(
                &self.path,
                format!(
                    "has {} entries where its last says {size}, so its Merkle tree cannot be rebuilt; run `cplane ledger verify`",
                    entries.len()
                ),
            ));
        }
        let leaves: Vec<Hash> = entries.iter().filter_map(Entry::leaf).collect();
        let tree = Tree::rebuild(dir, leaves).map_err(|e| self.tree_error(e))?;
        tree.sync().map_err(|e| self.tree_error(e))?;
        Ok(tree)
    }

    /// The tree is appended after the ledger, so a tree with more leaves
    /// than the ledger has entries means entries were removed from its end.
    fn check_not_truncated(&self, size: u64) -> Result<()> {
        let leaves = std::fs::metadata(self.tree_dir.join("0")).map_or(0, |m| m.len() / 32);
        if leaves > size {
            return Err(damaged(
                &self.path,
                format!(
                    "has {size} entries but its Merkle tree ({}) has {leaves} leaves: entries were removed from its end; run `cplane ledger verify`",
                    self.tree_dir.display()
                ),
            ));
        }
        Ok(())
    }

    fn tree_error(&self, e: merkle::TreeError) -> Error {
        damaged(&self.tree_dir, e.to_string())
    }

    /// Appends the entry for `ev`, with `head` the plane's HEAD after it,
    /// and fsyncs it (and its Merkle leaf) before returning. A torn last line
    /// (an append interrupted by a crash, never reported as done) is cut first.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] when the last entry does not verify or the
    /// ledger was truncated (fail closed: nothing is appended to a ledger
    /// that does not check out); I/O.
    pub fn append(
        &self,
        _lock: &StoreLock,
        head: Option<&SnapshotId>,
        ev: &Event,
        key: Option<&crate::keys::PrivateKey>,
    ) -> Result<Entry> {
        let e = self.append_keyed(head, ev, key)?;
        // The command's own entry: its intent (if it wrote one) is recorded.
        self.done();
        Ok(e)
    }

    fn append_keyed(
        &self,
        head: Option<&SnapshotId>,
        ev: &Event,
        key: Option<&crate::keys::PrivateKey>,
    ) -> Result<Entry> {
        match key {
            Some(k) => {
                let actor = format!("key:{}", crate::keys::fingerprint(k.public_key()));
                self.append_signed(&actor, head, ev, Some(k))
            }
            None => self.append_signed(&os_actor(), head, ev, None),
        }
    }

    fn append_as(&self, actor: &str, head: Option<&SnapshotId>, ev: &Event) -> Result<Entry> {
        self.append_signed(actor, head, ev, None)
    }

    fn append_signed(
        &self,
        actor: &str,
        head: Option<&SnapshotId>,
        ev: &Event,
        key: Option<&crate::keys::PrivateKey>,
    ) -> Result<Entry> {
        let created = !self.path.exists();
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let _g = self.guard()?;
        self.cut_torn_tail()?;
        let last = self.last()?;
        let size = last.as_ref().map_or(0, |e| e.seq + 1);
        let mut tree = self.open_tree(size)?;
        let mut paths = ev.paths.clone();
        let omitted = paths.len().saturating_sub(MAX_PATHS) as u64;
        paths.truncate(MAX_PATHS);
        let mut e = Entry {
            seq: size,
            time: now_rfc3339(),
            actor: actor.to_string(),
            op: ev.op.as_str().to_string(),
            plane: self.plane.clone(),
            refs: ev.refs.clone(),
            paths,
            paths_omitted: omitted,
            snapshot: ev.snapshot.map(|s| s.to_hex()),
            head: head.map(SnapshotId::to_hex),
            message: ev.message.replace(['\n', '\r'], " "),
            key: ev.key.clone(),
            prev: last.as_ref().map_or_else(|| hex(&[0; 32]), |l| l.hash.clone()),
            hash: String::new(),
            sig: None,
        };
        let h = e
            .compute_hash()
            .ok_or_else(|| damaged(&self.path, "its last entry has a malformed hash".into()))?;
        e.hash = hex(&h);
        if let Some(k) = key {
            e.sig = Some(crate::keys::sign(k, SIG_NAMESPACE, &h).map_err(|err| Error::BadConfig {
                path: self.path.clone(),
                reason: format!("signing the entry failed: {err}"),
            })?);
        }
        let mut line = e.to_line();
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .at(&self.path)?;
        let at = f.metadata().at(&self.path)?.len();
        f.write_all(line.as_bytes()).at(&self.path)?;
        f.sync_data().at(&self.path)?;
        if created && let Some(dir) = self.path.parent() {
            crate::fsutil::fsync_dir(dir)?;
        }
        tree.append(&merkle::leaf_hash(&h)).map_err(|e| self.tree_error(e))?;
        tree.sync().map_err(|e| self.tree_error(e))?;
        // Derived, like the tree: a failure here only costs a scan later.
        let _ = self.note_offset(e.seq, at);
        Ok(e)
    }

    /// Records that a command is about to make the change `ev` describes
    /// (its paths may be filled in later), durably, before it makes it.
    ///
    /// # Errors
    /// I/O writing the intent file.
    pub fn intend(&self, _lock: &StoreLock, ev: &Event) -> Result<()> {
        let path = self.path.with_file_name(PENDING_FILE);
        let body = serde_json::json!({"op": ev.op.as_str(), "message": ev.message, "actor": os_actor()}).to_string();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at(dir)?;
        let tmp = crate::fsutil::write_temp(body.as_bytes(), dir, true)?;
        tmp.persist(&path).map_err(|e| e.error).at(&path)?;
        crate::fsutil::fsync_dir(dir)
    }

    /// Removes the intent file: the command's entry is appended, or the
    /// command ended having changed nothing.
    pub fn done(&self) {
        let _ = std::fs::remove_file(self.path.with_file_name(PENDING_FILE));
    }

    /// Checks, before a command changes anything, that an entry could be
    /// appended: the torn tail cut, the last entry sound, the tree in step
    /// (rebuilt when short). A command that would fail to record itself
    /// stops here instead, having changed nothing.
    ///
    /// # Errors
    /// As [`Ledger::append`].
    /// `recorded`: the ledger head HEAD's snapshot was sealed with; a
    /// ledger that is shorter, missing, or whose first entries no longer
    /// have that root is refused (store damage), never rebuilt over.
    pub fn check_appendable(&self, _lock: &StoreLock, recorded: Option<crate::object::LedgerRef>) -> Result<()> {
        let _g = self.guard()?;
        if self.path.exists() {
            self.cut_torn_tail()?;
        }
        let size = self.last()?.map_or(0, |e| e.seq + 1);
        if let Some(r) = recorded.filter(|r| r.size > 0) {
            if size < r.size {
                return Err(damaged(
                    &self.path,
                    format!(
                        "has {size} entries, but HEAD's snapshot was sealed when it had {}: entries were removed (or the ledger deleted); put it back from a backup",
                        r.size
                    ),
                ));
            }
            let tree = self.open_tree(size)?;
            if tree.root(r.size).map_err(|e| self.tree_error(e))? != r.root {
                return Err(damaged(
                    &self.path,
                    format!(
                        "its first {} entries are not the ones HEAD's snapshot recorded: the ledger was rewritten; put it back from a backup",
                        r.size
                    ),
                ));
            }
            return Ok(());
        }
        if size > 0 {
            self.open_tree(size)?;
        }
        Ok(())
    }

    /// Cuts an unterminated last line (a crash mid-append) off the file.
    fn cut_torn_tail(&self) -> Result<()> {
        let len = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(_) => return Ok(()),
        };
        let keep = self.last_line()?.map_or(0, |(_, end)| end);
        if keep < len {
            let f = OpenOptions::new().write(true).open(&self.path).at(&self.path)?;
            f.set_len(keep).at(&self.path)?;
            f.sync_data().at(&self.path)?;
        }
        Ok(())
    }

    /// Checks every entry from the first: canonical form, position, chain
    /// and hash; then the Merkle tree against the entries (rebuilding its
    /// files, which are derived data, when they differ) and the plane's HEAD
    /// against the last entry. Stops at the first broken entry.
    ///
    /// # Errors
    /// I/O reading the ledger.
    pub fn verify(
        &self,
        head: Option<&SnapshotId>,
        recorded: Option<crate::object::LedgerRef>,
        signers: &[crate::keys::Signer],
    ) -> Result<VerifyReport> {
        use rayon::prelude::*;
        let _g = self.guard()?;
        let bytes = self.read_all()?;
        let end = complete_len(&bytes);
        let mut report = VerifyReport {
            torn_tail: (end < bytes.len()).then_some((bytes.len() - end) as u64),
            ..VerifyReport::default()
        };
        let lines: Vec<&[u8]> = if end == 0 {
            Vec::new()
        } else {
            bytes[..end - 1].split(|&b| b == b'\n').collect()
        };
        // Per line, in parallel: parse, canonical form, own hash.
        let checked: Vec<std::result::Result<(Entry, Hash), String>> = lines
            .par_iter()
            .map(|l| {
                let e: Entry = serde_json::from_slice(l).map_err(|err| format!("is not a ledger entry ({err})"))?;
                if e.to_line().as_bytes() != *l {
                    return Err(format!(
                        "entry {} is not in canonical form: it was edited by hand",
                        e.seq
                    ));
                }
                let h = e
                    .compute_hash()
                    .filter(|h| Some(*h) == e.hash_bytes())
                    .ok_or_else(|| format!("entry {}: its contents do not match its hash (edited)", e.seq))?;
                Ok((e, h))
            })
            .collect();
        let mut prev = [0u8; 32];
        let mut leaves = Vec::with_capacity(checked.len());
        let mut last: Option<&Entry> = None;
        for (i, c) in checked.iter().enumerate() {
            let seq = i as u64;
            let problem = match c {
                Err(p) => Some(p.clone()),
                Ok((e, _)) if e.seq > seq => Some(
                    if checked[i..]
                        .iter()
                        .any(|c| c.as_ref().is_ok_and(|(later, _)| later.seq == seq))
                    {
                        format!("entry {} comes before entry {seq}: the entries were reordered", e.seq)
                    } else if seq == 0 {
                        format!(
                            "the ledger starts at entry {}: the entries before it were removed",
                            e.seq
                        )
                    } else {
                        format!(
                            "entry {} follows entry {}: {} removed",
                            e.seq,
                            seq - 1,
                            if e.seq == seq + 1 {
                                format!("entry {seq} was")
                            } else {
                                format!("entries {seq} to {} were", e.seq - 1)
                            }
                        )
                    },
                ),
                Ok((e, _)) if e.seq < seq => Some(format!(
                    "entry {} appears again at position {seq}: an entry was inserted",
                    e.seq
                )),
                Ok((e, _)) if from_hex(&e.prev) != Some(prev) => Some(format!(
                    "entry {} does not chain to the entry before it: an entry was replaced, inserted or reordered",
                    e.seq
                )),
                Ok((e, _)) if e.plane != self.plane => Some(format!(
                    "entry {} belongs to plane {:?}, not {:?}: copied from another ledger",
                    e.seq, e.plane, self.plane
                )),
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                report.broken = Some(Broken {
                    seq,
                    line: i as u64 + 1,
                    problem,
                });
                break;
            }
            if let Ok((e, h)) = c {
                prev = *h;
                leaves.push(merkle::leaf_hash(h));
                last = Some(e);
                if e.sig.is_some() {
                    report.signed += 1;
                }
            }
        }
        report.good = leaves.len() as u64;
        // Signatures, against the keys the ledger itself trusted at each entry.
        let good: Vec<&Entry> = checked[..report.good as usize]
            .iter()
            .filter_map(|c| c.as_ref().ok().map(|(e, _)| e))
            .collect();
        let (trust, problems) = Trust::replay(&good);
        report.bad_signatures = problems;
        // The registry file must say what the ledger says.
        let key_of = |s: &crate::keys::Signer| (s.fingerprint(), s.role);
        let mut want: Vec<_> = trust.signers.iter().map(key_of).collect();
        let mut have: Vec<_> = signers.iter().filter(|s| s.revoked.is_none()).map(key_of).collect();
        want.sort();
        have.sort();
        if want != have {
            let extra: Vec<String> = have
                .iter()
                .filter(|h| !want.contains(h))
                .map(|(f, r)| format!("{f} ({})", r.as_str()))
                .collect();
            let missing: Vec<String> = want
                .iter()
                .filter(|w| !have.contains(w))
                .map(|(f, r)| format!("{f} ({})", r.as_str()))
                .collect();
            report.registry_mismatch = Some(format!(
                "registries/allowed_signers does not match the keys the ledger trusts{}{} (edited by hand, restored or rolled back?)",
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("; it trusts {} which no key-trust entry added", extra.join(", "))
                },
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; it lacks {}", missing.join(", "))
                },
            ));
        }
        let root = root_of(&leaves);
        report.head = Some(Head {
            size: report.good,
            root,
        });
        if report.broken.is_some() {
            return Ok(report);
        }
        // Removed from the end: the tree (appended after the ledger) is longer.
        if let Err(Error::DamagedFile { reason, .. }) = self.check_not_truncated(report.good) {
            report.broken = Some(Broken {
                seq: report.good,
                line: 0,
                problem: format!("the ledger {reason}"),
            });
            return Ok(report);
        }
        // The tree is appended after each line, so after a crash it can
        // only be short: then it is rebuilt (derived data). A full-length
        // tree that disagrees is evidence of a rewrite (or of damage): it
        // is reported and kept.
        let stored = match Tree::open(&self.tree_dir, report.good) {
            Ok(t) => t,
            // A reader that may not write the store cannot open (or repair)
            // the tree files: the entries were checked, the tree is not.
            Err(e) if is_read_only(&e) => {
                // The leaves (level 0) are still read and compared; the
                // levels above, which only serve proofs, are not.
                if let Ok(stored) = std::fs::read(self.tree_dir.join("0")) {
                    let differs = leaves
                        .iter()
                        .enumerate()
                        .find(|(i, l)| stored.get(i * 32..i * 32 + 32) != Some(&l[..]))
                        .map(|(i, _)| i as u64);
                    if let Some(i) = differs.filter(|&i| (i as usize) * 32 < stored.len()) {
                        report.broken = Some(Broken {
                            seq: i,
                            line: i + 1,
                            problem: format!(
                                "entry {i} is not the entry the Merkle tree ({}) recorded: the ledger was rewritten from there (or the tree damaged)",
                                self.tree_dir.display()
                            ),
                        });
                        return Ok(report);
                    }
                }
                report.tree_unchecked = true;
                Some(Tree::rebuild(self.private_dir()?, leaves.iter().copied()).map_err(|e| self.tree_error(e))?)
            }
            Err(e) => return Err(self.tree_error(e)),
        };
        match stored {
            None if !leaves.is_empty() => {
                let t = Tree::rebuild(&self.tree_dir, leaves.iter().copied()).map_err(|e| self.tree_error(e))?;
                t.sync().map_err(|e| self.tree_error(e))?;
                report.tree_rebuilt = true;
            }
            Some(t) if t.root(report.good).ok() != Some(root) => {
                let differs = (0..report.good)
                    .find(|&i| t.leaf(i).ok() != Some(leaves[i as usize]))
                    .unwrap_or(0);
                report.broken = Some(Broken {
                    seq: differs,
                    line: differs + 1,
                    problem: format!(
                        "entry {differs} is not the entry the Merkle tree ({}) recorded: the ledger was rewritten from there (or the tree damaged)",
                        self.tree_dir.display()
                    ),
                });
                return Ok(report);
            }
            _ => {}
        }
        // HEAD's snapshot recorded the ledger as it was when sealed: it must
        // still be a prefix of the ledger now.
        if let Some(r) = recorded {
            let problem = if r.size > report.good {
                Some(format!(
                    "HEAD's snapshot was sealed when the ledger had {} entries; it has {}: entries were removed from its end",
                    r.size, report.good
                ))
            } else if root_of(&leaves[..r.size as usize]) != r.root {
                Some(format!(
                    "the first {} entries are not the ones HEAD's snapshot recorded (Merkle root differs): the ledger was rewritten",
                    r.size
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                // Not one entry: somewhere in the first `size`.
                report.broken = Some(Broken {
                    seq: 0,
                    line: 0,
                    problem,
                });
                return Ok(report);
            }
        }
        let recorded = last.and_then(|e| e.head.clone());
        let now = head.map(SnapshotId::to_hex);
        // No ledger at all: a store from before ledgers (its first writing
        // command records the history), not a gap.
        if now.is_some() && recorded != now && report.good > 0 {
            report.head_unrecorded = now;
        }
        Ok(report)
    }

    /// An inclusion proof for entry `index` in the ledger's first `size` entries.
    ///
    /// # Errors
    /// `index >= size` or `size` past the ledger (a sentence); I/O.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        let _g = self.guard()?;
        let tree = self.open_tree(self.head_size()?)?;
        tree.inclusion_proof(index, size).map_err(|e| self.tree_error(e))
    }

    /// A consistency proof that the ledger's first `new` entries extend its first `old`.
    ///
    /// # Errors
    /// `old` of 0 or past `new`, `new` past the ledger; I/O.
    pub fn prove_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        let _g = self.guard()?;
        let tree = self.open_tree(self.head_size()?)?;
        tree.consistency_proof(old, new).map_err(|e| self.tree_error(e))
    }

    /// The Merkle root of the first `size` entries.
    ///
    /// # Errors
    /// `size` past the ledger; I/O.
    pub fn root(&self, size: u64) -> Result<Hash> {
        let _g = self.guard()?;
        let tree = self.open_tree(self.head_size()?)?;
        tree.root(size).map_err(|e| self.tree_error(e))
    }

    fn head_size(&self) -> Result<u64> {
        Ok(self.last()?.map_or(0, |e| e.seq + 1))
    }
}

/// The RFC 6962 root (MTH) of `leaves`, computed in memory: split at the
/// largest power of two below the count, as RFC 9162 §2.1.1 defines it.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => merkle::empty_root(),
        1 => leaves[0],
        n => {
            // The largest power of two below n: the highest bit of n - 1.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            merkle::node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// Length of `bytes` up to and including its last line feed.
fn complete_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1)
}

/// The op a snapshot of `kind` was sealed by, for entries recorded late.
fn op_of(kind: &SnapshotKind) -> Op {
    match kind {
        SnapshotKind::Init => Op::Init,
        SnapshotKind::Checkpoint => Op::Snapshot,
        SnapshotKind::Rescue | SnapshotKind::Rollback { .. } => Op::Rollback,
    }
}

/// The ledger head a snapshot of `plane` records now
/// ([`crate::object::Snapshot::ledger`]); `None` when it cannot be read
/// (the snapshot is still sealed: the ledger check reports the problem).
pub fn snapshot_ref(store: &Store, plane: &str) -> Option<crate::object::LedgerRef> {
    Ledger::of(store, plane).head().ok().map(|h| crate::object::LedgerRef {
        size: h.size,
        root: h.root,
    })
}

/// Records, under `lock`, the snapshots `plane`'s HEAD gained since the
/// last entry recorded it (a command interrupted between moving HEAD and
/// writing its entry, or a store from before ledgers): HEAD's ancestors
/// back to the recorded one, oldest first, each as an entry by `cplane`
/// saying it was recorded late; then the intent of a command that did not
/// live to record itself. Returns the entries written.
///
/// # Errors
/// As [`Ledger::append`]; store damage reading snapshots.
pub fn reconcile(
    store: &Store,
    lock: &StoreLock,
    plane: &str,
    key: Option<&crate::keys::PrivateKey>,
) -> Result<Vec<Entry>> {
    let _ = lock;
    let ledger = Ledger::of(store, plane);
    let mut out = reconcile_head(store, lock, plane, key, &ledger)?;
    // A command that meant to change the plane and did not live to record
    // it (after the snapshots: its change came after them).
    let pending = ledger.path.with_file_name(PENDING_FILE);
    if let Ok(text) = std::fs::read_to_string(&pending) {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let op = v["op"].as_str().and_then(Op::parse).unwrap_or(Op::Compile);
        let ev = Event::new(
            op,
            format!(
                "{} (by {}): recorded late: the command did not record its outcome (interrupted, or it failed), so its change may be partly made or not at all",
                v["message"].as_str().unwrap_or("an interrupted command"),
                v["actor"].as_str().unwrap_or("an unknown actor")
            ),
        );
        let head = store.head(plane)?;
        out.push(match key {
            Some(k) => ledger.append_keyed(head.as_ref(), &ev, Some(k))?,
            None => ledger.append_as("cplane", head.as_ref(), &ev)?,
        });
        ledger.done();
    }
    Ok(out)
}

fn reconcile_head(
    store: &Store,
    _lock: &StoreLock,
    plane: &str,
    key: Option<&crate::keys::PrivateKey>,
    ledger: &Ledger,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let Some(head) = store.head(plane)? else {
        return Ok(out);
    };
    let last = ledger.last()?;
    let recorded = last
        .as_ref()
        .and_then(|e| e.head.as_deref())
        .and_then(SnapshotId::from_hex);
    if recorded == Some(head) {
        return Ok(out);
    }
    // HEAD's ancestors down to the recorded HEAD (or the first snapshot).
    let mut chain = Vec::new();
    let mut at = Some(head);
    let mut found = recorded.is_none();
    while let Some(id) = at {
        if Some(id) == recorded {
            found = true;
            break;
        }
        let s = match store.read_snapshot(&id) {
            Ok(s) => s,
            // History pruned (and collected) before the recorded HEAD was
            // reached: record what is left of it.
            Err(Error::MissingObject { .. }) if !chain.is_empty() => {
                found = true;
                break;
            }
            Err(e) => return Err(e),
        };
        at = s.parent;
        chain.push((id, s));
    }
    let mut late = if last.is_none() {
        "recorded from history when the ledger began"
    } else {
        "recorded late (the command that made it was interrupted before its entry was written)"
    };
    if !found {
        // HEAD was moved outside cplane to a state that does not descend
        // from the one recorded: record where it is now, and say so.
        chain.truncate(1);
        late = "HEAD was moved outside cplane: it does not descend from the HEAD the ledger last recorded";
    }
    for (id, s) in chain.into_iter().rev() {
        let ev = Event {
            op: op_of(&s.kind),
            refs: vec!["HEAD".into(), format!("checkpoints/{}", s.name)],
            paths: Vec::new(),
            snapshot: Some(id),
            key: None,
            message: format!("{} {}: {late}", s.kind.label(), s.name),
        };
        out.push(match key {
            // Signed with the configured key: a plane that trusts keys wants
            // every entry signed, late ones too.
            Some(k) => ledger.append_keyed(Some(&id), &ev, Some(k))?,
            None => ledger.append_as("cplane", Some(&id), &ev)?,
        });
    }
    Ok(out)
}
