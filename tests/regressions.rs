//! Regression tests for bugs found in review, one per finding (named `review_N_…`).

mod common;
use common::{corrupt, cplane, write};

use cplane::id::ObjectId;
use predicates::prelude::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `cplane rollback REF` paused after `after` operations, then SIGKILLs it.
fn kill_rollback_after(dir: &Path, r#ref: &str, after: usize) {
    let marker = dir.join(".cp/planes/main/paused");
    let _ = fs::remove_file(&marker);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cplane"))
        .args(["rollback", r#ref])
        .current_dir(dir)
        .env(common::PAUSE_AFTER_OPS, after.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("rollback ended ({status}) before the pause point");
        }
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn review_1_rollback_refuses_to_drop_the_only_good_copy() {
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
fn review_2_symlinked_plane_root_and_bad_config_are_refused() {
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
fn review_3_replay_survives_file_and_directory_swaps() {
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
        cplane(d.path()).args(["snapshot", "--name", "s1"]).assert().success();
        if old_is_dir {
            a_as_file(d.path())
        } else {
            a_as_dir(d.path())
        }
        cplane(d.path()).args(["snapshot", "--name", "s2"]).assert().success();
        kill_rollback_after(d.path(), "s1", after);
        cplane(d.path()).arg("status").assert().success();
        cplane(d.path()).arg("verify").assert().success();
        cplane(d.path()).args(["diff", "s1", "HEAD"]).assert().success();
    }
}

#[test]
fn review_4_parent_rollback_leaves_a_nested_plane_where_a_file_was() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a", "was a file\n");
    write(d.path(), "z", "anchor\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path()).args(["snapshot", "--name", "s1"]).assert().success();
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
fn review_5_damaged_staged_file_is_not_trusted_on_replay() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..6 {
        write(d.path(), &format!("w{i}"), &format!("base {i}\n"));
    }
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path()).args(["snapshot", "--name", "base"]).assert().success();
    for i in 0..6 {
        write(d.path(), &format!("w{i}"), &format!("changed {i}\n"));
    }
    cplane(d.path())
        .args(["snapshot", "--name", "changed"])
        .assert()
        .success();
    kill_rollback_after(d.path(), "base", 1);
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

#[test]
fn review_7_future_mtime_is_not_a_file_in_flux() {
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
fn review_10_stores_do_not_nest() {
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
fn review_12_corrupt_index_count_is_damage_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    let idx = fs::read_dir(d.path().join(".cp/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "idx"))
        .unwrap();
    let mut bytes = fs::read(&idx).unwrap();
    bytes[15] ^= 0x10; // the high byte of the entry count
    fs::write(&idx, bytes).unwrap();
    for args in [&["status"][..], &["fsck"], &["log"]] {
        cplane(d.path())
            .args(args)
            .assert()
            .code(3)
            .stderr(predicate::str::contains("store damage"));
    }
}

#[test]
fn review_13_non_utf8_plane_roots_are_refused() {
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
fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("cplane"))
        .args(args)
        .current_dir(dir)
        .env("CPLANE_LOCK_TIMEOUT_MS", "20000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn review2_1_writer_waiting_for_the_lock_sees_a_plane_added_meanwhile() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "top", "top v1\n");
    write(d.path(), "sub/s", "sub v1\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path()).args(["snapshot", "--name", "s1"]).assert().success();
    write(d.path(), "top", "top v2\n");
    write(d.path(), "sub/s", "sub v2\n");
    let held = cplane::store::lock::StoreLock::acquire(&d.path().join(".cp")).unwrap();
    let rollback = spawn(d.path(), &["rollback", "s1"]);
    std::thread::sleep(Duration::from_millis(300));
    // While the rollback waits, another writer carves out `sub`.
    let mut store = cplane::store::Store::open(d.path()).unwrap();
    let sub = store.add_plane("sub", &d.path().join("sub"), None).unwrap();
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
fn review2_2_and_3_replay_after_a_crash_respects_new_planes_and_keeps_later_edits() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write(d.path(), &format!("f{i}"), &format!("base {i}\n"));
        write(d.path(), &format!("sub/s{i}"), &format!("sbase {i}\n"));
    }
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path()).args(["snapshot", "--name", "s1"]).assert().success();
    for i in 0..5 {
        write(d.path(), &format!("f{i}"), &format!("changed {i}\n"));
        write(d.path(), &format!("sub/s{i}"), &format!("schanged {i}\n"));
    }
    cplane(d.path()).args(["snapshot", "--name", "s2"]).assert().success();
    kill_rollback_after(d.path(), "s1", 2);
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
    kill_rollback_after(d.path(), "s1", 1);
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
fn review2_4_rollback_leaves_a_nested_store_alone() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "top", "v1\n");
    write(d.path(), "sub/a.txt", "v1\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path()).args(["snapshot", "--name", "s1"]).assert().success();
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
fn review2_5_ctrl_c_while_waiting_for_the_lock_exits_130() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f", "x\n");
    cplane(d.path()).arg("init").assert().success();
    let _held = cplane::store::lock::StoreLock::acquire(&d.path().join(".cp")).unwrap();
    let child = spawn(d.path(), &["snapshot"]);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn review2_6_huge_step_counts_are_an_error_not_a_panic() {
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
