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

/// Starts writing bytes `from..to` of `file` to disk without waiting
/// (Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)`; nothing elsewhere, or
/// when it fails: the fsync that follows then does all the writing).
/// Nothing is dropped from the page cache.
pub fn start_writeback(file: &File, from: u64, to: u64) {
    #[cfg(target_os = "linux")]
    if to > from {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor the caller holds open; it
        // reads no memory of ours.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
}

/// A file written front to back, whose writeback is started each time it
/// grew by [`WritebackWriter::STEP`] ([`start_writeback`], on whole 64 KiB
/// units, so no page is started twice), so that the fsync that makes it
/// durable finds most of it on disk: until then the disk would sit idle
/// (the kernel's own writeback starts at gigabytes of dirty pages, or
/// after 30 s). Put a `BufWriter` in front of it.
pub struct WritebackWriter<'f> {
    file: &'f File,
    /// Bytes handed to the kernel.
    pos: u64,
    /// Bytes before this offset were started.
    started: u64,
}

impl<'f> WritebackWriter<'f> {
    /// Bytes written between two starts (8 MiB).
    pub const STEP: u64 = 8 << 20;

    /// Writes `file` from its current offset, which must be 0.
    pub fn new(file: &'f File) -> Self {
        WritebackWriter {
            file,
            pos: 0,
            started: 0,
        }
    }
}

impl Write for WritebackWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.pos += n as u64;
        // A multiple of every page size Linux uses (4, 16 and 64 KiB).
        const ALIGN: u64 = 64 << 10;
        let whole = self.pos / ALIGN * ALIGN;
        if whole.saturating_sub(self.started) >= Self::STEP {
            start_writeback(self.file, self.started, whole);
            self.started = whole;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What goes through a [`WritebackWriter`] is the file's bytes, in
    /// order, across many steps.
    #[test]
    fn writeback_writer_writes_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let data: Vec<u8> = (0..(WritebackWriter::STEP as usize * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut w = std::io::BufWriter::new(WritebackWriter::new(&file));
        for chunk in data.chunks(100_000) {
            w.write_all(chunk).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        assert_eq!(fs::read(&path).unwrap(), data);
    }
}
