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
//! "hash everything", never a wrong answer. Bytes: `store-format.md`, "Stat
//! cache".
//!
//! On disk the cache is fixed-width rows for files and for directories, a
//! blob of paths and a blob of listings (version 4), so
//! a scan maps it ([`MappedCache`]) and compares in place: no decoding, no
//! allocation per row. [`StatCache`] is the owned form, for the commands that
//! edit rows (patch, drop) before saving them back.
//!
//! Since version 4 it also keeps each directory's listing ([`DirListing`]),
//! as git's untracked cache does: a directory whose stamp (device, inode,
//! mtime, ctime, read with `fstat` *before* it was listed) is unchanged and
//! not racy holds exactly the names it held, because creating, removing or
//! renaming an entry stamps the directory — on the filesystems known to do
//! so ([`crate::fsys::Dir::keeps_dir_stamps`]; elsewhere every directory is
//! read). A scan then takes the names from
//! the cache instead of reading the directory (`getdents`), and still
//! `fstatat`s every entry: only the listing is cached, never what an entry is
//! now. Everything that filters a listing (exclusions, carve-outs, exempt
//! globs) runs on the cached names as on read ones, so a rule change needs
//! no invalidation.

use crate::error::{IoResultExt, Result};
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::path::RelPath;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Magic at the start of an index file.
pub const INDEX_MAGIC: &[u8; 4] = b"CPSC";
/// Index format version: 4, fixed-width rows and directory listings (3,
/// rows only, and 2, postcard, are still read).
pub const INDEX_VERSION: u8 = 4;
/// The version before directory listings: rows and paths only; still read.
const INDEX_VERSION_ROWS: u8 = 3;
/// The postcard-framed version format 2 stores wrote first; still read.
const INDEX_VERSION_POSTCARD: u8 = 2;
/// Bytes of the version-3 header: magic 4, version 1, reserved 3,
/// `scan_started_ns` 8, row count 8, path-blob length 8.
const HEADER_LEN_V3: usize = 32;
/// Bytes of the version-4 header: the version-3 header, then directory
/// count 8 and directory-blob length 8.
const HEADER_LEN: usize = 48;
/// Bytes of one file row (see [`MappedCache`]).
const ROW_LEN: usize = 88;
/// Bytes of one directory row (see [`MappedCache`]).
const DIR_ROW_LEN: usize = 48;
/// Bytes of the BLAKE3 trailer.
const TRAILER_LEN: usize = 32;
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

/// What a directory's listing is trusted by: its stat when it was listed.
/// Any entry created, removed or renamed in it changes mtime and ctime to
/// the time of the change, and ctime cannot be set back, so a directory
/// whose stamp is one recorded more than [`RACY_MARGIN_NS`] before the
/// recording scan started holds the names it held then (a directory put in
/// its place, even under a reused inode number, has a later ctime).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStamp {
    /// Device the directory is on (`st_dev`).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Modification time, ns since epoch.
    pub mtime_ns: i64,
    /// Status-change time, ns since epoch.
    pub ctime_ns: i64,
}

impl DirStamp {
    /// The stamp of a directory from its `fstat`.
    pub fn from_raw(st: &crate::fsys::Stat) -> Self {
        let (mtime_ns, ctime_ns) = crate::fsys::times_ns(st);
        DirStamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mtime_ns,
            ctime_ns,
        }
    }

    /// True when a listing read under this stamp cannot vouch for the names
    /// (its ctime is within [`RACY_MARGIN_NS`] of `read_ns`, when the
    /// recording scan started, or after it): an entry added in the same
    /// timestamp tick, after the listing was read, could leave the stamp
    /// as it was.
    pub fn is_racy(&self, read_ns: i64) -> bool {
        self.ctime_ns.saturating_add(RACY_MARGIN_NS) >= read_ns
    }
}

/// One directory's names as a scan read them (`getdents`, `.` and `..`
/// left out, sorted by name bytes), with the stamp read just before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirListing {
    /// Plane-relative path (the root is the empty path).
    pub path: RelPath,
    /// The directory's stamp, read before the names.
    pub stamp: DirStamp,
    /// The names, encoded: per entry a type byte ([`entry_type_byte`]),
    /// the name, a 0 byte.
    pub names: Vec<u8>,
}

/// The byte a listing stores for an entry's type (what `getdents` said).
fn entry_type_byte(t: crate::fsys::EntryType) -> u8 {
    use crate::fsys::EntryType as T;
    match t {
        T::File => 1,
        T::Dir => 2,
        T::Symlink => 3,
        T::Fifo => 4,
        T::Socket => 5,
        T::BlockDevice => 6,
        T::CharDevice => 7,
        T::Unknown => 0,
    }
}

fn entry_type_of(b: u8) -> Option<crate::fsys::EntryType> {
    use crate::fsys::EntryType as T;
    Some(match b {
        0 => T::Unknown,
        1 => T::File,
        2 => T::Dir,
        3 => T::Symlink,
        4 => T::Fifo,
        5 => T::Socket,
        6 => T::BlockDevice,
        7 => T::CharDevice,
        _ => return None,
    })
}

impl DirListing {
    /// The listing of `path` with stamp `stamp`: `entries` (names without
    /// `/` or 0 bytes, as `getdents` returns them) encoded in name order
    /// (sorted here unless they come sorted, as a scan's do).
    pub fn new(path: RelPath, stamp: DirStamp, entries: &[(Vec<u8>, crate::fsys::EntryType)]) -> Self {
        let mut sorted: Vec<&(Vec<u8>, crate::fsys::EntryType)> = entries.iter().collect();
        if !sorted.is_sorted_by(|a, b| a.0 <= b.0) {
            sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        let mut names = Vec::with_capacity(entries.iter().map(|e| e.0.len() + 2).sum());
        for (n, t) in sorted {
            names.push(entry_type_byte(*t));
            names.extend_from_slice(n);
            names.push(0);
        }
        DirListing { path, stamp, names }
    }
}

/// The entries of an encoded listing: `None` when the bytes are not one (an
/// empty name, `.`, `..`, a `/`, an unknown type byte, a missing terminator,
/// names not strictly ascending: a duplicate would make a tree with two
/// entries of one name).
fn decode_names(mut bytes: &[u8]) -> Option<crate::fsys::Listing> {
    let mut out: crate::fsys::Listing = Vec::new();
    while let Some((&t, rest)) = bytes.split_first() {
        let end = rest.iter().position(|&b| b == 0)?;
        let name = &rest[..end];
        if !crate::path::valid_name(name) || out.last().is_some_and(|(last, _)| last.as_slice() >= name) {
            return None;
        }
        out.push((name.to_vec(), entry_type_of(t)?));
        bytes = &rest[end + 1..];
    }
    Some(out)
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
    /// Directory listings, sorted by `path`, unique (version 4; not in a
    /// version-2 body).
    #[serde(skip)]
    pub dirs: Vec<DirListing>,
}

impl StatCache {
    /// Loads the cache; `None` when missing, damaged or of another version.
    pub fn load(path: &Path) -> Option<StatCache> {
        MappedCache::open(path)?.to_owned_cache()
    }

    /// The version-4 bytes of this cache (header, file rows, directory
    /// rows, paths, directory blob, trailer).
    pub fn encode(&self) -> Vec<u8> {
        let names: usize = self.entries.iter().map(|e| e.path.as_bytes().len()).sum();
        let dir_blob: usize = self.dirs.iter().map(|d| d.path.as_bytes().len() + d.names.len()).sum();
        let mut out = Vec::with_capacity(
            HEADER_LEN + self.entries.len() * ROW_LEN + self.dirs.len() * DIR_ROW_LEN + names + dir_blob + TRAILER_LEN,
        );
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&[INDEX_VERSION, 0, 0, 0]);
        out.extend_from_slice(&self.scan_started_ns.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        out.extend_from_slice(&(names as u64).to_le_bytes());
        out.extend_from_slice(&(self.dirs.len() as u64).to_le_bytes());
        out.extend_from_slice(&(dir_blob as u64).to_le_bytes());
        let mut off = 0u64;
        for e in &self.entries {
            let len = e.path.as_bytes().len();
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&(len as u32).to_le_bytes());
            out.push(match e.kind {
                EntryKind::File => 0,
                EntryKind::Symlink => 1,
                EntryKind::Dir => 2,
            });
            out.extend_from_slice(&[0; 3]);
            out.extend_from_slice(&e.id.0);
            out.extend_from_slice(&e.stat.size.to_le_bytes());
            out.extend_from_slice(&e.stat.mtime_ns.to_le_bytes());
            out.extend_from_slice(&e.stat.ctime_ns.to_le_bytes());
            out.extend_from_slice(&e.stat.ino.to_le_bytes());
            out.extend_from_slice(&e.stat.mode.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            off += len as u64;
        }
        let mut off = 0u64;
        for d in &self.dirs {
            let len = d.path.as_bytes().len();
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&(len as u32).to_le_bytes());
            out.extend_from_slice(&(d.names.len() as u32).to_le_bytes());
            out.extend_from_slice(&d.stamp.dev.to_le_bytes());
            out.extend_from_slice(&d.stamp.ino.to_le_bytes());
            out.extend_from_slice(&d.stamp.mtime_ns.to_le_bytes());
            out.extend_from_slice(&d.stamp.ctime_ns.to_le_bytes());
            off += (len + d.names.len()) as u64;
        }
        for e in &self.entries {
            out.extend_from_slice(e.path.as_bytes());
        }
        for d in &self.dirs {
            out.extend_from_slice(d.path.as_bytes());
            out.extend_from_slice(&d.names);
        }
        let trailer = checksum(&out);
        out.extend_from_slice(trailer.as_bytes());
        out
    }

    /// Writes the cache atomically via a temporary file in `tmp_dir` (no fsync: a
    /// cache lost in a crash is only re-hashed).
    ///
    /// # Errors
    /// [`crate::Error::Io`] naming the file.
    pub fn save(&self, path: &Path, tmp_dir: &Path) -> Result<()> {
        let bytes = self.encode();
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
        let bytes = self.encode();
        crate::fsutil::write_atomic(path, &bytes, tmp_dir)
    }

    /// The entry for `path`, by binary search.
    pub fn get(&self, path: &RelPath) -> Option<&IndexEntry> {
        self.entries
            .binary_search_by(|e| e.path.cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Sorts the entries and directory listings by path, as a cache must be
    /// (a scan returns its rows in the order its directories finished).
    pub fn sort(&mut self) {
        self.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        self.dirs.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    }

    /// Drops the rows and listings that are racy under this cache's own
    /// `scan_started_ns`: what must go before the cache is given a later
    /// time (a patch from a newer scan, rows vouched for otherwise), under
    /// which they would look old enough to trust.
    pub fn drop_racy(&mut self) {
        let started = self.scan_started_ns;
        self.entries.retain(|e| !e.stat.is_racy(started));
        self.dirs.retain(|d| !d.stamp.is_racy(started));
    }

    /// Replaces or adds directory listings: each of `listings` takes the
    /// place of the listing of its path (the later one when a path appears
    /// twice). Listings of directories that are gone may stay: a lookup
    /// needs the stamp of a directory that exists.
    pub fn patch_dirs(&mut self, listings: Vec<DirListing>) {
        if listings.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.dirs);
        all.extend(listings);
        all.reverse();
        all.sort_by(|a, b| a.path.cmp(&b.path)); // stable: the later one comes first
        all.dedup_by(|a, b| a.path == b.path);
        self.dirs = all;
    }

    /// True when `stat` was recorded too close to the recording scan to be trusted:
    /// its ctime is within [`RACY_MARGIN_NS`] of `scan_started_ns` (or after it).
    pub fn is_racy(&self, stat: &Stat) -> bool {
        stat.is_racy(self.scan_started_ns)
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

/// BLAKE3 of a cache's bytes before the trailer (on both cores when large).
fn checksum(bytes: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    if bytes.len() >= 1 << 20 {
        h.update_rayon(bytes);
    } else {
        h.update(bytes);
    }
    h.finalize()
}

/// The bytes a [`MappedCache`] reads: the mapped file, or bytes in memory.
enum Bytes {
    Map(memmap2::Mmap),
    Vec(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Vec(v) => v,
        }
    }
}

/// A stat cache read in place: the version-4 (or 3) file mapped into
/// memory (or its bytes in memory), rows compared where they lie.
///
/// Layout (`store-format.md`, "Stat cache"): a 48-byte header (magic
/// `CPSC`, version 4, 3 reserved bytes, `scan_started_ns` i64, row count
/// u64, path-blob length u64, directory count u64, directory-blob length
/// u64); the file rows, 88 bytes each, sorted by path bytes: path
/// offset in the path blob (u64), path length (u32), kind (1: 0 file, 1
/// symlink), 3 reserved, blob id (32), size (u64), mtime_ns (i64), ctime_ns
/// (i64), inode (u64), mode (u32), 4 reserved; the directory rows,
/// 48 bytes each, sorted by path bytes: offset in the directory
/// blob (u64), path length (u32), listing length (u32), device (u64),
/// inode (u64), mtime_ns (i64), ctime_ns (i64); the path blob; the directory blob (each
/// directory's path, then its encoded names); a BLAKE3 trailer over every
/// preceding byte. All integers little-endian. Version 3 is the same
/// without the two directory fields of the header and without directories.
pub struct MappedCache {
    bytes: Bytes,
    scan_started_ns: i64,
    rows_at: usize,
    count: usize,
    dirs_at: usize,
    dir_count: usize,
    names_at: usize,
    dir_blob_at: usize,
}

impl std::fmt::Debug for MappedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedCache")
            .field("scan_started_ns", &self.scan_started_ns)
            .field("rows", &self.count)
            .field("dirs", &self.dir_count)
            .finish()
    }
}

impl MappedCache {
    /// Maps the cache at `path`; `None` when it is missing, damaged, of
    /// another version, or its rows are not within bounds. A version-2
    /// (postcard) cache is decoded and re-encoded in memory.
    pub fn open(path: &Path) -> Option<MappedCache> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: a cache file is written whole to a temporary name and renamed
        // into place, never modified in place; a concurrent writer replaces the
        // name, not the mapped inode.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        match map.get(4) {
            Some(&INDEX_VERSION) | Some(&INDEX_VERSION_ROWS) => MappedCache::parse(Bytes::Map(map)),
            Some(&INDEX_VERSION_POSTCARD) => {
                let cache: StatCache = super::frame::decode(&map, INDEX_MAGIC, INDEX_VERSION_POSTCARD).ok()?;
                let sorted = cache.entries.windows(2).all(|w| w[0].path < w[1].path);
                sorted.then(|| MappedCache::from_cache(&cache))
            }
            _ => None, // another version is simply not this cache
        }
    }

    /// `cache` in the mapped form (its bytes held in memory).
    pub fn from_cache(cache: &StatCache) -> MappedCache {
        MappedCache::parse(Bytes::Vec(cache.encode())).expect("an encoded cache parses")
    }

    fn parse(bytes: Bytes) -> Option<MappedCache> {
        let version = *bytes.get(4)?;
        let header = match version {
            INDEX_VERSION => HEADER_LEN,
            INDEX_VERSION_ROWS => HEADER_LEN_V3,
            _ => return None,
        };
        if bytes.len() < header + TRAILER_LEN || &bytes[..4] != INDEX_MAGIC {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let scan_started_ns = u64_at(8) as i64;
        // Rows are indexed by u32 ([`Cursor::lookup`]).
        let count = usize::try_from(u64_at(16)).ok().filter(|&n| n <= u32::MAX as usize)?;
        let names = usize::try_from(u64_at(24)).ok()?;
        let (dir_count, dir_blob) = if header == HEADER_LEN {
            let d = usize::try_from(u64_at(32)).ok().filter(|&n| n <= u32::MAX as usize)?;
            (d, usize::try_from(u64_at(40)).ok()?)
        } else {
            (0, 0)
        };
        let dirs_at = count.checked_mul(ROW_LEN)?.checked_add(header)?;
        let names_at = dir_count.checked_mul(DIR_ROW_LEN)?.checked_add(dirs_at)?;
        let dir_blob_at = names_at.checked_add(names)?;
        if dir_blob_at.checked_add(dir_blob)?.checked_add(TRAILER_LEN)? != bytes.len() {
            return None;
        }
        let body = bytes.len() - TRAILER_LEN;
        if checksum(&bytes[..body]).as_bytes() != &bytes[body..] {
            return None;
        }
        let m = MappedCache {
            bytes,
            scan_started_ns,
            rows_at: header,
            count,
            dirs_at,
            dir_count,
            names_at,
            dir_blob_at,
        };
        // Every path in bounds: lookups may then index without checks. Order
        // and path syntax are not checked here (that would cost a third of
        // an unchanged `status`): a lookup matches a row by its exact path,
        // so rows out of order can only be missed — a file re-read — never
        // mistaken; [`MappedCache::to_owned_cache`] checks both.
        for i in 0..count {
            let row = m.row(i);
            let off = u64::from_le_bytes(row[0..8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(row[8..12].try_into().expect("4 bytes")) as u64;
            if off.checked_add(len)? > names as u64 || row[12] > 1 {
                return None;
            }
        }
        for i in 0..dir_count {
            let (off, len, list) = m.dir_extent(i);
            if off.checked_add(len)?.checked_add(list)? > dir_blob as u64 {
                return None;
            }
        }
        Some(m)
    }

    fn dir_row(&self, i: usize) -> &[u8] {
        let at = self.dirs_at + i * DIR_ROW_LEN;
        &self.bytes[at..at + DIR_ROW_LEN]
    }

    /// (offset in the directory blob, path length, listing length) of
    /// directory row `i`.
    fn dir_extent(&self, i: usize) -> (u64, u64, u64) {
        let row = self.dir_row(i);
        let u32_at = |at: usize| u32::from_le_bytes(row[at..at + 4].try_into().expect("4 bytes")) as u64;
        let off = u64::from_le_bytes(row[0..8].try_into().expect("8 bytes"));
        (off, u32_at(8), u32_at(12))
    }

    /// The path of directory row `i` (in bounds, checked when the cache was
    /// opened): all a lookup's binary search reads.
    fn dir_path(&self, i: usize) -> &[u8] {
        let (off, len, _) = self.dir_extent(i);
        let at = self.dir_blob_at + off as usize;
        &self.bytes[at..at + len as usize]
    }

    /// (path, encoded names, stamp) of directory row `i` (in bounds, checked
    /// when the cache was opened).
    fn dir_parts(&self, i: usize) -> (&[u8], &[u8], DirStamp) {
        let (off, len, list) = self.dir_extent(i);
        let (at, len, list) = (self.dir_blob_at + off as usize, len as usize, list as usize);
        let row = self.dir_row(i);
        let u = |at: usize| u64::from_le_bytes(row[at..at + 8].try_into().expect("8 bytes"));
        let stamp = DirStamp {
            dev: u(16),
            ino: u(24),
            mtime_ns: u(32) as i64,
            ctime_ns: u(40) as i64,
        };
        (&self.bytes[at..at + len], &self.bytes[at + len..at + len + list], stamp)
    }

    /// The names of directory `dir` when the cache holds its listing under
    /// `stamp` (the directory's stamp now) and that listing is not racy:
    /// (the row's index, the entries in name order). `None` sends the scan
    /// to read the directory.
    pub fn listing(&self, dir: &RelPath, stamp: &DirStamp) -> Option<(u32, crate::fsys::Listing)> {
        let want = dir.as_bytes();
        let i = partition_point(self.dir_count, |i| self.dir_path(i) < want);
        if i == self.dir_count {
            return None;
        }
        let (path, names, recorded) = self.dir_parts(i);
        if path != want || recorded != *stamp || recorded.is_racy(self.scan_started_ns) {
            return None;
        }
        Some((i as u32, decode_names(names)?))
    }

    /// Directory row `i` as an owned listing; `None` when out of range or
    /// its path is not a plane path.
    pub fn dir_entry(&self, i: usize) -> Option<DirListing> {
        if i >= self.dir_count {
            return None;
        }
        let (path, names, stamp) = self.dir_parts(i);
        Some(DirListing {
            path: RelPath::try_from(path.to_vec()).ok()?,
            stamp,
            names: names.to_vec(),
        })
    }

    /// Number of directory listings.
    pub fn dir_len(&self) -> usize {
        self.dir_count
    }

    fn row(&self, i: usize) -> &[u8] {
        let at = self.rows_at + i * ROW_LEN;
        &self.bytes[at..at + ROW_LEN]
    }

    /// Path bytes of row `i` (checked in bounds when the cache was opened).
    fn path(&self, i: usize) -> &[u8] {
        let row = self.row(i);
        let off = u64::from_le_bytes(row[0..8].try_into().expect("8 bytes")) as usize;
        let len = u32::from_le_bytes(row[8..12].try_into().expect("4 bytes")) as usize;
        &self.bytes[self.names_at + off..self.names_at + off + len]
    }

    fn stat(&self, i: usize) -> Stat {
        let row = self.row(i);
        let u = |at: usize| u64::from_le_bytes(row[at..at + 8].try_into().expect("8 bytes"));
        Stat {
            size: u(48),
            mtime_ns: u(56) as i64,
            ctime_ns: u(64) as i64,
            ino: u(72),
            mode: u32::from_le_bytes(row[80..84].try_into().expect("4 bytes")),
        }
    }

    fn id(&self, i: usize) -> ObjectId {
        ObjectId(self.row(i)[16..48].try_into().expect("32 bytes"))
    }

    fn kind(&self, i: usize) -> EntryKind {
        if self.row(i)[12] == 1 {
            EntryKind::Symlink
        } else {
            EntryKind::File
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the cache has no rows.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Row `i` as an owned entry; `None` when out of range or its path is
    /// not a plane path.
    pub fn row_entry(&self, i: usize) -> Option<IndexEntry> {
        if i >= self.count {
            return None;
        }
        Some(IndexEntry {
            path: RelPath::try_from(self.path(i).to_vec()).ok().filter(|p| !p.is_root())?,
            kind: self.kind(i),
            id: self.id(i),
            stat: self.stat(i),
        })
    }

    /// Every row, decoded: the owned form, for editing; `None` when a path
    /// is not a plane path or the rows are not strictly sorted.
    pub fn to_owned_cache(&self) -> Option<StatCache> {
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(self.count);
        for i in 0..self.count {
            let path = RelPath::try_from(self.path(i).to_vec()).ok().filter(|p| !p.is_root())?;
            if entries.last().is_some_and(|e| e.path >= path) {
                return None;
            }
            entries.push(IndexEntry {
                path,
                kind: self.kind(i),
                id: self.id(i),
                stat: self.stat(i),
            });
        }
        let mut dirs: Vec<DirListing> = Vec::with_capacity(self.dir_count);
        for i in 0..self.dir_count {
            let d = self.dir_entry(i)?;
            if dirs.last().is_some_and(|l| l.path >= d.path) {
                return None;
            }
            dirs.push(d);
        }
        Some(StatCache {
            scan_started_ns: self.scan_started_ns,
            entries,
            dirs,
        })
    }

    /// The rows under directory `dir` (`""` for the root): one contiguous
    /// run, since every path in it starts with `dir/`.
    pub fn run(&self, dir: &RelPath) -> Run<'_> {
        if dir.is_root() {
            return Run {
                cache: self,
                lo: 0,
                hi: self.count,
                skip: 0,
            };
        }
        let mut prefix = Vec::with_capacity(dir.as_bytes().len() + 1);
        prefix.extend_from_slice(dir.as_bytes());
        prefix.push(b'/');
        let lo = partition_point(self.count, |i| self.path(i) < prefix.as_slice());
        let mut hi = lo + partition_point(self.count - lo, |i| self.path(lo + i).starts_with(&prefix));
        if lo < hi && !self.path(lo).starts_with(&prefix) {
            hi = lo; // rows out of order: nothing here can be trusted to be this directory's
        }
        Run {
            cache: self,
            lo,
            hi,
            skip: prefix.len(),
        }
    }

    /// The cached blob id for `path` when `stat` matches and the row is not racy.
    pub fn lookup(&self, path: &RelPath, stat: &Stat) -> Option<(ObjectId, EntryKind)> {
        let (dir, name) = match path.parent() {
            Some(dir) => (dir, path.file_name().unwrap_or_default()),
            None => return None,
        };
        self.run(&dir).lookup(name, stat)
    }
}

/// `partition_point` over the indices `0..n`.
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The rows of one directory's subtree in a [`MappedCache`] ([`MappedCache::run`]).
#[derive(Clone, Copy)]
pub struct Run<'a> {
    cache: &'a MappedCache,
    lo: usize,
    hi: usize,
    /// Bytes of `dir/` before each path's part below the directory.
    skip: usize,
}

impl<'a> Run<'a> {
    /// The cached blob id of the directory's entry `name` when `stat` matches
    /// and the row is not racy.
    pub fn lookup(&self, name: &[u8], stat: &Stat) -> Option<(ObjectId, EntryKind)> {
        self.cursor().lookup(name, stat).map(|(id, kind, _)| (id, kind))
    }

    /// A cursor at the start of the run, for lookups of names in ascending order.
    pub fn cursor(&self) -> Cursor<'a> {
        Cursor {
            run: *self,
            at: self.lo,
        }
    }

    /// True when row `i`'s path starts with the run's `dir/`, the prefix of
    /// its first row (checked when the run was made): in a sorted cache every
    /// row of the run, but rows out of order may lie in it from elsewhere.
    fn in_dir(&self, i: usize) -> bool {
        let (path, first) = (self.cache.path(i), self.cache.path(self.lo));
        path.len() >= self.skip && first.len() >= self.skip && path[..self.skip] == first[..self.skip]
    }

    /// The part of row `i`'s path below the directory.
    fn rest(&self, i: usize) -> &'a [u8] {
        // Rows out of order (never written so, but not checked) may not have the prefix.
        self.cache.path(i).get(self.skip..).unwrap_or_default()
    }
}

/// Lookups in a [`Run`] for names in ascending byte order (a directory's
/// sorted listing): each starts where the last one ended and gallops
/// forward, so a directory's files cost about one comparison each, however
/// many rows of its subdirectories lie between them. A name out of order is
/// still found (the search starts over from the run's start).
pub struct Cursor<'a> {
    run: Run<'a>,
    at: usize,
}

impl Cursor<'_> {
    /// As [`Run::lookup`], with the index of the matching row (what a
    /// [`crate::scan::Record::Hits`] scan records).
    pub fn lookup(&mut self, name: &[u8], stat: &Stat) -> Option<(ObjectId, EntryKind, u32)> {
        let r = self.run;
        if self.at > r.lo && (self.at > r.hi || r.rest(self.at - 1) >= name) {
            self.at = r.lo; // out of order: start over
        }
        // Gallop: the first row at or after `name` lies in (at + step/2, at + step].
        let (mut lo, mut step) = (self.at, 1);
        while lo < r.hi && r.rest(lo) < name {
            let next = (self.at + step).min(r.hi);
            if next == r.hi || r.rest(next) >= name {
                lo = lo + 1 + partition_point(next - lo - 1, |k| r.rest(lo + 1 + k) < name);
                break;
            }
            lo = next;
            step *= 2;
        }
        self.at = lo;
        if lo == r.hi || r.rest(lo) != name || !r.in_dir(lo) {
            return None;
        }
        self.at = lo + 1;
        let c = r.cache;
        let row = c.stat(lo);
        (row == *stat && !row.is_racy(c.scan_started_ns)).then(|| (c.id(lo), c.kind(lo), lo as u32))
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
            ..StatCache::default()
        };
        c.save(&p, dir.path()).unwrap();
        assert_eq!(StatCache::load(&p), Some(c.clone()));
        let clean = std::fs::read(&p).unwrap();
        // Every byte matters: a flip anywhere (header, rows, paths, trailer) is refused.
        for at in [0, 5, 9, 17, 25, 40, 100, clean.len() - 40, clean.len() - 1] {
            let mut bytes = clean.clone();
            bytes[at] ^= 1;
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(StatCache::load(&p), None, "flip at {at}");
        }
        std::fs::write(&p, &clean[..clean.len() - 1]).unwrap();
        assert_eq!(StatCache::load(&p), None);
    }

    fn listing(path: &[u8], ctime_ns: i64, names: &[(&[u8], crate::fsys::EntryType)]) -> DirListing {
        let names: Vec<(Vec<u8>, crate::fsys::EntryType)> = names.iter().map(|(n, t)| (n.to_vec(), *t)).collect();
        DirListing::new(
            RelPath::parse(path).unwrap(),
            DirStamp {
                dev: 1,
                ino: 5,
                mtime_ns: ctime_ns,
                ctime_ns,
            },
            &names,
        )
    }

    #[test]
    fn directory_listings_round_trip_and_are_trusted_only_under_their_stamp() {
        use crate::fsys::EntryType as T;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index");
        let c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            entries: vec![entry(b"a/x", 0)],
            dirs: vec![
                listing(b"", 0, &[(b"a", T::Dir), (b"z", T::File)]),
                listing(b"a", 0, &[(b"x", T::File), (b"s", T::Symlink), (b"u", T::Unknown)]),
                listing(b"b", 10 * RACY_MARGIN_NS - 1, &[]),
            ],
        };
        c.save(&p, dir.path()).unwrap();
        assert_eq!(StatCache::load(&p), Some(c.clone()));
        let m = MappedCache::open(&p).unwrap();
        assert_eq!(m.dir_len(), 3);
        let stamp = c.dirs[1].stamp;
        let (i, names) = m.listing(&self::p(b"a"), &stamp).unwrap();
        assert_eq!(i, 1);
        // In name order, whatever order they were given in.
        let want: Vec<(Vec<u8>, T)> = vec![
            (b"s".to_vec(), T::Symlink),
            (b"u".to_vec(), T::Unknown),
            (b"x".to_vec(), T::File),
        ];
        assert_eq!(names, want);
        assert_eq!(
            m.listing(&RelPath::root(), &c.dirs[0].stamp).map(|l| l.1.len()),
            Some(2)
        );
        // Another stamp, a racy listing, a directory not cached: read the directory.
        for changed in [
            DirStamp { ino: 6, ..stamp },
            DirStamp { mtime_ns: 1, ..stamp },
            DirStamp { ctime_ns: 1, ..stamp },
            DirStamp { dev: 2, ..stamp },
        ] {
            assert!(m.listing(&self::p(b"a"), &changed).is_none());
        }
        assert!(m.listing(&self::p(b"b"), &c.dirs[2].stamp).is_none(), "racy");
        assert!(m.listing(&self::p(b"c"), &stamp).is_none());
        assert!(m.listing(&self::p(b"a/x"), &stamp).is_none());
        // Every byte matters here too.
        let clean = std::fs::read(&p).unwrap();
        for at in [33, 41, clean.len() - 60, clean.len() - 33] {
            let mut bytes = clean.clone();
            bytes[at] ^= 1;
            std::fs::write(&p, &bytes).unwrap();
            assert!(MappedCache::open(&p).is_none(), "flip at {at}");
        }
    }

    #[test]
    fn a_listing_that_is_not_one_is_only_missed() {
        use crate::fsys::EntryType as T;
        let mut c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            dirs: vec![listing(b"a", 0, &[(b"x", T::File)])],
            ..StatCache::default()
        };
        for bad in [
            &b"\x01x"[..],
            b"\x01\0",
            b"\x01.\0",
            b"\x01..\0",
            b"\x09x\0",
            b"\x01a/b\0",
            b"\x01a\0\x01a\0",
            b"\x01b\0\x01a\0",
        ] {
            c.dirs[0].names = bad.to_vec();
            let m = MappedCache::from_cache(&c);
            assert!(m.listing(&p(b"a"), &c.dirs[0].stamp).is_none(), "{bad:?}");
        }
        c.dirs[0].names = b"\x01a\0\x02b\0".to_vec();
        let m = MappedCache::from_cache(&c);
        assert_eq!(m.listing(&p(b"a"), &c.dirs[0].stamp).map(|l| l.1.len()), Some(2));
    }

    #[test]
    fn a_version_3_cache_is_still_read_without_listings() {
        let c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            entries: vec![entry(b"a", 0), entry(b"b/c", 0)],
            ..StatCache::default()
        };
        // Version 3: the version-4 bytes without the directory header fields.
        let v4 = c.encode();
        let mut v3 = v4[..HEADER_LEN_V3].to_vec();
        v3[4] = 3;
        v3.extend_from_slice(&v4[HEADER_LEN..v4.len() - TRAILER_LEN]);
        let sum = *blake3::hash(&v3).as_bytes();
        v3.extend_from_slice(&sum);
        let m = MappedCache::parse(Bytes::Vec(v3)).unwrap();
        assert_eq!(m.to_owned_cache(), Some(c.clone()));
        assert_eq!(m.dir_len(), 0);
        assert!(m.lookup(&p(b"b/c"), &c.entries[1].stat).is_some());
    }

    #[test]
    fn drop_racy_keeps_only_what_is_old_enough_under_the_cache_s_time() {
        let mut c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            entries: vec![entry(b"old", 0), entry(b"racy", 9 * RACY_MARGIN_NS)],
            dirs: vec![listing(b"old", 0, &[]), listing(b"racy", 9 * RACY_MARGIN_NS, &[])],
        };
        c.drop_racy();
        assert_eq!(
            c.entries.iter().map(|e| e.path.as_bytes()).collect::<Vec<_>>(),
            [b"old"]
        );
        assert_eq!(c.dirs.iter().map(|d| d.path.as_bytes()).collect::<Vec<_>>(), [b"old"]);
    }

    #[test]
    fn patching_listings_replaces_them_by_path() {
        use crate::fsys::EntryType as T;
        let mut c = StatCache {
            dirs: vec![listing(b"", 0, &[]), listing(b"b", 0, &[])],
            ..StatCache::default()
        };
        c.patch_dirs(vec![
            listing(b"c", 1, &[]),
            listing(b"b", 1, &[(b"n", T::File)]),
            listing(b"b", 2, &[]),
        ]);
        let got: Vec<(&[u8], i64)> = c.dirs.iter().map(|d| (d.path.as_bytes(), d.stamp.ctime_ns)).collect();
        assert_eq!(got, vec![(&b""[..], 0), (&b"b"[..], 2), (&b"c"[..], 1)]);
    }

    #[test]
    fn a_version_2_cache_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index");
        let c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            entries: vec![entry(b"a", 0), entry(b"b/c", 0)],
            ..StatCache::default()
        };
        std::fs::write(&p, super::super::frame::encode(INDEX_MAGIC, 2, &c)).unwrap();
        assert_eq!(StatCache::load(&p), Some(c.clone()));
        let m = MappedCache::open(&p).unwrap();
        assert_eq!(
            m.lookup(&self::p(b"b/c"), &c.entries[1].stat),
            Some((ObjectId([7; 32]), EntryKind::File))
        );
    }

    #[test]
    fn a_row_out_of_order_is_never_another_directory_s_entry() {
        // `qqx` lies inside the run `run(a)` computes by binary search; its
        // part after 2 bytes is `x`, but it is not `a/x`.
        let mut rows: Vec<IndexEntry> = [b"a/0" as &[u8], b"qqx", b"a/2", b"a/3", b"b"]
            .iter()
            .map(|n| entry(n, 0))
            .collect();
        rows[1].id = ObjectId([9; 32]);
        let c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            entries: rows,
            ..StatCache::default()
        };
        let m = MappedCache::parse(Bytes::Vec(c.encode())).unwrap();
        let st = c.entries[1].stat;
        assert_eq!(m.lookup(&p(b"a/x"), &st), None);
        assert_eq!(m.run(&p(b"a")).cursor().lookup(b"x", &st), None);
        assert_eq!(m.lookup(&p(b"qqx"), &st), Some((ObjectId([9; 32]), EntryKind::File)));
    }

    proptest::proptest! {
        /// Rows in any order: a lookup finds the row of that exact path or nothing.
        #[test]
        fn rows_in_any_order_are_only_missed(
            rows in proptest::strategy::Strategy::prop_shuffle(proptest::strategy::Strategy::prop_map(
                proptest::collection::btree_set("[ab]{1,2}(/[ab]{1,2}){0,2}", 0..24),
                |s| s.into_iter().collect::<Vec<_>>(),
            )),
            probes in proptest::collection::vec("[ab]{1,2}(/[ab]{1,2}){0,2}", 0..24),
        ) {
            let entries: Vec<IndexEntry> = rows.iter().enumerate().map(|(i, s)| {
                let mut e = entry(s.as_bytes(), 0);
                e.id = ObjectId([i as u8; 32]);
                e
            }).collect();
            let c = StatCache { scan_started_ns: 10 * RACY_MARGIN_NS, entries, ..StatCache::default() };
            let m = MappedCache::parse(Bytes::Vec(c.encode())).unwrap();
            let st = entry(b"x", 0).stat;
            for probe in probes.iter().chain(rows.iter()).filter_map(|s| RelPath::parse(s.as_bytes())) {
                if let Some((id, _)) = m.lookup(&probe, &st) {
                    let row = &c.entries[id.0[0] as usize];
                    proptest::prop_assert_eq!(&row.path, &probe);
                }
                let dir = probe.parent().unwrap_or_default();
                let mut cursor = m.run(&dir).cursor();
                if let Some((id, _, _)) = cursor.lookup(probe.file_name().unwrap(), &st) {
                    proptest::prop_assert_eq!(&c.entries[id.0[0] as usize].path, &probe);
                }
            }
        }
    }

    #[test]
    fn unsorted_or_bad_paths_are_not_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let unsorted = StatCache {
            scan_started_ns: 0,
            entries: vec![entry(b"b", 0), entry(b"a", 0)],
            ..StatCache::default()
        };
        std::fs::write(&path, unsorted.encode()).unwrap();
        assert!(StatCache::load(&path).is_none());
        // Mapped, such rows are only missed, never mistaken for another path's.
        let m = MappedCache::open(&path).unwrap();
        assert!(
            m.lookup(&p(b"b"), &unsorted.entries[0].stat)
                .is_none_or(|(id, _)| id == ObjectId([7; 32]))
        );
        let mut dup = unsorted.clone();
        dup.entries[1] = entry(b"b", 0);
        std::fs::write(&path, dup.encode()).unwrap();
        assert!(StatCache::load(&path).is_none());
        let mut bad = unsorted.clone();
        bad.entries = vec![entry(b"a", 0)];
        let mut bytes = bad.encode();
        let at = bytes.len() - 33; // the path's one byte, then the trailer recomputed
        bytes[at] = b'/';
        let body = bytes.len() - 32;
        let sum = *blake3::hash(&bytes[..body]).as_bytes();
        bytes[body..].copy_from_slice(&sum);
        std::fs::write(&path, &bytes).unwrap();
        assert!(StatCache::load(&path).is_none());
    }

    #[test]
    fn runs_find_a_directory_s_own_entries_among_deeper_ones() {
        // '-' (0x2d) and '.' (0x2e) sort before '/' (0x2f): `a.c` lies between `a` and `a/x`.
        let names: [&[u8]; 8] = [b"a", b"a-b/y", b"a.c", b"a/b", b"a/x", b"a/x.y/z", b"a0", b"b"];
        let c = StatCache {
            scan_started_ns: 10 * RACY_MARGIN_NS,
            entries: names.iter().map(|n| entry(n, 0)).collect(),
            ..StatCache::default()
        };
        let m = MappedCache::from_cache(&c);
        let st = c.entries[0].stat;
        let hit = Some((ObjectId([7; 32]), EntryKind::File));
        for n in names {
            assert_eq!(m.lookup(&p(n), &st), hit, "{}", String::from_utf8_lossy(n));
        }
        let root = m.run(&RelPath::root());
        assert_eq!(root.lookup(b"a", &st), hit);
        assert_eq!(root.lookup(b"x", &st), None);
        let a = m.run(&p(b"a"));
        assert_eq!((a.lo, a.hi), (3, 6));
        assert_eq!(a.lookup(b"x", &st), hit);
        assert_eq!(a.lookup(b"x.y", &st), None); // a directory: only deeper rows
        assert_eq!(a.lookup(b"c", &st), None);
        assert_eq!(m.run(&p(b"a/x.y")).lookup(b"z", &st), hit);
        assert_eq!(m.run(&p(b"zz")).lookup(b"a", &st), None);
        assert!(MappedCache::from_cache(&StatCache::default()).is_empty());
    }

    #[test]
    fn patch_replaces_inserts_and_drops_in_order() {
        let mut c = StatCache {
            scan_started_ns: 0,
            entries: vec![entry(b"a", 1), entry(b"c", 1), entry(b"e", 1)],
            ..StatCache::default()
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
            ..StatCache::default()
        };
        let m = MappedCache::from_cache(&c);
        assert!(m.lookup(&p(b"old"), &c.entries[0].stat).is_some());
        assert!(m.lookup(&p(b"racy"), &c.entries[1].stat).is_none());
        let mut changed = c.entries[0].stat;
        changed.size += 1;
        assert!(m.lookup(&p(b"old"), &changed).is_none());
    }

    proptest::proptest! {
        /// Every lookup through a mapped cache's runs agrees with a plain
        /// search of the rows: the row of that exact path, when its stat matches.
        #[test]
        fn mapped_lookups_agree_with_a_plain_search(
            paths in proptest::collection::btree_set("[ab.-]{1,2}(/[ab.-]{1,2}){0,2}", 0..40),
            probes in proptest::collection::vec("[ab.-]{1,2}(/[ab.-]{1,2}){0,3}", 0..40),
        ) {
            let paths: Vec<RelPath> = paths.iter().filter_map(|s| RelPath::parse(s.as_bytes())).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            let c = StatCache {
                scan_started_ns: 10 * RACY_MARGIN_NS,
                entries: paths.iter().map(|q| entry(q.as_bytes(), 0)).collect(),
                ..StatCache::default()
            };
            let m = MappedCache::from_cache(&c);
            proptest::prop_assert_eq!(m.to_owned_cache(), Some(c.clone()));
            let st = entry(b"x", 0).stat;
            let all: Vec<RelPath> = probes.iter().filter_map(|s| RelPath::parse(s.as_bytes())).chain(paths.iter().cloned()).collect();
            for probe in &all {
                let want = c.get(probe).map(|e| (e.id, e.kind));
                proptest::prop_assert_eq!(m.lookup(probe, &st), want, "{:?}", probe);
            }
            // One cursor per directory, names in listing order, then in the given order.
            let mut by_dir: std::collections::BTreeMap<RelPath, Vec<RelPath>> = Default::default();
            for probe in &all {
                by_dir.entry(probe.parent().unwrap_or_default()).or_default().push(probe.clone());
            }
            for (dir, mut names) in by_dir {
                let run = m.run(&dir);
                for sorted in [false, true] {
                    if sorted {
                        names.sort();
                    }
                    let mut cursor = run.cursor();
                    for probe in &names {
                        let want = c.get(probe).map(|e| (e.id, e.kind));
                        let name = probe.file_name().unwrap();
                        proptest::prop_assert_eq!(cursor.lookup(name, &st).map(|(id, kind, _)| (id, kind)), want, "{:?} (sorted: {})", probe, sorted);
                    }
                }
            }
        }
    }
}
