//! Store health: every object re-hashes to its id, every object reachable
//! from a ref is present and sound.
//!
//! Pass 1 reads every record of every pack in parallel (decompress, re-hash,
//! compare with the id; pack indexes are checked against their BLAKE3
//! trailer). Pass 2 walks from every ref (each plane's HEAD and checkpoints)
//! through its snapshot's trees and blobs, memoising by tree id, and names
//! for each damaged or missing object the refs and paths that reach it. A
//! snapshot's parent is history, not a reason to keep data (restic's
//! semantics, `store-format.md`, "Retention and reachability"): a parent no
//! ref names, present or gone, is noted as pruned history, never damage.

use crate::error::{Error, Result};
use crate::id::{ObjectId, SnapshotId, TreeId};
use crate::object::{EntryKind, ObjectKind, Snapshot, Tree};
use crate::progress::Progress;
use crate::store::Store;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// One damaged, missing or unreadable thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// Object id (hex), or empty for a damaged file.
    pub id: String,
    /// `blob`, `tree`, `snapshot`, or `file` for a damaged ref or pack index.
    pub kind: String,
    /// `corrupt`, `missing` or `damaged`.
    pub problem: &'static str,
    /// Pack and offset, or file path.
    pub location: String,
    /// What was expected and what was found.
    pub reason: String,
    /// Refs that reach it, as `plane:ref` with the path inside the snapshot when known.
    pub reached_by: Vec<String>,
}

/// Result of a store check.
#[derive(Debug, Clone, Serialize)]
pub struct FsckReport {
    /// Packs checked.
    pub packs: u64,
    /// Objects read and re-hashed.
    pub objects: u64,
    /// Uncompressed bytes re-hashed.
    pub bytes: u64,
    /// Refs walked.
    pub refs: u64,
    /// Everything wrong, in discovery order.
    pub damage: Vec<Damage>,
    /// Harmless leftovers of interrupted writers (removed by the next writer).
    pub leftovers: Vec<String>,
    /// Other harmless observations (format-1 objects left by `cplane upgrade`,
    /// a damaged stat cache that the next scan rebuilds).
    pub notes: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Damage {
    /// A damaged file (ref, pack index, journal, store directory) at `location`.
    fn file(location: String, reason: String) -> Self {
        Damage {
            id: String::new(),
            kind: "file".into(),
            problem: "damaged",
            location,
            reason,
            reached_by: Vec::new(),
        }
    }
}

impl FsckReport {
    /// True when the store is sound.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

type Problems = Arc<Vec<(Vec<u8>, ObjectId, &'static str)>>;

struct Walker<'a> {
    store: &'a Store,
    bad: &'a HashMap<ObjectId, usize>,
    memo: HashMap<TreeId, Problems>,
}

impl Walker<'_> {
    /// Problems (path, id, kind) at or under tree `root`. Post-order over an
    /// explicit stack, memoised by tree id: no recursion, any depth.
    fn tree(&mut self, root: TreeId) -> Problems {
        let mut stack: Vec<(TreeId, Option<Tree>)> = vec![(root, None)];
        while let Some((id, decoded)) = stack.pop() {
            if self.memo.contains_key(&id) {
                continue;
            }
            let tree = match decoded {
                Some(t) => t,
                None => {
                    let loaded = if self.bad.contains_key(&id.0) || self.store.locate(&id.0).is_none() {
                        None
                    } else {
                        self.store.read_tree(&id).ok()
                    };
                    match loaded {
                        Some(t) => t,
                        None => {
                            self.memo.insert(id, Arc::new(vec![(Vec::new(), id.0, "tree")]));
                            continue;
                        }
                    }
                }
            };
            let pending: Vec<TreeId> = tree
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::Dir && !self.memo.contains_key(&e.tree_id()))
                .map(|e| e.tree_id())
                .collect();
            if !pending.is_empty() {
                stack.push((id, Some(tree)));
                stack.extend(pending.into_iter().map(|p| (p, None)));
                continue;
            }
            let mut out = Vec::new();
            for e in &tree.entries {
                if e.kind == EntryKind::Dir {
                    for (sub, oid, kind) in self.memo[&e.tree_id()].iter() {
                        let mut p = e.name.clone();
                        if !sub.is_empty() {
                            p.push(b'/');
                            p.extend_from_slice(sub);
                        }
                        out.push((p, *oid, *kind));
                    }
                } else if self.bad.contains_key(&e.id) || self.store.locate(&e.id).is_none() {
                    out.push((e.name.clone(), e.id, "blob"));
                }
            }
            self.memo.insert(id, Arc::new(out));
        }
        self.memo[&root].clone()
    }
}

/// Checks the whole store.
///
/// # Errors
/// Only I/O errors that stop the check itself (unreadable plane directories);
/// everything wrong with objects, packs and refs is reported as [`Damage`].
pub fn fsck(store: &Store, progress: &dyn Progress) -> Result<FsckReport> {
    let t0 = Instant::now();
    let mut damage = Vec::new();
    for p in store.packs() {
        if let Err(e) = p.check() {
            damage.push(Damage::file(p.idx_path.display().to_string(), e.to_string()));
        }
    }
    // Pass 0: the files every command relies on, besides objects and refs.
    damage.extend(check_files(store));
    damage.extend(check_stat_caches(store));
    for (path, reason) in store.broken_packs() {
        damage.push(Damage::file(path.display().to_string(), reason.clone()));
    }
    // Pass 1: re-hash every record.
    let legacy = std::sync::atomic::AtomicU64::new(0);
    let jobs: Vec<(usize, usize)> = store
        .packs()
        .iter()
        .enumerate()
        .flat_map(|(pi, p)| (0..p.len()).map(move |i| (pi, i)))
        .collect();
    let results: Vec<Option<Damage>> = jobs
        .par_iter()
        .map(|&(pi, i)| {
            let p = &store.packs()[pi];
            let Some(e) = p.entry(i) else {
                return Some(Damage::file(
                    format!("{} entry {i}", p.idx_path.display()),
                    "unknown object kind byte".into(),
                ));
            };
            let r = if e.kind == ObjectKind::Blob {
                p.read_blob_to(&e, &mut std::io::sink(), &p.pack_path)
                    .map(|n| n as usize)
            } else {
                p.read(&e).and_then(|(body, version)| {
                    if version == 1 {
                        legacy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    crate::upgrade::decode_any(e.kind, version, e.id, &body).map(|_| body.len())
                })
            };
            match r {
                Ok(n) => {
                    progress.inc(1, n as u64);
                    None
                }
                Err(err) => Some(Damage {
                    id: e.id.to_hex(),
                    kind: e.kind.name().into(),
                    problem: "corrupt",
                    location: format!("{} offset {}", p.pack_path.display(), e.offset),
                    reason: match err {
                        Error::CorruptObject { reason, .. } => reason,
                        other => other.to_string(),
                    },
                    reached_by: Vec::new(),
                }),
            }
        })
        .collect();
    let objects = jobs.len() as u64;
    let bytes: u64 = store
        .packs()
        .iter()
        .flat_map(|p| (0..p.len()).filter_map(move |i| p.entry(i)))
        .map(|e| e.len)
        .sum();
    let mut bad: HashMap<ObjectId, usize> = HashMap::new();
    for d in results.into_iter().flatten() {
        if let Some(id) = ObjectId::from_hex(&d.id) {
            bad.insert(id, damage.len());
        }
        damage.push(d);
    }
    // Pass 2: reachability from every ref.
    let mut refs: Vec<(String, SnapshotId)> = Vec::new();
    for plane in store.planes() {
        match store.head(&plane.name) {
            Ok(Some(id)) => refs.push((format!("{}:HEAD", plane.name), id)),
            Ok(None) => {}
            Err(e) => damage.push(file_damage(e)),
        }
        match store.checkpoints(&plane.name) {
            Ok(list) => refs.extend(list.into_iter().map(|(n, id)| (format!("{}:{n}", plane.name), id))),
            Err(e) => damage.push(file_damage(e)),
        }
    }
    // Removed planes' archived refs are roots too (gc keeps what they reach).
    match store.removed_plane_refs() {
        Ok(list) => refs.extend(list),
        Err(e) => damage.push(file_damage(e)),
    }
    // So are remote-tracking refs (`remotes/<NAME>/planes/…`).
    match store.remote_refs() {
        Ok(list) => refs.extend(list),
        Err(e) => damage.push(file_damage(e)),
    }
    let mut walker = Walker {
        store,
        bad: &bad,
        memo: HashMap::new(),
    };
    let mut missing: BTreeMap<ObjectId, usize> = BTreeMap::new();
    let mut snapshots: HashMap<SnapshotId, Option<Snapshot>> = HashMap::new();
    // What gc keeps (store-format.md, "Retention and reachability"): each
    // ref's snapshot, its tree and ownership blob. A parent is history: one
    // that no ref names, or that is gone, is pruned history, not damage.
    let named: HashSet<SnapshotId> = refs.iter().map(|(_, id)| *id).collect();
    let mut pruned: BTreeMap<SnapshotId, String> = BTreeMap::new();
    for (label, id) in &refs {
        let snap = snapshots
            .entry(*id)
            .or_insert_with(|| {
                (!bad.contains_key(&id.0))
                    .then(|| store.read_snapshot(id).ok())
                    .flatten()
            })
            .clone();
        let Some(snap) = snap else {
            note(&mut damage, &bad, &mut missing, store, id.0, "snapshot", label.clone());
            continue;
        };
        for (path, oid, kind) in walker.tree(snap.root).iter() {
            let at = format!(
                "{label} ({})",
                if path.is_empty() {
                    "/".into()
                } else {
                    String::from_utf8_lossy(path).into_owned()
                }
            );
            note(&mut damage, &bad, &mut missing, store, *oid, kind, at);
        }
        if let Some(blob) = snap.ownership
            && (bad.contains_key(&blob) || store.locate(&blob).is_none())
        {
            note(
                &mut damage,
                &bad,
                &mut missing,
                store,
                blob,
                "blob",
                format!("{label} (ownership)"),
            );
        }
        if let Some(p) = snap.parent
            && !named.contains(&p)
        {
            pruned
                .entry(p)
                .or_insert_with(|| format!("{}:{}", snap.plane, snap.name));
        }
    }
    for d in &mut damage {
        d.reached_by.sort();
        d.reached_by.dedup();
    }
    Ok(FsckReport {
        packs: store.packs().len() as u64,
        objects,
        bytes,
        refs: refs.len() as u64,
        damage,
        leftovers: store.leftovers().iter().map(|p| p.display().to_string()).collect(),
        notes: {
            let mut notes = cache_notes(store);
            for (p, child) in &pruned {
                notes.push(format!(
                    "history pruned: the parent {} of checkpoint {child} is no longer named by a ref ({})",
                    p.short(12),
                    if store.contains(&p.0) {
                        "its objects are free for a gc"
                    } else {
                        "its objects are gone"
                    }
                ));
            }
            let n = legacy.into_inner();
            if n > 0 {
                notes.insert(
                    0,
                    format!(
                        "{n} tree and snapshot objects of store format 1 remain from the upgrade; no ref reaches them"
                    ),
                );
            }
            notes
        },
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn file_damage(e: Error) -> Damage {
    match &e {
        Error::DamagedFile { path, reason } => Damage::file(path.display().to_string(), reason.clone()),
        other => Damage::file(String::new(), other.to_string()),
    }
}

fn note(
    damage: &mut Vec<Damage>,
    bad: &HashMap<ObjectId, usize>,
    missing: &mut BTreeMap<ObjectId, usize>,
    store: &Store,
    id: ObjectId,
    kind: &str,
    reached: String,
) {
    let i = if let Some(&i) = bad.get(&id) {
        i
    } else if let Some(&i) = missing.get(&id) {
        i
    } else {
        let present = store.locate(&id).is_some();
        damage.push(Damage {
            id: id.to_hex(),
            kind: kind.into(),
            problem: if present { "corrupt" } else { "missing" },
            location: String::new(),
            reason: if present {
                format!("{kind} does not decode")
            } else {
                format!("{kind} is not in any pack")
            },
            reached_by: Vec::new(),
        });
        missing.insert(id, damage.len() - 1);
        damage.len() - 1
    };
    damage[i].reached_by.push(reached);
}

/// Checks what the commands rely on besides objects and refs: the store's
/// directories (`packs`, `tmp`, `planes`) and every pending checkout journal.
fn check_files(store: &Store) -> Vec<Damage> {
    let mut out = Vec::new();
    for (dir, what) in [
        (store.packs_dir(), "pack directory"),
        (store.tmp_dir(), "temporary directory every write goes through"),
        (store.dir().join("planes"), "plane directory"),
    ] {
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => out.push(Damage::file(
                dir.display().to_string(),
                format!("the {what} is not a directory; every write fails until it is one"),
            )),
            Err(e) => out.push(Damage::file(
                dir.display().to_string(),
                format!("the {what} is missing ({e}); the next writer recreates it"),
            )),
        }
    }
    for plane in store.planes() {
        let jp = crate::checkout::journal_path(store, &plane.name);
        if jp.exists()
            && let Err(e) = crate::checkout::journal::load(&jp)
        {
            out.push(Damage::file(jp.display().to_string(), e.to_string()));
        }
    }
    out
}

/// The stat-cache invariant (`store-format.md`, "Stat cache"): every blob
/// id a plane's cache names is in the store. A row naming an absent blob
/// would make the next snapshot trust it and seal a tree naming a missing
/// object, so it is damage, named with the cache file (deleting the file is
/// always safe: the next scan re-reads every file).
fn check_stat_caches(store: &Store) -> Vec<Damage> {
    let mut out = Vec::new();
    for plane in store.planes() {
        let p = crate::snapshot::index_path(store, &plane);
        let Some(cache) = crate::store::index::StatCache::load(&p) else {
            continue;
        };
        let absent: Vec<&crate::store::index::IndexEntry> =
            cache.entries.iter().filter(|e| !store.contains(&e.id)).collect();
        if let Some(first) = absent.first() {
            out.push(Damage::file(
                p.display().to_string(),
                format!(
                    "stat cache names {} blob{} the store does not hold (first: {} for {}); the next snapshot would trust {}: delete the file (the next scan re-reads every file)",
                    absent.len(),
                    if absent.len() == 1 { "" } else { "s" },
                    first.id.to_hex(),
                    first.path.display(),
                    if absent.len() == 1 { "it" } else { "them" },
                ),
            ));
        }
    }
    out
}

/// Notes about stat caches that do not check out (harmless: rebuilt by the next scan).
fn cache_notes(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for plane in store.planes() {
        let p = crate::snapshot::index_path(store, &plane);
        if p.exists() && crate::store::index::StatCache::load(&p).is_none() {
            out.push(format!(
                "{}: stat cache is damaged or of another version; the next scan re-reads every file and rewrites it",
                p.display()
            ));
        }
    }
    out
}
