//! `cplane pull`: fetch a remote's packs and refs into this store, trusting
//! nothing (`store-format.md`, "Remotes").
//!
//! A remote is untrusted storage. Before anything enters the local store:
//!
//! 1. every pack not imported before is downloaded with its index into
//!    `.cp/tmp/`, the index is checked (trailer, order, fanout, records
//!    tiling the pack) and **every record is decompressed and re-hashed**
//!    against the id the index gives; one that does not match (a flipped
//!    byte, an object swapped for another) stops the pull naming it (store
//!    damage, exit 3) and nothing of that pull is kept;
//! 2. the records are copied verbatim into a local pack, written durably as
//!    every local pack is ("Packs");
//! 3. every object the remote's refs reach (walked only where they differ
//!    from the refs last pulled) must now be in the store;
//! 4. a plane's ledger copy must hash to the name its HEAD gives it, chain,
//!    carry good signatures, and agree with the ledger head HEAD's snapshot
//!    records; a governed plane without one is refused, and a governed
//!    plane's copy must extend the one verified last time (and start with
//!    this store's own governed ledger's genesis): a remote ledger only grows;
//! 5. only then do the remote-tracking refs move (each atomically), and
//!    only then are small packs merged.
//!
//! A pull refused after step 2 deletes the local packs it wrote and their
//! markers again: nothing it refused stays in the store.
//!
//! A pull killed anywhere leaves the local store `fsck`-clean: packs appear
//! whole (with their index) or not at all, and tracking refs name only
//! objects that are durable here.

use super::RemoteHooks;
use super::backend::Backend;
use crate::control::Control;
use crate::error::{Error, Result};
use crate::id::{ObjectId, SnapshotId};
use crate::store::Store;
use crate::store::lock::StoreLock;
use crate::store::pack::PackIndex;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// What a pull found for one plane.
#[derive(Debug, Clone, Serialize)]
pub struct PlanePull {
    /// The plane.
    pub plane: String,
    /// The remote HEAD (hex), `None` when the remote has none.
    pub head: Option<String>,
    /// The remote HEAD the previous pull saw.
    pub head_before: Option<String>,
    /// Checkpoints on the remote.
    pub checkpoints: u64,
    /// Entries of the verified ledger copy (0: none).
    pub ledger_entries: u64,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    /// The remote.
    pub remote: String,
    /// Per plane on the remote.
    pub planes: Vec<PlanePull>,
    /// Remote packs downloaded and imported.
    pub packs: u64,
    /// Objects verified (every record of those packs).
    pub objects_verified: u64,
    /// Objects new to this store.
    pub objects_new: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The refs of one plane as listed on the remote.
#[derive(Debug, Default)]
struct RemotePlane {
    head: Option<Vec<u8>>,
    checkpoints: BTreeMap<String, Vec<u8>>,
}

/// Damage on the remote: `what` (a remote key) is not as it must be.
fn remote_damage(remote: &str, what: &str, reason: String) -> Error {
    Error::DamagedFile {
        path: std::path::PathBuf::from(format!("remote {remote}: {what}")),
        reason,
    }
}

/// Pulls every plane of `remote` (or only `only`) into `store`. See the
/// module documentation for what is checked, in which order.
///
/// # Errors
/// Store damage (exit 3) for anything on the remote that does not verify:
/// [`Error::CorruptObject`] naming the object and the remote pack,
/// [`Error::DamagedFile`] for a damaged index, ref or ledger,
/// [`Error::MissingObject`] for an object a remote ref reaches that no
/// remote pack holds; [`Error::Remote`] for transport failures.
pub fn pull(
    store: &mut Store,
    _lock: &StoreLock,
    remote: &Backend,
    only: Option<&str>,
    hooks: &dyn RemoteHooks,
    ctl: Control<'_>,
) -> Result<PullReport> {
    let t0 = Instant::now();
    let name = remote.name().to_string();
    super::require_format(remote)?;
    // The refs, read before the packs: a ref read now names objects in
    // packs that are already listed (refs move after their packs are up).
    ctl.progress.phase("listing");
    let mut planes: BTreeMap<String, RemotePlane> = BTreeMap::new();
    for (key, _) in remote.list("planes/")? {
        let parts: Vec<&str> = key.split('/').collect();
        let plane = match parts.get(1) {
            Some(p) if crate::store::refs::valid_name(p) => p.to_string(),
            _ => continue,
        };
        if only.is_some_and(|o| o != plane) {
            continue;
        }
        match parts.as_slice() {
            [_, _, "HEAD"] => {
                let bytes = remote.get_ref(&key)?.map(|r| r.bytes);
                planes.entry(plane).or_default().head = bytes;
            }
            [_, _, "checkpoints", cp] if crate::store::refs::valid_name(cp) => {
                if let Some(b) = remote.get_ref(&key)?.map(|r| r.bytes) {
                    planes.entry(plane).or_default().checkpoints.insert(cp.to_string(), b);
                }
            }
            _ => {}
        }
    }
    for (plane, p) in &planes {
        for (label, b) in p
            .head
            .iter()
            .map(|b| ("HEAD".to_string(), b))
            .chain(p.checkpoints.iter().map(|(n, b)| (format!("checkpoints/{n}"), b)))
        {
            if crate::store::refs::parse_remote_ref(b).is_none() {
                return Err(remote_damage(
                    &name,
                    &format!("planes/{plane}/{label}"),
                    "is not a ref (64 hex digits and a newline, then for HEAD `ledger <64 hex>`)".into(),
                ));
            }
        }
    }
    // 1 and 2. Packs not imported before: download, verify every record, import.
    let listed = remote.list("packs/")?;
    let sizes: BTreeMap<String, u64> = listed.iter().cloned().collect();
    let mut new_packs: Vec<String> = listed
        .iter()
        .filter_map(|(k, _)| {
            k.strip_prefix("packs/pack-")
                .and_then(|r| r.strip_suffix(".idx"))
                .map(str::to_string)
        })
        .filter(|n| n.len() == 64 && crate::id::is_hex(n) && !super::has_pack(store, &name, n))
        .collect();
    new_packs.sort();
    let total: u64 = new_packs
        .iter()
        .map(|n| {
            sizes.get(&super::pack_key(n, "pack")).copied().unwrap_or(0)
                + sizes.get(&super::pack_key(n, "idx")).copied().unwrap_or(0)
        })
        .sum();
    let mut report = PullReport {
        remote: name.clone(),
        planes: Vec::new(),
        packs: 0,
        objects_verified: 0,
        objects_new: 0,
        bytes: 0,
        seconds: 0.0,
    };
    if !new_packs.is_empty() {
        ctl.progress.phase("downloading");
        ctl.progress.total(0, total);
    }
    // Steps 1 to 4 keep nothing when they refuse: the local packs they
    // wrote (and their markers) are deleted again, so a refused snapshot
    // cannot be resolved or checked out here.
    let packs_before: HashSet<std::path::PathBuf> = store.packs().iter().map(|p| p.idx_path.clone()).collect();
    let mut marked: Vec<String> = Vec::new();
    let checked = (|| -> Result<BTreeMap<String, (Vec<u8>, u64)>> {
        let work = store.tmp_dir().join(format!("pull-{}", std::process::id()));
        for pname in &new_packs {
            ctl.check()?;
            let _ = std::fs::remove_dir_all(&work);
            crate::fsutil::ensure_dir(&work)?;
            let r = import_pack(store, remote, pname, &work, ctl, &mut report);
            let _ = std::fs::remove_dir_all(&work);
            r?;
            marked.push(pname.clone());
            super::mark_pack(store, &name, pname)?;
            report.packs += 1;
        }
        hooks.at("imported");
        // 3. Everything the remote refs reach is here now. An object missing
        // here may still be in a remote pack imported before and since dropped
        // by a gc (no local root reached it then: another plane's objects after
        // a `clone` or `pull --plane`, or a refused pull's): such a pack is
        // imported again (verified as any), once, and the walk repeated.
        ctl.progress.phase("checking");
        let mut refetched: HashSet<String> = new_packs.iter().cloned().collect();
        let mut lookup: Option<(tempfile::TempDir, Vec<(String, PackIndex)>)> = None;
        while let Some((label, oid, kind)) = first_missing(store, &name, &planes, ctl)? {
            if lookup.is_none() {
                lookup = Some(imported_indexes(store, remote, &listed, &refetched)?);
            }
            let (_, indexes) = lookup.as_ref().expect("set above");
            let holder = ObjectId::from_hex(&oid).and_then(|id| {
                indexes
                    .iter()
                    .find(|(p, idx)| !refetched.contains(p) && idx.find(&id).is_some())
                    .map(|(p, _)| p.clone())
            });
            let Some(pname) = holder else {
                return Err(remote_damage(
                    &name,
                    &format!("planes/{label}"),
                    format!("reaches {kind} {oid}, which no pack on the remote holds"),
                ));
            };
            ctl.check()?;
            let _ = std::fs::remove_dir_all(&work);
            crate::fsutil::ensure_dir(&work)?;
            let r = import_pack(store, remote, &pname, &work, ctl, &mut report);
            let _ = std::fs::remove_dir_all(&work);
            r?;
            refetched.insert(pname);
            report.packs += 1;
        }
        drop(lookup);
        // 4. Ledgers.
        let mut ledgers: BTreeMap<String, (Vec<u8>, u64)> = BTreeMap::new();
        for (plane, p) in &planes {
            let Some((head, lid)) = p.head.as_deref().and_then(crate::store::refs::parse_remote_ref) else {
                continue;
            };
            let snap = store.read_snapshot(&head)?;
            let governed = crate::governance::plane::tree_is_governed(store, &snap.root)?;
            let Some(lid) = lid else {
                if governed {
                    return Err(remote_damage(
                        &name,
                        &super::head_key(plane),
                        "names a governed state but no ledger: a governed plane is pulled only with its ledger".into(),
                    ));
                }
                continue;
            };
            let tracked = super::tracked(store, &name, plane)?;
            let local_copy = super::tracked_ledger_path(store, &name, plane);
            let bytes = if tracked.ledger_id() == Some(lid)
                && let Ok(b) = std::fs::read(&local_copy)
                && blake3::hash(&b).as_bytes() == &lid.0
            {
                b
            } else {
                let key = super::ledger_key(plane, &lid);
                let b = remote
                    .get(&key)?
                    .ok_or_else(|| remote_damage(&name, &key, "is missing, but HEAD names it".into()))?;
                report.bytes += b.len() as u64;
                if blake3::hash(&b).as_bytes() != &lid.0 {
                    return Err(remote_damage(
                        &name,
                        &key,
                        format!("content hashes to {}, not to its name", blake3::hash(&b).to_hex()),
                    ));
                }
                b
            };
            let entries = verify_ledger(store, &name, plane, &head, &snap, &bytes)?;
            // A governed plane's remote ledger only grows: it must extend the
            // copy verified last time, and start where this store's own ledger
            // of the plane starts (its trust anchor).
            let governed_before = tracked
                .head_id()
                .is_some_and(|t| super::snapshot_is_governed(store, &t));
            let local_governed = super::local_plane_is_governed(store, plane);
            if governed || governed_before || local_governed {
                check_extends(store, &name, plane, &local_copy, &bytes, local_governed)?;
            }
            ledgers.insert(plane.clone(), (bytes, entries));
        }
        Ok(ledgers)
    })();
    let ledgers = match checked {
        Ok(l) => l,
        Err(e) => {
            store.remove_packs_since(_lock, &packs_before)?;
            for pname in &marked {
                super::unmark_pack(store, &name, pname)?;
            }
            return Err(e);
        }
    };
    // 5. The remote-tracking refs.
    for (plane, p) in &planes {
        let tracked = super::tracked(store, &name, plane)?;
        if let Some((bytes, _)) = ledgers.get(plane) {
            let path = super::tracked_ledger_path(store, &name, plane);
            crate::fsutil::ensure_dir(path.parent().expect("has a parent"))?;
            crate::fsutil::write_atomic(&path, bytes, &store.tmp_dir())?;
        }
        for (cp, b) in &p.checkpoints {
            if tracked.checkpoints.get(cp) != Some(b) {
                super::set_tracked_checkpoint(store, &name, plane, cp, Some(b))?;
            }
        }
        for cp in tracked.checkpoints.keys() {
            if !p.checkpoints.contains_key(cp) {
                super::set_tracked_checkpoint(store, &name, plane, cp, None)?;
            }
        }
        if tracked.head != p.head {
            super::set_tracked_head(store, &name, plane, p.head.as_deref())?;
        }
        let id_of = |b: &Option<Vec<u8>>| {
            b.as_deref()
                .and_then(crate::store::refs::parse_remote_ref)
                .map(|(id, _)| id.to_hex())
        };
        report.planes.push(PlanePull {
            plane: plane.clone(),
            head: id_of(&p.head),
            head_before: id_of(&tracked.head),
            checkpoints: p.checkpoints.len() as u64,
            ledger_entries: ledgers.get(plane).map_or(0, |(_, n)| *n),
        });
    }
    // Planes gone from the remote: their tracking refs go too.
    if only.is_none() {
        for plane in super::tracked_planes(store, &name) {
            if !planes.contains_key(&plane) {
                let dir = store.remote_dir(&name).join("planes").join(&plane);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    if report.packs > 0 {
        // One local pack per imported remote pack: merged once small ones
        // pile up (only now, every check passed).
        let _ = store.maybe_repack(_lock);
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// The first object a remote ref of `planes` reaches that this store lacks,
/// walked against the remote-tracking HEAD of its plane (only where trees
/// differ): (`<plane>/HEAD` or `<plane>/checkpoints/<name>`, id, kind).
fn first_missing(
    store: &Store,
    name: &str,
    planes: &BTreeMap<String, RemotePlane>,
    ctl: Control<'_>,
) -> Result<Option<(String, String, &'static str)>> {
    for (plane, p) in planes {
        let tracked = super::tracked(store, name, plane)?;
        let base_id = tracked.head_id();
        let base = base_id.and_then(|b| store.read_snapshot(&b).ok());
        let mut seen: HashSet<ObjectId> = HashSet::new();
        if let Some(b) = base_id {
            seen.insert(b.0);
        }
        let mut ids: Vec<(String, SnapshotId)> = Vec::new();
        if let Some((id, _)) = p.head.as_deref().and_then(crate::store::refs::parse_remote_ref) {
            ids.push((format!("{plane}/HEAD"), id));
        }
        for (cp, b) in &p.checkpoints {
            if tracked.checkpoints.get(cp) != Some(b)
                && let Some((id, _)) = crate::store::refs::parse_remote_ref(b)
            {
                ids.push((format!("{plane}/checkpoints/{cp}"), id));
            }
        }
        for (label, id) in ids {
            ctl.check()?;
            if Some(id) == base_id {
                continue;
            }
            let mut out = Vec::new();
            let walked = store
                .read_snapshot(&id)
                .and_then(|snap| super::walk::new_objects(store, id, &snap, base.as_ref(), &mut seen, &mut out));
            match walked {
                Ok(()) => {}
                Err(Error::MissingObject { id: oid, kind }) => return Ok(Some((label, oid, kind))),
                Err(e) => return Err(e),
            }
            if let Some(missing) = out.iter().find(|o| !store.contains(o)) {
                return Ok(Some((label, missing.to_hex(), "object")));
            }
        }
    }
    Ok(None)
}

/// The indexes of the remote packs listed in `listed` other than `skip`
/// (the packs this store imported before), downloaded into a temporary
/// directory of `.cp/tmp/` to look objects up in. Only an index's own
/// bytes are read (an empty stand-in takes its pack's place); a lookup in
/// a damaged one finds nothing or a pack whose import then refuses it.
fn imported_indexes(
    store: &Store,
    remote: &Backend,
    listed: &[(String, u64)],
    skip: &HashSet<String>,
) -> Result<(tempfile::TempDir, Vec<(String, PackIndex)>)> {
    let dir = tempfile::Builder::new()
        .prefix("pull-lookup-")
        .tempdir_in(store.tmp_dir())
        .map_err(|e| Error::Io {
            path: store.tmp_dir(),
            source: e,
        })?;
    let mut out = Vec::new();
    for (key, _) in listed {
        let Some(pname) = key.strip_prefix("packs/pack-").and_then(|r| r.strip_suffix(".idx")) else {
            continue;
        };
        if pname.len() != 64 || !crate::id::is_hex(pname) || skip.contains(pname) {
            continue;
        }
        let idx_path = dir.path().join(format!("pack-{pname}.idx"));
        let pack_path = dir.path().join(format!("pack-{pname}.pack"));
        if remote
            .download_to(key, &idx_path, &crate::progress::NoProgress)?
            .is_none()
        {
            continue;
        }
        std::fs::write(&pack_path, b"").map_err(|e| Error::Io {
            path: pack_path.clone(),
            source: e,
        })?;
        if let Ok(idx) = PackIndex::open(&idx_path) {
            out.push((pname.to_string(), idx));
        }
    }
    Ok((dir, out))
}

/// Downloads remote pack `pname` into `work`, verifies every record, and
/// copies the objects this store lacks into a new local pack (durable).
fn import_pack(
    store: &mut Store,
    remote: &Backend,
    pname: &str,
    work: &std::path::Path,
    ctl: Control<'_>,
    report: &mut PullReport,
) -> Result<()> {
    let name = remote.name();
    let idx_path = work.join(format!("pack-{pname}.idx"));
    let pack_path = work.join(format!("pack-{pname}.pack"));
    let pack_key = super::pack_key(pname, "pack");
    // The pack, then its index (uploaded index last, so a listed index has its pack).
    let got = remote.download_to(&pack_key, &pack_path, ctl.progress)?;
    let Some(pack_bytes) = got else {
        return Err(remote_damage(
            name,
            &pack_key,
            "is missing, but its index is there".into(),
        ));
    };
    let idx_key = super::pack_key(pname, "idx");
    let idx_bytes = remote
        .download_to(&idx_key, &idx_path, ctl.progress)?
        .ok_or_else(|| remote_damage(name, &idx_key, "disappeared while the pull read it".into()))?;
    report.bytes += pack_bytes + idx_bytes;
    let located = |e: Error| relocate(e, name, pname, &pack_path, &idx_path);
    let src = PackIndex::open(&idx_path).map_err(located)?;
    src.check().map_err(located)?;
    let mut entries = Vec::with_capacity(src.len());
    for i in 0..src.len() {
        entries.push(
            src.entry(i)
                .ok_or_else(|| remote_damage(name, &idx_key, format!("entry {i} has an unknown kind byte")))?,
        );
    }
    ctl.progress.phase("verifying");
    ctl.progress.total(entries.len() as u64, 0);
    // Every record, re-hashed before anything is kept.
    entries.par_iter().try_for_each(|e| -> Result<()> {
        ctl.check()?;
        src.verify_entry(e).map_err(located)?;
        ctl.progress.inc(1, 0);
        Ok(())
    })?;
    report.objects_verified += entries.len() as u64;
    let fresh: Vec<_> = entries.iter().filter(|e| !store.contains(&e.id)).collect();
    if !fresh.is_empty() {
        let (_, stats) = store.transaction(|w| {
            for e in &fresh {
                w.copy_record_from(&src, e)?;
            }
            Ok(())
        })?;
        report.objects_new += stats.new_objects;
    }
    Ok(())
}

/// Names the remote pack in an error found while checking its downloaded copy.
fn relocate(e: Error, remote: &str, pname: &str, pack: &std::path::Path, idx: &std::path::Path) -> Error {
    let here = |s: String| {
        s.replace(
            &pack.display().to_string(),
            &format!("remote {remote}: packs/pack-{pname}.pack"),
        )
        .replace(
            &idx.display().to_string(),
            &format!("remote {remote}: packs/pack-{pname}.idx"),
        )
    };
    match e {
        Error::CorruptObject { id, location, reason } => Error::CorruptObject {
            id,
            location: here(location),
            reason,
        },
        Error::DamagedFile { path, reason } => Error::DamagedFile {
            path: std::path::PathBuf::from(here(path.display().to_string())),
            reason,
        },
        other => other,
    }
}

/// Refuses a pulled ledger copy `bytes` of a governed `plane` that does not
/// extend the copy this store verified last time (`tracked_copy`, when
/// there is one): its entries must come first, byte for byte. When
/// `anchor` (this store's own plane `plane` is governed), the copy must
/// also start with this store's own ledger's genesis entry.
fn check_extends(
    store: &Store,
    remote: &str,
    plane: &str,
    tracked_copy: &std::path::Path,
    bytes: &[u8],
    anchor: bool,
) -> Result<()> {
    let what = format!("ledger of plane {plane}");
    let describe = |seq: u64, ended: bool| {
        if ended {
            format!("entry {seq} is missing")
        } else {
            format!("entry {seq} differs")
        }
    };
    if let Ok(old) = std::fs::read(tracked_copy)
        && let Some((seq, ended)) = super::ledger_divergence(&old, bytes)
    {
        return Err(remote_damage(
            remote,
            &what,
            format!(
                "rewrites the history this store verified before: {} of the {} entries pulled or pushed last time; a governed plane's remote ledger only grows, so it is refused",
                describe(seq, ended),
                super::ledger_lines(&old)
            ),
        ));
    }
    if anchor {
        let local = std::fs::read(crate::ledger::Ledger::of(store, plane).path()).unwrap_or_default();
        let genesis = |b: &[u8]| b.split_inclusive(|&c| c == b'\n').next().map(<[u8]>::to_vec);
        if let Some(own) = genesis(&local)
            && genesis(bytes) != Some(own)
        {
            return Err(remote_damage(
                remote,
                &what,
                "entry 0 differs from entry 0 of this store's own ledger of the plane: another genesis, another trust anchor, so it is refused".into(),
            ));
        }
    }
    Ok(())
}

/// Verifies a pulled ledger copy of `plane`: chain, hashes, signatures
/// (against the keys the ledger itself trusted at each entry), and the
/// ledger head the HEAD snapshot records. Returns its entry count.
fn verify_ledger(
    store: &Store,
    remote: &str,
    plane: &str,
    head: &SnapshotId,
    snap: &crate::object::Snapshot,
    bytes: &[u8],
) -> Result<u64> {
    let what = format!("ledger of plane {plane}");
    let dir = tempfile::Builder::new()
        .prefix("ledger-")
        .tempdir_in(store.tmp_dir())
        .map_err(|e| Error::Io {
            path: store.tmp_dir(),
            source: e,
        })?;
    let path = dir.path().join(crate::ledger::LEDGER_FILE);
    std::fs::write(&path, bytes).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    let ledger = crate::ledger::Ledger::at(dir.path(), plane);
    let r = ledger.verify(Some(head), snap.ledger, &[])?;
    if let Some(b) = &r.broken {
        return Err(remote_damage(remote, &what, format!("entry {}: {}", b.seq, b.problem)));
    }
    if let Some((seq, p)) = r.bad_signatures.first() {
        return Err(remote_damage(remote, &what, format!("entry {seq}: {p}")));
    }
    if let Some(rec) = snap.ledger
        && rec.size > 0
    {
        let root = if rec.size <= r.good {
            ledger.root(rec.size).ok()
        } else {
            None
        };
        if root != Some(rec.root) {
            return Err(remote_damage(
                remote,
                &what,
                format!(
                    "does not hold the {} entries HEAD {} was sealed with (their Merkle root differs or they are missing)",
                    rec.size,
                    head.short(12)
                ),
            ));
        }
    }
    Ok(r.good)
}

/// What `cplane clone` is asked to do.
#[derive(Debug, Clone)]
pub struct CloneOptions {
    /// The remote's URL.
    pub url: String,
    /// Its name in the new store (`origin`).
    pub origin: String,
    /// S3 endpoint to store with the remote.
    pub endpoint: Option<String>,
    /// S3 region to store with the remote.
    pub region: Option<String>,
    /// The remote plane to check out (default: `main`, or the remote's only plane).
    pub plane: Option<String>,
}

/// What `cplane clone` did.
#[derive(Debug)]
pub struct CloneReport {
    /// The pull into the new store.
    pub pull: PullReport,
    /// The plane checked out.
    pub plane: String,
    /// Its HEAD (the remote's).
    pub head: SnapshotId,
    /// Files written into the directory.
    pub written: u64,
}

/// Makes a new store in `dir` (absent or empty) from a remote plane: the
/// store is built under a temporary name (as `init` does), the remote is
/// added, pulled (every object verified), and the plane's HEAD,
/// checkpoints and verified ledger become the local plane's; only then is
/// the store named `.cp` and the plane's files written by the checkout
/// engine (a whole-plane restore from HEAD, whose rescue checkpoint of the
/// empty directory is dropped again). HEAD is the remote's snapshot, so
/// `status` is clean and the next push moves the remote from there.
///
/// # Errors
/// [`Error::Io`] when `dir` is not empty; [`Error::BadRemote`] for a bad
/// URL, or a remote with no such plane; as [`pull`] and
/// [`crate::restore::restore`]. Nothing is left in `dir` when the store
/// cannot be made.
pub fn clone(
    dir: &std::path::Path,
    opts: &CloneOptions,
    hooks: &dyn RemoteHooks,
    ctl: Control<'_>,
) -> Result<(Store, CloneReport)> {
    let url = super::RemoteUrl::parse(&opts.url)?;
    if !crate::store::refs::valid_name(&opts.origin) {
        return Err(Error::BadRemote {
            url: opts.origin.clone(),
            reason: "is not a valid remote name (letters, digits, `.`, `_`, `-`)".into(),
        });
    }
    let created = match std::fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::Io {
                    path: dir.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "is not empty; clone into a new or empty directory",
                    ),
                });
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            true
        }
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let r = clone_into(dir, &url, opts, hooks, ctl);
    if r.is_err() && created && !dir.join(crate::store::STORE_DIR).exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
    r
}

fn clone_into(
    dir: &std::path::Path,
    url: &super::RemoteUrl,
    opts: &CloneOptions,
    hooks: &dyn RemoteHooks,
    ctl: Control<'_>,
) -> Result<(Store, CloneReport)> {
    let settings = super::Settings {
        endpoint: opts.endpoint.clone(),
        region: opts.region.clone(),
        create_dir: false,
    };
    let backend = Backend::open(&opts.origin, url, &settings)?;
    if !super::check_format(&backend)? {
        return Err(Error::BadRemote {
            url: url.to_url(),
            reason: "holds no cplane remote (no FORMAT object): push to it first".into(),
        });
    }
    // Plane names as listed: a name that is not a valid plane name (it
    // becomes the local plane's) is left out, and said when nothing is left.
    let (mut planes, invalid): (Vec<String>, Vec<String>) = backend
        .list("planes/")?
        .into_iter()
        .filter_map(|(k, _)| {
            let parts: Vec<&str> = k.split('/').collect();
            match parts.as_slice() {
                [_, p, "HEAD"] => Some(p.to_string()),
                _ => None,
            }
        })
        .partition(|p| crate::store::refs::valid_name(p));
    planes.sort();
    let plane = match &opts.plane {
        Some(p) if planes.contains(p) => p.clone(),
        Some(p) => {
            return Err(Error::BadRemote {
                url: url.to_url(),
                reason: format!("has no plane `{p}` (planes: {})", planes.join(", ")),
            });
        }
        None if planes.iter().any(|p| p == "main") => "main".into(),
        None if planes.len() == 1 => planes[0].clone(),
        None => {
            return Err(Error::BadRemote {
                url: url.to_url(),
                reason: if planes.is_empty() && !invalid.is_empty() {
                    format!(
                        "has no plane with a valid name (letters, digits, `.`, `_`, `-`); found planes/{}/HEAD",
                        invalid.join("/HEAD, planes/")
                    )
                } else if planes.is_empty() {
                    "has no plane with a HEAD yet: push one first".into()
                } else {
                    format!("has several planes ({}); pick one with --plane", planes.join(", "))
                },
            });
        }
    };
    let mut store = Store::create_staged(dir)?;
    let staged = (|| {
        let mut config = store.config().clone();
        config.planes[0].name = plane.clone();
        config.remotes.push(crate::store::RemoteConfig {
            name: opts.origin.clone(),
            url: url.to_url(),
            endpoint: opts.endpoint.clone(),
            region: opts.region.clone(),
        });
        store.save_config(config)?;
        let lock = store.lock(ctl.interrupt)?;
        let pulled = pull(&mut store, &lock, &backend, Some(&plane), hooks, ctl)?;
        let tracked = super::tracked(&store, &opts.origin, &plane)?;
        let head = tracked.head_id().ok_or_else(|| Error::BadRemote {
            url: url.to_url(),
            reason: format!("plane `{plane}` lost its HEAD during the clone"),
        })?;
        for (cp, b) in &tracked.checkpoints {
            if let Some((id, _)) = crate::store::refs::parse_remote_ref(b) {
                store.set_checkpoint(&plane, cp, &id)?;
            }
        }
        let copy = super::tracked_ledger_path(&store, &opts.origin, &plane);
        if let Ok(bytes) = std::fs::read(&copy) {
            let ledger = crate::ledger::Ledger::of(&store, &plane);
            crate::fsutil::ensure_dir(&store.plane_dir(&plane))?;
            crate::fsutil::write_atomic(ledger.path(), &bytes, &store.tmp_dir())?;
        }
        store.set_head(&plane, &head)?;
        drop(lock);
        Ok((pulled, head))
    })();
    let (pulled, head) = match staged {
        Ok(v) => v,
        Err(e) => {
            store.discard_init();
            return Err(e);
        }
    };
    let mut store = store.publish_init()?;
    let lock = store.lock(ctl.interrupt)?;
    let p = store.plane(&plane)?;
    let target = crate::revision::resolve(&store, &p, "HEAD")?;
    let r = crate::restore::restore(
        &mut store,
        &lock,
        &p,
        &target,
        &[crate::path::RelPath::root()],
        &crate::checkout::NoHooks,
        ctl,
    )?;
    // The rescue of an empty directory is worth nothing.
    if store.checkpoint(&plane, &r.journal.rescue_name)?.is_some() {
        store.remove_checkpoint(&plane, &r.journal.rescue_name)?;
    }
    drop(lock);
    Ok((
        store,
        CloneReport {
            pull: pulled,
            plane,
            head,
            written: r.applied.written,
        },
    ))
}
