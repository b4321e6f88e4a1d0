//! Issue 11, "reading and comparing": exact renames and copies in `diff`
//! and `status` (`R`/`C`, `--no-renames`), through the real binary, with
//! exact output; and the property that pairing loses nothing: the
//! rename-aware list expanded back (R → D + A, C → A) is the plain diff.

mod common;
use common::{cplane, stdout_code, write};

use std::fs;
use std::path::Path;

/// `cplane ARGS` in `dir` must exit `code`; its stdout.
fn out(dir: &Path, args: &[&str], code: i32) -> String {
    stdout_code(dir, args, code)
}

/// Status output without its first line (`plane main at NAME (ID)`), which
/// names a checkpoint by time.
fn status_body(dir: &Path, args: &[&str]) -> String {
    let all = out(dir, &[&["status"], args].concat(), 1);
    all.split_once('\n').expect("a header line").1.to_string()
}

/// A plane with `bison/` (61 files in three directories, two of them
/// empty and identical) and a few loose files, sealed as `base`.
fn bison_plane() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in 0..59 {
        write(
            d.path(),
            &format!("bison/{}/f{i:02}.c", ["lib", "src", "doc"][i % 3]),
            &format!("int f{i};\n"),
        );
    }
    write(d.path(), "bison/lib/empty", "");
    write(d.path(), "bison/src/empty", "");
    write(d.path(), "conf", "one\n");
    write(d.path(), "notes", "n\n");
    cplane(d.path()).arg("init").assert().success();
    cplane(d.path())
        .args(["snapshot", "--name", "base", "--allow-unchanged"])
        .assert()
        .success();
    d
}

#[test]
fn a_renamed_directory_is_one_rename_per_file() {
    let d = bison_plane();
    fs::rename(d.path().join("bison"), d.path().join("bison-renamed")).unwrap();
    let body = status_body(d.path(), &[]);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 62, "61 R lines and a summary:\n{body}");
    assert!(lines[..61].iter().all(|l| l.starts_with("R  bison/")), "{body}");
    assert_eq!(lines[0], "R  bison/doc/f02.c -> bison-renamed/doc/f02.c");
    // Identical empty files pair by their paths, not by chance.
    assert!(
        lines.contains(&"R  bison/lib/empty -> bison-renamed/lib/empty"),
        "{body}"
    );
    assert!(
        lines.contains(&"R  bison/src/empty -> bison-renamed/src/empty"),
        "{body}"
    );
    assert_eq!(lines[61], "61 changes: 61 renamed");

    // The same from diff, against HEAD and between two snapshots.
    let wt = out(d.path(), &["diff", "base", "--name-status"], 1);
    assert_eq!(wt.lines().count(), 61);
    assert_eq!(
        wt.lines().next().unwrap(),
        "R100\tbison/doc/f02.c\tbison-renamed/doc/f02.c"
    );
    cplane(d.path())
        .args(["snapshot", "--name", "moved"])
        .assert()
        .success();
    assert_eq!(out(d.path(), &["diff", "base", "moved", "--name-status"], 1), wt);

    // JSON: status R, change renamed, path the new path, from the old one.
    let v: serde_json::Value = serde_json::from_str(&out(d.path(), &["diff", "base", "moved", "--json"], 1)).unwrap();
    let first = &v["changes"][0];
    assert_eq!(first["status"], "R");
    assert_eq!(first["change"], "renamed");
    assert_eq!(first["path"], "bison-renamed/doc/f02.c");
    assert_eq!(first["from"], "bison/doc/f02.c");
    assert_eq!(first["old"]["id"], first["new"]["id"]);
    assert_eq!(v["changes"].as_array().unwrap().len(), 61);
}

#[test]
fn no_renames_reports_deletions_and_additions() {
    let d = bison_plane();
    fs::rename(d.path().join("bison"), d.path().join("bison-renamed")).unwrap();
    let body = status_body(d.path(), &["--no-renames"]);
    assert_eq!(body.lines().filter(|l| l.starts_with("D  bison/")).count(), 61);
    assert_eq!(body.lines().filter(|l| l.starts_with("A  bison-renamed/")).count(), 61);
    assert_eq!(body.lines().last().unwrap(), "122 changes: 61 added, 61 deleted");
    let ns = out(d.path(), &["diff", "HEAD", "--name-status", "--no-renames"], 1);
    assert_eq!(ns.lines().next().unwrap(), "D\tbison/doc/f02.c");
    assert_eq!(ns.lines().count(), 122);
    // Plain JSON entries have no `from` field.
    let v: serde_json::Value = serde_json::from_str(&out(d.path(), &["status", "--no-renames", "--json"], 1)).unwrap();
    assert!(v["changes"].as_array().unwrap().iter().all(|c| c.get("from").is_none()));
}

#[test]
fn copies_of_changed_files_and_renames_with_a_mode_change() {
    let d = bison_plane();
    // conf is edited after being copied: a copy of a changed path.
    fs::copy(d.path().join("conf"), d.path().join("conf.orig")).unwrap();
    write(d.path(), "conf", "two\n");
    // notes is renamed and made executable: still a rename.
    fs::rename(d.path().join("notes"), d.path().join("NOTES")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(d.path().join("NOTES"), fs::Permissions::from_mode(0o755)).unwrap();
    // A copy of a file nobody changed is only an addition (git's -C).
    fs::copy(d.path().join("bison/lib/f00.c"), d.path().join("f00.c")).unwrap();
    let body = status_body(d.path(), &[]);
    assert_eq!(
        body,
        "R  notes -> NOTES  (mode 0644 -> 0755)\n\
         M  conf\n\
         C  conf -> conf.orig\n\
         A  f00.c\n\
         4 changes: 1 modified, 1 added, 1 renamed, 1 copied\n"
    );
    assert_eq!(
        out(d.path(), &["diff", "base", "--name-status"], 1),
        "R100\tnotes\tNOTES\nM\tconf\nC100\tconf\tconf.orig\nA\tf00.c\n"
    );
    let v: serde_json::Value = serde_json::from_str(&out(d.path(), &["status", "--json"], 1)).unwrap();
    let copy = &v["changes"][2];
    assert_eq!(
        (copy["status"].as_str(), copy["change"].as_str()),
        (Some("C"), Some("copied"))
    );
    assert_eq!(
        (copy["path"].as_str(), copy["from"].as_str()),
        (Some("conf.orig"), Some("conf"))
    );
}

/// A plane with a ten-line text file, a binary file and a symlink, sealed.
fn text_plane() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let lines: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    write(d.path(), "doc/t.txt", &lines);
    fs::write(d.path().join("img.bin"), b"\x89PNG\0\x01\x02").unwrap();
    std::os::unix::fs::symlink("doc/t.txt", d.path().join("link")).unwrap();
    cplane(d.path()).arg("init").assert().success();
    d
}

#[test]
fn patch_shows_a_text_edit_as_one_hunk() {
    let d = text_plane();
    let edited: String = (1..=10)
        .map(|i| {
            if i == 5 {
                "line five\n".to_string()
            } else {
                format!("line {i}\n")
            }
        })
        .collect();
    write(d.path(), "doc/t.txt", &edited);
    let want_hunk = "--- a/doc/t.txt\n\
                     +++ b/doc/t.txt\n\
                     @@ -2,7 +2,7 @@\n \
                     line 2\n \
                     line 3\n \
                     line 4\n\
                     -line 5\n\
                     +line five\n \
                     line 6\n \
                     line 7\n \
                     line 8\n";
    // Against the working tree (bytes read from the plane) ...
    let p = out(d.path(), &["diff", "HEAD", "-p"], 1);
    assert!(p.starts_with("diff --git a/doc/t.txt b/doc/t.txt\nindex "), "{p}");
    assert!(p.ends_with(&format!(" 100644\n{want_hunk}")), "{p}");
    assert_eq!(p.lines().count(), 13, "{p}");
    // ... and between two snapshots (bytes from the store): the same.
    cplane(d.path())
        .args(["snapshot", "--name", "edited"])
        .assert()
        .success();
    assert_eq!(out(d.path(), &["diff", "HEAD~1", "edited", "--patch"], 1), p);
    // Nothing differs: nothing printed, exit 0.
    assert_eq!(out(d.path(), &["diff", "HEAD", "-p"], 0), "");
}

#[test]
fn patch_names_binary_files_and_diffs_symlink_targets() {
    let d = text_plane();
    fs::write(d.path().join("img.bin"), b"\x89PNG\0\x03").unwrap();
    fs::remove_file(d.path().join("link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", d.path().join("link")).unwrap();
    fs::rename(d.path().join("doc/t.txt"), d.path().join("doc/u.txt")).unwrap();
    let p = out(d.path(), &["diff", "HEAD", "-p"], 1);
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!(lines[0], "diff --git a/doc/t.txt b/doc/u.txt");
    assert_eq!(
        lines[1..4],
        ["similarity index 100%", "rename from doc/t.txt", "rename to doc/u.txt"]
    );
    assert_eq!(lines[4], "diff --git a/img.bin b/img.bin");
    assert!(lines[5].starts_with("index ") && lines[5].ends_with(" 100644"), "{p}");
    assert_eq!(lines[6], "Binary files a/img.bin and b/img.bin differ");
    assert_eq!(lines[7], "diff --git a/link b/link");
    assert!(lines[8].ends_with(" 120000"), "{p}");
    assert_eq!(
        lines[9..],
        [
            "--- a/link",
            "+++ b/link",
            "@@ -1 +1 @@",
            "-doc/t.txt",
            "\\ No newline at end of file",
            "+elsewhere",
            "\\ No newline at end of file",
        ]
    );
    // -p mixes with neither --name-status nor --json.
    cplane(d.path())
        .args(["diff", "HEAD", "-p", "--name-status"])
        .assert()
        .code(2);
    cplane(d.path()).args(["diff", "HEAD", "-p", "--json"]).assert().code(2);
}

#[test]
fn log_stat_counts_lines_per_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "src/main.c", "int main() {\n    return 0;\n}\n");
    fs::write(d.path().join("logo.png"), b"\x89PNG\0\x01").unwrap();
    write(d.path(), "README", "hello\n");
    cplane(d.path()).args(["init"]).assert().success();
    write(
        d.path(),
        "src/main.c",
        "int main() {\n    puts(\"hi\");\n    return 1;\n}\n",
    );
    fs::write(d.path().join("logo.png"), b"\x89PNG\0\x01\x02\x03").unwrap();
    fs::rename(d.path().join("README"), d.path().join("docs-README")).unwrap();
    cplane(d.path())
        .args(["snapshot", "--name", "second"])
        .assert()
        .success();
    cplane(d.path())
        .args(["snapshot", "--name", "third", "--allow-unchanged"])
        .assert()
        .success();

    let log = out(d.path(), &["log", "--stat"], 0);
    let blocks: Vec<&str> = log.lines().filter(|l| l.starts_with(' ')).collect();
    assert_eq!(
        blocks,
        [
            // third: nothing changed, nothing listed (as git shows an empty commit).
            // second: an edit, a binary change, a rename.
            " README => docs-README | 0",
            " logo.png              | Bin 6 -> 8 bytes",
            " src/main.c            | 3 ++-",
            " 3 files changed, 2 insertions(+), 1 deletion(-)",
            // the first checkpoint, against nothing.
            " README     | 1 +",
            " logo.png   | Bin 0 -> 6 bytes",
            " src/main.c | 3 +++",
            " 3 files changed, 4 insertions(+)",
        ],
        "{log}"
    );

    let v: serde_json::Value =
        serde_json::from_str(&out(d.path(), &["log", "--stat", "--json", "-n", "2"], 0)).unwrap();
    let second = &v[1]["stat"];
    assert_eq!(
        (second["insertions"].as_u64(), second["deletions"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(second["files"][0]["status"], "R");
    assert_eq!(second["files"][0]["from"], "README");
    assert_eq!(second["files"][1]["binary"], true);

    // The first checkpoint's record gone: the history ends at `second`,
    // which has no parent to count against and says so.
    let first = out(d.path(), &["log", "--json"], 0);
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let name = first[2]["checkpoint"].as_str().unwrap().to_string();
    cplane(d.path())
        .args(["checkpoints", "delete", &name])
        .assert()
        .success();
    let log = out(d.path(), &["log", "--stat"], 0);
    assert!(
        log.ends_with(" (parent pruned: no stat)\n… history before this was pruned\n"),
        "{log}"
    );
    let v: serde_json::Value = serde_json::from_str(&out(d.path(), &["log", "--stat", "--json"], 0)).unwrap();
    assert!(v[1]["stat"].is_null());
}

mod props {
    //! For random pairs of trees built from few names and few contents (so
    //! that equal ids on both sides are common), the rename-aware list
    //! expanded back (R → D + A, C → A) is exactly the plain diff, and every
    //! pair it makes is sound. (The plain diff itself is checked against a
    //! naive comparison of the two trees in `tests/props.rs`.)

    use cplane::Control;
    use cplane::diff::{Change, ChangeKind, TreeSource, diff_trees, tree_order};
    use cplane::object::EntryKind;
    use cplane::renames::{Status, detect};
    use cplane::snapshot::{SealOptions, seal};
    use cplane::store::Store;
    use cplane::store::lock::StoreLock;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashSet};
    use std::fs;
    use std::path::Path;

    /// What a path holds: a file (content number, executable) or a symlink (target number).
    #[derive(Debug, Clone, Copy)]
    enum Leaf {
        File(u8, bool),
        Link(u8),
    }

    fn tree() -> impl Strategy<Value = BTreeMap<String, Leaf>> {
        let path = proptest::collection::vec("[ab]", 0..3).prop_flat_map(|dirs| {
            "[xyz]".prop_map(move |name| {
                let mut p = dirs.clone();
                p.push(name);
                p.join("/")
            })
        });
        let leaf = prop_oneof![
            4 => (0u8..4, any::<bool>()).prop_map(|(c, x)| Leaf::File(c, x)),
            1 => (0u8..4).prop_map(Leaf::Link),
        ];
        proptest::collection::vec((path, leaf), 0..16).prop_map(|entries| {
            let mut m = BTreeMap::new();
            for (p, l) in entries {
                // Skip a path that would need a file as a directory, or the reverse.
                let clash = m
                    .keys()
                    .any(|k: &String| k.starts_with(&format!("{p}/")) || p.starts_with(&format!("{k}/")));
                if !clash {
                    m.insert(p, l);
                }
            }
            m
        })
    }

    fn lay(root: &Path, m: &BTreeMap<String, Leaf>) {
        use std::os::unix::fs::PermissionsExt;
        for entry in fs::read_dir(root).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != ".cp" {
                let p = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    fs::remove_dir_all(p).unwrap();
                } else {
                    fs::remove_file(p).unwrap();
                }
            }
        }
        for (p, l) in m {
            let full = root.join(p);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            match *l {
                Leaf::File(c, x) => {
                    fs::write(&full, format!("content {c}\n")).unwrap();
                    let mode = if x { 0o755 } else { 0o644 };
                    fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
                }
                // A target equal to a file's bytes: same blob id, another kind.
                Leaf::Link(c) => std::os::unix::fs::symlink(format!("content {c}\n"), &full).unwrap(),
            }
        }
    }

    fn sealed_root(store: &mut Store, name: &str) -> cplane::TreeId {
        let plane = store.plane("main").unwrap();
        let lock = StoreLock::acquire(store.dir()).unwrap();
        let opts = SealOptions {
            name: Some(name.into()),
            ..SealOptions::default()
        };
        seal(store, &lock, &plane, opts, Control::quiet())
            .unwrap()
            .snapshot
            .root
    }

    fn sorted(mut v: Vec<Change>) -> Vec<Change> {
        v.sort_by(|a, b| tree_order(&a.path, &b.path).then(a.kind.cmp(&b.kind)));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

        #[test]
        fn renames_expand_back_to_the_plain_diff(old in tree(), new in tree()) {
            let dir = tempfile::tempdir().unwrap();
            lay(dir.path(), &old);
            let mut store = Store::init(dir.path()).unwrap();
            let a = sealed_root(&mut store, "old");
            lay(dir.path(), &new);
            let b = sealed_root(&mut store, "new");
            let mut plain = diff_trees(&TreeSource::store(&store), &a, &b).unwrap();
            plain.retain(|c| c.is_reported());
            let entries = detect(plain.clone());

            let expanded: Vec<Change> = entries.iter().flat_map(|e| e.expand()).collect();
            prop_assert_eq!(sorted(expanded), sorted(plain.clone()));
            // Entries come in tree order of their paths.
            prop_assert!(entries.windows(2).all(|w| tree_order(&w[0].path, &w[1].path).is_le()));

            let changed: HashSet<&[u8]> = plain.iter().map(|c| c.path.as_bytes()).collect();
            let mut sources = HashSet::new();
            for e in &entries {
                let (Some(o), Some(n)) = (e.old, e.new) else { continue };
                match e.status {
                    Status::Renamed | Status::Copied => {
                        let from = e.from.as_ref().unwrap();
                        // Same bytes and kind, never a directory.
                        prop_assert_eq!((o.id, o.kind), (n.id, n.kind));
                        prop_assert!(o.kind != EntryKind::Dir);
                        // The destination is new; the source is a changed path.
                        prop_assert!(!old.contains_key(&e.path.display()));
                        prop_assert!(changed.contains(from.as_bytes()));
                        if e.status == Status::Renamed {
                            // A rename's source is gone, and used once.
                            prop_assert!(!new.contains_key(&from.display()));
                            prop_assert!(sources.insert(from.clone()), "{:?} renamed twice", from);
                        }
                    }
                    Status::Changed(_) => {}
                }
            }
            // Nothing pairable is left unpaired: no A whose id and kind a D has.
            let dels: HashSet<_> = entries.iter().filter(|e| e.status == Status::Changed(ChangeKind::Deleted))
                .filter_map(|e| e.old.filter(|s| s.kind != EntryKind::Dir).map(|s| (s.kind, s.id))).collect();
            for e in entries.iter().filter(|e| e.status == Status::Changed(ChangeKind::Added)) {
                if let Some(n) = e.new.filter(|s| s.kind != EntryKind::Dir) {
                    prop_assert!(!dels.contains(&(n.kind, n.id)), "{} left unpaired", e.path.display());
                }
            }
        }
    }
}
