//! Signing and verifying with SSH keys: OpenSSH `sshsig` signatures (the
//! format of `ssh-keygen -Y sign`, used by git's SSH commit signing), made and
//! checked with the RustCrypto `ssh-key` crate, against a registry of trusted
//! keys in OpenSSH's `allowed_signers` format.
//!
//! # The registry format
//!
//! One key per line, as ssh-keygen(1) "ALLOWED SIGNERS" describes it, so that
//! stock `ssh-keygen -Y verify -f FILE` accepts the very same file:
//!
//! ```text
//! alice@example.org namespaces="cplane-ledger,cplane-package" ssh-ed25519 AAAAC3Nz… cplane-role=admin alice's laptop
//! #cplane-revoked="20261130131216Z" bob namespaces="cplane-ledger" ssh-ed25519 AAAAC3Nz… cplane-role=auditor
//! ```
//!
//! - `principals`: comma-separated names (no quotes, no whitespace).
//! - options: `namespaces="a,b"` (required by cplane: a governed key says
//!   what it may sign; the entries are OpenSSH patterns, `*`, `?` and a
//!   leading `!`, matched as ssh-keygen matches them), `valid-after` and
//!   `valid-before` (`YYYYMMDD[HHMM[SS]]Z`: cplane wants the trailing `Z`,
//!   since without it ssh-keygen reads the time in the verifier's local time
//!   zone). `cert-authority` is refused: certificates are not supported.
//! - the key: only `ssh-ed25519`.
//! - the role lives in the trailing comment, as its first word
//!   `cplane-role=admin|maintainer|auditor`; the rest of the comment is free
//!   text. It is not an option because ssh-keygen 9.2 rejects a line with an
//!   unknown option ("bad options: unknown key option") and would then refuse
//!   every signature by that key; the comment it ignores.
//! - revocation keeps the line, commented out behind the marker
//!   `#cplane-revoked="<UTC time>" `: ssh-keygen skips every `#` line, so a
//!   revoked key stops verifying there too, while cplane still reads who held
//!   the key, with which role, and when it was revoked ([`revoke`]). A
//!   revoked key can never be trusted again (the parser refuses the same key
//!   on an active line); a new key is generated instead.
//!
//! Other `#` lines and blank lines are comments. Carriage returns are refused.

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, HashAlg, LineEnding, SshSig};
/// The key types of this module's API, re-exported from the `ssh-key` crate.
pub use ssh_key::{PrivateKey, PublicKey};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The marker that starts a revoked line.
const REVOKED_PREFIX: &str = "#cplane-revoked=";
/// The first word of the trailing comment that carries the role.
const ROLE_PREFIX: &str = "cplane-role=";

/// A role a trusted key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Governs the plane: may change registries, rules and trusted keys.
    Admin,
    /// Maintains content: may sign packages and ledger entries.
    Maintainer,
    /// Audits: may sign attestations, changes nothing.
    Auditor,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Maintainer, Role::Auditor];

    /// The role's name as written in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Maintainer => "maintainer",
            Role::Auditor => "auditor",
        }
    }

    /// The role named `name` (exactly as [`Role::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point in time in UTC, with second precision, as the registry writes it
/// (`YYYYMMDDHHMMSSZ`, OpenSSH's time format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UtcTime {
    unix: i64,
}

impl UtcTime {
    /// The earliest time the registry can write: 0000-01-01T00:00:00Z.
    pub const MIN: UtcTime = UtcTime { unix: -62_167_219_200 };
    /// The latest time the registry can write: 9999-12-31T23:59:59Z.
    pub const MAX: UtcTime = UtcTime { unix: 253_402_300_799 };

    /// The time `secs` seconds after 1970-01-01T00:00:00Z, clamped to
    /// [`UtcTime::MIN`]..=[`UtcTime::MAX`].
    pub fn from_unix(secs: i64) -> UtcTime {
        UtcTime {
            unix: secs.clamp(Self::MIN.unix, Self::MAX.unix),
        }
    }

    /// Now, from the system clock.
    pub fn now() -> UtcTime {
        let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        UtcTime::from_unix(secs)
    }

    /// Seconds since 1970-01-01T00:00:00Z.
    pub fn unix(self) -> i64 {
        self.unix
    }

    /// Parses OpenSSH's `YYYYMMDD[HHMM[SS]]` followed by `Z` (UTC). `None`
    /// when it is not such a time or names no real date.
    pub fn parse_openssh(text: &str) -> Option<UtcTime> {
        let digits = text.strip_suffix('Z')?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
            return None;
        }
        let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<i64>().ok());
        let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
        let (h, mi) = if digits.len() >= 12 {
            (num(8..10)?, num(10..12)?)
        } else {
            (0, 0)
        };
        let s = if digits.len() == 14 { num(12..14)? } else { 0 };
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
            return None;
        }
        Some(UtcTime {
            unix: days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s,
        })
    }
}

impl fmt::Display for UtcTime {
    /// `YYYYMMDDHHMMSSZ`, which [`UtcTime::parse_openssh`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.unix.div_euclid(86_400);
        let sod = self.unix.rem_euclid(86_400);
        let (y, mo, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}{mo:02}{d:02}{:02}{:02}{:02}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, <https://howardhinnant.github.io/date_algorithms.html>).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`] (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// One line of the allowed-signers registry: principals, options, public key,
/// role, and whether (since when) it is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// Who holds the key (the `principals` field; at least one).
    pub principals: Vec<String>,
    /// The role the key holds (`cplane-role=` in the comment).
    pub role: Role,
    /// The namespaces the key may sign in: OpenSSH patterns (`*`, `?`, a
    /// leading `!` excludes), at least one.
    pub namespaces: Vec<String>,
    /// `valid-after`: signatures verified before this time are refused.
    pub valid_after: Option<UtcTime>,
    /// `valid-before`: signatures verified after this time are refused.
    pub valid_before: Option<UtcTime>,
    /// The public key (ed25519; its own comment is always empty).
    pub key: PublicKey,
    /// The free text after the role in the trailing comment ("" for none).
    pub comment: String,
    /// When the key was revoked, for a line kept as history.
    pub revoked: Option<UtcTime>,
    /// 1-based line number in the registry file (0 for a signer not read from one).
    pub line: u64,
}

impl Signer {
    /// Whether this key may sign in `namespace`, as ssh-keygen decides it
    /// (OpenSSH's `match_pattern_list` over [`Signer::namespaces`]).
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        match_pattern_list(namespace, &self.namespaces)
    }

    /// The key's fingerprint, `SHA256:…`.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }
}

/// Why signing or verifying, or reading a key or the registry, failed. Each
/// message is a sentence that names the file, line or key and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", "write").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// `generate` found its output file already there.
    #[error(
        "{} already exists: cplane never overwrites a key; choose another output file or move the existing one away",
        path.display()
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A line of the allowed-signers registry is not acceptable.
    #[error("{file}:{line}: {problem}")]
    Registry {
        /// The registry file as the caller named it.
        file: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong and what to do, as a sentence.
        problem: String,
    },
    /// A [`Signer`] cannot be written as a registry line.
    #[error("cannot write a registry line for key {fingerprint}: {problem}")]
    Unformattable {
        /// The key's fingerprint.
        fingerprint: String,
        /// Which field is unacceptable and why.
        problem: String,
    },
    /// `generate` was given a comment that cannot stand in a `.pub` line.
    #[error("the key comment {comment:?} contains a line break or another control character: give a one-line comment")]
    BadComment {
        /// The comment given.
        comment: String,
    },
    /// The private key file is protected by a passphrase.
    #[error(
        "{} is encrypted with a passphrase, and cplane cannot use encrypted keys yet (no passphrase prompt, no ssh-agent): generate an unencrypted key for cplane with `cplane key generate`, or decrypt a copy with `ssh-keygen -p -N '' -f COPY`",
        path.display()
    )]
    Encrypted {
        /// The key file.
        path: PathBuf,
    },
    /// The private key file can be read by other users.
    #[error(
        "{} can be read or written by other users (mode {mode:03o}), so it cannot be trusted to be private; ssh refuses such keys too: run `chmod 600 {}`",
        path.display(), path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not an OpenSSH private key.
    #[error(
        "{} is not an OpenSSH private key ({reason}): cplane reads the files `ssh-keygen` writes, starting with -----BEGIN OPENSSH PRIVATE KEY-----",
        path.display()
    )]
    NotPrivateKey {
        /// The file.
        path: PathBuf,
        /// What the decoder found wrong.
        reason: String,
    },
    /// The key is not ed25519.
    #[error(
        "key {key} is {algorithm}, but cplane signs and verifies with ed25519 keys only: use one made by `cplane key generate` or `ssh-keygen -t ed25519`"
    )]
    UnsupportedKey {
        /// The key's fingerprint, or the file it was read from.
        key: String,
        /// Its algorithm as OpenSSH names it.
        algorithm: String,
    },
    /// Signing itself failed (or the namespace was empty).
    #[error("could not sign with key {fingerprint} in namespace {namespace:?}: {reason}")]
    Sign {
        /// The key's fingerprint.
        fingerprint: String,
        /// The namespace asked for.
        namespace: String,
        /// Why.
        reason: String,
    },
    /// The text is not an armored SSH signature.
    #[error(
        "the signature is not a valid SSH signature ({reason}): expected the armored text that `ssh-keygen -Y sign` writes, from -----BEGIN SSH SIGNATURE----- to -----END SSH SIGNATURE-----"
    )]
    MalformedSignature {
        /// What the decoder found wrong.
        reason: String,
    },
    /// The signing key is not in the registry.
    #[error(
        "the signature was made by key {fingerprint}, which is not in the allowed signers registry: if that key should be trusted, add its public key to the registry"
    )]
    UnknownKey {
        /// The signing key's fingerprint.
        fingerprint: String,
    },
    /// The signing key is in the registry but revoked.
    #[error(
        "the signature was made by key {fingerprint} of {principals}, which was revoked at {revoked} (registry line {line}): signatures by a revoked key are not accepted; the signer needs a new key"
    )]
    Revoked {
        /// The signing key's fingerprint.
        fingerprint: String,
        /// Its principals, comma-separated.
        principals: String,
        /// When it was revoked.
        revoked: UtcTime,
        /// Its registry line.
        line: u64,
    },
    /// The key is not valid yet (`valid-after`).
    #[error(
        "key {fingerprint} (registry line {line}) is valid only after {valid_after}, and it is now {now}: wait, or correct valid-after in the registry"
    )]
    NotYetValid {
        /// The signing key's fingerprint.
        fingerprint: String,
        /// Its registry line.
        line: u64,
        /// Its `valid-after`.
        valid_after: UtcTime,
        /// The verification time.
        now: UtcTime,
    },
    /// The key has expired (`valid-before`).
    #[error(
        "key {fingerprint} (registry line {line}) expired at {valid_before}, and it is now {now}: the signer needs a renewed registry entry or a new key"
    )]
    Expired {
        /// The signing key's fingerprint.
        fingerprint: String,
        /// Its registry line.
        line: u64,
        /// Its `valid-before`.
        valid_before: UtcTime,
        /// The verification time.
        now: UtcTime,
    },
    /// The signature was made in another namespace than the one checked.
    #[error(
        "the signature by key {fingerprint} was made for namespace {found:?}, not {expected:?}: it was made for another purpose and cannot be used here"
    )]
    WrongNamespace {
        /// The signing key's fingerprint.
        fingerprint: String,
        /// The namespace the caller checks.
        expected: String,
        /// The namespace inside the signature.
        found: String,
    },
    /// The registry does not allow the key to sign in this namespace.
    #[error(
        "key {fingerprint} (registry line {line}) may sign only in namespaces {allowed:?}, not in {namespace:?}: an admin must add the namespace to its registry line if it should"
    )]
    NamespaceNotAllowed {
        /// The signing key's fingerprint.
        fingerprint: String,
        /// Its registry line.
        line: u64,
        /// The namespace checked.
        namespace: String,
        /// The namespaces option of its line.
        allowed: String,
    },
    /// The signature does not match the data.
    #[error(
        "the signature by key {fingerprint} does not match the data: the data changed after it was signed, or the signature belongs to other data"
    )]
    BadSignature {
        /// The signing key's fingerprint.
        fingerprint: String,
    },
    /// `revoke` did not find the key on an active line.
    #[error("{file}: key {fingerprint} is not on any line of the registry, so there is nothing to revoke")]
    NotInRegistry {
        /// The registry file as the caller named it.
        file: String,
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// `revoke` found the key already revoked.
    #[error("{file}:{line}: key {fingerprint} was already revoked at {revoked}")]
    AlreadyRevoked {
        /// The registry file as the caller named it.
        file: String,
        /// Its line.
        line: u64,
        /// The key's fingerprint.
        fingerprint: String,
        /// When it was revoked.
        revoked: UtcTime,
    },
}

/// The key's SHA-256 fingerprint as OpenSSH prints it (`SHA256:…`, unpadded base64).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn require_ed25519(key: &PublicKey) -> Result<(), KeyError> {
    if key.algorithm() == Algorithm::Ed25519 {
        Ok(())
    } else {
        Err(KeyError::UnsupportedKey {
            key: fingerprint(key),
            algorithm: key.algorithm().as_str().to_string(),
        })
    }
}

// ------------------------------------------------------------------ key files

/// Generates an ed25519 key pair and writes `out` (OpenSSH private key format,
/// unencrypted, mode 0600) and `out.pub` (mode 0644), as
/// `ssh-keygen -t ed25519 -N '' -C comment -f out` does. Both files are
/// created exclusively: if either exists, nothing is written. Returns the
/// public key (carrying `comment`).
pub fn generate(out: &Path, comment: &str) -> Result<PublicKey, KeyError> {
    if comment.chars().any(char::is_control) {
        return Err(KeyError::BadComment {
            comment: comment.to_string(),
        });
    }
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(|e| KeyError::Io {
        action: "generate a key for",
        path: out.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    key.set_comment(comment);
    let public = key.public_key().clone();
    let encode_err = |e: ssh_key::Error| KeyError::Io {
        action: "encode the key for",
        path: out.to_path_buf(),
        source: io::Error::other(e.to_string()),
    };
    let private_text = key.to_openssh(LineEnding::LF).map_err(encode_err)?;
    let mut public_text = public.to_openssh().map_err(encode_err)?;
    public_text.push('\n');

    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);

    let create = |path: &Path, mode: u32| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => KeyError::Exists {
                    path: path.to_path_buf(),
                },
                _ => KeyError::Io {
                    action: "create",
                    path: path.to_path_buf(),
                    source,
                },
            })
    };
    let mut private_file = create(out, 0o600)?;
    let mut public_file = match create(&pub_path, 0o644) {
        Ok(f) => f,
        Err(e) => {
            drop(private_file);
            let _ = fs::remove_file(out);
            return Err(e);
        }
    };
    let written = write_all_synced(&mut private_file, out, private_text.as_bytes())
        .and_then(|()| write_all_synced(&mut public_file, &pub_path, public_text.as_bytes()));
    if let Err(e) = written {
        let _ = fs::remove_file(out);
        let _ = fs::remove_file(&pub_path);
        return Err(e);
    }
    Ok(public)
}

fn write_all_synced(file: &mut fs::File, path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
}

/// Loads an ed25519 private key from an OpenSSH private key file (as written
/// by [`generate`] or `ssh-keygen`, e.g. `~/.ssh/id_ed25519`). Refuses, each
/// with its own error: a file other users may read or write (as ssh does), an
/// encrypted key, a file that is not an OpenSSH private key, a key that is
/// not ed25519.
pub fn load_private(path: &Path) -> Result<PrivateKey, KeyError> {
    let io_err = |action: &'static str| {
        move |source| KeyError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let meta = fs::metadata(path).map_err(io_err("read"))?;
    let bytes = fs::read(path).map_err(io_err("read"))?;
    let key = match PrivateKey::from_openssh(&bytes) {
        Ok(key) => key,
        Err(ssh_key::Error::AlgorithmUnsupported { algorithm }) => {
            return Err(KeyError::UnsupportedKey {
                key: path.display().to_string(),
                algorithm: algorithm.as_str().to_string(),
            });
        }
        Err(e @ ssh_key::Error::AlgorithmUnknown) => {
            // Without their features, ssh-key cannot tell other key types
            // apart: read the name from the file itself.
            return Err(match private_key_algorithm(&bytes) {
                Some(algorithm) => KeyError::UnsupportedKey {
                    key: path.display().to_string(),
                    algorithm,
                },
                None => KeyError::NotPrivateKey {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                },
            });
        }
        Err(e) => {
            let reason = if bytes.starts_with(b"ssh-") {
                "it holds a public key: give the private key file, the one without .pub".to_string()
            } else {
                e.to_string()
            };
            return Err(KeyError::NotPrivateKey {
                path: path.to_path_buf(),
                reason,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if key.is_encrypted() {
        return Err(KeyError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    require_ed25519(key.public_key())?;
    Ok(key)
}

/// The key type named in an OpenSSH private key file (`openssh-key-v1`: magic,
/// cipher, kdf, kdf options, key count, then the first public key, whose
/// first field is its type), for messages about keys ssh-key cannot decode.
fn private_key_algorithm(pem: &[u8]) -> Option<String> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN OPENSSH PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
    let mut rest = raw.strip_prefix(b"openssh-key-v1\0".as_slice())?;
    for _ in 0..3 {
        take_string(&mut rest)?; // cipher, kdf, kdf options
    }
    rest = rest.get(4..)?; // key count
    let mut public = take_string(&mut rest)?;
    let name = std::str::from_utf8(take_string(&mut public)?).ok()?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic())).then(|| name.to_string())
}

/// Takes an SSH `string` (u32 big-endian length, then the bytes) off `rest`.
fn take_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
    let value = rest.get(4..4usize.checked_add(len)?)?;
    *rest = &rest[4 + len..];
    Some(value)
}

// ------------------------------------------------------------ sign and verify

/// Signs `data` in `namespace` (an `sshsig` signature with SHA-512, as
/// `ssh-keygen -Y sign -n namespace` makes) and returns the armored text,
/// `-----BEGIN SSH SIGNATURE-----` … `-----END SSH SIGNATURE-----` and a
/// final newline.
pub fn sign(key: &PrivateKey, namespace: &str, data: &[u8]) -> Result<String, KeyError> {
    require_ed25519(key.public_key())?;
    let sign_err = |reason: String| KeyError::Sign {
        fingerprint: fingerprint(key.public_key()),
        namespace: namespace.to_string(),
        reason,
    };
    if namespace.is_empty() {
        return Err(sign_err("the namespace is empty; sshsig needs one".to_string()));
    }
    if key.is_encrypted() {
        return Err(sign_err("the key is encrypted".to_string()));
    }
    let sig = key
        .sign(namespace, HashAlg::Sha512, data)
        .map_err(|e| sign_err(e.to_string()))?;
    let mut armored = sig.to_pem(LineEnding::LF).map_err(|e| sign_err(e.to_string()))?;
    if !armored.ends_with('\n') {
        armored.push('\n');
    }
    Ok(armored)
}

/// Verifies an armored `sshsig` signature over `data` in `namespace` against
/// `signers`, at the current time: see [`verify_at`].
pub fn verify<'a>(armored: &str, namespace: &str, data: &[u8], signers: &'a [Signer]) -> Result<&'a Signer, KeyError> {
    verify_at(armored, namespace, data, signers, UtcTime::now())
}

/// Verifies an armored `sshsig` signature over `data` in `namespace` against
/// `signers`, as of time `now`. Returns the signer whose key made it, when
/// that key is in the registry, not revoked, valid at `now`, allowed to sign
/// in `namespace`, the signature was made for `namespace`, and it matches
/// `data`; otherwise the error says which of these failed, in that order
/// (after [`KeyError::MalformedSignature`] for text that is no signature).
pub fn verify_at<'a>(
    armored: &str,
    namespace: &str,
    data: &[u8],
    signers: &'a [Signer],
    now: UtcTime,
) -> Result<&'a Signer, KeyError> {
    let sig = SshSig::from_pem(armored.trim().as_bytes())
        .map_err(|e| KeyError::MalformedSignature { reason: e.to_string() })?;
    // Only the canonical encoding of what was parsed: the parser tolerates
    // some non-canonical length fields, so other texts could carry the same
    // signature (and hidden bytes). Line breaks may differ (ssh-keygen's
    // lines are as long as ours, but nothing depends on it).
    let canonical = sig
        .to_pem(LineEnding::LF)
        .map_err(|e| KeyError::MalformedSignature { reason: e.to_string() })?;
    let squeeze = |t: &str| t.chars().filter(|c| !c.is_ascii_whitespace()).collect::<String>();
    if squeeze(armored) != squeeze(&canonical) || sig.version() != 1 {
        return Err(KeyError::MalformedSignature {
            reason: "it is not in the canonical encoding of the signature it holds".to_string(),
        });
    }
    let key = PublicKey::new(sig.public_key().clone(), "");
    let fp = fingerprint(&key);
    // Revoked lines first: a key revoked anywhere is revoked (the parser also
    // refuses a revoked key on an active line).
    let mut matching: Vec<&Signer> = signers
        .iter()
        .filter(|s| s.key.key_data() == sig.public_key())
        .collect();
    matching.sort_by_key(|s| s.revoked.is_none());
    let signer = *matching.first().ok_or_else(|| KeyError::UnknownKey {
        fingerprint: fp.clone(),
    })?;
    if let Some(revoked) = signer.revoked {
        return Err(KeyError::Revoked {
            fingerprint: fp,
            principals: signer.principals.join(","),
            revoked,
            line: signer.line,
        });
    }
    require_ed25519(&key)?;
    if let Some(valid_after) = signer.valid_after
        && now < valid_after
    {
        return Err(KeyError::NotYetValid {
            fingerprint: fp,
            line: signer.line,
            valid_after,
            now,
        });
    }
    if let Some(valid_before) = signer.valid_before
        && now > valid_before
    {
        return Err(KeyError::Expired {
            fingerprint: fp,
            line: signer.line,
            valid_before,
            now,
        });
    }
    if sig.namespace() != namespace {
        return Err(KeyError::WrongNamespace {
            fingerprint: fp,
            expected: namespace.to_string(),
            found: sig.namespace().to_string(),
        });
    }
    if !signer.allows_namespace(namespace) {
        return Err(KeyError::NamespaceNotAllowed {
            fingerprint: fp,
            line: signer.line,
            namespace: namespace.to_string(),
            allowed: signer.namespaces.join(","),
        });
    }
    key.verify(namespace, data, &sig)
        .map_err(|_| KeyError::BadSignature { fingerprint: fp })?;
    Ok(signer)
}

// -------------------------------------------------------- namespace patterns

/// OpenSSH's `match_pattern`: `*` matches any run, `?` any one character.
fn match_pattern(s: &[u8], p: &[u8]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// OpenSSH's `match_pattern_list`: a negated pattern (`!pat`) that matches
/// refuses; otherwise any positive pattern that matches accepts.
fn match_pattern_list(s: &str, patterns: &[String]) -> bool {
    let mut positive = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(neg) if match_pattern(s.as_bytes(), neg.as_bytes()) => return false,
            Some(_) => {}
            None => positive |= match_pattern(s.as_bytes(), pattern.as_bytes()),
        }
    }
    positive
}

// ------------------------------------------------------------------ registry

/// A parse failure within one line, before the file and line are attached.
struct LineError(String);

impl From<String> for LineError {
    fn from(s: String) -> Self {
        LineError(s)
    }
}

impl From<&str> for LineError {
    fn from(s: &str) -> Self {
        LineError(s.to_string())
    }
}

/// Parses OpenSSH's allowed_signers format as this module's documentation
/// describes it. `file` names the file in errors, which say `file:line: …`.
/// Also refuses a key that appears on two lines (twice active, or revoked and
/// active again).
pub fn parse_allowed_signers(text: &str, file: &str) -> Result<Vec<Signer>, KeyError> {
    let mut signers: Vec<Signer> = Vec::new();
    for (idx, raw) in text.split('\n').enumerate() {
        let line = idx as u64 + 1;
        let err = |problem: String| KeyError::Registry {
            file: file.to_string(),
            line,
            problem,
        };
        let Some(mut signer) = parse_line(raw).map_err(|LineError(p)| err(p))? else {
            continue;
        };
        signer.line = line;
        if let Some(earlier) = signers.iter().find(|s| s.key.key_data() == signer.key.key_data()) {
            let problem = match (earlier.revoked, signer.revoked) {
                (Some(at), None) | (None, Some(at)) => format!(
                    "key {} was revoked at {at} (line {}) and cannot be trusted again: the signer needs a new key (`cplane key generate`)",
                    signer.fingerprint(),
                    if earlier.revoked.is_some() { earlier.line } else { line }
                ),
                _ => format!(
                    "key {} is already on line {}: a key has one line, with all its principals and namespaces; merge the two lines",
                    signer.fingerprint(),
                    earlier.line
                ),
            };
            return Err(err(problem));
        }
        signers.push(signer);
    }
    Ok(signers)
}

/// Parses one line: `Ok(None)` for a blank or comment line.
fn parse_line(raw: &str) -> Result<Option<Signer>, LineError> {
    if raw.contains('\r') {
        return Err("the line ends in a carriage return (CRLF): save the registry with Unix line endings (LF)".into());
    }
    let text = raw.trim_start_matches([' ', '\t']);
    let (revoked, text) = match text.strip_prefix(REVOKED_PREFIX) {
        Some(rest) => {
            let (value, rest) = quoted(rest).ok_or(
                "a revoked line starts with #cplane-revoked=\"YYYYMMDDHHMMSSZ\" and then the line as it was: the quoted time is missing or unterminated",
            )?;
            let at = UtcTime::parse_openssh(value).ok_or_else(|| {
                format!("the revocation time {value:?} is not a UTC time YYYYMMDD[HHMM[SS]]Z: write it like \"20261130131216Z\"")
            })?;
            if rest.trim_matches([' ', '\t']).is_empty() {
                return Err("the revoked line is empty after its #cplane-revoked=\"…\" marker: the revoked key's line must follow it".into());
            }
            if !rest.starts_with([' ', '\t']) {
                return Err("after #cplane-revoked=\"…\" comes a space and then the revoked line as it was".into());
            }
            (Some(at), rest.trim_start_matches([' ', '\t']))
        }
        None => (None, text),
    };
    if revoked.is_none() && (text.is_empty() || text.starts_with('#')) {
        return Ok(None);
    }

    // principals
    let (principals_text, rest) = split_word(text);
    if principals_text.starts_with('"') {
        return Err("quoted principals are not supported: write the principals unquoted, separated by commas".into());
    }
    let principals: Vec<String> = principals_text.split(',').map(str::to_string).collect();
    if principals.iter().any(String::is_empty) {
        return Err(format!(
            "the principals {principals_text:?} contain an empty name: separate names with single commas"
        )
        .into());
    }

    // options (absent when the next word is the key type)
    let rest = rest.trim_start_matches([' ', '\t']);
    let (options_text, rest) = if looks_like_key_type(rest) {
        ("", rest)
    } else {
        split_options(rest)?
    };
    let mut namespaces: Option<Vec<String>> = None;
    let mut valid_after = None;
    let mut valid_before = None;
    for option in split_commas_outside_quotes(options_text) {
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (option, None),
        };
        let lname = name.to_ascii_lowercase();
        let value_of = |v: Option<&str>| -> Result<String, LineError> {
            let v = v.ok_or_else(|| format!("option {name} needs a quoted value: {name}=\"…\""))?;
            match quoted(v) {
                Some((inner, "")) => Ok(inner.to_string()),
                _ => Err(format!("the value of option {name} must be in double quotes, without quotes or backslashes inside: {name}=\"…\"").into()),
            }
        };
        match lname.as_str() {
            "namespaces" => {
                if namespaces.is_some() {
                    return Err(
                        "option namespaces is given twice: list all namespaces in one namespaces=\"a,b\"".into(),
                    );
                }
                let value = value_of(value)?;
                let list: Vec<String> = value.split(',').map(str::to_string).collect();
                if let Some(bad) = list.iter().find(|n| !valid_namespace_pattern(n)) {
                    return Err(format!(
                        "namespace {bad:?} in namespaces=\"{value}\" is empty or contains whitespace: list namespaces separated by single commas"
                    )
                    .into());
                }
                namespaces = Some(list);
            }
            "valid-after" | "valid-before" => {
                let slot = if lname == "valid-after" {
                    &mut valid_after
                } else {
                    &mut valid_before
                };
                if slot.is_some() {
                    return Err(format!("option {lname} is given twice: keep one").into());
                }
                let value = value_of(value)?;
                let time = UtcTime::parse_openssh(&value).ok_or_else(|| {
                    format!(
                        "{lname}=\"{value}\" is not a UTC time: cplane wants YYYYMMDD[HHMM[SS]] followed by Z (without the Z, ssh-keygen would read it in the local time zone), e.g. {lname}=\"20270101Z\""
                    )
                })?;
                *slot = Some(time);
            }
            "cert-authority" => {
                return Err("cert-authority is not supported: cplane trusts plain keys only, not SSH certificates; list each signer's own public key instead".into());
            }
            "cplane-role" => {
                return Err(format!(
                    "the role goes in the comment after the key ({ROLE_PREFIX}ROLE), not among the options: ssh-keygen refuses lines with options it does not know"
                )
                .into());
            }
            _ => {
                return Err(format!(
                    "unknown option {name:?}: the options are namespaces, valid-after and valid-before (ssh-keygen would refuse this line)"
                )
                .into());
            }
        }
    }
    let namespaces = namespaces.ok_or(
        "the line has no namespaces=\"…\" option: a trusted key must say which namespaces it may sign, e.g. namespaces=\"cplane-ledger\"",
    )?;

    // key type, base64, comment
    let rest = rest.trim_start_matches([' ', '\t']);
    let (key_type, rest) = split_word(rest);
    let rest = rest.trim_start_matches([' ', '\t']);
    let (base64, rest) = split_word(rest);
    if key_type.is_empty() || base64.is_empty() {
        return Err(
            "the public key is missing: a line is `principals options ssh-ed25519 AAAA… cplane-role=ROLE`".into(),
        );
    }
    let key = PublicKey::from_openssh(&format!("{key_type} {base64}")).map_err(|e| {
        format!("the public key is not a valid OpenSSH public key ({e}): copy it whole from the .pub file")
    })?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(format!(
            "key {} is {}, but cplane trusts ed25519 keys only: use one made by `cplane key generate` or `ssh-keygen -t ed25519`",
            fingerprint(&key),
            key.algorithm().as_str()
        )
        .into());
    }
    let comment = rest.trim_matches([' ', '\t']);
    let (role_word, comment) = split_word(comment);
    let role_name = role_word.strip_prefix(ROLE_PREFIX).ok_or_else(|| {
        format!(
            "the line gives key {} no role: write {ROLE_PREFIX}admin, {ROLE_PREFIX}maintainer or {ROLE_PREFIX}auditor after the key (the comment ssh-keygen ignores)",
            fingerprint(&key)
        )
    })?;
    let role = Role::from_name(role_name)
        .ok_or_else(|| format!("unknown role {role_name:?}: the roles are admin, maintainer and auditor"))?;
    Ok(Some(Signer {
        principals,
        role,
        namespaces,
        valid_after,
        valid_before,
        key,
        comment: comment.trim_start_matches([' ', '\t']).to_string(),
        revoked,
        line: 0,
    }))
}

/// Splits off the first word (up to a space or tab).
fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Whether `s` starts with an OpenSSH key type name rather than options.
fn looks_like_key_type(s: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-", "rsa-"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// `"inner"rest` → (inner, rest), when inner has no quote or backslash.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let end = body.find('"')?;
    let inner = &body[..end];
    if inner.contains('\\') {
        return None;
    }
    Some((inner, &body[end + 1..]))
}

/// Splits the options field off: it ends at the first space or tab outside
/// double quotes.
fn split_options(s: &str) -> Result<(&str, &str), LineError> {
    let mut in_quote = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ' ' | '\t' if !in_quote => return Ok((&s[..i], &s[i..])),
            _ => {}
        }
    }
    if in_quote {
        Err("an option value's double quote is not closed".into())
    } else {
        Err("the public key is missing after the options: a line is `principals options ssh-ed25519 AAAA… cplane-role=ROLE`".into())
    }
}

/// Splits the options field at commas outside double quotes.
fn split_commas_outside_quotes(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let mut in_quote = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ',' if !in_quote => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_namespace_pattern(n: &str) -> bool {
    let bare = n.strip_prefix('!').unwrap_or(n);
    !bare.is_empty()
        && !n
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == ',')
}

fn valid_principal(p: &str) -> bool {
    !p.is_empty() && !p.starts_with(['"', '#']) && !p.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',')
}

/// Writes `signer` as one registry line (no newline), which
/// [`parse_allowed_signers`] reads back as the same signer (at its line
/// number). A revoked signer is written behind its `#cplane-revoked="…"`
/// marker. Refuses fields the format cannot carry: no principals or
/// namespaces, whitespace, commas or quotes inside them, a line break or
/// surrounding whitespace in the comment, a key that is not ed25519.
pub fn format_signer(signer: &Signer) -> Result<String, KeyError> {
    let bad = |problem: String| KeyError::Unformattable {
        fingerprint: signer.fingerprint(),
        problem,
    };
    require_ed25519(&signer.key)?;
    if signer.principals.is_empty() {
        return Err(bad("it has no principals".to_string()));
    }
    if let Some(p) = signer.principals.iter().find(|p| !valid_principal(p)) {
        return Err(bad(format!(
            "principal {p:?} is empty, starts with a quote or #, or contains whitespace or a comma"
        )));
    }
    if signer.namespaces.is_empty() {
        return Err(bad("it has no namespaces".to_string()));
    }
    if let Some(n) = signer.namespaces.iter().find(|n| !valid_namespace_pattern(n)) {
        return Err(bad(format!(
            "namespace {n:?} is empty or contains whitespace, a comma, a quote or a backslash"
        )));
    }
    if signer.comment.chars().any(|c| c.is_control() && c != '\t')
        || signer.comment.trim_matches([' ', '\t']) != signer.comment
    {
        return Err(bad(format!(
            "the comment {:?} contains a control character or starts or ends with whitespace",
            signer.comment
        )));
    }
    let key = PublicKey::new(signer.key.key_data().clone(), "");
    let key_text = key
        .to_openssh()
        .map_err(|e| bad(format!("the key cannot be encoded ({e})")))?;
    let mut line = String::new();
    if let Some(at) = signer.revoked {
        line.push_str(&format!("{REVOKED_PREFIX}\"{at}\" "));
    }
    line.push_str(&signer.principals.join(","));
    line.push_str(&format!(" namespaces=\"{}\"", signer.namespaces.join(",")));
    if let Some(t) = signer.valid_after {
        line.push_str(&format!(",valid-after=\"{t}\""));
    }
    if let Some(t) = signer.valid_before {
        line.push_str(&format!(",valid-before=\"{t}\""));
    }
    line.push_str(&format!(" {key_text} {ROLE_PREFIX}{}", signer.role));
    if !signer.comment.is_empty() {
        line.push(' ');
        line.push_str(&signer.comment);
    }
    Ok(line)
}

/// Revokes `key` in the registry text `text` (read from `file`): its line is
/// kept as it was, behind `#cplane-revoked="<at>" `, and every other byte of
/// the file is kept. Returns the new text. The whole file must parse first.
pub fn revoke(text: &str, file: &str, key: &PublicKey, at: UtcTime) -> Result<String, KeyError> {
    let signers = parse_allowed_signers(text, file)?;
    let fp = fingerprint(key);
    let signer = signers
        .iter()
        .find(|s| s.key.key_data() == key.key_data())
        .ok_or_else(|| KeyError::NotInRegistry {
            file: file.to_string(),
            fingerprint: fp.clone(),
        })?;
    if let Some(revoked) = signer.revoked {
        return Err(KeyError::AlreadyRevoked {
            file: file.to_string(),
            line: signer.line,
            fingerprint: fp,
            revoked,
        });
    }
    let mut out = String::with_capacity(text.len() + 40);
    for (idx, raw) in text.split('\n').enumerate() {
        if idx > 0 {
            out.push('\n');
        }
        if idx as u64 + 1 == signer.line {
            out.push_str(&format!("{REVOKED_PREFIX}\"{at}\" "));
            out.push_str(raw.trim_start_matches([' ', '\t']));
        } else {
            out.push_str(raw);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ssh_key::public::{Ed25519PublicKey, KeyData};

    fn signer_for(key: &PrivateKey, role: Role, namespaces: &[&str]) -> Signer {
        Signer {
            principals: vec!["alice@example.org".to_string()],
            role,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            valid_after: None,
            valid_before: None,
            key: PublicKey::new(key.public_key().key_data().clone(), ""),
            comment: String::new(),
            revoked: None,
            line: 1,
        }
    }

    fn new_key(dir: &Path, name: &str) -> PrivateKey {
        let path = dir.join(name);
        generate(&path, &format!("{name}@test")).unwrap();
        load_private(&path).unwrap()
    }

    /// A signature's text is accepted in its canonical encoding only: no
    /// changed bit of any character verifies, but in line breaks (the
    /// parser let a changed length field or version 0 through before).
    #[test]
    fn only_the_canonical_text_of_a_signature_verifies() {
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let signers = [signer_for(&key, Role::Admin, &["cplane-package"])];
        let sig = sign(&key, "cplane-package", b"hello").unwrap();
        assert!(verify(&sig, "cplane-package", b"hello", &signers).is_ok());
        let mut accepted = Vec::new();
        for i in 0..sig.len() {
            for bit in 0..7 {
                let mut b = sig.clone().into_bytes();
                b[i] ^= 1 << bit;
                let Ok(text) = String::from_utf8(b) else { continue };
                let same = text
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .eq(sig.chars().filter(|c| !c.is_ascii_whitespace()));
                if !same && verify(&text, "cplane-package", b"hello", &signers).is_ok() {
                    accepted.push((i, bit));
                }
            }
        }
        assert!(accepted.is_empty(), "altered signature texts verify: {accepted:?}");
    }

    #[test]
    fn generate_load_sign_verify_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let public = generate(&path, "alice@test").unwrap();
        assert_eq!(public.comment(), "alice@test");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pub_text = fs::read_to_string(path.with_extension("pub")).unwrap();
        assert_eq!(PublicKey::from_openssh(pub_text.trim()).unwrap(), public);
        assert!(pub_text.ends_with(" alice@test\n"));

        let key = load_private(&path).unwrap();
        assert_eq!(key.public_key().key_data(), public.key_data());
        let sig = sign(&key, "cplane-test", b"hello").unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        assert!(sig.ends_with("-----END SSH SIGNATURE-----\n"));
        let signers = vec![signer_for(&key, Role::Maintainer, &["cplane-test"])];
        let who = verify(&sig, "cplane-test", b"hello", &signers).unwrap();
        assert_eq!(who.role, Role::Maintainer);
        assert_eq!(fingerprint(&public), who.fingerprint());
        assert!(fingerprint(&public).starts_with("SHA256:"));
    }

    #[test]
    fn generate_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        fs::write(&path, "precious").unwrap();
        let err = generate(&path, "x").unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
        assert!(!dir.path().join("id.pub").exists());

        // An existing .pub alone also stops it, and the private key is not left behind.
        let other = dir.path().join("other");
        fs::write(dir.path().join("other.pub"), "old").unwrap();
        let err = generate(&other, "x").unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert!(!other.exists());

        let err = generate(&dir.path().join("third"), "two\nlines").unwrap_err();
        assert!(matches!(err, KeyError::BadComment { .. }), "{err}");
        assert!(!dir.path().join("third").exists());
    }

    #[test]
    fn load_refuses_open_permissions_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        generate(&path, "x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_private(&path).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { mode: 0o644, .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");

        let junk = dir.path().join("junk");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&junk)
            .unwrap();
        fs::write(&junk, "not a key\n").unwrap();
        let err = load_private(&junk).unwrap_err();
        assert!(matches!(err, KeyError::NotPrivateKey { .. }), "{err}");
        let err = load_private(&dir.path().join("id.pub")).unwrap_err();
        assert!(matches!(err, KeyError::NotPrivateKey { .. }), "{err}");
        assert!(err.to_string().contains("without .pub"), "{err}");
        let err = load_private(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }), "{err}");
    }

    #[test]
    fn verify_failures_are_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let key = new_key(dir.path(), "a");
        let other = new_key(dir.path(), "b");
        let data = b"ledger entry 1";
        let sig = sign(&key, "cplane-ledger", data).unwrap();
        let signers = vec![signer_for(&key, Role::Admin, &["cplane-ledger", "cplane-package"])];
        assert!(verify(&sig, "cplane-ledger", data, &signers).is_ok());

        // Checked in another namespace than it was made for.
        let err = verify(&sig, "cplane-package", data, &signers).unwrap_err();
        assert!(matches!(err, KeyError::WrongNamespace { .. }), "{err}");

        // Made for a namespace the key may not sign in.
        let sig_other_ns = sign(&key, "git", data).unwrap();
        let err = verify(&sig_other_ns, "git", data, &signers).unwrap_err();
        assert!(matches!(err, KeyError::NamespaceNotAllowed { .. }), "{err}");

        // Another key.
        let sig_other_key = sign(&other, "cplane-ledger", data).unwrap();
        let err = verify(&sig_other_key, "cplane-ledger", data, &signers).unwrap_err();
        assert!(matches!(err, KeyError::UnknownKey { .. }), "{err}");
        assert!(err.to_string().contains(&fingerprint(other.public_key())), "{err}");

        // Revoked.
        let mut revoked = signers.clone();
        revoked[0].revoked = Some(UtcTime::parse_openssh("20260101Z").unwrap());
        let err = verify(&sig, "cplane-ledger", data, &revoked).unwrap_err();
        assert!(matches!(err, KeyError::Revoked { .. }), "{err}");

        // A flipped byte in the data.
        let mut changed = data.to_vec();
        changed[3] ^= 1;
        let err = verify(&sig, "cplane-ledger", &changed, &signers).unwrap_err();
        assert!(matches!(err, KeyError::BadSignature { .. }), "{err}");

        // Malformed armor: garbage, a truncated body, a flipped base64 character.
        for bad in ["hello".to_string(), sig.replace("-----END SSH SIGNATURE-----", ""), {
            let mut lines: Vec<String> = sig.lines().map(str::to_string).collect();
            lines[1] = lines[1][..10].to_string();
            lines.join("\n")
        }] {
            let err = verify(&bad, "cplane-ledger", data, &signers).unwrap_err();
            assert!(matches!(err, KeyError::MalformedSignature { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn verify_honours_validity_times() {
        let dir = tempfile::tempdir().unwrap();
        let key = new_key(dir.path(), "a");
        let sig = sign(&key, "ns", b"x").unwrap();
        let mut signers = vec![signer_for(&key, Role::Auditor, &["ns"])];
        signers[0].valid_after = UtcTime::parse_openssh("20260101Z");
        signers[0].valid_before = UtcTime::parse_openssh("20270101Z");
        let at = |t: &str| UtcTime::parse_openssh(t).unwrap();
        assert!(verify_at(&sig, "ns", b"x", &signers, at("20260601Z")).is_ok());
        let err = verify_at(&sig, "ns", b"x", &signers, at("20251231235959Z")).unwrap_err();
        assert!(matches!(err, KeyError::NotYetValid { .. }), "{err}");
        let err = verify_at(&sig, "ns", b"x", &signers, at("20270101000001Z")).unwrap_err();
        assert!(matches!(err, KeyError::Expired { .. }), "{err}");
    }

    #[test]
    fn namespace_patterns_match_as_openssh() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(match_pattern_list("cplane-ledger", &p(&["cplane-*"])));
        assert!(match_pattern_list("git", &p(&["g?t"])));
        assert!(!match_pattern_list("git", &p(&["g?"])));
        assert!(!match_pattern_list("cplane-x", &p(&["cplane-*", "!cplane-x"])));
        assert!(!match_pattern_list("a", &p(&["!b"])));
        assert!(match_pattern_list("abcabd", &p(&["*abd"])));
        assert!(match_pattern_list("", &p(&["*"])));
    }

    const KEY1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzTBvRPdvsvILS6NH27UUvxqtaebYaHtreNE7cqvASl";
    const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF3/wN4O08SsjikGIYUT1hWI/nLXglNG1XyJnP++qxR9";

    #[test]
    fn parses_the_documented_format() {
        let text = format!(
            "# trusted keys\n\n  alice@example.org,alice namespaces=\"cplane-ledger,cplane-*\",valid-after=\"20260101Z\",VALID-BEFORE=\"202801011230Z\" {KEY1} cplane-role=admin alice's  laptop \n#cplane-revoked=\"20261130131216Z\" bob namespaces=\"cplane-ledger\" {KEY2} cplane-role=auditor\n"
        );
        let signers = parse_allowed_signers(&text, "keys").unwrap();
        assert_eq!(signers.len(), 2);
        let a = &signers[0];
        assert_eq!(a.principals, ["alice@example.org", "alice"]);
        assert_eq!(a.namespaces, ["cplane-ledger", "cplane-*"]);
        assert_eq!(a.role, Role::Admin);
        assert_eq!(a.comment, "alice's  laptop");
        assert_eq!(a.line, 3);
        assert_eq!(a.valid_after.unwrap().to_string(), "20260101000000Z");
        assert_eq!(a.valid_before.unwrap().to_string(), "20280101123000Z");
        assert_eq!(a.revoked, None);
        assert_eq!(a.fingerprint(), "SHA256:/cF4gzXvQYrhC8jlE4JT2PGMAlJRltDCTHj7yL3iARE");
        let b = &signers[1];
        assert_eq!(b.role, Role::Auditor);
        assert_eq!(b.revoked.unwrap().to_string(), "20261130131216Z");
        assert_eq!(b.line, 4);
        // Canonical lines read back the same.
        for s in &signers {
            let line = format_signer(s).unwrap();
            let again = parse_allowed_signers(&line, "x").unwrap();
            assert_eq!(again[0], Signer { line: 1, ..s.clone() });
        }
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let cases: &[(&str, &str)] = &[
            ("alice namespaces=\"n\" {K} cplane-role=owner", "unknown role"),
            ("alice namespaces=\"n\" {K}", "no role"),
            ("alice namespaces=\"n\" {K} laptop", "no role"),
            ("alice {K} cplane-role=admin", "no namespaces"),
            (
                "alice namespaces=\"n\",cert-authority {K} cplane-role=admin",
                "cert-authority is not supported",
            ),
            (
                "alice cert-authority {K} cplane-role=admin",
                "cert-authority is not supported",
            ),
            (
                "alice namespaces=\"n\",cplane-role=\"admin\" {K} cplane-role=admin",
                "role goes in the comment",
            ),
            (
                "alice namespaces=\"n\",no-touch-required {K} cplane-role=admin",
                "unknown option",
            ),
            (
                "alice namespaces=\"n\",valid-after=\"20260101\" {K} cplane-role=admin",
                "not a UTC time",
            ),
            (
                "alice namespaces=\"n\",valid-after=\"20260231Z\" {K} cplane-role=admin",
                "not a UTC time",
            ),
            ("alice namespaces=n {K} cplane-role=admin", "double quotes"),
            ("alice namespaces=\"n {K} cplane-role=admin", "not closed"),
            ("alice namespaces=\"a,,b\" {K} cplane-role=admin", "namespace \"\""),
            ("alice,,bob namespaces=\"n\" {K} cplane-role=admin", "empty name"),
            ("\"alice\" namespaces=\"n\" {K} cplane-role=admin", "quoted principals"),
            (
                "alice namespaces=\"n\" ssh-ed25519 AAAAnotbase64 cplane-role=admin",
                "not a valid OpenSSH public key",
            ),
            ("alice namespaces=\"n\"", "public key is missing"),
            (
                "alice namespaces=\"n\" ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQD0LHFC3gWUi0UKZqiWpAK22QT2Iuofy85/hvZ9VkyLKucgveIjbdMbYvkgOasTF6td9AFartTqkfDe12tTs7veQ/1VEAOp+S9kKDIBmWVDOkTZuk568t8xJqh3IgJ0wtOFZKiEdR0GURvBeXryGkakF/5qSdNl2oMASPP40oabQw== cplane-role=admin",
                "ed25519 keys only",
            ),
            (
                "#cplane-revoked=\"yesterday\" alice namespaces=\"n\" {K} cplane-role=admin",
                "revocation time",
            ),
            ("#cplane-revoked=\"20260101Z\"", "empty after"),
            ("alice namespaces=\"n\" {K} cplane-role=admin\r", "carriage return"),
        ];
        for (line, want) in cases {
            let text = format!("# header\n{}\n", line.replace("{K}", KEY1));
            let err = parse_allowed_signers(&text, "reg/allowed_signers").unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, KeyError::Registry { line: 2, .. }), "{line}: {msg}");
            assert!(msg.starts_with("reg/allowed_signers:2: "), "{line}: {msg}");
            assert!(msg.contains(want), "{line}: wanted {want:?} in {msg}");
        }
    }

    #[test]
    fn a_key_has_one_line_and_revocation_is_final() {
        let twice =
            format!("a namespaces=\"n\" {KEY1} cplane-role=admin\nb namespaces=\"m\" {KEY1} cplane-role=auditor\n");
        let err = parse_allowed_signers(&twice, "f").unwrap_err();
        assert!(err.to_string().starts_with("f:2: "), "{err}");
        assert!(err.to_string().contains("already on line 1"), "{err}");
        let back = format!(
            "#cplane-revoked=\"20260101Z\" a namespaces=\"n\" {KEY1} cplane-role=admin\na namespaces=\"n\" {KEY1} cplane-role=admin\n"
        );
        let err = parse_allowed_signers(&back, "f").unwrap_err();
        assert!(err.to_string().contains("cannot be trusted again"), "{err}");
    }

    #[test]
    fn revoke_keeps_the_line_and_every_other_byte() {
        let text = format!(
            "# keys\na namespaces=\"n\" {KEY1} cplane-role=admin\n  b namespaces=\"n\" {KEY2} cplane-role=maintainer x\n"
        );
        let key2 = PublicKey::from_openssh(KEY2).unwrap();
        let at = UtcTime::parse_openssh("20261130131216Z").unwrap();
        let out = revoke(&text, "f", &key2, at).unwrap();
        assert_eq!(
            out,
            format!(
                "# keys\na namespaces=\"n\" {KEY1} cplane-role=admin\n#cplane-revoked=\"20261130131216Z\" b namespaces=\"n\" {KEY2} cplane-role=maintainer x\n"
            )
        );
        let signers = parse_allowed_signers(&out, "f").unwrap();
        assert_eq!(signers[1].revoked, Some(at));
        assert_eq!(signers[1].role, Role::Maintainer);
        assert_eq!(signers[1].comment, "x");
        let err = revoke(&out, "f", &key2, at).unwrap_err();
        assert!(matches!(err, KeyError::AlreadyRevoked { line: 3, .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let stranger = new_key(dir.path(), "s");
        let err = revoke(&out, "f", stranger.public_key(), at).unwrap_err();
        assert!(matches!(err, KeyError::NotInRegistry { .. }), "{err}");
    }

    #[test]
    fn format_refuses_what_the_format_cannot_carry() {
        let key = PublicKey::from_openssh(KEY1).unwrap();
        let base = Signer {
            principals: vec!["a".into()],
            role: Role::Admin,
            namespaces: vec!["n".into()],
            valid_after: None,
            valid_before: None,
            key,
            comment: String::new(),
            revoked: None,
            line: 0,
        };
        assert!(format_signer(&base).is_ok());
        for broken in [
            Signer {
                principals: vec![],
                ..base.clone()
            },
            Signer {
                principals: vec!["a b".into()],
                ..base.clone()
            },
            Signer {
                principals: vec!["a,b".into()],
                ..base.clone()
            },
            Signer {
                namespaces: vec![],
                ..base.clone()
            },
            Signer {
                namespaces: vec!["a\"".into()],
                ..base.clone()
            },
            Signer {
                comment: "two\nlines".into(),
                ..base.clone()
            },
            Signer {
                comment: " padded".into(),
                ..base.clone()
            },
        ] {
            assert!(
                matches!(format_signer(&broken), Err(KeyError::Unformattable { .. })),
                "{broken:?}"
            );
        }
    }

    #[test]
    fn utc_time_parses_and_prints() {
        for (text, unix) in [
            ("19700101Z", 0),
            ("19691231235959Z", -1),
            ("20000229Z", 951_782_400),
            ("20261130131216Z", 1_796_044_336),
            ("99991231235959Z", 253_402_300_799),
            ("00000101Z", -62_167_219_200),
        ] {
            let t = UtcTime::parse_openssh(text).unwrap();
            assert_eq!(t.unix(), unix, "{text}");
            assert_eq!(UtcTime::parse_openssh(&t.to_string()), Some(t));
        }
        for bad in [
            "2026",
            "20260101",
            "2026010Z",
            "20261301Z",
            "20250229Z",
            "202601012400Z",
            "2026-01-01Z",
        ] {
            assert_eq!(UtcTime::parse_openssh(bad), None, "{bad}");
        }
    }

    fn arb_signer() -> impl Strategy<Value = Signer> {
        let time = || proptest::option::of((UtcTime::MIN.unix()..=UtcTime::MAX.unix()).prop_map(UtcTime::from_unix));
        (
            proptest::collection::vec("[A-Za-z0-9._@+-][A-Za-z0-9._@+#*?!-]{0,15}", 1..4),
            proptest::sample::select(Role::ALL.to_vec()),
            proptest::collection::vec("!?[a-z0-9*?][a-z0-9._*?@-]{0,15}", 1..4),
            time(),
            time(),
            any::<[u8; 32]>(),
            "([ -~]{0,20}[!-~])?",
            time(),
        )
            .prop_map(
                |(principals, role, namespaces, valid_after, valid_before, key, comment, revoked)| Signer {
                    principals,
                    role,
                    namespaces,
                    valid_after,
                    valid_before,
                    key: PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(key)), ""),
                    comment: comment.trim_start().to_string(),
                    revoked,
                    line: 1,
                },
            )
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(signer in arb_signer()) {
            let line = format_signer(&signer).unwrap();
            prop_assert!(!line.contains('\n'));
            let parsed = parse_allowed_signers(&line, "p").unwrap();
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(&parsed[0], &signer);
            prop_assert_eq!(format_signer(&parsed[0]).unwrap(), line);
        }
    }
}
