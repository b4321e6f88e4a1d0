//! Exclusions (issue 11): `.cpignore` files, `--exclude` on `init` and
//! `plane add`, `check-ignore`, and checkouts that leave excluded paths and
//! special files alone. The real binary, plus a property test of the scan
//! against a naive filter built on the `ignore` crate's own file reading.

mod common;

use common::{cplane, stdout, stdout_code, write};
use cplane::diff::{TreeSource, flatten};
use cplane::object::EntryKind;
use cplane::store::Store;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Every file and symlink path HEAD of plane `main` records.
fn head_files(root: &Path) -> BTreeSet<String> {
    let store = Store::open(root).unwrap();
    let head = store.head("main").unwrap().unwrap();
    let snap = store.read_snapshot(&head).unwrap();
    flatten(&TreeSource::store(&store), &snap.root)
        .unwrap()
        .into_iter()
        .filter(|(_, side)| side.kind != EntryKind::Dir)
        .map(|(p, _)| p.display())
        .collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// A tree with nested `.cpignore` files: negation, a directory pattern, an anchored one.
fn nested_tree(d: &Path) {
    write(d, ".cpignore", "# logs are noise\n*.log\n/top.tmp\n");
    write(d, "a.txt", "a");
    write(d, "debug.log", "log");
    write(d, "top.tmp", "anchored at the root");
    write(d, "sub/top.tmp", "not anchored here");
    write(d, "sub/.cpignore", "!keep.log\nbuild/\n");
    write(d, "sub/keep.log", "kept");
    write(d, "sub/x.log", "excluded by the root file");
    write(d, "sub/build/o.o", "excluded directory");
    write(d, "sub/deep/build", "a file named build is not a directory");
}

#[test]
fn nested_cpignore_with_negation_directory_and_anchored_patterns() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    nested_tree(d);
    cplane(d).arg("init").assert().success();
    assert_eq!(
        head_files(d),
        set(&[
            ".cpignore",
            "a.txt",
            "sub/.cpignore",
            "sub/deep/build",
            "sub/keep.log",
            "sub/top.tmp"
        ])
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(d, &["status", "--json"])).unwrap();
    assert_eq!(v["clean"], true);
    // debug.log, top.tmp, sub/x.log, sub/build (once, as a directory).
    assert_eq!(v["excluded"], 4);
    let text = stdout(d, &["verify", "--stats"]);
    assert!(text.contains(", 4 excluded,"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&stdout(d, &["verify", "--json"])).unwrap();
    assert_eq!(v["stats"]["excluded"], 4);
}

#[test]
fn exclude_on_init_is_recorded_and_honoured_by_later_commands() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a");
    write(d, "cache/blob", "x");
    write(d, "b.tmp", "t");
    cplane(d)
        .args(["init", "--exclude", "*.tmp", "--exclude", "cache/"])
        .assert()
        .success();
    let config: serde_json::Value = serde_json::from_slice(&fs::read(d.join(".cp/config.json")).unwrap()).unwrap();
    assert_eq!(config["planes"][0]["exclude"], serde_json::json!(["*.tmp", "cache/"]));
    assert_eq!(head_files(d), set(&["a.txt"]));
    // Later commands: new and edited excluded paths are not drift and are not sealed.
    write(d, "new.tmp", "n");
    write(d, "b.tmp", "edited");
    write(d, "cache/more", "m");
    let text = stdout(d, &["status"]);
    assert!(text.contains("clean: 1 file matches HEAD"), "{text}");
    assert!(text.contains("note: 3 paths excluded"), "{text}");
    cplane(d).args(["snapshot", "-m", "x"]).assert().success();
    assert_eq!(head_files(d), set(&["a.txt"]));
    // A bad pattern is refused before any store exists.
    let t2 = tempfile::tempdir().unwrap();
    cplane(t2.path())
        .args(["init", "--exclude", "[z-a"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--exclude \"[z-a\""));
    assert!(!t2.path().join(".cp").exists());
}

#[test]
fn plane_add_records_its_own_exclusions() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a");
    write(d, "docs/readme.md", "r");
    write(d, "docs/draft.bak", "b");
    cplane(d).arg("init").assert().success();
    cplane(d)
        .args(["plane", "add", "docs", "docs", "--exclude", "*.bak"])
        .assert()
        .success();
    let config: serde_json::Value = serde_json::from_slice(&fs::read(d.join(".cp/config.json")).unwrap()).unwrap();
    assert_eq!(
        config["planes"][0].get("exclude"),
        None,
        "main has none: the field is left out"
    );
    assert_eq!(config["planes"][1]["exclude"], serde_json::json!(["*.bak"]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&d.join("docs"), &["status", "--json"])).unwrap();
    assert_eq!((v["clean"].clone(), v["excluded"].clone()), (true.into(), 1.into()));
    let out = stdout(&d.join("docs"), &["check-ignore", "draft.bak"]);
    assert_eq!(out, "--exclude:1:*.bak\tdraft.bak\n");
}

#[test]
fn excluded_file_edited_keeps_status_clean_and_rollback_leaves_it() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, ".cpignore", "*.log\nbuild/\n");
    write(d, "a.txt", "good");
    write(d, "app.log", "log v1");
    write(d, "build/out.o", "object v1");
    cplane(d).arg("init").assert().success();
    write(d, "app.log", "log v2");
    write(d, "build/out.o", "object v2");
    let text = stdout(d, &["status"]);
    assert!(text.contains("clean: 2 files match HEAD"), "{text}");
    write(d, "a.txt", "tampered");
    stdout_code(d, &["status"], 1);
    cplane(d).args(["rollback", "HEAD"]).assert().success();
    assert_eq!(fs::read_to_string(d.join("a.txt")).unwrap(), "good");
    assert_eq!(fs::read_to_string(d.join("app.log")).unwrap(), "log v2");
    assert_eq!(fs::read_to_string(d.join("build/out.o")).unwrap(), "object v2");
    stdout(d, &["status"]);
}

#[test]
fn a_path_excluded_after_it_was_sealed_is_not_compared_nor_overwritten() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "good");
    write(d, "app.log", "sealed log");
    write(d, "gen/x.c", "sealed generated");
    cplane(d).arg("init").assert().success();
    // Excluded from now on (the .cpignore is itself a new, tracked file).
    write(d, ".cpignore", "*.log\ngen/\n");
    write(d, "app.log", "live log");
    fs::remove_file(d.join("gen/x.c")).unwrap();
    write(d, "gen/y.c", "live generated");
    let v: serde_json::Value = serde_json::from_str(&stdout_code(d, &["status", "--json"], 1)).unwrap();
    let changes: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["status"].as_str().unwrap_or("?"),
                c["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(changes.len(), 1, "only the new .cpignore: {changes:?}");
    assert!(changes[0].ends_with(".cpignore"), "{changes:?}");
    // Rolling back to the state that had them leaves the excluded paths alone.
    write(d, "a.txt", "tampered");
    let out = stdout(d, &["rollback", "HEAD"]);
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(fs::read_to_string(d.join("a.txt")).unwrap(), "good");
    assert_eq!(fs::read_to_string(d.join("app.log")).unwrap(), "live log");
    assert!(
        !d.join("gen/x.c").exists(),
        "rollback must not descend into an excluded directory"
    );
    assert_eq!(fs::read_to_string(d.join("gen/y.c")).unwrap(), "live generated");
    // HEAD's .cpignore is gone again (HEAD did not have it).
    assert!(!d.join(".cpignore").exists());
}

#[test]
fn restore_refuses_an_excluded_path_and_leaves_excluded_entries_of_a_directory() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "dir/a.txt", "good");
    write(d, "dir/x.log", "sealed");
    cplane(d).arg("init").assert().success();
    write(d, "dir/.cpignore", "*.log\n");
    write(d, "dir/x.log", "live");
    write(d, "dir/a.txt", "tampered");
    cplane(d)
        .args(["restore", "HEAD", "dir/x.log"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "dir/x.log is excluded by dir/.cpignore:1:*.log",
        ));
    cplane(d).args(["restore", "HEAD", "dir"]).assert().success();
    assert_eq!(fs::read_to_string(d.join("dir/a.txt")).unwrap(), "good");
    assert_eq!(fs::read_to_string(d.join("dir/x.log")).unwrap(), "live");
    // The .cpignore HEAD lacks was removed by the restore of the directory.
    assert!(!d.join("dir/.cpignore").exists());
    // No intent is left behind by the refusal: the ledger has no late entry.
    let ledger = stdout(d, &["ledger"]);
    assert!(!ledger.contains("recorded late"), "{ledger}");
}

#[test]
fn rollback_with_a_socket_restores_a_tampered_file_and_names_the_socket() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "good");
    write(d, "run/b.txt", "good too");
    cplane(d).arg("init").assert().success();
    let _listener = std::os::unix::net::UnixListener::bind(d.join("run/app.sock")).unwrap();
    write(d, "a.txt", "tampered");
    // snapshot still refuses, by name, and says how to exclude it.
    cplane(d)
        .args(["snapshot"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("run/app.sock"))
        .stderr(predicates::str::contains("add them to .cpignore, or pass --exclude"));
    let out = cplane(d)
        .args(["rollback", "HEAD"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("CP106 run/app.sock: is a socket"), "{out}");
    assert!(out.contains("add it to .cpignore, or pass --exclude"), "{out}");
    assert_eq!(fs::read_to_string(d.join("a.txt")).unwrap(), "good");
    assert!(
        fs::symlink_metadata(d.join("run/app.sock"))
            .unwrap()
            .file_type()
            .is_socket(),
        "the socket stays"
    );
    // restore too: the file is restored, the socket reported, exit 1.
    write(d, "run/b.txt", "tampered");
    let v: serde_json::Value = serde_json::from_slice(
        &cplane(d)
            .args(["restore", "--json", "HEAD", "run"])
            .assert()
            .code(1)
            .get_output()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["clean"], false);
    assert_eq!(v["special"][0]["path"], "run/app.sock");
    assert_eq!(v["special"][0]["code"], "CP106");
    assert_eq!(fs::read_to_string(d.join("run/b.txt")).unwrap(), "good too");
    // Once excluded, the socket is no finding at all.
    write(d, ".cpignore", "*.sock\n");
    cplane(d).args(["snapshot"]).assert().success();
    stdout(d, &["status"]);
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn check_ignore_prints_source_line_pattern_and_path() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    nested_tree(d);
    cplane(d).args(["init", "--exclude", "*.bak"]).assert().success();
    let out = stdout(
        d,
        &[
            "check-ignore",
            "debug.log",
            "sub/keep.log",
            "sub/build/o.o",
            "top.tmp",
            "sub/top.tmp",
            "old.bak",
            "a.txt",
        ],
    );
    assert_eq!(
        out,
        ".cpignore:2:*.log\tdebug.log\n\
         sub/.cpignore:1:!keep.log\tsub/keep.log\n\
         sub/.cpignore:2:build/\tsub/build/o.o\n\
         .cpignore:3:/top.tmp\ttop.tmp\n\
         --exclude:1:*.bak\told.bak\n"
    );
    // Exit 1 when no path is excluded (a re-included one is printed, but is not excluded).
    let out = stdout_code(d, &["check-ignore", "a.txt", "sub/keep.log"], 1);
    assert_eq!(out, "sub/.cpignore:1:!keep.log\tsub/keep.log\n");
    // From a subdirectory, `./` paths are relative to it.
    let out = stdout(&d.join("sub"), &["check-ignore", "./x.log"]);
    assert_eq!(out, ".cpignore:2:*.log\tsub/x.log\n");
    let v: serde_json::Value =
        serde_json::from_str(&stdout(d, &["check-ignore", "--json", "sub/build/o.o", "a.txt"])).unwrap();
    assert_eq!(
        v["paths"][0],
        serde_json::json!({"path": "sub/build/o.o", "excluded": true, "source": "sub/.cpignore",
                           "line": 2, "pattern": "build/", "matched": "sub/build"})
    );
    assert_eq!(v["paths"][1]["excluded"], false);
    assert_eq!(v["paths"][1]["source"], serde_json::Value::Null);
}

#[test]
fn a_bad_cpignore_line_is_a_finding_that_refuses_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a");
    cplane(d).arg("init").assert().success();
    write(d, "sub/.cpignore", "ok.log\n[z-a\n");
    let out = stdout_code(d, &["status"], 1);
    assert!(out.contains("sub/.cpignore  CP113 line 2"), "{out}");
    cplane(d)
        .args(["snapshot"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("CP113"));
    cplane(d)
        .args(["check-ignore", "sub/x"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("line 2"));
}

// ---- property: the scan equals a naive filter over a full listing ----

const PATTERNS: &[&str] = &[
    "*.log",
    "!keep.log",
    "b/",
    "/a",
    "a/*.txt",
    "!*.txt",
    "c",
    "**/d/*.log",
    "!b/",
    "d",
    "*.txt",
    "/b/c/",
    "!c",
];
const DIRS: &[&str] = &["", "a", "b", "a/b", "b/c", "c/d", "a/d"];
const NAMES: &[&str] = &["x.log", "keep.log", "y.txt", "c", "z"];

/// The naive decision: a path is excluded when it, or a directory above it,
/// is ignored by the deepest `.cpignore` (read by `ignore`'s own
/// `Gitignore::new`, matched with absolute paths) that has a say, else by
/// the plane's patterns.
fn naive_excluded(
    root: &Path,
    files: &[String],
    global: &ignore::gitignore::Gitignore,
    rel: &str,
    is_dir: bool,
) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    for i in 1..=parts.len() {
        let q = parts[..i].join("/");
        let q_is_dir = i < parts.len() || is_dir;
        let mut verdict = None;
        for j in (0..i).rev() {
            let dir = parts[..j].join("/");
            let file = if dir.is_empty() {
                ".cpignore".to_string()
            } else {
                format!("{dir}/.cpignore")
            };
            if !files.contains(&file) {
                continue;
            }
            let (gi, _) = ignore::gitignore::Gitignore::new(root.join(&file));
            match gi.matched(root.join(&q), q_is_dir) {
                ignore::Match::None => continue,
                m => {
                    verdict = Some(m.is_ignore());
                    break;
                }
            }
        }
        let verdict = verdict.or(match global.matched(&q, q_is_dir) {
            ignore::Match::None => None,
            m => Some(m.is_ignore()),
        });
        if verdict == Some(true) {
            return true;
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_scan_equals_a_naive_filter(
        files in proptest::collection::btree_set((0..DIRS.len(), 0..NAMES.len()), 1..12),
        ignores in proptest::collection::vec(
            (0..DIRS.len(), proptest::collection::vec(0..PATTERNS.len(), 1..4)), 0..3),
        global in proptest::collection::vec(0..PATTERNS.len(), 0..2),
    ) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let mut all: Vec<String> = Vec::new();
        for (d, n) in &files {
            let p = if DIRS[*d].is_empty() { NAMES[*n].to_string() } else { format!("{}/{}", DIRS[*d], NAMES[*n]) };
            // A name that is a directory elsewhere in the set cannot be a file too.
            if all.iter().any(|q| q.starts_with(&format!("{p}/")) || p.starts_with(&format!("{q}/"))) {
                continue;
            }
            write(root, &p, "x");
            all.push(p);
        }
        let mut cpignores = Vec::new();
        for (d, pats) in &ignores {
            let file = if DIRS[*d].is_empty() { ".cpignore".to_string() } else { format!("{}/.cpignore", DIRS[*d]) };
            if all.iter().any(|q| file.starts_with(&format!("{q}/"))) || cpignores.contains(&file) {
                continue;
            }
            let text: String = pats.iter().map(|i| format!("{}\n", PATTERNS[*i])).collect();
            write(root, &file, &text);
            cpignores.push(file.clone());
            all.push(file);
        }
        let global: Vec<String> = global.iter().map(|i| PATTERNS[*i].to_string()).collect();
        let mut gb = ignore::gitignore::GitignoreBuilder::new("");
        for g in &global {
            gb.add_line(None, g).unwrap();
        }
        let global_gi = gb.build().unwrap();

        let store = Store::init(root).unwrap();
        let mut config = store.config().clone();
        config.planes[0].exclude = global.clone();
        let mut store = store;
        store.save_config(config).unwrap();
        let plane = store.plane("main").unwrap();
        let scope = cplane::scope::Scope::open(&plane).unwrap();
        let r = cplane::scan::scan(&scope, cplane::scan::ScanOptions {
            cache: None,
            writer: None,
            record: cplane::scan::Record::Nothing,
            ctl: cplane::Control::new(&cplane::progress::NoProgress, &std::sync::atomic::AtomicBool::new(false)),
            content: None,
        }).unwrap();
        prop_assert!(r.findings.is_empty());
        let src = TreeSource::with_overlay(&store, &r.trees);
        let got: BTreeSet<String> = flatten(&src, &r.root).unwrap().into_iter()
            .filter(|(_, s)| s.kind != EntryKind::Dir)
            .map(|(p, _)| p.display())
            .collect();
        let want: BTreeSet<String> = all.iter()
            .filter(|p| !naive_excluded(root, &cpignores, &global_gi, p, false))
            .cloned()
            .collect();
        prop_assert_eq!(got, want);
    }
}
