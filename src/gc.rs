//! Garbage collection: removes the objects no root reaches by rewriting the
//! packs that hold them (`store-format.md`, "Retention and reachability"
//! and "Garbage collection").
//!
//! Retention follows restic, not git: a checkpoint ref is what keeps a
//! snapshot's data, and a `parent` is history. So a checkpoint deleted or
//! pruned is really gone after a gc, even when a later snapshot names it as
//! its parent: a secret snapshotted by mistake can be removed.
//!
//! Order (each step durable before the next; a kill anywhere leaves a store
//! that `fsck` passes and that holds every reachable object):
//!
//! 1. under the store lock, mark: walk every root to the set of reachable
//!    ids ([`reachable`]);
//! 2. plan: a pack holding only reachable objects is kept as it is; every
//!    other pack ("dirty": it holds garbage or a second copy) is rewritten;
//! 3. verify every reachable record of the dirty packs (re-hash), then copy
//!    them verbatim, compressed, into one new pack, fsynced with its index
//!    and `packs/` ([`ObjectWriter::copy_record_from`]); a kill up to here
//!    leaves temporary files and at worst duplicates;
//! 4. drop the stat-cache rows naming blobs that are not reachable, durably
//!    (every id in a stat cache must be in the store);
//! 5. delete the dirty packs' indexes, then their packs, and fsync `packs/`;
//!    a kill between leaves index-less packs, which the next writer removes.
//!
//! Concurrent readers take no lock. They need none: a reader opens every
//! pack index (mapped) and pack (a descriptor) when it opens the store, and
//! on POSIX an unlinked file stays readable through descriptors already
//! open, so the kernel keeps an old pack's bytes exactly as long as a reader
//! holds it — an implicit reader lock with no waiting and no stale files.
//! A reader that lists `packs/` while a gc deletes lists again (the new pack
//! is in place first); one that looks for an object it has not loaded
//! re-lists and finds the new pack. See `store-format.md` for why not a
//! grace period.

use crate::control::Control;
use crate::error::{Error, Result};
use crate::id::{ObjectId, SnapshotId, TreeId};
use crate::object::EntryKind;
use crate::store::Store;
use crate::store::index::StatCache;
use crate::store::lock::StoreLock;
use crate::store::pack::{IdxEntry, PackIndex};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

/// Where a gc is, for test hooks that kill it there ([`GcHooks::at`]), in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GcStep {
    /// Reachability marked and the plan made; nothing written yet.
    Planned,
    /// The new pack and its index are durable; nothing removed yet.
    Packed,
    /// Stat-cache rows naming collected blobs are dropped; no pack removed yet.
    CachesPruned,
    /// The first old pack index is removed (its pack and the others not yet).
    Removing,
    /// Every old pack is removed; the ledger entries are not written yet.
    Removed,
}

impl GcStep {
    /// Every step, in order.
    pub const ALL: [GcStep; 5] = [
        GcStep::Planned,
        GcStep::Packed,
        GcStep::CachesPruned,
        GcStep::Removing,
        GcStep::Removed,
    ];

    /// A short name: `planned`, `packed`, `caches-pruned`, `removing`, `removed`.
    pub fn name(self) -> &'static str {
        match self {
            GcStep::Planned => "planned",
            GcStep::Packed => "packed",
            GcStep::CachesPruned => "caches-pruned",
            GcStep::Removing => "removing",
            GcStep::Removed => "removed",
        }
    }
}

/// Called at each [`GcStep`] of a gc that removes something (never in a
/// dry run): the CLI records its ledger intents at [`GcStep::Planned`], and
/// its debug builds pause at a step so crash tests can kill the process there.
pub trait GcHooks {
    /// The gc reached `step`.
    ///
    /// # Errors
    /// Whatever the hook reports; the gc stops with it. Before
    /// [`GcStep::Removing`] nothing reachable or unreachable is gone yet.
    fn at(&self, _step: GcStep) -> Result<()> {
        Ok(())
    }
}

/// No hooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoGcHooks;

impl GcHooks for NoGcHooks {}

/// What a gc found and did. Byte counts are on-disk bytes of pack files
/// and their indexes unless the field says otherwise.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Nothing was changed (`--dry-run`): the other fields say what would be.
    pub dry_run: bool,
    /// Distinct root snapshots (refs, pending journals).
    pub roots: u64,
    /// Reachable objects (snapshots, trees, blobs).
    pub reachable_objects: u64,
    /// Record bytes (header + stored, compressed body) of one copy of each
    /// reachable object.
    pub reachable_bytes: u64,
    /// Records removed: unreachable objects, and second copies of reachable ones.
    pub removed_objects: u64,
    /// Record bytes of the removed records.
    pub removed_bytes: u64,
    /// Of `removed_objects`, second copies of objects that are kept.
    pub duplicates_removed: u64,
    /// Packs before the gc.
    pub packs_before: u64,
    /// Packs kept as they were (they held only reachable objects).
    pub packs_kept: u64,
    /// Packs rewritten (reachable objects copied out) or deleted (none left).
    pub packs_rewritten: u64,
    /// New packs written (0 or 1).
    pub packs_written: u64,
    /// Packs after the gc.
    pub packs_after: u64,
    /// Bytes of `packs/` before.
    pub store_bytes_before: u64,
    /// Bytes of `packs/` after.
    pub store_bytes_after: u64,
    /// `store_bytes_before - store_bytes_after`.
    pub bytes_reclaimed: u64,
    /// Stat-cache rows dropped because they named collected blobs.
    pub stat_cache_rows_dropped: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The reachable set: every object id a gc must keep.
#[derive(Debug, Default)]
pub struct Reachable {
    /// Each reachable id, with whether a copy of it has been assigned (by the
    /// planner) to the store after the gc.
    ids: HashMap<ObjectId, bool>,
    /// Distinct root snapshots.
    pub roots: u64,
}

impl Reachable {
    /// True when `id` is reachable.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.ids.contains_key(id)
    }

    /// Number of reachable objects.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when nothing is reachable.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn insert(&mut self, id: ObjectId) -> bool {
        self.ids.insert(id, false).is_none()
    }
}

/// Marks every object a gc must keep, exactly as `store-format.md`,
/// "Retention and reachability", defines it:
///
/// * roots: every plane's `HEAD` and `checkpoints/<NAME>` (planes of
///   `config.json`), the refs of removed planes (`planes-removed/`), the
///   remote-tracking refs (`remotes/<NAME>/planes/…`), and
///   for a pending checkout journal its `target`,
///   `rescue`, `new_head` and the blobs its writes name;
/// * from each root snapshot: its `root` tree and everything below, its
///   `ownership` blob, and, when its tree holds
///   `registries/packages_registry.csv`, the manifest blob each row's
///   `manifest_digest` names and the attestation blob that manifest names;
/// * for a pending install (`install.pending`): its manifest, that
///   manifest's attestation and the blobs of its files.
///
/// `parent`, a rollback's `target` and ledger references are not followed.
///
/// # Errors
/// Store damage: a damaged ref or journal, a root snapshot or reachable tree
/// that is missing or does not decode ([`Error::MissingObject`],
/// [`Error::CorruptObject`], [`Error::DamagedFile`]). A gc never guesses
/// around damage: `fsck` reports it.
pub fn reachable(store: &Store, ctl: Control<'_>) -> Result<Reachable> {
    let mut live = Reachable::default();
    let mut roots: Vec<SnapshotId> = Vec::new();
    let mut extra_blobs: Vec<ObjectId> = Vec::new();
    for plane in &store.config().planes {
        if let Some(h) = store.head(&plane.name)? {
            roots.push(h);
        }
        roots.extend(store.checkpoints(&plane.name)?.into_iter().map(|(_, id)| id));
        let jp = crate::checkout::journal_path(store, &plane.name);
        if jp.exists() {
            let j = crate::checkout::journal::load(&jp)?;
            roots.push(j.target);
            roots.push(j.rescue);
            roots.extend(j.new_head.map(|(id, _)| id));
            extra_blobs.extend(j.ops.iter().filter_map(|op| match op {
                crate::checkout::journal::Op::Write { id, .. } => Some(*id),
                _ => None,
            }));
        }
        let pending = store
            .plane_dir(&plane.name)
            .join(crate::package::install::INSTALL_PENDING);
        if let Ok(text) = std::fs::read_to_string(&pending) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(digest) = v["manifest_digest"].as_str().and_then(ObjectId::from_hex) {
                extra_blobs.push(digest);
                if let Some((att, files)) = manifest_refs(store, &digest) {
                    extra_blobs.extend(att);
                    extra_blobs.extend(files);
                }
            }
        }
    }
    // Removed planes' archived refs stay roots until their directory is deleted.
    roots.extend(store.removed_plane_refs()?.into_iter().map(|(_, id)| id));
    // Remote-tracking refs (what the last pull or push saw on each remote)
    // are roots: `diff origin/main/HEAD` and the next push's walk read them.
    roots.extend(store.remote_refs()?.into_iter().map(|(_, id)| id));
    roots.sort();
    roots.dedup();
    live.roots = roots.len() as u64;
    ctl.progress.phase("marking");
    let mut registries: HashSet<ObjectId> = HashSet::new();
    for id in &roots {
        ctl.check()?;
        let snap = store.read_snapshot(id)?;
        live.insert(id.0);
        if let Some(o) = snap.ownership {
            live.insert(o);
        }
        walk_tree(store, &mut live, snap.root, &ctl)?;
        if let Some(reg) = packages_registry(store, snap.root)? {
            registries.insert(reg);
        }
    }
    // Package metadata: referenced from the packages registry of a root's
    // tree, not from the tree itself.
    for reg in registries {
        for digest in manifest_digests(store, &reg) {
            live.insert(digest);
            if let Some((att, _)) = manifest_refs(store, &digest) {
                live.ids.extend(att.map(|a| (a, false)));
            }
        }
    }
    // Kept whether or not they are stored: what is absent is not garbage,
    // and a pending install or checkout stores what it misses again.
    let extra: Vec<ObjectId> = extra_blobs.into_iter().filter(|b| store.contains(b)).collect();
    for b in extra {
        live.insert(b);
    }
    Ok(live)
}

/// Marks tree `root` and everything below it (explicit stack, each tree read once).
fn walk_tree(store: &Store, live: &mut Reachable, root: TreeId, ctl: &Control<'_>) -> Result<()> {
    if !live.insert(root.0) {
        return Ok(());
    }
    let mut stack = vec![root];
    while let Some(t) = stack.pop() {
        let tree = store.read_tree(&t)?;
        ctl.progress.inc(1, 0);
        for e in &tree.entries {
            let fresh = live.insert(e.id);
            if fresh && e.kind == EntryKind::Dir {
                stack.push(e.tree_id());
            }
        }
    }
    Ok(())
}

/// The blob id of `registries/packages_registry.csv` in tree `root`, if it is a file there.
pub(crate) fn packages_registry(store: &Store, root: TreeId) -> Result<Option<ObjectId>> {
    let mut at = root;
    let parts: Vec<&str> = crate::governance::PACKAGES.split('/').collect();
    for (i, name) in parts.iter().enumerate() {
        let tree = store.read_tree(&at)?;
        let Some(e) = tree.entries.iter().find(|e| e.name == name.as_bytes()) else {
            return Ok(None);
        };
        match (i + 1 == parts.len(), e.kind) {
            (true, EntryKind::File) => return Ok(Some(e.id)),
            (false, EntryKind::Dir) => at = e.tree_id(),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Every `manifest_digest` of a packages registry blob (any status: an
/// uninstalled row's manifest is kept too, as `show` may name it). A
/// registry that does not parse names nothing (`verify` reports it).
pub(crate) fn manifest_digests(store: &Store, registry: &ObjectId) -> Vec<ObjectId> {
    let Ok(bytes) = crate::governance::plane::read_blob(store, registry) else {
        return Vec::new();
    };
    let Ok(t) = crate::governance::registry::Table::parse(
        &bytes,
        crate::governance::PACKAGES,
        &["manifest_digest"],
        &["id", "version", "spec_id", "framework_id", "status"],
    ) else {
        return Vec::new();
    };
    t.rows()
        .filter_map(|r| ObjectId::from_hex(r.get("manifest_digest")))
        .collect()
}

/// The attestation id a stored manifest names, and the blob ids of its
/// files; `None` when the manifest is not stored or not JSON.
pub(crate) fn manifest_refs(store: &Store, digest: &ObjectId) -> Option<(Option<ObjectId>, Vec<ObjectId>)> {
    if !store.contains(digest) {
        return None;
    }
    let bytes = crate::governance::plane::read_blob(store, digest).ok()?;
    if let Ok(m) = crate::package::Manifest::parse(&bytes) {
        return Some((Some(m.attestation), m.files.iter().map(|f| f.blake3).collect()));
    }
    // A manifest this build no longer parses strictly still names its attestation.
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((v["attestation"].as_str().and_then(ObjectId::from_hex), Vec::new()))
}

/// One pack and what the plan does with it.
struct PackPlan {
    /// Position in `store.packs()`.
    index: usize,
    /// Reachable records to copy out, in pack order (empty: the pack is only deleted).
    copy: Vec<IdxEntry>,
}

/// Bytes of a pack and its index on disk.
fn pack_bytes(p: &PackIndex) -> u64 {
    let len = |path: &PathBuf| std::fs::metadata(path).map_or(0, |m| m.len());
    len(&p.pack_path) + len(&p.idx_path)
}

/// Removes every object no root reaches (see the module documentation for
/// the order that makes it crash-safe), holding the writer `lock` for the
/// whole run. With `dry_run`, only marks and plans, and reports what it
/// would do. Packs that hold only reachable objects are kept as they are;
/// every other pack's reachable records go, verified and verbatim, into one
/// new pack.
///
/// # Errors
/// Store damage found while marking or verifying a record to keep (nothing
/// is deleted then; run `fsck`): [`Error::MissingObject`],
/// [`Error::CorruptObject`], [`Error::DamagedFile`] (also for a pack index
/// that does not open: its objects could be reachable);
/// [`Error::Interrupted`] before the new pack is durable (nothing changed);
/// [`Error::Io`].
pub fn gc(
    store: &mut Store,
    lock: &StoreLock,
    dry_run: bool,
    hooks: &dyn GcHooks,
    ctl: Control<'_>,
) -> Result<GcReport> {
    let _ = lock;
    let t0 = Instant::now();
    if let Some((path, reason)) = store.broken_packs().first() {
        return Err(Error::DamagedFile {
            path: path.clone(),
            reason: reason.clone(),
        });
    }
    let mut live = reachable(store, ctl)?;
    let mut report = GcReport {
        dry_run,
        roots: live.roots,
        reachable_objects: live.len() as u64,
        packs_before: store.packs().len() as u64,
        store_bytes_before: store.packs().iter().map(pack_bytes).sum(),
        ..GcReport::default()
    };
    // Plan. Clean packs (only reachable objects) are kept and their objects
    // assigned first; the reachable objects of every other pack are copied
    // unless a kept pack (or an earlier copy) has them already.
    ctl.progress.phase("planning");
    let packs = store.packs();
    let mut entries: Vec<Vec<IdxEntry>> = Vec::with_capacity(packs.len());
    for p in packs {
        let mut list = Vec::with_capacity(p.len());
        for i in 0..p.len() {
            list.push(p.entry(i).ok_or_else(|| Error::DamagedFile {
                path: p.idx_path.clone(),
                reason: format!("entry {i} has an unknown kind byte"),
            })?);
        }
        entries.push(list);
    }
    let clean: Vec<bool> = entries.iter().map(|l| l.iter().all(|e| live.contains(&e.id))).collect();
    // When a pack is rewritten anyway, the small clean ones are folded into
    // the new pack too (as `git gc` repacks and restic's prune merges small
    // packs): the store after a gc has no more packs, so no more pack and
    // index overhead, than a fresh `init` of what it keeps.
    let any_dirty = clean.iter().any(|c| !c);
    let small =
        |p: &PackIndex| p.len() < crate::store::SMALL_PACK_OBJECTS && pack_bytes(p) < crate::store::SMALL_PACK_BYTES;
    let clean: Vec<bool> = clean
        .iter()
        .zip(packs)
        .map(|(c, p)| *c && !(any_dirty && small(p)))
        .collect();
    for (list, _) in entries.iter().zip(&clean).filter(|(_, c)| **c) {
        for e in list {
            if let Some(seen) = live.ids.get_mut(&e.id) {
                if !*seen {
                    report.reachable_bytes += e.len;
                }
                *seen = true;
            }
        }
    }
    let mut plans: Vec<PackPlan> = Vec::new();
    for (i, list) in entries.iter().enumerate() {
        if clean[i] {
            continue;
        }
        let mut copy = Vec::new();
        for e in list {
            match live.ids.get_mut(&e.id) {
                Some(seen) if !*seen => {
                    *seen = true;
                    report.reachable_bytes += e.len;
                    copy.push(*e);
                }
                Some(_) => {
                    report.duplicates_removed += 1;
                    report.removed_objects += 1;
                    report.removed_bytes += e.len;
                }
                None => {
                    report.removed_objects += 1;
                    report.removed_bytes += e.len;
                }
            }
        }
        copy.sort_by_key(|e| e.offset);
        plans.push(PackPlan { index: i, copy });
    }
    // Every reachable object must be somewhere (else: damage, refuse).
    if let Some((id, _)) = live.ids.iter().find(|(_, seen)| !**seen) {
        return Err(Error::MissingObject {
            id: id.to_hex(),
            kind: "reachable",
        });
    }
    report.packs_rewritten = plans.len() as u64;
    report.packs_kept = report.packs_before - report.packs_rewritten;
    report.packs_written = u64::from(plans.iter().any(|p| !p.copy.is_empty()));
    report.packs_after = report.packs_kept + report.packs_written;
    let copy_bytes: u64 = plans.iter().flat_map(|p| &p.copy).map(|e| e.len).sum();
    let copy_index_bytes = plans.iter().map(|p| p.copy.len() as u64).sum::<u64>() * 56 + 1040 + 32;
    let rewritten_bytes: u64 = plans.iter().map(|p| pack_bytes(&packs[p.index])).sum();
    report.store_bytes_after = report.store_bytes_before - rewritten_bytes
        + if report.packs_written > 0 {
            crate::store::pack::PACK_HEADER_LEN + copy_bytes + copy_index_bytes
        } else {
            0
        };
    report.bytes_reclaimed = report.store_bytes_before.saturating_sub(report.store_bytes_after);
    if dry_run || plans.is_empty() {
        report.stat_cache_rows_dropped = prune_stat_caches(store, &live, true)?;
        report.seconds = t0.elapsed().as_secs_f64();
        return Ok(report);
    }
    hooks.at(GcStep::Planned)?;
    // Verify what is kept, in parallel: a damaged record is never copied
    // (and its pack never deleted).
    ctl.progress.phase("verifying");
    let jobs: Vec<(usize, IdxEntry)> = plans
        .iter()
        .flat_map(|p| p.copy.iter().map(move |e| (p.index, *e)))
        .collect();
    jobs.par_iter().try_for_each(|(pi, e)| -> Result<()> {
        ctl.check()?;
        let n = packs[*pi].verify_entry(e)?;
        ctl.progress.inc(1, n);
        Ok(())
    })?;
    // Copy, one new pack from this thread.
    ctl.progress.phase("writing");
    let new = {
        let w = store.writer();
        for p in &plans {
            for e in &p.copy {
                ctl.check()?;
                w.copy_record_from(&packs[p.index], e)?;
                ctl.progress.inc(1, e.len);
            }
        }
        w.finish()?.0
    };
    hooks.at(GcStep::Packed)?;
    // From here on nothing stops half-way on a signal: the rest is quick.
    report.stat_cache_rows_dropped = prune_stat_caches(store, &live, false)?;
    hooks.at(GcStep::CachesPruned)?;
    ctl.progress.phase("removing");
    // A pack rewritten into the very same bytes has the very same name (a
    // small clean pack folded in that held exactly what is kept, as a gc
    // killed after writing its pack leaves): the new pack *is* that file,
    // which must not then be deleted as old.
    let old: Vec<(PathBuf, PathBuf)> = plans
        .iter()
        .filter(|p| !new.contains(&packs[p.index].idx_path))
        .map(|p| (packs[p.index].idx_path.clone(), packs[p.index].pack_path.clone()))
        .collect();
    for (n, (idx, _)) in old.iter().enumerate() {
        std::fs::remove_file(idx).map_err(|source| Error::Io {
            path: idx.clone(),
            source,
        })?;
        if n == 0 {
            hooks.at(GcStep::Removing)?;
        }
    }
    for (_, pack) in &old {
        std::fs::remove_file(pack).map_err(|source| Error::Io {
            path: pack.clone(),
            source,
        })?;
    }
    crate::fsutil::fsync_dir(&store.packs_dir())?;
    hooks.at(GcStep::Removed)?;
    debug_assert!(new.len() <= 1, "one pack from one thread");
    store.reload()?;
    report.packs_after = store.packs().len() as u64;
    report.store_bytes_after = store.packs().iter().map(pack_bytes).sum();
    report.bytes_reclaimed = report.store_bytes_before.saturating_sub(report.store_bytes_after);
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// Drops, from every plane's stat cache, the rows naming blobs that are not
/// reachable (they are about to be deleted, or were never stored); writes
/// each changed cache durably unless `dry_run`. Returns the rows dropped.
fn prune_stat_caches(store: &Store, live: &Reachable, dry_run: bool) -> Result<u64> {
    let mut dropped = 0u64;
    for plane in store.planes() {
        let path = crate::snapshot::index_path(store, &plane);
        let Some(mut cache) = StatCache::load(&path) else {
            continue; // none, or damaged/another version: never trusted
        };
        let before = cache.entries.len();
        cache.entries.retain(|e| live.contains(&e.id));
        let n = (before - cache.entries.len()) as u64;
        if n > 0 && !dry_run {
            cache.save_durable(&path, &store.tmp_dir())?;
        }
        dropped += n;
    }
    Ok(dropped)
}
