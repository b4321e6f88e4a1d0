//! Progress reporting from library code, without writing to any stream.
//!
//! Long operations call [`Progress::inc`] as they go; the CLI passes an
//! implementation that draws a bar on a terminal, tests pass [`NoProgress`].

/// Receives progress from long operations. Implementations must be cheap and thread-safe.
pub trait Progress: Sync {
    /// `files` more files (and `bytes` more bytes) have been processed.
    fn inc(&self, files: u64, bytes: u64);
    /// The operation moved to a new phase, e.g. "hashing" or "writing".
    fn phase(&self, _name: &str) {}
}

/// Discards progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn inc(&self, _files: u64, _bytes: u64) {}
}
