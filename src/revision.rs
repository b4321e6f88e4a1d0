//! Resolving user-typed refs to snapshots.
//!
//! Grammar: `[PLANE:]REV[~N]...`, where `REV` is `HEAD`, a checkpoint name, or a
//! snapshot id prefix of at least 8 hex digits; each `~N` follows parents N
//! times (`~` alone means `~1`; `base~1~2` is `base~3`). An empty `REV` is an
//! error, never an implicit HEAD. Without `PLANE:`, names resolve in the
//! current plane; id prefixes match snapshots of any plane.
//!
//! `REMOTE/PLANE/HEAD` and `REMOTE/PLANE/NAME` name remote-tracking refs:
//! the remote's HEAD and checkpoints of PLANE as the last `cplane pull` (or
//! push) saw them (`store-format.md`, "Remotes"). Names never contain `/`,
//! so the forms cannot be confused. Such a ref belongs to plane PLANE:
//! rollback and restore take it only in a plane of that name.

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
    if let Some(r) = resolve_remote(store, current, spec)? {
        return Ok(r);
    }
    let (plane, rest) = match spec.split_once(':') {
        Some((p, r)) => (store.plane(p)?, r),
        None => (current.clone(), spec),
    };
    // `REV~N~M...`: the steps add up; `~` alone is `~1`.
    let mut parts = rest.split('~');
    let base = parts.next().unwrap_or("");
    let mut steps = 0usize;
    for n in parts {
        let step = if n.is_empty() {
            1
        } else {
            n.parse::<usize>()
                .map_err(|_| not_found(format!("`~{n}` is not a number of steps back")))?
        };
        steps = steps
            .checked_add(step)
            .ok_or_else(|| not_found("too many steps back".into()))?;
    }
    if base.is_empty() {
        return Err(not_found(
            "a ref needs a name: HEAD, a checkpoint name or a snapshot id prefix".into(),
        ));
    }
    if base.contains("@{") {
        return Err(not_found(
            "cplane has no reflog syntax (`@{N}`); `cplane log` lists the history, `HEAD~N` walks it".into(),
        ));
    }
    if base.contains('^') || base == "@" {
        return Err(not_found(format!(
            "cplane has no `^` or `@` syntax; write `{}`",
            if base == "@" {
                "HEAD".to_string()
            } else {
                format!("{}~{}", base.trim_end_matches('^'), base.matches('^').count())
            }
        )));
    }
    let mut id = if base == "HEAD" {
        store.head(&plane.name)?.ok_or_else(|| {
            not_found(format!(
                "plane `{}` has no snapshot yet; seal one with `cplane snapshot`",
                plane.name
            ))
        })?
    } else if let Some(id) = store.checkpoint(&plane.name, base)? {
        id
    } else if is_hex(base) && base.len() >= MIN_PREFIX_LEN_HEX {
        let all = store.find_prefix(base, Some(ObjectKind::Snapshot));
        // Snapshots of store format 1, left in the packs by `cplane upgrade`, are not refs.
        let matches: Vec<_> = all
            .iter()
            .filter(|(id, _)| !matches!(store.read_snapshot(&SnapshotId(*id)), Err(Error::LegacyObject { .. })))
            .cloned()
            .collect();
        match matches.as_slice() {
            [] if !all.is_empty() => {
                return Err(not_found(format!(
                    "`{base}` is a snapshot id from before `cplane upgrade` (store format 1); ids changed, checkpoint names did not: `cplane checkpoints` lists them"
                )));
            }
            [] => {
                let other = store.find_prefix(base, None);
                return Err(not_found(match other.first() {
                    Some((_, kind)) => format!(
                        "`{base}` is a {} id, not a snapshot id (`cplane show {base}` shows it)",
                        kind.name()
                    ),
                    None => format!("no snapshot id starts with `{base}`"),
                }));
            }
            [(one, _)] => SnapshotId(*one),
            many => {
                return Err(Error::AmbiguousRef {
                    spec: spec.to_string(),
                    candidates: many.iter().map(|(id, _)| id.to_hex()).collect(),
                });
            }
        }
    } else {
        let names: Vec<String> = store.checkpoints(&plane.name)?.into_iter().map(|(n, _)| n).collect();
        let hint = match closest(base, &names) {
            Some(n) => format!("; did you mean `{n}`?"),
            None => " (`cplane checkpoints` lists them)".into(),
        };
        return Err(not_found(format!(
            "no checkpoint `{base}` in plane `{}`, and it is not a snapshot id prefix of {MIN_PREFIX_LEN_HEX}+ hex digits{hint}",
            plane.name
        )));
    };
    let mut snapshot = store.read_snapshot(&id)?;
    let retained = if steps > 0 {
        crate::retention::retained(store, &snapshot.plane)?
    } else {
        Default::default()
    };
    for step in 0..steps {
        let pruned = crate::retention::pruned_before(store, &retained, &snapshot);
        id = crate::retention::retained_parent(store, &retained, &snapshot).ok_or_else(|| {
            not_found(format!(
                "`{base}` has only {step} earlier snapshot{} in plane `{}`{}",
                if step == 1 { "" } else { "s" },
                plane.name,
                if pruned {
                    format!(": the history before {} was pruned", snapshot.name)
                } else {
                    String::new()
                }
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

/// The name in `names` closest to `typo` by edit distance, if it is close (≤ 2 edits).
fn closest<'a>(typo: &str, names: &'a [String]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    names
        .iter()
        .map(|n| (distance(typo, n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n.as_str())
}

/// Resolves a remote-tracking ref `REMOTE/PLANE/HEAD` or `REMOTE/PLANE/NAME`;
/// `None` when `spec` is not of that form (it has no `/`).
fn resolve_remote(store: &Store, current: &Plane, spec: &str) -> Result<Option<Resolved>> {
    if !spec.contains('/') {
        return Ok(None);
    }
    let not_found = |why: String| Error::RefNotFound {
        spec: spec.to_string(),
        why,
    };
    if spec.contains('~') {
        return Err(not_found(
            "`~N` does not follow remote-tracking refs yet; name the checkpoint (`cplane show REMOTE/PLANE/HEAD` shows its parent)".into(),
        ));
    }
    let parts: Vec<&str> = spec.split('/').collect();
    let [remote, plane, name] = parts.as_slice() else {
        return Err(not_found(
            "a remote-tracking ref is REMOTE/PLANE/HEAD or REMOTE/PLANE/CHECKPOINT".into(),
        ));
    };
    if !store.config().remotes.iter().any(|r| r.name == *remote) {
        return Err(Error::NoSuchRemote {
            name: remote.to_string(),
            known: store.config().remotes.iter().map(|r| r.name.clone()).collect(),
        });
    }
    let Some(id) = store.remote_ref(remote, plane, name)? else {
        return Err(not_found(format!(
            "remote `{remote}` has no {} of plane `{plane}` as last pulled; `cplane pull {remote}` fetches its refs",
            if *name == "HEAD" {
                "HEAD".to_string()
            } else {
                format!("checkpoint `{name}`")
            }
        )));
    };
    let snapshot = store.read_snapshot(&id)?;
    // The ref belongs to the remote plane's name, whether or not this store
    // has a plane of that name: a command that acts on a plane (rollback,
    // restore) refuses another plane's ref as it refuses `PLANE:REF`, while
    // one that only reads (show, cat, diff) reads it against the current
    // plane's root when there is no namesake here.
    let plane = store.plane(plane).unwrap_or_else(|_| Plane {
        name: plane.to_string(),
        ..current.clone()
    });
    Ok(Some(Resolved { plane, id, snapshot }))
}
