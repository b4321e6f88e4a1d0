//! Plane-relative paths: the one type every module uses for "where in the plane".
//!
//! A [`RelPath`] is a `/`-separated sequence of raw-byte names (Unix names are
//! bytes, not UTF-8): each name is non-empty, not `.` or `..`, and holds no
//! `/` or NUL. The empty path is the plane root. Paths compare and sort by
//! their bytes, which is the order of trees, stat caches and diffs ("depth
//! first, names in byte order" — with the caveat that `a/b` sorts before
//! `a.b`, as in git's index, because `/` is 0x2f).
//!
//! Postcard encodes a `RelPath` exactly like a `Vec<u8>` (varint length +
//! bytes), so the on-disk bytes of caches and journals are documented as
//! byte strings in `store-format.md`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A validated plane-relative path (see the module documentation).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "Vec<u8>", try_from = "Vec<u8>")]
pub struct RelPath(Vec<u8>);

impl From<RelPath> for Vec<u8> {
    fn from(p: RelPath) -> Vec<u8> {
        p.0
    }
}

/// Decoding (journals, caches, snapshots' link groups) accepts only the
/// canonical form: names joined by single `/`, none `.`, `..` or empty, no
/// NUL — a crafted file can never name a path outside the plane.
impl TryFrom<Vec<u8>> for RelPath {
    type Error = String;
    fn try_from(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.is_empty() || bytes.split(|&c| c == b'/').all(valid_name) {
            Ok(RelPath(bytes))
        } else {
            Err(format!(
                "{:?} is not a plane-relative path",
                String::from_utf8_lossy(&bytes)
            ))
        }
    }
}

/// True when `name` can be one component of a [`RelPath`] (and a tree entry's name).
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl RelPath {
    /// The plane root (the empty path).
    pub fn root() -> Self {
        RelPath(Vec::new())
    }

    /// Parses `/`-separated bytes. Leading, trailing and repeated `/` are
    /// dropped (`/a//b/` is `a/b`); `None` when a component is `.`, `..` or holds NUL.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut out = RelPath::root();
        for part in bytes.split(|&c| c == b'/').filter(|p| !p.is_empty()) {
            if !valid_name(part) {
                return None;
            }
            out = out.join(part);
        }
        Some(out)
    }

    /// `self/name`. `name` must be a valid name (debug-checked).
    pub fn join(&self, name: &[u8]) -> Self {
        debug_assert!(valid_name(name), "invalid name {:?}", String::from_utf8_lossy(name));
        let mut p = Vec::with_capacity(self.0.len() + 1 + name.len());
        if !self.0.is_empty() {
            p.extend_from_slice(&self.0);
            p.push(b'/');
        }
        p.extend_from_slice(name);
        RelPath(p)
    }

    /// `self/other`: `other`'s components below this path.
    pub fn join_path(&self, other: &RelPath) -> Self {
        if self.0.is_empty() {
            return other.clone();
        }
        if other.0.is_empty() {
            return self.clone();
        }
        let mut p = Vec::with_capacity(self.0.len() + 1 + other.0.len());
        p.extend_from_slice(&self.0);
        p.push(b'/');
        p.extend_from_slice(&other.0);
        RelPath(p)
    }

    /// The raw bytes (`""` for the root).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The bytes as an `OsStr`, to join onto a directory path for messages.
    pub fn as_os_str(&self) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(&self.0)
    }

    /// True for the plane root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The names from the root down (none for the root).
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.0.split(|&c| c == b'/').filter(|p| !p.is_empty())
    }

    /// Number of components (0 for the root).
    pub fn depth(&self) -> usize {
        if self.0.is_empty() {
            0
        } else {
            self.0.iter().filter(|&&c| c == b'/').count() + 1
        }
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.iter().rposition(|&c| c == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        })
    }

    /// The containing directory; `None` for the root.
    pub fn parent(&self) -> Option<RelPath> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.iter().rposition(|&c| c == b'/') {
            Some(i) => RelPath(self.0[..i].to_vec()),
            None => RelPath::root(),
        })
    }

    /// True when `self` is `dir` or inside it (every path is under the root).
    pub fn starts_with(&self, dir: &RelPath) -> bool {
        dir.0.is_empty() || self.0 == dir.0 || (self.0.starts_with(&dir.0) && self.0.get(dir.0.len()) == Some(&b'/'))
    }

    /// `self` with the leading `dir/` removed; `None` when not under `dir`.
    pub fn strip_prefix(&self, dir: &RelPath) -> Option<RelPath> {
        if dir.0.is_empty() {
            return Some(self.clone());
        }
        if self.0 == dir.0 {
            return Some(RelPath::root());
        }
        self.starts_with(dir)
            .then(|| RelPath(self.0[dir.0.len() + 1..].to_vec()))
    }

    /// Every ancestor directory from the root's first child down to the parent
    /// (`a/b/c` gives `a`, `a/b`).
    pub fn ancestors(&self) -> Vec<RelPath> {
        let mut out = Vec::new();
        for (i, &c) in self.0.iter().enumerate() {
            if c == b'/' {
                out.push(RelPath(self.0[..i].to_vec()));
            }
        }
        out
    }

    /// A lossy UTF-8 rendering for messages (`/` for the root).
    pub fn display(&self) -> String {
        if self.0.is_empty() {
            "/".into()
        } else {
            String::from_utf8_lossy(&self.0).into_owned()
        }
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_join_parent_and_prefixes() {
        let p = RelPath::parse(b"/a//b/c/").unwrap();
        assert_eq!(p.as_bytes(), b"a/b/c");
        assert_eq!(p.depth(), 3);
        assert_eq!(p.file_name(), Some(&b"c"[..]));
        assert_eq!(p.parent().unwrap().as_bytes(), b"a/b");
        assert_eq!(RelPath::parse(b"a").unwrap().parent(), Some(RelPath::root()));
        assert_eq!(RelPath::root().parent(), None);
        assert!(RelPath::parse(b"a/../b").is_none());
        assert!(RelPath::parse(b"a/./b").is_none());
        assert!(RelPath::parse(b"a\0b").is_none());
        let ab = RelPath::parse(b"a/b").unwrap();
        assert!(p.starts_with(&ab));
        assert!(!RelPath::parse(b"a/bc").unwrap().starts_with(&ab));
        assert_eq!(p.strip_prefix(&ab).unwrap().as_bytes(), b"c");
        assert_eq!(
            p.ancestors().iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"a/b".to_vec()]
        );
        assert_eq!(RelPath::root().join(b"x").as_bytes(), b"x");
    }
}
