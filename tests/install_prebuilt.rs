//! Directories an install builds aside and renames into place (`checkout::Prebuilt`), and `restore` while an install is pending: a review's reproducers (a setgid parent's group was lost; a restore left a package half installed: both fixed) and checks that came out right.

mod common;

use common::packages::{Setup, install_paused_before_seal, install_pending, pack_with, prebuilt_dirs, run, setup};
use common::stdout;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// Packs `files` (path, body, mode) under SPEC-000 with the admin key.
fn pack_modes(s: &Setup, name: &str, files: &[(&str, &str, u32)], extra: &[&str]) -> PathBuf {
    pack_with(s, name, files, &s.admin, extra)
}

/// A new directory under a setgid directory: `mkdir` there gives it the
/// parent's group, and so does the install: the directories it builds
/// aside (in `.cp/tmp`, renamed in) take the setgid parent's group, as
/// `mkdir` in place would. (The prebuilt directory used to keep the group
/// it was made with.)
#[test]
fn a_prebuilt_dir_takes_its_setgid_parents_group() {
    if common::skip_unless_root("a_prebuilt_dir_takes_its_setgid_parents_group") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    let parent = d.join("specs/SPEC-000");
    std::os::unix::fs::chown(&parent, None, Some(4242)).unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o2775)).unwrap();
    stdout(d, &["snapshot", "-m", "setgid parent"]);
    // Control: what mkdir does there.
    fs::create_dir(parent.join("control")).unwrap();
    assert_eq!(fs::metadata(parent.join("control")).unwrap().gid(), 4242);
    fs::remove_dir(parent.join("control")).unwrap();
    let pkg = pack_modes(
        &s,
        "sg",
        &[("specs/SPEC-000/sg/sub/a.md", "a\n", 0o644)],
        &["--id", "PKG-SG"],
    );
    stdout(d, &["install", pkg.to_str().unwrap()]);
    let gid = fs::metadata(parent.join("sg")).unwrap().gid();
    let gid_sub = fs::metadata(parent.join("sg/sub")).unwrap().gid();
    assert_eq!(
        (gid, gid_sub),
        (4242, 4242),
        "new directories did not inherit the setgid parent's group"
    );
}

/// The parent of the new directory is a bind mount of the same filesystem
/// (same st_dev as `.cp/tmp`, so the prebuilt is built), but the rename
/// across mounts fails with EXDEV: the fallback must still install every
/// file, exactly, and leave nothing in `.cp/tmp`.
#[test]
fn bind_mount_same_dev_falls_back_to_one_by_one() {
    if common::skip_unless_root("bind_mount_same_dev_falls_back_to_one_by_one") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    let parent = d.join("specs/SPEC-000");
    let ok = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&parent)
        .arg(&parent)
        .status()
        .unwrap();
    assert!(ok.success());
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Umount(parent.clone());
    let files = [
        ("specs/SPEC-000/bm/a.md", "a\n", 0o644),
        ("specs/SPEC-000/bm/sub/x.sh", "#!/bin/sh\n", 0o4755),
    ];
    let pkg = pack_modes(&s, "bm", &files, &["--id", "PKG-BM"]);
    let (code, out) = run(d, &["install", pkg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    for (p, body, mode) in files {
        assert_eq!(fs::read_to_string(d.join(p)).unwrap(), body);
        let want = if mode & 0o100 != 0 { 0o755 } else { 0o644 }; // packages carry 0644/0755 only
        assert_eq!(fs::metadata(d.join(p)).unwrap().mode() & 0o7777, want, "{p}");
    }
    assert!(prebuilt_dirs(d).is_empty(), "{:?}", prebuilt_dirs(d));
    stdout(d, &["verify"]);
}

/// Files packed with setuid, setgid and odd modes, installed through the
/// prebuilt path under a restrictive umask: the modes are normalised to
/// 0644/0755 (packages carry no other), nothing extra is written, and the
/// new directories get the mode of their parent directory, not the umask's.
#[test]
fn prebuilt_modes_under_umask_077() {
    let s = setup();
    let d = s.plane.path();
    let files = [
        ("specs/SPEC-000/um/a.md", "a\n", 0o644),
        ("specs/SPEC-000/um/sub/x.sh", "#!/bin/sh\n", 0o4755),
        ("specs/SPEC-000/um/sub/g.sh", "#!/bin/sh\n", 0o2750),
        ("specs/SPEC-000/um/sub/deep/r.md", "r\n", 0o400),
    ];
    let pkg = pack_modes(&s, "um", &files, &["--id", "PKG-UM"]);
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 077; exec {} install {}",
            env!("CARGO_BIN_EXE_cplane"),
            pkg.display()
        ))
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (p, body, mode) in files {
        assert_eq!(fs::read_to_string(d.join(p)).unwrap(), body);
        let want = if mode & 0o100 != 0 { 0o755 } else { 0o644 }; // packages carry 0644/0755 only
        assert_eq!(fs::metadata(d.join(p)).unwrap().mode() & 0o7777, want, "{p}");
    }
    let m = |p: &str| fs::metadata(d.join(p)).unwrap().mode() & 0o7777;
    let parent = m("specs/SPEC-000");
    for dir in [
        "specs/SPEC-000/um",
        "specs/SPEC-000/um/sub",
        "specs/SPEC-000/um/sub/deep",
    ] {
        assert_eq!(m(dir), parent, "{dir}");
    }
    let listed: Vec<_> = fs::read_dir(d.join("specs/SPEC-000/um/sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(prebuilt_dirs(d).is_empty());
    // An edit keeping size and mtime is seen (the rows vouch for nothing stale).
    common::rewrite_keeping_mtime(&d.join("specs/SPEC-000/um/a.md"), b"b\n");
    let (_, st) = run(d, &["status"]);
    assert!(st.contains("specs/SPEC-000/um/a.md"), "{st}");
}

/// While an install is pending (its seal refused), `restore` is refused
/// (it could take one of the package's files away and leave it half
/// installed): the package stays whole, and a snapshot is refused too while
/// the stray is there; the install stays pending.
#[test]
fn restore_is_refused_while_an_install_is_pending() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack_modes(
        &s,
        "half",
        &[
            ("specs/SPEC-000/half/a.md", "a\n", 0o644),
            ("specs/SPEC-000/half/b.md", "b\n", 0o644),
        ],
        &["--id", "PKG-HALF"],
    );
    let stray = d.join("specs/SPEC-000/stray.md");
    let o = install_paused_before_seal(d, &pkg, || fs::write(&stray, "stray\n").unwrap());
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(install_pending(d));
    let (code, out) = run(d, &["restore", "--force", "HEAD", "specs/SPEC-000/half/a.md"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot be finished"), "{out}");
    assert!(out.contains("the install stays pending"), "{out}");
    let (code2, out2) = run(d, &["snapshot", "-m", "after"]);
    assert_eq!(code2, 1, "the stray is still there: {out2}");
    assert!(out2.contains("cannot be finished"), "{out2}");
    assert!(install_pending(d));
    let reg = fs::read_to_string(d.join("registries/packages_registry.csv")).unwrap();
    assert!(reg.contains("PKG-HALF,"), "{reg}");
    assert_eq!(fs::read_to_string(d.join("specs/SPEC-000/half/a.md")).unwrap(), "a\n");
    assert_eq!(fs::read_to_string(d.join("specs/SPEC-000/half/b.md")).unwrap(), "b\n");
}
