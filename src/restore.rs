//! Restore: make some paths of a plane exactly as a snapshot has them, like
//! `git restore --source=REF PATH`, without moving HEAD.
//!
//! 1. Read each path as it is on disk now (only those paths are scanned) and
//!    seal a rescue checkpoint: HEAD's tree with those paths replaced by what
//!    is on disk. `cplane restore RESCUE-… PATH` undoes the restore.
//! 2. Hand the rescue root and the target root to the checkout engine,
//!    restricted to the paths: a file gets its bytes, mode, owner and links;
//!    a directory gets exactly the target's entries (extra files removed); a
//!    path the target lacks is removed.
//!
//! HEAD does not move, so `status` afterwards shows the restored paths as
//! differences from HEAD whenever HEAD differs from the target.
//!
//! A path the plane's exclusion rules exclude ([`crate::exclude`]) is
//! refused; inside a restored directory, excluded paths and FIFOs, sockets
//! and devices are left as they are (the latter listed in
//! [`CheckoutReport::special`]).

use crate::checkout::{self, CheckoutHooks, CheckoutKind, CheckoutReport, Request};
use crate::control::Control;
use crate::diff::{TreeSource, lookup_path};
use crate::error::{Error, Result};
use crate::exclude::Exclusions;
use crate::finding::Code;
use crate::id::TreeId;
use crate::object::{EntryKind, Meta, ObjectKind, Snapshot, SnapshotKind, Tree, TreeEntry};
use crate::path::RelPath;
use crate::plane::Plane;
use crate::revision::Resolved;
use crate::scan::{Record, ScanOptions, scan_path};
use crate::scope::{Scope, WalkStop};
use crate::snapshot::{RESCUE_PREFIX, count_files, unique_name};
use crate::store::Store;
use crate::store::index::{StatCache, now_ns};
use crate::store::lock::StoreLock;
use crate::store::pack::ObjectWriter;
use std::collections::HashMap;

/// Restores `paths` of `plane` to `target`'s state. See the module documentation.
///
/// # Errors
/// [`Error::WrongPlane`]; [`Error::BadPath`] for a path outside the plane
/// (a nested plane's); [`Error::NoSuchPath`] for a path neither `target` nor
/// the working tree has; [`Error::Refused`] when a path to overwrite cannot
/// be read; [`Error::Excluded`] for a path an exclusion rule excludes;
/// store damage (nothing changed); I/O errors naming the path.
pub fn restore(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    target: &Resolved,
    paths: &[RelPath],
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
) -> Result<CheckoutReport> {
    restore_with(store, lock, plane, target, paths, hooks, ctl, None, None, None)
}

/// [`restore`], staging the blobs of `known` (bytes the caller holds,
/// checked against their ids: an install's package) from memory instead of
/// reading them back from the store, taking the files in `prestaged`
/// ([`crate::checkout::Request::prestaged`]) instead of staging them, and
/// the directories in `prebuilt` ([`crate::checkout::Request::prebuilt`])
/// instead of making and filling them.
///
/// # Errors
/// As [`restore`].
#[allow(clippy::too_many_arguments)]
pub fn restore_with(
    store: &mut Store,
    _lock: &StoreLock,
    plane: &Plane,
    target: &Resolved,
    paths: &[RelPath],
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
    known: Option<&HashMap<crate::id::ObjectId, &[u8]>>,
    prestaged: Option<&std::sync::Mutex<HashMap<RelPath, crate::checkout::Prestaged>>>,
    prebuilt: Option<&std::sync::Mutex<Vec<crate::checkout::Prebuilt>>>,
) -> Result<CheckoutReport> {
    crate::rollback::same_plane(target, plane)?;
    let mut scope = Scope::open(plane)?;
    let Resolved {
        id: head_id,
        snapshot: head,
        ..
    } = crate::revision::resolve(store, plane, "HEAD")?;
    // Whole-plane restores and nested paths collapse to the outermost path.
    let mut paths: Vec<RelPath> = paths.to_vec();
    paths.sort();
    paths.dedup();
    let mut outer: Vec<RelPath> = Vec::new();
    for p in paths {
        if scope.is_excluded(&p) || inside_nested_store(&scope, &p) {
            return Err(Error::BadPath {
                path: p.display(),
                plane: plane.name.clone(),
            });
        }
        if !outer.iter().any(|o| p.starts_with(o)) {
            outer.push(p);
        }
    }
    // A path the exclusion rules exclude is not the plane's to write (nor is
    // anything under an excluded directory): refused, with the rule.
    for p in &outer {
        let ex = Exclusions::load_along(&scope, &p.parent().unwrap_or_default())?;
        let src = TreeSource::store(store);
        let is_dir = (!p.is_root() && scope.open_dir(p).is_ok())
            || lookup_path(&src, &target.snapshot.root, p)?.is_some_and(|e| e.kind == EntryKind::Dir);
        if let Some(hit) = ex.explain(p, is_dir).filter(|h| h.excluded) {
            return Err(Error::Excluded {
                path: p.display(),
                rule: format!("{}:{}:{}", hit.source, hit.line, hit.pattern),
            });
        }
    }
    // 1. The rescue checkpoint: HEAD with the paths as they are on disk now.
    let now = now_ns();
    let rescue_name = unique_name(store, &plane.name, None, RESCUE_PREFIX, now)?;
    let mut missing = Vec::new();
    let mut stats = Vec::new();
    let mut nested = Vec::new();
    let mut found_links = Vec::new();
    let mut special = Vec::new();
    let mut keep_out = Vec::new();
    let mut exclusions = Exclusions::new(scope.exclude().cloned(), []);
    // Under a directory, files whose stat matches the cache are not re-read (their
    // content is stored); a single file is read anyway, and loading the cache of a
    // large plane would cost more than that.
    let cache_path = crate::snapshot::index_path(store, plane);
    let written = store.written_rows(&plane.name);
    let cache: std::cell::OnceCell<Option<crate::store::index::MappedCache>> = std::cell::OnceCell::new();
    let ((root, files, bytes), _) = store.transaction(|w| {
        // Trees written by this transaction are not readable from the store until it
        // ends: the ones the grafts make are kept here for the next path's lookups.
        let mut made: HashMap<TreeId, Tree> = HashMap::new();
        let mut root = head.root;
        let (mut files, mut bytes) = (head.files, head.bytes);
        for p in &outer {
            let is_dir = p.is_root() || scope.open_dir(p).is_ok();
            let (scanned, r) = scan_path(
                &scope,
                p,
                ScanOptions {
                    cache: if is_dir {
                        cache
                            .get_or_init(|| crate::snapshot::with_written(&cache_path, written.clone()))
                            .as_ref()
                    } else {
                        None
                    },
                    writer: Some(w),
                    record: Record::All,
                    ctl,
                    content: None,
                },
            )?;
            // What cannot be read cannot be rescued: never overwrite it. A FIFO,
            // socket or device is left in place, and everything else restored.
            let (sp, other): (Vec<_>, Vec<_>) = r.findings.into_iter().partition(|f| f.code == Code::SpecialFile);
            if !other.is_empty() {
                return Err(Error::Refused {
                    action: "restore",
                    findings: other,
                });
            }
            keep_out.extend(sp.iter().map(|f| f.path.clone()));
            special.extend(sp);
            keep_out.extend(r.excluded_paths);
            exclusions.extend(r.exclusions.files().cloned());
            stats.extend(r.cache.entries);
            nested.extend(r.nested_stores);
            found_links.extend(r.links);
            let src = TreeSource::with_overlay(w.store(), &made);
            let in_target = lookup_path(&src, &target.snapshot.root, p)?.is_some() || p.is_root();
            if scanned.is_none() && !in_target {
                missing.push(p.clone());
                continue;
            }
            // What is on disk at `p` replaces what HEAD has; when `p` is gone together with
            // some of its parents, the topmost missing parent is what is gone.
            let at = if scanned.is_none() {
                topmost_missing(&scope, p)?
            } else {
                p.clone()
            };
            let before = lookup_path(&src, &root, &at)?;
            let (of, ob) = entry_counts(w.store(), before.as_ref())?;
            let now_entry = scanned.map(|e| (e, r.files, r.bytes));
            let (nf, nb) = now_entry.as_ref().map_or((0, 0), |(_, f, b)| (*f, *b));
            files = files.saturating_sub(of) + nf;
            bytes = bytes.saturating_sub(ob) + nb;
            root = if p.is_root() {
                match &now_entry {
                    Some((e, _, _)) => e.tree_id(),
                    None => root,
                }
            } else if before.is_none() && now_entry.is_none() {
                root // neither HEAD nor the disk has it: nothing to record
            } else {
                graft(w, &mut made, &scope, root, &at, now_entry.map(|(e, _, _)| e))?
            };
        }
        Ok((root, files, bytes))
    })?;
    if let Some(p) = missing.first() {
        return Err(Error::NoSuchPath {
            path: p.display(),
            what: format!(
                "snapshot {} ({}) or the working tree",
                target.snapshot.name,
                target.id.short(12)
            ),
        });
    }
    let rescue = Snapshot {
        plane: plane.name.clone(),
        name: rescue_name.clone(),
        root,
        parent: Some(head_id),
        kind: SnapshotKind::Rescue,
        time_unix_ns: now,
        message: format!(
            "state before restoring {} from {}",
            outer.iter().map(RelPath::display).collect::<Vec<_>>().join(", "),
            target.snapshot.name
        ),
        files,
        bytes,
        links: rescue_links(store, &scope, &head, &outer, found_links)?,
        ownership: head.ownership,
        ledger: crate::ledger::snapshot_ref(store, &plane.name),
    };
    let (rescue_id, body) = rescue.encode_with_id();
    store.transaction(|w| w.add(ObjectKind::Snapshot, rescue_id.0, &body))?;
    store.set_checkpoint(&plane.name, &rescue_name, &rescue_id)?;
    // 2. The checkout, restricted to the paths (and never into another store),
    // of the target without what the exclusion rules exclude and special files.
    scope.carve_out_more(nested);
    let src = TreeSource::store(store);
    keep_out.extend(exclusions.excluded_in(&src, &target.snapshot.root, &root, &outer)?);
    let (target_root, target_links) = if keep_out.is_empty() {
        (target.snapshot.root, target.snapshot.links.clone())
    } else {
        keep_out.sort();
        let (pruned, _) = store.transaction(|w| crate::exclude::prune_paths(w, target.snapshot.root, &keep_out))?;
        (pruned, crate::snapshot::prune_links(&target.snapshot.links, &keep_out))
    };
    stats.sort_by(|a, b| a.path.cmp(&b.path));
    let rescue_cache = StatCache {
        scan_started_ns: now,
        entries: stats,
        dirs: Vec::new(),
    };
    let req = Request {
        kind: CheckoutKind::Restore,
        target: target.id,
        target_root,
        target_links,
        rescue: rescue_id,
        rescue_name: rescue_name.clone(),
        rescue_root: root,
        rescue_links: rescue.links.clone(),
        paths: outer,
        new_head: None,
        rescue_cache: &rescue_cache,
        known,
        prestaged,
        prebuilt,
    };
    crate::trace::phase("restore: rescue sealed");
    match checkout::checkout(store, &scope, req, hooks, ctl) {
        Ok(mut report) => {
            report.special = special;
            if report.journal.ops.is_empty() {
                // Nothing was overwritten: no rescue is needed.
                let _ = store.remove_checkpoint(&plane.name, &rescue_name);
            }
            Ok(report)
        }
        Err(e) => {
            checkout::drop_rescue_after(store, &plane.name, &rescue_name, &e);
            Err(e)
        }
    }
}

/// True when `p`, or a directory on the way to it, holds another store
/// (`.cp/FORMAT`): its files are that store's, never restored over.
fn inside_nested_store(scope: &Scope, p: &RelPath) -> bool {
    let mut chain = p.ancestors();
    chain.push(p.clone());
    chain
        .iter()
        .filter(|a| !a.is_root())
        .any(|a| scope.open_dir(a).is_ok_and(|d| crate::store::holds_store(&d)))
}

/// The hard-link groups of the rescue: HEAD's, except that a restored path
/// stays in its group only if on disk it still is one inode with another
/// member that is also restored, or with a member outside the restored paths
/// whose file on disk still is what HEAD (and so the rescue) says it is —
/// a group never joins files of different contents; plus the groups the
/// scans of the restored paths found among themselves. Groups left with
/// fewer than two paths are dropped.
fn rescue_links(
    store: &Store,
    scope: &Scope,
    head: &Snapshot,
    outer: &[RelPath],
    found: Vec<crate::object::LinkGroup>,
) -> Result<Vec<crate::object::LinkGroup>> {
    let src = TreeSource::store(store);
    // An outside member's file on disk is what HEAD says (bytes, mode, owner).
    let as_in_head = |p: &RelPath| -> Result<bool> {
        Ok(lookup_path(&src, &head.root, p)?.is_some_and(|want| checkout::file_as_recorded(scope, p, &want).is_some()))
    };
    let restored = |p: &RelPath| outer.iter().any(|o| p.starts_with(o));
    let inode = |p: &RelPath| -> Option<(u64, u64)> {
        let dir = scope.open_dir(&p.parent()?).ok()?;
        let st = dir.stat(p.file_name()?).ok()?;
        Some((st.st_dev as u64, st.st_ino as u64))
    };
    let mut out: Vec<crate::object::LinkGroup> = Vec::new();
    for g in &head.links {
        if !g.iter().any(&restored) {
            out.push(g.clone());
            continue;
        }
        let inodes: Vec<Option<(u64, u64)>> = g.iter().map(&inode).collect();
        // Whether each outside member is as HEAD has it: hashed once per member.
        let mut in_head: HashMap<usize, bool> = HashMap::new();
        let mut kept = Vec::new();
        for (i, p) in g.iter().enumerate() {
            if !restored(p) {
                kept.push(p.clone());
                continue;
            }
            let Some(ino) = inodes[i] else { continue };
            let mut partner = false;
            for (j, q) in g.iter().enumerate() {
                if j == i || inodes[j] != Some(ino) {
                    continue;
                }
                let ok = match in_head.get(&j) {
                    _ if restored(q) => true,
                    Some(&ok) => ok,
                    None => *in_head.entry(j).or_insert(as_in_head(q)?),
                };
                if ok {
                    partner = true;
                    break;
                }
            }
            if partner {
                kept.push(p.clone());
            }
        }
        out.push(kept);
    }
    // Groups found among the restored paths join a group they overlap, or stand alone.
    for f in found {
        match out.iter_mut().find(|g| g.iter().any(|p| f.contains(p))) {
            Some(g) => g.extend(f),
            None => out.push(f),
        }
    }
    for g in &mut out {
        g.sort();
        g.dedup();
    }
    out.retain(|g| g.len() >= 2);
    out.sort();
    Ok(out)
}

/// The shallowest path on the way to `p` (or `p` itself) that is missing on disk.
///
/// # Errors
/// [`Error::UnsafePath`] when a directory on the way is a symlink or a file
/// (a restore never writes through one, nor silently replaces it).
fn topmost_missing(scope: &Scope, p: &RelPath) -> Result<RelPath> {
    match scope.walk(&p.parent().unwrap_or_default())?.2 {
        Some(WalkStop::Missing(a)) => Ok(a),
        Some(WalkStop::NotADirectory(a)) => Err(Error::UnsafePath {
            path: p.display(),
            through: a.display(),
        }),
        None => Ok(p.clone()),
    }
}

/// Files and bytes at and under an entry.
fn entry_counts(store: &Store, e: Option<&TreeEntry>) -> Result<(u64, u64)> {
    match e {
        None => Ok((0, 0)),
        Some(e) if e.kind == EntryKind::Dir => count_files(store, &e.tree_id()),
        Some(e) => Ok((1, e.size)),
    }
}

/// `root` with the entry at `path` replaced by `entry` (`None` removes it).
/// Directories on the way that `root` lacks are added with the mode and owner
/// they have on disk. Rebuilds only the trees on the path (no recursion).
///
/// # Errors
/// Store damage; I/O errors while writing trees.
pub(crate) fn graft(
    w: &ObjectWriter<'_>,
    made: &mut HashMap<TreeId, Tree>,
    scope: &Scope,
    root: TreeId,
    path: &RelPath,
    entry: Option<TreeEntry>,
) -> Result<TreeId> {
    let store = w.store();
    let read = |made: &HashMap<TreeId, Tree>, id: &TreeId| match made.get(id) {
        Some(t) => Ok(t.clone()),
        None => store.read_tree(id),
    };
    let parts: Vec<&[u8]> = path.components().collect();
    // Trees from the root down to the path's parent (empty where missing).
    let mut trees: Vec<Tree> = Vec::with_capacity(parts.len());
    let mut metas: Vec<Meta> = Vec::with_capacity(parts.len());
    let mut cur = Some(read(made, &root)?);
    let mut at = RelPath::root();
    for part in &parts[..parts.len() - 1] {
        let t = cur.take().unwrap_or_default();
        at = at.join(part);
        let next = t.get(part).filter(|e| e.kind == EntryKind::Dir).cloned();
        let meta = match &next {
            Some(e) => e.meta,
            None => match scope.open_dir(&at).and_then(|d| d.stat_self()) {
                Ok(st) => Meta::from_stat(st.st_mode as u32, st.st_uid, st.st_gid, EntryKind::Dir),
                Err(_) => Meta {
                    mode: 0o755,
                    uid: Meta::UNKNOWN_ID,
                    gid: Meta::UNKNOWN_ID,
                },
            },
        };
        trees.push(t);
        metas.push(meta);
        cur = match next {
            Some(e) => Some(read(made, &e.tree_id())?),
            None => None,
        };
    }
    trees.push(cur.unwrap_or_default());
    // Replace bottom-up.
    let mut replacement: Option<TreeEntry> = entry.map(|mut e| {
        e.name = parts[parts.len() - 1].to_vec();
        e
    });
    for depth in (0..parts.len()).rev() {
        let mut t = trees.pop().expect("one tree per level");
        let name = parts[depth];
        let pos = t.entries.binary_search_by(|e| e.name.as_slice().cmp(name));
        match (pos, replacement.take()) {
            (Ok(i), Some(e)) => t.entries[i] = e,
            (Ok(i), None) => {
                t.entries.remove(i);
            }
            (Err(i), Some(e)) => t.entries.insert(i, e),
            (Err(_), None) => {}
        }
        let (id, body) = t.encode_with_id();
        w.add(ObjectKind::Tree, id.0, &body)?;
        let size = t.entries.iter().map(|e| e.size).sum();
        made.insert(id, t);
        if depth == 0 {
            return Ok(id);
        }
        replacement = Some(TreeEntry {
            name: parts[depth - 1].to_vec(),
            kind: EntryKind::Dir,
            meta: metas[depth - 1],
            id: id.0,
            size,
        });
    }
    unreachable!("a non-root path has at least one component")
}

/// One change for [`graft_many`]: the path's components, and the entry to
/// put there (`None` removes it).
type Change = (Vec<Vec<u8>>, Option<TreeEntry>);

/// [`graft`] for many paths at once: every tree on the way is read and
/// written once, however many of the paths lie below it (a package of
/// 10,000 files costs one rebuild per directory, not per file). Missing
/// directories get the mode and owner they have on disk, else 0755.
/// Paths must not be a file and a directory at once.
///
/// # Errors
/// Store damage; I/O errors while writing trees.
pub(crate) fn graft_many(
    w: &ObjectWriter<'_>,
    scope: &Scope,
    root: TreeId,
    changes: &[(RelPath, Option<TreeEntry>)],
) -> Result<TreeId> {
    let mut list: Vec<Change> = changes
        .iter()
        .map(|(p, e)| (p.components().map(<[u8]>::to_vec).collect(), e.clone()))
        .filter(|(c, _): &Change| !c.is_empty())
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    let tree = w.store().read_tree(&root)?;
    Ok(rebuild(w, scope, tree, &RelPath::root(), &list, 0)?.0)
}

/// Applies `changes` (sorted, all below `at`, components from `depth` on)
/// to `tree`, writes it, returns its id and total size.
fn rebuild(
    w: &ObjectWriter<'_>,
    scope: &Scope,
    mut tree: Tree,
    at: &RelPath,
    changes: &[Change],
    depth: usize,
) -> Result<(TreeId, u64)> {
    let mut i = 0;
    while i < changes.len() {
        let name = changes[i].0[depth].clone();
        let j = changes[i..]
            .iter()
            .position(|c| c.0[depth] != name)
            .map_or(changes.len(), |k| i + k);
        let group = &changes[i..j];
        let pos = tree.entries.binary_search_by(|e| e.name.as_slice().cmp(&name));
        let replacement = if group.len() == 1 && group[0].0.len() == depth + 1 {
            group[0].1.clone().map(|mut e| {
                e.name = name.clone();
                e
            })
        } else {
            let existing = pos.ok().map(|k| &tree.entries[k]).filter(|e| e.kind == EntryKind::Dir);
            let here = at.join(&name);
            let meta = match existing {
                Some(e) => e.meta,
                None => match scope.open_dir(&here).and_then(|d| d.stat_self()) {
                    Ok(st) => Meta::from_stat(st.st_mode as u32, st.st_uid, st.st_gid, EntryKind::Dir),
                    Err(_) => Meta {
                        mode: 0o755,
                        uid: Meta::UNKNOWN_ID,
                        gid: Meta::UNKNOWN_ID,
                    },
                },
            };
            let sub = match existing {
                Some(e) => w.store().read_tree(&e.tree_id())?,
                None => Tree::default(),
            };
            let (id, size) = rebuild(w, scope, sub, &here, group, depth + 1)?;
            Some(TreeEntry {
                name: name.clone(),
                kind: EntryKind::Dir,
                meta,
                id: id.0,
                size,
            })
        };
        match (pos, replacement) {
            (Ok(k), Some(e)) => tree.entries[k] = e,
            (Ok(k), None) => {
                tree.entries.remove(k);
            }
            (Err(k), Some(e)) => tree.entries.insert(k, e),
            (Err(_), None) => {}
        }
        i = j;
    }
    let (id, body) = tree.encode_with_id();
    w.add(ObjectKind::Tree, id.0, &body)?;
    Ok((id, tree.entries.iter().map(|e| e.size).sum()))
}
