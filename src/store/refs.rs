//! Refs: each plane's HEAD and named checkpoints, one small file each.
//!
//! `.cp/planes/<plane>/HEAD` and `.cp/planes/<plane>/checkpoints/<NAME>` hold
//! 64 lower-case hex digits of a snapshot id and a newline. They are replaced
//! atomically (temporary file, fsync, rename, fsync of the directory) and only after the objects they
//! name are durable.

use super::Store;
use crate::error::{Error, IoResultExt, Result};
use crate::fsutil::{ensure_dir, write_atomic};
use crate::id::SnapshotId;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Longest checkpoint or plane name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// True for names made of `[A-Za-z0-9._-]`, 1..=200 bytes, not starting with `.` or `-`,
/// and not `HEAD` (which always means the plane's head).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name != "HEAD"
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn read_ref(path: &Path) -> Result<Option<SnapshotId>> {
    match fs::read_to_string(path) {
        Ok(text) => SnapshotId::from_hex(text.trim_end_matches('\n'))
            .map(Some)
            .ok_or_else(|| Error::DamagedFile {
                path: path.to_path_buf(),
                reason: "expected 64 hex digits and a newline".into(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

impl Store {
    fn write_ref(&self, path: &Path, id: &SnapshotId) -> Result<()> {
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        write_atomic(path, format!("{}\n", id.to_hex()).as_bytes(), &self.tmp_dir())
    }

    /// `.cp/planes/<plane>`: HEAD, checkpoints, index and journal of one plane.
    pub fn plane_dir(&self, plane: &str) -> PathBuf {
        self.dir().join("planes").join(plane)
    }

    fn checkpoint_path(&self, plane: &str, name: &str) -> PathBuf {
        self.plane_dir(plane).join("checkpoints").join(name)
    }

    /// The plane's HEAD, `None` before its first snapshot.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] when the ref is malformed.
    pub fn head(&self, plane: &str) -> Result<Option<SnapshotId>> {
        read_ref(&self.plane_dir(plane).join("HEAD"))
    }

    /// Moves the plane's HEAD. Call only after the snapshot is durable.
    ///
    /// # Errors
    /// [`Error::Io`] naming the ref.
    pub fn set_head(&self, plane: &str, id: &SnapshotId) -> Result<()> {
        self.write_ref(&self.plane_dir(plane).join("HEAD"), id)
    }

    /// A named checkpoint of the plane.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] when the ref is malformed.
    pub fn checkpoint(&self, plane: &str, name: &str) -> Result<Option<SnapshotId>> {
        if !valid_name(name) {
            return Ok(None);
        }
        read_ref(&self.checkpoint_path(plane, name))
    }

    /// Creates or replaces a named checkpoint.
    ///
    /// # Errors
    /// [`Error::BadName`] for a bad name; [`Error::Io`] naming the ref.
    pub fn set_checkpoint(&self, plane: &str, name: &str, id: &SnapshotId) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::BadName {
                kind: crate::error::NameKind::Checkpoint,
                name: name.to_string(),
                problem: crate::error::NameProblem::Syntax,
            });
        }
        self.write_ref(&self.checkpoint_path(plane, name), id)
    }

    /// Deletes a named checkpoint (used only to undo a rescue checkpoint of an aborted rollback).
    ///
    /// # Errors
    /// [`Error::Io`] naming the ref.
    pub fn remove_checkpoint(&self, plane: &str, name: &str) -> Result<()> {
        let p = self.checkpoint_path(plane, name);
        match fs::remove_file(&p) {
            Ok(()) => crate::fsutil::fsync_dir(p.parent().expect("a ref has a parent")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(&p),
        }
    }

    /// Every checkpoint of the plane as (name, id), sorted by name.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] for a malformed ref; [`Error::Io`] when unreadable.
    pub fn checkpoints(&self, plane: &str) -> Result<Vec<(String, SnapshotId)>> {
        let dir = self.plane_dir(plane).join("checkpoints");
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at(&dir),
        };
        for entry in rd {
            let entry = entry.at(&dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) {
                continue; // temporary files of an interrupted write
            }
            if let Some(id) = read_ref(&entry.path())? {
                out.push((name, id));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The refs of removed planes' archived directories
    /// (`planes-removed/<plane>-<TIME>/HEAD` and `…/checkpoints/<NAME>`), as
    /// (`planes-removed/<dir>:<ref>`, id), sorted: gc roots until the
    /// directory is deleted (`store-format.md`, "Removed planes").
    ///
    /// # Errors
    /// [`Error::DamagedFile`] for a malformed ref; [`Error::Io`] when unreadable.
    pub fn removed_plane_refs(&self) -> Result<Vec<(String, SnapshotId)>> {
        let base = self.dir().join(crate::plane::REMOVED_DIR);
        let mut out = Vec::new();
        let rd = match fs::read_dir(&base) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at(&base),
        };
        for entry in rd {
            let entry = entry.at(&base)?;
            if !entry.file_type().at(entry.path())?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let label = format!("{}/{name}", crate::plane::REMOVED_DIR);
            if let Some(id) = read_ref(&entry.path().join("HEAD"))? {
                out.push((format!("{label}:HEAD"), id));
            }
            let cps = entry.path().join("checkpoints");
            let Ok(list) = fs::read_dir(&cps) else { continue };
            for c in list {
                let c = c.at(&cps)?;
                let cname = c.file_name().to_string_lossy().into_owned();
                if valid_name(&cname)
                    && let Some(id) = read_ref(&c.path())?
                {
                    out.push((format!("{label}:{cname}"), id));
                }
            }
        }
        out.sort();
        Ok(out)
    }
    /// `.cp/remotes/<remote>`: what this store knows of one remote
    /// (remote-tracking refs, the remote's ledgers, the packs it has
    /// imported; `store-format.md`, "Remotes").
    pub fn remote_dir(&self, remote: &str) -> PathBuf {
        self.dir().join("remotes").join(remote)
    }

    /// A remote-tracking ref: `.cp/remotes/<remote>/planes/<plane>/HEAD` or
    /// `…/checkpoints/<name>` (`name` = `HEAD` for the former), as the first
    /// line of the remote ref it copies; `None` when absent or not a valid name.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] when the ref is malformed.
    pub fn remote_ref(&self, remote: &str, plane: &str, name: &str) -> Result<Option<SnapshotId>> {
        if !valid_name(remote) || !valid_name(plane) || (name != "HEAD" && !valid_name(name)) {
            return Ok(None);
        }
        let dir = self.remote_dir(remote).join("planes").join(plane);
        let path = if name == "HEAD" {
            dir.join("HEAD")
        } else {
            dir.join("checkpoints").join(name)
        };
        read_remote_ref(&path)
    }

    /// Every remote-tracking ref of every remote, as
    /// (`<remote>/<plane>/<HEAD or NAME>`, id), sorted: gc roots.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] for a malformed ref; [`Error::Io`] when unreadable.
    pub fn remote_refs(&self) -> Result<Vec<(String, SnapshotId)>> {
        let base = self.dir().join("remotes");
        let mut out = Vec::new();
        let list = |dir: &Path| -> Result<Vec<String>> {
            match fs::read_dir(dir) {
                Ok(rd) => {
                    let mut v = Vec::new();
                    for e in rd {
                        let e = e.at(dir)?;
                        let n = e.file_name().to_string_lossy().into_owned();
                        if valid_name(&n) {
                            v.push(n);
                        }
                    }
                    v.sort();
                    Ok(v)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => {
                    Ok(Vec::new())
                }
                Err(e) => Err(e).at(dir),
            }
        };
        for remote in list(&base)? {
            let planes = base.join(&remote).join("planes");
            for plane in list(&planes)? {
                let dir = planes.join(&plane);
                if let Some(id) = read_remote_ref(&dir.join("HEAD"))? {
                    out.push((format!("{remote}/{plane}/HEAD"), id));
                }
                for cp in list(&dir.join("checkpoints"))? {
                    if let Some(id) = read_remote_ref(&dir.join("checkpoints").join(&cp))? {
                        out.push((format!("{remote}/{plane}/{cp}"), id));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Reads a remote ref copy: 64 hex digits and `\n` on its first line (a
/// remote HEAD has a second, `ledger <hex>`).
pub(crate) fn read_remote_ref(path: &Path) -> Result<Option<SnapshotId>> {
    match fs::read(path) {
        Ok(bytes) => parse_remote_ref(&bytes)
            .map(|(id, _)| Some(id))
            .ok_or_else(|| Error::DamagedFile {
                path: path.to_path_buf(),
                reason: "expected 64 hex digits and a newline (then, for a HEAD, `ledger <64 hex>`)".into(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// Parses a remote ref's bytes: the snapshot id, and the ledger copy id a
/// remote HEAD names (`store-format.md`, "Remotes").
pub fn parse_remote_ref(bytes: &[u8]) -> Option<(SnapshotId, Option<crate::id::ObjectId>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split_terminator('\n');
    let id = SnapshotId::from_hex(lines.next()?)?;
    let ledger = match lines.next() {
        None => None,
        Some(l) => Some(crate::id::ObjectId::from_hex(l.strip_prefix("ledger ")?)?),
    };
    if lines.next().is_some() || !text.ends_with('\n') {
        return None;
    }
    Some((id, ledger))
}
