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

#[test]
fn cached_listings_see_every_change_to_a_directory_s_names() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    for i in 0..12 {
        for j in 0..3 {
            write(d, &format!("d{i}/sub/f{j}.txt"), &format!("{i} {j}\n"));
        }
        write(d, &format!("d{i}/top.txt"), "top\n");
    }
    write(d, "d10/.cpignore", "*.log\n");
    write(d, "d10/keep.log", "excluded for now\n");
    cplane(d).arg("init").assert().success();
    std::thread::sleep(PAST_RACY);
    // The first status reads the directories init recorded too close to
    // its start to trust, and records them again, now old enough.
    let first = json(d, &["status", "--json"]);
    assert_eq!(first["clean"], true, "{first}");
    let second = json(d, &["status", "--json"]);
    assert_eq!(second["clean"], true, "{second}");
    assert_eq!(
        second["listed_dirs"], 0,
        "an unchanged status reads no directory: {second}"
    );
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
    // Only the directories whose names changed (and the new ones) were read.
    let listed = status["listed_dirs"].as_u64().unwrap();
    assert!((9..=14).contains(&listed), "{listed} directories read: {status}");

    // A snapshot through the same cache records exactly what is on disk.
    fs::remove_file(d.join("d7/sub/pipe")).unwrap();
    cplane(d).args(["snapshot", "-m", "after"]).assert().success();
    let after = json(d, &["verify", "--json"]);
    assert_eq!(after["clean"], true, "{after}");
}

#[test]
fn a_directory_listed_too_close_to_its_last_change_is_read_again() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a/one.txt", "1\n");
    cplane(d).arg("init").assert().success();
    // Within the racy margin of init's scan: the listing is not trusted,
    // however often status runs, until a scan starts well after the change.
    write(d, "a/two.txt", "2\n");
    for _ in 0..3 {
        let s = json(d, &["status", "--json"]);
        assert!(changes(&s).contains(&("A".into(), "a/two.txt".into())), "{s}");
        assert!(s["listed_dirs"].as_u64().unwrap() >= 1, "{s}");
    }
}
