//! Changing a governed plane through the tool: `own` (edit ownership rows)
//! and `quarantine` (move unmapped files into the store).

use super::plane::{CompileReport, compile_worktree, read_file, worktree_view, write_file};
use super::{FILE_REGISTRY, Model, OwnerKind, PACKAGES, SPECS};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::object::EntryKind;
use crate::path::RelPath;
use crate::plane::Plane;
use crate::scope::Scope;
use crate::store::Store;
use std::collections::BTreeMap;

/// The governance model of `plane`'s working tree (scanned with the stat
/// cache), and the plane's scope: what `own`, `disown` and `quarantine`
/// start from.
///
/// # Errors
/// [`Error::NotGoverned`]; as [`crate::worktree::status`].
fn worktree_model(store: &Store, plane: &Plane, ctl: Control<'_>) -> Result<(Scope, Model)> {
    let scope = Scope::open(plane)?;
    let report = crate::worktree::status(store, plane, ctl)?;
    let view = worktree_view(store, &scope, &report.scan)?;
    if !view.is_governed() {
        return Err(Error::NotGoverned {
            plane: plane.name.clone(),
        });
    }
    let m = Model::load(&view)?;
    drop(view);
    Ok((scope, m))
}

/// A configuration error naming `path` of `plane`.
fn bad(plane: &Plane, path: &RelPath, reason: impl Into<String>) -> Error {
    Error::BadConfig {
        path: plane.root.join(path.as_os_str()),
        reason: reason.into(),
    }
}

/// The bytes of the registry `reg` now, provided they are the ones the model
/// was read from (the rows to edit are found by line number): a registry
/// edited by hand meanwhile is refused, not patched at the wrong lines.
fn as_loaded(scope: &Scope, m: &Model, reg: &RelPath) -> std::result::Result<Vec<u8>, String> {
    let bytes = read_file(scope, reg).map_err(|e| e.to_string())?;
    match m.files.get(reg) {
        Some(side) if side.id == crate::object::blob_id(&bytes) => Ok(bytes),
        _ => Err("changed while this command ran; run it again".into()),
    }
}

/// One row `own` wrote.
#[derive(Debug, Clone)]
pub struct Owned {
    /// The file.
    pub path: RelPath,
    /// Its previous owner, if it had one.
    pub was: Option<String>,
    /// The `.file_registry.csv` holding the row.
    pub registry: RelPath,
}

/// What `own` did.
#[derive(Debug)]
pub struct OwnReport {
    /// Rows added or changed (files already owned by the owner are not listed).
    pub owned: Vec<Owned>,
    /// Files that already had this owner.
    pub unchanged: usize,
    /// Files under a directory argument left alone because they have another
    /// owner already (naming a file changes its owner; a directory only
    /// gives owners to the files that have none).
    pub kept: usize,
    /// `.file_registry.csv` files created (each owns itself).
    pub created: Vec<RelPath>,
    /// The compile that followed.
    pub compile: CompileReport,
}

fn representable(p: &RelPath) -> bool {
    super::registry::representable(p.as_bytes())
}

/// The text of one `.file_registry.csv` row with the columns in `header`'s order.
fn row_text(header: &[String], file_path: &str, owner: &str, kind: OwnerKind) -> String {
    header
        .iter()
        .map(|c| match c.as_str() {
            "file_path" => file_path,
            "owner_id" => owner,
            _ => kind.as_str(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Pending edits of one registry, by 1-based line: rows whose owner
/// changes, rows removed, rows appended; `create` when the file is new.
#[derive(Default)]
struct Edit {
    replace: BTreeMap<u64, (String, String, OwnerKind)>, // line -> (file_path cell, owner, kind)
    remove: std::collections::BTreeSet<u64>,
    append: Vec<(String, String, OwnerKind)>,
    create: bool,
}

/// Writes `edits` to their registries. Each existing registry must still be
/// the bytes the model read ([`as_loaded`]) and parse; a registry to create
/// must still be absent.
///
/// # Errors
/// [`Error::BadConfig`] naming the registry; I/O errors.
fn write_edits(scope: &Scope, plane: &Plane, m: &Model, edits: &BTreeMap<RelPath, Edit>) -> Result<()> {
    for (reg, edit) in edits {
        let text = if edit.create {
            if read_file(scope, reg).is_ok() {
                return Err(bad(plane, reg, "appeared while this command ran; run it again"));
            }
            "file_path,owner_id,owner_kind\n".to_string()
        } else {
            let bytes = as_loaded(scope, m, reg).map_err(|reason| bad(plane, reg, reason))?;
            String::from_utf8(bytes).map_err(|_| bad(plane, reg, "is not UTF-8"))?
        };
        super::parse_file_registry(text.as_bytes(), reg).map_err(|e| bad(plane, reg, e.to_string()))?;
        let header: Vec<String> = text
            .lines()
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect();
        let mut out = String::with_capacity(text.len() + 64 * edit.append.len());
        for (i, line) in text.lines().enumerate() {
            let n = i as u64 + 1;
            if edit.remove.contains(&n) {
                continue;
            }
            match edit.replace.get(&n) {
                Some((cell, o, k)) => out.push_str(&row_text(&header, cell, o, *k)),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        for (cell, o, k) in &edit.append {
            out.push_str(&row_text(&header, cell, o, *k));
            out.push('\n');
        }
        write_file(scope, reg, out.as_bytes())?;
    }
    Ok(())
}

/// Gives `path` the owner of `like` (a file the tool itself adds to a
/// governed plane, e.g. the trusted-keys registry, owned as the registries
/// next to it are); compiles only when `path` is declared already.
/// `None` when the plane is not governed or `like` has no owner.
///
/// # Errors
/// As [`own`] and [`crate::governance::plane::compile_worktree`].
pub fn own_like(
    store: &Store,
    plane: &Plane,
    path: &RelPath,
    like: &RelPath,
    ctl: Control<'_>,
) -> Result<Option<CompileReport>> {
    let (_, m) = worktree_model(store, plane, ctl)?;
    if m.frameworks.is_empty() && !crate::governance::plane::is_governed(&Scope::open(plane)?) {
        return Ok(None);
    }
    if m.owner(path).is_some() {
        return compile_worktree(store, plane, ctl).map(Some);
    }
    let Some(owner) = m.owner(like).map(|d| d.owner_id.to_string()) else {
        return Ok(None);
    };
    own(store, plane, std::slice::from_ref(path), &owner, ctl).map(|r| Some(r.compile))
}

/// `cplane own PATH... --by OWNER`: gives every file at or below each path
/// the owner `owner` (a spec or package id in the registries). A file that
/// already has a row keeps it, with the owner changed; a file without one
/// gets a row in the nearest `.file_registry.csv` (its directory's, else
/// the closest ancestor's), which is created in the file's directory when
/// there is none at all (owning itself, by the owner of the closest
/// registry above it, or by `owner`). Then compiles.
///
/// # Errors
/// [`Error::NotGoverned`]; [`Error::BadConfig`] for an unknown owner, a path
/// that is not in the plane, or a name a registry cannot hold (comma,
/// quote, line break, non-UTF-8); [`Error::Refused`] from the compile.
pub fn own(store: &Store, plane: &Plane, paths: &[RelPath], owner: &str, ctl: Control<'_>) -> Result<OwnReport> {
    let (m, kind, rows) = own_rows(store, plane, paths, owner, ctl)?;
    let OwnRows {
        owned,
        unchanged,
        kept,
        created,
    } = rows;
    let mut compile = compile_worktree(store, plane, ctl)?;
    // Say at once when the new owner's framework does not authorize a path
    // (pass 2 would, at the next verify or snapshot).
    let probe = super::Declaration {
        owner_id: std::sync::Arc::from(owner),
        owner_kind: kind,
        source: std::sync::Arc::new(RelPath::root()),
        line: 0,
    };
    if let Some(f) = m.framework_of(&probe) {
        for o in &owned {
            if f.authorizing_glob(&o.path).is_none() {
                compile.findings.push(f.not_authorized(&o.path, owner));
            }
        }
    }
    Ok(OwnReport {
        owned,
        unchanged,
        kept,
        created,
        compile,
    })
}

/// The registry rows [`own`] writes, without the compile after them.
#[derive(Debug)]
pub struct OwnRows {
    /// Rows added or changed.
    pub owned: Vec<Owned>,
    /// Files that already had this owner.
    pub unchanged: usize,
    /// Files under a directory argument that kept another owner.
    pub kept: usize,
    /// `.file_registry.csv` files created.
    pub created: Vec<RelPath>,
}

/// [`own`]'s registry edits alone, for a caller that seals right after (an
/// install: its governed seal compiles and checks the whole plane anyway,
/// so a compile here would be done twice). Returns the model the edits
/// were planned from and the owner's kind with the rows.
///
/// # Errors
/// As [`own`], less the compile's.
pub fn own_rows(
    store: &Store,
    plane: &Plane,
    paths: &[RelPath],
    owner: &str,
    ctl: Control<'_>,
) -> Result<(Model, OwnerKind, OwnRows)> {
    let (scope, m) = worktree_model(store, plane, ctl)?;
    crate::trace::phase("own: status scan, model");
    let bad = |path: &RelPath, reason: String| bad(plane, path, reason);
    let kind = if m.specs.contains_key(owner) {
        OwnerKind::Spec
    } else if m.packages.contains_key(owner) {
        OwnerKind::Package
    } else {
        let registry = if owner.starts_with("PKG-") { PACKAGES } else { SPECS };
        return Err(bad(
            &RelPath::parse(registry.as_bytes()).unwrap_or_else(RelPath::root),
            format!(
                "has no owner {owner:?}; give an existing spec or package id (cplane explain shows a file's owner)"
            ),
        ));
    };
    // A file named is owned (or re-owned); a directory gives an owner to every
    // file below it that has none (its .file_registry.csv files excepted).
    let mut targets: Vec<RelPath> = Vec::new();
    let mut kept = 0;
    for p in paths {
        if m.files.contains_key(p) {
            targets.push(p.clone());
            continue;
        }
        let below: Vec<&RelPath> = m.files.keys().filter(|f| f.starts_with(p) && *f != p).collect();
        if below.is_empty() {
            return Err(bad(
                p,
                "is not a file of the plane (or a directory holding some); nothing to own".into(),
            ));
        }
        for f in below {
            if f.file_name() == Some(FILE_REGISTRY.as_bytes()) {
                continue;
            }
            match m.owner(f) {
                Some(d) if *d.owner_id != *owner => kept += 1,
                _ => targets.push(f.clone()),
            }
        }
    }
    if let Some((p, d)) = targets
        .iter()
        .find_map(|p| m.declared.get(p).filter(|d| d.len() > 1).map(|d| (p, d)))
    {
        let rows: Vec<String> = d.iter().map(|d| format!("{}:{}", d.source.display(), d.line)).collect();
        return Err(bad(
            p,
            format!(
                "has two owners ({}); remove all but one row first, then own it",
                rows.join(", ")
            ),
        ));
    }
    targets.sort();
    targets.dedup();
    if let Some(p) = targets.iter().find(|p| !representable(p)) {
        return Err(bad(
            p,
            "has a comma, quote, line break or non-UTF-8 byte in its name, which a registry cannot hold; rename it"
                .into(),
        ));
    }
    let registries: std::collections::BTreeSet<RelPath> = m
        .files
        .keys()
        .filter(|p| p.file_name() == Some(FILE_REGISTRY.as_bytes()))
        .cloned()
        .collect();
    let nearest = |p: &RelPath| -> Option<RelPath> {
        let mut dir = p.parent();
        while let Some(d) = dir {
            let r = d.join(FILE_REGISTRY.as_bytes());
            if registries.contains(&r) {
                return Some(r);
            }
            dir = d.parent();
        }
        None
    };
    let mut edits: BTreeMap<RelPath, Edit> = BTreeMap::new();
    let mut created: Vec<RelPath> = Vec::new();
    let mut owned = Vec::new();
    let mut unchanged = 0;
    for p in &targets {
        if let Some(d) = m.owner(p) {
            if *d.owner_id == *owner && d.owner_kind == kind {
                unchanged += 1;
                continue;
            }
            let dir = d.source.parent().unwrap_or_else(RelPath::root);
            let cell = p.strip_prefix(&dir).map(|r| r.display()).unwrap_or_else(|| p.display());
            edits
                .entry((*d.source).clone())
                .or_default()
                .replace
                .insert(d.line, (cell, owner.to_string(), kind));
            owned.push(Owned {
                path: p.clone(),
                was: Some(d.owner_id.to_string()),
                registry: (*d.source).clone(),
            });
            continue;
        }
        let reg = match nearest(p) {
            Some(r) => r,
            None => {
                let r = p.parent().unwrap_or_else(RelPath::root).join(FILE_REGISTRY.as_bytes());
                if !created.contains(&r) {
                    created.push(r.clone());
                }
                r
            }
        };
        let dir = reg.parent().unwrap_or_else(RelPath::root);
        let cell = p.strip_prefix(&dir).map(|r| r.display()).unwrap_or_else(|| p.display());
        edits
            .entry(reg.clone())
            .or_default()
            .append
            .push((cell, owner.to_string(), kind));
        owned.push(Owned {
            path: p.clone(),
            was: None,
            registry: reg,
        });
    }
    // A created registry owns itself, by whoever owns the registries above it.
    for reg in &created {
        let (self_owner, self_kind) = nearest(reg)
            .and_then(|above| m.owner(&above).map(|d| (d.owner_id.to_string(), d.owner_kind)))
            .or_else(|| {
                m.specs
                    .contains_key("SPEC-000")
                    .then(|| ("SPEC-000".to_string(), OwnerKind::Spec))
            })
            .unwrap_or((owner.to_string(), kind));
        let edit = edits.entry(reg.clone()).or_default();
        edit.create = true;
        edit.append
            .insert(0, (FILE_REGISTRY.to_string(), self_owner, self_kind));
    }
    write_edits(&scope, plane, &m, &edits)?;
    Ok((
        m,
        kind,
        OwnRows {
            owned,
            unchanged,
            kept,
            created,
        },
    ))
}

/// What `quarantine` did.
#[derive(Debug)]
pub struct QuarantineReport {
    /// The checkpoint holding the state before, unmapped files included.
    pub checkpoint: Option<(crate::id::SnapshotId, String)>,
    /// Files moved out of the plane.
    pub moved: Vec<RelPath>,
    /// Unmapped files left because they changed after they were sealed.
    pub changed_meanwhile: Vec<RelPath>,
}

/// `cplane quarantine`: seals the plane as it is (unmapped files included)
/// as a checkpoint `QUARANTINE-…` that HEAD does not move to, then removes
/// every unmapped file (CP001) whose bytes still match what was sealed, and
/// directories left empty that HEAD does not have. `cplane restore
/// QUARANTINE-… PATH…` brings any of them back.
///
/// # Errors
/// [`Error::NotGoverned`]; as [`crate::snapshot::seal`]; I/O errors.
pub fn quarantine(
    store: &mut Store,
    lock: &crate::store::lock::StoreLock,
    plane: &Plane,
    ctl: Control<'_>,
) -> Result<QuarantineReport> {
    let unmapped: Vec<RelPath>;
    let scope = {
        let (scope, m) = worktree_model(store, plane, ctl)?;
        unmapped = m
            .files
            .keys()
            .filter(|p| !m.declared.contains_key(p))
            .cloned()
            .collect();
        scope
    };
    if unmapped.is_empty() {
        return Ok(QuarantineReport {
            checkpoint: None,
            moved: Vec::new(),
            changed_meanwhile: Vec::new(),
        });
    }
    let opts = crate::snapshot::SealOptions {
        prefix: "QUARANTINE",
        message: format!("quarantine: {} unmapped files", unmapped.len()),
        kind: crate::object::SnapshotKind::Rescue,
        move_head: false,
        save_cache: false,
        ..crate::snapshot::SealOptions::default()
    };
    let sealed = crate::snapshot::seal(store, lock, plane, opts, ctl).map_err(|e| e.refused_as("quarantine"))?;
    let src = crate::diff::TreeSource::store(store);
    let head = store
        .head(&plane.name)?
        .map(|id| store.read_snapshot(&id))
        .transpose()?;
    let mut moved = Vec::new();
    let mut changed_meanwhile = Vec::new();
    for p in &unmapped {
        let sealed_entry = crate::diff::lookup_path(&src, &sealed.snapshot.root, p)?;
        let dir = scope
            .open_dir(&p.parent().unwrap_or_else(RelPath::root))
            .map_err(|e| scope.io_error(p, e))?;
        let name = p.file_name().unwrap_or_default();
        let now = match &sealed_entry {
            Some(e) if e.kind == EntryKind::Symlink => dir.read_link(name).ok().map(|t| crate::object::blob_id(&t)),
            Some(_) => crate::hash::hash_file(&dir, name, &scope.shown(p), None)
                .ok()
                .map(|(id, _)| id),
            None => None,
        };
        match (&sealed_entry, now) {
            // The stored copy must read back intact (a blob the seal trusted from
            // the stat cache or found already stored is otherwise never re-read).
            (Some(e), Some(id)) if e.id == id && crate::checkout::verify_blob(store, &e.id).is_ok() => {
                dir.unlink(name).map_err(|e| scope.io_error(p, e))?;
                moved.push(p.clone());
            }
            _ => changed_meanwhile.push(p.clone()),
        }
    }
    // Directories the quarantine emptied, deepest first, unless HEAD has them.
    let mut dirs: Vec<RelPath> = moved
        .iter()
        .flat_map(|p| p.ancestors())
        .filter(|d| !d.is_root())
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.depth()));
    dirs.dedup();
    for d in dirs {
        let in_head = match &head {
            Some(h) => crate::diff::lookup_path(&src, &h.root, &d)?.is_some(),
            None => false,
        };
        if !in_head
            && let (Some(parent), Some(name)) = (d.parent(), d.file_name())
            && let Ok(pd) = scope.open_dir(&parent)
        {
            let _ = pd.rmdir(name);
        }
    }
    Ok(QuarantineReport {
        checkpoint: Some((sealed.id, sealed.snapshot.name)),
        moved,
        changed_meanwhile,
    })
}

/// What `disown` did.
#[derive(Debug)]
pub struct DisownReport {
    /// Rows removed: (declared path, its owner, the registry that held the row).
    pub removed: Vec<(RelPath, String, RelPath)>,
    /// The compile that followed.
    pub compile: CompileReport,
}

/// `cplane disown PATH...`: removes every row that declares PATH, or a path
/// below it (the file may be gone: that is what it is for, after an `rm`),
/// from whichever `.file_registry.csv` holds it; the rows of the
/// `.file_registry.csv` files themselves are kept unless one is named.
/// Then compiles.
///
/// # Errors
/// [`Error::NotGoverned`]; [`Error::BadConfig`] for a path no row declares
/// or a registry that does not parse; [`Error::Refused`] from the compile.
pub fn disown(store: &Store, plane: &Plane, paths: &[RelPath], ctl: Control<'_>) -> Result<DisownReport> {
    let (scope, m) = worktree_model(store, plane, ctl)?;
    let mut edits: BTreeMap<RelPath, Edit> = BTreeMap::new();
    let mut removed = Vec::new();
    for p in paths {
        let mut any = false;
        for (declared, decls) in m.declared.iter() {
            let named = declared == p;
            let below = declared.starts_with(p) && declared.file_name() != Some(FILE_REGISTRY.as_bytes());
            if !(named || below) {
                continue;
            }
            any = true;
            for d in decls {
                if edits.entry((*d.source).clone()).or_default().remove.insert(d.line) {
                    removed.push((declared.clone(), d.owner_id.to_string(), (*d.source).clone()));
                }
            }
        }
        if !any {
            return Err(bad(
                plane,
                p,
                "no .file_registry.csv row declares it (or anything below it)",
            ));
        }
    }
    write_edits(&scope, plane, &m, &edits)?;
    let compile = compile_worktree(store, plane, ctl)?;
    Ok(DisownReport { removed, compile })
}
