//! Property tests of the store's invariants, through the library:
//! random trees (nested and empty directories, empty files, symlinks, full
//! permission bits with setuid/setgid/sticky, owners when run as root,
//! non-UTF-8 names, paths past 4,096 bytes) → snapshot → random mutations
//! (edits, deletions, chmod, chown, kind changes, new files and empty
//! directories), then
//! * `verify` and `status` report exactly the mutations (naive comparison);
//! * `diff` of the two snapshots equals a naive comparison of the models;
//! * `rollback` restores every byte, kind, mode and owner, and nothing else remains;
//! * `restore` of one path restores that path's subtree and touches nothing else.
//!
//! The disk is written and read through `cplane::fsys::Dir` (dirfd-relative),
//! since the paths are longer than `PATH_MAX`.

use cplane::Control;
use cplane::checkout::NoHooks;
use cplane::diff::{ChangeKind, TreeSource, diff_trees};
use cplane::fsys::{Dir, EntryType};
use cplane::path::RelPath;
use cplane::plane::Plane;
use cplane::revision::resolve;
use cplane::snapshot::{SealOptions, seal};
use cplane::store::Store;
use cplane::store::lock::StoreLock;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

/// What a path is in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File { bytes: Vec<u8>, mode: u32, owner: u32 },
    Symlink { target: Vec<u8>, owner: u32 },
    Dir { mode: u32, owner: u32 },
}

/// A model path: `/`-separated bytes, printed compactly (runs of one byte as `p×200`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct K(Vec<u8>);

impl std::fmt::Debug for K {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = String::from_utf8_lossy(&self.0);
        let mut out = String::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let mut j = i;
            while j < chars.len() && chars[j] == chars[i] {
                j += 1;
            }
            if j - i >= 8 {
                out.push_str(&format!("{}×{}", chars[i], j - i));
            } else {
                out.extend(&chars[i..j]);
            }
            i = j;
        }
        write!(f, "{out:?}")
    }
}

impl std::ops::Deref for K {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

/// Every path of the tree, directories included.
type Model = BTreeMap<K, Node>;

fn is_root_user() -> bool {
    rustix::process::geteuid().is_root()
}

/// A 200-byte name: 23 of them nested make a path past 4,096 bytes.
fn long_name(c: u8) -> Vec<u8> {
    vec![c; 200]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[a-d]{1,2}".prop_map(|s| s.into_bytes()),
        1 => Just(b"\xff\xfename".to_vec()),
        1 => Just("naïve".as_bytes().to_vec()),
        1 => Just(b"sp ace".to_vec()),
    ]
}

fn file_mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => Just(0o644),
        2 => Just(0o755),
        1 => Just(0o600),
        1 => Just(0o4755),
        1 => Just(0o2750),
        1 => Just(0o1644),
        1 => Just(0o444),
    ]
}

fn dir_mode() -> BoxedStrategy<u32> {
    if is_root_user() {
        prop_oneof![4 => Just(0o755), 1 => Just(0o700), 1 => Just(0o1777), 1 => Just(0o2775), 1 => Just(0o555)].boxed()
    } else {
        prop_oneof![4 => Just(0o755), 1 => Just(0o700), 1 => Just(0o1777), 1 => Just(0o2775)].boxed()
    }
}

fn owner() -> BoxedStrategy<u32> {
    if is_root_user() {
        prop_oneof![3 => Just(0u32), 1 => Just(1000u32), 1 => Just(4242u32)].boxed()
    } else {
        Just(rustix::process::geteuid().as_raw()).boxed()
    }
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        5 => (proptest::collection::vec(any::<u8>(), 0..64), file_mode(), owner())
            .prop_map(|(bytes, mode, owner)| Node::File { bytes, mode, owner }),
        1 => ("[a-z./]{1,12}", owner()).prop_map(|(t, owner)| Node::Symlink { target: t.into_bytes(), owner }),
        1 => (dir_mode(), owner()).prop_map(|(mode, owner)| Node::Dir { mode, owner }),
    ]
}

fn default_dir() -> Node {
    Node::Dir {
        mode: 0o755,
        owner: rustix::process::geteuid().as_raw(),
    }
}

/// Adds `path` (with its ancestors as directories) unless it conflicts with a non-directory.
fn insert(m: &mut Model, parts: &[Vec<u8>], n: Node) -> bool {
    let mut prefix = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(p);
        let last = i + 1 == parts.len();
        let prefix = K(prefix.clone());
        match m.get(&prefix) {
            Some(Node::Dir { .. }) if !last => {}
            Some(_) if !last => return false,
            Some(_) => return false,
            None if !last => {
                m.insert(prefix, default_dir());
            }
            None => {
                m.insert(prefix, n.clone());
            }
        }
    }
    true
}

fn tree() -> impl Strategy<Value = Model> {
    (
        proptest::collection::vec((proptest::collection::vec(name(), 1..4), leaf()), 0..20),
        any::<bool>(),
        leaf(),
    )
        .prop_map(|(entries, deep, deep_leaf)| {
            let mut m = Model::new();
            for (parts, n) in entries {
                insert(&mut m, &parts, n);
            }
            if deep {
                // A file at the bottom of 23 nested 200-byte names: a 4.6 KB path.
                let mut parts: Vec<Vec<u8>> = (0..22).map(|i| long_name(b'p' + (i % 3) as u8)).collect();
                parts.push(b"bottom".to_vec());
                insert(&mut m, &parts, deep_leaf);
            }
            m
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Modify(usize, Vec<u8>),
    Delete(usize),
    Chmod(usize, u32),
    Chown(usize, u32),
    Add(Vec<Vec<u8>>, Node),
    ToSymlink(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(i, b)| Mutation::Modify(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), prop_oneof![file_mode(), dir_mode()]).prop_map(|(i, m)| Mutation::Chmod(i, m)),
        (any::<usize>(), owner()).prop_map(|(i, o)| Mutation::Chown(i, o)),
        (proptest::collection::vec(name(), 1..4), leaf()).prop_map(|(p, n)| Mutation::Add(p, n)),
        (any::<usize>(), "[a-z]{1,8}").prop_map(|(i, t)| Mutation::ToSymlink(i, t)),
    ]
}

fn rel(p: &[u8]) -> RelPath {
    RelPath::parse(p).expect("model paths are valid")
}

/// Opens the parent directory of `p` and returns it with the last name.
fn parent(root: &Dir, p: &[u8]) -> (Dir, Vec<u8>) {
    let r = rel(p);
    let dir = root.open_beneath(&r.parent().unwrap()).expect("parent exists");
    (dir, r.file_name().unwrap().to_vec())
}

fn remove(root: &Dir, p: &[u8]) {
    let (dir, name) = parent(root, p);
    let Ok(st) = dir.stat(&name) else { return };
    if EntryType::from_mode(st.st_mode) == EntryType::Dir {
        let sub = dir.open_dir(&name).unwrap();
        for (n, _) in sub.list().unwrap() {
            let mut child = p.to_vec();
            child.push(b'/');
            child.extend_from_slice(&n);
            remove(root, &child);
        }
        dir.rmdir(&name).unwrap();
    } else {
        dir.unlink(&name).unwrap();
    }
}

/// Writes one node (replacing what is there); directories get mode 0700 and
/// their real mode later ([`fix_dir_modes`]), so read-only ones can be filled.
fn write_node(root: &Dir, p: &[u8], n: &Node) {
    remove(root, p);
    let (dir, name) = parent(root, p);
    match n {
        Node::File { bytes, mode, owner } => {
            let mut f = dir.create_new(&name, 0o600).unwrap();
            f.write_all(bytes).unwrap();
            drop(f);
            if is_root_user() {
                dir.chown(&name, *owner, *owner).unwrap();
            }
            dir.chmod(&name, *mode, EntryType::File).unwrap();
        }
        Node::Symlink { target, owner } => {
            dir.symlink(target, &name).unwrap();
            if is_root_user() {
                dir.chown(&name, *owner, *owner).unwrap();
            }
        }
        Node::Dir { owner, .. } => {
            dir.mkdir(&name, 0o700).unwrap();
            if is_root_user() {
                dir.chown(&name, *owner, *owner).unwrap();
            }
        }
    }
}

fn fix_dir_modes(root: &Dir, m: &Model) {
    for (p, n) in m.iter().rev() {
        if let Node::Dir { mode, .. } = n {
            let (dir, name) = parent(root, p);
            dir.chmod(&name, *mode, EntryType::Dir).unwrap();
        }
    }
}

fn write_model(root: &Dir, m: &Model) {
    for (p, n) in m {
        write_node(root, p, n);
    }
    fix_dir_modes(root, m);
}

/// Applies mutations to the model and the disk; returns the new model.
fn mutate(root: &Dir, model: &Model, muts: &[Mutation]) -> Model {
    let mut m = model.clone();
    // Writable while we mutate; the model's modes go back on at the end.
    for (p, n) in m.iter() {
        if matches!(n, Node::Dir { .. }) {
            let (dir, name) = parent(root, p);
            dir.chmod(&name, 0o700, EntryType::Dir).unwrap();
        }
    }
    for mu in muts {
        let keys: Vec<K> = m.keys().cloned().collect();
        let pick = |i: &usize| (!keys.is_empty()).then(|| keys[i % keys.len()].clone());
        match mu {
            Mutation::Modify(i, b) => {
                if let Some(k) = pick(i)
                    && let Some(Node::File { mode, owner, .. }) = m.get(&k).cloned()
                {
                    let n = Node::File {
                        bytes: b.clone(),
                        mode,
                        owner,
                    };
                    write_node(root, &k, &n);
                    m.insert(k, n);
                }
            }
            Mutation::Delete(i) => {
                if let Some(k) = pick(i) {
                    remove(root, &k);
                    let mut under = k.0.clone();
                    under.push(b'/');
                    m.retain(|p, _| *p != k && !p.starts_with(&under));
                }
            }
            Mutation::Chmod(i, mode) => {
                if let Some(k) = pick(i) {
                    match m.get_mut(&k) {
                        Some(Node::File { mode: fm, .. }) => {
                            *fm = *mode & 0o7777;
                            let (dir, name) = parent(root, &k);
                            dir.chmod(&name, *fm, EntryType::File).unwrap();
                        }
                        Some(Node::Dir { mode: dm, .. }) => *dm = *mode & 0o7777,
                        _ => {}
                    }
                }
            }
            Mutation::Chown(i, o) => {
                if let Some(k) = pick(i)
                    && is_root_user()
                {
                    let (dir, name) = parent(root, &k);
                    match m.get_mut(&k) {
                        Some(Node::File { owner, mode, .. }) => {
                            *owner = *o;
                            dir.chown(&name, *o, *o).unwrap();
                            // chown clears setuid/setgid: put the model's mode back.
                            dir.chmod(&name, *mode, EntryType::File).unwrap();
                        }
                        Some(Node::Symlink { owner, .. }) | Some(Node::Dir { owner, .. }) => {
                            *owner = *o;
                            dir.chown(&name, *o, *o).unwrap();
                        }
                        None => {}
                    }
                }
            }
            Mutation::Add(parts, n) => {
                let mut probe = m.clone();
                if insert(&mut probe, parts, n.clone()) {
                    for (p, node) in &probe {
                        if !m.contains_key(p) {
                            write_node(root, p, node);
                            if matches!(node, Node::Dir { .. }) {
                                let (dir, name) = parent(root, p);
                                dir.chmod(&name, 0o700, EntryType::Dir).unwrap();
                            }
                        }
                    }
                    m = probe;
                }
            }
            Mutation::ToSymlink(i, t) => {
                if let Some(k) = pick(i)
                    && !matches!(m.get(&k), Some(Node::Dir { .. }))
                {
                    let n = Node::Symlink {
                        target: t.clone().into_bytes(),
                        owner: rustix::process::geteuid().as_raw(),
                    };
                    write_node(root, &k, &n);
                    m.insert(k, n);
                }
            }
        }
    }
    fix_dir_modes(root, &m);
    m
}

fn kind_of(n: &Node) -> u8 {
    match n {
        Node::File { .. } => 0,
        Node::Symlink { .. } => 1,
        Node::Dir { .. } => 2,
    }
}

/// The naive diff: (path, change) for every path whose presence, kind, bytes,
/// mode or owner differs (directories included, as the engine lists them).
fn naive_diff(a: &Model, b: &Model) -> BTreeSet<(K, ChangeKind)> {
    let mut out = BTreeSet::new();
    for (k, n) in a {
        match b.get(k) {
            None => {
                out.insert((k.clone(), ChangeKind::Deleted));
            }
            Some(m) if (kind_of(n) == 2) != (kind_of(m) == 2) => {
                out.insert((k.clone(), ChangeKind::Deleted));
                out.insert((k.clone(), ChangeKind::Added));
            }
            Some(m) => {
                let change = match (n, m) {
                    (Node::Dir { mode: x, owner: ox }, Node::Dir { mode: y, owner: oy }) => {
                        if x != y {
                            Some(ChangeKind::ModeChanged)
                        } else if ox != oy {
                            Some(ChangeKind::OwnerChanged)
                        } else {
                            None
                        }
                    }
                    _ => {
                        let bytes = |n: &Node| match n {
                            Node::File { bytes, .. } => bytes.clone(),
                            Node::Symlink { target, .. } => target.clone(),
                            Node::Dir { .. } => unreachable!(),
                        };
                        let mode = |n: &Node| match n {
                            Node::File { mode, .. } => *mode,
                            _ => 0,
                        };
                        let own = |n: &Node| match n {
                            Node::File { owner, .. } | Node::Symlink { owner, .. } | Node::Dir { owner, .. } => *owner,
                        };
                        if bytes(n) != bytes(m) {
                            Some(ChangeKind::Modified)
                        } else if kind_of(n) != kind_of(m) {
                            Some(ChangeKind::KindChanged)
                        } else if mode(n) != mode(m) {
                            Some(ChangeKind::ModeChanged)
                        } else if own(n) != own(m) {
                            Some(ChangeKind::OwnerChanged)
                        } else {
                            None
                        }
                    }
                };
                if let Some(c) = change {
                    out.insert((k.clone(), c));
                }
            }
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.insert((k.clone(), ChangeKind::Added));
        }
    }
    out
}

/// Reads the plane back from disk (`.cp` excluded), every path with its mode and owner.
fn read_disk(root: &Dir) -> Model {
    let mut m = Model::new();
    let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(p) = stack.pop() {
        let dir = root.open_beneath(&rel(&p)).unwrap();
        for (name, _) in dir.list().unwrap() {
            if p.is_empty() && name == b".cp" {
                continue;
            }
            let child = if p.is_empty() {
                name.clone()
            } else {
                [p.as_slice(), b"/", &name].concat()
            };
            let st = dir.stat(&name).unwrap();
            let node = match EntryType::from_mode(st.st_mode) {
                EntryType::Dir => {
                    stack.push(child.clone());
                    Node::Dir {
                        mode: st.st_mode & 0o7777,
                        owner: st.st_uid,
                    }
                }
                EntryType::Symlink => Node::Symlink {
                    target: dir.read_link(&name).unwrap(),
                    owner: st.st_uid,
                },
                _ => {
                    let mut bytes = Vec::new();
                    dir.open_file(&name).unwrap().read_to_end(&mut bytes).unwrap();
                    Node::File {
                        bytes,
                        mode: st.st_mode & 0o7777,
                        owner: st.st_uid,
                    }
                }
            };
            m.insert(K(child), node);
        }
    }
    m
}

fn setup(model: &Model) -> (tempfile::TempDir, Dir, Store, Plane) {
    let dir = tempfile::tempdir().unwrap();
    let root = Dir::open(dir.path()).unwrap();
    write_model(&root, model);
    let store = Store::init(dir.path()).unwrap();
    let plane = store.plane("main").unwrap();
    (dir, root, store, plane)
}

fn seal_named(store: &mut Store, plane: &Plane, name: &str) -> cplane::snapshot::SealReport {
    let lock = StoreLock::acquire(store.dir()).unwrap();
    let opts = SealOptions {
        name: Some(name.into()),
        ..SealOptions::default()
    };
    seal(store, &lock, plane, opts, Control::quiet()).unwrap()
}

fn as_set(changes: &[cplane::diff::Change]) -> BTreeSet<(K, ChangeKind)> {
    changes
        .iter()
        .map(|c| (K(c.path.as_bytes().to_vec()), c.kind))
        .collect()
}

/// The model restricted to `p` and everything under it.
fn subtree(m: &Model, p: &[u8]) -> Model {
    let mut under = p.to_vec();
    under.push(b'/');
    m.iter()
        .filter(|(k, _)| k.as_slice() == p || k.starts_with(&under))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn diff_verify_status_rollback_and_restore_agree_with_the_model(
        model in tree(),
        muts in proptest::collection::vec(mutation(), 1..8),
        restore_picks in proptest::collection::vec(any::<usize>(), 1..4),
    ) {
        let (dir, root, mut store, plane) = setup(&model);
        let base = seal_named(&mut store, &plane, "base");
        prop_assert_eq!(read_disk(&root), model.clone());

        let mutated = mutate(&root, &model, &muts);
        prop_assert_eq!(read_disk(&root), mutated.clone(), "the test's own mutation");
        let expected = naive_diff(&model, &mutated);

        // verify (full re-hash) and status (stat cache) report exactly the mutations.
        let v = cplane::worktree::verify(&store, &plane, Control::quiet()).unwrap();
        prop_assert!(v.scan.findings.is_empty(), "{:?}", v.scan.findings);
        prop_assert_eq!(as_set(&v.changes), expected.clone());
        let s = cplane::worktree::status(&store, &plane, Control::quiet()).unwrap();
        prop_assert_eq!(as_set(&s.changes), expected.clone());

        // diff of two snapshots equals the naive comparison.
        let after = seal_named(&mut store, &plane, "after");
        let d = diff_trees(&TreeSource::store(&store), &base.snapshot.root, &after.snapshot.root).unwrap();
        prop_assert_eq!(as_set(&d), expected.clone());
        prop_assert_eq!(d.len(), expected.len(), "one change per path and kind");

        // restore of one to three paths (from the union of both states) makes those
        // subtrees exactly base's and leaves everything else as it is.
        let keys: Vec<K> = model.keys().chain(mutated.keys()).cloned().collect::<BTreeSet<_>>().into_iter().collect();
        if !keys.is_empty() {
            let mut picked: Vec<Vec<u8>> = restore_picks.iter().map(|i| keys[i % keys.len()].0.clone()).collect();
            picked.sort();
            picked.dedup();
            // A path inside another picked path is restored with it.
            let all = picked.clone();
            picked.retain(|p| !all.iter().any(|o| o != p && p.starts_with(o) && p.get(o.len()) == Some(&b'/')));
            let lock = StoreLock::acquire(store.dir()).unwrap();
            let target = resolve(&store, &plane, "base").unwrap();
            let rels: Vec<RelPath> = picked.iter().map(|p| rel(p)).collect();
            let r = cplane::restore::restore(&mut store, &lock, &plane, &target, &rels, &NoHooks, Control::quiet());
            drop(lock);
            // A path under something that is now a file or symlink is refused as a
            // whole (that file is not the restore's to replace), and nothing changes.
            let blocked = picked.iter().find(|p| {
                p.iter().enumerate().any(|(i, &c)| {
                    c == b'/' && mutated.get(&K(p[..i].to_vec())).is_some_and(|n| !matches!(n, Node::Dir { .. }))
                })
            });
            if let Some(p) = blocked {
                prop_assert!(
                    matches!(r, Err(cplane::Error::UnsafePath { .. })),
                    "restore of {:?} through a file: {:?}", K(p.clone()), r.as_ref().map(|r| &r.journal.ops)
                );
                prop_assert_eq!(read_disk(&root), mutated.clone(), "a refused restore changed the tree");
            } else {
            let r = r.unwrap();
            let disk = read_disk(&root);
            let mut want = mutated.clone();
            let mut created = Model::new();
            for p in &picked {
                let mut under = p.clone();
                under.push(b'/');
                want.retain(|k, _| k.0 != *p && !k.starts_with(&under));
            }
            for p in &picked {
                want.extend(subtree(&model, p));
                // Directories on the way that base has and the working tree lacked are created.
                for (i, &c) in p.iter().enumerate() {
                    if c == b'/' && let Some(n) = model.get(&K(p[..i].to_vec())) && !mutated.contains_key(&K(p[..i].to_vec())) {
                        created.insert(K(p[..i].to_vec()), n.clone());
                    }
                }
            }
            want.extend(created.clone());
            prop_assert_eq!(&disk, &want, "restore of {:?}", picked.iter().map(|p| K(p.clone())).collect::<Vec<_>>());
            // Undo it: the rescue checkpoint has the paths as they were (a restore
            // that changed nothing keeps no rescue).
            if r.journal.ops.is_empty() {
                prop_assert_eq!(&disk, &mutated, "a restore without operations changed the tree");
                prop_assert!(store.checkpoint("main", &r.journal.rescue_name).unwrap().is_none());
            } else {
                let lock = StoreLock::acquire(store.dir()).unwrap();
                let rescue = resolve(&store, &plane, &r.journal.rescue_name).unwrap();
                cplane::restore::restore(&mut store, &lock, &plane, &rescue, &rels, &NoHooks, Control::quiet()).unwrap();
                drop(lock);
            }
            // (directories it had to create on the way stay: they are not under the paths)
            let mut undone = mutated.clone();
            undone.extend(created);
            prop_assert_eq!(read_disk(&root), undone, "restore from the rescue undoes it");
        }
        }

        // rollback restores every byte, kind, mode and owner, and leaves nothing else.
        let before_rollback = read_disk(&root);
        let lock = StoreLock::acquire(store.dir()).unwrap();
        let target = resolve(&store, &plane, "base").unwrap();
        let r = cplane::rollback::rollback(&mut store, &lock, &plane, &target, &NoHooks, Control::quiet()).unwrap();
        drop(lock);
        prop_assert!(r.applied.problems.is_empty(), "{:?}", r.applied.problems);
        prop_assert_eq!(read_disk(&root), model.clone());
        let head = store.read_snapshot(&store.head("main").unwrap().unwrap()).unwrap();
        prop_assert_eq!(head.root, base.snapshot.root);
        let v = cplane::worktree::verify(&store, &plane, Control::quiet()).unwrap();
        prop_assert!(v.is_clean(), "after rollback: {:?}", v.changes);
        let s = cplane::worktree::status(&store, &plane, Control::quiet()).unwrap();
        prop_assert!(s.is_clean(), "status after rollback: {:?}", s.changes);

        // ...and the rescue checkpoint undoes it; a rollback that found the
        // plane already as the target keeps no rescue (there is nothing to undo).
        if store.checkpoint("main", &r.journal.rescue_name).unwrap().is_some() {
            let lock = StoreLock::acquire(store.dir()).unwrap();
            let rescue = resolve(&store, &plane, &r.journal.rescue_name).unwrap();
            cplane::rollback::rollback(&mut store, &lock, &plane, &rescue, &NoHooks, Control::quiet()).unwrap();
            drop(lock);
        } else {
            prop_assert!(r.journal.ops.is_empty(), "a rollback that wrote something dropped its rescue");
        }
        prop_assert_eq!(read_disk(&root), before_rollback);
        // Leave the temporary directory removable whatever the modes.
        for (p, n) in read_disk(&root) {
            if matches!(n, Node::Dir { .. }) {
                let (d, name) = parent(&root, &p);
                d.chmod(&name, 0o700, EntryType::Dir).unwrap();
            }
        }
        drop(dir);
    }
}

/// A same-size rewrite whose mtime is set back to the recorded one still changes ctime: detected.
#[test]
fn status_detects_rewrite_with_restored_mtime() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("a")).unwrap();
    std::fs::write(d.path().join("a/f"), b"hello").unwrap();
    std::fs::write(d.path().join("g"), b"world").unwrap();
    // Age the files so the stat cache trusts them (not racy).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for k in ["a/f", "g"] {
        let f = std::fs::File::options().write(true).open(d.path().join(k)).unwrap();
        f.set_modified(old).unwrap();
    }
    let mut store = Store::init(d.path()).unwrap();
    let plane = store.plane("main").unwrap();
    // ctime cannot be set back: wait out the racy window once.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    seal_named(&mut store, &plane, "base");
    let s = cplane::worktree::status(&store, &plane, Control::quiet()).unwrap();
    assert!(s.is_clean());
    assert_eq!(s.scan.hashed_files, 0, "aged files come from the stat cache");

    let p = d.path().join("g");
    std::fs::write(&p, b"WORLD").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let s = cplane::worktree::status(&store, &plane, Control::quiet()).unwrap();
    assert_eq!(
        as_set(&s.changes),
        BTreeSet::from([(K(b"g".to_vec()), ChangeKind::Modified)])
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Any single flipped byte in any pack or pack index is reported by fsck,
    /// and a rollback never writes wrong bytes because of it.
    #[test]
    fn any_flipped_byte_is_caught_by_fsck(pick in any::<u64>(), bit in 0u8..8) {
        let mut model = Model::new();
        let me = rustix::process::geteuid().as_raw();
        model.insert(K(b"text.txt".to_vec()), Node::File { bytes: b"compressible ".repeat(40), mode: 0o644, owner: me });
        model.insert(K(b"dir".to_vec()), Node::Dir { mode: 0o755, owner: me });
        model.insert(K(b"dir/raw.bin".to_vec()), Node::File { bytes: (0..300u32).map(|i| (i * 7919 % 251) as u8).collect(), mode: 0o755, owner: me });
        model.insert(K(b"dir/link".to_vec()), Node::Symlink { target: b"../text.txt".to_vec(), owner: me });
        let (dir, root, mut store, plane) = setup(&model);
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
                let report = cplane::fsck::fsck(&store, &cplane::progress::NoProgress).unwrap();
                prop_assert!(!report.is_clean(), "flip at {:?}+{} went unnoticed", files[which], at);
            }
        }
        // Whatever was damaged, a rollback either fails or restores the exact state.
        for k in [&b"text.txt"[..], b"dir/raw.bin", b"dir/link"] {
            remove(&root, k);
        }
        if let Ok(mut store) = Store::open(dir.path()) {
            let lock = StoreLock::acquire(store.dir()).unwrap();
            if let Ok(target) = resolve(&store, &plane, "base")
                && cplane::rollback::rollback(&mut store, &lock, &plane, &target, &NoHooks, Control::quiet()).is_ok() {
                    prop_assert_eq!(read_disk(&root), model);
                }
        }
    }
}
