//! Planes: named, non-overlapping directory trees in one store.
//!
//! A plane covers its root directory minus the roots of planes nested inside
//! it ("carve-outs") and minus `.cp` itself. Every file therefore belongs to
//! exactly one plane: the one with the deepest root above it.

use crate::error::{Error, IoResultExt, NameKind, NameProblem, Result, RootProblem};
use crate::path::RelPath;
use crate::store::{PlaneConfig, STORE_DIR, Store, refs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A plane resolved against its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plane {
    /// Plane name.
    pub name: String,
    /// Root relative to the control-plane root, `/`-separated; `""` for the root itself.
    pub path: String,
    /// Optional tier label.
    pub tier: Option<String>,
    /// Absolute root directory.
    pub root: PathBuf,
    /// Plane-relative paths of directories this plane does not cover: nested
    /// planes' roots and, at the store root, `.cp`. Sorted.
    pub carve_outs: Vec<RelPath>,
    /// The control-plane root (the directory holding `.cp`).
    pub store_root: PathBuf,
    /// Exclusion patterns recorded for the plane (`--exclude`), gitignore
    /// syntax, relative to the plane root ([`crate::exclude`]).
    pub exclude: Vec<String>,
}

fn is_inside(inner: &str, outer: &str) -> bool {
    outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
}

impl Store {
    fn resolve_plane(&self, pc: &PlaneConfig) -> Plane {
        let mut carve_outs: Vec<RelPath> = self
            .config()
            .planes
            .iter()
            .filter(|o| o.path != pc.path && is_inside(&o.path, &pc.path))
            .filter_map(|o| {
                let rel = if pc.path.is_empty() {
                    o.path.as_str()
                } else {
                    &o.path[pc.path.len() + 1..]
                };
                RelPath::parse(rel.as_bytes())
            })
            .collect();
        if pc.path.is_empty() {
            carve_outs.push(RelPath::root().join(STORE_DIR.as_bytes()));
            // While `init` builds the store under another name, that name is not the plane's either.
            if let Some(name) = self.dir().file_name()
                && name != STORE_DIR
            {
                carve_outs.push(RelPath::root().join(std::os::unix::ffi::OsStrExt::as_bytes(name)));
            }
        }
        carve_outs.sort();
        Plane {
            name: pc.name.clone(),
            path: pc.path.clone(),
            tier: pc.tier.clone(),
            root: if pc.path.is_empty() {
                self.root().to_path_buf()
            } else {
                self.root().join(&pc.path)
            },
            carve_outs,
            store_root: self.root().to_path_buf(),
            exclude: pc.exclude.clone(),
        }
    }

    /// Every plane, in configuration order.
    pub fn planes(&self) -> Vec<Plane> {
        self.config().planes.iter().map(|p| self.resolve_plane(p)).collect()
    }

    /// The plane called `name`.
    ///
    /// # Errors
    /// [`Error::NoSuchPlane`] listing the known planes.
    pub fn plane(&self, name: &str) -> Result<Plane> {
        self.config()
            .planes
            .iter()
            .find(|p| p.name == name)
            .map(|p| self.resolve_plane(p))
            .ok_or_else(|| Error::NoSuchPlane {
                name: name.to_string(),
                known: self.config().planes.iter().map(|p| p.name.clone()).collect(),
            })
    }

    /// `path` relative to the control-plane root, `/`-separated; `None` when outside it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let abs = normalize(path);
        let rel = abs.strip_prefix(self.root()).ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| String::from_utf8_lossy(c.as_os_str().as_bytes()).into_owned())
            .collect();
        Some(parts.join("/"))
    }

    /// The plane whose root is the deepest ancestor of `path` (which need not exist).
    ///
    /// # Errors
    /// [`Error::NotInPlane`] when `path` is outside the store root, inside `.cp`, or under no plane.
    pub fn plane_containing(&self, path: &Path) -> Result<Plane> {
        let not_in = || Error::NotInPlane {
            path: path.to_path_buf(),
            store: self.root().to_path_buf(),
        };
        let rel = self.relative(path).ok_or_else(not_in)?;
        if rel == STORE_DIR || rel.starts_with(&format!("{STORE_DIR}/")) {
            return Err(not_in());
        }
        self.config()
            .planes
            .iter()
            .filter(|p| is_inside(&rel, &p.path))
            .max_by_key(|p| p.path.len())
            .map(|p| self.resolve_plane(p))
            .ok_or_else(not_in)
    }

    /// Adds a plane rooted at `dir`, carved out of any plane that contains
    /// it; a missing `dir` is created only when `create` is set.
    ///
    /// # Errors
    /// [`Error::BadName`] / [`Error::NameTaken`] for a bad or duplicate name;
    /// [`Error::BadPlaneRoot`] for a path outside the store root, inside
    /// `.cp`, equal to another plane's root, or missing (without `create`).
    pub fn add_plane(&mut self, name: &str, dir: &Path, tier: Option<String>, create: bool) -> Result<Plane> {
        self.add_plane_excluding(name, dir, tier, Vec::new(), create)
    }

    /// [`Store::add_plane`], recording the exclusion patterns `exclude`
    /// (gitignore syntax, relative to the new plane's root).
    ///
    /// # Errors
    /// As [`Store::add_plane`]; [`Error::BadIgnoreFile`] for a pattern that is not valid.
    pub fn add_plane_excluding(
        &mut self,
        name: &str,
        dir: &Path,
        tier: Option<String>,
        exclude: Vec<String>,
        create: bool,
    ) -> Result<Plane> {
        crate::exclude::check_patterns(&exclude).map_err(|reason| Error::BadIgnoreFile {
            path: self.dir().join("config.json"),
            reason,
        })?;
        let bad_root = |problem| Error::BadPlaneRoot {
            path: dir.to_path_buf(),
            problem,
        };
        if !refs::valid_name(name) {
            return Err(Error::BadName {
                kind: NameKind::Plane,
                name: name.to_string(),
                problem: NameProblem::Syntax,
            });
        }
        if let Some(t) = &tier
            && !refs::valid_name(t)
        {
            return Err(Error::BadName {
                kind: NameKind::Tier,
                name: t.clone(),
                problem: NameProblem::Syntax,
            });
        }
        let mut config = self.config().clone();
        if config.planes.iter().any(|p| p.name == name) {
            return Err(Error::NameTaken {
                kind: NameKind::Plane,
                name: name.to_string(),
                plane: None,
            });
        }
        if std::str::from_utf8(dir.as_os_str().as_encoded_bytes()).is_err() {
            return Err(bad_root(RootProblem::NotUtf8));
        }
        if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(bad_root(RootProblem::Symlink));
        }
        let rel = self.relative(dir).ok_or_else(|| bad_root(RootProblem::OutsideStore))?;
        if rel.split('/').next() == Some(STORE_DIR) {
            return Err(bad_root(RootProblem::InsideStoreDir));
        }
        if !crate::store::valid_plane_path(&rel) || rel.is_empty() {
            return Err(match config.planes.iter().find(|p| p.path == rel) {
                Some(other) => bad_root(RootProblem::Taken {
                    plane: other.name.clone(),
                }),
                None => bad_root(RootProblem::OutsideStore),
            });
        }
        if let Some(other) = config.planes.iter().find(|p| p.path == rel) {
            return Err(bad_root(RootProblem::Taken {
                plane: other.name.clone(),
            }));
        }
        let abs = self.root().join(&rel);
        if abs.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            return Err(bad_root(
                if abs.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                    RootProblem::Symlink
                } else {
                    RootProblem::NotADirectory
                },
            ));
        }
        if !create && abs.symlink_metadata().is_err() {
            return Err(bad_root(RootProblem::Missing));
        }
        std::fs::create_dir_all(&abs).at(&abs)?;
        config.planes.push(PlaneConfig {
            name: name.to_string(),
            path: rel,
            tier,
            exclude,
        });
        self.save_config(config)?;
        self.plane(name)
    }
}

/// Directory under `.cp` where `plane remove` keeps a removed plane's
/// directory (refs, ledger): `planes-removed/<NAME>-<YYYYMMDDTHHMMSSZ>`
/// (`store-format.md`, "Removed planes"). Its refs are gc roots.
pub const REMOVED_DIR: &str = "planes-removed";

/// What `plane remove` does with the plane's directory under `.cp/planes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovedHistory {
    /// Move it to [`REMOVED_DIR`]: its checkpoints stay recoverable (and
    /// their objects reachable).
    Archive,
    /// Delete it: its objects become garbage for a gc.
    Delete,
}

/// What [`Store::remove_plane`] did.
#[derive(Debug, Clone)]
pub struct PlaneRemoval {
    /// The plane as it was configured.
    pub plane: Plane,
    /// The plane that covers the removed plane's files now (the deepest
    /// plane whose root is above its root), if any: it no longer carves
    /// them out, so its next snapshot records them.
    pub parent: Option<Plane>,
    /// Where the plane's directory went ([`RemovedHistory::Archive`]);
    /// `None` when it was deleted, or when there was none.
    pub archived: Option<PathBuf>,
}

impl Store {
    /// The plane that would cover `plane`'s files without it: the one with
    /// the deepest root strictly above `plane`'s root.
    pub fn parent_plane(&self, plane: &Plane) -> Option<Plane> {
        self.config()
            .planes
            .iter()
            .filter(|p| p.path != plane.path && is_inside(&plane.path, &p.path))
            .max_by_key(|p| p.path.len())
            .map(|p| self.resolve_plane(p))
    }

    /// The plane `name`, if `plane remove` may remove it: not the only
    /// plane, no checkout journal and no install pending.
    ///
    /// # Errors
    /// [`Error::NoSuchPlane`]; [`Error::PlaneRemoveRefused`] saying why it must stay.
    pub fn removable_plane(&self, name: &str) -> Result<Plane> {
        let plane = self.plane(name)?;
        let refuse = |why: &str| Error::PlaneRemoveRefused {
            plane: name.to_string(),
            why: why.to_string(),
        };
        if self.config().planes.len() == 1 {
            return Err(refuse(
                "it is the only plane of the store (to stop using cplane here, remove the .cp directory)",
            ));
        }
        let dir = self.plane_dir(name);
        if crate::checkout::has_journal(self, name) {
            return Err(refuse(
                "a checkout (rollback, restore, install) of it is not finished; run any cplane command in it to finish it first",
            ));
        }
        if dir.join(crate::package::install::INSTALL_PENDING).exists() {
            return Err(refuse(
                "an install into it is not finished; run any writing cplane command in it to complete it first",
            ));
        }
        Ok(plane)
    }

    /// Removes plane `name` from the configuration under `lock`, leaving
    /// its files where they are; the plane that covers them now (see
    /// [`Store::parent_plane`]) stops carving them out. Its directory under
    /// `.cp/planes` (refs, stat cache, ledger) is moved to [`REMOVED_DIR`]
    /// or deleted, as `history` says.
    ///
    /// Crash-safe in this order: the directory is renamed away first
    /// (into `REMOVED_DIR`, or into `.cp/tmp`, which the next lock holder
    /// empties), then `config.json` is replaced. A crash between the two
    /// leaves the plane configured without refs; removing it again
    /// finishes the job.
    ///
    /// # Errors
    /// As [`Store::removable_plane`]; [`Error::Io`] naming the directory or file.
    pub fn remove_plane(
        &mut self,
        _lock: &crate::store::lock::StoreLock,
        name: &str,
        history: RemovedHistory,
    ) -> Result<PlaneRemoval> {
        let plane = self.removable_plane(name)?;
        let parent = self.parent_plane(&plane);
        let dir = self.plane_dir(name);
        let now = crate::store::index::now_ns();
        let exists = dir.symlink_metadata().is_ok();
        let archived = match history {
            RemovedHistory::Archive if exists => {
                let base = self.dir().join(REMOVED_DIR);
                std::fs::create_dir_all(&base).at(&base)?;
                let stamp = crate::timefmt::stamp(now);
                let stamp = format!("{}T{}Z", &stamp[..8], &stamp[8..]);
                let mut to = base.join(format!("{name}-{stamp}"));
                let mut n = 2;
                while to.symlink_metadata().is_ok() {
                    to = base.join(format!("{name}-{stamp}-{n}"));
                    n += 1;
                }
                std::fs::rename(&dir, &to).at(&dir)?;
                crate::fsutil::fsync_dir(&base)?;
                Some(to)
            }
            RemovedHistory::Delete if exists => {
                let tmp = self.tmp_dir().join(format!("removed-plane-{name}-{now}"));
                std::fs::rename(&dir, &tmp).at(&dir)?;
                None
            }
            _ => None,
        };
        if exists {
            crate::fsutil::fsync_dir(&self.dir().join("planes"))?;
        }
        let mut config = self.config().clone();
        config.planes.retain(|p| p.name != name);
        self.save_config(config)?;
        if history == RemovedHistory::Delete && exists {
            let tmp = self.tmp_dir().join(format!("removed-plane-{name}-{now}"));
            std::fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        let parent = parent.map(|p| self.plane(&p.name)).transpose()?;
        Ok(PlaneRemoval {
            plane,
            parent,
            archived,
        })
    }
}

/// Makes `path` absolute and removes `.` and `..` lexically, resolving symlinks
/// in the longest existing prefix (so `/tmp` vs `/private/tmp` style aliases match).
pub fn normalize(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    // Canonicalize the longest existing ancestor, then re-append the rest.
    let mut existing = out.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(n) => rest.push(n.to_os_string()),
            None => break,
        }
        if !existing.pop() {
            break;
        }
    }
    let mut base = std::fs::canonicalize(&existing).unwrap_or(existing);
    for n in rest.into_iter().rev() {
        base.push(n);
    }
    base
}

/// `root` without the entries at the plane-relative paths `carve_outs` (the roots
/// of planes nested in this one). New trees go to `writer`; `root` itself when
/// nothing is carved out of it. A file or symlink standing where a carve-out's
/// ancestor directory would be is dropped too.
///
/// # Errors
/// Store damage while reading trees; I/O errors while writing.
pub fn prune_carve_outs(
    writer: &crate::store::pack::ObjectWriter<'_>,
    root: crate::id::TreeId,
    carve_outs: &[RelPath],
) -> Result<crate::id::TreeId> {
    let paths: Vec<Vec<&[u8]>> = carve_outs.iter().map(|p| p.components().collect()).collect();
    if paths.is_empty() {
        return Ok(root);
    }
    Ok(match prune(writer, root, &paths)? {
        Some((id, _)) => id,
        None => {
            let (id, body) = crate::object::Tree::default().encode_with_id();
            writer.add(crate::object::ObjectKind::Tree, id.0, &body)?;
            id
        }
    })
}

/// Prunes one tree; `None` when pruning left it empty (it only led to
/// carve-outs, and the scan of the outer plane does not record such a
/// directory either; a directory that was empty to begin with stays).
/// Recursion is bounded by the depth of the carve-out paths (plane roots in
/// `config.json`), not the tree.
fn prune(
    writer: &crate::store::pack::ObjectWriter<'_>,
    id: crate::id::TreeId,
    paths: &[Vec<&[u8]>],
) -> Result<Option<(crate::id::TreeId, u64)>> {
    let mut tree = writer.store().read_tree(&id)?;
    let mut changed = false;
    let mut kept = Vec::with_capacity(tree.entries.len());
    for mut e in tree.entries.drain(..) {
        let here: Vec<&Vec<&[u8]>> = paths.iter().filter(|p| p[0] == e.name.as_slice()).collect();
        // The carve-out itself, or a file/symlink standing where its ancestor directory is.
        if here.iter().any(|p| p.len() == 1) || (e.kind != crate::object::EntryKind::Dir && !here.is_empty()) {
            changed = true;
            continue;
        }
        if e.kind == crate::object::EntryKind::Dir && !here.is_empty() {
            let sub: Vec<Vec<&[u8]>> = here.iter().map(|p| p[1..].to_vec()).collect();
            match prune(writer, e.tree_id(), &sub)? {
                None => {
                    changed = true;
                    continue;
                }
                Some((nid, size)) if nid != e.tree_id() => {
                    e.id = nid.0;
                    e.size = size;
                    changed = true;
                }
                Some(_) => {}
            }
        }
        kept.push(e);
    }
    tree.entries = kept;
    let size = tree.entries.iter().map(|e| e.size).sum();
    if !changed {
        return Ok(Some((id, size)));
    }
    if tree.entries.is_empty() {
        return Ok(None);
    }
    let (nid, body) = tree.encode_with_id();
    writer.add(crate::object::ObjectKind::Tree, nid.0, &body)?;
    Ok(Some((nid, size)))
}
