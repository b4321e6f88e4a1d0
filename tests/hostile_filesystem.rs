//! A hostile filesystem under a checkout or a seal (from issue 8, "store
//! format 2"): a full disk, a symlink swapped in mid-checkout, paths
//! vanishing, a reader during a rollback, an owner that cannot be put back,
//! no O_TMPFILE. Each input that failed before, through the real binary. Tests that need root (a tmpfs mount,
//! dropping privileges with `setpriv`) run in CI, which is root; elsewhere
//! they print why they did not run.

mod common;
use common::{
    Tmpfs, chown_tree, cplane, cplane_as, hand_over, kill_after_ops, noise, paused_after_ops, paused_after_staging,
    plane_others_can_reach, skip_unless_root, spawn, write,
};

use predicates::prelude::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// Names of every entry under `dir`, recursively (to look for leftovers).
fn all_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            out.push(e.file_name().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() && e.file_name() != ".cp" {
                stack.push(e.path());
            }
        }
    }
    out
}

/// `data/` is its own small filesystem: a rollback that runs out of space there
/// fails naming the user's file, leaves no partial file in the tree, and after
/// space is freed the next snapshot records nothing torn.
#[test]
fn mount_inside_plane_disk_full_rollback_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let Some(_mnt) = Tmpfs::mount(&d.path().join("data"), "1500k") else {
        return;
    };
    let noise = noise(600_000, 7);
    fs::write(d.path().join("data/big.bin"), &noise).unwrap();
    write(d.path(), "top.txt", "top\n");
    cplane(d.path()).arg("init").assert().success();
    // Rewrite big.bin (same size, other bytes) and fill the rest of the filesystem.
    let other: Vec<u8> = noise.iter().map(|b| b ^ 0x5a).collect();
    fs::write(d.path().join("data/big.bin"), &other).unwrap();
    let _ = fs::write(d.path().join("data/filler"), vec![1u8; 750_000]);
    cplane(d.path()).args(["snapshot", "--name", "full"]).assert().success();
    cplane(d.path())
        .args(["rollback", "HEAD~1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("data/big.bin").and(predicate::str::contains("No space left")));
    assert_eq!(
        fs::read(d.path().join("data/big.bin")).unwrap(),
        other,
        "nothing changed"
    );
    let names = all_names(d.path());
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with(".cp-") || n.starts_with(".cplane") || n.contains("rollback")),
        "leftovers in the tree: {names:?}"
    );
    // Free the space: the rollback now works, and nothing torn was ever recorded.
    fs::remove_file(d.path().join("data/filler")).unwrap();
    cplane(d.path()).args(["rollback", "HEAD~1"]).assert().success();
    assert_eq!(fs::read(d.path().join("data/big.bin")).unwrap(), noise);
    cplane(d.path()).arg("verify").assert().success();
}

/// An init that runs out of space leaves neither `.cp` nor `.cp.init-*`; a
/// later init removes leftovers of a crashed one.
#[test]
fn init_out_of_space_leaves_nothing_and_leftovers_are_removed() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("fs");
    let Some(_mnt) = Tmpfs::mount(&root, "2m") else {
        return;
    };
    fs::write(root.join("big.bin"), noise(1_200_000, 9)).unwrap();
    cplane(&root)
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("No space left"));
    let names: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["big.bin".to_string()], "init left something behind");
    // A crashed init's directory (its process is gone) is removed by the next init.
    fs::remove_file(root.join("big.bin")).unwrap();
    write(&root, "small.txt", "small\n");
    fs::create_dir_all(root.join(".cp.init-999999/packs")).unwrap();
    cplane(&root).arg("init").assert().success();
    assert!(!root.join(".cp.init-999999").exists());
    cplane(&root).arg("verify").assert().success();
}

/// A directory swapped for a symlink to outside the plane while a rollback (or a
/// restore) is staged: the checkout refuses, and nothing outside is touched.
#[test]
fn symlink_swapped_in_mid_checkout_touches_nothing_outside() {
    for cmd in ["rollback", "restore"] {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "victim.txt", "outside, keep me\n");
        write(d.path(), "conf/victim.txt", "v1\n");
        write(d.path(), "conf/other.txt", "o1\n");
        cplane(d.path()).arg("init").assert().success();
        write(d.path(), "conf/victim.txt", "v2\n");
        write(d.path(), "conf/other.txt", "o2\n");
        let args: Vec<&str> = if cmd == "rollback" {
            vec!["rollback", "HEAD"]
        } else {
            vec!["restore", "HEAD", "conf"]
        };
        let (code, _, err) = paused_after_staging(d.path(), &args, || {
            // Everything is staged: swap the directory for a symlink to outside.
            fs::rename(d.path().join("conf"), d.path().join("conf.moved")).unwrap();
            std::os::unix::fs::symlink(outside.path(), d.path().join("conf")).unwrap();
        });
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("refusing to write"), "{cmd}: {err}");
        assert_eq!(
            fs::read_to_string(outside.path().join("victim.txt")).unwrap(),
            "outside, keep me\n",
            "{cmd} wrote through the symlink"
        );
        let outside_names = all_names(outside.path());
        assert_eq!(
            outside_names,
            vec!["victim.txt".to_string()],
            "{cmd}: {outside_names:?}"
        );
        // It failed after its journal, with its flush's outcome unknown: the
        // journal is marked so that the replay trusts no file it reads back.
        let mark = d.path().join(".cp/planes/main/journal.unflushed");
        assert!(mark.exists(), "{cmd}: no journal.unflushed after a failed apply");
        // Put the directory back: the next command finishes the checkout.
        fs::remove_file(d.path().join("conf")).unwrap();
        fs::rename(d.path().join("conf.moved"), d.path().join("conf")).unwrap();
        cplane(d.path()).arg("status").assert().success();
        assert!(!mark.exists(), "{cmd}: the mark outlived its journal");
        assert_eq!(fs::read_to_string(d.path().join("conf/victim.txt")).unwrap(), "v1\n");
    }
}

/// `verify` started while a rollback is applying waits for it, or says plainly
/// that one was interrupted; it never reports a half-applied tree.
#[test]
fn verify_during_rollback_sees_before_or_after() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..40 {
        write(d.path(), &format!("f{i:02}"), &format!("one {i}\n"));
    }
    cplane(d.path()).arg("init").assert().success();
    for i in 0..40 {
        write(d.path(), &format!("f{i:02}"), &format!("two {i}\n"));
    }
    cplane(d.path()).args(["snapshot", "--name", "two"]).assert().success();
    let mut rollback = paused_after_ops(d.path(), &["rollback", "HEAD~1"], 20, &[]);
    // Half the files are rolled back now. A verify must not report that state.
    let mut verify = spawn(d.path(), &["verify", "--json"], &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        verify.try_wait().unwrap().is_none(),
        "verify did not wait for the rollback applying to the tree"
    );
    rollback.kill().unwrap();
    rollback.wait().unwrap();
    let out = verify.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Either it finished the interrupted rollback and saw the state after it, or it
    // said plainly that a rollback was interrupted; never a mixture.
    match out.status.code() {
        Some(0) => assert!(stderr.contains("finished an interrupted rollback"), "{stderr}"),
        Some(2) => assert!(stderr.contains("rollback or restore"), "{stderr}"),
        other => panic!("verify exited {other:?}: {stdout}{stderr}"),
    }
    assert!(!stdout.contains("CP101"), "a half-applied tree was reported: {stdout}");
    // The next command finishes the rollback; then verify is clean.
    cplane(d.path()).arg("status").assert().success();
    cplane(d.path()).arg("verify").assert().success();
}

/// As an ordinary user, a rollback that cannot put an owner back says so for
/// each path (CP111, exit 1) instead of silently leaving the wrong owner.
#[test]
fn owner_that_cannot_be_restored_is_reported() {
    if skip_unless_root("owner_that_cannot_be_restored_is_reported") {
        return;
    }
    let (_d, root) = plane_others_can_reach();
    write(&root, "mine.txt", "mine\n");
    write(&root, "roots.txt", "root's\n");
    cplane(&root).arg("init").assert().success();
    // Everything but roots.txt belongs to uid 4321; roots.txt stays root's (0644).
    hand_over(&root, 4321);
    chown_tree(&root.join("roots.txt"), 0);
    cplane(&root).args(["snapshot", "--name", "mixed"]).assert().success();
    chown_tree(&root.join(".cp"), 4321);
    fs::remove_file(root.join("roots.txt")).unwrap();
    let out = cplane_as(4321, &root).args(["rollback", "mixed"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("CP111 roots.txt") && stdout.contains("owner 0:0"),
        "{stdout}"
    );
    // The bytes and mode came back; the owner could not.
    assert_eq!(fs::read_to_string(root.join("roots.txt")).unwrap(), "root's\n");
    let m = fs::metadata(root.join("roots.txt")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o644);
    assert_eq!(m.uid(), 4321);
    // Root can: the owner difference is reported, then restored.
    cplane(&root)
        .arg("status")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("O  roots.txt"));
    cplane(&root).args(["rollback", "mixed"]).assert().success();
    assert_eq!(fs::metadata(root.join("roots.txt")).unwrap().uid(), 0);
}

/// A process creating and deleting files throughout a snapshot and a rollback
/// (a build, an editor's swap files) makes neither fail.
#[test]
fn paths_vanishing_during_snapshot_and_rollback_are_not_errors() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..300 {
        write(d.path(), &format!("src/d{}/f{i}", i % 30), &format!("file {i}\n"));
    }
    cplane(d.path()).arg("init").assert().success();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Files appear whole (written aside, then renamed in) and vanish: paths come
    // and go, but none is seen half-written, which would rightly be CP107.
    let aside = tempfile::tempdir_in(d.path().parent().unwrap()).unwrap();
    let churn = {
        let (root, stop, aside) = (d.path().join("build"), stop.clone(), aside.path().to_path_buf());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let dir = root.join(format!("obj{}", i % 7));
                let _ = fs::create_dir_all(&dir);
                let tmp = aside.join(format!("t{i}.o"));
                if fs::write(&tmp, b"x").is_ok() {
                    let _ = fs::rename(&tmp, dir.join(format!("t{i}.o")));
                }
                let _ = fs::remove_file(dir.join(format!("t{}.o", i.saturating_sub(3))));
                if i.is_multiple_of(50) {
                    let _ = fs::remove_dir_all(&dir);
                }
                i += 1;
            }
        })
    };
    for round in 0..5 {
        write(d.path(), &format!("src/d1/f{round}"), "edited\n");
        cplane(d.path()).arg("snapshot").assert().success();
        cplane(d.path()).args(["rollback", "HEAD~1"]).assert().success();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
}

/// Without `O_TMPFILE` (as on some filesystems) files reach their name through
/// the reserved `.cplane-staging~`: scans never record it, a killed checkout's
/// replay removes it, and the result is the same.
#[test]
fn checkout_without_tmpfile_uses_the_reserved_name_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..30 {
        write(d.path(), &format!("dir{}/f{i}", i % 3), &format!("one {i}\n"));
    }
    cplane(d.path()).arg("init").assert().success();
    for i in 0..30 {
        write(d.path(), &format!("dir{}/f{i}", i % 3), &format!("two {i}\n"));
    }
    // A stale staging file (as a crash would leave): never recorded.
    write(d.path(), "dir0/.cplane-staging~", "torn");
    cplane(d.path()).args(["snapshot", "--name", "two"]).assert().success();
    cplane(d.path())
        .args(["show", "two", "dir0/.cplane-staging~"])
        .assert()
        .code(2);
    kill_after_ops(
        d.path(),
        &["rollback", "HEAD~1"],
        12,
        &[("CPLANE_TEST_NO_TMPFILE", "1")],
    );
    cplane(d.path())
        .env("CPLANE_TEST_NO_TMPFILE", "1")
        .arg("status")
        .assert()
        .success();
    for i in 0..30 {
        assert_eq!(
            fs::read_to_string(d.path().join(format!("dir{}/f{i}", i % 3))).unwrap(),
            format!("one {i}\n")
        );
    }
    let names = all_names(d.path());
    assert!(!names.iter().any(|n| n == ".cplane-staging~"), "{names:?}");
    // And an uninterrupted one.
    cplane(d.path())
        .env("CPLANE_TEST_NO_TMPFILE", "1")
        .args(["rollback", "two"])
        .assert()
        .success();
    assert_eq!(fs::read_to_string(d.path().join("dir1/f1")).unwrap(), "two 1\n");
    assert!(!all_names(d.path()).iter().any(|n| n == ".cplane-staging~"));
    cplane(d.path()).arg("verify").assert().success();
}
