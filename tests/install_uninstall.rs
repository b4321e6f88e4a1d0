//! `cplane uninstall` restores as few paths as it can: a directory that
//! holds nothing but the package's files is restored whole (to the empty
//! directories the target keeps), and a file beside the package's that
//! HEAD lacks stays where it is.

mod common;

use common::packages::{pack_with, setup};
use common::stdout;
use std::fs;

#[test]
fn uninstall_removes_the_package_directories_whole_and_keeps_a_file_beside_them() {
    let s = setup();
    let d = s.plane.path();
    let files = [
        ("specs/SPEC-000/u/a.md", "a\n", 0o644),
        ("specs/SPEC-000/u/sub/b.md", "b\n", 0o644),
        ("specs/SPEC-000/u/sub/deep/c.md", "c\n", 0o644),
        ("specs/SPEC-000/w/x.md", "x\n", 0o644),
    ];
    let pkg = pack_with(&s, "u", &files, &s.admin, &["--id", "PKG-U"]);
    stdout(d, &["install", pkg.to_str().unwrap()]);
    // Beside the package's files: a file HEAD lacks, owned by the spec.
    fs::write(d.join("specs/SPEC-000/u/notes.md"), "mine\n").unwrap();
    stdout(d, &["own", "specs/SPEC-000/u/notes.md", "--by", "SPEC-000"]);
    stdout(d, &["uninstall", "PKG-U"]);
    for (p, ..) in files {
        assert!(!d.join(p).exists(), "{p} is still there");
    }
    assert_eq!(
        fs::read_to_string(d.join("specs/SPEC-000/u/notes.md")).unwrap(),
        "mine\n"
    );
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}
