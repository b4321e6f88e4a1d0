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
    /// The current phase will process about `files` files and `bytes`
    /// bytes (0: not known), counted by later [`Progress::inc`] calls; an
    /// estimate (the files HEAD recorded, say), which the work may fall
    /// short of or pass. Called after [`Progress::phase`], which clears it.
    fn total(&self, _files: u64, _bytes: u64) {}
}

/// Discards progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn inc(&self, _files: u64, _bytes: u64) {}
}
