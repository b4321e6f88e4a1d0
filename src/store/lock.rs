//! The store's writer lock: `.cp/lock`, an advisory `flock` held for the
//! lifetime of a [`StoreLock`]. Two writers never interleave; a second one
//! waits up to a timeout and then fails with [`Error::Locked`]. Also the
//! per-plane [`WorktreeLock`] that keeps readers of a working tree and a
//! checkout applying to it apart.

use crate::error::{Error, IoResultExt, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::control::NEVER;

/// Default wait for the lock, in milliseconds (the CLI's `CPLANE_LOCK_TIMEOUT_MS` overrides it).
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 3000;

/// A held store lock; released on drop (the kernel releases it if the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// Opens (creating) a lock file for reading and writing.
fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Polls for an exclusive `flock` on `file` every 10 ms: `Ok(true)` once
/// held, `Ok(false)` when `wait` (`None`: forever) passed first.
///
/// # Errors
/// [`Error::Interrupted`] as soon as `interrupt` is set; [`Error::Io`] naming `path`.
fn poll_exclusive(file: &File, path: &Path, wait: Option<Duration>, interrupt: &AtomicBool) -> Result<bool> {
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) => {
                if interrupt.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                if wait.is_some_and(|w| start.elapsed() >= w) {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::Error(e)) => return Err(e).at(path),
        }
    }
}

impl StoreLock {
    /// Takes the lock in `store_dir`, waiting up to the default timeout.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process keeps it past the timeout.
    pub fn acquire(store_dir: &Path) -> Result<StoreLock> {
        Self::acquire_within(store_dir, Duration::from_millis(DEFAULT_LOCK_TIMEOUT_MS), &NEVER)
    }

    /// Takes the lock only if it is free right now.
    ///
    /// # Errors
    /// [`Error::Locked`] when it is held; [`Error::Io`] otherwise.
    pub fn try_acquire(store_dir: &Path) -> Result<StoreLock> {
        Self::acquire_within(store_dir, Duration::ZERO, &NEVER)
    }

    /// Takes the lock, waiting up to `wait`; gives up with [`Error::Interrupted`]
    /// as soon as `interrupt` is set.
    ///
    /// # Errors
    /// [`Error::Locked`] after `wait`; [`Error::Interrupted`]; [`Error::Io`].
    pub fn acquire_within(store_dir: &Path, wait: Duration, interrupt: &AtomicBool) -> Result<StoreLock> {
        let path = store_dir.join("lock");
        let mut file = open_lock(&path).at(&path)?;
        let start = Instant::now();
        if !poll_exclusive(&file, &path, Some(wait), interrupt)? {
            return Err(Error::Locked {
                holder: holder(&mut file),
                path,
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        // Informational only: who holds it, for the next waiter's message.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = write!(file, "pid {}", std::process::id());
        Ok(StoreLock { _file: file, path })
    }
}

/// Who holds the store lock, as far as the lock file says: `pid N` as the
/// last cplane to take it wrote, unless that process is gone (then another
/// program holds the lock).
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    match text.strip_prefix("pid ").and_then(|p| p.parse::<i32>().ok()) {
        Some(pid) if crate::fsys::process_alive(pid) => text.to_string(),
        Some(pid) => format!("not cplane pid {pid}, which has exited: another program"),
        None if text.is_empty() => "holder unknown".into(),
        None => text.to_string(),
    }
}

/// A per-plane read/write lock on the working tree:
/// `.cp/planes/<plane>/worktree.lock`, `flock`ed shared by commands that read
/// the working tree (`status`, `verify`, `diff REF`) and exclusive by a
/// checkout (rollback, restore) while it applies its journal. A reader
/// therefore sees the tree before or after a checkout, never half of one;
/// a checkout waits for running readers to finish. Released on drop.
#[derive(Debug)]
pub struct WorktreeLock {
    _file: Option<File>,
}

impl WorktreeLock {
    /// Waits until no checkout is applying, then holds readers' access.
    ///
    /// # Errors
    /// [`Error::Io`] naming the lock file.
    pub fn shared(plane_dir: &Path) -> Result<WorktreeLock> {
        let path = plane_dir.join("worktree.lock");
        let file = match open_lock(&path) {
            Ok(f) => f,
            // A reader without write access to the store cannot take the lock; it
            // reads unlocked (the journal check still catches an interrupted checkout).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                return Ok(WorktreeLock { _file: None });
            }
            Err(e) => return Err(e).at(&path),
        };
        file.lock_shared().at(&path)?;
        Ok(WorktreeLock { _file: Some(file) })
    }

    /// Waits until no reader is reading, then holds the tree for a checkout;
    /// gives up with [`Error::Interrupted`] as soon as `interrupt` is set.
    ///
    /// # Errors
    /// [`Error::Interrupted`]; [`Error::Io`] naming the lock file.
    pub fn exclusive(plane_dir: &Path, interrupt: &AtomicBool) -> Result<WorktreeLock> {
        let path = plane_dir.join("worktree.lock");
        let file = open_lock(&path).at(&path)?;
        poll_exclusive(&file, &path, None, interrupt)?;
        Ok(WorktreeLock { _file: Some(file) })
    }
}
