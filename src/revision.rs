//! Resolving user-typed refs to snapshots.
//!
//! Grammar: `[PLANE:]REV[~N]`, where `REV` is `HEAD`, a checkpoint name, or a
//! snapshot id prefix of at least 8 hex digits; `~N` follows first parents N
//! times (`~` alone means `~1`). Without `PLANE:`, names resolve in the
//! current plane; id prefixes match snapshots of any plane.

use crate::error::{Error, Result};
use crate::id::{MIN_PREFIX_LEN_HEX, SnapshotId, is_hex};
use crate::object::{ObjectKind, Snapshot};
use crate::plane::Plane;
use crate::store::Store;

/// A resolved ref.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The plane the snapshot belongs to.
    pub plane: Plane,
    /// The snapshot's id.
    pub id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
}

/// Resolves `spec` with `current` as the default plane.
///
/// # Errors
/// [`Error::RefNotFound`], [`Error::AmbiguousRef`], [`Error::NoSuchPlane`], or store damage.
pub fn resolve(store: &Store, current: &Plane, spec: &str) -> Result<Resolved> {
    let not_found = |why: String| Error::RefNotFound {
        spec: spec.to_string(),
        why,
    };
    let (plane, rest) = match spec.split_once(':') {
        Some((p, r)) => (store.plane(p)?, r),
        None => (current.clone(), spec),
    };
    let (base, steps) = match rest.find('~') {
        Some(i) => {
            let n = &rest[i + 1..];
            let steps = if n.is_empty() {
                1
            } else {
                n.parse::<usize>()
                    .map_err(|_| not_found(format!("`~{n}` is not a number of steps back")))?
            };
            (&rest[..i], steps)
        }
        None => (rest, 0),
    };
    let base = if base.is_empty() { "HEAD" } else { base };
    let mut id = if base == "HEAD" {
        store
            .head(&plane.name)?
            .ok_or_else(|| not_found(format!("plane `{}` has no snapshot yet", plane.name)))?
    } else if let Some(id) = store.checkpoint(&plane.name, base)? {
        id
    } else if is_hex(base) && base.len() >= MIN_PREFIX_LEN_HEX {
        let matches = store.find_prefix(base, Some(ObjectKind::Snapshot));
        match matches.as_slice() {
            [] => return Err(not_found(format!("no snapshot id starts with `{base}`"))),
            [(one, _)] => SnapshotId(*one),
            many => {
                return Err(Error::AmbiguousRef {
                    spec: spec.to_string(),
                    candidates: many.iter().map(|(id, _)| id.to_hex()).collect(),
                });
            }
        }
    } else {
        return Err(not_found(format!(
            "no checkpoint `{base}` in plane `{}`, and it is not a snapshot id prefix of {MIN_PREFIX_LEN_HEX}+ hex digits (see `cplane log`)",
            plane.name
        )));
    };
    let mut snapshot = store.read_snapshot(&id)?;
    for step in 0..steps {
        id = snapshot.parent.ok_or_else(|| {
            not_found(format!(
                "`{base}` has only {step} earlier snapshot{} in plane `{}`",
                if step == 1 { "" } else { "s" },
                plane.name
            ))
        })?;
        snapshot = store.read_snapshot(&id)?;
    }
    let plane = if snapshot.plane == plane.name {
        plane
    } else {
        store.plane(&snapshot.plane)?
    };
    Ok(Resolved { plane, id, snapshot })
}
