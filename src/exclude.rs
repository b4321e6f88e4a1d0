//! Exclusions: paths a plane does not cover because a rule says so.
//!
//! Two sources of rules, both in gitignore syntax (`gitignore(5)`), matched
//! with the `ignore` crate's gitignore matcher ([`ignore::gitignore`]), not
//! by hand:
//!
//! * a `.cpignore` file ([`IGNORE_FILE`]) in the plane root or any directory
//!   below it: its patterns are relative to that directory, as a
//!   `.gitignore`'s are; a scan reads it when it enters the directory;
//! * the plane's `exclude` patterns in `.cp/config.json` (`--exclude` on
//!   `init` and `plane add`), relative to the plane root.
//!
//! Precedence is git's: for one path, the `.cpignore` of the deepest
//! directory that has a matching pattern decides, the last matching line of
//! a file winning (`!pattern` re-includes); the plane's `exclude` patterns
//! come last, like `.git/info/exclude`. A directory that is excluded is not
//! entered, so nothing below it can be re-included — again as in git.
//!
//! An excluded path is neither stored, compared, nor touched by a checkout
//! (rollback, restore); scans count it ([`crate::scan::ScanResult::excluded`]).
//! The `.cpignore` files themselves are ordinary files of the plane.

use crate::diff::TreeSource;
use crate::error::Result;
use crate::fsys::Dir;
use crate::id::TreeId;
use crate::object::{EntryKind, ObjectKind};
use crate::path::RelPath;
use crate::scope::Scope;
use crate::store::pack::ObjectWriter;
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// The name of a directory's exclusion file.
pub const IGNORE_FILE: &[u8] = b".cpignore";

/// A `.cpignore` larger than this many bytes is refused (a finding): rules
/// are meant to be written by hand.
pub const MAX_IGNORE_BYTES: u64 = 1 << 20;

/// The root every matcher is built at. Paths handed to a matcher are
/// relative (no leading `/`), so the `ignore` crate never strips a prefix
/// from them: they are matched exactly as given, relative to the rules'
/// directory.
const MATCH_ROOT: &str = "/";

/// Where a set of rules came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `.cpignore` file; the plane-relative path of the file itself.
    File(RelPath),
    /// The plane's `exclude` patterns in `.cp/config.json` (`--exclude`).
    Config,
}

impl std::fmt::Display for Source {
    /// The file's plane-relative path, or `--exclude` for the plane's own patterns.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => f.write_str(&p.display()),
            Source::Config => f.write_str("--exclude"),
        }
    }
}

/// A line of rules that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} ({pattern:?}): {reason}")]
pub struct RuleError {
    /// 1-based line number (or position among `--exclude` patterns); 0 for the file as a whole.
    pub line: usize,
    /// The line as written (lossy UTF-8).
    pub pattern: String,
    /// Why it cannot be used.
    pub reason: String,
}

/// One set of rules: one `.cpignore`, or the plane's `exclude` patterns.
#[derive(Debug)]
pub struct Rules {
    /// The plane-relative directory the patterns are relative to.
    dir: RelPath,
    source: Source,
    /// The lines as written, for [`Rules::explain`] (line numbers).
    lines: Vec<String>,
    matcher: Gitignore,
}

/// The rule that decided a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Where the rule is.
    pub source: Source,
    /// Its 1-based line in the `.cpignore` (position among `--exclude` patterns).
    pub line: usize,
    /// The pattern as written (with its `!` when it re-includes).
    pub pattern: String,
    /// True when the path is excluded; false when a `!pattern` re-includes it.
    pub excluded: bool,
    /// The path the rule matched: the path asked about, or the excluded
    /// directory above it.
    pub matched: RelPath,
}

fn builder() -> GitignoreBuilder {
    GitignoreBuilder::new(MATCH_ROOT)
}

impl Rules {
    /// Parses the text of a `.cpignore` found at `file` (plane-relative).
    ///
    /// # Errors
    /// The first line that is not UTF-8 or not a valid pattern.
    pub fn parse_file(file: RelPath, text: &[u8]) -> std::result::Result<Rules, RuleError> {
        let dir = file.parent().unwrap_or_default();
        let mut lines = Vec::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = std::str::from_utf8(raw).map_err(|_| RuleError {
                line: i + 1,
                pattern: String::from_utf8_lossy(raw).into_owned(),
                reason: "is not UTF-8".into(),
            })?;
            lines.push(line.to_string());
        }
        // A final newline does not make one more (empty) line.
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        Rules::build(dir, Source::File(file), lines)
    }

    /// The plane's own `exclude` patterns (relative to the plane root).
    ///
    /// # Errors
    /// The first pattern that is not valid.
    pub fn from_patterns(patterns: &[String]) -> std::result::Result<Rules, RuleError> {
        if let Some((i, p)) = patterns.iter().enumerate().find(|(_, p)| p.contains('\n')) {
            return Err(RuleError {
                line: i + 1,
                pattern: p.clone(),
                reason: "holds a line break; give one pattern per --exclude".into(),
            });
        }
        Rules::build(RelPath::root(), Source::Config, patterns.to_vec())
    }

    fn build(dir: RelPath, source: Source, lines: Vec<String>) -> std::result::Result<Rules, RuleError> {
        let mut b = builder();
        for (i, line) in lines.iter().enumerate() {
            b.add_line(None, line).map_err(|e| RuleError {
                line: i + 1,
                pattern: line.clone(),
                reason: e.to_string(),
            })?;
        }
        let matcher = b.build().map_err(|e| RuleError {
            line: 0,
            pattern: String::new(),
            reason: e.to_string(),
        })?;
        Ok(Rules {
            dir,
            source,
            lines,
            matcher,
        })
    }

    /// Where these rules came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The plane-relative directory the patterns are relative to.
    pub fn dir(&self) -> &RelPath {
        &self.dir
    }

    /// True when no line is a pattern (only comments and blank lines).
    pub fn is_empty(&self) -> bool {
        self.matcher.is_empty()
    }

    /// The decision of these rules alone for `rel` (plane-relative, at or
    /// under [`Rules::dir`]): `Some(true)` excluded, `Some(false)`
    /// re-included by a `!` line, `None` no line matches.
    pub fn decide(&self, rel: &RelPath, is_dir: bool) -> Option<bool> {
        let sub = self.relative(rel)?;
        match self.matcher.matched(Path::new(OsStr::from_bytes(sub)), is_dir) {
            Match::None => None,
            Match::Ignore(_) => Some(true),
            Match::Whitelist(_) => Some(false),
        }
    }

    /// `rel` relative to the rules' directory; `None` when outside it or the directory itself.
    fn relative<'p>(&self, rel: &'p RelPath) -> Option<&'p [u8]> {
        let d = self.dir.as_bytes();
        let b = rel.as_bytes();
        if d.is_empty() {
            return (!b.is_empty()).then_some(b);
        }
        match b.strip_prefix(d) {
            Some([b'/', rest @ ..]) if !rest.is_empty() => Some(rest),
            _ => None,
        }
    }

    /// The line that decides `rel`, with its number: the last line that
    /// matches, found by matching each line alone with the same matcher
    /// (for `check-ignore`; not a hot path).
    pub fn explain(&self, rel: &RelPath, is_dir: bool) -> Option<Hit> {
        let sub = Path::new(OsStr::from_bytes(self.relative(rel)?));
        for (i, line) in self.lines.iter().enumerate().rev() {
            let mut b = builder();
            if b.add_line(None, line).is_err() {
                continue;
            }
            let Ok(one) = b.build() else { continue };
            let excluded = match one.matched(sub, is_dir) {
                Match::None => continue,
                Match::Ignore(_) => true,
                Match::Whitelist(_) => false,
            };
            return Some(Hit {
                source: self.source.clone(),
                line: i + 1,
                pattern: line.trim_end().to_string(),
                excluded,
                matched: rel.clone(),
            });
        }
        None
    }
}

/// The `.cpignore` rules in force in one directory, innermost first; cheap
/// to clone (a shared linked list). Empty when no directory on the way has
/// a `.cpignore`.
#[derive(Debug, Clone, Default)]
pub struct Chain(Option<Arc<Link>>);

#[derive(Debug)]
struct Link {
    rules: Arc<Rules>,
    parent: Chain,
}

impl Chain {
    /// This chain with `rules` (a deeper directory's) in front.
    pub fn with(&self, rules: Arc<Rules>) -> Chain {
        Chain(Some(Arc::new(Link {
            rules,
            parent: self.clone(),
        })))
    }

    /// True when no `.cpignore` applies.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The rule sets, innermost first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Rules>> {
        let mut cur = self.0.as_deref();
        std::iter::from_fn(move || {
            let link = cur?;
            cur = link.parent.0.as_deref();
            Some(&link.rules)
        })
    }

    /// True when `rel` (a directory when `is_dir`) is excluded by these
    /// rules or, when none of them matches, by the plane's `global` ones.
    pub fn excludes(&self, global: Option<&Rules>, rel: &RelPath, is_dir: bool) -> bool {
        self.iter()
            .map(|r| &**r)
            .chain(global)
            .find_map(|r| r.decide(rel, is_dir))
            .unwrap_or(false)
    }

    /// The rule that decides `rel`, as [`Chain::excludes`] finds it, with its line.
    pub fn explain(&self, global: Option<&Rules>, rel: &RelPath, is_dir: bool) -> Option<Hit> {
        let r = self
            .iter()
            .map(|r| &**r)
            .chain(global)
            .find(|r| r.decide(rel, is_dir).is_some())?;
        r.explain(rel, is_dir)
    }
}

/// Every rule set a command knows of: the plane's `exclude` patterns and the
/// `.cpignore` files read so far, by directory. Used where a decision is
/// needed outside a scan: the paths of a stored tree a checkout must leave
/// alone, and `check-ignore`.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    global: Option<Arc<Rules>>,
    dirs: BTreeMap<RelPath, Arc<Rules>>,
}

impl Exclusions {
    /// The plane's `exclude` patterns and the `.cpignore` files `files` (as a scan returns them).
    pub fn new(global: Option<Arc<Rules>>, files: impl IntoIterator<Item = Arc<Rules>>) -> Exclusions {
        Exclusions {
            global,
            dirs: files.into_iter().map(|r| (r.dir.clone(), r)).collect(),
        }
    }

    /// Adds the `.cpignore` files `files` (read by another scan).
    pub fn extend(&mut self, files: impl IntoIterator<Item = Arc<Rules>>) {
        self.dirs.extend(files.into_iter().map(|r| (r.dir.clone(), r)));
    }

    /// True when there are no rules at all: nothing can be excluded.
    pub fn is_empty(&self) -> bool {
        self.global.as_ref().is_none_or(|g| g.is_empty()) && self.dirs.is_empty()
    }

    /// The `.cpignore` files known, by directory.
    pub fn files(&self) -> impl Iterator<Item = &Arc<Rules>> {
        self.dirs.values()
    }

    /// The plane's `exclude` patterns.
    pub fn global(&self) -> Option<&Rules> {
        self.global.as_deref()
    }

    /// The chain of `.cpignore` rules in force in directory `dir`.
    pub fn chain_for(&self, dir: &RelPath) -> Chain {
        let mut chain = Chain::default();
        let mut add = |d: &RelPath| {
            if let Some(r) = self.dirs.get(d) {
                chain = chain.with(r.clone());
            }
        };
        add(&RelPath::root());
        if !dir.is_root() {
            for a in dir.ancestors() {
                add(&a);
            }
            add(dir);
        }
        chain
    }

    /// True when `rel` (a directory when `is_dir`), or a directory above it,
    /// is excluded: what a scan reading these rules leaves out.
    pub fn excludes(&self, rel: &RelPath, is_dir: bool) -> bool {
        if self.is_empty() || rel.is_root() {
            return false;
        }
        let mut chain = self.chain_for(&RelPath::root());
        for a in rel.ancestors() {
            if chain.excludes(self.global(), &a, true) {
                return true;
            }
            if let Some(r) = self.dirs.get(&a) {
                chain = chain.with(r.clone());
            }
        }
        chain.excludes(self.global(), rel, is_dir)
    }

    /// The rule that decides `rel`: the one excluding the shallowest
    /// excluded directory above it, else the one matching `rel` itself
    /// (possibly a `!` line re-including it); `None` when no rule matches.
    pub fn explain(&self, rel: &RelPath, is_dir: bool) -> Option<Hit> {
        for a in rel.ancestors() {
            let chain = self.chain_for(&a.parent().unwrap_or_default());
            if let Some(hit) = chain.explain(self.global(), &a, true)
                && hit.excluded
            {
                return Some(hit);
            }
        }
        if rel.is_root() {
            return None;
        }
        self.chain_for(&rel.parent().unwrap_or_default())
            .explain(self.global(), rel, is_dir)
    }

    /// Reads the `.cpignore` of the plane root and of every directory on the
    /// way to `rel` (and of `rel` itself when it is a directory), for
    /// decisions about `rel` without a scan. Directories that do not exist
    /// are skipped.
    ///
    /// # Errors
    /// [`crate::Error::BadIgnoreFile`] for a `.cpignore` that cannot be read or used.
    pub fn load_along(scope: &Scope, rel: &RelPath) -> Result<Exclusions> {
        let mut out = Exclusions {
            global: scope.exclude().cloned(),
            dirs: BTreeMap::new(),
        };
        let mut dirs = vec![RelPath::root()];
        dirs.extend(rel.ancestors());
        if !rel.is_root() {
            dirs.push(rel.clone());
        }
        for d in dirs {
            let Ok(dir) = scope.open_dir(&d) else { break };
            match read_rules(&dir, &d) {
                Ok(Some(r)) => {
                    out.dirs.insert(d, Arc::new(r));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(crate::Error::BadIgnoreFile {
                        path: scope.shown(&d.join(IGNORE_FILE)),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The paths of the stored tree `target` that a checkout must leave
    /// alone because these rules exclude them (a directory counts once),
    /// at or under one of `under`. Subtrees whose id equals `rescue`'s at
    /// the same path are skipped: the rescue recorded only paths these rules
    /// keep, so the same subtree holds nothing excluded. Sorted.
    ///
    /// # Errors
    /// Store damage while reading trees.
    pub fn excluded_in(
        &self,
        src: &TreeSource<'_>,
        target: &TreeId,
        rescue: &TreeId,
        under: &[RelPath],
    ) -> Result<Vec<RelPath>> {
        let mut out = Vec::new();
        if self.is_empty() || target == rescue {
            return Ok(out);
        }
        // An explicit stack, as the rest of the tree code: any depth works.
        let mut stack: Vec<(RelPath, TreeId, Option<TreeId>)> = vec![(RelPath::root(), *target, Some(*rescue))];
        while let Some((dir, tid, rid)) = stack.pop() {
            let tree = src.tree(&tid)?;
            let rtree = match rid {
                Some(r) => Some(src.tree(&r)?),
                None => None,
            };
            let chain = self.chain_for(&dir);
            for e in &tree.entries {
                let p = dir.join(&e.name);
                // Only what lies on the way to, or under, a path the checkout covers.
                let covered = under.iter().any(|u| p.starts_with(u));
                if !covered && !under.iter().any(|u| u.starts_with(&p)) {
                    continue;
                }
                let is_dir = e.kind == EntryKind::Dir;
                if covered && chain.excludes(self.global(), &p, is_dir) {
                    out.push(p);
                    continue;
                }
                if !is_dir {
                    continue;
                }
                // Tree entries are sorted by name: one binary search, not a scan.
                let same = rtree.as_ref().and_then(|t| {
                    t.entries
                        .binary_search_by(|r| r.name.as_slice().cmp(&e.name))
                        .ok()
                        .map(|i| &t.entries[i])
                });
                let rsub = same.filter(|r| r.kind == EntryKind::Dir).map(|r| r.tree_id());
                if covered && rsub == Some(e.tree_id()) {
                    continue;
                }
                stack.push((p, e.tree_id(), rsub));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// `cplane check-ignore`: the rule that decides `rel` (plane-relative) as
/// a scan would decide it, reading the `.cpignore` files on the way. Whether
/// `rel` is a directory is taken from the disk (`lstat`); a path that does
/// not exist counts as a directory when `dir_hint` says so (a trailing `/`).
/// `None` when no rule matches.
///
/// # Errors
/// [`crate::Error::BadIgnoreFile`] for a `.cpignore` on the way that cannot be used.
pub fn check(scope: &Scope, rel: &RelPath, dir_hint: bool) -> Result<Option<Hit>> {
    let parent = rel.parent().unwrap_or_default();
    let ex = Exclusions::load_along(scope, &parent)?;
    let on_disk = rel.file_name().and_then(|name| {
        let st = scope.open_dir(&parent).ok()?.stat(name).ok()?;
        Some(crate::fsys::EntryType::from_mode(st.st_mode as u32) == crate::fsys::EntryType::Dir)
    });
    Ok(ex.explain(rel, on_disk.unwrap_or(dir_hint)))
}

/// `root` without the entries at `paths` (plane-relative, any order): what
/// a checkout must leave alone — excluded paths, special files — taken out
/// of the tree it puts in place. Unlike pruning a carve-out, a directory
/// left empty stays, as an empty directory: the directory itself is the
/// plane's, and a scan records it (without the excluded entries) too. New
/// trees go to `writer`. Recursion is bounded by the depth of `paths`.
///
/// # Errors
/// Store damage while reading trees; I/O errors while writing.
pub fn prune_paths(writer: &ObjectWriter<'_>, root: TreeId, paths: &[RelPath]) -> Result<TreeId> {
    if paths.is_empty() {
        return Ok(root);
    }
    let parts: Vec<Vec<&[u8]>> = paths
        .iter()
        .filter(|p| !p.is_root())
        .map(|p| p.components().collect())
        .collect();
    let refs: Vec<&[&[u8]]> = parts.iter().map(Vec::as_slice).collect();
    Ok(prune_tree(writer, root, &refs)?.0)
}

fn prune_tree(writer: &ObjectWriter<'_>, id: TreeId, paths: &[&[&[u8]]]) -> Result<(TreeId, u64)> {
    let mut tree = writer.store().read_tree(&id)?;
    // Group once per tree, so each entry is one lookup, whatever the number of paths.
    let mut whole: HashSet<&[u8]> = HashSet::new();
    let mut below: HashMap<&[u8], Vec<&[&[u8]]>> = HashMap::new();
    for p in paths {
        match p {
            [name] => {
                whole.insert(name);
            }
            [name, rest @ ..] => below.entry(name).or_default().push(rest),
            [] => {}
        }
    }
    let mut changed = false;
    let mut kept = Vec::with_capacity(tree.entries.len());
    for mut e in tree.entries.drain(..) {
        if whole.contains(e.name.as_slice()) {
            changed = true;
            continue;
        }
        if e.kind == EntryKind::Dir
            && let Some(sub) = below.get(e.name.as_slice())
        {
            let (nid, size) = prune_tree(writer, e.tree_id(), sub)?;
            if nid != e.tree_id() {
                e.id = nid.0;
                e.size = size;
                changed = true;
            }
        }
        kept.push(e);
    }
    tree.entries = kept;
    let size = tree.entries.iter().map(|e| e.size).sum();
    if !changed {
        return Ok((id, size));
    }
    let (nid, body) = tree.encode_with_id();
    writer.add(ObjectKind::Tree, nid.0, &body)?;
    Ok((nid, size))
}

/// Reads the `.cpignore` in `dir` (plane-relative `rel`), if there is one.
///
/// # Errors
/// A [`RuleError`] when it cannot be read (line 0: the file as a whole,
/// e.g. a symlink, too large, unreadable) or a line cannot be used.
pub fn read_rules(dir: &Dir, rel: &RelPath) -> std::result::Result<Option<Rules>, RuleError> {
    let whole = |reason: String| RuleError {
        line: 0,
        pattern: String::new(),
        reason,
    };
    let f = match dir.open_file(IGNORE_FILE) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if crate::fsys::is_symlink_refusal(&e) => {
            return Err(whole("is a symlink; a .cpignore must be a regular file".into()));
        }
        Err(e) => return Err(whole(format!("cannot be read: {e}"))),
    };
    let st = crate::fsys::fstat(&f).map_err(|e| whole(format!("cannot be inspected: {e}")))?;
    if crate::fsys::EntryType::from_mode(st.st_mode as u32) != crate::fsys::EntryType::File {
        return Err(whole("is not a regular file".into()));
    }
    let mut text = Vec::new();
    (&f).take(MAX_IGNORE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| whole(format!("cannot be read: {e}")))?;
    if text.len() as u64 > MAX_IGNORE_BYTES {
        return Err(whole(format!("is larger than {MAX_IGNORE_BYTES} bytes")));
    }
    Rules::parse_file(rel.join(IGNORE_FILE), &text).map(Some)
}

/// Checks `--exclude` patterns before they are recorded in the configuration.
///
/// # Errors
/// The first pattern that is not valid, as a sentence.
pub fn check_patterns(patterns: &[String]) -> std::result::Result<(), String> {
    Rules::from_patterns(patterns)
        .map(|_| ())
        .map_err(|e| format!("--exclude {:?}: {}", e.pattern, e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    fn rules(file: &str, text: &str) -> Arc<Rules> {
        Arc::new(Rules::parse_file(p(file), text.as_bytes()).unwrap())
    }

    #[test]
    fn last_matching_line_wins_and_negation_reincludes() {
        let r = rules(".cpignore", "*.log\n!keep.log\n");
        assert_eq!(r.decide(&p("a.log"), false), Some(true));
        assert_eq!(r.decide(&p("keep.log"), false), Some(false));
        assert_eq!(r.decide(&p("sub/keep.log"), false), Some(false));
        assert_eq!(r.decide(&p("a.txt"), false), None);
    }

    #[test]
    fn directory_patterns_match_directories_only() {
        let r = rules(".cpignore", "build/\n");
        assert_eq!(r.decide(&p("build"), true), Some(true));
        assert_eq!(r.decide(&p("build"), false), None);
        assert_eq!(r.decide(&p("src/build"), true), Some(true));
    }

    #[test]
    fn anchored_patterns_are_relative_to_their_file() {
        let r = rules("src/.cpignore", "/gen\n");
        assert_eq!(r.decide(&p("src/gen"), false), Some(true));
        assert_eq!(r.decide(&p("src/x/gen"), false), None);
        // Outside the file's directory: no say.
        assert_eq!(r.decide(&p("gen"), false), None);
        let mid = rules(".cpignore", "doc/*.tmp\n");
        assert_eq!(mid.decide(&p("doc/a.tmp"), false), Some(true));
        assert_eq!(mid.decide(&p("x/doc/a.tmp"), false), None);
    }

    #[test]
    fn the_deepest_file_decides_then_the_plane_patterns() {
        let global = Rules::from_patterns(&["*.tmp".into(), "*.log".into()]).unwrap();
        let chain = Chain::default()
            .with(rules(".cpignore", "*.log\n"))
            .with(rules("sub/.cpignore", "!keep.log\n!x.tmp\n"));
        assert!(chain.excludes(Some(&global), &p("sub/a.log"), false));
        assert!(!chain.excludes(Some(&global), &p("sub/keep.log"), false));
        assert!(!chain.excludes(Some(&global), &p("sub/x.tmp"), false));
        assert!(chain.excludes(Some(&global), &p("sub/y.tmp"), false));
        let hit = chain.explain(Some(&global), &p("sub/keep.log"), false).unwrap();
        assert_eq!((hit.line, hit.pattern.as_str(), hit.excluded), (1, "!keep.log", false));
        assert_eq!(hit.source, Source::File(p("sub/.cpignore")));
        let hit = chain.explain(Some(&global), &p("sub/y.tmp"), false).unwrap();
        assert_eq!((hit.source, hit.line), (Source::Config, 1));
    }

    #[test]
    fn explain_names_the_last_matching_line() {
        let r = rules(".cpignore", "# comment\n*.o\n\nbuild/\n*.o\n");
        let hit = r.explain(&p("x/a.o"), false).unwrap();
        assert_eq!((hit.line, hit.pattern.as_str()), (5, "*.o"));
        assert_eq!(r.explain(&p("build"), true).unwrap().line, 4);
        assert!(r.explain(&p("a.c"), false).is_none());
    }

    #[test]
    fn an_excluded_directory_decides_for_what_is_inside() {
        let ex = Exclusions::new(None, [rules(".cpignore", "build/\n!build/keep\n")]);
        let hit = ex.explain(&p("build/keep"), false).unwrap();
        assert_eq!(hit.matched, p("build"));
        assert!(hit.excluded);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = Rules::parse_file(p(".cpignore"), b"ok\n\xff\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = Rules::parse_file(p(".cpignore"), b"ok\n[z-a\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(check_patterns(&["a\nb".into()]).is_err());
    }
}
