//! Property tests of governance pass 0 and the compiled ownership registry,
//! against a naive model of `governance.md`:
//!
//! * for random files and random `.file_registry.csv` declarations
//!   (duplicates, unknown owners and missing files included), pass 0
//!   reports exactly the unmapped (CP001), declared-but-missing (CP002),
//!   two-owner (CP003) and unknown-owner (CP004) paths the naive model finds;
//! * the compiled registry does not depend on the order of the rows, and
//!   (through the binary) not on the order the files were created in.

mod common;

use cplane::RelPath;
use cplane::diff::Side;
use cplane::governance::{Model, View, ownership_findings};
use cplane::id::ObjectId;
use cplane::object::{EntryKind, Meta};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

const FRAMEWORKS_CSV: &str = "id,name,version,purpose,artifact_path,allowed_spec_types,required_gates,required_metadata,authorizes\n\
FMWK-001,Test,1,test,fw.md,c,,,**\n";
const SPECS_CSV: &str = "id,framework_id,entity_type,artifact_path,required_assets,gates,metadata\n\
SPEC-001,FMWK-001,c,s.md,,,\nSPEC-002,FMWK-001,c,s.md,,,\n";

/// Data files that may or may not exist.
const UNIVERSE: &[&str] = &["a.txt", "b.txt", "d/a.txt", "d/b.txt", "d/e/a.txt", "x/y.txt"];
/// Directories that may hold a `.file_registry.csv`.
const DIRS: &[&str] = &["", "d", "d/e"];
/// Owners a row may name: two known specs and one unknown.
const OWNERS: &[&str] = &["SPEC-001", "SPEC-002", "SPEC-999"];

fn under(dir: &str, file: &str) -> String {
    if dir.is_empty() {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}

/// Every (registry directory, path relative to it) a row may declare.
fn targets() -> Vec<(&'static str, String)> {
    let mut all: Vec<String> = UNIVERSE.iter().map(|s| s.to_string()).collect();
    all.push("registries/frameworks_registry.csv".into());
    all.push("registries/specs_registry.csv".into());
    for d in DIRS {
        all.push(under(d, ".file_registry.csv"));
    }
    let mut out = Vec::new();
    for d in DIRS {
        for full in &all {
            let rel = if d.is_empty() {
                Some(full.as_str())
            } else {
                full.strip_prefix(&format!("{d}/"))
            };
            if let Some(rel) = rel {
                out.push((*d, rel.to_string()));
            }
        }
    }
    out
}

fn rel(p: &str) -> RelPath {
    RelPath::parse(p.as_bytes()).unwrap()
}

fn side(bytes: &[u8]) -> Side {
    Side {
        kind: EntryKind::File,
        id: ObjectId(*blake3::hash(bytes).as_bytes()),
        size: bytes.len() as u64,
        meta: Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
    }
}

/// The plane's files: path → bytes.
type Tree = BTreeMap<String, Vec<u8>>;

/// Builds the tree: registries, the present data files, and each
/// directory's `.file_registry.csv` holding `rows` (in the given order).
fn tree(present: &[bool], rows: &[(usize, usize)], empty_registry: &[bool]) -> Tree {
    let t = targets();
    let mut files = Tree::new();
    files.insert("registries/frameworks_registry.csv".into(), FRAMEWORKS_CSV.into());
    files.insert("registries/specs_registry.csv".into(), SPECS_CSV.into());
    for (i, f) in UNIVERSE.iter().enumerate() {
        if present[i] {
            files.insert(f.to_string(), format!("contents of {f}\n").into_bytes());
        }
    }
    let mut regs: BTreeMap<&str, String> = BTreeMap::new();
    for (i, d) in DIRS.iter().enumerate() {
        if empty_registry[i] {
            regs.insert(d, "file_path,owner_id,owner_kind\n".into());
        }
    }
    for &(target, owner) in rows {
        let (d, file) = &t[target];
        let body = regs
            .entry(d)
            .or_insert_with(|| "file_path,owner_id,owner_kind\n".into());
        body.push_str(&format!("{file},{},spec\n", OWNERS[owner]));
    }
    for (d, body) in regs {
        files.insert(under(d, ".file_registry.csv"), body.into_bytes());
    }
    files
}

fn view(files: &Tree) -> View<'_> {
    let sides = files.iter().map(|(p, b)| (rel(p), side(b))).collect();
    View::of_files(sides, move |p: &RelPath, _s: &Side| {
        Ok(files[std::str::from_utf8(p.as_bytes()).unwrap()].clone())
    })
}

/// Pass 0 findings of `files`, as code → set of paths.
fn pass0(files: &Tree) -> BTreeMap<String, BTreeSet<String>> {
    let v = view(files);
    let m = Model::load(&v).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in ownership_findings(&m, &v, false).unwrap() {
        out.entry(f.code.to_string()).or_default().insert(f.path.display());
    }
    out
}

/// The same, computed naively from the rows.
fn naive(files: &Tree, rows: &[(usize, usize)]) -> BTreeMap<String, BTreeSet<String>> {
    let t = targets();
    let mut declared: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for &(target, owner) in rows {
        let (d, file) = &t[target];
        declared.entry(under(d, file)).or_default().push(OWNERS[owner]);
    }
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |code: &str, p: &str| {
        out.entry(code.to_string()).or_default().insert(p.to_string());
    };
    for f in files.keys() {
        if !declared.contains_key(f) {
            add("CP001", f);
        }
    }
    for (p, owners) in &declared {
        if !files.contains_key(p) {
            add("CP002", p);
        }
        if owners.len() > 1 {
            add("CP003", p);
        }
        if owners.contains(&"SPEC-999") {
            add("CP004", p);
        }
    }
    out
}

fn compiled(files: &Tree) -> Vec<u8> {
    let v = view(files);
    Model::load(&v).unwrap().compiled()
}

/// The compiled bytes with the hash of each `.file_registry.csv` row blanked.
fn mask_registry_hashes(compiled: &[u8]) -> String {
    let text = std::str::from_utf8(compiled).unwrap();
    text.lines()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            if cells[0].ends_with(".file_registry.csv") {
                format!("{},{},{},", cells[0], cells[1], cells[2])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each row's hash is the BLAKE3 of the file's bytes (empty when missing).
fn check_hashes(files: &Tree, compiled: &[u8]) -> Result<(), TestCaseError> {
    for l in std::str::from_utf8(compiled).unwrap().lines().skip(1) {
        let cells: Vec<&str> = l.split(',').collect();
        prop_assert_eq!(cells.len(), 4, "{}", l);
        let want = files
            .get(cells[0])
            .map_or(String::new(), |b| blake3::hash(b).to_hex().to_string());
        prop_assert_eq!(cells[3], want.as_str(), "{}", l);
    }
    Ok(())
}

fn rows_strategy() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0..targets().len(), 0..OWNERS.len()), 0..16)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Pass 0 reports exactly the naive model's paths, code by code.
    #[test]
    fn pass0_matches_naive_model(
        present in prop::collection::vec(any::<bool>(), UNIVERSE.len()),
        rows in rows_strategy(),
        empty_registry in prop::collection::vec(any::<bool>(), DIRS.len()),
    ) {
        let files = tree(&present, &rows, &empty_registry);
        prop_assert_eq!(pass0(&files), naive(&files, &rows));
    }

    /// The compiled registry depends on the declarations, not on the order
    /// of the rows (each path declared once), and is sorted by path bytes.
    #[test]
    fn compiled_is_independent_of_row_order(
        present in prop::collection::vec(any::<bool>(), UNIVERSE.len()),
        rows in rows_strategy(),
        seed in any::<u64>(),
    ) {
        let t = targets();
        let mut seen = BTreeSet::new();
        let rows: Vec<(usize, usize)> = rows
            .into_iter()
            .filter(|&(i, _)| seen.insert(under(t[i].0, &t[i].1)))
            .collect();
        let mut shuffled = rows.clone();
        // A deterministic shuffle from the seed (Fisher-Yates with an LCG).
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let none = vec![false; DIRS.len()];
        let (ta, tb) = (tree(&present, &rows, &none), tree(&present, &shuffled, &none));
        let (a, b) = (compiled(&ta), compiled(&tb));
        // The streaming comparison pass 0 uses agrees with byte equality:
        // itself, and any truncation, extension or changed byte of it.
        let va = view(&ta);
        let ma = Model::load(&va).unwrap();
        prop_assert!(ma.compiled_equals(&a));
        let cut = (seed as usize) % a.len();
        prop_assert!(!ma.compiled_equals(&a[..cut]));
        prop_assert!(!ma.compiled_equals(&[a.as_slice(), b"x"].concat()));
        let mut flipped = a.clone();
        flipped[cut] ^= 1;
        prop_assert!(!ma.compiled_equals(&flipped));
        prop_assert_eq!(ma.compiled_equals(&b), a == b);
        // A `.file_registry.csv` is itself a file: its hash follows its bytes,
        // which the row order changes. Everything else is the same.
        check_hashes(&ta, &a)?;
        check_hashes(&tb, &b)?;
        prop_assert_eq!(mask_registry_hashes(&a), mask_registry_hashes(&b));
        let text = String::from_utf8(a).unwrap();
        let paths: Vec<&str> = text.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
        let mut sorted = paths.clone();
        sorted.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
        prop_assert_eq!(&paths, &sorted);
        prop_assert_eq!(paths.len(), rows.len());
    }
}

// ------------------------------------------------- through the binary

/// Lays down a governed plane in `dir` and adds `names` under
/// `specs/SPEC-000/extra/` (which the genesis framework authorizes), owned
/// by SPEC-000 through that directory's `.file_registry.csv`, creating the
/// files in the order given; returns the compiled registry's bytes.
fn compile_in_order(dir: &Path, names: &[String]) -> Vec<u8> {
    common::cplane(dir).args(["init", "--governed"]).assert().code(0);
    let base = "specs/SPEC-000/extra";
    let mut reg = String::from("file_path,owner_id,owner_kind\n.file_registry.csv,SPEC-000,spec\n");
    for n in names {
        common::write(dir, &format!("{base}/{n}"), &format!("body of {n}\n"));
    }
    let mut sorted = names.to_vec();
    sorted.sort();
    for n in &sorted {
        reg.push_str(&format!("{n},SPEC-000,spec\n"));
    }
    common::write(dir, &format!("{base}/.file_registry.csv"), &reg);
    common::cplane(dir).arg("compile").assert().code(0);
    fs::read(dir.join("registries/file_ownership_registry.csv")).unwrap()
}

proptest! {
    // Each case runs the binary six times: keep it modest.
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// `cplane compile` writes the same bytes whatever order the files
    /// (and directories) were created in.
    #[test]
    fn compile_is_independent_of_creation_order(
        names in prop::collection::btree_set("[a-c]{1,2}(/[a-c]{1,2}){0,2}\\.md", 1..10),
        seed in any::<u64>(),
    ) {
        // Files end in `.md`, directories never do: no name is both.
        let names: Vec<String> = names.into_iter().collect();
        let mut shuffled = names.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        shuffled.reverse();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = compile_in_order(a.path(), &names);
        let second = compile_in_order(b.path(), &shuffled);
        prop_assert_eq!(first, second);
    }
}
