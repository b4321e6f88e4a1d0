//! The package format (package-format.md): round trips through
//! `cplane::package::build` and `read`, reproducibility, a package built by
//! the document's shell recipe with `tar`, `zstd`, `b3sum` and `ssh-keygen`
//! alone, and one hostile or damaged archive per refusal, each refused with
//! its own error.
//!
//! The recipe test needs GNU tar, zstd, b3sum and ssh-keygen (Debian
//! packages `tar`, `zstd`, `b3sum`, `openssh-client`); without them it
//! fails, saying so, rather than skip.

mod common;

use common::noise;

use cplane::id::ObjectId;
use cplane::keys::{self, KeyError, PrivateKey, Role, Signer, UtcTime};
use cplane::package::{
    self, Attestation, BuildFile, Dependency, FileEntry, FileMode, FileSource, Limits, Manifest, PackageError,
    PackageMeta, PathRule, Version,
};
use proptest::prelude::*;
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, PublicKey};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

// ------------------------------------------------------------------ fixtures

struct Keys {
    maintainer: PrivateKey,
    admin: PrivateKey,
    auditor: PrivateKey,
    revoked: PrivateKey,
    stranger: PrivateKey,
    trusted: Vec<Signer>,
}

fn signer(key: &PrivateKey, name: &str, role: Role, namespaces: &[&str], revoked: Option<UtcTime>) -> Signer {
    Signer {
        principals: vec![name.to_string()],
        role,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        valid_after: None,
        valid_before: None,
        key: PublicKey::new(key.public_key().key_data().clone(), ""),
        comment: String::new(),
        revoked,
        line: 0,
    }
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let new = || PrivateKey::random(&mut OsRng, Algorithm::Ed25519).expect("generate a key");
    let (maintainer, admin, auditor, revoked, stranger) = (new(), new(), new(), new(), new());
    let ns = ["cplane-ledger", "cplane-package"];
    let trusted = vec![
        signer(&maintainer, "maint", Role::Maintainer, &ns, None),
        signer(&admin, "admin", Role::Admin, &ns, None),
        signer(&auditor, "audit", Role::Auditor, &ns, None),
        signer(
            &revoked,
            "gone",
            Role::Maintainer,
            &ns,
            Some(UtcTime::from_unix(1_700_000_000)),
        ),
    ];
    Keys {
        maintainer,
        admin,
        auditor,
        revoked,
        stranger,
        trusted,
    }
});

const TIME: i64 = 1_795_996_327; // 2026-11-29T23:52:07Z

fn meta() -> PackageMeta {
    PackageMeta {
        id: "PKG-hello".to_string(),
        version: Version::new(1, 0, 0),
        spec_id: "SPEC-hello".to_string(),
        framework_id: "FMWK-apps".to_string(),
        tier: "ho1".to_string(),
        dependencies: vec![Dependency {
            id: "PKG-base".to_string(),
            requirement: ">=1.2.0, <2.0.0".parse().unwrap(),
        }],
    }
}

fn sample_files() -> Vec<(String, FileMode, Vec<u8>)> {
    let long_dir = "d".repeat(120);
    vec![
        (
            "bin/hello".to_string(),
            FileMode::Executable,
            b"#!/bin/sh\necho hello\n".to_vec(),
        ),
        (
            "share/hello/README.md".to_string(),
            FileMode::Regular,
            b"# hello\n".to_vec(),
        ),
        ("share/empty".to_string(), FileMode::Regular, Vec::new()),
        (
            "ünïcode/straße.txt".to_string(),
            FileMode::Regular,
            "grüße\n".as_bytes().to_vec(),
        ),
        (
            format!("{long_dir}/{}", "f".repeat(90)),
            FileMode::Regular,
            vec![7u8; 513],
        ),
        (
            "big.bin".to_string(),
            FileMode::Regular,
            (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect(),
        ),
    ]
}

fn build_files(files: &[(String, FileMode, Vec<u8>)], key: &PrivateKey, time: i64) -> Vec<u8> {
    let list: Vec<BuildFile<'_>> = files
        .iter()
        .map(|(path, mode, bytes)| BuildFile {
            path,
            mode: *mode,
            source: FileSource::Bytes(bytes),
        })
        .collect();
    let mut out = Vec::new();
    package::build(&meta(), &list, key, UtcTime::from_unix(time), &mut out).expect("build");
    out
}

fn read(bytes: &[u8]) -> Result<(package::Package, Vec<Vec<u8>>), PackageError> {
    package::read_to_memory(bytes, &KEYS.trusted, &Limits::default())
}

fn decompress(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).expect("decompress")
}

// ---------------------------------------------------------------- round trip

#[test]
fn round_trip() {
    let files = sample_files();
    let bytes = build_files(&files, &KEYS.maintainer, TIME);
    let (pkg, contents) = read(&bytes).expect("read back");
    let mut sorted = files.clone();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    assert_eq!(pkg.manifest.files.len(), sorted.len());
    for ((entry, data), (path, mode, bytes)) in pkg.manifest.files.iter().zip(&contents).zip(&sorted) {
        assert_eq!(&entry.path, path);
        assert_eq!(entry.mode, *mode);
        assert_eq!(entry.size, bytes.len() as u64);
        assert_eq!(entry.blake3, ObjectId(*blake3::hash(bytes).as_bytes()));
        assert_eq!(data, bytes);
    }
    assert_eq!(pkg.manifest.id, "PKG-hello");
    assert_eq!(pkg.manifest.dependencies[0].requirement.to_string(), ">=1.2.0, <2.0.0");
    assert_eq!(pkg.signer.principals, vec!["maint".to_string()]);
    assert_eq!(pkg.time, UtcTime::from_unix(TIME));
    assert_eq!(pkg.attestation.predicate.time, "2026-11-29T23:52:07Z");
    assert_eq!(
        pkg.attestation.predicate.signer,
        keys::fingerprint(KEYS.maintainer.public_key())
    );
    assert_eq!(
        pkg.manifest_digest,
        ObjectId(*blake3::hash(&pkg.manifest_bytes).as_bytes())
    );
    assert_eq!(Manifest::parse(&pkg.manifest_bytes).unwrap(), pkg.manifest);

    // The archive's members, in order, as any tar sees them.
    let tar = decompress(&bytes);
    let mut archive = tar::Archive::new(tar.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    let mut expected = vec![
        "manifest.json".to_string(),
        "manifest.json.sig".into(),
        "attestation.json".into(),
    ];
    expected.extend(sorted.iter().map(|f| format!("files/{}", f.0)));
    assert_eq!(names, expected);
}

#[test]
fn admin_keys_sign_too_and_empty_packages_read() {
    let bytes = build_files(&[], &KEYS.admin, TIME);
    let (pkg, contents) = read(&bytes).expect("read back");
    assert!(pkg.manifest.files.is_empty() && contents.is_empty());
    assert_eq!(pkg.signer.role, Role::Admin);
}

#[test]
fn reproducible() {
    let files = sample_files();
    let a = build_files(&files, &KEYS.maintainer, TIME);
    let mut reversed = files.clone();
    reversed.reverse();
    let b = build_files(&reversed, &KEYS.maintainer, TIME);
    assert_eq!(a, b, "same input (in any order), key and time: same bytes");
    assert_ne!(
        a,
        build_files(&files, &KEYS.maintainer, TIME + 1),
        "the time is an input"
    );
}

#[test]
fn path_prepared_and_byte_sources_make_the_same_package() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = sample_files();
    // Past the 8 MiB line where a file is streamed through zstd's
    // multithreaded encoder instead of compressed in memory.
    files.push((
        "big/blob".to_string(),
        FileMode::Regular,
        (0..9u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 7)
            .collect(),
    ));
    let paths: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, (_, _, bytes))| {
            let p = dir.path().join(format!("f{i}"));
            fs::write(&p, bytes).unwrap();
            p
        })
        .collect();
    let list: Vec<BuildFile<'_>> = files
        .iter()
        .zip(&paths)
        .map(|((path, mode, _), p)| BuildFile {
            path,
            mode: *mode,
            source: FileSource::Path(p),
        })
        .collect();
    let mut out = Vec::new();
    let built = package::build(&meta(), &list, &KEYS.maintainer, UtcTime::from_unix(TIME), &mut out).unwrap();
    assert_eq!(out, build_files(&files, &KEYS.maintainer, TIME));
    assert_eq!(built.compressed_size, out.len() as u64);
    let prepared: Vec<package::Prepared> = files.iter().map(|(_, _, b)| package::prepare(b).unwrap()).collect();
    let list: Vec<BuildFile<'_>> = files
        .iter()
        .zip(&prepared)
        .map(|((path, mode, _), p)| BuildFile {
            path,
            mode: *mode,
            source: FileSource::Prepared(p),
        })
        .collect();
    let mut again = Vec::new();
    package::build(&meta(), &list, &KEYS.maintainer, UtcTime::from_unix(TIME), &mut again).unwrap();
    assert!(again == out, "prepared sources wrote other bytes");
    let (package, read_back) = read(&out).unwrap();
    for (entry, bytes) in package.manifest.files.iter().zip(&read_back) {
        let want = files.iter().find(|f| f.0 == entry.path).unwrap();
        assert!(*bytes == want.2, "{} read back other bytes", entry.path);
    }
}

#[test]
fn the_sink_streams_and_what_it_leaves_is_still_verified() {
    let bytes = build_files(&sample_files(), &KEYS.maintainer, TIME);
    let mut seen = Vec::new();
    let pkg = package::read(bytes.as_slice(), &KEYS.trusted, &Limits::default(), |entry, data| {
        let mut first = [0u8; 1];
        let n = data.read(&mut first)?; // read at most one byte, leave the rest
        seen.push((entry.path.clone(), n));
        Ok(())
    })
    .expect("read");
    assert_eq!(seen.len(), pkg.manifest.files.len());

    // A sink error is reported as such.
    let err = package::read(bytes.as_slice(), &KEYS.trusted, &Limits::default(), |_, _| {
        Err(std::io::Error::other("disk full"))
    })
    .unwrap_err();
    assert!(matches!(err, PackageError::Sink { .. }), "{err}");
}

#[test]
fn build_refuses_what_read_would_refuse() {
    let key = &KEYS.maintainer;
    let t = UtcTime::from_unix(TIME);
    let one = |path: &'static str| {
        let f = [BuildFile {
            path,
            mode: FileMode::Regular,
            source: FileSource::Bytes(b"x"),
        }];
        package::build(&meta(), &f, key, t, Vec::new()).unwrap_err()
    };
    assert!(matches!(
        one("../x"),
        PackageError::UnsafePath {
            rule: PathRule::DotDotSegment,
            ..
        }
    ));
    assert!(matches!(
        one("/x"),
        PackageError::UnsafePath {
            rule: PathRule::Absolute,
            ..
        }
    ));
    let twice = [
        BuildFile {
            path: "A",
            mode: FileMode::Regular,
            source: FileSource::Bytes(b"x"),
        },
        BuildFile {
            path: "a",
            mode: FileMode::Regular,
            source: FileSource::Bytes(b"y"),
        },
    ];
    let err = package::build(&meta(), &twice, key, t, Vec::new()).unwrap_err();
    assert!(matches!(err, PackageError::CaseCollision { .. }), "{err}");
    let mut bad = meta();
    bad.id = "hello".to_string();
    let err = package::build(&bad, &[], key, t, Vec::new()).unwrap_err();
    assert!(matches!(err, PackageError::ManifestField { field: "id", .. }), "{err}");
}

// --------------------------------------------- the shell recipe, tools alone

fn run(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{what} is not installed; the package-format test needs GNU tar, zstd, b3sum and ssh-keygen (apt-get install tar zstd b3sum openssh-client)"
        ),
        Err(e) => panic!("could not run {what}: {e}"),
    };
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The shell block between the recipe markers of package-format.md.
fn recipe() -> String {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("package-format.md")).unwrap();
    let start = doc.find("<!-- recipe:begin -->").expect("recipe begin marker");
    let end = doc.find("<!-- recipe:end -->").expect("recipe end marker");
    let block = &doc[start..end];
    let body = block.split_once("```sh\n").expect("a sh block").1;
    body.rsplit_once("```").expect("block end").0.to_string()
}

#[test]
fn a_package_built_with_tar_zstd_b3sum_and_ssh_keygen_alone_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = sample_files();
    for (path, mode, bytes) in &files {
        let p = d.join("payload").join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let bits = if *mode == FileMode::Executable { 0o755 } else { 0o600 };
        fs::set_permissions(&p, fs::Permissions::from_mode(bits)).unwrap();
    }
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "packager", "-f", "key"])
            .current_dir(d),
        "ssh-keygen",
    );
    fs::write(d.join("recipe.sh"), recipe()).unwrap();
    run(
        Command::new("bash")
            .arg("recipe.sh")
            .env("KEY", d.join("key"))
            .current_dir(d),
        "bash recipe.sh (package-format.md's worked example)",
    );
    let shell_built = fs::read(d.join("PKG-hello-1.0.0.cpkg")).expect("the recipe wrote the package");

    let key = keys::load_private(&d.join("key")).unwrap();
    let trusted = vec![signer(&key, "packager", Role::Maintainer, &["cplane-package"], None)];
    let (pkg, contents) =
        package::read_to_memory(shell_built.as_slice(), &trusted, &Limits::default()).expect("cplane reads it");
    assert_eq!(pkg.manifest.files.len(), files.len());
    for (entry, data) in pkg.manifest.files.iter().zip(&contents) {
        let (_, mode, bytes) = files.iter().find(|f| f.0 == entry.path).unwrap();
        assert_eq!((entry.mode, data), (*mode, bytes));
    }
    assert_eq!(pkg.attestation.predicate.time, "2026-11-30T12:00:00Z");

    // cplane's own build of the same input: the same archive, byte for byte.
    let t = package::parse_rfc3339("2026-11-30T12:00:00Z").unwrap();
    let own = build_files(&files, &key, t.unix());
    assert_eq!(
        decompress(&own),
        decompress(&shell_built),
        "GNU tar's archive equals cplane's"
    );
    // And the signature ssh-keygen made is the one cplane makes.
    assert_eq!(
        fs::read_to_string(d.join("stage/manifest.json.sig")).unwrap(),
        keys::sign(&key, "cplane-package", &pkg.manifest_bytes).unwrap()
    );
}

// ---------------------------------------------------------- hostile archives

/// A ustar header for a member of any name and type (the `tar` crate's
/// checksum spelling, which readers accept too).
fn header(name: &[u8], typeflag: u8, mode: u32, size: u64, linkname: &[u8]) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    {
        let u = h.as_ustar_mut().unwrap();
        if name.len() <= 100 {
            u.name[..name.len()].copy_from_slice(name);
        } else {
            let (prefix, rest) = package::ustar_split(name).expect("splittable name");
            u.prefix[..prefix.len()].copy_from_slice(prefix);
            u.name[..rest.len()].copy_from_slice(rest);
        }
        u.linkname[..linkname.len()].copy_from_slice(linkname);
        u.typeflag = [typeflag];
    }
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_cksum();
    *h.as_bytes()
}

/// One archive member to craft.
enum M {
    /// A regular file.
    File(String, u32, Vec<u8>),
    /// A header (any type) and data.
    Raw(Box<[u8; 512]>, Vec<u8>),
}

fn file(name: &str, mode: u32, data: &[u8]) -> M {
    M::File(name.to_string(), mode, data.to_vec())
}

fn tar_bytes(members: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let (h, data) = match m {
            M::File(name, mode, data) => (header(name.as_bytes(), b'0', *mode, data.len() as u64, b""), data),
            M::Raw(h, data) => (**h, data),
        };
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn compress(tar: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(tar, 3).unwrap()
}

/// A package's parts, to tamper with before assembling.
struct Parts {
    manifest: Manifest,
    files: Vec<(String, u32, Vec<u8>)>,
}

impl Parts {
    /// The manifest of `files` (sorted by path; not validated).
    fn new(files: &[(&str, &[u8])]) -> Parts {
        let mut files: Vec<(String, u32, Vec<u8>)> =
            files.iter().map(|(p, d)| (p.to_string(), 0o644, d.to_vec())).collect();
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let m = meta();
        let manifest = Manifest {
            format: 1,
            id: m.id,
            version: m.version,
            spec_id: m.spec_id,
            framework_id: m.framework_id,
            tier: m.tier,
            dependencies: m.dependencies,
            attestation: ObjectId::default(),
            files: files
                .iter()
                .map(|(p, _, d)| FileEntry {
                    path: p.clone(),
                    mode: FileMode::Regular,
                    size: d.len() as u64,
                    blake3: ObjectId(*blake3::hash(d).as_bytes()),
                })
                .collect(),
        };
        Parts { manifest, files }
    }

    /// The attestation for `key`, the manifest bytes naming it, and the
    /// signature by `key` in `namespace`.
    fn sign_with(&mut self, key: &PrivateKey, namespace: &str) -> (Vec<u8>, String, Vec<u8>) {
        let att = self
            .manifest
            .expected_attestation(&keys::fingerprint(key.public_key()), UtcTime::from_unix(TIME))
            .to_canonical_bytes();
        self.manifest.attestation = ObjectId(*blake3::hash(&att).as_bytes());
        let bytes = self.manifest.to_canonical_bytes();
        let sig = keys::sign(key, namespace, &bytes).unwrap();
        (bytes, sig, att)
    }

    fn metadata(&mut self) -> Vec<M> {
        let (manifest, sig, att) = self.sign_with(&KEYS.maintainer, "cplane-package");
        vec![
            file("manifest.json", 0o644, &manifest),
            file("manifest.json.sig", 0o644, sig.as_bytes()),
            file("attestation.json", 0o644, &att),
        ]
    }

    fn file_members(&self) -> Vec<M> {
        self.files
            .iter()
            .map(|(p, mode, d)| file(&format!("files/{p}"), *mode, d))
            .collect()
    }

    /// Metadata, then the files: a valid package when nothing was tampered.
    fn assemble(&mut self) -> Vec<u8> {
        let mut members = self.metadata();
        members.extend(self.file_members());
        compress(&tar_bytes(&members))
    }
}

/// A check that an error is the expected refusal.
type Is = fn(&PackageError) -> bool;

fn refuse(bytes: &[u8]) -> PackageError {
    match read(bytes) {
        Ok(_) => panic!("a hostile package was accepted"),
        Err(e) => {
            // Every refusal is a sentence.
            assert!(!e.to_string().is_empty());
            if std::env::var_os("SHOW_REFUSALS").is_some() {
                eprintln!("refused: {e}");
            }
            install_refuses(bytes, &e);
            e
        }
    }
}

/// A governed plane whose ledger trusts the keys of [`KEYS`] as
/// [`Keys::trusted`] does (the revoked one revoked), and a directory beside
/// it standing for "everything outside".
struct Plane {
    _dir: tempfile::TempDir,
    plane: std::path::PathBuf,
    outside: std::path::PathBuf,
    package: std::path::PathBuf,
}

static PLANE: LazyLock<std::sync::Mutex<Plane>> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let (plane, outside, keys) = (
        dir.path().join("plane"),
        dir.path().join("outside"),
        dir.path().join("keys"),
    );
    for d in [&plane, &outside, &keys] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(outside.join("etc-passwd"), b"root:x:0:0\n").unwrap();
    common::stdout(&plane, &["init", "--governed"]);
    let save = |name: &str, key: &PrivateKey| {
        use std::os::unix::fs::PermissionsExt;
        let private = keys.join(name);
        fs::write(&private, key.to_openssh(ssh_key::LineEnding::LF).unwrap().as_bytes()).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
        let public = keys.join(format!("{name}.pub"));
        fs::write(&public, key.public_key().to_openssh().unwrap()).unwrap();
        public.to_str().unwrap().to_string()
    };
    let admin = save("admin", &KEYS.admin);
    common::stdout(&plane, &["key", "use", keys.join("admin").to_str().unwrap()]);
    common::stdout(&plane, &["key", "trust", &admin, "--role", "admin"]);
    let maint = save("maint", &KEYS.maintainer);
    common::stdout(&plane, &["key", "trust", &maint, "--role", "maintainer"]);
    let audit = save("audit", &KEYS.auditor);
    common::stdout(&plane, &["key", "trust", &audit, "--role", "auditor"]);
    let gone = save("gone", &KEYS.revoked);
    common::stdout(&plane, &["key", "trust", &gone, "--role", "maintainer"]);
    common::stdout(&plane, &["key", "revoke", &gone]);
    common::stdout(&plane, &["snapshot", "-m", "trusted keys"]);
    let package = dir.path().join("hostile.cppkg");
    std::sync::Mutex::new(Plane {
        _dir: dir,
        plane,
        outside,
        package,
    })
});

/// `cplane install` of the hostile `bytes` through the binary: refused
/// (exit 2, an archive that does not check out; the library said why:
/// `why`), with the plane, its store and everything outside byte-identical.
fn install_refuses(bytes: &[u8], why: &PackageError) {
    let fx = PLANE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    fs::write(&fx.package, bytes).unwrap();
    let before = (common::listing(&fx.plane), common::listing(&fx.outside));
    let o = common::cplane(&fx.plane)
        .args(["install", fx.package.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "install of a package refused as {why:?}: {err}"
    );
    assert!(err.contains("is refused"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // For the same reason as the library's reader (an install checks some
    // things itself: the chain, gates, paths), but for a signature (the
    // plane knows the revoked key only as gone).
    if !matches!(why, PackageError::Signature(_)) {
        assert!(err.contains(&why.to_string()), "install said {err}, the reader: {why}");
    }
    let after = (common::listing(&fx.plane), common::listing(&fx.outside));
    assert!(
        before == after,
        "a refused install ({why}) changed the plane, its store or the outside"
    );
}

fn two_files() -> Parts {
    Parts::new(&[("a.txt", b"alpha\n"), ("dir/b.txt", b"bravo\n")])
}

#[test]
fn the_crafting_helpers_make_valid_packages() {
    let bytes = two_files().assemble();
    let (pkg, contents) = read(&bytes).expect("valid");
    assert_eq!(contents, vec![b"alpha\n".to_vec(), b"bravo\n".to_vec()]);
    assert_eq!(pkg.manifest.files[1].path, "dir/b.txt");
}

#[test]
fn hostile_unsafe_paths_in_the_signed_manifest() {
    let cases: &[(&str, PathRule)] = &[
        ("/etc/passwd", PathRule::Absolute),
        ("a/../../etc/passwd", PathRule::DotDotSegment),
        ("..", PathRule::DotDotSegment),
        ("./a", PathRule::DotSegment),
        ("a//b", PathRule::EmptySegment),
        ("a/", PathRule::EmptySegment),
        ("", PathRule::Empty),
        (".cp/objects/x", PathRule::StoreDirectory),
        ("sub/.Cp/x", PathRule::StoreDirectory),
        ("d/.cplane-staging~", PathRule::StagingName),
        ("a\nb", PathRule::Character('\n')),
        ("a\\b", PathRule::Character('\\')),
    ];
    for (path, rule) in cases {
        let mut parts = Parts::new(&[(path, b"x")]);
        match refuse(&parts.assemble()) {
            PackageError::UnsafePath { path: p, rule: r } => {
                assert_eq!((&p, &r), (&path.to_string(), rule), "{path:?}")
            }
            other => panic!("{path:?}: {other}"),
        }
    }
}

#[test]
fn hostile_unsafe_member_name_not_in_the_manifest() {
    let mut parts = two_files();
    let mut members = parts.metadata();
    members.push(M::Raw(
        Box::new(header(b"files/../../etc/passwd", b'0', 0o644, 1, b"")),
        b"x".to_vec(),
    ));
    match refuse(&compress(&tar_bytes(&members))) {
        PackageError::UnsafePath { path, rule } => {
            assert_eq!(
                (path.as_str(), rule),
                ("files/../../etc/passwd", PathRule::DotDotSegment)
            )
        }
        other => panic!("{other}"),
    }
}

#[test]
fn hostile_case_fold_collision_and_file_as_directory() {
    let mut parts = Parts::new(&[("README", b"1"), ("readme", b"2")]);
    assert!(matches!(refuse(&parts.assemble()), PackageError::CaseCollision { .. }));
    let mut parts = Parts::new(&[("Straße/x", b"1"), ("STRASSE/x", b"2"), ("straße/X", b"3")]);
    match refuse(&parts.assemble()) {
        PackageError::CaseCollision { first, second } => {
            assert_eq!((first.as_str(), second.as_str()), ("Straße/x", "straße/X"))
        }
        other => panic!("{other}"),
    }
    let mut parts = Parts::new(&[("lib", b"1"), ("LIB/x", b"2")]);
    assert!(matches!(refuse(&parts.assemble()), PackageError::PathConflict { .. }));
}

#[test]
fn hostile_symlink_then_a_file_through_it() {
    let mut parts = Parts::new(&[("lib/passwd", b"root::0:0::/:/bin/sh\n")]);
    let mut members = parts.metadata();
    members.push(M::Raw(
        Box::new(header(b"files/lib", b'2', 0o777, 0, b"/etc")),
        Vec::new(),
    ));
    members.extend(parts.file_members());
    match refuse(&compress(&tar_bytes(&members))) {
        PackageError::Symlink { member, target } => {
            assert_eq!((member.as_str(), target.as_str()), ("files/lib", "/etc"))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn hostile_link_device_fifo_directory_and_extension_members() {
    let cases: Vec<(u8, Is)> = vec![
        (b'1', |e| matches!(e, PackageError::HardLink { .. })),
        (b'3', |e| matches!(e, PackageError::Device { .. })),
        (b'4', |e| matches!(e, PackageError::Device { .. })),
        (b'5', |e| matches!(e, PackageError::Directory { .. })),
        (b'6', |e| matches!(e, PackageError::Fifo { .. })),
        (b'x', |e| matches!(e, PackageError::OtherType { typeflag: 'x', .. })),
        (b'L', |e| matches!(e, PackageError::OtherType { typeflag: 'L', .. })),
        (0, |e| matches!(e, PackageError::OtherType { typeflag: '\0', .. })),
    ];
    for (typeflag, is) in cases {
        let mut parts = two_files();
        let mut members = parts.metadata();
        // The hard link points at the first file, in place of the second.
        members.push(parts.file_members().remove(0));
        members.push(M::Raw(
            Box::new(header(b"files/dir/b.txt", typeflag, 0o644, 0, b"files/a.txt")),
            Vec::new(),
        ));
        let err = refuse(&compress(&tar_bytes(&members)));
        assert!(is(&err), "type {typeflag}: {err}");
    }
}

#[test]
fn hostile_duplicate_extra_missing_and_reordered_members() {
    let mut parts = two_files();
    let mut members = parts.metadata();
    let files = parts.file_members();
    let dup = file("files/a.txt", 0o644, b"alpha\n");
    members.push(dup);
    members.push(file("files/a.txt", 0o644, b"alpha\n"));
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::DuplicateMember { member } if member == "files/a.txt"
    ));

    let mut members = parts.metadata();
    members.extend(parts.file_members());
    members.push(file("files/zzz", 0o644, b"extra"));
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::ExtraMember { member } if member == "files/zzz"
    ));

    let mut members = parts.metadata();
    members.push(parts.file_members().remove(0));
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::MissingMember { path } if path == "dir/b.txt"
    ));

    let mut members = parts.metadata();
    members.extend(files.into_iter().rev());
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::UnexpectedMember { index: 3, .. }
    ));

    // The metadata in the wrong order; a second manifest.
    let mut members = parts.metadata();
    members.swap(0, 2);
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::UnexpectedMember { index: 0, .. }
    ));
    let mut members = parts.metadata();
    members[2] = file("manifest.json", 0o644, b"{}");
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::DuplicateMember { .. }
    ));
}

#[test]
fn hostile_hash_mode_and_size_mismatches() {
    let mut parts = two_files();
    let mut members = parts.metadata();
    members.push(file("files/a.txt", 0o644, b"ALPHA\n")); // same size, other bytes
    members.push(parts.file_members().remove(1));
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::MemberHash { member, .. } if member == "files/a.txt"
    ));

    let mut members = parts.metadata();
    members.push(file("files/a.txt", 0o755, b"alpha\n"));
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::MemberMode {
            expected: 0o644,
            found: 0o755,
            ..
        }
    ));

    // A member that expands past its declared size: refused from its header.
    let mut members = parts.metadata();
    members.push(file("files/a.txt", 0o644, &vec![b'A'; 1 << 20]));
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::MemberTooLarge {
            expected: 6,
            found: 1_048_576,
            ..
        }
    ));
    let mut members = parts.metadata();
    members.push(file("files/a.txt", 0o644, b"alp"));
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::MemberTooSmall { .. }
    ));
}

#[test]
fn hostile_signatures() {
    let cases: Vec<(&PrivateKey, &str, Is)> = vec![
        (&KEYS.stranger, "cplane-package", |e| {
            matches!(e, PackageError::Signature(KeyError::UnknownKey { .. }))
        }),
        (&KEYS.revoked, "cplane-package", |e| {
            matches!(e, PackageError::Signature(KeyError::Revoked { .. }))
        }),
        (&KEYS.maintainer, "cplane-ledger", |e| {
            matches!(e, PackageError::Signature(KeyError::WrongNamespace { .. }))
        }),
        (&KEYS.auditor, "cplane-package", |e| {
            matches!(
                e,
                PackageError::SignerRole {
                    role: Role::Auditor,
                    ..
                }
            )
        }),
    ];
    for (key, namespace, is) in cases {
        let mut parts = two_files();
        let (manifest, sig, att) = parts.sign_with(key, namespace);
        let mut members = vec![
            file("manifest.json", 0o644, &manifest),
            file("manifest.json.sig", 0o644, sig.as_bytes()),
            file("attestation.json", 0o644, &att),
        ];
        members.extend(parts.file_members());
        let err = refuse(&compress(&tar_bytes(&members)));
        assert!(is(&err), "{namespace}: {err}");
    }

    // Unsigned: no signature member.
    let mut parts = two_files();
    let mut members = parts.metadata();
    members.remove(1);
    members.extend(parts.file_members());
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::Unsigned { found } if found == "attestation.json"
    ));

    // A manifest changed after signing.
    let mut members = parts.metadata();
    let M::File(_, _, manifest) = &mut members[0] else {
        unreachable!()
    };
    *manifest = String::from_utf8(manifest.clone())
        .unwrap()
        .replace("1.0.0", "9.0.0")
        .into_bytes();
    members.extend(parts.file_members());
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::Signature(KeyError::BadSignature { .. })
    ));

    // Garbage where the signature goes.
    let mut members = parts.metadata();
    members[1] = file("manifest.json.sig", 0o644, b"not a signature");
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::Signature(KeyError::MalformedSignature { .. })
    ));
}

#[test]
fn hostile_manifest_documents() {
    // Signed, but not canonical / unknown field / newer format.
    let sign_raw = |manifest: &[u8]| {
        let parts = two_files();
        let sig = keys::sign(&KEYS.maintainer, "cplane-package", manifest).unwrap();
        let mut members = vec![
            file("manifest.json", 0o644, manifest),
            file("manifest.json.sig", 0o644, sig.as_bytes()),
            file("attestation.json", 0o644, b"{}"),
        ];
        members.extend(parts.file_members());
        refuse(&compress(&tar_bytes(&members)))
    };
    let mut parts = two_files();
    let (manifest, _, _) = parts.sign_with(&KEYS.maintainer, "cplane-package");
    let text = String::from_utf8(manifest).unwrap();
    let pretty = serde_json::to_vec_pretty(&parts.manifest).unwrap();
    assert!(matches!(sign_raw(&pretty), PackageError::ManifestNotCanonical));
    let newline = format!("{text}\n");
    assert!(matches!(
        sign_raw(newline.as_bytes()),
        PackageError::ManifestNotCanonical
    ));
    let unknown = text.replacen("\"format\":1,", "\"format\":1,\"evil\":true,", 1);
    assert!(matches!(
        sign_raw(unknown.as_bytes()),
        PackageError::ManifestJson { .. }
    ));
    let v2 = text.replacen("\"format\":1,", "\"format\":2,", 1);
    assert!(matches!(
        sign_raw(v2.as_bytes()),
        PackageError::UnsupportedFormat { found: 2 }
    ));
    let dup = text.replacen("\"format\":1,", "\"format\":1,\"format\":1,", 1);
    assert!(matches!(sign_raw(dup.as_bytes()), PackageError::ManifestJson { .. }));

    // Files out of order in the signed manifest.
    let mut parts = two_files();
    parts.manifest.files.reverse();
    assert!(matches!(refuse(&parts.assemble()), PackageError::FileOrder { .. }));
}

#[test]
fn hostile_attestations() {
    // An attestation other than the one the signed manifest names.
    let mut parts = two_files();
    let mut members = parts.metadata();
    members[2] = file("attestation.json", 0o644, b"{\"_type\":\"x\"}");
    members.extend(parts.file_members());
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::AttestationDigest { .. }
    ));

    // Signed consistently, but naming another signer.
    let mut parts = two_files();
    let att: Attestation = parts
        .manifest
        .expected_attestation(&keys::fingerprint(KEYS.admin.public_key()), UtcTime::from_unix(TIME));
    let att = att.to_canonical_bytes();
    parts.manifest.attestation = ObjectId(*blake3::hash(&att).as_bytes());
    let manifest = parts.manifest.to_canonical_bytes();
    let sig = keys::sign(&KEYS.maintainer, "cplane-package", &manifest).unwrap();
    let mut members = vec![
        file("manifest.json", 0o644, &manifest),
        file("manifest.json.sig", 0o644, sig.as_bytes()),
        file("attestation.json", 0o644, &att),
    ];
    members.extend(parts.file_members());
    match refuse(&compress(&tar_bytes(&members))) {
        PackageError::AttestationMismatch { reason } => assert!(reason.contains("signer"), "{reason}"),
        other => panic!("{other}"),
    }
}

#[test]
fn hostile_truncation_at_every_layer() {
    let bytes = two_files().assemble();
    // Cut the compressed stream anywhere.
    for cut in [1, 4, 10, bytes.len() / 2, bytes.len() - 5, bytes.len() - 1] {
        let err = refuse(&bytes[..cut]);
        assert!(matches!(err, PackageError::Truncated { .. }), "cut at {cut}: {err}");
    }
    // A complete zstd frame holding a cut archive: inside a member, at a
    // member boundary (no end marker), inside the end marker.
    let tar = decompress(&bytes);
    let ends = [
        tar.len() - 1024 - 600,
        tar.len() - 1024,
        tar.len() - 512,
        tar.len() - 100,
    ];
    for cut in ends {
        let err = refuse(&compress(&tar[..cut]));
        assert!(
            matches!(err, PackageError::Truncated { .. }),
            "archive cut at {cut}: {err}"
        );
    }
}

#[test]
fn hostile_hidden_bytes_and_trailing_data() {
    let tar = decompress(&two_files().assemble());
    // A non-zero byte in the padding after the last file (6 data bytes, then padding).
    let mut padded = tar.clone();
    let last_data = tar.len() - 1024 - 512;
    padded[last_data + 100] = b'!';
    assert!(matches!(refuse(&compress(&padded)), PackageError::HiddenData { .. }));
    // A member hidden after the end-of-archive marker.
    let mut after = tar.clone();
    after.extend_from_slice(&tar_bytes(&[file("files/evil", 0o644, b"x")]));
    assert!(matches!(refuse(&compress(&after)), PackageError::HiddenData { .. }));
    // Zeros (tar's record padding) are fine; too many are not.
    let mut zeros = tar.clone();
    zeros.resize(tar.len().div_ceil(10240) * 10240, 0);
    read(&compress(&zeros)).expect("record padding is accepted");
    zeros.resize(tar.len() + (1 << 20) + 512, 0);
    assert!(matches!(refuse(&compress(&zeros)), PackageError::TooLarge { .. }));
    // Bytes after the last zstd frame: garbage, a skippable frame; a second
    // frame is more of the archive, and may hold only zeros after the end.
    let mut garbage = compress(&tar);
    garbage.extend_from_slice(b"trailing garbage");
    assert!(matches!(refuse(&garbage), PackageError::HiddenData { .. }));
    let mut skippable = compress(&tar);
    skippable.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, b'e', b'v', b'i', b'l']);
    assert!(matches!(refuse(&skippable), PackageError::HiddenData { .. }));
    let mut two = compress(&tar);
    two.extend_from_slice(&compress(&[0u8; 512]));
    read(&two).expect("zeros in a second frame are record padding");
    let mut two = compress(&tar);
    two.extend_from_slice(&compress(b"x"));
    assert!(matches!(refuse(&two), PackageError::HiddenData { .. }));
    let mut skip_between = compress(&tar[..512]);
    skip_between.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0]);
    skip_between.extend_from_slice(&compress(&tar[512..]));
    assert!(matches!(refuse(&skip_between), PackageError::HiddenData { .. }));
    // The archive split into frames anywhere reads as one.
    let mut split = Vec::new();
    for part in tar.chunks(700) {
        split.extend_from_slice(&compress(part));
    }
    read(&split).expect("an archive split into frames is accepted");
    // Corrupt compressed bytes (the frame checksum catches what decodes).
    let mut corrupt = compress(&tar);
    let n = corrupt.len();
    corrupt[n - 2] ^= 0xff;
    assert!(matches!(refuse(&corrupt), PackageError::Read { .. }));
}

#[test]
fn hostile_headers() {
    let mut parts = two_files();
    let mut members = parts.metadata();
    members.extend(parts.file_members());
    let tar = tar_bytes(&members);
    // Break the checksum of the first header.
    let mut bad = tar.clone();
    bad[0] = b'M';
    assert!(matches!(
        refuse(&compress(&bad)),
        PackageError::BadHeader { index: 0, .. }
    ));
    // A GNU (not POSIX ustar) header for a file member.
    let mut gnu = tar::Header::new_gnu();
    gnu.set_path("files/a.txt").unwrap();
    gnu.set_size(6);
    gnu.set_mode(0o644);
    gnu.set_cksum();
    let mut members = parts.metadata();
    members.push(M::Raw(Box::new(*gnu.as_bytes()), b"alpha\n".to_vec()));
    assert!(matches!(
        refuse(&compress(&tar_bytes(&members))),
        PackageError::BadHeader { index: 3, .. }
    ));
    // Bytes hidden in a header's padding (the checksum made right again):
    // after the name's NUL, in a regular file's link name, in the last 12
    // bytes; and a number that is not octal.
    let first_file = 512 * (tar.len() / 512);
    let file_header = {
        // The header of files/a.txt: the fourth member's.
        let mut at = 0;
        let mut seen = 0;
        while seen < 3 {
            let size = usize::from_str_radix(
                std::str::from_utf8(&tar[at + 124..at + 135])
                    .unwrap()
                    .trim_matches('\0'),
                8,
            )
            .unwrap();
            at += 512 + size.div_ceil(512) * 512;
            seen += 1;
        }
        at
    };
    assert!(file_header < first_file);
    for (offset, byte, hidden) in [(60, b'x', true), (200, b'x', true), (505, 1, true), (140, b'9', false)] {
        let mut bad = tar.clone();
        let h = &mut bad[file_header..file_header + 512];
        h[offset] = byte;
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let err = refuse(&compress(&bad));
        if hidden {
            assert!(matches!(err, PackageError::HiddenData { .. }), "offset {offset}: {err}");
        } else {
            assert!(
                matches!(err, PackageError::BadHeader { index: 3, .. }),
                "offset {offset}: {err}"
            );
        }
        install_refuses(&compress(&bad), &err);
    }
}

/// A zstd frame holding `data` in raw blocks whose header asks for a
/// 2^`window_log`-byte window (RFC 8878 §3.1.1: no single-segment flag, so
/// the window descriptor applies).
fn frame_with_window(data: &[u8], window_log: u8) -> Vec<u8> {
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, (window_log - 10) << 3];
    let chunks: Vec<&[u8]> = data.chunks(100_000).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let block_header = last | ((chunk.len() as u32) << 3); // type 0: raw
        out.extend_from_slice(&block_header.to_le_bytes()[..3]);
        out.extend_from_slice(chunk);
    }
    out
}

#[test]
fn hostile_zstd_window() {
    let tar = decompress(&two_files().assemble());
    assert!(matches!(
        refuse(&frame_with_window(&tar, 31)),
        PackageError::WindowTooLarge { limit_log: 27 }
    ));
    let huge = frame_with_window(&tar, 28);
    assert!(matches!(refuse(&huge), PackageError::WindowTooLarge { limit_log: 27 }));
    // The same frame is valid zstd: a reader allowing the window reads it.
    let limits = Limits {
        window_log_max: 28,
        ..Limits::default()
    };
    package::read_to_memory(huge.as_slice(), &KEYS.trusted, &limits).expect("valid apart from its window");
    read(&frame_with_window(&tar, 20)).expect("a small window is fine");
}

#[test]
fn limits_bound_metadata_and_totals() {
    let bytes = two_files().assemble();
    let tight = |f: fn(&mut Limits)| {
        let mut l = Limits::default();
        f(&mut l);
        package::read_to_memory(bytes.as_slice(), &KEYS.trusted, &l).unwrap_err()
    };
    assert!(matches!(
        tight(|l| l.max_metadata_bytes = 100),
        PackageError::TooLarge { .. }
    ));
    assert!(matches!(
        tight(|l| l.max_signature_bytes = 100),
        PackageError::TooLarge { .. }
    ));
    assert!(matches!(
        tight(|l| l.max_files = 1),
        PackageError::TooManyFiles { count: 2, limit: 1 }
    ));
    assert!(matches!(
        tight(|l| l.max_total_bytes = 11),
        PackageError::TooLarge { size: 12, .. }
    ));
}

// ---------------------------------------------------------------- properties

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9_ü.-]{1,12}", 1..4).prop_map(|segs| segs.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random file sets that the path rules accept round-trip exactly.
    #[test]
    fn random_packages_round_trip(
        files in prop::collection::btree_map(arb_path(), (any::<bool>(), prop::collection::vec(any::<u8>(), 0..2000)), 0..12)
    ) {
        let files: Vec<(String, FileMode, Vec<u8>)> = files
            .into_iter()
            .map(|(p, (x, d))| (p, if x { FileMode::Executable } else { FileMode::Regular }, d))
            .collect();
        let list: Vec<BuildFile<'_>> = files
            .iter()
            .map(|(path, mode, bytes)| BuildFile { path, mode: *mode, source: FileSource::Bytes(bytes) })
            .collect();
        let mut out = Vec::new();
        match package::build(&meta(), &list, &KEYS.maintainer, UtcTime::from_unix(TIME), &mut out) {
            Ok(_) => {
                let (pkg, contents) = read(&out).expect("what build writes, read accepts");
                let mut sorted = files.clone();
                sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                prop_assert_eq!(pkg.manifest.files.len(), sorted.len());
                for ((e, data), (p, m, d)) in pkg.manifest.files.iter().zip(&contents).zip(&sorted) {
                    prop_assert_eq!((&e.path, e.mode, data), (p, *m, d));
                }
            }
            // Random names may hit `.`/`..` segments, collide when
            // lower-cased, or nest under a file: build refuses those.
            Err(PackageError::UnsafePath { .. } | PackageError::CaseCollision { .. } | PackageError::PathConflict { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected build error: {}", e),
        }
    }

    /// A path the safety check accepts is relative, has no empty, `.` or
    /// `..` segment, and does not enter `.cp`.
    #[test]
    fn accepted_paths_are_safe(path in "[a-c./\\\\\n,C~P]{0,12}|(\\.\\./)?[a-z.]{0,4}(/\\.{1,2})?(/[a-zA-Z.]{0,3})*") {
        if package::check_path(&path).is_ok() {
            prop_assert!(!path.is_empty() && !path.starts_with('/'));
            for seg in path.split('/') {
                prop_assert!(!seg.is_empty() && seg != "." && seg != "..");
                prop_assert!(seg.to_lowercase() != ".cp");
            }
            prop_assert!(!path.contains('\\') && !path.contains('\n') && !path.contains(','));
        }
    }
}

// ------------------------------------------- the parallel reader agrees

/// `package::read_parallel`, with the files it hands on in manifest order.
fn read_in_parallel(bytes: &[u8]) -> Result<(package::Package, Vec<Vec<u8>>), PackageError> {
    read_in_parallel_counting(bytes).map(|(p, f, _)| (p, f))
}

/// [`read_in_parallel`], also counting the frames handed on with the files.
fn read_in_parallel_counting(bytes: &[u8]) -> Result<(package::Package, Vec<Vec<u8>>, usize), PackageError> {
    let handed_on = std::sync::atomic::AtomicUsize::new(0);
    let files = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let pkg = package::read_parallel(
        bytes,
        &KEYS.trusted,
        &Limits::default(),
        |_| {},
        |i, entry, data, frame| {
            assert_eq!(data.len() as u64, entry.size, "{}", entry.path);
            assert_eq!(ObjectId(*blake3::hash(data).as_bytes()), entry.blake3, "{}", entry.path);
            if let Some(frame) = &frame {
                // A frame handed on is the file's own, declaring its size.
                assert_eq!(
                    zstd::bulk::decompress(frame, data.len() + 1).unwrap(),
                    *data,
                    "{}",
                    entry.path
                );
                assert_eq!(
                    zstd::zstd_safe::get_frame_content_size(frame).ok().flatten(),
                    Some(entry.size)
                );
                handed_on.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let mut files = files.lock().unwrap();
            assert!(
                files.insert(i, std::mem::take(data)).is_none(),
                "member {i} handed on twice"
            );
            Ok(())
        },
    )?;
    let files = files.into_inner().unwrap();
    assert_eq!(
        files.keys().copied().collect::<Vec<_>>(),
        (0..pkg.manifest.files.len()).collect::<Vec<_>>()
    );
    Ok((pkg, files.into_values().collect(), handed_on.into_inner()))
}

/// A refusal as the readers must agree on it: its kind and place, and for
/// a read error not libzstd's words (which depend on how much output room
/// each call had).
fn reason(e: &PackageError) -> String {
    match e {
        PackageError::Read { at, .. } => format!("could not read {at}"),
        e => e.to_string(),
    }
}

/// Both readers accept the same bytes, or refuse them for the same reason.
fn same_verdict(bytes: &[u8]) -> Result<(), TestCaseError> {
    match (read(bytes), read_in_parallel(bytes)) {
        (Ok((a, fa)), Ok((b, fb))) => {
            prop_assert_eq!(a.manifest_digest, b.manifest_digest);
            prop_assert!(fa == fb, "the readers hand on different bytes");
        }
        (Err(a), Err(b)) => prop_assert_eq!(reason(&a), reason(&b)),
        (a, b) => prop_assert!(
            false,
            "the sequential reader says {:?}, the parallel one {:?}",
            a.map(|_| ()),
            b.map(|_| ())
        ),
    }
    Ok(())
}

/// Files whose frames have compressed, raw and RLE blocks, several blocks
/// each for the larger ones.
fn framed_files() -> Vec<(String, FileMode, Vec<u8>)> {
    let random = noise(200_000, 0x2545_f491_4f6c_dd1d);
    vec![
        (
            "a/text.txt".to_string(),
            FileMode::Regular,
            b"line of text\n".repeat(4000),
        ),
        ("a/tiny".to_string(), FileMode::Regular, b"x".to_vec()),
        ("b/empty".to_string(), FileMode::Regular, Vec::new()),
        ("b/random.bin".to_string(), FileMode::Executable, random),
        ("c/zeros".to_string(), FileMode::Regular, vec![0u8; 300_000]),
        (
            "c/words".to_string(),
            FileMode::Regular,
            (0..30_000u32)
                .flat_map(|i| format!("{} ", i % 977).into_bytes())
                .collect(),
        ),
    ]
}

#[test]
fn the_parallel_reader_reads_what_build_writes() {
    let files = framed_files();
    let bytes = build_files(&files, &KEYS.maintainer, TIME);
    let (_, contents, handed_on) = read_in_parallel_counting(&bytes).expect("valid");
    // Every non-empty file's own frame was taken, decoded on the pool and
    // handed on (a frame decoded as it streams is not).
    let framed = files.iter().filter(|f| !f.2.is_empty()).count();
    assert_eq!(handed_on, framed);
    let mut sorted = files.clone();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    assert_eq!(contents, sorted.into_iter().map(|(_, _, d)| d).collect::<Vec<_>>());
    // And a package of one frame (as `tar --zstd` writes), decoded as it streams.
    let one = compress(&decompress(&bytes));
    let (_, again, handed_on) = read_in_parallel_counting(&one).expect("valid");
    assert_eq!((again, handed_on), (contents, 0));
}

/// A file's own frame with a damaged block (so only the decoder sees it)
/// or other bytes of the same size (so only the hash does): refused as the
/// sequential reader and `cplane install` refuse it.
#[test]
fn a_damaged_file_frame_is_refused_alike() {
    let files = framed_files();
    let bytes = build_files(&files, &KEYS.maintainer, TIME);
    // The frame of a/text.txt: the first frame declaring its size.
    let text = b"line of text\n".repeat(4000);
    let frame = zstd::bulk::compress(&text, 1).unwrap();
    let at = bytes
        .windows(frame.len())
        .position(|w| w == frame)
        .expect("its frame is in the package");
    // Other bytes of the same size, in a valid frame of the same length or not.
    let mut other = bytes[..at].to_vec();
    other.extend(zstd::bulk::compress(&b"line of tExt\n".repeat(4000), 1).unwrap());
    other.extend(&bytes[at + frame.len()..]);
    let err = read(&other).unwrap_err();
    assert!(matches!(err, PackageError::MemberHash { .. }), "{err}");
    same_verdict(&other).unwrap();
    install_refuses(&other, &err);
    // A damaged byte inside its compressed block.
    let mut damaged = bytes.clone();
    damaged[at + frame.len() / 2] ^= 0x55;
    let err = read(&damaged).unwrap_err();
    same_verdict(&damaged).unwrap();
    install_refuses(&damaged, &err);
}

/// `bytes` damaged at the fraction `at` of their length: the byte there
/// changed by `byte` (`how` 0), the bytes cut there (1), that byte left
/// out (2), or `byte` put in there (3).
fn damage(bytes: &mut Vec<u8>, at: f64, how: u8, byte: u8) {
    let i = ((bytes.len() as f64) * at) as usize;
    match how {
        0 => bytes[i] ^= byte,
        1 => bytes.truncate(i),
        2 => {
            bytes.remove(i);
        }
        _ => bytes.insert(i, byte),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever is damaged (a byte changed, the package cut, a byte left
    /// out or put in), the reader that decodes file frames on the pool
    /// accepts and refuses exactly what the streaming reader does, for the
    /// same reason.
    #[test]
    fn damaged_packages_get_the_same_verdict_from_both_readers(
        at in 0.0f64..1.0,
        how in 0u8..4,
        byte in 1u8..=255,
    ) {
        static BYTES: LazyLock<Vec<u8>> = LazyLock::new(|| build_files(&framed_files(), &KEYS.maintainer, TIME));
        let mut bytes = BYTES.clone();
        damage(&mut bytes, at, how, byte);
        same_verdict(&bytes)?;
    }
}

// ------------------------------------- crafted frames (a review's cases)

/// A package of `files` with the own frame of file `target` replaced by
/// `frame` (the signed manifest unchanged).
fn with_frame(files: &[(String, FileMode, Vec<u8>)], target: usize, frame: &[u8]) -> Vec<u8> {
    let bytes = build_files(files, &KEYS.maintainer, TIME);
    let orig = zstd::bulk::compress(&files[target].2, 1).unwrap();
    let at = bytes
        .windows(orig.len())
        .position(|w| w == orig)
        .expect("its frame is in the package");
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(frame);
    out.extend_from_slice(&bytes[at + orig.len()..]);
    out
}

fn block_header(last: bool, kind: u32, len: usize) -> [u8; 3] {
    let h = u32::from(last) | kind << 1 | (len as u32) << 3;
    let b = h.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// A frame by hand (RFC 8878): descriptor `fhd`, an optional window
/// descriptor, the content size field `fcs`, then `data` in raw (or RLE,
/// where a chunk is one byte repeated) blocks of at most `block` bytes, and
/// the content checksum when asked.
fn hand_frame(fhd: u8, wd: Option<u8>, fcs: &[u8], data: &[u8], block: usize, checksum: bool) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, fhd | if checksum { 4 } else { 0 }];
    f.extend(wd);
    f.extend_from_slice(fcs);
    let chunks: Vec<&[u8]> = data.chunks(block).collect();
    for (i, c) in chunks.iter().enumerate() {
        let rle = c.iter().all(|&b| b == c[0]);
        f.extend_from_slice(&block_header(i + 1 == chunks.len(), u32::from(rle), c.len()));
        if rle { f.push(c[0]) } else { f.extend_from_slice(c) }
    }
    if checksum {
        // libzstd's own checksum of the same content: the last 4 bytes of its frame.
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        c.include_checksum(true).unwrap();
        let z = c.compress(data).unwrap();
        f.extend_from_slice(&z[z.len() - 4..]);
    }
    f
}

/// A compressed block (RFC 8878 §3.1.1.3): one literal `lit`, then one
/// sequence copying it `65539 + ml_extra` times (RLE-mode tables, repeat
/// offset 1), so it decodes to `65540 + ml_extra` bytes: past the 128 KiB
/// block maximum when `ml_extra` > 65532.
fn long_match_block(lit: u8, ml_extra: u16) -> Vec<u8> {
    let bits = u32::from(ml_extra) | 1 << 16;
    let mut b = vec![0x08, lit, 0x01, 0x54, 0x01, 0x00, 52];
    b.extend_from_slice(&bits.to_le_bytes()[..3]);
    b
}

/// `prefix` in raw blocks, then a compressed block that decodes past the
/// block maximum, in a frame with a 2 MiB window: the content and the frame.
fn overlong_block_frame(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let block = long_match_block(b'z', 65535);
    let content = [prefix.to_vec(), vec![b'z'; 65540 + 65535]].concat();
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, (21 - 10) << 3];
    f.extend_from_slice(&(content.len() as u32).to_le_bytes());
    for c in prefix.chunks(128 << 10) {
        f.extend_from_slice(&block_header(false, 0, c.len()));
        f.extend_from_slice(c);
    }
    f.extend_from_slice(&block_header(true, 2, block.len()));
    f.extend_from_slice(&block);
    (content, f)
}

/// What an install does with what `read_parallel` hands on (each file
/// stored, as its frame when it came with one), then every blob read back
/// through the store: an accepted package never leaves a record the store
/// cannot decode.
fn stored_and_read_back(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = cplane::store::Store::init(dir.path()).unwrap();
    let mut ids = Vec::new();
    let accepted = store
        .transaction(|w| {
            let r = package::read_parallel(
                bytes,
                &KEYS.trusted,
                &Limits::default(),
                |_| {},
                |_, e, data, frame| {
                    w.add_framed(cplane::object::ObjectKind::Blob, e.blake3, data, frame.as_deref())
                        .map(|_| ())
                        .map_err(std::io::Error::other)
                },
            );
            Ok(r.map(|p| ids.extend(p.manifest.files.iter().map(|f| f.blake3))).is_ok())
        })
        .unwrap()
        .0;
    if !accepted {
        return;
    }
    let store = cplane::store::Store::open(dir.path()).unwrap();
    for id in ids {
        let mut out = Vec::new();
        store
            .read_blob_to(&id, &mut out, Path::new("out"))
            .unwrap_or_else(|e| panic!("an accepted package left a blob the store cannot read: {e}"));
    }
}

/// Frames made by hand to sit where libzstd's one-pass and streaming
/// decoders disagree, or where the frame walk could count wrong: both
/// readers give the same verdict, and what they accept the store reads.
#[test]
fn crafted_frames_get_the_same_verdict_and_what_is_accepted_reads_back() {
    type Files = Vec<(String, FileMode, Vec<u8>)>;
    let mut cases: Vec<(&str, Files, Vec<u8>)> = Vec::new();
    let one = |d: &[u8]| vec![("a/data".to_string(), FileMode::Regular, d.to_vec())];
    let data: Vec<u8> = [noise(600_000, 7), vec![0u8; 400_000]].concat();
    let fcs = (data.len() as u32).to_le_bytes();
    cases.push((
        "raw and RLE blocks of 128 KiB under a 1 KiB window",
        one(&data),
        hand_frame(0x80, Some(0x00), &fcs, &data, 128 << 10, false),
    ));
    cases.push((
        "the same under a 1 MiB window",
        one(&data),
        hand_frame(0x80, Some(10 << 3), &fcs, &data, 128 << 10, false),
    ));
    cases.push((
        "with its checksum",
        one(&data),
        hand_frame(0x80, Some(10 << 3), &fcs, &data, 128 << 10, true),
    ));
    let mut f = hand_frame(0x80, Some(10 << 3), &fcs, &data, 128 << 10, true);
    f[5 + 1 + 4 + 3 + 1000] ^= 1;
    cases.push(("a content byte changed under a checksum", one(&data), f));
    let mut f = hand_frame(0x80, Some(10 << 3), &fcs, &data, 128 << 10, true);
    let n = f.len();
    f[n - 1] ^= 1;
    cases.push(("the checksum changed", one(&data), f));
    let small = noise(5000, 9);
    let fcs4 = (small.len() as u32).to_le_bytes();
    let more = [small.clone(), vec![0u8; 300]].concat();
    cases.push((
        "blocks holding 300 bytes more than the content size",
        one(&small),
        hand_frame(0x80, Some(10 << 3), &fcs4, &more, 128 << 10, false),
    ));
    let text: Vec<u8> = b"compressible text, ".repeat(300)[..5000].to_vec();
    let mut f = zstd::bulk::compress(&[text.clone(), vec![0u8; 300]].concat(), 1).unwrap();
    assert_eq!(f[4], 0x60, "single segment, 2-byte content size");
    f[5..7].copy_from_slice(&((5000 - 256) as u16).to_le_bytes());
    let mut g = f.clone();
    cases.push(("compressed, decoding past its content size", one(&text), f));
    g[4] = 0x40;
    g.insert(5, 10 << 3);
    cases.push(("the same with a window descriptor", one(&text), g));
    // A raw block, then an empty compressed block (libzstd's streaming
    // decoder skips it, its one-pass decoder refuses it).
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, 10 << 3];
    f.extend_from_slice(&fcs4);
    f.extend_from_slice(&block_header(false, 0, small.len()));
    f.extend_from_slice(&small);
    f.extend_from_slice(&block_header(true, 2, 0));
    cases.push(("an empty compressed last block", one(&small), f));
    // The same after an RLE block: smaller than its content, so a frame the
    // store would keep as it is, were it handed on.
    let zeros = vec![0u8; 5000];
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, 10 << 3];
    f.extend_from_slice(&fcs4);
    f.extend_from_slice(&block_header(false, 1, zeros.len()));
    f.push(0);
    f.extend_from_slice(&block_header(true, 2, 0));
    cases.push(("an RLE block, then an empty compressed last block", one(&zeros), f));
    let fcs2 = ((small.len() - 256) as u16).to_le_bytes();
    cases.push((
        "a 2-byte content size",
        one(&small),
        hand_frame(0x40, Some(10 << 3), &fcs2, &small, 128 << 10, false),
    ));
    let tiny = noise(200, 3);
    cases.push((
        "a 1-byte content size, single segment",
        one(&tiny),
        hand_frame(0x20, None, &[200], &tiny, 128 << 10, false),
    ));
    cases.push((
        "an RLE block, single segment",
        one(&[0u8; 200]),
        hand_frame(0x20, None, &[200], &[0u8; 200], 128 << 10, false),
    ));
    let (content, frame) = overlong_block_frame(&[]);
    cases.push(("a compressed block decoding past 128 KiB", one(&content), frame));
    let (content, frame) = overlong_block_frame(&noise(1_200_000, 5));
    cases.push((
        "the same after 1.2 MB of raw blocks (a record the store streams)",
        one(&content),
        frame,
    ));
    // The frames a reader accepts (libzstd's streaming decoder skips empty
    // blocks); every other one breaks a rule of RFC 8878 or its content size.
    let accepted = [
        "the same under a 1 MiB window",
        "with its checksum",
        "an empty compressed last block",
        "an RLE block, then an empty compressed last block",
        "a 2-byte content size",
        "a 1-byte content size, single segment",
        "an RLE block, single segment",
    ];
    for (name, files, frame) in &cases {
        let bytes = with_frame(files, 0, frame);
        assert_eq!(
            read(&bytes).is_ok(),
            accepted.contains(name),
            "{name}: {:?}",
            read(&bytes).err()
        );
        same_verdict(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        stored_and_read_back(&bytes);
    }
}

/// Two damaged members in different batches, the earlier one's batch held
/// up by a slow sink: the refusal is the earlier member's, as `read` says.
#[test]
fn the_earliest_damaged_member_is_reported_whatever_the_timing() {
    let files: Vec<(String, FileMode, Vec<u8>)> = (0..4)
        .map(|i| (format!("f{i}"), FileMode::Regular, noise(300_000, 2 * i as u64 + 11)))
        .collect();
    let mut bytes = build_files(&files, &KEYS.maintainer, TIME);
    for i in [1, 2] {
        let orig = zstd::bulk::compress(&files[i].2, 1).unwrap();
        let at = bytes.windows(orig.len()).position(|w| w == orig).unwrap();
        bytes[at + orig.len() / 2] ^= 0x40;
    }
    let sequential = read(&bytes).unwrap_err();
    assert!(sequential.to_string().contains("files/f1"), "{sequential}");
    // (A pool of 3 threads, so two batches run at once whatever the machine.)
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let parallel = pool
        .install(|| {
            package::read_parallel(
                &bytes[..],
                &KEYS.trusted,
                &Limits::default(),
                |_| {},
                |i, _, _, _| {
                    if i == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(300));
                    }
                    Ok(())
                },
            )
        })
        .unwrap_err();
    assert_eq!(sequential.to_string(), parallel.to_string());
}

/// `read`'s verdict does not depend on how much its sink reads at once
/// (libzstd decodes a frame in one pass when the output has room for all
/// of it, with other checks).
#[test]
fn reads_verdict_does_not_depend_on_the_sinks_buffer() {
    let small = noise(5000, 9);
    let files = vec![("a/data".to_string(), FileMode::Regular, small.clone())];
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, 10 << 3];
    f.extend_from_slice(&(small.len() as u32).to_le_bytes());
    f.extend_from_slice(&block_header(false, 0, small.len()));
    f.extend_from_slice(&small);
    f.extend_from_slice(&block_header(true, 2, 0));
    let bytes = with_frame(&files, 0, &f);
    let verdict = |cap: usize| {
        package::read(&bytes[..], &KEYS.trusted, &Limits::default(), |_, d| {
            let mut v = Vec::with_capacity(cap);
            std::io::Read::read_to_end(d, &mut v).map(|_| ())
        })
        .map(|_| ())
        .map_err(|e| reason(&e))
    };
    assert_eq!(
        verdict(0),
        Ok(()),
        "an empty compressed block after the data is skipped"
    );
    assert_eq!(verdict(0), verdict(1 << 20));
}

// ------------------------- libzstd edge cases (a second review's cases)

/// A reader that returns at most `n` bytes per call (a pipe, a socket).
struct R2Chunks<'a>(&'a [u8], usize);
impl std::io::Read for R2Chunks<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(out.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn r2_verdict<T>(r: &Result<T, PackageError>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        Err(e) => format!("Err({})", reason(e)),
    }
}

/// An empty frame (content size 0) with one empty *compressed* last block:
/// libzstd's streaming decoder skips the block, its one-pass decoder refuses
/// it; ZSTD_decompressStream takes the one-pass shortcut whenever the
/// output room (0) >= the content size (0), i.e. always for this frame,
/// when the whole frame is in the current input.
const R2_EMPTY_CBLOCK: [u8; 9] = [0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x05, 0x00, 0x00];
/// Valid empty frames of 9 and 16 bytes (fillers to move a frame).
const R2_G9: [u8; 9] = [0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00];
const R2_G16: [u8; 16] = [0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];

/// `read`'s verdict on the same bytes is the same whole or in short reads
/// (an empty frame libzstd would decode in one pass were it whole in one
/// call's input).
#[test]
fn reads_verdict_does_not_depend_on_how_the_input_arrives() {
    let files = vec![("a/data".to_string(), FileMode::Regular, noise(5000, 9))];
    let orig = zstd::bulk::compress(&files[0].2, 1).unwrap();
    let bytes = with_frame(&files, 0, &[&R2_EMPTY_CBLOCK[..], &orig].concat());
    let whole = package::read_to_memory(&bytes[..], &KEYS.trusted, &Limits::default());
    let short = package::read_to_memory(R2Chunks(&bytes, 1), &KEYS.trusted, &Limits::default());
    let par_whole = read_in_parallel(&bytes);
    eprintln!(
        "read(whole)={} read(1-byte reads)={} read_parallel(whole)={}",
        r2_verdict(&whole),
        r2_verdict(&short),
        r2_verdict(&par_whole)
    );
    assert_eq!(r2_verdict(&whole), r2_verdict(&short), "same bytes, different verdicts");
}

/// The same empty frame placed across `read`'s input refill at 1 MiB
/// (where `read_parallel`'s buffer, moved by its frame walk, holds it
/// whole): both readers give the same verdict.
#[test]
fn the_readers_agree_on_an_empty_frame_at_a_buffer_refill() {
    let files = vec![
        ("f0".to_string(), FileMode::Regular, noise(700_000, 3)),
        ("f1".to_string(), FileMode::Regular, noise(1000, 4)),
    ];
    let bytes = build_files(&files, &KEYS.maintainer, TIME);
    let orig = zstd::bulk::compress(&files[1].2, 1).unwrap();
    let at = bytes.windows(orig.len()).position(|w| w == orig).unwrap();
    let mut bad = Vec::new();
    for target in 1_048_568..1_048_576usize {
        let d = target - at;
        let Some((a, b)) = (0..=d / 16).find_map(|b| ((d - 16 * b) % 9 == 0).then_some(((d - 16 * b) / 9, b))) else {
            continue;
        };
        let mut ins = Vec::new();
        for _ in 0..a {
            ins.extend_from_slice(&R2_G9);
        }
        for _ in 0..b {
            ins.extend_from_slice(&R2_G16);
        }
        assert_eq!(at + ins.len(), target);
        ins.extend_from_slice(&R2_EMPTY_CBLOCK);
        ins.extend_from_slice(&orig);
        let mut out = bytes[..at].to_vec();
        out.extend_from_slice(&ins);
        out.extend_from_slice(&bytes[at + orig.len()..]);
        let (s, p) = (r2_verdict(&read(&out)), r2_verdict(&read_in_parallel(&out)));
        eprintln!("empty frame at {target}: read={s} read_parallel={p}");
        if s != p {
            bad.push((target, s, p));
        }
    }
    assert!(bad.is_empty(), "the readers disagree: {bad:?}");
}

/// A frame that declares the member's size but holds nothing, its last
/// block empty (libzstd's streaming decoder does not compare the content
/// size then), followed by the member's real frame: both readers refuse.
#[test]
fn a_frame_ending_with_an_empty_block_short_of_its_size_is_refused_alike() {
    let data = noise(5000, 9);
    let files = vec![("a/data".to_string(), FileMode::Regular, data.clone())];
    let orig = zstd::bulk::compress(&data, 1).unwrap();
    let mut p = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, 10 << 3];
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(&block_header(true, 0, 0));
    let bytes = with_frame(&files, 0, &[&p[..], &orig].concat());
    let (s, q) = (r2_verdict(&read(&bytes)), r2_verdict(&read_in_parallel(&bytes)));
    eprintln!("read={s} read_parallel={q}");
    assert_eq!(s, q);
}

/// A frame whose first (compressed, not last) block decodes past the
/// declared size: both readers refuse it as a read error of that member.
#[test]
fn a_middle_block_decoding_past_the_size_is_refused_alike() {
    let block = long_match_block(b'z', 0); // 65540 bytes of 'z'
    let size = 65_541 - 300; // what the frame declares; it holds 65541
    let data = vec![b'z'; size];
    let files = vec![("a/data".to_string(), FileMode::Regular, data)];
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, (17 - 10) << 3];
    f.extend_from_slice(&(size as u32).to_le_bytes());
    f.extend_from_slice(&block_header(false, 2, block.len()));
    f.extend_from_slice(&block);
    f.extend_from_slice(&block_header(true, 0, 1));
    f.push(b'z');
    let bytes = with_frame(&files, 0, &f);
    let (s, q) = (r2_verdict(&read(&bytes)), r2_verdict(&read_in_parallel(&bytes)));
    eprintln!("read={s} read_parallel={q}");
    assert_eq!(s, q);
}

/// A frame (not taken: it declares less than the file) whose compressed
/// block decodes past its declared content size, ended by an empty raw
/// block: libzstd alone accepts it when its buffer is already large (grown
/// by an earlier, larger frame) and refuses it when the buffer was sized
/// for this frame; the readers' own content-size check refuses it either
/// way, after a large file or alone.
#[test]
fn acceptance_does_not_depend_on_the_decoders_history() {
    let big = noise(1_000_000, 5);
    let data = vec![b'z'; 65_540];
    let files = vec![
        ("a/big".to_string(), FileMode::Regular, big),
        ("b/data".to_string(), FileMode::Regular, data.clone()),
    ];
    let block = long_match_block(b'z', 0); // decodes to 65540 bytes
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, (17 - 10) << 3];
    f.extend_from_slice(&((data.len() - 300) as u32).to_le_bytes()); // declares 300 fewer
    f.extend_from_slice(&block_header(false, 2, block.len()));
    f.extend_from_slice(&block);
    f.extend_from_slice(&block_header(true, 0, 0));
    let bytes = with_frame(&files, 1, &f);
    // The same frame, with no earlier file to grow read's buffer:
    let alone = with_frame(&files[1..], 0, &f);
    let v = |b: &[u8]| (r2_verdict(&read(b)), r2_verdict(&read_in_parallel(b)));
    eprintln!("after a 1 MB file: {:?}; alone: {:?}", v(&bytes), v(&alone));
    let (s, p) = v(&bytes);
    assert_eq!(s, p);
    assert_ne!(s, "Ok", "a frame that decodes past its declared size is refused");
    let (s, p) = v(&alone);
    assert_eq!((s.as_str(), p.as_str()), (v(&bytes).0.as_str(), v(&bytes).1.as_str()));
}

// ------------------ libzstd edge cases, continued (a third review's cases)

/// Hands out `bytes` in two reads: up to `split`, then the rest.
struct R3Split<'a>(&'a [u8], usize);
impl std::io::Read for R3Split<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let lim = if self.1 > 0 { self.1 } else { usize::MAX };
        let n = self.0.len().min(lim).min(out.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        self.1 = self.1.saturating_sub(n);
        Ok(n)
    }
}

/// A 14-byte zstd frame header (4-byte dictionary id, 4-byte content size
/// 0) whose last 9 bytes are a skippable frame of 1 byte: when its first 5
/// bytes were fed in an earlier call, the call that completes the header
/// starts at byte 5, ZSTD_findFrameCompressedSize finds the skippable
/// frame there (9 <= 9), 0 >= content size 0, and libzstd's one-pass
/// shortcut "decodes" it: the frame ends with no block at all.
const R3_FAKE: [u8; 14] = [
    0x28, 0xb5, 0x2f, 0xfd, 0x83, 0x50, 0x2a, 0x4d, 0x18, 0x01, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn a_header_hiding_a_skippable_frame_reads_the_same_however_it_is_split() {
    let files = vec![("a/data".to_string(), FileMode::Regular, noise(5000, 9))];
    let orig = zstd::bulk::compress(&files[0].2, 1).unwrap();
    let bytes = with_frame(&files, 0, &[&R3_FAKE[..], &orig].concat());
    let at = bytes.windows(14).position(|w| w == R3_FAKE).unwrap();
    let whole = package::read_to_memory(&bytes[..], &KEYS.trusted, &Limits::default());
    let split = package::read_to_memory(R3Split(&bytes, at + 5), &KEYS.trusted, &Limits::default());
    let split4 = package::read_to_memory(R3Split(&bytes, at + 4), &KEYS.trusted, &Limits::default());
    let par = read_in_parallel(&bytes);
    eprintln!(
        "read(whole)={} read(split at header byte 5)={} read(split at 4)={} read_parallel={}",
        r2_verdict(&whole),
        r2_verdict(&split),
        r2_verdict(&split4),
        r2_verdict(&par)
    );
    assert_eq!(
        r2_verdict(&whole),
        r2_verdict(&split),
        "verdict depends on input chunking"
    );
}

/// The same header at `read`'s input refill at 1 MiB, on plain bytes:
/// `read` and `read_parallel` agree (they disagreed, Ok against Err, while
/// the call completing a header could hold a whole skippable frame).
#[test]
fn the_readers_agree_on_a_dictionary_header_across_a_refill() {
    let files = vec![
        ("f0".to_string(), FileMode::Regular, noise(700_000, 3)),
        ("f1".to_string(), FileMode::Regular, noise(1000, 4)),
    ];
    let bytes = build_files(&files, &KEYS.maintainer, TIME);
    let orig = zstd::bulk::compress(&files[1].2, 1).unwrap();
    let at = bytes.windows(orig.len()).position(|w| w == orig).unwrap();
    let target = 1_048_576 - 5;
    let d = target - at;
    let (a, b) = (0..=d / 16)
        .find_map(|b| ((d - 16 * b) % 9 == 0).then_some(((d - 16 * b) / 9, b)))
        .unwrap();
    let mut ins = Vec::new();
    for _ in 0..a {
        ins.extend_from_slice(&R2_G9);
    }
    for _ in 0..b {
        ins.extend_from_slice(&R2_G16);
    }
    ins.extend_from_slice(&R3_FAKE);
    ins.extend_from_slice(&orig);
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&ins);
    out.extend_from_slice(&bytes[at + orig.len()..]);
    assert_eq!(&out[target..target + 14], &R3_FAKE);
    let (s, p) = (r2_verdict(&read(&out)), r2_verdict(&read_in_parallel(&out)));
    eprintln!("fake header at {target}: read={s} read_parallel={p}");
    assert_eq!(s, p, "the readers disagree");
}

/// A compressed block of raw literals only (no sequences).
fn r3_lit_block(lits: &[u8]) -> Vec<u8> {
    let n = lits.len();
    assert!((32..4096).contains(&n));
    let mut b = vec![0x04 | ((n & 0xf) << 4) as u8, (n >> 4) as u8];
    b.extend_from_slice(lits);
    b.push(0);
    b
}

/// A taken frame (1 KiB window, so libzstd's buffer is a ring smaller than
/// the content and never runs out) declaring the file's 4096 bytes, whose
/// compressed middle blocks decode to 5000, then a 1-byte raw last block.
/// Both readers refuse it at the member (`read` used to read the member's
/// 4096 bytes, check the hash, and see the excess only at the next read).
#[test]
fn content_past_the_declared_size_is_found_with_its_member() {
    let data = noise(4096, 11);
    let files = vec![("a/data".to_string(), FileMode::Regular, data.clone())];
    let mut diffs = Vec::new();
    for flip in [false, true] {
        let mut content = data.clone();
        content.extend(noise(904, 12));
        if flip {
            content[0] ^= 1;
        }
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x00];
        f.extend_from_slice(&4096u32.to_le_bytes());
        for c in content.chunks(1000) {
            let b = r3_lit_block(c);
            f.extend_from_slice(&block_header(false, 2, b.len()));
            f.extend_from_slice(&b);
        }
        f.extend_from_slice(&block_header(true, 0, 1));
        f.push(b'x');
        let bytes = with_frame(&files, 0, &f);
        let (s, p) = (r2_verdict(&read(&bytes)), r2_verdict(&read_in_parallel(&bytes)));
        eprintln!(
            "overshoot, first 4096 bytes {}: read={s} read_parallel={p}",
            if flip { "wrong" } else { "right" }
        );
        if s != p {
            diffs.push((flip, s, p));
        }
    }
    assert!(diffs.is_empty(), "the readers disagree: {diffs:?}");
}

/// A taken frame with a wrong content checksum is refused at its member
/// whether the checksum is buffered with the last block or arrives in a
/// later read (it used to be found at the next member's header or padding).
#[test]
fn a_bad_checksum_is_found_with_its_member_however_the_input_arrives() {
    let data = noise(5000, 13);
    let files = vec![("a/data".to_string(), FileMode::Regular, data.clone())];
    let mut f = hand_frame(0x60, None, &((5000 - 256) as u16).to_le_bytes(), &data, 1000, true);
    let n = f.len();
    f[n - 1] ^= 0xff;
    let bytes = with_frame(&files, 0, &f);
    let whole = read(&bytes);
    let short = package::read_to_memory(R2Chunks(&bytes, 1), &KEYS.trusted, &Limits::default());
    let par = read_in_parallel(&bytes);
    eprintln!(
        "bad checksum: read(whole)={} read(1-byte reads)={} read_parallel={}",
        r2_verdict(&whole),
        r2_verdict(&short),
        r2_verdict(&par)
    );
    assert_eq!(r2_verdict(&whole), r2_verdict(&short));
    assert_eq!(r2_verdict(&whole), r2_verdict(&par));
}

/// A single-bit change of a small package is refused, or decodes to
/// the very same archive (zstd has bits no decoder reads): nothing in a
/// package can be altered and still be accepted as different bytes
/// (before, a changed length field in the signature's text, or bytes in
/// header fields the reader did not use, were).
#[test]
fn no_single_bit_change_is_accepted_as_a_different_archive() {
    let files = vec![(
        "specs/SPEC-000/pkg/g.md".to_string(),
        FileMode::Regular,
        b"g\n".to_vec(),
    )];
    let bytes = build_files(&files, &KEYS.maintainer, TIME);
    let archive = decompress(&bytes);
    let mut altered = Vec::new();
    // (Two bits of every byte, a different pair from byte to byte: all
    // eight bits of every byte take 40 s in a debug build.)
    for i in 0..bytes.len() {
        for bit in [i % 8, (i + 3) % 8] {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            if read(&b).is_ok() && zstd::stream::decode_all(&b[..]).ok().as_ref() != Some(&archive) {
                altered.push((i, bit));
            }
        }
    }
    assert!(altered.is_empty(), "accepted as a different archive: {altered:?}");
}

// ---------------- where a damaged frame is refused, however the input arrives

/// Both readers' verdicts on `bytes`, whole and in reads of `chunk` bytes
/// (a pipe, a socket), and `read`'s with sinks that read 1, 16 or 8192
/// bytes at a time: (how it was read, verdict).
fn verdicts_by_arrival(bytes: &[u8], chunk: usize) -> Vec<(String, String)> {
    let mut v = verdicts_by_input(bytes, chunk);
    for n in [1usize, 16, 8192] {
        v.push((
            format!("read, {chunk}-byte reads, a sink reading {n} bytes at a time"),
            r2_verdict(&package::read(
                R2Chunks(bytes, chunk),
                &KEYS.trusted,
                &Limits::default(),
                |_, d| {
                    let mut buf = vec![0u8; n];
                    while std::io::Read::read(d, &mut buf)? > 0 {}
                    Ok(())
                },
            )),
        ));
    }
    v
}

/// [`verdicts_by_arrival`] with the readers' own sinks only.
fn verdicts_by_input(bytes: &[u8], chunk: usize) -> Vec<(String, String)> {
    let parallel = |r: &mut dyn std::io::Read| {
        r2_verdict(&package::read_parallel(
            r,
            &KEYS.trusted,
            &Limits::default(),
            |_| {},
            |_, _, _, _| Ok(()),
        ))
    };
    vec![
        ("read, whole".to_string(), r2_verdict(&read(bytes))),
        (
            format!("read, {chunk}-byte reads"),
            r2_verdict(&package::read_to_memory(
                R2Chunks(bytes, chunk),
                &KEYS.trusted,
                &Limits::default(),
            )),
        ),
        ("read_parallel, whole".to_string(), parallel(&mut &bytes[..])),
        (
            format!("read_parallel, {chunk}-byte reads"),
            parallel(&mut R2Chunks(bytes, chunk)),
        ),
    ]
}

/// A file's frame without a content size (descriptor 0x00, 128 KiB
/// window): `data` in raw blocks of 1000 bytes, none of them last, then
/// `tail`.
fn frame_without_size(data: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3];
    for c in data.chunks(1000) {
        f.extend_from_slice(&block_header(false, 0, c.len()));
        f.extend_from_slice(c);
    }
    f.extend_from_slice(tail);
    f
}

/// A file's own frame that declares no content size, with a wrong
/// checksum or a last block of the reserved type after all its content:
/// refused at the same place whole or byte by byte, by both readers. (A
/// frame's end is read with its member only when its header says where
/// the content ends; here, by the read that asks for the next bytes, the
/// member's padding. libzstd goes on to the next block in the call that
/// hands out a block's last bytes only when that block is already
/// buffered: the readers give it one block at a time, once all before is
/// out.) A review's reproducer.
#[test]
fn a_damaged_end_of_a_frame_without_a_size_is_refused_at_one_place_however_it_arrives() {
    let data = noise(5000, 21);
    let files = vec![("a/data".to_string(), FileMode::Regular, data.clone())];
    let mut bad_sum = frame_without_size(&data, &block_header(true, 0, 0));
    bad_sum[4] |= 4;
    bad_sum.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let reserved = frame_without_size(&data, &block_header(true, 3, 0));
    for (name, frame) in [("bad checksum", bad_sum), ("reserved last block", reserved)] {
        let v = verdicts_by_arrival(&with_frame(&files, 0, &frame), 1);
        eprintln!("{name}: {v:#?}");
        for (how, verdict) in &v {
            assert_eq!(
                verdict, "Err(could not read the padding of member files/a/data)",
                "{name}, {how}: {v:#?}"
            );
        }
    }
}

/// One frame for the whole archive (as `tar --zstd` writes), with raw
/// blocks of which one ends exactly at a file's last byte, then a block of
/// the reserved type: refused at the same place whole or byte by byte.
/// A review's reproducer.
#[test]
fn a_damaged_block_after_a_member_boundary_is_refused_at_one_place_however_it_arrives() {
    let data = noise(5000, 22);
    let files = vec![("a/data".to_string(), FileMode::Regular, data.clone())];
    let tar = decompress(&build_files(&files, &KEYS.maintainer, TIME));
    let end = tar.windows(data.len()).position(|w| w == data).unwrap() + data.len();
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, (17 - 10) << 3];
    f.extend_from_slice(&(tar.len() as u32).to_le_bytes());
    // 1000-byte blocks from the end of the file's data backwards, so one ends there.
    let mut cuts: Vec<usize> = (0..=end).rev().step_by(1000).collect();
    cuts.push(0);
    cuts.reverse();
    cuts.dedup();
    for w in cuts.windows(2) {
        f.extend_from_slice(&block_header(false, 0, w[1] - w[0]));
        f.extend_from_slice(&tar[w[0]..w[1]]);
    }
    f.extend_from_slice(&block_header(true, 3, 0));
    let v = verdicts_by_arrival(&f, 1);
    eprintln!("{v:#?}");
    assert!(v.iter().all(|(_, x)| *x == v[0].1), "verdicts differ: {v:#?}");
    assert!(v[0].1.starts_with("Err(could not read"), "{v:#?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever is damaged, in a package of one frame per file or of one
    /// frame for the whole archive, both readers give the same verdict
    /// whole and in reads of any size.
    #[test]
    fn damaged_packages_get_the_same_verdict_however_the_input_arrives(
        one_frame in any::<bool>(),
        at in 0.0f64..1.0,
        how in 0u8..4,
        byte in 1u8..=255,
        chunk in prop_oneof![1usize..64, 64usize..70_000],
    ) {
        static FRAMED: LazyLock<Vec<u8>> = LazyLock::new(|| build_files(&framed_files(), &KEYS.maintainer, TIME));
        static ONE: LazyLock<Vec<u8>> = LazyLock::new(|| compress(&decompress(&FRAMED)));
        let mut bytes = if one_frame { ONE.clone() } else { FRAMED.clone() };
        damage(&mut bytes, at, how, byte);
        let v = verdicts_by_arrival(&bytes, chunk);
        prop_assert!(v.iter().all(|(_, x)| *x == v[0].1), "verdicts differ: {:#?}", v);
    }
}

/// A package of one frame without a checksum (`zstd --no-check`) that ends
/// in more zero records than the end-of-archive marker (as `tar` pads its
/// archives): accepted by both readers, whole and in 7-byte reads.
#[test]
fn a_single_frame_without_a_checksum_and_tars_padding_is_read() {
    let files = vec![("a/data".to_string(), FileMode::Regular, noise(5000, 23))];
    let mut tar = decompress(&build_files(&files, &KEYS.maintainer, TIME));
    tar.resize(tar.len() + 20 * 512, 0);
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_checksum(false).unwrap();
    std::io::Write::write_all(&mut enc, &tar).unwrap();
    let one = enc.finish().unwrap();
    assert_eq!(one[4] & 0x04, 0, "no checksum");
    for (how, verdict) in verdicts_by_arrival(&one, 7) {
        assert_eq!(verdict, "Ok", "{how}");
    }
}

/// A one-frame package of raw blocks at `cuts` (offsets in `tar`), cut off
/// right after the block that ends at `stop`.
fn raw_block_package(tar: &[u8], cuts: &[usize], stop: usize) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, (17 - 10) << 3];
    f.extend_from_slice(&(tar.len() as u32).to_le_bytes());
    let mut c: Vec<usize> = cuts.to_vec();
    c.extend([0, tar.len()]);
    c.sort_unstable();
    c.dedup();
    for w in c.windows(2) {
        f.extend_from_slice(&block_header(w[1] == tar.len(), 0, w[1] - w[0]));
        f.extend_from_slice(&tar[w[0]..w[1]]);
        if w[1] == stop {
            break;
        }
    }
    f
}

/// The input ends right after a block whose bytes run from a file's data
/// into its padding: the end is reported where the decodable bytes end
/// (the padding), after everything libzstd holds is handed out, whatever
/// the readers' buffers. (Before, the end of the input was reported as
/// soon as it was found, inside the member for a reader with a small
/// buffer.) A review's reproducer.
#[test]
fn a_package_cut_after_a_block_is_refused_where_its_bytes_end() {
    let data = noise(5000, 31);
    let files = vec![("a/data".to_string(), FileMode::Regular, data.clone())];
    let tar = decompress(&build_files(&files, &KEYS.maintainer, TIME));
    let start = tar.windows(data.len()).position(|w| w == data).unwrap();
    let mut cuts: Vec<usize> = (0..start + 100).step_by(1000).collect();
    cuts.extend([start + 100, start + 5100]);
    let bytes = raw_block_package(&tar, &cuts, start + 5100);
    let v = verdicts_by_arrival(&bytes, 1);
    for (how, verdict) in &v {
        assert!(
            verdict == "Err(the package is truncated: it ends inside the padding of member files/a/data)",
            "{how}: {v:#?}"
        );
    }
}

/// A damaged magic number at each frame's start (and a byte after the last
/// frame): the same verdict whole and in 1-, 2- and 3-byte reads (libzstd
/// refuses a wrong magic number as soon as it has one byte of it, with its
/// own error: the reader looks at the four bytes first). A review's
/// reproducer.
#[test]
fn a_damaged_magic_number_is_refused_alike_however_it_arrives() {
    let framed = build_files(&framed_files(), &KEYS.maintainer, TIME);
    let one = compress(&decompress(&framed));
    let mut differ = Vec::new();
    for (name, pkg) in [("a frame per file", &framed), ("one frame", &one)] {
        let starts: Vec<usize> = pkg
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == [0x28, 0xb5, 0x2f, 0xfd])
            .map(|(i, _)| i)
            .take(6)
            .collect();
        assert!(!starts.is_empty(), "{name}");
        for &s in &starts {
            for (k, b) in [(0usize, 0x00u8), (0, 0x50), (1, 0x00), (3, 0x00)] {
                let mut bytes = pkg.clone();
                bytes[s + k] = b;
                for chunk in [1, 2, 3] {
                    let v = verdicts_by_input(&bytes, chunk);
                    if v.iter().any(|(_, x)| *x != v[0].1) {
                        differ.push(format!(
                            "{name}, frame at {s}, byte {k} := {b:#x}, {chunk}-byte reads: {v:#?}"
                        ));
                    }
                }
            }
        }
        let mut bytes = pkg.clone();
        bytes.push(0x00);
        let v = verdicts_by_input(&bytes, 1);
        if v.iter().any(|(_, x)| *x != v[0].1) {
            differ.push(format!("{name} and a zero byte: {v:#?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} cases differ; the first: {}",
        differ.len(),
        differ[0]
    );
}

/// A one-frame package compressed by libzstd (as `tar | zstd` makes it),
/// cut at every block boundary, a byte and four bytes after each, and
/// every 997 bytes: `read`, `read_parallel` and `read` with a sink reading
/// 16 bytes at a time refuse it alike. A review's reproducer.
#[test]
fn a_one_frame_package_cut_anywhere_is_refused_alike_by_every_reader() {
    let files = vec![
        ("a/noise".to_string(), FileMode::Regular, noise(300_000, 5)),
        ("b/text".to_string(), FileMode::Regular, b"text line\n".repeat(3000)),
        ("c/noise".to_string(), FileMode::Regular, noise(70_000, 6)),
    ];
    let one = compress(&decompress(&build_files(&files, &KEYS.maintainer, TIME)));
    // The frame's header, then its blocks (RFC 8878).
    let fhd = one[4];
    let mut at = 5
        + usize::from(fhd & 0x20 == 0)
        + [0, 1, 2, 4][usize::from(fhd & 3)]
        + [usize::from(fhd & 0x20 != 0), 2, 4, 8][usize::from(fhd >> 6)];
    let mut cuts = Vec::new();
    loop {
        let h = u32::from(one[at]) | u32::from(one[at + 1]) << 8 | u32::from(one[at + 2]) << 16;
        let (last, kind, size) = (h & 1 == 1, (h >> 1) & 3, (h >> 3) as usize);
        at += 3 + if kind == 1 { 1 } else { size };
        cuts.extend([at, at + 1, at + 4]);
        if last {
            break;
        }
    }
    cuts.retain(|&c| c < one.len());
    cuts.extend((100..one.len()).step_by(997));
    let mut differ = Vec::new();
    for cut in cuts {
        let bytes = &one[..cut];
        let v = [
            r2_verdict(&read(bytes)),
            r2_verdict(&read_in_parallel(bytes)),
            r2_verdict(&package::read(bytes, &KEYS.trusted, &Limits::default(), |_, d| {
                let mut buf = [0u8; 16];
                while std::io::Read::read(d, &mut buf)? > 0 {}
                Ok(())
            })),
        ];
        assert!(v[0].starts_with("Err"), "cut {cut}: {v:?}");
        if v.iter().any(|x| *x != v[0]) {
            differ.push(format!("cut at {cut} of {}: {v:#?}", one.len()));
        }
    }
    assert!(
        differ.is_empty(),
        "{} cuts differ; the first: {}",
        differ.len(),
        differ[0]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// One frame of raw and RLE blocks over the whole archive, their
    /// boundaries random (some on tar's 512-byte records), with or without
    /// a checksum and content size, damaged (a byte changed, cut anywhere,
    /// cut at a block boundary or inside a block header, a block of the
    /// reserved type, cut inside the checksum): the same verdict however
    /// the input arrives and whatever the readers' buffers. A review's
    /// generator.
    #[test]
    fn damaged_frames_of_raw_blocks_get_the_same_verdict_however_read(
        seed in any::<u64>(),
        how in 0u8..6,
        at in 0.0f64..1.0,
        byte in 1u8..=255,
        chunk in prop_oneof![1usize..8, 8usize..5000, 5000usize..200_000],
        checksum in any::<bool>(),
        with_size in any::<bool>(),
    ) {
        static TAR: LazyLock<Vec<u8>> =
            LazyLock::new(|| decompress(&build_files(&framed_files(), &KEYS.maintainer, TIME)));
        let tar = &*TAR;
        let mut s = seed | 1;
        let mut rnd = |n: usize| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % n as u64) as usize
        };
        let mut cuts = vec![0, tar.len()];
        let mut p = 0;
        while p < tar.len() {
            let span = if rnd(2) == 0 { 600 } else { 40_000 };
            p += 1 + rnd(span);
            if rnd(3) == 0 {
                p = p / 512 * 512;
            }
            if p > 0 && p < tar.len() {
                cuts.push(p);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let fhd = if checksum { 4 } else { 0 } | if with_size { 0x80 } else { 0 };
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, fhd, (20 - 10) << 3];
        if with_size {
            f.extend_from_slice(&(tar.len() as u32).to_le_bytes());
        }
        let mut starts = Vec::new();
        for w in cuts.windows(2) {
            let c = &tar[w[0]..w[1]];
            starts.push(f.len());
            let last = w[1] == tar.len();
            if c.len() > 1 && c.iter().all(|&b| b == c[0]) {
                f.extend_from_slice(&block_header(last, 1, c.len()));
                f.push(c[0]);
            } else {
                f.extend_from_slice(&block_header(last, 0, c.len()));
                f.extend_from_slice(c);
            }
        }
        if checksum {
            let mut z = zstd::bulk::Compressor::new(1).unwrap();
            z.include_checksum(true).unwrap();
            let z = z.compress(tar).unwrap();
            f.extend_from_slice(&z[z.len() - 4..]);
        }
        let i = ((f.len() as f64) * at) as usize;
        let b = starts[rnd(starts.len())];
        match how {
            0 => f[i] ^= byte,
            1 => f.truncate(i),
            2 => f.truncate(b),
            3 => f.truncate(b + 1 + rnd(2)),
            4 => f[b] |= 6,
            _ => {
                let n = f.len() - 1 - rnd(4);
                f.truncate(n);
            }
        }
        let v = verdicts_by_arrival(&f, chunk);
        prop_assert!(v.iter().all(|(_, x)| *x == v[0].1), "verdicts differ: {:#?}", v);
    }
}
