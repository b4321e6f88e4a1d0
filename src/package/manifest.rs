//! The package's JSON documents: the manifest (what the package is and every
//! file's path, mode, size and BLAKE3), its version and requirement grammar,
//! the in-toto attestation, and the path-safety rules every file path obeys.
//! `package-format.md`, "manifest.json" and "attestation.json", is the
//! specification; this module implements it.

use super::{FORMAT, PREDICATE_TYPE, PackageError, STATEMENT_TYPE};
use crate::id::ObjectId;
use crate::keys::UtcTime;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The largest file a format-1 package holds: 8 GiB - 1 byte, the largest
/// size a ustar header's 11 octal digits can write.
pub const MAX_FILE_SIZE: u64 = 0o77_777_777_777;

/// The directory of the archive the files live under (`files/<path>`).
pub const FILES_PREFIX: &str = "files/";

// ---------------------------------------------------------------- versions

/// A package version, `MAJOR.MINOR.PATCH`: three decimal numbers (each fits
/// in a u64, no leading zeros, no sign), compared numerically in that order.
/// No pre-release or build suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Incompatible changes.
    pub major: u64,
    /// Compatible additions.
    pub minor: u64,
    /// Fixes.
    pub patch: u64,
}

impl Version {
    /// The version `major.minor.patch`.
    pub fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version { major, minor, patch }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

fn parse_number(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

impl FromStr for Version {
    type Err = String;
    /// Parses `MAJOR.MINOR.PATCH` exactly (see [`Version`]).
    fn from_str(s: &str) -> Result<Version, String> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [a, b, c] => match (parse_number(a), parse_number(b), parse_number(c)) {
                (Some(major), Some(minor), Some(patch)) => Ok(Version { major, minor, patch }),
                _ => Err(format!(
                    "version {s:?} is not MAJOR.MINOR.PATCH (decimal numbers without leading zeros)"
                )),
            },
            _ => Err(format!("version {s:?} is not MAJOR.MINOR.PATCH")),
        }
    }
}

/// A comparison operator of a [`Requirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`: exactly this version.
    Eq,
    /// `>`: newer than this version.
    Gt,
    /// `>=`: this version or newer.
    Ge,
    /// `<`: older than this version.
    Lt,
    /// `<=`: this version or older.
    Le,
}

impl Op {
    /// The operator as written: `=`, `>`, `>=`, `<`, `<=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// One `op version` term of a [`Requirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Comparator {
    /// How the version is compared.
    pub op: Op,
    /// The version compared against.
    pub version: Version,
}

impl Comparator {
    /// True when `v` satisfies this term.
    pub fn matches(&self, v: &Version) -> bool {
        match self.op {
            Op::Eq => v == &self.version,
            Op::Gt => v > &self.version,
            Op::Ge => v >= &self.version,
            Op::Lt => v < &self.version,
            Op::Le => v <= &self.version,
        }
    }
}

/// A version requirement on a dependency: one or more comparators, all of
/// which must hold (`>=1.2.0, <2.0.0`). The grammar (package-format.md,
/// "Version requirements") is exact — `comparator *(", " comparator)`,
/// `comparator = op version`, `op` one of `=` `>=` `>` `<=` `<` — so a
/// requirement has one spelling, the one [`fmt::Display`] writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The terms, in the order written (at least one).
    pub comparators: Vec<Comparator>,
}

impl Requirement {
    /// True when `v` satisfies every comparator.
    pub fn matches(&self, v: &Version) -> bool {
        self.comparators.iter().all(|c| c.matches(v))
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.comparators.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}", c.op.as_str(), c.version)?;
        }
        Ok(())
    }
}

impl FromStr for Requirement {
    type Err = String;
    /// Parses the exact grammar of [`Requirement`].
    fn from_str(s: &str) -> Result<Requirement, String> {
        let mut comparators = Vec::new();
        for term in s.split(", ") {
            // Longest operator first.
            let (op, rest) = [Op::Ge, Op::Le, Op::Eq, Op::Gt, Op::Lt]
                .into_iter()
                .find_map(|op| term.strip_prefix(op.as_str()).map(|rest| (op, rest)))
                .ok_or_else(|| format!("requirement {s:?}: term {term:?} does not start with =, >=, >, <= or <"))?;
            let version = rest.parse().map_err(|e| format!("requirement {s:?}: {e}"))?;
            comparators.push(Comparator { op, version });
        }
        Ok(Requirement { comparators })
    }
}

macro_rules! serde_via_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_string!(Version);
serde_via_string!(Requirement);

// ------------------------------------------------------------------- files

/// A file's permission bits: format 1 has exactly two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileMode {
    /// `"0644"`: rw-r--r--.
    Regular,
    /// `"0755"`: rwxr-xr-x.
    Executable,
}

impl FileMode {
    /// The permission bits (0o644 or 0o755).
    pub fn bits(self) -> u32 {
        match self {
            FileMode::Regular => 0o644,
            FileMode::Executable => 0o755,
        }
    }

    /// The mode with permission bits `bits`, if it is one of the two.
    pub fn from_bits(bits: u32) -> Option<FileMode> {
        match bits {
            0o644 => Some(FileMode::Regular),
            0o755 => Some(FileMode::Executable),
            _ => None,
        }
    }
}

impl fmt::Display for FileMode {
    /// Four octal digits: `0644` or `0755`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.bits())
    }
}

impl FromStr for FileMode {
    type Err = String;
    fn from_str(s: &str) -> Result<FileMode, String> {
        match s {
            "0644" => Ok(FileMode::Regular),
            "0755" => Ok(FileMode::Executable),
            _ => Err(format!("mode {s:?} is neither \"0644\" nor \"0755\"")),
        }
    }
}
serde_via_string!(FileMode);

/// Serde for a BLAKE3 digest as 64 lower-case hex digits.
mod hex_digest {
    use crate::id::ObjectId;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
        let mut hex = [0u8; 64];
        for (pair, b) in hex.chunks_exact_mut(2).zip(id.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 15)];
        }
        s.serialize_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }

    const DIGITS: &[u8; 16] = b"0123456789abcdef";

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        d.deserialize_str(Digest)
    }

    /// A digest read from the JSON string in place (10,000 files: no
    /// allocation per digest).
    struct Digest;

    impl serde::de::Visitor<'_> for Digest {
        type Value = ObjectId;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a BLAKE3 digest (64 lower-case hex digits)")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ObjectId, E> {
            ObjectId::from_lower_hex(text)
                .ok_or_else(|| E::custom(format!("{text:?} is not a BLAKE3 digest (64 lower-case hex digits)")))
        }
    }
}

/// One file of a package, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Plane-relative path, `/`-separated, obeying [`check_path`].
    pub path: String,
    /// Permission bits.
    pub mode: FileMode,
    /// Length in bytes (at most [`MAX_FILE_SIZE`]).
    pub size: u64,
    /// BLAKE3 of the bytes (the blob id; what `b3sum` prints).
    #[serde(with = "hex_digest")]
    pub blake3: ObjectId,
}

/// A package this one needs installed, with the versions it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// The other package's id (`PKG-…`).
    pub id: String,
    /// The versions of it this package works with.
    pub requirement: Requirement,
}

/// `manifest.json`: the signed description of a package. Its canonical
/// bytes ([`Manifest::to_canonical_bytes`]) are compact JSON with the keys
/// in the order of these fields; a reader accepts only those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The package format version: [`FORMAT`] (1).
    pub format: u32,
    /// The package id, `PKG-…` (`A-Z a-z 0-9 . _ -`).
    pub id: String,
    /// The package version.
    pub version: Version,
    /// The spec the package implements, `SPEC-…`.
    pub spec_id: String,
    /// The framework of that spec, `FMWK-…`.
    pub framework_id: String,
    /// The tier of planes the package is meant for (a plane-name-like label,
    /// e.g. `ho1`).
    pub tier: String,
    /// Packages this one needs, sorted by id, each id once.
    pub dependencies: Vec<Dependency>,
    /// BLAKE3 of `attestation.json`'s bytes, so the signature covers it.
    #[serde(with = "hex_digest")]
    pub attestation: ObjectId,
    /// Every file, sorted by path bytes, each path once.
    pub files: Vec<FileEntry>,
}

/// Just the format number, read before the rest so that a newer format is
/// reported as such rather than as unknown fields.
#[derive(Deserialize)]
struct FormatProbe {
    format: u64,
}

impl Manifest {
    /// The canonical bytes: compact JSON, keys in declaration order, no
    /// trailing newline (serde_json's output).
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serializes")
    }

    /// Parses and validates manifest bytes as a reader must: the format
    /// number first, then the strict schema (no unknown or missing fields),
    /// then canonical form (the bytes must equal
    /// [`Manifest::to_canonical_bytes`]), then [`Manifest::validate`].
    ///
    /// # Errors
    /// [`PackageError::UnsupportedFormat`], [`PackageError::ManifestJson`],
    /// [`PackageError::ManifestNotCanonical`], or what `validate` returns.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, PackageError> {
        let json_err = |e: serde_json::Error| PackageError::ManifestJson { reason: e.to_string() };
        // A manifest of another format may not fit this one's schema: its
        // format number is read first when the schema does not fit.
        let manifest: Manifest = match serde_json::from_slice(bytes) {
            Ok(m) => m,
            Err(e) => {
                let probe: FormatProbe = serde_json::from_slice(bytes).map_err(json_err)?;
                if probe.format != u64::from(FORMAT) {
                    return Err(PackageError::UnsupportedFormat { found: probe.format });
                }
                return Err(json_err(e));
            }
        };
        if manifest.format != FORMAT {
            return Err(PackageError::UnsupportedFormat {
                found: u64::from(manifest.format),
            });
        }
        if manifest.to_canonical_bytes() != bytes {
            return Err(PackageError::ManifestNotCanonical);
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks everything the format requires of a manifest beyond its
    /// schema: format number, id syntax, tier, dependencies sorted and
    /// unique (and not the package itself), file sizes, every path safe
    /// ([`check_path`]), paths sorted and unique by bytes, no two paths equal
    /// under `str::to_lowercase`, and no file path that is another file's
    /// directory (`a` and `a/b`, also compared lower-cased).
    ///
    /// # Errors
    /// The first violation, as its own [`PackageError`] variant.
    pub fn validate(&self) -> Result<(), PackageError> {
        if self.format != FORMAT {
            return Err(PackageError::UnsupportedFormat {
                found: u64::from(self.format),
            });
        }
        let field = |field: &'static str| move |reason: String| PackageError::ManifestField { field, reason };
        use crate::governance::registry::check_id;
        check_id(&self.id, "PKG-", "package").map_err(field("id"))?;
        check_id(&self.spec_id, "SPEC-", "spec").map_err(field("spec_id"))?;
        check_id(&self.framework_id, "FMWK-", "framework").map_err(field("framework_id"))?;
        if !crate::store::refs::valid_name(&self.tier) {
            return Err(field("tier")(format!(
                "tier {:?} must be 1 to {} characters of A-Z a-z 0-9 . _ -, not starting with . or -",
                self.tier,
                crate::store::refs::MAX_NAME_LEN
            )));
        }
        let mut previous: Option<&str> = None;
        for dep in &self.dependencies {
            check_id(&dep.id, "PKG-", "dependency").map_err(field("dependencies"))?;
            if dep.id == self.id {
                return Err(field("dependencies")(format!("package {} depends on itself", self.id)));
            }
            if let Some(prev) = previous
                && prev >= dep.id.as_str()
            {
                return Err(field("dependencies")(format!(
                    "dependency {} comes after {prev}: dependencies must be sorted by id, each once",
                    dep.id
                )));
            }
            previous = Some(&dep.id);
        }
        check_files(&self.files)
    }

    /// The entry of the file at `path`, if the manifest lists it (a binary
    /// search: a valid manifest's files are sorted by path bytes).
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.files[i])
    }

    /// The expected `attestation.json` body for this manifest, signed by the
    /// key with fingerprint `signer` at `time` (the manifest's `attestation`
    /// digest is not consulted).
    pub fn expected_attestation(&self, signer: &str, time: UtcTime) -> Attestation {
        Attestation {
            statement_type: STATEMENT_TYPE.to_string(),
            subject: self
                .files
                .iter()
                .map(|f| Subject {
                    name: f.path.clone(),
                    digest: Digest { blake3: f.blake3 },
                })
                .collect(),
            predicate_type: PREDICATE_TYPE.to_string(),
            predicate: Predicate {
                package_id: self.id.clone(),
                version: self.version,
                spec_id: self.spec_id.clone(),
                framework_id: self.framework_id.clone(),
                signer: signer.to_string(),
                time: rfc3339(time),
            },
        }
    }
}

/// The file-list checks of [`Manifest::validate`].
fn check_files(files: &[FileEntry]) -> Result<(), PackageError> {
    let keys: Vec<String> = files.iter().map(|f| f.path.to_lowercase()).collect();
    let mut folded: HashMap<&str, &str> = HashMap::with_capacity(files.len());
    for (i, (f, key)) in files.iter().zip(&keys).enumerate() {
        check_path(&f.path).map_err(|rule| PackageError::UnsafePath {
            path: f.path.clone(),
            rule,
        })?;
        if f.size > MAX_FILE_SIZE {
            return Err(PackageError::ManifestField {
                field: "files",
                reason: format!(
                    "{} is {} bytes; format 1 holds files up to {MAX_FILE_SIZE} bytes",
                    f.path, f.size
                ),
            });
        }
        if i > 0 && files[i - 1].path.as_bytes() >= f.path.as_bytes() {
            return Err(PackageError::FileOrder {
                path: f.path.clone(),
                previous: files[i - 1].path.clone(),
            });
        }
        if let Some(first) = folded.insert(key, &f.path) {
            return Err(PackageError::CaseCollision {
                first: first.to_string(),
                second: f.path.clone(),
            });
        }
    }
    // A file path that is also another file's directory, compared folded
    // (on a case-insensitive file system `A` and `a/b` collide too).
    for (f, key) in files.iter().zip(&keys) {
        for (idx, _) in key.match_indices('/') {
            if let Some(file) = folded.get(&key[..idx]) {
                return Err(PackageError::PathConflict {
                    file: file.to_string(),
                    other: f.path.clone(),
                });
            }
        }
    }
    Ok(())
}

// -------------------------------------------------------------- path rules

/// A path-safety rule a package file path broke (see [`check_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    /// The path is empty.
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// Two `/` in a row, or a trailing `/`.
    EmptySegment,
    /// A `.` segment.
    DotSegment,
    /// A `..` segment.
    DotDotSegment,
    /// A segment named `.cp` (any case): the store's directory.
    StoreDirectory,
    /// A segment named `.cplane-staging~`: the name checkouts stage under.
    StagingName,
    /// A character the format forbids: a control character (NUL, newline,
    /// …), `\`, `"` or `,`.
    Character(char),
    /// `files/<path>` does not fit a ustar header's name and prefix fields.
    TooLong,
}

impl fmt::Display for PathRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathRule::Empty => f.write_str("it is empty"),
            PathRule::Absolute => f.write_str("it is absolute (starts with /)"),
            PathRule::EmptySegment => f.write_str("it has an empty segment (// or a trailing /)"),
            PathRule::DotSegment => f.write_str("it has a . segment"),
            PathRule::DotDotSegment => f.write_str("it has a .. segment"),
            PathRule::StoreDirectory => f.write_str("it goes into .cp/, the store's directory"),
            PathRule::StagingName => f.write_str("it uses .cplane-staging~, the name checkouts stage under"),
            PathRule::Character(c) => write!(
                f,
                "it holds {c:?}: control characters, backslash, double quote and comma are not allowed"
            ),
            PathRule::TooLong => write!(
                f,
                "{FILES_PREFIX}<path> does not fit a ustar header (at most 100 bytes after the last / that leaves at most 155 before it)"
            ),
        }
    }
}

/// Checks a package file path against the format's path-safety rules,
/// in this order: not empty; not absolute; no empty, `.` or `..` segment;
/// no `.cp` segment (compared lower-cased) and no `.cplane-staging~`
/// segment; no control character (`char::is_control`), `\`, `"` or `,`
/// (the ownership registry is CSV without quoting); and `files/<path>`
/// fits a ustar header ([`ustar_split`]).
///
/// # Errors
/// The first rule broken.
pub fn check_path(path: &str) -> Result<(), PathRule> {
    if path.is_empty() {
        return Err(PathRule::Empty);
    }
    if path.starts_with('/') {
        return Err(PathRule::Absolute);
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(PathRule::EmptySegment),
            "." => return Err(PathRule::DotSegment),
            ".." => return Err(PathRule::DotDotSegment),
            ".cplane-staging~" => return Err(PathRule::StagingName),
            s if s.to_lowercase() == ".cp" => return Err(PathRule::StoreDirectory),
            _ => {}
        }
    }
    if let Some(c) = path.chars().find(|&c| c.is_control() || matches!(c, '\\' | '"' | ',')) {
        return Err(PathRule::Character(c));
    }
    let member = format!("{FILES_PREFIX}{path}");
    if ustar_split(member.as_bytes()).is_none() {
        return Err(PathRule::TooLong);
    }
    Ok(())
}

/// How a member name is stored in a ustar header: `(prefix, name)`. A name
/// of at most 100 bytes goes whole into `name` (prefix empty); a longer one
/// is split at the last `/` that leaves at most 155 bytes before it, and the
/// rest (1 to 100 bytes) goes into `name` — GNU tar's and the `tar` crate's
/// choice. `None` when no such split exists.
pub fn ustar_split(member: &[u8]) -> Option<(&[u8], &[u8])> {
    if member.len() <= 100 {
        return Some((&[], member));
    }
    let window = &member[..member.len().min(156)];
    let slash = window.iter().rposition(|&b| b == b'/')?;
    let (prefix, name) = (&member[..slash], &member[slash + 1..]);
    (slash > 0 && !name.is_empty() && name.len() <= 100).then_some((prefix, name))
}

// ------------------------------------------------------------- attestation

/// The `digest` of an in-toto subject: BLAKE3 only, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// BLAKE3 of the file (default mode, 32 bytes), 64 lower-case hex digits.
    #[serde(with = "hex_digest")]
    pub blake3: ObjectId,
}

/// One in-toto subject (a ResourceDescriptor with `name` and `digest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The file's plane-relative path, as in the manifest.
    pub name: String,
    /// Its digest.
    pub digest: Digest,
}

/// The cplane package predicate ([`PREDICATE_TYPE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// The package id, as in the manifest.
    pub package_id: String,
    /// The package version, as in the manifest.
    pub version: Version,
    /// The spec the package implements, as in the manifest.
    pub spec_id: String,
    /// The spec's framework, as in the manifest.
    pub framework_id: String,
    /// Fingerprint (`SHA256:…`) of the key that signed the manifest.
    pub signer: String,
    /// When the package was built, RFC 3339 UTC with seconds:
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub time: String,
}

/// `attestation.json`: an in-toto Statement v1
/// (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>)
/// whose subjects are the package's files in manifest order and whose
/// predicate names the package, spec, framework, signer and build time.
/// Canonical bytes: compact JSON, keys in the order of these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// `_type`: always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// `subject`: one per file.
    pub subject: Vec<Subject>,
    /// `predicateType`: always [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// `predicate`.
    pub predicate: Predicate,
}

impl Attestation {
    /// The canonical bytes: compact JSON, keys in declaration order.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an attestation always serializes")
    }

    /// Parses attestation bytes strictly (schema and canonical form) and
    /// reads its time.
    ///
    /// # Errors
    /// [`PackageError::AttestationJson`] naming what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<(Attestation, UtcTime), PackageError> {
        let bad = |reason: String| PackageError::AttestationJson { reason };
        let att: Attestation = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if att.to_canonical_bytes() != bytes {
            return Err(bad(
                "it is not in canonical form (compact JSON, keys in the documented order)".to_string(),
            ));
        }
        let time = parse_rfc3339(&att.predicate.time)
            .ok_or_else(|| bad(format!("time {:?} is not YYYY-MM-DDTHH:MM:SSZ", att.predicate.time)))?;
        Ok((att, time))
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(time: UtcTime) -> String {
    crate::timefmt::rfc3339(time.unix().saturating_mul(1_000_000_000))
}

/// Reads exactly `YYYY-MM-DDTHH:MM:SSZ` (a real date, UTC).
pub fn parse_rfc3339(text: &str) -> Option<UtcTime> {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return None;
    }
    let compact: String = [
        &text[0..4],
        &text[5..7],
        &text[8..10],
        &text[11..13],
        &text[14..16],
        &text[17..19],
        "Z",
    ]
    .concat();
    UtcTime::parse_openssh(&compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        let v: Version = "1.10.0".parse().unwrap();
        assert_eq!(v, Version::new(1, 10, 0));
        assert!(Version::new(1, 9, 9) < v);
        for bad in ["1.2", "1.2.3.4", "01.2.3", "1.2.-3", "1.2.3-rc1", "", "a.b.c", "1..3"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
        assert_eq!("0.0.0".parse::<Version>().unwrap().to_string(), "0.0.0");
    }

    #[test]
    fn requirements_parse_and_match() {
        let r: Requirement = ">=1.2.0, <2.0.0".parse().unwrap();
        assert_eq!(r.to_string(), ">=1.2.0, <2.0.0");
        assert!(r.matches(&Version::new(1, 2, 0)));
        assert!(r.matches(&Version::new(1, 99, 3)));
        assert!(!r.matches(&Version::new(2, 0, 0)));
        assert!(!r.matches(&Version::new(1, 1, 9)));
        let eq: Requirement = "=1.0.0".parse().unwrap();
        assert!(eq.matches(&Version::new(1, 0, 0)) && !eq.matches(&Version::new(1, 0, 1)));
        for bad in [
            "",
            ">=1.2.0,<2.0.0",
            ">= 1.2.0",
            "~1.2.0",
            "^1.0.0",
            "1.0.0",
            ">=1.2",
            ">=1.2.0,  <2.0.0",
        ] {
            assert!(bad.parse::<Requirement>().is_err(), "{bad}");
        }
    }

    #[test]
    fn path_rules() {
        assert_eq!(check_path("a/b.txt"), Ok(()));
        assert_eq!(check_path("ünïcode/ß"), Ok(()));
        assert_eq!(check_path(""), Err(PathRule::Empty));
        assert_eq!(check_path("/etc/passwd"), Err(PathRule::Absolute));
        assert_eq!(check_path("a//b"), Err(PathRule::EmptySegment));
        assert_eq!(check_path("a/"), Err(PathRule::EmptySegment));
        assert_eq!(check_path("./a"), Err(PathRule::DotSegment));
        assert_eq!(check_path("a/../../b"), Err(PathRule::DotDotSegment));
        assert_eq!(check_path(".cp/objects"), Err(PathRule::StoreDirectory));
        assert_eq!(check_path("x/.CP/y"), Err(PathRule::StoreDirectory));
        assert_eq!(check_path("d/.cplane-staging~"), Err(PathRule::StagingName));
        assert_eq!(check_path("a\nb"), Err(PathRule::Character('\n')));
        assert_eq!(check_path("a\0b"), Err(PathRule::Character('\0')));
        assert_eq!(check_path("a\\b"), Err(PathRule::Character('\\')));
        assert_eq!(check_path("a,b"), Err(PathRule::Character(',')));
        // `files/` splits off as the prefix: the last segment may be 100 bytes.
        assert_eq!(check_path(&"x".repeat(101)), Err(PathRule::TooLong));
        assert_eq!(check_path(&"x".repeat(100)), Ok(()));
        let long = format!("{}/{}", "d".repeat(140), "f".repeat(100));
        assert_eq!(check_path(&long), Ok(()));
        let too_long = format!("{}/{}", "d".repeat(150), "f".repeat(100));
        assert_eq!(check_path(&too_long), Err(PathRule::TooLong));
    }

    #[test]
    fn ustar_split_matches_gnu_tar() {
        assert_eq!(ustar_split(b"files/a"), Some((&b""[..], &b"files/a"[..])));
        let m = format!("files/{}/{}/{}", "a".repeat(60), "b".repeat(60), "c".repeat(50));
        let (prefix, name) = ustar_split(m.as_bytes()).unwrap();
        // The last slash within the first 156 bytes.
        assert_eq!(prefix.len(), 6 + 60 + 1 + 60);
        assert_eq!(name, "c".repeat(50).as_bytes());
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = UtcTime::from_unix(1_795_996_327);
        assert_eq!(rfc3339(t), "2026-11-29T23:52:07Z");
        assert_eq!(parse_rfc3339("2026-11-29T23:52:07Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-11-29 23:52:07Z"), None);
    }
}
