//! Regression tests for bugs found in review, one per finding, each named after
//! the behaviour it guards.

mod common;
use common::{
    append, chown_tree, corrupt, cplane, cplane_as, hand_over, hard_link, kill_after_ops, paused_after_staging,
    plane_others_can_reach, rescue_name, skip_unless_root, spawn, stdout, write,
};

use cplane::id::ObjectId;
use predicates::prelude::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn rollback_refuses_to_drop_the_only_good_copy() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "precious\n");
    write(d.path(), "b", "other\n");
    cplane(d.path()).arg("init").assert().success();
    fs::remove_file(d.path().join("a")).unwrap();
    cplane(d.path())
        .args(["snapshot", "--name", "without-a"])
        .assert()
        .success();
    write(d.path(), "a", "precious\n");
    corrupt(d.path(), &ObjectId(*blake3::hash(b"precious\n").as_bytes()));
    cplane(d.path())
        .args(["rollback", "without-a"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("only good copy"));
    assert_eq!(fs::read(d.path().join("a")).unwrap(), b"precious\n");
}

#[test]
fn symlinked_plane_root_and_bad_config_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "precious", "keep me\n");
    write(d.path(), "docs/readme", "docs\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["plane", "add", "docs", "docs"])
        .assert()
        .success();
    fs::remove_dir_all(d.path().join("docs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), d.path().join("docs")).unwrap();
    cplane(d.path())
        .args(["--plane", "docs", "rollback", "HEAD"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a symlink"));
    assert_eq!(fs::read(outside.path().join("precious")).unwrap(), b"keep me\n");
    assert!(!outside.path().join("readme").exists());
    // main does not record the other plane's root, whatever it is now.
    cplane(d.path())
        .args(["--plane", "main", "snapshot"])
        .assert()
        .success();
    cplane(d.path())
        .args(["--plane", "main", "show", "HEAD", "docs"])
        .assert()
        .code(2);

    let cfg = d.path().join(".cp/config.json");
    let good = fs::read_to_string(&cfg).unwrap();
    fs::write(
        &cfg,
        good.replace("\"docs\",\n      \"tier\"", "\"../escape\",\n      \"tier\""),
    )
    .unwrap();
    cplane(d.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("config.json"));
    fs::write(&cfg, good.replacen("\"tier\": null", "\"tier\": null, \"bogus\": 1", 1)).unwrap();
    cplane(d.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bogus"));
}

#[test]
fn replay_survives_file_and_directory_swaps() {
    for (old_is_dir, after) in [(true, 1), (true, 2), (false, 1), (false, 2)] {
        let d = tempfile::tempdir().unwrap();
        let a_as_dir = |d: &Path| {
            let _ = fs::remove_file(d.join("a"));
            write(d, "a/x", "inside\n");
        };
        let a_as_file = |d: &Path| {
            let _ = fs::remove_dir_all(d.join("a"));
            write(d, "a", "a file\n");
        };
        write(d.path(), "z", "anchor\n");
        if old_is_dir {
            a_as_dir(d.path())
        } else {
            a_as_file(d.path())
        }
        cplane(d.path()).arg("init").assert().success();
        cplane(d.path())
            .args(["snapshot", "--name", "s1", "--allow-unchanged"])
            .assert()
            .success();
        if old_is_dir {
            a_as_file(d.path())
        } else {
            a_as_dir(d.path())
        }
        cplane(d.path()).args(["snapshot", "--name", "s2"]).assert().success();
        kill_after_ops(d.path(), &["rollback", "s1"], after, &[]);
        cplane(d.path()).arg("status").assert().success();
        cplane(d.path()).arg("verify").assert().success();
        cplane(d.path()).args(["diff", "s1", "HEAD"]).assert().success();
    }
}

#[test]
fn parent_rollback_leaves_a_nested_plane_where_a_file_was() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "was a file\n");
    write(d.path(), "z", "anchor\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "s1", "--allow-unchanged"])
        .assert()
        .success();
    fs::remove_file(d.path().join("a")).unwrap();
    write(d.path(), "a/b/inner", "nested plane file\n");
    cplane(d.path())
        .args(["plane", "add", "nested", "a/b"])
        .assert()
        .success();
    cplane(d.path())
        .args(["--plane", "main", "snapshot"])
        .assert()
        .success();
    cplane(d.path())
        .args(["--plane", "main", "rollback", "s1"])
        .assert()
        .success();
    assert_eq!(fs::read(d.path().join("a/b/inner")).unwrap(), b"nested plane file\n");
    cplane(d.path()).args(["--plane", "main", "status"]).assert().success();
    cplane(d.path())
        .args(["--plane", "nested", "verify"])
        .assert()
        .success();
}

#[test]
fn damaged_staged_file_is_not_trusted_on_replay() {
    let d = six_files_to_roll_back();
    kill_after_ops(d.path(), &["rollback", "base"], 1, &[]);
    for e in fs::read_dir(d.path().join(".cp/tmp")).unwrap() {
        let dir = e.unwrap().path();
        if dir.is_dir() {
            for f in fs::read_dir(&dir).unwrap() {
                fs::write(f.unwrap().path(), b"").unwrap(); // as a power loss could leave them
            }
        }
    }
    cplane(d.path()).arg("status").assert().success();
    cplane(d.path()).arg("verify").assert().success();
    for i in 0..6 {
        assert_eq!(
            fs::read_to_string(d.path().join(format!("w{i}"))).unwrap(),
            format!("base {i}\n")
        );
    }
}

/// Six files changed after `base`, sealed as `changed`: a rollback to
/// `base` has six files to write.
fn six_files_to_roll_back() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in 0..6 {
        write(d.path(), &format!("w{i}"), &format!("base {i}\n"));
    }
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "base", "--allow-unchanged"])
        .assert()
        .success();
    for i in 0..6 {
        write(d.path(), &format!("w{i}"), &format!("later {i}\n"));
    }
    cplane(d.path())
        .args(["snapshot", "--name", "changed"])
        .assert()
        .success();
    d
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().ino()
}

/// The staged files' data is flushed while they are linked, not before the
/// journal: after a power loss a file the checkout had already put in place
/// may come back with other bytes of the same size (stale blocks) and its
/// mtime. The journal's replay re-hashes every file it wrote and rewrites
/// those not whole; the others it leaves (same inode).
#[test]
fn files_linked_before_their_data_was_flushed_are_rewritten_on_replay() {
    let d = six_files_to_roll_back();
    kill_after_ops(d.path(), &["rollback", "base"], 3, &[]);
    let mut lost = Vec::new();
    let mut kept = Vec::new();
    for i in 0..6 {
        let p = d.path().join(format!("w{i}"));
        if fs::read_to_string(&p).unwrap() == format!("base {i}\n") {
            if lost.len() < 2 {
                common::rewrite_keeping_mtime(&p, format!("BASE {i}\n").as_bytes()); // same size
                lost.push((i, inode(&p)));
            } else {
                kept.push((i, inode(&p)));
            }
        }
    }
    assert!(
        !lost.is_empty(),
        "the checkout was killed before it put any file in place"
    );
    cplane(d.path()).arg("status").assert().success();
    for i in 0..6 {
        assert_eq!(
            fs::read_to_string(d.path().join(format!("w{i}"))).unwrap(),
            format!("base {i}\n")
        );
    }
    for (i, ino) in &lost {
        assert_ne!(inode(&d.path().join(format!("w{i}"))), *ino, "w{i} was not rewritten");
    }
    for (i, ino) in &kept {
        assert_eq!(
            inode(&d.path().join(format!("w{i}"))),
            *ino,
            "w{i} was whole but rewritten"
        );
    }
    cplane(d.path()).arg("verify").assert().success();
}

/// A flush that fails (a disk's EIO) after the files are linked leaves the
/// journal, marked: the bytes the files read back may exist only in the
/// page cache, so the replay rewrites every file from the store (new
/// inodes), flushing each, instead of trusting them.
#[test]
fn a_failed_flush_makes_the_replay_rewrite_every_file() {
    let d = six_files_to_roll_back();
    let out = cplane(d.path())
        .args(["rollback", "base"])
        .env("CPLANE_TEST_FAIL_FLUSH", "1")
        .assert()
        .failure()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Input/output error"), "{err}");
    let plane_dir = d.path().join(".cp/planes/main");
    assert!(plane_dir.join("journal").exists(), "the journal must stay: {err}");
    assert!(plane_dir.join("journal.unflushed").exists());
    // Every file was put in place, and reads back whole.
    let before: Vec<u64> = (0..6)
        .map(|i| {
            let p = d.path().join(format!("w{i}"));
            assert_eq!(fs::read_to_string(&p).unwrap(), format!("base {i}\n"));
            inode(&p)
        })
        .collect();
    cplane(d.path()).arg("status").assert().success();
    assert!(!plane_dir.join("journal").exists());
    assert!(!plane_dir.join("journal.unflushed").exists());
    for (i, ino) in before.iter().enumerate() {
        let p = d.path().join(format!("w{i}"));
        assert_eq!(fs::read_to_string(&p).unwrap(), format!("base {i}\n"));
        assert_ne!(inode(&p), *ino, "w{i} was trusted, not rewritten");
    }
    cplane(d.path()).arg("verify").assert().success();
}

/// A `journal.unflushed` without a journal (a crash between the deletion
/// of the one and of the other) means nothing, and the next writing
/// command removes it.
#[test]
fn a_mark_without_a_journal_is_removed() {
    let d = six_files_to_roll_back();
    let mark = d.path().join(".cp/planes/main/journal.unflushed");
    fs::write(&mark, b"").unwrap();
    // (A reading command leaves the plane's files alone; a writing one clears it.)
    cplane(d.path()).arg("status").assert().success();
    cplane(d.path())
        .args(["snapshot", "--allow-unchanged"])
        .assert()
        .success();
    assert!(!mark.exists());
}

#[test]
fn future_mtime_is_not_a_file_in_flux() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "future", "from the future\n");
    write(d.path(), "far", "far future\n");
    let soon = std::time::SystemTime::now() + Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(d.path().join("future"))
        .unwrap()
        .set_modified(soon)
        .unwrap();
    let far = std::time::UNIX_EPOCH + Duration::from_secs(99_999_999_999);
    fs::File::options()
        .write(true)
        .open(d.path().join("far"))
        .unwrap()
        .set_modified(far)
        .unwrap();
    let t0 = Instant::now();
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path()).arg("verify").assert().success();
    assert!(t0.elapsed() < Duration::from_secs(5), "no per-file waiting");
}

#[test]
fn stores_do_not_nest() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "sub/f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["init", "sub"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("plane add"));
    assert!(!d.path().join("sub/.cp").exists());
    // A store that got there anyway (moved in) belongs to itself, not to the outer plane.
    let inner = tempfile::tempdir().unwrap();
    write(inner.path(), "g", "inner\n");
    cplane(inner.path()).arg("init").assert().success();
    let moved = d.path().join("moved");
    fs::rename(inner.path(), &moved).unwrap_or_else(|_| {
        std::process::Command::new("cp")
            .arg("-a")
            .arg(inner.path())
            .arg(&moved)
            .status()
            .unwrap();
    });
    cplane(d.path()).arg("snapshot").assert().success();
    cplane(d.path()).args(["show", "HEAD", "moved"]).assert().code(2);
    cplane(&moved).arg("verify").assert().success();
}

#[test]
fn corrupt_index_count_is_damage_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    // Every index: which pack holds what depends on the worker threads.
    for idx in fs::read_dir(d.path().join(".cp/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
    {
        let mut bytes = fs::read(&idx).unwrap();
        bytes[15] ^= 0x10; // the high byte of the entry count
        fs::write(&idx, bytes).unwrap();
    }
    for args in [&["status"][..], &["log"]] {
        cplane(d.path())
            .args(args)
            .assert()
            .code(3)
            .stderr(predicate::str::contains("store damage"));
    }
    // fsck still runs, and names the index.
    cplane(d.path())
        .arg("fsck")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("damaged").and(predicate::str::contains(".idx")));
}

#[test]
fn non_utf8_plane_roots_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    let name = std::ffi::OsStr::new("n").to_os_string();
    let mut bytes = std::os::unix::ffi::OsStringExt::into_vec(name);
    bytes.push(0xff);
    let odd = <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes);
    fs::create_dir(d.path().join(&odd)).unwrap();
    cplane(d.path())
        .arg("plane")
        .arg("add")
        .arg("np")
        .arg(&odd)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("UTF-8"));
}

/// Starts `cplane ARGS` in `dir` in the background (it will wait for the lock).
fn spawn_waiting_for_lock(dir: &Path, args: &[&str]) -> std::process::Child {
    spawn(dir, args, &[("CPLANE_LOCK_TIMEOUT_MS", "20000")])
}

#[test]
fn writer_waiting_for_the_lock_sees_a_plane_added_meanwhile() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "top", "top v1\n");
    write(d.path(), "sub/s", "sub v1\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "s1", "--allow-unchanged"])
        .assert()
        .success();
    write(d.path(), "top", "top v2\n");
    write(d.path(), "sub/s", "sub v2\n");
    let held = cplane::store::lock::StoreLock::acquire(&d.path().join(".cp")).unwrap();
    let rollback = spawn_waiting_for_lock(d.path(), &["rollback", "s1"]);
    std::thread::sleep(Duration::from_millis(300));
    // While the rollback waits, another writer carves out `sub`.
    let mut store = cplane::store::Store::open(d.path()).unwrap();
    let sub = store.add_plane("sub", &d.path().join("sub"), None, true).unwrap();
    cplane::snapshot::seal(&mut store, &held, &sub, Default::default(), cplane::Control::quiet()).unwrap();
    drop(held);
    let out = rollback.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read_to_string(d.path().join("top")).unwrap(), "top v1\n");
    assert_eq!(
        fs::read_to_string(d.path().join("sub/s")).unwrap(),
        "sub v2\n",
        "sub belongs to plane sub now"
    );
}

#[test]
fn replay_after_a_crash_respects_new_planes_and_keeps_later_edits() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write(d.path(), &format!("f{i}"), &format!("base {i}\n"));
        write(d.path(), &format!("sub/s{i}"), &format!("sbase {i}\n"));
    }
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "s1", "--allow-unchanged"])
        .assert()
        .success();
    for i in 0..5 {
        write(d.path(), &format!("f{i}"), &format!("changed {i}\n"));
        write(d.path(), &format!("sub/s{i}"), &format!("schanged {i}\n"));
    }
    cplane(d.path()).args(["snapshot", "--name", "s2"]).assert().success();
    kill_after_ops(d.path(), &["rollback", "s1"], 2, &[]);
    // After the crash: a plane is carved out (finishing the rollback first), then edits.
    cplane(d.path()).args(["plane", "add", "sub", "sub"]).assert().success();
    write(d.path(), "sub/s3", "user work in sub\n");
    cplane(d.path()).arg("status").assert().success();
    assert_eq!(
        fs::read_to_string(d.path().join("sub/s3")).unwrap(),
        "user work in sub\n"
    );

    // A crash, then an edit, then the replay: the edit is kept in a rescue checkpoint.
    cplane(d.path()).args(["snapshot", "--name", "s3"]).assert().success();
    write(d.path(), "f4", "changed again\n");
    cplane(d.path()).args(["snapshot", "--name", "s4"]).assert().success();
    kill_after_ops(d.path(), &["rollback", "s1"], 1, &[]);
    write(d.path(), "f4", "user edit after crash\n");
    let out = cplane(d.path())
        .arg("status")
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let msg = String::from_utf8_lossy(&out);
    let found = msg
        .split("what was found just before finishing it is checkpoint ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the replay names the checkpoint holding what it found")
        .trim()
        .to_string();
    cplane(d.path())
        .args(["show", &found, "f4", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            blake3::hash(b"user edit after crash\n").to_hex().as_str(),
        ));
}

#[test]
fn rollback_leaves_a_nested_store_alone() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "top", "v1\n");
    write(d.path(), "sub/a.txt", "v1\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "s1", "--allow-unchanged"])
        .assert()
        .success();
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "x", "x\n");
    cplane(other.path()).arg("init").assert().success();
    std::process::Command::new("cp")
        .arg("-a")
        .arg(other.path().join(".cp"))
        .arg(d.path().join("sub/.cp"))
        .status()
        .unwrap();
    write(d.path(), "sub/a.txt", "precious unsaved\n");
    write(d.path(), "top", "v2\n");
    cplane(d.path()).args(["rollback", "s1"]).assert().success();
    assert_eq!(fs::read_to_string(d.path().join("top")).unwrap(), "v1\n");
    assert_eq!(
        fs::read_to_string(d.path().join("sub/a.txt")).unwrap(),
        "precious unsaved\n"
    );
}

#[test]
fn ctrl_c_while_waiting_for_the_lock_exits_130() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    let _held = cplane::store::lock::StoreLock::acquire(&d.path().join(".cp")).unwrap();
    let child = spawn_waiting_for_lock(d.path(), &["snapshot"]);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    // The child may already have exited (then there is nothing to interrupt).
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .ok();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn huge_step_counts_are_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["show", "HEAD~18446744073709551615~1"])
        .assert()
        .code(2);
}

#[test]
fn maint_leftovers_of_crashed_writers_live_in_tmp_and_are_cleared() {
    let d = tempfile::tempdir().unwrap();
    // A crashed init's staging directory is removed by the next init.
    write(d.path(), ".cp.init-999/FORMAT", "cplane-store 1\n");
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    assert!(!d.path().join(".cp.init-999").exists());
    // A crashed writer's temporary files and an index-less pack.
    write(d.path(), ".cp/tmp/write-abc", "half a ref");
    write(d.path(), ".cp/tmp/pack-xyz.tmp", "half a pack");
    write(d.path(), ".cp/packs/pack-0000.pack", "CPPK");
    cplane(d.path())
        .arg("fsck")
        .assert()
        .success()
        .stdout(predicate::str::contains("note: leftover").count(3));
    cplane(d.path()).arg("snapshot").assert().success();
    assert_eq!(fs::read_dir(d.path().join(".cp/tmp")).unwrap().count(), 0);
    assert!(!d.path().join(".cp/packs/pack-0000.pack").exists());
    // Refs and caches never leave temporary files beside themselves.
    for dir in [".cp", ".cp/planes/main", ".cp/planes/main/checkpoints"] {
        for e in fs::read_dir(d.path().join(dir)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".cp-tmp") && !name.starts_with("write-"),
                "{dir}/{name}"
            );
        }
    }
}

#[test]
fn maint_show_path_outside_the_store_is_an_error_not_the_root() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "x\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["show", "HEAD", "../../etc"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a path inside plane"));
    cplane(d.path()).args(["show", "HEAD", "./a"]).assert().success();
}

#[test]
fn maint_damaged_journal_says_how_to_get_unstuck() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "x\n");
    cplane(d.path()).arg("init").assert().success();
    write(d.path(), ".cp/planes/main/journal", "garbage");
    cplane(d.path())
        .arg("status")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("to stop trying"));
    fs::remove_file(d.path().join(".cp/planes/main/journal")).unwrap();
    cplane(d.path()).arg("status").assert().success();
}

// ---- third review (store format 2, checkout engine) ----------------------------

/// Runs `args` with the checkout paused once everything is staged; calls
/// `meanwhile` there, then lets it finish. Returns (exit code, stdout, stderr).
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn mode_fix_never_follows_a_symlink_swapped_in() {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret", "outside\n");
    chmod(&outside.path().join("secret"), 0o600);
    write(d.path(), "f", "same bytes\n");
    chmod(&d.path().join("f"), 0o644);
    cplane(d.path()).arg("init").assert().success();
    chmod(&d.path().join("f"), 0o600); // rollback will only fix the mode (SetMeta)
    let (code, out, err) = paused_after_staging(d.path(), &["rollback", "HEAD"], || {
        fs::remove_file(d.path().join("f")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("f")).unwrap();
    });
    assert_eq!(
        mode(&outside.path().join("secret")),
        0o600,
        "chmod went through the symlink: {out}{err}"
    );
    assert!(code == 0 || code == 1, "{out}{err}");
    assert!(
        fs::symlink_metadata(d.path().join("f"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the swapped-in symlink is left as it is (and reported): {out}"
    );
}

#[test]
fn a_crafted_journal_never_reaches_outside_the_plane() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("plane");
    write(&root, "a", "a\n");
    write(d.path(), "victim", "outside the store root\n");
    cplane(&root).arg("init").assert().success();
    // A well-framed journal (valid BLAKE3 trailer) whose paths climb out with `..`.
    let j = cplane::checkout::Journal {
        plane: "main".into(),
        kind: cplane::checkout::CheckoutKind::Rollback,
        target: cplane::SnapshotId::default(),
        rescue: cplane::SnapshotId::default(),
        rescue_name: "RESCUE-x".into(),
        new_head: None,
        ops: vec![cplane::checkout::Op::Remove {
            path: cplane::RelPath::parse(b"zz/victim").unwrap(),
        }],
    };
    let mut body = postcard::to_allocvec(&j).unwrap();
    let at = body.windows(9).position(|w| w == b"zz/victim").unwrap();
    body[at..at + 2].copy_from_slice(b"..");
    let mut bytes = b"CPRJ\x02\0\0\0".to_vec();
    bytes.extend_from_slice(&body);
    let trailer = blake3::hash(&bytes);
    bytes.extend_from_slice(trailer.as_bytes());
    fs::write(root.join(".cp/planes/main/journal"), &bytes).unwrap();
    cplane(&root)
        .arg("status")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("journal"));
    assert!(
        d.path().join("victim").exists(),
        "a crafted journal deleted a file outside the plane"
    );
    cplane(&root).arg("fsck").assert().code(3);
    // Reading history still works while the journal cannot be finished.
    cplane(&root).arg("log").assert().success();
}

#[test]
fn an_edit_made_while_a_rollback_stages_is_never_lost() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "v1\n");
    write(d.path(), "g", "g1\n");
    cplane(d.path()).arg("init").assert().success();
    write(d.path(), "f", "v2\n");
    write(d.path(), "g", "g2\n");
    cplane(d.path()).args(["snapshot", "--name", "s2"]).assert().success();
    let (code, out, err) = paused_after_staging(d.path(), &["rollback", "HEAD~1"], || {
        write(d.path(), "f", "IMPORTANT USER EDIT\n");
    });
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(fs::read_to_string(d.path().join("f")).unwrap(), "IMPORTANT USER EDIT\n");
    assert!(out.contains("note: f was left as it is"), "{out}");
    assert_eq!(
        fs::read_to_string(d.path().join("g")).unwrap(),
        "g1\n",
        "the rest is rolled back"
    );
}

/// A plane whose HEAD has `vendor/x/lib.c`, where another store holding
/// `lib.c` = `body` now stands instead: made elsewhere and moved in (init
/// refuses inside a plane).
fn plane_with_a_store_moved_into_vendor_x(body: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "vendor/x/lib.c", "v1\n");
    cplane(d.path()).arg("init").assert().success();
    fs::remove_dir_all(d.path().join("vendor/x")).unwrap();
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "x/lib.c", body);
    cplane(&other.path().join("x")).arg("init").assert().success();
    fs::rename(other.path().join("x"), d.path().join("vendor/x")).unwrap();
    d
}

#[test]
fn restore_leaves_a_nested_store_alone() {
    let d = plane_with_a_store_moved_into_vendor_x("precious work of another store\n");
    cplane(d.path()).args(["restore", "HEAD", "vendor"]).assert().success();
    assert_eq!(
        fs::read_to_string(d.path().join("vendor/x/lib.c")).unwrap(),
        "precious work of another store\n"
    );
}

#[test]
fn rollback_splits_hard_links_the_target_does_not_have() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "same\n");
    write(d.path(), "b", "same\n");
    cplane(d.path()).args(["init"]).assert().success();
    fs::remove_file(d.path().join("b")).unwrap();
    hard_link(d.path(), "a", "b");
    cplane(d.path())
        .arg("status")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("L  a"));
    cplane(d.path())
        .args(["snapshot", "--name", "linked"])
        .assert()
        .success();
    cplane(d.path()).args(["rollback", "HEAD~1"]).assert().success();
    let ino = |p: &str| fs::metadata(d.path().join(p)).unwrap().ino();
    assert_ne!(
        ino("a"),
        ino("b"),
        "still one inode after rolling back to separate files"
    );
    cplane(d.path()).arg("status").assert().success();
    cplane(d.path()).args(["rollback", "linked"]).assert().success();
    assert_eq!(ino("a"), ino("b"));
}

#[test]
fn restore_into_deleted_directories_gives_them_their_modes() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "d/e/f", "f\n");
    write(d.path(), "other", "o\n");
    chmod(&d.path().join("d/e"), 0o750);
    chmod(&d.path().join("d"), 0o700);
    cplane(d.path()).arg("init").assert().success();
    fs::remove_dir_all(d.path().join("d")).unwrap();
    cplane(d.path()).args(["restore", "HEAD", "d/e/f"]).assert().success();
    assert_eq!(mode(&d.path().join("d")), 0o700);
    assert_eq!(mode(&d.path().join("d/e")), 0o750);
    assert_eq!(fs::read_to_string(d.path().join("d/e/f")).unwrap(), "f\n");
    cplane(d.path()).arg("status").assert().success();
    // The rescue holds what was on disk: no `d` at all.
    let name = rescue_name(&stdout(d.path(), &["checkpoints"]));
    cplane(d.path()).args(["show", &name, "d"]).assert().code(2);
}

/// Runs cplane as uid/gid 4321 (needs root).
fn as_user(dir: &Path, args: &[&str]) -> std::process::Output {
    cplane_as(4321, dir).args(args).output().unwrap()
}

#[test]
fn an_ordinary_user_never_wedges_the_plane_nor_gets_a_setuid_file() {
    if skip_unless_root("an_ordinary_user_never_wedges_the_plane_nor_gets_a_setuid_file") {
        return;
    }
    let (_d, root) = plane_others_can_reach();
    write(&root, "ro/keep", "k\n");
    write(&root, "tool", "#!/bin/sh\n");
    chmod(&root.join("tool"), 0o4755);
    cplane(&root).arg("init").assert().success(); // tool: root-owned, setuid
    hand_over(&root, 4321);
    chown_tree(&root.join("tool"), 0);
    chmod(&root.join("tool"), 0o4755);
    // A read-only directory with an extra file, which a rollback must remove.
    write(&root, "ro/extra", "e\n");
    chown_tree(&root.join("ro/extra"), 4321);
    chmod(&root.join("ro"), 0o555);
    let out = as_user(&root, &["rollback", "HEAD"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ro") && err.contains("Permission denied"), "{err}");
    assert!(
        !root.join(".cp/planes/main/journal").exists(),
        "a journal was left: the plane is wedged"
    );
    assert!(as_user(&root, &["log"]).status.success());
    // Set-id bits are never given to a file the user could not give back to its owner.
    chmod(&root.join("ro"), 0o755);
    fs::remove_file(root.join("tool")).unwrap();
    let out = as_user(&root, &["restore", "HEAD", "tool"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CP111 tool"), "{stdout}");
    assert_eq!(
        mode(&root.join("tool")) & 0o6000,
        0,
        "a setuid file owned by the restoring user"
    );
}

// ---- a new user's trial (store format 2) -------------------------------------

#[test]
fn user_1_restore_keeps_and_puts_back_hard_links() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "data/a", "linked\n");
    hard_link(d.path(), "data/a", "data/b");
    hard_link(d.path(), "data/a", "src/c");
    cplane(d.path()).arg("init").assert().success();
    let ino = |p: &str| fs::metadata(d.path().join(p)).unwrap().ino();
    let a = ino("data/a");
    // A restore on a clean tree changes nothing.
    cplane(d.path()).args(["restore", "HEAD", "src"]).assert().success();
    assert_eq!(
        (ino("src/c"), ino("data/b")),
        (a, a),
        "restore split a hard link on a clean tree"
    );
    cplane(d.path()).arg("status").assert().success();
    // A member replaced by a copy is linked back to the others.
    fs::remove_file(d.path().join("data/b")).unwrap();
    fs::copy(d.path().join("data/a"), d.path().join("data/b")).unwrap();
    cplane(d.path()).arg("status").assert().code(1);
    cplane(d.path()).args(["restore", "HEAD", "data/b"]).assert().success();
    assert_eq!(ino("data/b"), a, "restore did not link data/b back");
    cplane(d.path()).arg("status").assert().success();
}

#[test]
fn user_2_cat_of_a_corrupt_blob_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(d.path().join("big"), &body).unwrap();
    cplane(d.path()).arg("init").assert().success();
    corrupt(d.path(), &ObjectId(*blake3::hash(&body).as_bytes()));
    let out = cplane(d.path())
        .args(["cat", "HEAD:big"])
        .assert()
        .code(3)
        .get_output()
        .clone();
    assert!(
        out.stdout.is_empty(),
        "{} bytes of a corrupt blob reached stdout",
        out.stdout.len()
    );
}

#[test]
fn user_3_non_utf8_path_arguments_work() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.txt");
    fs::write(d.path().join(name), "latin-1\n").unwrap();
    cplane(d.path()).arg("init").assert().success();
    fs::write(d.path().join(name), "changed\n").unwrap();
    let mut spec = b"HEAD:".to_vec();
    spec.extend_from_slice(name.as_bytes());
    cplane(d.path())
        .arg("cat")
        .arg(std::ffi::OsStr::from_bytes(&spec))
        .assert()
        .success()
        .stdout("latin-1\n");
    cplane(d.path()).args(["restore", "HEAD"]).arg(name).assert().success();
    assert_eq!(fs::read(d.path().join(name)).unwrap(), b"latin-1\n");
    cplane(d.path()).arg("show").arg("HEAD").arg(name).assert().success();
    // --json detection never panics on a non-UTF-8 argument either.
    cplane(d.path()).arg("status").arg(name).arg("--json").assert().code(2);
}

#[test]
fn user_4_a_missing_pack_is_damage_and_fsck_still_runs() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    let pack = fs::read_dir(d.path().join(".cp/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    fs::remove_file(&pack).unwrap();
    cplane(d.path()).arg("verify").assert().code(3);
    cplane(d.path())
        .arg("fsck")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("pack file is missing"));
}

#[test]
fn user_5_init_inside_the_store_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(&d.path().join(".cp"))
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("inside the store directory"));
    assert!(!d.path().join(".cp/.cp").exists());
}

#[test]
fn user_6_path_arguments_are_resolved_like_git() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hostname", "h1\n");
    write(d.path(), "src/main.rs", "m1\n");
    write(d.path(), "sub/s.txt", "s1\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path()).args(["plane", "add", "sub", "sub"]).assert().success();
    write(d.path(), "hostname", "h2\n");
    write(d.path(), "src/main.rs", "m2\n");
    // An absolute path must lie inside the plane; `/hostname` is not the plane's.
    cplane(d.path()).args(["restore", "HEAD", "/hostname"]).assert().code(2);
    let abs = d.path().canonicalize().unwrap().join("hostname");
    cplane(d.path()).args(["restore", "HEAD"]).arg(&abs).assert().success();
    assert_eq!(fs::read_to_string(d.path().join("hostname")).unwrap(), "h1\n");
    // `..` inside a path is resolved; `./` in `cat` is relative to the current directory.
    cplane(d.path())
        .args(["restore", "HEAD", "src/../src/main.rs"])
        .assert()
        .success();
    cplane(&d.path().join("src"))
        .args(["cat", "HEAD:./main.rs"])
        .assert()
        .success()
        .stdout("m1\n");
    cplane(d.path()).args(["restore", "HEAD", "../x"]).assert().code(2);
    // A path of a nested plane names that plane.
    cplane(d.path())
        .args(["restore", "HEAD", "sub/s.txt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--plane sub"));
    // A restore that changes nothing keeps no rescue checkpoint.
    let before = fs::read_dir(d.path().join(".cp/planes/main/checkpoints"))
        .unwrap()
        .count();
    cplane(d.path())
        .args(["restore", "HEAD", "hostname", "hostname"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to do"));
    assert_eq!(
        fs::read_dir(d.path().join(".cp/planes/main/checkpoints"))
            .unwrap()
            .count(),
        before
    );
}

#[test]
fn user_7_pre_upgrade_ids_and_other_objects_are_not_called_damage() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    let tree = stdout(d.path(), &["show", "HEAD", "--json"]);
    let root = tree.split("\"root\":\"").nth(1).unwrap()[..12].to_string();
    cplane(d.path())
        .args(["diff", &root])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a tree id, not a snapshot id"));
    cplane(d.path())
        .args(["diff", "HEAD@{1}"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no reflog syntax"));
}

#[test]
fn user_10_a_symlink_is_not_a_plane_root() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "bin/x", "x\n");
    cplane(d.path()).arg("init").assert().success();
    std::os::unix::fs::symlink("bin", d.path().join("binlink")).unwrap();
    cplane(d.path())
        .args(["plane", "add", "y", "binlink"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("symlink"));
}

#[test]
fn user_17_json_usage_errors_name_the_argument() {
    let d = tempfile::tempdir().unwrap();
    let out = cplane(d.path())
        .args(["status", "--json", "--bogus"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("--bogus"), "{v}");
    assert!(v.get("hint").is_some(), "{v}");
}

// ---- second review of the fixes ---------------------------------------------------

#[test]
fn a_directory_is_never_made_over_a_file_written_meanwhile() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "d/inner", "i\n");
    cplane(d.path()).arg("init").assert().success();
    fs::remove_dir_all(d.path().join("d")).unwrap();
    write(d.path(), "d", "file v2\n");
    cplane(d.path()).args(["snapshot", "--name", "s2"]).assert().success();
    let (code, out, err) = paused_after_staging(d.path(), &["rollback", "HEAD~1"], || {
        write(d.path(), "d", "IMPORTANT USER EDIT\n");
    });
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(fs::read_to_string(d.path().join("d")).unwrap(), "IMPORTANT USER EDIT\n");
    assert!(out.contains("note: d was left as it is"), "{out}");
    // A file that appears where a directory is to be made is left too.
    let e = tempfile::tempdir().unwrap();
    write(e.path(), "keep", "k\n");
    write(e.path(), "newdir/x", "x\n");
    cplane(e.path()).arg("init").assert().success();
    fs::remove_dir_all(e.path().join("newdir")).unwrap();
    let (code, out, err) = paused_after_staging(e.path(), &["rollback", "HEAD"], || {
        write(e.path(), "newdir", "created meanwhile\n");
    });
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        fs::read_to_string(e.path().join("newdir")).unwrap(),
        "created meanwhile\n"
    );
}

/// A plane whose HEAD has `a` hard-linked to each of `links`; `a` is now a
/// separate copy (same bytes): the anchor a restore links them to.
fn links_with_a_copied_anchor(links: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "content\n");
    for l in links {
        hard_link(d.path(), "a", l);
    }
    cplane(d.path()).arg("init").assert().success();
    fs::remove_file(d.path().join("a")).unwrap();
    write(d.path(), "a", "content\n");
    d
}

#[test]
fn restore_links_never_clobber_edits_made_meanwhile() {
    let d = links_with_a_copied_anchor(&["d/b", "d/c"]);
    let (code, out, err) = paused_after_staging(d.path(), &["restore", "HEAD", "d"], || {
        append(d.path(), "d/b", b"IMPORTANT EDIT\n");
    });
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        fs::read_to_string(d.path().join("d/b")).unwrap(),
        "content\nIMPORTANT EDIT\n",
        "{out}"
    );
    // The anchor itself edited meanwhile: nothing is linked to the user's new file.
    let e = links_with_a_copied_anchor(&["d/b"]);
    fs::remove_file(e.path().join("d/b")).unwrap();
    let (code, out, err) = paused_after_staging(e.path(), &["restore", "HEAD", "d/b"], || {
        write(e.path(), "a", "USER EDIT OF a\n");
    });
    assert_eq!(code, 0, "{out}{err}");
    assert_ne!(
        fs::read_to_string(e.path().join("d/b")).ok().as_deref(),
        Some("USER EDIT OF a\n"),
        "d/b was linked to a file edited meanwhile"
    );
}

#[test]
fn restore_never_writes_into_another_store() {
    let d = plane_with_a_store_moved_into_vendor_x("the other store's\n");
    for p in ["vendor/x", "vendor/x/lib.c"] {
        cplane(d.path()).args(["restore", "HEAD", p]).assert().code(2);
    }
    assert_eq!(
        fs::read_to_string(d.path().join("vendor/x/lib.c")).unwrap(),
        "the other store's\n"
    );
    assert!(d.path().join("vendor/x/.cp/FORMAT").exists());
}

#[test]
fn a_restores_rescue_is_what_was_on_disk() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "orig\n");
    hard_link(d.path(), "a", "b");
    cplane(d.path()).arg("init").assert().success();
    append(d.path(), "a", b"zz\n");
    let rescue = rescue_name(&stdout(d.path(), &["restore", "HEAD", "b"]));
    cplane(d.path()).args(["rollback", &rescue]).assert().success();
    assert_eq!(fs::read_to_string(d.path().join("b")).unwrap(), "orig\nzz\n");
    cplane(d.path()).arg("status").assert().success();
}

#[test]
fn a_hard_link_split_survives_a_crash() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "same\n");
    write(d.path(), "b", "same\n");
    cplane(d.path()).arg("init").assert().success();
    fs::remove_file(d.path().join("b")).unwrap();
    hard_link(d.path(), "a", "b");
    write(d.path(), "extra", "x\n");
    cplane(d.path()).args(["snapshot", "--name", "s2"]).assert().success();
    kill_after_ops(d.path(), &["rollback", "HEAD~1"], 1, &[]);
    cplane(d.path()).arg("status").assert().success();
    let ino = |p: &str| fs::metadata(d.path().join(p)).unwrap().ino();
    assert_ne!(ino("a"), ino("b"));
}

#[test]
fn old_snapshots_read_paths_that_became_another_plane() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "src/c", "code\n");
    write(d.path(), "top", "t\n");
    cplane(d.path()).args(["init"]).assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "old", "--allow-unchanged"])
        .assert()
        .success();
    cplane(d.path()).args(["plane", "add", "sub", "src"]).assert().success();
    cplane(d.path())
        .args(["cat", "old:src/c"])
        .assert()
        .success()
        .stdout("code\n");
    cplane(d.path()).args(["show", "old", "src"]).assert().success();
}

/// `restore` reads what it overwrites into the rescue checkpoint first; a
/// path it cannot read (a file the user may not read) is refused by name,
/// never recorded as absent and overwritten. A FIFO is never overwritten
/// either: since issue 11 it is left in place and reported (exit 1), not refused.
#[test]
fn restore_refuses_a_path_it_cannot_rescue() {
    let (_d, root) = plane_others_can_reach();
    write(&root, "a.txt", "old\n");
    write(&root, "pipe", "was a file\n");
    cplane(&root).arg("init").assert().success();
    let checkpoints = |root: &Path| fs::read_dir(root.join(".cp/planes/main/checkpoints")).map_or(0, |r| r.count());
    let before = checkpoints(&root);
    // A FIFO where HEAD has a file.
    fs::remove_file(root.join("pipe")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("pipe").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    cplane(&root)
        .args(["restore", "HEAD", "pipe"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("CP106 pipe").and(predicate::str::contains("left in place")));
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(root.join("pipe")).unwrap().file_type().is_fifo());
    assert_eq!(
        checkpoints(&root),
        before,
        "a restore that wrote nothing keeps no rescue checkpoint"
    );
    // A file this user may not read (as root: run as nobody).
    fs::write(root.join("a.txt"), "mine, unsaved\n").unwrap();
    chmod(&root.join("a.txt"), 0o000);
    hand_over(&root, common::NOBODY);
    let out = common::cplane_unprivileged(&root)
        .args(["restore", "HEAD", "a.txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CP105 a.txt") && stderr.contains("restore refused"),
        "{stderr}"
    );
    chmod(&root.join("a.txt"), 0o644);
    assert_eq!(fs::read_to_string(root.join("a.txt")).unwrap(), "mine, unsaved\n");
    assert_eq!(checkpoints(&root), before);
}

/// A hard link whose source another process removes while a restore is
/// staged is left (and reported), never an error after the journal that
/// every later command would hit again.
#[test]
fn a_hard_link_whose_source_vanished_never_wedges_the_plane() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write(root, "b/y", "same\n");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::hard_link(root.join("b/y"), root.join("a/x")).unwrap();
    cplane(root).arg("init").assert().success();
    fs::remove_file(root.join("a/x")).unwrap();
    fs::write(root.join("a/x"), "different\n").unwrap();
    let (code, out, err) = paused_after_staging(root, &["restore", "HEAD", "a"], || {
        fs::remove_file(root.join("b/y")).unwrap()
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("a/x was left as it is"), "{out}");
    assert!(!root.join(".cp/planes/main/journal").exists());
    assert_eq!(fs::read_to_string(root.join("a/x")).unwrap(), "different\n");
    // Drift, reported: not an unfinished checkout (exit 2).
    cplane(root)
        .arg("status")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("M  a/x"));
}

/// A journal replay that meets a non-empty directory where it must write a
/// file leaves that path (the found-state checkpoint holds the directory)
/// and finishes, instead of failing the same way on every later command.
#[test]
fn a_replay_leaves_a_directory_that_appeared_where_a_file_goes() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for f in ["f1", "f2", "f3"] {
        write(root, f, &format!("{f}\n"));
    }
    cplane(root).arg("init").assert().success();
    for f in ["f1", "f2", "f3"] {
        fs::remove_file(root.join(f)).unwrap();
    }
    kill_after_ops(root, &["rollback", "HEAD"], 1, &[]);
    assert!(root.join(".cp/planes/main/journal").exists());
    write(root, "f3/inner", "made meanwhile\n");
    cplane(root)
        .args(["snapshot", "--name", "after"])
        .assert()
        .success()
        .stderr(predicate::str::contains("finished an interrupted rollback"))
        .stderr(predicate::str::contains("f3 was left as it is"));
    assert!(!root.join(".cp/planes/main/journal").exists());
    assert_eq!(fs::read_to_string(root.join("f2")).unwrap(), "f2\n");
    assert_eq!(fs::read_to_string(root.join("f3/inner")).unwrap(), "made meanwhile\n");
}

/// `diff REF` against the working tree reports a path it cannot read once,
/// as its finding (as `status` does), not also as deleted.
#[test]
fn diff_reports_an_unreadable_path_once() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    write(root, "f", "hi\n");
    write(root, "g", "x\n");
    cplane(root).arg("init").assert().success();
    fs::remove_file(root.join("g")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("g").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let out = cplane(root)
        .args(["diff", "HEAD"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("CP106 g"), "{all}");
    assert!(!all.contains("D  g"), "{all}");
}

/// A rollback whose rescue scan read many files leaves them in the stat
/// cache: the next `status` reads none of them again.
#[test]
fn a_rollback_keeps_what_its_rescue_scan_read_in_the_stat_cache() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for i in 0..1100 {
        write(root, &format!("d{}/f{i}", i % 20), &format!("{i}\n"));
    }
    cplane(root).arg("init").assert().success();
    // Touch every file (same bytes, new times), outside the racy window.
    std::thread::sleep(Duration::from_millis(2200));
    for i in 0..1100 {
        let p = root.join(format!("d{}/f{i}", i % 20));
        fs::write(&p, format!("{i}\n")).unwrap();
    }
    write(root, "extra", "n\n");
    std::thread::sleep(Duration::from_millis(2200));
    cplane(root).args(["rollback", "HEAD"]).assert().success();
    std::thread::sleep(Duration::from_millis(2200));
    let out = cplane(root)
        .args(["status", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hashed_files"], 0, "{v}");
}
