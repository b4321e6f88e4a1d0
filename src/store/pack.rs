//! Pack files and their indexes: how objects are laid out on disk.
//!
//! A pack is a header followed by object records back to back; its index is
//! a sorted table of (id, offset, length, kind) with a 256-entry fanout and a
//! BLAKE3 trailer. Every byte is described in `store-format.md`, "Packs".
//! A write transaction ([`ObjectWriter`]) gives each rayon worker thread its
//! own pack, so parallel hashing never contends on a shared writer; the whole
//! transaction costs one fsync per pack and index, not one per object.

use crate::error::{Error, IoResultExt, Result};
use crate::id::ObjectId;
use crate::object::{ENCODING_VERSION, ObjectKind, object_id_v};
use memmap2::Mmap;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Magic at the start of every object record.
pub const RECORD_MAGIC: &[u8; 4] = b"CPOB";
/// Magic at the start of a pack file.
pub const PACK_MAGIC: &[u8; 4] = b"CPPK";
/// Magic at the start of a pack index.
pub const IDX_MAGIC: &[u8; 4] = b"CPIX";
/// Version byte of pack and index headers (their layout is unchanged since format 1).
pub const PACK_VERSION: u8 = 1;
/// Record version byte: the encoding of the object's body. Records written
/// now carry [`ENCODING_VERSION`] (2); records of format 1 (version 1) are
/// read by `cplane upgrade` and fsck.
pub const RECORD_VERSIONS: [u8; 2] = [1, ENCODING_VERSION];
/// Bytes in a record header: magic 4, version 1, kind 1, compression 1, reserved 1, body length 8.
pub const RECORD_HEADER_LEN: usize = 16;
/// Bytes in a pack header: magic 4, version 1, reserved 3.
pub const PACK_HEADER_LEN: u64 = 8;
/// Bytes in an index header: magic 4, version 1, reserved 3, count 8.
const IDX_HEADER_LEN: usize = 16;
/// Bytes of the fanout table: 256 little-endian u32.
const FANOUT_LEN: usize = 256 * 4;
/// Bytes per index entry: id 32, offset 8, record length 8, kind 1, reserved 7.
const IDX_ENTRY_LEN: usize = 56;
/// Bytes of the BLAKE3 trailer of an index.
const IDX_TRAILER_LEN: usize = 32;
/// Compression byte: body stored as is.
pub const COMPRESSION_NONE: u8 = 0;
/// Compression byte: body is one zstd frame.
pub const COMPRESSION_ZSTD: u8 = 1;
/// zstd level for object bodies: level 1 keeps snapshotting near disk speed.
pub const ZSTD_LEVEL: i32 = 1;
/// Largest body, in bytes, that is ever decoded in memory (trees and snapshots;
/// blobs are streamed). A larger header value is store damage.
pub const MAX_IN_MEMORY_BODY: u64 = 1 << 30;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `body` with this thread's reusable zstd context.
fn compress(body: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        c.as_mut().expect("initialised above").compress(body)
    })
}

/// Decompresses `data` (at most `len` bytes of output) with this thread's
/// reusable zstd context.
fn decompress(data: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    decompress_into(data, &mut out)?;
    Ok(out)
}

/// Decompresses `data` into `out`'s spare capacity (from its start; the
/// output may not exceed the capacity) with this thread's reusable zstd
/// context. Returns the decoded length.
fn decompress_into(data: &[u8], out: &mut Vec<u8>) -> std::io::Result<usize> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("initialised above").decompress_to_buffer(data, out)
    })
}

/// Checks the start of a stored zstd frame (RFC 8878 §3.1.1): the magic
/// number, and the frame header descriptor's unused (bit 4) and reserved
/// (bit 3) bits, which every encoder writes as 0. A decoder ignores the
/// unused bit, so a flip there would otherwise decode to the same bytes
/// and go unseen; the stored bytes must be exactly what was written.
fn check_frame_start(start: &[u8]) -> std::result::Result<(), String> {
    match start {
        [0x28, 0xb5, 0x2f, 0xfd, fhd, ..] if fhd & 0b0001_1000 == 0 => Ok(()),
        [0x28, 0xb5, 0x2f, 0xfd, fhd, ..] => Err(format!(
            "zstd frame header descriptor {fhd:#04x} has its unused or reserved bit set"
        )),
        _ => Err("stored body does not start with a zstd frame".into()),
    }
}

/// One row of a pack index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxEntry {
    /// The object's id.
    pub id: ObjectId,
    /// Byte offset of the record in the pack.
    pub offset: u64,
    /// Record length in bytes (header + stored body).
    pub len: u64,
    /// The object's kind.
    pub kind: ObjectKind,
}

/// Encodes a record header.
fn record_header(kind: ObjectKind, compression: u8, body_len: u64) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[..4].copy_from_slice(RECORD_MAGIC);
    h[4] = ENCODING_VERSION;
    h[5] = kind as u8;
    h[6] = compression;
    h[8..16].copy_from_slice(&body_len.to_le_bytes());
    h
}

/// Checks a record header against its index entry `e`: (compression byte,
/// body length, record version).
fn parse_record_header(e: &IdxEntry, h: &[u8; RECORD_HEADER_LEN]) -> std::result::Result<(u8, u64, u8), String> {
    if &h[..4] != RECORD_MAGIC {
        return Err("record header has the wrong magic".into());
    }
    if !RECORD_VERSIONS.contains(&h[4]) || h[7] != 0 {
        return Err(format!(
            "record header version/reserved bytes are {}/{}, expected 1 or {ENCODING_VERSION}/0",
            h[4], h[7]
        ));
    }
    if h[5] != e.kind as u8 {
        return Err(format!(
            "record kind byte {} but the index says {}",
            h[5],
            e.kind.name()
        ));
    }
    let body_len = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    Ok((h[6], body_len, h[4]))
}

/// Decodes a record's stored bytes (`body_len` at most
/// [`MAX_IN_MEMORY_BODY`], checked by the caller) and checks that they
/// hash to `e.id` by the id rule of record version `version`.
fn decode_stored(
    e: &IdxEntry,
    compression: u8,
    body_len: u64,
    version: u8,
    stored: Vec<u8>,
) -> std::result::Result<Vec<u8>, String> {
    let body = match compression {
        COMPRESSION_NONE => stored,
        COMPRESSION_ZSTD => {
            check_frame_start(&stored)?;
            // Compare the frame's own size field before allocating for it.
            match zstd::zstd_safe::get_frame_content_size(&stored) {
                Ok(Some(n)) if n == body_len => {}
                other => {
                    return Err(format!(
                        "zstd frame declares {other:?} bytes but the header says {body_len}"
                    ));
                }
            }
            decompress(&stored, body_len as usize).map_err(|err| format!("zstd: {err}"))?
        }
        c => return Err(format!("unknown compression byte {c}")),
    };
    if body.len() as u64 != body_len {
        return Err(format!(
            "body should have been {body_len} bytes long, but was {}",
            body.len()
        ));
    }
    let actual = object_id_v(e.kind, version, &body);
    if actual != e.id {
        return Err(format!("content hashes to {actual}"));
    }
    Ok(body)
}

/// Decodes one whole record `rec` (header and stored body, as read from a
/// pack at `e.offset`, e.g. by a ranged read of a remote pack) with the
/// checks [`PackIndex::read`] makes: the header against `e`, the size
/// limits, the zstd frame, and the id. Returns the body and its record
/// version.
///
/// # Errors
/// What is wrong, as a sentence (the caller names the object and where).
pub fn decode_record(e: &IdxEntry, rec: &[u8]) -> std::result::Result<(Vec<u8>, u8), String> {
    if rec.len() as u64 != e.len {
        return Err(format!("record is {} bytes, but the index says {}", rec.len(), e.len));
    }
    let Some((h, stored)) = rec.split_first_chunk::<RECORD_HEADER_LEN>() else {
        return Err(format!("record length {} is shorter than its header", e.len));
    };
    let (compression, body_len, version) = parse_record_header(e, h)?;
    if body_len > MAX_IN_MEMORY_BODY {
        return Err(format!(
            "header says the body is {body_len} bytes, more than the {MAX_IN_MEMORY_BODY} a {} may have",
            e.kind.name()
        ));
    }
    let body = decode_stored(e, compression, body_len, version, stored.to_vec())?;
    Ok((body, version))
}

/// An opened pack and its memory-mapped index.
#[derive(Debug)]
pub struct PackIndex {
    /// Path of the `.pack` file.
    pub pack_path: PathBuf,
    /// Path of the `.idx` file.
    pub idx_path: PathBuf,
    pack: File,
    map: Mmap,
    count: usize,
}

impl PackIndex {
    /// Opens `idx_path` and the `.pack` beside it, checking header and size.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] when the index is malformed, [`Error::Io`] when unreadable.
    pub fn open(idx_path: &Path) -> Result<Self> {
        let damaged = |reason: String| Error::DamagedFile {
            path: idx_path.to_path_buf(),
            reason,
        };
        let f = File::open(idx_path).at(idx_path)?;
        // SAFETY: index files are written once, fsynced and renamed into place, and never
        // modified afterwards; cplane holds no mutable alias to them.
        let map = unsafe { Mmap::map(&f) }.at(idx_path)?;
        if map.len() < IDX_HEADER_LEN + FANOUT_LEN + IDX_TRAILER_LEN || &map[..4] != IDX_MAGIC {
            return Err(damaged("not a cplane pack index".into()));
        }
        if map[4] > PACK_VERSION {
            return Err(Error::NewerFormat {
                path: idx_path.to_path_buf(),
                found: map[4] as u32,
                supported: PACK_VERSION as u32,
            });
        }
        let count64 = u64::from_le_bytes(map[8..16].try_into().expect("8 bytes"));
        let fixed = (IDX_HEADER_LEN + FANOUT_LEN + IDX_TRAILER_LEN) as u64;
        let expected = count64
            .checked_mul(IDX_ENTRY_LEN as u64)
            .and_then(|n| n.checked_add(fixed));
        let count = count64 as usize;
        if expected != Some(map.len() as u64) {
            return Err(damaged(match expected {
                Some(n) => format!(
                    "should have been {n} bytes long for {count64} entries, but was {}",
                    map.len()
                ),
                None => format!("entry count {count64} is impossible for a {}-byte index", map.len()),
            }));
        }
        let pack_path = idx_path.with_extension("pack");
        let pack = File::open(&pack_path).at(&pack_path)?;
        Ok(PackIndex {
            pack_path,
            idx_path: idx_path.to_path_buf(),
            pack,
            map,
            count,
        })
    }

    /// Number of objects in the pack.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the pack holds no objects.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn fanout(&self, byte: usize) -> usize {
        let o = IDX_HEADER_LEN + byte * 4;
        u32::from_le_bytes(self.map[o..o + 4].try_into().expect("4 bytes")) as usize
    }

    fn entry_id(&self, i: usize) -> &[u8] {
        let o = IDX_HEADER_LEN + FANOUT_LEN + i * IDX_ENTRY_LEN;
        &self.map[o..o + 32]
    }

    /// The `i`-th entry in id order; `None` when the kind byte is unknown.
    pub fn entry(&self, i: usize) -> Option<IdxEntry> {
        let o = IDX_HEADER_LEN + FANOUT_LEN + i * IDX_ENTRY_LEN;
        let e = &self.map[o..o + IDX_ENTRY_LEN];
        Some(IdxEntry {
            id: ObjectId(e[..32].try_into().expect("32 bytes")),
            offset: u64::from_le_bytes(e[32..40].try_into().expect("8 bytes")),
            len: u64::from_le_bytes(e[40..48].try_into().expect("8 bytes")),
            kind: ObjectKind::from_byte(e[48])?,
        })
    }

    /// Range of entry positions whose id starts with byte `b`.
    fn bucket(&self, b: u8) -> (usize, usize) {
        let lo = if b == 0 { 0 } else { self.fanout(b as usize - 1) };
        let hi = self.fanout(b as usize);
        (lo.min(self.count), hi.min(self.count))
    }

    /// Binary search for `id`; returns its position.
    pub fn find(&self, id: &ObjectId) -> Option<usize> {
        let (mut lo, mut hi) = self.bucket(id.0[0]);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.entry_id(mid).cmp(&id.0[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Positions of entries whose hex id starts with `prefix` (lower-case hex, ≥ 2 digits).
    pub fn find_prefix(&self, prefix: &str) -> Vec<usize> {
        let Some(first) = prefix.get(..2).and_then(|p| u8::from_str_radix(p, 16).ok()) else {
            return Vec::new();
        };
        let (lo, hi) = self.bucket(first);
        (lo..hi)
            .filter(|&i| crate::id::to_hex(self.entry_id(i)).starts_with(prefix))
            .collect()
    }

    /// Checks the index's BLAKE3 trailer and that entries are sorted and fanout consistent.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] naming the index file and the first inconsistency.
    pub fn check(&self) -> Result<()> {
        let mut ph = [0u8; PACK_HEADER_LEN as usize];
        self.pack.read_exact_at(&mut ph, 0).map_err(|e| Error::DamagedFile {
            path: self.pack_path.clone(),
            reason: format!("cannot read the pack header: {e}"),
        })?;
        if &ph[..4] != PACK_MAGIC || ph[4] != PACK_VERSION || ph[5..] != [0, 0, 0] {
            return Err(Error::DamagedFile {
                path: self.pack_path.clone(),
                reason: "pack header is not `CPPK`, version 1, three zero bytes".into(),
            });
        }
        let pack_len = self.pack.metadata().map(|m| m.len()).unwrap_or(0);
        self.check_entries(pack_len)
    }

    /// The checks of [`PackIndex::check`] that need only the index and the
    /// pack's length (`fsck --remote` without its pack): trailer, order,
    /// kinds, records tiling `pack_len` bytes, fanout.
    ///
    /// # Errors
    /// [`Error::DamagedFile`] naming the index file and the first inconsistency.
    pub fn check_entries(&self, pack_len: u64) -> Result<()> {
        let damaged = |reason: String| Error::DamagedFile {
            path: self.idx_path.clone(),
            reason,
        };
        if self.map[5..8] != [0, 0, 0] {
            return Err(damaged("reserved header bytes are not zero".into()));
        }
        let body_end = self.map.len() - IDX_TRAILER_LEN;
        if blake3::hash(&self.map[..body_end]).as_bytes()[..] != self.map[body_end..] {
            return Err(damaged("BLAKE3 trailer does not match the index contents".into()));
        }
        let mut spans = Vec::with_capacity(self.count);
        for i in 0..self.count {
            if i > 0 && self.entry_id(i - 1) >= self.entry_id(i) {
                return Err(damaged(format!("entry {i} is out of order")));
            }
            let e = self
                .entry(i)
                .ok_or_else(|| damaged(format!("entry {i} has an unknown kind byte")))?;
            let end = e
                .offset
                .checked_add(e.len)
                .ok_or_else(|| damaged(format!("entry {i} overflows: offset {} + length {}", e.offset, e.len)))?;
            spans.push((e.offset, end));
        }
        // Records must tile the pack exactly: no gaps (unchecked bytes) and no overlaps.
        spans.sort_unstable();
        let mut at = PACK_HEADER_LEN;
        for (start, end) in spans {
            if start != at {
                return Err(damaged(format!(
                    "records do not tile the pack: expected a record at offset {at}, found one at {start}"
                )));
            }
            at = end;
        }
        if at != pack_len {
            return Err(damaged(format!(
                "records end at offset {at} but the pack is {pack_len} bytes long"
            )));
        }
        let mut counts = [0usize; 256];
        for i in 0..self.count {
            counts[self.entry_id(i)[0] as usize] += 1;
        }
        let mut n = 0usize;
        for (b, c) in counts.iter().enumerate() {
            n += c;
            if self.fanout(b) != n {
                return Err(damaged(format!(
                    "fanout entry {b} is {} but should be {n}",
                    self.fanout(b)
                )));
            }
        }
        Ok(())
    }

    fn location(&self, e: &IdxEntry) -> String {
        format!("{} offset {}", self.pack_path.display(), e.offset)
    }

    /// Reads and checks a record header: (compression byte, body length, record version).
    fn read_header(&self, e: &IdxEntry) -> Result<(u8, u64, u8)> {
        let corrupt = |reason: String| Error::CorruptObject {
            id: e.id.to_hex(),
            location: self.location(e),
            reason,
        };
        let mut h = [0u8; RECORD_HEADER_LEN];
        if e.len < RECORD_HEADER_LEN as u64 {
            return Err(corrupt(format!("record length {} is shorter than its header", e.len)));
        }
        self.pack
            .read_exact_at(&mut h, e.offset)
            .map_err(|err| corrupt(format!("cannot read header: {err}")))?;
        parse_record_header(e, &h).map_err(corrupt)
    }

    /// Reads, decompresses and verifies one object; the body is returned only
    /// if it hashes to `e.id` (by the id rule of its record version), with that version.
    ///
    /// # Errors
    /// [`Error::CorruptObject`] naming the id, pack and offset.
    pub fn read(&self, e: &IdxEntry) -> Result<(Vec<u8>, u8)> {
        let corrupt = |reason: String| Error::CorruptObject {
            id: e.id.to_hex(),
            location: self.location(e),
            reason,
        };
        let (compression, body_len, version) = self.read_header(e)?;
        if body_len > MAX_IN_MEMORY_BODY || e.len > MAX_IN_MEMORY_BODY + RECORD_HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "header says the body is {body_len} bytes, more than the {MAX_IN_MEMORY_BODY} a {} may have",
                e.kind.name()
            )));
        }
        let stored_len = (e.len - RECORD_HEADER_LEN as u64) as usize;
        let mut stored = vec![0u8; stored_len];
        self.pack
            .read_exact_at(&mut stored, e.offset + RECORD_HEADER_LEN as u64)
            .map_err(|err| corrupt(format!("cannot read {stored_len} stored bytes: {err}")))?;
        let body = decode_stored(e, compression, body_len, version, stored).map_err(corrupt)?;
        Ok((body, version))
    }

    /// The raw record bytes (header and stored body) of `e`, for copying into another pack.
    ///
    /// # Errors
    /// [`Error::CorruptObject`] when the record cannot be read.
    pub fn raw_record(&self, e: &IdxEntry) -> Result<Vec<u8>> {
        if e.len > MAX_IN_MEMORY_BODY {
            return Err(Error::CorruptObject {
                id: e.id.to_hex(),
                location: self.location(e),
                reason: format!("record length {} is too large to copy in memory", e.len),
            });
        }
        let mut rec = vec![0u8; e.len as usize];
        self.pack
            .read_exact_at(&mut rec, e.offset)
            .map_err(|err| Error::CorruptObject {
                id: e.id.to_hex(),
                location: self.location(e),
                reason: format!("cannot read {} record bytes: {err}", e.len),
            })?;
        Ok(rec)
    }

    /// Writes the raw record bytes (header and stored body) of `e` to `out`
    /// in chunks of at most 1 MiB, so a record of any size is copied in
    /// bounded memory (gc rewriting a pack). Returns the bytes written.
    ///
    /// # Errors
    /// [`Error::CorruptObject`] when the record cannot be read; [`Error::Io`]
    /// from `out`, reported against `out_path`.
    pub fn copy_raw_to(&self, e: &IdxEntry, out: &mut dyn Write, out_path: &Path) -> Result<u64> {
        let mut buf = vec![0u8; e.len.min(1 << 20) as usize];
        let mut at = 0u64;
        while at < e.len {
            let n = (e.len - at).min(buf.len() as u64) as usize;
            self.pack
                .read_exact_at(&mut buf[..n], e.offset + at)
                .map_err(|err| Error::CorruptObject {
                    id: e.id.to_hex(),
                    location: self.location(e),
                    reason: format!("cannot read {} record bytes: {err}", e.len),
                })?;
            out.write_all(&buf[..n]).at(out_path)?;
            at += n as u64;
        }
        Ok(e.len)
    }

    /// Fully checks one object: decodes it and re-hashes it against its id
    /// (blobs are streamed, never held in memory). Returns the body length.
    ///
    /// # Errors
    /// [`Error::CorruptObject`] naming the id, pack and offset.
    pub fn verify_entry(&self, e: &IdxEntry) -> Result<u64> {
        match e.kind {
            ObjectKind::Blob => self.read_blob_to(e, &mut std::io::sink(), &self.pack_path),
            ObjectKind::Tree | ObjectKind::Snapshot => {
                let (body, version) = self.read(e)?;
                crate::upgrade::decode_any(e.kind, version, e.id, &body)?;
                Ok(body.len() as u64)
            }
        }
    }

    /// Streams a blob's bytes into `out`, verifying the BLAKE3 id at the end.
    ///
    /// Memory stays bounded for any blob size. The caller must discard what
    /// was written if this returns an error.
    ///
    /// # Errors
    /// [`Error::CorruptObject`] when the bytes do not hash to the id; [`Error::Io`] from `out`
    /// is reported against `out_path`.
    pub fn read_blob_to(&self, e: &IdxEntry, out: &mut dyn Write, out_path: &Path) -> Result<u64> {
        let corrupt = |reason: String| Error::CorruptObject {
            id: e.id.to_hex(),
            location: self.location(e),
            reason,
        };
        if e.len <= SMALL_BLOB_RECORD
            && let Some(n) = self.read_small_blob_to(e, out, out_path)?
        {
            return Ok(n);
        }
        let (compression, body_len, _) = self.read_header(e)?;
        let region = RegionReader {
            file: &self.pack,
            pos: e.offset + RECORD_HEADER_LEN as u64,
            end: e.offset.saturating_add(e.len),
        };
        let mut hasher = blake3::Hasher::new();
        let mut written = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        let mut reader: Box<dyn Read> = match compression {
            COMPRESSION_NONE => Box::new(region),
            COMPRESSION_ZSTD => {
                // The decoder's own input buffer, filled once here to check the
                // frame's start: no extra read.
                let mut frame = std::io::BufReader::with_capacity(zstd::zstd_safe::DCtx::in_size(), region);
                let start = frame
                    .fill_buf()
                    .map_err(|err| corrupt(format!("cannot read the zstd frame: {err}")))?;
                check_frame_start(start).map_err(corrupt)?;
                Box::new(
                    zstd::stream::read::Decoder::with_buffer(frame).map_err(|err| corrupt(format!("zstd: {err}")))?,
                )
            }
            c => return Err(corrupt(format!("unknown compression byte {c}"))),
        };
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|err| corrupt(format!("cannot decode body: {err}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).at(out_path)?;
            written += n as u64;
            if written > body_len {
                return Err(corrupt(format!(
                    "body is longer than the {body_len} bytes its header says"
                )));
            }
        }
        if written != body_len {
            return Err(corrupt(format!(
                "body should have been {body_len} bytes long, but was {written}"
            )));
        }
        let actual = ObjectId(*hasher.finalize().as_bytes());
        if actual != e.id {
            return Err(corrupt(format!("content hashes to {actual}")));
        }
        Ok(written)
    }
}

/// Blob records up to this many bytes (header and stored body) whose body is
/// at most [`SMALL_BLOB_BODY`] bytes are read in one `pread` and decoded in
/// memory with this thread's reusable buffers and zstd context
/// ([`PackIndex::read_small_blob_to`]); others stream.
const SMALL_BLOB_RECORD: u64 = 1 << 20;
/// See [`SMALL_BLOB_RECORD`].
const SMALL_BLOB_BODY: u64 = 4 << 20;

thread_local! {
    /// A small blob's record, then its decoded body: reused, so reading many
    /// small blobs allocates and zeroes nothing per blob.
    static SMALL_BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl PackIndex {
    /// [`PackIndex::read_blob_to`] for a record of at most
    /// [`SMALL_BLOB_RECORD`] bytes: one positioned read of the whole record,
    /// a decode into a buffer bounded by the header's body length (a frame
    /// that decodes to more is refused, not followed), one hash, one write.
    /// `Ok(None)`, having written nothing, when the header declares a body
    /// longer than [`SMALL_BLOB_BODY`]: the caller streams it.
    fn read_small_blob_to(&self, e: &IdxEntry, out: &mut dyn Write, out_path: &Path) -> Result<Option<u64>> {
        let corrupt = |reason: String| Error::CorruptObject {
            id: e.id.to_hex(),
            location: self.location(e),
            reason,
        };
        if e.len < RECORD_HEADER_LEN as u64 {
            return Err(corrupt(format!("record length {} is shorter than its header", e.len)));
        }
        SMALL_BUFFERS.with(|bufs| {
            let (rec, body) = &mut *bufs.borrow_mut();
            rec.resize(e.len as usize, 0);
            self.pack
                .read_exact_at(rec, e.offset)
                .map_err(|err| corrupt(format!("cannot read {} record bytes: {err}", e.len)))?;
            let (h, stored) = rec.split_at(RECORD_HEADER_LEN);
            let (compression, body_len, _) =
                parse_record_header(e, h.try_into().expect("header length")).map_err(corrupt)?;
            let longer = || corrupt(format!("body is longer than the {body_len} bytes its header says"));
            let bytes: &[u8] = match compression {
                COMPRESSION_NONE => stored,
                COMPRESSION_ZSTD => {
                    check_frame_start(stored).map_err(corrupt)?;
                    if body_len > SMALL_BLOB_BODY {
                        return Ok(None);
                    }
                    body.clear();
                    // One byte of room past the declared length, so a frame
                    // that decodes to more fails here or shows as longer.
                    body.reserve_exact(body_len as usize + 1);
                    decompress_into(stored, body).map_err(|err| corrupt(format!("cannot decode body: {err}")))?;
                    body
                }
                c => return Err(corrupt(format!("unknown compression byte {c}"))),
            };
            let written = bytes.len() as u64;
            if written > body_len {
                return Err(longer());
            }
            if written != body_len {
                return Err(corrupt(format!(
                    "body should have been {body_len} bytes long, but was {written}"
                )));
            }
            let actual = ObjectId(*blake3::hash(bytes).as_bytes());
            if actual != e.id {
                return Err(corrupt(format!("content hashes to {actual}")));
            }
            out.write_all(bytes).at(out_path)?;
            Ok(Some(written))
        })
    }
}

/// `Read` over a byte range of a file using positioned reads.
struct RegionReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RegionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A pack being written by one thread.
struct PackWriter {
    tmp: tempfile::NamedTempFile,
    out: BufWriter<File>,
    pos: u64,
    entries: Vec<IdxEntry>,
    /// Bytes before this offset were handed to the kernel's writeback
    /// ([`PackWriter::start_writeback`]).
    written_back: u64,
}

/// How many bytes a pack grows by between two starts of its writeback.
const WRITEBACK_STEP: u64 = 8 << 20;

impl PackWriter {
    fn new(tmp_dir: &Path) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("pack-")
            .suffix(".tmp")
            .tempfile_in(tmp_dir)
            .at(tmp_dir)?;
        let file = tmp.reopen().at(tmp.path())?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut header = [0u8; PACK_HEADER_LEN as usize];
        header[..4].copy_from_slice(PACK_MAGIC);
        header[4] = PACK_VERSION;
        out.write_all(&header).at(tmp.path())?;
        Ok(PackWriter {
            tmp,
            out,
            pos: PACK_HEADER_LEN,
            entries: Vec::new(),
            written_back: 0,
        })
    }

    /// Starts writing what the pack's file holds to disk, without waiting
    /// for it, once it grew by [`WRITEBACK_STEP`] since the last start, so
    /// the fsync that makes the pack durable finds most of it written:
    /// until then the disk is mostly idle (the kernel's own writeback starts
    /// at gigabytes of dirty pages, or after 30 s). Linux's
    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)` on whole pages (the last,
    /// partial one is left for the next start or the fsync, so no page is
    /// written twice), at most 32 MiB per call; elsewhere, or when it fails,
    /// the fsync does all the writing, as before. Nothing is dropped from
    /// the page cache.
    fn start_writeback(&mut self) {
        // A multiple of every page size Linux uses (4, 16 and 64 KiB).
        const ALIGN: u64 = 64 << 10;
        let in_kernel = (self.pos - self.out.buffer().len() as u64) / ALIGN * ALIGN;
        if in_kernel.saturating_sub(self.written_back) < WRITEBACK_STEP {
            return;
        }
        // At most a few steps at once: after a large streamed record, the
        // rest is started by the next appends, or written by the fsync.
        let in_kernel = in_kernel.min(self.written_back + 4 * WRITEBACK_STEP);
        crate::fsutil::start_writeback(self.out.get_ref(), self.written_back, in_kernel);
        self.written_back = in_kernel;
    }

    fn append(&mut self, kind: ObjectKind, id: ObjectId, compression: u8, body_len: u64, stored: &[u8]) -> Result<u64> {
        let len = RECORD_HEADER_LEN as u64 + stored.len() as u64;
        self.out
            .write_all(&record_header(kind, compression, body_len))
            .at(self.tmp.path())?;
        self.out.write_all(stored).at(self.tmp.path())?;
        self.entries.push(IdxEntry {
            id,
            offset: self.pos,
            len,
            kind,
        });
        self.pos += len;
        self.start_writeback();
        Ok(len)
    }

    /// Appends a record copied verbatim from another pack.
    fn append_record(&mut self, e: &IdxEntry, record: &[u8]) -> Result<()> {
        let path = self.tmp.path().to_path_buf();
        self.out.write_all(record).at(&path)?;
        self.entries.push(IdxEntry {
            id: e.id,
            offset: self.pos,
            len: record.len() as u64,
            kind: e.kind,
        });
        self.pos += record.len() as u64;
        self.start_writeback();
        Ok(())
    }

    /// Appends the record `e` of pack `src`, copied verbatim in bounded memory.
    fn append_record_from(&mut self, src: &PackIndex, e: &IdxEntry) -> Result<u64> {
        let path = self.tmp.path().to_path_buf();
        let n = src.copy_raw_to(e, &mut self.out, &path)?;
        self.entries.push(IdxEntry {
            id: e.id,
            offset: self.pos,
            len: n,
            kind: e.kind,
        });
        self.pos += n;
        self.start_writeback();
        Ok(n)
    }

    /// Streams `reader` through zstd into a new record, hashing the raw bytes.
    /// On a hash mismatch (the source changed) the record is cut off again.
    fn append_stream(&mut self, id: ObjectId, body_len: u64, reader: &mut dyn Read, src: &Path) -> Result<Option<u64>> {
        let path = self.tmp.path().to_path_buf();
        let start = self.pos;
        self.out
            .write_all(&record_header(ObjectKind::Blob, COMPRESSION_ZSTD, body_len))
            .at(&path)?;
        let mut hasher = blake3::Hasher::new();
        let mut read = 0u64;
        {
            let mut enc = zstd::stream::write::Encoder::new(&mut self.out, ZSTD_LEVEL).at(&path)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = reader.read(&mut buf).at(src)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                enc.write_all(&buf[..n]).at(&path)?;
                read += n as u64;
            }
            enc.finish().at(&path)?;
        }
        self.out.flush().at(&path)?;
        let end = self.out.get_ref().metadata().at(&path)?.len();
        if read != body_len || ObjectId(*hasher.finalize().as_bytes()) != id {
            let f = self.out.get_mut();
            f.set_len(start).at(&path)?;
            f.seek(SeekFrom::Start(start)).at(&path)?;
            // (Writeback never started past the record's first page.)
            debug_assert!(self.written_back <= start);
            return Ok(None);
        }
        self.entries.push(IdxEntry {
            id,
            offset: start,
            len: end - start,
            kind: ObjectKind::Blob,
        });
        self.pos = end;
        self.start_writeback();
        Ok(Some(end - start))
    }

    /// Makes the pack and its index durable under `packs_dir`. Returns the index path.
    fn finish(mut self, packs_dir: &Path) -> Result<Option<PathBuf>> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let path = self.tmp.path().to_path_buf();
        self.out.flush().at(&path)?;
        self.out.get_ref().sync_all().at(&path)?;
        self.entries.sort_by_key(|a| a.id);
        self.entries.dedup_by(|a, b| a.id == b.id);
        let idx = encode_index(&self.entries);
        let name = blake3::hash(&idx).to_hex();
        let pack_path = packs_dir.join(format!("pack-{name}.pack"));
        let idx_path = packs_dir.join(format!("pack-{name}.idx"));
        let tmp_dir = self.tmp.path().parent().unwrap_or(packs_dir).to_path_buf();
        self.tmp.persist(&pack_path).map_err(|e| e.error).at(&pack_path)?;
        // The pack is in place before its index: readers only see packs that have an index.
        // The caller fsyncs `packs_dir` once for all packs of the transaction.
        let itmp = crate::fsutil::write_temp(&idx, &tmp_dir, true)?;
        itmp.persist(&idx_path).map_err(|e| e.error).at(&idx_path)?;
        Ok(Some(idx_path))
    }
}

/// Serialises a sorted entry list as a pack index (header, fanout, entries, BLAKE3 trailer).
fn encode_index(entries: &[IdxEntry]) -> Vec<u8> {
    let mut v = Vec::with_capacity(IDX_HEADER_LEN + FANOUT_LEN + entries.len() * IDX_ENTRY_LEN + IDX_TRAILER_LEN);
    v.extend_from_slice(IDX_MAGIC);
    v.extend_from_slice(&[PACK_VERSION, 0, 0, 0]);
    v.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    let mut counts = [0u32; 256];
    for e in entries {
        counts[e.id.0[0] as usize] += 1;
    }
    let mut acc = 0u32;
    for c in counts {
        acc += c;
        v.extend_from_slice(&acc.to_le_bytes());
    }
    for e in entries {
        v.extend_from_slice(&e.id.0);
        v.extend_from_slice(&e.offset.to_le_bytes());
        v.extend_from_slice(&e.len.to_le_bytes());
        v.extend_from_slice(&[e.kind as u8, 0, 0, 0, 0, 0, 0, 0]);
    }
    let trailer = blake3::hash(&v);
    v.extend_from_slice(trailer.as_bytes());
    v
}

/// A standalone pack built from records of other packs, copied verbatim:
/// what a push uploads to a remote (`store-format.md`, "Remotes"). Not part
/// of the local store: [`PackBuilder::finish`] names it into any directory.
pub struct PackBuilder {
    w: PackWriter,
    ids: HashSet<ObjectId>,
}

impl PackBuilder {
    /// Starts a pack in `tmp_dir` (a temporary file there until finished).
    ///
    /// # Errors
    /// [`Error::Io`] naming `tmp_dir`.
    pub fn new(tmp_dir: &Path) -> Result<Self> {
        Ok(PackBuilder {
            w: PackWriter::new(tmp_dir)?,
            ids: HashSet::new(),
        })
    }

    /// Copies record `e` of `src` verbatim, in bounded memory; an id copied
    /// before is skipped (returns 0). Returns the record bytes written.
    ///
    /// # Errors
    /// [`Error::CorruptObject`] when `src` cannot be read; [`Error::Io`].
    pub fn copy_from(&mut self, src: &PackIndex, e: &IdxEntry) -> Result<u64> {
        if !self.ids.insert(e.id) {
            return Ok(0);
        }
        self.w.append_record_from(src, e)
    }

    /// Objects copied so far.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when nothing was copied.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Makes the pack and its index durable as `out_dir/pack-<name>.pack`
    /// and `.idx` (same filesystem as `tmp_dir`); returns the index path, or
    /// `None` when the pack is empty.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn finish(self, out_dir: &Path) -> Result<Option<PathBuf>> {
        let p = self.w.finish(out_dir)?;
        if p.is_some() {
            crate::fsutil::fsync_dir(out_dir)?;
        }
        Ok(p)
    }
}

const PENDING_SHARDS: usize = 64;

/// What [`ObjectWriter::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// The store already has it.
    Stored,
    /// Another thread of this transaction is writing it.
    Pending,
    /// This caller writes it.
    Mine,
}

/// A write transaction: objects added from any thread land in per-thread packs.
///
/// Objects become visible to readers only after [`ObjectWriter::finish`]
/// (which fsyncs every pack and index). Dropping a writer without finishing
/// discards everything it wrote.
pub struct ObjectWriter<'s> {
    store: &'s super::Store,
    slots: Vec<Mutex<Option<PackWriter>>>,
    pending: Vec<Mutex<HashSet<ObjectId>>>,
    new_objects: AtomicU64,
    new_bytes: AtomicU64,
}

/// Counters of what a write transaction added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    /// Objects written (objects already in the store are not counted).
    pub new_objects: u64,
    /// Record bytes written to packs (headers + compressed bodies).
    pub new_bytes: u64,
}

impl<'s> ObjectWriter<'s> {
    pub(super) fn new(store: &'s super::Store) -> Self {
        let n = rayon::current_num_threads() + 1;
        ObjectWriter {
            store,
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            pending: (0..PENDING_SHARDS).map(|_| Mutex::new(HashSet::new())).collect(),
            new_objects: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
        }
    }

    /// The store this transaction writes to (for reads during the transaction).
    pub fn store(&self) -> &'s super::Store {
        self.store
    }

    /// Reserves `id` for this transaction.
    fn claim(&self, id: ObjectId) -> Claim {
        if self.store.contains(&id) {
            return Claim::Stored;
        }
        let shard = &self.pending[id.0[1] as usize % PENDING_SHARDS];
        if shard.lock().expect("pending set lock poisoned").insert(id) {
            Claim::Mine
        } else {
            Claim::Pending
        }
    }

    fn unclaim(&self, id: ObjectId) {
        let shard = &self.pending[id.0[1] as usize % PENDING_SHARDS];
        shard.lock().expect("pending set lock poisoned").remove(&id);
    }

    fn with_slot<T>(&self, f: impl FnOnce(&mut PackWriter) -> Result<T>) -> Result<T> {
        let i = rayon::current_thread_index().map_or(self.slots.len() - 1, |i| i.min(self.slots.len() - 2));
        let mut slot = self.slots[i].lock().expect("pack slot lock poisoned");
        if slot.is_none() {
            *slot = Some(PackWriter::new(&self.store.tmp_dir())?);
        }
        f(slot.as_mut().expect("initialised above"))
    }

    /// Adds an object whose canonical body is `body` and whose id is `id`.
    /// Returns false (writing nothing) when the object is already stored.
    ///
    /// # Errors
    /// [`Error::Io`] naming the pack being written.
    pub fn add(&self, kind: ObjectKind, id: ObjectId, body: &[u8]) -> Result<bool> {
        self.add_framed(kind, id, body, None)
    }

    /// [`ObjectWriter::add`], given `frame`: the body already compressed as
    /// one zstd frame (e.g. a package member's own frame), stored as it is
    /// instead of compressing the body again when it can be a record's
    /// body: it starts as [`check_frame_start`] requires and declares the
    /// body's length as its content size (a frame no smaller than the
    /// body means the body is stored uncompressed, not compressed again).
    /// The caller vouches that it decodes to `body` (a package reader
    /// decoded it to these bytes; every later read decodes and re-hashes).
    ///
    /// # Errors
    /// As [`ObjectWriter::add`].
    pub fn add_framed(&self, kind: ObjectKind, id: ObjectId, body: &[u8], frame: Option<&[u8]>) -> Result<bool> {
        // Another thread's in-memory add of the same bytes cannot be abandoned, and a
        // streamed one has the same (large) length, so never races an in-memory add.
        if self.claim(id) != Claim::Mine {
            return Ok(false);
        }
        let given = frame.filter(|f| {
            check_frame_start(f).is_ok()
                && zstd::zstd_safe::get_frame_content_size(f).ok().flatten() == Some(body.len() as u64)
        });
        let compressed;
        let (compression, stored) = match given {
            Some(f) if f.len() < body.len() => (COMPRESSION_ZSTD, f),
            // zstd could not make it smaller: neither would level 1.
            Some(_) => (COMPRESSION_NONE, body),
            None => {
                compressed = compress(body).at(self.store.tmp_dir())?;
                if compressed.len() < body.len() {
                    (COMPRESSION_ZSTD, &compressed[..])
                } else {
                    (COMPRESSION_NONE, body)
                }
            }
        };
        let r = self.with_slot(|w| w.append(kind, id, compression, body.len() as u64, stored));
        match r {
            Ok(n) => {
                self.new_objects.fetch_add(1, Ordering::Relaxed);
                self.new_bytes.fetch_add(n, Ordering::Relaxed);
                Ok(true)
            }
            Err(e) => {
                self.unclaim(id);
                Err(e)
            }
        }
    }

    /// Adds a blob by streaming `reader` (e.g. a large file) through zstd.
    ///
    /// `id` and `len` are what an earlier hashing pass found; if the streamed
    /// bytes hash differently (the file changed), nothing is recorded and
    /// `Ok(None)` is returned. `Ok(Some(false))` means already stored.
    ///
    /// # Errors
    /// [`Error::Io`] naming `src` or the pack.
    pub fn add_blob_stream(&self, id: ObjectId, len: u64, reader: &mut dyn Read, src: &Path) -> Result<Option<bool>> {
        let claim = self.claim(id);
        if claim == Claim::Stored {
            return Ok(Some(false));
        }
        // When another thread is streaming the same id it may still give up (its
        // file changed): write our own copy rather than trust it (a duplicate
        // record is harmless; a missing one would be store damage).
        let mine = claim == Claim::Mine;
        match self.with_slot(|w| w.append_stream(id, len, reader, src)) {
            Ok(Some(n)) => {
                self.new_objects.fetch_add(1, Ordering::Relaxed);
                self.new_bytes.fetch_add(n, Ordering::Relaxed);
                Ok(Some(true))
            }
            Ok(None) => {
                if mine {
                    self.unclaim(id);
                }
                Ok(None)
            }
            Err(e) => {
                if mine {
                    self.unclaim(id);
                }
                Err(e)
            }
        }
    }

    /// Copies a verified record from another pack (repacking). Unlike [`ObjectWriter::add`],
    /// it skips the "already in the store" check: the object is being moved.
    ///
    /// # Errors
    /// [`Error::Io`] naming the pack being written.
    pub fn copy_record(&self, e: &IdxEntry, record: &[u8]) -> Result<()> {
        let shard = &self.pending[e.id.0[1] as usize % PENDING_SHARDS];
        if !shard.lock().expect("pending set lock poisoned").insert(e.id) {
            return Ok(());
        }
        self.with_slot(|w| w.append_record(e, record))?;
        self.new_objects.fetch_add(1, Ordering::Relaxed);
        self.new_bytes.fetch_add(record.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Copies record `e` of pack `src` verbatim into this transaction, in
    /// bounded memory whatever its size (gc keeps only reachable records this
    /// way). The caller has verified the record. Like
    /// [`ObjectWriter::copy_record`] it skips the "already in the store"
    /// check; an id copied twice in one transaction is written once.
    /// Returns the record bytes written (0 for such a repeat).
    ///
    /// # Errors
    /// [`Error::CorruptObject`] when `src` cannot be read; [`Error::Io`]
    /// naming the pack being written.
    pub fn copy_record_from(&self, src: &PackIndex, e: &IdxEntry) -> Result<u64> {
        let shard = &self.pending[e.id.0[1] as usize % PENDING_SHARDS];
        if !shard.lock().expect("pending set lock poisoned").insert(e.id) {
            return Ok(0);
        }
        let n = self.with_slot(|w| w.append_record_from(src, e))?;
        self.new_objects.fetch_add(1, Ordering::Relaxed);
        self.new_bytes.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// What this transaction has written so far.
    pub fn stats(&self) -> WriteStats {
        WriteStats {
            new_objects: self.new_objects.load(Ordering::Relaxed),
            new_bytes: self.new_bytes.load(Ordering::Relaxed),
        }
    }

    /// Makes every pack durable and returns the new index paths, for
    /// [`super::Store::add_packs`].
    ///
    /// # Errors
    /// [`Error::Io`] naming the pack or index that failed.
    pub fn finish(self) -> Result<(Vec<PathBuf>, WriteStats)> {
        let stats = self.stats();
        let packs_dir = self.store.packs_dir();
        let mut out = Vec::new();
        for slot in self.slots {
            if let Some(w) = slot.into_inner().expect("pack slot lock poisoned")
                && let Some(p) = w.finish(&packs_dir)?
            {
                out.push(p);
            }
        }
        if !out.is_empty() {
            crate::fsutil::fsync_dir(&packs_dir)?;
        }
        Ok((out, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::{check_frame_start, compress, decompress};
    use crate::object::{EntryKind, Meta, ObjectKind, Snapshot, SnapshotKind, Tree, TreeEntry, object_id};
    use crate::store::Store;

    #[test]
    fn a_flip_in_an_ignored_zstd_header_bit_is_refused() {
        let frame = compress(&b"compressible ".repeat(40)).unwrap();
        assert_eq!(check_frame_start(&frame), Ok(()));
        for bit in [3, 4] {
            let mut bad = frame.clone();
            bad[4] ^= 1 << bit;
            assert!(check_frame_start(&bad).is_err(), "bit {bit}");
            // zstd itself ignores the unused bit: only the check sees it.
            if bit == 4 {
                assert_eq!(decompress(&bad, 520).unwrap(), b"compressible ".repeat(40));
            }
        }
        assert!(check_frame_start(b"CPOB\0").is_err());
    }

    #[test]
    fn every_kind_round_trips_through_a_pack() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::init(dir.path()).unwrap();
        let blob = b"hello, pack".repeat(100);
        let blob_id = object_id(ObjectKind::Blob, &blob);
        let tree = Tree {
            entries: vec![TreeEntry {
                name: b"f".to_vec(),
                kind: EntryKind::File,
                id: blob_id,
                size: blob.len() as u64,
                meta: Meta {
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
            }],
        };
        let (tree_id, tree_body) = tree.encode_with_id();
        let snap = Snapshot {
            plane: "main".into(),
            name: "VER-1".into(),
            root: tree_id,
            parent: None,
            kind: SnapshotKind::Checkpoint,
            time_unix_ns: 1,
            message: "m".into(),
            files: 1,
            bytes: blob.len() as u64,
            links: Vec::new(),
            ownership: None,
            ledger: None,
        };
        let (snap_id, snap_body) = snap.encode_with_id();
        let incompressible: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let inc_id = object_id(ObjectKind::Blob, &incompressible);
        let w = store.writer();
        assert!(w.add(ObjectKind::Blob, blob_id, &blob).unwrap());
        assert!(!w.add(ObjectKind::Blob, blob_id, &blob).unwrap(), "stored once");
        w.add(ObjectKind::Blob, inc_id, &incompressible).unwrap();
        w.add(ObjectKind::Tree, tree_id.0, &tree_body).unwrap();
        w.add(ObjectKind::Snapshot, snap_id.0, &snap_body).unwrap();
        let (packs, stats) = w.finish().unwrap();
        assert_eq!(stats.new_objects, 4);
        store.add_packs(&packs).unwrap();
        assert_eq!(store.read(&blob_id, ObjectKind::Blob).unwrap(), blob);
        assert_eq!(store.read(&inc_id, ObjectKind::Blob).unwrap(), incompressible);
        assert_eq!(store.read_tree(&tree_id).unwrap(), tree);
        assert_eq!(store.read_snapshot(&snap_id).unwrap(), snap);
        for p in store.packs() {
            p.check().unwrap();
        }
        // Reopening finds the same objects.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.read_snapshot(&snap_id).unwrap(), snap);
        assert!(
            !store
                .find_prefix(&snap_id.short(8), Some(ObjectKind::Snapshot))
                .is_empty()
        );
    }

    #[test]
    fn dropped_writer_leaves_nothing_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        let w = store.writer();
        let id = object_id(ObjectKind::Blob, b"x");
        w.add(ObjectKind::Blob, id, b"x").unwrap();
        drop(w);
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.contains(&id));
        assert_eq!(
            std::fs::read_dir(store.tmp_dir()).unwrap().count(),
            0,
            "temp pack removed"
        );
    }
}
