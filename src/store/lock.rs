//! The store's writer lock: `.cp/lock`, an advisory `flock` held for the
//! lifetime of a [`StoreLock`]. Two writers never interleave; a second one
//! waits up to a timeout and then fails with [`Error::Locked`].

use crate::error::{Error, IoResultExt, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Default wait for the lock, in milliseconds; `CPLANE_LOCK_TIMEOUT_MS` overrides it.
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 3000;

/// A held store lock; released on drop (the kernel releases it if the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

fn timeout() -> Result<Duration> {
    match std::env::var("CPLANE_LOCK_TIMEOUT_MS") {
        Err(_) => Ok(Duration::from_millis(DEFAULT_LOCK_TIMEOUT_MS)),
        Ok(v) => v.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| {
            Error::invalid(format!(
                "CPLANE_LOCK_TIMEOUT_MS={v:?} is not a whole number of milliseconds"
            ))
        }),
    }
}

impl StoreLock {
    /// Takes the lock in `store_dir`, waiting up to the timeout.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process keeps it past the timeout.
    pub fn acquire(store_dir: &Path) -> Result<StoreLock> {
        Self::acquire_within(store_dir, timeout()?)
    }

    /// Takes the lock only if it is free right now.
    ///
    /// # Errors
    /// [`Error::Locked`] when it is held; [`Error::Io`] otherwise.
    pub fn try_acquire(store_dir: &Path) -> Result<StoreLock> {
        Self::acquire_within(store_dir, Duration::ZERO)
    }

    fn acquire_within(store_dir: &Path, wait: Duration) -> Result<StoreLock> {
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
                    crate::interrupt::check()?;
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
