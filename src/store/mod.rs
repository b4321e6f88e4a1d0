//! The object store under `.cp/`: format file, configuration, packs, refs,
//! stat caches and the writer lock. Layout and bytes: `store-format.md`.

pub(crate) mod frame;
pub mod index;
pub mod lock;
pub mod pack;
pub mod refs;

use crate::error::{Error, IoResultExt, Result};
use crate::fsutil::{ensure_dir, write_atomic};
use crate::id::{ObjectId, SnapshotId, TreeId};
use crate::object::{ObjectKind, Snapshot, Tree};
use pack::{IdxEntry, ObjectWriter, PackIndex};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the store directory at the control-plane root.
pub const STORE_DIR: &str = ".cp";

/// True when the directory `dir` holds a store (`.cp/FORMAT`, a regular
/// file), looked up through descriptors without following symlinks.
pub(crate) fn holds_store(dir: &crate::fsys::Dir) -> bool {
    dir.open_dir(STORE_DIR.as_bytes())
        .and_then(|d| d.stat(b"FORMAT"))
        .is_ok_and(|st| crate::fsys::EntryType::from_mode(st.st_mode as u32) == crate::fsys::EntryType::File)
}
/// Store format version this build writes and the newest it reads. Format 1
/// stores are read only by `cplane upgrade`.
pub const FORMAT_VERSION: u32 = 2;
/// Name prefix of the directory `init` builds the store in before naming it `.cp`.
pub const INIT_PREFIX: &str = ".cp.init-";
/// A pack with fewer objects than this (and fewer than [`SMALL_PACK_BYTES`]) is small.
pub const SMALL_PACK_OBJECTS: usize = 1024;
/// A pack smaller than this many bytes (and with fewer than [`SMALL_PACK_OBJECTS`] objects) is small.
pub const SMALL_PACK_BYTES: u64 = 8 << 20;
/// Small packs are merged into one when there are this many.
pub const REPACK_AT_SMALL_PACKS: usize = 16;
/// First word of the `FORMAT` file.
const FORMAT_MAGIC: &str = "cplane-store";

/// One plane as recorded in `.cp/config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaneConfig {
    /// Plane name: `[A-Za-z0-9._-]+`, unique in the store.
    pub name: String,
    /// Root directory relative to the control-plane root, `/`-separated; `""` is the root itself.
    pub path: String,
    /// Optional tier label (`ho1`, `ho2`, ...).
    #[serde(default)]
    pub tier: Option<String>,
    /// Exclusion patterns (gitignore syntax, relative to the plane root) given
    /// with `--exclude` ([`crate::exclude`]). Absent from the JSON when empty,
    /// so a store without exclusions keeps the layout older readers know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// `.cp/config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Planes, in the order they were added.
    pub planes: Vec<PlaneConfig>,
    /// Remotes (`cplane remote add`), in the order they were added. Absent
    /// from the JSON when empty, so a store without remotes keeps the layout
    /// older readers know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<RemoteConfig>,
}

/// One remote as recorded in `.cp/config.json` (`store-format.md`,
/// "Remotes"). Never holds credentials: those come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) at
/// each use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// Remote name: `[A-Za-z0-9._-]+` (as ref names), unique in the store.
    pub name: String,
    /// `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/PATH`.
    pub url: String,
    /// S3 endpoint URL (`--endpoint`), for S3-compatible servers; `None`:
    /// `AWS_ENDPOINT_URL` at each use, else AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region (`--region`); `None`: `AWS_REGION` / `AWS_DEFAULT_REGION` at each use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// An opened store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    dir: PathBuf,
    config: Config,
    packs: Vec<PackIndex>,
    /// Packs that appeared after `packs` was loaded (a concurrent writer's), opened
    /// on demand when an object that must exist is not found in `packs`.
    late: std::sync::Mutex<Vec<std::sync::Arc<PackIndex>>>,
    /// How long [`Store::lock`] waits for another writer.
    lock_wait: std::time::Duration,
    /// Packs that could not be opened, with why (see [`Store::broken_packs`]).
    broken: Vec<(PathBuf, String)>,
    /// Stat-cache rows of files this process wrote, per plane (see
    /// [`Store::note_written`]).
    written: std::sync::Mutex<std::collections::HashMap<String, Vec<index::IndexEntry>>>,
    /// Package manifests parsed and checked in this process, by the BLAKE3
    /// of their bytes (see [`Store::manifest`]).
    manifests: std::sync::Mutex<std::collections::HashMap<ObjectId, std::sync::Arc<crate::package::Manifest>>>,
}

/// The text of the `FORMAT` file this build writes: `cplane-store <N>`.
pub(crate) fn format_text() -> String {
    format!("{FORMAT_MAGIC} {FORMAT_VERSION}\n")
}

/// Reads the version from a `FORMAT` file (`cplane-store <N>`).
fn read_format(format_path: &Path) -> Result<u32> {
    let text = fs::read_to_string(format_path).at(format_path)?;
    text.trim()
        .strip_prefix(FORMAT_MAGIC)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| Error::BadConfig {
            path: format_path.to_path_buf(),
            reason: format!("expected `{FORMAT_MAGIC} <version>`, found {:?}", text.trim()),
        })
}

/// Removes `.cp.init-<pid>` directories of inits that are no longer running
/// (a crash, or a failure that could not clean up, such as a full disk).
fn remove_stale_init_dirs(root: &Path) -> Result<()> {
    for e in fs::read_dir(root).at(root)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(INIT_PREFIX)
            && let Ok(pid) = pid.parse::<i32>()
            && (pid as u32 == std::process::id() || !crate::fsys::process_alive(pid))
            && e.file_type().is_ok_and(|t| t.is_dir())
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

/// A pack found by [`Store::locate`]: one loaded at open, or one opened later.
#[derive(Debug)]
pub enum PackRef<'a> {
    /// Loaded when the store was opened.
    Loaded(&'a PackIndex),
    /// Written by another process since, and opened on demand.
    Late(std::sync::Arc<PackIndex>),
}

impl std::ops::Deref for PackRef<'_> {
    type Target = PackIndex;
    fn deref(&self) -> &PackIndex {
        match self {
            PackRef::Loaded(p) => p,
            PackRef::Late(p) => p,
        }
    }
}

impl Store {
    /// Creates a store for `root` under the temporary name `.cp.init-<pid>`,
    /// with one plane, `main`, covering `root`. The caller seals the first
    /// snapshot into it and then calls [`Store::publish_init`]; a crash before
    /// that leaves no `.cp`, only the temporary directory, which the next
    /// `init` removes. Also removes such leftovers of crashed inits.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] / [`Error::UnfinishedInit`] when `root/.cp`
    /// exists; [`Error::InsideOtherStore`] when `root` is inside a plane of
    /// another store; [`Error::Io`] otherwise (the temporary directory is removed).
    pub fn create_staged(root: &Path) -> Result<Store> {
        let root = fs::canonicalize(root).at(root)?;
        let dir = root.join(STORE_DIR);
        if dir.exists() {
            if let Ok(existing) = Store::open(&root)
                && existing.head("main").ok().flatten().is_none()
                && existing.checkpoints("main").is_ok_and(|c| c.is_empty())
            {
                return Err(Error::UnfinishedInit { path: dir });
            }
            return Err(Error::AlreadyInitialized { path: dir });
        }
        // A store inside another store's plane would have its files owned twice.
        if let Some(parent) = root.parent()
            && let Ok(outer) = Store::discover(parent)
            && let Ok(plane) = outer.plane_containing(&root)
        {
            return Err(Error::InsideOtherStore {
                root: root.clone(),
                plane: plane.name,
                store: outer.root().to_path_buf(),
            });
        }
        // Not inside a store directory (a store of the store's own packs).
        for a in root.ancestors() {
            if a.file_name().is_some_and(|n| n == STORE_DIR) && a.join("FORMAT").is_file() {
                return Err(Error::BadPlaneRoot {
                    path: root.clone(),
                    problem: crate::error::RootProblem::InsideStoreDir,
                });
            }
        }
        remove_stale_init_dirs(&root)?;
        let staging = root.join(format!("{INIT_PREFIX}{}", std::process::id()));
        let built = (|| {
            fs::create_dir(&staging).at(&staging)?;
            ensure_dir(&staging.join("packs"))?;
            ensure_dir(&staging.join("tmp"))?;
            ensure_dir(&staging.join("planes"))?;
            let config = Config {
                planes: vec![PlaneConfig {
                    name: "main".into(),
                    path: String::new(),
                    tier: None,
                    exclude: Vec::new(),
                }],
                remotes: Vec::new(),
            };
            let staging_tmp = staging.join("tmp");
            write_atomic(&staging.join("config.json"), &config_bytes(&config), &staging_tmp)?;
            write_atomic(&staging.join("FORMAT"), format_text().as_bytes(), &staging_tmp)?;
            Store::open_dir(&root, &staging, false)
        })();
        if built.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        built
    }

    /// Gives a store made by [`Store::create_staged`] its real name, `.cp`,
    /// durably, and reopens it.
    ///
    /// # Errors
    /// [`Error::Io`]; the temporary directory is removed on failure.
    pub fn publish_init(self) -> Result<Store> {
        let dir = self.root.join(STORE_DIR);
        let staging = self.dir.clone();
        let root = self.root.clone();
        drop(self);
        if let Err(e) = fs::rename(&staging, &dir).at(&dir) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        crate::fsutil::fsync_dir(&root)?;
        Store::open(&root)
    }

    /// Creates an empty store (no snapshot yet) in `root/.cp`, for library
    /// users that seal the first snapshot themselves (the CLI's `init` uses
    /// [`crate::snapshot::init`], which seals before the store gets its name).
    ///
    /// # Errors
    /// As [`Store::create_staged`] and [`Store::publish_init`].
    pub fn init(root: &Path) -> Result<Store> {
        Store::create_staged(root)?.publish_init()
    }

    /// Removes a store made by [`Store::create_staged`] that will not be published.
    pub fn discard_init(self) {
        let staging = self.dir.clone();
        drop(self);
        let _ = fs::remove_dir_all(staging);
    }

    /// The control-plane root (the directory holding `.cp`) of the store in
    /// `start` or its nearest ancestor, without opening it (any format).
    ///
    /// # Errors
    /// [`Error::NoStore`].
    pub fn find_root(start: &Path) -> Result<PathBuf> {
        let abs = fs::canonicalize(start).at(start)?;
        let mut cur = Some(abs.as_path());
        while let Some(dir) = cur {
            if dir.join(STORE_DIR).join("FORMAT").is_file() {
                return Ok(dir.to_path_buf());
            }
            cur = dir.parent();
        }
        Err(Error::NoStore { start: abs })
    }

    /// Finds the store in `start` or its nearest ancestor and opens it.
    ///
    /// # Errors
    /// [`Error::NoStore`] when no ancestor has `.cp/FORMAT`; as [`Store::open`].
    pub fn discover(start: &Path) -> Result<Store> {
        Store::open(&Store::find_root(start)?)
    }

    /// Opens the store at `root/.cp`: checks the format, reads the config, maps the pack indexes.
    ///
    /// # Errors
    /// [`Error::NewerFormat`] for a store written by a newer cplane;
    /// [`Error::OlderFormat`] for a format-1 store (`cplane upgrade` converts it);
    /// [`Error::BadConfig`] for a malformed `FORMAT` or `config.json`;
    /// [`Error::DamagedFile`] for a malformed pack index.
    pub fn open(root: &Path) -> Result<Store> {
        let root = fs::canonicalize(root).at(root)?;
        let dir = root.join(STORE_DIR);
        Store::open_dir(&root, &dir, false)
    }

    /// Opens a store of format 1 or 2 for `cplane upgrade`; returns it and its format version.
    ///
    /// # Errors
    /// As [`Store::open`], without the format-1 refusal.
    pub fn open_any_format(root: &Path) -> Result<(Store, u32)> {
        let root = fs::canonicalize(root).at(root)?;
        let dir = root.join(STORE_DIR);
        let store = Store::open_dir(&root, &dir, true)?;
        let version = read_format(&dir.join("FORMAT"))?;
        Ok((store, version))
    }

    fn open_dir(root: &Path, dir: &Path, any_format: bool) -> Result<Store> {
        let format_path = dir.join("FORMAT");
        let version = read_format(&format_path)?;
        if version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                path: format_path,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version < FORMAT_VERSION && !any_format {
            return Err(Error::OlderFormat {
                path: format_path,
                found: version,
                current: FORMAT_VERSION,
            });
        }
        let config_path = dir.join("config.json");
        let raw = fs::read(&config_path).at(&config_path)?;
        let config: Config = serde_json::from_slice(&raw).map_err(|e| Error::BadConfig {
            path: config_path.clone(),
            reason: format!("line {}, column {}: {e}", e.line(), e.column()),
        })?;
        validate_config(&config).map_err(|reason| Error::BadConfig {
            path: config_path.clone(),
            reason,
        })?;
        let mut store = Store {
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
            config,
            packs: Vec::new(),
            late: std::sync::Mutex::new(Vec::new()),
            lock_wait: std::time::Duration::from_millis(lock::DEFAULT_LOCK_TIMEOUT_MS),
            broken: Vec::new(),
            written: std::sync::Mutex::new(std::collections::HashMap::new()),
            manifests: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        store.load_packs()?;
        Ok(store)
    }

    /// Remembers, while this process holds the store lock (the next
    /// [`Store::lock`] forgets them), the stat-cache rows of files
    /// a checkout of `plane` just wrote (each one's `fstat` right after it was
    /// put in place, and the blob it was written from), or that a scan of
    /// this command hashed ([`crate::worktree::note_hashed`]). Later scans in
    /// the same command trust them as they trust the saved stat cache, without
    /// the racy-time rule: the command wrote those bytes itself, or read them
    /// when they were not racy, so a package install does not hash its files
    /// again to seal them. Nothing is saved; the seal's own cache keeps the
    /// rule, so the next command re-checks them.
    pub fn note_written(&self, plane: &str, rows: Vec<index::IndexEntry>) {
        if rows.is_empty() {
            return;
        }
        let mut w = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        w.entry(plane.to_string()).or_default().extend(rows);
    }

    /// The rows [`Store::note_written`] remembered for `plane`.
    pub fn written_rows(&self, plane: &str) -> Vec<index::IndexEntry> {
        let w = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        w.get(plane).cloned().unwrap_or_default()
    }

    /// Remembers, for the rest of this process, `manifest` as the parsed
    /// and checked form of the blob `digest` (the BLAKE3 of its canonical
    /// bytes): an install's seal then need not read and parse again the
    /// manifest it just verified ([`Store::manifest`]).
    pub fn note_manifest(&self, digest: ObjectId, manifest: std::sync::Arc<crate::package::Manifest>) {
        let mut m = self.manifests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.insert(digest, manifest);
    }

    /// The package manifest stored as blob `digest`, parsed and checked
    /// ([`crate::package::Manifest::parse`]); `Ok(None)` when the blob is
    /// not a valid manifest. Kept for the rest of the process.
    ///
    /// # Errors
    /// Store damage; [`Error::MissingObject`] when the blob is not stored.
    pub fn manifest(&self, digest: &ObjectId) -> Result<Option<std::sync::Arc<crate::package::Manifest>>> {
        if let Some(m) = self
            .manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(digest)
        {
            return Ok(Some(m.clone()));
        }
        let mut bytes = Vec::new();
        self.read_blob_to(digest, &mut bytes, Path::new("(memory)"))?;
        let Ok(parsed) = crate::package::Manifest::parse(&bytes) else {
            return Ok(None);
        };
        let parsed = std::sync::Arc::new(parsed);
        self.note_manifest(*digest, parsed.clone());
        Ok(Some(parsed))
    }

    /// How long [`Store::lock`] waits for another writer.
    pub fn set_lock_wait(&mut self, wait: std::time::Duration) {
        self.lock_wait = wait;
    }

    fn load_packs(&mut self) -> Result<()> {
        // A concurrent repack may delete packs between listing and opening them; its new
        // pack is in place before any old one goes, so listing again finds everything.
        const ATTEMPTS: usize = 5;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_load_packs(attempt == ATTEMPTS) {
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < ATTEMPTS =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Opens every pack index. A damaged index, or one whose pack is gone (on
    /// the `last` attempt: not a concurrent repack), does not stop the store
    /// from opening: it is listed in [`Store::broken_packs`] (fsck reports it;
    /// a command that needs one of its objects finds it missing, exit 3).
    fn try_load_packs(&mut self, last: bool) -> Result<()> {
        let packs_dir = self.packs_dir();
        let mut paths = Vec::new();
        for entry in fs::read_dir(&packs_dir).at(&packs_dir)? {
            let entry = entry.at(&packs_dir)?;
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "idx") {
                paths.push(p);
            }
        }
        paths.sort();
        let mut packs = Vec::with_capacity(paths.len());
        let mut broken = Vec::new();
        for p in &paths {
            match PackIndex::open(p) {
                Ok(idx) => packs.push(idx),
                Err(e @ Error::NewerFormat { .. }) => return Err(e),
                Err(Error::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
                    if !last || path == *p {
                        return Err(Error::Io { path, source });
                    }
                    broken.push((path, "the pack file is missing, but its index is present".to_string()));
                }
                Err(Error::DamagedFile { path, reason }) => broken.push((path, reason)),
                Err(other) => broken.push((p.clone(), other.to_string())),
            }
        }
        self.packs = packs;
        self.broken = broken;
        Ok(())
    }

    /// Pack files that could not be opened (damaged index, missing pack), with why.
    pub fn broken_packs(&self) -> &[(PathBuf, String)] {
        &self.broken
    }

    /// Merges small packs into one when there are [`REPACK_AT_SMALL_PACKS`] or more.
    ///
    /// Every snapshot writes at least one pack; without merging, a store with
    /// hourly snapshots would open thousands of pack indexes on every command. A
    /// pack is small when it holds fewer than [`SMALL_PACK_OBJECTS`] objects and
    /// fewer than [`SMALL_PACK_BYTES`] bytes. Each object is verified before it is
    /// copied; if any is damaged, nothing is merged (`fsck` will report it). The
    /// merged pack is durable before the old ones are deleted (index first, so
    /// readers never see a pack without its index). Returns the number of packs merged.
    ///
    /// # Errors
    /// [`Error::Io`] while writing the new pack or deleting old ones.
    pub fn maybe_repack(&mut self, _lock: &lock::StoreLock) -> Result<usize> {
        let small: Vec<usize> = (0..self.packs.len())
            .filter(|&i| {
                let p = &self.packs[i];
                p.len() < SMALL_PACK_OBJECTS && fs::metadata(&p.pack_path).is_ok_and(|m| m.len() < SMALL_PACK_BYTES)
            })
            .collect();
        if small.len() < REPACK_AT_SMALL_PACKS {
            return Ok(0);
        }
        let writer = self.writer();
        for &i in &small {
            let p = &self.packs[i];
            for j in 0..p.len() {
                let Some(e) = p.entry(j) else { return Ok(0) };
                if p.verify_entry(&e).is_err() {
                    return Ok(0);
                }
                let Ok(record) = p.raw_record(&e) else { return Ok(0) };
                writer.copy_record(&e, &record)?;
            }
        }
        let (new, _) = writer.finish()?;
        let old: Vec<(PathBuf, PathBuf)> = small
            .iter()
            .map(|&i| (self.packs[i].idx_path.clone(), self.packs[i].pack_path.clone()))
            .collect();
        let mut keep = Vec::with_capacity(self.packs.len());
        for (i, p) in std::mem::take(&mut self.packs).into_iter().enumerate() {
            if !small.contains(&i) {
                keep.push(p);
            }
        }
        self.packs = keep;
        self.add_packs(&new)?;
        for (idx, _) in &old {
            fs::remove_file(idx).at(idx)?;
        }
        for (_, pack) in &old {
            fs::remove_file(pack).at(pack)?;
        }
        crate::fsutil::fsync_dir(&self.packs_dir())?;
        Ok(old.len())
    }

    /// Deletes every pack opened since `before` (the index paths of the
    /// packs then) was taken, index first (readers never see a pack without
    /// its index): what a refused transfer wrote goes again.
    ///
    /// # Errors
    /// [`Error::Io`] while deleting.
    pub fn remove_packs_since(
        &mut self,
        _lock: &lock::StoreLock,
        before: &std::collections::HashSet<PathBuf>,
    ) -> Result<()> {
        let (keep, gone): (Vec<PackIndex>, Vec<PackIndex>) = std::mem::take(&mut self.packs)
            .into_iter()
            .partition(|p| before.contains(&p.idx_path));
        self.packs = keep;
        if gone.is_empty() {
            return Ok(());
        }
        let paths: Vec<(PathBuf, PathBuf)> = gone.iter().map(|p| (p.idx_path.clone(), p.pack_path.clone())).collect();
        drop(gone);
        for (idx, _) in &paths {
            fs::remove_file(idx).at(idx)?;
        }
        for (_, pack) in &paths {
            fs::remove_file(pack).at(pack)?;
        }
        crate::fsutil::fsync_dir(&self.packs_dir())
    }

    /// The control-plane root (the directory holding `.cp`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `.cp` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `.cp/packs`.
    pub fn packs_dir(&self) -> PathBuf {
        self.dir.join("packs")
    }

    /// `.cp/tmp`, where packs are written before they are renamed into place.
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// The store configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces `.cp/config.json` atomically.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn save_config(&mut self, config: Config) -> Result<()> {
        write_atomic(&self.dir.join("config.json"), &config_bytes(&config), &self.tmp_dir())?;
        self.config = config;
        Ok(())
    }

    /// The opened packs, oldest name first.
    pub fn packs(&self) -> &[PackIndex] {
        &self.packs
    }

    /// Starts a write transaction.
    pub fn writer(&self) -> ObjectWriter<'_> {
        ObjectWriter::new(self)
    }

    /// Runs `f` in a write transaction, then makes everything it wrote durable and
    /// visible (packs fsynced, renamed, mapped). If `f` fails, nothing it wrote is
    /// kept. `f` reads the store through [`ObjectWriter::store`].
    ///
    /// # Errors
    /// The error of `f`, or I/O errors while finishing the packs.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&ObjectWriter<'_>) -> Result<T>) -> Result<(T, pack::WriteStats)> {
        let (value, packs, stats) = {
            let writer = ObjectWriter::new(self);
            let value = f(&writer)?;
            let (packs, stats) = writer.finish()?;
            (value, packs, stats)
        };
        self.add_packs(&packs)?;
        Ok((value, stats))
    }

    /// Maps packs that a finished [`ObjectWriter`] produced.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] when a new index cannot be opened.
    pub fn add_packs(&mut self, idx_paths: &[PathBuf]) -> Result<()> {
        for p in idx_paths {
            self.packs.push(PackIndex::open(p)?);
        }
        Ok(())
    }

    /// Where `id` is stored: its pack and index entry.
    ///
    /// When the object is not in the packs loaded at open, packs written since by
    /// another process are opened and searched too: a ref read after this store
    /// was opened may name objects in them (refs move only after their packs exist).
    pub fn locate(&self, id: &ObjectId) -> Option<(PackRef<'_>, IdxEntry)> {
        // Newest packs first: recent objects are the likeliest to be asked for.
        if let Some(found) = self
            .packs
            .iter()
            .rev()
            .find_map(|p| p.find(id).and_then(|i| p.entry(i)).map(|e| (PackRef::Loaded(p), e)))
        {
            return Some(found);
        }
        let mut late = self.late.lock().expect("late pack list lock poisoned");
        let search = |late: &[std::sync::Arc<PackIndex>]| {
            late.iter().find_map(|p| {
                p.find(id)
                    .and_then(|i| p.entry(i))
                    .map(|e| (PackRef::Late(p.clone()), e))
            })
        };
        if let Some(found) = search(&late) {
            return Some(found);
        }
        let known: std::collections::HashSet<PathBuf> = self
            .packs
            .iter()
            .map(|p| p.idx_path.clone())
            .chain(late.iter().map(|p| p.idx_path.clone()))
            .collect();
        let Ok(rd) = fs::read_dir(self.packs_dir()) else {
            return None;
        };
        for entry in rd.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "idx")
                && !known.contains(&p)
                && let Ok(idx) = PackIndex::open(&p)
            {
                late.push(std::sync::Arc::new(idx));
            }
        }
        search(&late)
    }

    /// Takes the writer lock only if it is free right now; otherwise as [`Store::lock`].
    ///
    /// # Errors
    /// [`Error::Locked`] when another writer holds it.
    pub fn try_lock(&mut self) -> Result<lock::StoreLock> {
        let l = lock::StoreLock::try_acquire(&self.dir)?;
        self.took_lock()?;
        Ok(l)
    }

    /// What every new lock holder does first: see the previous writer's config and
    /// packs, and clear what a crashed writer left (only lock holders write there).
    fn took_lock(&mut self) -> Result<()> {
        self.reload()?;
        // Rows noted under an earlier lock are not vouched for under this
        // one (a gc may have run in between).
        self.written
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        // Every write goes through `.cp/tmp`; a missing one (removed by hand) is
        // recreated rather than failing every write (`fsck` reports it meanwhile).
        let tmp = self.tmp_dir();
        if !tmp.is_dir() {
            fs::create_dir_all(&tmp).at(&tmp)?;
        }
        for path in self.leftovers() {
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
        Ok(())
    }

    /// Re-reads `config.json` and the pack list: what the previous lock holder wrote.
    /// Callers must re-resolve any [`crate::plane::Plane`] they hold afterwards.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn reload(&mut self) -> Result<()> {
        let fresh = Store::open_dir(&self.root, &self.dir, true)?;
        self.config = fresh.config;
        self.packs = fresh.packs;
        self.broken = fresh.broken;
        self.late.lock().expect("late pack list lock poisoned").clear();
        Ok(())
    }

    /// Takes the writer lock (waiting up to [`Store::set_lock_wait`]; giving up
    /// when `interrupt` is set) and reloads the
    /// configuration and pack list, so this process sees everything the previous
    /// writer wrote (re-resolve planes after this).
    ///
    /// # Errors
    /// [`Error::Locked`] when another writer keeps the lock; errors of [`Store::reload`].
    pub fn lock(&mut self, interrupt: &std::sync::atomic::AtomicBool) -> Result<lock::StoreLock> {
        let l = lock::StoreLock::acquire_within(&self.dir, self.lock_wait, interrupt)?;
        self.took_lock()?;
        Ok(l)
    }

    /// Files a crashed writer left behind: everything in `.cp/tmp` (temporary
    /// packs, indexes, refs, caches, journals) and packs without an index
    /// (never visible to readers).
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(self.tmp_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        out.extend(
            fs::read_dir(self.packs_dir())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pack") && !p.with_extension("idx").exists()),
        );
        out.sort();
        out
    }

    /// True when the store holds `id`.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.packs.iter().rev().any(|p| p.find(id).is_some())
    }

    /// Reads and verifies an object of the expected kind.
    ///
    /// # Errors
    /// [`Error::MissingObject`] when absent; [`Error::CorruptObject`] when it does not hash to
    /// its id or is of another kind.
    pub fn read(&self, id: &ObjectId, kind: ObjectKind) -> Result<Vec<u8>> {
        let (body, version) = self.read_versioned(id, kind)?;
        if version != crate::object::ENCODING_VERSION && kind != ObjectKind::Blob {
            return Err(Error::LegacyObject {
                id: id.to_hex(),
                kind: kind.name(),
            });
        }
        Ok(body)
    }

    /// Reads and verifies an object of the expected kind in whichever encoding
    /// it was stored (1 or 2); returns the body and the encoding version.
    ///
    /// # Errors
    /// As [`Store::read`], without the format-1 refusal.
    pub fn read_versioned(&self, id: &ObjectId, kind: ObjectKind) -> Result<(Vec<u8>, u8)> {
        let (pack, e) = self.locate(id).ok_or_else(|| Error::MissingObject {
            id: id.to_hex(),
            kind: kind.name(),
        })?;
        if e.kind != kind {
            return Err(Error::CorruptObject {
                id: id.to_hex(),
                location: pack.pack_path.display().to_string(),
                reason: format!("expected a {} but the store holds a {}", kind.name(), e.kind.name()),
            });
        }
        pack.read(&e)
    }

    /// Reads and decodes a tree.
    ///
    /// # Errors
    /// As [`Store::read`], plus [`Error::CorruptObject`] when the body breaks tree invariants.
    pub fn read_tree(&self, id: &TreeId) -> Result<Tree> {
        Tree::decode(id.0, &self.read(&id.0, ObjectKind::Tree)?)
    }

    /// Reads and decodes a snapshot.
    ///
    /// # Errors
    /// As [`Store::read`].
    pub fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        Snapshot::decode(id.0, &self.read(&id.0, ObjectKind::Snapshot)?)
    }

    /// Streams a verified blob into `out`. See [`PackIndex::read_blob_to`].
    ///
    /// # Errors
    /// [`Error::MissingObject`], [`Error::CorruptObject`] or [`Error::Io`].
    pub fn read_blob_to(&self, id: &ObjectId, out: &mut dyn Write, out_path: &Path) -> Result<u64> {
        let (pack, e) = self.locate(id).ok_or_else(|| Error::MissingObject {
            id: id.to_hex(),
            kind: "blob",
        })?;
        pack.read_blob_to(&e, out, out_path)
    }

    /// Ids of stored objects whose hex form starts with `prefix`, optionally of one kind.
    /// A prefix that is not hex, or shorter than two digits, matches nothing.
    pub fn find_prefix(&self, prefix: &str, kind: Option<ObjectKind>) -> Vec<(ObjectId, ObjectKind)> {
        let prefix = prefix.to_ascii_lowercase();
        if prefix.len() < 2 || !crate::id::is_hex(&prefix) {
            return Vec::new();
        }
        let mut out: Vec<(ObjectId, ObjectKind)> = Vec::new();
        for p in &self.packs {
            for i in p.find_prefix(&prefix) {
                if let Some(e) = p.entry(i)
                    && kind.is_none_or(|k| k == e.kind)
                {
                    out.push((e.id, e.kind));
                }
            }
        }
        out.sort_by_key(|a| a.0);
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

/// Checks names, paths and uniqueness of the planes in a configuration.
fn validate_config(config: &Config) -> std::result::Result<(), String> {
    if config.planes.is_empty() {
        return Err("no planes are defined".into());
    }
    for (i, p) in config.planes.iter().enumerate() {
        if !refs::valid_name(&p.name) {
            return Err(format!("plane {i} has an invalid name {:?}", p.name));
        }
        if !valid_plane_path(&p.path) {
            return Err(format!(
                "plane `{}` has path {:?}: use a relative path of plain `/`-separated names, not `.`, `..` or `{STORE_DIR}`",
                p.name, p.path
            ));
        }
        if config.planes[..i].iter().any(|o| o.name == p.name) {
            return Err(format!("plane name `{}` appears twice", p.name));
        }
        if config.planes[..i].iter().any(|o| o.path == p.path) {
            return Err(format!("two planes share the root {:?}", p.path));
        }
        crate::exclude::check_patterns(&p.exclude).map_err(|e| format!("plane `{}`: {e}", p.name))?;
    }
    for (i, r) in config.remotes.iter().enumerate() {
        if !refs::valid_name(&r.name) {
            return Err(format!("remote {i} has an invalid name {:?}", r.name));
        }
        if config.remotes[..i].iter().any(|o| o.name == r.name) {
            return Err(format!("remote name `{}` appears twice", r.name));
        }
    }
    Ok(())
}

/// True for `""` or `/`-separated plain names (no empty, `.`, `..` parts; not under `.cp`).
pub fn valid_plane_path(path: &str) -> bool {
    path.is_empty()
        || (path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
            && path.split('/').next() != Some(STORE_DIR))
}

fn config_bytes(config: &Config) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(config).expect("config serialises");
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows noted under one lock are forgotten when the store is locked
    /// again: a gc between the two locks may have taken their blobs.
    #[test]
    fn written_rows_do_not_outlive_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::init(dir.path()).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let lock = store.lock(&stop).unwrap();
        let row = index::IndexEntry {
            path: crate::path::RelPath::parse(b"a").unwrap(),
            kind: crate::object::EntryKind::File,
            id: crate::object::blob_id(b"a"),
            stat: index::Stat::default(),
        };
        store.note_written("main", vec![row]);
        assert_eq!(store.written_rows("main").len(), 1);
        drop(lock);
        let _lock = store.lock(&stop).unwrap();
        assert!(store.written_rows("main").is_empty());
    }
}
