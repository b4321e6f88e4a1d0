//! Remotes: push and pull planes to S3 (or an S3-compatible server) and to
//! directories, through Apache Arrow's `object_store` ([`backend`]).
//!
//! A remote holds the local formats (`store-format.md`, "Remotes"): packs
//! and their indexes byte for byte as local packs, one small object per
//! ref, and content-named copies of each plane's ledger. This store keeps,
//! under `.cp/remotes/<NAME>/`, the remote-tracking refs (the remote's refs
//! as the last pull or push saw them), the remote ledgers it verified, and
//! which remote packs it has imported.
//!
//! * [`push::push`] uploads what the remote lacks, found by walking the
//!   local trees only where they differ from the remote-tracking ones, as
//!   one new pack, then moves each remote ref by compare-and-swap.
//! * [`pull::pull`] downloads the packs it has not imported, re-hashes
//!   every object before it enters the local store, checks that every
//!   object the remote refs reach is here, verifies governed ledgers, and
//!   only then moves the remote-tracking refs.
//! * [`check::check`] is `fsck --remote`.
//!
//! Objects on a remote are not encrypted: whoever can read the bucket or
//! directory can read every file of every pushed snapshot.

pub mod backend;
pub mod check;
pub mod pull;
pub mod push;
pub mod url;
mod walk;

pub use backend::{Backend, Settings};
pub use url::RemoteUrl;

use crate::error::{Error, IoResultExt, Result};
use crate::id::SnapshotId;
use crate::store::{RemoteConfig, Store};
use std::path::PathBuf;

/// Contents of the `FORMAT` object at a remote's root.
pub const REMOTE_FORMAT: &str = "cplane-remote 1\n";
/// Remote format version this build writes and the newest it reads.
pub const REMOTE_FORMAT_VERSION: u32 = 1;

/// Where a remote's pack lives: `packs/pack-<name>.pack` (and `.idx`).
pub fn pack_key(name: &str, ext: &str) -> String {
    format!("packs/pack-{name}.{ext}")
}

/// `planes/<plane>/HEAD` on a remote.
pub fn head_key(plane: &str) -> String {
    format!("planes/{plane}/HEAD")
}

/// `planes/<plane>/checkpoints/<name>` on a remote.
pub fn checkpoint_key(plane: &str, name: &str) -> String {
    format!("planes/{plane}/checkpoints/{name}")
}

/// `planes/<plane>/ledgers/<64 hex>` on a remote: a copy of the plane's
/// ledger, named by the BLAKE3 of its bytes.
pub fn ledger_key(plane: &str, id: &crate::id::ObjectId) -> String {
    format!("planes/{plane}/ledgers/{}", id.to_hex())
}

/// The bytes of a remote ref: the snapshot id, and for a HEAD the ledger copy.
pub fn ref_bytes(id: &SnapshotId, ledger: Option<&crate::id::ObjectId>) -> Vec<u8> {
    match ledger {
        Some(l) => format!("{}\nledger {}\n", id.to_hex(), l.to_hex()).into_bytes(),
        None => format!("{}\n", id.to_hex()).into_bytes(),
    }
}

/// The remote named `name` in the store's configuration.
///
/// # Errors
/// [`Error::NoSuchRemote`].
pub fn config<'a>(store: &'a Store, name: &str) -> Result<&'a RemoteConfig> {
    store
        .config()
        .remotes
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| Error::NoSuchRemote {
            name: name.to_string(),
            known: store.config().remotes.iter().map(|r| r.name.clone()).collect(),
        })
}

/// The remote a command means when none is named: the only one, else `origin`.
///
/// # Errors
/// [`Error::NoSuchRemote`] when there is no remote, or several and none is `origin`.
pub fn default_name(store: &Store) -> Result<String> {
    let remotes = &store.config().remotes;
    match remotes.as_slice() {
        [one] => Ok(one.name.clone()),
        _ if remotes.iter().any(|r| r.name == "origin") => Ok("origin".into()),
        _ => Err(Error::NoSuchRemote {
            name: if remotes.is_empty() {
                "origin".into()
            } else {
                "(none given)".into()
            },
            known: remotes.iter().map(|r| r.name.clone()).collect(),
        }),
    }
}

/// Opens remote `name` of `store` to read it (a missing directory remote
/// is an error).
///
/// # Errors
/// As [`config`], [`RemoteUrl::parse`] and [`Backend::open`].
pub fn open(store: &Store, name: &str) -> Result<Backend> {
    open_with(store, name, false)
}

/// Opens remote `name` of `store` to push to it: a directory remote is
/// created when missing.
///
/// # Errors
/// As [`open`].
pub fn open_for_push(store: &Store, name: &str) -> Result<Backend> {
    open_with(store, name, true)
}

fn open_with(store: &Store, name: &str, create_dir: bool) -> Result<Backend> {
    let rc = config(store, name)?;
    let url = RemoteUrl::parse(&rc.url)?;
    Backend::open(
        name,
        &url,
        &Settings {
            endpoint: rc.endpoint.clone(),
            region: rc.region.clone(),
            create_dir,
        },
    )
}

/// Refuses a remote written by a newer cplane (its `FORMAT` says so).
///
/// # Errors
/// [`Error::NewerFormat`]; [`Error::Remote`].
pub(crate) fn check_format(remote: &Backend) -> Result<bool> {
    let Some(bytes) = remote.get_ref("FORMAT")?.map(|r| r.bytes) else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(&bytes);
    let version = text
        .trim()
        .strip_prefix("cplane-remote ")
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| Error::Remote {
            remote: remote.name().to_string(),
            op: "read FORMAT".into(),
            reason: format!("expected `cplane-remote <version>`, found {:?}", text.trim()),
        })?;
    if version > REMOTE_FORMAT_VERSION {
        return Err(Error::NewerFormat {
            path: PathBuf::from(format!("{}:FORMAT", remote.name())),
            found: version,
            supported: REMOTE_FORMAT_VERSION,
        });
    }
    Ok(true)
}

/// Refuses a remote with no `FORMAT` object as well as one of a newer
/// format: readers (pull, fsck) must not take an empty directory (a file
/// system not mounted) or a wrong bucket or prefix for a remote without
/// planes, which would drop every remote-tracking ref as gone.
///
/// # Errors
/// [`Error::Remote`] naming the remote; as [`check_format`].
pub(crate) fn require_format(remote: &Backend) -> Result<()> {
    if check_format(remote)? {
        return Ok(());
    }
    Err(Error::Remote {
        remote: remote.name().to_string(),
        op: "read FORMAT".into(),
        reason: "holds no cplane remote (no FORMAT object): check its URL (`cplane remote list`) and that the directory is mounted or the bucket and prefix exist; only a push creates a remote".into(),
    })
}

/// What this store knows of one plane on a remote (remote-tracking refs).
#[derive(Debug, Clone, Default)]
pub struct Tracked {
    /// The remote HEAD ref's bytes as last seen.
    pub head: Option<Vec<u8>>,
    /// The remote checkpoint refs' bytes as last seen, by name.
    pub checkpoints: std::collections::BTreeMap<String, Vec<u8>>,
}

impl Tracked {
    /// The snapshot the tracked HEAD names.
    pub fn head_id(&self) -> Option<SnapshotId> {
        self.head
            .as_deref()
            .and_then(crate::store::refs::parse_remote_ref)
            .map(|(id, _)| id)
    }

    /// The ledger copy the tracked HEAD names.
    pub fn ledger_id(&self) -> Option<crate::id::ObjectId> {
        self.head
            .as_deref()
            .and_then(crate::store::refs::parse_remote_ref)
            .and_then(|(_, l)| l)
    }
}

/// `.cp/remotes/<remote>/planes/<plane>`.
fn tracking_dir(store: &Store, remote: &str, plane: &str) -> PathBuf {
    store.remote_dir(remote).join("planes").join(plane)
}

/// The remote-tracking refs of `plane` on `remote`.
///
/// # Errors
/// [`Error::Io`].
pub fn tracked(store: &Store, remote: &str, plane: &str) -> Result<Tracked> {
    let dir = tracking_dir(store, remote, plane);
    let read = |p: PathBuf| -> Result<Option<Vec<u8>>> {
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&p),
        }
    };
    let mut t = Tracked {
        head: read(dir.join("HEAD"))?,
        ..Tracked::default()
    };
    let cps = dir.join("checkpoints");
    if let Ok(rd) = std::fs::read_dir(&cps) {
        for e in rd {
            let e = e.at(&cps)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::store::refs::valid_name(&name)
                && let Some(b) = read(e.path())?
            {
                t.checkpoints.insert(name, b);
            }
        }
    }
    Ok(t)
}

/// Planes this store tracks on `remote`.
pub fn tracked_planes(store: &Store, remote: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(store.remote_dir(remote).join("planes"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| crate::store::refs::valid_name(n))
        .collect();
    out.sort();
    out
}

/// Records the remote HEAD of `plane` as `bytes` (`None`: it has none), durably.
pub(crate) fn set_tracked_head(store: &Store, remote: &str, plane: &str, bytes: Option<&[u8]>) -> Result<()> {
    let dir = tracking_dir(store, remote, plane);
    let path = dir.join("HEAD");
    match bytes {
        Some(b) => {
            crate::fsutil::ensure_dir(&dir)?;
            crate::fsutil::write_atomic(&path, b, &store.tmp_dir())
        }
        None => remove_file(&path),
    }
}

/// Records the remote checkpoint `name` of `plane` (`None`: gone), durably.
pub(crate) fn set_tracked_checkpoint(
    store: &Store,
    remote: &str,
    plane: &str,
    name: &str,
    bytes: Option<&[u8]>,
) -> Result<()> {
    let dir = tracking_dir(store, remote, plane).join("checkpoints");
    let path = dir.join(name);
    match bytes {
        Some(b) => {
            crate::fsutil::ensure_dir(&dir)?;
            crate::fsutil::write_atomic(&path, b, &store.tmp_dir())
        }
        None => remove_file(&path),
    }
}

/// The verified copy of `plane`'s ledger on `remote`, as last pulled.
pub fn tracked_ledger_path(store: &Store, remote: &str, plane: &str) -> PathBuf {
    tracking_dir(store, remote, plane).join(crate::ledger::LEDGER_FILE)
}

fn remove_file(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// `.cp/remotes/<remote>/packs/pack-<name>`: an empty file saying the
/// remote's pack `name` is imported (or was pushed from here).
fn pack_marker(store: &Store, remote: &str, name: &str) -> PathBuf {
    store.remote_dir(remote).join("packs").join(format!("pack-{name}"))
}

/// True when the remote pack `name` is known to be in this store.
pub(crate) fn has_pack(store: &Store, remote: &str, name: &str) -> bool {
    pack_marker(store, remote, name).exists()
}

/// Records that the remote pack `name` is in this store (after its objects are durable).
pub(crate) fn mark_pack(store: &Store, remote: &str, name: &str) -> Result<()> {
    let p = pack_marker(store, remote, name);
    let dir = p.parent().expect("marker has a parent");
    crate::fsutil::ensure_dir(dir)?;
    std::fs::write(&p, b"").at(&p)?;
    crate::fsutil::fsync_dir(dir)
}

/// Forgets that the remote pack `name` is in this store (a refused pull's).
pub(crate) fn unmark_pack(store: &Store, remote: &str, name: &str) -> Result<()> {
    let p = pack_marker(store, remote, name);
    remove_file(&p)?;
    crate::fsutil::fsync_dir(p.parent().expect("marker has a parent"))
}

/// Debug-build pause points of a push or pull, for the crash tests
/// (`CPLANE_TEST_REMOTE_PAUSE=STEP`): create `.cp/remote-paused` and sleep.
pub trait RemoteHooks {
    /// The transfer reached `step` (`pack-uploaded`, `index-uploaded`,
    /// `head-moved` for a push; `imported` for a pull).
    fn at(&self, _step: &str) {}
}

/// No hooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRemoteHooks;

impl RemoteHooks for NoRemoteHooks {}

/// Whether snapshot `id` of this store is of a governed plane (a snapshot
/// that cannot be read counts as governed: the checks this gates only
/// refuse rewritten ledgers, so erring towards them is safe).
pub(crate) fn snapshot_is_governed(store: &Store, id: &SnapshotId) -> bool {
    store
        .read_snapshot(id)
        .and_then(|s| crate::governance::plane::tree_is_governed(store, &s.root))
        .unwrap_or(true)
}

/// Whether the local plane `plane` exists here and its HEAD is governed.
pub(crate) fn local_plane_is_governed(store: &Store, plane: &str) -> bool {
    store.plane(plane).is_ok() && matches!(store.head(plane), Ok(Some(id)) if snapshot_is_governed(store, &id))
}

/// The first entry (0-based line) at which ledger bytes `new` stop
/// repeating `old` byte for byte, with whether `new` simply ends there;
/// `None` when `new` extends `old` (holds its entries, then maybe more).
pub(crate) fn ledger_divergence(old: &[u8], new: &[u8]) -> Option<(u64, bool)> {
    if new.starts_with(old) && (old.is_empty() || old.ends_with(b"\n")) {
        return None;
    }
    let mut a = old.split_inclusive(|&b| b == b'\n');
    let mut b = new.split_inclusive(|&b| b == b'\n');
    let mut seq = 0u64;
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => seq += 1,
            (Some(_), None) => return Some((seq, true)),
            (None, _) => return None,
            (Some(_), Some(_)) => return Some((seq, false)),
        }
    }
}

/// The number of entries (lines) in ledger bytes.
pub(crate) fn ledger_lines(bytes: &[u8]) -> u64 {
    bytes.split_inclusive(|&b| b == b'\n').count() as u64
}
