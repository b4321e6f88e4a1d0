//! Interoperability of `cplane::keys` with stock OpenSSH `ssh-keygen`: keys
//! and signatures made by one are read and checked by the other, and the
//! allowed-signers registry cplane writes (roles, revoked lines) is read by
//! `ssh-keygen -Y verify` as cplane means it.
//!
//! These tests need `ssh-keygen` (Debian package `openssh-client`); without it
//! they fail, saying so, rather than skip.

use cplane::keys::{self, KeyError, Role, Signer, UtcTime};
use ssh_key::PublicKey;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `ssh-keygen` with `args` in `dir`, feeding `stdin`.
fn ssh_keygen(dir: &Path, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match stdin {
        Some(path) => cmd.stdin(fs::File::open(path).expect("open stdin file")),
        None => cmd.stdin(Stdio::null()),
    };
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "ssh-keygen is not installed: install OpenSSH's client tools (apt-get install openssh-client); these tests need it"
            )
        }
        Err(e) => panic!("could not run ssh-keygen: {e}"),
    }
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ssh-keygen -Y verify` of `sig_file` over `data_file` for `principal` in `namespace`.
fn ssh_verify(dir: &Path, principal: &str, namespace: &str, sig_file: &str, data_file: &str) -> Output {
    ssh_keygen(
        dir,
        &[
            "-Y",
            "verify",
            "-f",
            "allowed_signers",
            "-I",
            principal,
            "-n",
            namespace,
            "-s",
            sig_file,
        ],
        Some(&dir.join(data_file)),
    )
}

fn signer(key: &PublicKey, principal: &str, role: Role, namespaces: &[&str]) -> Signer {
    Signer {
        principals: vec![principal.to_string()],
        role,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        valid_after: None,
        valid_before: None,
        key: PublicKey::new(key.key_data().clone(), ""),
        comment: "made by the test".to_string(),
        revoked: None,
        line: 0,
    }
}

#[test]
fn ssh_keygen_verifies_what_cplane_signs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alice_pub = keys::generate(&d.join("alice"), "alice@test").unwrap();
    let bob_pub = keys::generate(&d.join("bob"), "bob@test").unwrap();
    let alice = keys::load_private(&d.join("alice")).unwrap();
    let bob = keys::load_private(&d.join("bob")).unwrap();

    // The registry as cplane writes it: roles in the comment, validity times,
    // and bob's line revoked.
    let mut a = signer(
        &alice_pub,
        "alice@example.org",
        Role::Admin,
        &["cplane-ledger", "cplane-pkg*"],
    );
    a.valid_after = UtcTime::parse_openssh("20200101Z");
    a.valid_before = UtcTime::parse_openssh("29991231Z");
    let b = signer(&bob_pub, "bob@example.org", Role::Maintainer, &["cplane-ledger"]);
    let text = format!(
        "# trusted keys\n{}\n{}\n",
        keys::format_signer(&a).unwrap(),
        keys::format_signer(&b).unwrap()
    );
    let text = keys::revoke(&text, "allowed_signers", &bob_pub, UtcTime::now()).unwrap();
    fs::write(d.join("allowed_signers"), &text).unwrap();
    let signers = keys::parse_allowed_signers(&text, "allowed_signers").unwrap();
    assert_eq!(signers.len(), 2);
    assert!(signers[1].revoked.is_some());

    let data = b"entry 1: the plane's root is 8f0c...\n";
    fs::write(d.join("data"), data).unwrap();
    fs::write(d.join("data.sig"), keys::sign(&alice, "cplane-ledger", data).unwrap()).unwrap();
    let out = ssh_verify(d, "alice@example.org", "cplane-ledger", "data.sig", "data");
    ok(&out, "ssh-keygen -Y verify of cplane's signature");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&keys::fingerprint(&alice_pub)),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A namespace allowed through a pattern.
    fs::write(d.join("pkg.sig"), keys::sign(&alice, "cplane-pkg-v1", data).unwrap()).unwrap();
    ok(
        &ssh_verify(d, "alice@example.org", "cplane-pkg-v1", "pkg.sig", "data"),
        "pattern namespace",
    );
    // cplane agrees on all of it.
    assert_eq!(
        keys::verify(
            &fs::read_to_string(d.join("data.sig")).unwrap(),
            "cplane-ledger",
            data,
            &signers
        )
        .unwrap()
        .role,
        Role::Admin
    );

    // One changed byte of data: both refuse.
    let mut changed = data.to_vec();
    changed[0] ^= 0x20;
    fs::write(d.join("changed"), &changed).unwrap();
    let out = ssh_verify(d, "alice@example.org", "cplane-ledger", "data.sig", "changed");
    assert!(!out.status.success(), "ssh-keygen accepted changed data");
    let err = keys::verify(
        &fs::read_to_string(d.join("data.sig")).unwrap(),
        "cplane-ledger",
        &changed,
        &signers,
    );
    assert!(matches!(err, Err(KeyError::BadSignature { .. })), "{err:?}");

    // A namespace the registry does not allow: both refuse.
    fs::write(d.join("git.sig"), keys::sign(&alice, "git", data).unwrap()).unwrap();
    assert!(
        !ssh_verify(d, "alice@example.org", "git", "git.sig", "data")
            .status
            .success()
    );

    // bob's revoked key: ssh-keygen skips the revoked line, so it refuses too.
    fs::write(d.join("bob.sig"), keys::sign(&bob, "cplane-ledger", data).unwrap()).unwrap();
    let out = ssh_verify(d, "bob@example.org", "cplane-ledger", "bob.sig", "data");
    assert!(!out.status.success(), "ssh-keygen accepted a revoked key");
    let err = keys::verify(
        &fs::read_to_string(d.join("bob.sig")).unwrap(),
        "cplane-ledger",
        data,
        &signers,
    );
    assert!(matches!(err, Err(KeyError::Revoked { .. })), "{err:?}");
}

#[test]
fn cplane_verifies_what_ssh_keygen_signs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &ssh_keygen(
            d,
            &["-q", "-t", "ed25519", "-N", "", "-C", "carol@test", "-f", "k"],
            None,
        ),
        "ssh-keygen -t ed25519",
    );
    let data = b"package manifest\n\x00\xff binary too";
    fs::write(d.join("data"), data).unwrap();
    ok(
        &ssh_keygen(d, &["-Y", "sign", "-f", "k", "-n", "cplane-pkg", "data"], None),
        "ssh-keygen -Y sign",
    );
    let armored = fs::read_to_string(d.join("data.sig")).unwrap();

    let public = PublicKey::read_openssh_file(&d.join("k.pub")).unwrap();
    let text = keys::format_signer(&signer(&public, "carol", Role::Auditor, &["cplane-pkg"])).unwrap();
    let signers = keys::parse_allowed_signers(&text, "allowed_signers").unwrap();
    let who = keys::verify(&armored, "cplane-pkg", data, &signers).unwrap();
    assert_eq!(who.principals, ["carol"]);
    assert_eq!(who.role, Role::Auditor);

    let err = keys::verify(&armored, "cplane-pkg", b"package manifest\n", &signers);
    assert!(matches!(err, Err(KeyError::BadSignature { .. })), "{err:?}");
    let err = keys::verify(&armored, "cplane-ledger", data, &signers);
    assert!(matches!(err, Err(KeyError::WrongNamespace { .. })), "{err:?}");

    // cplane signs with the key ssh-keygen made (as with an existing
    // ~/.ssh/id_ed25519), and ssh-keygen checks it against cplane's registry.
    let key = keys::load_private(&d.join("k")).unwrap();
    fs::write(d.join("allowed_signers"), format!("{text}\n")).unwrap();
    fs::write(d.join("cplane.sig"), keys::sign(&key, "cplane-pkg", data).unwrap()).unwrap();
    ok(
        &ssh_verify(d, "carol", "cplane-pkg", "cplane.sig", "data"),
        "ssh-keygen -Y verify with ssh-keygen's key",
    );
    // Both make the same signature: ed25519 is deterministic and both hash with SHA-512.
    assert_eq!(fs::read_to_string(d.join("cplane.sig")).unwrap(), armored);

    // ssh-keygen and cplane print the same fingerprint.
    let out = ssh_keygen(d, &["-l", "-E", "sha256", "-f", "k.pub"], None);
    ok(&out, "ssh-keygen -l");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&keys::fingerprint(&public)),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn ssh_keygen_loads_keys_cplane_generates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let public = keys::generate(&d.join("id_cplane"), "dave@test").unwrap();
    let mode = fs::metadata(d.join("id_cplane")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private key mode {mode:o}");

    let out = ssh_keygen(d, &["-y", "-f", "id_cplane"], None);
    ok(&out, "ssh-keygen -y");
    let derived = String::from_utf8(out.stdout).unwrap();
    let written = fs::read_to_string(d.join("id_cplane.pub")).unwrap();
    let words = |s: &str| s.split_whitespace().take(2).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(&derived), words(&written));
    assert_eq!(written, format!("{}\n", public.to_openssh().unwrap()));
    assert!(written.trim_end().ends_with(" dave@test"), "{written}");
}

#[test]
fn encrypted_keys_are_refused_with_a_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &ssh_keygen(d, &["-q", "-t", "ed25519", "-N", "correct horse", "-f", "enc"], None),
        "ssh-keygen -N passphrase",
    );
    let err = keys::load_private(&d.join("enc")).unwrap_err();
    assert!(matches!(err, KeyError::Encrypted { .. }), "{err}");
    assert!(err.to_string().contains("ssh-keygen -p"), "{err}");
}

#[test]
fn non_ed25519_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &ssh_keygen(d, &["-q", "-t", "ecdsa", "-N", "", "-f", "ec"], None),
        "ssh-keygen -t ecdsa",
    );
    let err = keys::load_private(&d.join("ec")).unwrap_err();
    assert!(matches!(err, KeyError::UnsupportedKey { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(d.join("ec").to_str().unwrap()), "{msg}");
    assert!(
        msg.contains("is ecdsa-sha2-nistp256, but cplane signs and verifies with ed25519 keys only"),
        "{msg}"
    );
}
