//! What a command may touch: one plane root, minus what is not the plane's.
//!
//! A [`Scope`] is opened once per command. It holds the plane root as an
//! open directory (reached from the store root one component at a time,
//! never through a symlink), the carved-out paths that belong to nested
//! planes (and, at the store root, `.cp` itself), and the reserved staging
//! name. Scans skip what the scope excludes and checkouts refuse to write
//! there, so the rule lives here and nowhere else. The plane's own exclusion
//! patterns (`--exclude`) are compiled here too; `.cpignore` files are read
//! by the scan as it enters each directory ([`crate::exclude`]).

use crate::error::{Error, IoResultExt, Result, RootProblem, tree_io};
use crate::fsys::{self, Dir};
use crate::path::RelPath;
use crate::plane::Plane;
use std::path::{Path, PathBuf};

/// The one name cplane itself ever creates inside a plane: the intermediate
/// name of a file being put in place by a checkout when it cannot be staged
/// unnamed (`O_TMPFILE`). Scans skip it; recovery removes it.
pub const STAGING_NAME: &[u8] = b".cplane-staging~";

/// What a command may touch (see the module documentation).
#[derive(Debug)]
pub struct Scope {
    root: Dir,
    root_path: PathBuf,
    plane: String,
    /// Sorted plane-relative paths of directories this plane does not cover.
    carve_outs: Vec<RelPath>,
    /// A governed plane's exempt globs (rules files' `exempt`): paths no scan records.
    exempt: Option<std::sync::Arc<Exempt>>,
    /// The plane's `exclude` patterns (`--exclude`), compiled; `None` when it has none.
    exclude: Option<std::sync::Arc<crate::exclude::Rules>>,
}

/// The `exempt` globs of a governed plane's rules files, compiled: paths
/// that are neither owned nor hashed nor stored, only counted.
///
/// A file is exempt when a glob matches its path; a directory is left out
/// whole when a glob matches it, or when a glob ending in `/**` (everything
/// inside) has a prefix that matches it (`build/**` leaves out `build`).
/// The registries and every `.file_registry.csv` are never exempt.
#[derive(Debug)]
pub struct Exempt {
    /// The globs as written.
    pub globs: Vec<String>,
    /// The globs without a wildcard, bracket, brace or escape: exact paths,
    /// matched by lookup (a plane may exempt thousands of them by name).
    exact_files: std::collections::HashSet<Vec<u8>>,
    /// The exact prefixes of `…/**` globs.
    exact_dirs: std::collections::HashSet<Vec<u8>>,
    files: globset::GlobSet,
    dirs: globset::GlobSet,
}

/// True when `glob` matches exactly the path it spells (it has no `*`,
/// `?`, brackets, braces or escapes).
pub fn is_exact(glob: &str) -> bool {
    !glob.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

impl Exempt {
    /// Compiles `globs` (`*` stays in one directory, `**` crosses them).
    ///
    /// # Errors
    /// The first invalid glob, as a sentence.
    pub fn new(globs: Vec<String>) -> std::result::Result<Exempt, String> {
        let (exact, patterns): (Vec<&String>, Vec<&String>) = globs.iter().partition(|g| is_exact(g));
        let patterns: Vec<String> = patterns.into_iter().cloned().collect();
        let files = crate::governance::glob_set(&patterns)?;
        let prefixes: Vec<&str> = globs
            .iter()
            .filter_map(|g| g.strip_suffix("/**"))
            .filter(|p| !p.is_empty())
            .collect();
        let (exact_dirs, dir_patterns): (Vec<&str>, Vec<&str>) = prefixes.into_iter().partition(|p| is_exact(p));
        let dir_patterns: Vec<String> = dir_patterns.into_iter().map(str::to_string).collect();
        let dirs = crate::governance::glob_set(&dir_patterns)?;
        Ok(Exempt {
            exact_files: exact.iter().map(|g| g.as_bytes().to_vec()).collect(),
            exact_dirs: exact_dirs.iter().map(|g| g.as_bytes().to_vec()).collect(),
            globs,
            files,
            dirs,
        })
    }

    /// True when the entry at `rel` (a directory when `is_dir`) is exempt.
    /// Governance's own files never are: `registries/` (and everything in
    /// it) and every `.file_registry.csv`, whatever the globs say.
    pub fn matches(&self, rel: &RelPath, is_dir: bool) -> bool {
        if rel.components().next() == Some(b"registries".as_slice())
            || rel.file_name() == Some(crate::governance::FILE_REGISTRY.as_bytes())
        {
            return false;
        }
        let b = rel.as_bytes();
        if self.exact_files.contains(b) || is_dir && self.exact_dirs.contains(b) {
            return true;
        }
        let p = rel.as_os_str();
        self.files.is_match(p) || is_dir && self.dirs.is_match(p)
    }
}

/// Why [`Scope::walk`] stopped before the path it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkStop {
    /// This path, the shallowest on the way, does not exist.
    Missing(RelPath),
    /// This path is a symlink or something else that is not a directory.
    NotADirectory(RelPath),
}

impl Scope {
    /// Opens `plane`'s root: the store root, then each component of the
    /// plane's path without following symlinks.
    ///
    /// # Errors
    /// [`Error::BadPlaneRoot`] when the root (or a directory on the way) is a
    /// symlink, not a directory, or missing; [`Error::Io`] otherwise.
    pub fn open(plane: &Plane) -> Result<Scope> {
        let store_root = Dir::open(&plane.store_root).at(&plane.store_root)?;
        let mut cur = store_root;
        let mut at = plane.store_root.clone();
        for part in plane.path.split('/').filter(|p| !p.is_empty()) {
            at.push(part);
            cur = match cur.open_dir(part.as_bytes()) {
                Ok(d) => d,
                Err(e) => {
                    let problem = if fsys::is_symlink_refusal(&e) {
                        RootProblem::Symlink
                    } else if fsys::is_errno(&e, rustix::io::Errno::NOTDIR) {
                        // ENOTDIR: a file, or a symlink to one.
                        match std::fs::symlink_metadata(&at) {
                            Ok(m) if m.file_type().is_symlink() => RootProblem::Symlink,
                            _ => RootProblem::NotADirectory,
                        }
                    } else if e.kind() == std::io::ErrorKind::NotFound {
                        RootProblem::Missing
                    } else {
                        return Err(e).at(&at);
                    };
                    return Err(Error::BadPlaneRoot { path: at, problem });
                }
            };
        }
        let exclude = if plane.exclude.is_empty() {
            None
        } else {
            let rules = crate::exclude::Rules::from_patterns(&plane.exclude).map_err(|e| Error::BadIgnoreFile {
                path: plane.store_root.join(crate::store::STORE_DIR).join("config.json"),
                reason: format!("plane `{}`: exclude {e}", plane.name),
            })?;
            Some(std::sync::Arc::new(rules))
        };
        Ok(Scope {
            root: cur,
            root_path: plane.root.clone(),
            plane: plane.name.clone(),
            carve_outs: plane.carve_outs.clone(),
            exempt: None,
            exclude,
        })
        .map(|mut scope| {
            scope.exempt = crate::governance::plane::exempt(&scope);
            scope
        })
    }

    /// The governed plane's exempt globs, if it has any.
    pub fn exempt(&self) -> Option<&Exempt> {
        self.exempt.as_deref()
    }

    /// The plane's `exclude` patterns (`--exclude`), if it has any.
    pub fn exclude(&self) -> Option<&std::sync::Arc<crate::exclude::Rules>> {
        self.exclude.as_ref()
    }

    /// The plane root, opened.
    pub fn root(&self) -> &Dir {
        &self.root
    }

    /// The plane root's absolute path, for messages.
    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// The plane's name.
    pub fn plane(&self) -> &str {
        &self.plane
    }

    /// The carved-out paths, sorted.
    pub fn carve_outs(&self) -> &[RelPath] {
        &self.carve_outs
    }

    /// Adds carve-outs (nested stores found by a scan).
    pub(crate) fn carve_out_more(&mut self, more: impl IntoIterator<Item = RelPath>) {
        self.carve_outs.extend(more);
        self.carve_outs.sort();
        self.carve_outs.dedup();
    }

    /// True when `rel` is a carve-out itself.
    pub fn is_carve_out(&self, rel: &RelPath) -> bool {
        self.carve_outs.binary_search(rel).is_ok()
    }

    /// True when `rel` is a carve-out or inside one: not this plane's.
    pub fn is_excluded(&self, rel: &RelPath) -> bool {
        self.carve_outs.iter().any(|c| rel.starts_with(c))
    }

    /// True when the entry `name` of directory `dir` is a carve-out (called
    /// for every scanned entry: compares bytes, builds no path).
    pub fn is_carved_entry(&self, dir: &RelPath, name: &[u8]) -> bool {
        let d = dir.as_bytes();
        self.carve_outs.iter().any(|c| match c.as_bytes().strip_prefix(d) {
            Some(rest) if d.is_empty() => rest == name,
            Some([b'/', rest @ ..]) => rest == name,
            _ => false,
        })
    }

    /// Opens the directory at `rel` (plane-relative) without following symlinks.
    ///
    /// # Errors
    /// The `openat` error of the first component that fails.
    pub fn open_dir(&self, rel: &RelPath) -> std::io::Result<Dir> {
        self.root.open_beneath(rel)
    }

    /// Opens the directories from the plane root down to `rel`, one at a
    /// time and never through a symlink: the deepest directory reached, its
    /// path, and why the walk stopped short of `rel` (`None`: `rel` itself
    /// was opened). For callers that must know where a path breaks; a plain
    /// open is [`Scope::open_dir`].
    ///
    /// # Errors
    /// [`Error::Io`] naming the component whose open failed any other way
    /// (`EACCES`, `EMFILE`, ...).
    pub fn walk(&self, rel: &RelPath) -> Result<(Dir, RelPath, Option<WalkStop>)> {
        let mut cur = self.root.try_clone().map_err(|e| self.io_error(&RelPath::root(), e))?;
        let mut at = RelPath::root();
        for part in rel.components() {
            let next = at.join(part);
            match cur.open_dir(part) {
                Ok(d) => {
                    cur = d;
                    at = next;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok((cur, at, Some(WalkStop::Missing(next))));
                }
                Err(e) if fsys::is_not_a_directory(&e) => return Ok((cur, at, Some(WalkStop::NotADirectory(next)))),
                Err(e) => return Err(self.io_error(&next, e)),
            }
        }
        Ok((cur, at, None))
    }

    /// `<plane root>/<rel>`: how `rel` is named in messages.
    pub fn shown(&self, rel: &RelPath) -> std::path::PathBuf {
        self.root_path.join(rel.as_os_str())
    }

    /// An [`Error::Io`] naming `<plane root>/<rel>`.
    pub fn io_error(&self, rel: &RelPath, source: std::io::Error) -> Error {
        tree_io(&self.root_path, rel, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Exact paths looked up by name match exactly what the same globs
        /// compiled by globset match, for files and for directories.
        #[test]
        fn exact_lookup_equals_globset(
            globs in proptest::collection::vec("[ab*]{1,2}(/[ab?]{1,2}){0,2}(/\\*\\*)?", 0..6),
            path in "[ab]{1,2}(/[ab]{1,2}){0,3}",
            is_dir in any::<bool>(),
        ) {
            let e = Exempt::new(globs.clone()).unwrap();
            let rel = RelPath::parse(path.as_bytes()).unwrap();
            let all = crate::governance::glob_set(&globs).unwrap();
            let prefixes: Vec<String> = globs
                .iter()
                .filter_map(|g| g.strip_suffix("/**"))
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            let dirs = crate::governance::glob_set(&prefixes).unwrap();
            let want = all.is_match(&path) || is_dir && dirs.is_match(&path);
            prop_assert_eq!(e.matches(&rel, is_dir), want);
        }
    }
}
