//! The object store under `.cp/`: format file, configuration, packs, refs,
//! stat caches and the writer lock. Layout and bytes: `store-format.md`.

pub mod frame;
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
/// Store format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
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
}

/// `.cp/config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Planes, in the order they were added.
    pub planes: Vec<PlaneConfig>,
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
    /// Creates a store in `root/.cp` with one plane, `main`, covering `root`.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] when `root/.cp` exists; [`Error::Invalid`] when `root`
    /// is inside a plane of another store; [`Error::Io`] otherwise.
    pub fn init(root: &Path) -> Result<Store> {
        let root = fs::canonicalize(root).at(root)?;
        let dir = root.join(STORE_DIR);
        if dir.exists() {
            if let Ok(existing) = Store::open(&root)
                && existing.head("main").ok().flatten().is_none()
                && existing.checkpoints("main").is_ok_and(|c| c.is_empty())
            {
                return Err(Error::invalid(format!(
                    "{} holds a cplane store whose first checkpoint was never sealed (an interrupted init); run `cplane snapshot` there to seal it, or remove {} and init again",
                    dir.display(),
                    dir.display()
                )));
            }
            return Err(Error::AlreadyInitialized { path: dir });
        }
        // A store inside another store's plane would have its files owned twice.
        if let Some(parent) = root.parent()
            && let Ok(outer) = Store::discover(parent)
            && let Ok(plane) = outer.plane_containing(&root)
        {
            return Err(Error::invalid(format!(
                "{} is inside plane `{}` of the store at {}; planes never overlap: make it a plane of that store with `cplane -C {} plane add NAME {}`",
                root.display(),
                plane.name,
                outer.root().display(),
                outer.root().display(),
                root.display()
            )));
        }
        // Build in a temporary directory, then rename: a crash leaves no half store.
        // A staging directory a crashed init left behind (it holds our FORMAT) goes first.
        let staging_prefix = format!("{STORE_DIR}.init-");
        for e in fs::read_dir(&root).at(&root)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(&staging_prefix)
                && fs::read_to_string(e.path().join("FORMAT")).is_ok_and(|t| t.starts_with(FORMAT_MAGIC))
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let staging = root.join(format!("{staging_prefix}{}", std::process::id()));
        ensure_dir(&staging.join("packs"))?;
        ensure_dir(&staging.join("tmp"))?;
        ensure_dir(&staging.join("planes"))?;
        let config = Config {
            planes: vec![PlaneConfig {
                name: "main".into(),
                path: String::new(),
                tier: None,
            }],
        };
        let staging_tmp = staging.join("tmp");
        write_atomic(&staging.join("config.json"), &config_bytes(&config), &staging_tmp)?;
        write_atomic(
            &staging.join("FORMAT"),
            format!("{FORMAT_MAGIC} {FORMAT_VERSION}\n").as_bytes(),
            &staging_tmp,
        )?;
        fs::rename(&staging, &dir).at(&dir)?;
        crate::fsutil::fsync_dir(&root)?;
        Store::open(&root)
    }

    /// Finds the store in `start` or its nearest ancestor and opens it.
    ///
    /// # Errors
    /// [`Error::NoStore`] when no ancestor has `.cp/FORMAT`.
    pub fn discover(start: &Path) -> Result<Store> {
        let abs = fs::canonicalize(start).at(start)?;
        let mut cur = Some(abs.as_path());
        while let Some(dir) = cur {
            if dir.join(STORE_DIR).join("FORMAT").is_file() {
                return Store::open(dir);
            }
            cur = dir.parent();
        }
        Err(Error::NoStore { start: abs })
    }

    /// Opens the store at `root/.cp`: checks the format, reads the config, maps the pack indexes.
    ///
    /// # Errors
    /// [`Error::NewerFormat`] for a store written by a newer cplane; [`Error::Invalid`] for a
    /// malformed `FORMAT` or `config.json`; [`Error::DamagedFile`] for a malformed pack index.
    pub fn open(root: &Path) -> Result<Store> {
        let root = fs::canonicalize(root).at(root)?;
        let dir = root.join(STORE_DIR);
        let format_path = dir.join("FORMAT");
        let text = fs::read_to_string(&format_path).at(&format_path)?;
        let version = text
            .trim()
            .strip_prefix(FORMAT_MAGIC)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: expected `{FORMAT_MAGIC} <version>`, found {:?}",
                    format_path.display(),
                    text.trim()
                ))
            })?;
        if version > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                path: format_path,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let config_path = dir.join("config.json");
        let raw = fs::read(&config_path).at(&config_path)?;
        let config: Config = serde_json::from_slice(&raw).map_err(|e| {
            Error::invalid(format!(
                "{}: line {}, column {}: {e}",
                config_path.display(),
                e.line(),
                e.column()
            ))
        })?;
        validate_config(&config).map_err(|why| Error::invalid(format!("{}: {why}", config_path.display())))?;
        let mut store = Store {
            root,
            dir,
            config,
            packs: Vec::new(),
            late: std::sync::Mutex::new(Vec::new()),
        };
        store.load_packs()?;
        Ok(store)
    }

    fn load_packs(&mut self) -> Result<()> {
        // A concurrent repack may delete packs between listing and opening them; its new
        // pack is in place before any old one goes, so listing again finds everything.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.try_load_packs() {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && attempts < 5 => {
                    continue;
                }
                other => return other,
            }
        }
    }

    fn try_load_packs(&mut self) -> Result<()> {
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
        self.packs = paths.iter().map(|p| PackIndex::open(p)).collect::<Result<_>>()?;
        Ok(())
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
        let fresh = Store::open(&self.root)?;
        self.config = fresh.config;
        self.packs = fresh.packs;
        self.late.lock().expect("late pack list lock poisoned").clear();
        Ok(())
    }

    /// Takes the writer lock (waiting up to the timeout) and reloads the
    /// configuration and pack list, so this process sees everything the previous
    /// writer wrote (re-resolve planes after this).
    ///
    /// # Errors
    /// [`Error::Locked`] when another writer keeps the lock; errors of [`Store::reload`].
    pub fn lock(&mut self) -> Result<lock::StoreLock> {
        let l = lock::StoreLock::acquire(&self.dir)?;
        self.took_lock()?;
        Ok(l)
    }

    /// Files a crashed writer left behind: everything in `.cp/tmp` (temporary
    /// packs, indexes, refs, caches, journals; rollback staging directories only
    /// when no plane has a pending journal) and packs without an index (never
    /// visible to readers).
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let journal_pending = self
            .config
            .planes
            .iter()
            .any(|p| self.plane_dir(&p.name).join("journal").exists());
        let mut out: Vec<PathBuf> = fs::read_dir(self.tmp_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !(journal_pending && e.file_name().to_string_lossy().starts_with("rollback-")))
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
    pub fn find_prefix(&self, prefix: &str, kind: Option<ObjectKind>) -> Vec<(ObjectId, ObjectKind)> {
        let prefix = prefix.to_ascii_lowercase();
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
