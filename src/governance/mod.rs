//! Governance: every file of a governed plane owned, every owner chained to
//! a framework that authorizes the file and whose gates it passes
//! (`governance.md` gives the registries, rules files and passes).
//!
//! The checks run on a [`View`]: the files of one plane state (the working
//! tree just scanned, or a snapshot in the store) with their blob ids and a
//! way to read the few governance files. [`check`] loads the registries from
//! the view and runs the ownership (0), chain (2) and gate (3) passes; pass 1
//! (content against HEAD) is the store layer's [`crate::worktree::verify`].
//! [`compile`] is the same load, producing the compiled ownership registry.

pub mod edit;
pub mod explain;
pub mod genesis;
pub mod plane;
pub mod registry;
pub mod sorted;

use crate::diff::{Side, TreeSource, flatten};
use crate::error::{Error, Result};
use crate::finding::{Code, Finding};
use crate::gate::{Check as GateCheck, Rules};
use crate::id::TreeId;
use crate::object::EntryKind;
use crate::path::RelPath;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use registry::{RegistryError, Table, check_id, list, metadata};
pub use sorted::Files;
use sorted::{Declared, join, owned};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The frameworks registry; its presence makes a plane governed.
pub const FRAMEWORKS: &str = "registries/frameworks_registry.csv";
/// The specs registry.
pub const SPECS: &str = "registries/specs_registry.csv";
/// The packages registry (optional: absent means no packages).
pub const PACKAGES: &str = "registries/packages_registry.csv";
/// The compiled ownership registry, written by `cplane compile`.
pub const COMPILED: &str = "registries/file_ownership_registry.csv";
/// The planes registry at the control-plane root (optional).
pub const PLANES: &str = "registries/planes_registry.csv";
/// The trusted signing keys, in OpenSSH's `allowed_signers` format with a
/// role per key ([`crate::keys`]).
pub const ALLOWED_SIGNERS: &str = "registries/allowed_signers";
/// File name of the per-directory ownership registries.
pub const FILE_REGISTRY: &str = ".file_registry.csv";
/// The required columns of `frameworks_registry.csv` (`rules_path` is optional).
pub const FRAMEWORK_COLUMNS: [&str; 9] = [
    "id",
    "name",
    "version",
    "purpose",
    "artifact_path",
    "allowed_spec_types",
    "required_gates",
    "required_metadata",
    "authorizes",
];
/// Header of the compiled ownership registry.
pub const COMPILED_HEADER: &str = "path,owner_id,owner_kind,blake3";

/// What kind of owner a row names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerKind {
    /// A spec (`SPEC-…`).
    Spec,
    /// A package (`PKG-…`).
    Package,
}

impl OwnerKind {
    /// `spec` or `package`, as written in the registries.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Spec => "spec",
            OwnerKind::Package => "package",
        }
    }

    fn parse(s: &str) -> Option<OwnerKind> {
        match s {
            "spec" => Some(OwnerKind::Spec),
            "package" => Some(OwnerKind::Package),
            _ => None,
        }
    }
}

/// A row of `frameworks_registry.csv`.
#[derive(Debug, Clone)]
pub struct Framework {
    /// Line in the registry.
    pub line: u64,
    /// `FMWK-…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version text.
    pub version: String,
    /// One-line purpose.
    pub purpose: String,
    /// The framework's document.
    pub artifact_path: String,
    /// Entity types its specs may have.
    pub allowed_spec_types: Vec<String>,
    /// Gate ids applied to every file of the framework.
    pub required_gates: Vec<String>,
    /// Metadata keys every spec must have.
    pub required_metadata: Vec<String>,
    /// Globs of the paths the framework authorizes.
    pub authorizes: Vec<String>,
    /// The rules file, if any.
    pub rules_path: Option<String>,
    authorizes_set: GlobSet,
}

impl Framework {
    /// The CP204 finding for `path`, owned by `owner` of this framework,
    /// which no glob of it authorizes.
    pub fn not_authorized(&self, path: &RelPath, owner: &str) -> Finding {
        let globs = if self.authorizes.is_empty() {
            "nothing".to_string()
        } else {
            self.authorizes.join(";")
        };
        Finding::new(
            Code::NotAuthorized,
            path.clone(),
            format!(
                "owner {owner} belongs to framework {}, which authorizes only {globs}",
                self.id
            ),
        )
        .owned_by(owner)
    }

    /// The first `authorizes` glob matching `path`.
    pub fn authorizing_glob(&self, path: &RelPath) -> Option<&str> {
        self.authorizes_set
            .matches(path.as_os_str())
            .first()
            .map(|&i| self.authorizes[i].as_str())
    }
}

/// A row of `specs_registry.csv`.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Line in the registry.
    pub line: u64,
    /// `SPEC-…`.
    pub id: String,
    /// The framework it is bound to.
    pub framework_id: String,
    /// Its entity type.
    pub entity_type: String,
    /// The spec's document.
    pub artifact_path: String,
    /// Exact paths that must exist.
    pub required_assets: Vec<String>,
    /// Further gate ids applied to its files.
    pub gates: Vec<String>,
    /// `key=value` metadata.
    pub metadata: Vec<(String, String)>,
}

/// A row of `packages_registry.csv`.
#[derive(Debug, Clone)]
pub struct Package {
    /// Line in the registry.
    pub line: u64,
    /// `PKG-…`.
    pub id: String,
    /// Version text.
    pub version: String,
    /// The spec it implements.
    pub spec_id: String,
    /// Its framework (must equal the spec's).
    pub framework_id: String,
    /// BLAKE3 of its manifest, hex (may be empty).
    pub manifest_digest: String,
    /// `installed` or `uninstalled`.
    pub status: String,
}

/// One ownership declaration: a row of some `.file_registry.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// The owner's id (shared by every row naming the same owner).
    pub owner_id: Arc<str>,
    /// Spec or package.
    pub owner_kind: OwnerKind,
    /// The `.file_registry.csv` holding the row (shared by its rows).
    pub source: Arc<RelPath>,
    /// Its line.
    pub line: u64,
}

/// How a [`View`] reads a file's bytes.
pub type ReadFn<'a> = Box<dyn Fn(&RelPath, &Side) -> Result<Vec<u8>> + Sync + 'a>;

/// The files of one plane state, as governance sees them.
pub struct View<'a> {
    /// Every file and symlink (not directories), sorted by path (shared
    /// with the [`Model`] loaded from the view when nothing is exempt).
    pub files: Arc<Files>,
    read: ReadFn<'a>,
}

impl<'a> View<'a> {
    /// A view of the tree `root` (from `src`), reading file bytes with `read`.
    ///
    /// # Errors
    /// Store damage while loading trees.
    pub fn of_tree(
        src: &TreeSource<'_>,
        root: &TreeId,
        read: impl Fn(&RelPath, &Side) -> Result<Vec<u8>> + Sync + 'a,
    ) -> Result<View<'a>> {
        let mut files: Vec<(RelPath, Side)> = flatten(src, root)?
            .into_iter()
            .filter(|(_, s)| s.kind != EntryKind::Dir)
            .collect();
        // A tree walk lists `a/x` before `a.b`; path-byte order is the other way.
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(View {
            files: Arc::new(Files::from_sorted(files)),
            read: Box::new(read),
        })
    }

    /// A view of explicit files (tests, and callers that list files themselves).
    pub fn of_files(
        files: BTreeMap<RelPath, Side>,
        read: impl Fn(&RelPath, &Side) -> Result<Vec<u8>> + Sync + 'a,
    ) -> View<'a> {
        View {
            files: Arc::new(Files::from_sorted(files.into_iter().collect())),
            read: Box::new(read),
        }
    }

    /// True when the state is governed (it has the frameworks registry).
    pub fn is_governed(&self) -> bool {
        self.get(FRAMEWORKS).is_some_and(|s| s.kind == EntryKind::File)
    }

    fn get(&self, path: &str) -> Option<&Side> {
        self.files.get(&RelPath::parse(path.as_bytes())?)
    }

    fn exists(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The bytes of the regular file at `path`; `Ok(None)` when there is none.
    fn read(&self, path: &RelPath) -> Result<Option<Vec<u8>>> {
        match self.files.get(path) {
            Some(side) if side.kind == EntryKind::File => (self.read)(path, side).map(Some),
            _ => Ok(None),
        }
    }
}

/// The governance model of one plane state: registries, rules and declarations.
#[derive(Debug, Default)]
pub struct Model {
    /// Frameworks by id.
    pub frameworks: BTreeMap<String, Framework>,
    /// Specs by id.
    pub specs: BTreeMap<String, Spec>,
    /// Packages by id.
    pub packages: BTreeMap<String, Package>,
    /// Parsed rules by framework id (frameworks whose rules file loaded).
    pub rules: BTreeMap<String, Rules>,
    /// Every declaration by declared path (two or more: two owners).
    pub declared: Declared,
    /// Files left out as exempt (matched a rules file's `exempt` glob).
    pub exempt: Vec<RelPath>,
    /// The files that count: every file of the view but the exempt ones.
    pub files: Arc<Files>,
    /// Findings met while loading (CP005, CP209), by pass.
    load_findings: Vec<Finding>,
    /// Registries that failed to load (their dependent checks are skipped).
    broken: BTreeSet<&'static str>,
    /// Some `.file_registry.csv` failed to parse: which files it owns is
    /// unknown, so unmapped, missing and stale-compiled findings would be noise.
    broken_sources: bool,
}

fn rel(path: &str) -> RelPath {
    RelPath::parse(path.as_bytes()).unwrap_or_else(RelPath::root)
}

fn bad_registry(e: RegistryError) -> Finding {
    let msg = if e.line == 0 {
        e.message
    } else {
        format!("line {}: {}", e.line, e.message)
    };
    Finding::new(Code::BadRegistry, rel(&e.file), msg)
}

/// A glob as governance uses it: `*` stays inside one directory, `**` crosses them.
fn glob(pattern: &str) -> std::result::Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("glob {pattern:?}: {}", e.kind()))
}

/// Builds one set from globs.
///
/// # Errors
/// The first invalid glob, as a sentence.
pub fn glob_set(patterns: &[String]) -> std::result::Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(glob(p)?);
    }
    b.build().map_err(|e| e.to_string())
}

impl Model {
    /// Loads every registry, rules file and `.file_registry.csv` of `view`.
    /// Problems become findings (CP005, CP209), never errors.
    ///
    /// # Errors
    /// Only failures to read the view itself (I/O, store damage).
    pub fn load(view: &View<'_>) -> Result<Model> {
        Model::load_with(view, &mut Parsed::new())
    }

    /// [`Model::load`], taking the `.file_registry.csv` tables already parsed
    /// in `parsed` (by the scan that read them, see
    /// [`plane::FusedGates`]) instead of reading them again; the rest are read.
    ///
    /// # Errors
    /// As [`Model::load`].
    pub fn load_with(view: &View<'_>, parsed: &mut Parsed) -> Result<Model> {
        let mut m = Model::default();
        m.load_frameworks(view)?;
        m.load_specs(view)?;
        m.load_packages(view)?;
        m.load_rules(view)?;
        // The same rule as the scan's (registries are never exempt), for views of
        // stored trees and of scans that did not apply these globs.
        let globs: Vec<String> = m.rules.values().flat_map(|r| r.exempt.clone()).collect();
        let exempt = (!globs.is_empty())
            .then(|| crate::scope::Exempt::new(globs).ok())
            .flatten();
        m.files = match &exempt {
            None => view.files.clone(),
            Some(e) => {
                let mut files = Vec::with_capacity(view.files.len());
                for (path, side) in view.files.iter() {
                    if e.matches(path, false) {
                        m.exempt.push(path.clone());
                    } else {
                        files.push((path.clone(), *side));
                    }
                }
                Arc::new(Files::from_sorted(files))
            }
        };
        m.load_declarations(view, parsed)?;
        Ok(m)
    }

    fn table(
        &mut self,
        view: &View<'_>,
        file: &'static str,
        required: &[&str],
        optional: &[&str],
    ) -> Result<Option<Table>> {
        let Some(bytes) = view.read(&rel(file))? else {
            // The packages registry is optional: absent means no packages.
            if file == PACKAGES {
                return Ok(None);
            }
            self.broken.insert(file);
            {
                self.load_findings.push(Finding::new(
                    Code::BadRegistry,
                    rel(file),
                    "missing; a governed plane needs it (governance.md lists its columns)",
                ));
            }
            return Ok(None);
        };
        match Table::parse(&bytes, file, required, optional) {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                self.broken.insert(file);
                self.load_findings.push(bad_registry(e));
                Ok(None)
            }
        }
    }

    fn row_problem(&mut self, file: &str, line: u64, msg: String) {
        self.load_findings.push(bad_registry(RegistryError {
            file: file.into(),
            line,
            message: msg,
        }));
    }

    fn load_frameworks(&mut self, view: &View<'_>) -> Result<()> {
        let Some(t) = self.table(view, FRAMEWORKS, &FRAMEWORK_COLUMNS, &["rules_path"])? else {
            return Ok(());
        };
        for r in t.rows() {
            let parsed = (|| -> std::result::Result<Framework, String> {
                check_id(r.get("id"), "FMWK-", "framework")?;
                let authorizes = list(r.get("authorizes"))?;
                let authorizes_set = glob_set(&authorizes)?;
                Ok(Framework {
                    line: r.line,
                    id: r.get("id").into(),
                    name: r.get("name").into(),
                    version: r.get("version").into(),
                    purpose: r.get("purpose").into(),
                    artifact_path: r.get("artifact_path").into(),
                    allowed_spec_types: list(r.get("allowed_spec_types"))?,
                    required_gates: list(r.get("required_gates"))?,
                    required_metadata: list(r.get("required_metadata"))?,
                    authorizes,
                    rules_path: Some(r.get("rules_path")).filter(|s| !s.is_empty()).map(str::to_string),
                    authorizes_set,
                })
            })();
            let problem = add_unique(&mut self.frameworks, "framework", parsed);
            if let Some(msg) = problem {
                self.row_problem(FRAMEWORKS, r.line, msg);
            }
        }
        Ok(())
    }

    fn load_specs(&mut self, view: &View<'_>) -> Result<()> {
        let cols = [
            "id",
            "framework_id",
            "entity_type",
            "artifact_path",
            "required_assets",
            "gates",
            "metadata",
        ];
        let Some(t) = self.table(view, SPECS, &cols, &[])? else {
            return Ok(());
        };
        for r in t.rows() {
            let parsed = (|| -> std::result::Result<Spec, String> {
                check_id(r.get("id"), "SPEC-", "spec")?;
                let required_assets = list(r.get("required_assets"))?;
                if let Some(w) = required_assets.iter().find(|a| a.contains(['*', '?', '[', '{'])) {
                    return Err(format!(
                        "required asset {w:?} has a wildcard; required assets are exact paths"
                    ));
                }
                Ok(Spec {
                    line: r.line,
                    id: r.get("id").into(),
                    framework_id: r.get("framework_id").into(),
                    entity_type: r.get("entity_type").into(),
                    artifact_path: r.get("artifact_path").into(),
                    required_assets,
                    gates: list(r.get("gates"))?,
                    metadata: metadata(r.get("metadata"))?,
                })
            })();
            let problem = add_unique(&mut self.specs, "spec", parsed);
            if let Some(msg) = problem {
                self.row_problem(SPECS, r.line, msg);
            }
        }
        Ok(())
    }

    fn load_packages(&mut self, view: &View<'_>) -> Result<()> {
        let cols = ["id", "version", "spec_id", "framework_id", "manifest_digest", "status"];
        let Some(t) = self.table(view, PACKAGES, &cols, &[])? else {
            return Ok(());
        };
        for r in t.rows() {
            let parsed = (|| -> std::result::Result<Package, String> {
                check_id(r.get("id"), "PKG-", "package")?;
                let digest = r.get("manifest_digest");
                if !digest.is_empty() && (digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit())) {
                    return Err(format!("manifest_digest {digest:?} is not 64 hex digits"));
                }
                let status = r.get("status");
                if status != "installed" && status != "uninstalled" {
                    return Err(format!("status {status:?} is not installed or uninstalled"));
                }
                Ok(Package {
                    line: r.line,
                    id: r.get("id").into(),
                    version: r.get("version").into(),
                    spec_id: r.get("spec_id").into(),
                    framework_id: r.get("framework_id").into(),
                    manifest_digest: digest.into(),
                    status: status.into(),
                })
            })();
            let problem = add_unique(&mut self.packages, "package", parsed);
            if let Some(msg) = problem {
                self.row_problem(PACKAGES, r.line, msg);
            }
        }
        Ok(())
    }

    fn load_rules(&mut self, view: &View<'_>) -> Result<()> {
        let wanted: Vec<(String, String)> = self
            .frameworks
            .values()
            .filter_map(|f| f.rules_path.clone().map(|p| (f.id.clone(), p)))
            .collect();
        for (fw, path) in wanted {
            let at = rel(&path);
            match view.read(&at)? {
                None => self.load_findings.push(
                    Finding::new(
                        Code::BadRules,
                        at,
                        format!("rules file of {fw} is missing (or not a regular file)"),
                    )
                    .owned_by(fw),
                ),
                Some(bytes) => match Rules::parse(&bytes, &path) {
                    Ok(r) => {
                        self.rules.insert(fw, r);
                    }
                    Err(msg) => self
                        .load_findings
                        .push(Finding::new(Code::BadRules, at, msg).owned_by(fw)),
                },
            }
        }
        Ok(())
    }

    fn load_declarations(&mut self, view: &View<'_>, done: &mut Parsed) -> Result<()> {
        let sources: Vec<RelPath> = self
            .files
            .iter()
            .filter(|(p, s)| s.kind == EntryKind::File && p.file_name() == Some(FILE_REGISTRY.as_bytes()))
            .map(|(p, _)| p.clone())
            .collect();
        // Read and parse in parallel (one registry per directory on a large
        // plane), then merge in path order so the result never depends on timing.
        use rayon::prelude::*;
        let mut ready = Vec::new();
        let mut todo = Vec::new();
        for src in sources {
            match done.remove(&src) {
                Some(t) => ready.push((src, Some(t))),
                None => todo.push(src),
            }
        }
        let mut parsed: Vec<(RelPath, Option<std::result::Result<Table, RegistryError>>)> = todo
            .into_par_iter()
            .map(|src| {
                let t = view.read(&src)?.map(|bytes| parse_file_registry(&bytes, &src));
                Ok((src, t))
            })
            .collect::<Result<_>>()?;
        parsed.extend(ready);
        parsed.sort_by(|a, b| a.0.cmp(&b.0));
        // Owner ids are shared: one allocation per owner, not per row.
        let mut owners: HashMap<String, Arc<str>> = HashMap::new();
        let mut rows = Vec::new();
        for (src, t) in parsed {
            let label = src.display();
            let t = match t {
                None => continue,
                Some(Ok(t)) => t,
                Some(Err(e)) => {
                    self.load_findings.push(bad_registry(e));
                    self.broken_sources = true;
                    continue;
                }
            };
            let dir = src.parent().unwrap_or_else(RelPath::root);
            let src = Arc::new(src);
            for r in t.rows() {
                let raw = r.get("file_path");
                let path = (!raw.is_empty() && !raw.starts_with('/') && !raw.ends_with('/'))
                    .then(|| RelPath::parse(raw.as_bytes()))
                    .flatten();
                let Some(path) = path else {
                    self.row_problem(
                        &label,
                        r.line,
                        format!(
                            "file_path {raw:?} must be a relative path below this directory (no `..`, no leading `/`)"
                        ),
                    );
                    continue;
                };
                let Some(kind) = OwnerKind::parse(r.get("owner_kind")) else {
                    self.row_problem(
                        &label,
                        r.line,
                        format!("owner_kind {:?} is not spec or package", r.get("owner_kind")),
                    );
                    continue;
                };
                let full = dir.join_path(&path);
                if !registry::representable(full.as_bytes()) {
                    self.row_problem(
                        &label,
                        r.line,
                        format!(
                            "declares {:?}, whose path has a comma, quote, line break or non-UTF-8 byte a registry cannot hold; rename the directory or file",
                            full.display()
                        ),
                    );
                    continue;
                }
                let id = r.get("owner_id");
                let owner_id = match owners.get(id) {
                    Some(a) => a.clone(),
                    None => owners.entry(id.to_string()).or_insert_with(|| Arc::from(id)).clone(),
                };
                rows.push((
                    full,
                    Declaration {
                        owner_id,
                        owner_kind: kind,
                        source: src.clone(),
                        line: r.line,
                    },
                ));
            }
        }
        self.declared = Declared::from_unsorted(rows);
        Ok(())
    }

    /// The owner of `path` (its first declaration), if any.
    pub fn owner(&self, path: &RelPath) -> Option<&Declaration> {
        self.declared.get(path).and_then(<[Declaration]>::first)
    }

    /// The spec an owner resolves to (a package through its `spec_id`).
    pub fn spec_of(&self, d: &Declaration) -> Option<&Spec> {
        match d.owner_kind {
            OwnerKind::Spec => self.specs.get(&*d.owner_id),
            OwnerKind::Package => self.packages.get(&*d.owner_id).and_then(|p| self.specs.get(&p.spec_id)),
        }
    }

    /// The framework an owner resolves to.
    pub fn framework_of(&self, d: &Declaration) -> Option<&Framework> {
        self.spec_of(d).and_then(|s| self.frameworks.get(&s.framework_id))
    }

    /// The ids of the gates that apply to files owned through `spec`: its
    /// framework's required gates, then the spec's own, without repeats.
    pub fn gate_ids(&self, spec: &Spec) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let fw = self.frameworks.get(&spec.framework_id);
        for g in fw
            .map(|f| f.required_gates.iter())
            .into_iter()
            .flatten()
            .chain(&spec.gates)
        {
            if !out.contains(g) {
                out.push(g.clone());
            }
        }
        out
    }

    /// The compiled ownership registry for this state (`governance.md`):
    /// sorted by path bytes, one row per declared path (its first
    /// declaration), the registry's own row and missing files without a hash.
    pub fn compiled(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.declared.len() * 120);
        self.compiled_pieces(|piece| {
            out.extend_from_slice(piece);
            true
        });
        out
    }

    /// True when `bytes` are exactly [`Model::compiled`], compared as the
    /// rows are made (the registry of a large plane is never built whole).
    pub fn compiled_equals(&self, bytes: &[u8]) -> bool {
        let mut rest = bytes;
        self.compiled_pieces(|piece| match rest.strip_prefix(piece) {
            Some(r) => {
                rest = r;
                true
            }
            None => false,
        }) && rest.is_empty()
    }

    /// Feeds the compiled registry to `emit` a line at a time; stops (and
    /// returns false) as soon as `emit` returns false.
    fn compiled_pieces(&self, mut emit: impl FnMut(&[u8]) -> bool) -> bool {
        let compiled = rel(COMPILED);
        let mut line = String::with_capacity(256);
        line.push_str(COMPILED_HEADER);
        line.push('\n');
        if !emit(line.as_bytes()) {
            return false;
        }
        // Declared is ordered by path bytes already.
        for j in join(&self.declared, &self.files) {
            let Some(decls) = j.decls else { continue };
            let (path, d) = (j.path, &decls[0]);
            line.clear();
            line.push_str(&String::from_utf8_lossy(path.as_bytes()));
            line.push(',');
            line.push_str(&d.owner_id);
            line.push(',');
            line.push_str(d.owner_kind.as_str());
            line.push(',');
            if let Some(s) = j.file.filter(|_| *path != compiled) {
                crate::id::push_hex(&s.id.0, &mut line);
            }
            line.push('\n');
            if !emit(line.as_bytes()) {
                return false;
            }
        }
        true
    }
}

/// `.file_registry.csv` tables parsed ahead of [`Model::load_with`], by path.
pub type Parsed = HashMap<RelPath, std::result::Result<Table, RegistryError>>;

/// Parses the `.file_registry.csv` at `path`.
///
/// # Errors
/// The first problem, naming `path` and the line.
pub fn parse_file_registry(bytes: &[u8], path: &RelPath) -> std::result::Result<Table, RegistryError> {
    Table::parse(bytes, &path.display(), &["file_path", "owner_id", "owner_kind"], &[])
}

/// A registry row with an id and a line (frameworks, specs, packages).
trait Registered {
    fn id(&self) -> &str;
    fn line(&self) -> u64;
}

macro_rules! registered {
    ($($t:ty),*) => {$(
        impl Registered for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn line(&self) -> u64 {
                self.line
            }
        }
    )*};
}
registered!(Framework, Spec, Package);

/// Adds a parsed row to `map` by its id; returns the problem to report at
/// the row's line instead: the row did not parse, or its id is taken.
fn add_unique<T: Registered>(
    map: &mut BTreeMap<String, T>,
    what: &str,
    parsed: std::result::Result<T, String>,
) -> Option<String> {
    match parsed {
        Err(msg) => Some(msg),
        Ok(row) => match map.get(row.id()) {
            Some(first) => Some(format!(
                "{what} {} is already defined on line {}",
                row.id(),
                first.line()
            )),
            None => {
                map.insert(row.id().to_string(), row);
                None
            }
        },
    }
}

/// Which passes [`check`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passes {
    /// Pass 0, ownership.
    pub ownership: bool,
    /// Pass 2, chain.
    pub chain: bool,
}

impl Passes {
    /// Passes 0 and 2.
    pub const STRUCTURE: Passes = Passes {
        ownership: true,
        chain: true,
    };
}

/// Pass 0: the files against the declarations and the compiled registry.
///
/// `compiled_check`: also compare the compiled registry in the view with
/// [`Model::compiled`] (CP006); off for `compile`, which is about to write it.
pub fn ownership_findings(m: &Model, view: &View<'_>, compiled_check: bool) -> Result<Vec<Finding>> {
    let mut out: Vec<Finding> = m.load_findings.iter().filter(|f| f.code.pass() == 0).cloned().collect();
    if m.broken_sources {
        // Until every .file_registry.csv parses, only its own problem is reported.
        sort(&mut out);
        return Ok(out);
    }
    let compiled = rel(COMPILED);
    for j in join(&m.declared, &m.files) {
        let path = j.path;
        let Some(decls) = j.decls else {
            // A file nobody declares.
            let why = if !registry::representable(path.as_bytes()) {
                " (its name has a comma, quote, line break or non-UTF-8 byte, which a registry cannot hold; rename it or exempt it)"
            } else {
                ""
            };
            let kind = j.file.map_or("file", |s| s.kind.name());
            out.push(Finding::new(
                Code::Unmapped,
                path.clone(),
                format!("{kind} has no owner in any {FILE_REGISTRY}{why}"),
            ));
            continue;
        };
        let owner = &*decls[0].owner_id;
        if decls.len() > 1 {
            let places: Vec<String> = decls
                .iter()
                .map(|d| format!("{}:{} ({})", d.source.display(), d.line, d.owner_id))
                .collect();
            out.push(
                Finding::new(
                    Code::TwoOwners,
                    path.clone(),
                    format!("declared {} times: {}", decls.len(), places.join(", ")),
                )
                .owned_by(owner),
            );
        }
        for d in decls {
            let known = match d.owner_kind {
                OwnerKind::Spec => m.specs.contains_key(&*d.owner_id) || m.broken.contains(SPECS),
                OwnerKind::Package => {
                    m.packages.contains_key(&*d.owner_id) || m.broken.contains(PACKAGES) && view.exists(PACKAGES)
                }
            };
            if !known {
                out.push(
                    Finding::new(
                        Code::UnknownOwner,
                        path.clone(),
                        format!(
                            "owner {} ({}, {}:{}) is not in {}",
                            d.owner_id,
                            d.owner_kind.as_str(),
                            d.source.display(),
                            d.line,
                            if d.owner_kind == OwnerKind::Spec {
                                SPECS
                            } else {
                                PACKAGES
                            }
                        ),
                    )
                    .owned_by(&*d.owner_id),
                );
            }
        }
        let present = j.file.is_some();
        // The compiled registry itself: `compile` is about to write it, and a
        // missing one is CP006.
        if !present && *path != compiled {
            let what = if view.files.contains_key(path) {
                "is exempt"
            } else {
                "does not exist"
            };
            out.push(
                Finding::new(
                    Code::DeclaredMissing,
                    path.clone(),
                    format!("declared in {}:{} but {what}", decls[0].source.display(), decls[0].line),
                )
                .owned_by(owner),
            );
        }
    }
    if compiled_check {
        out.extend(compiled_findings(m, view)?);
    }
    sort(&mut out);
    Ok(out)
}

fn compiled_findings(m: &Model, view: &View<'_>) -> Result<Vec<Finding>> {
    let at = rel(COMPILED);
    let Some(bytes) = view.read(&at)? else {
        return Ok(vec![Finding::new(
            Code::StaleCompiled,
            at,
            "the compiled ownership registry is missing",
        )]);
    };
    // Byte for byte what the sources compile to (the usual case): nothing to compare.
    if m.compiled_equals(&bytes) {
        return Ok(Vec::new());
    }
    let t = match Table::parse(&bytes, COMPILED, &["path", "owner_id", "owner_kind", "blake3"], &[]) {
        Ok(t) => t,
        Err(e) => return Ok(vec![bad_registry(e)]),
    };
    let mut have: BTreeMap<RelPath, (String, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for r in t.rows() {
        let p = RelPath::parse(r.get("path").as_bytes()).unwrap_or_else(RelPath::root);
        if have
            .insert(p.clone(), (r.get("owner_id").into(), r.get("owner_kind").into()))
            .is_some()
        {
            out.push(Finding::new(
                Code::StaleCompiled,
                p,
                format!("listed twice in {COMPILED} (line {})", r.line),
            ));
        }
    }
    for (path, decls) in m.declared.iter() {
        let d = &decls[0];
        match have.remove(path) {
            None => out.push(
                Finding::new(
                    Code::StaleCompiled,
                    path.clone(),
                    format!("declared in {} but not in {COMPILED}", d.source.display()),
                )
                .owned_by(&*d.owner_id),
            ),
            Some((id, kind)) if *id != *d.owner_id || kind != d.owner_kind.as_str() => out.push(
                Finding::new(
                    Code::StaleCompiled,
                    path.clone(),
                    format!(
                        "{COMPILED} says owner {id} ({kind}); {} says {} ({})",
                        d.source.display(),
                        d.owner_id,
                        d.owner_kind.as_str()
                    ),
                )
                .owned_by(&*d.owner_id),
            ),
            Some(_) => {}
        }
    }
    for (path, (id, _)) in have {
        out.push(
            Finding::new(
                Code::StaleCompiled,
                path,
                format!("in {COMPILED} but no {FILE_REGISTRY} declares it"),
            )
            .owned_by(id),
        );
    }
    Ok(out)
}

/// Pass 2: every chain from owner to framework, and the registries' own links.
pub fn chain_findings(m: &Model, view: &View<'_>) -> Vec<Finding> {
    let mut out: Vec<Finding> = m.load_findings.iter().filter(|f| f.code.pass() == 2).cloned().collect();
    let specs_at = rel(SPECS);
    let fw_at = rel(FRAMEWORKS);
    for f in m.frameworks.values() {
        if !view.exists(&f.artifact_path) {
            out.push(
                Finding::new(
                    Code::ArtifactMissing,
                    rel(&f.artifact_path),
                    format!("document of framework {} ({FRAMEWORKS}:{}) is missing", f.id, f.line),
                )
                .owned_by(&f.id),
            );
        }
        let rules = m.rules.get(&f.id);
        for g in &f.required_gates {
            if rules.is_some_and(|r| r.gate(g).is_none()) || rules.is_none() && f.rules_path.is_none() {
                out.push(
                    Finding::new(
                        Code::UnknownGate,
                        fw_at.clone(),
                        format!(
                            "line {}: framework {} requires gate {g:?}, which its rules file does not define",
                            f.line, f.id
                        ),
                    )
                    .owned_by(&f.id),
                );
            }
        }
    }
    for s in m.specs.values() {
        let Some(f) = m.frameworks.get(&s.framework_id) else {
            if !m.broken.contains(FRAMEWORKS) {
                out.push(
                    Finding::new(
                        Code::UnknownFramework,
                        specs_at.clone(),
                        format!(
                            "line {}: spec {} names framework {:?}, which is not in {FRAMEWORKS}",
                            s.line, s.id, s.framework_id
                        ),
                    )
                    .owned_by(&s.id),
                );
            }
            continue;
        };
        if !f.allowed_spec_types.contains(&s.entity_type) {
            out.push(
                Finding::new(
                    Code::EntityTypeNotAllowed,
                    specs_at.clone(),
                    format!(
                        "line {}: spec {} has entity type {:?}; framework {} allows {}",
                        s.line,
                        s.id,
                        s.entity_type,
                        f.id,
                        if f.allowed_spec_types.is_empty() {
                            "none".to_string()
                        } else {
                            f.allowed_spec_types.join(", ")
                        }
                    ),
                )
                .owned_by(&s.id),
            );
        }
        for key in &f.required_metadata {
            if !s.metadata.iter().any(|(k, _)| k == key) {
                out.push(
                    Finding::new(
                        Code::MetadataMissing,
                        specs_at.clone(),
                        format!(
                            "line {}: spec {} lacks metadata {key:?}, which framework {} requires",
                            s.line, s.id, f.id
                        ),
                    )
                    .owned_by(&s.id),
                );
            }
        }
        if !view.exists(&s.artifact_path) {
            out.push(
                Finding::new(
                    Code::ArtifactMissing,
                    rel(&s.artifact_path),
                    format!("document of spec {} ({SPECS}:{}) is missing", s.id, s.line),
                )
                .owned_by(&s.id),
            );
        }
        for a in &s.required_assets {
            if !view.exists(a) {
                out.push(
                    Finding::new(
                        Code::RequiredAssetMissing,
                        rel(a),
                        format!("required asset of spec {} ({SPECS}:{}) is missing", s.id, s.line),
                    )
                    .owned_by(&s.id),
                );
            }
        }
        if let Some(rules) = m.rules.get(&f.id) {
            for g in &s.gates {
                if rules.gate(g).is_none() {
                    out.push(
                        Finding::new(
                            Code::UnknownGate,
                            specs_at.clone(),
                            format!(
                                "line {}: spec {} names gate {g:?}, which the rules of {} do not define",
                                s.line, s.id, f.id
                            ),
                        )
                        .owned_by(&s.id),
                    );
                }
            }
        }
    }
    for p in m.packages.values() {
        let problem = match m.specs.get(&p.spec_id) {
            None => Some(format!("names spec {:?}, which is not in {SPECS}", p.spec_id)),
            Some(s) if s.framework_id != p.framework_id => Some(format!(
                "says framework {} but its spec {} is bound to {}",
                p.framework_id, s.id, s.framework_id
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            out.push(
                Finding::new(
                    Code::PackageChain,
                    rel(PACKAGES),
                    format!("line {}: package {} {problem}", p.line, p.id),
                )
                .owned_by(&p.id),
            );
        }
    }
    for (path, decls, _) in owned(&m.declared, &m.files) {
        let d = &decls[0];
        if d.owner_kind == OwnerKind::Package
            && let Some(p) = m.packages.get(&*d.owner_id)
            && p.status != "installed"
        {
            out.push(
                Finding::new(
                    Code::PackageNotInstalled,
                    path.clone(),
                    format!("owned by package {}, whose status is {}", p.id, p.status),
                )
                .owned_by(&*d.owner_id),
            );
        }
        if let Some(f) = m.framework_of(d)
            && !f.authorizes_set.is_match(path.as_os_str())
        {
            out.push(f.not_authorized(path, &d.owner_id));
        }
    }
    sort(&mut out);
    out
}

/// The `required_files` gates (pass 3, per spec): each listed path,
/// relative to the directory of the spec's document, must exist.
pub fn required_file_findings(m: &Model, view: &View<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in m.specs.values() {
        let Some(rules) = m.rules.get(&s.framework_id) else {
            continue;
        };
        let dir = rel(&s.artifact_path).parent().unwrap_or_else(RelPath::root);
        for id in m.gate_ids(s) {
            let Some(gate) = rules.gate(&id) else { continue };
            if let GateCheck::RequiredFiles { files } = &gate.check {
                for f in files {
                    let want = RelPath::parse(f.as_bytes()).map(|p| dir.join_path(&p));
                    if want.as_ref().is_none_or(|p| !view.files.contains_key(p)) {
                        out.push(
                            Finding::new(
                                Code::RequiredFileMissing,
                                want.unwrap_or_else(|| dir.clone()),
                                format!(
                                    "gate {id:?} of framework {:?} requires {f:?} next to the document of spec {}",
                                    s.framework_id, s.id
                                ),
                            )
                            .owned_by(&s.id),
                        );
                    }
                }
            }
        }
    }
    out
}

/// Sorts findings as every governance report lists them: by pass, path, code.
pub fn sort(v: &mut [Finding]) {
    v.sort_by(|a, b| {
        a.code
            .pass()
            .cmp(&b.code.pass())
            .then(a.path.cmp(&b.path))
            .then(a.code.cmp(&b.code))
    });
}

/// Loads the model of `view` and compiles its ownership registry.
///
/// # Errors
/// [`Error::Refused`] with the pass-0 findings that make the compiled
/// registry wrong (a malformed registry, two owners); I/O and store damage.
pub fn compile(view: &View<'_>) -> Result<(Model, Vec<u8>, Vec<Finding>)> {
    let m = Model::load(view)?;
    let findings = ownership_findings(&m, view, false)?;
    let fatal: Vec<Finding> = findings
        .iter()
        .filter(|f| matches!(f.code, Code::BadRegistry | Code::TwoOwners))
        .cloned()
        .collect();
    if !fatal.is_empty() {
        return Err(Error::Refused {
            action: "compile",
            findings: fatal,
        });
    }
    let bytes = m.compiled();
    Ok((m, bytes, findings))
}

/// Passes 0 and 2 on `view` (what `rollback` and `restore` check on the
/// state they are about to write, and `snapshot` on what it is about to seal).
///
/// # Errors
/// I/O and store damage while reading the view.
pub fn check_structure(view: &View<'_>, passes: Passes) -> Result<(Model, Vec<Finding>)> {
    let m = Model::load(view)?;
    let mut out = Vec::new();
    if passes.ownership {
        out.extend(ownership_findings(&m, view, true)?);
    }
    if passes.chain {
        out.extend(chain_findings(&m, view));
    }
    Ok((m, out))
}

/// The glob of `f` that authorizes `path`, for `explain`.
pub fn authorizing(f: &Framework, path: &RelPath) -> Option<String> {
    f.authorizing_glob(path).map(str::to_string)
}

/// The gates of a model and the files they apply to ([`gate_plan`]).
#[derive(Debug, Default)]
pub struct GatePlan {
    /// Every gate of every loaded rules file, with its framework id.
    pub gates: Vec<(String, crate::gate::Gate)>,
    /// For each owned file: its path, owner and the indices (into `gates`)
    /// of the per-file gates that apply, before the gates' own `paths` filters.
    pub jobs: Vec<(RelPath, String, Vec<usize>)>,
}

/// Every gate of the model as (framework id, gate), and for each owned
/// file the indices of the gates that apply (before the gates' own `paths`
/// filters). Files whose chain is broken get no gates (pass 2 reports them).
pub fn gate_plan(m: &Model) -> GatePlan {
    gate_plan_of(m, true)
}

/// For each spec id, the indices of the per-file gates that apply to its files.
pub type SpecGates = HashMap<String, Vec<usize>>;

/// Every gate of every loaded rules file, with its framework id, and for
/// each spec the indices (into those gates) of the per-file gates that apply
/// to the files it owns (`required_files` gates excluded: they are per spec).
pub fn spec_gates(m: &Model) -> (Vec<(String, crate::gate::Gate)>, SpecGates) {
    let mut gates = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for (fw, rules) in &m.rules {
        for g in &rules.gates {
            index.insert((fw.clone(), g.id.clone()), gates.len());
            gates.push((fw.clone(), g.clone()));
        }
    }
    let mut by_spec: SpecGates = HashMap::new();
    for s in m.specs.values() {
        let ids = m
            .gate_ids(s)
            .into_iter()
            .filter_map(|g| index.get(&(s.framework_id.clone(), g)).copied())
            .filter(|&i| !matches!(gates[i].1.check, GateCheck::RequiredFiles { .. }))
            .collect();
        by_spec.insert(s.id.clone(), ids);
    }
    (gates, by_spec)
}

/// [`gate_plan`]; with `present` false, for every declared path, present or not.
pub fn gate_plan_of(m: &Model, present: bool) -> GatePlan {
    let (gates, by_spec) = spec_gates(m);
    let mut jobs = Vec::new();
    for j in join(&m.declared, &m.files) {
        let Some(decls) = j.decls else { continue };
        if present && j.file.is_none() {
            continue;
        }
        let (path, d) = (j.path, &decls[0]);
        if let Some(s) = m.spec_of(d)
            && let Some(ids) = by_spec.get(&s.id)
            && !ids.is_empty()
        {
            jobs.push((path.clone(), d.owner_id.to_string(), ids.clone()));
        }
    }
    GatePlan { gates, jobs }
}
