//! The ledger through the binary: every mutation recorded, every kind of
//! tampering named by `ledger verify`, a command interrupted before its
//! entry repaired by the next one, and proofs checked offline.

mod common;

use common::{cplane, stdout, stdout_code, write};
use cplane::ledger::Entry;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn ledger_path(d: &Path) -> PathBuf {
    d.join(".cp/planes/main/ledger")
}

fn entries(d: &Path) -> Vec<Entry> {
    serde_json::from_str(&stdout(d, &["ledger", "--json"])).unwrap()
}

fn ops(d: &Path) -> Vec<String> {
    entries(d).into_iter().map(|e| e.op).collect()
}

fn lines(d: &Path) -> Vec<String> {
    fs::read_to_string(ledger_path(d))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn set_lines(d: &Path, lines: &[String]) {
    let mut body = lines.join("\n");
    body.push('\n');
    fs::write(ledger_path(d), body).unwrap();
}

/// A plane with a few recorded mutations: init, two snapshots, a rollback.
fn plane_with_history() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "one\n");
    stdout(d, &["init"]);
    write(d, "a.txt", "two\n");
    stdout(d, &["snapshot", "-m", "second"]);
    write(d, "b.txt", "bee\n");
    stdout(d, &["snapshot"]);
    let first = entries(d)[0].refs[1].trim_start_matches("checkpoints/").to_string();
    stdout(d, &["rollback", &first]);
    t
}

fn verify_fails_with(d: &Path, needle: &str) -> String {
    let out = stdout_code(d, &["ledger", "verify"], 1);
    assert!(out.contains(needle), "expected {needle:?} in:\n{out}");
    out
}

#[test]
fn every_mutation_appends_one_chained_entry() {
    let t = plane_with_history();
    let d = t.path();
    assert_eq!(ops(d), ["init", "snapshot", "snapshot", "rollback"]);
    let es = entries(d);
    for (i, e) in es.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
        assert_eq!(e.plane, "main");
        assert!(e.actor.starts_with("user:") || e.actor.starts_with("uid:"), "{e:?}");
        assert_eq!(
            e.compute_hash().map(|h| cplane::id::to_hex(&h)).as_deref(),
            Some(e.hash.as_str())
        );
        if i > 0 {
            assert_eq!(e.prev, es[i - 1].hash);
        }
    }
    // Each records HEAD after it; the rollback's HEAD is HEAD now.
    let head = fs::read_to_string(d.join(".cp/planes/main/HEAD")).unwrap();
    assert_eq!(es[3].head.as_deref(), Some(head.trim()));
    assert_eq!(
        es[1].message,
        format!(
            "checkpoint {}: second",
            es[1].refs[1].trim_start_matches("checkpoints/")
        )
    );
    let out = stdout(d, &["ledger", "verify"]);
    assert!(out.contains("4 entries, chain and Merkle tree intact"), "{out}");
    // Filters.
    let only: Vec<Entry> = serde_json::from_str(&stdout(d, &["ledger", "--op", "snapshot", "--json"])).unwrap();
    assert_eq!(only.len(), 2);
    // Snapshots and rollbacks list the paths they changed: b.txt was added
    // by the third entry and removed by the rollback.
    let b: Vec<Entry> = serde_json::from_str(&stdout(d, &["ledger", "--path", "b.txt", "--json"])).unwrap();
    let ops: Vec<&str> = b.iter().map(|e| e.op.as_str()).collect();
    assert_eq!(ops, ["snapshot", "rollback"], "{b:#?}");
    let none: Vec<Entry> = serde_json::from_str(&stdout(d, &["ledger", "--since", "2999-01-01", "--json"])).unwrap();
    assert!(none.is_empty());
    let err = cplane(d)
        .args(["ledger", "--op", "dance"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&err).contains("plane-add"),
        "{}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn governance_commands_and_plane_add_are_recorded_with_their_paths() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    stdout(d, &["init", "--governed"]);
    write(d, "specs/SPEC-000/notes.md", "# notes\n");
    stdout(d, &["own", "specs/SPEC-000/notes.md", "--by", "SPEC-000"]);
    write(d, "stray.txt", "x\n");
    stdout(d, &["quarantine"]);
    fs::create_dir_all(d.join("sub")).unwrap();
    write(d, "sub/x.txt", "x\n");
    let es = entries(d);
    let own = es.iter().find(|e| e.op == "own").expect("an own entry");
    assert!(own.paths.contains(&"specs/SPEC-000/notes.md".to_string()), "{own:?}");
    let q = es.iter().find(|e| e.op == "quarantine").expect("a quarantine entry");
    assert_eq!(q.paths, ["stray.txt"]);
    assert!(q.snapshot.is_some());
    // `explain` lists the entries that touched a file.
    let x: Value = serde_json::from_str(&stdout(d, &["explain", "specs/SPEC-000/notes.md", "--json"])).unwrap();
    let touched: Vec<&str> = x["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["op"].as_str().unwrap())
        .collect();
    assert!(touched.contains(&"own"), "{x}");
    stdout(d, &["ledger", "verify"]);
}

#[test]
fn plane_add_records_in_both_planes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "top.txt", "t\n");
    write(d, "inner/x.txt", "x\n");
    stdout(d, &["init"]);
    stdout(d, &["plane", "add", "inner", "inner"]);
    assert_eq!(ops(d), ["init", "plane-add"]);
    let inner: Vec<Entry> = serde_json::from_str(&stdout(d, &["--plane", "inner", "ledger", "--json"])).unwrap();
    assert_eq!(inner.len(), 1);
    assert_eq!(inner[0].op, "plane-add");
    assert_eq!(inner[0].plane, "inner");
    stdout(d, &["--plane", "inner", "ledger", "verify"]);
    stdout(d, &["ledger", "verify"]);
}

#[test]
fn an_edited_entry_is_named() {
    let t = plane_with_history();
    let d = t.path();
    let mut l = lines(d);
    l[1] = l[1].replace("second", "SECOND");
    set_lines(d, &l);
    let out = verify_fails_with(d, "entry 1: its contents do not match its hash (edited)");
    assert!(out.contains(":2:"), "names the line: {out}");
    // `cplane verify` reports it too, after the tree checks.
    let v = stdout_code(d, &["verify"], 1);
    assert!(v.contains("CP401") && v.contains("entry 1"), "{v}");
    // A writer refuses to append to a ledger whose last entry does not verify.
    let mut l = lines(d);
    let last = l.len() - 1;
    l[1] = l[1].replace("SECOND", "second");
    l[last] = l[last].replace("rollback to", "rollback TO");
    set_lines(d, &l);
    write(d, "c.txt", "c\n");
    let err = cplane(d).arg("snapshot").assert().code(3).get_output().stderr.clone();
    assert!(
        String::from_utf8_lossy(&err).contains("ledger verify"),
        "{}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn reformatted_json_is_an_edit() {
    let t = plane_with_history();
    let d = t.path();
    let mut l = lines(d);
    l[2] = l[2].replacen(",\"time\"", ", \"time\"", 1);
    set_lines(d, &l);
    verify_fails_with(d, "entry 2 is not in canonical form");
}

#[test]
fn a_removed_entry_is_named() {
    let t = plane_with_history();
    let d = t.path();
    let mut l = lines(d);
    l.remove(1);
    set_lines(d, &l);
    verify_fails_with(d, "entry 2 follows entry 0: entry 1 was removed");
}

#[test]
fn reordered_entries_are_named() {
    let t = plane_with_history();
    let d = t.path();
    let mut l = lines(d);
    l.swap(1, 2);
    set_lines(d, &l);
    let out = verify_fails_with(d, "entry 2 comes before entry 1: the entries were reordered");
    assert!(out.contains("broken at entry 1"), "{out}");
}

#[test]
fn an_inserted_entry_is_named() {
    let t = plane_with_history();
    let d = t.path();
    let mut l = lines(d);
    let copy = l[1].clone();
    l.insert(2, copy);
    set_lines(d, &l);
    verify_fails_with(d, "entry 1 appears again at position 2: an entry was inserted");
}

#[test]
fn a_truncated_ledger_is_found_and_writers_refuse() {
    let t = plane_with_history();
    let d = t.path();
    let mut l = lines(d);
    l.truncate(2);
    set_lines(d, &l);
    verify_fails_with(d, "entries were removed from its end");
    write(d, "c.txt", "c\n");
    let err = cplane(d).arg("snapshot").assert().code(3).get_output().stderr.clone();
    assert!(
        String::from_utf8_lossy(&err).contains("entries were removed"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    // With the tree deleted too, HEAD's snapshot still says how long the
    // ledger was: the writer refuses rather than record over the gap.
    fs::remove_dir_all(d.join(".cp/planes/main/ledger.tree")).unwrap();
    let err = cplane(d).arg("snapshot").assert().code(3).get_output().stderr.clone();
    assert!(
        String::from_utf8_lossy(&err).contains("HEAD's snapshot was sealed when it had"),
        "{}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn a_command_interrupted_before_its_entry_is_recorded_by_the_next() {
    let t = plane_with_history();
    let d = t.path();
    let keep_ledger = fs::read(ledger_path(d)).unwrap();
    let tree = d.join(".cp/planes/main/ledger.tree");
    let keep_tree: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&tree)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    write(d, "c.txt", "c\n");
    stdout(d, &["snapshot", "-m", "lost"]);
    // As if the process died after HEAD moved, before the entry was written.
    fs::write(ledger_path(d), &keep_ledger).unwrap();
    for (p, b) in &keep_tree {
        fs::write(p, b).unwrap();
    }
    let out = verify_fails_with(d, "a command was interrupted before writing its entry");
    assert!(out.contains("4 entries"), "{out}");
    let v = stdout_code(d, &["verify"], 1);
    assert!(v.contains("CP403"), "{v}");
    write(d, "d.txt", "d\n");
    let o = cplane(d).args(["snapshot"]).assert().success().get_output().clone();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("recorded 1 entry late in the ledger of plane main"),
        "{err}"
    );
    let es = entries(d);
    assert_eq!(es.len(), 6);
    assert_eq!(es[4].actor, "cplane");
    assert!(es[4].message.contains("recorded late"), "{:?}", es[4]);
    assert_eq!(es[5].actor, es[0].actor);
    stdout(d, &["ledger", "verify"]);
}

#[test]
fn a_torn_last_line_is_noted_and_cut_by_the_next_writer() {
    let t = plane_with_history();
    let d = t.path();
    let mut f = fs::OpenOptions::new().append(true).open(ledger_path(d)).unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":4,\"time\":\"2026").unwrap();
    drop(f);
    let o = cplane(d)
        .args(["ledger", "verify"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&o.stderr).contains("incomplete line"));
    write(d, "c.txt", "c\n");
    stdout(d, &["snapshot"]);
    assert_eq!(entries(d).len(), 5);
    stdout(d, &["ledger", "verify"]);
}

#[test]
fn a_deleted_ledger_is_refused_not_rebuilt_from_history() {
    let t = plane_with_history();
    let d = t.path();
    fs::remove_file(ledger_path(d)).unwrap();
    fs::remove_dir_all(d.join(".cp/planes/main/ledger.tree")).unwrap();
    write(d, "c.txt", "c\n");
    // HEAD was sealed with a ledger of 3 entries: a missing one is damage
    // (only a store whose snapshots predate ledgers gets its history
    // recorded from them, see tests/upgrade.rs).
    let err = cplane(d).arg("snapshot").assert().code(3).get_output().stderr.clone();
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("the ledger deleted"), "{err}");
    assert!(!ledger_path(d).exists());
    verify_fails_with(d, "entries were removed from its end");
}

#[test]
fn proofs_check_offline_and_a_rewritten_history_is_caught() {
    let t = plane_with_history();
    let d = t.path();
    let old = stdout(d, &["ledger", "head"]).trim().to_string();
    assert!(old.starts_with("4:"), "{old}");
    write(d, "c.txt", "c\n");
    stdout(d, &["snapshot"]);
    stdout(d, &["snapshot", "--allow-unchanged"]);
    // Consistency: today's ledger extends the head kept earlier.
    let p = stdout(d, &["ledger", "prove", "--since", &old]);
    let proofs = tempfile::tempdir().unwrap();
    let pf = proofs.path().join("consistency.json");
    fs::write(&pf, &p).unwrap();
    let ok = stdout(d, &["ledger", "check-proof", pf.to_str().unwrap()]);
    assert!(ok.starts_with("ok: the 6-entry ledger"), "{ok}");
    let mut v: Value = serde_json::from_str(&p).unwrap();
    v["old_root"] = Value::String("00".repeat(32));
    fs::write(&pf, v.to_string()).unwrap();
    stdout_code(d, &["ledger", "check-proof", pf.to_str().unwrap()], 1);
    // Inclusion of every entry, checked from another directory (no store needed).
    let elsewhere = tempfile::tempdir().unwrap();
    for n in 0..6 {
        let p = stdout(d, &["ledger", "prove", &n.to_string(), "--entry"]);
        let f = elsewhere.path().join("p.json");
        fs::write(&f, &p).unwrap();
        let ok = stdout(elsewhere.path(), &["ledger", "check-proof", "p.json"]);
        assert!(ok.starts_with(&format!("ok: entry {n} ")), "{ok}");
        let mut v: Value = serde_json::from_str(&p).unwrap();
        v["entry"]["message"] = Value::String("forged".into());
        fs::write(&f, v.to_string()).unwrap();
        stdout_code(elsewhere.path(), &["ledger", "check-proof", "p.json"], 1);
    }
    // Without the offsets file (derived), entries are still found, and it comes back.
    let offsets = d.join(".cp/planes/main/ledger.tree/offsets");
    fs::remove_file(&offsets).unwrap();
    let p: Value = serde_json::from_str(&stdout(d, &["ledger", "prove", "3", "--entry"])).unwrap();
    assert_eq!(p["entry"]["seq"], 3);
    assert_eq!(fs::metadata(&offsets).unwrap().len(), 6 * 8);
    write(d, "e.txt", "e\n");
    stdout(d, &["snapshot"]);
    let p: Value = serde_json::from_str(&stdout(d, &["ledger", "prove", "6", "--entry"])).unwrap();
    assert_eq!(p["entry"]["seq"], 6);
    // A consistent forgery: entry 1 edited and every hash after it redone.
    // The chain checks out, but neither the ledger head HEAD's snapshot
    // recorded nor the head kept earlier does.
    let mut es = entries(d);
    es[1].message = "rewritten".into();
    let mut prev = es[0].hash.clone();
    for e in es.iter_mut().skip(1) {
        e.prev = prev.clone();
        e.hash = cplane::id::to_hex(&e.compute_hash().unwrap());
        prev = e.hash.clone();
    }
    set_lines(d, &es.iter().map(Entry::to_line).collect::<Vec<_>>());
    // Under the old tree, the rewrite is named at its first entry, and no
    // head or proof is served from a tree that does not end with the ledger.
    verify_fails_with(d, "entry 1 is not the entry the Merkle tree");
    cplane(d).args(["ledger", "head"]).assert().code(3);
    cplane(d).args(["ledger", "prove", "--since", &old]).assert().code(3);
    // Without it, HEAD's snapshot still names the head it was sealed with.
    fs::remove_dir_all(d.join(".cp/planes/main/ledger.tree")).unwrap();
    verify_fails_with(
        d,
        "not the ones HEAD's snapshot recorded (Merkle root differs): the ledger was rewritten",
    );
    let o = cplane(d)
        .args(["ledger", "prove", "--since", &old])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the ledger was rewritten"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A reader who may not write the store (an auditor) reads, proves and
/// verifies the ledger from the entries, and never gets "store damage".
#[test]
fn a_reader_without_write_access_can_head_prove_and_verify() {
    let t = plane_with_history();
    let d = t.path();
    let head = stdout(d, &["ledger", "head"]);
    std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(d)
        .status()
        .unwrap();
    let run = |args: &[&str]| {
        let o = common::cplane_as(65534, d).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(run(&["ledger", "head"]), head);
    let p = run(&["ledger", "prove", "2"]);
    assert!(p.contains("\"inclusion\""), "{p}");
    let v = run(&["ledger", "verify"]);
    assert!(v.contains("4 entries, chain and Merkle tree intact"), "{v}");
}

/// A command that changes the plane without moving HEAD writes its intent
/// first: if it dies before its entry, the next command records it; one
/// that changes nothing leaves no intent behind.
#[test]
fn an_interrupted_change_that_does_not_move_head_is_recorded_by_the_next_command() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    stdout(d, &["init", "--governed"]);
    stdout(d, &["compile"]);
    let pending = d.join(".cp/planes/main/ledger.pending");
    assert!(!pending.exists(), "an unchanged compile leaves no intent");
    write(d, "specs/SPEC-000/notes.md", "# notes\n");
    stdout(d, &["own", "specs/SPEC-000/notes.md", "--by", "SPEC-000"]);
    assert!(!pending.exists());
    // As if an `own` had died after its intent, before its entry.
    fs::write(
        &pending,
        r#"{"op":"own","message":"own specs/SPEC-000/x.md --by SPEC-000","actor":"user:alice"}"#,
    )
    .unwrap();
    stdout(d, &["snapshot"]);
    assert!(!pending.exists());
    let es = entries(d);
    let late = &es[es.len() - 2];
    assert_eq!(late.op, "own");
    assert!(
        late.message.contains("by user:alice") && late.message.contains("recorded late"),
        "{late:?}"
    );
    assert_eq!(es.last().unwrap().op, "snapshot");
    stdout(d, &["ledger", "verify"]);
}

/// Review 7: a command refused before it changed anything leaves no intent
/// behind (the next command records nothing for it).
#[test]
fn a_refused_change_leaves_no_intent() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    stdout(d, &["init", "--governed"]);
    let o = cplane(d)
        .args(["own", "nothing-here.md", "--by", "SPEC-000"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(!d.join(".cp/planes/main/ledger.pending").exists());
    let n = entries(d).len();
    stdout(d, &["snapshot", "--allow-unchanged"]);
    assert_eq!(entries(d).len(), n + 1);
}

/// A line that is not an entry is named by `cplane ledger` (never a
/// silently shorter list); `explain` says so and still explains the file.
#[test]
fn a_garbled_line_is_named_not_skipped() {
    let t = plane_with_history();
    let d = t.path();
    let mut l = lines(d);
    l[1] = "not json".into();
    set_lines(d, &l);
    let o = cplane(d).arg("ledger").output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2 is not a ledger entry"));
    let o = cplane(d).args(["explain", "a.txt"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2 is not a ledger entry"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("a.txt"));
    verify_fails_with(d, "is not a ledger entry");
}
