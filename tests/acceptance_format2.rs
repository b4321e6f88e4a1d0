//! Acceptance tests for store format 2, written from the issue text and the
//! README / store-format.md alone (the real binary, driven through its CLI).
//!
//! Covers: paths longer than PATH_MAX, full permission bits, empty
//! directories, numeric owners, hard links, paths vanishing during a scan,
//! `restore`, `cat`, very deep trees, journal / tmp damage seen by `fsck`,
//! sparse files, and init leaving no `.cp.init-*` behind.

mod common;
use common::{NOBODY, Tmpfs, cplane, hard_link, is_root, plane_others_can_reach, skip_unless_root, write};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, mkdirat, openat, unlinkat};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

// ---------------------------------------------------------------- helpers

/// Runs `cplane ARGS` in `dir`; returns (exit code, stdout, stderr).
/// A death by signal (e.g. a stack overflow) fails the test.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = cplane(dir).args(args).output().expect("spawn cplane");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "`cplane {}` was killed by a signal ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
            args.join(" "),
            out.status
        )
    });
    (code, stdout, stderr)
}

/// Runs `cplane ARGS` and asserts its exit code; returns stdout.
fn expect(dir: &Path, args: &[&str], code: i32, why: &str) -> String {
    let (c, out, err) = run(dir, args);
    assert_eq!(
        c,
        code,
        "`cplane {}`: expected exit {code} ({why}), got {c}\nstdout:\n{out}\nstderr:\n{err}",
        args.join(" ")
    );
    out
}

fn ok(dir: &Path, args: &[&str]) -> String {
    expect(dir, args, 0, "success / clean")
}

/// Runs `cplane ARGS --json`, returns (exit code, parsed stdout).
fn json(dir: &Path, args: &[&str]) -> (i32, Value) {
    let mut a: Vec<&str> = args.to_vec();
    a.push("--json");
    let (c, out, err) = run(dir, &a);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "`cplane {}` printed no JSON ({e})\nstdout:\n{out}\nstderr:\n{err}",
            a.join(" ")
        )
    });
    (c, v)
}

/// The snapshot id HEAD names (`show HEAD --json`).
fn head_id(dir: &Path) -> String {
    let (c, v) = json(dir, &["show", "HEAD"]);
    assert_eq!(c, 0, "show HEAD --json failed: {v}");
    v["snapshot"]
        .as_str()
        .expect("show HEAD --json has `snapshot`")
        .to_string()
}

/// The `changes` of `status --json`, as (status letter, path) pairs.
fn status_changes(dir: &Path) -> (i32, Vec<(String, String)>, Value) {
    let (c, v) = json(dir, &["status"]);
    let changes = v["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("status --json has no `changes` array: {v}"))
        .iter()
        .map(|ch| {
            (
                ch["status"].as_str().unwrap_or("?").to_string(),
                ch["path"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    (c, changes, v)
}

/// Names of RESCUE-… checkpoints listed by `cplane checkpoints`.
fn rescue_names(dir: &Path) -> BTreeSet<String> {
    ok(dir, &["checkpoints"])
        .split_whitespace()
        .map(|t| t.trim_start_matches('*'))
        .filter(|t| t.starts_with("RESCUE-"))
        .map(str::to_string)
        .collect()
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, p.display()));
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {uid}:{gid} {}: {e}", p.display()));
}

fn init_leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cp.init-"))
        .collect()
}

/// Removes a (possibly very deep) tree with `rm -rf`.
fn rm_rf(p: &Path) {
    let st = std::process::Command::new("rm").arg("-rf").arg(p).status().unwrap();
    assert!(st.success(), "rm -rf {}", p.display());
}

// ------------------------------------------- paths longer than PATH_MAX

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// Opens (optionally creating) `root/names[0]/names[1]/…` one component at a time.
fn deep_dir(root: &Path, names: &[String], create: bool) -> OwnedFd {
    let mut fd = openat(CWD, root, DIR_FLAGS, Mode::empty()).unwrap();
    for n in names {
        if create {
            mkdirat(&fd, n.as_str(), Mode::from_bits_truncate(0o755)).unwrap();
        }
        fd = openat(&fd, n.as_str(), DIR_FLAGS, Mode::empty())
            .unwrap_or_else(|e| panic!("open deep component ({} bytes): {e}", n.len()));
    }
    fd
}

fn deep_write(dirfd: &OwnedFd, name: &str, body: &[u8]) {
    let fd = openat(
        dirfd,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    fs::File::from(fd).write_all(body).unwrap();
}

fn deep_read(dirfd: &OwnedFd, name: &str) -> Vec<u8> {
    let fd = openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("deep file `{name}` missing: {e}"));
    let mut v = Vec::new();
    fs::File::from(fd).read_to_end(&mut v).unwrap();
    v
}

#[test]
fn path_longer_than_path_max_init_snapshot_status_verify_rollback() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("plane");
    fs::create_dir(&root).unwrap();
    write(&root, "top.txt", "top\n");
    // 24 nested directories of 200-byte names: a path of ~4.8 KB (> PATH_MAX 4096).
    let names: Vec<String> = (0..24).map(|i| format!("{i:02}{}", "d".repeat(198))).collect();
    assert!(names.iter().all(|n| n.len() == 200));
    let leaf = deep_dir(&root, &names, true);
    let original = b"deep bytes \x00\x01\x02 at the bottom\n".to_vec();
    deep_write(&leaf, "deep.txt", &original);

    ok(&root, &["init"]);
    ok(&root, &["snapshot", "-m", "deep", "--allow-unchanged"]);
    expect(&root, &["status"], 0, "nothing changed since the snapshot");
    expect(&root, &["verify"], 0, "nothing changed since the snapshot");

    // Modify the deep file: status and verify see it; rollback puts it back.
    deep_write(&leaf, "deep.txt", b"changed!\n");
    expect(&root, &["status"], 1, "the deep file was modified");
    expect(&root, &["verify"], 1, "the deep file was modified");
    ok(&root, &["rollback", "HEAD"]);
    assert_eq!(
        deep_read(&leaf, "deep.txt"),
        original,
        "rollback must restore the deep file's bytes"
    );

    // Delete it: rollback recreates it.
    unlinkat(&leaf, "deep.txt", AtFlags::empty()).unwrap();
    expect(&root, &["status"], 1, "the deep file was deleted");
    ok(&root, &["rollback", "HEAD"]);
    let leaf = deep_dir(&root, &names, false);
    assert_eq!(
        deep_read(&leaf, "deep.txt"),
        original,
        "rollback must recreate the deleted deep file"
    );
    expect(&root, &["status"], 0, "clean after rollback");
    expect(&root, &["verify"], 0, "clean after rollback");

    // Delete the whole deep chain: rollback recreates every directory.
    rm_rf(&root.join(&names[0]));
    ok(&root, &["rollback", "HEAD"]);
    let leaf = deep_dir(&root, &names, false);
    assert_eq!(
        deep_read(&leaf, "deep.txt"),
        original,
        "rollback must recreate the deleted deep chain"
    );
    expect(&root, &["verify"], 0, "clean after rollback");
    drop(leaf);
    rm_rf(&root);
}

// ------------------------------------------------------ permission bits

#[test]
fn chmod_600_is_reported_by_status_and_verify_and_rolled_back() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "secrets.env", "TOKEN=abc\n");
    write(d, "other.txt", "other\n");
    chmod(&d.join("secrets.env"), 0o644);
    ok(d, &["init"]);
    expect(d, &["status"], 0, "clean right after init");

    chmod(&d.join("secrets.env"), 0o600);

    let out = expect(d, &["status"], 1, "a mode change is a difference");
    assert!(
        out.lines().any(|l| l.starts_with("P ") && l.contains("secrets.env")),
        "status must list secrets.env with letter P:\n{out}"
    );
    let (c, changes, v) = status_changes(d);
    assert_eq!(c, 1);
    assert_eq!(
        changes,
        vec![("P".to_string(), "secrets.env".to_string())],
        "status --json: exactly one P change: {v}"
    );
    let ch = &v["changes"][0];
    assert_eq!(ch["change"], "mode_changed", "{ch}");
    assert_eq!(ch["old"]["mode"], "0644", "{ch}");
    assert_eq!(ch["new"]["mode"], "0600", "{ch}");

    let out = expect(d, &["verify"], 1, "a mode change is a finding");
    assert!(
        out.lines()
            .any(|l| l.contains("CP108") && l.contains("secrets.env") && l.contains("mode changed 0644 -> 0600")),
        "verify must report `CP108 secrets.env: mode changed 0644 -> 0600`:\n{out}"
    );
    let (c, v) = json(d, &["verify"]);
    assert_eq!(c, 1);
    let f = v["findings"].as_array().expect("findings array");
    assert!(
        f.iter()
            .any(|f| f["code"] == "CP108" && f["path"] == "secrets.env" && f["message"] == "mode changed 0644 -> 0600"),
        "verify --json must carry the CP108 finding: {v}"
    );

    ok(d, &["rollback", "HEAD"]);
    assert_eq!(
        mode_of(&d.join("secrets.env")),
        0o644,
        "rollback HEAD must put 0644 back"
    );
    assert_eq!(fs::read_to_string(d.join("secrets.env")).unwrap(), "TOKEN=abc\n");
    expect(d, &["status"], 0, "clean after rollback");
    expect(d, &["verify"], 0, "clean after rollback");
}

/// Lays out files and directories carrying setuid, setgid and sticky bits.
fn special_bits_tree(d: &Path) {
    write(d, "bin/tool", "#!/bin/sh\necho tool\n");
    write(d, "shared/readme", "shared\n");
    write(d, "spool/.keep", "");
    write(d, "bin/sgid-file", "sgid\n");
    write(d, "private/data", "private\n");
    chmod(&d.join("bin/tool"), 0o4755);
    chmod(&d.join("bin/sgid-file"), 0o2711);
    chmod(&d.join("shared"), 0o2775);
    chmod(&d.join("spool"), 0o1777);
    chmod(&d.join("private"), 0o700);
    chmod(&d.join("private/data"), 0o400);
}

fn assert_special_bits(d: &Path, when: &str) {
    for (p, m) in [
        ("bin/tool", 0o4755),
        ("bin/sgid-file", 0o2711),
        ("shared", 0o2775),
        ("spool", 0o1777),
        ("private", 0o700),
        ("private/data", 0o400),
    ] {
        assert_eq!(
            mode_of(&d.join(p)),
            m,
            "{when}: {p} must be {m:04o}, is {:04o}",
            mode_of(&d.join(p))
        );
    }
}

#[test]
fn setuid_setgid_sticky_bits_round_trip_through_rollback_after_chmod() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    special_bits_tree(d);
    ok(d, &["init"]);
    assert_special_bits(d, "after init (init must not change modes)");
    expect(d, &["status"], 0, "clean right after init");

    chmod(&d.join("bin/tool"), 0o755);
    chmod(&d.join("bin/sgid-file"), 0o711);
    chmod(&d.join("shared"), 0o775);
    chmod(&d.join("spool"), 0o777);
    chmod(&d.join("private"), 0o755);
    chmod(&d.join("private/data"), 0o644);

    let (c, changes, v) = status_changes(d);
    assert_eq!(c, 1, "mode changes are differences: {v}");
    for p in [
        "bin/tool",
        "bin/sgid-file",
        "shared",
        "spool",
        "private",
        "private/data",
    ] {
        assert!(
            changes.iter().any(|(s, q)| s == "P" && q == p),
            "status --json must list {p} as P (directories too): {changes:?}"
        );
    }
    let out = expect(d, &["status"], 1, "mode changes are differences");
    assert!(
        out.lines().any(|l| l.starts_with("P ") && l.contains("spool/")),
        "status text lists a directory whose mode changed as `spool/`:\n{out}"
    );
    let out = expect(d, &["verify"], 1, "mode changes are findings");
    assert!(
        out.contains("CP108") && out.contains("mode changed 4755 -> 0755"),
        "verify CP108 for setuid loss:\n{out}"
    );
    assert!(
        out.contains("mode changed 1777 -> 0777"),
        "verify CP108 for the sticky dir:\n{out}"
    );

    ok(d, &["rollback", "HEAD"]);
    assert_special_bits(d, "after rollback HEAD");
    expect(d, &["status"], 0, "clean after rollback");
    expect(d, &["verify"], 0, "clean after rollback");
}

#[test]
fn setuid_setgid_sticky_bits_restored_when_recreated_by_rollback() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    special_bits_tree(d);
    ok(d, &["init"]);

    for p in ["bin", "shared", "spool", "private"] {
        rm_rf(&d.join(p));
    }
    ok(d, &["rollback", "HEAD"]);
    assert_special_bits(d, "after deleting everything and rollback HEAD");
    assert_eq!(
        fs::read_to_string(d.join("bin/tool")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    expect(d, &["verify"], 0, "clean after rollback");
}

// ------------------------------------------------------ empty directories

#[test]
fn added_empty_directory_shown_by_status_and_removed_by_rollback() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    ok(d, &["init"]);

    fs::create_dir(d.join("logs")).unwrap();
    let out = expect(d, &["status"], 1, "an added empty directory is a difference");
    assert!(
        out.lines().any(|l| l.trim_end() == "A  logs/"),
        "status must show `A  logs/`:\n{out}"
    );
    let (_, changes, v) = status_changes(d);
    assert_eq!(changes, vec![("A".into(), "logs".into())], "status --json: {v}");
    assert_eq!(v["changes"][0]["new"]["kind"], "directory", "{v}");

    ok(d, &["rollback", "HEAD"]);
    assert!(
        !d.join("logs").exists(),
        "rollback HEAD must remove the added empty directory logs/"
    );
    expect(d, &["status"], 0, "clean after rollback");
}

#[test]
fn removed_empty_directory_recreated_by_rollback() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    fs::create_dir(d.join("cache")).unwrap();
    chmod(&d.join("cache"), 0o750);
    ok(d, &["init"]);
    expect(d, &["status"], 0, "clean right after init (empty dir recorded)");
    let out = ok(d, &["cat", "HEAD:"]);
    assert!(
        out.contains("cache"),
        "the snapshot's root lists the empty directory cache:\n{out}"
    );

    fs::remove_dir(d.join("cache")).unwrap();
    let (c, changes, v) = status_changes(d);
    assert_eq!(c, 1, "a removed empty dir is a difference: {v}");
    assert_eq!(changes, vec![("D".into(), "cache".into())], "status --json: {v}");
    let out = expect(d, &["verify"], 1, "a removed empty dir is a finding");
    assert!(out.contains("cache"), "verify names cache:\n{out}");

    ok(d, &["rollback", "HEAD"]);
    let m = fs::symlink_metadata(d.join("cache")).expect("rollback HEAD must recreate cache/");
    assert!(m.is_dir(), "cache must be a directory");
    assert_eq!(
        fs::read_dir(d.join("cache")).unwrap().count(),
        0,
        "cache/ must be empty"
    );
    assert_eq!(
        mode_of(&d.join("cache")),
        0o750,
        "cache/ must get its recorded mode back"
    );
    expect(d, &["status"], 0, "clean after rollback");
}

#[test]
fn file_added_to_empty_dir_rollback_leaves_dir_in_place_and_empty() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "profile", "PATH=/bin\n");
    fs::create_dir(d.join("profile.d")).unwrap();
    ok(d, &["init"]);

    write(d, "profile.d/x.sh", "x\n");
    let (c, changes, v) = status_changes(d);
    assert_eq!(c, 1, "{v}");
    assert!(
        changes.contains(&("A".into(), "profile.d/x.sh".into())),
        "status: {changes:?}"
    );

    ok(d, &["rollback", "HEAD"]);
    assert!(d.join("profile.d").is_dir(), "rollback must leave profile.d/ in place");
    let left: Vec<_> = fs::read_dir(d.join("profile.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "profile.d/ must be empty after rollback, holds {left:?}"
    );
    expect(d, &["status"], 0, "clean after rollback");
}

// ------------------------------------------------------ owner and group

#[test]
fn chown_is_reported_by_status_and_verify_and_rolled_back() {
    if skip_unless_root("chown_is_reported_by_status_and_verify_and_rolled_back") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "file", "owned\n");
    write(d, "dir/inner", "inner\n");
    let m = fs::metadata(d.join("file")).unwrap();
    let (uid, gid) = (m.uid(), m.gid());
    ok(d, &["init"]);

    chown(&d.join("file"), 1234, 5678);
    chown(&d.join("dir"), 1234, 5678);

    let out = expect(d, &["status"], 1, "an owner change is a difference");
    assert!(
        out.lines().any(|l| l.starts_with("O ") && l.contains("file")),
        "status must list file with letter O:\n{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("O ") && l.contains("dir/")),
        "status must list dir/ (its owner changed) with letter O:\n{out}"
    );
    let (_, changes, v) = status_changes(d);
    assert!(changes.contains(&("O".into(), "file".into())), "{v}");
    let ch = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "file")
        .unwrap();
    assert_eq!(ch["change"], "owner_changed", "{ch}");
    assert_eq!(ch["new"]["uid"], 1234, "{ch}");
    assert_eq!(ch["new"]["gid"], 5678, "{ch}");
    assert_eq!(ch["old"]["uid"], uid, "{ch}");

    let out = expect(d, &["verify"], 1, "an owner change is a finding");
    let want = format!("owner changed {uid}:{gid} -> 1234:5678");
    assert!(
        out.lines()
            .any(|l| l.contains("CP109") && l.contains("file") && l.contains(&want)),
        "verify must report `CP109 file: {want}`:\n{out}"
    );

    ok(d, &["rollback", "HEAD"]);
    for p in ["file", "dir"] {
        let m = fs::symlink_metadata(d.join(p)).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (uid, gid),
            "rollback as root must put {p}'s owner back"
        );
    }
    expect(d, &["status"], 0, "clean after rollback");
    expect(d, &["verify"], 0, "clean after rollback");
}

#[test]
fn deleted_file_restored_with_its_mode_and_group() {
    if skip_unless_root("deleted_file_restored_with_its_mode_and_group") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "etc/shadow-ish", "secret\n");
    chmod(&d.join("etc/shadow-ish"), 0o640);
    chown(&d.join("etc/shadow-ish"), 0, 42);
    // setuid file owned by someone else: chown would clear setuid if done after chmod.
    write(d, "bin/suid", "suid\n");
    chown(&d.join("bin/suid"), 1234, 5678);
    chmod(&d.join("bin/suid"), 0o4750);
    // a symlink with its own owner (lchown)
    symlink("shadow-ish", d.join("etc/link")).unwrap();
    chown(&d.join("etc/link"), 77, 88);
    ok(d, &["init"]);

    fs::remove_file(d.join("etc/shadow-ish")).unwrap();
    fs::remove_file(d.join("bin/suid")).unwrap();
    fs::remove_file(d.join("etc/link")).unwrap();
    ok(d, &["rollback", "HEAD"]);

    let m = fs::metadata(d.join("etc/shadow-ish")).expect("rollback recreates etc/shadow-ish");
    assert_eq!(
        m.mode() & 0o7777,
        0o640,
        "mode must be 0640, not the default (is {:04o})",
        m.mode() & 0o7777
    );
    assert_eq!((m.uid(), m.gid()), (0, 42), "owner must be 0:42, not root:root");
    assert_eq!(fs::read_to_string(d.join("etc/shadow-ish")).unwrap(), "secret\n");

    let m = fs::metadata(d.join("bin/suid")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678), "bin/suid owner");
    assert_eq!(
        m.mode() & 0o7777,
        0o4750,
        "bin/suid must keep setuid after its chown (is {:04o})",
        m.mode() & 0o7777
    );

    let m = fs::symlink_metadata(d.join("etc/link")).unwrap();
    assert!(m.file_type().is_symlink());
    assert_eq!((m.uid(), m.gid()), (77, 88), "symlink owner restored with lchown");
    expect(d, &["verify"], 0, "clean after rollback");
}

// ------------------------------------------------------------ hard links

#[test]
fn hard_links_restored_as_links_after_delete_or_copy() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a", "linked content\n");
    hard_link(d, "a", "b");
    hard_link(d, "a", "sub/c");
    write(d, "unrelated", "u\n");
    ok(d, &["init"]);
    let ino = |p: &str| fs::metadata(d.join(p)).unwrap().ino();

    // 1. delete b
    fs::remove_file(d.join("b")).unwrap();
    expect(d, &["status"], 1, "b was deleted");
    ok(d, &["rollback", "HEAD"]);
    assert_eq!(
        ino("a"),
        ino("b"),
        "after deleting b and rollback, a and b must share an inode"
    );
    assert_eq!(ino("a"), ino("sub/c"), "sub/c must still share a's inode");
    assert_eq!(fs::metadata(d.join("a")).unwrap().nlink(), 3, "a must have 3 links");
    expect(d, &["status"], 0, "clean after rollback");

    // 2. replace b by a copy (same bytes, own inode)
    fs::remove_file(d.join("b")).unwrap();
    fs::copy(d.join("a"), d.join("b")).unwrap();
    chmod(&d.join("b"), fs::metadata(d.join("a")).unwrap().mode() & 0o7777);
    assert_ne!(ino("a"), ino("b"));
    let out = expect(d, &["status"], 1, "b is no longer linked to a");
    assert!(
        out.lines().any(|l| l.starts_with("L ") && l.contains('b')),
        "status must report a hard-link change (L) for b:\n{out}"
    );
    let out = expect(d, &["verify"], 1, "b is no longer linked to a");
    assert!(out.contains("CP110"), "verify must report CP110:\n{out}");
    ok(d, &["rollback", "HEAD"]);
    assert_eq!(
        ino("a"),
        ino("b"),
        "after replacing b with a copy and rollback, a and b share an inode"
    );
    assert_eq!(ino("a"), ino("sub/c"));
    assert_eq!(fs::read_to_string(d.join("b")).unwrap(), "linked content\n");
    expect(d, &["status"], 0, "clean after rollback");
    expect(d, &["verify"], 0, "clean after rollback");

    // 3. delete every member of the group
    for p in ["a", "b", "sub/c"] {
        fs::remove_file(d.join(p)).unwrap();
    }
    ok(d, &["rollback", "HEAD"]);
    assert_eq!(ino("a"), ino("b"));
    assert_eq!(ino("a"), ino("sub/c"));
    assert_eq!(fs::read_to_string(d.join("sub/c")).unwrap(), "linked content\n");
}

// ------------------------------------------- paths vanishing during a scan

/// A background churner: keeps creating and deleting entries under `tmp/`,
/// keeping a sliding window of `WINDOW` live entries so that a scan lists
/// many names that are gone by the time it opens them.
struct Churn {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

const WINDOW: u64 = 200;

impl Churn {
    /// `files`: churn plain files `tmp/f$i`; `dirs`: churn directories `tmp/d$i/` (with a file inside).
    fn start(root: &Path, files: bool, dirs: bool) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let tmp = root.join("tmp");
        let handle = std::thread::spawn(move || {
            let mut i: u64 = 0;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                if files {
                    let _ = fs::write(tmp.join(format!("f{i}")), format!("churn {i}\n"));
                }
                if dirs {
                    let dd = tmp.join(format!("d{i}"));
                    let _ = fs::create_dir(&dd);
                    let _ = fs::write(dd.join("g"), "g\n");
                }
                if i > WINDOW {
                    let j = i - WINDOW;
                    if files {
                        let _ = fs::remove_file(tmp.join(format!("f{j}")));
                    }
                    if dirs {
                        let _ = fs::remove_dir_all(tmp.join(format!("d{j}")));
                    }
                }
            }
            i
        });
        // let the window fill up
        std::thread::sleep(std::time::Duration::from_millis(50));
        Churn {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn churn_tree(d: &Path) {
    for i in 0..300 {
        write(d, &format!("src/m{}/file{i}.txt", i % 12), &format!("content {i}\n"));
    }
    write(d, "tmp/.keep", "");
}

fn snapshots_under_churn(files: bool, dirs: bool, what: &str, rounds: u32) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    churn_tree(d);
    ok(d, &["init"]);

    let churn = Churn::start(d, files, dirs);
    for round in 0..rounds {
        let (c, out, err) = run(d, &["snapshot", "-m", &format!("round {round}")]);
        assert_eq!(
            c, 0,
            "snapshot round {round} must succeed while {what} vanish (a vanished path is simply absent)\nstdout:\n{out}\nstderr:\n{err}"
        );
    }
    let n = churn.stop();
    assert!(
        n > rounds as u64,
        "the churner should have made progress ({n} iterations)"
    );
    ok(d, &["snapshot", "-m", "quiet"]);
    expect(d, &["verify"], 0, "nothing changes once the churner stopped");
}

#[test]
fn snapshot_succeeds_while_files_vanish() {
    snapshots_under_churn(true, false, "files", 40);
}

// Regression (found by this file, fixed): a directory that vanishes between being listed and being
// opened is not "simply absent": `snapshot` prints
//   CP105 tmp/d197: directory cannot be read: No such file or directory (os error 2)
//   error: snapshot refused: 1 finding; nothing was written
// and exits 1. (Vanishing files are handled: "note: N paths disappeared
// while the plane was read and are not recorded", exit 0.) The race is hit
// in a few percent of snapshots, hence 100 rounds.
#[test]
fn snapshot_succeeds_while_directories_vanish() {
    snapshots_under_churn(false, true, "directories", 100);
}

#[test]
fn rollback_succeeds_while_files_vanish() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    churn_tree(d);
    ok(d, &["init"]);
    let base = head_id(d);

    let churn = Churn::start(d, true, false);
    for round in 0..8 {
        // some real work for the rollback: modify and delete a file
        let edited = format!("src/m1/file{}.txt", 1 + 12 * round);
        let deleted = format!("src/m2/file{}.txt", 2 + 12 * round);
        write(d, &edited, "edited\n");
        let _ = fs::remove_file(d.join(&deleted));
        let (c, out, err) = run(d, &["rollback", &base[..16]]);
        assert_eq!(
            c, 0,
            "rollback round {round} must succeed while files vanish\nstdout:\n{out}\nstderr:\n{err}"
        );
        assert_eq!(
            fs::read_to_string(d.join(&edited)).unwrap(),
            format!("content {}\n", 1 + 12 * round),
            "rollback restores the edited file"
        );
        assert!(d.join(&deleted).exists(), "rollback restores the deleted file");
    }
    churn.stop();
}

// ---------------------------------------------------------------- restore

/// Tree A, then tree B (snapshot, HEAD), then unsaved edits.
fn restore_fixture(d: &Path) {
    write(d, "etc/app.conf", "v1\n");
    chmod(&d.join("etc/app.conf"), 0o644);
    write(d, "etc/other.conf", "other v1\n");
    write(d, "conf.d/a", "a1\n");
    write(d, "conf.d/b", "b1\n");
    write(d, "top.txt", "top v1\n");
    ok(d, &["init"]);
    ok(d, &["snapshot", "--name", "A", "-m", "base", "--allow-unchanged"]);

    write(d, "etc/app.conf", "v2\n");
    chmod(&d.join("etc/app.conf"), 0o600);
    write(d, "etc/other.conf", "other v2\n");
    write(d, "conf.d/a", "a2\n");
    write(d, "conf.d/extra", "extra\n");
    write(d, "newfile", "new\n");
    ok(d, &["snapshot", "--name", "B", "-m", "changed"]);

    // unsaved working-tree edits
    write(d, "etc/app.conf", "v3 unsaved\n");
    write(d, "top.txt", "top edited\n");
}

fn has_change(changes: &[(String, String)], letter: &str, path: &str) -> bool {
    changes.iter().any(|(s, p)| s == letter && p == path)
}

/// `status` exits 1 and lists every (letter, path) of `shown` and none of `untouched`.
fn assert_status_shows(d: &Path, shown: &[(&str, &str)], untouched: &[&str]) {
    let (c, changes, v) = status_changes(d);
    assert_eq!(c, 1, "{v}");
    for (s, p) in shown {
        assert!(
            has_change(&changes, s, p),
            "status must show `{s} {p}` (a difference from HEAD): {changes:?}"
        );
    }
    assert!(
        !changes.iter().any(|(_, p)| untouched.contains(&p.as_str())),
        "none of {untouched:?} may differ: {changes:?}"
    );
}

/// After `restore A etc/app.conf conf.d …` on `restore_fixture`: those paths are as A has them.
fn assert_restored_from_a(d: &Path) {
    assert_eq!(
        fs::read_to_string(d.join("etc/app.conf")).unwrap(),
        "v1\n",
        "app.conf bytes from A"
    );
    assert_eq!(mode_of(&d.join("etc/app.conf")), 0o644, "app.conf mode from A");
    assert_eq!(fs::read_to_string(d.join("conf.d/a")).unwrap(), "a1\n");
    assert!(
        !d.join("conf.d/extra").exists(),
        "restore of a directory removes entries REF lacks"
    );
    assert_eq!(
        fs::read_to_string(d.join("top.txt")).unwrap(),
        "top edited\n",
        "top.txt untouched"
    );
}

/// After undoing that restore from its rescue: etc/app.conf and conf.d are as before it.
fn assert_restore_undone(d: &Path) {
    assert_eq!(
        fs::read_to_string(d.join("etc/app.conf")).unwrap(),
        "v3 unsaved\n",
        "the unsaved edit comes back"
    );
    assert_eq!(
        mode_of(&d.join("etc/app.conf")),
        0o600,
        "app.conf's mode before the restore comes back"
    );
    assert_eq!(fs::read_to_string(d.join("conf.d/a")).unwrap(), "a2\n");
    assert_eq!(fs::read_to_string(d.join("conf.d/extra")).unwrap(), "extra\n");
}

/// The one RESCUE-… checkpoint `cplane checkpoints` lists that `before` lacks.
fn new_rescue(d: &Path, before: &BTreeSet<String>) -> String {
    let after = rescue_names(d);
    let new: Vec<_> = after.difference(before).cloned().collect();
    assert_eq!(
        new.len(),
        1,
        "restore creates exactly one RESCUE-… checkpoint listed by `checkpoints`: before {before:?}, after {after:?}"
    );
    new[0].clone()
}

// Regression (found by this file, fixed): `cplane restore A etc/app.conf conf.d newfile` (with an unsaved
// edit to etc/app.conf and `newfile` absent from A) exits 3 with
// "store damage: tree object … is missing from the store"; nothing is
// restored, and `cplane fsck` finds no damage. See
// restore_file_with_unsaved_edit_plus_path_ref_lacks for the minimal case.
#[test]
fn restore_puts_back_only_the_named_paths_and_keeps_head() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    restore_fixture(d);
    let head_before = head_id(d);
    let rescues_before = rescue_names(d);

    ok(d, &["restore", "A", "etc/app.conf", "conf.d", "newfile"]);

    // the named paths are exactly as A has them, other paths untouched
    assert_restored_from_a(d);
    assert_eq!(fs::read_to_string(d.join("conf.d/b")).unwrap(), "b1\n");
    assert!(!d.join("newfile").exists(), "a path REF lacks is removed");
    assert_eq!(
        fs::read_to_string(d.join("etc/other.conf")).unwrap(),
        "other v2\n",
        "other.conf untouched"
    );

    assert_eq!(head_id(d), head_before, "restore must not move HEAD");

    // status: the restored paths now differ from HEAD (= B)
    assert_status_shows(
        d,
        &[
            ("M", "etc/app.conf"),
            ("M", "conf.d/a"),
            ("D", "conf.d/extra"),
            ("D", "newfile"),
            ("M", "top.txt"),
        ],
        &["etc/other.conf", "conf.d/b"],
    );

    // a rescue checkpoint was created and is listed
    let rescue = new_rescue(d, &rescues_before);

    // and restoring from it undoes the restore, unsaved edits included
    ok(d, &["restore", &rescue, "etc/app.conf", "conf.d", "newfile"]);
    assert_restore_undone(d);
    assert_eq!(fs::read_to_string(d.join("newfile")).unwrap(), "new\n");
    assert_eq!(fs::read_to_string(d.join("top.txt")).unwrap(), "top edited\n");
    assert_eq!(head_id(d), head_before, "HEAD still did not move");
}

// Regression (found by this file, fixed): minimal case of the failure above. Sequence:
//   echo v1 > app.conf; cplane init; echo new > newfile; cplane snapshot;
//   echo v3 > app.conf; cplane restore HEAD~1 app.conf newfile
// expected exit 0 (app.conf = v1, newfile removed); actual exit 3,
// "error: store damage: tree object <id> is missing from the store",
// nothing changed in the plane, `cplane fsck` reports no damage.
// Either path alone restores fine.
#[test]
fn restore_file_with_unsaved_edit_plus_path_ref_lacks() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "app.conf", "v1\n");
    ok(d, &["init"]);
    write(d, "newfile", "new\n");
    ok(d, &["snapshot"]);
    write(d, "app.conf", "v3 unsaved\n");
    let head = head_id(d);

    ok(d, &["restore", "HEAD~1", "app.conf", "newfile"]);
    assert_eq!(fs::read_to_string(d.join("app.conf")).unwrap(), "v1\n");
    assert!(!d.join("newfile").exists(), "newfile is not in HEAD~1: removed");
    assert_eq!(head_id(d), head);
    ok(d, &["fsck"]);
}

// Regression (found by this file, fixed): undoing a restore from its rescue checkpoint fails. Sequence
// (see restore_fixture):
//   etc/app.conf=v1, conf.d/{a=a1,b=b1}; cplane init; cplane snapshot --name A
//   conf.d/a=a2, conf.d/extra=extra, etc/app.conf=v2; cplane snapshot --name B
//   etc/app.conf=v3 (unsaved)
//   cplane restore A etc/app.conf conf.d            -> exit 0, as expected
//   cplane restore RESCUE-… etc/app.conf conf.d     -> exit 3, "store damage:
//       tree object <id> is missing from the store"; `cplane fsck` is clean.
// Restoring the two paths from the rescue one at a time succeeds.
#[test]
fn restore_rescue_checkpoint_undoes_a_restore() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    restore_fixture(d);
    let head_before = head_id(d);
    let rescues_before = rescue_names(d);

    ok(d, &["restore", "A", "etc/app.conf", "conf.d"]);
    assert_restored_from_a(d);
    assert_eq!(
        fs::read_to_string(d.join("newfile")).unwrap(),
        "new\n",
        "newfile not named: untouched"
    );
    assert_eq!(head_id(d), head_before, "restore must not move HEAD");

    assert_status_shows(
        d,
        &[
            ("M", "etc/app.conf"),
            ("M", "conf.d/a"),
            ("D", "conf.d/extra"),
            ("M", "top.txt"),
        ],
        &["etc/other.conf", "conf.d/b", "newfile"],
    );

    let rescue = new_rescue(d, &rescues_before);
    ok(d, &["restore", &rescue, "etc/app.conf", "conf.d"]);
    assert_restore_undone(d);
    assert_eq!(head_id(d), head_before, "HEAD still did not move");
    let (_, changes, _) = status_changes(d);
    assert_eq!(
        changes,
        vec![("M".into(), "etc/app.conf".into()), ("M".into(), "top.txt".into())],
        "only the unsaved edits differ from HEAD"
    );
}

#[test]
fn restore_of_single_file_from_head_fixes_bytes_and_mode() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "app.conf", "good\n");
    chmod(&d.join("app.conf"), 0o640);
    write(d, "keep.txt", "keep\n");
    ok(d, &["init"]);
    let head = head_id(d);

    write(d, "app.conf", "bad\n");
    chmod(&d.join("app.conf"), 0o666);
    write(d, "keep.txt", "edited\n");

    ok(d, &["restore", "HEAD", "app.conf"]);
    assert_eq!(fs::read_to_string(d.join("app.conf")).unwrap(), "good\n");
    assert_eq!(mode_of(&d.join("app.conf")), 0o640);
    assert_eq!(
        fs::read_to_string(d.join("keep.txt")).unwrap(),
        "edited\n",
        "other paths untouched"
    );
    assert_eq!(head_id(d), head, "HEAD does not move");
    let (c, changes, _) = status_changes(d);
    assert_eq!(c, 1);
    assert_eq!(
        changes,
        vec![("M".into(), "keep.txt".into())],
        "only keep.txt still differs"
    );
}

// -------------------------------------------------------------------- cat

#[test]
fn cat_prints_binary_bytes_symlink_target_and_directory_entries() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let bin: Vec<u8> = vec![0xff, 0xfe, 0x00, 0x80, b'\n', 0xc3, 0x28, 0x00, 0xe2, 0x82, b'x', 0xff];
    fs::write(d.join("blob.bin"), &bin).unwrap();
    symlink("target/does/not/exist", d.join("link")).unwrap();
    write(d, "dir/one", "1\n");
    write(d, "dir/two", "2\n");
    fs::create_dir(d.join("dir/sub")).unwrap();
    ok(d, &["init"]);

    let out = cplane(d).args(["cat", "HEAD:blob.bin"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "cat HEAD:blob.bin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, bin, "cat must write the file's bytes exactly (non-UTF-8)");

    let out = cplane(d).args(["cat", "HEAD:link"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
    assert_eq!(s, b"target/does/not/exist", "cat of a symlink prints its target");

    let out = ok(d, &["cat", "HEAD:dir"]);
    for e in ["one", "two", "sub"] {
        assert!(
            out.lines().any(|l| l.contains(e)),
            "cat of a directory lists `{e}`:\n{out}"
        );
    }

    expect(d, &["cat", "HEAD:no/such/path"], 2, "unknown path");
    expect(d, &["cat", "HEAD:dir/nope"], 2, "unknown path");

    // older versions: cat reads the ref, not the working tree
    fs::write(d.join("blob.bin"), b"new contents").unwrap();
    ok(d, &["snapshot"]);
    let out = cplane(d).args(["cat", "HEAD~1:blob.bin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, bin, "HEAD~1 has the old bytes");
    let out = cplane(d).args(["cat", "HEAD:blob.bin"]).output().unwrap();
    assert_eq!(out.stdout, b"new contents");
}

// ------------------------------------------------------- very deep trees

#[test]
fn chain_of_620_nested_directories_works_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("plane");
    fs::create_dir(&root).unwrap();
    let chain = vec!["a"; 620].join("/");
    assert!(chain.len() > 1200);
    let deep_file = format!("{chain}/bottom.txt");
    write(&root, &deep_file, "bottom v1\n");
    write(&root, "top.txt", "top\n");

    ok(&root, &["init"]);
    ok(&root, &["snapshot", "-m", "deep", "--allow-unchanged"]);
    expect(&root, &["status"], 0, "clean");
    expect(&root, &["verify"], 0, "clean");
    expect(&root, &["diff", "HEAD"], 0, "no differences");
    expect(&root, &["diff", "HEAD~1", "HEAD"], 0, "same root");
    ok(&root, &["fsck"]);

    write(&root, &deep_file, "bottom v2\n");
    expect(&root, &["status"], 1, "the bottom file changed");
    expect(&root, &["verify"], 1, "the bottom file changed");
    let out = expect(&root, &["diff", "--name-status", "HEAD"], 1, "the bottom file changed");
    assert!(out.contains("bottom.txt"), "diff names the bottom file:\n{out}");
    ok(&root, &["snapshot", "-m", "v2"]);
    expect(&root, &["diff", "HEAD~1", "HEAD"], 1, "the two snapshots differ");

    ok(&root, &["rollback", "HEAD~1"]);
    assert_eq!(
        fs::read_to_string(root.join(&deep_file)).unwrap(),
        "bottom v1\n",
        "rollback restores the bottom file"
    );
    expect(&root, &["status"], 0, "clean after rollback");
    expect(&root, &["verify"], 0, "clean after rollback");

    // delete the whole chain; rollback must recreate all 620 levels
    rm_rf(&root.join("a"));
    expect(&root, &["status"], 1, "the chain is gone");
    expect(&root, &["diff", "HEAD"], 1, "the chain is gone");
    ok(&root, &["rollback", "HEAD"]);
    assert_eq!(fs::read_to_string(root.join(&deep_file)).unwrap(), "bottom v1\n");
    expect(&root, &["verify"], 0, "clean after rollback");
    ok(&root, &["fsck"]);
    rm_rf(&root);
}

// ----------------------------------------------------- fsck and damage

#[test]
fn fsck_reports_garbage_journal_as_damage() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    ok(d, &["init"]);
    ok(d, &["fsck"]);
    let journal = d.join(".cp/planes/main/journal");
    fs::write(&journal, b"this is not a journal \x00\xff\xfe garbage garbage garbage").unwrap();
    let out = expect(d, &["fsck"], 3, "a damaged journal is store damage");
    assert!(
        out.to_lowercase().contains("journal"),
        "fsck should name the journal:\n{out}"
    );
    let (c, v) = json(d, &["fsck"]);
    assert_eq!(c, 3);
    assert_eq!(v["clean"], false, "{v}");
    assert!(
        v["damage"].as_array().is_some_and(|a| !a.is_empty()),
        "fsck --json lists damage: {v}"
    );
}

#[test]
fn fsck_reports_missing_tmp_dir_as_damage() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    ok(d, &["init"]);
    assert!(d.join(".cp/tmp").is_dir(), "store-format.md: .cp/tmp/ exists");
    fs::remove_dir_all(d.join(".cp/tmp")).unwrap();
    expect(d, &["fsck"], 3, "a store without .cp/tmp is damaged");
    let (c, v) = json(d, &["fsck"]);
    assert_eq!(c, 3);
    assert_eq!(v["clean"], false, "{v}");
}

// ------------------------------------------------------------ sparse files

#[test]
fn sparse_file_comes_back_sparse_after_rollback() {
    const SIZE: u64 = 256 << 20;
    const AT: u64 = 128 << 20;
    const DATA: usize = 64 << 10;
    let t = tempfile::tempdir().unwrap();
    // As root (CI), a tmpfs: it always makes sparse files, whatever /tmp is.
    let (d, _mnt) = if is_root() {
        let at = t.path().join("fs");
        let mnt = Tmpfs::mount(&at, "512m");
        (at, mnt)
    } else {
        (t.path().to_path_buf(), None)
    };
    let d = d.as_path();
    let p = d.join("disk.img");
    let data: Vec<u8> = (0..DATA).map(|i| (i % 251) as u8 | 1).collect();
    {
        let f = fs::File::create(&p).unwrap();
        f.set_len(SIZE).unwrap();
        f.write_all_at(&data, AT).unwrap();
    }
    let before = fs::metadata(&p).unwrap();
    if before.blocks() * 512 >= 4 << 20 {
        assert!(!is_root(), "the tmpfs at {} made no sparse file", d.display());
        eprintln!("filesystem of {} does not make sparse files; skipped", d.display());
        return;
    }
    write(d, "small.txt", "s\n");
    ok(d, &["init"]);

    fs::remove_file(&p).unwrap();
    ok(d, &["rollback", "HEAD"]);
    let m = fs::metadata(&p).expect("rollback recreates disk.img");
    assert_eq!(m.len(), SIZE, "size");
    assert!(
        m.blocks() * 512 < 4 << 20,
        "disk.img must come back sparse: {} bytes allocated for {} bytes",
        m.blocks() * 512,
        SIZE
    );
    // bytes identical
    let mut f = fs::File::open(&p).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut off: u64 = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            let pos = off + i as u64;
            let want = if pos >= AT && pos < AT + DATA as u64 {
                data[(pos - AT) as usize]
            } else {
                0
            };
            if *b != want {
                panic!("disk.img differs at byte {pos}: {b:#x} != {want:#x}");
            }
        }
        off += n as u64;
    }
    assert_eq!(off, SIZE);
    expect(d, &["verify"], 0, "clean after rollback");
}

// -------------------------------------------- init leaves no .cp.init-*

#[test]
fn failed_init_on_fifo_leaves_no_store_and_no_init_dir() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    rustix::fs::mknodat(
        CWD,
        d.join("pipe"),
        rustix::fs::FileType::Fifo,
        Mode::from_bits_truncate(0o644),
        0,
    )
    .unwrap();
    expect(d, &["init"], 1, "a FIFO cannot be stored, init refuses");
    let (_, v) = json(d, &["init"]);
    assert!(
        v["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["code"] == "CP106")),
        "init --json lists the CP106 finding: {v}"
    );
    assert!(!d.join(".cp").exists(), "a refused init leaves no .cp");
    assert_eq!(
        init_leftovers(d),
        Vec::<String>::new(),
        "a refused init leaves no .cp.init-*"
    );
}

#[test]
fn failed_init_when_dot_cp_is_a_file_leaves_no_init_dir() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    fs::write(d.join(".cp"), "user file named .cp\n").unwrap();
    let (c, out, err) = run(d, &["init"]);
    assert_ne!(
        c, 0,
        "init cannot create .cp over a file\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(
        init_leftovers(d),
        Vec::<String>::new(),
        "a failed init leaves no .cp.init-*"
    );
    assert_eq!(
        fs::read_to_string(d.join(".cp")).unwrap(),
        "user file named .cp\n",
        "the user's file is untouched"
    );
}

/// `cplane init` run as an ordinary user: as root, nobody (65534) through
/// setpriv; otherwise the user running the tests.
fn init_unprivileged(dir: &Path) -> std::process::Output {
    common::cplane_unprivileged(dir)
        .arg("init")
        .output()
        .expect("spawn cplane as nobody")
}

#[test]
fn init_in_unwritable_directory_fails_and_leaves_nothing() {
    let (_t, d) = plane_others_can_reach();
    write(&d, "a.txt", "a\n");
    // As root: owned by root, not writable for nobody. Otherwise: not
    // writable for the (ordinary) user running the tests either.
    chmod(&d, if is_root() { 0o755 } else { 0o555 });
    let out = init_unprivileged(&d);
    chmod(&d, 0o755);
    assert_ne!(
        out.status.code(),
        Some(0),
        "init in a directory the user cannot write must fail\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.code().is_some(),
        "init must exit, not crash: {:?}",
        out.status
    );
    assert!(!d.join(".cp").exists());
    assert_eq!(init_leftovers(&d), Vec::<String>::new(), "no .cp.init-* left behind");
}

#[test]
fn init_failing_on_unreadable_file_leaves_no_init_dir() {
    let (_t, d) = plane_others_can_reach();
    write(&d, "a.txt", "a\n");
    write(&d, "secret", "root only\n");
    if is_root() {
        chmod(&d.join("secret"), 0o600); // root-owned, unreadable for nobody
        chown(&d, NOBODY, NOBODY); // the directory itself is writable for nobody
        chown(&d.join("a.txt"), NOBODY, NOBODY);
    } else {
        chmod(&d.join("secret"), 0o000); // unreadable for its (ordinary) owner too
    }
    let out = init_unprivileged(&d);
    assert_eq!(
        out.status.code(),
        Some(1),
        "init refuses a tree with an unreadable file (exit 1)\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.join(".cp").exists(), "a refused init leaves no store");
    assert_eq!(
        init_leftovers(&d),
        Vec::<String>::new(),
        "a failed init leaves no .cp.init-*"
    );
}

#[test]
fn init_removes_stale_init_dir_of_dead_process() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    // a pid that is not running
    let pid = (2..4_000_000u32)
        .rev()
        .step_by(7919)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let stale = d.join(format!(".cp.init-{pid}"));
    fs::create_dir_all(stale.join("packs")).unwrap();
    fs::write(stale.join("FORMAT"), "cplane-store 2\n").unwrap();
    ok(d, &["init"]);
    assert!(d.join(".cp").is_dir());
    assert_eq!(
        init_leftovers(d),
        Vec::<String>::new(),
        "init removes a dead process's .cp.init-{pid}"
    );
    // and the stale directory was not recorded as plane content
    let out = ok(d, &["cat", "HEAD:"]);
    assert!(
        !out.contains(".cp.init"),
        "the snapshot must not contain .cp.init-*:\n{out}"
    );
}
