//! The directory listings in the stat cache (git's untracked cache): once
//! every listing is old enough to trust, an unchanged `status` reads no
//! directory, and every kind of change to a directory's names — a file
//! added, removed, renamed in or across directories, replaced by a
//! directory, a new empty directory, a FIFO, a name let in by an edited
//! `.cpignore` — is seen exactly as a scan that trusts nothing (`verify`)
//! sees it; a snapshot after it records exactly the disk.

mod common;

use common::{cplane, write};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// True when the temporary directory's filesystem keeps directory stamps,
/// so listings are cached there (ext4, XFS, tmpfs, ...); on any other every
/// directory is read every time, and the tests expect that instead.
/// (`CPLANE_DIR_LISTINGS=0` in the environment of the tests turns them off
/// as that filesystem would, to check those expectations here.)
fn listings_cached(dir: &Path) -> bool {
    std::env::var_os("CPLANE_DIR_LISTINGS").is_none_or(|v| v != "0")
        && cplane::fsys::Dir::open(dir).unwrap().keeps_dir_stamps()
}

/// The stat cache's racy margin (2 s) and a little: listings recorded by a
/// scan that starts this long after the tree was written are trusted.
const PAST_RACY: std::time::Duration = std::time::Duration::from_millis(2_100);

fn json(dir: &Path, args: &[&str]) -> Value {
    let o = cplane(dir).args(args).output().unwrap();
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// (status letter, path) of every change a JSON report lists.
fn changes(v: &Value) -> BTreeSet<(String, String)> {
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A plane of `files` (path, body), initialized, whose listings are then
/// recorded by a status that starts past the racy margin, so the next
/// scan trusts them; that status's report.
fn with_old_listings(files: &[(String, String)]) -> (tempfile::TempDir, Value) {
    let t = tempfile::tempdir().unwrap();
    for (p, body) in files {
        write(t.path(), p, body);
    }
    cplane(t.path()).arg("init").assert().success();
    std::thread::sleep(PAST_RACY);
    let first = json(t.path(), &["status", "--json"]);
    (t, first)
}

/// `with_old_listings` of borrowed (path, body) pairs.
fn plane_of(files: &[(&str, &str)]) -> tempfile::TempDir {
    let owned: Vec<(String, String)> = files.iter().map(|(p, b)| (p.to_string(), b.to_string())).collect();
    with_old_listings(&owned).0
}

#[test]
fn cached_listings_see_every_change_to_a_directory_s_names() {
    let mut files = Vec::new();
    for i in 0..12 {
        for j in 0..3 {
            files.push((format!("d{i}/sub/f{j}.txt"), format!("{i} {j}\n")));
        }
        files.push((format!("d{i}/top.txt"), "top\n".to_string()));
    }
    for (p, body) in [
        ("d10/.cpignore", "*.log\n"),
        ("d10/keep.log", "excluded for now\n"),
        ("s1/x/from-s1.txt", "1\n"),
        ("s2/y/from-s2.txt", "2\n"),
    ] {
        files.push((p.to_string(), body.to_string()));
    }
    // The first status reads the directories init recorded too close to
    // its start to trust, and records them again, now old enough.
    let (t, first) = with_old_listings(&files);
    let d = t.path();
    assert_eq!(first["clean"], true, "{first}");
    let second = json(d, &["status", "--json"]);
    assert_eq!(second["clean"], true, "{second}");
    let cached = listings_cached(d);
    let all_dirs = second["listed_dirs"].as_u64().unwrap();
    if cached {
        assert_eq!(all_dirs, 0, "an unchanged status reads no directory: {second}");
    } else {
        assert_eq!(all_dirs, 29, "every directory is read: {second}");
    }
    assert_eq!(second["excluded"], 1, "{second}");

    // Every kind of change to names, each in its own directory.
    write(d, "d0/sub/added.txt", "new\n");
    fs::remove_file(d.join("d1/sub/f0.txt")).unwrap();
    fs::rename(d.join("d2/sub/f0.txt"), d.join("d2/sub/renamed.txt")).unwrap();
    fs::rename(d.join("d3/sub/f1.txt"), d.join("d4/sub/moved.txt")).unwrap();
    fs::remove_file(d.join("d5/sub/f2.txt")).unwrap();
    write(d, "d5/sub/f2.txt/inside.txt", "a directory where a file was\n");
    fs::create_dir(d.join("d6/sub/empty")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("d7/sub/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    fs::remove_dir_all(d.join("d8/sub")).unwrap();
    write(d, "d8/sub/f0.txt", "recreated\n");
    // Edited in place: d10's own names do not change, its rules do.
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(d.join("d10/.cpignore"))
        .unwrap();
    write(d, "d11/sub/f0.txt", "content only: the directory is unchanged\n");
    // Two directories swapped: each keeps its inode and names, under the other's path.
    fs::rename(d.join("s1/x"), d.join("t")).unwrap();
    fs::rename(d.join("s2/y"), d.join("s1/x")).unwrap();
    fs::rename(d.join("t"), d.join("s2/y")).unwrap();

    let status = json(d, &["status", "--json", "--no-renames"]);
    let truth = json(d, &["verify", "--json"]);
    assert_eq!(changes(&status), changes(&truth), "status: {status}\nverify: {truth}");
    let seen = changes(&status);
    for want in [
        ("A", "d0/sub/added.txt"),
        ("D", "d1/sub/f0.txt"),
        ("A", "d2/sub/renamed.txt"),
        ("A", "d4/sub/moved.txt"),
        ("D", "d3/sub/f1.txt"),
        ("A", "d10/keep.log"),
        ("M", "d11/sub/f0.txt"),
        ("M", "d8/sub/f0.txt"),
        ("A", "s1/x/from-s2.txt"),
        ("D", "s1/x/from-s1.txt"),
    ] {
        assert!(
            seen.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} missing from {seen:?}"
        );
    }
    assert_eq!(status["excluded"], 0, "{status}");
    assert!(
        status["findings"].to_string().contains("d7/sub/pipe"),
        "the FIFO is reported: {status}"
    );
    // Only the directories whose stamps changed (and the new ones) were
    // read: d0/sub to d8/sub, d5/sub/f2.txt and d6/sub/empty (new), d8
    // (its sub replaced), the root (t came and went), s1 and s2, and the
    // two swapped directories (a rename stamps the moved directory's ctime).
    let listed = status["listed_dirs"].as_u64().unwrap();
    assert_eq!(listed, if cached { 17 } else { 31 }, "directories read: {status}");

    // A snapshot through the same cache records exactly what is on disk.
    fs::remove_file(d.join("d7/sub/pipe")).unwrap();
    cplane(d).args(["snapshot", "-m", "after"]).assert().success();
    let after = json(d, &["verify", "--json"]);
    assert_eq!(after["clean"], true, "{after}");
}

#[test]
fn an_unchanged_snapshot_that_read_directories_saves_their_listings() {
    let t = plane_of(&[("a/one.txt", "1\n"), ("b/two.txt", "2\n")]);
    let d = t.path();
    // `a` is stamped again, its names are the same: nothing to record, but
    // its listing is read once more, and an unchanged snapshot saves it.
    write(d, "a/tmp", "gone soon\n");
    fs::remove_file(d.join("a/tmp")).unwrap();
    std::thread::sleep(PAST_RACY);
    let o = cplane(d).arg("snapshot").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("unchanged"), "{o:?}");
    let s = json(d, &["status", "--json", "--no-optional-locks"]);
    assert_eq!(s["clean"], true, "{s}");
    assert_eq!(s["listed_dirs"], if listings_cached(d) { 0 } else { 3 }, "{s}");
}

#[test]
fn cplane_dir_listings_0_reads_every_directory() {
    let t = plane_of(&[("a/b/one.txt", "1\n")]);
    let d = t.path();
    let cached = json(d, &["status", "--json"]);
    assert_eq!(
        cached["listed_dirs"],
        if listings_cached(d) { 0 } else { 3 },
        "{cached}"
    );
    let o = cplane(d)
        .args(["status", "--json"])
        .env("CPLANE_DIR_LISTINGS", "0")
        .output()
        .unwrap();
    let off: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(off["listed_dirs"], 3, "the root, a and a/b: {off}");
}

/// `status`, then `verify` (which trusts nothing), must list the same
/// changes; both are returned.
fn same_as_verify(d: &Path) -> (Value, Value) {
    let status = json(d, &["status", "--json", "--no-renames"]);
    let truth = json(d, &["verify", "--json"]);
    assert_eq!(changes(&status), changes(&truth), "status: {status}\nverify: {truth}");
    (status, truth)
}

#[test]
fn a_directory_changed_while_excluded_is_read_when_let_in_again() {
    let t = plane_of(&[("build/a.o", "a\n"), ("src/x.c", "x\n")]);
    let d = t.path();
    // (build's listing is recorded, old enough.)
    write(d, ".cpignore", "build/\n");
    let s = json(d, &["status", "--json"]);
    assert_eq!(s["excluded"], 1, "{s}");
    // Changed while no scan enters it.
    write(d, "build/new.o", "new\n");
    std::thread::sleep(PAST_RACY);
    json(d, &["status", "--json"]);
    fs::remove_file(d.join(".cpignore")).unwrap();
    let (s, _) = same_as_verify(d);
    assert!(changes(&s).contains(&("A".into(), "build/new.o".into())), "{s}");
}

#[test]
fn a_rollback_that_rewrites_the_cache_keeps_listings_that_are_still_true() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // Enough files that the rollback rewrites the stat cache from its rescue
    // scan (1,024 changed), listings included.
    for i in 0..1_100 {
        write(d, &format!("d{}/f{i}.txt", i % 20), "first\n");
    }
    cplane(d).arg("init").assert().success();
    cplane(d)
        .args(["snapshot", "--allow-unchanged", "--name", "A"])
        .assert()
        .success();
    for i in 0..1_100 {
        write(d, &format!("d{}/f{i}.txt", i % 20), "second\n");
    }
    write(d, "d1/new.txt", "only in B\n");
    fs::remove_file(d.join("d2/f2.txt")).unwrap();
    fs::create_dir(d.join("d3/newdir")).unwrap();
    cplane(d).args(["snapshot", "--name", "B"]).assert().success();
    std::thread::sleep(PAST_RACY);
    json(d, &["status", "--json"]);
    cplane(d).args(["rollback", "A"]).assert().success();
    let (s, _) = same_as_verify(d);
    assert_eq!(s["clean"], true, "{s}");
    std::thread::sleep(PAST_RACY);
    let (s, _) = same_as_verify(d);
    assert_eq!(s["clean"], true, "{s}");
    // And back: the listings saved by the rollback must not hide B's names.
    cplane(d).args(["rollback", "B"]).assert().success();
    std::thread::sleep(PAST_RACY);
    let (s, _) = same_as_verify(d);
    assert_eq!(s["clean"], true, "{s}");
    assert!(d.join("d1/new.txt").exists() && !d.join("d2/f2.txt").exists());
}

#[test]
fn restore_of_a_directory_with_a_cached_listing_rescues_what_it_removes() {
    let t = plane_of(&[("d0/sub/keep.txt", "keep\n")]);
    let d = t.path();
    write(d, "d0/sub/extra.txt", "not in HEAD\n");
    let o = cplane(d).args(["restore", "HEAD", "d0"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(!d.join("d0/sub/extra.txt").exists());
    let (s, _) = same_as_verify(d);
    assert_eq!(s["clean"], true, "{s}");
    // The rescue checkpoint holds the file the restore removed.
    let list = cplane(d).args(["checkpoints"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    let rescue = text
        .split_whitespace()
        .find(|w| w.starts_with("RESCUE-"))
        .unwrap_or_else(|| panic!("no rescue checkpoint in {text}"));
    let o = cplane(d)
        .args(["cat", &format!("{rescue}:d0/sub/extra.txt")])
        .output()
        .unwrap();
    assert_eq!(o.stdout, b"not in HEAD\n", "{o:?}");
}
