//! What one side of a transfer may lack: the objects a snapshot reaches
//! that are not already reached, at the same path, from a base snapshot the
//! other side holds whole. The walk descends only where tree ids differ, so
//! it costs what changed between the two, not the size of the tree (as
//! git's push negotiation does, and a chunk-index backup does not).

use crate::error::Result;
use crate::id::{ObjectId, SnapshotId, TreeId};
use crate::object::{EntryKind, Snapshot, Tree};
use crate::store::Store;
use std::collections::HashSet;

/// Adds to `out` the ids reachable from snapshot `id` (its object, trees,
/// blobs, ownership blob and package metadata) that `base` does not reach
/// at the same path; `seen` carries ids already listed across calls. Every
/// tree of `id` on the way must be in `store` (a missing one is
/// [`crate::Error::MissingObject`]); `base`'s trees are read when present,
/// and a missing one is treated as empty (more is listed, never less).
pub(crate) fn new_objects(
    store: &Store,
    id: SnapshotId,
    snap: &Snapshot,
    base: Option<&Snapshot>,
    seen: &mut HashSet<ObjectId>,
    out: &mut Vec<ObjectId>,
) -> Result<()> {
    if seen.insert(id.0) {
        out.push(id.0);
    }
    if let Some(o) = snap.ownership
        && base.is_none_or(|b| b.ownership != Some(o))
        && seen.insert(o)
    {
        out.push(o);
    }
    let base_root = base.map(|b| b.root);
    let mut stack: Vec<(TreeId, Option<TreeId>)> = vec![(snap.root, base_root)];
    while let Some((t, b)) = stack.pop() {
        if b == Some(t) || !seen.insert(t.0) {
            continue;
        }
        out.push(t.0);
        let tree = store.read_tree(&t)?;
        let btree: Option<Tree> = b.and_then(|b| store.read_tree(&b).ok());
        for e in &tree.entries {
            let be = btree.as_ref().and_then(|bt| {
                bt.entries
                    .binary_search_by(|x| x.name.as_slice().cmp(e.name.as_slice()))
                    .ok()
                    .map(|i| &bt.entries[i])
            });
            if be.is_some_and(|be| be.id == e.id && be.kind == e.kind) {
                continue;
            }
            if e.kind == EntryKind::Dir {
                let bsub = be.filter(|be| be.kind == EntryKind::Dir).map(|be| be.tree_id());
                stack.push((e.tree_id(), bsub));
            } else if seen.insert(e.id) {
                out.push(e.id);
            }
        }
    }
    // Package metadata no tree names (gc keeps it the same way).
    let reg = crate::gc::packages_registry(store, snap.root)?;
    let base_reg = match base {
        Some(b) => crate::gc::packages_registry(store, b.root).ok().flatten(),
        None => None,
    };
    if let Some(reg) = reg
        && Some(reg) != base_reg
    {
        for digest in crate::gc::manifest_digests(store, &reg) {
            if store.contains(&digest) && seen.insert(digest) {
                out.push(digest);
            }
            if let Some((Some(att), _)) = crate::gc::manifest_refs(store, &digest)
                && store.contains(&att)
                && seen.insert(att)
            {
                out.push(att);
            }
        }
    }
    Ok(())
}
