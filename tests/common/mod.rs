//! Helpers shared by the integration tests that know the store's internals.
#![allow(dead_code)]

use assert_cmd::Command;
use cplane::id::ObjectId;
use cplane::store::Store;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

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
