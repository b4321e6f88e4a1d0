//! `cplane key …` through the binary: keys generated, trusted with a role,
//! used to sign the ledger; `ledger verify` flags entries signed by unknown
//! or revoked keys or by a role that may not sign their operation; stock
//! `ssh-keygen -Y verify` accepts the entry signatures against the plane's
//! registry.

mod common;

use common::{cplane, stdout, stdout_code, write};
use cplane::ledger::Entry;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn entries(d: &Path) -> Vec<Entry> {
    serde_json::from_str(&stdout(d, &["ledger", "--json"])).unwrap()
}

/// Generates a key pair in `keys` named `name`; returns the private key path.
fn keygen(plane: &Path, keys: &Path, name: &str) -> PathBuf {
    let out = keys.join(name);
    stdout(
        plane,
        &["key", "generate", "--out", out.to_str().unwrap(), "--comment", name],
    );
    out
}

fn with_key(d: &Path, key: &Path, args: &[&str]) -> std::process::Output {
    cplane(d).env("CPLANE_SIGNING_KEY", key).args(args).output().unwrap()
}

/// `key trust KEY.pub --role ROLE EXTRA...`, signed by `by` when given;
/// must succeed.
fn trust_key(d: &Path, by: Option<&Path>, key: &Path, role: &str, extra: &[&str]) {
    let pubkey = format!("{}.pub", key.display());
    let mut args = vec!["key", "trust", pubkey.as_str(), "--role", role];
    args.extend_from_slice(extra);
    match by {
        Some(signer) => {
            ok_with_key(d, signer, &args);
        }
        None => {
            stdout(d, &args);
        }
    }
}

fn ok_with_key(d: &Path, key: &Path, args: &[&str]) -> String {
    let o = with_key(d, key, args);
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Appends, behind cplane's back, an entry of `op` signed by `key` (what a
/// writer that skipped cplane's checks could do): `ledger verify` must
/// flag what is wrong with it. Returns its seq.
fn forge(d: &Path, key: &Path, op: &str) -> u64 {
    forge_with(d, key, op, |_| {})
}

/// [`forge`], with `adjust` changing the entry before it is hashed and signed.
fn forge_with(d: &Path, key: &Path, op: &str, adjust: impl FnOnce(&mut Entry)) -> u64 {
    let es = entries(d);
    let last = es.last().unwrap();
    let k = cplane::keys::load_private(key).unwrap();
    let mut e = Entry {
        seq: last.seq + 1,
        time: last.time.clone(),
        actor: format!("key:{}", cplane::keys::fingerprint(k.public_key())),
        op: op.into(),
        plane: "main".into(),
        refs: Vec::new(),
        paths: Vec::new(),
        paths_omitted: 0,
        snapshot: None,
        head: last.head.clone(),
        message: "forged".into(),
        key: None,
        prev: last.hash.clone(),
        hash: String::new(),
        sig: None,
    };
    adjust(&mut e);
    let h = e.compute_hash().unwrap();
    e.hash = cplane::id::to_hex(&h);
    e.sig = Some(cplane::keys::sign(&k, "cplane-ledger", &h).unwrap());
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(d.join(".cp/planes/main/ledger"))
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{}\n", e.to_line()).as_bytes()).unwrap();
    e.seq
}

fn plane() -> (tempfile::TempDir, tempfile::TempDir) {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "a.txt", "a\n");
    stdout(t.path(), &["init"]);
    (t, tempfile::tempdir().unwrap())
}

#[test]
fn generated_keys_sign_the_ledger_and_ssh_keygen_verifies_the_signatures() {
    let (t, k) = plane();
    let d = t.path();
    let admin = keygen(d, k.path(), "admin");
    let mode = fs::metadata(&admin).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    trust_key(d, None, &admin, "admin", &[]);
    let reg = fs::read_to_string(d.join("registries/allowed_signers")).unwrap();
    assert!(reg.contains("cplane-role=admin"), "{reg}");
    stdout(d, &["key", "use", admin.to_str().unwrap()]);
    write(d, "b.txt", "b\n");
    stdout(d, &["snapshot"]);
    let es = entries(d);
    let last = es.last().unwrap();
    assert_eq!(last.op, "snapshot");
    assert!(last.actor.starts_with("key:SHA256:"), "{last:?}");
    let sig = last.sig.clone().expect("a signed entry");
    let out = stdout(d, &["ledger", "verify"]);
    assert!(out.contains("1 signed, every signature by a trusted key"), "{out}");
    // Stock ssh-keygen checks the entry's signature over its 32-byte hash.
    let w = tempfile::tempdir().unwrap();
    fs::write(w.path().join("sig"), &sig).unwrap();
    let hash = last.hash_bytes().unwrap();
    fs::write(w.path().join("data"), hash).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(d.join("registries/allowed_signers"))
        .args(["-I", "admin", "-n", "cplane-ledger", "-s"])
        .arg(w.path().join("sig"))
        .stdin(fs::File::open(w.path().join("data")).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ssh-keygen (apt-get install openssh-client)");
    assert!(status.success(), "ssh-keygen -Y verify refused a ledger signature");
    // A signed head, checked offline against the plane's registry; any
    // change to it is refused.
    let mut h: serde_json::Value = serde_json::from_str(&stdout(d, &["ledger", "head", "--json"])).unwrap();
    assert!(h["signature"].is_string(), "{h}");
    let hf = w.path().join("head.json");
    let signers = d.join("registries/allowed_signers");
    fs::write(&hf, h.to_string()).unwrap();
    let out = stdout(
        w.path(),
        &[
            "ledger",
            "check-proof",
            hf.to_str().unwrap(),
            "--signers",
            signers.to_str().unwrap(),
        ],
    );
    assert!(out.starts_with("ok: head ") && out.contains("admin"), "{out}");
    h["size"] = serde_json::json!(1);
    fs::write(&hf, h.to_string()).unwrap();
    stdout_code(
        w.path(),
        &[
            "ledger",
            "check-proof",
            hf.to_str().unwrap(),
            "--signers",
            signers.to_str().unwrap(),
        ],
        1,
    );
    // The key in use is listed as trusted.
    let list = stdout(d, &["key", "list"]);
    assert!(list.contains("admin") && list.contains("signing with"), "{list}");
    assert!(!list.contains("NOT a trusted key"), "{list}");
}

#[test]
fn roles_decide_who_may_sign_what() {
    let (t, k) = plane();
    let d = t.path();
    let admin = keygen(d, k.path(), "admin");
    let maint = keygen(d, k.path(), "maint");
    let auditor = keygen(d, k.path(), "auditor");
    trust_key(d, None, &admin, "admin", &[]);
    // With an admin key trusted, only an admin key may trust another.
    let o = cplane(d)
        .args([
            "key",
            "trust",
            &format!("{}.pub", maint.display()),
            "--role",
            "maintainer",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("must be signed by a trusted admin or maintainer key"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    trust_key(d, Some(&admin), &maint, "maintainer", &[]);
    trust_key(d, Some(&admin), &auditor, "auditor", &[]);
    // A maintainer may snapshot but not trust keys.
    write(d, "m.txt", "m\n");
    ok_with_key(d, &maint, &["snapshot"]);
    let o = with_key(d, &maint, &["key", "revoke", &format!("{}.pub", auditor.display())]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(d, &["ledger", "verify"]);
    // An auditor's key signs no change: refused before anything changes,
    // and flagged by verify when a writer went behind cplane's back.
    write(d, "x.txt", "x\n");
    let o = with_key(d, &auditor, &["snapshot"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    forge(d, &auditor, "snapshot");
    let out = stdout_code(d, &["ledger", "verify"], 1);
    assert!(out.contains("only admin or maintainer keys may sign it"), "{out}");
}

#[test]
fn unknown_revoked_and_forged_signatures_are_flagged() {
    let (t, k) = plane();
    let d = t.path();
    let admin = keygen(d, k.path(), "admin");
    let maint = keygen(d, k.path(), "maint");
    let stranger = keygen(d, k.path(), "stranger");
    trust_key(d, None, &admin, "admin", &[]);
    trust_key(d, Some(&admin), &maint, "maintainer", &[]);
    write(d, "m.txt", "m\n");
    ok_with_key(d, &maint, &["snapshot"]);
    stdout(d, &["ledger", "verify"]);
    // Revoked: what the key signed before stays valid, what it signs after is flagged.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok_with_key(d, &admin, &["key", "revoke", &format!("{}.pub", maint.display())]);
    stdout(d, &["ledger", "verify"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(d, "n.txt", "n\n");
    assert_eq!(with_key(d, &maint, &["snapshot"]).status.code(), Some(2));
    forge(d, &maint, "snapshot");
    let out = stdout_code(d, &["ledger", "verify"], 1);
    assert!(out.contains("revoked"), "{out}");
    let bad: Vec<&str> = out.lines().filter(|l| l.contains("signature:")).collect();
    assert_eq!(bad.len(), 1, "{out}");
    // Unknown key.
    write(d, "s.txt", "s\n");
    assert_eq!(with_key(d, &stranger, &["snapshot"]).status.code(), Some(2));
    forge(d, &stranger, "snapshot");
    let out = stdout_code(d, &["ledger", "verify"], 1);
    assert_eq!(out.lines().filter(|l| l.contains("signature:")).count(), 2, "{out}");
    let v = stdout_code(d, &["verify"], 1);
    assert_eq!(v.matches("CP402").count(), 2, "{v}");
    // A signature moved onto another entry does not verify there.
    let path = d.join(".cp/planes/main/ledger");
    let mut es = entries(d);
    let n = es.len();
    es[n - 2].sig = es[n - 3].sig.clone();
    let text: String = es.iter().map(|e| e.to_line() + "\n").collect();
    fs::write(&path, text).unwrap();
    let out = stdout_code(d, &["ledger", "verify"], 1);
    assert!(out.contains(&format!("entry {}: signature:", n - 2)), "{out}");
}

#[test]
fn a_signing_key_that_does_not_load_stops_the_command_before_it_changes_anything() {
    let (t, _k) = plane();
    let d = t.path();
    let head = fs::read_to_string(d.join(".cp/planes/main/HEAD")).unwrap();
    write(d, "b.txt", "b\n");
    let o = cplane(d)
        .env("CPLANE_SIGNING_KEY", d.join("no-such-key"))
        .arg("snapshot")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("CPLANE_SIGNING_KEY"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(fs::read_to_string(d.join(".cp/planes/main/HEAD")).unwrap(), head);
    assert_eq!(entries(d).len(), 1);
}

#[test]
fn on_a_governed_plane_the_registry_is_owned_and_the_plane_verifies() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    stdout(d, &["init", "--governed"]);
    let k = tempfile::tempdir().unwrap();
    let admin = keygen(d, k.path(), "admin");
    trust_key(d, None, &admin, "admin", &[]);
    let x = stdout(d, &["explain", "registries/allowed_signers"]);
    assert!(x.contains("owner"), "{x}");
    ok_with_key(d, &admin, &["snapshot"]);
    stdout(d, &["verify"]);
    stdout(d, &["ledger", "verify"]);
    let ops: Vec<String> = entries(d).into_iter().map(|e| e.op).collect();
    assert!(ops.contains(&"key-trust".to_string()), "{ops:?}");
}

/// The keys the ledger trusts come from its own key-trust and key-revoke
/// entries, in ledger order: editing, restoring or rolling back the
/// registry file changes nothing but is reported; a revoked key cannot
/// backdate; once an admin is trusted every entry must be signed.
#[test]
fn trust_is_replayed_from_the_ledger_not_read_from_the_file() {
    let (t, k) = plane();
    let d = t.path();
    let admin = keygen(d, k.path(), "admin");
    let admin2 = keygen(d, k.path(), "admin2");
    let maint = keygen(d, k.path(), "maint");
    trust_key(d, None, &admin, "admin", &[]);
    trust_key(d, Some(&admin), &maint, "maintainer", &[]);
    ok_with_key(d, &admin, &["key", "revoke", &format!("{}.pub", maint.display())]);
    stdout(d, &["ledger", "verify"]);
    // Un-revoking by hand is reported, and does not make the key trusted.
    let reg = d.join("registries/allowed_signers");
    let text = fs::read_to_string(&reg).unwrap();
    let unrevoked: String = text
        .lines()
        .map(|l| match l.strip_prefix("#cplane-revoked=") {
            Some(rest) => rest.split_once(' ').unwrap().1.to_string(),
            None => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect();
    fs::write(&reg, &unrevoked).unwrap();
    let out = stdout_code(d, &["ledger", "verify"], 1);
    assert!(out.contains("does not match the keys the ledger trusts"), "{out}");
    fs::write(&reg, &text).unwrap();
    // A revoked key that signs an entry dated before its revocation is still
    // refused: revocation is by ledger order, not by the signer's clock.
    let path = d.join(".cp/planes/main/ledger");
    let tree = d.join(".cp/planes/main/ledger.tree");
    let kept_tree: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&tree)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    let es = entries(d);
    let backdated = es[1].time.clone();
    let seq = forge_with(d, &maint, "snapshot", |e| {
        e.time = backdated;
        e.message = "backdated".into();
    });
    let out = stdout_code(d, &["ledger", "verify"], 1);
    assert!(
        out.contains(&format!("entry {seq}: signature: it is signed by")) && out.contains("revoked"),
        "{out}"
    );
    // Put the ledger back as it was.
    let keep: String = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("backdated"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&path, keep).unwrap();
    fs::remove_dir_all(&tree).unwrap();
    fs::create_dir(&tree).unwrap();
    for (p, b) in &kept_tree {
        fs::write(p, b).unwrap();
    }
    // Unsigned: refused before anything changes, and flagged when written
    // behind cplane's back.
    write(d, "u.txt", "u\n");
    let o = cplane(d).arg("snapshot").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let seq = forge(d, &admin, "snapshot");
    let path = d.join(".cp/planes/main/ledger");
    let mut es = entries(d);
    let e = &mut es[seq as usize];
    e.sig = None;
    e.actor = "user:mallory".into();
    e.hash = cplane::id::to_hex(&e.compute_hash().unwrap());
    let text: String = es.iter().map(|e| e.to_line() + "\n").collect();
    fs::write(&path, text).unwrap();
    let out = stdout_code(d, &["ledger", "verify"], 1);
    assert!(
        out.contains("it is not signed, but the plane has trusted an admin key since entry 1"),
        "{out}"
    );
    // The last admin key cannot be revoked; another admin first, then it can
    // revoke itself (its own revocation entry is still valid).
    let o = with_key(d, &admin, &["key", "revoke", &format!("{}.pub", admin.display())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("last admin key"));
    ok_with_key(
        d,
        &admin,
        &["key", "trust", &format!("{}.pub", admin2.display()), "--role", "admin"],
    );
    ok_with_key(d, &admin, &["key", "revoke", &format!("{}.pub", admin.display())]);
    let out = stdout_code(d, &["ledger", "verify"], 1);
    let flagged: Vec<&str> = out.lines().filter(|l| l.contains("signature:")).collect();
    assert_eq!(flagged.len(), 1, "only the unsigned snapshot: {out}");
}

#[test]
fn a_registry_that_is_a_symlink_is_refused() {
    let (t, k) = plane();
    let d = t.path();
    let admin = keygen(d, k.path(), "admin");
    fs::create_dir_all(d.join("registries")).unwrap();
    let outside = k.path().join("elsewhere");
    fs::write(&outside, "").unwrap();
    std::os::unix::fs::symlink(&outside, d.join("registries/allowed_signers")).unwrap();
    let o = cplane(d)
        .args(["key", "trust", &format!("{}.pub", admin.display()), "--role", "admin"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(fs::read_to_string(&outside).unwrap(), "");
    assert!(
        fs::symlink_metadata(d.join("registries/allowed_signers"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_private_key_is_not_generated_inside_a_plane_unless_forced() {
    let (t, _k) = plane();
    let d = t.path();
    let o = cplane(d).args(["key", "generate", "--out", "mykey"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the cplane store"));
    assert!(!d.join("mykey").exists());
    stdout(d, &["key", "generate", "--out", "mykey", "--force"]);
    assert!(d.join("mykey").exists() && d.join("mykey.pub").exists());
}

/// Review 7: what the ledger trusts cannot be changed behind its back —
/// a swapped key in an admin-signed key-trust entry, a deleted ledger with
/// HEAD moved back to init, a revocation marker typed into the file — and a
/// key used before any admin exists signs validly.
#[test]
fn trust_survives_swapped_keys_deleted_ledgers_and_file_edits() {
    let (t, k) = plane();
    let d = t.path();
    let admin = keygen(d, k.path(), "admin");
    let maint = keygen(d, k.path(), "maint");
    let evil = keygen(d, k.path(), "evil");
    // Signing before any admin is trusted: fine (trust on first use).
    write(d, "early.txt", "e\n");
    ok_with_key(d, &admin, &["snapshot"]);
    stdout(d, &["ledger", "verify"]);
    trust_key(d, None, &admin, "admin", &[]);
    trust_key(d, Some(&admin), &maint, "maintainer", &[]);
    // Swap the key an admin-signed key-trust entry trusted for another one:
    // the entry no longer matches its hash, and nothing trusts the new key.
    let path = d.join(".cp/planes/main/ledger");
    let text = fs::read_to_string(&path).unwrap();
    let maint_pub = fs::read_to_string(format!("{}.pub", maint.display())).unwrap();
    let evil_pub = fs::read_to_string(format!("{}.pub", evil.display())).unwrap();
    let (mk, ek) = (
        maint_pub.split_whitespace().nth(1).unwrap(),
        evil_pub.split_whitespace().nth(1).unwrap(),
    );
    fs::write(&path, text.replace(mk, ek)).unwrap();
    let list = stdout(d, &["key", "list"]);
    let evil_fp = cplane::keys::fingerprint(&cplane::keys::load_private(&evil).unwrap().public_key().clone());
    assert!(!list.contains(&evil_fp) || list.contains("differs"), "{list}");
    stdout_code(d, &["ledger", "verify"], 1);
    fs::write(&path, &text).unwrap();
    // A revocation marker typed into the file revokes nothing: key revoke
    // still revokes it in the ledger.
    let reg = d.join("registries/allowed_signers");
    let body = fs::read_to_string(&reg).unwrap();
    let marked: String = body
        .lines()
        .map(|l| {
            if l.starts_with("maint ") {
                format!("#cplane-revoked=\"20200101000000Z\" {l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&reg, marked).unwrap();
    let out = ok_with_key(d, &admin, &["key", "revoke", &format!("{}.pub", maint.display())]);
    assert!(out.contains("revoked SHA256:"), "{out}");
    let es = entries(d);
    assert_eq!(es.last().unwrap().op, "key-revoke");
    // Deleting the ledger and pointing HEAD back at init (sealed with an
    // empty ledger) does not reopen trust on first use.
    let first = es[0].snapshot.clone().unwrap();
    fs::remove_file(&path).unwrap();
    let _ = fs::remove_dir_all(d.join(".cp/planes/main/ledger.tree"));
    fs::write(d.join(".cp/planes/main/HEAD"), format!("{first}\n")).unwrap();
    let o = cplane(d)
        .args(["key", "trust", &format!("{}.pub", evil.display()), "--role", "admin"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("was deleted"));
}

/// `key trust --valid-after/--valid-before` write OpenSSH's validity
/// options into the registry line; a writing command refuses, before
/// anything changes, a signing key outside its window (rather than write an
/// entry every verify would flag); bad times are usage errors.
#[test]
fn a_signing_key_outside_its_validity_window_is_refused_at_write() {
    let (p, k) = plane();
    let d = p.path();
    let admin = keygen(d, k.path(), "admin");
    trust_key(d, Some(&admin), &admin, "admin", &[]);
    let old = keygen(d, k.path(), "old");
    let soon = keygen(d, k.path(), "soon");
    let now = keygen(d, k.path(), "now");
    trust_key(d, Some(&admin), &old, "maintainer", &["--valid-before", "20200101Z"]);
    trust_key(d, Some(&admin), &soon, "maintainer", &["--valid-after", "29990101Z"]);
    let window = ["--valid-after", "20200101Z", "--valid-before", "29990101Z"];
    trust_key(d, Some(&admin), &now, "maintainer", &window);
    let reg = fs::read_to_string(d.join("registries/allowed_signers")).unwrap();
    assert!(reg.contains("valid-before=\"20200101000000Z\""), "{reg}");
    write(d, "a.txt", "a\n");
    for (key, why) in [(&old, "expired at"), (&soon, "is valid only from")] {
        let before = fs::read(d.join(".cp/planes/main/ledger")).unwrap();
        let o = with_key(d, key, &["snapshot", "-m", "x"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(why) && err.contains("cplane key trust"), "{err}");
        assert_eq!(
            fs::read(d.join(".cp/planes/main/ledger")).unwrap(),
            before,
            "nothing recorded"
        );
    }
    ok_with_key(d, &now, &["snapshot", "-m", "in its window"]);
    stdout(d, &["ledger", "verify"]);
    for bad in [
        vec!["--valid-before", "2020-01-01"],
        vec!["--valid-after", "29990101Z", "--valid-before", "20200101Z"],
    ] {
        let pubkey = format!("{}.pub", old.display());
        let mut args = vec!["key", "trust", pubkey.as_str(), "--role", "auditor"];
        args.extend(bad);
        let o = with_key(d, &admin, &args);
        assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    }
}
