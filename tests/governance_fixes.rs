//! Regressions from the review and the new-user trial of governance: the
//! quarantine round trip, `own` on directories and two-owner paths,
//! `explain` on what is not a file, exempt globs that cannot switch
//! governance off, planes registries that point outside the tree, and a
//! restore refused only for what it would break.

mod common;

use common::{cplane, stdout, stdout_code, write};
use std::fs;
use std::path::Path;

fn governed() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    stdout(t.path(), &["init", "--governed"]);
    t
}

/// Adds FMWK-LIB (authorizing lib/**, with `exempt` globs) and SPEC-LIB, SPEC-LIB2.
fn with_lib_framework(dir: &Path, exempt: &str) {
    let fw = dir.join("registries/frameworks_registry.csv");
    let mut body = fs::read_to_string(&fw).unwrap();
    body.push_str("FMWK-LIB,Lib,1.0,Library code,frameworks/FMWK-LIB/framework.md,library,no-secrets,,lib/**;frameworks/FMWK-LIB/**,frameworks/FMWK-LIB/rules.json\n");
    fs::write(&fw, body).unwrap();
    write(dir, "frameworks/FMWK-LIB/framework.md", "# Lib\n");
    write(
        dir,
        "frameworks/FMWK-LIB/rules.json",
        &format!(
            r#"{{"gates":[{{"id":"no-secrets","kind":"forbidden_content","default_secrets":true}}],"exempt":{exempt}}}"#
        ),
    );
    let sp = dir.join("registries/specs_registry.csv");
    let mut body = fs::read_to_string(&sp).unwrap();
    body.push_str(
        "SPEC-LIB,FMWK-LIB,library,specs/SPEC-LIB/spec.md,,,\nSPEC-LIB2,FMWK-LIB,library,specs/SPEC-LIB/spec.md,,,\n",
    );
    fs::write(&sp, body).unwrap();
    write(dir, "specs/SPEC-LIB/spec.md", "# Lib spec\n");
    stdout(dir, &["own", "frameworks", "specs", "--by", "SPEC-000"]);
}

#[test]
fn quarantine_prints_a_restore_command_that_brings_the_bytes_back() {
    let t = governed();
    let d = t.path();
    write(d, "stray/notes.txt", "keep me\n");
    stdout_code(d, &["verify"], 1);
    let out = stdout(d, &["quarantine"]);
    assert!(!d.join("stray/notes.txt").exists(), "{out}");
    assert!(
        !d.join("stray").exists(),
        "an emptied directory HEAD lacks is removed: {out}"
    );
    stdout(d, &["verify"]);
    let cmd = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cplane restore"))
        .unwrap_or_else(|| panic!("no restore command in:\n{out}"));
    let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    cplane(d).args(&args).assert().success();
    assert_eq!(fs::read_to_string(d.join("stray/notes.txt")).unwrap(), "keep me\n");
}

#[test]
fn own_on_a_directory_gives_owners_only_to_files_without_one() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, "[]");
    write(d, "lib/a.py", "A = 1\n");
    stdout(d, &["own", "lib/a.py", "--by", "SPEC-LIB2"]);
    write(d, "lib/b.py", "B = 2\n");
    let out = stdout(d, &["own", "lib", "--by", "SPEC-LIB"]);
    assert!(
        out.contains("1 file below the given directories already have other owners"),
        "{out}"
    );
    let x = stdout(d, &["explain", "lib/a.py", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&x).unwrap();
    assert_eq!(v["owners"][0]["owner"], "SPEC-LIB2", "{x}");
    // Naming the file changes it.
    stdout(d, &["own", "lib/a.py", "--by", "SPEC-LIB"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(d, &["explain", "lib/a.py", "--json"])).unwrap();
    assert_eq!(v["owners"][0]["owner"], "SPEC-LIB");
    stdout(d, &["snapshot"]);
    stdout(d, &["verify"]);
}

#[test]
fn own_refuses_a_path_with_two_owners_and_writes_nothing() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, "[]");
    write(d, "lib/a.py", "A = 1\n");
    stdout(d, &["own", "lib/a.py", "--by", "SPEC-LIB"]);
    write(
        d,
        "lib/.file_registry.csv",
        "file_path,owner_id,owner_kind\n.file_registry.csv,SPEC-000,spec\na.py,SPEC-LIB2,spec\n",
    );
    let before = fs::read_to_string(d.join(".file_registry.csv")).unwrap();
    let out = cplane(d)
        .args(["own", "lib/a.py", "--by", "SPEC-LIB"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("two owners"), "{err}");
    assert_eq!(fs::read_to_string(d.join(".file_registry.csv")).unwrap(), before);
}

#[test]
fn explain_refuses_a_directory_and_a_path_that_never_existed() {
    let t = governed();
    let d = t.path();
    let out = cplane(d)
        .args(["explain", "registries"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("directory"));
    cplane(d).args(["explain", "no/such/file"]).assert().code(2);
    stdout(d, &["explain", "registries/specs_registry.csv"]);
}

#[test]
fn exempt_globs_never_hide_the_registries() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, r#"["**/*.csv", "registries/**", "lib/build/**"]"#);
    write(d, "lib/build/out.o", "object\n");
    stdout(d, &["snapshot"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(d, &["status", "--json"])).unwrap();
    assert_eq!(v["governed"], true);
    assert_eq!(v["exempt"], 1, "lib/build is left out whole, the registries are not");
    let show: serde_json::Value = serde_json::from_str(&stdout(d, &["show", "HEAD", "registries", "--json"])).unwrap();
    assert!(show.to_string().contains("frameworks_registry.csv"), "{show}");
    // A broken registry is still caught by snapshot.
    fs::write(d.join("registries/specs_registry.csv"), "id\r\n").unwrap();
    stdout_code(d, &["snapshot"], 1);
}

#[test]
fn planes_registry_outside_the_tree_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("cp");
    fs::create_dir_all(d.join("registries")).unwrap();
    fs::create_dir_all(t.path().join("elsewhere")).unwrap();
    fs::write(
        d.join("registries/planes_registry.csv"),
        "name,path,tier\nout,../elsewhere,x\n",
    )
    .unwrap();
    let out = cplane(&d).arg("init").assert().code(2).get_output().clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory under"));
    assert!(!d.join(".cp").exists());
    std::os::unix::fs::symlink(t.path().join("elsewhere"), d.join("link")).unwrap();
    fs::write(d.join("registries/planes_registry.csv"), "name,path,tier\nout,link,x\n").unwrap();
    cplane(&d).arg("init").assert().code(2);
}

#[test]
fn restore_is_refused_only_for_what_it_would_break() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, "[]");
    write(d, "lib/a.py", "A = 1\n");
    stdout(d, &["own", "lib/a.py", "--by", "SPEC-LIB"]);
    stdout(d, &["snapshot"]);
    // An unrelated problem: a new file nobody owns.
    write(d, "lib/stray.py", "S = 0\n");
    fs::write(d.join("lib/a.py"), "A = 2\n").unwrap();
    stdout(d, &["restore", "HEAD", "lib/a.py"]);
    assert_eq!(fs::read_to_string(d.join("lib/a.py")).unwrap(), "A = 1\n");
    // Restoring the registry from before lib/a.py was owned would unmap it: refused.
    let out = cplane(d)
        .args(["restore", "HEAD~1", ".file_registry.csv"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn disown_clears_the_row_of_a_deleted_file_so_snapshot_seals_again() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, "[]");
    write(d, "lib/old.py", "OLD = 1\n");
    write(d, "lib/keep.py", "KEEP = 1\n");
    stdout(d, &["own", "lib", "--by", "SPEC-LIB"]);
    stdout(d, &["snapshot"]);
    fs::remove_file(d.join("lib/old.py")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout_code(d, &["verify", "--json"], 1)).unwrap();
    assert!(v["findings"].to_string().contains("CP002"), "{v}");
    stdout_code(d, &["snapshot"], 1);
    let out = stdout(d, &["disown", "lib/old.py"]);
    assert!(out.contains("disowned lib/old.py (was SPEC-LIB"), "{out}");
    stdout(d, &["snapshot"]);
    stdout(d, &["verify"]);
    // keep.py keeps its row; a path nothing declares is an error naming it.
    let v: serde_json::Value = serde_json::from_str(&stdout(d, &["explain", "lib/keep.py", "--json"])).unwrap();
    assert_eq!(v["owners"][0]["owner"], "SPEC-LIB");
    let out = cplane(d)
        .args(["disown", "lib/never.py"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("lib/never.py"));
}

#[test]
fn a_path_in_a_nested_plane_is_refused_with_its_plane_relative_name() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "top.txt", "top\n");
    write(d, "inner/x/stray.txt", "stray\n");
    stdout(d, &["init"]);
    stdout(d, &["plane", "add", "inner", "inner"]);
    let out = cplane(d)
        .args(["restore", "HEAD", "inner/x/stray.txt"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--plane inner") && err.contains("`x/stray.txt`"), "{err}");
}

/// Pass 3 finds the same whether the gates ran on the bytes the scan hashed
/// (planned from the compiled registry) or read the files themselves (no
/// compiled registry to plan from).
#[test]
fn fused_and_unfused_gates_find_the_same() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, "[]");
    let key = format!("{}{}", "AKIA", "QWERTYUIOPASDFGH");
    write(d, "lib/a.py", &format!("A = 1\nKEY = '{key}'\n"));
    write(d, "lib/b.py", "B = 2\n");
    write(d, "lib/big.bin", &"x".repeat(5 << 20));
    write(
        d,
        "lib/c.py",
        &format!("# {}\n{}: 'not-a-ref'\n", "x", ["pass", "word"].concat()),
    );
    stdout(d, &["own", "lib", "--by", "SPEC-LIB"]);
    let pass3 = |d: &Path| -> Vec<String> {
        let out = stdout_code(d, &["verify", "--all-passes", "--json"], 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut f: Vec<String> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["pass"] == 3)
            .map(|f| format!("{} {} {}", f["code"], f["path"], f["message"]))
            .collect();
        f.sort();
        f
    };
    let fused = pass3(d);
    assert_eq!(fused.len(), 2, "{fused:?}");
    assert!(
        fused
            .iter()
            .any(|f| f.contains("lib/a.py") && f.contains("aws-access-key-id")),
        "{fused:?}"
    );
    fs::remove_file(d.join("registries/file_ownership_registry.csv")).unwrap();
    assert_eq!(pass3(d), fused);
}

/// A rollback to a checkpoint made before a path became exempt leaves what
/// is there now alone: the rescue did not record it, so writing over it
/// would lose it.
#[test]
fn rollback_never_writes_over_a_path_exempt_globs_now_leave_out() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, "[]");
    write(d, "lib/build/out.o", "old build\n");
    stdout(d, &["own", "lib", "--by", "SPEC-LIB"]);
    stdout(d, &["snapshot", "--name", "with-build"]);
    // lib/build becomes exempt; its row goes; a new build is produced.
    write(
        d,
        "frameworks/FMWK-LIB/rules.json",
        r#"{"gates":[{"id":"no-secrets","kind":"forbidden_content","default_secrets":true}],"exempt":["lib/build/**"]}"#,
    );
    stdout(d, &["disown", "lib/build"]);
    write(d, "lib/build/out.o", "new build, in no checkpoint\n");
    stdout(d, &["snapshot"]);
    stdout(d, &["rollback", "--force", "with-build"]);
    assert_eq!(
        fs::read_to_string(d.join("lib/build/out.o")).unwrap(),
        "new build, in no checkpoint\n"
    );
}

/// A blob of 8 MiB or more is stored by streaming, without a frame size;
/// governance reads such a blob (a large compiled registry) whole all the same.
#[test]
fn a_streamed_blob_reads_back_whole_for_governance() {
    let t = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    fs::write(t.path().join("big.bin"), &body).unwrap();
    stdout(t.path(), &["init"]);
    let store = cplane::store::Store::open(t.path()).unwrap();
    let id = cplane::object::blob_id(&body);
    assert_eq!(cplane::governance::plane::read_blob(&store, &id).unwrap(), body);
}

/// A verify reuses a governed checkpoint's gate verdicts only for files
/// byte-identical to it and only while the registries and rules are too: a
/// new pattern in a rules file is checked against every file at once.
#[test]
fn gate_verdicts_are_reused_only_while_bytes_and_rules_are_unchanged() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, "[]");
    write(d, "lib/a.py", "HOST = 'db.corp.internal'\n");
    stdout(d, &["own", "lib", "--by", "SPEC-LIB"]);
    stdout(d, &["snapshot"]);
    stdout(d, &["verify"]);
    let key = format!("{}{}", "AKIA", "ZXCVBNMASDFGHJKL");
    // A file edited in place, registries untouched (the compiled registry is
    // still the one HEAD sealed): the edited file alone is scanned again.
    write(d, "lib/a.py", &format!("HOST = 'db.corp.internal'\nK = '{key}'\n"));
    let out = stdout_code(d, &["verify", "--all-passes"], 1);
    assert!(out.contains("CP301 lib/a.py"), "{out}");
    write(d, "lib/a.py", "HOST = 'db.corp.internal'\n");
    stdout(d, &["verify"]);
    // A new file is scanned: its secret is found.
    write(d, "lib/b.py", &format!("K = '{key}'\n"));
    stdout(d, &["own", "lib/b.py", "--by", "SPEC-LIB"]);
    let out = stdout_code(d, &["verify", "--all-passes"], 1);
    assert!(out.contains("CP301 lib/b.py"), "{out}");
    fs::remove_file(d.join("lib/b.py")).unwrap();
    stdout(d, &["disown", "lib/b.py"]);
    stdout(d, &["snapshot"]);
    // A rules change: the unchanged lib/a.py now fails, with and without --full.
    write(
        d,
        "frameworks/FMWK-LIB/rules.json",
        r#"{"gates":[{"id":"no-secrets","kind":"forbidden_content","default_secrets":true,"patterns":[{"name":"internal-host","regex":"corp\\.internal"}]}]}"#,
    );
    for args in [
        &["verify", "--all-passes"][..],
        &["verify", "--all-passes", "--full"][..],
    ] {
        let out = stdout_code(d, args, 1);
        assert!(out.contains("CP301 lib/a.py") && out.contains("internal-host"), "{out}");
    }
}

/// A huge file where a registry belongs is refused by name, never loaded
/// whole (the limit is 64 MiB; this one is sparse, 1 GiB).
#[test]
fn a_huge_registry_is_refused_by_name_not_loaded() {
    let t = governed();
    let d = t.path();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(d.join("registries/specs_registry.csv"))
        .unwrap();
    f.set_len(1 << 30).unwrap();
    let out = cplane(d).args(["verify"]).assert().code(2).get_output().clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("specs_registry.csv") && err.contains("64 MiB"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Removing (or replacing with a symlink) the frameworks registry of a
/// governed plane does not switch governance off at the next snapshot.
#[test]
fn snapshot_refuses_a_governed_plane_whose_registry_vanished() {
    let t = governed();
    let d = t.path();
    let fw = d.join("registries/frameworks_registry.csv");
    let body = fs::read(&fw).unwrap();
    fs::remove_file(&fw).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &fw).unwrap();
    let head = stdout(d, &["show", "HEAD", "--json"]);
    let out = cplane(d).arg("snapshot").assert().code(1).get_output().clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("HEAD is governed"));
    assert_eq!(stdout(d, &["show", "HEAD", "--json"]), head);
    fs::remove_file(&fw).unwrap();
    stdout_code(d, &["snapshot"], 1);
    // On purpose: --ungoverned seals, and the plane is ungoverned from then on.
    stdout(d, &["snapshot", "--ungoverned"]);
    stdout(d, &["snapshot"]);
    fs::write(&fw, body).unwrap();
    stdout(d, &["snapshot"]);
}

/// After an install or an `own`, a governed snapshot reuses HEAD's gate
/// verdicts only for files whose bytes, owner and owner's gates are all as
/// HEAD had them: a file whose owner, or whose owner's framework, now
/// brings a gate is checked by it, though its bytes did not change.
#[test]
fn gate_verdicts_follow_an_owner_change_that_brings_a_gate() {
    let t = governed();
    let d = t.path();
    with_lib_framework(d, "[]");
    // FMWK-LAX: lib/** too; its rules define the secrets gate, but nothing
    // requires it (yet).
    let fw = d.join("registries/frameworks_registry.csv");
    let mut body = fs::read_to_string(&fw).unwrap();
    body.push_str("FMWK-LAX,Lax,1.0,No gates,frameworks/FMWK-LAX/framework.md,library,,,lib/**;frameworks/FMWK-LAX/**,frameworks/FMWK-LAX/rules.json\n");
    fs::write(&fw, body).unwrap();
    write(d, "frameworks/FMWK-LAX/framework.md", "# Lax\n");
    write(
        d,
        "frameworks/FMWK-LAX/rules.json",
        r#"{"gates":[{"id":"no-secrets","kind":"forbidden_content","default_secrets":true}]}"#,
    );
    let sp = d.join("registries/specs_registry.csv");
    let specs = fs::read_to_string(&sp).unwrap();
    // SPEC-LAX's row: its framework and its own gates column.
    let set_lax = |fw: &str, gates: &str| {
        let row = format!("SPEC-LAX,{fw},library,specs/SPEC-LIB/spec.md,,{gates},\n");
        fs::write(&sp, format!("{specs}{row}")).unwrap();
    };
    set_lax("FMWK-LAX", "");
    stdout(d, &["own", "frameworks", "specs", "--by", "SPEC-000"]);
    let key = format!("{}{}", "AKIA", "ZXCVBNMASDFGHJKL");
    // What a full gate run finds (every gate on every file): the oracle
    // the reused verdicts must agree with.
    let full_finds_k = |d: &Path| {
        let o = cplane(d).args(["verify", "--all-passes", "--full"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).contains("CP301 lib/k.py")
    };
    let sealed = |d: &Path| {
        assert!(!full_finds_k(d), "a full gate run flags lib/k.py");
        stdout(d, &["snapshot"]);
    };
    let refused = |d: &Path| {
        assert!(full_finds_k(d), "a full gate run passes lib/k.py");
        let out = cplane(d).arg("snapshot").output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(all.contains("CP301 lib/k.py"), "{all}");
        assert!(!all.contains("lib/clean.py"), "{all}");
        let out = stdout_code(d, &["verify", "--all-passes"], 1);
        assert!(out.contains("CP301 lib/k.py"), "{out}");
    };
    write(d, "lib/k.py", &format!("K = '{key}'\n"));
    write(d, "lib/clean.py", "x = 1\n");
    stdout(d, &["own", "lib", "--by", "SPEC-LAX"]);
    sealed(d);
    stdout(d, &["verify"]);
    // Another owner, with a gate; the bytes are HEAD's.
    stdout(d, &["own", "lib/k.py", "--by", "SPEC-LIB"]);
    refused(d);
    stdout(d, &["own", "lib/k.py", "--by", "SPEC-LAX"]);
    sealed(d);
    // The same owner, bound to another framework in the specs registry.
    set_lax("FMWK-LIB", "");
    refused(d);
    set_lax("FMWK-LAX", "");
    sealed(d);
    // The spec's own gates column, in the specs registry only.
    set_lax("FMWK-LAX", "no-secrets");
    refused(d);
    set_lax("FMWK-LAX", "");
    sealed(d);
    // A package owning the file, re-pointed to a spec with the gate in the
    // packages registry only.
    let pk = d.join("registries/packages_registry.csv");
    let header = "id,version,spec_id,framework_id,manifest_digest,status\n";
    fs::write(&pk, format!("{header}PKG-LAX,1.0.0,SPEC-LAX,FMWK-LAX,,installed\n")).unwrap();
    if !stdout(d, &["explain", "registries/packages_registry.csv"]).contains("SPEC-000") {
        stdout(d, &["own", "registries/packages_registry.csv", "--by", "SPEC-000"]);
    }
    stdout(d, &["own", "lib/k.py", "--by", "PKG-LAX"]);
    sealed(d);
    fs::write(&pk, format!("{header}PKG-LAX,1.0.0,SPEC-LIB,FMWK-LIB,,installed\n")).unwrap();
    refused(d);
    fs::write(&pk, format!("{header}PKG-LAX,1.0.0,SPEC-LAX,FMWK-LAX,,installed\n")).unwrap();
    sealed(d);
    // The same owner and framework, which now requires the gate its rules
    // define: only the frameworks registry changed.
    let fws = fs::read_to_string(&fw).unwrap();
    let lax = "FMWK-LAX,Lax,1.0,No gates,frameworks/FMWK-LAX/framework.md,library,";
    fs::write(&fw, fws.replace(&format!("{lax},"), &format!("{lax}no-secrets,"))).unwrap();
    refused(d);
}
