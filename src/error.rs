//! The library's error type and the one place that maps errors to exit codes.
//!
//! Rules: every variant that touches disk carries the path; store-damage
//! variants name the object id; findings (problems in the user's tree) are
//! data ([`crate::finding::Finding`]), not errors, except when a command
//! refuses to proceed because of them ([`Error::Refused`]).

use crate::finding::Finding;
use std::io;
use std::path::{Path, PathBuf};

/// Process exit codes, documented in the README ("Exit codes").
pub mod exit {
    /// Clean: no findings, no differences.
    pub const CLEAN: u8 = 0;
    /// Findings or differences were reported.
    pub const FINDINGS: u8 = 1;
    /// Usage or configuration error (bad ref, no store, lock held, ...).
    pub const USAGE: u8 = 2;
    /// Store damage: a corrupt or missing object, a damaged ref or pack index.
    pub const DAMAGE: u8 = 3;
    /// Interrupted by a signal (128 + SIGINT) before anything was committed.
    pub const INTERRUPTED: u8 = 130;
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a cplane operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation touched.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No `.cp` directory in the start directory or any parent.
    #[error("no cplane store in {start} or any parent directory (run `cplane init` first)")]
    NoStore {
        /// Where the search started.
        start: PathBuf,
    },
    /// `cplane init` in a directory that already has a store.
    #[error("{path} already holds a cplane store")]
    AlreadyInitialized {
        /// The existing `.cp` directory.
        path: PathBuf,
    },
    /// The store was written by a newer cplane.
    #[error("{path} is store format {found}, but this cplane reads format {supported} and older; upgrade cplane")]
    NewerFormat {
        /// The `FORMAT` file.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// A configuration file or argument is malformed.
    #[error("{what}")]
    Invalid {
        /// A full sentence naming the file, line or argument and what to do.
        what: String,
    },
    /// A ref that names nothing.
    #[error("unknown ref `{spec}`: {why}")]
    RefNotFound {
        /// The ref as the user typed it.
        spec: String,
        /// What was tried.
        why: String,
    },
    /// An id prefix that matches several snapshots or objects.
    #[error("ref `{spec}` is ambiguous; it matches: {}", candidates.join(", "))]
    AmbiguousRef {
        /// The ref as the user typed it.
        spec: String,
        /// The full ids it matches.
        candidates: Vec<String>,
    },
    /// A path that no plane covers.
    #[error("{path} is not inside any plane of the store at {store}")]
    NotInPlane {
        /// The path asked about.
        path: PathBuf,
        /// The store root.
        store: PathBuf,
    },
    /// `--plane NAME` for a plane that does not exist.
    #[error("no plane named `{name}` (planes: {})", known.join(", "))]
    NoSuchPlane {
        /// The name asked for.
        name: String,
        /// The planes the store has.
        known: Vec<String>,
    },
    /// Another process holds the store lock.
    #[error(
        "another cplane command holds the store lock {path} ({holder}); waited {waited_ms} ms. Try again when it has finished"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
        /// How long this process waited, in milliseconds.
        waited_ms: u64,
    },
    /// A stored object does not hash to its id or does not decode.
    #[error("store damage: object {id} ({location}) is corrupt: {reason}; run `cplane fsck`")]
    CorruptObject {
        /// The object's id (hex).
        id: String,
        /// Pack file and offset, or ref file.
        location: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// An object a ref or tree names is not in the store.
    #[error("store damage: {kind} object {id} is missing from the store; run `cplane fsck`")]
    MissingObject {
        /// The object's id (hex).
        id: String,
        /// Expected kind (blob, tree, snapshot).
        kind: &'static str,
    },
    /// A ref file or pack index is damaged.
    #[error("store damage: {path}: {reason}; run `cplane fsck`")]
    DamagedFile {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A signal stopped the operation at a safe point; nothing was committed.
    #[error("interrupted; nothing was committed")]
    Interrupted,
    /// The command refused to proceed because the tree has findings.
    #[error("{action} refused: {} finding{}; nothing was written", findings.len(), if findings.len() == 1 { "" } else { "s" })]
    Refused {
        /// What was refused ("snapshot", "rollback").
        action: &'static str,
        /// The findings that caused the refusal.
        findings: Vec<Finding>,
    },
}

impl Error {
    /// The process exit code for this error: 1 refused because of findings,
    /// 3 store damage, 130 interrupted, 2 everything else (usage, configuration, I/O).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Refused { .. } => exit::FINDINGS,
            Error::Interrupted => exit::INTERRUPTED,
            Error::CorruptObject { .. } | Error::MissingObject { .. } | Error::DamagedFile { .. } => exit::DAMAGE,
            _ => exit::USAGE,
        }
    }

    /// The same error, but a [`Error::Refused`] now names `action` as what was refused
    /// (a snapshot refused inside `init` or `rollback` is that command's refusal).
    pub fn refused_as(self, action: &'static str) -> Self {
        match self {
            Error::Refused { findings, .. } => Error::Refused { action, findings },
            other => other,
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>) -> Self {
        Error::Invalid { what: what.into() }
    }
}

/// Adds the path to an `io::Result`, as `jj`'s `IoResultExt::context` does.
pub trait IoResultExt<T> {
    /// Wraps an I/O error in [`Error::Io`] naming `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        })
    }
}
