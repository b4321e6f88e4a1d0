//! Reading a package: one pass over the decompressed stream that refuses a
//! hostile or damaged archive before the caller installs anything
//! (package-format.md, "Reading a package").

use super::frames::{FrameError, Frames};
use super::manifest::{Attestation, FILES_PREFIX, FileEntry, Manifest, check_path};
use super::ustar::{self, BLOCK, Member};
use super::{ATTESTATION_MEMBER, Limits, MANIFEST_MEMBER, NAMESPACE, PackageError, SIGNATURE_MEMBER};
use crate::id::ObjectId;
use crate::keys::{self, KeyError, Role, Signer, UtcTime};
use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::atomic::Ordering;

/// A package that passed every check: its manifest (with its exact signed
/// bytes), signature, signer and attestation. The files went to the sink
/// given to [`read`] (or are returned by [`read_to_memory`]).
#[derive(Debug, Clone)]
pub struct Package {
    /// The manifest.
    pub manifest: Manifest,
    /// Its bytes, as signed (the `manifest.json` member).
    pub manifest_bytes: Vec<u8>,
    /// BLAKE3 of `manifest_bytes` (the packages registry's manifest digest).
    pub manifest_digest: ObjectId,
    /// The armored `sshsig` signature (the `manifest.json.sig` member).
    pub signature: String,
    /// The trusted key that signed it (role maintainer or admin).
    pub signer: Signer,
    /// The attestation.
    pub attestation: Attestation,
    /// Its bytes (the `attestation.json` member, whose BLAKE3 the manifest
    /// names).
    pub attestation_bytes: Vec<u8>,
    /// The attestation's build time.
    pub time: UtcTime,
}

/// Reads a package from `input` (the compressed bytes), checking it against
/// `trusted` (the allowed-signers registry) and `limits`, and hands each
/// file to `sink` as it streams past: `sink(entry, data)` gets the manifest
/// entry and a reader of exactly the file's bytes (what the sink leaves
/// unread is read and hashed anyway), which also hands on the file's own
/// zstd frame when it has one ([`FileData::frame`]).
///
/// The checks, in stream order: the zstd window, and only zstd frames (no
/// skippable frame, no other bytes); member 0 is
/// `manifest.json`, member 1 `manifest.json.sig` (else
/// [`PackageError::Unsigned`]), member 2 `attestation.json`, each a regular
/// file of mode 0644 within its size limit; the signature verifies in
/// namespace `cplane-package` against a trusted, unrevoked key of role
/// maintainer or admin (before the manifest is parsed); the manifest is
/// canonical and valid (safe, sorted, case-distinct paths); the attestation
/// has the digest the manifest names and agrees with the manifest and the
/// signer; then each file member in manifest order is a regular file with
/// the manifest's path, mode and size (a larger size is refused before its
/// data is read) and BLAKE3; nothing after the last file but the two-block
/// end marker and zeros; the zstd stream ends after a whole frame.
///
/// A file of at most 64 MiB whose data is one plain zstd frame of its own
/// (what `cplane pack` writes; `Frames::take_frame`) is decoded whole and
/// checked before the sink sees it, exactly as [`read_parallel`] does on
/// its pool, so both readers decode every frame alike; any other file is
/// streamed. Memory stays bounded by the limits' metadata sizes, zstd's
/// window and 64 MiB (plus a frame of about that), whatever the size of the
/// files (beside the compressed bytes of a file being streamed, at most
/// its size, kept to hand on its frame).
///
/// **The sink may see a file's bytes before they are verified** (a streamed
/// file's hash is known only at its end, later files may still be
/// refused): it must only stage them (e.g. into temporary files), and
/// nothing may be installed until `read` returns `Ok`.
///
/// # Errors
/// The first refusal, as its own [`PackageError`] variant; an error the
/// sink returns, as [`PackageError::Sink`].
pub fn read<R, F>(input: R, trusted: &[Signer], limits: &Limits, sink: F) -> Result<Package, PackageError>
where
    R: Read,
    F: FnMut(&FileEntry, &mut dyn FileData) -> io::Result<()>,
{
    read_with(input, trusted, limits, |_| {}, sink)
}

/// [`read`], calling `on_manifest` with the manifest once it, its
/// signature and the attestation are checked, before the first file's
/// bytes are read (an installer sets up what it checks each file with).
///
/// # Errors
/// As [`read`].
pub fn read_with<R, M, F>(
    input: R,
    trusted: &[Signer],
    limits: &Limits,
    on_manifest: M,
    mut sink: F,
) -> Result<Package, PackageError>
where
    R: Read,
    M: FnOnce(&Manifest),
    F: FnMut(&FileEntry, &mut dyn FileData) -> io::Result<()>,
{
    let window_log = limits.window_log_max;
    read_members(input, trusted, limits, on_manifest, |s, _, m, entry| {
        // A frame [`read_parallel`] would take is decoded here the same way,
        // so both readers decode every frame alike.
        let Some(frame) = take_frame(s, m, entry)? else {
            return s.file(m, entry, &mut sink);
        };
        let mut bytes = Vec::with_capacity(entry.size as usize);
        check_frame(&frame, entry, &mut bytes, window_log)?;
        let mut data = Decoded {
            bytes,
            pos: 0,
            frame: s.z.can_hand_on().then_some(frame),
        };
        sink(entry, &mut data).map_err(sink_failed(entry))?;
        s.padding(m)
    })
}

/// A sink's error for the file of `entry`, as the reader reports it.
fn sink_failed(entry: &FileEntry) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Sink {
        path: entry.path.clone(),
        source,
    }
}

/// The frame of a file member, when it is one plain frame of its own the
/// readers decode whole ([`MAX_POOL_FILE`] at most; `Frames::take_frame`).
fn take_frame<R: Read>(s: &mut Stream<R>, m: &Member, entry: &FileEntry) -> Result<Option<Vec<u8>>, PackageError> {
    if entry.size > MAX_POOL_FILE {
        return Ok(None);
    }
    let max = (entry.size + entry.size / 64 + 4096) as usize;
    s.z.take_frame(entry.size, max)
        .map_err(|e| read_error(e, format!("member {}", m.name), s.window_log))
}

/// Decodes a frame [`take_frame`] took into `out` (empty) and checks it
/// against `entry`: its size, then its BLAKE3.
fn check_frame(frame: &[u8], entry: &FileEntry, out: &mut Vec<u8>, window_log: u32) -> Result<(), PackageError> {
    let member = || format!("{FILES_PREFIX}{}", entry.path);
    super::frames::decode_frame(frame, out, entry.size as usize, window_log)
        .map_err(|e| read_error(e, format!("member {}", member()), window_log))?;
    debug_assert_eq!(out.len() as u64, entry.size, "decode_frame checks the size");
    let found = ObjectId(*blake3::hash(out).as_bytes());
    if found != entry.blake3 {
        return Err(PackageError::MemberHash {
            member: member(),
            expected: entry.blake3.to_hex(),
            found: found.to_hex(),
        });
    }
    Ok(())
}

/// A file member's bytes, decoded and checked whole, as a [`FileData`].
struct Decoded {
    bytes: Vec<u8>,
    pos: usize,
    frame: Option<Vec<u8>>,
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.bytes.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl FileData for Decoded {
    fn frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(if self.pos == self.bytes.len() {
            self.frame.take()
        } else {
            None
        })
    }
}

/// The checks of [`read_with`], with each file member's data (after its
/// header was checked against `entry`, the `index`th of the manifest) left
/// to `file`, which reads exactly the data and its padding from the stream.
fn read_members<R, M, F>(
    input: R,
    trusted: &[Signer],
    limits: &Limits,
    on_manifest: M,
    mut file: F,
) -> Result<Package, PackageError>
where
    R: Read,
    M: FnOnce(&Manifest),
    F: FnMut(&mut Stream<R>, usize, &Member, &FileEntry) -> Result<(), PackageError>,
{
    // One or more frames; a skippable frame or bytes that are not a frame
    // are refused (`Frames`).
    let z = Frames::new(input, limits.window_log_max).map_err(|source| PackageError::Read {
        at: "the zstd stream".to_string(),
        source,
    })?;
    let mut s = Stream {
        z,
        index: 0,
        window_log: limits.window_log_max,
    };

    // manifest.json
    let header = s.next_header()?;
    let manifest_bytes = match header {
        Some(m) if m.name == MANIFEST_MEMBER => {
            check_type(&m)?;
            s.metadata(&m, limits.max_metadata_bytes)?
        }
        Some(m) => {
            check_type(&m)?;
            return Err(unexpected(0, MANIFEST_MEMBER, &m.name));
        }
        None => return Err(unexpected(0, MANIFEST_MEMBER, "the end of the archive")),
    };

    // manifest.json.sig, verified before the manifest is parsed.
    let signature = match s.next_header()? {
        Some(m) if m.name == SIGNATURE_MEMBER => {
            check_type(&m)?;
            s.metadata(&m, limits.max_signature_bytes)?
        }
        Some(m) => {
            check_type(&m)?;
            return Err(PackageError::Unsigned { found: m.name });
        }
        None => {
            return Err(PackageError::Unsigned {
                found: "the end of the archive".to_string(),
            });
        }
    };
    let signature = String::from_utf8(signature).map_err(|_| {
        PackageError::Signature(KeyError::MalformedSignature {
            reason: "manifest.json.sig is not UTF-8 text".to_string(),
        })
    })?;
    let signer = keys::verify(&signature, NAMESPACE, &manifest_bytes, trusted).map_err(PackageError::Signature)?;
    if !matches!(signer.role, Role::Maintainer | Role::Admin) {
        return Err(PackageError::SignerRole {
            fingerprint: signer.fingerprint(),
            role: signer.role,
        });
    }
    let manifest = Manifest::parse(&manifest_bytes)?;
    crate::trace::phase("read: manifest read, verified, parsed");
    if manifest.files.len() > limits.max_files {
        return Err(PackageError::TooManyFiles {
            count: manifest.files.len(),
            limit: limits.max_files,
        });
    }
    let total = manifest.files.iter().fold(0u64, |acc, f| acc.saturating_add(f.size));
    if total > limits.max_total_bytes {
        return Err(PackageError::TooLarge {
            what: "the sum of the manifest's file sizes".to_string(),
            size: total,
            limit: limits.max_total_bytes,
        });
    }

    // attestation.json
    let attestation_bytes = match s.next_header()? {
        Some(m) if m.name == ATTESTATION_MEMBER => {
            check_type(&m)?;
            s.metadata(&m, limits.max_metadata_bytes)?
        }
        Some(m) => {
            check_type(&m)?;
            if m.name == MANIFEST_MEMBER || m.name == SIGNATURE_MEMBER {
                return Err(PackageError::DuplicateMember { member: m.name });
            }
            return Err(unexpected(2, ATTESTATION_MEMBER, &m.name));
        }
        None => return Err(unexpected(2, ATTESTATION_MEMBER, "the end of the archive")),
    };
    let found = ObjectId(*blake3::hash(&attestation_bytes).as_bytes());
    if found != manifest.attestation {
        return Err(PackageError::AttestationDigest {
            expected: manifest.attestation.to_hex(),
            found: found.to_hex(),
        });
    }
    let (attestation, time) = Attestation::parse(&attestation_bytes)?;
    check_attestation(
        &attestation,
        &manifest.expected_attestation(&signer.fingerprint(), time),
    )?;
    crate::trace::phase("read: attestation checked");

    on_manifest(&manifest);

    // The files, in manifest order.
    let listed: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    let mut seen: HashSet<String> = [MANIFEST_MEMBER, SIGNATURE_MEMBER, ATTESTATION_MEMBER]
        .into_iter()
        .map(String::from)
        .collect();
    for (index, entry) in manifest.files.iter().enumerate() {
        let expected = format!("{FILES_PREFIX}{}", entry.path);
        let Some(m) = s.next_header()? else {
            return Err(PackageError::MissingMember {
                path: entry.path.clone(),
            });
        };
        check_type(&m)?;
        if m.name != expected {
            return Err(wrong_member(&m.name, &expected, s.index - 1, &seen, &listed));
        }
        seen.insert(m.name.clone());
        if m.mode != entry.mode.bits() {
            return Err(PackageError::MemberMode {
                member: m.name,
                expected: entry.mode.bits(),
                found: m.mode,
            });
        }
        if m.size > entry.size {
            return Err(PackageError::MemberTooLarge {
                member: m.name,
                expected: entry.size,
                found: m.size,
            });
        }
        if m.size < entry.size {
            return Err(PackageError::MemberTooSmall {
                member: m.name,
                expected: entry.size,
                found: m.size,
            });
        }
        file(&mut s, index, &m, entry)?;
    }

    // Nothing more: the end-of-archive marker, then only zeros.
    if let Some(m) = s.next_header()? {
        check_type(&m)?;
        if seen.contains(&m.name) {
            return Err(PackageError::DuplicateMember { member: m.name });
        }
        return Err(PackageError::ExtraMember { member: m.name });
    }
    s.end(limits.max_trailing_zero_bytes)?;

    Ok(Package {
        manifest_digest: ObjectId(*blake3::hash(&manifest_bytes).as_bytes()),
        manifest,
        manifest_bytes,
        signature,
        signer: signer.clone(),
        attestation,
        attestation_bytes,
        time,
    })
}

/// [`read`] with the files kept in memory: their bytes in manifest order.
/// For small packages and tests; an installer should stage through [`read`].
///
/// # Errors
/// As [`read`].
pub fn read_to_memory<R: Read>(
    input: R,
    trusted: &[Signer],
    limits: &Limits,
) -> Result<(Package, Vec<Vec<u8>>), PackageError> {
    let mut files = Vec::new();
    let package = read(input, trusted, limits, |_, data| {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)?;
        files.push(bytes);
        Ok(())
    })?;
    Ok((package, files))
}

/// Files per pool task of [`read_parallel`] (at most).
const BATCH_FILES: usize = 64;
/// Bytes per pool task of [`read_parallel`] (about).
const BATCH_BYTES: u64 = 1 << 20;
/// Bytes of members [`read_parallel`] lets wait for the pool (16 MiB:
/// frames and the files they decode to, or buffers' capacity); past it,
/// the reading thread runs the next batch itself instead of reading ahead.
const IN_FLIGHT_BYTES: u64 = 16 << 20;
/// The largest file whose frame [`read_parallel`] hands to the pool to
/// decode (64 MiB): the pool decodes a frame into a buffer of the file's
/// whole size, taken up front; larger files are decoded as they stream.
const MAX_POOL_FILE: u64 = 64 << 20;

/// [`read_with`], with the files' zstd frames decoded and hashed on the
/// rayon pool while the next members are read, and each file handed to
/// `sink` there **after** its bytes were checked against the manifest.
///
/// The reading thread checks every header, the metadata members and the
/// stream's framing as [`read_with`] does. A file member of at most 64 MiB
/// whose data is one plain zstd frame of its own (as `cplane pack` writes,
/// package-format.md "Compression"; see `Frames::take_frame`) is taken as
/// compressed bytes and decoded, hashed and compared on the pool, with the
/// same streaming decoder and checks as [`read`]; any other member is
/// decoded and checked on the reading thread. `sink(index, entry, bytes,
/// frame)` then gets the member's place in the manifest, its entry, its
/// bytes, and its frame when the store may keep it as it is: a taken frame
/// ([`FileData::frame`]; a frame that was not taken has something unusual
/// about it, or a large file, and the store decodes records in one pass as
/// well as streaming, whose checks differ, so it is not handed on). The
/// sink runs on pool threads (or the reading thread when
/// the pool is behind), in no particular order. A sink that keeps `bytes`
/// takes them (`std::mem::take`); what it leaves is used again.
///
/// The result is [`read_with`]'s: the refusal of the earliest member in
/// stream order (a member the pool refuses stops the reading; members
/// before it are still decoded and checked, later ones are not), and the
/// sink's first error as [`PackageError::Sink`]. Other members, earlier or
/// later, may still be refused after the sink saw a file: it must only
/// stage what it gets until this returns `Ok`. A read error's message
/// (libzstd's) may differ from [`read`]'s for the same damage: where
/// [`read`] runs out of output room, the pool may find the frame corrupt.
///
/// Memory: up to 16 MiB of members waiting for the pool (frames and the
/// files they decode to); the frame being taken (the input buffer grows to
/// hold it, and is handed out as the frame; up to about 65 MiB); a member over
/// 64 MiB whole, as the reading thread decodes it into one buffer; and what
/// the sink keeps.
///
/// # Errors
/// As [`read`].
pub fn read_parallel<R, M, S>(
    input: R,
    trusted: &[Signer],
    limits: &Limits,
    on_manifest: M,
    sink: S,
) -> Result<Package, PackageError>
where
    R: Read,
    M: FnOnce(&Manifest),
    S: Fn(usize, &FileEntry, &mut Vec<u8>, Option<Vec<u8>>) -> io::Result<()> + Sync,
{
    let window_log = limits.window_log_max;
    // The earliest member the pool refused, and its index (usize::MAX while
    // none was): later members' jobs are skipped, earlier ones still run, so
    // the refusal reported is the earliest whatever the threads' timing.
    let refused: std::sync::Mutex<Option<(usize, PackageError)>> = std::sync::Mutex::new(None);
    let stop = std::sync::atomic::AtomicUsize::new(usize::MAX);
    let in_flight = std::sync::atomic::AtomicU64::new(0);
    let buffers = std::sync::Mutex::new(Buffers::default());
    let (refused_ref, stop, in_flight, buffers, sink) = (&refused, &stop, &in_flight, &buffers, &sink);
    let run = move |jobs: Vec<PoolJob>| {
        for job in jobs {
            // (A batch's jobs are in stream order.)
            if job.index > stop.load(Ordering::Relaxed) {
                return;
            }
            let index = job.index;
            if let Err(e) = pool_job(job, window_log, buffers, sink) {
                let mut r = refused_ref.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if r.as_ref().is_none_or(|(i, _)| index < *i) {
                    *r = Some((index, e));
                }
                stop.fetch_min(index, Ordering::Relaxed);
            }
        }
    };
    let read = rayon::in_place_scope(|scope| {
        let mut batch: Vec<PoolJob> = Vec::new();
        let mut batch_bytes = 0u64;
        let dispatch = |batch: &mut Vec<PoolJob>, bytes: &mut u64| {
            let (jobs, n) = (std::mem::take(batch), std::mem::take(bytes));
            if jobs.is_empty() {
                return;
            }
            if in_flight.load(Ordering::Acquire) + n > IN_FLIGHT_BYTES {
                run(jobs);
            } else {
                in_flight.fetch_add(n, Ordering::AcqRel);
                scope.spawn(move |_| {
                    run(jobs);
                    in_flight.fetch_sub(n, Ordering::AcqRel);
                });
            }
        };
        let read = read_members(input, trusted, limits, on_manifest, |s, index, m, entry| {
            if stop.load(Ordering::Relaxed) != usize::MAX {
                // The pool refused an earlier member: that is the error
                // reported (this one is replaced by it).
                return Err(PackageError::Read {
                    at: format!("member {}", m.name),
                    source: io::Error::other("reading stopped: an earlier member was refused"),
                });
            }
            let frame = take_frame(s, m, entry)?;
            let (data, weight) = match frame {
                Some(frame) => {
                    let weight = frame.len() as u64 + entry.size;
                    let keep = s.z.can_hand_on();
                    (PoolData::Frame { frame, keep }, weight)
                }
                None => {
                    let mut bytes = buffers
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take(entry.size.min(MAX_POOL_FILE) as usize);
                    s.file_data(m, entry, &mut |_, data| data.read_to_end(&mut bytes).map(|_| ()))?;
                    let weight = bytes.capacity() as u64;
                    // A frame decoded here is not handed on: it was not taken
                    // because something about it is unusual, or its file is
                    // large, and the store decodes records in one pass as well
                    // as streaming, whose checks differ. The store compresses
                    // the file itself.
                    (PoolData::Checked(bytes), weight)
                }
            };
            batch.push(PoolJob {
                index,
                entry: entry.clone(),
                data,
            });
            batch_bytes += weight;
            // The padding after the data: after the job, so a member the
            // pool refuses is reported before its padding, as in [`read`].
            s.padding(m)?;
            if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
                dispatch(&mut batch, &mut batch_bytes);
            }
            Ok(())
        });
        dispatch(&mut batch, &mut batch_bytes);
        read
    });
    // The pool's refusal is of an earlier member than (or the same member
    // as, before its padding) where the reading stopped, if it stopped.
    match refused.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some((_, e)) => Err(e),
        None => read,
    }
}

/// A file member on its way to [`read_parallel`]'s sink.
struct PoolJob {
    /// Its place in the manifest.
    index: usize,
    entry: FileEntry,
    data: PoolData,
}

enum PoolData {
    /// Its own zstd frame, not yet decoded, and whether the store may keep
    /// it ([`FileData::frame`]).
    Frame { frame: Vec<u8>, keep: bool },
    /// Its bytes, checked.
    Checked(Vec<u8>),
}

/// One member's work on the pool: decoded and checked when it came as a
/// frame, then handed to the sink.
fn pool_job<S>(job: PoolJob, window_log: u32, buffers: &std::sync::Mutex<Buffers>, sink: &S) -> Result<(), PackageError>
where
    S: Fn(usize, &FileEntry, &mut Vec<u8>, Option<Vec<u8>>) -> io::Result<()>,
{
    let PoolJob { index, entry, data } = job;
    let (mut bytes, frame) = match data {
        PoolData::Frame { frame, keep } => {
            let mut bytes = buffers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(entry.size as usize);
            check_frame(&frame, &entry, &mut bytes, window_log)?;
            (bytes, keep.then_some(frame))
        }
        PoolData::Checked(bytes) => (bytes, None),
    };
    sink(index, &entry, &mut bytes, frame).map_err(sink_failed(&entry))?;
    buffers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .give(bytes);
    Ok(())
}

/// Buffers of members already handed on, for the next members (a fresh
/// buffer per file costs a page fault per 4 KiB).
#[derive(Default)]
struct Buffers {
    free: Vec<Vec<u8>>,
    /// Their capacities, summed.
    bytes: usize,
}

impl Buffers {
    /// At most this much is kept for use again: about what is in flight.
    const MAX_BYTES: usize = IN_FLIGHT_BYTES as usize;
    /// A buffer larger than this is let go (a rare large file).
    const MAX_ONE: usize = 1 << 20;
    /// New buffers have room for at least this much, so most files fit
    /// any buffer given back.
    const MIN_NEW: usize = 64 << 10;

    /// An empty buffer with room for `size` bytes.
    fn take(&mut self, size: usize) -> Vec<u8> {
        match self.free.pop() {
            Some(b) if b.capacity() >= size => {
                self.bytes -= b.capacity();
                b
            }
            Some(b) => {
                // Too small: let it go rather than grow it (a copy).
                self.bytes -= b.capacity();
                drop(b);
                Vec::with_capacity(size.max(Self::MIN_NEW))
            }
            None => Vec::with_capacity(size.max(Self::MIN_NEW)),
        }
    }

    /// Keeps `b` for [`Buffers::take`] while there is room.
    fn give(&mut self, mut b: Vec<u8>) {
        if b.capacity() > 0 && b.capacity() <= Self::MAX_ONE && self.bytes + b.capacity() <= Self::MAX_BYTES {
            b.clear();
            self.bytes += b.capacity();
            self.free.push(b);
        }
    }
}

fn unexpected(index: usize, expected: &str, found: &str) -> PackageError {
    PackageError::UnexpectedMember {
        index,
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

/// Why a file member is not the one the manifest expects next.
fn wrong_member(
    name: &str,
    expected: &str,
    index: usize,
    seen: &HashSet<String>,
    listed: &HashSet<&str>,
) -> PackageError {
    if seen.contains(name) {
        return PackageError::DuplicateMember {
            member: name.to_string(),
        };
    }
    let Some(path) = name.strip_prefix(FILES_PREFIX) else {
        return PackageError::ExtraMember {
            member: name.to_string(),
        };
    };
    if let Err(rule) = check_path(path) {
        return PackageError::UnsafePath {
            path: name.to_string(),
            rule,
        };
    }
    if listed.contains(path) {
        // A listed file, out of order.
        return unexpected(index, expected, name);
    }
    PackageError::ExtraMember {
        member: name.to_string(),
    }
}

/// Refuses every member type but a regular file (`'0'`).
fn check_type(m: &Member) -> Result<(), PackageError> {
    let member = m.name.clone();
    match m.typeflag {
        b'0' => Ok(()),
        b'1' => Err(PackageError::HardLink {
            member,
            target: m.linkname.clone(),
        }),
        b'2' => Err(PackageError::Symlink {
            member,
            target: m.linkname.clone(),
        }),
        b'3' | b'4' => Err(PackageError::Device { member }),
        b'5' => Err(PackageError::Directory { member }),
        b'6' => Err(PackageError::Fifo { member }),
        other => Err(PackageError::OtherType {
            member,
            typeflag: char::from(other),
        }),
    }
}

/// The first difference between the attestation read and the one the
/// manifest and signer imply.
fn check_attestation(found: &Attestation, expected: &Attestation) -> Result<(), PackageError> {
    let mismatch = |reason: String| Err(PackageError::AttestationMismatch { reason });
    if found.statement_type != expected.statement_type {
        return mismatch(format!(
            "_type is {:?}, not {:?}",
            found.statement_type, expected.statement_type
        ));
    }
    if found.predicate_type != expected.predicate_type {
        return mismatch(format!(
            "predicateType is {:?}, not {:?}",
            found.predicate_type, expected.predicate_type
        ));
    }
    if found.subject.len() != expected.subject.len() {
        return mismatch(format!(
            "it has {} subjects for the manifest's {} files",
            found.subject.len(),
            expected.subject.len()
        ));
    }
    for (f, e) in found.subject.iter().zip(&expected.subject) {
        if f != e {
            return mismatch(format!(
                "subject {} ({}) differs from file {} ({})",
                f.name,
                f.digest.blake3.to_hex(),
                e.name,
                e.digest.blake3.to_hex()
            ));
        }
    }
    let (f, e) = (&found.predicate, &expected.predicate);
    if f.signer != e.signer {
        return mismatch(format!(
            "it names signer {}, but {} signed the manifest",
            f.signer, e.signer
        ));
    }
    if f != e {
        return mismatch(format!(
            "its predicate names {} {} (spec {}, framework {}), the manifest {} {} (spec {}, framework {})",
            f.package_id, f.version, f.spec_id, f.framework_id, e.package_id, e.version, e.spec_id, e.framework_id
        ));
    }
    Ok(())
}

/// The decompressed archive, read block by block.
struct Stream<R: Read> {
    z: Frames<R>,
    /// Index of the next member header.
    index: usize,
    window_log: u32,
}

impl<R: Read> Stream<R> {
    fn err(&self, e: io::Error, at: String) -> PackageError {
        read_error(e, at, self.window_log)
    }

    fn read_exact(&mut self, buf: &mut [u8], at: impl Fn() -> String) -> Result<(), PackageError> {
        self.z.read_exact(buf).map_err(|e| self.err(e, at()))
    }

    /// The next member header, or `None` at a zero block (the first half of
    /// the end-of-archive marker).
    fn next_header(&mut self) -> Result<Option<Member>, PackageError> {
        let mut block = [0u8; BLOCK];
        let index = self.index;
        self.read_exact(&mut block, || format!("the header of member {index}"))?;
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        self.index += 1;
        ustar::parse(&block, index).map(Some)
    }

    /// The data of a metadata member (mode 0644, at most `limit` bytes).
    fn metadata(&mut self, m: &Member, limit: u64) -> Result<Vec<u8>, PackageError> {
        if m.mode != 0o644 {
            return Err(PackageError::MemberMode {
                member: m.name.clone(),
                expected: 0o644,
                found: m.mode,
            });
        }
        if m.size > limit {
            return Err(PackageError::TooLarge {
                what: format!("member {}", m.name),
                size: m.size,
                limit,
            });
        }
        let mut data = vec![0u8; m.size as usize];
        self.read_exact(&mut data, || format!("member {}", m.name))?;
        self.padding(m)?;
        Ok(data)
    }

    /// The zero bytes after a member's data up to the next block.
    fn padding(&mut self, m: &Member) -> Result<(), PackageError> {
        let mut pad = [0u8; BLOCK];
        let pad = &mut pad[..super::build::padding(m.size)];
        self.read_exact(pad, || format!("the padding of member {}", m.name))?;
        if pad.iter().any(|&b| b != 0) {
            return Err(PackageError::HiddenData {
                at: format!("in the padding after member {}", m.name),
            });
        }
        Ok(())
    }

    /// A file member's data and padding: through the sink, hashed, then checked.
    fn file<F>(&mut self, m: &Member, entry: &FileEntry, sink: &mut F) -> Result<(), PackageError>
    where
        F: FnMut(&FileEntry, &mut dyn FileData) -> io::Result<()>,
    {
        self.file_data(m, entry, sink)?;
        self.padding(m)
    }

    /// A file member's data: through the sink, hashed, then checked.
    fn file_data<F>(&mut self, m: &Member, entry: &FileEntry, sink: &mut F) -> Result<(), PackageError>
    where
        F: FnMut(&FileEntry, &mut dyn FileData) -> io::Result<()>,
    {
        let at = || format!("member {}", m.name);
        let window_log = self.window_log;
        let mut data = Verifying {
            frames: &mut self.z,
            size: entry.size,
            hasher: blake3::Hasher::new(),
            read: 0,
            failed: None,
        };
        let sunk = sink(entry, &mut data);
        if let Some(e) = data.failed.take() {
            return Err(read_error(e, at(), window_log));
        }
        sunk.map_err(sink_failed(entry))?;
        // Whatever the sink left unread.
        if let Err(e) = io::copy(&mut data, &mut io::sink()) {
            let e = data.failed.take().unwrap_or(e);
            return Err(read_error(e, at(), window_log));
        }
        let (read, found) = (data.read, ObjectId(*data.hasher.finalize().as_bytes()));
        if read < entry.size {
            return Err(PackageError::Truncated { at: at() });
        }
        debug_assert_eq!(read, entry.size);
        if found != entry.blake3 {
            return Err(PackageError::MemberHash {
                member: m.name.clone(),
                expected: entry.blake3.to_hex(),
                found: found.to_hex(),
            });
        }
        Ok(())
    }

    /// After the first zero block: the second, then nothing but zeros (at
    /// most `max_zeros`) to the clean end of the zstd stream.
    fn end(&mut self, max_zeros: u64) -> Result<(), PackageError> {
        let mut block = [0u8; BLOCK];
        self.read_exact(&mut block, || "the end-of-archive marker".to_string())?;
        if block.iter().any(|&b| b != 0) {
            return Err(PackageError::HiddenData {
                at: "in the second block of the end-of-archive marker".to_string(),
            });
        }
        let mut rest = (&mut self.z).take(max_zeros + 1);
        let mut buf = [0u8; 8192];
        let mut total = 0u64;
        loop {
            let n = match rest.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(e, "the end of the archive".to_string())),
            };
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(PackageError::HiddenData {
                    at: format!("at byte {} after the end-of-archive marker", total + i as u64),
                });
            }
            total += n as u64;
        }
        if total > max_zeros {
            return Err(PackageError::TooLarge {
                what: "the zero padding after the end-of-archive marker".to_string(),
                size: total,
                limit: max_zeros,
            });
        }
        // The stream ended after a complete frame: nothing follows.
        Ok(())
    }
}

/// Maps a read error: truncation, an oversized zstd window, or other.
fn read_error(e: io::Error, at: String, window_log: u32) -> PackageError {
    if let Some(FrameError::WindowTooLarge { .. }) = e.get_ref().and_then(|e| e.downcast_ref::<FrameError>()) {
        return PackageError::WindowTooLarge { limit_log: window_log };
    }
    if let Some(FrameError::ContentSize { .. }) = e.get_ref().and_then(|e| e.downcast_ref::<FrameError>()) {
        // (A frame's content does not decode as declared: as libzstd's own
        // decoding errors, whichever finds it first.)
        return PackageError::Read { at, source: e };
    }
    if let Some(f) = e.get_ref().and_then(|e| e.downcast_ref::<FrameError>()) {
        return PackageError::HiddenData {
            at: format!("in the zstd stream ({f}), {at}"),
        };
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return PackageError::Truncated { at };
    }
    // libzstd's ZSTD_error_frameParameter_windowTooLarge; the zstd crate
    // passes only its message on.
    if e.to_string().contains("Frame requires too much memory") {
        return PackageError::WindowTooLarge { limit_log: window_log };
    }
    PackageError::Read { at, source: e }
}

/// A file member's data as [`read`] hands it to its sink: a reader of
/// exactly the file's bytes and, once they are all read, the zstd frame
/// they came in when the package gave the file a frame of its own
/// (package-format.md, "Compression").
pub trait FileData: Read {
    /// After every byte was read: the member's data as the one plain zstd
    /// frame (RFC 8878) it came in, which declares the file's size as its
    /// content size and which the reader took and decoded whole
    /// (`Frames::take_frame`; its bytes were checked before the sink saw
    /// them), to be stored as is — or `None` (the file was streamed: it
    /// shares a frame, its frame is unusual or over 64 MiB, the package
    /// allows a window larger than the store's, or bytes are left unread).
    ///
    /// # Errors
    /// None today (the frame is in memory); kept for readers that stream.
    fn frame(&mut self) -> io::Result<Option<Vec<u8>>>;
}

/// The reader a sink gets: hashes and counts what passes, and remembers an
/// error of the archive (as opposed to one of the sink).
struct Verifying<'a, R> {
    frames: &'a mut Frames<R>,
    /// The member's size: no byte past it is read.
    size: u64,
    hasher: blake3::Hasher,
    read: u64,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Verifying<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.size - self.read).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        match self.frames.read(&mut buf[..left]) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.read += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(copy)
            }
        }
    }
}

impl<R: Read> FileData for Verifying<'_, R> {
    /// A streamed file's frame is never handed on (see [`FileData::frame`]).
    fn frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(None)
    }
}
