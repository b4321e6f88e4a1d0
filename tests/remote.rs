//! Remotes (issue 12): push, pull, clone and `fsck --remote` against
//! `file://` remotes in temporary directories, driving the real binary.

mod common;

use common::{cplane, spawn, stdout, stdout_code, tree, wait_for, write};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A plane with 5 directories of 10 files, an executable, a symlink and an
/// empty directory, sealed by `init`.
fn plane_with_files() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in 0..5 {
        for j in 0..10 {
            write(d.path(), &format!("d{i}/f{j}.txt"), &format!("dir {i} file {j}\n"));
        }
    }
    write(d.path(), "bin/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(d.path().join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("d0/f0.txt", d.path().join("link")).unwrap();
    fs::create_dir(d.path().join("empty")).unwrap();
    stdout(d.path(), &["init", "-q"]);
    d
}

/// `file://` URL of a directory.
fn url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// A plane pushed to a new remote: (plane, remote dir holder, remote path).
fn pushed() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let a = plane_with_files();
    let (r, rp) = push_to_new_remote(a.path());
    (a, r, rp)
}

/// Adds a new directory remote `origin` to the plane at `plane` and pushes
/// to it: (remote dir holder, remote path).
fn push_to_new_remote(plane: &Path) -> (tempfile::TempDir, PathBuf) {
    let r = tempfile::tempdir().unwrap();
    let rp = r.path().join("remote");
    stdout(plane, &["remote", "add", "origin", &url(&rp)]);
    stdout(plane, &["push"]);
    (r, rp)
}

/// Entry count of a pack index file.
fn idx_count(p: &Path) -> u64 {
    let b = fs::read(p).unwrap();
    u64::from_le_bytes(b[8..16].try_into().unwrap())
}

/// The remote's pack indexes.
fn remote_indexes(rp: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(rp.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    v.sort();
    v
}

/// A fresh store (init of an empty directory) with `rp` as origin.
fn empty_store_with(rp: &Path) -> tempfile::TempDir {
    let b = tempfile::tempdir().unwrap();
    stdout(b.path(), &["init", "-q"]);
    stdout(b.path(), &["remote", "add", "origin", &url(rp)]);
    b
}

fn stderr_of(dir: &Path, args: &[&str], code: i32) -> String {
    let out = cplane(dir).args(args).assert().code(code).get_output().stderr.clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn push_then_clone_reproduces_the_tree_and_history() {
    let (a, r, rp) = pushed();
    let c = r.path().join("clone");
    stdout(r.path(), &["clone", &url(&rp), c.to_str().unwrap()]);
    assert_eq!(tree(a.path()), tree(&c));
    // Same HEAD, same checkpoints, clean status, sound store and ledger.
    let head = |d: &Path| fs::read_to_string(d.join(".cp/planes/main/HEAD")).unwrap();
    assert_eq!(head(a.path()), head(&c));
    assert_eq!(
        stdout(a.path(), &["checkpoints", "--json"]),
        stdout(&c, &["checkpoints", "--json"])
    );
    stdout(&c, &["status"]);
    stdout(&c, &["fsck"]);
    stdout(&c, &["ledger", "verify"]);
    stdout(&c, &["fsck", "--remote", "origin", "--read-data"]);
    // The clone pushes back with nothing to send.
    assert!(stdout(&c, &["push"]).contains("up to date"));
    // A clone into a non-empty directory is refused, touching nothing.
    let err = stderr_of(r.path(), &["clone", &url(&rp), c.to_str().unwrap()], 2);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn pull_brings_remote_tracking_refs_for_diff_and_rollback() {
    let (a, _r, rp) = pushed();
    let b = empty_store_with(&rp);
    let out = stdout(b.path(), &["pull", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["packs"], 1);
    assert!(v["objects_verified"].as_u64().unwrap() > 50);
    // The working tree is untouched; the remote state is a ref away.
    let d = stdout_code(b.path(), &["diff", "origin/main/HEAD", "HEAD"], 1);
    assert!(d.contains("d0/f0.txt"), "{d}");
    let cp = stdout(a.path(), &["checkpoints", "--json"]);
    let name = serde_json::from_str::<serde_json::Value>(&cp).unwrap()[0]["checkpoint"]
        .as_str()
        .unwrap()
        .to_string();
    stdout(b.path(), &["show", &format!("origin/main/{name}")]);
    let err = stderr_of(b.path(), &["show", "origin/main/NOPE"], 2);
    assert!(err.contains("cplane pull origin"), "{err}");
    stdout(b.path(), &["rollback", "origin/main/HEAD"]);
    assert_eq!(tree(a.path()), tree(b.path()));
    // gc keeps what the remote-tracking refs reach.
    stdout(b.path(), &["gc"]);
    stdout(b.path(), &["fsck"]);
    stdout_code(b.path(), &["diff", "origin/main/HEAD", "HEAD"], 0);
}

#[test]
fn a_second_push_uploads_only_what_changed() {
    let (a, _r, rp) = pushed();
    assert_eq!(remote_indexes(&rp).len(), 1);
    for j in 0..10 {
        write(a.path(), &format!("d3/f{j}.txt"), &format!("changed {j}\n"));
    }
    stdout(a.path(), &["snapshot", "-q"]);
    let out = stdout(a.path(), &["push", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // 10 blobs, the trees d3 and the root, the snapshot.
    assert_eq!(v["objects"], 13, "{out}");
    let idx = remote_indexes(&rp);
    assert_eq!(idx.len(), 2);
    let counts: Vec<u64> = idx.iter().map(|p| idx_count(p)).collect();
    assert!(counts.contains(&13), "{counts:?}");
    // Nothing new: nothing uploaded.
    let out = stdout(a.path(), &["push", "--json"]);
    assert!(out.contains("\"up_to_date\":true"), "{out}");
    assert_eq!(remote_indexes(&rp).len(), 2);
}

#[test]
fn two_stores_pushing_the_loser_pulls_first_and_both_updates_are_kept() {
    let (a, r, rp) = pushed();
    let b = r.path().join("b");
    stdout(r.path(), &["clone", &url(&rp), b.to_str().unwrap()]);
    write(a.path(), "from-a.txt", "a\n");
    stdout(a.path(), &["snapshot", "-q", "--name", "A1"]);
    write(&b, "from-b.txt", "b\n");
    stdout(&b, &["snapshot", "-q", "--name", "B1"]);
    stdout(a.path(), &["push"]);
    let before = fs::read(rp.join("planes/main/HEAD")).unwrap();
    let err = stderr_of(&b, &["push"], 2);
    assert!(err.contains("the remote moved; pull first"), "{err}");
    assert!(err.contains("cplane pull origin"), "{err}");
    assert_eq!(fs::read(rp.join("planes/main/HEAD")).unwrap(), before, "nothing moved");
    assert!(!rp.join("planes/main/checkpoints/B1").exists());
    stdout(&b, &["pull"]);
    stdout_code(&b, &["diff", "origin/main/HEAD", "HEAD"], 1);
    stdout(&b, &["push"]);
    assert!(rp.join("planes/main/checkpoints/A1").exists());
    assert!(rp.join("planes/main/checkpoints/B1").exists());
    stdout(&b, &["fsck", "--remote", "origin", "--read-data"]);
    // A third store sees both: B's HEAD, A's checkpoint.
    let c = empty_store_with(&rp);
    stdout(c.path(), &["pull"]);
    stdout(c.path(), &["rollback", "origin/main/A1"]);
    assert_eq!(fs::read(c.path().join("from-a.txt")).unwrap(), b"a\n");
    stdout(c.path(), &["rollback", "origin/main/HEAD"]);
    assert_eq!(fs::read(c.path().join("from-b.txt")).unwrap(), b"b\n");
    assert!(!c.path().join("from-a.txt").exists());
}

/// Byte offset of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("bytes are in the pack")
}

#[test]
fn a_flipped_byte_on_the_remote_is_refused_and_named() {
    let a = tempfile::tempdir().unwrap();
    write(a.path(), "plain.txt", "0123456789abcdef\n");
    stdout(a.path(), &["init", "-q"]);
    let (_r, rp) = push_to_new_remote(a.path());
    let pack = remote_indexes(&rp)[0].with_extension("pack");
    let mut bytes = fs::read(&pack).unwrap();
    let at = find(&bytes, b"0123456789abcdef\n");
    bytes[at + 3] ^= 0x01;
    fs::write(&pack, &bytes).unwrap();
    let id = blake3::hash(b"0123456789abcdef\n").to_hex().to_string();
    let b = empty_store_with(&rp);
    let before = common::listing(b.path());
    let err = stderr_of(b.path(), &["pull"], 3);
    assert!(err.contains(&id), "names the object: {err}");
    assert!(err.contains("remote origin"), "names the remote: {err}");
    stdout(b.path(), &["fsck"]);
    assert_eq!(before, common::listing(b.path()), "nothing of it was kept");
    let out = stdout_code(b.path(), &["fsck", "--remote", "origin", "--read-data"], 3);
    assert!(out.contains(&id), "{out}");
}

#[test]
fn an_object_swapped_for_another_is_refused_and_named() {
    let a = tempfile::tempdir().unwrap();
    write(a.path(), "one.txt", "aaaaaaaa");
    write(a.path(), "two.txt", "bbbbbbbb");
    stdout(a.path(), &["init", "-q"]);
    let (_r, rp) = push_to_new_remote(a.path());
    let pack = remote_indexes(&rp)[0].with_extension("pack");
    let mut bytes = fs::read(&pack).unwrap();
    // Both blobs are stored uncompressed (too short to shrink): the record
    // of one now holds the other's bytes.
    let at = find(&bytes, b"aaaaaaaa");
    bytes[at..at + 8].copy_from_slice(b"bbbbbbbb");
    fs::write(&pack, &bytes).unwrap();
    let id = blake3::hash(b"aaaaaaaa").to_hex().to_string();
    let b = empty_store_with(&rp);
    let err = stderr_of(b.path(), &["pull"], 3);
    assert!(err.contains(&id), "names the object: {err}");
    assert!(
        err.contains(&blake3::hash(b"bbbbbbbb").to_hex().to_string()),
        "and what it holds: {err}"
    );
    stdout(b.path(), &["fsck"]);
    let e = stderr_of(b.path(), &["diff", "origin/main/HEAD", "HEAD"], 2);
    assert!(e.contains("cplane pull origin"), "{e}");
}

#[test]
fn remote_add_never_stores_credentials() {
    let d = tempfile::tempdir().unwrap();
    stdout(d.path(), &["init", "-q"]);
    cplane(d.path())
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTKEYNEVERSTORED")
        .env("AWS_SECRET_ACCESS_KEY", "s3cretNeverStored")
        .env("AWS_SESSION_TOKEN", "tokenNeverStored")
        .args([
            "remote",
            "add",
            "s3",
            "s3://bucket/some/prefix",
            "--endpoint",
            "http://127.0.0.1:3900",
            "--region",
            "garage",
        ])
        .assert()
        .success();
    let config = fs::read_to_string(d.path().join(".cp/config.json")).unwrap();
    for secret in ["AKIDTESTKEYNEVERSTORED", "s3cretNeverStored", "tokenNeverStored"] {
        assert!(!config.contains(secret), "{config}");
    }
    assert!(
        config.contains("s3://bucket/some/prefix") && config.contains("garage"),
        "{config}"
    );
    // Credentials in the URL or endpoint are refused, not stored.
    let err = stderr_of(d.path(), &["remote", "add", "bad", "s3://AKID:secret@bucket/p"], 2);
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    let err = stderr_of(
        d.path(),
        &[
            "remote",
            "add",
            "bad",
            "s3://bucket/p",
            "--endpoint",
            "http://AKID:secret@127.0.0.1:3900",
        ],
        2,
    );
    assert!(err.contains("credentials"), "{err}");
    let config = fs::read_to_string(d.path().join(".cp/config.json")).unwrap();
    assert!(!config.contains("secret"), "{config}");
    let list = stdout(d.path(), &["remote", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["name"], "s3");
    assert_eq!(v[0]["endpoint"], "http://127.0.0.1:3900");
    stdout(d.path(), &["remote", "remove", "s3"]);
    assert_eq!(stdout(d.path(), &["remote", "list", "--json"]).trim(), "[]");
    // A config without remotes is byte for byte what older builds wrote.
    assert!(
        !fs::read_to_string(d.path().join(".cp/config.json"))
            .unwrap()
            .contains("remotes")
    );
}

#[test]
fn bad_urls_and_unknown_remotes_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    stdout(d.path(), &["init", "-q"]);
    let err = stderr_of(d.path(), &["remote", "add", "x", "http://example/x"], 2);
    assert!(err.contains("s3://BUCKET/PREFIX") && err.contains("file:///"), "{err}");
    let err = stderr_of(d.path(), &["remote", "add", "x", "file://relative/path"], 2);
    assert!(err.contains("absolute path"), "{err}");
    let err = stderr_of(d.path(), &["push"], 2);
    assert!(err.contains("no remote named `origin`"), "{err}");
    assert!(err.contains("cplane remote add"), "{err}");
    let err = stderr_of(d.path(), &["pull", "nope"], 2);
    assert!(err.contains("no remote named `nope`"), "{err}");
    let err = stderr_of(d.path(), &["fsck", "--remote", "nope"], 2);
    assert!(err.contains("no remote named `nope`"), "{err}");
    stdout(d.path(), &["remote", "add", "origin", "file:///tmp/x"]);
    let err = stderr_of(d.path(), &["remote", "add", "origin", "file:///tmp/y"], 2);
    assert!(err.contains("already exists"), "{err}");
    let out = cplane(d.path())
        .args(["pull", "nope", "--json"])
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v["error"].as_str().unwrap().contains("nope"));
}

/// Starts `cplane push` in `dir` paused at `step`, kills it there.
fn kill_push_at(dir: &Path, step: &str) {
    let marker = dir.join(".cp/remote-paused");
    let mut child = spawn(dir, &["push"], &[("CPLANE_TEST_REMOTE_PAUSE", step)]);
    wait_for(&marker, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    fs::remove_file(&marker).unwrap();
}

#[test]
fn a_push_killed_mid_way_leaves_the_remote_refs_old() {
    let (a, _r, rp) = pushed();
    let head = || fs::read(rp.join("planes/main/HEAD")).unwrap();
    let old = head();
    for j in 0..3 {
        write(a.path(), &format!("d1/f{j}.txt"), &format!("new {j}\n"));
    }
    stdout(a.path(), &["snapshot", "-q", "--name", "NEW"]);
    for step in ["pack-uploaded", "index-uploaded"] {
        kill_push_at(a.path(), step);
        assert_eq!(head(), old, "killed at {step}");
        assert!(!rp.join("planes/main/checkpoints/NEW").exists());
        let c = empty_store_with(&rp);
        stdout(c.path(), &["pull"]);
        stdout(c.path(), &["fsck"]);
        stdout(a.path(), &["fsck", "--remote", "origin"]);
    }
    // Killed after HEAD moved: HEAD names a complete state.
    kill_push_at(a.path(), "head-moved");
    assert_ne!(head(), old);
    stdout(a.path(), &["fsck", "--remote", "origin", "--read-data"]);
    // The next push finishes the job (the store's tracking ref is behind:
    // it pulls first).
    stdout(a.path(), &["pull"]);
    stdout(a.path(), &["push"]);
    assert!(rp.join("planes/main/checkpoints/NEW").exists());
    let c = tempfile::tempdir().unwrap();
    let cd = c.path().join("c");
    stdout(c.path(), &["clone", &url(&rp), cd.to_str().unwrap()]);
    assert_eq!(tree(a.path()), tree(&cd));
}

#[test]
fn a_pull_killed_mid_way_leaves_the_store_sound() {
    let (_a, _r, rp) = pushed();
    let b = empty_store_with(&rp);
    let marker = b.path().join(".cp/remote-paused");
    let mut child = spawn(b.path(), &["pull"], &[("CPLANE_TEST_REMOTE_PAUSE", "imported")]);
    wait_for(&marker, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    fs::remove_file(&marker).unwrap();
    stdout(b.path(), &["fsck"]);
    // Not yet tracked; the next pull finishes (the pack is not fetched twice).
    stderr_of(b.path(), &["show", "origin/main/HEAD"], 2);
    let out = stdout(b.path(), &["pull", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["packs"], 0, "{out}");
    stdout(b.path(), &["show", "origin/main/HEAD"]);
}

#[test]
fn a_governed_plane_travels_with_its_ledger_and_a_forged_one_is_refused() {
    let (a, _keys, _admin) = common::governed_with_admin();
    let (r, rp) = push_to_new_remote(a.path());
    let head = fs::read_to_string(rp.join("planes/main/HEAD")).unwrap();
    let ledger_line = head.lines().nth(1).expect("a governed HEAD names its ledger");
    let copy = rp
        .join("planes/main/ledgers")
        .join(ledger_line.strip_prefix("ledger ").unwrap());
    assert_eq!(
        fs::read(&copy).unwrap(),
        fs::read(a.path().join(".cp/planes/main/ledger")).unwrap()
    );
    // A clone has the same ledger, signatures and all, and verifies clean.
    let c = r.path().join("clone");
    let out = stdout(r.path(), &["clone", &url(&rp), c.to_str().unwrap()]);
    assert!(out.contains("cloned origin/main"), "{out}");
    stdout(&c, &["ledger", "verify"]);
    stdout(&c, &["verify"]);
    // A ledger rewritten on the remote (renamed to its new hash, so only
    // the chain can tell) is refused, named, and nothing is kept.
    let mut forged = fs::read_to_string(&copy).unwrap();
    forged = forged.replacen("\"op\":\"init\"", "\"op\":\"snapshot\"", 1);
    let forged_id = blake3::hash(forged.as_bytes()).to_hex().to_string();
    fs::write(rp.join("planes/main/ledgers").join(&forged_id), &forged).unwrap();
    let first = head.lines().next().unwrap();
    fs::write(rp.join("planes/main/HEAD"), format!("{first}\nledger {forged_id}\n")).unwrap();
    let b = empty_store_with(&rp);
    let err = stderr_of(b.path(), &["pull"], 3);
    assert!(err.contains("ledger of plane main"), "{err}");
    stdout(b.path(), &["fsck"]);
    stderr_of(b.path(), &["show", "origin/main/HEAD"], 2);
    // A governed HEAD without its ledger is refused too.
    fs::write(rp.join("planes/main/HEAD"), format!("{first}\n")).unwrap();
    let err = stderr_of(b.path(), &["pull"], 3);
    assert!(err.contains("governed"), "{err}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 6, .. Default::default() })]

    /// Push, change, push again, then clone: the clone is the tree, whatever
    /// the tree and the change (the incremental walk never skips an object
    /// the remote lacks).
    #[test]
    fn push_then_clone_reproduces_any_tree(
        files in proptest::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2}){0,2}", proptest::collection::vec(0u8..4, 0..40), 1..12),
        changed in proptest::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2}){0,2}", proptest::collection::vec(0u8..4, 0..40), 0..6),
    ) {
        let a = tempfile::tempdir().unwrap();
        let put = |files: &BTreeMap<String, Vec<u8>>| {
            for (p, bytes) in files {
                let path = a.path().join(p);
                // A name already a directory (or under a file) is skipped.
                if path.is_dir() || path.ancestors().skip(1).any(|d| d.is_file()) {
                    continue;
                }
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, bytes).unwrap();
            }
        };
        put(&files);
        stdout(a.path(), &["init", "-q"]);
        let (r, rp) = push_to_new_remote(a.path());
        put(&changed);
        stdout(a.path(), &["snapshot", "-q", "--allow-unchanged"]);
        stdout(a.path(), &["push"]);
        let c = r.path().join("clone");
        stdout(r.path(), &["clone", &url(&rp), c.to_str().unwrap()]);
        proptest::prop_assert_eq!(tree(a.path()), tree(&c));
    }
}

#[test]
fn reading_a_missing_directory_remote_is_an_error_not_an_empty_remote() {
    let d = tempfile::tempdir().unwrap();
    stdout(d.path(), &["init", "-q"]);
    let missing = d.path().join("nowhere");
    stdout(d.path(), &["remote", "add", "origin", &url(&missing)]);
    let err = stderr_of(d.path(), &["pull"], 2);
    assert!(err.contains("is not a directory"), "{err}");
    let err = stderr_of(d.path(), &["clone", &url(&missing), "x"], 2);
    assert!(err.contains("is not a directory"), "{err}");
    assert!(!missing.exists() && !d.path().join("x").exists());
    stdout(d.path(), &["push"]);
    assert!(missing.join("FORMAT").is_file());
}

#[test]
fn a_pull_after_gc_refetches_objects_of_packs_imported_before() {
    // A remote with two planes; a clone takes only `main`, so the objects
    // of plane `docs` it imported with the shared pack are garbage for its
    // gc. A later pull that tracks `docs` must fetch them again, not call
    // the remote damaged.
    let a = plane_with_files();
    write(a.path(), "docs/readme.txt", "the docs\n");
    write(a.path(), "docs/guide/one.txt", "one\n");
    stdout(a.path(), &["plane", "add", "docs", "docs"]);
    let (r, rp) = push_to_new_remote(a.path());
    let c = r.path().join("clone");
    stdout(r.path(), &["clone", &url(&rp), c.to_str().unwrap()]);
    stdout(&c, &["gc"]);
    let out = stdout(&c, &["pull", "--json"]);
    assert!(out.contains("\"plane\":\"docs\""), "{out}");
    stdout(&c, &["fsck"]);
    let show = stdout(&c, &["show", "origin/docs/HEAD"]);
    assert!(show.contains("plane      docs"), "{show}");
    assert_eq!(stdout(&c, &["cat", "origin/docs/HEAD:readme.txt"]), "the docs\n");
}

#[test]
fn an_empty_directory_is_not_a_remote_with_no_planes() {
    // A remote whose directory is empty (a file system not mounted, a wrong
    // path or prefix) holds no cplane remote: pull and fsck --remote say
    // so instead of dropping every remote-tracking ref as "gone".
    let (_a, r, rp) = pushed();
    let b = empty_store_with(&rp);
    stdout(b.path(), &["pull"]);
    fs::rename(&rp, r.path().join("moved")).unwrap();
    fs::create_dir(&rp).unwrap();
    let err = stderr_of(b.path(), &["pull"], 2);
    assert!(err.contains("no FORMAT"), "{err}");
    let err = stderr_of(b.path(), &["fsck", "--remote", "origin"], 2);
    assert!(err.contains("no FORMAT"), "{err}");
    stdout(b.path(), &["show", "origin/main/HEAD"]);
}

/// Rewrites entry `id` of the pack index at `idx` with `f(offset, len)`
/// and seals it again with a correct BLAKE3 trailer: damage only the
/// entries can show.
fn rewrite_idx_entry(idx: &Path, id: &str, f: impl Fn(u64, u64) -> (u64, u64)) {
    let mut b = fs::read(idx).unwrap();
    let count = u64::from_le_bytes(b[8..16].try_into().unwrap()) as usize;
    let want = (0..32)
        .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>();
    let at = (0..count)
        .map(|i| 16 + 1024 + i * 56)
        .find(|&o| b[o..o + 32] == want[..])
        .expect("the id is in the index");
    let off = u64::from_le_bytes(b[at + 32..at + 40].try_into().unwrap());
    let len = u64::from_le_bytes(b[at + 40..at + 48].try_into().unwrap());
    let (off, len) = f(off, len);
    b[at + 32..at + 40].copy_from_slice(&off.to_le_bytes());
    b[at + 40..at + 48].copy_from_slice(&len.to_le_bytes());
    let body = b.len() - 32;
    let trailer = *blake3::hash(&b[..body]).as_bytes();
    b[body..].copy_from_slice(&trailer);
    fs::write(idx, &b).unwrap();
}

#[test]
fn fsck_remote_reports_a_hostile_index_entry_as_damage() {
    // An index whose trailer is right but whose entry points past the end
    // of the pack (offset + length overflowing) is damage fsck --remote
    // names, not a panic or a read of whatever length the index claims.
    for (what, f) in [
        ("overflowing", (|_, l| (u64::MAX - 4, l)) as fn(u64, u64) -> (u64, u64)),
        ("past the end", |o, _| (o, 1 << 40)),
    ] {
        let (_a, _r, rp) = pushed();
        let head = fs::read_to_string(rp.join("planes/main/HEAD")).unwrap();
        let snap = head.lines().next().unwrap().to_string();
        rewrite_idx_entry(&remote_indexes(&rp)[0], &snap, f);
        // A listed name that is no pack's is never made a local path.
        write(&rp, "packs/pack-x/evil.idx", "x");
        // A store that holds none of the objects reads them from the remote.
        let b = empty_store_with(&rp);
        let out = cplane(b.path()).args(["fsck", "--remote", "origin"]).assert().code(3);
        let out = String::from_utf8_lossy(&out.get_output().stdout).into_owned()
            + &String::from_utf8_lossy(&out.get_output().stderr);
        assert!(out.contains("pack-") && out.contains(".idx"), "{what}: {out}");
        assert!(out.contains("packs/pack-x/evil.idx is not a pack"), "{what}: {out}");
        let err = stderr_of(b.path(), &["pull"], 3);
        assert!(err.contains(".idx"), "{what}: {err}");
        stdout(b.path(), &["fsck"]);
    }
}

#[test]
fn clone_names_a_remote_plane_with_an_invalid_name() {
    let (_a, r, rp) = pushed();
    fs::rename(rp.join("planes/main"), rp.join("planes/-rf")).unwrap();
    let c = r.path().join("c");
    let err = stderr_of(r.path(), &["clone", &url(&rp), c.to_str().unwrap()], 2);
    assert!(
        err.contains("no plane with a valid name") && err.contains("planes/-rf/HEAD"),
        "{err}"
    );
    assert!(!c.exists());
}

#[test]
fn a_remote_ref_is_read_only_up_to_the_size_of_a_ref() {
    // A ref is one or two lines: a huge object where one should be is
    // damage named by its size, not read whole into memory first.
    let (_a, _r, rp) = pushed();
    let b = empty_store_with(&rp);
    let big = vec![b'0'; 8 << 20];
    fs::write(rp.join("planes/main/HEAD"), &big).unwrap();
    let err = stderr_of(b.path(), &["pull"], 3);
    assert!(
        err.contains("planes/main/HEAD") && err.contains("larger than a ref"),
        "{err}"
    );
    let out = stdout_code(b.path(), &["fsck", "--remote", "origin"], 3);
    assert!(out.contains("larger than a ref"), "{out}");
    stdout(b.path(), &["fsck"]);
}

/// Copies every file under `from` into `to` (same relative paths).
fn copy_tree(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            fs::create_dir_all(&dest).unwrap();
            copy_tree(&p, &dest);
        } else {
            fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn a_governed_plane_has_one_writer_and_its_remote_ledger_only_grows() {
    let (a, _keys, admin) = common::governed_with_admin();
    let (r, rp) = push_to_new_remote(a.path());
    let first_head = fs::read(rp.join("planes/main/HEAD")).unwrap();
    let b = r.path().join("b");
    stdout(r.path(), &["clone", &url(&rp), b.to_str().unwrap()]);
    stdout(&b, &["key", "use", admin.to_str().unwrap()]);
    stdout(a.path(), &["snapshot", "-q", "--allow-unchanged", "--name", "A1"]);
    stdout(a.path(), &["push"]);
    stdout(&b, &["snapshot", "-q", "--allow-unchanged", "--name", "B1"]);
    stderr_of(&b, &["push"], 2);
    stdout(&b, &["pull"]);
    // B's ledger lacks A's entries: pushing would drop them from the remote.
    let before = fs::read(rp.join("planes/main/HEAD")).unwrap();
    let ledgers = fs::read_dir(rp.join("planes/main/ledgers")).unwrap().count();
    let err = stderr_of(&b, &["push"], 2);
    assert!(err.contains("this plane lacks"), "{err}");
    assert!(err.contains("pushing would drop them"), "{err}");
    assert!(err.contains("one writer at a time"), "{err}");
    assert_eq!(fs::read(rp.join("planes/main/HEAD")).unwrap(), before, "nothing moved");
    assert_eq!(fs::read_dir(rp.join("planes/main/ledgers")).unwrap().count(), ledgers);
    assert!(!rp.join("planes/main/checkpoints/B1").exists());
    stdout(a.path(), &["pull"]);
    // A self-consistent history with another genesis (its own trusted key)
    // put in place of the remote's is refused by every store that verified
    // the remote's before, naming the remote, the plane and the entry.
    let (c, _ckeys, _cadmin) = common::governed_with_admin();
    let r2 = tempfile::tempdir().unwrap();
    let rp2 = r2.path().join("remote");
    stdout(c.path(), &["remote", "add", "origin", &url(&rp2)]);
    stdout(c.path(), &["push"]);
    copy_tree(&rp2.join("packs"), &rp.join("packs"));
    copy_tree(&rp2.join("planes/main/ledgers"), &rp.join("planes/main/ledgers"));
    fs::copy(rp2.join("planes/main/HEAD"), rp.join("planes/main/HEAD")).unwrap();
    for d in [a.path(), b.as_path()] {
        let err = stderr_of(d, &["pull"], 3);
        assert!(err.contains("remote origin"), "{err}");
        assert!(err.contains("ledger of plane main"), "{err}");
        assert!(err.contains("entry 0 differs"), "{err}");
    }
    // So is a HEAD moved back to an older ledger (entries dropped).
    fs::write(rp.join("planes/main/HEAD"), &first_head).unwrap();
    let err = stderr_of(a.path(), &["pull"], 3);
    assert!(err.contains("ledger of plane main"), "{err}");
    assert!(err.contains("is missing"), "{err}");
    // The history that extends what was verified is still taken.
    fs::write(rp.join("planes/main/HEAD"), &before).unwrap();
    stdout(a.path(), &["pull"]);
    stdout(&b, &["pull"]);
}

/// The files of `.cp/packs` with their sizes.
fn packs_listing(d: &Path) -> BTreeMap<String, u64> {
    fs::read_dir(d.join(".cp/packs"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

#[test]
fn a_refused_pull_keeps_none_of_its_objects() {
    let (a, r, rp) = pushed();
    let b = r.path().join("b");
    stdout(r.path(), &["clone", &url(&rp), b.to_str().unwrap()]);
    write(a.path(), "new.txt", "only in the refused snapshot\n");
    stdout(a.path(), &["snapshot", "-q", "--name", "A1"]);
    stdout(a.path(), &["push"]);
    let head = fs::read_to_string(rp.join("planes/main/HEAD")).unwrap();
    let id = head.lines().next().unwrap().to_string();
    // The ledger copy HEAD names, forged (renamed to its new hash, so only
    // the chain can tell).
    let lid = head.lines().nth(1).unwrap().strip_prefix("ledger ").unwrap();
    let copy = fs::read_to_string(rp.join("planes/main/ledgers").join(lid)).unwrap();
    let forged = copy.replacen("\"op\":\"init\"", "\"op\":\"snapshot\"", 1);
    let forged_id = blake3::hash(forged.as_bytes()).to_hex().to_string();
    fs::write(rp.join("planes/main/ledgers").join(&forged_id), &forged).unwrap();
    fs::write(rp.join("planes/main/HEAD"), format!("{id}\nledger {forged_id}\n")).unwrap();
    let packs = packs_listing(&b);
    let markers = fs::read_dir(b.join(".cp/remotes/origin/packs")).unwrap().count();
    let err = stderr_of(&b, &["pull"], 3);
    assert!(err.contains("ledger of plane main"), "{err}");
    assert_eq!(packs_listing(&b), packs, "the refused pull left packs behind");
    assert_eq!(
        fs::read_dir(b.join(".cp/remotes/origin/packs")).unwrap().count(),
        markers
    );
    let err = stderr_of(&b, &["show", &id[..16]], 2);
    assert!(err.contains("no snapshot id starts with"), "{err}");
    stdout(&b, &["fsck"]);
    // Put right, the same pull takes everything.
    fs::write(rp.join("planes/main/HEAD"), &head).unwrap();
    stdout(&b, &["pull"]);
    stdout(&b, &["show", &id[..16]]);
}

#[test]
fn a_remote_planes_ref_belongs_to_that_plane_in_a_clone_of_another() {
    let a = tempfile::tempdir().unwrap();
    write(a.path(), "m.txt", "main\n");
    write(a.path(), "docs/readme.txt", "docs\n");
    stdout(a.path(), &["init", "-q"]);
    stdout(a.path(), &["plane", "add", "docs", "docs"]);
    let (r, rp) = push_to_new_remote(a.path());
    let c = r.path().join("c");
    stdout(r.path(), &["clone", &url(&rp), c.to_str().unwrap(), "--plane", "main"]);
    stdout(&c, &["pull"]);
    let before = tree(&c);
    // Acting on plane main with docs' ref is refused as `docs:HEAD` is.
    for args in [
        &["rollback", "origin/docs/HEAD"][..],
        &["restore", "origin/docs/HEAD", "."],
    ] {
        let err = stderr_of(&c, args, 2);
        assert!(err.contains("belongs to plane `docs`, not `main`"), "{args:?}: {err}");
    }
    assert_eq!(tree(&c), before, "nothing was written");
    assert_eq!(fs::read(c.join("m.txt")).unwrap(), b"main\n");
    // Reading works across planes.
    assert!(stdout(&c, &["show", "origin/docs/HEAD"]).contains("docs"));
    assert!(stdout(&c, &["show", "origin/docs/HEAD", "readme.txt"]).contains("readme.txt"));
    assert_eq!(stdout(&c, &["cat", "origin/docs/HEAD:readme.txt"]), "docs\n");
    let d = stdout_code(&c, &["diff", "origin/docs/HEAD", "HEAD"], 1);
    assert!(d.contains("m.txt"), "{d}");
    stdout_code(&c, &["diff", "origin/docs/HEAD"], 1);
    stdout(&c, &["log"]);
    // The plane's own remote ref still rolls back.
    stdout(&c, &["rollback", "origin/main/HEAD"]);
    assert_eq!(tree(&c), before);
}
