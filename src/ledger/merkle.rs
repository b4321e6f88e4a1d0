//! The ledger's append-only Merkle tree: the tree of Certificate Transparency
//! (RFC 9162 §2.1, the same tree as RFC 6962 §2.1) with BLAKE3 in place of
//! SHA-256, persisted so that a proof costs O(log² n) small reads.
//!
//! # Hashes (RFC 9162 §2.1.1)
//!
//! Every hash is 32 bytes of BLAKE3 ([`Hash`](type@Hash)). A ledger entry's bytes become
//! a leaf with [`leaf_hash`] = BLAKE3(`0x00` ‖ data); two subtrees join with
//! [`node_hash`] = BLAKE3(`0x01` ‖ left ‖ right); the tree of no entries has
//! the root [`empty_root`] = BLAKE3(""). The root of `n > 1` entries splits
//! them at `k`, the largest power of two below `n`: MTH(D\[n\]) =
//! `node_hash`(MTH(D\[0:k\]), MTH(D\[k:n\])). Proofs are RFC 9162's PATH
//! (§2.1.3.1) and PROOF (§2.1.4.1), checked by the iterative algorithms of
//! §2.1.3.2 and §2.1.4.2 ([`verify_inclusion`], [`verify_consistency`]).
//!
//! # On disk
//!
//! A [`Tree`] is a directory of level files named `0`, `1`, … (decimal). Level
//! `k` is an array of 32-byte hashes with no header: entry `i` is the root of
//! the perfect subtree over leaves `[i·2^k, (i+1)·2^k)`, so level 0 holds the
//! leaf hashes and a tree of `n` leaves has exactly `n >> k` entries in level
//! `k` (`(n >> k) · 32` bytes) for every `k` with `n >> k > 0`. Every subtree
//! the RFC's recursion visits is a run of at most 64 such perfect subtrees, so
//! a root or proof reads O(log² n) hashes with positioned reads and never
//! loads the tree. The files are derived data: the ledger is the source of
//! truth, and [`Tree::rebuild`] makes them again from its entries.
//!
//! # Why own code
//!
//! `rs_merkle` keeps the whole tree in memory and has inclusion
//! (multi-)proofs only, no consistency proofs. `ct-merkle` (0.3.0, released
//! 2026-07) is RFC 6962 with inclusion and consistency proofs and a
//! pluggable `digest` hash, but its only tree is a `MemoryBackedTree` that
//! holds every leaf value. `tlog_tiles` (a port of Go's `sumdb/tlog`) reads
//! stored hashes through a trait, but its hash is SHA-256 and its storage
//! model the C2SP tile layout. None persists a BLAKE3 tree for O(log n) proofs
//! from disk, and the tree is core to cplane, so this module owns the code;
//! a test reproduces the CT reference roots with SHA-256 swapped in.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A hash in the tree: 32 bytes of BLAKE3 (a leaf, a node or a root).
pub type Hash = [u8; 32];

/// Length of a [`Hash`](type@Hash) in bytes, and of one entry in a level file.
pub const HASH_LEN_BYTES: usize = 32;

/// The most leaves a [`Tree`] holds (2^58): level 0 is then 2^63 bytes, the
/// largest file offset POSIX allows.
pub const MAX_SIZE: u64 = 1 << 58;

/// The leaf hash of one ledger entry: BLAKE3(`0x00` ‖ `data`) (RFC 9162 §2.1.1).
pub fn leaf_hash(data: &[u8]) -> Hash {
    Blake3::leaf(data)
}

/// The hash of an interior node: BLAKE3(`0x01` ‖ `left` ‖ `right`) (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Blake3::node(left, right)
}

/// The root of the tree of no entries: BLAKE3 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Blake3::empty()
}

/// Why a tree operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Creating, reading, writing, truncating or syncing a level file or the
    /// tree's directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The level file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An entry index at or past the size of the tree it was asked of.
    #[error("entry {index} is past the ledger's {size} entries")]
    EntryPastEnd {
        /// The index asked for (0-based).
        index: u64,
        /// The tree size it was asked of.
        size: u64,
    },
    /// A tree size larger than the tree.
    #[error("a ledger of {requested} entries was asked of one that has {size}")]
    SizePastEnd {
        /// The size asked for.
        requested: u64,
        /// The tree's size.
        size: u64,
    },
    /// A consistency proof between sizes that do not satisfy `0 < old <= new`.
    #[error("no consistency proof from {old} to {new} entries: it needs 0 < old <= new")]
    BadConsistencyRange {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// A tree of more than [`MAX_SIZE`] leaves.
    #[error("a ledger of {size} entries is more than the {max} a Merkle tree holds", max = MAX_SIZE)]
    TooLarge {
        /// The size asked for.
        size: u64,
    },
}

/// The append-only Merkle tree of a ledger, persisted in a directory of level
/// files (module docs, "On disk").
///
/// One process appends at a time: the caller holds the ledger's lock. The
/// tree never fsyncs on its own ([`Tree::sync`]).
#[derive(Debug)]
pub struct Tree {
    inner: Levels<Blake3>,
}

impl Tree {
    /// Opens the tree in `dir` (creating the directory when missing) of a
    /// ledger that has `size` entries.
    ///
    /// A level file longer than `size` implies (a crash after the tree was
    /// appended but before the ledger entry was written) is truncated to it,
    /// and so are the files of levels `size` does not reach. Because `open`
    /// truncates, call it under the ledger's lock: a reader that opens with a
    /// stale size would cut entries a concurrent appender has just written.
    ///
    /// Returns `Ok(None)` when a level file is missing or shorter than `size`
    /// implies; the caller then rebuilds it with [`Tree::rebuild`]. The
    /// hashes themselves are not checked: compare [`Tree::root`] with a root
    /// the ledger records to catch files damaged in place.
    ///
    /// # Errors
    /// [`TreeError::Io`] naming the directory or level file;
    /// [`TreeError::TooLarge`] when `size` is over [`MAX_SIZE`].
    pub fn open(dir: &Path, size: u64) -> Result<Option<Tree>, TreeError> {
        Ok(Levels::open(dir, size)?.map(|inner| Tree { inner }))
    }

    /// Rebuilds the tree in `dir` from every leaf hash of the ledger, in
    /// order (each already [`leaf_hash`]ed), replacing the level files there.
    ///
    /// Does not fsync ([`Tree::sync`]). An interrupted rebuild leaves level
    /// files that [`Tree::open`] reports as short.
    ///
    /// # Errors
    /// [`TreeError::Io`] naming the directory or level file;
    /// [`TreeError::TooLarge`] past [`MAX_SIZE`] leaves.
    pub fn rebuild(dir: &Path, leaves: impl IntoIterator<Item = Hash>) -> Result<Tree, TreeError> {
        Ok(Tree {
            inner: Levels::rebuild(dir, leaves)?,
        })
    }

    /// The number of leaves (ledger entries) in the tree.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// Appends one leaf hash (already [`leaf_hash`]ed): writes it to level 0
    /// and, while it completes a pair, the parent one level up. Does not
    /// fsync. After an error the tree keeps its size and the next append
    /// rewrites the same positions.
    ///
    /// # Errors
    /// [`TreeError::Io`] naming the level file; [`TreeError::TooLarge`] when
    /// the tree already holds [`MAX_SIZE`] leaves.
    pub fn append(&mut self, leaf: &Hash) -> Result<(), TreeError> {
        self.inner.append(leaf)
    }

    /// Flushes every level file and the directory to disk (fsync).
    ///
    /// # Errors
    /// [`TreeError::Io`] naming the file or directory that failed.
    pub fn sync(&self) -> Result<(), TreeError> {
        self.inner.sync()
    }

    /// The root (MTH, RFC 9162 §2.1.1) of the first `n` leaves; [`empty_root`]
    /// for `n == 0`. Reads at most 64 hashes.
    ///
    /// # Errors
    /// [`TreeError::SizePastEnd`] when `n > self.size()`; [`TreeError::Io`].
    pub fn root(&self, n: u64) -> Result<Hash, TreeError> {
        self.inner.root(n)
    }

    /// The leaf hash at `index` (0-based).
    ///
    /// # Errors
    /// [`TreeError::EntryPastEnd`] when `index >= self.size()`; [`TreeError::Io`].
    pub fn leaf(&self, index: u64) -> Result<Hash, TreeError> {
        self.inner.leaf(index)
    }

    /// The inclusion proof PATH(`index`, D\[`size`\]) (RFC 9162 §2.1.3.1) of
    /// leaf `index` in the tree of the first `size` leaves: at most 64
    /// hashes, the sibling nearest the leaf first. Check it with
    /// [`verify_inclusion`].
    ///
    /// # Errors
    /// [`TreeError::SizePastEnd`] when `size > self.size()`;
    /// [`TreeError::EntryPastEnd`] when `index >= size`; [`TreeError::Io`].
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        self.inner.inclusion_proof(index, size)
    }

    /// The consistency proof PROOF(`old`, D\[`new`\]) (RFC 9162 §2.1.4.1)
    /// that the tree of the first `old` leaves is a prefix of the tree of the
    /// first `new`: at most 64 hashes, empty when `old == new`. Check it with
    /// [`verify_consistency`].
    ///
    /// # Errors
    /// [`TreeError::BadConsistencyRange`] unless `0 < old <= new`;
    /// [`TreeError::SizePastEnd`] when `new > self.size()`; [`TreeError::Io`].
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, TreeError> {
        self.inner.consistency_proof(old, new)
    }
}

/// True when `proof` shows that `leaf` (a [`leaf_hash`]) is entry `index` of
/// the tree of `size` entries whose root is `root`.
///
/// This is RFC 9162 §2.1.3.2 step by step; it fails when `index >= size`, and
/// looks at no more than 64 proof hashes before failing.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    verify_inclusion_with::<Blake3>(leaf, index, size, proof, root)
}

/// True when `proof` shows that the tree of `old_size` entries with root
/// `old_root` is a prefix of the tree of `new_size` entries with root
/// `new_root`.
///
/// For `0 < old_size < new_size` this is RFC 9162 §2.1.4.2 step by step. RFC
/// 9162 defines no check for `old_size == new_size`; as PROOF(m, D\[m\]) is
/// empty, that case holds when `proof` is empty and the roots are equal.
/// `old_size == 0` or `old_size > new_size` always fails.
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    verify_consistency_with::<Blake3>(old_size, new_size, old_root, new_root, proof)
}

/// The three hash functions of RFC 9162 §2.1.1, so that a test can swap
/// SHA-256 in and compare with Certificate Transparency's reference values.
trait TreeHasher {
    /// HASH(0x00 ‖ data).
    fn leaf(data: &[u8]) -> Hash;
    /// HASH(0x01 ‖ left ‖ right).
    fn node(left: &Hash, right: &Hash) -> Hash;
    /// HASH("").
    fn empty() -> Hash;
}

/// BLAKE3, cplane's tree hash.
#[derive(Debug)]
struct Blake3;

impl TreeHasher for Blake3 {
    fn leaf(data: &[u8]) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[0x00]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    fn node(left: &Hash, right: &Hash) -> Hash {
        let mut buf = [0u8; 1 + 2 * HASH_LEN_BYTES];
        buf[0] = 0x01;
        buf[1..1 + HASH_LEN_BYTES].copy_from_slice(left);
        buf[1 + HASH_LEN_BYTES..].copy_from_slice(right);
        *blake3::hash(&buf).as_bytes()
    }

    fn empty() -> Hash {
        *blake3::hash(b"").as_bytes()
    }
}

/// One open level file.
#[derive(Debug)]
struct Level {
    file: File,
    path: PathBuf,
}

/// The tree's state, generic over the hash for the known-answer test.
#[derive(Debug)]
struct Levels<H> {
    dir: PathBuf,
    size: u64,
    /// Levels `0..levels_for(size)`, plus at most one more while an append
    /// has started a new level.
    levels: Vec<Level>,
    hasher: PhantomData<fn() -> H>,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How many level files a tree of `size` leaves has: levels `k` with `size >> k > 0`.
fn levels_for(size: u64) -> usize {
    (u64::BITS - size.leading_zeros()) as usize
}

/// The largest power of two strictly below `n`, for `n >= 2` (RFC 9162's `k`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// Byte offset of entry `index` in a level file (no overflow: `index < MAX_SIZE`).
fn offset(index: u64) -> u64 {
    index * HASH_LEN_BYTES as u64
}

fn level_path(dir: &Path, level: usize) -> PathBuf {
    dir.join(level.to_string())
}

/// True for the canonical decimal names of level files (`0`, `1`, … `63`).
fn is_level_name(name: &str) -> bool {
    name.parse::<u8>().is_ok_and(|l| l < 64 && l.to_string() == name)
}

fn check_size(size: u64) -> Result<(), TreeError> {
    if size > MAX_SIZE {
        return Err(TreeError::TooLarge { size });
    }
    Ok(())
}

impl<H: TreeHasher> Levels<H> {
    fn open(dir: &Path, size: u64) -> Result<Option<Self>, TreeError> {
        check_size(size)?;
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let needed = levels_for(size);
        let mut levels = Vec::with_capacity(needed + 1);
        for level in 0..needed {
            let path = level_path(dir, level);
            let file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_at(&path)(e)),
            };
            let len = file.metadata().map_err(io_at(&path))?.len();
            let want = offset(size >> level);
            if len < want {
                return Ok(None);
            }
            if len > want {
                file.set_len(want).map_err(io_at(&path))?;
            }
            levels.push(Level { file, path });
        }
        // Levels the size does not reach hold only entries the ledger never
        // recorded. Level files are created in order, so stop at the first gap
        // (an append truncates any file it starts a level in anyway).
        for level in needed..64 {
            let path = level_path(dir, level);
            match OpenOptions::new().write(true).open(&path) {
                Ok(f) => f.set_len(0).map_err(io_at(&path))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        Ok(Some(Levels {
            dir: dir.to_path_buf(),
            size,
            levels,
            hasher: PhantomData,
        }))
    }

    fn rebuild(dir: &Path, leaves: impl IntoIterator<Item = Hash>) -> Result<Self, TreeError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        for entry in fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            if entry.file_name().to_str().is_some_and(is_level_name) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        // Per level: a buffered writer and the left node waiting for its pair.
        let mut writers: Vec<(BufWriter<File>, PathBuf)> = Vec::new();
        let mut pending: Vec<Option<Hash>> = Vec::new();
        let mut size = 0u64;
        for leaf in leaves {
            check_size(size + 1)?;
            let mut hash = leaf;
            let mut level = 0;
            loop {
                if level == writers.len() {
                    let path = level_path(dir, level);
                    let file = create_level(&path)?;
                    writers.push((BufWriter::with_capacity(1 << 16, file), path));
                    pending.push(None);
                }
                let (w, path) = &mut writers[level];
                w.write_all(&hash).map_err(io_at(path))?;
                match pending[level].take() {
                    Some(left) => {
                        hash = H::node(&left, &hash);
                        level += 1;
                    }
                    None => {
                        pending[level] = Some(hash);
                        break;
                    }
                }
            }
            size += 1;
        }
        let mut levels = Vec::with_capacity(writers.len() + 1);
        for (w, path) in writers {
            let file = w.into_inner().map_err(|e| io_at(&path)(e.into_error()))?;
            levels.push(Level { file, path });
        }
        Ok(Levels {
            dir: dir.to_path_buf(),
            size,
            levels,
            hasher: PhantomData,
        })
    }

    /// The stored root of perfect subtree `index` of level `level`.
    fn node_at(&self, level: usize, index: u64) -> Result<Hash, TreeError> {
        let Some(l) = self.levels.get(level) else {
            let path = level_path(&self.dir, level);
            return Err(io_at(&path)(io::Error::new(
                io::ErrorKind::NotFound,
                "level file is not open",
            )));
        };
        let mut h = [0u8; HASH_LEN_BYTES];
        l.file.read_exact_at(&mut h, offset(index)).map_err(io_at(&l.path))?;
        Ok(h)
    }

    fn write_node(&mut self, level: usize, index: u64, hash: &Hash) -> Result<(), TreeError> {
        if level == self.levels.len() {
            let path = level_path(&self.dir, level);
            let file = create_level(&path)?;
            self.levels.push(Level { file, path });
        }
        let Some(l) = self.levels.get(level) else {
            let path = level_path(&self.dir, level);
            return Err(io_at(&path)(io::Error::new(
                io::ErrorKind::NotFound,
                "level file is not open",
            )));
        };
        l.file.write_all_at(hash, offset(index)).map_err(io_at(&l.path))
    }

    /// MTH(D\[lo:hi\]) for `lo < hi <= size` where `lo` is a multiple of the
    /// largest power of two `<= hi - lo` (true of every range RFC 9162's
    /// recursion visits): the fold, right to left, of the perfect subtrees
    /// that the binary digits of `hi - lo` cut the range into, largest first.
    fn range_hash(&self, lo: u64, hi: u64) -> Result<Hash, TreeError> {
        debug_assert!(lo < hi && hi <= self.size);
        let mut pieces = [[0u8; HASH_LEN_BYTES]; 64];
        let mut count = 0;
        let mut start = lo;
        while start < hi {
            let level = (u64::BITS - 1 - (hi - start).leading_zeros()) as usize;
            debug_assert!(start.trailing_zeros() as usize >= level);
            pieces[count] = self.node_at(level, start >> level)?;
            count += 1;
            start += 1 << level;
        }
        let Some((last, rest)) = pieces[..count].split_last() else {
            return Ok(H::empty());
        };
        Ok(rest.iter().rev().fold(*last, |acc, p| H::node(p, &acc)))
    }

    fn check_tree_size(&self, n: u64) -> Result<(), TreeError> {
        if n > self.size {
            return Err(TreeError::SizePastEnd {
                requested: n,
                size: self.size,
            });
        }
        Ok(())
    }

    fn append(&mut self, leaf: &Hash) -> Result<(), TreeError> {
        check_size(self.size + 1)?;
        let mut index = self.size;
        let mut level = 0;
        let mut hash = *leaf;
        loop {
            self.write_node(level, index, &hash)?;
            if index & 1 == 0 {
                break;
            }
            let left = self.node_at(level, index - 1)?;
            hash = H::node(&left, &hash);
            index >>= 1;
            level += 1;
        }
        self.size += 1;
        Ok(())
    }

    fn sync(&self) -> Result<(), TreeError> {
        for l in &self.levels {
            l.file.sync_data().map_err(io_at(&l.path))?;
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&self.dir))
    }

    fn root(&self, n: u64) -> Result<Hash, TreeError> {
        self.check_tree_size(n)?;
        if n == 0 {
            return Ok(H::empty());
        }
        self.range_hash(0, n)
    }

    fn leaf(&self, index: u64) -> Result<Hash, TreeError> {
        if index >= self.size {
            return Err(TreeError::EntryPastEnd { index, size: self.size });
        }
        self.node_at(0, index)
    }

    /// PATH(m, D\[n\]) unrolled: each step of the recursion contributes the
    /// root of the half that does not hold the leaf, and the recursion's
    /// output lists the deepest step first.
    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_tree_size(size)?;
        if index >= size {
            return Err(TreeError::EntryPastEnd { index, size });
        }
        let mut proof = Vec::new();
        let (mut lo, mut hi) = (0, size);
        while hi - lo > 1 {
            let k = split_point(hi - lo);
            if index - lo < k {
                proof.push(self.range_hash(lo + k, hi)?);
                hi = lo + k;
            } else {
                proof.push(self.range_hash(lo, lo + k)?);
                lo += k;
            }
        }
        proof.reverse();
        Ok(proof)
    }

    /// PROOF(m, D\[n\]) = SUBPROOF(m, D\[n\], true) unrolled, as for PATH.
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, TreeError> {
        if old == 0 || old > new {
            return Err(TreeError::BadConsistencyRange { old, new });
        }
        self.check_tree_size(new)?;
        let mut proof = Vec::new();
        // SUBPROOF(m, D[lo:hi], whole): m counts leaves from lo.
        let (mut lo, mut hi, mut m, mut whole) = (0, new, old, true);
        loop {
            if m == hi - lo {
                if !whole {
                    proof.push(self.range_hash(lo, hi)?);
                }
                break;
            }
            let k = split_point(hi - lo);
            if m <= k {
                proof.push(self.range_hash(lo + k, hi)?);
                hi = lo + k;
            } else {
                proof.push(self.range_hash(lo, lo + k)?);
                lo += k;
                m -= k;
                whole = false;
            }
        }
        proof.reverse();
        Ok(proof)
    }
}

/// Creates (or empties) a level file for reading and writing.
fn create_level(path: &Path) -> Result<File, TreeError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_at(path))
}

/// RFC 9162 §2.1.3.2; the step numbers are the RFC's.
fn verify_inclusion_with<H: TreeHasher>(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    // 1.
    if index >= size {
        return false;
    }
    // 2., 3.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    // 4.
    for p in proof {
        // 4.1.
        if sn == 0 {
            return false;
        }
        // 4.2.
        if fn_ & 1 == 1 || fn_ == sn {
            r = H::node(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = H::node(&r, p);
        }
        // 4.3.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5.
    sn == 0 && r == *root
}

/// RFC 9162 §2.1.4.2 for `0 < old_size < new_size`; the step numbers are the RFC's.
fn verify_consistency_with<H: TreeHasher>(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    // 1.
    if proof.is_empty() {
        return false;
    }
    // 2.
    let seed = old_size.is_power_of_two().then_some(old_root);
    let mut path = seed.into_iter().chain(proof);
    // 3.
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    // 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5.
    let Some(first) = path.next() else {
        return false;
    };
    let (mut fr, mut sr) = (*first, *first);
    // 6.
    for c in path {
        // 6.1.
        if sn == 0 {
            return false;
        }
        // 6.2.
        if fn_ & 1 == 1 || fn_ == sn {
            fr = H::node(c, &fr);
            sr = H::node(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = H::node(&sr, c);
        }
        // 6.3.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7.
    fr == *old_root && sr == *new_root && sn == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    // ---- the reference: RFC 6962 §2.1's recursive definitions, in memory ----

    /// The largest power of two below `n` (n >= 2), counted up the slow way.
    fn ref_k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn ref_mth<H: TreeHasher>(d: &[Hash]) -> Hash {
        match d.len() {
            0 => H::empty(),
            1 => d[0],
            n => {
                let k = ref_k(n);
                H::node(&ref_mth::<H>(&d[..k]), &ref_mth::<H>(&d[k..]))
            }
        }
    }

    fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return Vec::new();
        }
        let k = ref_k(n);
        if m < k {
            let mut p = ref_path(m, &d[..k]);
            p.push(ref_mth::<Blake3>(&d[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &d[k..]);
            p.push(ref_mth::<Blake3>(&d[..k]));
            p
        }
    }

    fn ref_proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        ref_subproof(m, d, true)
    }

    fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![ref_mth::<Blake3>(d)] };
        }
        let k = ref_k(n);
        if m <= k {
            let mut p = ref_subproof(m, &d[..k], b);
            p.push(ref_mth::<Blake3>(&d[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &d[k..], false);
            p.push(ref_mth::<Blake3>(&d[..k]));
            p
        }
    }

    // ---- the shapes of the RFC 9162 verifiers, without hashes ----
    // A proof checked against other sizes passes exactly when the verifier
    // does the same hash operations in the same order; these say which.

    fn inclusion_shape(index: u64, size: u64, len: usize) -> Option<Vec<bool>> {
        if index >= size {
            return None;
        }
        let (mut f, mut s) = (index, size - 1);
        let mut ops = Vec::new();
        for _ in 0..len {
            if s == 0 {
                return None;
            }
            if f & 1 == 1 || f == s {
                ops.push(true);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                ops.push(false);
            }
            f >>= 1;
            s >>= 1;
        }
        (s == 0).then_some(ops)
    }

    fn consistency_shape(old: u64, new: u64, len: usize) -> Option<(bool, Vec<bool>)> {
        if old == 0 || old >= new || len == 0 {
            return None;
        }
        let seeded = old.is_power_of_two();
        let (mut f, mut s) = (old - 1, new - 1);
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        let mut ops = Vec::new();
        for _ in 1..len + usize::from(seeded) {
            if s == 0 {
                return None;
            }
            if f & 1 == 1 || f == s {
                ops.push(true);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                ops.push(false);
            }
            f >>= 1;
            s >>= 1;
        }
        (s == 0).then_some((seeded, ops))
    }

    // ---- fixtures ----

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    fn build(dir: &Path, leaves: &[Hash]) -> Tree {
        let mut t = Tree::open(dir, 0).expect("open").expect("an empty tree opens");
        for l in leaves {
            t.append(l).expect("append");
        }
        t
    }

    fn level_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .expect("read dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().into_string().expect("utf-8"),
                    fs::read(e.path()).expect("read"),
                )
            })
            .collect()
    }

    fn flipped(proof: &[Hash], at: usize) -> Vec<Hash> {
        let mut p = proof.to_vec();
        p[at][at % HASH_LEN_BYTES] ^= 1 << (at % 8);
        p
    }

    /// Every way to spoil a proof's hashes: a flipped bit in each, one dropped
    /// at either end, one extra at either end.
    fn spoiled(proof: &[Hash]) -> Vec<Vec<Hash>> {
        let mut out: Vec<Vec<Hash>> = (0..proof.len()).map(|i| flipped(proof, i)).collect();
        if !proof.is_empty() {
            out.push(proof[1..].to_vec());
            out.push(proof[..proof.len() - 1].to_vec());
        }
        let extra = leaf_hash(b"extra");
        out.push([proof, &[extra]].concat());
        out.push([&[extra], proof].concat());
        out
    }

    // ---- roots ----

    #[test]
    fn the_three_hashes_are_rfc_9162s_with_blake3() {
        assert_eq!(empty_root(), *blake3::hash(b"").as_bytes());
        assert_eq!(leaf_hash(b"ab"), *blake3::hash(b"\x00ab").as_bytes());
        let (l, r) = ([1u8; 32], [2u8; 32]);
        assert_eq!(
            node_hash(&l, &r),
            *blake3::hash(&[&[1u8][..], &l, &r].concat()).as_bytes()
        );
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        for n in 2..5000u64 {
            assert_eq!(split_point(n), ref_k(n as usize) as u64, "n = {n}");
        }
        assert_eq!(split_point(u64::MAX), 1 << 63);
        assert_eq!(split_point((1 << 63) + 1), 1 << 63);
        assert_eq!(split_point(1 << 63), 1 << 62);
    }

    #[test]
    fn roots_equal_the_reference_at_every_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = leaves(2049);
        let mut t = Tree::open(dir.path(), 0).expect("open").expect("empty");
        assert_eq!(t.root(0).expect("root"), empty_root());
        for (i, l) in d.iter().enumerate() {
            t.append(l).expect("append");
            if i < 70 {
                assert_eq!(
                    t.root(t.size()).expect("root"),
                    ref_mth::<Blake3>(&d[..=i]),
                    "size {}",
                    i + 1
                );
            }
        }
        let sizes = (0..=70).chain([127, 128, 129, 255, 256, 257, 1000, 1023, 1024, 1025, 2047, 2048, 2049]);
        for n in sizes {
            assert_eq!(
                t.root(n).expect("root"),
                ref_mth::<Blake3>(&d[..n as usize]),
                "size {n}"
            );
        }
        for i in [0, 1, 1000, 2048] {
            assert_eq!(t.leaf(i).expect("leaf"), d[i as usize]);
        }
    }

    // ---- proofs: every pair up to 40 ----

    #[test]
    fn every_inclusion_proof_equals_the_reference_and_only_it_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = leaves(41);
        let t = build(dir.path(), &d);
        let roots: Vec<Hash> = (0..=41).map(|n| t.root(n).expect("root")).collect();
        let (mut checked, mut refused) = (0, 0);
        for n in 1..=40u64 {
            for i in 0..n {
                let proof = t.inclusion_proof(i, n).expect("proof");
                assert_eq!(proof, ref_path(i as usize, &d[..n as usize]), "PATH({i}, D[{n}])");
                let leaf = &d[i as usize];
                let root = &roots[n as usize];
                assert!(verify_inclusion(leaf, i, n, &proof, root), "PATH({i}, D[{n}]) verifies");
                checked += 1;

                for bad in spoiled(&proof) {
                    assert!(!verify_inclusion(leaf, i, n, &bad, root), "spoiled PATH({i}, D[{n}])");
                    refused += 1;
                }
                assert!(!verify_inclusion(&d[(i as usize + 1) % 41], i, n, &proof, root));
                assert!(!verify_inclusion(leaf, i, n, &proof, &roots[n as usize + 1]));
                let shape = inclusion_shape(i, n, proof.len());
                let others = [(i.wrapping_sub(1), n), (i + 1, n), (i, n - 1), (i, n + 1), (n, n)];
                for (oi, on) in others {
                    let same = inclusion_shape(oi, on, proof.len()) == shape;
                    assert_eq!(
                        verify_inclusion(leaf, oi, on, &proof, root),
                        same,
                        "PATH({i}, D[{n}]) as ({oi}, {on})"
                    );
                    refused += usize::from(!same);
                }
            }
        }
        assert_eq!(checked, 40 * 41 / 2);
        assert!(refused > 10 * checked, "{refused} refusals");
    }

    #[test]
    fn every_consistency_proof_equals_the_reference_and_only_it_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = leaves(41);
        let t = build(dir.path(), &d);
        let roots: Vec<Hash> = (0..=41).map(|n| t.root(n).expect("root")).collect();
        let mut checked = 0;
        for n in 1..=40u64 {
            for m in 1..=n {
                let proof = t.consistency_proof(m, n).expect("proof");
                assert_eq!(proof, ref_proof(m as usize, &d[..n as usize]), "PROOF({m}, D[{n}])");
                let (old, new) = (&roots[m as usize], &roots[n as usize]);
                assert!(
                    verify_consistency(m, n, old, new, &proof),
                    "PROOF({m}, D[{n}]) verifies"
                );
                checked += 1;

                for bad in spoiled(&proof) {
                    assert!(!verify_consistency(m, n, old, new, &bad), "spoiled PROOF({m}, D[{n}])");
                }
                if m < n {
                    assert!(!verify_consistency(m, n, new, old, &proof), "swapped roots");
                }
                assert!(!verify_consistency(m, n, &roots[m as usize - 1], new, &proof));
                assert!(!verify_consistency(m, n, old, &roots[n as usize + 1], &proof));
                let shape = consistency_shape(m, n, proof.len());
                let others = [(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1), (n, m), (0, n)];
                for (om, on) in others.into_iter().filter(|&o| o != (m, n)) {
                    let same = shape.is_some() && consistency_shape(om, on, proof.len()) == shape;
                    assert_eq!(
                        verify_consistency(om, on, old, new, &proof),
                        same,
                        "PROOF({m}, D[{n}]) as ({om}, {on})"
                    );
                }
            }
        }
        assert_eq!(checked, 40 * 41 / 2);
    }

    #[test]
    fn verifiers_refuse_degenerate_sizes() {
        let (l, r) = (leaf_hash(b"x"), empty_root());
        assert!(!verify_inclusion(&l, 0, 0, &[], &l));
        assert!(
            !verify_inclusion(&l, 1, 1, &[], &l),
            "an index at the size is outside the tree"
        );
        assert!(verify_inclusion(&l, 0, 1, &[], &l));
        assert!(!verify_inclusion(&l, u64::MAX, u64::MAX, &[l; 70], &r));
        assert!(!verify_inclusion(&l, 0, u64::MAX, &[l; 70], &r));
        assert!(!verify_consistency(0, 0, &r, &r, &[]));
        assert!(!verify_consistency(0, 5, &r, &l, &[]));
        assert!(!verify_consistency(5, 4, &l, &l, &[l]));
        assert!(verify_consistency(5, 5, &l, &l, &[]));
        assert!(!verify_consistency(5, 5, &l, &r, &[]));
        assert!(!verify_consistency(5, 5, &l, &l, &[l]));
        assert!(!verify_consistency(1, u64::MAX, &l, &r, &[l; 70]));
        assert!(!verify_consistency(u64::MAX - 1, u64::MAX, &l, &r, &[l; 70]));
    }

    // ---- proofs: random sizes up to 3000 ----

    struct Big {
        _dir: tempfile::TempDir,
        tree: Tree,
        leaves: Vec<Hash>,
    }

    fn big() -> &'static Big {
        static BIG: OnceLock<Big> = OnceLock::new();
        BIG.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let d = leaves(3000);
            let tree = build(dir.path(), &d);
            Big {
                _dir: dir,
                tree,
                leaves: d,
            }
        })
    }

    proptest! {
        #[test]
        fn inclusion_proofs_at_random_sizes((n, i) in (1u64..=3000).prop_flat_map(|n| (Just(n), 0..n))) {
            let b = big();
            let proof = b.tree.inclusion_proof(i, n).expect("proof");
            prop_assert_eq!(&proof, &ref_path(i as usize, &b.leaves[..n as usize]));
            let root = b.tree.root(n).expect("root");
            prop_assert_eq!(root, ref_mth::<Blake3>(&b.leaves[..n as usize]));
            prop_assert!(verify_inclusion(&b.leaves[i as usize], i, n, &proof, &root));
            prop_assert!(proof.len() <= 12);
        }

        #[test]
        fn consistency_proofs_at_random_sizes((n, m) in (1u64..=3000).prop_flat_map(|n| (Just(n), 1..=n))) {
            let b = big();
            let proof = b.tree.consistency_proof(m, n).expect("proof");
            prop_assert_eq!(&proof, &ref_proof(m as usize, &b.leaves[..n as usize]));
            let (old, new) = (b.tree.root(m).expect("root"), b.tree.root(n).expect("root"));
            prop_assert!(verify_consistency(m, n, &old, &new, &proof));
            if m < n {
                prop_assert!(!verify_consistency(m, n, &new, &old, &proof));
            }
        }
    }

    // ---- persistence ----

    #[test]
    fn reopening_gives_the_same_roots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = leaves(100);
        let before: Vec<Hash> = {
            let t = build(dir.path(), &d);
            t.sync().expect("sync");
            (0..=100).map(|n| t.root(n).expect("root")).collect()
        };
        let t = Tree::open(dir.path(), 100).expect("open").expect("complete");
        assert_eq!(t.size(), 100);
        let after: Vec<Hash> = (0..=100).map(|n| t.root(n).expect("root")).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn open_with_a_smaller_size_truncates_and_appends_resume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = leaves(100);
        let root100 = build(dir.path(), &d).root(100).expect("root");
        // The ledger holds 37 entries: the tree was appended past it.
        let mut t = Tree::open(dir.path(), 37).expect("open").expect("complete");
        let files = level_files(dir.path());
        for (name, bytes) in &files {
            let level: u32 = name.parse().expect("a level file");
            assert_eq!(bytes.len() as u64, (37u64 >> level) * 32, "level {level}");
        }
        assert_eq!(
            files.len(),
            7,
            "levels 0..=6 (level 6 of 100 leaves is truncated to empty)"
        );
        assert_eq!(t.root(37).expect("root"), ref_mth::<Blake3>(&d[..37]));
        assert!(matches!(
            t.root(38),
            Err(TreeError::SizePastEnd {
                requested: 38,
                size: 37
            })
        ));
        for l in &d[37..] {
            t.append(l).expect("append");
        }
        assert_eq!(t.root(100).expect("root"), root100);
    }

    #[test]
    fn a_short_or_missing_level_asks_for_a_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = leaves(100);
        drop(build(dir.path(), &d));
        assert!(
            Tree::open(dir.path(), 101).expect("open").is_none(),
            "more entries than level 0 holds"
        );

        let level3 = dir.path().join("3");
        let f = OpenOptions::new().write(true).open(&level3).expect("open level 3");
        f.set_len(11 * 32 + 5).expect("cut");
        assert!(Tree::open(dir.path(), 100).expect("open").is_none(), "level 3 is short");
        assert!(
            Tree::open(dir.path(), 95).expect("open").is_some(),
            "95 leaves need 11 level-3 nodes"
        );

        let t = Tree::rebuild(dir.path(), d.iter().copied()).expect("rebuild");
        assert_eq!(t.root(100).expect("root"), ref_mth::<Blake3>(&d));
        fs::remove_file(&level3).expect("remove");
        assert!(
            Tree::open(dir.path(), 100).expect("open").is_none(),
            "level 3 is missing"
        );
    }

    #[test]
    fn rebuild_writes_the_same_files_as_appends() {
        for n in [0, 1, 2, 3, 64, 100, 1025] {
            let (a, b) = (
                tempfile::tempdir().expect("tempdir"),
                tempfile::tempdir().expect("tempdir"),
            );
            let d = leaves(n);
            let appended = build(a.path(), &d);
            // Rebuild over a bigger tree, so levels must also go away.
            drop(build(b.path(), &leaves(2000)));
            let rebuilt = Tree::rebuild(b.path(), d.iter().copied()).expect("rebuild");
            assert_eq!(rebuilt.size(), n as u64);
            let files = level_files(b.path());
            assert_eq!(level_files(a.path()), files, "{n} leaves");
            assert_eq!(files.len(), levels_for(n as u64));
            assert_eq!(
                rebuilt.root(n as u64).expect("root"),
                appended.root(n as u64).expect("root")
            );
        }
    }

    #[test]
    fn a_rebuilt_tree_appends_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = leaves(77);
        let mut t = Tree::rebuild(dir.path(), d[..50].iter().copied()).expect("rebuild");
        for l in &d[50..] {
            t.append(l).expect("append");
        }
        assert_eq!(t.root(77).expect("root"), ref_mth::<Blake3>(&d));
        t.sync().expect("sync");
    }

    #[test]
    fn open_creates_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.tree");
        let mut t = Tree::open(&path, 0).expect("open").expect("an empty tree");
        assert_eq!(t.root(0).expect("root"), empty_root());
        t.append(&leaf_hash(b"first")).expect("append");
        assert_eq!(t.root(1).expect("root"), leaf_hash(b"first"));
        assert!(Tree::open(&dir.path().join("missing"), 3).expect("open").is_none());
    }

    #[test]
    fn out_of_range_requests_are_errors_that_say_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = build(dir.path(), &leaves(10));
        let msg = |e: TreeError| e.to_string();
        assert_eq!(msg(t.leaf(12).unwrap_err()), "entry 12 is past the ledger's 10 entries");
        assert_eq!(
            msg(t.inclusion_proof(4, 4).unwrap_err()),
            "entry 4 is past the ledger's 4 entries"
        );
        assert_eq!(
            msg(t.inclusion_proof(0, 11).unwrap_err()),
            "a ledger of 11 entries was asked of one that has 10"
        );
        assert_eq!(
            msg(t.consistency_proof(0, 5).unwrap_err()),
            "no consistency proof from 0 to 5 entries: it needs 0 < old <= new"
        );
        assert!(matches!(
            t.consistency_proof(6, 5),
            Err(TreeError::BadConsistencyRange { old: 6, new: 5 })
        ));
        assert!(matches!(t.consistency_proof(5, 11), Err(TreeError::SizePastEnd { .. })));
        assert!(matches!(
            Tree::open(dir.path(), u64::MAX),
            Err(TreeError::TooLarge { .. })
        ));
        assert_eq!(t.consistency_proof(10, 10).expect("proof"), Vec::<Hash>::new());
    }

    #[test]
    fn io_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = build(dir.path(), &leaves(10));
        // Damage behind the tree's back: the level file is cut under it.
        fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("0"))
            .and_then(|f| f.set_len(0))
            .expect("cut");
        let e = t.leaf(3).unwrap_err();
        assert!(
            matches!(&e, TreeError::Io { path, .. } if path == &dir.path().join("0")),
            "{e}"
        );
    }

    // ---- Certificate Transparency's reference values, with SHA-256 ----

    struct Sha256;

    impl TreeHasher for Sha256 {
        fn leaf(data: &[u8]) -> Hash {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update([0x00]);
            h.update(data);
            let mut out = [0u8; 32];
            out.copy_from_slice(&h.finalize());
            out
        }

        fn node(left: &Hash, right: &Hash) -> Hash {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update([0x01]);
            h.update(left);
            h.update(right);
            let mut out = [0u8; 32];
            out.copy_from_slice(&h.finalize());
            out
        }

        fn empty() -> Hash {
            use sha2::Digest;
            let mut out = [0u8; 32];
            out.copy_from_slice(&sha2::Sha256::digest(b""));
            out
        }
    }

    fn unhex(s: &str) -> Hash {
        crate::id::ObjectId::from_hex(s).expect("64 hex digits").0
    }

    /// The 8 leaves and the roots of their prefixes D[0..=8] used by the
    /// Certificate Transparency and Trillian tests (RFC 6962 with SHA-256).
    const CT_LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn with_sha256_the_tree_is_certificate_transparencys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d: Vec<Hash> = CT_LEAVES.iter().map(|l| Sha256::leaf(l)).collect();
        let mut t = Levels::<Sha256>::open(dir.path(), 0).expect("open").expect("empty");
        for l in &d {
            t.append(l).expect("append");
        }
        for (n, want) in CT_ROOTS.iter().enumerate() {
            assert_eq!(t.root(n as u64).expect("root"), unhex(want), "root of {n} leaves");
            assert_eq!(ref_mth::<Sha256>(&d[..n]), unhex(want), "reference root of {n} leaves");
        }
        let rebuilt = Levels::<Sha256>::rebuild(&dir.path().join("r"), d.iter().copied()).expect("rebuild");
        assert_eq!(rebuilt.root(8).expect("root"), unhex(CT_ROOTS[8]));

        // Leaf 0's inclusion proof in the tree of 8 (the CT test data).
        let path = t.inclusion_proof(0, 8).expect("proof");
        let want = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(path, want.map(unhex));
        let root8 = unhex(CT_ROOTS[8]);
        assert!(verify_inclusion_with::<Sha256>(&d[0], 0, 8, &path, &root8));
        for n in 1..=8u64 {
            for m in 1..=n {
                let p = t.consistency_proof(m, n).expect("proof");
                let (old, new) = (unhex(CT_ROOTS[m as usize]), unhex(CT_ROOTS[n as usize]));
                assert!(verify_consistency_with::<Sha256>(m, n, &old, &new, &p), "{m} -> {n}");
            }
            for i in 0..n {
                let p = t.inclusion_proof(i, n).expect("proof");
                let root = unhex(CT_ROOTS[n as usize]);
                assert!(
                    verify_inclusion_with::<Sha256>(&d[i as usize], i, n, &p, &root),
                    "{i} in {n}"
                );
            }
        }
    }
}
