//! `cplane pack` through the binary: a spec's files packed, signed and
//! readable by the package reader; reproducible with SOURCE_DATE_EPOCH;
//! refused, writing nothing, when a gate fails or the framework does not
//! authorize a path.

mod common;

use common::{cplane, stdout, write};
use std::fs;
use std::path::{Path, PathBuf};

fn governed() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    stdout(t.path(), &["init", "--governed"]);
    let k = tempfile::tempdir().unwrap();
    let key = k.path().join("maint");
    stdout(
        t.path(),
        &["key", "generate", "--out", key.to_str().unwrap(), "--comment", "maint"],
    );
    (t, k, key)
}

fn trusted(key: &Path) -> Vec<cplane::keys::Signer> {
    let public = fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    let mut fields = public.split_whitespace();
    let line = format!(
        "maint namespaces=\"cplane-package\" {} {} cplane-role=maintainer\n",
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    cplane::keys::parse_allowed_signers(&line, "test").unwrap()
}

#[test]
fn a_specs_files_are_packed_signed_and_read_back() {
    let (t, k, key) = governed();
    let d = t.path();
    let out = k.path().join("genesis.cppkg");
    let o = stdout(
        d,
        &[
            "pack",
            "--spec",
            "SPEC-000",
            "--version",
            "1.2.3",
            "--key",
            key.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.contains("packed PKG-000 1.2.3"), "{o}");
    let (pkg, files) = cplane::package::read_to_memory(
        fs::File::open(&out).unwrap(),
        &trusted(&key),
        &cplane::package::Limits::default(),
    )
    .unwrap();
    assert_eq!(pkg.manifest.spec_id, "SPEC-000");
    assert_eq!(pkg.manifest.framework_id, "FMWK-000");
    let paths: Vec<&str> = pkg.manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"registries/frameworks_registry.csv"), "{paths:?}");
    for (f, bytes) in pkg.manifest.files.iter().zip(&files) {
        assert_eq!(&fs::read(d.join(&f.path)).unwrap(), bytes, "{}", f.path);
    }
}

#[test]
fn the_same_files_key_and_time_give_the_same_bytes() {
    let (t, k, key) = governed();
    let d = t.path();
    let a = k.path().join("a.cppkg");
    let b = k.path().join("b.cppkg");
    for out in [&a, &b] {
        cplane(d)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "pack",
                "--spec",
                "SPEC-000",
                "--key",
                key.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .assert()
            .success();
    }
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
}

/// `cplane pack --spec SPEC-000 --from SRC --key KEY -o OUT` in `d`: exit
/// code, and stdout and stderr together.
fn pack_from(d: &Path, src: &Path, key: &Path, out: &Path) -> (Option<i32>, String) {
    let o = cplane(d)
        .args(["pack", "--spec", "SPEC-000", "--from"])
        .arg(src)
        .arg("--key")
        .arg(key)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), all)
}

#[test]
fn a_failing_gate_or_an_unauthorized_path_writes_nothing() {
    let (t, k, key) = governed();
    let d = t.path();
    let src = k.path().join("src");
    // A secret, in a path the genesis framework authorizes.
    let aws = format!("{}{}", "AKIA", "ZXCVBNMASDFGHJKL");
    write(&src, "specs/SPEC-000/notes.md", &format!("key = '{aws}'\n"));
    let out = k.path().join("bad.cppkg");
    let (code, all) = pack_from(d, &src, &key, &out);
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("CP301"), "{all}");
    assert!(!out.exists());
    // A path the framework does not authorize.
    fs::remove_dir_all(&src).unwrap();
    write(&src, "elsewhere/x.md", "# x\n");
    let (code, all) = pack_from(d, &src, &key, &out);
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("CP204"), "{all}");
    assert!(!out.exists());
    // No key: refused before anything is written.
    let o = cplane(d)
        .args(["pack", "--spec", "SPEC-000", "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists());
}
