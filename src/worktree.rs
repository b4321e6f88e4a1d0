//! Comparing a plane's working tree with its HEAD: `status` (stat cache) and
//! `verify` (full re-hash).

use crate::diff::{Change, ChangeKind, TreeSource, diff_trees};
use crate::error::Result;
use crate::finding::{Finding, code};
use crate::id::SnapshotId;
use crate::object::{Snapshot, Tree};
use crate::plane::Plane;
use crate::progress::Progress;
use crate::scan::{Record, ScanOptions, ScanResult, scan};
use crate::snapshot::index_path;
use crate::store::Store;
use crate::store::index::StatCache;
use crate::store::lock::StoreLock;
use std::time::Instant;

/// The working tree against HEAD.
#[derive(Debug)]
pub struct WorktreeReport {
    /// HEAD, if the plane has one.
    pub head: Option<(SnapshotId, Snapshot)>,
    /// Differences from HEAD to the working tree, in tree order.
    pub changes: Vec<Change>,
    /// The scan itself: root, trees, findings (files that could not be scanned —
    /// unreadable, special, unstable), stat-cache rows, counters.
    pub scan: ScanResult,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl WorktreeReport {
    /// True when there is nothing to report.
    pub fn is_clean(&self) -> bool {
        self.changes.is_empty() && self.scan.findings.is_empty()
    }

    /// Every change and finding as findings with content-pass codes, sorted by path.
    pub fn all_findings(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self.changes.iter().map(change_finding).collect();
        out.extend(self.scan.findings.iter().cloned());
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// The content-pass finding for one change.
pub fn change_finding(c: &Change) -> Finding {
    let (code, message) = match c.kind {
        ChangeKind::Modified => (
            code::MODIFIED,
            match (c.old, c.new) {
                (Some(o), Some(n)) if o.kind != n.kind => format!(
                    "bytes and kind differ from HEAD ({} {} -> {} {})",
                    o.kind.name(),
                    o.id.short(12),
                    n.kind.name(),
                    n.id.short(12)
                ),
                (Some(o), Some(n)) => format!(
                    "bytes differ from HEAD (blake3 {} -> {})",
                    o.id.short(12),
                    n.id.short(12)
                ),
                _ => "bytes differ from HEAD".into(),
            },
        ),
        ChangeKind::Added => (code::ADDED, "not in HEAD: snapshot it or remove it".into()),
        ChangeKind::Deleted => (
            code::DELETED,
            "in HEAD but missing: restore it with `cplane rollback HEAD`".into(),
        ),
        ChangeKind::KindChanged => (
            code::KIND_CHANGED,
            match (c.old, c.new) {
                (Some(o), Some(n)) => format!("kind changed from {} to {} (same bytes)", o.kind.name(), n.kind.name()),
                _ => "kind changed".into(),
            },
        ),
    };
    Finding::new(code, c.path.clone(), message)
}

/// Scans and compares; `use_cache` trusts the stat cache.
fn compare(store: &Store, plane: &Plane, use_cache: bool, progress: &dyn Progress) -> Result<WorktreeReport> {
    let record = if use_cache { Record::Hashed } else { Record::Nothing };
    let t0 = Instant::now();
    let cache = if use_cache {
        StatCache::load(&index_path(store, plane))
    } else {
        None
    };
    let head = match store.head(&plane.name)? {
        Some(id) => Some((id, store.read_snapshot(&id)?)),
        None => None,
    };
    let mut scanned = scan(
        plane,
        ScanOptions {
            cache: cache.as_ref(),
            writer: None,
            record,
            progress,
        },
    )?;
    let empty = Tree::default().encode_with_id().0;
    scanned.trees.entry(empty).or_default();
    let head_root = head.as_ref().map_or(empty, |(_, s)| s.root);
    let src = TreeSource::with_overlay(store, &scanned.trees);
    let mut changes = diff_trees(&src, &head_root, &scanned.root)?;
    // A path that could not be scanned is reported once, as its finding.
    changes.retain(|c| {
        !scanned
            .findings
            .iter()
            .any(|f| crate::object::is_under(&c.path, &f.path))
    });
    Ok(WorktreeReport {
        head,
        changes,
        scan: scanned,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Fast drift report: files whose stat matches the cache are not read.
///
/// When the store lock is free, the stat cache is refreshed afterwards (like
/// `git status`), keeping only ids already in the store, so later runs skip
/// files that were touched but not changed.
///
/// # Errors
/// I/O errors on the plane root; store damage while reading HEAD's trees.
pub fn status(store: &Store, plane: &Plane, progress: &dyn Progress) -> Result<WorktreeReport> {
    let report = compare(store, plane, true, progress)?;
    if report.scan.hashed_files > 0
        && let Ok(_lock) = StoreLock::try_acquire(store.dir())
    {
        // Patch the old cache with the files just hashed, keeping the invariant that
        // every id in a stat cache is in the store (snapshot trusts cache hits).
        // Content the store lacks drops its entry: the later scan time would otherwise
        // make the old entry look trustworthy.
        let path = index_path(store, plane);
        let mut cache = StatCache::load(&path).unwrap_or_default();
        cache.patch(
            report
                .scan
                .cache
                .entries
                .iter()
                .map(|e| (e.path.clone(), store.contains(&e.id).then(|| e.clone())))
                .collect(),
        );
        cache.scan_started_ns = report.scan.cache.scan_started_ns;
        let _ = cache.save(&path, &store.tmp_dir());
    }
    Ok(report)
}

/// Full integrity check: every file is re-read and re-hashed; the cache is ignored.
/// HEAD itself is checked too: every tree of it must read back and hash to its
/// id, and every blob it names must be in the store. Stored blob bytes are not
/// re-hashed here (that would double the cost); `fsck` does that.
///
/// # Errors
/// As [`status`], plus [`crate::Error::CorruptObject`] / [`crate::Error::MissingObject`]
/// for a damaged HEAD.
pub fn verify(store: &Store, plane: &Plane, progress: &dyn Progress) -> Result<WorktreeReport> {
    let report = compare(store, plane, false, progress)?;
    if let Some((_, head)) = &report.head {
        check_tree(store, &head.root)?;
    }
    Ok(report)
}

/// Reads every tree under `root` from the store (verifying each) and checks that every blob is present.
fn check_tree(store: &Store, root: &crate::id::TreeId) -> Result<()> {
    use rayon::prelude::*;
    let tree = store.read_tree(root)?;
    tree.entries.par_iter().try_for_each(|e| {
        if e.kind == crate::object::EntryKind::Dir {
            check_tree(store, &e.tree_id())
        } else if store.locate(&e.id).is_some() {
            Ok(())
        } else {
            Err(crate::Error::MissingObject {
                id: e.id.to_hex(),
                kind: "blob",
            })
        }
    })
}

/// Scans the working tree without storing anything (for `diff REF`).
///
/// # Errors
/// As [`status`].
pub fn working_tree(store: &Store, plane: &Plane, progress: &dyn Progress) -> Result<WorktreeReport> {
    compare(store, plane, true, progress)
}
