//! Findings: problems in the user's tree, reported as data.
//!
//! Each finding has a stable [`Code`] (`CP1xx` for the content pass; the
//! table is in the README), a plane-relative path and one plain sentence.

use crate::path::RelPath;
use serde::Serialize;

/// Stable finding codes of the content pass (README, "Finding codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// CP101: a file's bytes differ from HEAD.
    Modified,
    /// CP102: a path exists that HEAD does not record.
    Added,
    /// CP103: a path HEAD records is gone.
    Deleted,
    /// CP104: a path's kind changed (file, symlink, directory) with the same bytes.
    KindChanged,
    /// CP105: a file or directory cannot be read.
    Unreadable,
    /// CP106: a FIFO, socket or device file; cplane does not store these.
    SpecialFile,
    /// CP107: a file kept changing while it was hashed.
    ChangedWhileHashing,
    /// CP108: permission bits differ from HEAD.
    ModeChanged,
    /// CP109: owner or group differs from HEAD.
    OwnerChanged,
    /// CP110: which paths are hard links of each other differs from HEAD.
    LinksChanged,
    /// CP111: a checkout could not put back a path's owner or mode (not permitted).
    NotRestored,
}

impl Code {
    /// `CP` + three digits.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Modified => "CP101",
            Code::Added => "CP102",
            Code::Deleted => "CP103",
            Code::KindChanged => "CP104",
            Code::Unreadable => "CP105",
            Code::SpecialFile => "CP106",
            Code::ChangedWhileHashing => "CP107",
            Code::ModeChanged => "CP108",
            Code::OwnerChanged => "CP109",
            Code::LinksChanged => "CP110",
            Code::NotRestored => "CP111",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem in a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code.
    pub code: Code,
    /// Plane-relative path (may be non-UTF-8).
    #[serde(skip)]
    pub path: RelPath,
    /// One plain sentence: what is wrong.
    pub message: String,
}

impl Finding {
    /// Builds a finding.
    pub fn new(code: Code, path: RelPath, message: impl Into<String>) -> Self {
        Finding {
            code,
            path,
            message: message.into(),
        }
    }
}
