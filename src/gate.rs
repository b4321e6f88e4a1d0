//! Gates: named, machine-checkable rules a framework requires (no secrets,
//! size limits, required README sections, required files, allowed paths).
//!
//! A framework's rules file (JSON, shape in `governance.md` and the README)
//! declares its gates and its exemption globs; [`Rules::parse`] reads it with
//! `deny_unknown_fields`. The per-file gates run through one [`Engine`]
//! (reused by `pack` later): content gates stream each file once through
//! ripgrep's searcher (`grep-searcher` + `grep-regex`), in parallel, skip
//! binary files as ripgrep does (a NUL byte) and never load a file whole.

use crate::control::Control;
use crate::error::{Error, Result};
use crate::finding::{Code, Finding};
use crate::fsys::{self, Dir, EntryType};
use crate::path::RelPath;
use crate::scope::Scope;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, MmapChoice, Searcher, SearcherBuilder, Sink, SinkMatch};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// A parsed rules file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The gates this framework can require, by id.
    #[serde(default)]
    pub gates: Vec<Gate>,
    /// Globs of paths that are neither owned nor hashed, only counted.
    #[serde(default)]
    pub exempt: Vec<String>,
}

/// One gate of a rules file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(from = "GateJson")]
pub struct Gate {
    /// Id, unique within its rules file; `required_gates` and a spec's `gates` name it.
    pub id: String,
    /// Globs limiting the files the gate applies to (empty: every file it governs).
    pub paths: Vec<String>,
    /// What the gate checks.
    pub check: Check,
}

/// A gate object as written: `id`, `kind`, optional `paths` and the kind's own keys.
/// (serde cannot combine `flatten` with `deny_unknown_fields`, so the common keys
/// are read through this wrapper.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateJson {
    id: String,
    #[serde(default)]
    paths: Vec<String>,
    kind: Kind,
    #[serde(default)]
    default_secrets: Option<bool>,
    #[serde(default)]
    patterns: Option<Vec<Pattern>>,
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    max_lines: Option<u64>,
    #[serde(default)]
    sections: Option<Vec<String>>,
    #[serde(default)]
    files: Option<Vec<String>>,
    #[serde(default)]
    globs: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Kind {
    ForbiddenContent,
    MaxSize,
    ReadmeSections,
    RequiredFiles,
    AllowedPaths,
}

impl From<GateJson> for Gate {
    fn from(g: GateJson) -> Gate {
        let check = match g.kind {
            Kind::ForbiddenContent => Check::ForbiddenContent {
                default_secrets: g.default_secrets.unwrap_or(false),
                patterns: g.patterns.unwrap_or_default(),
            },
            Kind::MaxSize => Check::MaxSize {
                max_bytes: g.max_bytes,
                max_lines: g.max_lines,
            },
            Kind::ReadmeSections => Check::ReadmeSections {
                sections: g.sections.unwrap_or_default(),
            },
            Kind::RequiredFiles => Check::RequiredFiles {
                files: g.files.unwrap_or_default(),
            },
            Kind::AllowedPaths => Check::AllowedPaths {
                globs: g.globs.unwrap_or_default(),
            },
        };
        Gate {
            id: g.id,
            paths: g.paths,
            check,
        }
    }
}

impl GateJson {
    /// Keys that belong to another kind than the gate's.
    fn foreign_keys(&self) -> Vec<&'static str> {
        let k = self.kind;
        let mut out = Vec::new();
        let mut key = |present: bool, name: &'static str, ok: bool| {
            if present && !ok {
                out.push(name);
            }
        };
        let fc = matches!(k, Kind::ForbiddenContent);
        let ms = matches!(k, Kind::MaxSize);
        key(self.default_secrets.is_some(), "default_secrets", fc);
        key(self.patterns.is_some(), "patterns", fc);
        key(self.max_bytes.is_some(), "max_bytes", ms);
        key(self.max_lines.is_some(), "max_lines", ms);
        key(self.sections.is_some(), "sections", matches!(k, Kind::ReadmeSections));
        key(self.files.is_some(), "files", matches!(k, Kind::RequiredFiles));
        key(self.globs.is_some(), "globs", matches!(k, Kind::AllowedPaths));
        out
    }
}

/// What a gate checks (the `kind` key of a gate object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No line may match any pattern.
    ForbiddenContent {
        /// Add the built-in secrets set ([`default_secrets`]).
        default_secrets: bool,
        /// Further named patterns (Rust `regex` syntax).
        patterns: Vec<Pattern>,
    },
    /// Size limits.
    MaxSize {
        /// At most this many bytes.
        max_bytes: Option<u64>,
        /// At most this many lines (`\n`-terminated, plus a final unterminated one).
        max_lines: Option<u64>,
    },
    /// Markdown headings that must appear (case-insensitive, trimmed).
    ReadmeSections {
        /// Section names.
        sections: Vec<String>,
    },
    /// Paths relative to the directory of each spec's artifact that must exist.
    RequiredFiles {
        /// Relative paths.
        files: Vec<String>,
    },
    /// A governed file must match one of these globs.
    AllowedPaths {
        /// Globs.
        globs: Vec<String>,
    },
}

impl Check {
    /// The `kind` as written in a rules file.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Check::ForbiddenContent { .. } => "forbidden_content",
            Check::MaxSize { .. } => "max_size",
            Check::ReadmeSections { .. } => "readme_sections",
            Check::RequiredFiles { .. } => "required_files",
            Check::AllowedPaths { .. } => "allowed_paths",
        }
    }
}

/// A named regular expression of a `forbidden_content` gate.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// Short name shown in findings (the match itself is never printed).
    pub name: String,
    /// Rust `regex` syntax, matched per line.
    pub regex: String,
}

impl Rules {
    /// Parses a rules file.
    ///
    /// # Errors
    /// One line naming `file`, the line and column, and what is wrong
    /// (unknown key, wrong type, duplicate gate id, invalid regex or glob).
    pub fn parse(bytes: &[u8], file: &str) -> std::result::Result<Rules, String> {
        let json_err =
            |e: serde_json::Error| format!("{file}:{}:{}: {}", e.line(), e.column(), strip_position(&e.to_string()));
        // Read twice: once as raw gate objects, to refuse keys of another kind
        // (`max_bytes` on a `readme_sections` gate), once into the typed shape.
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            gates: Vec<GateJson>,
        }
        let rules: Rules = serde_json::from_slice(bytes).map_err(json_err)?;
        let raw: Raw = serde_json::from_slice(bytes).map_err(json_err)?;
        for g in &raw.gates {
            if let Some(k) = g.foreign_keys().first() {
                return Err(format!(
                    "{file}: gate {:?}: key `{k}` does not belong to this kind of gate",
                    g.id
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for g in &rules.gates {
            if !seen.insert(g.id.as_str()) {
                return Err(format!("{file}: gate id {:?} is defined twice", g.id));
            }
            for glob in g.paths.iter().chain(match &g.check {
                Check::AllowedPaths { globs } => globs.iter(),
                _ => [].iter(),
            }) {
                globset::Glob::new(glob).map_err(|e| format!("{file}: gate {:?}: glob {glob:?}: {e}", g.id))?;
            }
            if let Check::ForbiddenContent { patterns, .. } = &g.check {
                for p in patterns {
                    regex::bytes::Regex::new(&p.regex).map_err(|e| {
                        format!(
                            "{file}: gate {:?}: pattern {:?}: {}",
                            g.id,
                            p.name,
                            one_line(&e.to_string())
                        )
                    })?;
                }
            }
        }
        // An exact path (no glob syntax) is always valid: not compiled here.
        for glob in rules.exempt.iter().filter(|g| !crate::scope::is_exact(g)) {
            globset::Glob::new(glob).map_err(|e| format!("{file}: exempt glob {glob:?}: {e}"))?;
        }
        Ok(rules)
    }

    /// The gate with this id.
    pub fn gate(&self, id: &str) -> Option<&Gate> {
        self.gates.iter().find(|g| g.id == id)
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// The built-in secrets set
// ---------------------------------------------------------------------------

/// The built-in secrets set a `forbidden_content` gate adds with
/// `"default_secrets": true`, each with a short name for findings.
///
/// Every pattern starts with a literal (or a small set of them) so the
/// searcher's literal prefilter skips most of a file without running the
/// regex engine. The case-insensitive keys are written so the literal
/// extraction stops early (`aws[_.-]*`, `pass_*w(or)?d`): spelled as
/// `(?i:password|passwd|pwd)` their case variants (hundreds) overflow the
/// prefilter and the whole set ran 3–4 times slower on the kernel tree. Word boundaries are ASCII (`(?-u:\b)`) so the lazy DFA can
/// run them. The OpenAI pattern is written so that it never fires on an
/// Anthropic key (`sk-ant-…`), which has its own name.
pub fn default_secrets() -> Vec<Pattern> {
    let p = |name: &str, regex: &str| Pattern {
        name: name.to_string(),
        regex: regex.to_string(),
    };
    vec![
        p(
            "private-key",
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
        ),
        p(
            "aws-access-key-id",
            r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
        ),
        p(
            "aws-secret-access-key",
            r#"(?i-u:aws)[_.-]*(?i-u:secret)[_.-]?(?i-u:access)[_.-]?(?i-u:key)["']?[ \t]*(?::=|=>|[:=])[ \t]*["']?[A-Za-z0-9/+]{40}"#,
        ),
        p("github-token", r"gh[pousr]_[A-Za-z0-9]{36,}"),
        p("github-fine-grained-token", r"github_pat_[A-Za-z0-9_]{82}"),
        p("slack-token", r"xox[baprs]-[A-Za-z0-9-]{10,}"),
        p(
            "slack-webhook",
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{20,}",
        ),
        p("anthropic-key", r"sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{20,}"),
        // `sk-` then at least 20 key characters that do not begin with `ant-`
        // (the regex crate has no look-ahead: the four branches spell "not ant-").
        p(
            "openai-key",
            r"(?-u:\b)sk-(?:[A-Zb-z0-9_][A-Za-z0-9_-]{19,}|a[A-Za-mo-z0-9_-][A-Za-z0-9_-]{18,}|an[A-Za-su-z0-9_-][A-Za-z0-9_-]{17,}|ant[A-Za-z0-9_][A-Za-z0-9_-]{16,})",
        ),
        p(
            "password-assignment",
            // A value that starts with `${` or `{{` is a reference (`"${DB_PASSWORD}"`,
            // `"{{ vault_pw }}"`), not a secret; `"$ecret"` still is one.
            r#"(?:(?i-u:pass)_*(?i-u:w(?:or)?d)|(?i-u:pwd))["']*[ \t]*(?::=|=>|[:=])[ \t]*(?:"(?:[^"$\{\r\n]|\$[^\{"\r\n]|\{[^\{"\r\n])[^"\r\n]*"|'(?:[^'$\{\r\n]|\$[^\{'\r\n]|\{[^\{'\r\n])[^'\r\n]*')"#,
        ),
    ]
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

/// A Markdown ATX heading line (up to three spaces of indent, one to six `#`,
/// then a blank or the end of the line). Only added to a file's matcher when
/// a `readme_sections` gate applies to it.
const HEADING: &str = r"^ {0,3}#{1,6}(?:[ \t]|$)";

/// The longest line the searcher holds before it gives up on a file (the
/// searcher's buffer grows to the longest line; this bounds its memory).
const MAX_LINE: usize = 64 << 20;

/// Files of one directory handled by one task (one directory open per task).
const CHUNK: usize = 64;

/// The per-file gates of some frameworks, compiled once: globs, patterns,
/// and (lazily, cached) one matcher per combination of content gates a file
/// can meet.
///
/// Globs (`paths`, `allowed_paths`) are matched against the plane-relative
/// path with `*` and `?` not crossing `/` (use `**` for any depth).
pub struct Engine {
    gates: Vec<(String, Gate)>,
    /// Per gate: its `paths` filter (`None`: every file).
    filters: Vec<Option<GlobSet>>,
    /// Per gate: an `allowed_paths` gate's globs.
    allowed: Vec<Option<GlobSet>>,
    /// Per gate: a `forbidden_content` gate's patterns, defaults included.
    patterns: Vec<Vec<Pattern>>,
    /// Per gate: a `readme_sections` gate's sections, lowercased and trimmed.
    sections: Vec<Vec<String>>,
    plans: Mutex<HashMap<PlanKey, Arc<Plan>>>,
    compiled: Mutex<HashMap<Vec<String>, Arc<Compiled>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("gates", &self.gates)
            .finish_non_exhaustive()
    }
}

/// One file to check: its path, its owner (named in every finding) and the
/// gates (indices into [`Engine::gates`]) its ownership chain applies; the
/// engine further keeps only the gates whose `paths` match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileJob {
    /// Plane-relative path of the file.
    pub path: RelPath,
    /// The owning spec or package id.
    pub owner: String,
    /// Indices into [`Engine::gates`].
    pub gates: Vec<usize>,
}

/// What [`Engine::run`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateReport {
    /// Findings, sorted by path then code (then line, for one file's CP301s).
    pub findings: Vec<Finding>,
    /// Files a content gate skipped because they hold a NUL byte (sorted).
    pub binary_skipped: Vec<RelPath>,
    /// Files whose contents were read.
    pub files_read: u64,
    /// Bytes read from them.
    pub bytes_read: u64,
}

/// Which content gates meet in one file: the `forbidden_content` gates (sorted
/// indices) and whether headings must be collected.
type PlanKey = (Vec<usize>, bool);

/// A compiled matcher for one [`PlanKey`]: a line matches `matcher` when some
/// slot's regex matches it; `set` (same patterns, same order) says which.
struct Plan {
    compiled: Arc<Compiled>,
    slots: Vec<Slot>,
}

/// The regexes of a plan, compiled; shared by every plan with the same
/// regex list (each framework's `no-secrets` gate is its own gate, but
/// they all compile to the same built-in set once).
struct Compiled {
    matcher: RegexMatcher,
    set: regex::bytes::RegexSet,
}

#[derive(Clone, Copy)]
enum Slot {
    /// Pattern `pattern` of gate `gate`.
    Forbidden { gate: usize, pattern: usize },
    /// A Markdown heading.
    Heading,
}

/// The gates that apply to one file, by what they need.
#[derive(Default)]
struct Applies {
    forbidden: Vec<usize>,
    readme: Vec<usize>,
    lines: Vec<(usize, u64)>,
    bytes: Vec<(usize, u64)>,
}

impl Applies {
    fn needs_file(&self) -> bool {
        !(self.forbidden.is_empty() && self.readme.is_empty() && self.lines.is_empty() && self.bytes.is_empty())
    }

    fn needs_content(&self) -> bool {
        !(self.forbidden.is_empty() && self.readme.is_empty() && self.lines.is_empty())
    }

    fn plan_key(&self) -> Option<PlanKey> {
        (!self.forbidden.is_empty() || !self.readme.is_empty())
            .then(|| (self.forbidden.clone(), !self.readme.is_empty()))
    }
}

/// What checking one file gave.
#[derive(Default)]
struct Outcome {
    findings: Vec<Finding>,
    binary: bool,
    read: bool,
    bytes: u64,
}

fn glob_set(globs: &[String]) -> std::result::Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("glob {g:?}: {}", one_line(&e.to_string())))?;
        b.add(glob);
    }
    b.build().map_err(|e| one_line(&e.to_string()))
}

/// The searcher every content gate uses: line numbers, a NUL means binary
/// (stop), no BOM sniffing, no memory maps, lines of at most [`MAX_LINE`].
fn searcher_builder() -> SearcherBuilder {
    let mut b = SearcherBuilder::new();
    b.line_number(true)
        .binary_detection(BinaryDetection::quit(0))
        .bom_sniffing(false)
        .memory_map(MmapChoice::never())
        .heap_limit(Some(MAX_LINE));
    b
}

fn matcher_builder() -> RegexMatcherBuilder {
    let mut b = RegexMatcherBuilder::new();
    b.multi_line(true).line_terminator(Some(b'\n'));
    b
}

impl Engine {
    /// Compiles the gates (framework id, gate) once.
    ///
    /// # Errors
    /// One line naming the framework, the gate and the glob or pattern that
    /// does not compile.
    pub fn new(gates: Vec<(String, Gate)>) -> std::result::Result<Engine, String> {
        let mut filters = Vec::with_capacity(gates.len());
        let mut allowed = Vec::with_capacity(gates.len());
        let mut patterns = Vec::with_capacity(gates.len());
        let mut sections = Vec::with_capacity(gates.len());
        let mut all: Vec<String> = Vec::new();
        let mut checked = std::collections::HashSet::new();
        // (index in `all`, framework, gate, pattern name): for the error.
        let mut named: Vec<(usize, &str, &str, String)> = Vec::new();
        for (fw, g) in &gates {
            let at = |e: String| format!("framework {fw:?}, gate {:?}: {e}", g.id);
            filters.push(if g.paths.is_empty() {
                None
            } else {
                Some(glob_set(&g.paths).map_err(at)?)
            });
            allowed.push(match &g.check {
                Check::AllowedPaths { globs } => Some(glob_set(globs).map_err(at)?),
                _ => None,
            });
            patterns.push(match &g.check {
                Check::ForbiddenContent {
                    default_secrets: d,
                    patterns: own,
                } => {
                    let mut ps = if *d { default_secrets() } else { Vec::new() };
                    ps.extend(own.iter().cloned());
                    for p in ps.iter().filter(|p| checked.insert(p.regex.clone())) {
                        all.push(p.regex.clone());
                        named.push((all.len() - 1, fw.as_str(), g.id.as_str(), p.name.clone()));
                    }
                    ps
                }
                _ => Vec::new(),
            });
            sections.push(match &g.check {
                Check::ReadmeSections { sections } => sections.iter().map(|s| s.trim().to_lowercase()).collect(),
                _ => Vec::new(),
            });
        }
        // Every pattern at once (the largest matcher a file can need) must
        // compile; when they do not, the first that does not on its own is
        // named. (One compile instead of one per pattern: the built-in
        // patterns are a few dozen, and an install builds an engine before
        // its first file.)
        all.push(HEADING.to_string());
        if let Err(e) = matcher_builder().build_many(&all) {
            for (i, fw, gate, name) in &named {
                let bad = regex::bytes::Regex::new(&all[*i])
                    .err()
                    .map(|e| e.to_string())
                    .or_else(|| matcher_builder().build(&all[*i]).err().map(|e| e.to_string()));
                if let Some(e) = bad {
                    return Err(format!(
                        "framework {fw:?}, gate {gate:?}: pattern {name:?}: {}",
                        one_line(&e)
                    ));
                }
            }
            return Err(format!("the gates' patterns together: {}", one_line(&e.to_string())));
        }
        drop(named);
        Ok(Engine {
            gates,
            filters,
            allowed,
            patterns,
            sections,
            plans: Mutex::new(HashMap::new()),
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// The gates, as given to [`Engine::new`]; [`FileJob::gates`] indexes them.
    pub fn gates(&self) -> &[(String, Gate)] {
        &self.gates
    }

    /// Runs the per-file gates (`forbidden_content`, `max_size`,
    /// `readme_sections`, `allowed_paths`; `required_files` is the caller's)
    /// over `jobs`, in parallel, reading each file at most once and streaming
    /// it (the searcher's buffer holds one line at a time, at most 64 MiB).
    ///
    /// Files are opened beneath the plane root without following symlinks;
    /// a symlink or other non-regular file gets no per-file gate but
    /// `allowed_paths`. A file that cannot be opened or read is a CP105
    /// finding. A file holding a NUL byte is binary: content gates
    /// (patterns, lines, sections) skip it and it is listed in
    /// [`GateReport::binary_skipped`]; `max_bytes` still applies. As with
    /// ripgrep, the file is read in 64 KiB buffers and each is checked for a
    /// NUL before it is searched: matches in buffers read before the first
    /// NUL are still reported.
    ///
    /// # Errors
    /// [`Error::Interrupted`] when `ctl` asks to stop (between files).
    pub fn run(&self, scope: &Scope, jobs: &[FileJob], ctl: Control<'_>) -> Result<GateReport> {
        ctl.check()?;
        // Which gates apply to which file; path-only gates answer right away.
        let planned: Vec<(Applies, Vec<Finding>)> = jobs.par_iter().map(|j| self.applies(j)).collect();
        let plans = self.plans_for(planned.iter().filter_map(|(a, _)| a.plan_key()), scope)?;

        let chunks = dir_chunks(jobs, |i| planned[i].0.needs_file());
        // Jobs only path gates apply to are done already.
        let opened: usize = chunks.iter().map(Vec::len).sum();
        ctl.progress.inc((jobs.len() - opened) as u64, 0);
        let searcher = searcher_builder();
        let outcomes: Vec<Vec<(usize, Outcome)>> = chunks
            .par_iter()
            .map_init(
                || (searcher.build(), Vec::new()),
                |(searcher, buf), chunk| -> Result<Vec<(usize, Outcome)>> {
                    let first = &jobs[chunk[0]].path;
                    let parent = first.parent().unwrap_or_default();
                    let dir = match scope.root().open_beneath(&parent) {
                        Ok(d) => d,
                        Err(e) => {
                            return Ok(chunk
                                .iter()
                                .map(|&i| {
                                    ctl.progress.inc(1, 0);
                                    let j = &jobs[i];
                                    let f = unreadable(&j.path, &j.owner, &e);
                                    (
                                        i,
                                        Outcome {
                                            findings: vec![f],
                                            ..Outcome::default()
                                        },
                                    )
                                })
                                .collect());
                        }
                    };
                    let mut out = Vec::with_capacity(chunk.len());
                    for &i in chunk {
                        ctl.check()?;
                        let a = &planned[i].0;
                        let plan = a.plan_key().map(|k| &*plans[&k]);
                        let o = self.check_file(&dir, &jobs[i], a, plan, searcher, buf);
                        ctl.progress.inc(1, o.bytes);
                        out.push((i, o));
                    }
                    Ok(out)
                },
            )
            .collect::<Result<_>>()?;

        let mut report = GateReport::default();
        for (_, found) in planned {
            report.findings.extend(found);
        }
        for (i, o) in outcomes.into_iter().flatten() {
            report.findings.extend(o.findings);
            if o.binary {
                report.binary_skipped.push(jobs[i].path.clone());
            }
            if o.read {
                report.files_read += 1;
                report.bytes_read += o.bytes;
            }
        }
        report
            .findings
            .sort_by(|a, b| a.path.cmp(&b.path).then(a.code.cmp(&b.code)));
        report.binary_skipped.sort();
        report.binary_skipped.dedup();
        Ok(report)
    }

    /// The gates of `job` whose `paths` match, sorted by need; the
    /// `allowed_paths` findings (path only) already made.
    fn applies(&self, job: &FileJob) -> (Applies, Vec<Finding>) {
        let mut a = Applies::default();
        let mut found = Vec::new();
        let path = std::path::Path::new(job.path.as_os_str());
        let mut gates = job.gates.clone();
        gates.sort_unstable();
        gates.dedup();
        for g in gates {
            let Some((fw, gate)) = self.gates.get(g) else { continue };
            if let Some(f) = &self.filters[g]
                && !f.is_match(path)
            {
                continue;
            }
            match &gate.check {
                Check::ForbiddenContent { .. } => {
                    if !self.patterns[g].is_empty() {
                        a.forbidden.push(g);
                    }
                }
                Check::MaxSize { max_bytes, max_lines } => {
                    if let Some(m) = max_bytes {
                        a.bytes.push((g, *m));
                    }
                    if let Some(m) = max_lines {
                        a.lines.push((g, *m));
                    }
                }
                Check::ReadmeSections { .. } => {
                    if !self.sections[g].is_empty() {
                        a.readme.push(g);
                    }
                }
                Check::RequiredFiles { .. } => {}
                Check::AllowedPaths { globs } => {
                    if !self.allowed[g].as_ref().is_some_and(|s| s.is_match(path)) {
                        found.push(
                            Finding::new(
                                Code::PathNotAllowed,
                                job.path.clone(),
                                format!(
                                    "not under a path that gate {:?} of framework {fw:?} allows ({})",
                                    gate.id,
                                    globs.join(", ")
                                ),
                            )
                            .owned_by(job.owner.clone()),
                        );
                    }
                }
            }
        }
        (a, found)
    }

    /// The compiled matcher of every key, compiling (and caching) the new ones.
    fn plans_for(&self, keys: impl Iterator<Item = PlanKey>, scope: &Scope) -> Result<HashMap<PlanKey, Arc<Plan>>> {
        let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = HashMap::new();
        for key in keys {
            if out.contains_key(&key) {
                continue;
            }
            let plan = match cache.get(&key) {
                Some(p) => p.clone(),
                None => {
                    let p = Arc::new(self.compile(&key).map_err(|reason| Error::BadConfig {
                        path: scope.root_path().to_path_buf(),
                        reason,
                    })?);
                    cache.insert(key.clone(), p.clone());
                    p
                }
            };
            out.insert(key, plan);
        }
        Ok(out)
    }

    fn compile(&self, (forbidden, heading): &PlanKey) -> std::result::Result<Plan, String> {
        let mut regexes = Vec::new();
        let mut slots = Vec::new();
        for &g in forbidden {
            for (i, p) in self.patterns[g].iter().enumerate() {
                regexes.push(p.regex.as_str());
                slots.push(Slot::Forbidden { gate: g, pattern: i });
            }
        }
        if *heading {
            regexes.push(HEADING);
            slots.push(Slot::Heading);
        }
        let key: Vec<String> = regexes.iter().map(|r| r.to_string()).collect();
        let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(Plan {
                compiled: c.clone(),
                slots,
            });
        }
        let matcher = matcher_builder()
            .build_many(&regexes)
            .map_err(|e| format!("compiling the gates' patterns: {}", one_line(&e.to_string())))?;
        let set = regex::bytes::RegexSetBuilder::new(&regexes)
            .multi_line(true)
            .build()
            .map_err(|e| format!("compiling the gates' patterns: {}", one_line(&e.to_string())))?;
        let compiled = Arc::new(Compiled { matcher, set });
        cache.insert(key, compiled.clone());
        Ok(Plan { compiled, slots })
    }

    /// Opens, stats and (when a content gate applies) streams one file.
    fn check_file(
        &self,
        dir: &Dir,
        job: &FileJob,
        a: &Applies,
        plan: Option<&Plan>,
        searcher: &mut Searcher,
        buf: &mut Vec<u8>,
    ) -> Outcome {
        let mut o = Outcome::default();
        if !a.needs_file() {
            return o;
        }
        let Some(name) = job.path.file_name() else { return o };
        let file = match dir.open_file(name) {
            Ok(f) => f,
            Err(e) if fsys::is_symlink_refusal(&e) => return o,
            Err(e) => {
                o.findings.push(unreadable(&job.path, &job.owner, &e));
                return o;
            }
        };
        let st = match fsys::fstat(&file) {
            Ok(st) => st,
            Err(e) => {
                o.findings.push(unreadable(&job.path, &job.owner, &e));
                return o;
            }
        };
        if EntryType::from_mode(st.st_mode as u32) != EntryType::File {
            return o;
        }
        self.check_content(job, a, plan, searcher, buf, st.st_size as u64, file, o)
    }

    /// The per-file gates of `job` on the bytes of its file, already read
    /// (by the scan that hashed them, so a governed `verify` reads each file
    /// once): what [`Engine::run`] would find for this file, and whether a
    /// content gate skipped it as binary. The `allowed_paths` findings are
    /// included.
    ///
    /// # Errors
    /// A message when the patterns this file needs do not compile (which
    /// [`Engine::new`] already rules out).
    pub fn check_bytes(&self, job: &FileJob, bytes: &[u8]) -> std::result::Result<(Vec<Finding>, bool), String> {
        thread_local! {
            static SEARCHER: std::cell::RefCell<Option<(Searcher, Vec<u8>)>> = const { std::cell::RefCell::new(None) };
        }
        let (a, mut found) = self.applies(job);
        let plan = match a.plan_key() {
            None => None,
            Some(key) => {
                let cached = self.plans.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
                Some(match cached {
                    Some(p) => p,
                    None => {
                        let p = Arc::new(self.compile(&key)?);
                        self.plans
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key, p.clone());
                        p
                    }
                })
            }
        };
        if !a.needs_file() {
            return Ok((found, false));
        }
        let o = SEARCHER.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (searcher, buf) = cell.get_or_insert_with(|| (searcher_builder().build(), Vec::new()));
            let o = self.check_content(
                job,
                &a,
                plan.as_deref(),
                searcher,
                buf,
                bytes.len() as u64,
                bytes,
                Outcome::default(),
            );
            // The pool's threads outlive the verify: after a large file, give back
            // the buffers it grew (the searcher's own among them).
            if bytes.len() > 1 << 20 {
                *cell = None;
            }
            o
        });
        found.extend(o.findings);
        Ok((found, o.binary))
    }

    /// The gates of `a` on one regular file of `size` bytes read from `rdr`.
    #[allow(clippy::too_many_arguments)]
    fn check_content<R: Read>(
        &self,
        job: &FileJob,
        a: &Applies,
        plan: Option<&Plan>,
        searcher: &mut Searcher,
        buf: &mut Vec<u8>,
        size: u64,
        rdr: R,
        mut o: Outcome,
    ) -> Outcome {
        let finding = |code: Code, msg: String| Finding::new(code, job.path.clone(), msg).owned_by(job.owner.clone());
        for &(g, max) in &a.bytes {
            if size > max {
                o.findings.push(finding(
                    Code::TooLarge,
                    format!(
                        "{size} bytes, more than the {max} that gate {:?} of framework {:?} allows",
                        self.gates[g].1.id, self.gates[g].0
                    ),
                ));
            }
        }
        if !a.needs_content() {
            return o;
        }
        o.read = true;
        let mut rdr = Counter {
            inner: rdr,
            bytes: 0,
            newlines: 0,
            last: None,
            count_lines: !a.lines.is_empty(),
        };
        let mut sink = FileSink {
            plan,
            hits: Vec::new(),
            headings: Vec::new(),
            binary: false,
        };
        let res = match plan {
            Some(plan) => searcher.search_reader(&plan.compiled.matcher, &mut rdr, &mut sink),
            None => scan_lines(&mut rdr, buf).map(|binary| sink.binary = binary),
        };
        o.bytes = rdr.bytes;
        if let Err(e) = res {
            let msg = if e.to_string().contains("configured allocation limit") {
                format!(
                    "has a line longer than {} MiB; its content gates were not run",
                    MAX_LINE >> 20
                )
            } else {
                format!("cannot be read: {e}")
            };
            o.findings.push(finding(Code::Unreadable, msg));
            return o;
        }
        for (line, slot) in sink.hits {
            if let Slot::Forbidden { gate, pattern } = slot {
                o.findings.push(finding(
                    Code::ForbiddenContent,
                    format!(
                        "line {line} matches pattern {:?} of gate {:?} of framework {:?}",
                        self.patterns[gate][pattern].name, self.gates[gate].1.id, self.gates[gate].0
                    ),
                ));
            }
        }
        if sink.binary {
            o.binary = true;
            return o;
        }
        let lines = rdr.newlines + u64::from(rdr.last.is_some_and(|b| b != b'\n'));
        for &(g, max) in &a.lines {
            if lines > max {
                o.findings.push(finding(
                    Code::TooManyLines,
                    format!(
                        "{lines} lines, more than the {max} that gate {:?} of framework {:?} allows",
                        self.gates[g].1.id, self.gates[g].0
                    ),
                ));
            }
        }
        for &g in &a.readme {
            for s in &self.sections[g] {
                if !sink.headings.iter().any(|h| h == s) {
                    let shown = match &self.gates[g].1.check {
                        Check::ReadmeSections { sections } => sections
                            .iter()
                            .find(|x| x.trim().to_lowercase() == *s)
                            .map_or(s.as_str(), |x| x.trim()),
                        _ => s.as_str(),
                    };
                    o.findings.push(finding(
                        Code::SectionMissing,
                        format!(
                            "no {shown:?} heading, which gate {:?} of framework {:?} requires",
                            self.gates[g].1.id, self.gates[g].0
                        ),
                    ));
                }
            }
        }
        o
    }
}

fn unreadable(path: &RelPath, owner: &str, e: &io::Error) -> Finding {
    Finding::new(Code::Unreadable, path.clone(), format!("cannot be read: {e}")).owned_by(owner)
}

/// Job indices that need their file, grouped by parent directory (sorted), in
/// chunks of at most [`CHUNK`].
fn dir_chunks(jobs: &[FileJob], needs: impl Fn(usize) -> bool) -> Vec<Vec<usize>> {
    fn parent(p: &[u8]) -> &[u8] {
        p.iter().rposition(|&c| c == b'/').map_or(&p[..0], |i| &p[..i])
    }
    let mut order: Vec<usize> = (0..jobs.len())
        .filter(|&i| needs(i) && !jobs[i].path.is_root())
        .collect();
    order.sort_by(|&a, &b| {
        parent(jobs[a].path.as_bytes())
            .cmp(parent(jobs[b].path.as_bytes()))
            .then(a.cmp(&b))
    });
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut last: Option<&[u8]> = None;
    for i in order {
        let p = parent(jobs[i].path.as_bytes());
        match chunks.last_mut() {
            Some(c) if last == Some(p) && c.len() < CHUNK => c.push(i),
            _ => chunks.push(vec![i]),
        }
        last = Some(p);
    }
    chunks
}

/// A reader that counts the bytes it passes, and the `\n`s when asked.
struct Counter<R> {
    inner: R,
    bytes: u64,
    newlines: u64,
    last: Option<u8>,
    count_lines: bool,
}

impl<R: Read> Read for Counter<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if n > 0 {
            let got = &out[..n];
            self.bytes += n as u64;
            self.last = Some(got[n - 1]);
            if self.count_lines {
                self.newlines += count_newlines(got);
            }
        }
        Ok(n)
    }
}

/// `\n` bytes in `bytes` (vectorizes: byte compares summed in `u8` lanes).
fn count_newlines(bytes: &[u8]) -> u64 {
    let mut n = 0u64;
    for c in bytes.chunks(255) {
        n += u64::from(c.iter().fold(0u8, |acc, &b| acc + u8::from(b == b'\n')));
    }
    n
}

/// Reads `rdr` to its end, for a file only a line limit applies to; true
/// (and stops) at a NUL byte.
fn scan_lines<R: Read>(rdr: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.resize(64 << 10, 0);
    loop {
        let n = match rdr.read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf[..n].contains(&0) {
            return Ok(true);
        }
    }
}

/// Receives the matching lines of one file.
struct FileSink<'p> {
    plan: Option<&'p Plan>,
    /// (1-based line, slot) of every pattern that matched, in line order.
    hits: Vec<(u64, Slot)>,
    /// Heading texts, lowercased and trimmed.
    headings: Vec<String>,
    binary: bool,
}

impl Sink for FileSink<'_> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> io::Result<bool> {
        let Some(plan) = self.plan else { return Ok(true) };
        let first = m.line_number().unwrap_or(0);
        for (k, line) in m.lines().enumerate() {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            for s in plan.compiled.set.matches(line).iter() {
                match plan.slots[s] {
                    Slot::Heading => {
                        if let Some(h) = heading_text(line) {
                            self.headings.push(h);
                        }
                    }
                    slot => self.hits.push((first + k as u64, slot)),
                }
            }
        }
        Ok(true)
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> io::Result<bool> {
        self.binary = true;
        Ok(false)
    }
}

/// The text of a Markdown ATX heading line, lowercased and trimmed, without
/// its closing `#`s; `None` when the line is not a heading.
fn heading_text(line: &[u8]) -> Option<String> {
    let line = String::from_utf8_lossy(line);
    let rest = line.trim_start_matches(' ');
    if line.len() - rest.len() > 3 {
        return None;
    }
    let text = rest.trim_start_matches('#');
    let hashes = rest.len() - text.len();
    if !(1..=6).contains(&hashes) || !(text.is_empty() || text.starts_with([' ', '\t'])) {
        return None;
    }
    let mut text = text.trim();
    let open = text.trim_end_matches('#');
    if open.is_empty() || open.ends_with([' ', '\t']) {
        text = open.trim_end();
    }
    Some(text.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_refuses_unknown_keys() {
        let ok = br#"{"gates":[
            {"id":"s","kind":"forbidden_content","default_secrets":true,"patterns":[{"name":"h","regex":"corp\\.internal"}]},
            {"id":"z","kind":"max_size","max_bytes":10,"max_lines":2,"paths":["**/*.py"]},
            {"id":"r","kind":"readme_sections","sections":["Purpose"]},
            {"id":"f","kind":"required_files","files":["README.md"]},
            {"id":"a","kind":"allowed_paths","globs":["lib/**"]}],
            "exempt":["build/**"]}"#;
        let r = Rules::parse(ok, "rules.json").unwrap();
        assert_eq!(r.gates.len(), 5);
        assert_eq!(r.exempt, vec!["build/**"]);
        assert!(matches!(
            r.gate("z").unwrap().check,
            Check::MaxSize {
                max_bytes: Some(10),
                max_lines: Some(2)
            }
        ));
        let e = Rules::parse(br#"{"gates":[],"exmpt":[]}"#, "r.json").unwrap_err();
        assert!(e.starts_with("r.json:1:"), "{e}");
        assert!(e.contains("exmpt"), "{e}");
        let e = Rules::parse(
            b"{\n\"gates\":[{\"id\":\"a\",\"kind\":\"max_size\",\"max_byte\":1}]}",
            "r.json",
        )
        .unwrap_err();
        assert!(e.contains("max_byte"), "{e}");
        let e = Rules::parse(br#"{"gates":[{"id":"a","kind":"nope"}]}"#, "r.json").unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let e = Rules::parse(
            br#"{"gates":[{"id":"a","kind":"forbidden_content","patterns":[{"name":"x","regex":"("}]}]}"#,
            "r.json",
        )
        .unwrap_err();
        assert!(e.contains("pattern \"x\""), "{e}");
        let e = Rules::parse(
            br#"{"gates":[{"id":"a","kind":"max_size"},{"id":"a","kind":"max_size"}]}"#,
            "r.json",
        )
        .unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    // ---- the built-in secrets -------------------------------------------

    /// Fake secrets, built at run time so this file never holds one.
    struct Fakes;
    impl Fakes {
        fn aws_id() -> String {
            format!("AKIA{}", "Q".repeat(16))
        }
        fn github() -> String {
            format!("ghp_{}", "a1".repeat(18))
        }
    }

    fn secret_regex(name: &str) -> regex::bytes::Regex {
        let p = default_secrets().into_iter().find(|p| p.name == name).unwrap();
        regex::bytes::Regex::new(&p.regex).unwrap()
    }

    /// (pattern name, true positive, near miss).
    fn secret_cases() -> Vec<(&'static str, String, String)> {
        let x = |s: &str, n: usize| s.repeat(n);
        vec![
            (
                "private-key",
                format!("-----BEGIN {}PRIVATE KEY-----", "RSA "),
                format!("-----BEGIN {}PUBLIC KEY-----", "RSA "),
            ),
            (
                "private-key",
                format!("-----BEGIN {}PRIVATE KEY BLOCK-----", "PGP "),
                format!("-----BEGIN {}PRIVATE KEY-----", "FOO "),
            ),
            (
                "aws-access-key-id",
                format!("id = {}", Fakes::aws_id()),
                format!("AKIA{}", x("Q", 15)),
            ),
            (
                "aws-access-key-id",
                format!("ASIA{}", x("7", 16)),
                format!("AKIA{}", x("q", 16)),
            ),
            (
                "aws-secret-access-key",
                format!("aws_secret_access_key = {}", x("Ab1/", 10)),
                format!("aws_secret_access_key = {}", x("Ab1/", 9)),
            ),
            (
                "aws-secret-access-key",
                format!("AWS_SECRET_ACCESS_KEY=\"{}\"", x("z9+Z", 10)),
                "aws_secret_access_key = os.environ['X']".into(),
            ),
            ("github-token", Fakes::github(), format!("ghx_{}", "a1".repeat(18))),
            (
                "github-token",
                format!("ghs_{}", x("B", 40)),
                format!("ghp_{}", x("B", 35)),
            ),
            (
                "github-fine-grained-token",
                format!("github_pat_{}", x("a_", 41)),
                format!("github_pat_{}", x("a_", 40)),
            ),
            (
                "slack-token",
                format!("xoxb-{}", x("12-ab", 3)),
                format!("xoxz-{}", x("12-ab", 3)),
            ),
            (
                "slack-webhook",
                format!(
                    "https://hooks.slack.com/services/T{}/B{}/{}",
                    x("0", 8),
                    x("1", 8),
                    x("c", 24)
                ),
                "https://hooks.slack.com/services/short".into(),
            ),
            (
                "anthropic-key",
                format!("sk-ant-api{}-{}", "03", x("Ab_-", 6)),
                format!("sk-ant-api{}-{}", "3", x("Ab_-", 6)),
            ),
            (
                "openai-key",
                format!("key: sk-{}", x("Ab12", 6)),
                format!("sk-{}", x("Ab12", 4)),
            ),
            (
                "openai-key",
                format!("sk-proj-{}", x("Ab12", 6)),
                format!("risk-{}", x("ab-c", 8)),
            ),
            (
                "openai-key",
                format!("sk-an{}", x("Ab12", 6)),
                format!("sk-ant-api03-{}", x("Ab_-", 6)),
            ),
            (
                "password-assignment",
                "password = \"hunter2\"".into(),
                "password = \"\"".into(),
            ),
            (
                "password-assignment",
                "DB_PASSWORD='x'".into(),
                "if password == \"x\":".into(),
            ),
            (
                "password-assignment",
                "password: \"hunter2\"".into(),
                "password: \"${DB_PASSWORD}\"".into(),
            ),
            (
                "password-assignment",
                "password = \"$ecret\"".into(),
                "password = \"{{ vault_pw }}\"".into(),
            ),
            (
                "password-assignment",
                "\"passwd\": \"x\"".into(),
                "passwd = os.environ[\"P\"]".into(),
            ),
            ("password-assignment", "Pwd := \"x\"".into(), "pwdx = 'x'".into()),
            ("password-assignment", "PassWord: 'x'".into(), "passport = 'x'".into()),
        ]
    }

    #[test]
    fn each_default_secret_has_a_positive_and_a_near_miss() {
        let names: Vec<String> = default_secrets().into_iter().map(|p| p.name).collect();
        for (name, yes, no) in secret_cases() {
            let r = secret_regex(name);
            assert!(r.is_match(yes.as_bytes()), "{name} misses {yes}");
            assert!(!r.is_match(no.as_bytes()), "{name} fires on {no}");
        }
        for n in &names {
            assert!(secret_cases().iter().any(|c| c.0 == n), "no case for {n}");
        }
        // The OpenAI pattern never fires on an Anthropic key.
        let ant = format!("sk-ant-admin{}-{}", "01", "Zz9_".repeat(8));
        assert!(!secret_regex("openai-key").is_match(ant.as_bytes()));
        assert!(secret_regex("anthropic-key").is_match(ant.as_bytes()));
    }

    // ---- the engine -----------------------------------------------------

    use crate::store::Store;

    struct Plane {
        dir: tempfile::TempDir,
        scope: Scope,
    }

    impl Plane {
        fn new() -> Plane {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::init(dir.path()).unwrap();
            let scope = Scope::open(&store.plane("main").unwrap()).unwrap();
            Plane { dir, scope }
        }

        fn write(&self, rel: &str, bytes: &[u8]) {
            let p = self.dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }

    fn gate(id: &str, paths: &[&str], check: Check) -> Gate {
        Gate {
            id: id.into(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            check,
        }
    }

    fn secrets_gate() -> Gate {
        gate(
            "no-secrets",
            &[],
            Check::ForbiddenContent {
                default_secrets: true,
                patterns: vec![Pattern {
                    name: "internal-host".into(),
                    regex: r"corp\.internal".into(),
                }],
            },
        )
    }

    #[test]
    fn an_engine_names_the_first_pattern_that_does_not_compile() {
        // The built-in patterns compile (the engine checks them all at once).
        Engine::new(vec![("fw".into(), secrets_gate())]).unwrap();
        let bad = |regex: &str| {
            gate(
                "g2",
                &[],
                Check::ForbiddenContent {
                    default_secrets: true,
                    patterns: vec![
                        Pattern {
                            name: "fine".into(),
                            regex: "fine".into(),
                        },
                        Pattern {
                            name: "broken".into(),
                            regex: regex.into(),
                        },
                    ],
                },
            )
        };
        // One the regex crate refuses, and one only the line matcher refuses
        // (a pattern that must match a line break).
        for regex in ["(", r"a\nb"] {
            let e = match Engine::new(vec![("fw".into(), secrets_gate()), ("fw2".into(), bad(regex))]) {
                Err(e) => e,
                Ok(_) => panic!("{regex:?} compiled"),
            };
            assert!(
                e.starts_with("framework \"fw2\", gate \"g2\": pattern \"broken\": "),
                "{regex:?}: {e}"
            );
        }
        // Two bad patterns in two gates: the first gate's is named.
        let mut later = bad("(");
        later.id = "g3".into();
        let e = match Engine::new(vec![("fw2".into(), bad(r"a\nb")), ("fw3".into(), later)]) {
            Err(e) => e,
            Ok(_) => panic!("compiled"),
        };
        assert!(
            e.starts_with("framework \"fw2\", gate \"g2\": pattern \"broken\": "),
            "{e}"
        );
    }

    fn job(path: &str, gates: &[usize]) -> FileJob {
        FileJob {
            path: RelPath::parse(path.as_bytes()).unwrap(),
            owner: "spec-1".into(),
            gates: gates.to_vec(),
        }
    }

    fn run(engine: &Engine, plane: &Plane, jobs: &[FileJob]) -> GateReport {
        engine.run(&plane.scope, jobs, Control::quiet()).unwrap()
    }

    /// (code, path, message) of every finding.
    fn summary(r: &GateReport) -> Vec<(&'static str, String, String)> {
        r.findings
            .iter()
            .map(|f| (f.code.as_str(), f.path.display(), f.message.clone()))
            .collect()
    }

    #[test]
    fn secrets_are_found_on_their_lines_and_never_echoed() {
        let plane = Plane::new();
        let cases = secret_cases();
        let mut text = String::from("fn main() {}\n");
        for (_, yes, no) in &cases {
            text.push_str(&format!("{no}\n{yes}\n"));
        }
        text.push_str("see https://corp.internal/x"); // unterminated last line
        plane.write("src/a.rs", text.as_bytes());
        let engine = Engine::new(vec![("fw".into(), secrets_gate())]).unwrap();
        let r = run(&engine, &plane, &[job("src/a.rs", &[0])]);
        assert_eq!(r.files_read, 1);
        assert_eq!(r.bytes_read, text.len() as u64);
        assert!(r.binary_skipped.is_empty());
        for (i, (name, yes, _)) in cases.iter().enumerate() {
            let line = 2 + 2 * i + 1;
            let want = format!("line {line} matches pattern {name:?} of gate \"no-secrets\" of framework \"fw\"");
            assert!(
                r.findings.iter().any(|f| f.message == want),
                "missing: {want}\n{:#?}",
                summary(&r)
            );
            assert!(r.findings.iter().all(|f| !f.message.contains(yes.as_str())));
        }
        let last = 2 + 2 * cases.len();
        assert!(r.findings.iter().any(|f| {
            f.message
                .starts_with(&format!("line {last} matches pattern \"internal-host\""))
        }));
        // One per positive line; of the near misses only the Anthropic key
        // (line 30, the OpenAI near miss) fires, as itself.
        assert_eq!(r.findings.len(), cases.len() + 2, "{:#?}", summary(&r));
        let line30: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.message.starts_with("line 30 "))
            .collect();
        assert_eq!(line30.len(), 1);
        assert!(line30[0].message.contains("\"anthropic-key\""));
        for f in &r.findings {
            assert_eq!(f.code, Code::ForbiddenContent);
            assert_eq!(f.owner.as_deref(), Some("spec-1"));
            assert_eq!(f.path.display(), "src/a.rs");
        }
    }

    #[test]
    fn a_line_split_across_read_buffers_still_matches() {
        let plane = Plane::new();
        let secret = Fakes::aws_id();
        for start in [65536 - 7, 65536 * 2 - 1, 8192 - 3] {
            let mut text = Vec::new();
            let mut lines = 0;
            while text.len() + 40 < start {
                text.extend_from_slice(b"let value = index + count; // filler\n");
                lines += 1;
            }
            text.resize(start - 1, b'x');
            text.push(b' ');
            text.extend_from_slice(secret.as_bytes());
            text.extend_from_slice(b" tail\nend\n");
            plane.write("big.txt", &text);
            let engine = Engine::new(vec![("fw".into(), secrets_gate())]).unwrap();
            let r = run(&engine, &plane, &[job("big.txt", &[0])]);
            assert_eq!(r.findings.len(), 1, "{:#?}", summary(&r));
            assert!(r.findings[0].message.starts_with(&format!("line {} ", lines + 1)));
        }
    }

    #[test]
    fn a_secret_near_the_end_of_a_100_mb_file_is_found_streaming() {
        use std::io::Write;
        let plane = Plane::new();
        let path = plane.dir.path().join("huge.log");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let line = b"2024-01-01T00:00:00Z INFO request served in 12 ms from cache, all good\n";
        let block: Vec<u8> = line.iter().copied().cycle().take(line.len() * 14_000).collect();
        let mut lines = 0u64;
        while (lines as usize) * line.len() < 100 << 20 {
            f.write_all(&block).unwrap();
            lines += 14_000;
        }
        f.write_all(format!("token {}\n", Fakes::github()).as_bytes()).unwrap();
        f.write_all(line).unwrap();
        drop(f);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size > 100 << 20);
        // The searcher's buffer is capped at MAX_LINE (64 MiB): had it loaded
        // the file whole, the search would have failed with a CP105.
        let engine = Engine::new(vec![("fw".into(), secrets_gate())]).unwrap();
        let r = run(&engine, &plane, &[job("huge.log", &[0])]);
        assert_eq!(summary(&r).len(), 1, "{:#?}", summary(&r));
        assert_eq!(r.findings[0].code, Code::ForbiddenContent);
        assert!(
            r.findings[0]
                .message
                .starts_with(&format!("line {} matches pattern \"github-token\"", lines + 1))
        );
        assert_eq!(r.bytes_read, size);

        // Written sparsely (seek, then write) the hole reads as NUL bytes: binary, skipped and listed.
        let mut f = std::fs::File::create(plane.dir.path().join("sparse.bin")).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(100 << 20)).unwrap();
        f.write_all(format!("token {}\n", Fakes::github()).as_bytes()).unwrap();
        drop(f);
        let r = run(&engine, &plane, &[job("sparse.bin", &[0])]);
        assert!(r.findings.is_empty(), "{:#?}", summary(&r));
        assert_eq!(r.binary_skipped, vec![RelPath::parse(b"sparse.bin").unwrap()]);
        assert!(r.bytes_read < 1 << 20, "read {} bytes of a binary file", r.bytes_read);
    }

    #[test]
    fn a_line_longer_than_the_cap_is_reported_not_loaded() {
        let plane = Plane::new();
        let path = plane.dir.path().join("one-line.txt");
        let f = std::fs::File::create(&path).unwrap();
        let big = vec![b'a'; 1 << 20];
        let mut w = std::io::BufWriter::new(f);
        for _ in 0..(MAX_LINE >> 20) + 2 {
            std::io::Write::write_all(&mut w, &big).unwrap();
        }
        drop(w);
        let engine = Engine::new(vec![("fw".into(), secrets_gate())]).unwrap();
        let r = run(&engine, &plane, &[job("one-line.txt", &[0])]);
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.findings[0].code, Code::Unreadable);
        assert!(
            r.findings[0].message.contains("longer than 64 MiB"),
            "{}",
            r.findings[0].message
        );
    }

    #[test]
    fn binary_files_are_skipped_and_listed_but_max_bytes_applies() {
        let plane = Plane::new();
        let mut bin = format!("x {}\n", Fakes::aws_id()).into_bytes();
        bin.extend_from_slice(&[0, 1, 2, 3]);
        bin.extend_from_slice(b"\n\n\n\n\n");
        plane.write("a.bin", &bin);
        let mut head = vec![0u8, 1, 2];
        head.extend_from_slice(format!("\n{}\n", Fakes::aws_id()).as_bytes());
        plane.write("b.bin", &head);
        let engine = Engine::new(vec![
            ("fw".into(), secrets_gate()),
            (
                "fw".into(),
                gate(
                    "size",
                    &[],
                    Check::MaxSize {
                        max_bytes: Some(10),
                        max_lines: Some(1),
                    },
                ),
            ),
        ])
        .unwrap();
        let r = run(&engine, &plane, &[job("a.bin", &[0, 1]), job("b.bin", &[0, 1])]);
        assert_eq!(
            r.binary_skipped,
            vec![RelPath::parse(b"a.bin").unwrap(), RelPath::parse(b"b.bin").unwrap()]
        );
        let codes: Vec<_> = r.findings.iter().map(|f| (f.path.display(), f.code)).collect();
        // The NUL is in the first buffer the searcher reads: nothing of the
        // file is searched, no line is counted; the byte limit still applies.
        assert_eq!(
            codes,
            vec![
                ("a.bin".to_string(), Code::TooLarge),
                ("b.bin".to_string(), Code::TooLarge),
            ],
            "{:#?}",
            summary(&r)
        );
        // A NUL far into a file: lines searched before it was seen are still
        // reported (as ripgrep does), and the file is listed as skipped.
        let mut late = format!("x {}\n", Fakes::aws_id()).into_bytes();
        late.extend(b"filler line\n".iter().cycle().take(300_000));
        late.push(0);
        plane.write("late.bin", &late);
        let r = run(&engine, &plane, &[job("late.bin", &[0])]);
        assert_eq!(r.binary_skipped, vec![RelPath::parse(b"late.bin").unwrap()]);
        assert_eq!(summary(&r).len(), 1);
        assert!(
            r.findings[0]
                .message
                .starts_with("line 1 matches pattern \"aws-access-key-id\"")
        );
        // A file only a line limit applies to is detected as binary too.
        let engine = Engine::new(vec![(
            "fw".into(),
            gate(
                "lines",
                &[],
                Check::MaxSize {
                    max_bytes: None,
                    max_lines: Some(1),
                },
            ),
        )])
        .unwrap();
        let r = run(&engine, &plane, &[job("a.bin", &[0])]);
        assert!(r.findings.is_empty());
        assert_eq!(r.binary_skipped.len(), 1);
    }

    #[test]
    fn max_lines_and_bytes() {
        let plane = Plane::new();
        plane.write("three.txt", b"a\nb\nc\n");
        plane.write("three-open.txt", b"a\nb\nc");
        plane.write("four.txt", b"a\nb\nc\nd");
        plane.write("empty.txt", b"");
        plane.write("blank-lines.txt", b"\n\n\n\n");
        let size = |bytes: Option<u64>, lines: Option<u64>| {
            gate(
                "size",
                &[],
                Check::MaxSize {
                    max_bytes: bytes,
                    max_lines: lines,
                },
            )
        };
        let engine = Engine::new(vec![
            ("fw".into(), size(Some(6), Some(3))),
            ("fw2".into(), size(None, Some(100))),
        ])
        .unwrap();
        let jobs: Vec<_> = [
            "three.txt",
            "three-open.txt",
            "four.txt",
            "empty.txt",
            "blank-lines.txt",
        ]
        .iter()
        .map(|p| job(p, &[0, 1]))
        .collect();
        let r = run(&engine, &plane, &jobs);
        assert_eq!(
            summary(&r),
            vec![
                (
                    "CP303",
                    "blank-lines.txt".into(),
                    "4 lines, more than the 3 that gate \"size\" of framework \"fw\" allows".into()
                ),
                (
                    "CP302",
                    "four.txt".into(),
                    "7 bytes, more than the 6 that gate \"size\" of framework \"fw\" allows".into()
                ),
                (
                    "CP303",
                    "four.txt".into(),
                    "4 lines, more than the 3 that gate \"size\" of framework \"fw\" allows".into()
                ),
            ]
        );
        assert_eq!(r.files_read, 5);
        // Only a byte limit: nothing is read.
        let engine = Engine::new(vec![("fw".into(), size(Some(6), None))]).unwrap();
        let r = run(&engine, &plane, &jobs);
        assert_eq!(r.findings.len(), 1);
        assert_eq!((r.files_read, r.bytes_read), (0, 0));
    }

    #[test]
    fn readme_sections() {
        let plane = Plane::new();
        plane.write(
            "pkg/README.md",
            b"# Title\n\nintro\n\n## purpose ##\ntext\n   ### USAGE\n####### Deep\n#NoSpace\n    # Indented code\n",
        );
        let engine = Engine::new(vec![(
            "fw".into(),
            gate(
                "readme",
                &["**/README.md"],
                Check::ReadmeSections {
                    sections: vec![
                        "Purpose".into(),
                        " Usage ".into(),
                        "Deep".into(),
                        "NoSpace".into(),
                        "Indented code".into(),
                        "Title".into(),
                    ],
                },
            ),
        )])
        .unwrap();
        let r = run(
            &engine,
            &plane,
            &[job("pkg/README.md", &[0]), job("pkg/other.md", &[0])],
        );
        let missing: Vec<_> = r.findings.iter().map(|f| (f.code, f.message.clone())).collect();
        let msg = |s: &str| {
            (
                Code::SectionMissing,
                format!("no {s:?} heading, which gate \"readme\" of framework \"fw\" requires"),
            )
        };
        assert_eq!(missing, vec![msg("Deep"), msg("NoSpace"), msg("Indented code")]);
        assert!(r.findings.iter().all(|f| f.path.display() == "pkg/README.md"));
    }

    #[test]
    fn allowed_paths_and_gate_path_filters() {
        let plane = Plane::new();
        let key = format!("k = {}\n", Fakes::aws_id());
        plane.write("lib/a.py", key.as_bytes());
        plane.write("lib/sub/b.py", key.as_bytes());
        plane.write("scripts/run.sh", key.as_bytes());
        plane.write("scripts/deep/run.sh", b"ok\n");
        let engine = Engine::new(vec![
            (
                "fw".into(),
                gate(
                    "layout",
                    &[],
                    Check::AllowedPaths {
                        globs: vec!["lib/**".into(), "scripts/*.sh".into()],
                    },
                ),
            ),
            (
                "fw".into(),
                gate(
                    "py-secrets",
                    &["**/*.py"],
                    Check::ForbiddenContent {
                        default_secrets: true,
                        patterns: vec![],
                    },
                ),
            ),
        ])
        .unwrap();
        let jobs: Vec<_> = [
            "lib/a.py",
            "lib/sub/b.py",
            "scripts/run.sh",
            "scripts/deep/run.sh",
            "nope/x.py",
        ]
        .iter()
        .map(|p| job(p, &[0, 1]))
        .collect();
        let r = run(&engine, &plane, &jobs);
        let got: Vec<_> = r.findings.iter().map(|f| (f.path.display(), f.code)).collect();
        assert_eq!(
            got,
            vec![
                ("lib/a.py".to_string(), Code::ForbiddenContent),
                ("lib/sub/b.py".to_string(), Code::ForbiddenContent),
                ("nope/x.py".to_string(), Code::Unreadable),
                ("nope/x.py".to_string(), Code::PathNotAllowed),
                ("scripts/deep/run.sh".to_string(), Code::PathNotAllowed),
            ],
            "{:#?}",
            summary(&r)
        );
        // A gate the job does not list does not apply, whatever its paths.
        let r = run(&engine, &plane, &[job("lib/a.py", &[0])]);
        assert!(r.findings.is_empty());
        assert_eq!(r.files_read, 0);
    }

    #[test]
    fn symlinks_are_not_read_and_bad_gates_are_named() {
        let plane = Plane::new();
        plane.write("real.txt", format!("{}\n", Fakes::aws_id()).as_bytes());
        std::os::unix::fs::symlink("real.txt", plane.dir.path().join("link.txt")).unwrap();
        std::fs::create_dir(plane.dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("..", plane.dir.path().join("d/up")).unwrap();
        let engine = Engine::new(vec![("fw".into(), secrets_gate())]).unwrap();
        let r = run(&engine, &plane, &[job("link.txt", &[0]), job("d/up/real.txt", &[0])]);
        assert_eq!(r.files_read, 0);
        // A path through a symlinked directory is refused (CP105), never followed.
        assert_eq!(summary(&r).len(), 1);
        assert_eq!(r.findings[0].code, Code::Unreadable);

        let bad = gate(
            "g1",
            &[],
            Check::ForbiddenContent {
                default_secrets: false,
                patterns: vec![Pattern {
                    name: "p".into(),
                    regex: "(".into(),
                }],
            },
        );
        let e = Engine::new(vec![("fw".into(), bad)]).unwrap_err();
        assert!(e.contains("\"g1\"") && e.contains("\"p\"") && !e.contains('\n'), "{e}");
        let e = Engine::new(vec![(
            "fw".into(),
            gate("g2", &["a/[b"], Check::RequiredFiles { files: vec![] }),
        )])
        .unwrap_err();
        assert!(e.contains("\"g2\"") && e.contains("a/[b"), "{e}");
    }

    #[test]
    fn progress_counts_every_job_and_its_bytes() {
        use std::sync::atomic::{AtomicU64, Ordering};
        #[derive(Default)]
        struct Count(AtomicU64, AtomicU64);
        impl crate::progress::Progress for Count {
            fn inc(&self, files: u64, bytes: u64) {
                self.0.fetch_add(files, Ordering::Relaxed);
                self.1.fetch_add(bytes, Ordering::Relaxed);
            }
        }
        let plane = Plane::new();
        plane.write("a.txt", b"hello\n");
        plane.write("b.txt", b"hi\n");
        let engine = Engine::new(vec![
            ("fw".into(), secrets_gate()),
            (
                "fw".into(),
                gate(
                    "layout",
                    &[],
                    Check::AllowedPaths {
                        globs: vec!["*".into()],
                    },
                ),
            ),
        ])
        .unwrap();
        let count = Count::default();
        let never = std::sync::atomic::AtomicBool::new(false);
        let r = engine
            .run(
                &plane.scope,
                &[job("a.txt", &[0]), job("b.txt", &[1])],
                Control::new(&count, &never),
            )
            .unwrap();
        assert!(r.findings.is_empty());
        assert_eq!(
            (count.0.load(Ordering::Relaxed), count.1.load(Ordering::Relaxed)),
            (2, 6)
        );
        assert_eq!((r.files_read, r.bytes_read), (1, 6));
    }

    #[test]
    fn interrupt_stops_the_run() {
        let plane = Plane::new();
        plane.write("a.txt", b"x\n");
        let engine = Engine::new(vec![("fw".into(), secrets_gate())]).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(true);
        let ctl = Control::new(&crate::progress::NoProgress, &stop);
        assert!(matches!(
            engine.run(&plane.scope, &[job("a.txt", &[0])], ctl),
            Err(Error::Interrupted)
        ));
    }
}
