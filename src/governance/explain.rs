//! `cplane explain PATH`: one file's whole story in one screen — what it is,
//! who owns it, why it is allowed, which gates apply and how they fare, and
//! the checkpoints in which it last changed.

use super::plane::worktree_view;
use super::{Declaration, Framework, Model, Spec};
use crate::control::Control;
use crate::diff::{Side, TreeSource, lookup_path};
use crate::error::Result;
use crate::finding::Finding;
use crate::id::SnapshotId;
use crate::path::RelPath;
use crate::plane::Plane;
use crate::scope::Scope;
use crate::store::Store;

/// How many changes `explain` lists at most.
pub const MAX_CHANGES: usize = 5;
/// How many snapshots `explain` walks back at most.
pub const MAX_WALK: usize = 10_000;

/// One gate that applies to the file, and its result.
#[derive(Debug, Clone)]
pub struct GateResult {
    /// Framework whose rules define it.
    pub framework: String,
    /// Gate id.
    pub id: String,
    /// Gate kind (`forbidden_content`, `max_size`, ...).
    pub kind: &'static str,
    /// Its findings on this file (empty: it passes).
    pub findings: Vec<Finding>,
}

/// A checkpoint in which the file changed.
#[derive(Debug, Clone)]
pub struct Change {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its checkpoint name.
    pub name: String,
    /// Its seal time, ns since the epoch.
    pub time_unix_ns: i64,
    /// `added`, `modified`, `deleted` or `mode/owner`.
    pub what: &'static str,
}

/// Everything `explain` reports about one path.
#[derive(Debug)]
pub struct Explanation {
    /// The path.
    pub path: RelPath,
    /// The file in the working tree (`None`: not there).
    pub current: Option<Side>,
    /// The file in HEAD.
    pub head: Option<Side>,
    /// True when the plane is governed.
    pub governed: bool,
    /// True when an `exempt` glob leaves it out.
    pub exempt: bool,
    /// Its declarations (two or more: two owners).
    pub declarations: Vec<Declaration>,
    /// The owner's spec.
    pub spec: Option<Spec>,
    /// The spec's framework.
    pub framework: Option<Framework>,
    /// The framework glob that authorizes it.
    pub glob: Option<String>,
    /// Gates that apply, with results.
    pub gates: Vec<GateResult>,
    /// Findings about this path from passes 0, 2 and 3.
    pub findings: Vec<Finding>,
    /// The latest checkpoints that changed it, newest first.
    pub changes: Vec<Change>,
}

/// Explains `path` of `plane`.
///
/// # Errors
/// I/O, store damage, cancellation.
pub fn explain(store: &Store, plane: &Plane, path: &RelPath, ctl: Control<'_>) -> Result<Explanation> {
    let scope = Scope::open(plane)?;
    let report = crate::worktree::status(store, plane, ctl)?;
    let view = worktree_view(store, &scope, &report.scan)?;
    let current = view.files.get(path).copied();
    let src = TreeSource::store(store);
    let head_id = store.head(&plane.name)?;
    let head = match head_id {
        Some(id) => lookup_path(&src, &store.read_snapshot(&id)?.root, path)?.map(|e| Side::from(&e)),
        None => None,
    };
    let changes = history(store, &src, head_id, path)?;
    let exempt = current.is_none()
        && scope
            .exempt()
            .is_some_and(|e| e.matches(path, false) || path.ancestors().iter().any(|d| e.matches(d, true)));
    if current.is_none() && !exempt {
        if !path.is_root() && scope.open_dir(path).is_ok() {
            return Err(crate::error::Error::NoSuchPath {
                path: path.display(),
                what: "the working tree as a file (it is a directory; explain takes a file or symlink)".into(),
            });
        }
        if head.is_none() && changes.is_empty() {
            return Err(crate::error::Error::NoSuchPath {
                path: path.display(),
                what: format!(
                    "plane `{}`: neither in the working tree nor in any checkpoint",
                    plane.name
                ),
            });
        }
    }
    let mut x = Explanation {
        path: path.clone(),
        current,
        head,
        governed: view.is_governed(),
        exempt,
        declarations: Vec::new(),
        spec: None,
        framework: None,
        glob: None,
        gates: Vec::new(),
        findings: Vec::new(),
        changes,
    };
    if !x.governed {
        return Ok(x);
    }
    // Passes 0 and 2, and the gates on this one file only.
    let m = Model::load(&view)?;
    x.exempt = x.exempt || m.exempt.contains(path);
    let mut findings = super::ownership_findings(&m, &view, true)?;
    findings.extend(super::chain_findings(&m, &view));
    findings.extend(super::required_file_findings(&m, &view));
    findings.retain(|f| f.path == *path);
    let plan = super::gate_plan(&m);
    if let Some((p, owner, gates)) = plan.jobs.iter().find(|(p, _, _)| p == path)
        && let Ok(engine) = crate::gate::Engine::new(plan.gates.clone())
    {
        let job = crate::gate::FileJob {
            path: p.clone(),
            owner: owner.clone(),
            gates: gates.clone(),
        };
        findings.extend(engine.run(&scope, std::slice::from_ref(&job), ctl)?.findings);
    }
    x.declarations = m.declared.get(path).map(<[_]>::to_vec).unwrap_or_default();
    if let Some(d) = x.declarations.first() {
        x.spec = m.spec_of(d).cloned();
        x.framework = m.framework_of(d).cloned();
        x.glob = x
            .framework
            .as_ref()
            .and_then(|f| f.authorizing_glob(path))
            .map(str::to_string);
    }
    x.findings = findings;
    if let (Some(spec), Some(fw)) = (&x.spec, &x.framework)
        && let Some(rules) = m.rules.get(&fw.id)
    {
        for id in m.gate_ids(spec) {
            let Some(g) = rules.gate(&id) else { continue };
            let applies = g.paths.is_empty() || super::glob_set(&g.paths).is_ok_and(|s| s.is_match(path.as_os_str()));
            if !applies {
                continue;
            }
            let findings = x
                .findings
                .iter()
                .filter(|f| f.code.pass() == 3 && f.message.contains(&format!("gate {id:?}")))
                .cloned()
                .collect();
            x.gates.push(GateResult {
                framework: fw.id.clone(),
                id,
                kind: g.check.kind_name(),
                findings,
            });
        }
    }
    Ok(x)
}

/// The newest [`MAX_CHANGES`] snapshots from `head` back in which `path` changed.
fn history(store: &Store, src: &TreeSource<'_>, head: Option<SnapshotId>, path: &RelPath) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let retained = match head {
        Some(h) => crate::retention::retained(store, &store.read_snapshot(&h)?.plane)?,
        None => Default::default(),
    };
    let mut cur = head;
    let mut walked = 0;
    while let Some(id) = cur {
        if out.len() >= MAX_CHANGES || walked >= MAX_WALK {
            break;
        }
        walked += 1;
        let s = store.read_snapshot(&id)?;
        let here = lookup_path(src, &s.root, path)?.map(|e| Side::from(&e));
        if crate::retention::pruned_before(store, &retained, &s) {
            // What the pruned parent had is not known: history ends here.
            break;
        }
        let before = match s.parent {
            Some(p) => lookup_path(src, &store.read_snapshot(&p)?.root, path)?.map(|e| Side::from(&e)),
            None => None,
        };
        let what = match (&before, &here) {
            (None, Some(_)) => Some("added"),
            (Some(_), None) => Some("deleted"),
            (Some(a), Some(b)) if a.id != b.id || a.kind != b.kind => Some("modified"),
            (Some(a), Some(b)) if a.meta != b.meta => Some("mode/owner"),
            _ => None,
        };
        if let Some(what) = what {
            out.push(Change {
                id,
                name: s.name.clone(),
                time_unix_ns: s.time_unix_ns,
                what,
            });
        }
        cur = s.parent;
    }
    Ok(out)
}
