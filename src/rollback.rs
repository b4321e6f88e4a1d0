//! Rollback: make a plane's files exactly a snapshot's, losing nothing.
//!
//! 1. Seal the current state as a rescue checkpoint (`RESCUE-…`), so the
//!    rollback can itself be undone. HEAD does not move yet; if anything fails
//!    before step 4, the rescue checkpoint is dropped again.
//! 2. Prune from the target the roots of planes nested in this one (their
//!    files are not this plane's to write), then diff the rescue root against
//!    it (only differing subtrees).
//! 3. Stage every file to write under `.cp/tmp/`, each verified against its
//!    BLAKE3 id: a corrupt object stops the rollback before anything changes.
//! 4. Store the new HEAD snapshot (root = target root, parent = rescue), then
//!    write the journal (`.cp/planes/<plane>/journal`).
//! 5. Apply: remove what the target lacks, rename staged files into place,
//!    prune emptied directories; `syncfs`; move refs; delete the journal.
//!
//! If the process dies after step 4, the next cplane command in that plane
//! finds the journal and finishes the same steps ([`recover`]); every step is
//! idempotent. History is never rewritten: HEAD becomes a new checkpoint.

use crate::diff::{Change, TreeSource, diff_trees};
use crate::error::{Error, IoResultExt, Result};
use crate::fsutil::write_atomic;
use crate::id::{ObjectId, SnapshotId};
use crate::object::{EntryKind, ObjectKind, Snapshot, SnapshotKind};
use crate::plane::{Plane, prune_carve_outs};
use crate::progress::Progress;
use crate::revision::Resolved;
use crate::snapshot::{RESCUE_PREFIX, SealOptions, index_path, seal, unique_name};
use crate::store::Store;
use crate::store::frame;
use crate::store::index::{IndexEntry, Stat, StatCache, now_ns};
use crate::store::lock::StoreLock;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Magic at the start of a journal file.
const JOURNAL_MAGIC: &[u8; 4] = b"CPRJ";
/// Journal format version.
const JOURNAL_VERSION: u8 = 1;
/// Test hook: pause (sleep) after this many applied operations, after creating
/// `.cp/planes/<plane>/paused`, so a test can kill the process mid-rollback.
pub const PAUSE_ENV: &str = "CPLANE_TEST_PAUSE_ROLLBACK_AFTER";

/// One step of a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Remove the file or symlink at `path`.
    Remove {
        /// Plane-relative path.
        path: Vec<u8>,
    },
    /// Put blob `id` at `path` as `kind`; it is staged as `staging/<staged>`.
    Write {
        /// Plane-relative path.
        path: Vec<u8>,
        /// File, executable or symlink.
        kind: EntryKind,
        /// Blob id.
        id: ObjectId,
        /// Staged file number.
        staged: u64,
    },
}

/// The rollback journal: everything needed to finish an interrupted rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Plane being rolled back.
    pub plane: String,
    /// The snapshot rolled back to.
    pub target: SnapshotId,
    /// The rescue checkpoint of the state before.
    pub rescue: SnapshotId,
    /// Name of the rescue checkpoint.
    pub rescue_name: String,
    /// The new HEAD (already stored).
    pub new_head: SnapshotId,
    /// Checkpoint name of the new HEAD.
    pub new_name: String,
    /// Staging directory, relative to `.cp`.
    pub staging: String,
    /// Removals first, then writes.
    pub ops: Vec<Op>,
}

/// What a rollback did.
#[derive(Debug, Clone)]
pub struct RollbackReport {
    /// The journal that was carried out.
    pub journal: Journal,
    /// The differences applied (from the rescue state to the target).
    pub changes: Vec<Change>,
    /// Files and symlinks written.
    pub written: u64,
    /// Files and symlinks removed.
    pub removed: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// When finishing an interrupted rollback: the checkpoint holding what was
    /// found in the plane before the replay.
    pub found_rescue: Option<String>,
}

/// Where a rollback stages its files, relative to `.cp`, named after its rescue checkpoint.
fn staging_dir(rescue: &SnapshotId) -> String {
    format!("tmp/rollback-{}", rescue.short(16))
}

/// Seals the plane as it is now into a `RESCUE-…` checkpoint without moving HEAD
/// or rewriting the stat cache; a refusal is reported as `action`'s.
fn seal_rescue(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    message: String,
    action: &'static str,
    progress: &dyn Progress,
) -> Result<crate::snapshot::SealReport> {
    let opts = SealOptions {
        name: None,
        prefix: RESCUE_PREFIX,
        message,
        kind: SnapshotKind::Rescue,
        move_head: false,
        save_cache: false,
    };
    seal(store, lock, plane, opts, progress).map_err(|e| e.refused_as(action))
}

fn journal_path(store: &Store, plane: &str) -> PathBuf {
    store.plane_dir(plane).join("journal")
}

/// True when `plane` has an unfinished rollback.
pub fn has_journal(store: &Store, plane: &str) -> bool {
    journal_path(store, plane).exists()
}

fn save_journal(path: &Path, j: &Journal, tmp_dir: &Path) -> Result<()> {
    write_atomic(path, &frame::encode(JOURNAL_MAGIC, JOURNAL_VERSION, j), tmp_dir)
}

fn load_journal(path: &Path) -> Result<Journal> {
    let bytes = fs::read(path).at(path)?;
    frame::decode(&bytes, JOURNAL_MAGIC, JOURNAL_VERSION).map_err(|e| Error::DamagedFile {
        path: path.to_path_buf(),
        reason: format!(
            "rollback journal {}, so the interrupted rollback cannot be finished. The state before it is the newest RESCUE- checkpoint (`cplane checkpoints`); delete this file to stop trying, then `cplane rollback` to the state you want",
            e.describe()
        ),
    })
}

fn abs_path(plane: &Plane, rel: &[u8]) -> PathBuf {
    plane.root.join(OsStr::from_bytes(rel))
}

/// Extracts blob `id` to `dest` as `kind` (file created with 0666/0777 minus umask).
fn extract(store: &Store, id: &ObjectId, kind: EntryKind, dest: &Path) -> Result<()> {
    match kind {
        EntryKind::Symlink => {
            let mut target = Vec::new();
            store.read_blob_to(id, &mut target, dest)?;
            std::os::unix::fs::symlink(OsStr::from_bytes(&target), dest).at(dest)
        }
        _ => {
            let mode = if kind == EntryKind::Executable { 0o777 } else { 0o666 };
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(dest)
                .at(dest)?;
            let mut w = io::BufWriter::with_capacity(256 * 1024, &mut f);
            store.read_blob_to(id, &mut w, dest)?;
            w.flush().at(dest)?;
            drop(w);
            // Make the exec bit exact even if the file's mode was changed elsewhere.
            let m = f.metadata().at(dest)?.permissions().mode();
            let want = if kind == EntryKind::Executable {
                m | ((m & 0o444) >> 2)
            } else {
                m & !0o111
            };
            if want != m {
                f.set_permissions(fs::Permissions::from_mode(want)).at(dest)?;
            }
            Ok(())
        }
    }
}

/// True when `dest` already is blob `id` of `kind`.
fn already_there(dest: &Path, kind: EntryKind, id: &ObjectId) -> bool {
    let Ok(m) = fs::symlink_metadata(dest) else {
        return false;
    };
    match kind {
        EntryKind::Symlink => {
            m.file_type().is_symlink()
                && fs::read_link(dest).is_ok_and(|t| blake3::hash(t.as_os_str().as_bytes()).as_bytes() == &id.0)
        }
        _ => {
            m.is_file()
                && EntryKind::for_file_mode(m.permissions().mode()) == kind
                && crate::hash::hash_file(dest, None).is_ok_and(|(h, _)| h == *id)
        }
    }
}

/// Removes `dir` if it holds nothing but empty directories.
fn remove_empty_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_empty_tree(&entry.path())?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not part of the target and not empty", entry.path().display()),
            ));
        }
    }
    fs::remove_dir(dir)
}

fn maybe_pause(done: usize, plane_dir: &Path) {
    if let Some(n) = std::env::var(PAUSE_ENV).ok().and_then(|v| v.parse::<usize>().ok())
        && done == n
    {
        let _ = fs::write(plane_dir.join("paused"), b"");
        std::thread::sleep(std::time::Duration::from_secs(300));
    }
}

/// Makes sure every directory above `rel` (plane-relative) is a real directory,
/// creating missing ones when `create`. Returns false when some ancestor is
/// missing (and not created) or is not a real directory: nothing of this plane
/// can be there, and nothing may be written or removed through it.
///
/// # Errors
/// With `create`, an ancestor that is a symlink or a file ([`Error::Invalid`]), or an I/O error.
fn real_parents(plane: &Plane, rel: &[u8], create: bool, checked: &mut HashSet<Vec<u8>>) -> Result<bool> {
    let parts: Vec<&[u8]> = rel.split(|&c| c == b'/').collect();
    let mut prefix: Vec<u8> = Vec::new();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(part);
        if checked.contains(&prefix) {
            continue;
        }
        let abs = abs_path(plane, &prefix);
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => {}
            Ok(_) if create => {
                return Err(Error::invalid(format!(
                    "refusing to write {} through {}, which is not a real directory",
                    abs_path(plane, rel).display(),
                    abs.display()
                )));
            }
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&abs).at(&abs)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).at(&abs),
        }
        checked.insert(prefix.clone());
    }
    Ok(true)
}

/// Carries out a journal's operations. Idempotent: a replay after a crash at any
/// point (`recovering`) converges to the same tree, and re-checks staged files.
fn apply(store: &Store, plane: &Plane, j: &Journal, recovering: bool, progress: &dyn Progress) -> Result<(u64, u64)> {
    let staging = store.dir().join(&j.staging);
    let plane_dir = store.plane_dir(&plane.name);
    let (mut written, mut removed, mut done) = (0u64, 0u64, 0usize);
    let mut emptied: Vec<PathBuf> = Vec::new();
    let mut checked: HashSet<Vec<u8>> = HashSet::new();
    // A plane carved out since the journal was written is not this plane's to touch.
    let carved = |path: &[u8]| plane.carve_outs.iter().any(|c| crate::object::is_under(path, c));
    for op in &j.ops {
        if let Op::Remove { path } = op
            && !carved(path)
        {
            // Never remove through a symlinked or missing directory: nothing of ours is there.
            if real_parents(plane, path, false, &mut checked)? {
                let abs = abs_path(plane, path);
                match fs::symlink_metadata(&abs) {
                    // Replay: the path already became a directory (a later write put one there).
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&abs).at(&abs)?;
                        removed += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {}
                    Err(e) => return Err(e).at(&abs),
                }
                if let Some(p) = abs.parent() {
                    emptied.push(p.to_path_buf());
                }
            }
            done += 1;
            maybe_pause(done, &plane_dir);
        }
    }
    checked.clear();
    for op in &j.ops {
        if let Op::Write { path, kind, id, staged } = op
            && !carved(path)
        {
            let abs = abs_path(plane, path);
            let staged_path = staging.join(staged.to_string());
            real_parents(plane, path, true, &mut checked)?;
            if let Ok(m) = fs::symlink_metadata(&abs)
                && m.is_dir()
            {
                remove_empty_tree(&abs).at(&abs)?;
            }
            // After a crash the staged copy may be damaged: use it only if it still matches.
            let staged_ok =
                fs::symlink_metadata(&staged_path).is_ok() && (!recovering || already_there(&staged_path, *kind, id));
            let mut placed = false;
            if staged_ok {
                match fs::rename(&staged_path, &abs) {
                    Ok(()) => placed = true,
                    // Staging is on another filesystem: extract beside the target below.
                    Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
                    Err(e) => return Err(e).at(&abs),
                }
            }
            if !placed && !already_there(&abs, *kind, id) {
                let tmp = abs.with_file_name(format!(".cp-rollback-{}", std::process::id()));
                let _ = fs::remove_file(&tmp);
                extract(store, id, *kind, &tmp)?;
                sync_file(&tmp, *kind)?;
                fs::rename(&tmp, &abs).at(&abs)?;
            }
            written += 1;
            done += 1;
            progress.inc(1, 0);
            maybe_pause(done, &plane_dir);
        }
    }
    // Prune directories the removals emptied, deepest first, never the plane root or a nested plane.
    emptied.sort();
    emptied.dedup();
    emptied.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for dir in emptied {
        let mut cur = dir.as_path();
        while cur.starts_with(&plane.root) && cur != plane.root {
            let rel = cur
                .strip_prefix(&plane.root)
                .map(|r| r.as_os_str().as_bytes().to_vec())
                .unwrap_or_default();
            if plane.carve_outs.binary_search(&rel).is_ok() || fs::remove_dir(cur).is_err() {
                break;
            }
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
    }
    Ok((written, removed))
}

/// Flushes one written file's data (symlinks have none to flush).
fn sync_file(path: &Path, kind: EntryKind) -> Result<()> {
    if kind == EntryKind::Symlink {
        return Ok(());
    }
    fs::File::open(path).and_then(|f| f.sync_data()).at(path)
}

/// Below this many files or directories to flush, each gets its own fsync (in
/// parallel); from this many on, one `syncfs` flushes the whole filesystem.
const SYNCFS_MIN_FILES: usize = 64;

/// `syncfs(2)` on the filesystem holding `dir` (`sync(2)` off Linux).
fn syncfs(dir: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let d = fs::File::open(dir).at(dir)?;
        // SAFETY: `d` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error()).at(dir);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
    }
    Ok(())
}

/// Makes the renames and removals durable: the file data itself was flushed
/// when it was staged, so only the directories that changed need an fsync.
fn sync_plane(plane: &Plane, j: &Journal) -> Result<()> {
    use rayon::prelude::*;
    let mut dirs = std::collections::BTreeSet::new();
    for op in &j.ops {
        let (Op::Write { path, .. } | Op::Remove { path }) = op;
        let mut abs = abs_path(plane, path);
        // Every ancestor up to the plane root may have been created or emptied.
        while abs.pop() && abs.starts_with(&plane.root) {
            if !dirs.insert(abs.clone()) {
                break;
            }
        }
    }
    if dirs.len() >= SYNCFS_MIN_FILES {
        return syncfs(&plane.root);
    }
    dirs.par_iter()
        .filter(|d| d.is_dir())
        .try_for_each(|d| crate::fsutil::fsync_dir(d))
}

/// From this many operations on, a rollback rewrites the stat cache; below, it
/// leaves the old one, whose entries for the rewritten files no longer match
/// their stat (new inodes), so the next scan simply re-reads those few files.
const CACHE_REWRITE_MIN_OPS: usize = 1024;

/// After apply: make it durable, refresh the stat cache, move refs, delete journal and staging.
fn finish(store: &Store, plane: &Plane, j: &Journal, rescue_hashed: Option<StatCache>) -> Result<()> {
    sync_plane(plane, j)?;
    let cache_path = index_path(store, plane);
    let rewrite = j.ops.len() >= CACHE_REWRITE_MIN_OPS;
    if let Some(mut cache) = StatCache::load(&cache_path).filter(|_| rewrite) {
        // What the rescue seal read (now stored), then the rollback's own changes.
        let mut patch: Vec<(Vec<u8>, Option<IndexEntry>)> = Vec::new();
        if let Some(h) = rescue_hashed {
            patch.extend(h.entries.into_iter().map(|e| (e.path.clone(), Some(e))));
            cache.scan_started_ns = h.scan_started_ns;
        }
        patch.extend(j.ops.iter().map(|op| match op {
            Op::Remove { path } => (path.clone(), None),
            Op::Write { path, kind, id, .. } => {
                let entry = fs::symlink_metadata(abs_path(plane, path)).ok().map(|m| IndexEntry {
                    path: path.clone(),
                    kind: *kind,
                    id: *id,
                    stat: Stat::from_metadata(&m),
                });
                (path.clone(), entry)
            }
        }));
        cache.patch(patch);
        cache.scan_started_ns = cache.scan_started_ns.min(now_ns());
        let _ = cache.save(&cache_path, &store.tmp_dir());
        // Freeing 100,000 entries one by one is slow; it needs no waiting for.
        std::thread::spawn(move || drop(cache));
    }
    store.set_checkpoint(&plane.name, &j.new_name, &j.new_head)?;
    store.set_head(&plane.name, &j.new_head)?;
    let jp = journal_path(store, &plane.name);
    fs::remove_file(&jp).at(&jp)?;
    // A journal that came back after a crash would be replayed over later edits.
    crate::fsutil::fsync_dir(&store.plane_dir(&plane.name))?;
    let _ = fs::remove_dir_all(store.dir().join(&j.staging));
    let _ = fs::remove_file(store.plane_dir(&plane.name).join("paused"));
    Ok(())
}

/// Finishes an interrupted rollback of `plane`, if its journal exists.
///
/// # Errors
/// [`Error::DamagedFile`] for a damaged journal; I/O or store errors while applying.
pub fn recover(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    progress: &dyn Progress,
) -> Result<Option<RollbackReport>> {
    let jp = journal_path(store, &plane.name);
    if !jp.exists() {
        return Ok(None);
    }
    let t0 = Instant::now();
    let j = load_journal(&jp)?;
    // Someone may have edited the plane since the crash: seal what is there now
    // (as another rescue checkpoint) before the replay overwrites anything.
    let found = seal_rescue(
        store,
        lock,
        plane,
        format!("state found when finishing the interrupted rollback to {}", j.new_name),
        "finishing the interrupted rollback",
        progress,
    )?;
    let (written, removed) = apply(store, plane, &j, true, progress)?;
    finish(store, plane, &j, None)?;
    Ok(Some(RollbackReport {
        journal: j,
        changes: Vec::new(),
        written,
        removed,
        seconds: t0.elapsed().as_secs_f64(),
        found_rescue: Some(found.snapshot.name),
    }))
}

/// Everything before the journal: prune the target, diff, stage and verify every
/// file, store the new HEAD snapshot. Changes nothing in the plane.
fn prepare(
    store: &mut Store,
    plane: &Plane,
    target: &Resolved,
    rescue: &crate::snapshot::SealReport,
) -> Result<(Journal, Vec<Change>)> {
    // Parts of the target that now belong to nested planes or stores are not this plane's to write.
    let mut carve_outs = plane.carve_outs.clone();
    carve_outs.extend(rescue.nested_stores.iter().cloned());
    let (root, _) = store.transaction(|w| prune_carve_outs(w, target.snapshot.root, &carve_outs))?;
    let (files, bytes) = if root == target.snapshot.root {
        (target.snapshot.files, target.snapshot.bytes)
    } else {
        let all = crate::diff::flatten(&TreeSource::store(store), &root)?;
        (all.len() as u64, all.iter().map(|(_, s)| s.size).sum())
    };
    let changes = diff_trees(&TreeSource::store(store), &rescue.snapshot.root, &root)?;
    // Every file about to be removed or overwritten must be safely in the store. The
    // rescue seal stores nothing it thinks the store already has, so a damaged stored
    // copy would leave the file on disk as the only good one: check, and stop if so.
    {
        use rayon::prelude::*;
        changes.par_iter().filter_map(|c| c.old.map(|o| (c, o))).try_for_each(|(c, o)| {
            store.read_blob_to(&o.id, &mut io::sink(), store.dir()).map(|_| ()).map_err(|e| match e {
                Error::CorruptObject { id, location, reason } => Error::CorruptObject {
                    id,
                    location,
                    reason: format!(
                        "{reason}; it is the stored copy of {}, whose only good copy is now the file on disk, so the rollback stops here",
                        String::from_utf8_lossy(&c.path)
                    ),
                },
                other => other,
            })
        })?;
    }
    // Stage and verify every file first: a corrupt object aborts before the plane changes.
    let staging_rel = staging_dir(&rescue.id);
    let staging = store.dir().join(&staging_rel);
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).at(&staging)?;
    let mut ops = Vec::new();
    let mut writes = Vec::new();
    for c in &changes {
        crate::interrupt::check()?;
        match c.new {
            Some(n) => {
                let staged = writes.len() as u64;
                extract(store, &n.id, n.kind, &staging.join(staged.to_string()))?;
                writes.push(Op::Write {
                    path: c.path.clone(),
                    kind: n.kind,
                    id: n.id,
                    staged,
                });
            }
            None => ops.push(Op::Remove { path: c.path.clone() }),
        }
    }
    // Staged bytes must be durable before the journal points at them.
    {
        use rayon::prelude::*;
        if writes.len() >= SYNCFS_MIN_FILES {
            syncfs(&staging)?;
        } else {
            writes.par_iter().try_for_each(|w| match w {
                Op::Write { kind, staged, .. } => sync_file(&staging.join(staged.to_string()), *kind),
                Op::Remove { .. } => Ok(()),
            })?;
            crate::fsutil::fsync_dir(&staging)?;
        }
    }
    // A path whose kind changes from file to symlink (or back) is overwritten by the rename.
    ops.extend(writes);
    let now = now_ns();
    let new_name = unique_name(store, &plane.name, None, crate::snapshot::DEFAULT_PREFIX, now)?;
    let new_snapshot = Snapshot {
        plane: plane.name.clone(),
        name: new_name.clone(),
        root,
        parent: Some(rescue.id),
        kind: SnapshotKind::Rollback { target: target.id },
        time_unix_ns: now,
        message: format!("rollback to {} ({})", target.snapshot.name, target.id.short(12)),
        files,
        bytes,
    };
    let (new_head, body) = new_snapshot.encode_with_id();
    store.transaction(|w| w.add(ObjectKind::Snapshot, new_head.0, &body))?;
    let journal = Journal {
        plane: plane.name.clone(),
        target: target.id,
        rescue: rescue.id,
        rescue_name: rescue.snapshot.name.clone(),
        new_head,
        new_name,
        staging: staging_rel,
        ops,
    };
    Ok((journal, changes))
}

/// Rolls `plane` back to `target`. See the module documentation for the steps.
///
/// # Errors
/// [`Error::Invalid`] when `target` belongs to another plane; [`Error::Refused`]
/// when the current state cannot be sealed (unreadable or special files);
/// store damage when a needed object is corrupt (nothing in the plane is changed).
pub fn rollback(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    target: &Resolved,
    progress: &dyn Progress,
) -> Result<RollbackReport> {
    let t0 = Instant::now();
    if target.plane.name != plane.name {
        return Err(Error::invalid(format!(
            "snapshot {} belongs to plane `{}`, not `{}`; pass `--plane {}` to roll that plane back",
            target.id.short(12),
            target.plane.name,
            plane.name,
            target.plane.name
        )));
    }
    let mut rescue = seal_rescue(
        store,
        lock,
        plane,
        format!("state before rollback to {}", target.snapshot.name),
        "rollback",
        progress,
    )?;
    let rescue_cache = std::mem::take(&mut rescue.cache);
    // Until the journal exists nothing in the plane has changed: on any failure up to
    // and including writing it, drop the rescue checkpoint and leave HEAD where it was.
    let planned = prepare(store, plane, target, &rescue).and_then(|(journal, changes)| {
        crate::interrupt::check()?;
        save_journal(&journal_path(store, &plane.name), &journal, &store.tmp_dir())?;
        Ok((journal, changes))
    });
    let (journal, changes) = match planned {
        Ok(x) => x,
        Err(e) => {
            let _ = store.remove_checkpoint(&plane.name, &rescue.snapshot.name);
            let _ = fs::remove_dir_all(store.dir().join(staging_dir(&rescue.id)));
            return Err(e);
        }
    };
    // Past this point the rollback runs to the end, even if interrupted.
    let (written, removed) = apply(store, plane, &journal, false, progress)?;
    finish(store, plane, &journal, Some(rescue_cache))?;
    Ok(RollbackReport {
        journal,
        changes,
        written,
        removed,
        seconds: t0.elapsed().as_secs_f64(),
        found_rescue: None,
    })
}
