//! The stat cache ("index"): per plane, the last known (stat → blob id) of
//! every file, so `status` and re-`snapshot` hash only what changed.
//!
//! Modelled on git's index and `gix_index::entry::Stat`: an entry is trusted
//! when size, mtime, ctime, inode and mode all match *and* the entry is not
//! racy. An entry is racy when the file's ctime (stamped by the kernel on
//! every write or chmod; unlike mtime, it cannot be set back) is within
//! [`RACY_MARGIN_NS`] of the moment the scan that recorded it started: a write
//! in the same timestamp tick could leave the stat unchanged, so racy entries
//! are always re-hashed (and become trusted once a later scan sees them old).
//! The cache is only ever an accelerator: a damaged or missing file means
//! "hash everything", never a wrong answer. Bytes: `store-format.md`, "Index".

use crate::error::{IoResultExt, Result};
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::path::RelPath;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Magic at the start of an index file.
pub const INDEX_MAGIC: &[u8; 4] = b"CPSC";
/// Index format version.
pub const INDEX_VERSION: u8 = 2;
/// Safety margin for racy entries, in nanoseconds (2 s covers coarse kernel
/// clocks and FAT's 2-second mtime granularity).
pub const RACY_MARGIN_NS: i64 = 2_000_000_000;

/// The stat fields cplane compares. Times are nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, ns since epoch.
    pub mtime_ns: i64,
    /// Status-change time, ns since epoch (changes on chmod, rename, write).
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
}

impl Stat {
    /// Reads the compared fields from an `lstat`/`fstat` result.
    pub fn from_raw(st: &crate::fsys::Stat) -> Self {
        let (mtime_ns, ctime_ns) = crate::fsys::times_ns(st);
        Stat {
            size: st.st_size as u64,
            mtime_ns,
            ctime_ns,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
        }
    }

    /// True when every compared field is equal.
    pub fn matches(&self, other: &Stat) -> bool {
        self == other
    }

    /// True when this stat was taken too close to `read_ns` (when its file
    /// was read) to vouch for the bytes: its ctime is within
    /// [`RACY_MARGIN_NS`] of that moment, or after it.
    pub fn is_racy(&self, read_ns: i64) -> bool {
        self.ctime_ns.saturating_add(RACY_MARGIN_NS) >= read_ns
    }
}

/// One cached file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Plane-relative path.
    pub path: RelPath,
    /// File or symlink.
    pub kind: EntryKind,
    /// Blob id of the content seen with `stat`.
    pub id: ObjectId,
    /// Stat at the time of hashing.
    pub stat: Stat,
}

/// A plane's stat cache: entries sorted by `path` bytes, unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatCache {
    /// Wall-clock time the recording scan started, ns since epoch.
    pub scan_started_ns: i64,
    /// Must be and remain sorted by `path`.
    pub entries: Vec<IndexEntry>,
}

impl StatCache {
    /// Loads the cache; `None` when missing, damaged or of another version.
    pub fn load(path: &Path) -> Option<StatCache> {
        let bytes = std::fs::read(path).ok()?;
        if bytes.get(4) != Some(&INDEX_VERSION) {
            return None; // another version is simply not this cache
        }
        let cache: StatCache = super::frame::decode(&bytes, INDEX_MAGIC, INDEX_VERSION).ok()?;
        let sorted = cache.entries.windows(2).all(|w| w[0].path < w[1].path);
        sorted.then_some(cache)
    }

    /// Writes the cache atomically via a temporary file in `tmp_dir` (no fsync: a
    /// cache lost in a crash is only re-hashed).
    ///
    /// # Errors
    /// [`crate::Error::Io`] naming the file.
    pub fn save(&self, path: &Path, tmp_dir: &Path) -> Result<()> {
        let bytes = super::frame::encode(INDEX_MAGIC, INDEX_VERSION, self);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        crate::fsutil::write_replace(path, &bytes, tmp_dir)
    }

    /// Writes the cache like [`StatCache::save`], but durably (the file and
    /// its directory fsynced): gc drops the rows naming blobs it is about to
    /// delete, and the cache without them must be on disk before they go.
    ///
    /// # Errors
    /// [`crate::Error::Io`] naming the file.
    pub fn save_durable(&self, path: &Path, tmp_dir: &Path) -> Result<()> {
        let bytes = super::frame::encode(INDEX_MAGIC, INDEX_VERSION, self);
        crate::fsutil::write_atomic(path, &bytes, tmp_dir)
    }

    /// The entry for `path`, by binary search.
    pub fn get(&self, path: &RelPath) -> Option<&IndexEntry> {
        self.entries
            .binary_search_by(|e| e.path.cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The entries under directory `dir` (plane-relative, `""` for the root): one
    /// contiguous run, since every path in it starts with `dir/`.
    pub fn under(&self, dir: &RelPath) -> &[IndexEntry] {
        if dir.is_root() {
            return &self.entries;
        }
        let mut prefix = dir.as_bytes().to_vec();
        prefix.push(b'/');
        let lo = self.entries.partition_point(|e| e.path.as_bytes() < prefix.as_slice());
        let hi = lo + self.entries[lo..].partition_point(|e| e.path.as_bytes().starts_with(&prefix));
        &self.entries[lo..hi]
    }

    /// True when `stat` was recorded too close to the recording scan to be trusted:
    /// its ctime is within [`RACY_MARGIN_NS`] of `scan_started_ns` (or after it).
    pub fn is_racy(&self, stat: &Stat) -> bool {
        stat.is_racy(self.scan_started_ns)
    }

    /// The cached blob id for `path` when `stat` matches and the entry is not racy.
    pub fn lookup(&self, path: &RelPath, stat: &Stat) -> Option<(ObjectId, EntryKind)> {
        self.lookup_in(&self.entries, path, stat)
    }

    /// [`StatCache::lookup`] within `run`, a sorted slice of this cache (such as
    /// [`StatCache::under`] returns), so a scan searches one directory's run.
    pub fn lookup_in(&self, run: &[IndexEntry], path: &RelPath, stat: &Stat) -> Option<(ObjectId, EntryKind)> {
        let e = &run[run.binary_search_by(|e| e.path.cmp(path)).ok()?];
        (e.stat.matches(stat) && !self.is_racy(&e.stat)).then_some((e.id, e.kind))
    }

    /// Applies `patch` in one merge pass: each path gets its new entry, or is
    /// dropped for `None`; when a path appears twice, the later item wins.
    pub fn patch(&mut self, mut patch: Vec<(RelPath, Option<IndexEntry>)>) {
        patch.reverse();
        patch.sort_by(|a, b| a.0.cmp(&b.0)); // stable: the later item now comes first
        patch.dedup_by(|a, b| a.0 == b.0);
        let old = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(old.len() + patch.len());
        let mut p = patch.into_iter().peekable();
        for e in old {
            while let Some((path, _)) = p.peek()
                && *path < e.path
            {
                merged.extend(p.next().and_then(|(_, n)| n));
            }
            match p.peek() {
                Some((path, _)) if *path == e.path => merged.extend(p.next().and_then(|(_, n)| n)),
                _ => merged.push(e),
            }
        }
        merged.extend(p.filter_map(|(_, n)| n));
        self.entries = merged;
    }
}

/// Current wall-clock time in ns since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    fn entry(path: &[u8], mtime_ns: i64) -> IndexEntry {
        IndexEntry {
            path: p(path),
            kind: EntryKind::File,
            id: ObjectId([7; 32]),
            stat: Stat {
                size: 3,
                mtime_ns,
                ctime_ns: mtime_ns,
                ino: 9,
                mode: 0o100644,
            },
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index");
        let c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            entries: vec![entry(b"a", 0), entry(b"b/c", RACY_MARGIN_NS * 9)],
        };
        c.save(&p, dir.path()).unwrap();
        assert_eq!(StatCache::load(&p), Some(c.clone()));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(StatCache::load(&p), None);
    }

    #[test]
    fn patch_replaces_inserts_and_drops_in_order() {
        let mut c = StatCache {
            scan_started_ns: 0,
            entries: vec![entry(b"a", 1), entry(b"c", 1), entry(b"e", 1)],
        };
        c.patch(vec![
            (p(b"d"), Some(entry(b"d", 2))),
            (p(b"a"), None),
            (p(b"c"), Some(entry(b"c", 2))),
            (p(b"c"), Some(entry(b"c", 3))),
            (p(b"z"), None),
        ]);
        let got: Vec<(&[u8], i64)> = c.entries.iter().map(|e| (e.path.as_bytes(), e.stat.mtime_ns)).collect();
        assert_eq!(got, vec![(&b"c"[..], 3), (&b"d"[..], 2), (&b"e"[..], 1)]);
    }

    #[test]
    fn racy_entries_are_not_trusted() {
        let c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            entries: vec![entry(b"old", 0), entry(b"racy", 10 * RACY_MARGIN_NS - 1)],
        };
        assert!(c.lookup(&p(b"old"), &c.entries[0].stat).is_some());
        assert!(c.lookup(&p(b"racy"), &c.entries[1].stat).is_none());
        let mut changed = c.entries[0].stat;
        changed.size += 1;
        assert!(c.lookup(&p(b"old"), &changed).is_none());
    }
}
