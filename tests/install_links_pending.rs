//! Hard links between package files and files of the plane, and commands
//! run while an interrupted install cannot be finished (its seal refused):
//! a review's reproducers, each of which failed once (an upgrade changing a
//! package file's mode changed the linked file outside the package too; a
//! snapshot, another install or an uninstall went on past the refused
//! install), and the cases that came out right.

mod common;

use common::packages::{Setup, install_paused_before_seal, install_pending, pack_with, run, setup};
use common::stdout;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Packs `files` (path, body, mode) under SPEC-000 with the admin key.
fn pack(s: &Setup, name: &str, files: &[(&str, &str, u32)], extra: &[&str]) -> PathBuf {
    pack_with(s, name, files, &s.admin, extra)
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn ino(p: &Path) -> u64 {
    fs::metadata(p).unwrap().ino()
}

fn status_clean(d: &Path) -> bool {
    let st: serde_json::Value = serde_json::from_str(&stdout(d, &["status", "--json"])).unwrap();
    st["clean"] == true
}

const X: &str = "specs/SPEC-000/l/x.md";
const Y: &str = "specs/SPEC-000/l/y.md";
const N: &str = "specs/SPEC-000/mine/n.md";

// ---------------------------------------------------------------- links

/// Two package files hard-linked and sealed; the upgrade changes only the
/// mode of one of them (same bytes): x leaves the link group and gets
/// 0755, y keeps 0644, and the install seals (verify and status clean).
#[test]
fn mode_only_change_of_one_linked_package_file() {
    let s = setup();
    let d = s.plane.path();
    let v1 = pack(
        &s,
        "m1",
        &[(X, "same\n", 0o644), (Y, "same\n", 0o644)],
        &["--id", "PKG-L", "--version", "1.0.0"],
    );
    let v2 = pack(
        &s,
        "m2",
        &[(X, "same\n", 0o755), (Y, "same\n", 0o644)],
        &["--id", "PKG-L", "--version", "2.0.0"],
    );
    stdout(d, &["install", v1.to_str().unwrap()]);
    fs::remove_file(d.join(Y)).unwrap();
    fs::hard_link(d.join(X), d.join(Y)).unwrap();
    stdout(d, &["snapshot", "-m", "linked by hand"]);
    let (code, out) = run(d, &["install", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(mode(&d.join(X)), 0o755);
    assert_eq!(mode(&d.join(Y)), 0o644, "y took x's new mode through the shared inode");
    assert_ne!(ino(&d.join(X)), ino(&d.join(Y)), "x is still linked to y");
    assert!(!install_pending(d));
    assert!(status_clean(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// A package file hard-linked to a file of the plane that is not the
/// package's: an upgrade that changes only the package file's mode does
/// not change the other file's mode (the package file leaves the inode).
#[test]
fn mode_only_change_keeps_a_linked_non_package_files_mode() {
    let s = setup();
    let d = s.plane.path();
    let v1 = pack(
        &s,
        "n1",
        &[(X, "same\n", 0o644)],
        &["--id", "PKG-L", "--version", "1.0.0"],
    );
    let v2 = pack(
        &s,
        "n2",
        &[(X, "same\n", 0o755)],
        &["--id", "PKG-L", "--version", "2.0.0"],
    );
    stdout(d, &["install", v1.to_str().unwrap()]);
    fs::create_dir_all(d.join(N).parent().unwrap()).unwrap();
    fs::hard_link(d.join(X), d.join(N)).unwrap();
    stdout(d, &["own", N, "--by", "SPEC-000"]);
    stdout(d, &["snapshot", "-m", "linked by hand"]);
    let (code, out) = run(d, &["install", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(mode(&d.join(X)), 0o755);
    assert_eq!(
        mode(&d.join(N)),
        0o644,
        "the install changed the mode of a file that is not the package's"
    );
    assert!(status_clean(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// Bytes change of a package file linked to a non-package file: the other
/// file keeps its bytes; verify and status clean.
#[test]
fn bytes_change_of_a_package_file_linked_to_a_non_package_file() {
    let s = setup();
    let d = s.plane.path();
    let v1 = pack(
        &s,
        "b1",
        &[(X, "same\n", 0o644)],
        &["--id", "PKG-L", "--version", "1.0.0"],
    );
    let v2 = pack(
        &s,
        "b2",
        &[(X, "new\n", 0o644)],
        &["--id", "PKG-L", "--version", "2.0.0"],
    );
    stdout(d, &["install", v1.to_str().unwrap()]);
    fs::create_dir_all(d.join(N).parent().unwrap()).unwrap();
    fs::hard_link(d.join(X), d.join(N)).unwrap();
    stdout(d, &["own", N, "--by", "SPEC-000"]);
    stdout(d, &["snapshot", "-m", "linked by hand"]);
    let (code, out) = run(d, &["install", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(fs::read_to_string(d.join(X)).unwrap(), "new\n");
    assert_eq!(fs::read_to_string(d.join(N)).unwrap(), "same\n");
    assert_ne!(ino(&d.join(X)), ino(&d.join(N)));
    assert!(status_clean(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
    // and uninstall keeps n
    stdout(d, &["uninstall", "PKG-L"]);
    assert_eq!(fs::read_to_string(d.join(N)).unwrap(), "same\n");
    assert!(status_clean(d));
    stdout(d, &["verify"]);
}

/// Every member of a group changed to the same new bytes.
#[test]
fn all_members_to_the_same_new_bytes() {
    let s = setup();
    let d = s.plane.path();
    let v1 = pack(
        &s,
        "a1",
        &[(X, "same\n", 0o644), (Y, "same\n", 0o644)],
        &["--id", "PKG-L", "--version", "1.0.0"],
    );
    let v2 = pack(
        &s,
        "a2",
        &[(X, "new\n", 0o644), (Y, "new\n", 0o644)],
        &["--id", "PKG-L", "--version", "2.0.0"],
    );
    stdout(d, &["install", v1.to_str().unwrap()]);
    fs::remove_file(d.join(Y)).unwrap();
    fs::hard_link(d.join(X), d.join(Y)).unwrap();
    stdout(d, &["snapshot", "-m", "linked by hand"]);
    let (code, out) = run(d, &["install", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(fs::read_to_string(d.join(X)).unwrap(), "new\n");
    assert_eq!(fs::read_to_string(d.join(Y)).unwrap(), "new\n");
    assert!(status_clean(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// Uninstall of a package file linked to a non-package file, no upgrade.
#[test]
fn uninstall_of_a_file_linked_to_a_non_package_file() {
    let s = setup();
    let d = s.plane.path();
    let v1 = pack(
        &s,
        "u1",
        &[(X, "same\n", 0o644), (Y, "y\n", 0o644)],
        &["--id", "PKG-L", "--version", "1.0.0"],
    );
    stdout(d, &["install", v1.to_str().unwrap()]);
    fs::create_dir_all(d.join(N).parent().unwrap()).unwrap();
    fs::hard_link(d.join(X), d.join(N)).unwrap();
    stdout(d, &["own", N, "--by", "SPEC-000"]);
    stdout(d, &["snapshot", "-m", "linked by hand"]);
    let (code, out) = run(d, &["uninstall", "PKG-L"]);
    assert_eq!(code, 0, "{out}");
    assert!(!d.join(X).exists());
    assert_eq!(fs::read_to_string(d.join(N)).unwrap(), "same\n");
    assert!(status_clean(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// As root, an upgrade of a plane whose files a user owns (HEAD records
/// uid 1000): the target owns the package's files by root, so x leaves its
/// link group with an owner change only; the user's own file n (not the
/// package's) keeps 1000:1000, and the install seals.
#[test]
fn owner_only_change_keeps_a_linked_files_owner() {
    if common::skip_unless_root("owner_only_change_keeps_a_linked_files_owner") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    let other = "specs/SPEC-000/l/other.md";
    let v1 = pack(
        &s,
        "o1",
        &[(X, "same\n", 0o644), (other, "o1\n", 0o644)],
        &["--id", "PKG-L", "--version", "1.0.0"],
    );
    let v2 = pack(
        &s,
        "o2",
        &[(X, "same\n", 0o644), (other, "o2\n", 0o644)],
        &["--id", "PKG-L", "--version", "2.0.0"],
    );
    stdout(d, &["install", v1.to_str().unwrap()]);
    fs::create_dir_all(d.join(N).parent().unwrap()).unwrap();
    fs::hard_link(d.join(X), d.join(N)).unwrap();
    std::os::unix::fs::chown(d.join(N), Some(1000), Some(1000)).unwrap();
    stdout(d, &["own", N, "--by", "SPEC-000"]);
    stdout(d, &["snapshot", "-m", "linked and given to 1000"]);
    let (code, out) = run(d, &["install", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let n = fs::metadata(d.join(N)).unwrap();
    assert_eq!(
        (n.uid(), n.gid()),
        (1000, 1000),
        "the install chowned a file that is not the package's"
    );
    assert!(status_clean(d));
    stdout(d, &["ledger", "verify"]);
}

// ---------------------------------------------------- pending installs

const A: &str = "specs/SPEC-000/o/a.md";
const SAME: &str = "specs/SPEC-000/o/same.md";

fn two_versions(s: &Setup) -> (PathBuf, PathBuf) {
    let v1 = pack(
        s,
        "o1",
        &[(A, "a1\n", 0o644), (SAME, "same\n", 0o644)],
        &["--id", "PKG-O", "--version", "1.0.0"],
    );
    let v2 = pack(
        s,
        "o2",
        &[(A, "a2\n", 0o644), (SAME, "same\n", 0o644)],
        &["--id", "PKG-O", "--version", "2.0.0"],
    );
    (v1, v2)
}

/// v1 installed, v2's seal refused because SAME was chowned meanwhile:
/// the install is pending. Returns (v1, v2, original uid, gid).
fn refused_upgrade(s: &Setup) -> (PathBuf, PathBuf, u32, u32) {
    let d = s.plane.path();
    let (v1, v2) = two_versions(s);
    stdout(d, &["install", v1.to_str().unwrap()]);
    let m = fs::metadata(d.join(SAME)).unwrap();
    let out = install_paused_before_seal(d, &v2, || {
        std::os::unix::fs::chown(d.join(SAME), Some(4242), Some(4242)).unwrap();
    });
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(install_pending(d));
    (v1, v2, m.uid(), m.gid())
}

fn install_entries(d: &Path) -> Vec<String> {
    let es: Vec<serde_json::Value> = serde_json::from_str(&stdout(d, &["ledger", "--json"])).unwrap();
    es.iter()
        .map(|e| format!("{}: {}", e["op"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect()
}

fn head_registry(d: &Path) -> String {
    let (_, out) = run(d, &["cat", "HEAD:registries/packages_registry.csv"]);
    out
}

/// `snapshot` after the refused upgrade is refused while the install is
/// pending (it would seal the state the install's seal refused: SAME owned
/// by 4242, the v2 registry row); nothing is sealed, the install stays
/// pending.
#[test]
fn snapshot_is_refused_while_an_install_is_pending() {
    if common::skip_unless_root("snapshot_is_refused_while_an_install_is_pending") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    refused_upgrade(&s);
    let log = stdout(d, &["log"]);
    let (code, out) = run(d, &["snapshot", "-m", "meanwhile"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot be finished"), "{out}");
    assert!(out.contains("the install stays pending"), "{out}");
    assert!(install_pending(d));
    assert!(
        !head_registry(d).contains("PKG-O,2.0.0"),
        "snapshot sealed the refused install's state"
    );
    assert_eq!(stdout(d, &["log"]), log, "sealed anyway");
}

/// `uninstall PKG-O` after the refused upgrade is refused: v2 stays
/// pending (its files in place), and the ledger has no uninstall entry.
#[test]
fn uninstall_of_the_pending_package() {
    if common::skip_unless_root("uninstall_of_the_pending_package") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    refused_upgrade(&s);
    let (code, out) = run(d, &["uninstall", "PKG-O"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot be finished"), "{out}");
    assert!(out.contains("the install stays pending"), "{out}");
    assert!(install_pending(d));
    assert_eq!(fs::read_to_string(d.join(A)).unwrap(), "a2\n");
    let l = install_entries(d);
    assert!(!l.iter().any(|e| e.contains("uninstalled PKG-O")), "{l:#?}");
}

/// `install` of another package after the refused upgrade is refused:
/// install.pending keeps PKG-O's install, nothing of the other package is
/// written or registered, and SAME keeps the owner the seal refused.
#[test]
fn install_of_another_package_is_refused_while_one_is_pending() {
    if common::skip_unless_root("install_of_another_package_is_refused_while_one_is_pending") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    refused_upgrade(&s);
    let b = pack(
        &s,
        "b",
        &[("specs/SPEC-000/b/b.md", "b\n", 0o644)],
        &["--id", "PKG-B", "--version", "1.0.0"],
    );
    let note = fs::read_to_string(d.join(".cp/planes/main/install.pending")).unwrap();
    let (code, out) = run(d, &["install", b.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot be finished"), "{out}");
    assert!(out.contains("the install stays pending"), "{out}");
    assert!(install_pending(d));
    let note_after = fs::read_to_string(d.join(".cp/planes/main/install.pending")).unwrap();
    assert_eq!(note_after, note, "install B replaced PKG-O's pending note");
    assert!(!d.join("specs/SPEC-000/b/b.md").exists());
    assert!(!head_registry(d).contains("PKG-B,"), "{}", head_registry(d));
    assert_eq!(fs::metadata(d.join(SAME)).unwrap().uid(), 4242);
}

/// `rollback` to the v1 checkpoint after the refused upgrade.
#[test]
fn rollback_after_a_refused_pending_install() {
    if common::skip_unless_root("rollback_after_a_refused_pending_install") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    refused_upgrade(&s);
    let (code, out) = run(d, &["rollback", "HEAD"]);
    assert_eq!(code, 0, "{out}");
    let (code2, out2) = run(d, &["snapshot", "-m", "after"]);
    assert_eq!(code2, 0, "{out2}");
    assert_eq!(fs::read_to_string(d.join(A)).unwrap(), "a1\n");
    assert!(!install_pending(d));
    assert!(status_clean(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// `restore SAME` after the refused upgrade is refused too (a restore of
/// some of the package's files could leave it half installed); the owner
/// put back by hand, the next command finishes the install.
#[test]
fn restore_after_a_refused_pending_install() {
    if common::skip_unless_root("restore_after_a_refused_pending_install") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    let (_, _, uid, gid) = refused_upgrade(&s);
    let (code, out) = run(d, &["restore", "HEAD", SAME]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot be finished"), "{out}");
    // (The restore's refusal, not the install seal's.)
    assert!(
        out.contains("the install stays pending") && !out.contains("snapshot refused"),
        "{out}"
    );
    assert!(install_pending(d));
    std::os::unix::fs::chown(d.join(SAME), Some(uid), Some(gid)).unwrap();
    let (code2, out2) = run(d, &["snapshot", "-m", "after"]);
    assert_eq!(code2, 0, "{out2}");
    assert!(!install_pending(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
    assert!(status_clean(d));
}

/// `gc` while the install is pending, then the owner put back.
#[test]
fn gc_while_an_install_is_pending() {
    if common::skip_unless_root("gc_while_an_install_is_pending") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    let (_, _, uid, gid) = refused_upgrade(&s);
    let (code, out) = run(d, &["gc"]);
    assert_eq!(code, 0, "{out}");
    assert!(install_pending(d));
    std::os::unix::fs::chown(d.join(SAME), Some(uid), Some(gid)).unwrap();
    let (code2, out2) = run(d, &["snapshot", "-m", "after"]);
    assert_eq!(code2, 0, "{out2}");
    assert!(!install_pending(d));
    assert!(
        out2.contains("finished an interrupted install of PKG-O 2.0.0"),
        "{out2}"
    );
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
    stdout(d, &["fsck"]);
}

/// The install's seal refused for a file that appeared meanwhile (no
/// owner); then `uninstall` of that very package is refused: the files and
/// the registry row are kept and the install stays pending. `own` of the
/// stray then a snapshot finish the install.
#[test]
fn uninstall_while_the_pending_install_is_refused_for_a_stray_file() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(
        &s,
        "w",
        &[("specs/SPEC-000/wedge/a.md", "a\n", 0o644)],
        &["--id", "PKG-W"],
    );
    let stray = d.join("specs/SPEC-000/stray.md");
    let out = install_paused_before_seal(d, &pkg, || fs::write(&stray, "stray\n").unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(install_pending(d));
    let (code, out) = run(d, &["uninstall", "PKG-W"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot be finished"), "{out}");
    assert!(out.contains("the install stays pending"), "{out}");
    assert!(d.join("specs/SPEC-000/wedge/a.md").exists());
    let reg = fs::read_to_string(d.join("registries/packages_registry.csv")).unwrap();
    assert!(reg.contains("PKG-W,"), "{reg}");
    assert!(install_pending(d));
    let (code2, out2) = run(d, &["own", "specs/SPEC-000/stray.md", "--by", "SPEC-000"]);
    assert_eq!(code2, 0, "{out2}");
    assert!(install_pending(d));
    let (code3, out3) = run(d, &["snapshot", "-m", "after"]);
    assert_eq!(code3, 0, "{out3}");
    assert!(out3.contains("finished an interrupted install of PKG-W"), "{out3}");
    assert!(!install_pending(d));
    assert!(d.join("specs/SPEC-000/wedge/a.md").exists());
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}
