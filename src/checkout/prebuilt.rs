//! Directories a checkout creates, built whole ahead of it: an install
//! writes the files of a directory the plane lacks into a directory of the
//! store's `.cp/tmp` while its package streams, and the checkout puts the
//! whole directory in place with one `renameat2(RENAME_NOREPLACE)` where it
//! would otherwise have made it and given each file a name of its own.
//!
//! Named files in a private directory cost about what unnamed ones do to
//! write, and save the checkout its per-file `linkat` (on a journaled ext4,
//! 10,000 of them took 0.14-0.17 s, each also taking the file off the
//! orphan list an `O_TMPFILE` file is on). Nothing of a prebuilt directory is
//! in the plane until the rename; the journal is the same as without it (a
//! `MakeDir`, the `Write`s under it), so a replay after a crash needs
//! nothing of it: before the rename the next command's lock removes it with
//! the rest of `.cp/tmp` and the replay writes every file from the store;
//! after, the replay finds the files whole. A refused install drops it
//! ([`Drop`]).

use super::stage::{self, MetaProblem};
use crate::error::Result;
use crate::fsys::Dir;
use crate::id::ObjectId;
use crate::object::{EntryKind, Meta};
use crate::path::RelPath;
use crate::scope::Scope;
use crate::store::Store;
use crate::store::index::Stat;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// One file of a [`Prebuilt`] directory, as written.
#[derive(Debug)]
pub(super) struct Built {
    /// Its blob.
    pub id: ObjectId,
    /// The mode and owner it was given.
    pub meta: Meta,
    /// Its `fstat` once written and its metadata set (for a stat row).
    pub stat: Stat,
    /// Owner or mode changes the process was not allowed to make.
    pub problems: Vec<MetaProblem>,
}

/// A directory the plane lacks (`at`, whose parent exists), built in the
/// store's `.cp/tmp` on the plane's filesystem ([`Prebuilt::new`]), one
/// file at a time from verified bytes ([`Prebuilt::add`], from any
/// thread). Handed to the checkout in [`super::Request::prebuilt`]; removed
/// when dropped unless the checkout put it in place.
#[derive(Debug)]
pub struct Prebuilt {
    /// The plane path it becomes.
    pub(super) at: RelPath,
    /// `.cp/tmp`.
    pub(super) tmp: Dir,
    /// Its name there.
    pub(super) name: Vec<u8>,
    /// Its full path (for removal).
    path: PathBuf,
    /// The directory itself.
    pub(super) root: Arc<Dir>,
    /// Its subdirectories made so far (relative to `at`; the root is the
    /// empty path), each open.
    dirs: Mutex<HashMap<RelPath, Arc<Dir>>>,
    /// The files written, by plane path.
    pub(super) files: Mutex<HashMap<RelPath, Built>>,
    /// Put in place by the checkout: not removed when dropped.
    pub(super) placed: bool,
    /// A file failed to be written: not used (the checkout writes its
    /// files one by one).
    broken: std::sync::atomic::AtomicBool,
}

/// Counts the prebuilt directories of this process, for unique names.
static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Prebuilt {
    /// Starts building `at`, a directory the plane lacks whose parent it
    /// has, in the store's `.cp/tmp`. `Ok(None)` when that is not on the
    /// filesystem of `at`'s parent (a rename could not move it), the
    /// parent cannot be opened, or a directory made in the parent would get
    /// more from it than a mode and owner, or one made in `.cp/tmp` would:
    /// a setgid directory's group, a default ACL, SMACK's transmute, a
    /// security label that differs between the two (renamed, a directory
    /// keeps what it got where it was made). The caller then stages those
    /// files another way, and the checkout makes the directory in place.
    ///
    /// # Errors
    /// [`crate::Error::Io`] creating the directory in `.cp/tmp`.
    pub fn new(store: &Store, scope: &Scope, at: &RelPath) -> Result<Option<Prebuilt>> {
        use crate::error::IoResultExt;
        let Some(parent) = at.parent() else { return Ok(None) };
        let Ok(parent) = scope.open_dir(&parent) else {
            return Ok(None);
        };
        let tmp_path = store.tmp_dir();
        let tmp = Dir::open(&tmp_path).at(&tmp_path)?;
        let (Ok(a), Ok(b)) = (parent.stat_self(), tmp.stat_self()) else {
            return Ok(None);
        };
        // (Both ways: what `.cp/tmp` would hand down, the rename keeps.)
        if a.st_dev != b.st_dev || (a.st_mode | b.st_mode) & 0o2000 != 0 {
            return Ok(None);
        }
        let hands_down = |d: &Dir| -> std::io::Result<bool> {
            Ok(d.xattr("system.posix_acl_default")?.is_some() || d.xattr("security.SMACK64TRANSMUTE")?.is_some())
        };
        let inherits = || -> std::io::Result<bool> {
            Ok(hands_down(&parent)?
                || hands_down(&tmp)?
                || parent.xattr("security.selinux")? != tmp.xattr("security.selinux")?)
        };
        if inherits().unwrap_or(true) {
            return Ok(None);
        }
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("prebuilt-{}-{n}", std::process::id()).into_bytes();
        let path = tmp_path.join(String::from_utf8_lossy(&name).as_ref());
        tmp.mkdir(&name, 0o700).at(&path)?;
        let root = Arc::new(tmp.open_dir(&name).at(&path)?);
        let mut dirs = HashMap::new();
        dirs.insert(RelPath::root(), root.clone());
        Ok(Some(Prebuilt {
            at: at.clone(),
            tmp,
            name,
            path,
            root,
            dirs: Mutex::new(dirs),
            files: Mutex::new(HashMap::new()),
            placed: false,
            broken: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The plane path this directory becomes.
    pub fn at(&self) -> &RelPath {
        &self.at
    }

    /// Directories made so far, itself included.
    pub(super) fn dirs_made(&self) -> u64 {
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner).len() as u64
    }

    /// The open directory for `sub` (relative to [`Prebuilt::at`]), made
    /// with its parents (mode 0700, as a checkout's `MakeDir` makes them,
    /// until the checkout's `SetMeta` gives them theirs).
    fn dir(&self, sub: &RelPath) -> std::io::Result<Arc<Dir>> {
        if let Some(d) = self.dirs.lock().unwrap_or_else(PoisonError::into_inner).get(sub) {
            return Ok(d.clone());
        }
        let parent = self.dir(&sub.parent().unwrap_or_default())?;
        let name = sub.file_name().expect("a subdirectory has a name");
        match parent.mkdir(name, 0o700) {
            Ok(()) => {}
            // Made by another thread meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let d = Arc::new(parent.open_dir(name)?);
        self.dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sub.clone(), d.clone());
        Ok(d)
    }

    /// Writes `bytes` (blob `id`, checked by the caller) as the file for
    /// `rel` (a plane path under [`Prebuilt::at`]) with `meta`.
    ///
    /// # Errors
    /// [`crate::Error::Io`] naming `rel` (disk full, ...); a path not under
    /// [`Prebuilt::at`] is an `InvalidInput` one.
    pub fn add(&self, scope: &Scope, rel: &RelPath, id: ObjectId, bytes: &[u8], meta: Meta) -> Result<()> {
        let added = self.write(scope, rel, id, bytes, meta);
        if added.is_err() {
            self.broken.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        added
    }

    fn write(&self, scope: &Scope, rel: &RelPath, id: ObjectId, bytes: &[u8], meta: Meta) -> Result<()> {
        let io = |e| scope.io_error(rel, e);
        let sub = rel.strip_prefix(&self.at).filter(|s| !s.is_root()).ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not in the prebuilt directory",
            ))
        })?;
        let dir = self.dir(&sub.parent().unwrap_or_default()).map_err(io)?;
        let name = sub.file_name().expect("not the root");
        let file = dir
            .create_new(name, stage::create_mode(&meta, meta.perm() & 0o777, 0o666))
            .map_err(io)?;
        let mut problems = Vec::new();
        let st = stage::fill(scope, rel, &file, &meta, &mut problems, |f| {
            stage::write_known(scope, rel, f, bytes)
        })?;
        self.files.lock().unwrap_or_else(PoisonError::into_inner).insert(
            rel.clone(),
            Built {
                id,
                meta,
                stat: Stat::from_raw(&st),
                problems,
            },
        );
        Ok(())
    }
}

impl Drop for Prebuilt {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The directories of `all` the checkout of `ops` can put in place whole,
/// by path, each with its files: those whose directory the plan makes
/// (`MakeDir`) and whose every file it writes (`Write`) with the same blob
/// and meta, none of them excluded. The others are dropped (and so
/// removed): their files are written one by one.
pub(super) fn fit(
    all: Vec<Prebuilt>,
    ops: &[super::Op],
    scope: &Scope,
) -> HashMap<RelPath, (Prebuilt, HashMap<RelPath, Built>)> {
    use super::Op;
    if all.is_empty() {
        return HashMap::new();
    }
    let mut makes = std::collections::HashSet::new();
    let mut writes = HashMap::new();
    for op in ops {
        match op {
            Op::MakeDir { path, .. } => {
                makes.insert(path);
            }
            Op::Write {
                path, kind, id, meta, ..
            } => {
                writes.insert(path, (*kind, *id, *meta));
            }
            _ => {}
        }
    }
    let mut out = HashMap::new();
    for mut p in all {
        let files = std::mem::take(p.files.get_mut().unwrap_or_else(PoisonError::into_inner));
        let fits = !p.broken.load(std::sync::atomic::Ordering::Relaxed)
            && makes.contains(&p.at)
            && !scope.is_excluded(&p.at)
            && files.iter().all(|(path, b)| {
                writes.get(path) == Some(&(EntryKind::File, b.id, b.meta)) && !scope.is_excluded(path)
            });
        if fits {
            out.insert(p.at.clone(), (p, files));
        }
    }
    out
}
