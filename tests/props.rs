//! Property tests of the store's invariants, through the library:
//! random trees (nested dirs, empty files, symlinks, exec bits, non-UTF-8
//! names) → snapshot → random mutations, then
//! * `verify` and `status` report exactly the mutations (naive comparison);
//! * `diff` of the two snapshots equals a naive recursive comparison;
//! * `rollback` restores every byte, kind and mode, and nothing else remains.

use cplane::diff::{ChangeKind, TreeSource, diff_trees};
use cplane::object::EntryKind;
use cplane::plane::Plane;
use cplane::progress::NoProgress;
use cplane::revision::resolve;
use cplane::snapshot::{SealOptions, seal};
use cplane::store::Store;
use cplane::store::lock::StoreLock;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What a file is in the model: kind and bytes (symlink: target bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: EntryKind,
    bytes: Vec<u8>,
}

type Model = BTreeMap<Vec<u8>, Node>;

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-d]{1,2}".prop_map(|s| s.into_bytes()),
        1 => Just(b"\xff\xfename".to_vec()),
        1 => Just("naïve".as_bytes().to_vec()),
        1 => Just(b"sp ace".to_vec()),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(|bytes| Node { kind: EntryKind::File, bytes }),
        2 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(|bytes| Node { kind: EntryKind::Executable, bytes }),
        1 => "[a-z./]{1,12}".prop_map(|t| Node { kind: EntryKind::Symlink, bytes: t.into_bytes() }),
    ]
}

/// Drops paths that are a prefix directory of another path, so the model is a valid tree.
fn valid_tree(entries: Vec<(Vec<Vec<u8>>, Node)>) -> Model {
    let mut m = Model::new();
    for (parts, n) in entries {
        m.insert(parts.join(&b'/'), n);
    }
    let keys: Vec<Vec<u8>> = m.keys().cloned().collect();
    for k in &keys {
        let mut dir = k.clone();
        dir.push(b'/');
        if keys.iter().any(|o| o.starts_with(&dir)) {
            m.remove(k);
        }
    }
    m
}

fn tree() -> impl Strategy<Value = Model> {
    proptest::collection::vec((proptest::collection::vec(name(), 1..4), node()), 0..24).prop_map(valid_tree)
}

#[derive(Debug, Clone)]
enum Mutation {
    Modify(usize, Vec<u8>),
    Delete(usize),
    ToggleExec(usize),
    Add(Vec<Vec<u8>>, Node),
    ToSymlink(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(i, b)| Mutation::Modify(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::ToggleExec),
        (proptest::collection::vec(name(), 1..4), node()).prop_map(|(p, n)| Mutation::Add(p, n)),
        (any::<usize>(), "[a-z]{1,8}").prop_map(|(i, t)| Mutation::ToSymlink(i, t)),
    ]
}

fn abs(root: &Path, rel: &[u8]) -> std::path::PathBuf {
    root.join(OsStr::from_bytes(rel))
}

fn write_node(root: &Path, rel: &[u8], n: &Node) {
    let p = abs(root, rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    if let Ok(m) = std::fs::symlink_metadata(&p) {
        if m.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    match n.kind {
        EntryKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&n.bytes), &p).unwrap(),
        _ => {
            std::fs::write(&p, &n.bytes).unwrap();
            let mode = if n.kind == EntryKind::Executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// Applies mutations to the model and the disk; returns the new model.
fn mutate(root: &Path, model: &Model, muts: &[Mutation]) -> Model {
    let mut m = model.clone();
    for mu in muts {
        let keys: Vec<Vec<u8>> = m.keys().cloned().collect();
        let pick = |i: &usize| (!keys.is_empty()).then(|| keys[i % keys.len()].clone());
        match mu {
            Mutation::Modify(i, b) => {
                if let Some(k) = pick(i) {
                    let kind = if m[&k].kind == EntryKind::Symlink {
                        EntryKind::File
                    } else {
                        m[&k].kind
                    };
                    let n = Node { kind, bytes: b.clone() };
                    write_node(root, &k, &n);
                    m.insert(k, n);
                }
            }
            Mutation::Delete(i) => {
                if let Some(k) = pick(i) {
                    // Like `git rm`: drop directories the deletion empties (they are not tracked).
                    let p = abs(root, &k);
                    std::fs::remove_file(&p).unwrap();
                    let mut d = p.parent().unwrap();
                    while d != root && std::fs::remove_dir(d).is_ok() {
                        d = d.parent().unwrap();
                    }
                    m.remove(&k);
                }
            }
            Mutation::ToggleExec(i) => {
                if let Some(k) = pick(i) {
                    let mut n = m[&k].clone();
                    n.kind = match n.kind {
                        EntryKind::File => EntryKind::Executable,
                        EntryKind::Executable => EntryKind::File,
                        other => other,
                    };
                    if n.kind != EntryKind::Symlink {
                        let mode = if n.kind == EntryKind::Executable { 0o755 } else { 0o644 };
                        std::fs::set_permissions(abs(root, &k), std::fs::Permissions::from_mode(mode)).unwrap();
                    }
                    m.insert(k, n);
                }
            }
            Mutation::Add(parts, n) => {
                let k = parts.join(&b'/');
                let mut as_dir = k.clone();
                as_dir.push(b'/');
                // Skip additions that would conflict with an existing file or directory.
                let conflicts = m
                    .keys()
                    .any(|o| o.starts_with(&as_dir) || (k.starts_with(o) && k.get(o.len()) == Some(&b'/')));
                if !conflicts {
                    write_node(root, &k, n);
                    m.insert(k, n.clone());
                }
            }
            Mutation::ToSymlink(i, t) => {
                if let Some(k) = pick(i) {
                    let n = Node {
                        kind: EntryKind::Symlink,
                        bytes: t.clone().into_bytes(),
                    };
                    write_node(root, &k, &n);
                    m.insert(k, n);
                }
            }
        }
    }
    m
}

/// The naive diff: (path, change) for every path whose kind or bytes differ.
fn naive_diff(a: &Model, b: &Model) -> BTreeSet<(Vec<u8>, ChangeKind)> {
    let mut out = BTreeSet::new();
    for (k, n) in a {
        match b.get(k) {
            None => {
                out.insert((k.clone(), ChangeKind::Deleted));
            }
            Some(m) if m.bytes != n.bytes => {
                out.insert((k.clone(), ChangeKind::Modified));
            }
            Some(m) if m.kind != n.kind => {
                out.insert((k.clone(), ChangeKind::KindChanged));
            }
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.insert((k.clone(), ChangeKind::Added));
        }
    }
    out
}

/// Reads the plane back from disk (files and symlinks; `.cp` excluded), plus every directory.
fn read_disk(root: &Path) -> (Model, BTreeSet<Vec<u8>>) {
    let mut m = Model::new();
    let mut dirs = BTreeSet::new();
    fn walk(root: &Path, rel: &[u8], m: &mut Model, dirs: &mut BTreeSet<Vec<u8>>) {
        for e in std::fs::read_dir(abs(root, rel)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().as_bytes().to_vec();
            if rel.is_empty() && name == b".cp" {
                continue;
            }
            let p = if rel.is_empty() {
                name
            } else {
                [rel, b"/", &name].concat()
            };
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                dirs.insert(p.clone());
                walk(root, &p, m, dirs);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                m.insert(
                    p,
                    Node {
                        kind: EntryKind::Symlink,
                        bytes: t.as_os_str().as_bytes().to_vec(),
                    },
                );
            } else {
                let mode = e.metadata().unwrap().permissions().mode();
                let kind = if mode & 0o100 != 0 {
                    EntryKind::Executable
                } else {
                    EntryKind::File
                };
                m.insert(
                    p,
                    Node {
                        kind,
                        bytes: std::fs::read(e.path()).unwrap(),
                    },
                );
            }
        }
    }
    walk(root, b"", &mut m, &mut dirs);
    (m, dirs)
}

/// Directories implied by the model's paths.
fn model_dirs(m: &Model) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for k in m.keys() {
        for (i, &c) in k.iter().enumerate() {
            if c == b'/' {
                out.insert(k[..i].to_vec());
            }
        }
    }
    out
}

fn setup(model: &Model) -> (tempfile::TempDir, Store, Plane) {
    let dir = tempfile::tempdir().unwrap();
    for (k, n) in model {
        write_node(dir.path(), k, n);
    }
    let store = Store::init(dir.path()).unwrap();
    let plane = store.plane("main").unwrap();
    (dir, store, plane)
}

fn seal_named(store: &mut Store, plane: &Plane, name: &str) -> cplane::snapshot::SealReport {
    let lock = StoreLock::acquire(store.dir()).unwrap();
    let opts = SealOptions {
        name: Some(name.into()),
        ..SealOptions::default()
    };
    seal(store, &lock, plane, opts, &NoProgress).unwrap()
}

fn as_set(changes: &[cplane::diff::Change]) -> BTreeSet<(Vec<u8>, ChangeKind)> {
    changes.iter().map(|c| (c.path.clone(), c.kind)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn diff_verify_status_and_rollback_agree_with_the_model(
        model in tree(),
        muts in proptest::collection::vec(mutation(), 1..8),
    ) {
        let (dir, mut store, plane) = setup(&model);
        let base = seal_named(&mut store, &plane, "base");
        prop_assert_eq!(read_disk(dir.path()).0, model.clone());

        let mutated = mutate(dir.path(), &model, &muts);
        let expected = naive_diff(&model, &mutated);

        // verify (full re-hash) and status (stat cache) report exactly the mutations.
        let v = cplane::worktree::verify(&store, &plane, &NoProgress).unwrap();
        prop_assert!(v.scan.findings.is_empty());
        prop_assert_eq!(as_set(&v.changes), expected.clone());
        let s = cplane::worktree::status(&store, &plane, &NoProgress).unwrap();
        prop_assert_eq!(as_set(&s.changes), expected.clone());

        // diff of two snapshots equals the naive comparison.
        let after = seal_named(&mut store, &plane, "after");
        let d = diff_trees(&TreeSource::store(&store), &base.snapshot.root, &after.snapshot.root).unwrap();
        prop_assert_eq!(as_set(&d), expected.clone());
        prop_assert_eq!(d.len(), expected.len(), "one change per path");

        // rollback restores every byte and kind, and leaves nothing else (no stray dirs either).
        let lock = StoreLock::acquire(store.dir()).unwrap();
        let target = resolve(&store, &plane, "base").unwrap();
        let r = cplane::rollback::rollback(&mut store, &lock, &plane, &target, &NoProgress).unwrap();
        drop(lock);
        let (disk, dirs) = read_disk(dir.path());
        prop_assert_eq!(&disk, &model);
        prop_assert!(dirs.is_subset(&model_dirs(&model)), "stray directories: {:?}", dirs.difference(&model_dirs(&model)).collect::<Vec<_>>());
        let head = store.read_snapshot(&store.head("main").unwrap().unwrap()).unwrap();
        prop_assert_eq!(head.root, base.snapshot.root);
        let v = cplane::worktree::verify(&store, &plane, &NoProgress).unwrap();
        prop_assert!(v.is_clean(), "after rollback: {:?}", v.changes);
        // The stat cache the rollback left behind agrees.
        let s = cplane::worktree::status(&store, &plane, &NoProgress).unwrap();
        prop_assert!(s.is_clean(), "status after rollback: {:?}", s.changes);

        // ...and the rescue checkpoint undoes it.
        let lock = StoreLock::acquire(store.dir()).unwrap();
        let rescue = resolve(&store, &plane, &r.journal.rescue_name).unwrap();
        cplane::rollback::rollback(&mut store, &lock, &plane, &rescue, &NoProgress).unwrap();
        prop_assert_eq!(read_disk(dir.path()).0, mutated);
    }
}

/// A same-size rewrite whose mtime is set back to the recorded one still changes ctime: detected.
#[test]
fn status_detects_rewrite_with_restored_mtime() {
    let mut model = Model::new();
    model.insert(
        b"a/f".to_vec(),
        Node {
            kind: EntryKind::File,
            bytes: b"hello".to_vec(),
        },
    );
    model.insert(
        b"g".to_vec(),
        Node {
            kind: EntryKind::File,
            bytes: b"world".to_vec(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    for (k, n) in &model {
        write_node(dir.path(), k, n);
    }
    // Age the files so the stat cache trusts them (not racy).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for k in model.keys() {
        let f = std::fs::File::options().write(true).open(abs(dir.path(), k)).unwrap();
        f.set_modified(old).unwrap();
    }
    let mut store = Store::init(dir.path()).unwrap();
    let plane = store.plane("main").unwrap();
    // ctime cannot be set back: wait out the racy window once.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    seal_named(&mut store, &plane, "base");
    let s = cplane::worktree::status(&store, &plane, &NoProgress).unwrap();
    assert!(s.is_clean());
    assert_eq!(s.scan.hashed_files, 0, "aged files come from the stat cache");

    let p = abs(dir.path(), b"g");
    std::fs::write(&p, b"WORLD").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let s = cplane::worktree::status(&store, &plane, &NoProgress).unwrap();
    assert_eq!(
        as_set(&s.changes),
        BTreeSet::from([(b"g".to_vec(), ChangeKind::Modified)])
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Any single flipped byte in any pack or pack index is reported by fsck,
    /// and a rollback never writes wrong bytes because of it.
    #[test]
    fn any_flipped_byte_is_caught_by_fsck(pick in any::<u64>(), bit in 0u8..8) {
        let mut model = Model::new();
        model.insert(b"text.txt".to_vec(), Node { kind: EntryKind::File, bytes: b"compressible ".repeat(40) });
        model.insert(b"dir/raw.bin".to_vec(), Node { kind: EntryKind::Executable, bytes: (0..300u32).map(|i| (i * 7919 % 251) as u8).collect() });
        model.insert(b"dir/link".to_vec(), Node { kind: EntryKind::Symlink, bytes: b"../text.txt".to_vec() });
        let (dir, mut store, plane) = setup(&model);
        seal_named(&mut store, &plane, "base");
        let files: Vec<std::path::PathBuf> = store.packs().iter().flat_map(|p| [p.pack_path.clone(), p.idx_path.clone()]).collect();
        let sizes: Vec<u64> = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).collect();
        let total: u64 = sizes.iter().sum();
        let mut at = pick % total;
        let mut which = 0;
        while at >= sizes[which] {
            at -= sizes[which];
            which += 1;
        }
        drop(store);
        let mut bytes = std::fs::read(&files[which]).unwrap();
        bytes[at as usize] ^= 1 << bit;
        std::fs::write(&files[which], &bytes).unwrap();

        match Store::open(dir.path()) {
            Err(_) => {} // a damaged index header is refused on open: also caught
            Ok(store) => {
                let report = cplane::fsck::fsck(&store, &NoProgress).unwrap();
                prop_assert!(!report.is_clean(), "flip at {:?}+{} went unnoticed", files[which], at);
            }
        }
        // Whatever was damaged, a rollback either fails or restores the exact bytes.
        for k in model.keys() {
            let p = abs(dir.path(), k);
            if std::fs::symlink_metadata(&p).is_ok() {
                std::fs::remove_file(&p).unwrap();
            }
        }
        if let Ok(mut store) = Store::open(dir.path()) {
            let lock = StoreLock::acquire(store.dir()).unwrap();
            if let Ok(target) = resolve(&store, &plane, "base")
                && cplane::rollback::rollback(&mut store, &lock, &plane, &target, &NoProgress).is_ok() {
                    prop_assert_eq!(read_disk(dir.path()).0, model);
                }
        }
    }
}
