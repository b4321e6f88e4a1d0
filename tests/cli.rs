//! Integration tests through the real binary, for behaviour that needs the
//! store's internals to set up: killed rollbacks, corrupted objects of each
//! kind, format versions, the lock, special and unreadable files.

mod common;
use common::{NOBODY, corrupt, cplane, cplane_unprivileged, hand_over, kill_after_ops, stdout_code, write};

use cplane::id::ObjectId;
use cplane::object::ObjectKind;
use cplane::store::Store;
use predicates::prelude::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// A plane with a few files, initialised and sealed as `base`.
fn plane_with_base() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.txt", "alpha\n");
    write(d.path(), "src/lib.rs", "pub fn f() {}\n");
    write(d.path(), "src/deep/x.bin", "xxxxxxxx");
    std::os::unix::fs::symlink("a.txt", d.path().join("link")).unwrap();
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "base", "--allow-unchanged"])
        .assert()
        .success();
    d
}

/// The JSON that `cplane ARGS` in `dir` prints, exiting `code`.
fn json(dir: &Path, args: &[&str], code: i32) -> serde_json::Value {
    let out = stdout_code(dir, args, code);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`cplane {}` printed no JSON ({e}): {out}", args.join(" ")))
}

fn tree_bytes(root: &Path) -> Vec<(String, Vec<u8>, u32)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>, u32)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if dir == root && e.file_name() == ".cp" {
                continue;
            }
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.push((rel.clone() + "/", Vec::new(), 0));
                walk(root, &e.path(), out);
            } else if ft.is_symlink() {
                out.push((
                    rel,
                    fs::read_link(e.path()).unwrap().display().to_string().into_bytes(),
                    1,
                ));
            } else {
                let mode = e.metadata().unwrap().permissions().mode() & 0o100;
                out.push((rel, fs::read(e.path()).unwrap(), mode));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

#[test]
fn interrupted_rollback_is_completed_by_the_next_command() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..30 {
        write(
            d.path(),
            &format!("dir{}/f{i}.txt", i % 3),
            &format!("version one of {i}\n"),
        );
    }
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "base", "--allow-unchanged"])
        .assert()
        .success();
    let base = tree_bytes(d.path());
    for i in 0..30 {
        write(
            d.path(),
            &format!("dir{}/f{i}.txt", i % 3),
            &format!("version two of {i}, longer\n"),
        );
    }
    write(d.path(), "extra/new.txt", "not in base\n");
    cplane(d.path())
        .args(["snapshot", "--name", "changed"])
        .assert()
        .success();

    // Start a rollback that pauses after 10 operations, then kill it (SIGKILL).
    kill_after_ops(d.path(), &["rollback", "base"], 10, &[]);
    assert!(
        d.path().join(".cp/planes/main/journal").exists(),
        "the journal survives the kill"
    );
    let mid = tree_bytes(d.path());
    assert_ne!(mid, base, "killed mid-way: the tree is partly rolled back");

    // Any command in the plane finishes it first.
    cplane(d.path())
        .arg("status")
        .assert()
        .success()
        .stderr(predicate::str::contains("finished an interrupted rollback"));
    assert_eq!(tree_bytes(d.path()), base);
    assert!(!d.path().join(".cp/planes/main/journal").exists());
    cplane(d.path()).arg("verify").assert().success();
    let log = json(d.path(), &["log", "--json"], 0);
    assert_eq!(log[0]["kind"], "rollback");
    assert_eq!(log[1]["kind"], "rescue");
    cplane(d.path()).arg("fsck").assert().success();
}

fn head_json(dir: &Path) -> serde_json::Value {
    json(dir, &["show", "HEAD", "--json"], 0)
}

#[test]
fn corrupt_blob_is_caught_by_fsck_and_never_trusted_by_rollback() {
    let d = plane_with_base();
    let blob = blake3::hash(b"alpha\n");
    write(d.path(), "a.txt", "changed\n");
    cplane(d.path())
        .args(["snapshot", "--name", "changed"])
        .assert()
        .success();
    corrupt(d.path(), &ObjectId(*blob.as_bytes()));
    cplane(d.path())
        .arg("fsck")
        .assert()
        .code(3)
        .stdout(predicate::str::contains(blob.to_hex().as_str()))
        .stdout(predicate::str::contains("main:base (a.txt)"));
    let before = tree_bytes(d.path());
    cplane(d.path())
        .args(["rollback", "base"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(blob.to_hex().as_str()));
    assert_eq!(tree_bytes(d.path()), before, "nothing in the plane changed");
    let fsck = json(d.path(), &["fsck", "--json"], 3);
    assert_eq!(fsck["damage"][0]["kind"], "blob");
}

#[test]
fn corrupt_tree_is_caught_by_fsck_and_verify() {
    let d = plane_with_base();
    let root = head_json(d.path())["root"].as_str().unwrap().to_string();
    corrupt(d.path(), &ObjectId::from_hex(&root).unwrap());
    cplane(d.path())
        .arg("fsck")
        .assert()
        .code(3)
        .stdout(predicate::str::contains(root.as_str()));
    cplane(d.path())
        .arg("verify")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("store damage"));
    // Rolling back to a snapshot whose tree is damaged fails before touching the plane.
    write(d.path(), "a.txt", "edited\n");
    let before = tree_bytes(d.path());
    cplane(d.path()).args(["rollback", "base"]).assert().code(3);
    assert_eq!(tree_bytes(d.path()), before);
}

#[test]
fn corrupt_snapshot_is_caught_by_fsck_and_log() {
    let d = plane_with_base();
    let id = head_json(d.path())["snapshot"].as_str().unwrap().to_string();
    corrupt(d.path(), &ObjectId::from_hex(&id).unwrap());
    cplane(d.path())
        .arg("fsck")
        .assert()
        .code(3)
        .stdout(predicate::str::contains(id.as_str()))
        .stdout(predicate::str::contains("main:HEAD"));
    cplane(d.path()).arg("log").assert().code(3);
}

#[test]
fn missing_pack_is_reported_as_missing_objects() {
    let d = plane_with_base();
    let store = Store::open(d.path()).unwrap();
    let blob = ObjectId(*blake3::hash(b"xxxxxxxx").as_bytes());
    let (pack, _) = store.locate(&blob).unwrap();
    let (pack_path, idx_path) = (pack.pack_path.clone(), pack.idx_path.clone());
    drop(store);
    fs::remove_file(pack_path).unwrap();
    fs::remove_file(idx_path).unwrap();
    // Objects under a missing tree cannot even be named; the tree can, with its refs.
    cplane(d.path())
        .arg("fsck")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("missing tree"))
        .stdout(predicate::str::contains("reached by main:base"));
    cplane(d.path()).arg("verify").assert().code(3);
}

#[test]
fn newer_store_format_is_refused() {
    let d = plane_with_base();
    fs::write(d.path().join(".cp/FORMAT"), "cplane-store 99\n").unwrap();
    for args in [&["status"][..], &["log"], &["fsck"], &["snapshot"]] {
        cplane(d.path())
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("format 99"))
            .stderr(predicate::str::contains("upgrade cplane"));
    }
}

#[test]
fn second_writer_waits_then_fails_clearly() {
    let d = plane_with_base();
    let _held = cplane::store::lock::StoreLock::acquire(&d.path().join(".cp")).unwrap();
    cplane(d.path())
        .arg("snapshot")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("holds the store lock"));
    // Readers are not blocked.
    cplane(d.path()).arg("log").assert().success();
}

#[test]
fn fifo_is_refused_by_name_and_nothing_is_sealed() {
    let d = plane_with_base();
    let status = std::process::Command::new("mkfifo")
        .arg(d.path().join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    let before = head_json(d.path());
    cplane(d.path())
        .arg("snapshot")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("CP106 pipe"))
        .stderr(predicate::str::contains("nothing was written"));
    assert_eq!(head_json(d.path()), before);
    cplane(d.path())
        .arg("verify")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("CP106"));
}

#[test]
fn unreadable_file_is_a_finding_for_verify_and_blocks_snapshot() {
    let d = plane_with_base();
    let p = d.path().join("a.txt");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads a mode-000 file: as root, cplane runs as user nobody.
    hand_over(d.path(), NOBODY);
    cplane_unprivileged(d.path())
        .arg("verify")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("CP105 a.txt"));
    cplane_unprivileged(d.path())
        .arg("snapshot")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("CP105"));
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn init_refuses_a_tree_with_a_fifo_and_leaves_no_store() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "ok.txt", "fine");
    std::process::Command::new("mkfifo")
        .arg(d.path().join("p"))
        .status()
        .unwrap();
    cplane(d.path())
        .arg("init")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("CP106 p"));
    assert!(!d.path().join(".cp").exists());
}

#[test]
fn file_rewritten_during_hashing_never_yields_a_torn_hash() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("hot");
    let a = vec![b'a'; 3 << 20];
    let b = vec![b'b'; 5 << 20];
    fs::write(&p, &a).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (p, a, b, stop) = (p.clone(), a.clone(), b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut flip = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                fs::write(&p, if flip { &a } else { &b }).unwrap();
                flip = !flip;
            }
        })
    };
    // Every state the file passes through is `a`'s or `b`'s bytes, or a prefix of them
    // (a rewrite truncates, then appends). A torn read would mix the two.
    for _ in 0..50 {
        let dir = cplane::fsys::Dir::open(p.parent().unwrap()).unwrap();
        match cplane::hash::hash_file(&dir, p.file_name().unwrap().as_encoded_bytes(), &p, None) {
            Ok((id, st)) => {
                let n = st.st_size as usize;
                let ok = [b'a', b'b']
                    .iter()
                    .any(|&c| blake3::hash(&vec![c; n]).as_bytes() == &id.0);
                assert!(ok, "torn hash recorded: {id} for {st:?}");
            }
            Err(cplane::hash::HashProblem::Changed) => {}
            Err(cplane::hash::HashProblem::Unreadable(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn dangling_symlink_and_non_utf8_name_round_trip() {
    let d = plane_with_base();
    std::os::unix::fs::symlink("does/not/exist", d.path().join("dangling")).unwrap();
    let odd = std::ffi::OsStr::from_bytes_ext(b"caf\xe9.txt");
    fs::write(d.path().join(odd), "latin-1 name").unwrap();
    cplane(d.path()).args(["snapshot", "--name", "odd"]).assert().success();
    let expected = tree_bytes(d.path());
    cplane(d.path()).args(["rollback", "base"]).assert().success();
    assert!(fs::symlink_metadata(d.path().join("dangling")).is_err());
    let st = json(d.path(), &["diff", "base", "odd", "--json"], 1);
    let names: Vec<&str> = st["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"dangling"));
    assert!(
        st["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path_bytes"] == "Y2Fm6S50eHQ=")
    );
    cplane(d.path()).args(["rollback", "odd"]).assert().success();
    assert_eq!(tree_bytes(d.path()), expected);
}

trait FromBytesExt {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytesExt for std::ffi::OsStr {
    fn from_bytes_ext(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

#[test]
fn refs_resolve_and_errors_name_the_ref() {
    let d = plane_with_base();
    write(d.path(), "a.txt", "two\n");
    cplane(d.path()).args(["snapshot", "--name", "two"]).assert().success();
    let id = head_json(d.path())["snapshot"].as_str().unwrap().to_string();
    cplane(d.path())
        .args(["diff", "--name-status", "HEAD~1", &id[..8]])
        .assert()
        .code(1)
        .stdout("M\ta.txt\n");
    cplane(d.path()).args(["diff", "base", "main:two"]).assert().code(1);
    cplane(d.path())
        .args(["diff", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown ref `nope`"));
    cplane(d.path()).args(["diff", "HEAD~9"]).assert().code(2);
    cplane(d.path())
        .args(["diff", "other:HEAD"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no plane"));
    cplane(d.path())
        .args(["show", "HEAD", "src/lib.rs", "--json"])
        .assert()
        .success();
    cplane(d.path()).args(["show", "HEAD", "missing.rs"]).assert().code(2);
    let blob = blake3::hash(b"pub fn f() {}\n").to_hex();
    cplane(d.path())
        .args(["show", &blob[..12]])
        .assert()
        .success()
        .stdout(predicate::str::contains("size 14"));
}

#[test]
fn path_outside_every_plane_is_an_error() {
    let d = plane_with_base();
    let outside = tempfile::tempdir().unwrap();
    cplane(outside.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cplane init"));
    cplane(d.path())
        .args(["-C", ".cp", "status"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not inside any plane"));
}

#[test]
fn nested_plane_is_carved_out_and_diffable_against_its_parent() {
    let d = plane_with_base();
    write(d.path(), "docs/guide.md", "guide\n");
    cplane(d.path())
        .args(["snapshot", "--name", "with-docs"])
        .assert()
        .success();
    cplane(d.path())
        .args(["plane", "add", "docs", "docs", "--tier", "ho2"])
        .assert()
        .success();
    let list = json(d.path(), &["plane", "list", "--json"], 0);
    assert_eq!(list[1]["name"], "docs");
    assert_eq!(list[1]["tier"], "ho2");
    // main no longer covers docs/, and its history records that.
    cplane(d.path()).args(["--plane", "main", "status"]).assert().success();
    cplane(d.path())
        .args(["--plane", "main", "log", "-n", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("carve out plane docs"));
    // Inside docs/, the default plane is docs, with paths relative to its root.
    cplane(&d.path().join("docs")).arg("status").assert().success();
    cplane(&d.path().join("docs"))
        .args(["diff", "--name-status", "main:base", "docs:HEAD"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("A\tguide.md"));
    cplane(d.path())
        .args(["plane", "add", "again", "docs"])
        .assert()
        .code(2);
    cplane(d.path())
        .args(["plane", "add", "bad name", "x"])
        .assert()
        .code(2);
}

#[test]
fn json_outputs_parse() {
    let d = plane_with_base();
    for args in [
        &["log", "--json"][..],
        &["checkpoints", "--json"],
        &["show", "HEAD", "--json"],
        &["status", "--json"],
        &["verify", "--json"],
        &["fsck", "--json"],
        &["plane", "list", "--json"],
    ] {
        json(d.path(), args, 0);
    }
    let v = json(d.path(), &["verify", "--json"], 0);
    assert_eq!(v["clean"], true);
    assert_eq!(v["stats"]["files"], 4);
}

#[test]
fn demo_runs_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    cplane(d.path())
        .arg("demo")
        .assert()
        .success()
        .stdout(predicate::str::contains("demo ok"));
}

#[test]
fn kind_byte_mismatch_in_index_is_store_damage() {
    // An object asked for as the wrong kind is refused, never reinterpreted.
    let d = plane_with_base();
    let store = Store::open(d.path()).unwrap();
    let blob = ObjectId(*blake3::hash(b"alpha\n").as_bytes());
    assert!(matches!(
        store.read(&blob, ObjectKind::Tree),
        Err(cplane::Error::CorruptObject { .. })
    ));
}

#[test]
fn small_packs_are_merged_and_nothing_is_lost() {
    let d = plane_with_base();
    for i in 0..40 {
        write(d.path(), &format!("f{i}.txt"), &format!("{i}\n"));
        cplane(d.path()).arg("snapshot").assert().success();
    }
    let packs = fs::read_dir(d.path().join(".cp/packs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "idx"))
        .count();
    assert!(
        packs < cplane::store::REPACK_AT_SMALL_PACKS,
        "{packs} packs after 40 snapshots"
    );
    cplane(d.path()).arg("fsck").assert().success();
    let before = tree_bytes(d.path());
    cplane(d.path()).args(["rollback", "base"]).assert().success();
    cplane(d.path()).args(["rollback", "HEAD~2"]).assert().success();
    assert_eq!(tree_bytes(d.path()), before, "every snapshot still restores");
}

#[test]
fn sigint_during_snapshot_leaves_refs_consistent() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..1500 {
        write(d.path(), &format!("d{}/f{i}.txt", i % 30), &format!("{i}\n").repeat(50));
    }
    cplane(d.path()).arg("init").assert().success();
    let bin = assert_cmd::cargo::cargo_bin("cplane");
    for (k, delay_ms) in [1u64, 3, 5, 8, 12, 20].into_iter().enumerate() {
        write(d.path(), &format!("d0/new{k}.txt"), "changed\n");
        let before = cplane::store::Store::open(d.path())
            .unwrap()
            .checkpoints("main")
            .unwrap()
            .len();
        let child = std::process::Command::new(&bin)
            .args(["snapshot", "--name", &format!("s{k}")])
            .current_dir(d.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // The child may already have exited (then there is nothing to interrupt).
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            rustix::process::Signal::INT,
        )
        .ok();
        let out = child.wait_with_output().unwrap();
        let store = cplane::store::Store::open(d.path()).unwrap();
        let after = store.checkpoints("main").unwrap();
        let named = store.checkpoint("main", &format!("s{k}")).unwrap();
        // Before the handler is installed the default action kills the process: also fine.
        let killed =
            std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(rustix::process::Signal::INT.as_raw());
        match out.status.code() {
            Some(130) | None if killed || out.status.code() == Some(130) => {
                if !killed {
                    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
                }
                assert_eq!(after.len(), before, "an interrupted snapshot adds no checkpoint");
                assert!(named.is_none());
            }
            Some(0) => assert_eq!(store.head("main").unwrap(), named, "a finished snapshot moved HEAD"),
            other => panic!("unexpected exit {other:?}"),
        }
    }
    cplane(d.path()).arg("fsck").assert().success();
}

/// `status` records the files it had to re-read in the stat cache when the
/// store lock is free, so the next status reads none of them; with
/// `--no-optional-locks` it leaves the cache alone.
#[test]
fn status_refreshes_the_stat_cache_unless_no_optional_locks() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "alpha\n");
    write(d, "b.txt", "bravo\n");
    // (Older than the racy margin when init records them.)
    std::thread::sleep(Duration::from_millis(2200));
    common::stdout(d, &["init"]);
    // Same bytes, new ctime: status must read it again (once its ctime is
    // older than the racy margin, the refreshed row can be trusted).
    let a = d.join("a.txt");
    fs::set_permissions(&a, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
    std::thread::sleep(Duration::from_millis(2200));
    let index = d.join(".cp/planes/main/index");
    let hashed = |args: &[&str]| -> u64 {
        let mut all = vec!["status", "--json"];
        all.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&common::stdout(d, &all)).unwrap();
        v["hashed_files"].as_u64().unwrap()
    };
    let before = fs::read(&index).unwrap();
    assert_eq!(hashed(&["--no-optional-locks"]), 1);
    assert_eq!(fs::read(&index).unwrap(), before, "--no-optional-locks wrote the cache");
    assert_eq!(
        hashed(&["--no-optional-locks"]),
        1,
        "nothing was recorded, so it is read again"
    );
    assert_eq!(hashed(&[]), 1);
    assert_ne!(fs::read(&index).unwrap(), before, "the cache was not refreshed");
    assert_eq!(hashed(&[]), 0, "the refreshed cache vouches for it");
}
