//! Store health: every object re-hashes to its id, every object reachable
//! from a ref is present and sound.
//!
//! Pass 1 reads every record of every pack in parallel (decompress, re-hash,
//! compare with the id; pack indexes are checked against their BLAKE3
//! trailer). Pass 2 walks from every ref (each plane's HEAD and checkpoints)
//! through snapshot parents, trees and blobs, memoising by tree id, and names
//! for each damaged or missing object the refs and paths that reach it.

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
    /// Wall-clock seconds.
    pub seconds: f64,
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
    /// Problems (path, id, kind) at or under tree `id`.
    fn tree(&mut self, id: TreeId) -> Problems {
        if let Some(p) = self.memo.get(&id) {
            return p.clone();
        }
        let mut out = Vec::new();
        if self.bad.contains_key(&id.0) || self.store.locate(&id.0).is_none() {
            out.push((Vec::new(), id.0, "tree"));
        } else if let Ok(tree) = self.store.read_tree(&id) {
            out.extend(self.entries(&tree));
        } else {
            out.push((Vec::new(), id.0, "tree"));
        }
        let p = Arc::new(out);
        self.memo.insert(id, p.clone());
        p
    }

    fn entries(&mut self, tree: &Tree) -> Vec<(Vec<u8>, ObjectId, &'static str)> {
        let mut out = Vec::new();
        for e in &tree.entries {
            if e.kind == EntryKind::Dir {
                for (sub, id, kind) in self.tree(e.tree_id()).iter() {
                    let mut p = e.name.clone();
                    if !sub.is_empty() {
                        p.push(b'/');
                        p.extend_from_slice(sub);
                    }
                    out.push((p, *id, *kind));
                }
            } else if self.bad.contains_key(&e.id) || self.store.locate(&e.id).is_none() {
                out.push((e.name.clone(), e.id, "blob"));
            }
        }
        out
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
            damage.push(Damage {
                id: String::new(),
                kind: "file".into(),
                problem: "damaged",
                location: p.idx_path.display().to_string(),
                reason: e.to_string(),
                reached_by: Vec::new(),
            });
        }
    }
    // Pass 1: re-hash every record.
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
                return Some(Damage {
                    id: String::new(),
                    kind: "file".into(),
                    problem: "damaged",
                    location: format!("{} entry {i}", p.idx_path.display()),
                    reason: "unknown object kind byte".into(),
                    reached_by: Vec::new(),
                });
            };
            let r = if e.kind == ObjectKind::Blob {
                p.read_blob_to(&e, &mut std::io::sink(), &p.pack_path)
                    .map(|n| n as usize)
            } else {
                p.read(&e).and_then(|body| {
                    match e.kind {
                        ObjectKind::Tree => Tree::decode(e.id, &body).map(|_| ()),
                        _ => Snapshot::decode(e.id, &body).map(|_| ()),
                    }
                    .map(|_| body.len())
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
    let mut walker = Walker {
        store,
        bad: &bad,
        memo: HashMap::new(),
    };
    let mut missing: BTreeMap<ObjectId, usize> = BTreeMap::new();
    let mut snapshots: HashMap<SnapshotId, Option<Snapshot>> = HashMap::new();
    for (name, head) in &refs {
        let mut cur = Some(*head);
        let mut seen = HashSet::new();
        while let Some(id) = cur {
            if !seen.insert(id) {
                break;
            }
            // Name the ref, not every ancestor it passes through on the way.
            let label = name.clone();
            let snap = snapshots
                .entry(id)
                .or_insert_with(|| {
                    (!bad.contains_key(&id.0))
                        .then(|| store.read_snapshot(&id).ok())
                        .flatten()
                })
                .clone();
            let Some(snap) = snap else {
                note(&mut damage, &bad, &mut missing, store, id.0, "snapshot", label);
                break;
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
            cur = snap.parent;
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
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn file_damage(e: Error) -> Damage {
    let (location, reason) = match &e {
        Error::DamagedFile { path, reason } => (path.display().to_string(), reason.clone()),
        other => (String::new(), other.to_string()),
    };
    Damage {
        id: String::new(),
        kind: "file".into(),
        problem: "damaged",
        location,
        reason,
        reached_by: Vec::new(),
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
