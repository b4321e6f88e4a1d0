//! `cplane gc` through the binary: it removes exactly what no root reaches
//! (restic's semantics: a parent keeps nothing), a kill at any point leaves
//! a store that fsck passes and that rolls back every live checkpoint, a
//! reader that opened the store before keeps reading, and package metadata
//! that only the packages registry names survives.

mod common;

use common::{cplane, noise, spawn, stdout, wait_for, write};
use cplane::id::ObjectId;
use cplane::object::ObjectKind;
use cplane::store::Store;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The plane as a user sees it: path → kind (`f`, `d`, `l`), mode, bytes.
type Listing = BTreeMap<PathBuf, (char, u32, Vec<u8>)>;

/// The states sealed, by checkpoint name.
type States = BTreeMap<String, Listing>;

/// The plane as a user sees it (everything but `.cp`).
fn tree(root: &Path) -> Listing {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p == root.join(".cp") {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    ('l', 0, fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()),
                );
            } else if m.is_dir() {
                out.insert(rel, ('d', mode, Vec::new()));
                stack.push(p);
            } else {
                out.insert(rel, ('f', mode, fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Total bytes of the files under `dir`.
fn du(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                n += m.len();
            }
        }
    }
    n
}

fn gc_json(d: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["gc", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&stdout(d, &args)).unwrap()
}

/// Every stored object id, every copy.
fn stored(d: &Path) -> Vec<ObjectId> {
    let s = Store::open(d).unwrap();
    s.packs()
        .iter()
        .flat_map(|p| (0..p.len()).map(move |i| p.entry(i).unwrap().id))
        .collect()
}

/// Checks the store after a gc: fsck clean, every object stored is
/// reachable (and stored once), and every live checkpoint rolls back to
/// exactly the state it was sealed from.
fn check_store(d: &Path, states: &States) {
    let out = cplane(d).arg("fsck").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let live: Vec<String> = checkpoints(d);
    for name in &live {
        if let Some(want) = states.get(name) {
            stdout(d, &["rollback", name, "--force"]);
            assert_eq!(&tree(d), want, "rollback to {name}");
        }
    }
}

/// Runs `cplane init` in `d`; returns the first checkpoint's name.
fn init(d: &Path) -> String {
    stdout(d, &["init"]);
    checkpoints(d).remove(0)
}

/// Checkpoint names of plane main.
fn checkpoints(d: &Path) -> Vec<String> {
    let s = Store::open(d).unwrap();
    s.checkpoints("main").unwrap().into_iter().map(|(n, _)| n).collect()
}

/// The reachable set as the library defines it.
fn reachable(d: &Path) -> HashSet<ObjectId> {
    let s = Store::open(d).unwrap();
    let r = cplane::gc::reachable(&s, cplane::Control::quiet()).unwrap();
    stored(d).into_iter().filter(|id| r.contains(id)).collect()
}

/// A 20-snapshot-ish history: a big file snapshotted once then deleted,
/// small files changing. Returns the states sealed, by checkpoint name.
fn history(d: &Path) -> States {
    let mut states = BTreeMap::new();
    write(d, "keep.txt", "always here\n");
    let c0 = init(d);
    states.insert(c0, tree(d));
    fs::write(d.join("big.bin"), noise(320 * 1024, 7)).unwrap();
    stdout(d, &["snapshot", "--name", "C1"]);
    states.insert("C1".to_string(), tree(d));
    fs::remove_file(d.join("big.bin")).unwrap();
    for i in 2..6 {
        write(d, &format!("dir/f{i}.txt"), &format!("version {i}\n"));
        std::os::unix::fs::symlink(format!("f{i}.txt"), d.join(format!("dir/l{i}"))).unwrap();
        stdout(d, &["snapshot", "--name", &format!("C{i}")]);
        states.insert(format!("C{i}"), tree(d));
    }
    states
}

#[test]
fn a_deleted_big_file_is_reclaimed_and_every_live_checkpoint_rolls_back() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let states = history(d);
    // Nothing is garbage yet.
    let j = gc_json(d, &[]);
    assert_eq!(j["removed_objects"], 0, "{j}");
    let before = du(&d.join(".cp"));
    stdout(d, &["checkpoints", "delete", "C1"]);
    let dry = gc_json(d, &["--dry-run"]);
    assert!(dry["removed_bytes"].as_u64().unwrap() > 300 * 1024, "{dry}");
    assert_eq!(du(&d.join(".cp/packs")), du(&d.join(".cp/packs")), "dry run");
    let j = gc_json(d, &[]);
    assert_eq!(j["dry_run"], false);
    assert!(j["bytes_reclaimed"].as_u64().unwrap() > 300 * 1024, "{j}");
    // Every pack of this small history is small: the clean ones are folded
    // into the one new pack with the live records of the dirty ones.
    assert_eq!(j["packs_kept"], 0, "small clean packs are folded in: {j}");
    assert_eq!(j["packs_after"], 1, "{j}");
    assert_eq!(j["removed_objects"], dry["removed_objects"]);
    let after = du(&d.join(".cp"));
    assert!(after + 300 * 1024 < before, "{before} -> {after}");
    // Recorded in the ledger, which still verifies.
    let es: Vec<cplane::ledger::Entry> = serde_json::from_str(&stdout(d, &["ledger", "--op", "gc", "--json"])).unwrap();
    assert_eq!(es.len(), 1);
    assert!(es[0].message.contains("reclaimed"), "{}", es[0].message);
    stdout(d, &["ledger", "verify"]);
    // Everything stored is reachable; a second gc finds nothing.
    let all = stored(d);
    assert_eq!(reachable(d).len(), all.len());
    assert_eq!(gc_json(d, &[])["removed_objects"], 0);
    check_store(d, &states);
    // The human report.
    stdout(d, &["checkpoints", "delete", "C2"]);
    let out = stdout(d, &["gc"]);
    assert!(out.contains("reclaimed") && out.contains("removed"), "{out}");
}

#[test]
fn a_secret_in_a_pruned_parent_is_gone_from_every_pack() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    let c0 = init(d);
    let secret = b"AKIA-SECRET-4f1c9e1d2b7a5c3e-do-not-keep";
    let mut body = secret.to_vec();
    body.extend_from_slice(&noise(64, 3));
    fs::write(d.join("creds"), &body).unwrap();
    stdout(d, &["snapshot", "--name", "OOPS"]);
    fs::remove_file(d.join("creds")).unwrap();
    stdout(d, &["snapshot", "--name", "FIXED"]);
    let id = cplane::object::blob_id(&body);
    // FIXED names OOPS as its parent; deleting OOPS frees it anyway.
    stdout(d, &["checkpoints", "delete", "OOPS", &c0]);
    stdout(d, &["gc"]);
    let s = Store::open(d).unwrap();
    assert!(!s.contains(&id));
    for p in s.packs() {
        let raw = fs::read(&p.pack_path).unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret), "raw bytes");
        for i in 0..p.len() {
            let e = p.entry(i).unwrap();
            let mut out = Vec::new();
            if e.kind == ObjectKind::Blob {
                p.read_blob_to(&e, &mut out, Path::new("-")).unwrap();
            } else {
                out = p.read(&e).unwrap().0;
            }
            assert!(!out.windows(secret.len()).any(|w| w == secret), "object {}", e.id);
        }
    }
    cplane(d).args(["cat", &format!("{}", id)]).assert().failure();
    let log = stdout(d, &["log"]);
    assert!(log.contains("pruned"), "{log}");
    let out = cplane(d).arg("fsck").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no damage"));
}

#[test]
fn a_gc_killed_at_every_step_leaves_a_sound_store() {
    for step in cplane::gc::GcStep::ALL {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let states = history(d);
        stdout(d, &["checkpoints", "delete", "C1", "C3"]);
        let marker = d.join(".cp/gc-paused");
        let mut child = spawn(d, &["gc"], &[("CPLANE_TEST_GC_PAUSE", step.name())]);
        wait_for(&marker, &mut child);
        child.kill().unwrap();
        child.wait().unwrap();
        fs::remove_file(&marker).unwrap();
        let out = cplane(d).arg("fsck").output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "after a kill at {}: {}",
            step.name(),
            String::from_utf8_lossy(&out.stdout)
        );
        // Every live checkpoint's objects are still there.
        let live = reachable(d);
        let s = Store::open(d).unwrap();
        assert!(live.iter().all(|id| s.contains(id)));
        check_store(d, &states);
        // The next gc finishes the job; the interrupted one is recorded late.
        let j = gc_json(d, &[]);
        assert_eq!(reachable(d).len(), stored(d).len(), "at {}: {j}", step.name());
        let ops = stdout(d, &["ledger", "--op", "gc"]);
        assert!(!ops.is_empty(), "{ops}");
        stdout(d, &["ledger", "verify"]);
        check_store(d, &states);
    }
}

#[test]
fn a_gc_after_one_killed_once_its_pack_was_written_keeps_that_pack() {
    // The killed gc's pack holds exactly what is kept and is small, so the
    // next gc folds it in and writes the same bytes under the same name:
    // that pack must survive the removal of the old ones.
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let states = history(d);
    stdout(d, &["checkpoints", "delete", "C1", "C3"]);
    let marker = d.join(".cp/gc-paused");
    let mut child = spawn(d, &["gc"], &[("CPLANE_TEST_GC_PAUSE", "packed")]);
    wait_for(&marker, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    fs::remove_file(&marker).unwrap();
    for _ in 0..2 {
        gc_json(d, &[]);
        let out = cplane(d).arg("fsck").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    }
    check_store(d, &states);
}

#[test]
fn a_gc_killed_after_random_delays_leaves_a_sound_store() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let states = history(d);
    stdout(d, &["checkpoints", "delete", "C1", "C2"]);
    for ms in [0u64, 3, 8, 15, 30, 60] {
        let mut child = spawn(d, &["gc"], &[]);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill();
        child.wait().unwrap();
        let out = cplane(d).arg("fsck").output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "after {ms} ms: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    check_store(d, &states);
}

#[test]
fn a_reader_that_opened_the_store_before_a_gc_reads_on() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    history(d);
    stdout(d, &["checkpoints", "delete", "C1"]);
    // The reader opens the store and resolves a checkpoint, then the gc runs.
    let reader = Store::open(d).unwrap();
    let head = reader.checkpoint("main", "C5").unwrap().unwrap();
    let before: Vec<ObjectId> = stored(d);
    stdout(d, &["gc"]);
    // Every object it could read before, reachable or not, it still reads
    // from the packs it holds open.
    for id in &before {
        let (p, e) = reader.locate(id).expect("still located");
        p.verify_entry(&e).unwrap();
    }
    let snap = reader.read_snapshot(&head).unwrap();
    reader.read_tree(&snap.root).unwrap();
    // A reader opened now sees only the new packs, and finds everything live.
    let fresh = Store::open(d).unwrap();
    for id in reachable(d) {
        assert!(fresh.contains(&id));
    }
}

#[test]
fn package_metadata_survives_a_gc() {
    let (plane, keys, admin) = common::governed_with_admin();
    let d = plane.path();
    let src = keys.path().join("src");
    write(&src, "specs/SPEC-000/pkg/hello.md", "# hello\n");
    let pkg = keys.path().join("hello.cppkg");
    stdout(
        d,
        &[
            "pack",
            "--spec",
            "SPEC-000",
            "--from",
            src.to_str().unwrap(),
            "--key",
            admin.to_str().unwrap(),
            "-o",
            pkg.to_str().unwrap(),
            "--id",
            "PKG-HELLO",
            "--version",
            "1.0.0",
        ],
    );
    stdout(d, &["install", pkg.to_str().unwrap()]);
    // Only the newest checkpoint stays: the manifest is named by nothing
    // but the registry in its tree.
    let names = checkpoints(d);
    let head = Store::open(d).unwrap().head("main").unwrap().unwrap();
    let s = Store::open(d).unwrap();
    let old: Vec<&str> = names
        .iter()
        .filter(|n| s.checkpoint("main", n).unwrap() != Some(head))
        .map(String::as_str)
        .collect();
    let mut args = vec!["checkpoints", "delete"];
    args.extend(old);
    stdout(d, &args);
    let j = gc_json(d, &[]);
    assert!(j["removed_objects"].as_u64().unwrap() > 0, "{j}");
    let m: serde_json::Value = serde_json::from_str(&stdout(d, &["show", "PKG-HELLO"])).unwrap();
    assert_eq!(m["id"], "PKG-HELLO");
    let a: serde_json::Value = serde_json::from_str(&stdout(d, &["show", "PKG-HELLO", "--attestation"])).unwrap();
    assert_eq!(a["_type"], "https://in-toto.io/Statement/v1");
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
    let out = cplane(d).arg("fsck").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // The gc entries are signed like every other entry of the plane.
    let es: Vec<cplane::ledger::Entry> = serde_json::from_str(&stdout(d, &["ledger", "--op", "gc", "--json"])).unwrap();
    assert!(es.iter().all(|e| e.sig.is_some()));
}

#[derive(Debug, Clone)]
enum Step {
    /// Write file `f{0}` with body number `{1}` (a small pool, so contents repeat).
    Write(u8, u8),
    /// Delete file `f{0}`.
    Remove(u8),
    /// Seal a checkpoint.
    Snapshot,
    /// Delete the `{0}`-th live checkpoint (modulo their count), unless it is HEAD's.
    Delete(u8),
    /// Run gc.
    Gc,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..6, 0u8..5).prop_map(|(f, b)| Step::Write(f, b)),
        1 => (0u8..6).prop_map(Step::Remove),
        3 => Just(Step::Snapshot),
        2 => any::<u8>().prop_map(Step::Delete),
        1 => Just(Step::Gc),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_exactly_what_live_checkpoints_need(steps in proptest::collection::vec(step(), 4..14)) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(d, "base", "base\n");
        let s0 = init(d);
        let mut states = BTreeMap::new();
        states.insert(s0, tree(d));
        let mut n = 1;
        for s in steps {
            match s {
                Step::Write(f, b) => {
                    let mut body = format!("file {f} body {b}\n").into_bytes();
                    body.extend(noise(200 * usize::from(b), u64::from(b)));
                    fs::write(d.join(format!("f{f}")), body).unwrap();
                }
                Step::Remove(f) => {
                    let _ = fs::remove_file(d.join(format!("f{f}")));
                }
                Step::Snapshot => {
                    let name = format!("S{n}");
                    n += 1;
                    let out = cplane(d).args(["snapshot", "--name", &name]).output().unwrap();
                    if out.status.success() && checkpoints(d).contains(&name) {
                        states.insert(name, tree(d));
                    }
                }
                Step::Delete(k) => {
                    let s = Store::open(d).unwrap();
                    let head = s.head("main").unwrap();
                    let names: Vec<String> = s
                        .checkpoints("main")
                        .unwrap()
                        .into_iter()
                        .filter(|(_, id)| Some(*id) != head)
                        .map(|(n, _)| n)
                        .collect();
                    if !names.is_empty() {
                        let name = &names[usize::from(k) % names.len()];
                        stdout(d, &["checkpoints", "delete", name]);
                    }
                }
                Step::Gc => {
                    stdout(d, &["gc"]);
                    prop_assert_eq!(reachable(d).len(), stored(d).len());
                }
            }
        }
        stdout(d, &["gc"]);
        // No unreachable object is left, each reachable one stored once.
        let all = stored(d);
        let unique: HashSet<ObjectId> = all.iter().copied().collect();
        prop_assert_eq!(reachable(d), unique.clone());
        prop_assert_eq!(unique.len(), all.len());
        check_store(d, &states);
    }
}

#[test]
fn fsck_reports_a_stat_cache_row_naming_an_absent_blob() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    init(d);
    let path = d.join(".cp/planes/main/index");
    let mut cache = cplane::store::index::StatCache::load(&path).expect("init writes the stat cache");
    cache.entries[0].id = cplane::object::blob_id(b"never stored");
    cache.save(&path, &d.join(".cp/tmp")).unwrap();
    let out = cplane(d).arg("fsck").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stat cache names 1 blob"));
    fs::remove_file(&path).unwrap();
    cplane(d).arg("fsck").assert().code(0);
}

#[test]
fn a_removed_planes_archived_checkpoints_are_kept_until_their_history_is_deleted() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    init(d);
    write(d, "docs/only-here.md", "docs\n");
    let body = noise(4096, 11);
    fs::write(d.join("docs/blob.bin"), &body).unwrap();
    stdout(d, &["plane", "add", "docs", "docs"]);
    let id = cplane::object::blob_id(&body);
    // The outer plane covers docs/ again after the removal: delete its
    // files so only the archived refs of plane docs name the blob.
    stdout(d, &["plane", "remove", "docs"]);
    fs::remove_dir_all(d.join("docs")).unwrap();
    stdout(d, &["snapshot"]);
    gc_json(d, &[]);
    assert!(Store::open(d).unwrap().contains(&id), "archived refs are roots");
    cplane(d).arg("fsck").assert().code(0);
    // Deleting the archive by hand makes them garbage.
    fs::remove_dir_all(d.join(".cp/planes-removed")).unwrap();
    let j = gc_json(d, &[]);
    assert!(j["removed_objects"].as_u64().unwrap() > 0, "{j}");
    assert!(!Store::open(d).unwrap().contains(&id));
    cplane(d).arg("fsck").assert().code(0);
}

/// A `status` whose store was opened before a gc must not write back a
/// stat-cache row naming a blob that gc collected (its old packs are still
/// open in that process): the refresh asks the packs on disk now, so a
/// later snapshot never trusts a row for a missing blob and fsck stays clean.
#[test]
fn a_status_that_opened_the_store_before_a_gc_records_no_collected_blob() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "f.txt", "collected\n");
    let first = init(d);
    write(d, "f.txt", "kept\n");
    stdout(d, &["snapshot", "-m", "kept"]);
    stdout(d, &["checkpoints", "delete", &first]);
    let collected = ObjectId(*blake3::hash(b"collected\n").as_bytes());
    // The status process: store opened (and the blob found in it) before the gc.
    let store = Store::open(d).unwrap();
    assert!(store.contains(&collected));
    let plane = store.plane("main").unwrap();
    // The file holds the bytes again, old enough to be trusted when recorded.
    write(d, "f.txt", "collected\n");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    stdout(d, &["gc"]);
    assert!(store.contains(&collected), "still in the pack this process holds open");
    let r = cplane::worktree::status(&store, &plane, cplane::control::Control::quiet()).unwrap();
    assert_eq!(r.scan.hashed_files, 1);
    let cache = cplane::store::index::StatCache::load(&d.join(".cp/planes/main/index")).unwrap_or_default();
    assert!(
        cache.entries.iter().all(|e| e.id != collected),
        "the refresh recorded a row for a collected blob"
    );
    stdout(d, &["fsck"]);
    stdout(d, &["snapshot", "-m", "back"]);
    stdout(d, &["fsck"]);
}

#[test]
fn a_large_clean_pack_is_kept_as_it_is_and_small_ones_are_folded_in() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // 6,000 files: the init's packs (one per worker thread) hold more objects
    // than a small pack may.
    for i in 0..6000 {
        write(d, &format!("many/f{i:04}.txt"), &format!("file {i}\n"));
    }
    init(d);
    let large: Vec<PathBuf> = pack_files(d).into_iter().filter(|p| idx_count(p) >= 1024).collect();
    assert!(!large.is_empty(), "{:?}", pack_files(d));
    fs::write(d.join("secret.bin"), noise(64 * 1024, 3)).unwrap();
    stdout(d, &["snapshot", "--name", "oops"]);
    fs::remove_file(d.join("secret.bin")).unwrap();
    write(d, "note.txt", "later\n");
    stdout(d, &["snapshot", "--name", "later"]);
    stdout(d, &["checkpoints", "delete", "oops"]);
    let j = gc_json(d, &[]);
    assert_eq!(j["packs_kept"], large.len() as u64, "{j}");
    assert_eq!(
        j["packs_after"],
        large.len() as u64 + 1,
        "the large packs and the new one: {j}"
    );
    let after = pack_files(d);
    for p in &large {
        assert!(
            after.contains(p),
            "a large clean pack is untouched: {p:?} not in {after:?}"
        );
    }
    stdout(d, &["fsck"]);
    // Nothing dirty: a second gc rewrites nothing, small packs or not.
    let again = gc_json(d, &[]);
    assert_eq!(again["packs_rewritten"], 0, "{again}");
    assert_eq!(pack_files(d), after);
}

/// The entry count of a pack index (`store-format.md`, "Packs": u64 at offset 8).
fn idx_count(idx: &Path) -> u64 {
    let b = fs::read(idx).unwrap();
    u64::from_le_bytes(b[8..16].try_into().unwrap())
}

/// The `.idx` files in `.cp/packs`, sorted.
fn pack_files(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(d.join(".cp/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    v.sort();
    v
}
