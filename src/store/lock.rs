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

/// Default wait for the lock, in milliseconds (the CLI's `CPLANE_LOCK_TIMEOUT_MS` overrides it).
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 3000;

/// A held store lock; released on drop (the kernel releases it if the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

impl StoreLock {
    /// Takes the lock in `store_dir`, waiting up to the default timeout.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process keeps it past the timeout.
    pub fn acquire(store_dir: &Path) -> Result<StoreLock> {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Self::acquire_within(store_dir, Duration::from_millis(DEFAULT_LOCK_TIMEOUT_MS), &NEVER)
    }

    /// Takes the lock only if it is free right now.
    ///
    /// # Errors
    /// [`Error::Locked`] when it is held; [`Error::Io`] otherwise.
    pub fn try_acquire(store_dir: &Path) -> Result<StoreLock> {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Self::acquire_within(store_dir, Duration::ZERO, &NEVER)
    }

    /// Takes the lock, waiting up to `wait`; gives up with [`Error::Interrupted`]
    /// as soon as `interrupt` is set.
    ///
    /// # Errors
    /// [`Error::Locked`] after `wait`; [`Error::Interrupted`]; [`Error::Io`].
    pub fn acquire_within(store_dir: &Path, wait: Duration, interrupt: &AtomicBool) -> Result<StoreLock> {
        let path = store_dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if interrupt.load(Ordering::Relaxed) {
                        return Err(Error::Interrupted);
                    }
                    if start.elapsed() >= wait {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = holder.trim();
                        return Err(Error::Locked {
                            path,
                            holder: if holder.is_empty() {
                                "holder unknown".into()
                            } else {
                                holder.to_string()
                            },
                            waited_ms: start.elapsed().as_millis() as u64,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::Error(e)) => return Err(e).at(&path),
            }
        }
        // Informational only: who holds it, for the next waiter's message.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = write!(file, "pid {}", std::process::id());
        Ok(StoreLock { _file: file, path })
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
    fn take(plane_dir: &Path, exclusive: bool) -> Result<WorktreeLock> {
        let path = plane_dir.join("worktree.lock");
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(f) => f,
            // A reader without write access to the store cannot take the lock; it
            // reads unlocked (the journal check still catches an interrupted checkout).
            Err(e)
                if !exclusive
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                    ) =>
            {
                return Ok(WorktreeLock { _file: None });
            }
            Err(e) => return Err(e).at(&path),
        };
        if exclusive { file.lock() } else { file.lock_shared() }.at(&path)?;
        Ok(WorktreeLock { _file: Some(file) })
    }

    /// Waits until no checkout is applying, then holds readers' access.
    ///
    /// # Errors
    /// [`Error::Io`] naming the lock file.
    pub fn shared(plane_dir: &Path) -> Result<WorktreeLock> {
        Self::take(plane_dir, false)
    }

    /// Waits until no reader is reading, then holds the tree for a checkout.
    ///
    /// # Errors
    /// [`Error::Io`] naming the lock file.
    pub fn exclusive(plane_dir: &Path) -> Result<WorktreeLock> {
        Self::take(plane_dir, true)
    }

    /// As [`WorktreeLock::exclusive`], but gives up with [`Error::Interrupted`]
    /// as soon as `interrupt` is set while waiting for readers.
    ///
    /// # Errors
    /// [`Error::Interrupted`]; [`Error::Io`] naming the lock file.
    pub fn exclusive_interruptible(plane_dir: &Path, interrupt: &AtomicBool) -> Result<WorktreeLock> {
        let path = plane_dir.join("worktree.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(WorktreeLock { _file: Some(file) }),
                Err(TryLockError::WouldBlock) => {
                    if interrupt.load(Ordering::Relaxed) {
                        return Err(Error::Interrupted);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::Error(e)) => return Err(e).at(&path),
            }
        }
    }
}
