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
//!    unnamed (`O_TMPFILE`) beside its destination, unless the caller
//!    staged it already or built its new directory whole ([`Prebuilt`]);
//! 4. **journal** ([`journal`]): wait for readers of the working tree
//!    ([`crate::store::lock::WorktreeLock`]), write the journal durably;
//! 5. **apply** ([`apply`]): removals, new directories (a prebuilt one
//!    renamed into place whole), writes (each one `linkat` or `renameat`
//!    into place), hard links, then modes and owners (directories
//!    after their contents), all through the filesystem seam, while the
//!    staged files' data is flushed (`syncfs`) on a thread of its own;
//! 6. **finish**: wait for that flush, flush the directories, move refs
//!    (rollback), delete the journal.
//!
//! A failure before step 4 changes nothing in the plane. A crash after it is
//! finished by the next command ([`recover()`]), which replays the journal.

mod apply;
pub mod journal;
mod plan;
mod prebuilt;
mod recover;
mod stage;
pub use stage::{fd_budget, verify_blob};

use crate::control::Control;
use crate::diff::Change;
use crate::error::{Error, IoResultExt, Result};
use crate::id::{ObjectId, SnapshotId, TreeId};
use crate::object::{EntryKind, LinkGroup};
use crate::path::RelPath;
use crate::scope::Scope;
use crate::store::Store;
use crate::store::index::StatCache;
use crate::store::lock::WorktreeLock;
pub use apply::Applied;
pub use journal::{CheckoutKind, Journal, Op, has_journal, journal_path};
pub(crate) use plan::file_as_recorded;
pub use prebuilt::Prebuilt;
pub use recover::{Recovered, recover};
pub use stage::MetaProblem;
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
    /// For tests: the flush of the staged data fails as with a disk's
    /// `EIO` instead of flushing, to exercise what a checkout does when its
    /// data may not be on disk.
    fn fail_flush(&self) -> bool {
        false
    }
    /// A command that wraps a checkout reached its named step after it
    /// (`install`: `registry` once the packages registry is written,
    /// `owned` once the files are owned, just before the seal).
    fn step(&self, _name: &str) {}
}

/// Hooks that do nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl CheckoutHooks for NoHooks {}

/// What to check out.
#[derive(Debug, Clone)]
pub struct Request<'a> {
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
    /// The rescue scan's stat-cache rows: what each file the checkout may
    /// clobber looked like when the rescue was sealed (racy rows are
    /// re-hashed before being clobbered).
    pub rescue_cache: &'a StatCache,
    /// Blob bytes the caller holds in memory, already checked against their
    /// ids (an install's package members): staged from here instead of being
    /// read back from the store. `None` for most callers.
    pub known: Option<&'a HashMap<ObjectId, &'a [u8]>>,
    /// Files the caller staged already ([`prestage`]: an install, while its
    /// package streamed), by path: a write of the same blob and meta to that
    /// path takes its file instead of staging one; the others are dropped
    /// (unnamed, they vanish). `None` for most callers.
    pub prestaged: Option<&'a std::sync::Mutex<HashMap<RelPath, Prestaged>>>,
    /// Directories the plane lacks that the caller built ahead, whole
    /// ([`Prebuilt`]: an install, while its package streamed): one the plan
    /// makes, writing every file in it as built, is renamed into place
    /// instead of made and filled; the others are dropped. `None` for most
    /// callers.
    pub prebuilt: Option<&'a std::sync::Mutex<Vec<Prebuilt>>>,
}

/// A file staged before its checkout ([`prestage`]): unnamed beside its
/// destination, for blob `id` with `meta`.
#[derive(Debug)]
pub struct Prestaged {
    id: ObjectId,
    meta: crate::object::Meta,
    staged: stage::Staged,
    problems: Vec<MetaProblem>,
}

/// Stages `bytes` (blob `id`, checked by the caller) for `rel` with `meta`
/// ahead of the checkout that writes it ([`Request::prestaged`]), as an
/// unnamed file in `dir` ([`staging_dir`] of `rel`) with its stat row kept
/// (an install's later scans trust it). `Ok(None)` when the filesystem has
/// no `O_TMPFILE` (the checkout then stages it itself).
///
/// # Errors
/// [`Error::Io`] naming `rel` (disk full, ...).
pub fn prestage(
    store: &Store,
    scope: &Scope,
    dir: &crate::fsys::Dir,
    rel: &RelPath,
    id: ObjectId,
    bytes: &[u8],
    meta: crate::object::Meta,
) -> Result<Option<Prestaged>> {
    let mut problems = Vec::new();
    Ok(stage::stage_file(
        store,
        scope,
        Some(dir),
        rel,
        &id,
        Some(bytes),
        true,
        &meta,
        &mut problems,
    )?
    .map(|staged| Prestaged {
        id,
        meta,
        staged,
        problems,
    }))
}

/// The directory a file for `rel` is staged in: the nearest existing
/// ancestor of its destination.
///
/// # Errors
/// [`Error::Io`] when no ancestor can be opened as a directory of the plane.
pub fn staging_dir(scope: &Scope, rel: &RelPath) -> Result<crate::fsys::Dir> {
    stage::nearest_dir(scope, rel, false)
}

impl Request<'_> {
    /// True when the checkout makes `p` as the target has it: every path for
    /// a rollback, the paths at and under [`Request::paths`] for a restore.
    pub fn covers(&self, p: &RelPath) -> bool {
        self.kind == CheckoutKind::Rollback || self.paths.iter().any(|r| p.starts_with(r))
    }
}

/// What a checkout did.
///
/// A checkout with no operations (`journal.ops` empty) wrote nothing, and
/// its rescue checkpoint is dropped again by `rollback` and `restore`
/// (`journal.rescue_name` then names no ref); a rollback whose
/// `journal.new_head` is `None` found HEAD already as the target has it and
/// moved nothing.
#[derive(Debug)]
pub struct CheckoutReport {
    /// The journal that was carried out.
    pub journal: Journal,
    /// The differences applied (from the rescue state to the target).
    pub changes: Vec<Change>,
    /// What was written, removed and set, and what could not be.
    pub applied: Applied,
    /// FIFOs, sockets and devices found in the plane and left in place
    /// (`CP106`), filled in by the caller (rollback, restore): the rest was
    /// restored, but the plane is not exactly the target.
    pub special: Vec<crate::finding::Finding>,
    /// Wall-clock seconds.
    pub seconds: f64,
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
    req: Request<'_>,
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
) -> Result<CheckoutReport> {
    use rayon::prelude::*;
    let t0 = Instant::now();
    let changes = plan::plan_changes(store, scope, &req)?;
    let target_legacy = plan::is_legacy_tree(store, &req.target_root)?;
    plan::check_links(store, &req)?;
    let anchors = plan::link_anchors(store, scope, &req)?;
    let ops = plan::plan_ops(&changes, &req, target_legacy, &anchors);
    let expected = plan::expectations(&changes, &ops, &req, &anchors);
    crate::trace::phase("checkout: plan");
    if ops.is_empty() {
        // Already as the target has it: no journal, nothing written (a rollback
        // still records its new HEAD).
        move_head(store, scope.plane(), &req.new_head)?;
        return Ok(CheckoutReport {
            journal: journal_for(scope, &req, ops),
            changes,
            applied: Applied::default(),
            special: Vec::new(),
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    // Fail now, not half-way: every directory to write or remove in must be a
    // real, writable directory.
    check_parents(scope, &ops)?;
    // Every file about to be removed or overwritten must be safely in the store. The
    // rescue seal stores nothing it thinks the store already has, so a damaged stored
    // copy would leave the file on disk as the only good one: check, and stop if so.
    // (Each stored copy once; a mode or owner change overwrites no bytes.)
    let clobbered: HashSet<&RelPath> = ops
        .iter()
        .filter(|op| matches!(op, Op::Remove { .. } | Op::Write { .. } | Op::Link { .. }))
        .map(Op::path)
        .collect();
    let mut old_copies: HashMap<ObjectId, &RelPath> = HashMap::new();
    for c in &changes {
        if let Some(o) = c.old.filter(|o| o.kind != EntryKind::Dir)
            && clobbered.contains(&c.path)
        {
            old_copies.entry(o.id).or_insert(&c.path);
        }
    }
    old_copies
        .par_iter()
        .try_for_each(|(id, path)| {
            stage::verify_blob(store, id).map_err(|e| match e {
                Error::CorruptObject { id, location, reason } => Error::CorruptObject {
                    id,
                    location,
                    reason: format!(
                        "{reason}; it is the stored copy of {path}, whose only good copy is now the file on disk, so nothing was changed"
                    ),
                },
                other => other,
            })
        })?;
    // Stage (or at least verify) everything to write: as many files as
    // descriptors allow unnamed, the rest only verified here and staged in
    // rounds once the journal is written (see `apply::Applier::unstaged_from`).
    let budget = if hooks.stage_unnamed() { stage::fd_budget() } else { 0 };
    // Directories built ahead (an install) that fit the plan: their files
    // are not staged, the directory is renamed into place whole.
    let prebuilt = prebuilt::fit(
        req.prebuilt
            .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)))
            .unwrap_or_default(),
        &ops,
        scope,
    );
    let built = |p: &RelPath| prebuilt.values().any(|(_, files)| files.contains_key(p));
    let writes: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o, Op::Write { .. }) && !built(o.path()))
        .collect();
    ctl.progress.phase("staging");
    ctl.progress.total(writes.len() as u64, 0);
    // Files the caller staged ahead (an install, while its package streamed).
    let mut prestaged: HashMap<RelPath, Prestaged> = req
        .prestaged
        .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)))
        .unwrap_or_default();
    // An eighth of the descriptors is kept for the directories staged in,
    // and the prestaged files hold theirs: the first round takes writes
    // while those and the ones it opens fit.
    let cap = budget - budget / 8;
    let mut open = prestaged.len();
    let first_len = writes
        .iter()
        .take_while(|op| {
            prestaged.contains_key(op.path()) || {
                open += 1;
                open <= cap
            }
        })
        .count();
    let (first, rest) = writes.split_at(first_len);
    // A write of the same blob and meta to a prestaged path takes its file.
    let mut ready: Vec<(RelPath, Prestaged)> = Vec::new();
    let to_stage: Vec<&Op> = first
        .iter()
        .filter(|op| {
            let Op::Write {
                path, kind, id, meta, ..
            } = op
            else {
                return true;
            };
            match prestaged.remove(path) {
                Some(p) if *kind == EntryKind::File && p.id == *id && p.meta == *meta => {
                    ctl.progress.inc(1, 0);
                    ready.push((path.clone(), p));
                    false
                }
                _ => true,
            }
        })
        .copied()
        .collect();
    // The others (for later rounds' writes, or none) let go of their
    // descriptors now; those writes are staged in their round.
    drop(prestaged);
    let (mut staged_map, mut problems) = stage_round(store, scope, &to_stage, req.known, budget, true, ctl)?;
    crate::trace::phase("checkout: stage");
    for (path, p) in ready {
        problems.extend(p.problems);
        staged_map.insert(path, p.staged);
    }
    rest.par_iter().try_for_each(|op| {
        ctl.check()?;
        if let Op::Write { id, .. } = op {
            stage::verify_blob(store, id)?;
        }
        ctl.progress.inc(1, 0);
        Ok::<_, Error>(())
    })?;
    // The journal operation of the first write not staged yet.
    let unstaged_from = match rest.first() {
        Some(&first) => ops
            .iter()
            .position(|op| std::ptr::eq(op, first))
            .expect("a write of ops"),
        None => usize::MAX,
    };
    // (What the flush needs is taken now: nothing fails after the journal for it.)
    let flush = FlushPlan::prepare(scope, &staged_map, &prebuilt, hooks.fail_flush())?;
    hooks.staged();
    ctl.check()?;
    let journal = journal_for(scope, &req, ops);
    // Readers of the working tree finish first; new ones wait until we are done.
    let _writing = WorktreeLock::exclusive(&store.plane_dir(scope.plane()), ctl.interrupt)?;
    ctl.check()?;
    journal::save(&journal_path(store, scope.plane()), &journal, &store.tmp_dir())?;
    crate::trace::phase("checkout: journal");
    // The staged data is flushed while the files are linked: the flush
    // only has to end before the journal goes (`finish`). A crash before
    // that leaves the journal, whose replay re-hashes every file it wrote
    // and rewrites what is not whole; a flush that fails leaves the
    // journal too, marked so that the replay rewrites every file (see
    // `UNFLUSHED`). (Started after the journal's own fsync, which would
    // otherwise wait behind it.)
    let flush = flush.start();
    // Past this point the checkout runs to the end, even if interrupted; a failure
    // leaves the journal for the next command (the rescue checkpoint must stay).
    let after_journal = |e: Error| {
        let journal = journal_path(store, scope.plane());
        if journal.exists() {
            Error::UnfinishedCheckout {
                plane: scope.plane().to_string(),
                journal,
                source: Box::new(e),
            }
        } else {
            Error::CheckoutFlush {
                plane: scope.plane().to_string(),
                source: Box::new(e),
            }
        }
    };
    ctl.progress.phase("writing");
    ctl.progress.total(
        journal.ops.iter().filter(|o| matches!(o, Op::Write { .. })).count() as u64,
        0,
    );
    let mut applier = apply::Applier::new(store, scope, staged_map, Some(expected), hooks, ctl);
    applier.prebuilt = prebuilt;
    // The rows are for a caller that scans again in this process (install).
    applier.record_rows = req.known.is_some();
    if budget > 0 {
        applier.stage_in_rounds(unstaged_from, budget, req.known);
    }
    // Any failure from here on leaves data not known to be on disk (the
    // flush's outcome is lost when applying fails first): the replay must
    // not trust what it reads back.
    let unflushed = |e: Error| {
        mark_unflushed(store, scope.plane());
        after_journal(e)
    };
    let ran = applier.run(&journal.ops);
    crate::trace::phase("checkout: apply");
    // (Waited for even when applying failed: no thread outlives the checkout.)
    let flushed = flush.wait(scope);
    ran.map_err(unflushed)?;
    flushed.map_err(unflushed)?;
    let mut applied = applier.out;
    problems.append(&mut applied.problems);
    applied.problems = problems;
    crate::trace::phase("checkout: staged data flushed");
    finish(store, scope, &journal, &applied).map_err(unflushed)?;
    crate::trace::phase("checkout: finish");
    Ok(CheckoutReport {
        journal,
        changes,
        applied,
        special: Vec::new(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// After a checkout (or the work before it) failed with `e`: drops the rescue
/// checkpoint `rescue_name` of `plane` — nothing in the plane changed —
/// unless the checkout got as far as its journal. Then the next command
/// finishes it, and the rescue checkpoint must stay.
pub(crate) fn drop_rescue_after(store: &Store, plane: &str, rescue_name: &str, e: &Error) {
    if !matches!(e, Error::UnfinishedCheckout { .. } | Error::CheckoutFlush { .. }) && !has_journal(store, plane) {
        let _ = store.remove_checkpoint(plane, rescue_name);
    }
}

/// Moves a rollback's refs: its new checkpoint, then HEAD (a restore has none).
fn move_head(store: &Store, plane: &str, new_head: &Option<(SnapshotId, String)>) -> Result<()> {
    if let Some((id, name)) = new_head {
        store.set_checkpoint(plane, name, id)?;
        store.set_head(plane, id)?;
    }
    Ok(())
}

fn journal_for(scope: &Scope, req: &Request, ops: Vec<Op>) -> Journal {
    Journal {
        plane: scope.plane().to_string(),
        kind: req.kind,
        target: req.target,
        rescue: req.rescue,
        rescue_name: req.rescue_name.clone(),
        new_head: req.new_head.clone(),
        ops,
    }
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
        if !stage::nearest_dir(scope, &p.join(b"x"), true)?.writable() {
            let denied = std::io::Error::from(rustix::io::Errno::ACCESS);
            return Err(scope.io_error(&p, denied));
        }
    }
    Ok(())
}

/// Stages the files of `writes` (all [`Op::Write`]s) unnamed beside their
/// destinations, in parallel, from `known` bytes when given (their stat rows
/// kept: an install's later scans trust them) or from the store (verified
/// as read). A write not staged (a symlink, or no `O_TMPFILE` there) is
/// only verified; it is extracted when applied. The directory each file is
/// staged in is opened once per parent (a package's 10,000 files share a
/// few hundred) while that holds few descriptors next to the staged files'
/// (at most `budget / 8` of them: `writes` must leave that many of the
/// `budget` descriptors free), else once per file. Before the journal
/// (`before_journal`) each file counts one step of `ctl`'s progress and an
/// interrupt stops the staging; after it, the checkout runs to the end even
/// if interrupted, and the apply step counts the files as it places them.
/// Returns the staged files by path and the owner or mode problems met.
///
/// # Errors
/// Store damage, [`Error::Io`] naming the path, [`Error::Interrupted`].
pub(super) fn stage_round(
    store: &Store,
    scope: &Scope,
    writes: &[&Op],
    known: Option<&HashMap<ObjectId, &[u8]>>,
    budget: usize,
    before_journal: bool,
    ctl: Control<'_>,
) -> Result<(HashMap<RelPath, stage::Staged>, Vec<MetaProblem>)> {
    use rayon::prelude::*;
    let mut stage_dirs: HashMap<RelPath, crate::fsys::Dir> = HashMap::new();
    let parents: HashSet<RelPath> = writes.iter().map(|op| op.path().parent().unwrap_or_default()).collect();
    if parents.len() <= budget / 8 {
        for p in parents {
            let dir = stage::nearest_dir(scope, &p.join(b"x"), false)?;
            stage_dirs.insert(p, dir);
        }
    }
    let staged: Vec<(RelPath, Option<stage::Staged>, Vec<MetaProblem>)> = writes
        .par_iter()
        .map(|op| {
            if before_journal {
                ctl.check()?;
            }
            let Op::Write {
                path, kind, id, meta, ..
            } = op
            else {
                unreachable!("only writes are staged")
            };
            let mut problems = Vec::new();
            let staged = if *kind == EntryKind::File {
                let bytes = known.and_then(|k| k.get(id).copied());
                let dir = stage_dirs.get(&path.parent().unwrap_or_default());
                let record = known.is_some(); // an install: its scans trust the rows
                stage::stage_file(store, scope, dir, path, id, bytes, record, meta, &mut problems)?
            } else {
                None
            };
            if staged.is_none() {
                stage::verify_blob(store, id)?;
            }
            if before_journal {
                ctl.progress.inc(1, 0);
            }
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
    Ok((staged_map, problems))
}

/// The flush of the staged files' data, running on a thread of its own: one
/// `syncfs` per filesystem they are on, prepared before the journal is
/// written ([`FlushPlan`]), started once it is ([`FlushPlan::start`]) and
/// waited for before the journal is deleted ([`Flush::wait`]). It overlaps
/// linking the files (the `syncfs` mostly waits for the disk, the links
/// keep a core busy).
struct FlushPlan {
    /// A staged file (or prebuilt directory) on each filesystem (a
    /// duplicate descriptor).
    files: std::sync::Arc<Vec<(RelPath, std::os::fd::OwnedFd)>>,
    /// Fail as with `EIO` instead of flushing (tests: [`CheckoutHooks::fail_flush`]).
    fail: bool,
}

type FlushResult = std::result::Result<(), (RelPath, std::io::Error)>;

/// A started flush: its thread, or its outcome when it ran inline.
enum Flush {
    Running(std::thread::JoinHandle<FlushResult>),
    Done(FlushResult),
}

impl FlushPlan {
    /// Takes a descriptor on each filesystem `staged` files are on.
    ///
    /// # Errors
    /// [`Error::Io`] naming a staged file that cannot be duplicated (out
    /// of descriptors).
    fn prepare(
        scope: &Scope,
        staged: &HashMap<RelPath, stage::Staged>,
        prebuilt: &HashMap<RelPath, (Prebuilt, HashMap<RelPath, prebuilt::Built>)>,
        fail: bool,
    ) -> Result<FlushPlan> {
        let mut by_dev: HashMap<u64, (RelPath, std::os::fd::OwnedFd)> = HashMap::new();
        for (p, s) in staged {
            if let std::collections::hash_map::Entry::Vacant(v) = by_dev.entry(s.dev) {
                v.insert((p.clone(), s.file.try_clone().map_err(|e| scope.io_error(p, e))?.into()));
            }
        }
        for (p, (b, _)) in prebuilt {
            let st = b.root.stat_self().map_err(|e| scope.io_error(p, e))?;
            if let std::collections::hash_map::Entry::Vacant(v) = by_dev.entry(st.st_dev as u64) {
                v.insert((
                    p.clone(),
                    b.root.try_clone().map_err(|e| scope.io_error(p, e))?.into_fd(),
                ));
            }
        }
        Ok(FlushPlan {
            files: std::sync::Arc::new(by_dev.into_values().collect()),
            fail,
        })
    }

    fn run(files: &[(RelPath, std::os::fd::OwnedFd)], fail: bool) -> FlushResult {
        for (p, f) in files {
            if fail {
                return Err((p.clone(), std::io::Error::from(rustix::io::Errno::IO)));
            }
            rustix::fs::syncfs(f).map_err(|e| (p.clone(), std::io::Error::from(e)))?;
        }
        Ok(())
    }

    /// Starts the flush on a thread of its own (or runs it here when no
    /// thread can be started).
    fn start(self) -> Flush {
        if self.files.is_empty() {
            return Flush::Done(Ok(()));
        }
        let (files, fail) = (self.files.clone(), self.fail);
        match std::thread::Builder::new()
            .name("cplane-flush".into())
            .spawn(move || Self::run(&files, fail))
        {
            Ok(h) => Flush::Running(h),
            Err(_) => Flush::Done(Self::run(&self.files, self.fail)),
        }
    }
}

impl Flush {
    /// Waits for the flush to end.
    ///
    /// # Errors
    /// [`Error::Io`] naming a staged file of the filesystem whose `syncfs`
    /// failed (`EIO`, `ENOSPC`, ...), or naming the plane root when the
    /// flush thread panicked.
    fn wait(self, scope: &Scope) -> Result<()> {
        let outcome = match self {
            Flush::Running(h) => h.join().unwrap_or_else(|_| {
                // (A panic there is a failed flush: the caller marks the journal.)
                Err((RelPath::root(), std::io::Error::other("the flush thread panicked")))
            }),
            Flush::Done(r) => r,
        };
        outcome.map_err(|(p, e)| scope.io_error(&p, e))
    }
}

/// The file beside a plane's journal that says the checkout's data may not
/// be on disk (its flush failed): the replay then rewrites every file of
/// the journal from the store, flushing each, instead of trusting the bytes
/// it reads back (after a write error the page cache may hold bytes the
/// disk does not). Removed after the journal.
pub const UNFLUSHED: &str = "journal.unflushed";

/// Writes [`UNFLUSHED`] for `plane` (best effort: when even this cannot be
/// written, the error being reported says the plane needs attention).
fn mark_unflushed(store: &Store, plane: &str) {
    // A plain create, no fsync: the page cache holds wrong bytes only
    // until a reboot, and a reboot loses the page cache with the mark.
    let _ = std::fs::File::create(store.plane_dir(plane).join(UNFLUSHED));
}

/// After apply: flush, move refs (rollback), delete the journal.
pub(super) fn finish(store: &Store, scope: &Scope, j: &Journal, applied: &Applied) -> Result<()> {
    apply::sync_dirs(scope, &applied.touched_dirs, applied.unsynced_data)?;
    move_head(store, &j.plane, &j.new_head)?;
    let jp = journal_path(store, &j.plane);
    std::fs::remove_file(&jp).at(&jp)?;
    // A journal that came back after a crash would be replayed over later edits.
    crate::fsutil::fsync_dir(&store.plane_dir(&j.plane))?;
    // (Without a journal the mark means nothing; a crash before this line
    // leaves one that the next replay finds and removes.)
    let _ = std::fs::remove_file(store.plane_dir(&j.plane).join(UNFLUSHED));
    Ok(())
}
