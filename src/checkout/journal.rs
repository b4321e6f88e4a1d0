//! The checkout journal: `.cp/planes/<plane>/journal`, present only while a
//! rollback or restore is being applied. It lists every operation in the
//! order it is carried out, so a checkout killed at any point is finished by
//! the next command ([`super::recover()`]). Framing and bytes: `store-format.md`,
//! "Checkout journal".

use crate::error::{Error, IoResultExt, Result};
use crate::fsutil::write_atomic;
use crate::id::{ObjectId, SnapshotId};
use crate::object::{EntryKind, Meta};
use crate::path::RelPath;
use crate::store::Store;
use crate::store::frame;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Magic at the start of a journal file.
const JOURNAL_MAGIC: &[u8; 4] = b"CPRJ";
/// Journal format version (1 was store format 1's rollback journal).
pub const JOURNAL_VERSION: u8 = 2;

/// One step of a checkout, in the order the journal lists them: removals
/// (files, then directories deepest first), new directories (parents
/// first), writes, hard links, then permission and owner fixes (files, then
/// directories deepest first, so a read-only directory is filled before it
/// becomes read-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Remove the file or symlink at `path`.
    Remove {
        /// Plane-relative path.
        path: RelPath,
    },
    /// Remove the directory at `path` if it is empty.
    RemoveDir {
        /// Plane-relative path.
        path: RelPath,
    },
    /// Create the directory `path` (mode 0700 until its [`Op::SetMeta`]; a
    /// format-1 directory, whose mode is unknown, 0777 minus the umask).
    MakeDir {
        /// Plane-relative path.
        path: RelPath,
        /// The mode and owner it will get.
        meta: Meta,
    },
    /// Put blob `id` at `path` as a file or symlink with `meta`.
    Write {
        /// Plane-relative path.
        path: RelPath,
        /// File or symlink.
        kind: EntryKind,
        /// Blob id.
        id: ObjectId,
        /// Length in bytes.
        size: u64,
        /// Mode and owner to give it.
        meta: Meta,
    },
    /// Make `path` another hard link to `to` (already in place).
    Link {
        /// Plane-relative path.
        path: RelPath,
        /// The group's first path.
        to: RelPath,
    },
    /// Set the mode and owner of `path` (a file, symlink or directory).
    SetMeta {
        /// Plane-relative path.
        path: RelPath,
        /// What it is (a symlink's mode is not set).
        kind: EntryKind,
        /// Mode and owner.
        meta: Meta,
    },
}

impl Op {
    /// The path the operation changes.
    pub fn path(&self) -> &RelPath {
        match self {
            Op::Remove { path }
            | Op::RemoveDir { path }
            | Op::MakeDir { path, .. }
            | Op::Write { path, .. }
            | Op::Link { path, .. }
            | Op::SetMeta { path, .. } => path,
        }
    }
}

/// Which command a checkout serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckoutKind {
    /// `cplane rollback`: the whole plane; HEAD moves when done.
    Rollback,
    /// `cplane restore`: some paths; HEAD does not move.
    Restore,
}

impl CheckoutKind {
    /// The command's name: `rollback` or `restore`.
    pub fn name(self) -> &'static str {
        match self {
            CheckoutKind::Rollback => "rollback",
            CheckoutKind::Restore => "restore",
        }
    }
}

/// Everything needed to finish an interrupted checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Plane being checked out.
    pub plane: String,
    /// Rollback or restore.
    pub kind: CheckoutKind,
    /// The snapshot whose state is being put in place.
    pub target: SnapshotId,
    /// The rescue checkpoint of the state before.
    pub rescue: SnapshotId,
    /// Its name.
    pub rescue_name: String,
    /// For a rollback: the new HEAD (already stored) and its checkpoint name.
    pub new_head: Option<(SnapshotId, String)>,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

/// `.cp/planes/<plane>/journal`.
pub fn journal_path(store: &Store, plane: &str) -> PathBuf {
    store.plane_dir(plane).join("journal")
}

/// True when `plane` has an unfinished checkout.
pub fn has_journal(store: &Store, plane: &str) -> bool {
    journal_path(store, plane).exists()
}

pub(super) fn save(path: &Path, j: &Journal, tmp_dir: &Path) -> Result<()> {
    write_atomic(path, &frame::encode(JOURNAL_MAGIC, JOURNAL_VERSION, j), tmp_dir)
}

/// Reads and checks a journal.
///
/// # Errors
/// [`Error::LegacyJournal`] for a format-1 journal; [`Error::DamagedFile`]
/// when it does not check out; [`Error::Io`] when unreadable.
pub fn load(path: &Path) -> Result<Journal> {
    let bytes = std::fs::read(path).at(path)?;
    if bytes.len() > 4 && &bytes[..4] == JOURNAL_MAGIC && bytes[4] == 1 {
        return Err(Error::LegacyJournal {
            plane: path
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            journal: path.to_path_buf(),
        });
    }
    let j: Journal = frame::decode(&bytes, JOURNAL_MAGIC, JOURNAL_VERSION).map_err(|e| Error::DamagedFile {
        path: path.to_path_buf(),
        reason: format!("checkout journal {}", e.describe()),
    })?;
    let plane_dir = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if plane_dir.as_deref() != Some(j.plane.as_str()) {
        return Err(Error::DamagedFile {
            path: path.to_path_buf(),
            reason: format!("checkout journal is for plane `{}`, not this one", j.plane),
        });
    }
    // Every operation names a path inside the plane, never the root itself.
    for (i, op) in j.ops.iter().enumerate() {
        let to_root = matches!(op, Op::Link { to, .. } if to.is_root());
        if op.path().is_root() || to_root {
            return Err(Error::DamagedFile {
                path: path.to_path_buf(),
                reason: format!("checkout journal operation {i} names the plane root"),
            });
        }
    }
    Ok(j)
}
