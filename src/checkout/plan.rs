//! Planning a checkout: which paths differ between the rescue state and the
//! target (restricted to a restore's paths, never a carve-out), and the
//! journal operations that make them equal, in the order
//! [`super::journal::Op`] documents; plus what the rescue saw at every path
//! an operation clobbers ([`super::apply::Expected`]).

use super::journal::{CheckoutKind, Op};
use super::{Request, apply};
use crate::diff::{Change, ChangeKind, TreeSource, diff_trees, lookup_path, tree_order};
use crate::error::Result;
use crate::id::TreeId;
use crate::object::{EntryKind, LinkGroup, Tree, TreeEntry};
use crate::path::RelPath;
use crate::scope::Scope;
use crate::store::Store;
use std::collections::{HashMap, HashSet};

/// The changes from the rescue state to the target, restricted to the
/// request's paths (a restore) and to what the scope covers.
///
/// # Errors
/// Store damage while reading trees.
pub fn plan_changes(store: &Store, scope: &Scope, req: &Request) -> Result<Vec<Change>> {
    let src = TreeSource::store(store);
    let mut changes = if req.kind == CheckoutKind::Rollback || req.paths.iter().any(RelPath::is_root) {
        diff_trees(&src, &req.rescue_root, &req.target_root)?
    } else {
        let mut out = Vec::new();
        let mut seen_dirs = HashSet::new();
        for p in &req.paths {
            // Directories on the way that the target has and the plane lacks are created.
            for a in p.ancestors() {
                let old = lookup_path(&src, &req.rescue_root, &a)?;
                let new = lookup_path(&src, &req.target_root, &a)?;
                if let Some(n) = new
                    && n.kind == EntryKind::Dir
                    && old.as_ref().is_none_or(|o| o.kind != EntryKind::Dir)
                    && seen_dirs.insert(a.clone())
                {
                    if let Some(o) = &old {
                        out.push(Change {
                            path: a.clone(),
                            kind: ChangeKind::Deleted,
                            old: Some(o.into()),
                            new: None,
                        });
                    }
                    out.push(Change {
                        path: a.clone(),
                        kind: ChangeKind::Added,
                        old: None,
                        new: Some((&n).into()),
                    });
                }
            }
            let old = lookup_path(&src, &req.rescue_root, p)?;
            let new = lookup_path(&src, &req.target_root, p)?;
            out.extend(diff_entry(&src, p, old, new)?);
        }
        out
    };
    // Hard links: paths whose set of link partners differs (to be relinked or split).
    let mut links = Vec::new();
    crate::diff::add_link_changes(
        &mut links,
        &req.rescue_links,
        &req.target_links,
        &|p| lookup_path(&src, &req.rescue_root, p),
        &|p| lookup_path(&src, &req.target_root, p),
    )?;
    let have: HashSet<RelPath> = changes.iter().map(|c| c.path.clone()).collect();
    let extra: Vec<Change> = links
        .into_iter()
        .filter(|c| req.covers(&c.path) && !have.contains(&c.path))
        .collect();
    if !extra.is_empty() {
        changes.extend(extra);
        changes.sort_by(|a, b| tree_order(&a.path, &b.path));
    }
    changes.retain(|c| !scope.is_excluded(&c.path));
    Ok(changes)
}

/// What the rescue saw at the paths the ops clobber (see [`apply::Expected`]).
pub(super) fn expectations(
    changes: &[Change],
    ops: &[Op],
    req: &Request,
    anchors: &HashMap<usize, (RelPath, apply::Seen)>,
) -> apply::Expected {
    let stat_of = |p: &RelPath| {
        req.rescue_cache.get(p).map(|e| apply::Seen {
            stat: e.stat,
            id: e.id,
            racy: req.rescue_cache.is_racy(&e.stat),
        })
    };
    let mut exp = apply::Expected::default();
    for c in changes {
        let old_file = c.old.filter(|o| o.kind != EntryKind::Dir);
        match (&old_file, &c.new) {
            (_, Some(n)) if n.kind != EntryKind::Dir => match old_file {
                None => {
                    exp.write.insert(c.path.clone(), None);
                }
                Some(_) => {
                    if let Some(st) = stat_of(&c.path) {
                        exp.write.insert(c.path.clone(), Some(st));
                    }
                }
            },
            (Some(_), None) | (Some(_), Some(_)) => {
                if let Some(st) = stat_of(&c.path) {
                    exp.remove.insert(c.path.clone(), st);
                }
            }
            _ => {}
        }
    }
    // A restored hard-link member relinked without a change of its own.
    for op in ops {
        if let Op::Link { path, .. } = op
            && !exp.write.contains_key(path)
            && let Some(st) = stat_of(path)
        {
            exp.write.insert(path.clone(), Some(st));
        }
    }
    for (path, seen) in anchors.values() {
        exp.link_to.insert(path.clone(), *seen);
    }
    exp
}

/// The changes at and under `path` from entry `old` to entry `new`.
fn diff_entry(
    src: &TreeSource<'_>,
    path: &RelPath,
    old: Option<TreeEntry>,
    new: Option<TreeEntry>,
) -> Result<Vec<Change>> {
    let parent = path.parent().unwrap_or_default();
    // One-entry trees at the parent: the tree walk does the rest.
    let wrap = |e: Option<TreeEntry>| Tree {
        entries: e.into_iter().collect(),
    };
    let (a, b) = (wrap(old), wrap(new));
    let mut overlay = HashMap::new();
    let (ida, _) = a.encode_with_id();
    let (idb, _) = b.encode_with_id();
    overlay.insert(ida, a);
    overlay.insert(idb, b);
    let with = TreeSource::with_overlay(src.store_ref(), &overlay);
    let mut changes = diff_trees(&with, &ida, &idb)?;
    for c in &mut changes {
        let mut p = parent.clone();
        for part in c.path.components() {
            p = p.join(part);
        }
        c.path = p;
    }
    Ok(changes)
}

/// Each path of `links` with its group.
fn groups_by_path(links: &[LinkGroup]) -> HashMap<&RelPath, &LinkGroup> {
    links.iter().flat_map(|g| g.iter().map(move |p| (p, g))).collect()
}

/// Journal operations for `changes` (see [`Op`] for the order), with hard
/// links per the target's groups. `target_legacy` says the target was converted from store
/// format 1, which did not record empty directories: one that is empty on
/// disk is then left in place rather than removed.
///
/// `anchors` (a restore): for a target link group (by index) with members both
/// inside and outside the restored paths, an outside member that already holds
/// the group's bytes, mode and owner on disk; the restored members are linked to it.
pub(super) fn plan_ops(
    changes: &[Change],
    req: &Request,
    target_legacy: bool,
    anchors: &HashMap<usize, (RelPath, apply::Seen)>,
) -> Vec<Op> {
    let mut removes = Vec::new();
    let mut rmdirs = Vec::new();
    let mut mkdirs = Vec::new();
    let mut writes: Vec<Op> = Vec::new();
    let mut file_meta = Vec::new();
    let mut dir_meta = Vec::new();
    // A file that leaves a hard-link group (the target does not group it
    // with the same paths) is written as a file of its own even when only
    // its mode or owner changes: set in place, they would change every
    // other name of the inode too, files the target leaves as they are.
    let rescue_groups = groups_by_path(&req.rescue_links);
    let target_groups = groups_by_path(&req.target_links);
    let leaves_group = |p: &RelPath| {
        rescue_groups.get(p).is_some_and(|g| {
            target_groups
                .get(p)
                .is_none_or(|t| t.len() != g.len() || !t.iter().all(|x| g.contains(x)))
        })
    };
    for c in changes {
        match (&c.old, &c.new) {
            (Some(o), None) if o.kind == EntryKind::Dir => {
                if !(target_legacy && o.is_empty_dir()) {
                    rmdirs.push(Op::RemoveDir { path: c.path.clone() });
                }
            }
            (Some(_), None) => removes.push(Op::Remove { path: c.path.clone() }),
            (None, Some(n)) if n.kind == EntryKind::Dir => {
                mkdirs.push(Op::MakeDir {
                    path: c.path.clone(),
                    meta: n.meta,
                });
                dir_meta.push(Op::SetMeta {
                    path: c.path.clone(),
                    kind: EntryKind::Dir,
                    meta: n.meta,
                });
            }
            (_, Some(n)) => match c.kind {
                ChangeKind::ModeChanged | ChangeKind::OwnerChanged
                    if !(n.kind == EntryKind::File && leaves_group(&c.path)) =>
                {
                    let op = Op::SetMeta {
                        path: c.path.clone(),
                        kind: n.kind,
                        meta: n.meta,
                    };
                    if n.kind == EntryKind::Dir {
                        dir_meta.push(op);
                    } else {
                        file_meta.push(op);
                    }
                }
                _ => writes.push(Op::Write {
                    path: c.path.clone(),
                    kind: n.kind,
                    id: n.id,
                    size: n.size,
                    meta: merge_legacy(&n.meta, c.old.as_ref().map(|o| &o.meta)),
                }),
            },
            (None, None) => {}
        }
    }
    // A group's first path whose only change is its partners keeps its inode:
    // the others are linked to it.
    let firsts: HashSet<&RelPath> = req.target_links.iter().filter_map(|g| g.first()).collect();
    let links_only: HashSet<&RelPath> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::LinksChanged)
        .map(|c| &c.path)
        .collect();
    writes.retain(|w| !(firsts.contains(w.path()) && links_only.contains(w.path())));
    // Hard links: a member of a target group is linked to the group's first
    // path when that path is rewritten or the group is new.
    let written: HashSet<RelPath> = writes.iter().map(|w| w.path().clone()).collect();
    let old_groups: HashSet<&LinkGroup> = req.rescue_links.iter().collect();
    let mut links = Vec::new();
    let mut linked = HashSet::new();
    for (gi, g) in req.target_links.iter().enumerate() {
        let members: Vec<&RelPath> = g.iter().filter(|p| req.covers(p)).collect();
        if let Some((anchor, _)) = anchors.get(&gi) {
            // Link every restored member to the outside member that is already right
            // (apply skips a member that already is that inode).
            for m in &members {
                links.push(Op::Link {
                    path: (*m).clone(),
                    to: anchor.clone(),
                });
                linked.insert((*m).clone());
            }
            continue;
        }
        if members.len() < 2 {
            continue;
        }
        let first = members[0];
        let regroup = written.contains(first) || !old_groups.contains(g);
        for m in &members[1..] {
            if regroup || written.contains(*m) {
                links.push(Op::Link {
                    path: (*m).clone(),
                    to: first.clone(),
                });
                linked.insert((*m).clone());
            }
        }
    }
    writes.retain(|w| !linked.contains(w.path()));
    file_meta.retain(|w| !linked.contains(w.path()));
    let by_tree = |a: &Op, b: &Op| tree_order(a.path(), b.path());
    removes.sort_by(by_tree);
    rmdirs.sort_by(by_tree);
    rmdirs.reverse();
    mkdirs.sort_by(by_tree);
    writes.sort_by(by_tree);
    file_meta.sort_by(by_tree);
    dir_meta.sort_by(by_tree);
    dir_meta.reverse();
    let mut ops = removes;
    ops.extend(rmdirs);
    ops.extend(mkdirs);
    ops.extend(writes);
    ops.extend(links);
    ops.extend(file_meta);
    ops.extend(dir_meta);
    ops
}

/// The meta to write a target entry with: the target's, except that what a
/// format-1 target did not record (the permission bits other than execute,
/// the owner) is taken from what is replaced, when that is known.
fn merge_legacy(new: &crate::object::Meta, old: Option<&crate::object::Meta>) -> crate::object::Meta {
    use crate::object::Meta;
    let Some(old) = old.filter(|o| !o.is_legacy_mode() && o.owner_known()) else {
        return *new;
    };
    let mut m = *new;
    if new.is_legacy_mode() {
        // The execute bit as recorded, the other bits as they were.
        m.mode = super::stage::want_mode(old.perm(), new);
    }
    if !new.owner_known() {
        m.uid = old.uid;
        m.gid = old.gid;
    }
    if m.mode & Meta::LEGACY_MODE == 0 && m.owner_known() {
        m
    } else {
        *new
    }
}

/// True when the tree `root` was converted from store format 1 (its entries
/// carry the legacy mode flag).
pub(super) fn is_legacy_tree(store: &Store, root: &TreeId) -> Result<bool> {
    let t = store.read_tree(root)?;
    Ok(t.entries.iter().any(|e| e.meta.is_legacy_mode()))
}

/// For a restore: per target link group with members on both sides of the
/// restored paths, the first outside member whose file on disk already is the
/// target's (bytes, mode, owner) — what the restored members are linked to.
///
/// # Errors
/// Store damage while reading the target's trees.
pub(super) fn link_anchors(
    store: &Store,
    scope: &Scope,
    req: &Request,
) -> Result<HashMap<usize, (RelPath, apply::Seen)>> {
    let mut out = HashMap::new();
    if req.kind != CheckoutKind::Restore {
        return Ok(out);
    }
    let src = TreeSource::store(store);
    for (gi, g) in req.target_links.iter().enumerate() {
        if !g.iter().any(|p| req.covers(p)) {
            continue;
        }
        for o in g.iter().filter(|p| !req.covers(p) && !scope.is_excluded(p)) {
            let Some(want) = lookup_path(&src, &req.target_root, o)? else {
                continue;
            };
            let read_ns = crate::store::index::now_ns();
            if let Some(st) = file_as_recorded(scope, o, &want) {
                let stat = crate::store::index::Stat::from_raw(&st);
                let seen = apply::Seen {
                    stat,
                    id: want.id,
                    racy: stat.is_racy(read_ns),
                };
                out.insert(gi, (o.clone(), seen));
                break;
            }
        }
    }
    Ok(out)
}

/// The stat of the file at `p` when on disk it is exactly `want`: a regular
/// file of its size, mode, owner and bytes (re-hashed). `None` otherwise, or
/// when it cannot be read.
pub(crate) fn file_as_recorded(scope: &Scope, p: &RelPath, want: &TreeEntry) -> Option<crate::fsys::Stat> {
    let dir = scope.open_dir(&p.parent()?).ok()?;
    let name = p.file_name()?;
    let st = dir.stat(name).ok()?;
    let md = want.meta.diff(&crate::object::Meta::from_stat(
        st.st_mode as u32,
        st.st_uid,
        st.st_gid,
        EntryKind::File,
    ));
    if crate::fsys::EntryType::from_mode(st.st_mode as u32) != crate::fsys::EntryType::File
        || st.st_size as u64 != want.size
        || md.mode
        || md.owner
    {
        return None;
    }
    let shown = scope.shown(p);
    match crate::hash::hash_file(&dir, name, &shown, None) {
        Ok((id, st)) if id == want.id => Some(st),
        _ => None,
    }
}

/// Checks the target's hard-link groups against its tree: every member a
/// regular file, all members of a group the same bytes, mode and owner (they
/// are one inode). A snapshot whose groups say otherwise is damaged; found
/// before anything is written.
///
/// # Errors
/// [`crate::Error::CorruptObject`] naming the target snapshot.
pub(super) fn check_links(store: &Store, req: &Request) -> Result<()> {
    let src = TreeSource::store(store);
    for (i, g) in req.target_links.iter().enumerate() {
        let mut first: Option<TreeEntry> = None;
        for p in g {
            let e = lookup_path(&src, &req.target_root, p)?;
            let ok = match (&e, &first) {
                (Some(e), _) if e.kind != EntryKind::File => false,
                (Some(e), Some(f)) => e.id == f.id && e.meta == f.meta,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !ok {
                return Err(crate::Error::CorruptObject {
                    id: req.target.to_hex(),
                    location: "snapshot body".into(),
                    reason: format!(
                        "hard-link group {i} names {p}, which is not a file of the same bytes, mode and owner as the group's others"
                    ),
                });
            }
            if first.is_none() {
                first = e;
            }
        }
    }
    Ok(())
}
