//! Installing a package into a governed plane: every check before anything
//! is written, then the files through the checkout engine (staged,
//! journaled, completed or undone after a crash, with a rescue checkpoint),
//! then the packages registry and ownership rows, then a checkpoint.

use super::{Limits, Manifest, PackageError};
use crate::checkout::CheckoutHooks;
use crate::control::Control;
use crate::error::{Error, Result};
use crate::finding::{Code, Finding};
use crate::governance::{Model, PACKAGES};
use crate::id::{ObjectId, SnapshotId};
use crate::keys::Signer;
use crate::object::{EntryKind, Meta, ObjectKind, Snapshot, SnapshotKind, TreeEntry};
use crate::path::RelPath;
use crate::plane::Plane;
use crate::revision::Resolved;
use crate::scope::Scope;
use crate::store::Store;
use crate::store::lock::StoreLock;
use std::path::Path;
use std::sync::atomic::Ordering;

/// The header of `registries/packages_registry.csv` when install creates it.
const PACKAGES_HEADER: &str = "id,version,spec_id,framework_id,manifest_digest,status";

/// How [`install`] decides.
#[derive(Debug, Clone, Copy)]
pub struct InstallOptions<'a> {
    /// The keys the plane's ledger trusts (the signer needs maintainer or admin).
    pub trusted: &'a [Signer],
    /// Install an older version than the one installed.
    pub allow_downgrade: bool,
}

/// What [`install`] did.
#[derive(Debug)]
pub struct Installed {
    /// The version this install replaced (an upgrade, or an allowed downgrade).
    pub replaced: Option<String>,
    /// The package's manifest.
    pub manifest: Manifest,
    /// BLAKE3 of the manifest (recorded in the packages registry).
    pub manifest_digest: ObjectId,
    /// The trusted key that signed it.
    pub signer: Signer,
    /// The checkpoint sealed with the package installed.
    pub checkpoint: (SnapshotId, String),
    /// The rescue checkpoint holding the state before.
    pub rescue: String,
}

fn refuse(findings: Vec<Finding>) -> Error {
    Error::Refused {
        action: "install",
        findings,
    }
}

fn bad_package(file: &Path, e: PackageError) -> Error {
    Error::BadConfig {
        path: file.to_path_buf(),
        reason: format!("is refused: {e}"),
    }
}

/// BLAKE3 of the regular file at `path` in the plane, hashed as a scan
/// hashes (through the plane's directory handles, never following a
/// symlink, a torn read retried): `None` when it is missing, unreadable, or
/// something else is there (a symlink counts as edited).
fn hash_on_disk(scope: &Scope, path: &str) -> Option<ObjectId> {
    let rel = RelPath::parse(path.as_bytes())?;
    let dir = scope.open_dir(&rel.parent().unwrap_or_else(RelPath::root)).ok()?;
    crate::hash::hash_file(&dir, rel.file_name()?, &scope.shown(&rel), None)
        .ok()
        .map(|(id, _)| id)
}

/// Whether file `f` of an installed version's manifest is on disk with the
/// manifest's bytes: the status scan of `before` saw it so (at a path
/// unchanged since HEAD), or, where the scan cannot vouch for it (a path
/// it left out -- a finding, an exclusion -- or one that changed), its
/// bytes hashed now ([`hash_on_disk`]).
fn as_installed(scope: &Scope, before: &Before, f: &super::FileEntry) -> bool {
    let vouched = RelPath::parse(f.path.as_bytes()).is_some_and(|p| {
        !before.edited.contains(&p)
            && before
                .scanned
                .get(&p)
                .is_some_and(|s| s.kind == EntryKind::File && s.id == f.blake3)
    });
    vouched || hash_on_disk(scope, &f.path) == Some(f.blake3)
}

/// The paths an uninstall restores to its `target` (HEAD without the
/// package's files `paths`): as few as possible. A directory under which
/// neither the target nor the working tree (as the status scan of `before`
/// saw it) has a file other than the package's is restored whole: one
/// path, not one per file (each of which is looked up, rescued and
/// planned on its own: 10,000 of them took 7 s). Every other file is
/// restored on its own, so that a file beside it that HEAD lacks stays.
///
/// # Errors
/// Store damage while reading the target's tree.
fn uninstall_paths(
    store: &Store,
    before: &Before,
    manifest: &Manifest,
    target: &Snapshot,
    paths: &[RelPath],
) -> Result<Vec<RelPath>> {
    // Directories that hold a file besides the package's, on disk or in
    // the target (every file the target has is another's).
    let mut shared: std::collections::HashSet<RelPath> = std::collections::HashSet::new();
    let mut mark = |dir: Option<RelPath>| {
        let mut d = dir;
        while let Some(dir) = d.filter(|d| !d.is_root()) {
            if !shared.insert(dir.clone()) {
                break;
            }
            d = dir.parent();
        }
    };
    for p in before.scanned.keys().filter(|p| manifest.file(&p.display()).is_none()) {
        mark(p.parent());
    }
    let src = crate::diff::TreeSource::store(store);
    crate::diff::walk(&src, src.tree(&target.root)?, RelPath::root(), &mut |parent, e| {
        if e.kind != EntryKind::Dir {
            mark(Some(parent.clone()));
        }
    })?;
    let mut out: std::collections::BTreeSet<RelPath> = std::collections::BTreeSet::new();
    for p in paths {
        // The outermost directory on the way that holds only the package's
        // files, if any.
        let mut whole = None;
        let mut d = p.parent();
        while let Some(dir) = d.filter(|d| !d.is_root() && !shared.contains(d)) {
            d = dir.parent();
            whole = Some(dir);
        }
        out.insert(whole.unwrap_or_else(|| p.clone()));
    }
    Ok(out.into_iter().collect())
}

/// What is at a directory path of the plane, on the way to a package file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DirState {
    /// A real directory.
    Dir,
    /// Missing; the payload is the outermost missing directory on the way.
    Missing(RelPath),
    /// Something that is not a directory (a symlink, a file) is there, or
    /// at the payload, a directory on the way.
    NotDir(RelPath),
}

/// Looks at the directories on the way to many paths once each (a package's
/// 10,000 files share a few hundred directories): one `stat` per directory,
/// never through a symlink.
struct DirProbe<'a> {
    scope: &'a Scope,
    seen: std::collections::HashMap<RelPath, DirState>,
}

impl<'a> DirProbe<'a> {
    fn new(scope: &'a Scope) -> Self {
        DirProbe {
            scope,
            seen: std::collections::HashMap::new(),
        }
    }

    /// The state of directory `d` (plane-relative; the root is a directory).
    fn state(&mut self, d: &RelPath) -> DirState {
        if d.is_root() {
            return DirState::Dir;
        }
        if let Some(s) = self.seen.get(d) {
            return s.clone();
        }
        let parent = d.parent().unwrap_or_else(RelPath::root);
        let s = match self.state(&parent) {
            DirState::Dir => {
                let name = d.file_name().unwrap_or_default();
                match self.scope.open_dir(&parent).and_then(|dir| dir.stat(name)) {
                    Ok(st) if crate::fsys::EntryType::from_mode(st.st_mode as u32) == crate::fsys::EntryType::Dir => {
                        DirState::Dir
                    }
                    Ok(_) => DirState::NotDir(d.clone()),
                    Err(_) => DirState::Missing(d.clone()),
                }
            }
            other => other,
        };
        self.seen.insert(d.clone(), s.clone());
        s
    }

    /// The state of `p`'s parent directory.
    fn parent_of(&mut self, p: &RelPath) -> DirState {
        self.state(&p.parent().unwrap_or_else(RelPath::root))
    }
}

/// The paths of the installed version `old_paths` that the package's
/// manifest (sorted by path bytes) no longer lists: what an upgrade removes.
fn dropped<'a>(
    manifest: &'a Manifest,
    old_paths: &'a std::collections::BTreeSet<String>,
) -> impl Iterator<Item = &'a str> {
    old_paths
        .iter()
        .filter(|p| manifest.file(p).is_none())
        .map(String::as_str)
}

/// The changes that turn HEAD's tree into an install's target: each path
/// [`dropped`] from the installed version removed, each of the package's
/// files put in, owned by `uid:gid`.
fn target_changes(
    manifest: &Manifest,
    old_paths: &std::collections::BTreeSet<String>,
    uid: u32,
    gid: u32,
) -> Vec<(RelPath, Option<TreeEntry>)> {
    let at = |p: &str| RelPath::parse(p.as_bytes()).unwrap_or_else(RelPath::root);
    let mut changes: Vec<(RelPath, Option<TreeEntry>)> = dropped(manifest, old_paths).map(|p| (at(p), None)).collect();
    changes.reserve(manifest.files.len());
    for f in &manifest.files {
        let entry = TreeEntry {
            name: Vec::new(),
            kind: EntryKind::File,
            meta: Meta {
                mode: f.mode.bits(),
                uid,
                gid,
            },
            id: f.blake3,
            size: f.size,
        };
        changes.push((at(&f.path), Some(entry)));
    }
    changes
}

/// HEAD's hard-link groups as they hold in a target that makes `changes`
/// to HEAD's tree: a path that goes, or whose entry changes (bytes, kind,
/// mode or owner), leaves its group, since the checkout writes it as a
/// file of its own; a group left with fewer than two paths goes. (Kept
/// verbatim, a group would name files of different bytes, which the
/// checkout rightly calls store damage.) `src` reads HEAD's trees.
///
/// # Errors
/// Store damage while looking a grouped path up in HEAD's tree.
fn target_links(
    src: &crate::diff::TreeSource<'_>,
    head: &Snapshot,
    changes: &[(RelPath, Option<TreeEntry>)],
) -> Result<Vec<crate::object::LinkGroup>> {
    if head.links.is_empty() {
        return Ok(Vec::new());
    }
    let by_path: std::collections::HashMap<&RelPath, Option<&TreeEntry>> =
        changes.iter().map(|(p, e)| (p, e.as_ref())).collect();
    let mut leave = Vec::new();
    for p in head.links.iter().flatten() {
        let Some(new) = by_path.get(p) else { continue };
        let same = match (new, crate::diff::lookup_path(src, &head.root, p)?) {
            (Some(n), Some(o)) => n.kind == o.kind && n.id == o.id && n.meta == o.meta,
            _ => false,
        };
        if !same {
            leave.push(p.clone());
        }
    }
    Ok(crate::snapshot::prune_links(&head.links, &leave))
}

/// The snapshot object an install or uninstall checks out: HEAD (`head`,
/// id `head_id`) with the root `root` and the hard-link groups `links`
/// ([`target_links`]), HEAD as parent, HEAD's counts; no ref names it. The
/// caller names it and adjusts the counts.
fn target_of(
    plane: &Plane,
    head_id: SnapshotId,
    head: &Snapshot,
    root: crate::id::TreeId,
    links: Vec<crate::object::LinkGroup>,
) -> Snapshot {
    Snapshot {
        plane: plane.name.clone(),
        name: String::new(),
        root,
        parent: Some(head_id),
        kind: SnapshotKind::Checkpoint,
        time_unix_ns: crate::store::index::now_ns(),
        message: String::new(),
        files: head.files,
        bytes: head.bytes,
        links,
        ownership: None,
        ledger: None,
    }
}

/// A member's bytes, kept for the checkout to write the file from.
type Shared = std::sync::Arc<Vec<u8>>;

/// Bytes of package members an install keeps in memory to write the files
/// from (80 MiB). Members past it are still stored as they are read, but
/// their bytes are let go: the checkout reads them back from the store, and
/// the scans after it hash them again. That bounds an install's memory (a
/// 200 MB package peaked at 231 MB when every member was kept) at some
/// speed for packages larger than the budget.
pub const KEEP_IN_MEMORY_BYTES: u64 = 80 << 20;

/// [`KEEP_IN_MEMORY_BYTES`]; debug builds take `CPLANE_TEST_INSTALL_KEEP_BYTES`
/// instead, so tests can install packages larger than the budget.
fn keep_in_memory() -> u64 {
    let test = cfg!(debug_assertions)
        .then(|| std::env::var("CPLANE_TEST_INSTALL_KEEP_BYTES").ok()?.parse().ok())
        .flatten();
    test.unwrap_or(KEEP_IN_MEMORY_BYTES)
}

/// Why [`read_storing`] failed.
enum Stored {
    /// The archive does not check out.
    Package(PackageError),
    /// Writing a blob to the store failed.
    Store(Error),
}

/// The plane's per-file gates, for gating a package's files as they
/// stream ([`read_storing`]).
struct Gating<'a> {
    engine: &'a crate::gate::Engine,
    by_spec: &'a crate::governance::SpecGates,
}

/// Where and how a package's files are staged while it streams
/// ([`crate::checkout::prestage`]), so the checkout after the checks finds
/// them written.
struct Staging<'a> {
    store: &'a Store,
    scope: &'a Scope,
    uid: u32,
    gid: u32,
    /// Files staged so far, by path.
    staged: std::sync::Mutex<std::collections::HashMap<RelPath, crate::checkout::Prestaged>>,
    /// At most this many files and directories: each holds a descriptor
    /// until the checkout, which needs the others for what it stages itself.
    limit: usize,
    count: std::sync::atomic::AtomicUsize,
    /// The directory each parent's files are staged in.
    dirs: std::sync::Mutex<std::collections::HashMap<RelPath, std::sync::Arc<crate::fsys::Dir>>>,
    /// Which directories on the way to a file the plane has.
    probe: std::sync::Mutex<DirProbe<'a>>,
    /// Directories the plane lacks, built whole ([`crate::checkout::Prebuilt`]),
    /// by path (`None`: that one cannot be; its files are staged unnamed).
    prebuilt: std::sync::Mutex<std::collections::HashMap<RelPath, Option<std::sync::Arc<crate::checkout::Prebuilt>>>>,
}

impl Staging<'_> {
    /// Stages one file; a failure (no room, no `O_TMPFILE`) only leaves it
    /// to the checkout, which stages it itself and reports what fails.
    /// Returns whether it was staged.
    fn stage(&self, rel: &RelPath, id: ObjectId, bytes: &[u8], mode: u32) -> bool {
        let meta = Meta {
            mode,
            uid: self.uid,
            gid: self.gid,
        };
        // In a directory the plane lacks: written, named, into that
        // directory built whole (no descriptor kept).
        let fresh = match self
            .probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .parent_of(rel)
        {
            DirState::Missing(d) => Some(d),
            _ => None,
        };
        if let Some(d) = fresh {
            let built = {
                let mut all = self.prebuilt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                all.entry(d)
                    .or_insert_with_key(|d| {
                        crate::checkout::Prebuilt::new(self.store, self.scope, d)
                            .ok()
                            .flatten()
                            .map(std::sync::Arc::new)
                    })
                    .clone()
            };
            if let Some(b) = built {
                return b.add(self.scope, rel, id, bytes, meta).is_ok();
            }
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.limit {
            return false;
        }
        let parent = rel.parent().unwrap_or_default();
        let dir = self
            .dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&parent)
            .cloned();
        let dir = match dir {
            Some(d) => d,
            // (A directory holds a descriptor too: counted like a file.)
            None if self.count.fetch_add(1, Ordering::Relaxed) >= self.limit => return false,
            None => match crate::checkout::staging_dir(self.scope, rel) {
                Ok(d) => {
                    let d = std::sync::Arc::new(d);
                    self.dirs
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(parent, d.clone());
                    d
                }
                Err(_) => return false,
            },
        };
        match crate::checkout::prestage(self.store, self.scope, &dir, rel, id, bytes, meta) {
            Ok(Some(p)) => {
                self.staged
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(rel.clone(), p);
                true
            }
            _ => false,
        }
    }
}

/// What gating a package's files found.
#[derive(Default)]
struct Gated {
    /// Findings (a file that fails a gate).
    findings: Vec<Finding>,
    /// Files that passed, with the BLAKE3 of their bytes.
    passed: std::collections::HashMap<RelPath, ObjectId>,
}

/// [`super::read_parallel`], adding each file's bytes to `w` as a blob on
/// the pool (its own zstd frame when it came in one, else compressed
/// there), staging it, and, with `gating`, running the gates of the
/// package's spec on its bytes. A member that turns out not to match the
/// manifest fails the whole read, and the caller drops `w`, so nothing of
/// a refused package is kept. Returns the package, the bytes of each member
/// `staging` did not stage, in manifest order, while they fit in `keep`
/// bytes (`None` for the others), and what the gates found.
fn read_storing<'g, R: std::io::Read>(
    input: R,
    trusted: &[Signer],
    limits: &Limits,
    keep: u64,
    w: &crate::store::pack::ObjectWriter<'_>,
    gating: Option<Gating<'g>>,
    staging: Option<&Staging<'_>>,
) -> std::result::Result<(super::Package, Vec<Option<Shared>>, Gated), Stored> {
    let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let gated: std::sync::Mutex<Gated> = std::sync::Mutex::new(Gated::default());
    // The bytes kept, by index, and how many.
    let kept: std::sync::Mutex<Vec<(usize, Shared)>> = std::sync::Mutex::new(Vec::new());
    let kept_bytes = std::sync::atomic::AtomicU64::new(0);
    // The owner and gates each file is checked with, once the manifest names its spec.
    let job: std::sync::OnceLock<(String, Vec<usize>)> = std::sync::OnceLock::new();
    // The files the installed version of this package has with the same
    // bytes and mode: an upgrade writes none of them (unless edited), so
    // they are neither staged nor kept.
    let unchanged: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    let on_manifest = |m: &super::Manifest| {
        if let Some(g) = &gating {
            let ids = g.by_spec.get(&m.spec_id).cloned().unwrap_or_default();
            let _ = job.set((m.id.clone(), ids));
        }
        if let Some(st) = staging
            && let Ok(Some(old)) = installed_manifest(st.store, st.scope, &m.id)
        {
            let same = old.files.into_iter().filter(|o| {
                m.file(&o.path)
                    .is_some_and(|f| (f.blake3, f.mode) == (o.blake3, o.mode))
            });
            let _ = unchanged.set(same.map(|o| o.path).collect());
        }
    };
    let sink = |index: usize, entry: &super::FileEntry, bytes: &mut Vec<u8>, frame: Option<Vec<u8>>| {
        let id = entry.blake3;
        if let Err(e) = w.add_framed(ObjectKind::Blob, id, bytes, frame.as_deref()) {
            failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert(e);
        }
        // (The manifest's paths are checked: they parse.)
        let path = RelPath::parse(entry.path.as_bytes());
        let same = unchanged.get().is_some_and(|u| u.contains(&entry.path));
        let staged = match (staging, &path) {
            (Some(st), Some(rel)) if !same => st.stage(rel, id, bytes, entry.mode.bits()),
            _ => false,
        };
        if let (Some(g), Some((owner, ids)), Some(path)) = (&gating, job.get(), path)
            && !ids.is_empty()
        {
            let file = crate::gate::FileJob {
                path,
                owner: owner.clone(),
                gates: ids.clone(),
            };
            let result = g.engine.check_bytes(&file, bytes);
            let mut g = gated.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match result {
                Ok((found, _)) if found.is_empty() => {
                    g.passed.insert(file.path, id);
                }
                Ok((found, _)) => g.findings.extend(found),
                // (A gate that does not compile: the seal reports it.)
                Err(_) => {}
            }
        }
        // A file not staged is written by the checkout: from these bytes
        // while they fit, else from the store. (Counted by what the buffer
        // holds: a small file in a large buffer is trimmed first.)
        if !staged && !same {
            if bytes.capacity() > 2 * bytes.len() {
                bytes.shrink_to_fit();
            }
            let held = bytes.capacity() as u64;
            if kept_bytes.fetch_add(held, Ordering::Relaxed) + held <= keep {
                kept.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((index, std::sync::Arc::new(std::mem::take(bytes))));
            }
        }
        Ok(())
    };
    let package = super::read_parallel(input, trusted, limits, on_manifest, sink);
    if let Some(e) = failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        return Err(Stored::Store(e));
    }
    let package = package.map_err(Stored::Package)?;
    let gated = gated.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut files: Vec<Option<Shared>> = vec![None; package.manifest.files.len()];
    for (i, bytes) in kept.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        files[i] = Some(bytes);
    }
    Ok((package, files, gated))
}

/// The plane's model as its working tree is now.
fn model(store: &Store, plane: &Plane, ctl: Control<'_>) -> Result<Model> {
    model_and_changes(store, plane, false, ctl).map(|b| b.model)
}

/// [`model`], the paths where the working tree differs from HEAD (every
/// change the status scan found, directories implied included), the files
/// the scan saw, and (`with_findings`) the findings the plane's seal would
/// refuse now.
fn model_and_changes(store: &Store, plane: &Plane, with_findings: bool, ctl: Control<'_>) -> Result<Before> {
    let report = crate::worktree::status(store, plane, ctl)?;
    // (The caller holds the store lock: the files hashed are not hashed again.)
    crate::worktree::note_hashed(store, plane, &report);
    let scope = Scope::open(plane)?;
    let view = crate::governance::plane::worktree_view(store, &scope, &report.scan)?;
    if !view.is_governed() {
        return Err(Error::NotGoverned {
            plane: plane.name.clone(),
        });
    }
    let m = Model::load(&view)?;
    // What the plane's own seal would refuse now (pass 0, 2 and 3).
    let mut findings = Vec::new();
    if with_findings {
        findings = crate::governance::ownership_findings(&m, &view, false)?;
        findings.extend(crate::governance::plane::package_findings(store, &m, &view)?);
        findings.extend(crate::governance::chain_findings(&m, &view));
    }
    Ok(Before {
        model: m,
        edited: report.changes.into_iter().map(|c| c.path).collect(),
        scanned: view.files.clone(),
        findings,
    })
}

/// The plane as an install found it ([`model_and_changes`]).
struct Before {
    /// The governance model of the working tree.
    model: Model,
    /// Paths where the working tree differs from HEAD.
    edited: std::collections::HashSet<RelPath>,
    /// The files the status scan saw, with their blob ids.
    scanned: std::sync::Arc<crate::governance::Files>,
    /// What the plane's seal would refuse now.
    findings: Vec<Finding>,
}

/// Installs the package in `file` into `plane`, trusting `trusted` (the
/// keys the plane's ledger trusts; the signer needs the maintainer or admin
/// role). Checks, before anything is written: the archive (signature,
/// manifest against every member, path safety, bounds: [`super::read`]);
/// the chain (spec and framework in the registries and bound to each other,
/// the framework authorizing every path, every dependency installed at an
/// acceptable version); that the package is not installed yet; and that no
/// path is declared by another owner or exists in the plane already. Then
/// the files are written through the checkout engine (as `restore` writes:
/// a rescue checkpoint first, journaled), the packages registry gets the
/// package's row, the files are owned by it, and the plane is sealed as a
/// checkpoint (a governed snapshot, fail-closed).
///
/// # Errors
/// [`Error::BadConfig`] naming the file for an archive that does not check
/// out; [`Error::Refused`] with findings for the chain and path checks
/// (nothing written); [`Error::NotGoverned`]; and what `restore`, `own` and
/// the governed snapshot report.
pub fn install(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    file: &Path,
    opts: InstallOptions<'_>,
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
) -> Result<Installed> {
    let InstallOptions {
        trusted,
        allow_downgrade,
    } = opts;
    let input = std::fs::File::open(file).map_err(|source| Error::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let mut before = model_and_changes(store, plane, true, ctl)?;
    let m = std::mem::take(&mut before.model);
    crate::trace::phase("install: model");
    // The package's spec's gates run on each file as it streams: a file
    // that fails one refuses the package before anything is written.
    let (gates, by_spec) = crate::governance::spec_gates(&m);
    let engine = crate::gate::Engine::new(gates.clone()).ok().map(std::sync::Arc::new);
    let scope = Scope::open(plane)?;
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    // Each file is staged (unnamed: nothing is visible, and a refused
    // package's files vanish with the process) while the next is read, on
    // the cores the reading leaves idle.
    let staging = hooks.stage_unnamed().then(|| Staging {
        store,
        scope: &scope,
        uid,
        gid,
        staged: Default::default(),
        // As many as the checkout's first round holds open (it then stages
        // none itself); the directories staged in count too, and are
        // closed before it starts. Kept free besides: a descriptor per pack
        // the store holds open, and room for the rescue seal's scan (a few
        // directories per worker) while the staged files wait (at most a
        // quarter of the budget, so a small one still stages some).
        limit: {
            let budget = crate::checkout::fd_budget();
            let reserve = (store.packs().len() + 64 * rayon::current_num_threads()).min(budget / 4);
            (budget - budget / 8).saturating_sub(reserve)
        },
        count: Default::default(),
        dirs: Default::default(),
        probe: std::sync::Mutex::new(DirProbe::new(&scope)),
        prebuilt: Default::default(),
    });
    // The package's blobs go into the store while the archive is still
    // being read and checked; nothing becomes visible until `w.finish()`,
    // and a refused package drops it all.
    let w = store.writer();
    let (package, contents, gated) = read_storing(
        input,
        trusted,
        &Limits::default(),
        keep_in_memory(),
        &w,
        engine.as_deref().map(|engine| Gating {
            engine,
            by_spec: &by_spec,
        }),
        staging.as_ref(),
    )
    .map_err(|e| match e {
        Stored::Package(e) => bad_package(file, e),
        Stored::Store(e) => e,
    })?;
    crate::trace::phase("install: read, stored, gated, staged");
    // (What is staged waits for the checkout; the store is free again.)
    let (prestaged, prebuilt) = match staging {
        Some(s) => {
            let built: Vec<crate::checkout::Prebuilt> = s
                .prebuilt
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .into_values()
                .flatten()
                .filter_map(|b| std::sync::Arc::try_unwrap(b).ok())
                .collect();
            (Some(s.staged), Some(std::sync::Mutex::new(built)))
        }
        None => (None, None),
    };
    let manifest = &package.manifest;
    let at = |p: &str| RelPath::parse(p.as_bytes()).unwrap_or_else(RelPath::root);
    // (A staged file's bytes are on disk already: `contents` has none.)
    let mut findings = gated.findings;
    crate::governance::sort(&mut findings);
    let passed = crate::governance::plane::PassedGates {
        gates,
        owner: manifest.id.clone(),
        ids: by_spec.get(&manifest.spec_id).cloned().unwrap_or_default(),
        files: gated.passed,
        engine: engine.clone(),
    };
    // The chain.
    let fw = match m.specs.get(&manifest.spec_id) {
        None => {
            findings.push(Finding::new(
                Code::UnknownOwner,
                at(crate::governance::SPECS),
                format!(
                    "package {} implements spec {}, which this plane's registry does not define",
                    manifest.id, manifest.spec_id
                ),
            ));
            None
        }
        Some(s) if s.framework_id != manifest.framework_id => {
            findings.push(Finding::new(
                Code::PackageChain,
                at(crate::governance::SPECS),
                format!(
                    "package {} says framework {}, but spec {} is bound to {} here",
                    manifest.id, manifest.framework_id, s.id, s.framework_id
                ),
            ));
            None
        }
        Some(s) => m.frameworks.get(&s.framework_id),
    };
    if let Some(fw) = fw {
        for f in &manifest.files {
            let p = at(&f.path);
            if fw.authorizing_glob(&p).is_none() {
                findings.push(fw.not_authorized(&p, &manifest.id));
            }
        }
    }
    // An installed version: this is an upgrade (or a refused downgrade, or
    // a refused second package under the same id and version).
    let old = match m.packages.get(&manifest.id) {
        None => None,
        Some(p) => match installed_manifest(store, &scope, &manifest.id)? {
            None => {
                findings.push(Finding::new(
                    Code::PackageChain,
                    at(PACKAGES),
                    format!(
                        "package {} is in the registry ({}, {}) but its installed manifest is not in the store: uninstall it by hand first",
                        p.id, p.version, p.status
                    ),
                ));
                None
            }
            Some(old) if old.version == manifest.version => {
                let same = p.manifest_digest == package.manifest_digest.to_hex();
                findings.push(Finding::new(
                    Code::PackageChain,
                    at(PACKAGES),
                    if same {
                        format!("package {} {} is installed already", manifest.id, manifest.version)
                    } else {
                        format!(
                            "package {} {} is installed already with other contents: a second package under the same id and version is refused",
                            manifest.id, manifest.version
                        )
                    },
                ));
                None
            }
            Some(old) if old.version > manifest.version && !allow_downgrade => {
                findings.push(Finding::new(
                    Code::PackageChain,
                    at(PACKAGES),
                    format!(
                        "package {} {} is older than the installed {}: a downgrade (a validly signed old release may carry a known hole) needs --allow-downgrade",
                        manifest.id, manifest.version, old.version
                    ),
                ));
                None
            }
            Some(old) => Some(old),
        },
    };
    let old_paths: std::collections::BTreeSet<String> = old
        .iter()
        .flat_map(|o| o.files.iter().map(|f| f.path.clone()))
        .collect();
    // The installed files must be as the old version left them.
    if let Some(old) = &old {
        for f in &old.files {
            if !as_installed(&scope, &before, f) {
                findings.push(Finding::new(
                    Code::Modified,
                    at(&f.path),
                    format!(
                        "edited (or removed) since package {} {} installed it: restore it or uninstall --force first",
                        old.id, old.version
                    ),
                ));
            }
        }
    }
    for d in &manifest.dependencies {
        let ok = m
            .packages
            .get(&d.id)
            .is_some_and(|p| p.status == "installed" && p.version.parse().is_ok_and(|v| d.requirement.matches(&v)));
        if !ok {
            findings.push(Finding::new(
                Code::PackageChain,
                at(PACKAGES),
                format!(
                    "package {} needs {} {}, which is not installed{}",
                    manifest.id,
                    d.id,
                    d.requirement,
                    m.packages
                        .get(&d.id)
                        .map(|p| format!(" (version {} is {})", p.version, p.status))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    // The paths: nobody owns them, nothing is there.
    let mut probe = DirProbe::new(&scope);
    for f in manifest.files.iter().filter(|f| !old_paths.contains(&f.path)) {
        let p = at(&f.path);
        if let Some(d) = m.owner(&p).filter(|d| *d.owner_id != *manifest.id) {
            findings.push(
                Finding::new(
                    Code::TwoOwners,
                    p.clone(),
                    format!(
                        "package {} would own it, but {} owns it already",
                        manifest.id, d.owner_id
                    ),
                )
                .owned_by(&*d.owner_id),
            );
        } else {
            match probe.parent_of(&p) {
                DirState::NotDir(through) => findings.push(Finding::new(
                    Code::Unmapped,
                    p.clone(),
                    format!(
                        "package {} would write it through {}, which is a symlink or a file, not a directory of the plane",
                        manifest.id,
                        through.display()
                    ),
                )),
                DirState::Dir
                    if scope
                        .open_dir(&p.parent().unwrap_or_else(RelPath::root))
                        .and_then(|d| d.stat(p.file_name().unwrap_or_default()))
                        .is_ok() =>
                {
                    findings.push(Finding::new(
                        Code::Unmapped,
                        p.clone(),
                        format!("package {} would write it, but something is there already", manifest.id),
                    ))
                }
                _ => {}
            }
        }
    }
    // What the plane's seal would refuse already, away from the package's
    // paths (an unowned file, say), refuses the install before anything is
    // written: the install's seal would refuse it after the files are in
    // place and leave the install pending, which every later command (`own`
    // included) would try to finish and refuse again. (On the package's
    // own paths the checks above decide: an edited file is refused, a mode
    // changed by hand is restored.)
    let package_path = |p: &RelPath| {
        let p = p.display();
        manifest.file(&p).is_some() || old.as_ref().is_some_and(|o| o.file(&p).is_some())
    };
    findings.extend(
        std::mem::take(&mut before.findings)
            .into_iter()
            .filter(|f| !package_path(&f.path)),
    );
    if !findings.is_empty() {
        crate::governance::sort(&mut findings);
        return Err(refuse(findings));
    }
    crate::trace::phase("install: checks");
    // The target: HEAD with the package's files grafted in, as a snapshot
    // object (no ref names it) for the checkout engine to restore from.
    let Resolved {
        id: head_id,
        snapshot: head,
        ..
    } = crate::revision::resolve(store, plane, "HEAD")?;
    let (target_id, target) = (|| -> Result<(SnapshotId, Snapshot)> {
        let w = &w;
        // The manifest and attestation, as blobs named by their BLAKE3
        // (the registry's manifest_digest and the manifest's attestation
        // field, both checked as they were read): what `cplane show PKG`
        // prints. Compressed while the target tree is built.
        let (metadata, changes) = rayon::join(
            || -> Result<()> {
                w.add(ObjectKind::Blob, package.manifest_digest, &package.manifest_bytes)?;
                w.add(ObjectKind::Blob, manifest.attestation, &package.attestation_bytes)
                    .map(|_| ())
            },
            || target_changes(manifest, &old_paths, uid, gid),
        );
        metadata?;
        let root = crate::restore::graft_many(w, &scope, head.root, &changes)?;
        let links = target_links(&crate::diff::TreeSource::store(store), &head, &changes)?;
        let mut snapshot = target_of(plane, head_id, &head, root, links);
        snapshot.name = format!("INSTALL-{}-{}", manifest.id, manifest.version);
        snapshot.message = format!("install {} {}", manifest.id, manifest.version);
        snapshot.files += manifest.files.len() as u64;
        snapshot.bytes += manifest.files.iter().map(|f| f.size).sum::<u64>();
        let (id, body) = snapshot.encode_with_id();
        w.add(ObjectKind::Snapshot, id.0, &body)?;
        Ok((id, snapshot))
    })()?;
    let (packs, _) = w.finish()?;
    store.add_packs(&packs)?;
    // (The seal checks the installed files against this manifest: it was
    // parsed and checked once, as it was read.)
    store.note_manifest(package.manifest_digest, std::sync::Arc::new(manifest.clone()));
    crate::trace::phase("install: target grafted, store written");
    let paths: Vec<RelPath> = manifest.files.iter().map(|f| at(&f.path)).collect();
    let gone: Vec<RelPath> = dropped(manifest, &old_paths).map(at).collect();
    // Restored as few paths as possible: only where the plane may differ
    // from the target, i.e. where the target differs from HEAD (one walk
    // of the two Merkle trees, skipping equal subtrees) or the working
    // tree did when the install began; an upgrade that changes one file of
    // 10,000 restores one path, not 10,000 (each looked up, rescued and
    // planned on its own). A directory that neither the plane nor HEAD has
    // is restored whole (all the package puts there, and nothing else can
    // be), everything else path by path.
    // (A first install: no path of the package is in the working tree, so
    // every one differs.) Link groups count: a path that leaves one is
    // written as a file of its own.
    let src = crate::diff::TreeSource::store(store);
    let differs: Option<std::collections::HashSet<RelPath>> = match old {
        Some(_) => Some(
            crate::diff::diff_states(&src, (&head.root, &head.links), (&target.root, &target.links))?
                .into_iter()
                .map(|c| c.path)
                .chain(std::mem::take(&mut before.edited))
                .collect(),
        ),
        None => None,
    };
    // The package's files left as they are keep the owner the scan saw;
    // the seal refuses if one was chowned while the install ran (written
    // ones are the checkout's to get right).
    let expect_owners: Vec<(RelPath, u32, u32)> = match &differs {
        Some(d) => paths
            .iter()
            .filter(|p| !d.contains(*p))
            .filter_map(|p| before.scanned.get(p).map(|s| (p.clone(), s.meta.uid, s.meta.gid)))
            .collect(),
        None => Vec::new(),
    };
    drop(before);
    let mut touched: Vec<RelPath> = Vec::with_capacity(paths.len() + gone.len());
    let mut fresh: std::collections::BTreeSet<RelPath> = std::collections::BTreeSet::new();
    let mut in_head: std::collections::HashMap<RelPath, bool> = std::collections::HashMap::new();
    for p in paths.iter().filter(|p| differs.as_ref().is_none_or(|d| d.contains(*p))) {
        // The outermost directory on the way that neither the working tree
        // nor HEAD has, if any.
        let new_dir = match probe.parent_of(p) {
            DirState::Missing(d) => {
                let known = match in_head.get(&d) {
                    Some(k) => *k,
                    None => {
                        let k = crate::diff::lookup_path(&src, &head.root, &d)?.is_some();
                        in_head.insert(d.clone(), k);
                        k
                    }
                };
                (!known).then_some(d)
            }
            _ => None,
        };
        match new_dir {
            Some(d) => {
                fresh.insert(d);
            }
            None => touched.push(p.clone()),
        }
    }
    // Only the outermost of nested fresh directories.
    let outer: Vec<RelPath> = fresh
        .iter()
        .filter(|d| !fresh.iter().any(|o| o != *d && d.starts_with(o)))
        .cloned()
        .collect();
    touched.extend(outer);
    touched.extend(gone.iter().cloned());
    let resolved = Resolved {
        plane: plane.clone(),
        id: target_id,
        snapshot: target,
    };
    // The steps after the files are written are resumable: a command that
    // finds this file (after finishing the checkout) completes them.
    let pending = store.plane_dir(&plane.name).join(INSTALL_PENDING);
    let note = serde_json::json!({
        "manifest_digest": package.manifest_digest.to_hex(),
        "gone": gone.iter().map(RelPath::display).collect::<Vec<_>>(),
    });
    crate::fsutil::write_atomic(&pending, note.to_string().as_bytes(), &store.tmp_dir())?;
    let known: std::collections::HashMap<ObjectId, &[u8]> = manifest
        .files
        .iter()
        .zip(&contents)
        .filter_map(|(f, b)| Some((f.blake3, b.as_deref()?.as_slice())))
        .collect();
    let written = crate::restore::restore_with(
        store,
        lock,
        plane,
        &resolved,
        &touched,
        hooks,
        ctl,
        Some(&known),
        prestaged.as_ref(),
        prebuilt.as_ref(),
    )?;
    crate::trace::phase("install: checkout");
    drop(prestaged);
    drop(prebuilt);
    drop(known);
    drop(contents);
    // The seal and the registry steps below scan the plane: they need not
    // hash again the files just written from verified bytes.
    store.note_written(&plane.name, written.applied.written_rows.clone());
    let expect_owners = std::sync::Arc::new(expect_owners);
    let sealed = finish(
        store,
        lock,
        plane,
        manifest,
        &package.manifest_digest,
        &gone,
        Some(passed),
        Some(expect_owners.clone()),
        hooks,
        ctl,
    )
    .inspect_err(|e| {
        // A file chowned while the install ran: the pending install's
        // note keeps the owner it must have, so that finishing it later
        // checks that too (best effort: the refusal stands either way).
        if let Error::Refused { findings, .. } = e {
            let chowned: Vec<serde_json::Value> = expect_owners
                .iter()
                .filter(|(p, ..)| {
                    findings
                        .iter()
                        .any(|f| f.code == Code::PackageFileChanged && &f.path == p)
                })
                .map(|(p, uid, gid)| serde_json::json!([p.display(), uid, gid]))
                .collect();
            if !chowned.is_empty() {
                let mut note = note.clone();
                note["owners"] = serde_json::Value::Array(chowned);
                let _ = crate::fsutil::write_atomic(&pending, note.to_string().as_bytes(), &store.tmp_dir());
            }
        }
    })
    // (Its files are written: not "nothing was written".)
    .map_err(|e| match e {
        Error::Refused { findings, .. } => Error::InstallPending {
            plane: plane.name.clone(),
            findings,
        },
        e => e,
    })?;
    let _ = std::fs::remove_file(&pending);
    Ok(Installed {
        replaced: old.map(|o| o.version.to_string()),
        manifest: package.manifest.clone(),
        manifest_digest: package.manifest_digest,
        signer: package.signer.clone(),
        checkpoint: (sealed.id, sealed.snapshot.name.clone()),
        rescue: written.journal.rescue_name.clone(),
    })
}

/// The file that marks an install whose files are written but whose
/// registry, ownership and seal steps are not done yet
/// (`.cp/planes/<plane>/install.pending`, JSON `{"manifest_digest", "gone"}`).
pub const INSTALL_PENDING: &str = "install.pending";

/// The steps of an install after its files are in place: the package's
/// registry row (replacing an older version's), its ownership rows (and the
/// dropped files' rows removed), the seal. Each is idempotent, so an
/// interrupted install can run them again ([`resume`]).
#[allow(clippy::too_many_arguments)]
fn finish(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    manifest: &Manifest,
    digest: &ObjectId,
    gone: &[RelPath],
    passed: Option<crate::governance::plane::PassedGates>,
    expect_owners: Option<std::sync::Arc<Vec<(RelPath, u32, u32)>>>,
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
) -> Result<crate::snapshot::SealReport> {
    let scope = Scope::open(plane)?;
    let at = |p: &str| RelPath::parse(p.as_bytes()).unwrap_or_else(RelPath::root);
    let packages = at(PACKAGES);
    let existed = crate::governance::plane::is_plane_file(&scope, &packages);
    let text = if existed {
        String::from_utf8(crate::governance::plane::read_file(&scope, &packages)?).unwrap_or_default()
    } else {
        format!("{PACKAGES_HEADER}\n")
    };
    // Any row of this id goes (an older version, or this one from an
    // interrupted run), then the package's row.
    let mut text: String = text
        .lines()
        .filter(|l| l.split(',').next() != Some(manifest.id.as_str()))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!(
        "{},{},{},{},{},installed\n",
        manifest.id,
        manifest.version,
        manifest.spec_id,
        manifest.framework_id,
        digest.to_hex()
    ));
    crate::governance::plane::write_file(&scope, &packages, text.as_bytes())?;
    hooks.step("registry");
    if !existed {
        let like = at(crate::governance::FRAMEWORKS);
        crate::governance::edit::own_like(store, plane, &packages, &like, ctl)?;
    }
    // (An install that drops nothing need not load the model for it: a scan.)
    let declared: Vec<RelPath> = if gone.is_empty() {
        Vec::new()
    } else {
        let m = model(store, plane, ctl)?;
        gone.iter().filter(|p| m.owner(p).is_some()).cloned().collect()
    };
    if !declared.is_empty() {
        crate::governance::edit::disown(store, plane, &declared, ctl)?;
    }
    let paths: Vec<RelPath> = manifest.files.iter().map(|f| at(&f.path)).collect();
    // (The seal below compiles and checks the whole plane: not compiled here.)
    crate::governance::edit::own_rows(store, plane, &paths, &manifest.id, ctl)?;
    crate::trace::phase("install: registry, ownership");
    hooks.step("owned");
    let opts = crate::snapshot::SealOptions {
        message: format!("install {} {}", manifest.id, manifest.version),
        passed_gates: passed.map(std::sync::Arc::new),
        expect_owners,
        ..crate::snapshot::SealOptions::default()
    };
    match crate::governance::plane::snapshot(store, lock, plane, opts, false, ctl) {
        Ok((sealed, _)) => Ok(sealed),
        Err(e) => {
            // The seal compiles the rows above only when it passes: a
            // refused one leaves the compiled registry as `own` would have
            // (its own compile's findings are the seal's, reported below).
            if matches!(e, Error::Refused { .. }) {
                let _ = crate::governance::plane::compile_worktree(store, plane, ctl);
            }
            Err(e)
        }
    }
}

/// Completes an install that was interrupted after its files were written
/// (run after the checkout journal is finished): when every file of the
/// package is in place, the registry, ownership and seal steps run again;
/// when none is (the checkout never started), nothing was changed and the
/// mark is dropped. Returns the package and the checkpoint it sealed.
///
/// # Errors
/// Store damage reading the manifest; what the steps report (the mark stays
/// for the next try).
pub fn resume(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    ctl: Control<'_>,
) -> Result<Option<(Manifest, (SnapshotId, String))>> {
    let pending = store.plane_dir(&plane.name).join(INSTALL_PENDING);
    let Ok(text) = std::fs::read_to_string(&pending) else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let digest = v["manifest_digest"].as_str().and_then(ObjectId::from_hex);
    let manifest = match digest {
        Some(d) if store.contains(&d) => Manifest::parse(&crate::governance::plane::read_blob(store, &d)?).ok(),
        _ => None,
    };
    let (Some(manifest), Some(digest)) = (manifest, digest) else {
        let _ = std::fs::remove_file(&pending);
        return Ok(None);
    };
    let scope = Scope::open(plane)?;
    let present = manifest
        .files
        .iter()
        .filter(|f| hash_on_disk(&scope, &f.path) == Some(f.blake3))
        .count();
    if present < manifest.files.len() {
        // Not (all) written: the checkout did not run, or was undone.
        let _ = std::fs::remove_file(&pending);
        return Ok(None);
    }
    let gone: Vec<RelPath> = v["gone"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().and_then(|p| RelPath::parse(p.as_bytes())))
                .collect()
        })
        .unwrap_or_default();
    // Files chowned while the install ran (its seal refused them): they
    // must have their owner back first.
    let owners: Vec<(RelPath, u32, u32)> = v["owners"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|row| {
                    let p = RelPath::parse(row[0].as_str()?.as_bytes())?;
                    let id = |i: usize| row[i].as_u64().and_then(|n| u32::try_from(n).ok());
                    Some((p, id(1)?, id(2)?))
                })
                .collect()
        })
        .unwrap_or_default();
    let sealed = finish(
        store,
        lock,
        plane,
        &manifest,
        &digest,
        &gone,
        None,
        (!owners.is_empty()).then(|| std::sync::Arc::new(owners)),
        &crate::checkout::NoHooks,
        ctl,
    )?;
    let _ = std::fs::remove_file(&pending);
    Ok(Some((manifest, (sealed.id, sealed.snapshot.name))))
}

/// What [`uninstall`] did.
#[derive(Debug)]
pub struct Uninstalled {
    /// The package's manifest (as installed).
    pub manifest: Manifest,
    /// The checkpoint sealed without the package.
    pub checkpoint: (SnapshotId, String),
    /// The rescue checkpoint holding the state before (edited bytes included).
    pub rescue: String,
    /// Files that had been edited since install (kept in the rescue checkpoint).
    pub edited: Vec<String>,
}

/// The manifest install stored for package `id` (the blob the packages
/// registry's `manifest_digest` names, for a row with status `installed`
/// in the working tree's registry); `None` when there is none.
///
/// # Errors
/// Store damage; a stored manifest that does not parse.
pub fn installed_manifest(store: &Store, scope: &Scope, id: &str) -> Result<Option<Manifest>> {
    use crate::governance::registry::Table;
    let at = RelPath::parse(PACKAGES.as_bytes()).unwrap_or_else(RelPath::root);
    if !crate::governance::plane::is_plane_file(scope, &at) {
        return Ok(None);
    }
    let bytes = crate::governance::plane::read_file(scope, &at)?;
    let cols = ["id", "version", "spec_id", "framework_id", "manifest_digest", "status"];
    let Ok(t) = Table::parse(&bytes, PACKAGES, &cols, &[]) else {
        return Ok(None);
    };
    let Some(digest) = t
        .rows()
        .find(|r| r.get("id") == id && r.get("status") == "installed")
        .and_then(|r| ObjectId::from_hex(r.get("manifest_digest")))
    else {
        return Ok(None);
    };
    match store.manifest(&digest)? {
        Some(m) => Ok(Some((*m).clone())),
        None => Err(Error::BadConfig {
            path: at.display().into(),
            reason: format!("the stored manifest of {id} does not parse or check out"),
        }),
    }
}

/// Removes exactly package `id`'s files from `plane`: refused while another
/// installed package depends on it, or (unless `force`) when one of its
/// files was edited since install; with `force` the edited bytes are kept
/// in the rescue checkpoint. The files go through the checkout engine (a
/// rescue checkpoint first), then the package's registry row and ownership
/// rows are removed and the plane is sealed.
///
/// # Errors
/// [`Error::Refused`] with findings (nothing written); what `restore`,
/// `disown` and the governed snapshot report.
pub fn uninstall(
    store: &mut Store,
    lock: &StoreLock,
    plane: &Plane,
    id: &str,
    force: bool,
    hooks: &dyn CheckoutHooks,
    ctl: Control<'_>,
) -> Result<Uninstalled> {
    let scope = Scope::open(plane)?;
    let at = |p: &str| RelPath::parse(p.as_bytes()).unwrap_or_else(RelPath::root);
    let manifest = installed_manifest(store, &scope, id)?.ok_or_else(|| Error::BadConfig {
        path: PACKAGES.into(),
        reason: format!("has no installed package {id}"),
    })?;
    let mut before = model_and_changes(store, plane, true, ctl)?;
    let m = std::mem::take(&mut before.model);
    // What the plane's seal would refuse already, away from the package's
    // own paths (an unowned file, say), refuses the uninstall before
    // anything is removed: its seal would refuse it afterwards, with the
    // files gone and no checkpoint saying so. (The package's own files are
    // checked below: an edited one is refused unless --force.)
    // (Nor what the package's own registry row is blamed for: the
    // uninstall removes the row.)
    let in_manifest = |p: &RelPath| manifest.file(&p.display()).is_some();
    let packages = at(PACKAGES);
    let mut findings: Vec<Finding> = std::mem::take(&mut before.findings)
        .into_iter()
        .filter(|f| !(in_manifest(&f.path) || (f.path == packages && f.owner.as_deref() == Some(id))))
        .collect();
    // A path the package owns that is not one of its files (owned by hand,
    // `own --by PKG`) would be left naming a package that is gone: the
    // seal would refuse it once the files are removed.
    for (p, decls) in m.declared.iter() {
        if decls.iter().any(|d| &*d.owner_id == id) && !in_manifest(p) {
            findings.push(
                Finding::new(
                    Code::UnknownOwner,
                    p.clone(),
                    format!(
                        "is owned by package {id} but is not one of its files: disown it (cplane disown), or own it by another owner, first"
                    ),
                )
                .owned_by(id),
            );
        }
    }
    // Nothing installed may depend on it.
    for other in m.packages.values().filter(|p| p.id != id && p.status == "installed") {
        if let Some(om) = installed_manifest(store, &scope, &other.id)?
            && om.dependencies.iter().any(|d| d.id == id)
        {
            findings.push(Finding::new(
                Code::PackageChain,
                at(PACKAGES),
                format!("package {} depends on {id}: uninstall it first", other.id),
            ));
        }
    }
    // Edited files (the bytes on disk against the manifest; the status
    // scan vouches for those it saw unchanged, the others are hashed).
    let mut edited = Vec::new();
    for f in &manifest.files {
        let p = at(&f.path);
        if !as_installed(&scope, &before, f) {
            edited.push(f.path.clone());
            if !force {
                findings.push(Finding::new(
                    Code::Modified,
                    p,
                    format!("edited (or removed) since package {id} installed it; --force keeps its bytes in the rescue checkpoint"),
                ));
            }
        }
    }
    if !findings.is_empty() {
        return Err(Error::Refused {
            action: "uninstall",
            findings,
        });
    }
    let Resolved {
        id: head_id,
        snapshot: head,
        ..
    } = crate::revision::resolve(store, plane, "HEAD")?;
    let paths: Vec<RelPath> = manifest.files.iter().map(|f| at(&f.path)).collect();
    let changes: Vec<(RelPath, Option<TreeEntry>)> = paths.iter().map(|p| (p.clone(), None)).collect();
    let links = target_links(&crate::diff::TreeSource::store(store), &head, &changes)?;
    let (target_id, target) = store
        .transaction(|w| {
            let root = crate::restore::graft_many(w, &scope, head.root, &changes)?;
            let mut snapshot = target_of(plane, head_id, &head, root, links);
            snapshot.name = format!("UNINSTALL-{id}");
            snapshot.message = format!("uninstall {id}");
            snapshot.files = head.files.saturating_sub(paths.len() as u64);
            let (sid, body) = snapshot.encode_with_id();
            w.add(ObjectKind::Snapshot, sid.0, &body)?;
            Ok((sid, snapshot))
        })?
        .0;
    let resolved = Resolved {
        plane: plane.clone(),
        id: target_id,
        snapshot: target,
    };
    let touched = uninstall_paths(store, &before, &manifest, &resolved.snapshot, &paths)?;
    drop(before);
    let written = crate::restore::restore(store, lock, plane, &resolved, &touched, hooks, ctl)?;
    // The registry row goes; then the ownership rows; then the seal.
    let text = String::from_utf8(crate::governance::plane::read_file(&scope, &packages)?).unwrap_or_default();
    let kept: String = text
        .lines()
        .filter(|l| l.split(',').next() != Some(id))
        .map(|l| format!("{l}\n"))
        .collect();
    crate::governance::plane::write_file(&scope, &packages, kept.as_bytes())?;
    crate::governance::edit::disown(store, plane, &paths, ctl)?;
    let opts = crate::snapshot::SealOptions {
        message: format!("uninstall {id} {}", manifest.version),
        ..crate::snapshot::SealOptions::default()
    };
    let (sealed, _) = crate::governance::plane::snapshot(store, lock, plane, opts, false, ctl)?;
    Ok(Uninstalled {
        manifest,
        checkpoint: (sealed.id, sealed.snapshot.name.clone()),
        rescue: written.journal.rescue_name.clone(),
        edited,
    })
}
