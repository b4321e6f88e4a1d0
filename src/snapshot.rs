//! Sealing a plane's working tree as a snapshot and checkpoint.
//!
//! Order of durability: every new blob and tree goes into per-thread packs,
//! the snapshot object follows, the packs and their indexes are fsynced, and
//! only then do the checkpoint ref and HEAD move. A crash at any point leaves
//! the previous HEAD intact (at worst, unreferenced packs that `fsck` lists).

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::object::{ObjectKind, Snapshot, SnapshotKind};
use crate::plane::Plane;
use crate::progress::Progress;
use crate::scan::{ScanOptions, scan};
use crate::store::Store;
use crate::store::index::{StatCache, now_ns};
use crate::store::lock::StoreLock;
use crate::store::pack::WriteStats;
use serde::Serialize;
use std::path::PathBuf;

/// Prefix of default checkpoint names.
pub const DEFAULT_PREFIX: &str = "VER";
/// Prefix of rescue checkpoints sealed by rollback.
pub const RESCUE_PREFIX: &str = "RESCUE";

/// How to seal.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// Checkpoint name; `None` for `PREFIX-YYYYMMDDHHMMSS` (UTC), made unique.
    pub name: Option<String>,
    /// Prefix of the default name.
    pub prefix: &'static str,
    /// Message stored in the snapshot.
    pub message: String,
    /// Why the snapshot is sealed.
    pub kind: SnapshotKind,
    /// Move HEAD to the new snapshot (a rescue checkpoint only gets its checkpoint ref).
    pub move_head: bool,
    /// Write the refreshed stat cache (rollback writes it once, at its end, instead).
    pub save_cache: bool,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            name: None,
            prefix: DEFAULT_PREFIX,
            message: String::new(),
            kind: SnapshotKind::Checkpoint,
            move_head: true,
            save_cache: true,
        }
    }
}

/// What sealing did.
#[derive(Debug, Clone, Serialize)]
pub struct SealReport {
    /// The new snapshot's id.
    pub id: SnapshotId,
    /// The snapshot itself.
    #[serde(skip)]
    pub snapshot: Snapshot,
    /// Objects and bytes added to the store.
    pub write: WriteStats,
    /// Files read and hashed (the rest were unchanged per the stat cache).
    pub hashed_files: u64,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// Plane-relative directories skipped because they hold another store.
    #[serde(skip)]
    pub nested_stores: Vec<Vec<u8>>,
    /// Stat-cache entries from the scan: every file of the new snapshot when the
    /// cache was saved, only the files read and hashed when it was not.
    #[serde(skip)]
    pub cache: StatCache,
}

/// `.cp/planes/<plane>/index`.
pub fn index_path(store: &Store, plane: &Plane) -> PathBuf {
    store.plane_dir(&plane.name).join("index")
}

/// A checkpoint name not yet used in `plane`: `name` itself (error if taken), or
/// `PREFIX-YYYYMMDDHHMMSS` with `-2`, `-3`, ... appended until unique.
///
/// # Errors
/// [`Error::Invalid`] when an explicit `name` is invalid or already taken.
pub fn unique_name(store: &Store, plane: &str, name: Option<&str>, prefix: &str, time_ns: i64) -> Result<String> {
    if let Some(n) = name {
        if n == "HEAD" {
            return Err(Error::invalid(
                "`HEAD` always means the plane's head; choose another --name",
            ));
        }
        if n.starts_with(&format!("{RESCUE_PREFIX}-")) {
            return Err(Error::invalid(format!(
                "names starting with `{RESCUE_PREFIX}-` are reserved for rollback's rescue checkpoints; choose another --name"
            )));
        }
        if crate::id::is_hex(n) && n.len() >= crate::id::MIN_PREFIX_LEN_HEX {
            return Err(Error::invalid(format!(
                "`{n}` looks like a snapshot id prefix and would hide one; choose a name that is not only hex digits"
            )));
        }
        if !crate::store::refs::valid_name(n) {
            return Err(Error::invalid(format!(
                "invalid checkpoint name `{n}`: use letters, digits, `.`, `_` and `-` (not starting with `.` or `-`, at most 200 bytes)"
            )));
        }
        if store.checkpoint(plane, n)?.is_some() {
            return Err(Error::invalid(format!(
                "checkpoint `{n}` already exists in plane `{plane}`; choose another --name"
            )));
        }
        return Ok(n.to_string());
    }
    let base = format!("{prefix}-{}", crate::timefmt::stamp(time_ns));
    let mut candidate = base.clone();
    let mut i = 2;
    while store.checkpoint(plane, &candidate)?.is_some() {
        candidate = format!("{base}-{i}");
        i += 1;
    }
    Ok(candidate)
}

/// Writes a snapshot object durably, then its checkpoint ref, then HEAD.
///
/// # Errors
/// [`Error::Io`] from the store.
pub fn commit(store: &mut Store, _lock: &StoreLock, snapshot: &Snapshot) -> Result<SnapshotId> {
    let (id, body) = snapshot.encode_with_id();
    store.transaction(|w| w.add(ObjectKind::Snapshot, id.0, &body))?;
    store.set_checkpoint(&snapshot.plane, &snapshot.name, &id)?;
    store.set_head(&snapshot.plane, &id)?;
    Ok(id)
}

/// After a plane was carved out of `outer`, records that in `outer`'s history:
/// a new checkpoint whose root is HEAD's root without the carved-out subtrees.
/// Nothing is scanned, so other drift in `outer` stays drift. Returns the new
/// snapshot, or `None` when HEAD had nothing under the carve-outs.
///
/// # Errors
/// Store damage while reading HEAD; I/O errors while writing.
pub fn seal_carve_out(
    store: &mut Store,
    lock: &StoreLock,
    outer: &Plane,
    carved: &str,
) -> Result<Option<(SnapshotId, Snapshot)>> {
    let Some(head_id) = store.head(&outer.name)? else {
        return Ok(None);
    };
    let head = store.read_snapshot(&head_id)?;
    let (root, _) = store.transaction(|w| crate::plane::prune_carve_outs(w, head.root, &outer.carve_outs))?;
    if root == head.root {
        return Ok(None);
    }
    let all = crate::diff::flatten(&crate::diff::TreeSource::store(store), &root)?;
    let now = now_ns();
    let snapshot = Snapshot {
        plane: outer.name.clone(),
        name: unique_name(store, &outer.name, None, DEFAULT_PREFIX, now)?,
        root,
        parent: Some(head_id),
        kind: SnapshotKind::Checkpoint,
        time_unix_ns: now,
        message: format!("carve out plane {carved}"),
        files: all.len() as u64,
        bytes: all.iter().map(|(_, s)| s.size).sum(),
    };
    let id = commit(store, lock, &snapshot)?;
    Ok(Some((id, snapshot)))
}

/// Seals `plane` as a new snapshot and checkpoint and (unless told not to) moves HEAD to it.
///
/// Uses and refreshes the plane's stat cache, so unchanged files are not re-read.
///
/// # Errors
/// [`Error::Refused`] (nothing written) when the tree has findings — an
/// unreadable or special file, or one that kept changing while hashed;
/// [`Error::Invalid`] for a taken or bad `--name`; I/O and store errors.
pub fn seal(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    opts: SealOptions,
    progress: &dyn Progress,
) -> Result<SealReport> {
    let started = now_ns();
    let name = unique_name(store, &plane.name, opts.name.as_deref(), opts.prefix, started)?;
    let parent = store.head(&plane.name)?;
    let cache_path = index_path(store, plane);
    let cache = StatCache::load(&cache_path);
    progress.phase("hashing");
    let ((snapshot, id, scanned), write) = store.transaction(|w| {
        let mut scanned = scan(
            plane,
            ScanOptions {
                cache: cache.as_ref(),
                writer: Some(w),
                // Without saving, only the files actually read are worth returning.
                record: if opts.save_cache {
                    crate::scan::Record::All
                } else {
                    crate::scan::Record::Hashed
                },
                progress,
            },
        )?;
        if !scanned.findings.is_empty() {
            return Err(Error::Refused {
                action: "snapshot",
                findings: std::mem::take(&mut scanned.findings),
            });
        }
        let snapshot = Snapshot {
            plane: plane.name.clone(),
            name,
            root: scanned.root,
            parent,
            kind: opts.kind,
            time_unix_ns: started,
            message: opts.message,
            files: scanned.files,
            bytes: scanned.bytes,
        };
        let (id, body) = snapshot.encode_with_id();
        w.add(ObjectKind::Snapshot, id.0, &body)?;
        crate::interrupt::check()?;
        progress.phase("writing");
        Ok((snapshot, id, scanned))
    })?;
    // The old cache is not needed any more; freeing 100,000 entries one by one
    // takes longer than the rest of an unchanged snapshot, so do it aside.
    let had_cache = cache.is_some();
    std::thread::spawn(move || drop(cache));
    store.set_checkpoint(&plane.name, &snapshot.name, &id)?;
    if opts.move_head {
        store.set_head(&plane.name, &id)?;
    }
    // The cache is an accelerator: failing to save it loses speed, not data. When
    // nothing was read, the old cache still holds (deleted paths are harmless).
    if opts.save_cache && (scanned.hashed_files > 0 || !had_cache) {
        let _ = scanned.cache.save(&cache_path, &store.tmp_dir());
    }
    // Maintenance, not part of the snapshot: a failure here loses nothing.
    let _ = store.maybe_repack(lock);
    Ok(SealReport {
        id,
        snapshot,
        write,
        hashed_files: scanned.hashed_files,
        hashed_bytes: scanned.hashed_bytes,
        nested_stores: scanned.nested_stores,
        cache: scanned.cache,
    })
}
