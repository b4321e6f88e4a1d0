//! Helpers for the package tests: a governed plane that trusts an admin
//! key, packing files with it, installing paused before the seal.

use super::{cplane, stdout, write};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A governed plane whose ledger trusts `admin` (a key outside it, in `keys`).
pub struct Setup {
    pub plane: tempfile::TempDir,
    pub keys: tempfile::TempDir,
    pub admin: PathBuf,
}

/// [`Setup`] from [`super::governed_with_admin`].
pub fn setup() -> Setup {
    let (plane, keys, admin) = super::governed_with_admin();
    Setup { plane, keys, admin }
}

/// Packs `files` (path, body, mode) from a source tree `src-NAME` under
/// SPEC-000 with `key`, into `NAME.cppkg` beside the keys; `extra` is
/// added to the `pack` command line.
pub fn pack_with(s: &Setup, name: &str, files: &[(&str, &str, u32)], key: &Path, extra: &[&str]) -> PathBuf {
    let src = s.keys.path().join(format!("src-{name}"));
    for (p, body, mode) in files {
        write(&src, p, body);
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(*mode)).unwrap();
    }
    let out = s.keys.path().join(format!("{name}.cppkg"));
    let mut args = vec![
        "pack",
        "--spec",
        "SPEC-000",
        "--from",
        src.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    stdout(s.plane.path(), &args);
    out
}

/// `cplane ARGS` in `d`: its exit code (-1 when killed) and stdout then stderr.
pub fn run(d: &Path, args: &[&str]) -> (i32, String) {
    let o = cplane(d).args(args).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), all)
}

/// Starts `cplane install PKG` in `d` and returns it once it has paused at
/// its named `step` (`registry`, `owned`: see `CPLANE_TEST_PAUSE_AT_STEP`);
/// removing `.cp/planes/main/paused` lets it go on.
pub fn install_paused_at(d: &Path, pkg: &Path, step: &str) -> std::process::Child {
    let marker = d.join(".cp/planes/main/paused");
    let _ = fs::remove_file(&marker);
    let args = ["install", pkg.to_str().unwrap()];
    let mut child = super::spawn(d, &args, &[("CPLANE_TEST_PAUSE_AT_STEP", step)]);
    super::wait_for(&marker, &mut child);
    child
}

/// Runs `cplane install PKG` in `d` until its files are written and owned
/// (before the seal), runs `meanwhile`, lets it finish; returns its output.
pub fn install_paused_before_seal(d: &Path, pkg: &Path, meanwhile: impl FnOnce()) -> std::process::Output {
    let child = install_paused_at(d, pkg, "owned");
    meanwhile();
    fs::remove_file(d.join(".cp/planes/main/paused")).unwrap();
    child.wait_with_output().unwrap()
}

/// The `prebuilt-*` directories in the store's `.cp/tmp` of the plane at `d`.
pub fn prebuilt_dirs(d: &Path) -> Vec<PathBuf> {
    fs::read_dir(d.join(".cp/tmp"))
        .map(|r| {
            r.map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("prebuilt-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an install into plane main is pending (`install.pending`).
pub fn install_pending(d: &Path) -> bool {
    d.join(".cp/planes/main/install.pending").exists()
}

/// Whether a command's ledger intent is pending in plane main (`ledger.pending`).
pub fn intent_pending(d: &Path) -> bool {
    d.join(".cp/planes/main/ledger.pending").exists()
}
