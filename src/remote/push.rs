//! `cplane push`: upload what a remote lacks, then move its refs by
//! compare-and-swap (`store-format.md`, "Remotes").
//!
//! Order, so that a push killed anywhere leaves every remote ref at its old
//! or its new value and never naming an object the remote lacks:
//!
//! 1. read each remote HEAD (with its ETag); one that is not what the last
//!    pull saw stops the push before anything is uploaded ("the remote
//!    moved; pull first", exit 2);
//! 2. walk each new snapshot against the remote-tracking HEAD of its plane,
//!    descending only where tree ids differ, and copy the records found
//!    verbatim into one new pack;
//! 3. upload the pack (in parts when large), then its index, then each
//!    plane's ledger copy;
//! 4. move each HEAD by a conditional write (`If-Match` the ETag read in 1,
//!    or `If-None-Match: *` for a new one); a refusal is "the remote moved";
//! 5. create each new checkpoint ref (`If-None-Match: *`);
//! 6. move the remote-tracking refs to what was written.
//!
//! What a failed push uploaded (a pack no ref reaches) stays on the remote,
//! harmless, until a remote gc exists.

use super::backend::{Backend, RefRead};
use super::{RemoteHooks, Tracked};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::id::{ObjectId, SnapshotId};
use crate::store::Store;
use crate::store::lock::StoreLock;
use crate::store::pack::PackBuilder;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Instant;

/// What a push did for one plane.
#[derive(Debug, Clone, Serialize)]
pub struct PlanePush {
    /// The plane.
    pub plane: String,
    /// The remote HEAD before (hex), `None` when the remote had none.
    pub head_before: Option<String>,
    /// The remote HEAD after (hex).
    pub head_after: String,
    /// Checkpoint refs created on the remote.
    pub checkpoints_created: Vec<String>,
    /// Whether the plane's ledger copy was uploaded.
    pub ledger_uploaded: bool,
}

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The remote.
    pub remote: String,
    /// Per plane, in the order pushed.
    pub planes: Vec<PlanePush>,
    /// Objects in the uploaded pack (0: nothing was uploaded).
    pub objects: u64,
    /// The uploaded pack's name (hex), if any.
    pub pack: Option<String>,
    /// Bytes uploaded (pack, index and ledger copies).
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl PushReport {
    /// True when the remote already had everything.
    pub fn up_to_date(&self) -> bool {
        self.objects == 0
            && self
                .planes
                .iter()
                .all(|p| p.head_before.as_deref() == Some(p.head_after.as_str()) && p.checkpoints_created.is_empty())
    }
}

/// One plane's plan.
struct Plan {
    plane: String,
    tracked: Tracked,
    remote_head: Option<RefRead>,
    head: SnapshotId,
    ledger: Option<(ObjectId, Vec<u8>)>,
    new_checkpoints: Vec<(String, SnapshotId)>,
}

/// Pushes `planes` (every plane with a HEAD when empty) of `store` to
/// `remote`. See the module documentation for the order.
///
/// # Errors
/// [`Error::RemoteMoved`] when a remote ref is not what the last pull saw
/// (nothing of the push is visible there); [`Error::Remote`] for transport
/// failures; local store damage.
pub fn push(
    store: &Store,
    _lock: &StoreLock,
    remote: &Backend,
    planes: &[String],
    hooks: &dyn RemoteHooks,
    ctl: Control<'_>,
) -> Result<PushReport> {
    let t0 = Instant::now();
    let name = remote.name().to_string();
    if !super::check_format(remote)? {
        // A new remote: `FORMAT` first (create-only, so two first pushes agree).
        remote.swap_ref("FORMAT", None, super::REMOTE_FORMAT.as_bytes())?;
    }
    let planes: Vec<String> = if planes.is_empty() {
        store.config().planes.iter().map(|p| p.name.clone()).collect()
    } else {
        planes.to_vec()
    };
    // 1. What is there, against what the last pull saw.
    ctl.progress.phase("comparing");
    let mut plans = Vec::new();
    for plane in &planes {
        store.plane(plane)?;
        let Some(head) = store.head(plane)? else { continue };
        let tracked = super::tracked(store, &name, plane)?;
        let remote_head = remote.get_ref(&super::head_key(plane))?;
        if remote_head.as_ref().map(|r| &r.bytes) != tracked.head.as_ref() {
            return Err(moved(
                &name,
                format!("{plane}/HEAD"),
                &tracked.head,
                remote_head.as_ref(),
            ));
        }
        let on_remote: HashSet<String> = remote
            .list(&format!("planes/{plane}/checkpoints/"))?
            .into_iter()
            .filter_map(|(k, _)| k.rsplit('/').next().map(str::to_string))
            .collect();
        let mut new_checkpoints = Vec::new();
        for (cp, id) in store.checkpoints(plane)? {
            match tracked.checkpoints.get(&cp) {
                Some(b) if *b == super::ref_bytes(&id, None) => {}
                Some(b) => {
                    return Err(Error::RemoteMoved {
                        remote: name.clone(),
                        what: format!("{plane}/checkpoints/{cp}"),
                        why: format!(
                            "names snapshot {} there, and {} here: two stores sealed checkpoints of one name",
                            String::from_utf8_lossy(b).trim().get(..12).unwrap_or(""),
                            id.short(12)
                        ),
                    });
                }
                None if on_remote.contains(&cp) => {
                    return Err(Error::RemoteMoved {
                        remote: name.clone(),
                        what: format!("{plane}/checkpoints/{cp}"),
                        why: "exists there but was not there when last pulled".into(),
                    });
                }
                None => new_checkpoints.push((cp, id)),
            }
        }
        let ledger_path = crate::ledger::Ledger::of(store, plane).path().to_path_buf();
        let ledger = match std::fs::read(&ledger_path) {
            Ok(b) if !b.is_empty() => Some((ObjectId(*blake3::hash(&b).as_bytes()), b)),
            _ => None,
        };
        // A governed plane has one writer at a time: its ledger must hold
        // the remote's, as last pulled, entry for entry.
        let governed = super::snapshot_is_governed(store, &head)
            || tracked
                .head_id()
                .is_some_and(|t| super::snapshot_is_governed(store, &t));
        if governed && tracked.ledger_id().is_some() {
            let copy_path = super::tracked_ledger_path(store, &name, plane);
            let copy = std::fs::read(&copy_path).unwrap_or_default();
            if tracked.ledger_id() != Some(ObjectId(*blake3::hash(&copy).as_bytes())) {
                return Err(Error::RemoteMoved {
                    remote: name.clone(),
                    what: format!("{plane}/HEAD"),
                    why: format!(
                        "names a ledger copy whose verified copy {} is missing or other",
                        copy_path.display()
                    ),
                });
            }
            let own = ledger.as_ref().map_or(&[][..], |(_, b)| b.as_slice());
            if let Some((from, _)) = super::ledger_divergence(&copy, own) {
                return Err(Error::LedgerDiverged {
                    remote: name.clone(),
                    plane: plane.clone(),
                    from,
                    missing: super::ledger_lines(&copy).saturating_sub(from),
                });
            }
        }
        plans.push(Plan {
            plane: plane.clone(),
            tracked,
            remote_head,
            head,
            ledger,
            new_checkpoints,
        });
    }
    // 2. The objects the remote lacks.
    ctl.progress.phase("walking");
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut ids: Vec<ObjectId> = Vec::new();
    for p in &plans {
        let base_id = p.tracked.head_id();
        let base = base_id.and_then(|b| store.read_snapshot(&b).ok());
        if let Some(b) = base_id {
            seen.insert(b.0);
        }
        let mut news: Vec<SnapshotId> = vec![p.head];
        news.extend(p.new_checkpoints.iter().map(|(_, id)| *id));
        news.sort();
        news.dedup();
        for id in news {
            ctl.check()?;
            if Some(id) == base_id {
                continue;
            }
            let snap = store.read_snapshot(&id)?;
            super::walk::new_objects(store, id, &snap, base.as_ref(), &mut seen, &mut ids)?;
        }
    }
    let work = store.tmp_dir().join(format!("push-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    crate::fsutil::ensure_dir(&work)?;
    let result = (|| {
        let mut bytes = 0u64;
        let mut pack_name = None;
        let mut objects = 0u64;
        if !ids.is_empty() {
            ctl.progress.phase("packing");
            let mut b = PackBuilder::new(&work)?;
            for id in &ids {
                ctl.check()?;
                let (pack, e) = store.locate(id).ok_or_else(|| Error::MissingObject {
                    id: id.to_hex(),
                    kind: "reachable",
                })?;
                b.copy_from(&pack, &e)?;
            }
            objects = b.len() as u64;
            let idx = b.finish(&work)?.expect("a pack with objects");
            let pack = idx.with_extension("pack");
            let pname = idx
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("pack-"))
                .expect("pack-<name>.idx")
                .to_string();
            // 3. Pack, then index: a reader never sees an index without its pack.
            let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
            ctl.progress.phase("uploading");
            ctl.progress.total(objects, size(&pack) + size(&idx));
            ctl.check()?;
            bytes += remote.upload_file(&super::pack_key(&pname, "pack"), &pack, ctl.progress)?;
            hooks.at("pack-uploaded");
            bytes += remote.upload_file(&super::pack_key(&pname, "idx"), &idx, ctl.progress)?;
            hooks.at("index-uploaded");
            pack_name = Some(pname);
        }
        let mut ledgers_uploaded = HashSet::new();
        for p in &plans {
            if let Some((lid, lb)) = &p.ledger
                && p.tracked.ledger_id() != Some(*lid)
            {
                remote.put(&super::ledger_key(&p.plane, lid), lb.clone())?;
                bytes += lb.len() as u64;
                ledgers_uploaded.insert(p.plane.clone());
            }
        }
        Ok((bytes, pack_name, objects, ledgers_uploaded))
    })();
    let _ = std::fs::remove_dir_all(&work);
    let (bytes, pack_name, objects, ledgers_uploaded) = result?;
    // 4 and 5. Refs, each only after everything it names is there.
    ctl.progress.phase("moving refs");
    let mut report = PushReport {
        remote: name.clone(),
        planes: Vec::new(),
        objects,
        pack: pack_name.clone(),
        bytes,
        seconds: 0.0,
    };
    for p in &plans {
        let new_head = super::ref_bytes(&p.head, p.ledger.as_ref().map(|(id, _)| id));
        let before = p
            .remote_head
            .as_ref()
            .and_then(|r| crate::store::refs::parse_remote_ref(&r.bytes));
        if p.remote_head.as_ref().map(|r| &r.bytes) != Some(&new_head) {
            if !remote.swap_ref(&super::head_key(&p.plane), p.remote_head.as_ref(), &new_head)? {
                let now = remote.get_ref(&super::head_key(&p.plane))?;
                return Err(moved(&name, format!("{}/HEAD", p.plane), &p.tracked.head, now.as_ref()));
            }
            hooks.at("head-moved");
        }
        super::set_tracked_head(store, &name, &p.plane, Some(&new_head))?;
        if let Some((lid, lb)) = &p.ledger {
            let _ = lid;
            let path = super::tracked_ledger_path(store, &name, &p.plane);
            crate::fsutil::write_atomic(&path, lb, &store.tmp_dir())?;
        }
        let mut created = Vec::new();
        for (cp, id) in &p.new_checkpoints {
            let bytes = super::ref_bytes(id, None);
            let key = super::checkpoint_key(&p.plane, cp);
            if !remote.swap_ref(&key, None, &bytes)? {
                let there = remote.get_ref(&key)?;
                if there.as_ref().map(|r| r.bytes.as_slice()) != Some(bytes.as_slice()) {
                    return Err(Error::RemoteMoved {
                        remote: name.clone(),
                        what: format!("{}/checkpoints/{cp}", p.plane),
                        why: "was created there by another push meanwhile".into(),
                    });
                }
            }
            super::set_tracked_checkpoint(store, &name, &p.plane, cp, Some(&bytes))?;
            created.push(cp.clone());
        }
        report.planes.push(PlanePush {
            plane: p.plane.clone(),
            head_before: before.map(|(id, _)| id.to_hex()),
            head_after: p.head.to_hex(),
            checkpoints_created: created,
            ledger_uploaded: ledgers_uploaded.contains(&p.plane),
        });
    }
    // 6. This store holds every object of the pack it built.
    if let Some(pname) = &pack_name {
        super::mark_pack(store, &name, pname)?;
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// "The remote moved": `what` is not `tracked` there any more.
fn moved(remote: &str, what: String, tracked: &Option<Vec<u8>>, now: Option<&RefRead>) -> Error {
    let show = |b: Option<&Vec<u8>>| match b.and_then(|b| crate::store::refs::parse_remote_ref(b)) {
        Some((id, _)) => format!("snapshot {}", id.short(12)),
        None => "nothing".to_string(),
    };
    Error::RemoteMoved {
        remote: remote.to_string(),
        what,
        why: format!(
            "is {} there, but the last pull saw {}",
            show(now.map(|r| &r.bytes)),
            show(tracked.as_ref())
        ),
    }
}
