//! Governance on a plane's working tree: the governed `verify` (passes 0–3),
//! `compile`, and the checks `snapshot` runs before and after it seals.

use super::{COMPILED, Model, View, chain_findings, compile, ownership_findings, required_file_findings};
use crate::control::Control;
use crate::diff::{Side, TreeSource};
use crate::error::{Error, Result};
use crate::finding::{Code, Finding};
use crate::id::{ObjectId, TreeId};
use crate::object::EntryKind;
use crate::path::RelPath;
use crate::plane::Plane;
use crate::scan::ScanResult;
use crate::scope::{STAGING_NAME, Scope};
use crate::store::Store;
use std::io::{Read, Write};

/// Names of the four passes, by number.
pub const PASS_NAMES: [&str; 4] = ["ownership", "content", "chain", "gates"];

/// Reads the governance file `rel` of the plane (a registry, a rules file,
/// the compiled registry), never through a symlink, and never more than
/// [`super::registry::MAX_FILE`] bytes: a huge file planted where a
/// registry belongs is refused by name, not loaded.
///
/// # Errors
/// I/O errors naming the path; [`Error::BadConfig`] for a file over the limit.
pub fn read_file(scope: &Scope, rel: &RelPath) -> Result<Vec<u8>> {
    let parent = rel.parent().unwrap_or_else(RelPath::root);
    let name = rel.file_name().unwrap_or_default();
    let max = super::registry::MAX_FILE as u64;
    let mut out = Vec::new();
    scope
        .open_dir(&parent)
        .and_then(|d| d.open_file(name))
        .and_then(|f| f.take(max + 1).read_to_end(&mut out))
        .map_err(|e| scope.io_error(rel, e))?;
    if out.len() as u64 > max {
        return Err(too_large(scope, rel));
    }
    Ok(out)
}

fn too_large(scope: &Scope, rel: &RelPath) -> Error {
    Error::BadConfig {
        path: scope.shown(rel),
        reason: format!(
            "larger than {} MiB, the most a registry or rules file may hold; remove it or move it out of the plane",
            super::registry::MAX_FILE >> 20
        ),
    }
}

/// Replaces (or creates) the regular file `rel` of the plane with `bytes`:
/// written to the reserved staging name, fsynced, then renamed over the
/// old file, whose permission bits it keeps (0644 for a new file). The
/// parent directory must exist.
///
/// # Errors
/// I/O errors, naming the path.
pub fn write_file(scope: &Scope, rel: &RelPath, bytes: &[u8]) -> Result<()> {
    let parent = rel.parent().unwrap_or_else(RelPath::root);
    let name = rel.file_name().unwrap_or_default();
    let io = |e| scope.io_error(rel, e);
    let dir = scope.open_dir(&parent).map_err(io)?;
    // The bits of a regular file it replaces; never a symlink's 0777, never
    // group- or world-writable.
    let mode = match dir.stat(name) {
        Ok(st) if crate::fsys::EntryType::from_mode(st.st_mode as u32) == crate::fsys::EntryType::File => {
            st.st_mode as u32 & 0o7777 & !0o022
        }
        Ok(_) => 0o644,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0o644,
        Err(e) => return Err(io(e)),
    };
    let _ = dir.unlink(STAGING_NAME);
    let mut f = dir.create_new(STAGING_NAME, mode).map_err(io)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| crate::fsys::fchmod(&f, mode))
        .and_then(|()| f.sync_all())
        .and_then(|()| dir.rename(STAGING_NAME, &dir, name))
        .and_then(|()| dir.sync());
    if let Err(e) = written {
        let _ = dir.unlink(STAGING_NAME);
        return Err(io(e));
    }
    Ok(())
}

/// True when the plane's working tree has the frameworks registry (one
/// `fstatat`; what every command asks before it pays for governance).
pub fn is_governed(scope: &Scope) -> bool {
    is_plane_file(
        scope,
        &RelPath::parse(super::FRAMEWORKS.as_bytes()).expect("constant path"),
    )
}

/// True when `rel` is a regular file of the plane (one `fstatat`, no symlink followed).
/// True when `rel` is a regular file of the plane (not through a symlink).
pub fn is_plane_file(scope: &Scope, rel: &RelPath) -> bool {
    scope
        .open_dir(&rel.parent().unwrap_or_else(RelPath::root))
        .and_then(|d| d.stat(rel.file_name().unwrap_or_default()))
        .is_ok_and(|st| crate::fsys::EntryType::from_mode(st.st_mode as u32) == crate::fsys::EntryType::File)
}

/// The compiled exempt globs of a governed plane's working tree, if any.
/// A command opens its plane's scope several times; the rules files are
/// read each time, but parsed and compiled once per process for the same
/// bytes (a plane can exempt thousands of exact paths).
pub fn exempt(scope: &Scope) -> Option<std::sync::Arc<crate::scope::Exempt>> {
    type Cache = std::sync::Mutex<std::collections::HashMap<ObjectId, Option<std::sync::Arc<crate::scope::Exempt>>>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    if !is_governed(scope) {
        return None;
    }
    let files: Vec<(RelPath, Vec<u8>)> = rules_paths(scope)
        .into_iter()
        .filter_map(|rel| read_file(scope, &rel).ok().map(|b| (rel, b)))
        .collect();
    let mut key = blake3::Hasher::new();
    for (rel, bytes) in &files {
        key.update(rel.as_bytes())
            .update(&[0])
            .update(&(bytes.len() as u64).to_le_bytes())
            .update(bytes);
    }
    let key = ObjectId(*key.finalize().as_bytes());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let mut globs = Vec::new();
    for (rel, bytes) in &files {
        if let Ok(rules) = crate::gate::Rules::parse(bytes, &rel.display()) {
            globs.extend(rules.exempt);
        }
    }
    globs.sort();
    globs.dedup();
    let compiled = (!globs.is_empty())
        .then(|| crate::scope::Exempt::new(globs).ok().map(std::sync::Arc::new))
        .flatten();
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, compiled.clone());
    compiled
}

/// True when the stored tree `root` is governed (its frameworks registry is
/// a file, as [`View::is_governed`] says), found by reading only the trees on
/// that path rather than the whole tree.
///
/// # Errors
/// Store damage.
pub fn tree_is_governed(store: &Store, root: &TreeId) -> Result<bool> {
    let at = RelPath::parse(super::FRAMEWORKS.as_bytes()).expect("constant path");
    let found = crate::diff::lookup_path(&TreeSource::store(store), root, &at)?;
    Ok(found.is_some_and(|e| e.kind == EntryKind::File))
}

/// The rules files the working tree's frameworks registry names (empty when
/// it cannot be read or does not parse: the passes then say why).
fn rules_paths(scope: &Scope) -> Vec<RelPath> {
    let at = RelPath::parse(super::FRAMEWORKS.as_bytes()).expect("constant path");
    let Ok(bytes) = read_file(scope, &at) else {
        return Vec::new();
    };
    let Ok(t) = super::registry::Table::parse(&bytes, super::FRAMEWORKS, &super::FRAMEWORK_COLUMNS, &["rules_path"])
    else {
        return Vec::new();
    };
    t.rows()
        .filter_map(|r| RelPath::parse(r.get("rules_path").as_bytes()))
        .filter(|p| !p.is_root())
        .collect()
}

/// A view of a scanned working tree (its trees held in memory by the scan).
///
/// # Errors
/// Store damage while loading trees the scan took from the store.
pub fn worktree_view<'a>(store: &'a Store, scope: &'a Scope, scan: &'a ScanResult) -> Result<View<'a>> {
    let src = TreeSource::with_overlay(store, &scan.trees);
    View::of_tree(&src, &scan.root, move |rel, _| read_file(scope, rel))
}

/// The verified bytes of a blob, whatever its size: a blob stored by
/// streaming (8 MiB and more, as a large compiled registry is) has no
/// in-memory frame size, so it is read through the streaming reader.
///
/// # Errors
/// Store damage.
pub fn read_blob(store: &Store, id: &ObjectId) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    store.read_blob_to(id, &mut out, std::path::Path::new("(memory)"))?;
    Ok(out)
}

/// A view of a tree in the store, reading blobs from the store.
///
/// # Errors
/// Store damage while loading trees.
pub fn stored_view<'a>(store: &'a Store, root: &TreeId) -> Result<View<'a>> {
    View::of_tree(&TreeSource::store(store), root, move |rel, side: &Side| {
        if side.size > super::registry::MAX_FILE as u64 {
            return Err(Error::BadConfig {
                path: std::path::PathBuf::from(rel.display()),
                reason: format!(
                    "is {} bytes in the snapshot, more than a registry or rules file may hold",
                    side.size
                ),
            });
        }
        read_blob(store, &side.id)
    })
}

/// The result of the governed passes on one state.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Findings of each pass, by number; `None` for a pass that did not run.
    pub passes: [Option<Vec<Finding>>; 4],
    /// Files left out as exempt.
    pub exempt: Vec<RelPath>,
    /// Files a content gate skipped as binary.
    pub binary_skipped: Vec<RelPath>,
    /// Files with an owner.
    pub owned: usize,
    /// Per pass: why it could not check everything (a registry or rules file
    /// that did not load), when so; its "ok" is then partial.
    pub incomplete: [Option<String>; 4],
}

impl PassReport {
    /// Every finding of the passes that ran, in pass order.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.passes.iter().flatten().flatten()
    }

    /// True when no pass that ran has a finding.
    pub fn is_clean(&self) -> bool {
        self.findings().next().is_none()
    }

    /// The first pass with findings.
    pub fn first_failed(&self) -> Option<usize> {
        self.passes
            .iter()
            .position(|p| p.as_ref().is_some_and(|f| !f.is_empty()))
    }
}

/// Pass 3 on the working tree: the per-spec required files, and every
/// per-file gate on every owned file it applies to. With `fused` (the gates
/// a governed `verify` ran on the bytes it hashed), a file whose gates the
/// scan already checked — same owner, same gates — is not read again; the
/// rest go through one [`crate::gate::Engine::run`]. Returns the findings
/// and the files the content gates skipped as binary.
///
/// # Errors
/// I/O and cancellation.
pub fn gate_findings(
    m: &Model,
    view: &View<'_>,
    scope: &Scope,
    fused: Option<&FusedGates>,
    ctl: Control<'_>,
) -> Result<(Vec<Finding>, Vec<RelPath>)> {
    gate_findings_for(m, view, scope, fused, None, None, ctl)
}

/// [`gate_findings`], running the per-file gates only on the files in
/// `only` when it is given (the required files are checked in full), with
/// `engine` when it was built for the same gates (an install's, kept for
/// its seal) instead of compiling them again.
///
/// # Errors
/// I/O and cancellation.
pub fn gate_findings_for(
    m: &Model,
    view: &View<'_>,
    scope: &Scope,
    fused: Option<&FusedGates>,
    engine: Option<&crate::gate::Engine>,
    only: Option<&std::collections::HashSet<RelPath>>,
    ctl: Control<'_>,
) -> Result<(Vec<Finding>, Vec<RelPath>)> {
    let mut out = required_file_findings(m, view);
    let (gates, by_spec) = super::spec_gates(m);
    let mut binary = Vec::new();
    let fused = fused.filter(|f| f.engine.gates() == gates.as_slice());
    let mut found: std::collections::HashMap<usize, (Vec<Finding>, bool)> = match fused {
        Some(f) => std::mem::take(&mut *f.found.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .map(|(pos, fs, bin)| (pos, (fs, bin)))
            .collect(),
        None => Default::default(),
    };
    let mut todo: Vec<crate::gate::FileJob> = Vec::new();
    // The gates of each owner, looked up once per owner rather than per file.
    let mut gates_of: std::collections::HashMap<(&str, super::OwnerKind), Option<&Vec<usize>>> =
        std::collections::HashMap::new();
    // The fused plan's rows are sorted by path too: walked alongside.
    let mut row = 0;
    for (path, decls, _) in super::owned(&m.declared, &m.files) {
        if only.is_some_and(|o| !o.contains(path)) {
            continue;
        }
        let d = &decls[0];
        let Some(ids) = *gates_of.entry((&d.owner_id, d.owner_kind)).or_insert_with(|| {
            m.spec_of(d)
                .and_then(|s| by_spec.get(&s.id))
                .filter(|ids| !ids.is_empty())
        }) else {
            continue;
        };
        if let Some(f) = fused
            && let Some(pos) = f.seek(&mut row, path)
            && f.handled[pos].load(std::sync::atomic::Ordering::Relaxed)
            && f.owner_of(pos)
                .is_some_and(|(o, g)| *o == *d.owner_id && g == ids.as_slice())
        {
            if let Some((fs, bin)) = found.remove(&pos) {
                out.extend(fs);
                if bin {
                    binary.push(path.clone());
                }
            }
            continue;
        }
        todo.push(crate::gate::FileJob {
            path: path.clone(),
            owner: d.owner_id.to_string(),
            gates: ids.clone(),
        });
    }
    if !todo.is_empty() {
        let built;
        let engine = match fused
            .map(|f| &f.engine)
            .or(engine.filter(|e| e.gates() == gates.as_slice()))
        {
            Some(e) => Some(e),
            // Rules files were validated when loaded, so the engine compiles; a
            // failure here would be a bug in that validation, reported as CP209.
            None => match crate::gate::Engine::new(gates) {
                Ok(e) => {
                    built = e;
                    Some(&built)
                }
                Err(msg) => {
                    out.push(Finding::new(Code::BadRules, RelPath::root(), msg));
                    None
                }
            },
        };
        if let Some(engine) = engine {
            let r = engine.run(scope, &todo, ctl)?;
            out.extend(r.findings);
            binary.extend(r.binary_skipped);
        }
    }
    super::sort(&mut out);
    binary.sort();
    Ok((out, binary))
}

/// The content gates a governed `verify` runs while it hashes: planned from
/// the compiled ownership registry and the registries on disk before the
/// scan, then fed each file's bytes as the scan reads them
/// ([`crate::scan::ContentHook`]). [`gate_findings`] uses what it found for
/// every file whose owner and gates turn out the same in the full model,
/// and reads the others itself.
pub struct FusedGates {
    engine: crate::gate::Engine,
    /// The compiled registry as read before the scan.
    table: super::registry::Table,
    /// Its rows sorted by path bytes (indices into `table`).
    order: Vec<u32>,
    /// The `path` column of `table`.
    path_col: usize,
    /// Per sorted row: its owner's index in `owners`, or `u32::MAX` when no gate applies.
    owner: Vec<u32>,
    /// Owners with gates: (owner id, gate indices into the engine).
    owners: Vec<(String, Vec<usize>)>,
    /// Per sorted row: the scan showed the file's bytes and its gates ran.
    handled: Vec<std::sync::atomic::AtomicBool>,
    /// What they found, for the rows that found anything or were binary: (sorted row, findings, binary).
    found: std::sync::Mutex<Vec<(usize, Vec<Finding>, bool)>>,
    /// Every `.file_registry.csv` the scan read, parsed from the bytes it hashed.
    registries: RegistryHook,
}

/// Parses every `.file_registry.csv` from the bytes a scan hashes, so the
/// model does not read them again ([`Model::load_with`]).
#[derive(Default)]
pub struct RegistryHook {
    parsed: std::sync::Mutex<super::Parsed>,
}

impl RegistryHook {
    fn see(&self, rel: &RelPath, bytes: &[u8]) {
        if rel.file_name() == Some(super::FILE_REGISTRY.as_bytes()) {
            let t = super::parse_file_registry(bytes, rel);
            self.parsed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(rel.clone(), t);
        }
    }

    /// The tables parsed so far (taken: the hook is left empty).
    pub fn take(&self) -> super::Parsed {
        std::mem::take(&mut *self.parsed.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl crate::scan::ContentHook for RegistryHook {
    fn wants(&self, rel: &RelPath) -> bool {
        rel.file_name() == Some(super::FILE_REGISTRY.as_bytes())
    }

    fn content(&self, rel: &RelPath, bytes: &[u8], _id: &ObjectId) {
        self.see(rel, bytes);
    }
}

impl FusedGates {
    /// The sorted row of `path`, if the compiled registry lists it.
    fn find(&self, path: &RelPath) -> Option<usize> {
        self.order
            .binary_search_by(|&r| {
                self.table
                    .cell(r as usize, self.path_col)
                    .as_bytes()
                    .cmp(path.as_bytes())
            })
            .ok()
    }

    /// [`FusedGates::find`] for paths asked in increasing order: `row` is
    /// where the previous search ended (start at 0), moved forward past
    /// every row before `path`.
    fn seek(&self, row: &mut usize, path: &RelPath) -> Option<usize> {
        while *row < self.order.len() && self.path_at(*row) < path.as_bytes() {
            *row += 1;
        }
        (*row < self.order.len() && self.path_at(*row) == path.as_bytes()).then_some(*row)
    }

    fn path_at(&self, pos: usize) -> &[u8] {
        self.table.cell(self.order[pos] as usize, self.path_col).as_bytes()
    }

    /// The owner and gates planned for sorted row `pos`.
    fn owner_of(&self, pos: usize) -> Option<(&str, &[usize])> {
        self.owners
            .get(self.owner[pos] as usize)
            .map(|(o, g)| (o.as_str(), g.as_slice()))
    }
}

impl crate::scan::ContentHook for FusedGates {
    /// Every file: its row is looked up once, in [`FusedGates::content`]
    /// (a second search here would double the cost per file).
    fn wants(&self, _rel: &RelPath) -> bool {
        true
    }

    fn content(&self, rel: &RelPath, bytes: &[u8], _id: &ObjectId) {
        self.registries.see(rel, bytes);
        let Some(pos) = self.find(rel) else { return };
        let Some((owner, gates)) = self.owner_of(pos) else {
            return;
        };
        let job = crate::gate::FileJob {
            path: rel.clone(),
            owner: owner.to_string(),
            gates: gates.to_vec(),
        };
        if let Ok((found, binary)) = self.engine.check_bytes(&job, bytes) {
            if !found.is_empty() || binary {
                self.found
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((pos, found, binary));
            }
            self.handled[pos].store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl FusedGates {
    /// Plans the gates of a governed plane from its registries, rules files
    /// and compiled ownership registry as they are on disk; `None` when any
    /// of them cannot be read (the ordinary gate pass then does all the work).
    pub fn plan(scope: &Scope) -> Option<FusedGates> {
        use super::{COMPILED, FRAMEWORKS, PACKAGES, SPECS};
        let side = Side {
            kind: EntryKind::File,
            id: ObjectId([0; 32]),
            size: 0,
            meta: crate::object::Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        };
        let rel = |p: &str| RelPath::parse(p.as_bytes());
        // Only files that exist: a missing optional registry or rules file must
        // not stop the plan (the passes report it).
        let is_file = |p: &RelPath| is_plane_file(scope, p);
        let files: std::collections::BTreeMap<RelPath, Side> = [FRAMEWORKS, SPECS, PACKAGES]
            .iter()
            .filter_map(|p| rel(p))
            .chain(rules_paths(scope))
            .filter(|p| is_file(p))
            .map(|p| (p, side))
            .collect();
        let view = View::of_files(files, |rel, _| read_file(scope, rel));
        let m = Model::load(&view).ok()?;
        let (gates, by_spec) = super::spec_gates(&m);
        // The gates' regexes compile on another core while the compiled
        // registry is read and parsed.
        let engine = std::thread::spawn(move || crate::gate::Engine::new(gates));
        let compiled = read_file(scope, &rel(COMPILED)?).ok()?;
        let table =
            super::registry::Table::parse(&compiled, COMPILED, &["path", "owner_id", "owner_kind", "blake3"], &[])
                .ok()?;
        let path_col = table.column("path")?;
        let mut order: Vec<u32> = (0..table.len() as u32).collect();
        order.sort_by(|&a, &b| {
            table
                .cell(a as usize, path_col)
                .as_bytes()
                .cmp(table.cell(b as usize, path_col).as_bytes())
        });
        let mut owners: Vec<(String, Vec<usize>)> = Vec::new();
        let mut owner_index: std::collections::HashMap<(&str, &str), u32> = std::collections::HashMap::new();
        let mut owner = Vec::with_capacity(order.len());
        for &r in &order {
            let row = table.row(r as usize);
            let key = (row.get("owner_id"), row.get("owner_kind"));
            let idx = *owner_index.entry(key).or_insert_with(|| {
                let d = super::Declaration {
                    owner_id: key.0.into(),
                    owner_kind: super::OwnerKind::parse(key.1).unwrap_or(super::OwnerKind::Spec),
                    source: RelPath::root().into(),
                    line: 0,
                };
                match super::OwnerKind::parse(key.1)
                    .and_then(|_| m.spec_of(&d))
                    .and_then(|s| by_spec.get(&s.id))
                    .filter(|g| !g.is_empty())
                {
                    Some(g) => {
                        owners.push((key.0.to_string(), g.clone()));
                        (owners.len() - 1) as u32
                    }
                    None => u32::MAX,
                }
            });
            owner.push(idx);
        }
        drop(owner_index);
        let engine = engine.join().ok()?.ok()?;
        let handled = (0..order.len())
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect();
        Some(FusedGates {
            engine,
            table,
            order,
            path_col,
            owner,
            owners,
            handled,
            found: Default::default(),
            registries: RegistryHook::default(),
        })
    }
}

/// Pass 1's package check: every file an installed package owns must be
/// exactly as its manifest says (BLAKE3 and mode), whatever HEAD holds —
/// a package's files change only through the package, so a hand edit fails
/// even after a snapshot sealed it. The manifests are the blobs install
/// stored (the packages registry's `manifest_digest`).
///
/// # Errors
/// Store damage reading a manifest blob.
pub fn package_findings(store: &Store, m: &Model, view: &View<'_>) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    for p in m.packages.values().filter(|p| p.status == "installed") {
        let Some(digest) = ObjectId::from_hex(&p.manifest_digest) else {
            continue;
        };
        if !store.contains(&digest) {
            out.push(
                Finding::new(
                    Code::PackageFileChanged,
                    RelPath::parse(super::PACKAGES.as_bytes()).unwrap_or_else(RelPath::root),
                    format!(
                        "the manifest of installed package {} is not in the store: its files cannot be checked",
                        p.id
                    ),
                )
                .owned_by(&p.id),
            );
            continue;
        }
        let Some(manifest) = store.manifest(&digest)? else {
            continue;
        };
        for f in &manifest.files {
            let Some(at) = RelPath::parse(f.path.as_bytes()) else {
                continue;
            };
            let problem = match view.files.get(&at) {
                None => Some("is gone".to_string()),
                Some(s) if s.kind != EntryKind::File => Some(format!("is a {} now", s.kind.name())),
                Some(s) if s.id != f.blake3 => Some("differs from its bytes".to_string()),
                Some(s) if s.meta.mode & 0o7777 != f.mode.bits() => Some(format!(
                    "has mode {:04o}, not {:04o}",
                    s.meta.mode & 0o7777,
                    f.mode.bits()
                )),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                out.push(
                    Finding::new(
                        Code::PackageFileChanged,
                        at,
                        format!(
                            "installed by package {} {}, it {problem} in the manifest",
                            p.id, p.version
                        ),
                    )
                    .owned_by(&p.id),
                );
            }
        }
    }
    Ok(out)
}

/// CP112 for each of `expect` (path, uid, gid: files a command left as
/// they were, [`crate::snapshot::SealOptions::expect_owners`]) that is on
/// disk with another owner. A path no longer there is left to the other
/// passes (a package file gone is CP112 already).
pub fn owner_findings(m: &Model, view: &View<'_>, expect: &[(RelPath, u32, u32)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (p, uid, gid) in expect {
        let Some(s) = view.files.get(p) else { continue };
        if (s.meta.uid, s.meta.gid) == (*uid, *gid) {
            continue;
        }
        let mut f = Finding::new(
            Code::PackageFileChanged,
            p.clone(),
            format!(
                "its owner changed from {uid}:{gid} to {}:{} while the command ran; put it back (chown {uid}:{gid} {}), then any command finishes it",
                s.meta.uid,
                s.meta.gid,
                p.display()
            ),
        );
        if let Some(o) = m.owner(p) {
            f = f.owned_by(&*o.owner_id);
        }
        out.push(f);
    }
    out
}

/// What [`run_passes`] can reuse from the scan that came before it.
#[derive(Default)]
pub struct PassInputs<'a> {
    /// `.file_registry.csv` tables the scan parsed ([`RegistryHook`]).
    pub parsed: super::Parsed,
    /// Gates the scan ran on the bytes it hashed ([`FusedGates`]).
    pub fused: Option<&'a FusedGates>,
    /// The scan's comparison with HEAD: when HEAD is a checkpoint a governed
    /// `snapshot` sealed and no rules file changed since, only the files
    /// added or changed since HEAD, and (with [`PassInputs::store`], after a
    /// registry change) those whose owner or owner's gates changed, run
    /// their per-file gates (see `unchanged_gates_hold`). `None` runs them
    /// on every file.
    pub since_head: Option<&'a crate::worktree::WorktreeReport>,
    /// The store, for pass 1's check of package-owned files against their
    /// manifests ([`package_findings`]); `None` skips it.
    pub store: Option<&'a Store>,
}

/// Runs passes 0, 2 and 3 (and records pass 1's findings, computed by the
/// caller) in order, stopping after the first pass with findings unless `all`.
///
/// # Errors
/// I/O, store damage, cancellation.
pub fn run_passes(
    view: &View<'_>,
    scope: &Scope,
    content: Vec<Finding>,
    all: bool,
    inputs: PassInputs<'_>,
    ctl: Control<'_>,
) -> Result<(Model, PassReport)> {
    let mut parsed = inputs.parsed;
    let m = Model::load_with(view, &mut parsed)?;
    let fused = inputs.fused;
    let mut r = PassReport {
        exempt: m.exempt.clone(),
        owned: super::owned(&m.declared, &m.files).count(),
        ..PassReport::default()
    };
    let stop = |r: &PassReport| !all && !r.is_clean();
    r.passes[0] = Some(ownership_findings(&m, view, true)?);
    if stop(&r) {
        return Ok((m, r));
    }
    let mut content = content;
    if let Some(store) = inputs.store {
        content.extend(package_findings(store, &m, view)?);
    }
    r.passes[1] = Some(content);
    if stop(&r) {
        return Ok((m, r));
    }
    r.passes[2] = Some(chain_findings(&m, view));
    if !m.broken.is_empty() {
        let list: Vec<&str> = m.broken.iter().copied().collect();
        r.incomplete[2] = Some(format!("{} did not load (see pass 0)", list.join(", ")));
    }
    let rules_missing: Vec<&str> = m
        .frameworks
        .values()
        .filter(|f| f.rules_path.is_some() && !m.rules.contains_key(&f.id))
        .map(|f| f.id.as_str())
        .collect();
    if !rules_missing.is_empty() || m.broken.contains(super::FRAMEWORKS) || m.broken.contains(super::SPECS) {
        r.incomplete[3] = Some(if rules_missing.is_empty() {
            "the frameworks or specs registry did not load, so no gate could be chosen".to_string()
        } else {
            format!(
                "the gates of {} were not run: their rules files did not load (CP209)",
                rules_missing.join(", ")
            )
        });
    }
    if stop(&r) {
        return Ok((m, r));
    }
    ctl.progress.phase("gates");
    let only = inputs
        .since_head
        .and_then(|r| unchanged_gates_hold(inputs.store, &m, r));
    let (gates, binary) = gate_findings_for(&m, view, scope, fused, None, only.as_ref(), ctl)?;
    r.passes[3] = Some(gates);
    r.binary_skipped = binary;
    Ok((m, r))
}

/// What `cplane compile` did.
#[derive(Debug)]
pub struct CompileReport {
    /// Rows in the compiled registry (its own included).
    pub rows: usize,
    /// True when the file changed on disk.
    pub written: bool,
    /// Ownership findings that remain (unmapped or missing files, unknown owners).
    pub findings: Vec<Finding>,
    /// Files left out as exempt.
    pub exempt: usize,
    /// The compiled registry's blob id (BLAKE3 of its bytes).
    pub blob: ObjectId,
}

/// `cplane compile`: builds `registries/file_ownership_registry.csv` from
/// every `.file_registry.csv` of the working tree and writes it when it changed.
///
/// # Errors
/// [`Error::Refused`] for a malformed registry or a path with two owners
/// (nothing is written); [`Error::NotGoverned`] for a plane without
/// registries; I/O, store damage, cancellation.
pub fn compile_worktree(store: &Store, plane: &Plane, ctl: Control<'_>) -> Result<CompileReport> {
    let report = crate::worktree::status(store, plane, ctl)?;
    let scope = Scope::open(plane)?;
    let view = worktree_view(store, &scope, &report.scan)?;
    if !view.is_governed() {
        return Err(Error::NotGoverned {
            plane: plane.name.clone(),
        });
    }
    let (m, bytes, findings) = compile(&view)?;
    let at = RelPath::parse(COMPILED.as_bytes()).expect("constant path");
    let old = view.read(&at)?;
    let written = old.as_deref() != Some(&bytes[..]);
    if written {
        write_file(&scope, &at, &bytes)?;
    }
    Ok(CompileReport {
        rows: m.declared.len(),
        written,
        findings,
        exempt: m.exempt.len(),
        blob: crate::object::blob_id(&bytes),
    })
}

/// The governance check of the state a snapshot just stored: passes 0 and
/// 2 on the sealed tree, and the compiled registry in it byte for byte
/// what its sources and files compile to (so a file changed between the
/// gate run and the seal is caught). Returns the compiled registry's blob id.
///
/// # Errors
/// [`Error::Refused`] with the findings; store damage.
pub fn check_sealed(store: &Store, root: &TreeId) -> Result<ObjectId> {
    let view = stored_view(store, root)?;
    let m = Model::load(&view)?;
    let mut findings = ownership_findings(&m, &view, true)?;
    findings.extend(chain_findings(&m, &view));
    let at = RelPath::parse(COMPILED.as_bytes()).expect("constant path");
    let side = view.files.get(&at).filter(|s| s.kind == EntryKind::File);
    if findings.is_empty() {
        match (side, view.read(&at)?) {
            (Some(side), Some(bytes)) if bytes == m.compiled() => return Ok(side.id),
            _ => findings.push(Finding::new(
                Code::StaleCompiled,
                at,
                "files changed while the snapshot ran: the compiled registry no longer matches them; run the snapshot again",
            )),
        }
    }
    Err(Error::Refused {
        action: "snapshot",
        findings,
    })
}

/// Files whose per-file gates ran on exactly the bytes now on disk and
/// found nothing: an install gates a package's files as they stream, before
/// it writes them, and its seal then runs them only where something changed.
#[derive(Debug, Clone, Default)]
pub struct PassedGates {
    /// Every gate, as [`super::spec_gates`] listed them when they ran.
    pub gates: Vec<(String, crate::gate::Gate)>,
    /// The owner they ran for (the package id).
    pub owner: String,
    /// That owner's gates (indices into `gates`).
    pub ids: Vec<usize>,
    /// Each file checked, with the BLAKE3 of the bytes checked.
    pub files: std::collections::HashMap<RelPath, ObjectId>,
    /// The engine that ran them, for the seal's gates on the other files
    /// (used only when its gates are the model's).
    pub engine: Option<std::sync::Arc<crate::gate::Engine>>,
}

impl PassedGates {
    /// `only` (the files whose gates must run, `None`: all owned files)
    /// without the files that passed: same bytes (blob id in `view`), same
    /// owner, and the same gates — the model's gates equal to those that
    /// ran and the owner's spec bound to the same ones. Anything else
    /// leaves `only` as it is.
    fn exclude(
        &self,
        m: &Model,
        view: &View<'_>,
        only: Option<std::collections::HashSet<RelPath>>,
    ) -> Option<std::collections::HashSet<RelPath>> {
        let (gates, by_spec) = super::spec_gates(m);
        if gates != self.gates {
            return only;
        }
        let passed = |path: &RelPath, d: &super::Declaration| {
            *d.owner_id == *self.owner
                && m.spec_of(d).and_then(|s| by_spec.get(&s.id)) == Some(&self.ids)
                && self.files.get(path).is_some_and(|id| {
                    view.files
                        .get(path)
                        .is_some_and(|s| s.kind == EntryKind::File && s.id == *id)
                })
        };
        Some(
            super::owned(&m.declared, &m.files)
                .filter(|(path, _, _)| only.as_ref().is_none_or(|o| o.contains(*path)))
                .filter(|(path, decls, _)| !passed(path, &decls[0]))
                .map(|(path, _, _)| path.clone())
                .collect(),
        )
    }
}

/// The files whose gates a snapshot or verify must run, when the others are
/// known to pass: HEAD is a checkpoint a governed `snapshot` sealed (every
/// gate passed then, on every file it owned). `None` (all files) otherwise.
///
/// With no registry, `.file_registry.csv` or rules file changed since HEAD,
/// those are the files added or changed since HEAD. When only registries
/// changed (an install, an `own`: rows added, moved or dropped) and with
/// `store` to read HEAD's registries from, a file keeps HEAD's verdict when
/// its bytes, its owner and its owner's gates (each gate's full definition,
/// framework and spec) are all as HEAD had them; every other owned file
/// runs its gates. A changed rules file, rules that parse differently, or a
/// HEAD whose model does not load: all files.
fn unchanged_gates_hold(
    store: Option<&Store>,
    m: &Model,
    report: &crate::worktree::WorktreeReport,
) -> Option<std::collections::HashSet<RelPath>> {
    let (_, head) = report.head.as_ref()?;
    if head.kind != crate::object::SnapshotKind::Checkpoint || head.ownership.is_none() {
        return None;
    }
    let rules: std::collections::HashSet<RelPath> = m
        .frameworks
        .values()
        .filter_map(|f| f.rules_path.as_deref().and_then(|p| RelPath::parse(p.as_bytes())))
        .collect();
    let registry = |p: &RelPath| {
        p.as_bytes().starts_with(b"registries/") || p.file_name() == Some(super::FILE_REGISTRY.as_bytes())
    };
    let mut changed: std::collections::HashSet<RelPath> = report
        .changes
        .iter()
        .filter(|c| c.new.as_ref().is_some_and(|n| n.kind == EntryKind::File))
        .map(|c| c.path.clone())
        .collect();
    if report.changes.iter().any(|c| rules.contains(&c.path)) {
        return None;
    }
    if !report.changes.iter().any(|c| registry(&c.path)) {
        return Some(changed);
    }
    // Registries changed: compare each owned file's gates with HEAD's.
    let h = Model::load(&stored_view(store?, &head.root).ok()?).ok()?;
    // Exempt globs and gate definitions live in the rules: any difference
    // (another rules file bound, a file that no longer parses) gates all.
    if h.rules != m.rules || !h.broken.is_empty() || !m.broken.is_empty() || h.broken_sources || m.broken_sources {
        return None;
    }
    // With the rules equal, `spec_gates` numbers the gates alike for both
    // models: a spec's gates are the same exactly when its indices are.
    let (_, by_now) = super::spec_gates(m);
    let (_, by_then) = super::spec_gates(&h);
    fn gates<'a>(model: &Model, by: &'a super::SpecGates, d: &super::Declaration) -> Option<&'a Vec<usize>> {
        model.spec_of(d).and_then(|s| by.get(&s.id))
    }
    for (path, decls, _) in super::owned(&m.declared, &m.files) {
        if changed.contains(path) {
            continue;
        }
        let d = &decls[0];
        // An owner that resolves to no spec on either side is never "the same".
        let same = h.owner(path).is_some_and(|hd| {
            hd.owner_id == d.owner_id && hd.owner_kind == d.owner_kind && {
                let now = gates(m, &by_now, d);
                now.is_some() && now == gates(&h, &by_then, hd)
            }
        });
        if !same {
            changed.insert(path.clone());
        }
    }
    Some(changed)
}

/// The id `root` (a tree of `scan`) has once the file at `at` holds `bytes`,
/// with the mode and owner it has on disk now: the trees on its path are
/// re-encoded, bottom-up, in memory (nothing is stored). `None` when a tree
/// on the way is missing or the file is not on disk as a regular file.
fn expected_root(
    store: &Store,
    scope: &Scope,
    scan: &ScanResult,
    root: TreeId,
    at: &RelPath,
    bytes: &[u8],
) -> Option<TreeId> {
    use crate::object::{Meta, TreeEntry};
    let parent = at.parent()?;
    let name = at.file_name()?.to_vec();
    let st = scope.open_dir(&parent).ok()?.stat(&name).ok()?;
    if crate::fsys::EntryType::from_mode(st.st_mode as u32) != crate::fsys::EntryType::File {
        return None;
    }
    let src = TreeSource::with_overlay(store, &scan.trees);
    // The trees from the root down to the file's directory.
    let mut chain = vec![src.tree(&root).ok()?.into_owned()];
    for part in parent.components() {
        let e = chain.last()?.get(part)?.clone();
        if e.kind != EntryKind::Dir {
            return None;
        }
        chain.push(src.tree(&e.tree_id()).ok()?.into_owned());
    }
    let mut entry = TreeEntry {
        name,
        kind: EntryKind::File,
        meta: Meta::from_stat(st.st_mode as u32, st.st_uid, st.st_gid, EntryKind::File),
        id: crate::object::blob_id(bytes),
        size: bytes.len() as u64,
    };
    let names: Vec<Vec<u8>> = parent.components().map(<[u8]>::to_vec).collect();
    for depth in (0..chain.len()).rev() {
        let tree = &mut chain[depth];
        match tree.entries.binary_search_by(|e| e.name.as_slice().cmp(&entry.name)) {
            Ok(i) => tree.entries[i] = entry,
            Err(i) => tree.entries.insert(i, entry),
        }
        let size = tree.entries.iter().map(|e| e.size).sum();
        let (id, _) = tree.encode_with_id();
        if depth == 0 {
            return Some(id);
        }
        let above = &chain[depth - 1];
        let mut dir = above.get(&names[depth - 1])?.clone();
        dir.id = id.0;
        dir.size = size;
        entry = dir;
    }
    None
}

/// What a governed snapshot did besides sealing.
#[derive(Debug, Default)]
pub struct GovernedSeal {
    /// The compiled ownership registry was rewritten first.
    pub compiled_written: bool,
    /// Files with an owner.
    pub owned: usize,
    /// Files left out as exempt.
    pub exempt: usize,
}

/// `cplane snapshot`, fail-closed on a governed plane: compiles the
/// ownership registry, refuses (writing nothing) when pass 0, 2 or 3 has a
/// finding, writes the compiled registry when it changed, seals, and checks
/// the sealed tree again before HEAD moves ([`check_sealed`]). A plane
/// without registries is sealed as [`crate::snapshot::seal`] does, unless
/// its HEAD is governed: then only with `ungoverned` (the registries were
/// removed on purpose).
///
/// # Errors
/// [`Error::Refused`] with the findings; as [`crate::snapshot::seal`].
pub fn snapshot(
    store: &mut Store,
    lock: &crate::store::lock::StoreLock,
    plane: &Plane,
    mut opts: crate::snapshot::SealOptions,
    ungoverned: bool,
    ctl: Control<'_>,
) -> Result<(crate::snapshot::SealReport, Option<GovernedSeal>)> {
    use crate::snapshot::{seal, seal_checked};
    let scope = Scope::open(plane)?;
    if !is_governed(&scope) {
        // A governed HEAD whose frameworks registry is gone (deleted, or made a
        // symlink): governance is not switched off by accident.
        let head_governed = match store.head(&plane.name)? {
            Some(id) => {
                let h = store.read_snapshot(&id)?;
                h.ownership.is_some() || tree_is_governed(store, &h.root)?
            }
            None => false,
        };
        if head_governed && !ungoverned {
            return Err(Error::Refused {
                action: "snapshot",
                findings: vec![Finding::new(
                    Code::BadRegistry,
                    RelPath::parse(super::FRAMEWORKS.as_bytes()).expect("constant path"),
                    "HEAD is governed, but this is missing or not a regular file; put it back (cplane restore HEAD registries/frameworks_registry.csv), or seal with --ungoverned to stop governing the plane",
                )],
            });
        }
        return Ok((seal(store, lock, plane, opts, ctl)?, None));
    }
    let report = crate::worktree::status(store, plane, ctl)?;
    let view = worktree_view(store, &scope, &report.scan)?;
    crate::trace::phase("seal: status scan");
    if !view.is_governed() {
        // On disk it is governed, but the scan did not record the registry: an
        // unreadable file or directory. Never fall back to an ungoverned seal.
        return Err(Error::Refused {
            action: "snapshot",
            findings: vec![Finding::new(
                Code::BadRegistry,
                RelPath::parse(super::FRAMEWORKS.as_bytes()).expect("constant path"),
                "exists but could not be read as a regular file of the plane",
            )],
        });
    }
    let (m, bytes, _) = compile(&view).map_err(|e| e.refused_as("snapshot"))?;
    let mut findings = ownership_findings(&m, &view, false)?;
    findings.extend(package_findings(store, &m, &view)?);
    if let Some(expect) = &opts.expect_owners {
        findings.extend(owner_findings(&m, &view, expect));
    }
    crate::trace::phase("seal: compile, ownership and package findings");
    findings.extend(chain_findings(&m, &view));
    if findings.is_empty() {
        ctl.progress.phase("gates");
        let mut only = unchanged_gates_hold(Some(store), &m, &report);
        let passed = opts.passed_gates.take();
        if let Some(p) = &passed {
            only = p.exclude(&m, &view, only);
        }
        let engine = passed.as_ref().and_then(|p| p.engine.as_deref());
        findings.extend(gate_findings_for(&m, &view, &scope, None, engine, only.as_ref(), ctl)?.0);
    }
    if !findings.is_empty() {
        return Err(Error::Refused {
            action: "snapshot",
            findings,
        });
    }
    crate::trace::phase("seal: chain findings, gates");
    let at = RelPath::parse(COMPILED.as_bytes()).expect("constant path");
    let compiled_written = view.read(&at)?.as_deref() != Some(&bytes[..]);
    let checked_root = report.scan.root;
    let gov = GovernedSeal {
        compiled_written,
        owned: super::owned(&m.declared, &m.files).count(),
        exempt: m.exempt.len(),
    };
    // Nothing of the check is needed while sealing: give the memory back first.
    drop(m);
    drop(view);
    if compiled_written {
        write_file(&scope, &at, &bytes)?;
    }
    let blob = crate::object::blob_id(&bytes);
    // The root the checked tree has with the compiled registry as written: a
    // sealed tree with this root is exactly the one checked, and needs no
    // second check (any other root gets the full one).
    let expected = if compiled_written {
        expected_root(store, &scope, &report.scan, checked_root, &at, &bytes)
    } else {
        Some(checked_root)
    };
    drop(report);
    opts.ownership = Some(blob);
    let check = |store: &Store, root: &TreeId| {
        if Some(*root) == expected {
            Ok(Some(blob))
        } else {
            check_sealed(store, root).map(Some)
        }
    };
    let sealed = seal_checked(store, lock, plane, opts, Some(&check), ctl)?;
    Ok((sealed, Some(gov)))
}

/// `verify` of one plane: the store-layer verify (pass 1) and, when the
/// plane is governed, the passes in order ([`run_passes`]). With `full`,
/// every content gate runs on every file; otherwise, when HEAD is a
/// checkpoint a governed `snapshot` sealed (every gate passed then) and no
/// rules file changed since, only the files added or changed since HEAD,
/// and those whose owner or owner's gates a registry change altered, run
/// their gates (content addressing: same bytes, same gates, same verdict),
/// as a governed `snapshot` does.
///
/// # Errors
/// As [`crate::worktree::verify`] and [`run_passes`].
pub fn verify(
    store: &Store,
    plane: &Plane,
    all_passes: bool,
    full: bool,
    ctl: Control<'_>,
) -> Result<(crate::worktree::WorktreeReport, Option<PassReport>)> {
    let scope = Scope::open(plane)?;
    if !is_governed(&scope) {
        return Ok((crate::worktree::verify(store, plane, ctl)?, None));
    }
    // The content gates run on the bytes the scan hashes: each file is read once.
    let head = match store.head(&plane.name)? {
        Some(id) => Some(store.read_snapshot(&id)?),
        None => None,
    };
    // When the compiled registry is the one HEAD sealed, HEAD's verdicts
    // will most likely hold (decided after the scan) and the scan only parses
    // the registries; otherwise it runs every gate on the bytes it hashes.
    let likely_held = !full
        && head.as_ref().is_some_and(|h| {
            h.kind == crate::object::SnapshotKind::Checkpoint
                && h.ownership.is_some()
                && RelPath::parse(super::COMPILED.as_bytes())
                    .and_then(|at| read_file(&scope, &at).ok())
                    .is_some_and(|b| Some(crate::object::blob_id(&b)) == h.ownership)
        });
    let fused = if likely_held { None } else { FusedGates::plan(&scope) };
    let registries = RegistryHook::default();
    let hook: &dyn crate::scan::ContentHook = match &fused {
        Some(f) => f,
        None => &registries,
    };
    let r = crate::worktree::verify_with(store, plane, Some(hook), ctl)?;
    let view = worktree_view(store, &scope, &r.scan)?;
    let inputs = PassInputs {
        parsed: match &fused {
            Some(f) => f.registries.take(),
            None => registries.take(),
        },
        fused: fused.as_ref(),
        since_head: (!full).then_some(&r),
        store: Some(store),
    };
    let (_, passes) = run_passes(&view, &scope, r.all_findings(), all_passes, inputs, ctl)?;
    drop(view);
    Ok((r, Some(passes)))
}

/// Passes 0 and 2 on the state a rollback to the tree `root` would write
/// (nothing when that state is not governed).
///
/// # Errors
/// Store damage.
pub fn check_rollback(store: &Store, root: &TreeId) -> Result<Vec<Finding>> {
    // Known from two trees, before the whole tree is read for a view.
    if !tree_is_governed(store, root)? {
        return Ok(Vec::new());
    }
    let view = stored_view(store, root)?;
    if !view.is_governed() {
        return Ok(Vec::new());
    }
    Ok(super::check_structure(&view, super::Passes::STRUCTURE)?.1)
}

/// The pass-0 and pass-2 findings `restore` of `paths` from the tree `root`
/// would add: the working tree with every file under each path replaced by
/// what `root` has there, checked, minus the findings the working tree has
/// already (a restore is refused for what it breaks, not for what was
/// broken before it). Nothing when that state is not governed.
///
/// # Errors
/// I/O, store damage, cancellation.
pub fn check_restore(
    store: &Store,
    plane: &Plane,
    root: &TreeId,
    paths: &[RelPath],
    ctl: Control<'_>,
) -> Result<Vec<Finding>> {
    use crate::diff::{flatten, lookup_path};
    let scope = Scope::open(plane)?;
    let report = crate::worktree::status(store, plane, ctl)?;
    let mut files: std::collections::BTreeMap<RelPath, Side> = worktree_view(store, &scope, &report.scan)?
        .files
        .iter()
        .map(|(p, s)| (p.clone(), *s))
        .collect();
    let src = TreeSource::store(store);
    let mut from_store = std::collections::HashSet::new();
    for p in paths {
        files.retain(|f, _| !f.starts_with(p));
        let entries: Vec<(RelPath, Side)> = if p.is_root() {
            flatten(&src, root)?
        } else {
            match lookup_path(&src, root, p)? {
                None => Vec::new(),
                Some(e) if e.kind == EntryKind::Dir => flatten(&src, &e.tree_id())?
                    .into_iter()
                    .map(|(q, s)| (p.join_path(&q), s))
                    .collect(),
                Some(e) => vec![(p.clone(), Side::from(&e))],
            }
        };
        for (q, s) in entries.into_iter().filter(|(_, s)| s.kind != EntryKind::Dir) {
            from_store.insert(q.clone());
            files.insert(q, s);
        }
    }
    let view = View::of_files(files, |rel, side| {
        if from_store.contains(rel) {
            read_blob(store, &side.id)
        } else {
            read_file(&scope, rel)
        }
    });
    if !view.is_governed() {
        return Ok(Vec::new());
    }
    let after = super::check_structure(&view, super::Passes::STRUCTURE)?.1;
    // A registry that does not parse hides what it would have declared: then
    // nothing can be told apart, and every finding counts.
    if after.iter().any(|f| f.code == Code::BadRegistry) {
        return Ok(after);
    }
    let now = worktree_view(store, &scope, &report.scan)?;
    let before: std::collections::HashSet<(Code, RelPath, String)> = if now.is_governed() {
        super::check_structure(&now, super::Passes::STRUCTURE)?
            .1
            .into_iter()
            .map(|f| (f.code, f.path, f.message))
            .collect()
    } else {
        Default::default()
    };
    Ok(after
        .into_iter()
        .filter(|f| !before.contains(&(f.code, f.path.clone(), f.message.clone())))
        .collect())
}

/// Pass 0 for `status`, from compiled state when it can: HEAD's ownership
/// reference (`Snapshot::ownership`) is only set on a state whose ownership
/// was clean when sealed, so when no registry changed since such a HEAD,
/// only the added and deleted paths are checked against the registry it
/// sealed, and an unchanged governed plane costs nothing more than an
/// ungoverned one. When a registry changed, or HEAD has no reference (an
/// `init` that adopted findings, a `rollback --force`), the full pass 0 runs
/// on the scanned tree. `None` for a plane without registries.
///
/// # Errors
/// Store damage while reading HEAD's ownership registry or trees.
pub fn status_findings(
    store: &Store,
    plane: &Plane,
    report: &crate::worktree::WorktreeReport,
) -> Result<Option<Vec<Finding>>> {
    use crate::diff::ChangeKind;
    let scope = Scope::open(plane)?;
    if !is_governed(&scope) {
        return Ok(None);
    }
    let trusted = report.head.as_ref().is_some_and(|(_, h)| h.ownership.is_some());
    if report.changes.is_empty() && trusted {
        return Ok(Some(Vec::new()));
    }
    let registry_changed = report.changes.iter().any(|c| {
        c.path.file_name() == Some(super::FILE_REGISTRY.as_bytes()) || c.path.as_bytes().starts_with(b"registries/")
    });
    let compiled = match (&report.head, registry_changed) {
        (Some((_, head)), false) => head.ownership,
        _ => None,
    };
    // Only a path that appeared or went can change who owns what.
    let file = |s: &Option<Side>| s.as_ref().is_some_and(|s| s.kind != EntryKind::Dir);
    if compiled.is_some()
        && !report.changes.iter().any(|c| {
            matches!(c.kind, ChangeKind::Added) && file(&c.new) || matches!(c.kind, ChangeKind::Deleted) && file(&c.old)
        })
    {
        return Ok(Some(Vec::new()));
    }
    let Some(blob) = compiled else {
        let view = worktree_view(store, &scope, &report.scan)?;
        let m = Model::load(&view)?;
        return Ok(Some(ownership_findings(&m, &view, true)?));
    };
    let bytes = read_blob(store, &blob)?;
    let owners: std::collections::HashMap<RelPath, String> =
        match super::registry::Table::parse(&bytes, COMPILED, &["path", "owner_id", "owner_kind", "blake3"], &[]) {
            Ok(t) => t
                .rows()
                .filter_map(|r| Some((RelPath::parse(r.get("path").as_bytes())?, r.get("owner_id").to_string())))
                .collect(),
            Err(e) => return Ok(Some(vec![super::bad_registry(e)])),
        };
    let mut out = Vec::new();
    for c in &report.changes {
        match c.kind {
            ChangeKind::Added if file(&c.new) && !owners.contains_key(&c.path) => out.push(Finding::new(
                Code::Unmapped,
                c.path.clone(),
                format!(
                    "{} has no owner in the compiled registry",
                    c.new.as_ref().map_or("file", |s| s.kind.name())
                ),
            )),
            ChangeKind::Deleted if file(&c.old) => {
                if let Some(owner) = owners.get(&c.path) {
                    out.push(
                        Finding::new(
                            Code::DeclaredMissing,
                            c.path.clone(),
                            "owned, but missing from the plane",
                        )
                        .owned_by(owner),
                    );
                }
            }
            _ => {}
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file keeps its install-time gate verdict only with the same bytes,
    /// the same owner, the owner's same gates and the same gate set.
    #[test]
    fn passed_gates_skip_only_the_same_bytes_owner_and_gates() {
        let dir = tempfile::tempdir().unwrap();
        crate::governance::genesis::lay_down(dir.path()).unwrap();
        let store = Store::init(dir.path()).unwrap();
        let plane = store.plane("main").unwrap();
        std::fs::create_dir_all(store.plane_dir("main")).unwrap();
        let scope = Scope::open(&plane).unwrap();
        let report = crate::worktree::status(&store, &plane, Control::quiet()).unwrap();
        let view = worktree_view(&store, &scope, &report.scan).unwrap();
        let m = Model::load(&view).unwrap();
        let (gates, by_spec) = super::super::spec_gates(&m);
        let at = RelPath::parse(b"specs/SPEC-000/spec.md").unwrap();
        let other = RelPath::parse(b"frameworks/FMWK-000/framework.md").unwrap();
        let id = view.files.get(&at).unwrap().id;
        let ids = by_spec.get("SPEC-000").cloned().unwrap();
        assert!(!ids.is_empty(), "the genesis spec has gates");
        let passed =
            |owner: &str, ids: Vec<usize>, id: ObjectId, gates: Vec<(String, crate::gate::Gate)>| PassedGates {
                gates,
                owner: owner.into(),
                ids,
                files: [(at.clone(), id)].into_iter().collect(),
                engine: None,
            };
        let todo = |p: PassedGates| p.exclude(&m, &view, None);
        let all = todo(passed("SPEC-000", ids.clone(), id, gates.clone())).unwrap();
        assert!(!all.contains(&at) && all.contains(&other), "{all:?}");
        let only = Some([at.clone()].into_iter().collect());
        let p = passed("SPEC-000", ids.clone(), id, gates.clone());
        assert_eq!(p.exclude(&m, &view, only), Some(Default::default()));
        // Other bytes, another owner, other gate indices: gated again.
        let other_id = ObjectId(*blake3::hash(b"other bytes").as_bytes());
        assert!(
            todo(passed("SPEC-000", ids.clone(), other_id, gates.clone()))
                .unwrap()
                .contains(&at)
        );
        assert!(
            todo(passed("PKG-X", ids.clone(), id, gates.clone()))
                .unwrap()
                .contains(&at)
        );
        assert!(
            todo(passed("SPEC-000", Vec::new(), id, gates.clone()))
                .unwrap()
                .contains(&at)
        );
        // Another set of gates altogether: nothing is skipped.
        let fewer = gates[..gates.len() - 1].to_vec();
        assert_eq!(todo(passed("SPEC-000", ids, id, fewer)), None);
    }

    /// The root `expected_root` predicts is the root a scan finds once the
    /// file is written (so a governed snapshot's re-check is skipped only
    /// when the sealed tree is exactly the checked one).
    #[test]
    fn expected_root_is_the_root_after_the_write() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("registries/deep")).unwrap();
        std::fs::write(dir.path().join("registries/a.csv"), "a\n").unwrap();
        std::fs::write(dir.path().join("registries/deep/b"), "b\n").unwrap();
        std::fs::write(dir.path().join("top"), "t\n").unwrap();
        let store = Store::init(dir.path()).unwrap();
        let plane = store.plane("main").unwrap();
        std::fs::create_dir_all(store.plane_dir("main")).unwrap();
        let scope = Scope::open(&plane).unwrap();
        for (rel, body) in [
            ("registries/file_ownership_registry.csv", "new\n"),
            ("registries/file_ownership_registry.csv", "changed, longer\n"),
            ("registries/deep/b", "b2\n"),
        ] {
            let before = crate::worktree::status(&store, &plane, Control::quiet()).unwrap();
            let at = RelPath::parse(rel.as_bytes()).unwrap();
            std::fs::write(dir.path().join(rel), body).unwrap();
            let predicted = expected_root(&store, &scope, &before.scan, before.scan.root, &at, body.as_bytes());
            let after = crate::worktree::status(&store, &plane, Control::quiet()).unwrap();
            assert_eq!(predicted, Some(after.scan.root), "{rel}");
        }
    }
}
