//! Comparing a plane's working tree with its HEAD: `status` (stat cache) and
//! `verify` (full re-hash).
//!
//! Both hold the plane's [`WorktreeLock`] shared while they read, so a
//! rollback or restore of the same plane (which holds it exclusively while it
//! applies) is seen entirely or not at all: a report is of the state before
//! or after a concurrent checkout, never a mixture.

use crate::control::Control;
use crate::diff::{Change, ChangeKind, TreeSource, diff_states};
use crate::error::{Error, Result};
use crate::finding::{Code, Finding};
use crate::id::SnapshotId;
use crate::object::{EntryKind, Snapshot, Tree};
use crate::plane::Plane;
use crate::scan::{Record, ScanOptions, ScanResult, scan};
use crate::scope::Scope;
use crate::snapshot::index_path;
use crate::store::Store;
use crate::store::index::StatCache;
use crate::store::lock::{StoreLock, WorktreeLock};
use std::time::Instant;

/// The working tree against HEAD.
#[derive(Debug)]
pub struct WorktreeReport {
    /// HEAD, if the plane has one.
    pub head: Option<(SnapshotId, Snapshot)>,
    /// Differences from HEAD (or the base asked for) to the working tree, in tree order (including
    /// directories implied by their contents; see [`Change::is_reported`]).
    pub changes: Vec<Change>,
    /// The scan itself: root, trees, findings (files that could not be scanned —
    /// unreadable, special, unstable), stat-cache rows, counters.
    pub scan: ScanResult,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl WorktreeReport {
    /// The changes worth printing: every change but directories implied by their contents.
    pub fn reported(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.is_reported())
    }

    /// True when there is nothing to report.
    pub fn is_clean(&self) -> bool {
        self.changes.is_empty() && self.scan.findings.is_empty()
    }

    /// Every change and finding as findings with content-pass codes, sorted by path.
    pub fn all_findings(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self.reported().flat_map(change_findings).collect();
        out.extend(self.scan.findings.iter().cloned());
        out.sort_by(|a, b| a.path.cmp(&b.path).then(a.code.cmp(&b.code)));
        out
    }
}

/// The content-pass findings for one change: one per aspect that differs
/// (bytes or presence, kind, mode, owner, hard links).
pub fn change_findings(c: &Change) -> Vec<Finding> {
    let mut out = Vec::new();
    let what = |s: &crate::diff::Side| s.kind.name();
    match (c.kind, &c.old, &c.new) {
        (ChangeKind::Added, _, Some(n)) => out.push(Finding::new(
            Code::Added,
            c.path.clone(),
            format!("{} not in HEAD", what(n)),
        )),
        (ChangeKind::Deleted, Some(o), _) => out.push(Finding::new(
            Code::Deleted,
            c.path.clone(),
            format!("{} in HEAD but missing", what(o)),
        )),
        (_, Some(o), Some(n)) => {
            let md = o.meta.diff(&n.meta);
            match c.kind {
                ChangeKind::Modified if o.kind != n.kind => out.push(Finding::new(
                    Code::Modified,
                    c.path.clone(),
                    format!(
                        "bytes and kind differ from HEAD ({} {} -> {} {})",
                        o.kind.name(),
                        o.id.short(12),
                        n.kind.name(),
                        n.id.short(12)
                    ),
                )),
                ChangeKind::Modified => out.push(Finding::new(
                    Code::Modified,
                    c.path.clone(),
                    format!(
                        "bytes differ from HEAD (blake3 {} -> {})",
                        o.id.short(12),
                        n.id.short(12)
                    ),
                )),
                ChangeKind::KindChanged => out.push(Finding::new(
                    Code::KindChanged,
                    c.path.clone(),
                    format!("kind changed from {} to {} (same bytes)", o.kind.name(), n.kind.name()),
                )),
                ChangeKind::LinksChanged => out.push(Finding::new(
                    Code::LinksChanged,
                    c.path.clone(),
                    "hard links differ from HEAD (linked to other paths, or no longer linked)",
                )),
                _ => {}
            }
            // A symlink has no mode of its own: a file <-> symlink change is its kind.
            if md.mode && o.kind != EntryKind::Symlink && n.kind != EntryKind::Symlink {
                out.push(Finding::new(
                    Code::ModeChanged,
                    c.path.clone(),
                    format!("mode changed {} -> {}", o.meta.mode_string(), n.meta.mode_string()),
                ));
            }
            if md.owner {
                out.push(Finding::new(
                    Code::OwnerChanged,
                    c.path.clone(),
                    format!("owner changed {} -> {}", o.meta.owner_string(), n.meta.owner_string()),
                ));
            }
        }
        _ => {}
    }
    out
}

/// Scans and compares with `base` (HEAD when `None`); `use_cache` trusts the
/// stat cache.
fn compare(
    store: &Store,
    plane: &Plane,
    use_cache: bool,
    base: Option<&Snapshot>,
    content: Option<&dyn crate::scan::ContentHook>,
    ctl: Control<'_>,
) -> Result<WorktreeReport> {
    let record = if use_cache { Record::Hashed } else { Record::Nothing };
    let t0 = Instant::now();
    let scope = Scope::open(plane)?;
    let _reading = WorktreeLock::shared(&store.plane_dir(&plane.name))?;
    if crate::checkout::has_journal(store, &plane.name) {
        return Err(Error::CheckoutInProgress {
            plane: plane.name.clone(),
            holder: "interrupted; any writing cplane command in the plane finishes it".into(),
        });
    }
    let cache = if use_cache {
        crate::snapshot::load_stat_cache(store, plane)
    } else {
        None
    };
    let head = match store.head(&plane.name)? {
        Some(id) => Some((id, store.read_snapshot(&id)?)),
        None => None,
    };
    // About what the base recorded: the bar's total (an estimate).
    if let Some(s) = base.or(head.as_ref().map(|(_, s)| s)) {
        ctl.progress.total(s.files, s.bytes);
    }
    let mut scanned = scan(
        &scope,
        ScanOptions {
            cache: cache.as_ref(),
            writer: None,
            record,
            ctl,
            content,
        },
    )?;
    let empty = Tree::empty_id();
    scanned.trees.entry(empty).or_default();
    let base = base.or(head.as_ref().map(|(_, s)| s));
    let (base_root, base_links) = base.map_or((empty, &[][..]), |s| (s.root, &s.links[..]));
    let src = TreeSource::with_overlay(store, &scanned.trees);
    let mut changes = diff_states(&src, (&base_root, base_links), (&scanned.root, &scanned.links))?;
    // Excluded paths are not compared: a path HEAD has that is excluded now
    // (or lies in an excluded directory) is not reported as deleted.
    if scanned.excluded > 0 || !scanned.exclusions.is_empty() {
        let gone = &scanned.excluded_paths;
        let on_disk = |p: &crate::path::RelPath| {
            gone.binary_search(p).is_ok() || p.ancestors().iter().any(|a| gone.binary_search(a).is_ok())
        };
        changes.retain(|c| {
            let Some(old) = c.old.as_ref().filter(|_| c.new.is_none()) else {
                return true;
            };
            !(on_disk(&c.path) || scanned.exclusions.excludes(&c.path, old.kind == EntryKind::Dir))
        });
    }
    // A path that could not be scanned is reported once, as its finding.
    if !scanned.findings.is_empty() {
        changes.retain(|c| !scanned.findings.iter().any(|f| c.path.starts_with(&f.path)));
    }
    let report = WorktreeReport {
        head,
        changes,
        scan: scanned,
        seconds: t0.elapsed().as_secs_f64(),
    };
    // Freeing a large cache row by row costs more than the rest of an
    // unchanged status: done aside.
    std::thread::spawn(move || drop(cache));
    Ok(report)
}

/// Fast drift report: files whose stat matches the cache are not read.
///
/// When the store lock is free, the stat cache is refreshed afterwards (like
/// `git status`), keeping only ids already in the store, so later runs skip
/// files that were touched but not changed.
///
/// # Errors
/// I/O errors on the plane root; [`Error::CheckoutInProgress`] when an
/// interrupted checkout must be finished first; store damage while reading HEAD's trees.
pub fn status(store: &Store, plane: &Plane, ctl: Control<'_>) -> Result<WorktreeReport> {
    status_with(store, plane, true, ctl)
}

/// [`status`]; with `refresh` false the stat cache is left as it is (no
/// store lock is tried: `git status --no-optional-locks`).
///
/// # Errors
/// As [`status`].
pub fn status_with(store: &Store, plane: &Plane, refresh: bool, ctl: Control<'_>) -> Result<WorktreeReport> {
    let report = compare(store, plane, true, None, None, ctl)?;
    if refresh
        && (report.scan.hashed_files > 0 || report.scan.new_listings > 0)
        && let Ok(_lock) = StoreLock::try_acquire(store.dir())
    {
        // Patch the old cache with the files just hashed, keeping the invariant that
        // every id in a stat cache is in the store (snapshot trusts cache hits).
        // Content the store lacks drops its entry: the later scan time would otherwise
        // make the old entry look trustworthy.
        //
        // A gc may have run since this scan began: it drops the rows naming
        // the blobs it removes, and those blobs may still be in the packs
        // this process opened (unlinked, but open). So the cache to patch is
        // the one on disk now, and "in the store" is asked of the packs there
        // now: the ones loaded when the pack indexes on disk are exactly
        // those (no gc, no other writer since), else the store reopened.
        let path = index_path(store, plane);
        let on_disk: Option<std::collections::BTreeSet<std::path::PathBuf>> =
            std::fs::read_dir(store.packs_dir()).ok().map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "idx"))
                    .collect()
            });
        let loaded: std::collections::BTreeSet<std::path::PathBuf> =
            store.packs().iter().map(|p| p.idx_path.clone()).collect();
        let reopened;
        let fresh = if on_disk.as_ref() == Some(&loaded) {
            store
        } else {
            match Store::open(store.root()) {
                Ok(s) => {
                    reopened = s;
                    &reopened
                }
                Err(_) => return Ok(report),
            }
        };
        let mut cache = StatCache::load(&path).unwrap_or_default();
        // Rows racy under the old time that this scan did not read again
        // (a directory it did not enter) must not become trusted under the
        // new one.
        cache.drop_racy();
        cache.patch_dirs(report.scan.cache.dirs.clone());
        cache.patch(
            report
                .scan
                .cache
                .entries
                .iter()
                .map(|e| (e.path.clone(), fresh.contains(&e.id).then(|| e.clone())))
                .collect(),
        );
        cache.scan_started_ns = report.scan.cache.scan_started_ns;
        let _ = cache.save(&path, &store.tmp_dir());
    }
    Ok(report)
}

/// For a command that holds the store lock (so no gc runs, and
/// [`status_with`] cannot save the stat cache): the rows of the files
/// `report`'s scan hashed are remembered while the lock is held
/// ([`Store::note_written`]), so that the command's later scans of `plane`
/// trust them instead of hashing the same files again — only rows that
/// were not racy when read (ctime more than the margin before the scan
/// began: a later change gets a later ctime) and whose blobs are in the
/// store (a snapshot trusts a row's blob to be there). Files an install
/// wrote a second ago are racy under the saved cache's time, and each of
/// an upgrade's five scans hashed all of them again.
pub fn note_hashed(store: &Store, plane: &Plane, report: &WorktreeReport) {
    let started = report.scan.cache.scan_started_ns;
    let rows = report
        .scan
        .cache
        .entries
        .iter()
        .filter(|e| !e.stat.is_racy(started) && store.contains(&e.id))
        .cloned()
        .collect();
    store.note_written(&plane.name, rows);
}

/// Full integrity check: every file is re-read and re-hashed; the cache is ignored.
/// HEAD itself is checked too: every tree of it must read back and hash to its
/// id, and every blob it names must be in the store. Stored blob bytes are not
/// re-hashed here (that would double the cost); `fsck` does that.
///
/// # Errors
/// As [`status`], plus [`Error::CorruptObject`] / [`Error::MissingObject`]
/// for a damaged HEAD.
pub fn verify(store: &Store, plane: &Plane, ctl: Control<'_>) -> Result<WorktreeReport> {
    verify_with(store, plane, None, ctl)
}

/// [`verify`], showing `content` the bytes of the files it reads whole (a
/// governed verify's content gates run on them, so each file is read once).
///
/// # Errors
/// As [`verify`].
pub fn verify_with(
    store: &Store,
    plane: &Plane,
    content: Option<&dyn crate::scan::ContentHook>,
    ctl: Control<'_>,
) -> Result<WorktreeReport> {
    let report = compare(store, plane, false, None, content, ctl)?;
    if let Some((_, head)) = &report.head {
        check_tree(store, &head.root)?;
    }
    Ok(report)
}

/// Reads every tree under `root` from the store (verifying each) and checks
/// that every blob is present. Breadth-first over levels, each level in parallel.
fn check_tree(store: &Store, root: &crate::id::TreeId) -> Result<()> {
    use rayon::prelude::*;
    let mut level = vec![*root];
    let mut seen = std::collections::HashSet::new();
    while !level.is_empty() {
        let next: Vec<Vec<crate::id::TreeId>> = level
            .par_iter()
            .map(|id| {
                let tree = store.read_tree(id)?;
                let mut subdirs = Vec::new();
                for e in &tree.entries {
                    if e.kind == EntryKind::Dir {
                        subdirs.push(e.tree_id());
                    } else if store.locate(&e.id).is_none() {
                        return Err(Error::MissingObject {
                            id: e.id.to_hex(),
                            kind: "blob",
                        });
                    }
                }
                Ok(subdirs)
            })
            .collect::<Result<_>>()?;
        level = next.into_iter().flatten().filter(|id| seen.insert(*id)).collect();
    }
    Ok(())
}

/// The working tree against `base` instead of HEAD (for `diff REF`): its
/// changes go from `base` to the working tree. Nothing is stored.
///
/// # Errors
/// As [`status`].
pub fn against(store: &Store, plane: &Plane, base: &Snapshot, ctl: Control<'_>) -> Result<WorktreeReport> {
    compare(store, plane, true, Some(base), None, ctl)
}
