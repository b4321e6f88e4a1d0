//! Helpers shared by the integration tests that know the store's internals.
#![allow(dead_code)]

use assert_cmd::Command;
use cplane::id::ObjectId;
use cplane::store::Store;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

/// Debug builds of the binary pause a checkout after this many journal
/// operations (after creating `.cp/planes/<plane>/paused`), so a test can kill it.
pub const PAUSE_AFTER_OPS: &str = "CPLANE_TEST_PAUSE_AFTER_OPS";

/// Debug builds of the binary pause a checkout once everything is staged
/// (after creating `.cp/planes/<plane>/staged`) until the test deletes that file.
pub const PAUSE_STAGED: &str = "CPLANE_TEST_PAUSE_STAGED";

/// The real binary, run in `dir`, with a short lock timeout.
pub fn cplane(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("cplane").unwrap();
    c.current_dir(dir).env("CPLANE_LOCK_TIMEOUT_MS", "300");
    c
}

/// Writes `body` to `dir/rel`, creating parent directories.
pub fn write(dir: &Path, rel: &str, body: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

/// Flips one byte at the end of the stored record of `id` (inside its body).
pub fn corrupt(root: &Path, id: &ObjectId) {
    let store = Store::open(root).unwrap();
    let (pack, e) = store.locate(id).expect("object is stored");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pack.pack_path)
        .unwrap();
    let at = e.offset + e.len - 1;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, at).unwrap();
}

/// User and group id of `nobody`, the ordinary user tests drop to as root.
pub const NOBODY: u32 = 65534;

/// Whether the tests run as root (CI does).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The real binary run in `dir` as uid `uid` (gid `uid`, no supplementary
/// groups) through `setpriv`; needs root. Panics when setpriv is missing: a
/// test that must drop privileges never skips as root.
pub fn cplane_as(uid: u32, dir: &Path) -> Command {
    assert!(is_root(), "dropping privileges with setpriv needs root");
    let found = StdCommand::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "setpriv is not installed (needed to run cplane as an ordinary user): apt-get install util-linux"
    );
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_cplane"))
        .current_dir(dir)
        .env("CPLANE_LOCK_TIMEOUT_MS", "300");
    c
}

/// `chown -R uid:uid root` (symlinks themselves, not their targets).
pub fn chown_tree(root: &Path, uid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {uid}:{uid} {}: {e}", root.display()));
    if fs::symlink_metadata(root).unwrap().is_dir() {
        for e in fs::read_dir(root).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// Lets user `uid` work in `plane` (its files and store): as root, hands the
/// whole tree to `uid` and checks that every directory above it can be
/// traversed (a `tempfile` directory is 0700, so keep the plane *as* or *in*
/// a directory given away here, or make its parent 0755). Does nothing when not root.
pub fn hand_over(plane: &Path, uid: u32) {
    if !is_root() {
        return;
    }
    chown_tree(plane, uid);
    for dir in plane.ancestors().skip(1) {
        use std::os::unix::fs::MetadataExt;
        let mode = fs::metadata(dir).unwrap().mode();
        assert!(
            mode & 0o001 != 0,
            "{} (mode {:o}) is not traversable by uid {uid}: chmod it 0755",
            dir.display(),
            mode & 0o7777
        );
    }
}

/// The real binary in `dir` as an ordinary user: as `nobody` through
/// `setpriv` when root (after [`hand_over`]), else directly as the current user.
pub fn cplane_unprivileged(dir: &Path) -> Command {
    if is_root() { cplane_as(NOBODY, dir) } else { cplane(dir) }
}

/// A tmpfs of `size` mounted at `at` (created), unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (the test says why it did not run) only when not root; as root
    /// (CI) a mount that fails fails the test.
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        fs::create_dir_all(at).unwrap();
        let out = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `mount` (util-linux): {e}"));
        assert!(
            out.status.success(),
            "`mount -t tmpfs -o size={size} tmpfs {}` failed as root ({}): {}",
            at.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg("-l").arg(&self.0).status();
    }
}
