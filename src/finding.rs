//! Findings: problems in the user's tree, reported as data.
//!
//! Each finding has a stable code (`CP1xx` for the content pass; the code
//! table is in the README), a plane-relative path and one plain sentence.

use serde::Serialize;

/// Stable finding codes of the content pass (README, "Finding codes").
pub mod code {
    /// A file's bytes differ from HEAD.
    pub const MODIFIED: &str = "CP101";
    /// A file exists that HEAD does not record.
    pub const ADDED: &str = "CP102";
    /// A file HEAD records is gone.
    pub const DELETED: &str = "CP103";
    /// A path's kind changed (file, executable, symlink) with the same bytes.
    pub const KIND_CHANGED: &str = "CP104";
    /// A file or directory cannot be read.
    pub const UNREADABLE: &str = "CP105";
    /// A FIFO, socket or device file: cplane does not store these.
    pub const SPECIAL_FILE: &str = "CP106";
    /// A file kept changing while it was hashed.
    pub const CHANGED_WHILE_HASHING: &str = "CP107";
}

/// One problem in a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, `CP` + three digits.
    pub code: &'static str,
    /// Plane-relative path, `/`-separated, raw bytes (may be non-UTF-8).
    #[serde(skip)]
    pub path: Vec<u8>,
    /// One plain sentence: what is wrong and what to do.
    pub message: String,
}

impl Finding {
    /// Builds a finding.
    pub fn new(code: &'static str, path: impl Into<Vec<u8>>, message: impl Into<String>) -> Self {
        Finding {
            code,
            path: path.into(),
            message: message.into(),
        }
    }
}
