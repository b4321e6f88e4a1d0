//! Differences between two trees, descending only where ids differ.
//!
//! Two equal subtree ids mean equal contents (Merkle property), so the walk
//! skips them: the cost grows with the change, not with the tree. Output is
//! one [`Change`] per file or symlink path, in tree order (depth first, names
//! in byte order).

use crate::error::Result;
use crate::id::{ObjectId, TreeId};
use crate::object::{EntryKind, Tree, TreeEntry};
use crate::store::Store;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ChangeKind {
    /// Present only on the new side.
    Added,
    /// Present only on the old side.
    Deleted,
    /// Different bytes (the kind may also differ).
    Modified,
    /// Same bytes, different kind (file, executable, symlink).
    KindChanged,
}

impl ChangeKind {
    /// One-letter status, as `git diff --name-status` prints: A, D, M, T.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
            ChangeKind::Modified => 'M',
            ChangeKind::KindChanged => 'T',
        }
    }
}

/// One side of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Side {
    /// File, executable or symlink.
    pub kind: EntryKind,
    /// Blob id.
    pub id: ObjectId,
    /// Size in bytes.
    pub size: u64,
}

impl From<&TreeEntry> for Side {
    fn from(e: &TreeEntry) -> Self {
        Side {
            kind: e.kind,
            id: e.id,
            size: e.size,
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// Plane-relative path, `/`-separated bytes.
    pub path: Vec<u8>,
    /// What happened.
    pub kind: ChangeKind,
    /// The entry on the old side.
    pub old: Option<Side>,
    /// The entry on the new side.
    pub new: Option<Side>,
}

/// Where trees come from: the store, optionally overlaid with in-memory trees
/// (a scanned working tree that was not stored).
pub struct TreeSource<'a> {
    store: &'a Store,
    overlay: Option<&'a HashMap<TreeId, Tree>>,
}

impl<'a> TreeSource<'a> {
    /// Trees from the store only.
    pub fn store(store: &'a Store) -> Self {
        TreeSource { store, overlay: None }
    }

    /// Trees from `overlay` first, then the store.
    pub fn with_overlay(store: &'a Store, overlay: &'a HashMap<TreeId, Tree>) -> Self {
        TreeSource {
            store,
            overlay: Some(overlay),
        }
    }

    /// Loads one tree.
    ///
    /// # Errors
    /// [`crate::Error::MissingObject`] or [`crate::Error::CorruptObject`].
    pub fn tree(&self, id: &TreeId) -> Result<Cow<'a, Tree>> {
        if let Some(t) = self.overlay.and_then(|o| o.get(id)) {
            return Ok(Cow::Borrowed(t));
        }
        self.store.read_tree(id).map(Cow::Owned)
    }
}

/// Differences from tree `old` to tree `new`.
///
/// # Errors
/// Store damage while loading a tree that differs.
pub fn diff_trees(src: &TreeSource<'_>, old: &TreeId, new: &TreeId) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    if old != new {
        let (a, b) = (src.tree(old)?, src.tree(new)?);
        diff_dir(src, &a, &b, &[], &mut out)?;
    }
    Ok(out)
}

use crate::object::join_path as join;

fn diff_dir(src: &TreeSource<'_>, a: &Tree, b: &Tree, prefix: &[u8], out: &mut Vec<Change>) -> Result<()> {
    let (mut i, mut j) = (0, 0);
    while i < a.entries.len() || j < b.entries.len() {
        let ord = match (a.entries.get(i), b.entries.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                side_only(src, &a.entries[i], prefix, ChangeKind::Deleted, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                side_only(src, &b.entries[j], prefix, ChangeKind::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&a.entries[i], &b.entries[j]);
                i += 1;
                j += 1;
                if x.id == y.id && x.kind == y.kind {
                    continue;
                }
                let path = join(prefix, &x.name);
                match (x.kind == EntryKind::Dir, y.kind == EntryKind::Dir) {
                    (true, true) => {
                        let (ta, tb) = (src.tree(&x.tree_id())?, src.tree(&y.tree_id())?);
                        diff_dir(src, &ta, &tb, &path, out)?;
                    }
                    (true, false) => {
                        side_only(src, x, prefix, ChangeKind::Deleted, out)?;
                        side_only(src, y, prefix, ChangeKind::Added, out)?;
                    }
                    (false, true) => {
                        side_only(src, x, prefix, ChangeKind::Deleted, out)?;
                        side_only(src, y, prefix, ChangeKind::Added, out)?;
                    }
                    (false, false) => out.push(Change {
                        path,
                        kind: if x.id != y.id {
                            ChangeKind::Modified
                        } else {
                            ChangeKind::KindChanged
                        },
                        old: Some(x.into()),
                        new: Some(y.into()),
                    }),
                }
            }
        }
    }
    Ok(())
}

/// Emits every file under an entry present on one side only.
fn side_only(
    src: &TreeSource<'_>,
    e: &TreeEntry,
    prefix: &[u8],
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = join(prefix, &e.name);
    if e.kind == EntryKind::Dir {
        let t = src.tree(&e.tree_id())?;
        for child in &t.entries {
            side_only(src, child, &path, kind, out)?;
        }
        return Ok(());
    }
    let side = Some(Side::from(e));
    out.push(Change {
        path,
        kind,
        old: if kind == ChangeKind::Deleted { side } else { None },
        new: if kind == ChangeKind::Added { side } else { None },
    });
    Ok(())
}

/// Every file and symlink under `root` as (path, side), in tree order.
///
/// # Errors
/// Store damage while loading a tree.
pub fn flatten(src: &TreeSource<'_>, root: &TreeId) -> Result<Vec<(Vec<u8>, Side)>> {
    let mut out = Vec::new();
    fn walk(src: &TreeSource<'_>, id: &TreeId, prefix: &[u8], out: &mut Vec<(Vec<u8>, Side)>) -> Result<()> {
        let t = src.tree(id)?;
        for e in &t.entries {
            let path = join(prefix, &e.name);
            if e.kind == EntryKind::Dir {
                walk(src, &e.tree_id(), &path, out)?;
            } else {
                out.push((path, Side::from(e)));
            }
        }
        Ok(())
    }
    walk(src, root, &[], &mut out)?;
    Ok(out)
}

/// The entry at `path` (`/`-separated) under `root`, if any.
///
/// # Errors
/// Store damage while loading a tree.
pub fn lookup_path(src: &TreeSource<'_>, root: &TreeId, path: &[u8]) -> Result<Option<TreeEntry>> {
    let mut tree = src.tree(root)?;
    let parts: Vec<&[u8]> = path.split(|&c| c == b'/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(e) = tree.get(part).cloned() else {
            return Ok(None);
        };
        if i + 1 == parts.len() {
            return Ok(Some(e));
        }
        if e.kind != EntryKind::Dir {
            return Ok(None);
        }
        tree = src.tree(&e.tree_id())?;
    }
    Ok(None)
}
