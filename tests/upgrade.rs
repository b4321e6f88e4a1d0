//! `cplane upgrade` on a store written by the format-1 code
//! (`tests/fixtures/format1.tar`, made by `tests/fixtures/make-format1.sh`).
//! The fixture's history: plane `main` with checkpoints v1, v2 and a rollback
//! to v1; plane `docs` nested in it with checkpoint d2.

mod common;
use common::{cplane, stdout, stdout_code};

use predicates::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Unpacks the fixture; returns the temp dir and the plane root inside it.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let tar = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1.tar");
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(d.path())
        .status()
        .expect("tar runs");
    assert!(st.success());
    let root = d.path().join("tree");
    (d, root)
}

#[test]
fn every_command_but_upgrade_refuses_a_format_1_store() {
    let (_d, root) = fixture();
    for args in [&["status"][..], &["log"], &["snapshot"], &["fsck"], &["rollback", "v2"]] {
        cplane(&root)
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("format 1").and(predicate::str::contains("cplane upgrade")));
    }
    // Nothing was written by the refusals.
    assert_eq!(
        std::fs::read_to_string(root.join(".cp/FORMAT")).unwrap(),
        "cplane-store 1\n"
    );
}

#[test]
fn upgrade_converts_history_and_everything_works_after() {
    let (_d, root) = fixture();
    let j: Value = serde_json::from_str(&stdout(&root, &["upgrade", "--json"])).unwrap();
    assert_eq!(j["from"], 1);
    assert_eq!(j["to"], 2);
    assert!(j["refs"].as_array().unwrap().len() >= 8, "{j}");
    assert_eq!(
        std::fs::read_to_string(root.join(".cp/FORMAT")).unwrap(),
        "cplane-store 2\n"
    );
    // Again: nothing to do.
    assert!(stdout(&root, &["upgrade"]).contains("already format 2"));

    // The working tree matches HEAD (what format 1 did not record is not compared).
    cplane(&root).arg("status").assert().success();
    cplane(&root).arg("verify").assert().success();
    cplane(&root).args(["--plane", "docs", "verify"]).assert().success();
    // History reads back: names, kinds, contents.
    let log = stdout(&root, &["log"]);
    for name in ["v1", "v2", "RESCUE-", "rollback"] {
        assert!(log.contains(name), "log lacks {name}:\n{log}");
    }
    assert_eq!(stdout(&root, &["cat", "v2:README"]), "hello, world\n");
    assert_eq!(stdout(&root, &["cat", "v1:src/lib/mod.rs"]), "pub fn f() {}\n");
    assert_eq!(stdout(&root, &["cat", "v1:link"]), "README\n");
    assert_eq!(stdout(&root, &["cat", "docs:d2:index.md"]), "docs v2\n");
    let diff = stdout_code(&root, &["diff", "--name-status", "v1", "v2"], 1);
    let mut lines: Vec<&str> = diff.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["A\tsrc/new.rs", "D\tsrc/lib/mod.rs", "M\tREADME"]);
    // The rollback snapshot's target points at the converted v1.
    let head: Value = serde_json::from_str(&stdout(&root, &["show", "HEAD", "--json"])).unwrap();
    let v1: Value = serde_json::from_str(&stdout(&root, &["show", "v1", "--json"])).unwrap();
    assert_eq!(head["root"], v1["root"]);

    // Rollback to a converted snapshot restores bytes and the execute bit.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("bin/run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    cplane(&root).args(["rollback", "v2"]).assert().success();
    assert_eq!(std::fs::read_to_string(root.join("README")).unwrap(), "hello, world\n");
    assert!(!root.join("src/lib/mod.rs").exists());
    let mode = std::fs::metadata(root.join("bin/run.sh")).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "the execute bit comes back (mode {mode:o})");
    cplane(&root).arg("verify").assert().success();
    // A new snapshot records full modes and owners; fsck is clean and notes the old objects.
    cplane(&root).args(["snapshot", "--name", "v3"]).assert().success();
    let show = stdout(&root, &["show", "v3", "README", "--json"]);
    assert!(show.contains("\"mode\":\"0644\""), "{show}");
    let fsck = stdout(&root, &["fsck"]);
    assert!(fsck.contains("no damage"), "{fsck}");
    // Its snapshots predate ledgers: the first write recorded them from
    // history, then its own entry; the ledger checks out.
    let ledger = stdout(&root, &["ledger"]);
    assert!(
        ledger.contains("from history") && ledger.contains("checkpoint v3"),
        "{ledger}"
    );
    stdout(&root, &["ledger", "verify"]);
}

/// A crash after some refs moved leaves every ref valid; running it again finishes the job
/// with the same ids (the conversion is deterministic).
#[test]
fn interrupted_upgrade_is_finished_by_running_it_again() {
    let (_d, root) = fixture();
    let before: Vec<(PathBuf, String)> = refs(&root);
    let j: Value = serde_json::from_str(&stdout(&root, &["upgrade", "--json"])).unwrap();
    let after: Vec<(PathBuf, String)> = refs(&root);
    // Simulate the crash: half the refs back to their format-1 ids, FORMAT still 1.
    for (i, (path, old)) in before.iter().enumerate() {
        if i % 2 == 0 {
            std::fs::write(path, format!("{old}\n")).unwrap();
        }
    }
    std::fs::write(root.join(".cp/FORMAT"), "cplane-store 1\n").unwrap();
    cplane(&root).arg("status").assert().code(2);
    let again: Value = serde_json::from_str(&stdout(&root, &["upgrade", "--json"])).unwrap();
    assert_eq!(again["from"], 1);
    assert_eq!(refs(&root), after, "the same converted ids");
    assert!(j["refs"].as_array().unwrap().len() > again["refs"].as_array().unwrap().len());
    cplane(&root).arg("verify").assert().success();
}

fn refs(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for plane in ["main", "docs"] {
        let dir = root.join(".cp/planes").join(plane);
        out.push(dir.join("HEAD"));
        for e in std::fs::read_dir(dir.join("checkpoints")).unwrap() {
            out.push(e.unwrap().path());
        }
    }
    out.sort();
    out.into_iter()
        .map(|p| {
            let id = std::fs::read_to_string(&p).unwrap().trim().to_string();
            (p, id)
        })
        .collect()
}

#[test]
fn upgrade_refuses_a_pending_format_1_journal() {
    let (_d, root) = fixture();
    // A format-1 journal: magic CPRJ, version 1.
    let mut j = b"CPRJ\x01\0\0\0".to_vec();
    j.extend_from_slice(&[0u8; 40]);
    std::fs::write(root.join(".cp/planes/main/journal"), &j).unwrap();
    cplane(&root)
        .arg("upgrade")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unfinished format-1 rollback"));
    assert_eq!(
        std::fs::read_to_string(root.join(".cp/FORMAT")).unwrap(),
        "cplane-store 1\n"
    );
}
