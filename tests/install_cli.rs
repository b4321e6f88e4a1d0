//! `cplane install` through the binary: a package packed by one key and
//! trusted by the plane's ledger installs through the checkout engine, is
//! owned and registered, sealed and recorded; every refusal leaves the
//! plane and its store byte-identical.

mod common;

use common::packages::{Setup, install_paused_before_seal, install_pending, pack_with, prebuilt_dirs, setup};
use common::{cplane, stdout, write};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Packs `files` (path, body; mode 0644) under the spec SPEC-000 with `key`.
fn pack(s: &Setup, name: &str, files: &[(&str, &str)], key: &Path, extra: &[&str]) -> PathBuf {
    let files: Vec<(&str, &str, u32)> = files.iter().map(|(p, b)| (*p, *b, 0o644)).collect();
    pack_with(s, name, &files, key, extra)
}

use common::listing;

fn refused(s: &Setup, pkg: &Path, code: i32, needle: &str) {
    let d = s.plane.path();
    let before = listing(d);
    let o = cplane(d).args(["install", pkg.to_str().unwrap()]).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(code), "{all}");
    assert!(all.contains(needle), "expected {needle:?} in {all}");
    let after = listing(d);
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(changed.is_empty(), "a refused install changed {changed:?}");
}

#[test]
fn a_trusted_package_installs_owned_registered_sealed_and_recorded() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(
        &s,
        "hello",
        &[
            ("specs/SPEC-000/pkg/hello.md", "# hello\n"),
            ("specs/SPEC-000/pkg/notes.txt", "notes\n"),
        ],
        &s.admin,
        &["--id", "PKG-HELLO", "--version", "1.0.0"],
    );
    let out = stdout(d, &["install", pkg.to_str().unwrap()]);
    assert!(out.contains("installed PKG-HELLO 1.0.0"), "{out}");
    assert_eq!(
        fs::read_to_string(d.join("specs/SPEC-000/pkg/hello.md")).unwrap(),
        "# hello\n"
    );
    let reg = fs::read_to_string(d.join("registries/packages_registry.csv")).unwrap();
    assert!(reg.contains("PKG-HELLO,1.0.0,SPEC-000,FMWK-000,"), "{reg}");
    let x = stdout(d, &["explain", "specs/SPEC-000/pkg/hello.md"]);
    assert!(x.contains("PKG-HELLO"), "{x}");
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
    let es: Vec<cplane::ledger::Entry> =
        serde_json::from_str(&stdout(d, &["ledger", "--op", "install", "--json"])).unwrap();
    assert_eq!(es.len(), 1);
    assert!(es[0].sig.is_some() && es[0].paths.contains(&"specs/SPEC-000/pkg/hello.md".to_string()));
    // `show` prints what install stored: the manifest, and the attestation.
    let m: serde_json::Value = serde_json::from_str(&stdout(d, &["show", "PKG-HELLO"])).unwrap();
    assert_eq!(m["id"], "PKG-HELLO");
    assert_eq!(m["files"].as_array().unwrap().len(), 2);
    let a: serde_json::Value = serde_json::from_str(&stdout(d, &["show", "PKG-HELLO", "--attestation"])).unwrap();
    assert_eq!(a["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(a["subject"].as_array().unwrap().len(), 2);
    // Installing it again is refused, changing nothing.
    refused(&s, &pkg, 1, "PKG-HELLO 1.0.0 is installed already");
}

#[test]
fn a_package_larger_than_the_memory_budget_installs_byte_exact() {
    let s = setup();
    let d = s.plane.path();
    let big = "0123456789abcdef\n".repeat(4096);
    let files = [
        ("specs/SPEC-000/pkg/a.txt", "small first\n"),
        ("specs/SPEC-000/pkg/b.bin", big.as_str()),
        ("specs/SPEC-000/pkg/c.txt", "after the budget\n"),
    ];
    let pkg = pack(&s, "big", &files, &s.admin, &["--id", "PKG-BIG", "--version", "1.0.0"]);
    // 16 bytes kept in memory: the first member's; the others are read back from the store.
    let o = cplane(d)
        .env("CPLANE_TEST_INSTALL_KEEP_BYTES", "16")
        .args(["install", pkg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (p, body) in files {
        assert_eq!(fs::read_to_string(d.join(p)).unwrap(), body, "{p}");
    }
    let st: serde_json::Value = serde_json::from_str(&stdout(d, &["status", "--json"])).unwrap();
    assert_eq!(st["clean"], true, "{st}");
    stdout(d, &["verify"]);
}

/// A file whose data is a zstd frame of its own in the package (as `pack`
/// writes it) is stored as that very frame, not compressed again.
#[test]
fn a_files_own_frame_is_stored_as_it_is() {
    use std::os::unix::fs::FileExt;
    let s = setup();
    let d = s.plane.path();
    let body = (0..4000)
        .map(|i| format!("line {i} of a file the store would compress at level 1\n"))
        .collect::<String>();
    let pkg = pack(
        &s,
        "framed",
        &[("specs/SPEC-000/pkg/f.txt", body.as_str())],
        &s.admin,
        &[],
    );
    // The package's own frame for the file is the one `prepare` makes.
    let prepared = cplane::package::prepare(body.as_bytes()).unwrap();
    let own = prepared.frame().unwrap();
    assert!(fs::read(&pkg).unwrap().windows(own.len()).any(|w| w == own));
    // The same archive in three frames, the file's data in one of its own
    // at level 19: not what the store's level 1 would make of it (the
    // signature covers the manifest, not the compression).
    let tar = zstd::stream::decode_all(&fs::read(&pkg).unwrap()[..]).unwrap();
    let at = tar.windows(body.len()).position(|w| w == body.as_bytes()).unwrap();
    let frame = zstd::bulk::compress(body.as_bytes(), 19).unwrap();
    assert!(zstd::bulk::compress(body.as_bytes(), 1).unwrap() != frame);
    let mut framed = zstd::bulk::compress(&tar[..at], 3).unwrap();
    framed.extend_from_slice(&frame);
    framed.extend_from_slice(&zstd::bulk::compress(&tar[at + body.len()..], 3).unwrap());
    fs::write(&pkg, framed).unwrap();
    stdout(d, &["install", pkg.to_str().unwrap()]);
    let store = cplane::store::Store::open(d).unwrap();
    let (pack, e) = store.locate(&prepared.blake3()).expect("the file is stored");
    let mut stored = vec![0u8; e.len as usize - 16];
    fs::File::open(&pack.pack_path)
        .unwrap()
        .read_exact_at(&mut stored, e.offset + 16)
        .unwrap();
    assert!(stored == frame, "the record's body is not the package's frame");
    stdout(d, &["verify", "--full"]);
}

/// A package whose file fails a gate of its spec (here a secret, in a
/// package signed by a trusted key but not made by `cplane pack`, which
/// would have refused it) is refused before anything is written: the
/// gates run on each file as it streams.
#[test]
fn a_file_that_fails_a_gate_is_refused_before_anything_is_written() {
    use cplane::package::{BuildFile, FileMode, FileSource, PackageMeta, Version};
    let s = setup();
    let aws = format!("{}{}", "AKIA", "ZXCVBNMASDFGHJKL");
    let leak = format!("key = {aws}\n");
    let files = [
        BuildFile {
            path: "specs/SPEC-000/pkg/clean.txt",
            mode: FileMode::Regular,
            source: FileSource::Bytes(b"nothing to see\n"),
        },
        BuildFile {
            path: "specs/SPEC-000/pkg/leak.txt",
            mode: FileMode::Regular,
            source: FileSource::Bytes(leak.as_bytes()),
        },
    ];
    let meta = PackageMeta {
        id: "PKG-LEAK".into(),
        version: "1.0.0".parse::<Version>().unwrap(),
        spec_id: "SPEC-000".into(),
        framework_id: "FMWK-000".into(),
        tier: "any".into(),
        dependencies: Vec::new(),
    };
    let key = cplane::keys::load_private(&s.admin).unwrap();
    let mut bytes = Vec::new();
    cplane::package::build(&meta, &files, &key, cplane::keys::UtcTime::now(), &mut bytes).unwrap();
    let pkg = s.keys.path().join("leak.cppkg");
    fs::write(&pkg, bytes).unwrap();
    refused(&s, &pkg, 1, "CP301 specs/SPEC-000/pkg/leak.txt");
    let d = s.plane.path();
    assert!(!d.join("specs/SPEC-000/pkg").exists());
    stdout(d, &["verify"]);
}

/// The seal after an install trusts the gates that ran while the package
/// streamed only for the bytes they ran on: a secret put into a package
/// file between the install's gating and its seal is never sealed (the
/// file no longer has its manifest bytes, CP112, before any gate runs).
#[test]
fn the_seal_gates_again_a_file_edited_after_the_install_gated_it() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(
        &s,
        "edited",
        &[
            ("specs/SPEC-000/pkg/a.txt", "clean\n"),
            ("specs/SPEC-000/pkg/b.txt", "clean too\n"),
        ],
        &s.admin,
        &["--id", "PKG-EDITED"],
    );
    let out = install_paused_before_seal(d, &pkg, || {
        let aws = format!("{}{}", "AKIA", "ZXCVBNMASDFGHJKL");
        fs::write(d.join("specs/SPEC-000/pkg/b.txt"), format!("key = {aws}\n")).unwrap();
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the seal passed a secret: {err}");
    assert!(err.contains("CP112 specs/SPEC-000/pkg/b.txt"), "{err}");
    let log = stdout(d, &["log"]);
    assert!(!log.contains("install PKG-EDITED"), "sealed anyway: {log}");
}

/// Files staged while the package streams hold a descriptor each until
/// the checkout: with few descriptors, part are staged ahead, the rest by
/// the checkout in rounds, and every file lands byte-exact.
#[test]
fn a_package_larger_than_the_descriptor_budget_installs_byte_exact() {
    let s = setup();
    let d = s.plane.path();
    let files: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("specs/SPEC-000/many/d{}/f{i}.txt", i % 3),
                format!("file {i}\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    let pkg = pack(&s, "many", &refs, &s.admin, &["--id", "PKG-MANY"]);
    // The process really has few descriptors (soft and hard limit), so a
    // miscounted budget fails with EMFILE instead of passing unseen.
    let bin = assert_cmd::cargo::cargo_bin("cplane");
    let o = std::process::Command::new("sh")
        .current_dir(d)
        .env("CPLANE_TEST_FD_BUDGET", "16")
        .env("CPLANE_LOCK_TIMEOUT_MS", "300")
        .args(["-c", "ulimit -n 48 && exec \"$0\" install \"$1\""])
        .arg(&bin)
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (p, body) in &files {
        assert_eq!(fs::read_to_string(d.join(p)).unwrap(), *body, "{p}");
    }
    let st: serde_json::Value = serde_json::from_str(&stdout(d, &["status", "--json"])).unwrap();
    assert_eq!(st["clean"], true, "{st}");
    stdout(d, &["verify", "--full"]);
}

#[test]
fn refusals_leave_the_plane_and_store_byte_identical() {
    let s = setup();
    // Signed by a key the plane does not trust.
    let stranger = s.keys.path().join("stranger");
    stdout(
        s.plane.path(),
        &["key", "generate", "--out", stranger.to_str().unwrap(), "--comment", "x"],
    );
    let src = s.keys.path().join("src-stranger");
    write(&src, "specs/SPEC-000/pkg/a.md", "a\n");
    let untrusted = s.keys.path().join("untrusted.cppkg");
    // pack refuses an untrusted key in a plane that trusts keys: build it in
    // another plane that trusts none.
    let other = tempfile::tempdir().unwrap();
    stdout(other.path(), &["init", "--governed"]);
    stdout(
        other.path(),
        &[
            "pack",
            "--spec",
            "SPEC-000",
            "--from",
            src.to_str().unwrap(),
            "--key",
            stranger.to_str().unwrap(),
            "-o",
            untrusted.to_str().unwrap(),
        ],
    );
    refused(&s, &untrusted, 2, "not in the allowed signers");
    // A path another owner holds.
    let taken = pack(
        &s,
        "taken",
        &[("specs/SPEC-000/spec.md", "# mine now\n")],
        &s.admin,
        &["--id", "PKG-TAKEN"],
    );
    refused(&s, &taken, 1, "owns it already");
    // A file already there, owned by nobody.
    write(s.plane.path(), "specs/SPEC-000/pkg/loose.md", "loose\n");
    let loose = pack(
        &s,
        "loose",
        &[("specs/SPEC-000/pkg/loose.md", "pkg\n")],
        &s.admin,
        &["--id", "PKG-LOOSE"],
    );
    refused(&s, &loose, 1, "something is there already");
    fs::remove_file(s.plane.path().join("specs/SPEC-000/pkg/loose.md")).unwrap();
    // A directory on the way that is a symlink (to outside the plane).
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), s.plane.path().join("specs/SPEC-000/linked")).unwrap();
    let through = pack(
        &s,
        "through",
        &[("specs/SPEC-000/linked/x.md", "x\n")],
        &s.admin,
        &["--id", "PKG-THROUGH"],
    );
    refused(&s, &through, 1, "which is a symlink or a file");
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written through the symlink"
    );
    fs::remove_file(s.plane.path().join("specs/SPEC-000/linked")).unwrap();
    // A dependency that is not installed.
    let needy = pack(
        &s,
        "needy",
        // (In a directory the plane lacks: built aside while the package
        // streams, before the dependency is checked, and dropped.)
        &[("specs/SPEC-000/needy/sub/n.md", "n\n")],
        &s.admin,
        &["--id", "PKG-NEEDY", "--depends", "PKG-BASE:>=1.0.0"],
    );
    refused(&s, &needy, 1, "needs PKG-BASE");
    // A damaged archive.
    let good = pack(
        &s,
        "good",
        &[("specs/SPEC-000/pkg/g.md", "g\n")],
        &s.admin,
        &["--id", "PKG-GOOD"],
    );
    // (A byte of the file's own frame: a byte flipped just anywhere can land
    // in bits zstd ignores, or in header bytes the reader does not use, and
    // decode to an archive that still checks out.)
    let mut bytes = fs::read(&good).unwrap();
    let frame = zstd::bulk::compress(b"g\n", 1).unwrap();
    let at = bytes
        .windows(frame.len())
        .position(|w| w == frame)
        .expect("the file's frame is in the package");
    bytes[at + frame.len() - 1] ^= 0x40;
    let damaged = s.keys.path().join("damaged.cppkg");
    fs::write(&damaged, &bytes).unwrap();
    refused(&s, &damaged, 2, "is refused");
}

/// The cycle: install, verify, uninstall (refused while a dependent is
/// installed, or a file was edited), verify; the plane ends as it began.
#[test]
fn uninstall_removes_exactly_the_package_and_refuses_what_it_must() {
    let s = setup();
    let d = s.plane.path();
    let files_before: Vec<PathBuf> = listing(d).into_keys().filter(|p| !p.starts_with(".cp")).collect();
    let base = pack(
        &s,
        "base",
        &[("specs/SPEC-000/base/a.md", "a\n"), ("specs/SPEC-000/base/b.md", "b\n")],
        &s.admin,
        &["--id", "PKG-BASE", "--version", "1.2.0"],
    );
    let app = pack(
        &s,
        "app",
        &[("specs/SPEC-000/app/c.md", "c\n")],
        &s.admin,
        &["--id", "PKG-APP", "--depends", "PKG-BASE:>=1.0.0, <2.0.0"],
    );
    stdout(d, &["install", base.to_str().unwrap()]);
    stdout(d, &["install", app.to_str().unwrap()]);
    stdout(d, &["verify"]);
    // A dependent is installed: refused, nothing changed.
    let before = listing(d);
    let o = cplane(d).args(["uninstall", "PKG-BASE"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("PKG-APP depends on PKG-BASE")
            || String::from_utf8_lossy(&o.stderr).contains("PKG-APP depends on PKG-BASE")
    );
    assert_eq!(before, listing(d));
    stdout(d, &["uninstall", "PKG-APP"]);
    assert!(!d.join("specs/SPEC-000/app/c.md").exists());
    // An edited file: refused; with --force removed, its bytes in the rescue.
    fs::write(d.join("specs/SPEC-000/base/a.md"), "edited\n").unwrap();
    let o = cplane(d).args(["uninstall", "PKG-BASE"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(d.join("specs/SPEC-000/base/a.md").exists());
    let out = stdout(d, &["uninstall", "PKG-BASE", "--force"]);
    assert!(out.contains("1 file edited since install"), "{out}");
    let rescue = out
        .split("their bytes are in ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        stdout(d, &["cat", &format!("{rescue}:specs/SPEC-000/base/a.md")]),
        "edited\n"
    );
    assert!(!d.join("specs/SPEC-000/base/a.md").exists() && !d.join("specs/SPEC-000/base/b.md").exists());
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
    let ops: Vec<String> = serde_json::from_str::<Vec<cplane::ledger::Entry>>(&stdout(d, &["ledger", "--json"]))
        .unwrap()
        .into_iter()
        .map(|e| e.op)
        .filter(|o| o.ends_with("install"))
        .collect();
    assert_eq!(ops, ["install", "install", "uninstall", "uninstall"]);
    // The plane's files are the ones it had (the registries changed).
    let files_after: Vec<PathBuf> = listing(d).into_keys().filter(|p| !p.starts_with(".cp")).collect();
    let extra: Vec<&PathBuf> = files_after.iter().filter(|p| !files_before.contains(p)).collect();
    assert!(
        extra
            .iter()
            .all(|p| p.starts_with("registries") || p.ends_with(".file_registry.csv")),
        "left behind: {extra:?}"
    );
}

/// A newer version upgrades in one step (a file it drops goes, the others
/// are replaced); an older one is refused unless --allow-downgrade; another
/// package under an installed id and version is refused.
#[test]
fn upgrades_downgrades_and_a_second_package_under_the_same_version() {
    let s = setup();
    let d = s.plane.path();
    let v1 = pack(
        &s,
        "v1",
        &[
            ("specs/SPEC-000/up/a.md", "a1\n"),
            ("specs/SPEC-000/up/old.md", "old\n"),
        ],
        &s.admin,
        &["--id", "PKG-UP", "--version", "1.0.0"],
    );
    let v2 = pack(
        &s,
        "v2",
        &[
            ("specs/SPEC-000/up/a.md", "a2\n"),
            ("specs/SPEC-000/up/new.md", "new\n"),
        ],
        &s.admin,
        &["--id", "PKG-UP", "--version", "2.0.0"],
    );
    let v1_other = pack(
        &s,
        "v1-other",
        &[("specs/SPEC-000/up/a.md", "forged\n")],
        &s.admin,
        &["--id", "PKG-UP", "--version", "2.0.0"],
    );
    stdout(d, &["install", v1.to_str().unwrap()]);
    let out = stdout(d, &["install", v2.to_str().unwrap()]);
    assert!(out.contains("upgraded from 1.0.0"), "{out}");
    assert_eq!(fs::read_to_string(d.join("specs/SPEC-000/up/a.md")).unwrap(), "a2\n");
    assert!(!d.join("specs/SPEC-000/up/old.md").exists());
    assert_eq!(fs::read_to_string(d.join("specs/SPEC-000/up/new.md")).unwrap(), "new\n");
    let reg = fs::read_to_string(d.join("registries/packages_registry.csv")).unwrap();
    assert_eq!(reg.matches("PKG-UP,").count(), 1, "{reg}");
    assert!(reg.contains("PKG-UP,2.0.0,"), "{reg}");
    stdout(d, &["verify"]);
    // Same id and version, other contents: refused.
    refused(&s, &v1_other, 1, "with other contents");
    // Older: refused without --allow-downgrade, then allowed with it.
    refused(&s, &v1, 1, "needs --allow-downgrade");
    let out = stdout(d, &["install", v1.to_str().unwrap(), "--allow-downgrade"]);
    assert!(out.contains("upgraded from 2.0.0"), "{out}");
    assert_eq!(fs::read_to_string(d.join("specs/SPEC-000/up/old.md")).unwrap(), "old\n");
    assert!(!d.join("specs/SPEC-000/up/new.md").exists());
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// Exclusivity: a package-owned file edited by hand fails verify (pass 1,
/// CP112, against the manifest, not HEAD) and snapshot refuses to seal it.
#[test]
fn a_hand_edited_package_file_fails_verify_and_cannot_be_sealed() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(
        &s,
        "ex",
        &[("specs/SPEC-000/ex/a.md", "a\n")],
        &s.admin,
        &["--id", "PKG-EX"],
    );
    stdout(d, &["install", pkg.to_str().unwrap()]);
    fs::write(d.join("specs/SPEC-000/ex/a.md"), "hand edit\n").unwrap();
    let o = cplane(d).args(["verify", "--all-passes"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1));
    assert!(out.contains("CP112 specs/SPEC-000/ex/a.md"), "{out}");
    let o = cplane(d).arg("snapshot").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("CP112") || String::from_utf8_lossy(&o.stderr).contains("CP112")
    );
    stdout(d, &["restore", "HEAD", "specs/SPEC-000/ex/a.md"]);
    stdout(d, &["verify"]);
}

/// An install killed while its files are being written is, after the next
/// command, fully present: the checkout is finished and the registry,
/// ownership and seal steps run again.
#[test]
fn an_install_killed_midway_is_completed_by_the_next_command() {
    let s = setup();
    let d = s.plane.path();
    let files: Vec<(String, String)> = (0..6)
        .map(|i| (format!("specs/SPEC-000/k/f{i}.md"), format!("f{i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
    let pkg = pack(&s, "killed", &refs, &s.admin, &["--id", "PKG-KILLED"]);
    common::kill_after_ops(d, &["install", pkg.to_str().unwrap()], 2, &[]);
    assert!(install_pending(d));
    let o = cplane(d).arg("snapshot").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("finished an interrupted install of PKG-KILLED"), "{err}");
    assert!(!install_pending(d));
    for (p, b) in &files {
        assert_eq!(fs::read_to_string(d.join(p)).unwrap(), *b);
    }
    let reg = fs::read_to_string(d.join("registries/packages_registry.csv")).unwrap();
    assert!(reg.contains("PKG-KILLED,"), "{reg}");
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// Where [`an_install_killed_at_any_point_is_absent_or_present_after_the_next_command`] kills.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Everything staged, nothing in the plane written, no journal.
    Staged,
    /// After this many journal operations were applied.
    Ops(usize),
    /// At a named step after the checkout (`registry`, `owned`).
    Step(&'static str),
}

/// The plane's files (not `.cp`): path → bytes.
fn plane_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    listing(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".cp"))
        .collect()
}

/// An install SIGKILLed at each point — staged, early, midway and late in
/// the journal, after the registry row, after ownership — is, after the next
/// writing command, either fully absent (the plane's files as before, no
/// registry row) or fully present (every file, the row, owned, sealed,
/// recorded); `verify` and `ledger verify` pass either way.
#[test]
fn an_install_killed_at_any_point_is_absent_or_present_after_the_next_command() {
    let points = [
        KillAt::Staged,
        KillAt::Ops(1),
        KillAt::Ops(4),
        KillAt::Ops(7),
        KillAt::Step("registry"),
        KillAt::Step("owned"),
    ];
    for at in points {
        let s = setup();
        let d = s.plane.path();
        let files: Vec<(String, String)> = (0..6)
            .map(|i| (format!("specs/SPEC-000/k/sub/f{i}.md"), format!("file {i}\n")))
            .collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
        let pkg = pack(&s, "killed", &refs, &s.admin, &["--id", "PKG-KILLED"]);
        let before = plane_files(d);
        let args = ["install", pkg.to_str().unwrap()];
        let (marker, env): (&str, Vec<(&str, String)>) = match at {
            KillAt::Staged => ("staged", vec![(common::PAUSE_STAGED, "1".into())]),
            KillAt::Ops(n) => ("paused", vec![(common::PAUSE_AFTER_OPS, n.to_string())]),
            KillAt::Step(name) => ("paused", vec![("CPLANE_TEST_PAUSE_AT_STEP", name.to_string())]),
        };
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let marker = d.join(".cp/planes/main").join(marker);
        let mut child = common::spawn(d, &args, &env);
        common::wait_for(&marker, &mut child);
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = fs::remove_file(&marker);

        let o = cplane(d).arg("snapshot").output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{at:?}: {err}");
        let now = plane_files(d);
        let reg = fs::read_to_string(d.join("registries/packages_registry.csv")).unwrap_or_default();
        let present = files.iter().filter(|(p, _)| d.join(p).exists()).count();
        if present == 0 {
            assert_eq!(now, before, "{at:?}: absent, but the plane changed");
            assert!(!reg.contains("PKG-KILLED,"), "{at:?}: {reg}");
        } else {
            assert_eq!(present, files.len(), "{at:?}: some files only");
            for (p, b) in &files {
                assert_eq!(fs::read_to_string(d.join(p)).unwrap(), *b, "{at:?}: {p}");
            }
            assert!(reg.contains("PKG-KILLED,"), "{at:?}: {reg}");
            let explain = stdout(d, &["explain", &files[0].0]);
            assert!(explain.contains("PKG-KILLED"), "{at:?}: {explain}");
        }
        if matches!(at, KillAt::Staged) {
            assert_eq!(present, 0, "killed before the journal: nothing may be written");
        } else {
            assert_eq!(present, files.len(), "{at:?}: past the journal the install completes");
        }
        assert!(!install_pending(d), "{at:?}");
        stdout(d, &["verify"]);
        stdout(d, &["ledger", "verify"]);
        // And it can be installed (absent) or is refused as installed (present).
        let o = cplane(d).args(args).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if present == 0 {
            assert!(o.status.success(), "{at:?}: {all}");
        } else {
            assert!(all.contains("installed already"), "{at:?}: {all}");
        }
        stdout(d, &["ledger", "verify"]);
    }
}

/// Versions 1.0.0 and 2.0.0 of package `id`, files `specs/SPEC-000/DIR/a.md`
/// (changed from "a1" to "a2") and `same.md` (the same in both).
fn two_versions(s: &Setup, dir: &str, id: &str) -> (PathBuf, PathBuf) {
    let [v1, v2] = ["1", "2"].map(|n| {
        let a = format!("specs/SPEC-000/{dir}/a.md");
        let same = format!("specs/SPEC-000/{dir}/same.md");
        let files = [(a.as_str(), format!("a{n}\n")), (same.as_str(), "same\n".to_string())];
        let files: Vec<(&str, &str)> = files.iter().map(|(p, b)| (*p, b.as_str())).collect();
        pack(
            s,
            &format!("{dir}{n}"),
            &files,
            &s.admin,
            &["--id", id, "--version", &format!("{n}.0.0")],
        )
    });
    (v1, v2)
}

/// An upgrade restores an unchanged package file that was chmod'ed by hand
/// (the status scan reports it, so it is among the touched paths, and its
/// bytes come from the store: it was neither staged nor kept), and `verify`
/// is clean afterwards.
#[test]
fn an_upgrade_restores_the_mode_of_an_unchanged_file_chmoded_by_hand() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    let d = s.plane.path();
    let (v1, v2) = two_versions(&s, "m", "PKG-M");
    stdout(d, &["install", v1.to_str().unwrap()]);
    let same = d.join("specs/SPEC-000/m/same.md");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let want = mode(&same);
    fs::set_permissions(&same, fs::Permissions::from_mode(0o600)).unwrap();
    let out = stdout(d, &["install", v2.to_str().unwrap()]);
    assert!(out.contains("upgraded from 1.0.0"), "{out}");
    assert_eq!(mode(&same), want, "the hand chmod survived the upgrade");
    assert_eq!(fs::read_to_string(&same).unwrap(), "same\n");
    assert_eq!(fs::read_to_string(d.join("specs/SPEC-000/m/a.md")).unwrap(), "a2\n");
    stdout(d, &["verify"]);
    // Bytes edited by hand are still refused, nothing written.
    fs::write(&same, "hand edit\n").unwrap();
    let v3 = pack(
        &s,
        "m3",
        &[
            ("specs/SPEC-000/m/a.md", "a3\n"),
            ("specs/SPEC-000/m/same.md", "same\n"),
        ],
        &s.admin,
        &["--id", "PKG-M", "--version", "3.0.0"],
    );
    refused(&s, &v3, 1, "edited (or removed) since package PKG-M 2.0.0");
}

/// An upgrade that changes one file of many writes that file only: the
/// others keep their inodes (and ctimes), a dropped file goes, a new one
/// comes, and `verify` is clean.
#[test]
fn an_upgrade_changing_one_file_writes_only_that_file() {
    use std::os::unix::fs::MetadataExt;
    let s = setup();
    let d = s.plane.path();
    let files = |changed: &str, last: &str| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = (0..40)
            .map(|i| (format!("specs/SPEC-000/one/d{}/f{i:02}.md", i % 4), format!("f{i}\n")))
            .collect();
        v[7].1 = changed.to_string();
        v.push(("specs/SPEC-000/one/extra.md".into(), last.into()));
        v
    };
    let mk = |name: &str, version: &str, v: &[(String, String)]| {
        let refs: Vec<(&str, &str)> = v.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
        pack(&s, name, &refs, &s.admin, &["--id", "PKG-ONE", "--version", version])
    };
    let f1 = files("seven\n", "x\n");
    let mut f2 = files("SEVEN\n", "x\n");
    // v2 also drops extra.md and adds new.md.
    f2.pop();
    f2.push(("specs/SPEC-000/one/new.md".into(), "new\n".into()));
    let v1 = mk("one1", "1.0.0", &f1);
    let v2 = mk("one2", "2.0.0", &f2);
    stdout(d, &["install", v1.to_str().unwrap()]);
    let stat = |p: &str| {
        let m = fs::metadata(d.join(p)).unwrap();
        (m.ino(), m.ctime(), m.ctime_nsec())
    };
    let before: Vec<(u64, i64, i64)> = f1[..40].iter().map(|(p, _)| stat(p)).collect();
    let out = stdout(d, &["install", v2.to_str().unwrap()]);
    assert!(out.contains("upgraded from 1.0.0"), "{out}");
    for (i, (p, body)) in f2.iter().enumerate() {
        assert_eq!(fs::read_to_string(d.join(p)).unwrap(), *body, "{p}");
        if i < 40 && i != 7 {
            assert_eq!(stat(p), before[i], "{p} was written again");
        }
    }
    assert_ne!(stat(&f2[7].0).0, before[7].0, "the changed file was not replaced");
    assert!(
        !d.join("specs/SPEC-000/one/extra.md").exists(),
        "a dropped file was left behind"
    );
    stdout(d, &["verify"]);
}

/// B1 (fails on 38e6433): a package file the upgrade does not change, left
/// out of the start-of-install status scan (here a FIFO put in its place:
/// the scan reports CP106 and drops the change), is not "as the old version
/// left it"; the upgrade must be refused before anything is written, as it
/// was before 38e6433 (hash_on_disk: not a regular file).
#[test]
fn an_upgrade_over_an_unchanged_file_the_scan_could_not_read_is_refused_untouched() {
    let s = setup();
    let d = s.plane.path();
    let (v1, v2) = two_versions(&s, "q", "PKG-Q");
    stdout(d, &["install", v1.to_str().unwrap()]);
    let same = d.join("specs/SPEC-000/q/same.md");
    fs::remove_file(&same).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &same,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o644),
        0,
    )
    .unwrap();
    // (`refused` would read the FIFO: compare the regular files by hand.)
    let reg = d.join("registries/packages_registry.csv");
    let reg_before = fs::read(&reg).unwrap();
    let o = cplane(d).args(["install", v2.to_str().unwrap()]).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(all.contains("edited (or removed) since package PKG-Q 1.0.0"), "{all}");
    assert_eq!(
        fs::read_to_string(d.join("specs/SPEC-000/q/a.md")).unwrap(),
        "a1\n",
        "written anyway"
    );
    assert_eq!(fs::read(&reg).unwrap(), reg_before, "registry written anyway");
    assert!(!install_pending(d));
}

/// B1, second face (fails on 38e6433): an unchanged package file under an
/// exclusion rule added after HEAD and then edited is not vouched for by
/// the scan (it never looked); the upgrade must be refused untouched.
#[test]
fn an_upgrade_over_an_excluded_edited_package_file_is_refused_untouched() {
    let s = setup();
    let d = s.plane.path();
    let (v1, v2) = two_versions(&s, "x", "PKG-X");
    stdout(d, &["install", v1.to_str().unwrap()]);
    write(d, ".cpignore", "specs/SPEC-000/x/same.md\n");
    fs::write(d.join("specs/SPEC-000/x/same.md"), "hand edit\n").unwrap();
    refused(&s, &v2, 1, "edited (or removed) since package PKG-X 1.0.0");
}

/// A plane whose own seal would refuse (here an unowned file) refuses an
/// upgrade before anything is written: before, the files went in, the
/// install's seal refused, and the pending install wedged the plane (every
/// later command, `own` included, tried to finish it and was refused).
#[test]
fn a_plane_with_findings_refuses_an_upgrade_before_writing_and_stays_usable() {
    let s = setup();
    let d = s.plane.path();
    let (v1, v2) = two_versions(&s, "w", "PKG-W");
    stdout(d, &["install", v1.to_str().unwrap()]);
    write(d, "specs/SPEC-000/w/loose.md", "nobody's\n");
    refused(&s, &v2, 1, "CP001 specs/SPEC-000/w/loose.md");
    assert!(!install_pending(d));
    stdout(d, &["own", "specs/SPEC-000/w/loose.md", "--by", "SPEC-000"]);
    let out = stdout(d, &["install", v2.to_str().unwrap()]);
    assert!(out.contains("upgraded from 1.0.0"), "{out}");
    assert_eq!(fs::read_to_string(d.join("specs/SPEC-000/w/a.md")).unwrap(), "a2\n");
    stdout(d, &["verify"]);
}

/// Package files hard-linked to each other by hand and sealed that way: an
/// upgrade that changes one member of the link group and drops another, and
/// the uninstall afterwards, both succeed and leave `verify` clean. (The
/// target used to keep HEAD's link groups verbatim, so the checkout found a
/// group naming files with different bytes and called it store damage,
/// exit 3, leaving the install pending.)
#[test]
fn hard_linked_package_files_upgrade_and_uninstall() {
    use std::os::unix::fs::MetadataExt;
    let s = setup();
    let d = s.plane.path();
    let [x, y, z, w] = ["x", "y", "z", "w"].map(|n| format!("specs/SPEC-000/l/{n}.md"));
    let v1 = pack(
        &s,
        "l1",
        &[(&x, "same\n"), (&y, "same\n"), (&z, "same\n"), (&w, "same\n")],
        &s.admin,
        &["--id", "PKG-L", "--version", "1.0.0"],
    );
    let v2 = pack(
        &s,
        "l2",
        &[(&x, "same\n"), (&y, "new\n"), (&w, "same\n")],
        &s.admin,
        &["--id", "PKG-L", "--version", "2.0.0"],
    );
    stdout(d, &["install", v1.to_str().unwrap()]);
    for p in [&y, &z, &w] {
        fs::remove_file(d.join(p)).unwrap();
        fs::hard_link(d.join(&x), d.join(p)).unwrap();
    }
    stdout(d, &["snapshot", "-m", "linked by hand"]);
    let out = stdout(d, &["install", v2.to_str().unwrap()]);
    assert!(out.contains("upgraded from 1.0.0"), "{out}");
    assert_eq!(fs::read_to_string(d.join(&x)).unwrap(), "same\n");
    assert_eq!(fs::read_to_string(d.join(&y)).unwrap(), "new\n");
    assert!(!d.join(&z).exists(), "the dropped file is still there");
    let ino = |p: &str| fs::metadata(d.join(p)).unwrap().ino();
    assert_ne!(ino(&x), ino(&y), "the changed file still shares the old inode");
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
    assert!(
        !d.join(".cp/planes")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().path().join("install.pending").exists() })
    );
    stdout(d, &["uninstall", "PKG-L"]);
    assert!(!d.join(&x).exists() && !d.join(&y).exists() && !d.join(&w).exists());
    stdout(d, &["verify"]);
}

/// A package file the upgrade leaves as it is, chowned while the upgrade
/// runs: the seal refuses (the plane would differ from the install's
/// target and nothing would say so), the install stays pending and a
/// `snapshot` is refused too until the owner is put back; then the next
/// command finishes the install.
#[test]
fn a_file_chowned_while_an_upgrade_runs_refuses_its_seal_until_put_back() {
    use std::os::unix::fs::MetadataExt;
    if common::skip_unless_root("a_file_chowned_while_an_upgrade_runs_refuses_its_seal_until_put_back") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    let (v1, v2) = two_versions(&s, "o", "PKG-O");
    stdout(d, &["install", v1.to_str().unwrap()]);
    let same = d.join("specs/SPEC-000/o/same.md");
    let (uid, gid) = {
        let m = fs::metadata(&same).unwrap();
        (m.uid(), m.gid())
    };
    let out = install_paused_before_seal(d, &v2, || {
        std::os::unix::fs::chown(&same, Some(4242), Some(4242)).unwrap();
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CP112 specs/SPEC-000/o/same.md"), "{err}");
    assert!(
        err.contains(&format!("owner changed from {uid}:{gid} to 4242:4242")),
        "{err}"
    );
    assert!(!stdout(d, &["log"]).contains("install PKG-O 2.0.0"));
    // A snapshot would seal what the install's seal refused: refused too,
    // saying why; nothing sealed.
    let head = stdout(d, &["log"]);
    let o = cplane(d).args(["snapshot", "-m", "meanwhile"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("interrupted install into plane main cannot be finished"),
        "{err}"
    );
    assert!(err.contains("owner changed from"), "{err}");
    assert_eq!(stdout(d, &["log"]), head, "sealed anyway");
    // Put back, the next command finishes it.
    std::os::unix::fs::chown(&same, Some(uid), Some(gid)).unwrap();
    let o = cplane(d).args(["snapshot", "-m", "after"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("finished an interrupted install of PKG-O 2.0.0"), "{err}");
    assert!(!install_pending(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// A file that appears while an install runs, owned by nobody, refuses the
/// install's seal; the install stays pending, but `own` (what the finding
/// asks for) still runs, and the next command then finishes the install.
/// (Every command used to try to finish the install first and stop at its
/// refusal, `own` included: the plane was wedged until the file was
/// deleted by hand.)
#[test]
fn an_install_refused_by_a_file_that_appeared_meanwhile_is_not_a_wedge() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(
        &s,
        "wedge",
        &[("specs/SPEC-000/wedge/a.md", "a\n")],
        &s.admin,
        &["--id", "PKG-W"],
    );
    let stray = d.join("specs/SPEC-000/stray.md");
    let out = install_paused_before_seal(d, &pkg, || fs::write(&stray, "stray\n").unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("specs/SPEC-000/stray.md"), "{err}");
    assert!(install_pending(d));
    let o = cplane(d)
        .args(["own", "specs/SPEC-000/stray.md", "--by", "SPEC-000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "own was refused: {err}");
    assert!(err.contains("is not finished"), "{err}");
    let o = cplane(d).args(["snapshot", "-m", "after"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("finished an interrupted install of PKG-W"), "{err}");
    assert!(!install_pending(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// A package's files in a directory the plane lacks are written whole
/// into a directory of `.cp/tmp` while the package streams, and that
/// directory is renamed into place: killed before the checkout, nothing
/// of it is in the plane and the next command removes it; installed, every
/// file and directory is as packed and nothing is left in `.cp/tmp`.
#[test]
fn a_new_directory_is_built_aside_and_renamed_into_place() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    let d = s.plane.path();
    let files = [
        ("specs/SPEC-000/new/a.md", "a\n"),
        ("specs/SPEC-000/new/sub/b.md", "b\n"),
        ("specs/SPEC-000/new/sub/deep/c.md", "c\n"),
    ];
    let pkg = pack(&s, "new", &files, &s.admin, &["--id", "PKG-NEW"]);
    let before = plane_files(d);
    let marker = d.join(".cp/planes/main/staged");
    let _ = fs::remove_file(&marker);
    let mut child = common::spawn(d, &["install", pkg.to_str().unwrap()], &[(common::PAUSE_STAGED, "1")]);
    common::wait_for(&marker, &mut child);
    let built = prebuilt_dirs(d);
    assert_eq!(built.len(), 1, "{built:?}");
    assert_eq!(fs::read_to_string(built[0].join("sub/deep/c.md")).unwrap(), "c\n");
    assert!(!d.join("specs/SPEC-000/new").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    stdout(d, &["snapshot", "-m", "after the kill", "--allow-unchanged"]);
    assert!(prebuilt_dirs(d).is_empty(), "left in .cp/tmp: {:?}", prebuilt_dirs(d));
    assert_eq!(plane_files(d), before);
    stdout(d, &["install", pkg.to_str().unwrap()]);
    for (p, want) in files {
        assert_eq!(fs::read_to_string(d.join(p)).unwrap(), want);
    }
    let mode = |p: &str| fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o7777;
    let spec_dir = mode("specs/SPEC-000");
    for dir in [
        "specs/SPEC-000/new",
        "specs/SPEC-000/new/sub",
        "specs/SPEC-000/new/sub/deep",
    ] {
        assert_eq!(mode(dir), spec_dir, "{dir} kept the 0700 it was built with");
    }
    assert!(prebuilt_dirs(d).is_empty(), "left in .cp/tmp: {:?}", prebuilt_dirs(d));
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
}

/// The directory a package builds aside is made in the plane by someone
/// else before the checkout: the rename never replaces it, the files are
/// written into it one by one, and nothing is left in `.cp/tmp`.
#[test]
fn a_new_directory_made_meanwhile_gets_the_files_one_by_one() {
    use std::os::unix::fs::MetadataExt;
    let s = setup();
    let d = s.plane.path();
    let files = [
        ("specs/SPEC-000/race/a.md", "a\n"),
        ("specs/SPEC-000/race/sub/b.md", "b\n"),
    ];
    let pkg = pack(&s, "race", &files, &s.admin, &["--id", "PKG-RACE"]);
    let mut made = None;
    let (code, out, err) = common::paused_after_staging(d, &["install", pkg.to_str().unwrap()], || {
        fs::create_dir(d.join("specs/SPEC-000/race")).unwrap();
        made = Some(fs::metadata(d.join("specs/SPEC-000/race")).unwrap().ino());
    });
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        fs::metadata(d.join("specs/SPEC-000/race")).unwrap().ino(),
        made.unwrap(),
        "the rename replaced the directory made meanwhile"
    );
    for (p, want) in files {
        assert_eq!(fs::read_to_string(d.join(p)).unwrap(), want);
    }
    assert!(prebuilt_dirs(d).is_empty(), "left in .cp/tmp: {:?}", prebuilt_dirs(d));
    stdout(d, &["verify"]);
}

/// An uninstall in a plane its seal would refuse already (an unowned file
/// away from the package) is refused before anything is removed: it used
/// to remove the files, then have its seal refused, leaving the plane
/// changed with no checkpoint and an error saying nothing was written.
#[test]
fn an_uninstall_its_seal_would_refuse_removes_nothing() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(
        &s,
        "u",
        &[("specs/SPEC-000/u/a.md", "a\n")],
        &s.admin,
        &["--id", "PKG-U"],
    );
    stdout(d, &["install", pkg.to_str().unwrap()]);
    write(d, "specs/SPEC-000/stray.md", "stray\n");
    let before = listing(d);
    let o = cplane(d).args(["uninstall", "PKG-U"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("specs/SPEC-000/stray.md"), "{err}");
    assert_eq!(listing(d), before, "a refused uninstall changed the plane or the store");
    fs::remove_file(d.join("specs/SPEC-000/stray.md")).unwrap();
    stdout(d, &["uninstall", "PKG-U"]);
    assert!(!d.join("specs/SPEC-000/u/a.md").exists());
    stdout(d, &["verify"]);
}

/// An install killed after its files were written is finished by the next
/// command, and the ledger records it as an install of that package (with
/// its checkpoint), after the interrupted command's intent (recorded late),
/// not as a snapshot recorded late.
#[test]
fn an_install_finished_by_the_next_command_is_recorded_as_an_install() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(
        &s,
        "late",
        &[("specs/SPEC-000/late/a.md", "a\n")],
        &s.admin,
        &["--id", "PKG-LATE"],
    );
    let mut child = common::packages::install_paused_at(d, &pkg, "registry");
    child.kill().unwrap();
    child.wait().unwrap();
    let o = cplane(d).args(["snapshot", "-m", "next"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("finished an interrupted install of PKG-LATE"), "{err}");
    let ledger = stdout(d, &["ledger", "--op", "install"]);
    assert!(
        ledger.contains("installed PKG-LATE 0.1.0") && ledger.contains("finished after the install was interrupted"),
        "{ledger}"
    );
    let all = stdout(d, &["ledger"]);
    assert!(!all.contains("recorded late (the command"), "a late snapshot: {all}");
    let tried = all
        .find("recorded late: the command did not record its outcome")
        .expect("the intent, late");
    assert!(tried < all.find("installed PKG-LATE").unwrap(), "{all}");
    stdout(d, &["ledger", "verify"]);
    stdout(d, &["verify"]);
}

/// A refused install pending over a stray file; returns the plane's
/// directory `.cp/planes/main` and the stray's path.
fn refused_over_a_stray(s: &Setup, id: &str) -> (PathBuf, PathBuf) {
    let d = s.plane.path();
    let dir = id.to_lowercase();
    let pkg = pack(
        s,
        &dir,
        &[(&format!("specs/SPEC-000/{dir}/a.md"), "a\n")],
        &s.admin,
        &["--id", id],
    );
    let stray = d.join("specs/SPEC-000/stray.md");
    let out = install_paused_before_seal(d, &pkg, || fs::write(&stray, "stray\n").unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(install_pending(d));
    (d.join(".cp/planes/main"), stray)
}

/// Finishing a pending install records it after what the ledger had not
/// recorded yet: the intent of another command killed meanwhile (here a
/// quarantine's) and a HEAD moved outside cplane. (The install's entry
/// used to be appended first, which dropped the other command's intent and
/// made HEAD look recorded.)
#[test]
fn a_finished_pending_install_is_recorded_after_what_the_ledger_missed() {
    let s = setup();
    let d = s.plane.path();
    let (planes, stray) = refused_over_a_stray(&s, "PKG-MISSED");
    fs::remove_file(&stray).unwrap();
    // What a quarantine killed after its change leaves.
    fs::write(
        planes.join("ledger.pending"),
        r#"{"op":"quarantine","message":"quarantine specs/SPEC-000/stray.md","actor":"tester"}"#,
    )
    .unwrap();
    // HEAD moved back outside cplane, to the first checkpoint.
    let first = stdout(d, &["log", "--json"]);
    let ids: Vec<String> = first
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| match v {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        })
        .filter_map(|v| v["snapshot"].as_str().map(String::from))
        .collect();
    let oldest = ids.last().expect("log lists snapshots").clone();
    fs::write(planes.join("HEAD"), format!("{oldest}\n")).unwrap();
    let o = cplane(d).args(["snapshot", "-m", "next"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("finished an interrupted install of PKG-MISSED"), "{err}");
    let ledger = stdout(d, &["ledger"]);
    let at = |needle: &str| {
        ledger
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in\n{ledger}"))
    };
    assert!(
        at("quarantine specs/SPEC-000/stray.md") < at("installed PKG-MISSED"),
        "{ledger}"
    );
    assert!(at("moved outside cplane") < at("installed PKG-MISSED"), "{ledger}");
    stdout(d, &["ledger", "verify"]);
}

/// An uninstall is not refused for what the package itself is blamed for
/// on the packages registry (its row names another framework now): the
/// uninstall removes that row.
#[test]
fn an_uninstall_is_not_refused_for_its_own_registry_row() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(
        &s,
        "own-row",
        &[("specs/SPEC-000/own-row/a.md", "a\n")],
        &s.admin,
        &["--id", "PKG-ROW"],
    );
    stdout(d, &["install", pkg.to_str().unwrap()]);
    let reg = d.join("registries/packages_registry.csv");
    let text = fs::read_to_string(&reg).unwrap();
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("PKG-ROW,") {
                let mut f: Vec<&str> = l.split(',').collect();
                f[3] = "FMWK-NOPE";
                f.join(",")
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    fs::write(&reg, edited).unwrap();
    let o = cplane(d).args(["uninstall", "PKG-ROW"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!d.join("specs/SPEC-000/own-row/a.md").exists());
    assert!(
        !fs::read_to_string(&reg).unwrap().contains("PKG-ROW,"),
        "the uninstall left its registry row"
    );
    stdout(d, &["verify"]);
}

/// A setgid `.cp/tmp` would hand its group to a directory built there,
/// and the rename would carry it into a parent that gives none: the
/// directory is then made in place, with the group `mkdir` gives it there.
#[test]
fn a_setgid_store_tmp_does_not_give_new_directories_its_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if common::skip_unless_root("a_setgid_store_tmp_does_not_give_new_directories_its_group") {
        return;
    }
    let s = setup();
    let d = s.plane.path();
    let tmp = d.join(".cp/tmp");
    std::os::unix::fs::chown(&tmp, None, Some(4242)).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o2775)).unwrap();
    let parent = d.join("specs/SPEC-000");
    fs::create_dir(parent.join("control")).unwrap();
    let want = fs::metadata(parent.join("control")).unwrap().gid();
    fs::remove_dir(parent.join("control")).unwrap();
    assert_ne!(want, 4242);
    let pkg = pack(
        &s,
        "g",
        &[("specs/SPEC-000/g/sub/a.md", "a\n")],
        &s.admin,
        &["--id", "PKG-G"],
    );
    stdout(d, &["install", pkg.to_str().unwrap()]);
    for dir in ["specs/SPEC-000/g", "specs/SPEC-000/g/sub"] {
        assert_eq!(fs::metadata(d.join(dir)).unwrap().gid(), want, "{dir}");
    }
}
