//! Small filesystem helpers with stated crash guarantees.

use crate::error::{IoResultExt, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Flushes a directory's entries (new names, renames) to disk.
///
/// # Errors
/// [`crate::Error::Io`] naming `dir`.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).at(dir)
}

/// Replaces `path` with `bytes` atomically and durably.
///
/// Writes a temporary file in `tmp_dir` (which must be on the same filesystem,
/// so a crash leaves leftovers in one known place), fsyncs it, renames it over
/// `path` and fsyncs `path`'s directory. After a crash, `path` holds either the
/// old or the new bytes, never a mix (the rename is atomic on POSIX
/// filesystems; the fsyncs make it durable, see LWN "Ensuring data reaches disk").
///
/// # Errors
/// [`crate::Error::Io`] naming the file or directory that failed.
pub fn write_atomic(path: &Path, bytes: &[u8], tmp_dir: &Path) -> Result<()> {
    let tmp = write_temp(bytes, tmp_dir, true)?;
    tmp.persist(path).map_err(|e| e.error).at(path)?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Writes `bytes` to a new temporary file in `tmp_dir` (fsynced when `durable`),
/// ready to be persisted (renamed) by the caller.
///
/// # Errors
/// [`crate::Error::Io`] naming the temporary file or directory.
pub fn write_temp(bytes: &[u8], tmp_dir: &Path, durable: bool) -> Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix("write-")
        .tempfile_in(tmp_dir)
        .at(tmp_dir)?;
    tmp.write_all(bytes).at(tmp.path())?;
    if durable {
        tmp.as_file().sync_all().at(tmp.path())?;
    }
    Ok(tmp)
}

/// Replaces `path` with `bytes` atomically (temporary file in `tmp_dir`) but
/// without fsync, for caches.
///
/// Readers see the old or the new file, never a mix. After a power failure
/// the new file may be empty or garbage, so use this only for data whose
/// damage is detected (checksums) and harmless (the stat cache).
///
/// # Errors
/// [`crate::Error::Io`] naming the file or directory that failed.
pub fn write_replace(path: &Path, bytes: &[u8], tmp_dir: &Path) -> Result<()> {
    write_temp(bytes, tmp_dir, false)?
        .persist(path)
        .map_err(|e| e.error)
        .at(path)?;
    Ok(())
}

/// Creates `dir` and its parents if missing.
///
/// # Errors
/// [`crate::Error::Io`] naming `dir`.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).at(dir)
}
