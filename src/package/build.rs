//! Writing a package: hash the files, write the attestation and the
//! manifest, sign the manifest, then write the ustar archive as zstd frames
//! (each file's data in a frame of its own, so an installer can store it
//! as it is). Reproducible: the same inputs, key and time give the same
//! bytes (package-format.md, "Reproducibility").

use super::manifest::{Dependency, FILES_PREFIX, FileEntry, FileMode, Manifest, Version};
use super::ustar::{self, BLOCK};
use super::{ATTESTATION_MEMBER, FORMAT, MANIFEST_MEMBER, NAMESPACE, PackageError, SIGNATURE_MEMBER, ZSTD_LEVEL};
use crate::id::ObjectId;
use crate::keys::{self, PrivateKey, UtcTime};
use rayon::prelude::*;
use std::borrow::Cow;
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
    /// Bytes already hashed and compressed by [`prepare`] (e.g. on the
    /// thread that read and checked them).
    Prepared(&'a Prepared),
}

/// A file's size, BLAKE3 and data frame, made by [`prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    size: u64,
    blake3: ObjectId,
    frame: Option<Vec<u8>>,
}

impl Prepared {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The BLAKE3 of its bytes.
    pub fn blake3(&self) -> ObjectId {
        self.blake3
    }

    /// The file's data frame as the package holds it (`None` when empty).
    pub fn frame(&self) -> Option<&[u8]> {
        self.frame.as_deref()
    }
}

/// Hashes `bytes` and compresses them into the frame [`build`] would write
/// for them: callers that read and check files in parallel do this there,
/// so a build only writes. The package is the same bytes either way.
///
/// # Errors
/// [`PackageError::Write`] when zstd fails.
pub fn prepare(bytes: &[u8]) -> Result<Prepared, PackageError> {
    let size = bytes.len() as u64;
    let (blake3, frame) = if size > IN_MEMORY_FILE {
        let mut frame = Vec::new();
        let (_, blake3, _) = encode_large(&mut frame, &mut &bytes[..], size, PackageError::Write)?;
        (blake3, Some(frame))
    } else {
        let frame = (size > 0)
            .then(|| compress(bytes))
            .transpose()
            .map_err(PackageError::Write)?;
        (ObjectId(*blake3::hash(bytes).as_bytes()), frame)
    };
    Ok(Prepared { size, blake3, frame })
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
    let entries = order
        .par_iter()
        .map(|f| {
            let (size, blake3) = match f.source {
                FileSource::Bytes(bytes) => (bytes.len() as u64, ObjectId(*blake3::hash(bytes).as_bytes())),
                FileSource::Path(path) => hash_file(path)?,
                FileSource::Prepared(p) => (p.size, p.blake3),
            };
            Ok(FileEntry {
                path: f.path.to_string(),
                mode: f.mode,
                size,
                blake3,
            })
        })
        .collect::<Result<Vec<_>, PackageError>>()?;
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

    let mut z = Archive {
        out: Counting { inner: out, written: 0 },
        glue: Vec::new(),
    };
    z.member(MANIFEST_MEMBER, 0o644, &manifest_bytes);
    z.member(SIGNATURE_MEMBER, 0o644, signature.as_bytes());
    z.member(ATTESTATION_MEMBER, 0o644, &attestation);
    // The files, a batch at a time: read and compressed in parallel, then
    // written in order; a large file is streamed on its own.
    let mut next = 0;
    while next < order.len() {
        let mut end = next;
        let mut bytes = 0u64;
        while end < order.len() && manifest.files[end].size <= IN_MEMORY_FILE && (end == next || bytes < BATCH_BYTES) {
            bytes += manifest.files[end].size;
            end += 1;
        }
        if end == next {
            // A large file (prepared already, or streamed here).
            let (f, entry) = (order[next], &manifest.files[next]);
            let member = format!("{FILES_PREFIX}{}", entry.path);
            z.glue
                .extend_from_slice(&ustar::encode(&member, entry.mode.bits(), entry.size));
            match f.source {
                FileSource::Bytes(bytes) => z.stream(&mut &bytes[..], entry, None)?,
                FileSource::Prepared(p) => {
                    if let Some(frame) = &p.frame {
                        z.frame(frame).map_err(PackageError::Write)?;
                    }
                }
                FileSource::Path(path) => {
                    let file = File::open(path).map_err(|source| PackageError::Source {
                        path: path.to_path_buf(),
                        source,
                    })?;
                    z.stream(&mut io::BufReader::with_capacity(1 << 20, file), entry, Some(path))?
                }
            }
            z.glue.extend_from_slice(&[0u8; BLOCK][..padding(entry.size)]);
            next += 1;
            continue;
        }
        // Each file's header frame (the padding before it, its header) and
        // data frame, made in parallel.
        let lead = std::mem::take(&mut z.glue);
        let frames = (next..end)
            .into_par_iter()
            .map(|i| {
                let entry = &manifest.files[i];
                let mut glue = if i == next {
                    lead.clone()
                } else {
                    vec![0u8; padding(manifest.files[i - 1].size)]
                };
                glue.extend_from_slice(&ustar::encode(
                    &format!("{FILES_PREFIX}{}", entry.path),
                    entry.mode.bits(),
                    entry.size,
                ));
                let glue = compress(&glue).map_err(PackageError::Write)?;
                Ok((glue, data_frame(order[i], entry)?))
            })
            .collect::<Result<Vec<_>, PackageError>>()?;
        for (glue, data) in frames {
            z.out.write_all(&glue).map_err(PackageError::Write)?;
            if let Some(data) = data {
                z.out.write_all(&data).map_err(PackageError::Write)?;
            }
        }
        z.glue
            .extend_from_slice(&[0u8; BLOCK][..padding(manifest.files[end - 1].size)]);
        next = end;
    }
    z.glue.extend_from_slice(&[0u8; 2 * BLOCK]);
    z.end_glue().map_err(PackageError::Write)?;
    let compressed_size = z.out.written;
    z.out.inner.flush().map_err(PackageError::Write)?;
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

/// Files up to this size (8 MiB, the store's limit for compressing in
/// memory) are read whole and compressed on the rayon pool; larger ones
/// are streamed through zstd's multithreaded encoder.
const IN_MEMORY_FILE: u64 = 8 << 20;

/// File bytes a batch reads and compresses before its frames are written
/// (32 MiB): what the writer holds in memory beside one large file's
/// encoder.
const BATCH_BYTES: u64 = 32 << 20;

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// `data` as one zstd frame at [`ZSTD_LEVEL`] that declares its content
/// size and has no checksum (the manifest's BLAKE3 covers the bytes): the
/// same bytes on every machine and thread.
fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        c.as_mut().expect("initialised above").compress(data)
    })
}

/// A file's data frame (`None` for an empty file), read from its source
/// and checked against its manifest entry.
fn data_frame<'a>(f: &BuildFile<'a>, entry: &FileEntry) -> Result<Option<Cow<'a, [u8]>>, PackageError> {
    if entry.size == 0 {
        // An empty file has no data; a source that grew meanwhile is caught.
        if let FileSource::Path(path) = f.source {
            let mut probe = [0u8; 1];
            let n = File::open(path)
                .and_then(|mut file| file.read(&mut probe))
                .map_err(|source| PackageError::Source {
                    path: path.to_path_buf(),
                    source,
                })?;
            if n > 0 {
                return Err(PackageError::SourceChanged {
                    path: path.to_path_buf(),
                });
            }
        }
        return Ok(None);
    }
    let frame = match f.source {
        FileSource::Bytes(bytes) => compress(bytes),
        FileSource::Path(path) => {
            let source = |source| PackageError::Source {
                path: path.to_path_buf(),
                source,
            };
            let mut bytes = Vec::with_capacity(entry.size as usize);
            File::open(path)
                .map_err(source)?
                .take(entry.size + 1)
                .read_to_end(&mut bytes)
                .map_err(source)?;
            if bytes.len() as u64 != entry.size || ObjectId(*blake3::hash(&bytes).as_bytes()) != entry.blake3 {
                return Err(PackageError::SourceChanged {
                    path: path.to_path_buf(),
                });
            }
            compress(&bytes)
        }
        FileSource::Prepared(p) => return Ok(p.frame.as_deref().map(Cow::Borrowed)),
    };
    frame.map(|f| Some(Cow::Owned(f))).map_err(PackageError::Write)
}

/// Zero bytes after `size` bytes of data up to the next 512-byte boundary.
pub(super) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The archive being written as zstd frames (package-format.md,
/// "Compression"): each non-empty file's data in a frame of its own, and
/// everything between two of them (headers, padding, the metadata members,
/// the end-of-archive marker) gathered in `glue` and written as one frame.
struct Archive<W> {
    out: Counting<W>,
    glue: Vec<u8>,
}

impl<W: Write> Archive<W> {
    /// One metadata member: header, data, padding, all glue.
    fn member(&mut self, member: &str, mode: u32, data: &[u8]) {
        self.glue
            .extend_from_slice(&ustar::encode(member, mode, data.len() as u64));
        self.glue.extend_from_slice(data);
        self.glue.extend_from_slice(&[0u8; BLOCK][..padding(data.len() as u64)]);
    }

    /// Writes the glue gathered so far as a frame.
    fn end_glue(&mut self) -> io::Result<()> {
        if !self.glue.is_empty() {
            let frame = compress(&self.glue)?;
            self.out.write_all(&frame)?;
            self.glue.clear();
        }
        Ok(())
    }

    /// Writes a file's data frame.
    fn frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.end_glue()?;
        self.out.write_all(frame)
    }

    /// Streams a large file's data into a frame of its own (zstd's
    /// multithreaded mode, whose output is the same for any number of
    /// workers: facebook/zstd#2238, #2327), checking that it still has the
    /// size and hash it had when the manifest was written.
    fn stream(&mut self, reader: &mut dyn Read, entry: &FileEntry, path: Option<&Path>) -> Result<(), PackageError> {
        let source = |source| match path {
            Some(path) => PackageError::Source {
                path: path.to_path_buf(),
                source,
            },
            None => PackageError::Write(source),
        };
        let changed = || PackageError::SourceChanged {
            path: path.map(Path::to_path_buf).unwrap_or_default(),
        };
        self.end_glue().map_err(PackageError::Write)?;
        let (copied, blake3, longer) = encode_large(&mut self.out, reader, entry.size, source)?;
        if copied != entry.size || longer || blake3 != entry.blake3 {
            return Err(changed());
        }
        Ok(())
    }
}

/// Compresses up to `size` bytes of `reader` into one zstd frame written to
/// `out`, in zstd's multithreaded streaming mode with the content size
/// declared: the output is the same for any number of workers
/// (facebook/zstd#2238, #2327). Returns the bytes read, their BLAKE3, and
/// whether the reader had more. `source` maps a read error.
fn encode_large(
    out: &mut dyn Write,
    reader: &mut dyn Read,
    size: u64,
    source: impl Fn(io::Error) -> PackageError,
) -> Result<(u64, ObjectId, bool), PackageError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8) as u32;
    let mut z = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(PackageError::Write)?;
    z.multithread(workers).map_err(PackageError::Write)?;
    z.include_contentsize(true).map_err(PackageError::Write)?;
    z.set_pledged_src_size(Some(size)).map_err(PackageError::Write)?;
    let mut hasher = blake3::Hasher::new();
    let mut limited = reader.take(size);
    let mut buf = vec![0u8; 1 << 20];
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
    if copied == size {
        // (A short source fails the pledged size; the caller reports it as changed.)
        z.finish().map_err(PackageError::Write)?;
    }
    Ok((copied, ObjectId(*hasher.finalize().as_bytes()), longer))
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
