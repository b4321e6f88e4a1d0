//! The two large tables of a governance [`super::Model`], kept as vectors
//! sorted by path bytes rather than maps: the files of the state and every
//! ownership declaration. On a plane of 100,000 files they are built once
//! (one allocation per path) and joined by walking both in order, so the
//! passes cost no per-file map lookups.

use super::Declaration;
use crate::diff::Side;
use crate::path::RelPath;
use std::cmp::Ordering;

/// The files of one state that count (not exempt), sorted by path bytes.
#[derive(Debug, Default, Clone)]
pub struct Files(Vec<(RelPath, Side)>);

impl Files {
    /// Files from `(path, side)` pairs already sorted by path, without repeats
    /// (a `BTreeMap`'s order).
    pub(crate) fn from_sorted(v: Vec<(RelPath, Side)>) -> Files {
        debug_assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
        Files(v)
    }

    /// The side of `path`, if it is a file of the state.
    pub fn get(&self, path: &RelPath) -> Option<&Side> {
        self.0.binary_search_by(|(p, _)| p.cmp(path)).ok().map(|i| &self.0[i].1)
    }

    /// True when `path` is a file of the state.
    pub fn contains_key(&self, path: &RelPath) -> bool {
        self.get(path).is_some()
    }

    /// The paths, in order.
    pub fn keys(&self) -> impl Iterator<Item = &RelPath> {
        self.0.iter().map(|(p, _)| p)
    }

    /// `(path, side)`, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&RelPath, &Side)> {
        self.0.iter().map(|(p, s)| (p, s))
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every ownership declaration of a state, by declared path in path-byte
/// order; the declarations of one path (two or more: two owners) in the
/// order of their `.file_registry.csv` paths, then lines.
#[derive(Debug, Default, Clone)]
pub struct Declared {
    /// Each declared path once.
    paths: Vec<RelPath>,
    /// Every declaration; those of `paths[i]` are `decls[starts[i]..starts[i + 1]]`.
    decls: Vec<Declaration>,
    /// Where each path's declarations start in `decls`.
    starts: Vec<u32>,
}

impl Declared {
    /// Groups declarations made in source order (sources by path, rows by
    /// line) by path; the sort is stable, so source order is kept per path.
    pub(crate) fn from_unsorted(mut v: Vec<(RelPath, Declaration)>) -> Declared {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Declared {
            paths: Vec::with_capacity(v.len()),
            decls: Vec::with_capacity(v.len()),
            starts: Vec::with_capacity(v.len()),
        };
        for (p, d) in v {
            if out.paths.last() != Some(&p) {
                out.paths.push(p);
                out.starts.push(out.decls.len() as u32);
            }
            out.decls.push(d);
        }
        out
    }

    fn group(&self, i: usize) -> &[Declaration] {
        let from = self.starts[i] as usize;
        let to = self.starts.get(i + 1).map_or(self.decls.len(), |&e| e as usize);
        &self.decls[from..to]
    }

    /// The declarations of `path` (never empty when `Some`).
    pub fn get(&self, path: &RelPath) -> Option<&[Declaration]> {
        self.paths.binary_search(path).ok().map(|i| self.group(i))
    }

    /// True when some `.file_registry.csv` declares `path`.
    pub fn contains_key(&self, path: &RelPath) -> bool {
        self.paths.binary_search(path).is_ok()
    }

    /// Number of distinct declared paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Declared paths, in order.
    pub fn keys(&self) -> impl Iterator<Item = &RelPath> {
        self.paths.iter()
    }

    /// `(path, its declarations)`, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&RelPath, &[Declaration])> {
        self.paths.iter().enumerate().map(|(i, p)| (p, self.group(i)))
    }
}

/// One path of the union of [`Declared`] and [`Files`], from [`join`].
pub struct Joined<'a> {
    /// The path.
    pub path: &'a RelPath,
    /// Its declarations, when declared.
    pub decls: Option<&'a [Declaration]>,
    /// Its side, when it is a file of the state.
    pub file: Option<&'a Side>,
}

/// Every path that is declared or a file, in path order, walking both
/// tables once (no lookups).
pub fn join<'a>(declared: &'a Declared, files: &'a Files) -> impl Iterator<Item = Joined<'a>> {
    let mut d = 0;
    let mut f = 0;
    std::iter::from_fn(move || {
        let dp = declared.paths.get(d);
        let fp = files.0.get(f);
        let order = match (dp, fp) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some((b, _))) => a.cmp(b),
        };
        let out = match order {
            Ordering::Less => Joined {
                path: &declared.paths[d],
                decls: Some(declared.group(d)),
                file: None,
            },
            Ordering::Greater => Joined {
                path: &files.0[f].0,
                decls: None,
                file: Some(&files.0[f].1),
            },
            Ordering::Equal => Joined {
                path: &declared.paths[d],
                decls: Some(declared.group(d)),
                file: Some(&files.0[f].1),
            },
        };
        if order != Ordering::Greater {
            d += 1;
        }
        if order != Ordering::Less {
            f += 1;
        }
        Some(out)
    })
}

/// The declared paths that are files of the state, with their
/// declarations and sides, in path order.
pub fn owned<'a>(
    declared: &'a Declared,
    files: &'a Files,
) -> impl Iterator<Item = (&'a RelPath, &'a [Declaration], &'a Side)> {
    join(declared, files).filter_map(|j| Some((j.path, j.decls?, j.file?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::OwnerKind;
    use crate::id::ObjectId;
    use crate::object::{EntryKind, Meta};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    fn side() -> Side {
        Side {
            kind: EntryKind::File,
            id: ObjectId([0; 32]),
            size: 0,
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        }
    }

    fn p(s: &str) -> RelPath {
        RelPath::parse(s.as_bytes()).unwrap()
    }

    fn decl(owner: &str, line: u64) -> Declaration {
        Declaration {
            owner_id: Arc::from(owner),
            owner_kind: OwnerKind::Spec,
            source: Arc::new(p(".file_registry.csv")),
            line,
        }
    }

    #[test]
    fn groups_keep_source_order_per_path() {
        let d = Declared::from_unsorted(vec![
            (p("b"), decl("SPEC-1", 1)),
            (p("a/x"), decl("SPEC-2", 2)),
            (p("b"), decl("SPEC-3", 3)),
            (p("a.b"), decl("SPEC-4", 4)),
        ]);
        let got: Vec<(String, Vec<u64>)> = d
            .iter()
            .map(|(p, g)| (p.display(), g.iter().map(|d| d.line).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.b".to_string(), vec![4]),
                ("a/x".to_string(), vec![2]),
                ("b".to_string(), vec![1, 3]),
            ]
        );
        assert_eq!(d.len(), 3);
        assert_eq!(d.get(&p("b")).map(<[_]>::len), Some(2));
        assert!(d.get(&p("c")).is_none());
    }

    proptest! {
        /// The join is the union of both key sets, in order, each path once,
        /// with exactly the declarations and sides a map lookup would give.
        #[test]
        fn join_equals_map_lookups(
            declared in proptest::collection::vec(("[a-c](/[a-c]){0,2}", 0u64..3), 0..40),
            files in proptest::collection::btree_set("[a-c](/[a-c]){0,2}", 0..40),
        ) {
            let mut by_path: BTreeMap<RelPath, Vec<u64>> = BTreeMap::new();
            let mut rows = Vec::new();
            for (i, (path, _)) in declared.iter().enumerate() {
                by_path.entry(p(path)).or_default().push(i as u64);
                rows.push((p(path), decl("SPEC-1", i as u64)));
            }
            let d = Declared::from_unsorted(rows);
            let f = Files::from_sorted(files.iter().map(|s| (p(s), side())).collect());
            let union: BTreeSet<RelPath> = by_path.keys().cloned().chain(files.iter().map(|s| p(s))).collect();
            let got: Vec<RelPath> = join(&d, &f).map(|j| j.path.clone()).collect();
            prop_assert_eq!(&got, &union.iter().cloned().collect::<Vec<_>>());
            for j in join(&d, &f) {
                let lines = j.decls.map(|g| g.iter().map(|d| d.line).collect::<Vec<_>>());
                prop_assert_eq!(lines.as_ref(), by_path.get(j.path));
                prop_assert_eq!(j.file.is_some(), files.contains(&j.path.display()));
            }
        }
    }
}
