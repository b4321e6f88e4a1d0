//! `cplane upgrade`: converts a store of format 1 to format 2 in place.
//!
//! Format 1 trees recorded only whether a file was executable (no other
//! permission bits, no owner, no empty directories) and carried an unused
//! `owner` string per entry; its ids used the tags `tree`/`snapshot`. The
//! upgrade re-encodes every tree and snapshot that a ref reaches (blobs are
//! unchanged: their ids are the plain BLAKE3 of the bytes in both formats):
//!
//! * a file's mode becomes [`Meta::LEGACY_MODE`] plus the execute bit it had,
//!   its owner [`Meta::UNKNOWN_ID`] — what format 1 did not record stays
//!   unknown, and is neither compared nor restored, until the next snapshot
//!   records it;
//! * snapshots keep their plane, name, time, message and counts; parents and
//!   rollback targets point at the converted snapshots.
//!
//! Crash safety: new objects are written (and made durable) before any ref
//! moves; each ref then moves atomically to its converted snapshot, which
//! reads correctly in either format, so after a crash every ref names a
//! valid snapshot; `FORMAT` says 2 only once every ref has moved. Running
//! the upgrade again finishes the job (conversion is deterministic, and
//! objects already in format 2 map to themselves). Format-1 objects stay in
//! the packs, unreachable.

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::id::{ObjectId, SnapshotId, TreeId};
use crate::object::{EntryKind, Meta, ObjectKind, Snapshot, SnapshotKind, Tree, TreeEntry};
use crate::store::{FORMAT_VERSION, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Format 1's tree entry kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum KindV1 {
    File,
    Executable,
    Symlink,
    Dir,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EntryV1 {
    name: Vec<u8>,
    kind: KindV1,
    id: ObjectId,
    size: u64,
    owner: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TreeV1 {
    entries: Vec<EntryV1>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum SnapshotKindV1 {
    Init,
    Checkpoint,
    Rescue,
    Rollback { target: SnapshotId },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotV1 {
    plane: String,
    name: String,
    root: TreeId,
    parent: Option<SnapshotId>,
    kind: SnapshotKindV1,
    time_unix_ns: i64,
    message: String,
    files: u64,
    bytes: u64,
}

fn corrupt(id: ObjectId, what: &str, e: impl std::fmt::Display) -> Error {
    Error::CorruptObject {
        id: id.to_hex(),
        location: format!("format-1 {what} body"),
        reason: format!("does not decode: {e}"),
    }
}

/// Decodes a tree or snapshot body of either encoding version, checking it
/// (fsck uses this for every record).
///
/// # Errors
/// [`Error::CorruptObject`] when it does not decode.
pub fn decode_any(kind: ObjectKind, version: u8, id: ObjectId, body: &[u8]) -> Result<()> {
    match (kind, version) {
        (ObjectKind::Tree, 1) => postcard::from_bytes::<TreeV1>(body)
            .map(|_| ())
            .map_err(|e| corrupt(id, "tree", e)),
        (ObjectKind::Snapshot, 1) => postcard::from_bytes::<SnapshotV1>(body)
            .map(|_| ())
            .map_err(|e| corrupt(id, "snapshot", e)),
        (ObjectKind::Tree, _) => Tree::decode(id, body).map(|_| ()),
        (ObjectKind::Snapshot, _) => Snapshot::decode(id, body).map(|_| ()),
        (ObjectKind::Blob, _) => Ok(()),
    }
}

/// What an upgrade did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpgradeReport {
    /// The format the store had.
    pub from: u32,
    /// The format it has now.
    pub to: u32,
    /// Snapshots converted.
    pub snapshots: u64,
    /// Trees converted.
    pub trees: u64,
    /// Refs moved, as (plane, ref name, old id, new id).
    pub refs: Vec<(String, String, String, String)>,
}

struct Converter<'s> {
    store: &'s Store,
    trees: HashMap<TreeId, TreeId>,
    snapshots: HashMap<SnapshotId, SnapshotId>,
}

impl Converter<'_> {
    /// Converts the tree `root` and everything under it (explicit stack, post-order).
    fn tree(&mut self, w: &crate::store::pack::ObjectWriter<'_>, root: TreeId) -> Result<TreeId> {
        // (id, decoded v1 tree, children converted so far?)
        let mut stack: Vec<(TreeId, Option<TreeV1>)> = vec![(root, None)];
        while let Some((id, decoded)) = stack.pop() {
            if self.trees.contains_key(&id) {
                continue;
            }
            let t = match decoded {
                Some(t) => t,
                None => {
                    let (body, version) = self.store.read_versioned(&id.0, ObjectKind::Tree)?;
                    if version != 1 {
                        Tree::decode(id.0, &body)?;
                        self.trees.insert(id, id);
                        continue;
                    }
                    postcard::from_bytes::<TreeV1>(&body).map_err(|e| corrupt(id.0, "tree", e))?
                }
            };
            let pending: Vec<TreeId> = t
                .entries
                .iter()
                .filter(|e| e.kind == KindV1::Dir && !self.trees.contains_key(&TreeId(e.id)))
                .map(|e| TreeId(e.id))
                .collect();
            if !pending.is_empty() {
                stack.push((id, Some(t)));
                stack.extend(pending.into_iter().map(|p| (p, None)));
                continue;
            }
            let legacy = |exec: bool| Meta {
                mode: Meta::LEGACY_MODE | if exec { 0o100 } else { 0 },
                uid: Meta::UNKNOWN_ID,
                gid: Meta::UNKNOWN_ID,
            };
            let tree = Tree {
                entries: t
                    .entries
                    .iter()
                    .map(|e| {
                        let (kind, meta, id) = match e.kind {
                            KindV1::File => (EntryKind::File, legacy(false), e.id),
                            KindV1::Executable => (EntryKind::File, legacy(true), e.id),
                            KindV1::Symlink => (
                                EntryKind::Symlink,
                                Meta {
                                    mode: 0,
                                    uid: Meta::UNKNOWN_ID,
                                    gid: Meta::UNKNOWN_ID,
                                },
                                e.id,
                            ),
                            KindV1::Dir => (EntryKind::Dir, legacy(true), self.trees[&TreeId(e.id)].0),
                        };
                        TreeEntry {
                            name: e.name.clone(),
                            kind,
                            meta,
                            id,
                            size: e.size,
                        }
                    })
                    .collect(),
            };
            tree.check(id.0)?;
            let (new_id, body) = tree.encode_with_id();
            w.add(ObjectKind::Tree, new_id.0, &body)?;
            self.trees.insert(id, new_id);
        }
        Ok(self.trees[&root])
    }

    /// Converts snapshot `start`, its ancestors and rollback targets (explicit worklist).
    fn snapshot(&mut self, w: &crate::store::pack::ObjectWriter<'_>, start: SnapshotId) -> Result<SnapshotId> {
        let mut stack = vec![start];
        while let Some(&id) = stack.last() {
            if self.snapshots.contains_key(&id) {
                stack.pop();
                continue;
            }
            let (body, version) = self.store.read_versioned(&id.0, ObjectKind::Snapshot)?;
            if version != 1 {
                Snapshot::decode(id.0, &body)?;
                self.snapshots.insert(id, id);
                stack.pop();
                continue;
            }
            let s: SnapshotV1 = postcard::from_bytes(&body).map_err(|e| corrupt(id.0, "snapshot", e))?;
            let mut deps = Vec::new();
            if let Some(p) = s.parent
                && !self.snapshots.contains_key(&p)
            {
                deps.push(p);
            }
            if let SnapshotKindV1::Rollback { target } = s.kind
                && !self.snapshots.contains_key(&target)
            {
                deps.push(target);
            }
            if !deps.is_empty() {
                stack.extend(deps);
                continue;
            }
            let root = self.tree(w, s.root)?;
            let new = Snapshot {
                plane: s.plane,
                name: s.name,
                root,
                parent: s.parent.map(|p| self.snapshots[&p]),
                kind: match s.kind {
                    SnapshotKindV1::Init => SnapshotKind::Init,
                    SnapshotKindV1::Checkpoint => SnapshotKind::Checkpoint,
                    SnapshotKindV1::Rescue => SnapshotKind::Rescue,
                    SnapshotKindV1::Rollback { target } => SnapshotKind::Rollback {
                        target: self.snapshots[&target],
                    },
                },
                time_unix_ns: s.time_unix_ns,
                message: s.message,
                files: s.files,
                bytes: s.bytes,
                links: Vec::new(),
                ownership: None,
                ledger: None,
            };
            let (new_id, body) = new.encode_with_id();
            w.add(ObjectKind::Snapshot, new_id.0, &body)?;
            self.snapshots.insert(id, new_id);
            stack.pop();
        }
        Ok(self.snapshots[&start])
    }
}

/// Upgrades the store at `root` to the current format. A store already
/// current is left alone (`from == to`).
///
/// # Errors
/// [`Error::NewerFormat`]; [`Error::Locked`]; [`Error::LegacyJournal`] when a
/// format-1 rollback was interrupted; store damage (a ref that reaches a
/// corrupt or missing object: nothing is changed); I/O errors.
pub fn upgrade(root: &Path, interrupt: &AtomicBool) -> Result<UpgradeReport> {
    let (mut store, from) = Store::open_any_format(root)?;
    let mut report = UpgradeReport {
        from,
        to: FORMAT_VERSION,
        ..UpgradeReport::default()
    };
    if from == FORMAT_VERSION {
        return Ok(report);
    }
    let _lock = store.lock(interrupt)?;
    let planes: Vec<String> = store.config().planes.iter().map(|p| p.name.clone()).collect();
    let mut refs: Vec<(String, String, SnapshotId)> = Vec::new();
    for p in &planes {
        let jp = crate::checkout::journal_path(&store, p);
        if jp.exists() {
            return Err(Error::LegacyJournal {
                plane: p.clone(),
                journal: jp,
            });
        }
        if let Some(h) = store.head(p)? {
            refs.push((p.clone(), "HEAD".into(), h));
        }
        for (name, id) in store.checkpoints(p)? {
            refs.push((p.clone(), name, id));
        }
    }
    let (mapped, _) = store.transaction(|w| {
        let mut c = Converter {
            store: w.store(),
            trees: HashMap::new(),
            snapshots: HashMap::new(),
        };
        let mut mapped = Vec::new();
        for (plane, name, id) in &refs {
            mapped.push((plane.clone(), name.clone(), *id, c.snapshot(w, *id)?));
        }
        report.snapshots = c.snapshots.iter().filter(|(a, b)| a != b).count() as u64;
        report.trees = c.trees.iter().filter(|(a, b)| a != b).count() as u64;
        Ok(mapped)
    })?;
    // Objects are durable; now the refs, one atomic replace each.
    for (plane, name, old, new) in mapped {
        if old != new {
            if name == "HEAD" {
                store.set_head(&plane, &new)?;
            } else {
                store.set_checkpoint(&plane, &name, &new)?;
            }
            report.refs.push((plane, name, old.to_hex(), new.to_hex()));
        }
    }
    // Format-1 stat caches are ignored by format 2; remove them.
    for p in &planes {
        let _ = std::fs::remove_file(store.plane_dir(p).join("index"));
    }
    write_atomic(
        &store.dir().join("FORMAT"),
        crate::store::format_text().as_bytes(),
        &store.tmp_dir(),
    )?;
    Ok(report)
}
