//! `cplane fsck --remote NAME`: is the remote whole?
//!
//! Lists the remote's packs and reads every index (its BLAKE3 trailer is
//! checked), then walks every remote ref (each plane's HEAD and
//! checkpoints) through its snapshot and trees, and names every object a
//! ref reaches that no remote index lists. Trees are read from this store
//! when it holds them (same id, same bytes), else fetched from the remote
//! pack with a ranged read and re-hashed. With `read_data`, every pack is
//! downloaded and every record re-hashed, as `restic check --read-data` does.

use super::backend::Backend;
use crate::control::Control;
use crate::error::{Error, Result};
use crate::fsck::Damage;
use crate::id::{ObjectId, SnapshotId, TreeId};
use crate::object::{EntryKind, ObjectKind, Snapshot, Tree};
use crate::store::Store;
use crate::store::pack::{IdxEntry, MAX_IN_MEMORY_BODY, PackIndex, RECORD_HEADER_LEN, decode_record};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// What `fsck --remote` found.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteCheckReport {
    /// The remote.
    pub remote: String,
    /// Packs (with an index) on the remote.
    pub packs: u64,
    /// Objects their indexes list.
    pub objects: u64,
    /// Objects downloaded and re-hashed (`--read-data`; 0 otherwise).
    pub objects_read: u64,
    /// Refs walked.
    pub refs: u64,
    /// Everything wrong.
    pub damage: Vec<Damage>,
    /// Harmless observations (packs without an index: an interrupted push).
    pub notes: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl RemoteCheckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

fn damage(id: String, kind: &str, problem: &'static str, location: String, reason: String) -> Damage {
    Damage {
        id,
        kind: kind.into(),
        problem,
        location,
        reason,
        reached_by: Vec::new(),
    }
}

/// Checks `remote` (see the module documentation).
///
/// # Errors
/// [`Error::Remote`] when the remote cannot be listed or read; [`Error::Io`]
/// in this store's `tmp/`. Everything wrong on the remote is [`Damage`].
pub fn check(store: &Store, remote: &Backend, read_data: bool, ctl: Control<'_>) -> Result<RemoteCheckReport> {
    let t0 = Instant::now();
    let name = remote.name().to_string();
    super::require_format(remote)?;
    let mut report = RemoteCheckReport {
        remote: name.clone(),
        packs: 0,
        objects: 0,
        objects_read: 0,
        refs: 0,
        damage: Vec::new(),
        notes: Vec::new(),
        seconds: 0.0,
    };
    let work = tempfile::Builder::new()
        .prefix("fsck-remote-")
        .tempdir_in(store.tmp_dir())
        .map_err(|e| Error::Io {
            path: store.tmp_dir(),
            source: e,
        })?;
    ctl.progress.phase("listing");
    let listed = remote.list("packs/")?;
    let sizes: HashMap<&str, u64> = listed.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    let mut index: HashMap<ObjectId, (usize, IdxEntry)> = HashMap::new();
    let mut packs: Vec<(String, PackIndex)> = Vec::new();
    // Only `packs/pack-<64 hex>.{pack,idx}` are a remote's: a listed name is
    // never made into a local path unchecked.
    let pack_name = |key: &str, ext: &str| -> Option<String> {
        key.strip_prefix("packs/pack-")
            .and_then(|r| r.strip_suffix(ext))
            .filter(|n| n.len() == 64 && crate::id::is_hex(n))
            .map(str::to_string)
    };
    for (key, _) in &listed {
        if let Some(pname) = pack_name(key, ".pack") {
            if !sizes.contains_key(super::pack_key(&pname, "idx").as_str()) {
                report.notes.push(format!(
                    "{key} has no index: left by an interrupted push, no ref can reach it"
                ));
            }
        } else if pack_name(key, ".idx").is_none() {
            report.notes.push(format!(
                "{key} is not a pack or index name (packs/pack-<64 hex>.pack or .idx); ignored"
            ));
        }
    }
    for (key, _) in &listed {
        let Some(pname) = pack_name(key, ".idx") else {
            continue;
        };
        ctl.check()?;
        let idx_path = work.path().join(format!("pack-{pname}.idx"));
        let pack_path = work.path().join(format!("pack-{pname}.pack"));
        let pack_key = super::pack_key(&pname, "pack");
        let Some(&pack_len) = sizes.get(pack_key.as_str()) else {
            report.damage.push(damage(
                String::new(),
                "file",
                "missing",
                format!("remote {name}: {pack_key}"),
                "the pack is missing, but its index is there".into(),
            ));
            continue;
        };
        if remote.download_to(key, &idx_path, ctl.progress)?.is_none() {
            continue;
        }
        if read_data {
            if remote.download_to(&pack_key, &pack_path, ctl.progress)?.is_none() {
                report.damage.push(damage(
                    String::new(),
                    "file",
                    "missing",
                    format!("remote {name}: {pack_key}"),
                    "the pack disappeared while it was read".into(),
                ));
                continue;
            }
        } else {
            // The index alone is read; an empty stand-in lets it open.
            std::fs::write(&pack_path, b"").map_err(|e| Error::Io {
                path: pack_path.clone(),
                source: e,
            })?;
        }
        // Trailer, order, kinds, fanout, and records tiling the pack (its
        // listed length, when it is not downloaded): an entry never points
        // outside its pack.
        let opened = PackIndex::open(&idx_path).and_then(|p| {
            if read_data {
                p.check()?;
            } else {
                p.check_entries(pack_len)?;
            }
            Ok(p)
        });
        let p = match opened {
            Ok(p) => p,
            Err(e) => {
                report.damage.push(damage(
                    String::new(),
                    "file",
                    "damaged",
                    format!("remote {name}: {key}"),
                    match e {
                        Error::DamagedFile { reason, .. } => reason,
                        other => other.to_string(),
                    },
                ));
                continue;
            }
        };
        for i in 0..p.len() {
            if let Some(e) = p.entry(i) {
                index.entry(e.id).or_insert((packs.len(), e));
            }
        }
        report.objects += p.len() as u64;
        packs.push((pname, p));
    }
    report.packs = packs.len() as u64;
    let mut bad: HashSet<ObjectId> = HashSet::new();
    if read_data {
        ctl.progress.phase("verifying");
        let jobs: Vec<(usize, IdxEntry)> = packs
            .iter()
            .enumerate()
            .flat_map(|(pi, (_, p))| (0..p.len()).filter_map(move |i| p.entry(i).map(|e| (pi, e))))
            .collect();
        let found: Vec<Damage> = jobs
            .par_iter()
            .filter_map(|(pi, e)| {
                let (pname, p) = &packs[*pi];
                match p.verify_entry(e) {
                    Ok(n) => {
                        ctl.progress.inc(1, n);
                        None
                    }
                    Err(err) => Some(damage(
                        e.id.to_hex(),
                        e.kind.name(),
                        "corrupt",
                        format!("remote {name}: packs/pack-{pname}.pack offset {}", e.offset),
                        match err {
                            Error::CorruptObject { reason, .. } => reason,
                            other => other.to_string(),
                        },
                    )),
                }
            })
            .collect();
        report.objects_read = jobs.len() as u64;
        for d in found {
            if let Some(id) = ObjectId::from_hex(&d.id) {
                bad.insert(id);
            }
            report.damage.push(d);
        }
    }
    // Reachability from every remote ref.
    ctl.progress.phase("walking");
    let mut refs: Vec<(String, SnapshotId)> = Vec::new();
    for (key, _) in remote.list("planes/")? {
        let parts: Vec<&str> = key.split('/').collect();
        let label = match parts.as_slice() {
            [_, plane, "HEAD"] => format!("{plane}/HEAD"),
            [_, plane, "checkpoints", cp] => format!("{plane}/{cp}"),
            _ => continue,
        };
        let bytes = match remote.get_ref(&key) {
            Ok(r) => r.map(|r| r.bytes).unwrap_or_default(),
            Err(Error::DamagedFile { reason, .. }) => {
                report.damage.push(damage(
                    String::new(),
                    "file",
                    "damaged",
                    format!("remote {name}: {key}"),
                    reason,
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        match crate::store::refs::parse_remote_ref(&bytes) {
            Some((id, ledger)) => {
                refs.push((label.clone(), id));
                if let Some(l) = ledger {
                    let lkey = super::ledger_key(parts[1], &l);
                    match remote.get(&lkey)? {
                        Some(b) if blake3::hash(&b).as_bytes() == &l.0 => {}
                        Some(_) => report.damage.push(damage(
                            String::new(),
                            "file",
                            "corrupt",
                            format!("remote {name}: {lkey}"),
                            "the ledger copy does not hash to its name".into(),
                        )),
                        None => report.damage.push(damage(
                            String::new(),
                            "file",
                            "missing",
                            format!("remote {name}: {lkey}"),
                            format!("{label} names this ledger copy, which is not there"),
                        )),
                    }
                }
            }
            None => report.damage.push(damage(
                String::new(),
                "file",
                "damaged",
                format!("remote {name}: {key}"),
                "is not a ref (64 hex digits and a newline)".into(),
            )),
        }
    }
    report.refs = refs.len() as u64;
    let reader = Reader {
        store,
        remote,
        packs: &packs,
        index: &index,
        read_data,
    };
    let mut done: HashSet<ObjectId> = HashSet::new();
    let mut found: HashMap<ObjectId, usize> = HashMap::new();
    for (label, id) in &refs {
        ctl.check()?;
        let mut note =
            |report: &mut RemoteCheckReport, oid: ObjectId, kind: &str, problem: &'static str, reason: String| {
                let i = *found.entry(oid).or_insert_with(|| {
                    report
                        .damage
                        .push(damage(oid.to_hex(), kind, problem, String::new(), reason));
                    report.damage.len() - 1
                });
                report.damage[i].reached_by.push(format!("{name}/{label}"));
            };
        if bad.contains(&id.0) {
            note(
                &mut report,
                id.0,
                "snapshot",
                "corrupt",
                "does not re-hash to its id".into(),
            );
            continue;
        }
        if !index.contains_key(&id.0) {
            note(
                &mut report,
                id.0,
                "snapshot",
                "missing",
                "snapshot is in no remote pack".into(),
            );
            continue;
        }
        let snap = match reader.snapshot(id) {
            Ok(s) => s,
            Err(e) => {
                note(&mut report, id.0, "snapshot", "corrupt", e.to_string());
                continue;
            }
        };
        let mut stack = vec![snap.root];
        while let Some(t) = stack.pop() {
            if !done.insert(t.0) {
                continue;
            }
            if !index.contains_key(&t.0) {
                note(&mut report, t.0, "tree", "missing", "tree is in no remote pack".into());
                continue;
            }
            let tree = match reader.tree(&t) {
                Ok(tree) => tree,
                Err(e) => {
                    note(&mut report, t.0, "tree", "corrupt", e.to_string());
                    continue;
                }
            };
            for e in &tree.entries {
                if e.kind == EntryKind::Dir {
                    stack.push(e.tree_id());
                } else if done.insert(e.id) && !index.contains_key(&e.id) {
                    note(&mut report, e.id, "blob", "missing", "blob is in no remote pack".into());
                }
            }
        }
    }
    for d in &mut report.damage {
        d.reached_by.sort();
        d.reached_by.dedup();
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads trees and snapshots for the walk: from this store when it holds
/// them, else from the remote (downloaded packs, or one ranged read).
struct Reader<'a> {
    store: &'a Store,
    remote: &'a Backend,
    packs: &'a [(String, PackIndex)],
    index: &'a HashMap<ObjectId, (usize, IdxEntry)>,
    read_data: bool,
}

impl Reader<'_> {
    fn body(&self, id: &ObjectId, kind: ObjectKind) -> Result<Vec<u8>> {
        if self.store.contains(id) {
            return self.store.read(id, kind);
        }
        let (pi, e) = self.index.get(id).ok_or_else(|| Error::MissingObject {
            id: id.to_hex(),
            kind: kind.name(),
        })?;
        let (pname, p) = &self.packs[*pi];
        if self.read_data {
            return p.read(e).map(|(b, _)| b);
        }
        // One ranged read of the record (inside the pack: the index was
        // checked), decoded and re-hashed here as a local read would be.
        let key = super::pack_key(pname, "pack");
        let corrupt = |reason: String| Error::CorruptObject {
            id: id.to_hex(),
            location: format!("remote {}: {key} offset {}", self.remote.name(), e.offset),
            reason,
        };
        let end = e
            .offset
            .checked_add(e.len)
            .filter(|_| e.len <= MAX_IN_MEMORY_BODY + RECORD_HEADER_LEN as u64)
            .ok_or_else(|| {
                corrupt(format!(
                    "record length {} is more than a {} may have",
                    e.len,
                    kind.name()
                ))
            })?;
        let rec = self.remote.get_range(&key, e.offset..end)?;
        decode_record(e, &rec).map(|(b, _)| b).map_err(corrupt)
    }

    fn tree(&self, id: &TreeId) -> Result<Tree> {
        Tree::decode(id.0, &self.body(&id.0, ObjectKind::Tree)?)
    }

    fn snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        Snapshot::decode(id.0, &self.body(&id.0, ObjectKind::Snapshot)?)
    }
}
