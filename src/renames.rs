//! Exact rename and copy detection over a change list, by blob id.
//!
//! git's exact pass (`diffcore-rename.c`, `find_exact_renames`), over the
//! changes only: a deleted path and an added path with the same blob id and
//! the same kind (file or symlink) are one **rename** (`R`); an added path
//! whose blob id and kind are those of the old side of another changed
//! path — modified, renamed away, or changed only in mode, owner or links —
//! is a **copy** (`C`) of it. As with git's `-C`, only changed paths are
//! copy sources: an added file equal to a file nobody touched stays `A`,
//! since finding it would mean reading the whole tree. The cost is one hash
//! map keyed by blob id over the changes: O(changes), never O(tree).
//!
//! Directories are not paired: a renamed directory shows as one rename per
//! file (and symlink) under it, as git shows it; an empty directory that
//! moved stays a `D` and an `A`. A rename whose mode or owner changed too is
//! still a rename (the renderer notes the mode change), like git's `R100`
//! with a mode line. Hard-link groups are not compared.
//!
//! When several deleted paths share an id (identical files), each added
//! path is paired with the deleted path most like it: most trailing path
//! components in common (the same file name first, then the same parent,
//! ...), then most leading components in common, then the first in tree
//! order. Groups too large for comparing every pair (more than
//! [`PAIR_LIMIT`] candidate pairs, e.g. thousands of empty files) are paired
//! by equal file name and then in tree order, still deterministically.

use crate::diff::{Change, ChangeKind, Side};
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::path::RelPath;
use std::collections::HashMap;

/// Most candidate pairs (deleted × added paths sharing one id) compared one
/// by one; a larger group is paired by file name, then in tree order.
pub const PAIR_LIMIT: usize = 1 << 16;

/// What a reported entry says about its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// One path changed ([`ChangeKind`]).
    Changed(ChangeKind),
    /// `from` is gone and `path` holds its bytes (same blob id and kind).
    Renamed,
    /// `path` is new and holds the old bytes of `from`, a changed path.
    Copied,
}

impl Status {
    /// One-letter status, as `git diff --name-status` prints it: `R`, `C`,
    /// or the change's letter ([`ChangeKind::letter`]).
    pub fn letter(self) -> char {
        match self {
            Status::Changed(k) => k.letter(),
            Status::Renamed => 'R',
            Status::Copied => 'C',
        }
    }

    /// snake_case name used in `--json`: `renamed`, `copied`, or the change's
    /// name ([`ChangeKind::name`]).
    pub fn name(self) -> &'static str {
        match self {
            Status::Changed(k) => k.name(),
            Status::Renamed => "renamed",
            Status::Copied => "copied",
        }
    }
}

/// One entry of a rename-aware change list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What happened.
    pub status: Status,
    /// Plane-relative path: the new path of a rename or copy.
    pub path: RelPath,
    /// The source of a rename or copy; `None` otherwise.
    pub from: Option<RelPath>,
    /// The old side: of `from` for a rename or copy (its bytes are `new`'s).
    pub old: Option<Side>,
    /// The new side.
    pub new: Option<Side>,
}

impl From<Change> for Entry {
    fn from(c: Change) -> Self {
        Entry {
            status: Status::Changed(c.kind),
            path: c.path,
            from: None,
            old: c.old,
            new: c.new,
        }
    }
}

impl Entry {
    /// The plain changes this entry stands for: a rename is its source's
    /// deletion and its destination's addition, a copy is an addition.
    pub fn expand(&self) -> Vec<Change> {
        let change = |path: &RelPath, kind, old, new| Change {
            path: path.clone(),
            kind,
            old,
            new,
        };
        match (self.status, &self.from) {
            (Status::Renamed, Some(from)) => vec![
                change(from, ChangeKind::Deleted, self.old, None),
                change(&self.path, ChangeKind::Added, None, self.new),
            ],
            (Status::Copied, _) | (Status::Renamed, None) => {
                vec![change(&self.path, ChangeKind::Added, None, self.new)]
            }
            (Status::Changed(k), _) => vec![change(&self.path, k, self.old, self.new)],
        }
    }
}

/// The changes as entries, without pairing (`--no-renames`).
pub fn plain(changes: Vec<Change>) -> Vec<Entry> {
    changes.into_iter().map(Entry::from).collect()
}

/// What pairs two sides: the same kind (file or symlink) and blob id.
type Key = (EntryKind, ObjectId);

fn key(s: &Option<Side>) -> Option<Key> {
    s.as_ref().filter(|s| s.kind != EntryKind::Dir).map(|s| (s.kind, s.id))
}

/// How alike two paths are: trailing components in common, then leading ones.
fn likeness(a: &RelPath, b: &RelPath) -> (usize, usize) {
    let trailing = a
        .components()
        .rev()
        .zip(b.components().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let leading = a.components().zip(b.components()).take_while(|(x, y)| x == y).count();
    (trailing, leading)
}

/// Pairs deleted paths `dels` with added paths `adds` (indices into
/// `changes`, each list in tree order): as many pairs as the shorter list,
/// the most alike first (see the module documentation).
fn pair(changes: &[Change], dels: &[usize], adds: &[usize]) -> Vec<(usize, usize)> {
    if let ([d], [a]) = (dels, adds) {
        return vec![(*d, *a)];
    }
    let path = |i: usize| &changes[i].path;
    if dels.len().saturating_mul(adds.len()) <= PAIR_LIMIT {
        let mut all: Vec<((usize, usize), usize, usize)> = Vec::with_capacity(dels.len() * adds.len());
        for &a in adds {
            for &d in dels {
                all.push((likeness(path(d), path(a)), a, d));
            }
        }
        // Most alike first; then the added path, then the deleted path, in
        // tree order (the indices follow it).
        all.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        let (mut used_d, mut used_a) = (std::collections::HashSet::new(), std::collections::HashSet::new());
        let mut out = Vec::new();
        for (_, a, d) in all {
            if !used_d.contains(&d) && !used_a.contains(&a) {
                used_d.insert(d);
                used_a.insert(a);
                out.push((d, a));
            }
        }
        return out;
    }
    // Too many to compare: the same file name first, then tree order.
    let mut by_name: HashMap<&[u8], (Vec<usize>, Vec<usize>)> = HashMap::new();
    for &d in dels {
        by_name
            .entry(path(d).file_name().unwrap_or_default())
            .or_default()
            .0
            .push(d);
    }
    for &a in adds {
        by_name
            .entry(path(a).file_name().unwrap_or_default())
            .or_default()
            .1
            .push(a);
    }
    let mut out = Vec::new();
    let (mut left_d, mut left_a) = (Vec::new(), Vec::new());
    for (ds, as_) in by_name.into_values() {
        let n = ds.len().min(as_.len());
        out.extend(ds[..n].iter().copied().zip(as_[..n].iter().copied()));
        left_d.extend_from_slice(&ds[n..]);
        left_a.extend_from_slice(&as_[n..]);
    }
    left_d.sort_unstable();
    left_a.sort_unstable();
    out.extend(left_d.into_iter().zip(left_a));
    out
}

/// The copy source for the added path `a` among `sources` (indices into
/// `changes`, in tree order): the most alike, the first in tree order among
/// equals; by file name, then the first, when the group is too large.
fn source(changes: &[Change], sources: &[usize], a: usize, group: usize) -> usize {
    let path = |i: usize| &changes[i].path;
    if group.saturating_mul(sources.len()) <= PAIR_LIMIT {
        let mut best = sources[0];
        for &s in &sources[1..] {
            if likeness(path(s), path(a)) > likeness(path(best), path(a)) {
                best = s;
            }
        }
        return best;
    }
    let name = path(a).file_name();
    sources
        .iter()
        .copied()
        .find(|&s| path(s).file_name() == name)
        .unwrap_or(sources[0])
}

/// Pairs renames and copies in `changes` (one plane's reported changes,
/// in tree order, as [`crate::diff::diff_states`] returns them after
/// [`Change::is_reported`]). Returns entries in tree order of their
/// (new) paths; every change is in exactly one entry ([`Entry::expand`]
/// gives them back). O(changes) time and memory for distinct ids.
pub fn detect(changes: Vec<Change>) -> Vec<Entry> {
    let mut dels: HashMap<Key, Vec<usize>> = HashMap::new();
    let mut adds: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        match c.kind {
            ChangeKind::Added => {
                if let Some(k) = key(&c.new) {
                    adds.entry(k).or_default().push(i);
                }
            }
            ChangeKind::Deleted => {
                if let Some(k) = key(&c.old) {
                    dels.entry(k).or_default().push(i);
                }
            }
            _ => {}
        }
    }
    if adds.is_empty() {
        return plain(changes);
    }
    // For each added path it pairs: the source and whether it is a rename.
    let mut paired: HashMap<usize, (usize, Status)> = HashMap::new();
    let mut renamed_away = std::collections::HashSet::new();
    let mut unpaired: HashMap<Key, Vec<usize>> = HashMap::new();
    for (k, a) in &adds {
        let pairs = dels.get(k).map_or_else(Vec::new, |d| pair(&changes, d, a));
        for &(d, add) in &pairs {
            paired.insert(add, (d, Status::Renamed));
            renamed_away.insert(d);
        }
        if pairs.len() < a.len() {
            let mut rest: Vec<usize> = a.iter().copied().filter(|i| !paired.contains_key(i)).collect();
            rest.sort_unstable();
            unpaired.insert(*k, rest);
        }
    }
    if !unpaired.is_empty() {
        // Copy sources: the old side of every change but an addition.
        let mut sources: HashMap<Key, Vec<usize>> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            if c.kind != ChangeKind::Added
                && let Some(k) = key(&c.old)
                && unpaired.contains_key(&k)
            {
                sources.entry(k).or_default().push(i);
            }
        }
        for (k, rest) in &unpaired {
            if let Some(s) = sources.get(k) {
                for &a in rest {
                    paired.insert(a, (source(&changes, s, a, rest.len()), Status::Copied));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(changes.len() - renamed_away.len());
    let sources: HashMap<usize, (RelPath, Option<Side>)> = paired
        .values()
        .map(|&(s, _)| (s, (changes[s].path.clone(), changes[s].old)))
        .collect();
    for (i, c) in changes.into_iter().enumerate() {
        if renamed_away.contains(&i) {
            continue;
        }
        match paired.get(&i) {
            Some((s, status)) => {
                let (from, old) = sources[s].clone();
                out.push(Entry {
                    status: *status,
                    path: c.path,
                    from: Some(from),
                    old,
                    new: c.new,
                });
            }
            None => out.push(Entry::from(c)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Meta;

    fn side(byte: u8) -> Option<Side> {
        Some(Side {
            kind: EntryKind::File,
            id: ObjectId([byte; 32]),
            size: 1,
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        })
    }

    fn change(path: &str, kind: ChangeKind, old: Option<Side>, new: Option<Side>) -> Change {
        Change {
            path: RelPath::parse(path.as_bytes()).unwrap(),
            kind,
            old,
            new,
        }
    }

    fn shown(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match &e.from {
                Some(f) => format!("{} {} {}", e.status.letter(), f.display(), e.path.display()),
                None => format!("{} {}", e.status.letter(), e.path.display()),
            })
            .collect()
    }

    #[test]
    fn identical_files_pair_by_path_likeness() {
        let changes = vec![
            change("a/x/same", ChangeKind::Deleted, side(1), None),
            change("a/y/same", ChangeKind::Deleted, side(1), None),
            change("b/x/same", ChangeKind::Added, None, side(1)),
            change("b/y/same", ChangeKind::Added, None, side(1)),
            change("c", ChangeKind::Added, None, side(1)),
        ];
        assert_eq!(
            shown(&detect(changes)),
            ["R a/x/same b/x/same", "R a/y/same b/y/same", "C a/x/same c"]
        );
    }

    #[test]
    fn groups_past_the_limit_pair_by_name_then_in_order() {
        let n = 300; // 300 × 300 > PAIR_LIMIT
        let mut changes = Vec::new();
        for i in 0..n {
            changes.push(change(&format!("old/{i:03}"), ChangeKind::Deleted, side(0), None));
        }
        for i in 0..n {
            changes.push(change(
                &format!("zz/{:03}", n - 1 - i),
                ChangeKind::Added,
                None,
                side(0),
            ));
        }
        changes.sort_by(|a, b| crate::diff::tree_order(&a.path, &b.path));
        let entries = detect(changes);
        assert_eq!(entries.len(), n);
        for e in &entries {
            assert_eq!(e.status, Status::Renamed);
            assert_eq!(e.from.as_ref().unwrap().file_name(), e.path.file_name());
        }
    }

    #[test]
    fn kinds_and_directories_never_pair() {
        let mut link = side(2);
        link.as_mut().unwrap().kind = EntryKind::Symlink;
        let mut dir = side(3);
        dir.as_mut().unwrap().kind = EntryKind::Dir;
        let changes = vec![
            change("d1", ChangeKind::Deleted, dir, None),
            change("d2", ChangeKind::Added, None, dir),
            change("f", ChangeKind::Deleted, side(2), None),
            change("l", ChangeKind::Added, None, link),
        ];
        assert_eq!(shown(&detect(changes)), ["D d1", "A d2", "D f", "A l"]);
    }
}
