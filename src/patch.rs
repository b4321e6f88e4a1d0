//! The bytes behind a change: unified diffs (`diff -p`) and line counts
//! (`log --stat`).
//!
//! A side's bytes are a file's contents or a symlink's target (diffed as
//! text, like git does). They come from the store when it holds the blob,
//! verified against its id; a working-tree side the store lacks is read
//! from the plane through its directory handles ([`Scope`]), never through a
//! symlink, and must still hash to the id the scan recorded
//! ([`Error::ChangedWhileReading`] otherwise).
//!
//! **Text or binary.** A side is binary when its first [`BINARY_PROBE_BYTES`]
//! bytes hold a NUL byte (git's rule, `buffer_is_binary`) or when it is not
//! valid UTF-8 (its lines could not be shown faithfully); otherwise text.
//! Sides larger than [`MAX_PATCH_BYTES`] are not read at all. Diffs are
//! computed by the `similar` crate (Myers' algorithm, line by line, giving up
//! on minimality after [`DIFF_TIMEOUT`]) and rendered as unified hunks with
//! [`CONTEXT_LINES`] lines of context, `\ No newline at end of file` where a
//! side's last line has none (GNU diff's and git's format).

use crate::diff::Side;
use crate::error::{Error, Result};
use crate::object::{EntryKind, ObjectKind, blob_id};
use crate::path::RelPath;
use crate::scope::Scope;
use crate::store::Store;
use std::io::Read;
use std::time::Duration;

/// Lines of context around each change in a hunk (git's default).
pub const CONTEXT_LINES: usize = 3;

/// A side larger than this many bytes (8 MiB) is not diffed: only named.
pub const MAX_PATCH_BYTES: u64 = 8 << 20;

/// How many leading bytes are searched for a NUL (git reads 8,000).
pub const BINARY_PROBE_BYTES: usize = 8000;

/// How long one file's line diff may search for a minimal diff before it
/// settles for a correct but longer one.
pub const DIFF_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the bytes of a side come from.
pub struct Content<'a> {
    store: &'a Store,
    worktree: Option<&'a Scope>,
}

impl<'a> Content<'a> {
    /// From the store only (two snapshots).
    pub fn store(store: &'a Store) -> Self {
        Content { store, worktree: None }
    }

    /// From the store, or else from the working tree under `scope` (a
    /// snapshot against the working tree).
    pub fn with_worktree(store: &'a Store, scope: &'a Scope) -> Self {
        Content {
            store,
            worktree: Some(scope),
        }
    }

    /// The bytes of `side`, the entry at `path`: a file's contents, a
    /// symlink's target; nothing for a directory.
    ///
    /// # Errors
    /// [`Error::MissingObject`] or [`Error::CorruptObject`] for a damaged
    /// store; [`Error::Io`] naming the file when the working tree cannot be
    /// read; [`Error::ChangedWhileReading`] when what is read is not what
    /// the scan saw.
    pub fn read(&self, path: &RelPath, side: &Side) -> Result<Vec<u8>> {
        if side.kind == EntryKind::Dir {
            return Ok(Vec::new());
        }
        let scope = match self.worktree {
            Some(scope) if !self.store.contains(&side.id) => scope,
            _ => return self.store.read(&side.id, ObjectKind::Blob),
        };
        let io = |e| scope.io_error(path, e);
        let (parent, name) = (
            path.parent().unwrap_or_else(RelPath::root),
            path.file_name().unwrap_or_default(),
        );
        let dir = scope.open_dir(&parent).map_err(io)?;
        let bytes = match side.kind {
            EntryKind::Symlink => dir.read_link(name).map_err(io)?,
            _ => {
                let mut f = dir.open_file(name).map_err(io)?;
                let mut bytes = Vec::with_capacity(usize::try_from(side.size).unwrap_or(0));
                f.read_to_end(&mut bytes).map_err(io)?;
                bytes
            }
        };
        let actual = blob_id(&bytes);
        if actual != side.id {
            return Err(Error::ChangedWhileReading {
                path: scope.shown(path),
                expected: side.id.short(12),
                actual: actual.short(12),
            });
        }
        Ok(bytes)
    }
}

/// What comparing the bytes of two sides found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compared {
    /// Both sides are text (a missing side is empty text).
    Text {
        /// The unified hunks (`@@ -a,b +c,d @@` and their lines), without the
        /// `---`/`+++` header; empty when the bytes are equal or hunks were not asked for.
        hunks: String,
        /// Lines only the new side has.
        insertions: u64,
        /// Lines only the old side has.
        deletions: u64,
    },
    /// A side is binary (see the module documentation).
    Binary,
    /// A side is larger than [`MAX_PATCH_BYTES`]: not read.
    TooLarge,
}

/// True when `bytes` should not be shown as lines: a NUL among the first
/// [`BINARY_PROBE_BYTES`], or not valid UTF-8.
pub fn is_binary(bytes: &[u8]) -> bool {
    memchr::memchr(0, &bytes[..bytes.len().min(BINARY_PROBE_BYTES)]).is_some() || std::str::from_utf8(bytes).is_err()
}

/// Compares the bytes of `old` and `new` (each a path and its side; `None`
/// for a side that does not exist, a directory counts as empty): line
/// counts, and the unified hunks too when `hunks` is true. Equal ids are
/// not read.
///
/// # Errors
/// As [`Content::read`].
pub fn compare(
    content: &Content<'_>,
    old: Option<(&RelPath, &Side)>,
    new: Option<(&RelPath, &Side)>,
    hunks: bool,
) -> Result<Compared> {
    let (old, new) = (
        old.filter(|(_, s)| s.kind != EntryKind::Dir),
        new.filter(|(_, s)| s.kind != EntryKind::Dir),
    );
    if let (Some((_, o)), Some((_, n))) = (old, new)
        && o.id == n.id
    {
        return Ok(Compared::Text {
            hunks: String::new(),
            insertions: 0,
            deletions: 0,
        });
    }
    if [old, new].iter().flatten().any(|(_, s)| s.size > MAX_PATCH_BYTES) {
        return Ok(Compared::TooLarge);
    }
    let read = |s: Option<(&RelPath, &Side)>| s.map_or(Ok(Vec::new()), |(p, s)| content.read(p, s));
    let (a, b) = (read(old)?, read(new)?);
    if is_binary(&a) || is_binary(&b) {
        return Ok(Compared::Binary);
    }
    let (a, b) = (
        std::str::from_utf8(&a).expect("is_binary checked UTF-8"),
        std::str::from_utf8(&b).expect("is_binary checked UTF-8"),
    );
    Ok(text_diff(a, b, hunks))
}

/// The line diff of two texts.
pub fn text_diff(a: &str, b: &str, hunks: bool) -> Compared {
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .timeout(DIFF_TIMEOUT)
        .diff_lines(a, b);
    let (mut insertions, mut deletions) = (0u64, 0u64);
    for op in diff.ops() {
        let (tag, old, new) = op.as_tag_tuple();
        match tag {
            similar::DiffTag::Insert => insertions += new.len() as u64,
            similar::DiffTag::Delete => deletions += old.len() as u64,
            similar::DiffTag::Replace => {
                insertions += new.len() as u64;
                deletions += old.len() as u64;
            }
            similar::DiffTag::Equal => {}
        }
    }
    let hunks = if hunks {
        diff.unified_diff().context_radius(CONTEXT_LINES).to_string()
    } else {
        String::new()
    };
    Compared::Text {
        hunks,
        insertions,
        deletions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_count_and_mark_a_missing_final_newline() {
        let a = "1\n2\n3\n4\n5\n6\n7\n8\n";
        let b = "1\n2\n3\nfour\n5\n6\n7\n8";
        let Compared::Text {
            hunks,
            insertions,
            deletions,
        } = text_diff(a, b, true)
        else {
            panic!("text")
        };
        assert_eq!((insertions, deletions), (2, 2));
        assert_eq!(
            hunks,
            "@@ -1,8 +1,8 @@\n 1\n 2\n 3\n-4\n+four\n 5\n 6\n 7\n-8\n+8\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn nul_bytes_and_invalid_utf8_are_binary() {
        assert!(is_binary(b"a\0b"));
        assert!(is_binary(b"\xff\xfe"));
        assert!(!is_binary("naïve\n".as_bytes()));
        let mut late = vec![b'a'; BINARY_PROBE_BYTES];
        late.push(0);
        assert!(!is_binary(&late), "a NUL past the probe is text, as in git");
    }
}
