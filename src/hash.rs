//! Hashing files into blob ids, safely against concurrent writers.
//!
//! Small files are read whole into a per-thread buffer and hashed with
//! `blake3::hash`; large ones are read in 4 MiB chunks, each hashed with
//! BLAKE3's rayon-parallel `update_rayon` (not memory-mapped: a concurrent
//! truncation of a mapped file raises SIGBUS). Every read is bracketed by two `fstat`s: if
//! size, mtime or ctime moved, the bytes may be torn, so the hash is retried
//! (up to [`HASH_ATTEMPTS`] times) and never recorded. Because the kernel
//! stamps file times from a coarse clock (4 ms ticks here), a same-size
//! rewrite within one tick is invisible to that bracket; so a file whose
//! times are within two ticks of the read is also re-read once they are older.

use crate::error::Result;
use crate::fsys::{self, Dir};
use crate::id::ObjectId;
use crate::object::ObjectKind;
use crate::store::index::Stat;
use crate::store::pack::ObjectWriter;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Files at least this large (bytes) are hashed in [`CHUNK_BYTES`] chunks with BLAKE3's multithreaded update.
pub const PARALLEL_MIN_BYTES: u64 = 4 << 20;
/// Read size for large files, in bytes.
pub const CHUNK_BYTES: usize = 4 << 20;
/// Files at least this large (bytes) are stored by streaming rather than read whole.
pub const STREAM_MIN_BYTES: u64 = 8 << 20;
/// What [`hash_file_with`] shows the bytes it hashed, with their blob id, to.
pub type OnBytes<'a> = &'a dyn Fn(&[u8], &ObjectId);

/// How many times a file that changes while being hashed is retried.
pub const HASH_ATTEMPTS: usize = 3;

/// How recent (ns) a file's mtime/ctime may be, relative to the start of its
/// read, before the hash is distrusted: two ticks of the kernel's coarse
/// clock (which stamps file times) plus 1 ms. Within one tick, a rewrite of
/// the same size leaves size, mtime and ctime unchanged, so the fstat bracket
/// alone cannot see it; such a file is re-read once its times are older.
pub(crate) fn fresh_margin_ns() -> i64 {
    static MARGIN: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *MARGIN.get_or_init(|| 2 * fsys::coarse_clock_tick_ns().clamp(1_000_000, 1_000_000_000) + 1_000_000)
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Why a file could not be hashed.
#[derive(Debug)]
pub enum HashProblem {
    /// Open or read failed.
    Unreadable(io::Error),
    /// The file changed during every attempt.
    Changed,
    /// It is no longer a regular file (replaced while scanning).
    NotRegular,
    /// Writing to the store failed: a real error, not a finding.
    Store(crate::Error),
}

fn same_content_stat(a: &fsys::Stat, b: &fsys::Stat) -> bool {
    let (sa, sb) = (Stat::from_raw(a), Stat::from_raw(b));
    sa.size == sb.size && sa.mtime_ns == sb.mtime_ns && sa.ctime_ns == sb.ctime_ns && sa.ino == sb.ino
}

enum Attempt {
    Done(ObjectId, fsys::Stat),
    Changed,
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// True (after waiting until it no longer is) when `m` was stamped so close to
/// `read_start_ns` that a same-tick rewrite could hide in it.
///
/// Judged on ctime, which the kernel stamps on every write and no user can set
/// (mtime can be set to anything, even the future). A ctime more than a second
/// ahead of the clock is clock skew (e.g. a network filesystem), not a write in
/// progress, and is not waited for.
fn too_fresh(m: &fsys::Stat, read_start_ns: i64) -> bool {
    let ctime = Stat::from_raw(m).ctime_ns;
    let margin = fresh_margin_ns();
    let now = crate::store::index::now_ns();
    if ctime.saturating_add(margin) <= read_start_ns || ctime > now.saturating_add(1_000_000_000) {
        return false;
    }
    let wait = ctime.saturating_add(margin).saturating_sub(now);
    if wait > 0 {
        std::thread::sleep(std::time::Duration::from_nanos(wait.min(1_000_000_000) as u64));
    }
    true
}

fn attempt(
    dir: &Dir,
    name: &[u8],
    path: &Path,
    writer: Option<&ObjectWriter>,
    on_bytes: Option<OnBytes<'_>>,
) -> Result<Attempt, HashProblem> {
    let read_start = crate::store::index::now_ns();
    let mut f = dir.open_file(name).map_err(HashProblem::Unreadable)?;
    let m0 = fsys::fstat(&f).map_err(HashProblem::Unreadable)?;
    if fsys::EntryType::from_mode(m0.st_mode) != fsys::EntryType::File {
        return Err(HashProblem::NotRegular);
    }
    let size = m0.st_size as u64;
    let stream = writer.is_some() && size >= STREAM_MIN_BYTES;
    let id = if size < PARALLEL_MIN_BYTES || (writer.is_some() && !stream) {
        let r = BUF.with(|buf| -> Result<Option<ObjectId>, HashProblem> {
            let mut buf = buf.borrow_mut();
            buf.clear();
            (&mut f)
                .take(size + 1)
                .read_to_end(&mut buf)
                .map_err(HashProblem::Unreadable)?;
            if buf.len() as u64 != size {
                return Ok(None);
            }
            let id = crate::object::blob_id(&buf);
            let m1 = fsys::fstat(&f).map_err(HashProblem::Unreadable)?;
            if !same_content_stat(&m0, &m1) || too_fresh(&m1, read_start) {
                return Ok(None);
            }
            if let Some(w) = writer {
                w.add(ObjectKind::Blob, id, &buf).map_err(HashProblem::Store)?;
            }
            if let Some(f) = on_bytes {
                f(&buf, &id);
            }
            if buf.capacity() > (STREAM_MIN_BYTES as usize) * 2 {
                *buf = Vec::new();
            }
            Ok(Some(id))
        })?;
        match r {
            Some(id) => id,
            None => return Ok(Attempt::Changed),
        }
    } else {
        // Large file: read in big chunks, each hashed by BLAKE3's rayon-parallel update.
        // Not mmap: a concurrent truncation turns a mapped read into SIGBUS (a crash),
        // where a read(2) just returns fewer bytes (measured cost of the copy: see README).
        let mut h = blake3::Hasher::new();
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let mut total = 0u64;
        loop {
            let n = read_full(&mut f, &mut chunk).map_err(HashProblem::Unreadable)?;
            if n == 0 {
                break;
            }
            h.update_rayon(&chunk[..n]);
            total += n as u64;
            if total > size {
                return Ok(Attempt::Changed);
            }
        }
        if total != size {
            return Ok(Attempt::Changed);
        }
        let id = ObjectId(*h.finalize().as_bytes());
        let m1 = fsys::fstat(&f).map_err(HashProblem::Unreadable)?;
        if !same_content_stat(&m0, &m1) || too_fresh(&m1, read_start) {
            return Ok(Attempt::Changed);
        }
        if let Some(w) = writer {
            f.seek(SeekFrom::Start(0)).map_err(HashProblem::Unreadable)?;
            // Re-hashes while compressing; a mismatch means the file changed in between.
            if w.add_blob_stream(id, size, &mut f, path)
                .map_err(HashProblem::Store)?
                .is_none()
            {
                return Ok(Attempt::Changed);
            }
        }
        id
    };
    Ok(Attempt::Done(id, m0))
}

/// Hashes the regular file `name` of `dir` (never through a symlink) and,
/// with a writer, stores its bytes as a blob. `path` names the file in
/// messages only.
///
/// Returns the blob id and the `fstat` the bytes belong to.
///
/// # Errors
/// A [`HashProblem`]; only [`HashProblem::Store`] is a store error, the
/// others are findings about the file.
pub fn hash_file(
    dir: &Dir,
    name: &[u8],
    path: &Path,
    writer: Option<&ObjectWriter>,
) -> Result<(ObjectId, fsys::Stat), HashProblem> {
    hash_file_with(dir, name, path, writer, None)
}

/// [`hash_file`], and for a file read whole (smaller than
/// [`PARALLEL_MIN_BYTES`], or than [`STREAM_MIN_BYTES`] with a writer),
/// `on_bytes` sees the very bytes that were hashed and their id, once, after the read
/// proved untorn; a larger file (read in chunks) is not shown. `on_bytes`
/// runs while this thread's read buffer is borrowed: it must not hash files
/// itself.
///
/// # Errors
/// As [`hash_file`].
pub fn hash_file_with(
    dir: &Dir,
    name: &[u8],
    path: &Path,
    writer: Option<&ObjectWriter>,
    on_bytes: Option<OnBytes<'_>>,
) -> Result<(ObjectId, fsys::Stat), HashProblem> {
    for _ in 0..HASH_ATTEMPTS {
        match attempt(dir, name, path, writer, on_bytes)? {
            Attempt::Done(id, stat) => return Ok((id, stat)),
            Attempt::Changed => continue,
        }
    }
    Err(HashProblem::Changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_files_hash_like_b3sum() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::open(dir.path()).unwrap();
        for size in [0usize, 1, 1000, PARALLEL_MIN_BYTES as usize + 17] {
            let name = format!("f{size}");
            let p = dir.path().join(&name);
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            let (id, stat) = hash_file(&d, name.as_bytes(), &p, None).unwrap();
            assert_eq!(id.0, *blake3::hash(&data).as_bytes());
            assert_eq!(stat.st_size as u64, size as u64);
        }
    }

    #[test]
    fn symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), b"x").unwrap();
        std::os::unix::fs::symlink("t", dir.path().join("l")).unwrap();
        let d = Dir::open(dir.path()).unwrap();
        assert!(matches!(
            hash_file(&d, b"l", &dir.path().join("l"), None),
            Err(HashProblem::Unreadable(_))
        ));
    }
}
