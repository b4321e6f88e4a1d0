//! Differences between two trees, descending only where ids differ.
//!
//! Two equal subtree ids mean equal contents (Merkle property), so the walk
//! skips them: the cost grows with the change, not with the tree. The walk
//! keeps its own stack (no recursion), so trees of any depth compare.
//!
//! Output: one [`Change`] per path whose presence, kind, bytes, mode or owner
//! differs, in tree order (depth first, names in byte order, a directory
//! before its contents). Directories are paths too: an empty directory that
//! appears is `Added`, a directory whose mode changed is `ModeChanged`. A
//! directory added or deleted together with its contents is also listed
//! (the checkout engine needs it), but [`Change::is_reported`] is false for
//! it: its files say everything, so `status`, `verify` and `diff` print only
//! the files, as git does.

use crate::error::Result;
use crate::id::{ObjectId, TreeId};
use crate::object::{EntryKind, LinkGroup, Meta, Tree, TreeEntry};
use crate::path::RelPath;
use crate::store::Store;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Present only on the new side.
    Added,
    /// Present only on the old side.
    Deleted,
    /// Different bytes (the kind, mode or owner may also differ).
    Modified,
    /// Same bytes, different kind (file ↔ symlink).
    KindChanged,
    /// Same bytes and kind, different permission bits (the owner may also differ).
    ModeChanged,
    /// Only the owner or group differs.
    OwnerChanged,
    /// Same everything, but the path is hard-linked to a different set of paths.
    LinksChanged,
}

impl ChangeKind {
    /// One-letter status: A, D, M, T as `git diff --name-status` prints them;
    /// P for a permission (mode) change, O for an owner change, L for hard links.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
            ChangeKind::Modified => 'M',
            ChangeKind::KindChanged => 'T',
            ChangeKind::ModeChanged => 'P',
            ChangeKind::OwnerChanged => 'O',
            ChangeKind::LinksChanged => 'L',
        }
    }

    /// snake_case name used in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Modified => "modified",
            ChangeKind::KindChanged => "kind_changed",
            ChangeKind::ModeChanged => "mode_changed",
            ChangeKind::OwnerChanged => "owner_changed",
            ChangeKind::LinksChanged => "links_changed",
        }
    }
}

/// One side of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Side {
    /// File, symlink or directory.
    pub kind: EntryKind,
    /// Blob id, or tree id for a directory.
    pub id: ObjectId,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits and owner.
    pub meta: Meta,
}

impl From<&TreeEntry> for Side {
    fn from(e: &TreeEntry) -> Self {
        Side {
            kind: e.kind,
            id: e.id,
            size: e.size,
            meta: e.meta,
        }
    }
}

impl Side {
    /// True for a directory with no entries.
    pub fn is_empty_dir(&self) -> bool {
        self.kind == EntryKind::Dir && self.id == Tree::empty_id().0
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// Plane-relative path.
    pub path: RelPath,
    /// What happened (the most significant difference).
    pub kind: ChangeKind,
    /// The entry on the old side.
    pub old: Option<Side>,
    /// The entry on the new side.
    pub new: Option<Side>,
}

impl Change {
    /// False for a directory added or deleted together with its contents
    /// (the contents are reported); true for everything else.
    pub fn is_reported(&self) -> bool {
        match (self.kind, &self.old, &self.new) {
            (ChangeKind::Added, _, Some(n)) if n.kind == EntryKind::Dir => n.is_empty_dir(),
            (ChangeKind::Deleted, Some(o), _) if o.kind == EntryKind::Dir => o.is_empty_dir(),
            _ => true,
        }
    }
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

    /// The store behind the overlay.
    pub fn store_ref(&self) -> &'a Store {
        self.store
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

/// Two trees being merge-walked at `prefix`: `i` and `j` are the next
/// entries of `a` and `b`.
struct Pair<'a> {
    a: Cow<'a, Tree>,
    b: Cow<'a, Tree>,
    prefix: RelPath,
    i: usize,
    j: usize,
}

/// What one step of a [`Pair`] found.
enum Step<'e> {
    Done,
    OnlyA(&'e TreeEntry),
    OnlyB(&'e TreeEntry),
    Both(&'e TreeEntry, &'e TreeEntry),
}

fn side_change(e: &TreeEntry, path: RelPath, kind: ChangeKind) -> Change {
    let side = Some(Side::from(e));
    Change {
        path,
        kind,
        old: if kind == ChangeKind::Deleted { side } else { None },
        new: if kind == ChangeKind::Added { side } else { None },
    }
}

/// Differences from one recorded state to another — tree `old` with its
/// hard-link groups `old_links`, to `new` with `new_links` — in tree order:
/// [`diff_trees`], plus a `LinksChanged` change for every path whose link
/// partners differ ([`add_link_changes`]).
///
/// # Errors
/// Store damage while loading a tree that differs.
pub fn diff_states(
    src: &TreeSource<'_>,
    (old, old_links): (&TreeId, &[LinkGroup]),
    (new, new_links): (&TreeId, &[LinkGroup]),
) -> Result<Vec<Change>> {
    let mut changes = diff_trees(src, old, new)?;
    add_link_changes(
        &mut changes,
        old_links,
        new_links,
        &|p| lookup_path(src, old, p),
        &|p| lookup_path(src, new, p),
    )?;
    Ok(changes)
}

/// Differences from tree `old` to tree `new`, in tree order.
///
/// # Errors
/// Store damage while loading a tree that differs.
pub fn diff_trees(src: &TreeSource<'_>, old: &TreeId, new: &TreeId) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    if old == new {
        return Ok(out);
    }
    let mut stack = vec![Pair {
        a: src.tree(old)?,
        b: src.tree(new)?,
        prefix: RelPath::root(),
        i: 0,
        j: 0,
    }];
    while let Some(Pair { a, b, prefix, i, j }) = stack.last_mut() {
        let step = match (a.entries.get(*i), b.entries.get(*j)) {
            (None, None) => Step::Done,
            (Some(x), None) => Step::OnlyA(x),
            (None, Some(y)) => Step::OnlyB(y),
            (Some(x), Some(y)) => match x.name.cmp(&y.name) {
                std::cmp::Ordering::Less => Step::OnlyA(x),
                std::cmp::Ordering::Greater => Step::OnlyB(y),
                std::cmp::Ordering::Equal => Step::Both(x, y),
            },
        };
        let push = match step {
            Step::Done => {
                stack.pop();
                continue;
            }
            Step::OnlyA(x) => {
                *i += 1;
                one_side(src, x, prefix, ChangeKind::Deleted, &mut out)?;
                None
            }
            Step::OnlyB(y) => {
                *j += 1;
                one_side(src, y, prefix, ChangeKind::Added, &mut out)?;
                None
            }
            Step::Both(x, y) => {
                *i += 1;
                *j += 1;
                both_sides(src, x, y, prefix, &mut out)?
            }
        };
        if let Some(p) = push {
            stack.push(p);
        }
    }
    Ok(out)
}

/// The changes for an entry present on both sides (`x` old, `y` new) at
/// `prefix`; returns the pair to walk next when both are directories whose
/// contents differ.
fn both_sides<'a>(
    src: &TreeSource<'a>,
    x: &TreeEntry,
    y: &TreeEntry,
    prefix: &RelPath,
    out: &mut Vec<Change>,
) -> Result<Option<Pair<'a>>> {
    let md = x.meta.diff(&y.meta);
    if x.id == y.id && x.kind == y.kind && !md.mode && !md.owner {
        return Ok(None);
    }
    let path = prefix.join(&x.name);
    let change = |kind| Change {
        path: path.clone(),
        kind,
        old: Some(x.into()),
        new: Some(y.into()),
    };
    match (x.kind == EntryKind::Dir, y.kind == EntryKind::Dir) {
        (true, true) => {
            if md.mode || md.owner {
                out.push(change(if md.mode {
                    ChangeKind::ModeChanged
                } else {
                    ChangeKind::OwnerChanged
                }));
            }
            if x.id == y.id {
                return Ok(None);
            }
            Ok(Some(Pair {
                a: src.tree(&x.tree_id())?,
                b: src.tree(&y.tree_id())?,
                prefix: path,
                i: 0,
                j: 0,
            }))
        }
        (false, false) => {
            out.push(change(if x.id != y.id {
                ChangeKind::Modified
            } else if x.kind != y.kind {
                ChangeKind::KindChanged
            } else if md.mode {
                ChangeKind::ModeChanged
            } else {
                ChangeKind::OwnerChanged
            }));
            Ok(None)
        }
        // A file became a directory or back: the old goes (all of it), the new comes.
        _ => {
            one_side(src, x, prefix, ChangeKind::Deleted, out)?;
            one_side(src, y, prefix, ChangeKind::Added, out)?;
            Ok(None)
        }
    }
}

/// Emits the change for an entry present on one side only, then one for
/// everything under it when it is a directory.
fn one_side(
    src: &TreeSource<'_>,
    e: &TreeEntry,
    prefix: &RelPath,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = prefix.join(&e.name);
    out.push(side_change(e, path.clone(), kind));
    if e.kind == EntryKind::Dir {
        walk(src, src.tree(&e.tree_id())?, path, &mut |parent, e| {
            out.push(side_change(e, parent.join(&e.name), kind))
        })?;
    }
    Ok(())
}

/// Visits every entry under `tree` (the directory at `prefix`) in tree
/// order, a directory before its contents, as `(its parent's path, entry)`;
/// an explicit stack, no recursion.
///
/// # Errors
/// Store damage while loading a tree.
pub fn walk<'a>(
    src: &TreeSource<'a>,
    tree: Cow<'a, Tree>,
    prefix: RelPath,
    visit: &mut dyn FnMut(&RelPath, &TreeEntry),
) -> Result<()> {
    let mut stack = vec![(tree, prefix, 0usize)];
    loop {
        let Some((t, prefix, i)) = stack.last_mut() else {
            return Ok(());
        };
        let Some(e) = t.entries.get(*i) else {
            stack.pop();
            continue;
        };
        *i += 1;
        visit(prefix, e);
        if e.kind == EntryKind::Dir {
            let (id, path) = (e.tree_id(), prefix.join(&e.name));
            stack.push((src.tree(&id)?, path, 0));
        }
    }
}

/// Adds a [`ChangeKind::LinksChanged`] change for every path present on both
/// sides, otherwise unchanged, whose set of hard-link partners differs
/// between `old` and `new` link groups. Keeps tree order.
///
/// `old_entries`/`new_entries` say which paths exist on each side (only
/// paths in a link group on either side are looked up).
pub fn add_link_changes(
    changes: &mut Vec<Change>,
    old: &[LinkGroup],
    new: &[LinkGroup],
    lookup_old: &dyn Fn(&RelPath) -> Result<Option<TreeEntry>>,
    lookup_new: &dyn Fn(&RelPath) -> Result<Option<TreeEntry>>,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let partners = |groups: &[LinkGroup]| -> BTreeMap<RelPath, Vec<RelPath>> {
        let mut m = BTreeMap::new();
        for g in groups {
            for p in g {
                m.insert(p.clone(), g.iter().filter(|q| *q != p).cloned().collect());
            }
        }
        m
    };
    let (po, pn) = (partners(old), partners(new));
    let changed: HashSet<RelPath> = changes.iter().map(|c| c.path.clone()).collect();
    let mut extra = Vec::new();
    let none: Vec<RelPath> = Vec::new();
    let all: std::collections::BTreeSet<&RelPath> = po.keys().chain(pn.keys()).collect();
    for p in all {
        if changed.contains(p) || po.get(p).unwrap_or(&none) == pn.get(p).unwrap_or(&none) {
            continue;
        }
        if let (Some(o), Some(n)) = (lookup_old(p)?, lookup_new(p)?) {
            extra.push(Change {
                path: p.clone(),
                kind: ChangeKind::LinksChanged,
                old: Some((&o).into()),
                new: Some((&n).into()),
            });
        }
    }
    if !extra.is_empty() {
        changes.extend(extra);
        changes.sort_by(|a, b| tree_order(&a.path, &b.path));
    }
    Ok(())
}

/// Tree order of two paths: compared name by name, so a directory's contents
/// come right after it and before its next sibling (`a`, `a/b`, `a.b`).
pub fn tree_order(a: &RelPath, b: &RelPath) -> std::cmp::Ordering {
    a.components().cmp(b.components())
}

/// Every entry under `root` as (path, side), in tree order (directories included,
/// before their contents).
///
/// # Errors
/// Store damage while loading a tree.
pub fn flatten(src: &TreeSource<'_>, root: &TreeId) -> Result<Vec<(RelPath, Side)>> {
    let mut out = Vec::new();
    walk(src, src.tree(root)?, RelPath::root(), &mut |parent, e| {
        out.push((parent.join(&e.name), Side::from(e)))
    })?;
    Ok(out)
}

/// The entry at `path` under `root`, if any (`None` for the root itself).
///
/// # Errors
/// Store damage while loading a tree.
pub fn lookup_path(src: &TreeSource<'_>, root: &TreeId, path: &RelPath) -> Result<Option<TreeEntry>> {
    let mut tree = src.tree(root)?;
    let parts: Vec<&[u8]> = path.components().collect();
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
