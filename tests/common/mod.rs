//! Helpers shared by the integration tests that know the store's internals.
#![allow(dead_code)]

pub mod garage;
pub mod packages;

use assert_cmd::Command;
use cplane::id::ObjectId;
use cplane::store::Store;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

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

/// Every file under `root` (the plane and its `.cp`): path → bytes.
pub fn listing(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if p != root.join(".cp/lock") {
                // (`.cp/lock` names the last process that held the store lock.)
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&p).unwrap_or_default(),
                );
            }
        }
    }
    out
}

/// A governed plane (`init --governed`) whose ledger trusts an admin key
/// generated in `keys` (`keys/admin`, signing every later command through
/// `key use`), with the trust sealed: (plane dir, keys dir, admin key path).
pub fn governed_with_admin() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let plane = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let d = plane.path();
    stdout(d, &["init", "--governed"]);
    let admin = keys.path().join("admin");
    stdout(
        d,
        &[
            "key",
            "generate",
            "--out",
            admin.to_str().unwrap(),
            "--comment",
            "admin",
        ],
    );
    stdout(d, &["key", "use", admin.to_str().unwrap()]);
    stdout(
        d,
        &["key", "trust", &format!("{}.pub", admin.display()), "--role", "admin"],
    );
    stdout(d, &["snapshot", "-m", "trusted keys"]);
    (plane, keys, admin)
}

/// Every path under `root` outside `.cp` (a plane as its user sees it):
/// (mode bits, bytes; for a symlink 0 and its target; for a directory `<dir>`).
pub fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".cp") {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    (0, fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()),
                );
            } else if m.is_dir() {
                out.insert(rel, (mode, b"<dir>".to_vec()));
                stack.push(p);
            } else {
                out.insert(rel, (mode, fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Starts the real binary in `dir` in the background with `env` added,
/// stdout and stderr piped.
pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = StdCommand::new(env!("CARGO_BIN_EXE_cplane"));
    c.args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// Waits until `marker` exists; fails the test (with the child's stderr) if
/// `child` ends first, or after a minute.
pub fn wait_for(marker: &Path, child: &mut Child) {
    use std::io::Read;
    let t0 = Instant::now();
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the command ended ({status}) before its pause point: {err}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never reached {}",
            marker.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `cplane ARGS` (a checkout of plane main) in `dir` with `env` added
/// and returns it once it has paused after `after` journal operations.
pub fn paused_after_ops(dir: &Path, args: &[&str], after: usize, env: &[(&str, &str)]) -> Child {
    let marker = dir.join(".cp/planes/main/paused");
    let _ = fs::remove_file(&marker); // left by an earlier killed run
    let after = after.to_string();
    let mut env = env.to_vec();
    env.push((PAUSE_AFTER_OPS, &after));
    let mut child = spawn(dir, args, &env);
    wait_for(&marker, &mut child);
    child
}

/// Runs `cplane ARGS` (a checkout of plane main) in `dir` with `env` added
/// until it pauses after `after` journal operations, then SIGKILLs it.
pub fn kill_after_ops(dir: &Path, args: &[&str], after: usize, env: &[(&str, &str)]) {
    let mut child = paused_after_ops(dir, args, after, env);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Runs `cplane ARGS` (a checkout of plane main) in `dir` until everything is
/// staged, runs `meanwhile`, lets it finish; returns (exit code or -1, stdout, stderr).
pub fn paused_after_staging(dir: &Path, args: &[&str], meanwhile: impl FnOnce()) -> (i32, String, String) {
    let marker = dir.join(".cp/planes/main/staged");
    let _ = fs::remove_file(&marker); // left by an earlier killed run
    let mut child = spawn(dir, args, &[(PAUSE_STAGED, "1")]);
    wait_for(&marker, &mut child);
    meanwhile();
    fs::remove_file(&marker).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The stdout of `cplane ARGS` in `dir`, which must succeed.
pub fn stdout(dir: &Path, args: &[&str]) -> String {
    stdout_code(dir, args, 0)
}

/// The stdout of `cplane ARGS` in `dir`, which must exit `code`.
pub fn stdout_code(dir: &Path, args: &[&str], code: i32) -> String {
    let out = cplane(dir).args(args).assert().code(code).get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

/// The RESCUE-… checkpoint named in a command's output.
pub fn rescue_name(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || "`'\"(),;:*".contains(c))
        .find(|w| w.starts_with("RESCUE-"))
        .unwrap_or_else(|| panic!("no RESCUE-… checkpoint named in:\n{text}"))
        .to_string()
}

/// Appends `bytes` to the existing file `dir/rel` (same inode, unlike [`write`]).
pub fn append(dir: &Path, rel: &str, bytes: &[u8]) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().append(true).open(dir.join(rel)).unwrap();
    f.write_all(bytes).unwrap();
}

/// Writes `body` to `dir/rel`, creating parent directories.
pub fn write(dir: &Path, rel: &str, body: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

/// Overwrites the file at `p` with `body` and puts its modification time
/// back: an edit (same size, say) that a stat cache cannot see by mtime.
pub fn rewrite_keeping_mtime(p: &Path, body: &[u8]) {
    let mtime = fs::metadata(p).unwrap().modified().unwrap();
    fs::write(p, body).unwrap();
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// Makes `dir/to` (creating its parent directories) another name of `dir/from`.
pub fn hard_link(dir: &Path, from: &str, to: &str) {
    let to = dir.join(to);
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::hard_link(dir.join(from), to).unwrap();
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

/// Skips (returns true, saying so) when not root: the test needs root (to
/// chown, mount or drop privileges). CI runs the suite as root, so there it never skips.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        false
    } else {
        eprintln!("{test}: skipped, needs root (CI runs the suite as root)");
        true
    }
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

/// A temporary directory other users can traverse (a `tempfile` directory is
/// 0700) and the path of a plane `plane` inside it, not yet created.
pub fn plane_others_can_reach() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let plane = t.path().join("plane");
    (t, plane)
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

/// `n` bytes no compressor can shrink, the same for the same `seed`
/// (xorshift64): a binary, a secret, a file stored raw.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
