//! Sealing a plane's working tree as a snapshot and checkpoint.
//!
//! Order of durability: every new blob and tree goes into per-thread packs,
//! the snapshot object follows, the packs and their indexes are fsynced, and
//! only then do the checkpoint ref and HEAD move. A crash at any point leaves
//! the previous HEAD intact (at worst, unreferenced packs that `fsck` lists).

use crate::control::Control;
use crate::error::{Error, NameKind, NameProblem, Result};
use crate::id::{ObjectId, SnapshotId};
use crate::object::{EntryKind, ObjectKind, Snapshot, SnapshotKind};
use crate::path::RelPath;
use crate::plane::Plane;
use crate::scan::{ScanOptions, scan};
use crate::scope::Scope;
use crate::store::Store;
use crate::store::index::{MappedCache, StatCache, now_ns};
use crate::store::lock::StoreLock;
use crate::store::pack::WriteStats;
use serde::Serialize;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Prefix of default checkpoint names.
pub const DEFAULT_PREFIX: &str = "VER";
/// Prefix of rescue checkpoints sealed by rollback and restore.
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
    /// The snapshot's ownership reference: the blob id of the compiled
    /// ownership registry in the sealed tree (governed planes), see
    /// `store-format.md`, "Where owners live".
    pub ownership: Option<ObjectId>,
    /// Seal even when the plane holds FIFOs, sockets or devices (`CP106`),
    /// leaving them out and listing them in [`SealReport::special`]: a
    /// rescue checkpoint, so that a checkout can restore everything else.
    /// Any other finding still refuses.
    pub allow_special: bool,
    /// Seal nothing when the state equals HEAD's (same root, hard-link
    /// groups and ownership reference): the report then names HEAD and has
    /// [`SealReport::unchanged`] set. `cplane snapshot` sets it unless
    /// `--allow-unchanged`; rescue, init and plane-add seals do not.
    pub skip_unchanged: bool,
    /// Files whose gates already passed on the bytes now on disk (an
    /// install gates a package's files before writing them): a governed
    /// seal does not run those gates again while nothing about them changed.
    pub passed_gates: Option<std::sync::Arc<crate::governance::plane::PassedGates>>,
    /// Files whose owner the command knows and did not change (an
    /// upgrade's package files it left as they were), each with that owner
    /// (`uid`, `gid`): a governed seal refuses (CP112) when one has another
    /// owner on disk, i.e. was chowned while the command ran. (Bytes and
    /// mode of package files the seal checks against the manifest anyway.)
    pub expect_owners: Option<std::sync::Arc<Vec<(RelPath, u32, u32)>>>,
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
            ownership: None,
            allow_special: false,
            skip_unchanged: false,
            passed_gates: None,
            expect_owners: None,
        }
    }
}

/// What sealing did.
#[derive(Debug, Clone, Serialize)]
pub struct SealReport {
    /// The new snapshot's id (HEAD's, when [`SealReport::unchanged`]).
    pub id: SnapshotId,
    /// Nothing was sealed: the state equals HEAD's and
    /// [`SealOptions::skip_unchanged`] was set; `id` and `snapshot` are HEAD's.
    pub unchanged: bool,
    /// The snapshot itself.
    #[serde(skip)]
    pub snapshot: Snapshot,
    /// Objects and bytes added to the store.
    pub write: WriteStats,
    /// Files read and hashed (the rest were unchanged per the stat cache).
    pub hashed_files: u64,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// Directories recorded.
    pub dirs: u64,
    /// Paths that disappeared while the plane was read (not recorded).
    pub vanished: u64,
    /// Plane-relative directories skipped because they hold another store.
    #[serde(skip)]
    pub nested_stores: Vec<RelPath>,
    /// Paths left out because an exclusion rule excludes them (a directory counts once).
    pub excluded: u64,
    /// Those paths, sorted.
    #[serde(skip)]
    pub excluded_paths: Vec<RelPath>,
    /// The exclusion rules the scan used.
    #[serde(skip)]
    pub exclusions: crate::exclude::Exclusions,
    /// FIFOs, sockets and devices left out ([`SealOptions::allow_special`]).
    #[serde(skip)]
    pub special: Vec<crate::finding::Finding>,
    /// Stat-cache entries from the scan: every file of the new snapshot,
    /// sorted, when the seal saved them or kept them for a rescue
    /// ([`SealOptions::save_cache`] false); otherwise possibly only the
    /// files it read, in no particular order.
    #[serde(skip)]
    pub cache: StatCache,
}

/// `.cp/planes/<plane>/index`.
pub fn index_path(store: &Store, plane: &Plane) -> PathBuf {
    store.plane_dir(&plane.name).join("index")
}

/// The stat cache a scan of `plane` trusts: the saved one, plus the rows of
/// the files this process wrote ([`Store::note_written`]). With such rows,
/// the saved rows and directory listings that are racy under the saved
/// cache's own time are left out and the racy rule is turned off for the rest (`scan_started_ns` is
/// the latest time, so no row is recent relative to it), which trusts
/// exactly what each source vouches for.
pub fn load_stat_cache(store: &Store, plane: &Plane) -> Option<MappedCache> {
    with_written(&index_path(store, plane), store.written_rows(&plane.name))
}

/// The cache saved at `saved` with the `written` rows merged in, as
/// [`load_stat_cache`] merges them; the file mapped as it is when there are
/// no such rows.
pub fn with_written(saved: &std::path::Path, written: Vec<crate::store::index::IndexEntry>) -> Option<MappedCache> {
    if written.is_empty() {
        return MappedCache::open(saved);
    }
    let mut cache = StatCache::load(saved).unwrap_or_default();
    cache.drop_racy();
    cache.patch(written.into_iter().map(|e| (e.path.clone(), Some(e))).collect());
    cache.scan_started_ns = i64::MAX;
    Some(MappedCache::from_cache(&cache))
}

/// A checkpoint name not yet used in `plane`: `name` itself (error if taken), or
/// `PREFIX-YYYYMMDDHHMMSS` with `-2`, `-3`, ... appended until unique.
///
/// # Errors
/// [`Error::BadName`] when an explicit `name` is not acceptable,
/// [`Error::NameTaken`] when it is taken.
pub fn unique_name(store: &Store, plane: &str, name: Option<&str>, prefix: &str, time_ns: i64) -> Result<String> {
    if let Some(n) = name {
        let bad = |problem| Error::BadName {
            kind: NameKind::Checkpoint,
            name: n.to_string(),
            problem,
        };
        if n == "HEAD" {
            return Err(bad(NameProblem::Head));
        }
        if n.starts_with(&format!("{RESCUE_PREFIX}-")) {
            return Err(bad(NameProblem::ReservedRescue));
        }
        if crate::id::is_hex(n) && n.len() >= crate::id::MIN_PREFIX_LEN_HEX {
            return Err(bad(NameProblem::LooksLikeId));
        }
        if !crate::store::refs::valid_name(n) {
            return Err(bad(NameProblem::Syntax));
        }
        if store.checkpoint(plane, n)?.is_some() {
            return Err(Error::NameTaken {
                kind: NameKind::Checkpoint,
                name: n.to_string(),
                plane: Some(plane.to_string()),
            });
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

/// Counts files (and symlinks) and their bytes under `root`.
///
/// # Errors
/// Store damage while reading trees.
pub fn count_files(store: &Store, root: &crate::id::TreeId) -> Result<(u64, u64)> {
    let src = crate::diff::TreeSource::store(store);
    let (mut files, mut bytes) = (0, 0);
    crate::diff::walk(&src, src.tree(root)?, RelPath::root(), &mut |_, e| {
        if e.kind != EntryKind::Dir {
            files += 1;
            bytes += e.size;
        }
    })?;
    Ok((files, bytes))
}

/// Hard-link groups of `links` with the paths under `carve_outs` removed
/// (groups left with fewer than two paths dropped).
pub fn prune_links(links: &[Vec<RelPath>], carve_outs: &[RelPath]) -> Vec<Vec<RelPath>> {
    links
        .iter()
        .map(|g| {
            g.iter()
                .filter(|p| !carve_outs.iter().any(|c| p.starts_with(c)))
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|g| g.len() >= 2)
        .collect()
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
    let (files, bytes) = count_files(store, &root)?;
    let now = now_ns();
    let snapshot = Snapshot {
        plane: outer.name.clone(),
        name: unique_name(store, &outer.name, None, DEFAULT_PREFIX, now)?,
        root,
        parent: Some(head_id),
        kind: SnapshotKind::Checkpoint,
        time_unix_ns: now,
        message: format!("carve out plane {carved}"),
        files,
        bytes,
        links: prune_links(&head.links, &outer.carve_outs),
        // HEAD's compiled registry still lists the carved-out files: its
        // ownership is no longer clean, so the state carries no reference.
        ownership: None,
        ledger: crate::ledger::snapshot_ref(store, &outer.name),
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
/// [`Error::BadName`]/[`Error::NameTaken`] for `--name`; I/O and store errors.
pub fn seal(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    opts: SealOptions,
    ctl: Control<'_>,
) -> Result<SealReport> {
    seal_checked(store, lock, plane, opts, None, ctl)
}

/// A check of the tree a seal stored, run after its objects are durable and
/// before any ref moves; it returns the ownership reference the tree
/// implies (which must equal [`SealOptions::ownership`]) or refuses.
pub type SealCheck<'a> = &'a dyn Fn(&Store, &crate::id::TreeId) -> Result<Option<ObjectId>>;

/// [`seal`], with a check of exactly the tree that was stored: when it
/// refuses (or implies another ownership reference than the one sealed),
/// no ref moves and nothing is sealed (the unreferenced objects stay until
/// a gc).
///
/// # Errors
/// As [`seal`], and the check's error.
pub fn seal_checked(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    opts: SealOptions,
    check: Option<SealCheck<'_>>,
    ctl: Control<'_>,
) -> Result<SealReport> {
    let ownership = opts.ownership;
    let ledger = crate::ledger::snapshot_ref(store, &plane.name);
    let started = now_ns();
    let name = unique_name(store, &plane.name, opts.name.as_deref(), opts.prefix, started)?;
    let parent = store.head(&plane.name)?;
    // The state a seal may find unchanged: HEAD's.
    let head = match parent {
        Some(id) if opts.skip_unchanged => Some((id, store.read_snapshot(&id)?)),
        _ => None,
    };
    let cache_path = index_path(store, plane);
    let cache = load_stat_cache(store, plane);
    let scope = Scope::open(plane)?;
    ctl.progress.phase("hashing");
    // About what HEAD recorded: the bar's total (an estimate).
    let recorded = match &head {
        Some((_, s)) => Some((s.files, s.bytes)),
        None => parent
            .and_then(|id| store.read_snapshot(&id).ok())
            .map(|s| (s.files, s.bytes)),
    };
    if let Some((files, bytes)) = recorded {
        ctl.progress.total(files, bytes);
    }
    let ((snapshot, id, mut scanned, unchanged), write) = store.transaction(|w| {
        let mut scanned = scan(
            &scope,
            ScanOptions {
                cache: cache.as_ref(),
                writer: Some(w),
                // Every file's row (as hits on the old cache where it matched): saved
                // as the new cache, or (a rescue seal) kept by the checkout to see
                // whether anything changes before it overwrites it.
                record: if cache.is_some() {
                    crate::scan::Record::Hits
                } else {
                    crate::scan::Record::All
                },
                ctl,
                content: None,
            },
        )?;
        crate::trace::phase("seal: scan");
        let refuse = scanned
            .findings
            .iter()
            .any(|f| !(opts.allow_special && f.code == crate::finding::Code::SpecialFile));
        if refuse {
            return Err(Error::Refused {
                action: "snapshot",
                findings: std::mem::take(&mut scanned.findings),
            });
        }
        if let Some((id, h)) = &head
            && h.root == scanned.root
            && h.links == scanned.links
            && h.ownership == ownership
        {
            return Ok((h.clone(), *id, scanned, true));
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
            links: std::mem::take(&mut scanned.links),
            ownership,
            ledger,
        };
        let (id, body) = snapshot.encode_with_id();
        w.add(ObjectKind::Snapshot, id.0, &body)?;
        ctl.check()?;
        ctl.progress.phase("writing");
        Ok((snapshot, id, scanned, false))
    })?;
    // The old cache is not needed any more; freeing 100,000 entries one by one
    // takes longer than the rest of an unchanged snapshot, so do it aside.
    let had_cache = cache.is_some();
    // Something the old cache did not vouch for was read: a file, or a
    // directory's names.
    let read_any = scanned.hashed_files > 0 || scanned.new_listings > 0;
    // The rows of every file, when something uses them: a save (something was
    // read, or there was no cache) or a rescue seal's checkout. An unchanged
    // snapshot builds none.
    match &cache {
        Some(c) if !opts.save_cache || read_any => scanned.cache = scanned.full_cache(c),
        Some(_) => {}
        // A `Record::All` scan's rows (every file was read), in completion order.
        None => scanned.cache.sort(),
    }
    std::thread::spawn(move || drop(cache));
    if unchanged {
        // HEAD already records this state: no object, no ref; the refreshed
        // stat cache still saves the next scan the reads.
        if opts.save_cache && read_any {
            let _ = scanned.cache.save(&cache_path, &store.tmp_dir());
        }
        return Ok(SealReport::of(id, true, snapshot, write, scanned));
    }
    if let Some(check) = check {
        let implied = check(store, &snapshot.root)?;
        if implied != ownership {
            return Err(Error::Refused {
                action: "snapshot",
                findings: vec![crate::finding::Finding::new(
                    crate::finding::Code::StaleCompiled,
                    RelPath::parse(crate::governance::COMPILED.as_bytes()).unwrap_or_else(RelPath::root),
                    "the compiled registry changed while the snapshot ran; run the snapshot again",
                )],
            });
        }
    }
    store.set_checkpoint(&plane.name, &snapshot.name, &id)?;
    if opts.move_head {
        store.set_head(&plane.name, &id)?;
    }
    // The cache is an accelerator: failing to save it loses speed, not data. When
    // nothing was read, the old cache still holds (deleted paths are harmless).
    if opts.save_cache && (read_any || !had_cache) {
        let _ = scanned.cache.save(&cache_path, &store.tmp_dir());
    }
    // Maintenance, not part of the snapshot: a failure here loses nothing.
    let _ = store.maybe_repack(lock);
    Ok(SealReport::of(id, false, snapshot, write, scanned))
}

impl SealReport {
    /// The report of a seal that produced (or, `unchanged`, found) `id`.
    fn of(
        id: SnapshotId,
        unchanged: bool,
        snapshot: Snapshot,
        write: WriteStats,
        scanned: crate::scan::ScanResult,
    ) -> Self {
        SealReport {
            id,
            unchanged,
            snapshot,
            write,
            hashed_files: scanned.hashed_files,
            hashed_bytes: scanned.hashed_bytes,
            dirs: scanned.dirs,
            vanished: scanned.vanished,
            nested_stores: scanned.nested_stores,
            excluded: scanned.excluded,
            excluded_paths: scanned.excluded_paths,
            exclusions: scanned.exclusions,
            special: scanned.findings,
            cache: scanned.cache,
        }
    }
}

/// What `cplane init` should do besides creating the store.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Lay down the genesis framework, spec and registries first
    /// ([`crate::governance::genesis`]) when the tree has no registries.
    pub governed: bool,
    /// Exclusion patterns for plane `main` (`--exclude`: gitignore syntax,
    /// relative to the root), recorded in `.cp/config.json`.
    pub exclude: Vec<String>,
}

/// What `cplane init` did.
#[derive(Debug)]
pub struct InitReport {
    /// The new store.
    pub store: Store,
    /// Every plane with its first checkpoint: `main` first, then the planes
    /// adopted from `registries/planes_registry.csv`, in its order.
    pub planes: Vec<(Plane, SealReport)>,
    /// Genesis files written (`--governed` on a tree without registries).
    pub genesis: Vec<&'static str>,
}

/// `cplane init`: creates the store for `dir` (plane `main` covering it),
/// adopts the planes a `registries/planes_registry.csv` declares (name,
/// path, tier), compiles the ownership registry of every governed plane,
/// and seals each plane's first checkpoint — all under a temporary name
/// that becomes `.cp` only when every checkpoint is durable: a failed or
/// crashed init leaves no store behind (and the next init removes the
/// temporary directory). A governed plane is sealed even when it has
/// findings (the first checkpoint records the tree as it was adopted);
/// `verify` reports them.
///
/// # Errors
/// As [`Store::create_staged`]; [`Error::Refused`] (as `init`) when a file
/// cannot be stored; [`Error::BadConfig`] for a malformed planes registry or
/// a declared plane whose directory is missing; I/O errors.
pub fn init(dir: &std::path::Path, opts: InitOptions, ctl: Control<'_>) -> Result<InitReport> {
    use crate::governance::{self, genesis};
    let genesis = if opts.governed && !dir.join(governance::FRAMEWORKS).exists() {
        genesis::lay_down(dir)?
    } else {
        Vec::new()
    };
    if let Err(reason) = crate::exclude::check_patterns(&opts.exclude) {
        return Err(Error::BadIgnoreFile {
            path: dir.join(crate::store::STORE_DIR).join("config.json"),
            reason,
        });
    }
    let mut staged = Store::create_staged(dir)?;
    let sealed = (|| {
        let lock = staged.try_lock()?;
        if !opts.exclude.is_empty() {
            let mut config = staged.config().clone();
            config.planes[0].exclude = opts.exclude.clone();
            staged.save_config(config)?;
        }
        adopt_planes(&mut staged, dir)?;
        let mut out = Vec::new();
        for plane in staged.planes() {
            let mut opts = SealOptions {
                message: if plane.name == "main" {
                    "init".into()
                } else {
                    "init: adopted from registries/planes_registry.csv".into()
                },
                kind: SnapshotKind::Init,
                ..SealOptions::default()
            };
            let scope = Scope::open(&plane)?;
            let plane_dir = staged.plane_dir(&plane.name);
            std::fs::create_dir_all(&plane_dir).map_err(|source| Error::Io {
                path: plane_dir,
                source,
            })?;
            // A compile that refuses (a malformed registry, two owners) leaves the
            // ownership reference empty; the verify after init names the problem.
            if governance::plane::is_governed(&scope)
                && let Ok(r) = governance::plane::compile_worktree(&staged, &plane, ctl)
                && r.findings.is_empty()
            {
                // Only a state whose ownership is clean carries the reference:
                // `status` trusts a HEAD that has one (store-format.md).
                opts.ownership = Some(r.blob);
            }
            out.push((plane.clone(), seal(&mut staged, &lock, &plane, opts, ctl)?));
        }
        drop(lock);
        Ok::<_, Error>(out)
    })();
    match sealed {
        Ok(planes) => {
            let store = staged.publish_init()?;
            let planes = planes
                .into_iter()
                .map(|(p, r)| Ok((store.plane(&p.name)?, r)))
                .collect::<Result<Vec<_>>>()?;
            Ok(InitReport { store, planes, genesis })
        }
        Err(e) => {
            staged.discard_init();
            Err(e.refused_as("init"))
        }
    }
}

/// Adds the planes `registries/planes_registry.csv` declares, if there is one.
fn adopt_planes(store: &mut Store, dir: &std::path::Path) -> Result<()> {
    use crate::governance::{PLANES, registry::Table};
    let at = dir.join(PLANES);
    let bytes = match std::fs::read(&at) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Io { path: at, source: e }),
    };
    let bad = |reason: String| Error::BadConfig {
        path: at.clone(),
        reason,
    };
    let t = Table::parse(&bytes, PLANES, &["name", "path"], &["tier"]).map_err(|e| bad(e.to_string()))?;
    for r in t.rows() {
        let raw = r.get("path");
        let rel = RelPath::parse(raw.as_bytes()).filter(|p| !p.is_root() && !raw.starts_with('/'));
        let abs = dir.join(raw);
        // Below the root, through real directories only (no `..`, no symlink on the way).
        let real_dirs = rel.as_ref().is_some_and(|rel| {
            let mut at = dir.to_path_buf();
            rel.components().all(|c| {
                at.push(std::ffi::OsStr::from_bytes(c));
                at.symlink_metadata().is_ok_and(|m| m.is_dir())
            })
        });
        if !real_dirs {
            return Err(bad(format!(
                "line {}: plane {} is declared at {:?}, which is not a directory under {}",
                r.line,
                r.get("name"),
                r.get("path"),
                dir.display()
            )));
        }
        let tier = Some(r.get("tier")).filter(|t| !t.is_empty()).map(str::to_string);
        store
            .add_plane(r.get("name"), &abs, tier, false)
            .map_err(|e| bad(format!("line {}: {e}", r.line)))?;
    }
    Ok(())
}
