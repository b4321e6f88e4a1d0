//! Writing a package: hash the files, write the attestation and the
//! manifest, sign the manifest, then stream the ustar archive through one
//! zstd frame. Reproducible: the same inputs, key and time give the same
//! bytes (package-format.md, "Reproducibility").

use super::manifest::{Dependency, FILES_PREFIX, FileEntry, FileMode, Manifest, Version};
use super::ustar::{self, BLOCK};
use super::{ATTESTATION_MEMBER, FORMAT, MANIFEST_MEMBER, NAMESPACE, PackageError, SIGNATURE_MEMBER, ZSTD_LEVEL};
use crate::id::ObjectId;
use crate::keys::{self, PrivateKey, UtcTime};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// What a package is, apart from its files (the manifest's other fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageMeta {
    /// `PKG-…`.
    pub id: String,
    /// The package version.
    pub version: Version,
    /// `SPEC-…`.
    pub spec_id: String,
    /// `FMWK-…`.
    pub framework_id: String,
    /// The tier it is meant for.
    pub tier: String,
    /// Packages it needs (any order; written sorted by id).
    pub dependencies: Vec<Dependency>,
}

/// Where a file's bytes come from.
#[derive(Debug, Clone, Copy)]
pub enum FileSource<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// The contents of this file, opened with `File::open` (read twice: to
    /// hash it, then to write it; a change in between is an error).
    Path(&'a Path),
}

/// One file to put in a package.
#[derive(Debug, Clone, Copy)]
pub struct BuildFile<'a> {
    /// Its plane-relative path (must pass [`super::check_path`]).
    pub path: &'a str,
    /// Its mode.
    pub mode: FileMode,
    /// Its bytes.
    pub source: FileSource<'a>,
}

/// What [`build`] wrote.
#[derive(Debug, Clone)]
pub struct Built {
    /// The manifest.
    pub manifest: Manifest,
    /// Its canonical bytes (the `manifest.json` member, what was signed).
    pub manifest_bytes: Vec<u8>,
    /// BLAKE3 of `manifest_bytes` (the packages registry's manifest digest).
    pub manifest_digest: ObjectId,
    /// Bytes written to the output (the compressed package).
    pub compressed_size: u64,
}

/// Builds a package of `files` described by `meta`, signed with `key` (an
/// ed25519 key) in namespace [`NAMESPACE`], with `time` as the attestation's
/// build time, and writes it to `out`. The files may come in any order; they
/// are written sorted by path bytes. The output depends only on the
/// arguments (and the bundled zstd version): see package-format.md.
///
/// # Errors
/// The manifest checks a reader makes ([`Manifest::validate`]: unsafe or
/// colliding paths, bad ids, …), [`PackageError::Source`] or
/// [`PackageError::SourceChanged`] for a file that cannot be read or changes
/// meanwhile, [`PackageError::Sign`], [`PackageError::Write`].
pub fn build<W: Write>(
    meta: &PackageMeta,
    files: &[BuildFile<'_>],
    key: &PrivateKey,
    time: UtcTime,
    out: W,
) -> Result<Built, PackageError> {
    let mut order: Vec<&BuildFile<'_>> = files.iter().collect();
    order.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut entries = Vec::with_capacity(order.len());
    for f in &order {
        let (size, blake3) = match f.source {
            FileSource::Bytes(bytes) => (bytes.len() as u64, ObjectId(*blake3::hash(bytes).as_bytes())),
            FileSource::Path(path) => hash_file(path)?,
        };
        entries.push(FileEntry {
            path: f.path.to_string(),
            mode: f.mode,
            size,
            blake3,
        });
    }
    let mut dependencies = meta.dependencies.clone();
    dependencies.sort_by(|a, b| a.id.cmp(&b.id));
    let mut manifest = Manifest {
        format: FORMAT,
        id: meta.id.clone(),
        version: meta.version,
        spec_id: meta.spec_id.clone(),
        framework_id: meta.framework_id.clone(),
        tier: meta.tier.clone(),
        dependencies,
        attestation: ObjectId::default(),
        files: entries,
    };
    manifest.validate()?;
    let attestation = manifest
        .expected_attestation(&keys::fingerprint(key.public_key()), time)
        .to_canonical_bytes();
    manifest.attestation = ObjectId(*blake3::hash(&attestation).as_bytes());
    let manifest_bytes = manifest.to_canonical_bytes();
    let signature = keys::sign(key, NAMESPACE, &manifest_bytes).map_err(PackageError::Sign)?;

    // The archive's exact length, so the frame header can carry it.
    let padded = |n: u64| n.div_ceil(BLOCK as u64) * BLOCK as u64;
    let metadata = [manifest_bytes.len(), signature.len(), attestation.len()];
    let total = metadata.iter().map(|&n| BLOCK as u64 + padded(n as u64)).sum::<u64>()
        + manifest
            .files
            .iter()
            .map(|f| BLOCK as u64 + padded(f.size))
            .sum::<u64>()
        + 2 * BLOCK as u64;

    let mut counted = Counting { inner: out, written: 0 };
    let mut z = zstd::stream::write::Encoder::new(&mut counted, ZSTD_LEVEL).map_err(PackageError::Write)?;
    z.include_checksum(true).map_err(PackageError::Write)?;
    // zstd's multithreaded (streaming) mode writes the same bytes for any
    // number of workers (facebook/zstd#2238, #2327), so the package stays
    // reproducible across machines while compression runs beside the tar
    // writing on the other cores.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8) as u32;
    z.multithread(workers).map_err(PackageError::Write)?;
    z.include_contentsize(true).map_err(PackageError::Write)?;
    z.set_pledged_src_size(Some(total)).map_err(PackageError::Write)?;
    write_member(&mut z, MANIFEST_MEMBER, 0o644, &manifest_bytes).map_err(PackageError::Write)?;
    write_member(&mut z, SIGNATURE_MEMBER, 0o644, signature.as_bytes()).map_err(PackageError::Write)?;
    write_member(&mut z, ATTESTATION_MEMBER, 0o644, &attestation).map_err(PackageError::Write)?;
    for (f, entry) in order.iter().zip(&manifest.files) {
        let member = format!("{FILES_PREFIX}{}", entry.path);
        match f.source {
            FileSource::Bytes(bytes) => {
                write_member(&mut z, &member, entry.mode.bits(), bytes).map_err(PackageError::Write)?
            }
            FileSource::Path(path) => copy_file(&mut z, &member, entry, path)?,
        }
    }
    z.write_all(&[0u8; 2 * BLOCK]).map_err(PackageError::Write)?;
    z.finish().map_err(PackageError::Write)?;
    let compressed_size = counted.written;
    counted.inner.flush().map_err(PackageError::Write)?;
    Ok(Built {
        manifest_digest: ObjectId(*blake3::hash(&manifest_bytes).as_bytes()),
        manifest,
        manifest_bytes,
        compressed_size,
    })
}

/// Size and BLAKE3 of a file's contents.
fn hash_file(path: &Path) -> Result<(u64, ObjectId), PackageError> {
    let source = |source| PackageError::Source {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(source)?;
    let mut hasher = blake3::Hasher::new();
    let mut counting = CountingRead { inner: file, read: 0 };
    hasher.update_reader(&mut counting).map_err(source)?;
    Ok((counting.read, ObjectId(*hasher.finalize().as_bytes())))
}

/// Streams a file given by path into the archive, checking it still has the
/// size and hash it had when the manifest was written.
fn copy_file<W: Write>(z: &mut W, member: &str, entry: &FileEntry, path: &Path) -> Result<(), PackageError> {
    let source = |source| PackageError::Source {
        path: path.to_path_buf(),
        source,
    };
    let changed = || PackageError::SourceChanged {
        path: path.to_path_buf(),
    };
    let file = File::open(path).map_err(source)?;
    z.write_all(&ustar::encode(member, entry.mode.bits(), entry.size))
        .map_err(PackageError::Write)?;
    let mut hasher = blake3::Hasher::new();
    let mut limited = file.take(entry.size);
    let mut buf = vec![0u8; 64 << 10];
    let mut copied = 0u64;
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(source(e)),
        };
        hasher.update(&buf[..n]);
        z.write_all(&buf[..n]).map_err(PackageError::Write)?;
        copied += n as u64;
    }
    let mut probe = [0u8; 1];
    let longer = limited.into_inner().read(&mut probe).map_err(source)? > 0;
    if copied != entry.size || longer || ObjectId(*hasher.finalize().as_bytes()) != entry.blake3 {
        return Err(changed());
    }
    z.write_all(&[0u8; BLOCK][..padding(entry.size)])
        .map_err(PackageError::Write)
}

/// Zero bytes after `size` bytes of data up to the next 512-byte boundary.
pub(super) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// One member: header, data, zero padding.
fn write_member<W: Write>(z: &mut W, member: &str, mode: u32, data: &[u8]) -> io::Result<()> {
    z.write_all(&ustar::encode(member, mode, data.len() as u64))?;
    z.write_all(data)?;
    z.write_all(&[0u8; BLOCK][..padding(data.len() as u64)])
}

/// A writer that counts the bytes it passes on.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts the bytes it passes on.
struct CountingRead<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}
