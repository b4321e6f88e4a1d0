//! Packages: the installable, signed unit of cplane — building one and
//! reading one back with every check an installer needs done before it
//! writes anything.
//!
//! A package is one ustar archive compressed with zstd whose members come in
//! a fixed order: `manifest.json` (id, version, spec, framework, tier,
//! dependencies, and every file's path, mode, size and BLAKE3),
//! `manifest.json.sig` (an OpenSSH `sshsig` signature over the manifest in
//! namespace [`NAMESPACE`]), `attestation.json` (an in-toto Statement v1),
//! then each file as `files/<path>` in manifest order. `package-format.md`
//! at the repository root specifies every byte, and shows how to build a
//! package with `tar`, `zstd`, `b3sum` and `ssh-keygen -Y sign` alone.
//!
//! - [`build`] writes a package; the same inputs, key and time give the
//!   same bytes.
//! - [`read`] streams a package through a caller's sink (for staging files),
//!   refusing a hostile or damaged archive with a [`PackageError`] variant
//!   per refusal; [`read_to_memory`] keeps the files in memory.
//! - [`Manifest`], [`Attestation`], [`Version`], [`Requirement`] and
//!   [`check_path`] are the documents and rules themselves.

mod build;
mod frames;
pub mod install;
mod manifest;
mod read;
mod ustar;

pub use build::{BuildFile, Built, FileSource, PackageMeta, Prepared, build, prepare};
pub use manifest::{
    Attestation, Comparator, Dependency, Digest, FILES_PREFIX, FileEntry, FileMode, MAX_FILE_SIZE, Manifest, Op,
    PathRule, Predicate, Requirement, Subject, Version, check_path, parse_rfc3339, rfc3339, ustar_split,
};
pub use read::{FileData, Package, read, read_parallel, read_to_memory, read_with};

use crate::keys::{KeyError, Role};
use std::io;
use std::path::PathBuf;

/// The format version this module writes and reads (`"format": 1`).
pub const FORMAT: u32 = 1;
/// The `sshsig` namespace of the manifest signature.
pub const NAMESPACE: &str = "cplane-package";
/// The first member: the manifest.
pub const MANIFEST_MEMBER: &str = "manifest.json";
/// The second member: the manifest's signature.
pub const SIGNATURE_MEMBER: &str = "manifest.json.sig";
/// The third member: the in-toto attestation.
pub const ATTESTATION_MEMBER: &str = "attestation.json";
/// The in-toto Statement type, `_type` of `attestation.json`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The `predicateType` of `attestation.json`: cplane's package predicate,
/// version 1 (a URN: cplane owns no web address to put here).
pub const PREDICATE_TYPE: &str = "urn:cplane:predicate:package:v1";
/// The zstd level [`build`] compresses each frame with: 1, the store's
/// own level (an installed file's frame is stored as it is), and the
/// fastest `pack` (package-format.md, "Compression").
pub const ZSTD_LEVEL: i32 = 1;

/// Bounds a reader enforces, so that a hostile package cannot make it use
/// unbounded memory, disk or time. Every bound is checked before the bytes
/// it bounds are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest `manifest.json` or `attestation.json`, in bytes.
    pub max_metadata_bytes: u64,
    /// Largest `manifest.json.sig`, in bytes.
    pub max_signature_bytes: u64,
    /// Most files a manifest may list.
    pub max_files: usize,
    /// Largest sum of the manifest's file sizes, in bytes.
    pub max_total_bytes: u64,
    /// Largest zstd window, as a power of two: a frame that asks for more is
    /// refused before any memory is given to it.
    pub window_log_max: u32,
    /// Most zero bytes accepted after the end-of-archive marker (tar pads
    /// archives to whole records; GNU tar's default record is 10240 bytes).
    pub max_trailing_zero_bytes: u64,
}

impl Default for Limits {
    /// 64 MiB metadata, 64 KiB signature, 1,000,000 files, 64 GiB of file
    /// bytes, a 128 MiB window (2^27, zstd's own default limit, enough for
    /// every level including `--ultra -22` and `--long`), 1 MiB of trailing
    /// zeros.
    fn default() -> Self {
        Limits {
            max_metadata_bytes: 64 << 20,
            max_signature_bytes: 64 << 10,
            max_files: 1_000_000,
            max_total_bytes: 64 << 30,
            window_log_max: 27,
            max_trailing_zero_bytes: 1 << 20,
        }
    }
}

/// Why building or reading a package failed. Every refusal of a hostile or
/// damaged archive has its own variant; each message names the member or
/// path and says what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file given to [`build`] could not be read.
    #[error("could not read {}: {source}", path.display())]
    Source {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A file given to [`build`] changed while the package was being written.
    #[error("{} changed while the package was being written; build again", path.display())]
    SourceChanged {
        /// The file.
        path: PathBuf,
    },
    /// Writing the package failed.
    #[error("could not write the package: {0}")]
    Write(io::Error),
    /// Signing the manifest failed.
    #[error("could not sign the manifest: {0}")]
    Sign(KeyError),
    /// Reading or decompressing the package failed (other than the cases
    /// below with their own variant).
    #[error("could not read the package ({at}): {source}")]
    Read {
        /// Where in the archive ("the header of member 4", …).
        at: String,
        /// The error.
        source: io::Error,
    },
    /// The zstd stream asks for a larger window than [`Limits::window_log_max`].
    #[error(
        "the package's zstd frame asks for a window larger than 2^{limit_log} bytes; refused before decompressing it"
    )]
    WindowTooLarge {
        /// The limit, as a power of two.
        limit_log: u32,
    },
    /// The archive ends early (inside the zstd stream, a header, a member's
    /// data or the end-of-archive marker).
    #[error("the package is truncated: it ends inside {at}")]
    Truncated {
        /// What it ends inside.
        at: String,
    },
    /// A member, the file list or the whole is larger than a [`Limits`] bound.
    #[error("{what} is {size} bytes (or more), over the limit of {limit} bytes")]
    TooLarge {
        /// What is too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A member header is not a valid POSIX ustar header.
    #[error("member {index} has an invalid header: {reason}")]
    BadHeader {
        /// 0-based position of the member.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A symbolic-link member.
    #[error("member {member} is a symbolic link (to {target}): packages hold regular files only")]
    Symlink {
        /// The member's name.
        member: String,
        /// Its target.
        target: String,
    },
    /// A hard-link member.
    #[error("member {member} is a hard link (to {target}): packages hold regular files only")]
    HardLink {
        /// The member's name.
        member: String,
        /// The member it links to.
        target: String,
    },
    /// A character- or block-device member.
    #[error("member {member} is a device node: packages hold regular files only")]
    Device {
        /// The member's name.
        member: String,
    },
    /// A FIFO member.
    #[error("member {member} is a FIFO: packages hold regular files only")]
    Fifo {
        /// The member's name.
        member: String,
    },
    /// A directory member.
    #[error("member {member} is a directory: packages hold regular files only (directories are implied by paths)")]
    Directory {
        /// The member's name.
        member: String,
    },
    /// Any other member type (pax or GNU extension headers, sparse or
    /// contiguous files, old-style `\0` regular files).
    #[error("member {member} has type flag {typeflag:?}: only regular files (type '0') are allowed")]
    OtherType {
        /// The member's name.
        member: String,
        /// The type flag byte.
        typeflag: char,
    },
    /// The second member is not `manifest.json.sig`.
    #[error("the package is unsigned: the member after manifest.json is {found}, not manifest.json.sig")]
    Unsigned {
        /// What came instead ("the end of the archive" or a member name).
        found: String,
    },
    /// A member other than the one the format requires at this position.
    #[error("member {index} is {found}, but the format requires {expected} there")]
    UnexpectedMember {
        /// 0-based position.
        index: usize,
        /// The member the format requires.
        expected: String,
        /// The member found.
        found: String,
    },
    /// A member name that appeared before.
    #[error("member {member} appears twice")]
    DuplicateMember {
        /// The member's name.
        member: String,
    },
    /// A member after the last file the manifest lists.
    #[error("member {member} is not in the manifest")]
    ExtraMember {
        /// The member's name.
        member: String,
    },
    /// The archive ended before a file the manifest lists.
    #[error("file {path} is in the manifest but not in the archive")]
    MissingMember {
        /// The file's path.
        path: String,
    },
    /// A member's mode differs from the manifest's (or is not 0644 for a
    /// metadata member).
    #[error("member {member} has mode {found:04o}, but {expected:04o} is required")]
    MemberMode {
        /// The member's name.
        member: String,
        /// The required mode.
        expected: u32,
        /// The mode in its header.
        found: u32,
    },
    /// A member's header declares more bytes than the manifest: it would
    /// expand past its declared size. Refused before its data is read.
    #[error(
        "member {member} holds {found} bytes, more than the {expected} the manifest declares; refused before reading it"
    )]
    MemberTooLarge {
        /// The member's name.
        member: String,
        /// The manifest's size.
        expected: u64,
        /// The header's size.
        found: u64,
    },
    /// A member's header declares fewer bytes than the manifest.
    #[error("member {member} holds {found} bytes, fewer than the {expected} the manifest declares")]
    MemberTooSmall {
        /// The member's name.
        member: String,
        /// The manifest's size.
        expected: u64,
        /// The header's size.
        found: u64,
    },
    /// A member's BLAKE3 differs from the manifest's.
    #[error("member {member} has BLAKE3 {found}, but the manifest says {expected}")]
    MemberHash {
        /// The member's name.
        member: String,
        /// The manifest's digest.
        expected: String,
        /// The digest of the bytes read.
        found: String,
    },
    /// Non-zero bytes where the format requires zeros: a member's padding
    /// to 512 bytes, the end-of-archive marker or what follows it.
    #[error("non-zero bytes {at}: data hidden outside any member")]
    HiddenData {
        /// Where.
        at: String,
    },
    /// The signature did not verify against the trusted keys (unknown or
    /// revoked key, wrong namespace, bad signature, malformed text, …).
    #[error("the manifest's signature is refused: {0}")]
    Signature(KeyError),
    /// The signing key is trusted but its role may not sign packages.
    #[error(
        "the manifest is signed by {fingerprint}, whose role {role} may not sign packages (maintainer or admin may)"
    )]
    SignerRole {
        /// The key's fingerprint.
        fingerprint: String,
        /// Its role.
        role: Role,
    },
    /// The manifest is not valid JSON of the manifest's schema.
    #[error("manifest.json is not a valid manifest: {reason}")]
    ManifestJson {
        /// serde_json's message.
        reason: String,
    },
    /// The manifest is valid but not in canonical form.
    #[error("manifest.json is not in canonical form (compact JSON, keys in the documented order, no trailing newline)")]
    ManifestNotCanonical,
    /// The manifest's format number is not [`FORMAT`].
    #[error("manifest.json has format {found}; this cplane reads format 1 only")]
    UnsupportedFormat {
        /// The number found.
        found: u64,
    },
    /// A manifest field breaks its rule.
    #[error("manifest.json field {field}: {reason}")]
    ManifestField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The manifest's files are not sorted by path bytes, or a path repeats.
    #[error("manifest.json lists {path} after {previous}: files must be sorted by path bytes, each once")]
    FileOrder {
        /// The path out of order.
        path: String,
        /// The path before it.
        previous: String,
    },
    /// A file path (in the manifest or an archive member) breaks a
    /// path-safety rule.
    #[error("path {path:?} is unsafe: {rule}")]
    UnsafePath {
        /// The path.
        path: String,
        /// The rule it breaks.
        rule: PathRule,
    },
    /// Two paths equal under `str::to_lowercase`.
    #[error("paths {first} and {second} are the same on a case-insensitive file system")]
    CaseCollision {
        /// The first path.
        first: String,
        /// The second.
        second: String,
    },
    /// A file path that is also another file's directory.
    #[error("{file} is a file, so {other} cannot be installed below it")]
    PathConflict {
        /// The file.
        file: String,
        /// The path that needs it as a directory.
        other: String,
    },
    /// The many files or bytes the manifest lists exceed a [`Limits`] bound.
    #[error("manifest.json lists {count} files, over the limit of {limit}")]
    TooManyFiles {
        /// Files listed.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// `attestation.json`'s BLAKE3 differs from the manifest's `attestation`.
    #[error("attestation.json has BLAKE3 {found}, but the signed manifest says {expected}")]
    AttestationDigest {
        /// The manifest's digest.
        expected: String,
        /// The digest of the member.
        found: String,
    },
    /// `attestation.json` is not a valid attestation.
    #[error("attestation.json is not a valid attestation: {reason}")]
    AttestationJson {
        /// What is wrong.
        reason: String,
    },
    /// `attestation.json` disagrees with the manifest or the signer.
    #[error("attestation.json disagrees with the manifest: {reason}")]
    AttestationMismatch {
        /// The first disagreement.
        reason: String,
    },
    /// The caller's sink failed on a file.
    #[error("staging {path} failed: {source}")]
    Sink {
        /// The file's path.
        path: String,
        /// The sink's error.
        source: io::Error,
    },
}
