//! The checkout engine: make (part of) a plane's working tree exactly a
//! stored tree, losing nothing. Shared by `rollback` (the whole plane, HEAD
//! moves) and `restore` (some paths, HEAD stays), and built to be shared by
//! package install/uninstall.
//!
//! The caller seals the current state as a rescue checkpoint first. Then:
//!
//! 1. **plan** ([`plan`]): diff the rescue state against the target — only
//!    differing subtrees, and for a restore only the named paths — into
//!    journal operations ([`journal::Op`]);
//! 2. **check**: every file about to be removed or overwritten must be
//!    intact in the store (its only good copy may be the one on disk);
//! 3. **stage** ([`stage`]): extract and verify every blob to write,
//!    unnamed (`O_TMPFILE`) beside its destination;
//! 4. **journal** ([`journal`]): wait for readers of the working tree
//!    ([`crate::store::lock::WorktreeLock`]), write the journal durably;
//! 5. **apply** ([`apply`]): removals, new directories, writes (each one
//!    `renameat` into place), hard links, then modes and owners (directories
//!    after their contents), all through the filesystem seam;
//! 6. **finish**: flush, move refs (rollback), delete the journal.
//!
//! A failure before step 4 changes nothing in the plane. A crash after it is
//! finished by the next command ([`recover`]), which replays the journal.

pub mod apply;
pub mod journal;
pub mod stage;

use crate::control::Control;
use crate::diff::{Change, ChangeKind, TreeSource, diff_trees, lookup_path, tree_order};
use crate::error::{Error, IoResultExt, Result};
use crate::id::{SnapshotId, TreeId};
use crate::object::{EntryKind, LinkGroup, Tree, TreeEntry};
use crate::path::RelPath;
use crate::scope::Scope;
use crate::store::Store;
use crate::store::lock::WorktreeLock;
pub use journal::{CheckoutKind, Journal, Op, has_journal, journal_path};
use stage::MetaProblem;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// Observation points inside a checkout, for tests (pause, kill) and
/// embedders. The default methods do nothing.
pub trait CheckoutHooks: Sync {
    /// Everything is staged and verified; nothing in the plane has changed yet
    /// and the journal is not written.
    fn staged(&self) {}
    /// `done` operations of the journal have been applied (1-based).
    fn applied(&self, _done: usize) {}
    /// Whether files may be staged unnamed (`O_TMPFILE`); tests turn it off to
    /// exercise the fallback that filesystems without `O_TMPFILE` take.
    fn stage_unnamed(&self) -> bool {
        true
    }
}

/// Hooks that do nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl CheckoutHooks for NoHooks {}

/// What to check out.
#[derive(Debug, Clone)]
pub struct Request {
    /// Rollback (whole plane, HEAD moves) or restore (some paths).
    pub kind: CheckoutKind,
    /// The snapshot whose state is wanted.
    pub target: SnapshotId,
    /// Its root, with carve-outs already pruned.
    pub target_root: TreeId,
    /// Its hard-link groups.
    pub target_links: Vec<LinkGroup>,
    /// The rescue checkpoint just sealed (the state now) and its name.
    pub rescue: SnapshotId,
    /// Name of the rescue checkpoint.
    pub rescue_name: String,
    /// Root of the rescue checkpoint.
    pub rescue_root: TreeId,
    /// Hard-link groups of the rescue checkpoint.
    pub rescue_links: Vec<LinkGroup>,
    /// For a restore: the paths to make exactly as the target has them.
    pub paths: Vec<RelPath>,
    /// For a rollback: the new HEAD (already stored) and its checkpoint name.
    pub new_head: Option<(SnapshotId, String)>,
    /// Stat-cache rows of the rescue scan (sorted by path): what each file
    /// the checkout may clobber looked like when the rescue was sealed.
    pub rescue_stats: Vec<crate::store::index::IndexEntry>,
}

/// What a checkout did.
#[derive(Debug)]
pub struct CheckoutReport {
    /// The journal that was carried out.
    pub journal: Journal,
    /// The differences applied (from the rescue state to the target).
    pub changes: Vec<Change>,
    /// Files, symlinks and hard links written.
    pub written: u64,
    /// Files, symlinks and directories removed.
    pub removed: u64,
    /// Directories created.
    pub created_dirs: u64,
    /// Paths whose mode or owner was set without rewriting them.
    pub meta_set: u64,
    /// Owners or modes that could not be put back (the process was not allowed).
    pub problems: Vec<MetaProblem>,
    /// Directories the target lacks, left because something else is inside.
    pub left_in_place: Vec<RelPath>,
    /// Paths left alone because another process changed them while the
    /// checkout was applying (they were not overwritten unseen).
    pub changed_meanwhile: Vec<RelPath>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

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
    let in_scope = |p: &RelPath| req.kind == CheckoutKind::Rollback || req.paths.iter().any(|r| p.starts_with(r));
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
        .filter(|c| in_scope(&c.path) && !have.contains(&c.path))
        .collect();
    if !extra.is_empty() {
        changes.extend(extra);
        changes.sort_by(|a, b| tree_order(&a.path, &b.path));
    }
    changes.retain(|c| !scope.is_excluded(&c.path));
    Ok(changes)
}

/// What the rescue saw at the paths the ops clobber (see [`apply::Expected`]).
fn expectations(changes: &[Change], rescue_stats: &[crate::store::index::IndexEntry]) -> apply::Expected {
    let stat_of = |p: &RelPath| {
        rescue_stats
            .binary_search_by(|e| e.path.cmp(p))
            .ok()
            .map(|i| rescue_stats[i].stat)
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

/// Journal operations for `changes` (see [`journal::Op`] for the order),
/// with hard links per the target's groups.
pub fn plan_ops(changes: &[Change], req: &Request) -> Vec<Op> {
    plan_ops_for(changes, req, false)
}

/// [`plan_ops`]; `target_legacy` says the target was converted from store
/// format 1, which did not record empty directories: one that is empty on
/// disk is then left in place rather than removed.
fn plan_ops_for(changes: &[Change], req: &Request, target_legacy: bool) -> Vec<Op> {
    let mut removes = Vec::new();
    let mut rmdirs = Vec::new();
    let mut mkdirs = Vec::new();
    let mut writes: Vec<Op> = Vec::new();
    let mut file_meta = Vec::new();
    let mut dir_meta = Vec::new();
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
                ChangeKind::ModeChanged | ChangeKind::OwnerChanged => {
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
    let in_scope = |p: &RelPath| req.kind == CheckoutKind::Rollback || req.paths.iter().any(|r| p.starts_with(r));
    let written: HashSet<RelPath> = writes.iter().map(|w| w.path().clone()).collect();
    let old_groups: HashSet<&LinkGroup> = req.rescue_links.iter().collect();
    let mut links = Vec::new();
    let mut linked = HashSet::new();
    for g in &req.target_links {
        let members: Vec<&RelPath> = g.iter().filter(|p| in_scope(p)).collect();
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
        let exec = if new.is_executable() {
            (old.perm() & 0o444) >> 2 | 0o100
        } else {
            0
        };
        m.mode = (old.perm() & !0o111) | exec;
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
fn is_legacy_tree(store: &Store, root: &TreeId) -> Result<bool> {
    let t = store.read_tree(root)?;
    Ok(t.entries.iter().any(|e| e.meta.is_legacy_mode()))
}

/// Runs a checkout (see the module documentation). The rescue checkpoint in
/// `req` must already be sealed; on an error before the journal is written
/// nothing in the plane has changed and the caller may drop it.
///
/// # Errors
/// Store damage (a corrupt object, or a damaged stored copy of a file about
/// to be overwritten); [`Error::Io`] naming the user's path (disk full, ...);
/// [`Error::UnsafePath`]; [`Error::Interrupted`] before the journal.
pub fn checkout(
    store: &Store,
    scope: &Scope,
    req: Request,
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
) -> Result<CheckoutReport> {
    use rayon::prelude::*;
    let t0 = Instant::now();
    let changes = plan_changes(store, scope, &req)?;
    let target_legacy = is_legacy_tree(store, &req.target_root)?;
    let ops = plan_ops_for(&changes, &req, target_legacy);
    let expected = expectations(&changes, &req.rescue_stats);
    // Fail now, not half-way: every directory to write or remove in must be a
    // real, writable directory.
    check_parents(scope, &ops)?;
    // Every file about to be removed or overwritten must be safely in the store. The
    // rescue seal stores nothing it thinks the store already has, so a damaged stored
    // copy would leave the file on disk as the only good one: check, and stop if so.
    changes
        .par_iter()
        .filter_map(|c| c.old.filter(|o| o.kind != EntryKind::Dir).map(|o| (c, o)))
        .try_for_each(|(c, o)| {
            stage::verify_blob(store, &o.id).map_err(|e| match e {
                Error::CorruptObject { id, location, reason } => Error::CorruptObject {
                    id,
                    location,
                    reason: format!(
                        "{reason}; it is the stored copy of {}, whose only good copy is now the file on disk, so nothing was changed",
                        c.path
                    ),
                },
                other => other,
            })
        })?;
    // Stage (or at least verify) everything to write.
    let budget = if hooks.stage_unnamed() { stage::fd_budget() } else { 0 };
    let writes: Vec<&Op> = ops.iter().filter(|o| matches!(o, Op::Write { .. })).collect();
    let staged: Vec<(RelPath, Option<stage::Staged>, Vec<MetaProblem>)> = writes
        .par_iter()
        .enumerate()
        .map(|(i, op)| {
            ctl.check()?;
            let Op::Write {
                path, kind, id, meta, ..
            } = op
            else {
                unreachable!("filtered to writes")
            };
            let mut problems = Vec::new();
            let staged = if *kind == EntryKind::File && i < budget {
                stage::stage_file(store, scope, path, id, meta, &mut problems)?
            } else {
                None
            };
            if staged.is_none() {
                stage::verify_blob(store, id)?;
            }
            ctl.progress.inc(1, 0);
            Ok((path.clone(), staged, problems))
        })
        .collect::<Result<_>>()?;
    let mut problems = Vec::new();
    let mut staged_map = HashMap::new();
    for (p, s, pr) in staged {
        problems.extend(pr);
        if let Some(s) = s {
            staged_map.insert(p, s);
        }
    }
    sync_staged(scope, &staged_map)?;
    hooks.staged();
    ctl.check()?;
    let journal = Journal {
        plane: scope.plane().to_string(),
        kind: req.kind,
        target: req.target,
        rescue: req.rescue,
        rescue_name: req.rescue_name.clone(),
        new_head: req.new_head.clone(),
        ops,
    };
    // Readers of the working tree finish first; new ones wait until we are done.
    let _writing = WorktreeLock::exclusive_interruptible(&store.plane_dir(scope.plane()), ctl.interrupt)?;
    ctl.check()?;
    journal::save(&journal_path(store, scope.plane()), &journal, &store.tmp_dir())?;
    // Past this point the checkout runs to the end, even if interrupted; a failure
    // leaves the journal for the next command (the rescue checkpoint must stay).
    let after_journal = |e: Error| Error::UnfinishedCheckout {
        plane: scope.plane().to_string(),
        journal: journal_path(store, scope.plane()),
        source: Box::new(e),
    };
    let mut applier = apply::Applier::new(store, scope, staged_map, false, hooks, ctl);
    applier.expected = Some(expected);
    applier.run(&journal.ops).map_err(after_journal)?;
    let mut applied = applier.out;
    problems.append(&mut applied.problems);
    finish(store, scope, &journal, &applied.touched_dirs).map_err(after_journal)?;
    Ok(CheckoutReport {
        journal,
        changes,
        written: applied.written,
        removed: applied.removed,
        created_dirs: applied.created_dirs,
        meta_set: applied.meta_set,
        problems,
        left_in_place: applied.left_in_place,
        changed_meanwhile: applied.changed_meanwhile,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Every existing directory an operation writes or removes in must be a real
/// directory the process may write: checked before the journal, so a checkout
/// that cannot succeed fails with nothing changed instead of half-way.
fn check_parents(scope: &Scope, ops: &[Op]) -> Result<()> {
    // Directories the checkout creates (perhaps where a file is now) need no check;
    // the directory above the shallowest of them does.
    let made: HashSet<&RelPath> = ops
        .iter()
        .filter_map(|op| match op {
            Op::MakeDir { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    let parents: BTreeSet<RelPath> = ops
        .iter()
        .filter(|op| !matches!(op, Op::SetMeta { .. }))
        .filter_map(|op| op.path().parent())
        .map(|p| {
            let mut chain = p.ancestors();
            chain.push(p.clone());
            match chain.into_iter().find(|a| made.contains(a)) {
                Some(first_made) => first_made.parent().unwrap_or_default(),
                None => p,
            }
        })
        .collect();
    for p in parents {
        match stage::nearest_dir(scope, &p.join(b"x"), true) {
            Ok(dir) => {
                if !dir.writable() {
                    return Err(crate::error::tree_io(
                        scope.root_path(),
                        &p,
                        std::io::Error::from_raw_os_error(13), // EACCES: not writable by this user
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Flushes the staged files' data: one `syncfs` per filesystem they are on.
fn sync_staged(scope: &Scope, staged: &HashMap<RelPath, stage::Staged>) -> Result<()> {
    let mut done = HashSet::new();
    for (p, s) in staged {
        let st = crate::fsys::fstat(&s.file).map_err(|e| crate::error::tree_io(scope.root_path(), p, e))?;
        if done.insert(st.st_dev) {
            rustix::fs::syncfs(&s.file)
                .map_err(|e| crate::error::tree_io(scope.root_path(), p, std::io::Error::from(e)))?;
        }
    }
    Ok(())
}

/// After apply: flush, move refs (rollback), delete the journal.
fn finish(store: &Store, scope: &Scope, j: &Journal, touched: &BTreeSet<RelPath>) -> Result<()> {
    apply::sync_dirs(scope, touched)?;
    if let Some((id, name)) = &j.new_head {
        store.set_checkpoint(&j.plane, name, id)?;
        store.set_head(&j.plane, id)?;
    }
    let jp = journal_path(store, &j.plane);
    std::fs::remove_file(&jp).at(&jp)?;
    // A journal that came back after a crash would be replayed over later edits.
    crate::fsutil::fsync_dir(&store.plane_dir(&j.plane))?;
    Ok(())
}

/// What finishing an interrupted checkout did.
#[derive(Debug)]
pub struct Recovered {
    /// The journal that was finished.
    pub journal: Journal,
    /// Files, symlinks and links written (or found already in place).
    pub written: u64,
    /// Paths removed.
    pub removed: u64,
    /// Owners or modes that could not be put back.
    pub problems: Vec<MetaProblem>,
}

/// Replays the journal of an interrupted checkout of `scope`'s plane. The
/// caller holds the store lock and has sealed what it found in the plane
/// (edits made since the crash are kept in that checkpoint).
///
/// # Errors
/// [`Error::DamagedFile`] for a damaged journal; I/O or store errors while applying.
pub fn recover(store: &Store, scope: &Scope, hooks: &dyn CheckoutHooks, ctl: Control<'_>) -> Result<Option<Recovered>> {
    let jp = journal_path(store, scope.plane());
    if !jp.exists() {
        return Ok(None);
    }
    let j = journal::load(&jp)?;
    let _writing = WorktreeLock::exclusive(&store.plane_dir(scope.plane()))?;
    let mut applier = apply::Applier::new(store, scope, HashMap::new(), true, hooks, ctl);
    applier.run(&j.ops)?;
    let applied = applier.out;
    finish(store, scope, &j, &applied.touched_dirs)?;
    Ok(Some(Recovered {
        journal: j,
        written: applied.written,
        removed: applied.removed,
        problems: applied.problems,
    }))
}
