//! Rollback: make a plane's files exactly a snapshot's, losing nothing; and
//! finishing a checkout that was interrupted.
//!
//! 1. Seal the current state as a rescue checkpoint (`RESCUE-…`), so the
//!    rollback can itself be undone. HEAD does not move yet; if anything fails
//!    before the journal is written, the rescue checkpoint is dropped again.
//! 2. Prune from the target the roots of planes nested in this one (their
//!    files are not this plane's to write), store the new HEAD snapshot (root
//!    = target root, parent = rescue).
//! 3. Hand both roots to the checkout engine ([`crate::checkout`]), which
//!    stages, journals, applies only the differences, and moves HEAD.
//!
//! History is never rewritten: HEAD becomes a new checkpoint. A rollback
//! that finds the plane already as the target has it keeps no rescue
//! checkpoint (it would equal the result), and when HEAD records that
//! state too it seals and moves nothing.

use crate::checkout::{self, CheckoutHooks, CheckoutKind, CheckoutReport, Request};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::object::{ObjectKind, Snapshot, SnapshotKind};
use crate::plane::{Plane, prune_carve_outs};
use crate::revision::Resolved;
use crate::scope::Scope;
use crate::snapshot::{
    RESCUE_PREFIX, SealOptions, SealReport, count_files, index_path, prune_links, seal, unique_name,
};
use crate::store::Store;
use crate::store::index::{StatCache, now_ns};
use crate::store::lock::StoreLock;

/// Seals the plane as it is now into a `RESCUE-…` checkpoint without moving HEAD
/// or rewriting the stat cache; a refusal is reported as `action`'s. FIFOs,
/// sockets and devices do not refuse it: they are left out and listed in
/// [`SealReport::special`].
///
/// # Errors
/// As [`seal`].
pub fn seal_rescue(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    message: String,
    action: &'static str,
    ctl: Control<'_>,
) -> Result<SealReport> {
    let opts = SealOptions {
        name: None,
        prefix: RESCUE_PREFIX,
        message,
        kind: SnapshotKind::Rescue,
        move_head: false,
        save_cache: false,
        ownership: None,
        // A socket next to a tampered file must not keep the file tampered: the
        // rescue leaves special files out, and the checkout leaves them in place.
        allow_special: true,
        skip_unchanged: false,
        passed_gates: None,
        expect_owners: None,
    };
    seal(store, lock, plane, opts, ctl).map_err(|e| e.refused_as(action))
}

/// [`Error::WrongPlane`] unless `target` is a snapshot of `plane`.
pub(crate) fn same_plane(target: &Resolved, plane: &Plane) -> Result<()> {
    if target.plane.name != plane.name {
        return Err(Error::WrongPlane {
            snapshot: target.id.short(12),
            belongs_to: target.plane.name.clone(),
            asked: plane.name.clone(),
        });
    }
    Ok(())
}

/// From this many files hashed by the rescue scan plus operations applied, a
/// rollback rewrites the stat cache; below, it leaves the old one, whose rows
/// for the rewritten files no longer match their stat (new inodes, new
/// ctimes), so the next scan simply re-reads those few files.
const CACHE_REWRITE_MIN: u64 = 1024;

/// Rolls `plane` back to `target`. See the module documentation for the steps.
///
/// Paths the plane's exclusion rules exclude now ([`crate::exclude`]) and
/// FIFOs, sockets and devices are left as they are: taken out of the tree
/// put in place (a directory holding only such paths stays, empty in the
/// new HEAD). The special files are listed in [`CheckoutReport::special`].
///
/// # Errors
/// [`Error::WrongPlane`] when `target` belongs to another plane; [`Error::Refused`]
/// when the current state cannot be sealed (unreadable files);
/// store damage when a needed object is corrupt (nothing in the plane is changed).
pub fn rollback(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    target: &Resolved,
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
) -> Result<CheckoutReport> {
    same_plane(target, plane)?;
    let mut rescue = seal_rescue(
        store,
        lock,
        plane,
        format!("state before rollback to {}", target.snapshot.name),
        "rollback",
        ctl,
    )?;
    // Every file's row, sorted: a rescue seal keeps them (`save_cache` false).
    let rescue_cache = std::mem::take(&mut rescue.cache);
    let special = std::mem::take(&mut rescue.special);
    let run = (|| {
        let mut scope = Scope::open(plane)?;
        // Parts of the target that now belong to nested planes or stores are not this plane's to write.
        scope.carve_out_more(rescue.nested_stores.iter().cloned());
        let mut carve_outs = scope.carve_outs().to_vec();
        // Paths the plane's exempt globs leave out now are not written either: the
        // rescue did not record what is there, so overwriting it would lose it.
        if let Some(ex) = scope.exempt() {
            let src = crate::diff::TreeSource::store(store);
            let mut last_dir: Option<crate::path::RelPath> = None;
            for (p, side) in crate::diff::flatten(&src, &target.snapshot.root)? {
                if last_dir.as_ref().is_some_and(|d| p.starts_with(d)) {
                    continue;
                }
                let is_dir = side.kind == crate::object::EntryKind::Dir;
                if ex.matches(&p, is_dir) {
                    if is_dir {
                        last_dir = Some(p.clone());
                    }
                    carve_outs.push(p);
                }
            }
            carve_outs.sort();
        }
        let (mut root, _) = store.transaction(|w| prune_carve_outs(w, target.snapshot.root, &carve_outs))?;
        // What the exclusion rules exclude now, and special files, are left alone:
        // the rescue did not record them, so writing over them would lose them.
        let mut keep_out = std::mem::take(&mut rescue.excluded_paths);
        keep_out.extend(special.iter().map(|f| f.path.clone()));
        let src = crate::diff::TreeSource::store(store);
        keep_out.extend(rescue.exclusions.excluded_in(
            &src,
            &root,
            &rescue.snapshot.root,
            &[crate::path::RelPath::root()],
        )?);
        if !keep_out.is_empty() {
            root = store
                .transaction(|w| crate::exclude::prune_paths(w, root, &keep_out))?
                .0;
            carve_outs.extend(keep_out);
            carve_outs.sort();
        }
        let (files, bytes) = if root == target.snapshot.root {
            (target.snapshot.files, target.snapshot.bytes)
        } else {
            count_files(store, &root)?
        };
        let links = prune_links(&target.snapshot.links, &carve_outs);
        // Already as the target has it: the rescue would equal the result,
        // so it is dropped; when HEAD records this state too, nothing at all
        // is sealed or moved.
        let mut parent = rescue.id;
        if rescue.snapshot.root == root && rescue.snapshot.links == links {
            store.remove_checkpoint(&plane.name, &rescue.snapshot.name)?;
            if let Some(head_id) = store.head(&plane.name)? {
                let head = store.read_snapshot(&head_id)?;
                if head.root == root && head.links == links {
                    return Ok(CheckoutReport {
                        journal: checkout::Journal {
                            plane: plane.name.clone(),
                            kind: CheckoutKind::Rollback,
                            target: target.id,
                            rescue: head_id,
                            rescue_name: rescue.snapshot.name.clone(),
                            new_head: None,
                            ops: Vec::new(),
                        },
                        changes: Vec::new(),
                        applied: checkout::Applied::default(),
                        seconds: 0.0,
                        special: special.clone(),
                    });
                }
                parent = head_id;
            }
        }
        let now = now_ns();
        let new_name = unique_name(store, &plane.name, None, crate::snapshot::DEFAULT_PREFIX, now)?;
        let new_snapshot = Snapshot {
            plane: plane.name.clone(),
            name: new_name.clone(),
            root,
            parent: Some(parent),
            kind: SnapshotKind::Rollback { target: target.id },
            time_unix_ns: now,
            message: format!("rollback to {} ({})", target.snapshot.name, target.id.short(12)),
            files,
            bytes,
            links: links.clone(),
            ownership: target.snapshot.ownership,
            ledger: crate::ledger::snapshot_ref(store, &plane.name),
        };
        let (new_head, body) = new_snapshot.encode_with_id();
        store.transaction(|w| w.add(ObjectKind::Snapshot, new_head.0, &body))?;
        let req = Request {
            kind: CheckoutKind::Rollback,
            target: target.id,
            target_root: root,
            target_links: links,
            rescue: rescue.id,
            rescue_name: rescue.snapshot.name.clone(),
            rescue_root: rescue.snapshot.root,
            rescue_links: rescue.snapshot.links.clone(),
            paths: Vec::new(),
            new_head: Some((new_head, new_name)),
            rescue_cache: &rescue_cache,
            known: None,
            prestaged: None,
            prebuilt: None,
        };
        checkout::checkout(store, &scope, req, hooks, ctl)
    })();
    let mut report = match run {
        Ok(r) => r,
        Err(e) => {
            checkout::drop_rescue_after(store, &plane.name, &rescue.snapshot.name, &e);
            return Err(e);
        }
    };
    refresh_cache(store, plane, &report, rescue_cache, rescue.hashed_files);
    report.special = special;
    Ok(report)
}

/// After a rollback that read or changed many files: the rescue scan's rows
/// (every file of the plane, all stored now) without the paths the checkout
/// changed become the stat cache, so the next scan re-reads only those.
fn refresh_cache(store: &Store, plane: &Plane, report: &CheckoutReport, mut rescue: StatCache, hashed: u64) {
    if hashed + report.journal.ops.len() as u64 >= CACHE_REWRITE_MIN {
        rescue.patch(report.journal.ops.iter().map(|op| (op.path().clone(), None)).collect());
        let _ = rescue.save(&index_path(store, plane), &store.tmp_dir());
    }
    // Freeing 100,000 entries one by one is slow; it needs no waiting for.
    std::thread::spawn(move || drop(rescue));
}

/// What finishing an interrupted checkout did.
#[derive(Debug)]
pub struct Finished {
    /// The replayed journal, with counts and problems.
    pub recovered: checkout::Recovered,
    /// The checkpoint holding what was found in the plane before the replay.
    pub found_rescue: String,
}

/// Finishes an interrupted rollback or restore of `plane`, if its journal
/// exists: seals what is there now (edits made since the crash are kept in
/// another rescue checkpoint; HEAD does not move), then replays the journal.
///
/// # Errors
/// [`Error::DamagedFile`] for a damaged journal; I/O or store errors while applying.
pub fn recover(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
) -> Result<Option<Finished>> {
    let jp = checkout::journal_path(store, &plane.name);
    if !jp.exists() {
        // (A mark left by a crash between the journal's deletion and its own.)
        let _ = std::fs::remove_file(store.plane_dir(&plane.name).join(checkout::UNFLUSHED));
        return Ok(None);
    }
    let j = checkout::journal::load(&jp)?;
    let found = seal_rescue(
        store,
        lock,
        plane,
        format!(
            "state found when finishing the interrupted {} to {}",
            j.kind.name(),
            j.target.short(12)
        ),
        "finishing the interrupted checkout",
        ctl,
    )?;
    // A replay that failed before sealed the same state: keep one checkpoint of it.
    let marker = store.plane_dir(&plane.name).join("journal.found");
    let mut found_name = found.snapshot.name.clone();
    if let Ok(prev) = std::fs::read_to_string(&marker)
        && let Ok(Some(prev_id)) = store.checkpoint(&plane.name, prev.trim())
        && let Ok(prev_snap) = store.read_snapshot(&prev_id)
        && prev_snap.root == found.snapshot.root
        && prev_snap.links == found.snapshot.links
    {
        let _ = store.remove_checkpoint(&plane.name, &found.snapshot.name);
        found_name = prev.trim().to_string();
    } else {
        let _ = crate::fsutil::write_atomic(&marker, format!("{found_name}\n").as_bytes(), &store.tmp_dir());
    }
    let mut scope = Scope::open(plane)?;
    scope.carve_out_more(found.nested_stores.iter().cloned());
    let recovered = checkout::recover(store, &scope, hooks, ctl)?.expect("the journal exists");
    let _ = std::fs::remove_file(&marker);
    Ok(Some(Finished {
        recovered,
        found_rescue: found_name,
    }))
}
