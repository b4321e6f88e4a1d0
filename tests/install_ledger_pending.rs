//! What the ledger says of an install that was interrupted or refused at
//! its seal (every attempt recorded: its intent late, its completion when
//! a later command finishes it), what a refusal while an install is
//! pending says (text and JSON), and uninstall's up-front checks: two
//! reviews' reproducers.
mod common;

use common::packages::{Setup, pack_with, run, setup};
use common::stdout;
use std::fs;
use std::path::{Path, PathBuf};

fn pack(s: &Setup, name: &str, files: &[(&str, &str)], id: &str) -> PathBuf {
    let files: Vec<(&str, &str, u32)> = files.iter().map(|(p, b)| (*p, *b, 0o644)).collect();
    pack_with(s, name, &files, &s.admin, &["--id", id])
}

/// Kills `install PKG` at `env` (a kill point) once its marker appears.
fn kill_install(d: &Path, pkg: &Path, env: (&str, &str), marker: &str) {
    let m = d.join(".cp/planes/main").join(marker);
    let _ = fs::remove_file(&m);
    let mut child = common::spawn(d, &["install", pkg.to_str().unwrap()], &[env]);
    common::wait_for(&m, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = fs::remove_file(&m);
}

fn kill_at_registry(s: &Setup, id: &str) -> PathBuf {
    let d = s.plane.path();
    let dir = id.to_lowercase();
    let pkg = pack(s, &dir, &[(&format!("specs/SPEC-000/{dir}/a.md"), "a\n")], id);
    kill_install(d, &pkg, ("CPLANE_TEST_PAUSE_AT_STEP", "registry"), "paused");
    let planes = d.join(".cp/planes/main");
    assert!(planes.join("install.pending").exists());
    let intent = fs::read_to_string(planes.join("ledger.pending")).unwrap();
    assert!(intent.contains("\"op\":\"install\""), "{intent}");
    planes
}

/// The ledger's entries of op install (one line each).
fn install_entries(d: &Path) -> Vec<String> {
    stdout(d, &["ledger", "--op", "install"])
        .lines()
        .filter(|l| l.split_whitespace().next().is_some_and(|t| t.parse::<u64>().is_ok()))
        .map(String::from)
        .collect()
}

/// An install killed after writing its files, refused when resumed (a
/// stray appeared), then `rollback HEAD`: the install that wrote files
/// into the plane is still recorded (its intent, late). (A version that
/// kept the intent for the install's own entry lost it to the rollback's.)
#[test]
fn a_rolled_back_pending_install_is_still_recorded() {
    let s = setup();
    let d = s.plane.path();
    kill_at_registry(&s, "PKG-RB");
    fs::write(d.join("specs/SPEC-000/stray.md"), "stray\n").unwrap();
    let (code, out) = run(d, &["rollback", "HEAD"]);
    eprintln!("rollback: {code}\n{out}");
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    eprintln!("snapshot: {code}\n{out}");
    let all = stdout(d, &["ledger"]);
    eprintln!("{all}");
    stdout(d, &["ledger", "verify"]);
    assert!(
        all.contains("install") && install_entries(d).len() == 1,
        "the interrupted install of PKG-RB is in no entry:\n{all}"
    );
}

/// Same, with `own` of the stray first (own's intent would replace the
/// install's if it were kept): what is recorded, and in which order.
#[test]
fn own_over_a_refused_pending_install() {
    let s = setup();
    let d = s.plane.path();
    kill_at_registry(&s, "PKG-OWN");
    fs::write(d.join("specs/SPEC-000/stray.md"), "stray\n").unwrap();
    let (code, out) = run(d, &["own", "specs/SPEC-000/stray.md", "--by", "SPEC-000"]);
    eprintln!("own: {code}\n{out}");
    assert_eq!(code, 0, "{out}");
    let intent = fs::read_to_string(d.join(".cp/planes/main/ledger.pending"));
    eprintln!("intent after own: {intent:?}");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    eprintln!("snapshot: {code}\n{out}");
    let all = stdout(d, &["ledger"]);
    eprintln!("{all}");
    stdout(d, &["ledger", "verify"]);
    // The attempt (recorded late when `own` locked the plane), then the
    // own, then the install's completion.
    let at = |needle: &str| all.find(needle).unwrap_or_else(|| panic!("no {needle:?} in\n{all}"));
    assert!(at("recorded late: the command did not record") < at("owned"), "{all}");
    assert!(at("owned") < at("installed PKG-OWN"), "{all}");
    assert_eq!(install_entries(d).len(), 2, "{all}");
}

/// `gc` while an install is pending: gc records the install's intent
/// late, the next command finishes the install and records its completion
/// once.
#[test]
fn gc_while_an_install_is_pending_records_its_completion_once() {
    let s = setup();
    let d = s.plane.path();
    kill_at_registry(&s, "PKG-GC");
    let (code, out) = run(d, &["gc"]);
    eprintln!("gc: {code}\n{out}");
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    eprintln!("snapshot: {code}\n{out}");
    assert!(out.contains("finished an interrupted install of PKG-GC"), "{out}");
    let all = stdout(d, &["ledger"]);
    eprintln!("{all}");
    stdout(d, &["ledger", "verify"]);
    // The attempt (its intent, recorded late by gc) and its completion.
    let entries = install_entries(d);
    assert_eq!(
        entries.iter().filter(|e| e.contains("installed PKG-GC")).count(),
        1,
        "one completion, entries:\n{all}"
    );
    assert!(entries.len() <= 2, "entries:\n{all}");
}

/// An install killed when staged (install.pending written, no file in
/// place): the next command records its intent late, once.
#[test]
fn install_killed_before_its_files_is_recorded_late_once() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "st", &[("specs/SPEC-000/st/sub/a.md", "a\n")], "PKG-ST");
    kill_install(d, &pkg, (common::PAUSE_STAGED, "1"), "staged");
    let planes = d.join(".cp/planes/main");
    eprintln!(
        "install.pending {} ledger.pending {}",
        planes.join("install.pending").exists(),
        planes.join("ledger.pending").exists()
    );
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    eprintln!("snapshot: {code}\n{out}");
    assert_eq!(code, 0, "{out}");
    assert!(!planes.join("install.pending").exists());
    assert!(!planes.join("ledger.pending").exists());
    let e = install_entries(d);
    let all = stdout(d, &["ledger"]);
    assert_eq!(e.len(), 1, "{all}");
    assert!(all.contains("recorded late"), "{all}");
    stdout(d, &["ledger", "verify"]);
}

/// A file the user owned by the package and then deleted (declared but
/// missing, owner PKG-UN), away from its manifest's paths: the uninstall
/// is refused before anything is removed. (A filter that let through every
/// finding blamed on the package removed the files, then had its seal
/// refused: no checkpoint, no ledger entry.)
#[test]
fn uninstall_refuses_up_front_a_package_owned_path_elsewhere() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "un", &[("specs/SPEC-000/un/a.md", "a\n")], "PKG-UN");
    stdout(d, &["install", pkg.to_str().unwrap()]);
    fs::write(d.join("specs/SPEC-000/un/notes.md"), "notes\n").unwrap();
    let (code, out) = run(d, &["own", "specs/SPEC-000/un/notes.md", "--by", "PKG-UN"]);
    eprintln!("own: {code}\n{out}");
    assert_eq!(code, 0, "{out}");
    stdout(d, &["snapshot", "-m", "notes"]);
    fs::remove_file(d.join("specs/SPEC-000/un/notes.md")).unwrap();
    let before = stdout(d, &["ledger"]);
    let (code, out) = run(d, &["uninstall", "PKG-UN"]);
    eprintln!("uninstall: {code}\n{out}");
    let after = stdout(d, &["ledger"]);
    eprintln!("{after}");
    let gone = !d.join("specs/SPEC-000/un/a.md").exists();
    eprintln!(
        "a.md gone: {gone}; pending {:?}",
        fs::read_to_string(d.join(".cp/planes/main/ledger.pending"))
    );
    let (_, st) = run(d, &["status"]);
    eprintln!("status: {st}");
    assert!(
        code == 0 || (!gone && before == after),
        "a refused uninstall removed the package's files (gone={gone}), ledger unchanged={}",
        before == after
    );
}

/// Two planes, a refused pending install in main only: a command on the
/// other plane runs; `plane add` carving a plane out of main records in
/// main's ledger, and the install's attempt stays recorded.
#[test]
fn plane_add_out_of_main_keeps_the_install_recorded() {
    let s = setup();
    let d = s.plane.path();
    kill_at_registry(&s, "PKG-PA");
    fs::write(d.join("specs/SPEC-000/stray.md"), "stray\n").unwrap();
    let (code, out) = run(d, &["plane", "add", "side", "side", "--create"]);
    eprintln!("plane add: {code}\n{out}");
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "--plane", "side", "-m", "s", "--allow-unchanged"]);
    eprintln!("snapshot side: {code}\n{out}");
    let intent = fs::read_to_string(d.join(".cp/planes/main/ledger.pending"));
    eprintln!("main intent after plane add: {intent:?}");
    let (code, out) = run(d, &["rollback", "HEAD"]);
    eprintln!("rollback: {code}\n{out}");
    let all = stdout(d, &["ledger"]);
    eprintln!("{all}");
    assert!(
        intent.is_ok() || install_entries(d).len() == 1,
        "install PKG-PA unrecorded:\n{all}"
    );
}

/// An install whose seal is refused after its files were written keeps
/// its intent (it changed the plane: `InstallPending`, not "nothing was
/// written"), so a rollback afterwards still leaves the attempt recorded.
#[test]
fn an_install_refused_at_its_seal_then_rolled_back_is_recorded() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "sr", &[("specs/SPEC-000/sr/a.md", "a\n")], "PKG-SR");
    let stray = d.join("specs/SPEC-000/stray.md");
    let out = common::packages::install_paused_before_seal(d, &pkg, || fs::write(&stray, "x\n").unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(d.join("specs/SPEC-000/sr/a.md").exists());
    let intent = d.join(".cp/planes/main/ledger.pending").exists();
    let (code, out) = run(d, &["rollback", "HEAD"]);
    assert_eq!(code, 0, "{out}");
    let all = stdout(d, &["ledger"]);
    assert!(intent && install_entries(d).len() == 1, "intent kept: {intent}\n{all}");
}

/// `install` (with `extra` args first) paused before its seal; `meanwhile`
/// runs there.
fn install_paused(d: &Path, extra: &[&str], pkg: &Path, meanwhile: impl FnOnce()) -> std::process::Output {
    let marker = d.join(".cp/planes/main/paused");
    let _ = fs::remove_file(&marker);
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["install", pkg.to_str().unwrap()]);
    let mut child = common::spawn(d, &args, &[("CPLANE_TEST_PAUSE_AT_STEP", "owned")]);
    common::wait_for(&marker, &mut child);
    meanwhile();
    fs::remove_file(&marker).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn json_install_pending_has_findings() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "js", &[("specs/SPEC-000/js/a.md", "a\n")], "PKG-JS");
    let stray = d.join("specs/SPEC-000/stray.md");
    let o = install_paused(d, &["--json"], &pkg, || fs::write(&stray, "x\n").unwrap());
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("stdout: {out}\nstderr: {err}");
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert!(v["error"].as_str().unwrap().contains("stays pending"), "{v}");
    assert_eq!(v["exit_code"], 1);
    let f = v["findings"].as_array().expect("findings");
    assert!(f.iter().any(|f| f["path"] == "specs/SPEC-000/stray.md"), "{v}");
    assert!(
        v["hint"].as_str().is_some_and(|h| h.contains("finishes the install")),
        "{v}"
    );
    assert!(!err.contains("nothing was written"), "{err}");
    assert!(d.join(".cp/planes/main/ledger.pending").exists(), "intent kept");
}

/// Refused at its seal, the stray removed, the next command finishes it:
/// the intent late, then one install entry; nothing else of op install.
#[test]
fn refused_at_seal_then_finished_records_intent_then_install() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "fin", &[("specs/SPEC-000/fin/a.md", "a\n")], "PKG-FIN");
    let stray = d.join("specs/SPEC-000/stray.md");
    let o = install_paused(d, &[], &pkg, || fs::write(&stray, "x\n").unwrap());
    assert_eq!(o.status.code(), Some(1));
    let before = install_entries(d).len();
    fs::remove_file(&stray).unwrap();
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    eprintln!("snapshot: {code}\n{out}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("finished an interrupted install of PKG-FIN"), "{out}");
    let all = stdout(d, &["ledger"]);
    eprintln!("{all}");
    let e = install_entries(d);
    assert_eq!(e.len() - before, 2, "{all}");
    let late = e.iter().position(|l| l.contains("recorded late")).expect("intent late");
    let done = e
        .iter()
        .position(|l| l.contains("installed PKG-FIN"))
        .expect("install entry");
    assert!(late < done, "{all}");
    assert_eq!(e.iter().filter(|l| l.contains("recorded late")).count(), 1, "{all}");
    stdout(d, &["ledger", "verify"]);
    stdout(d, &["verify"]);
}

/// Same via `own` of the stray (past the pending install, a warning), then
/// a snapshot: intent late once, own, install once.
#[test]
fn refused_at_seal_own_then_snapshot() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "fo", &[("specs/SPEC-000/fo/a.md", "a\n")], "PKG-FO");
    let stray = d.join("specs/SPEC-000/stray.md");
    let o = install_paused(d, &[], &pkg, || fs::write(&stray, "x\n").unwrap());
    assert_eq!(o.status.code(), Some(1));
    let before = install_entries(d).len();
    let (code, out) = run(d, &["own", "specs/SPEC-000/stray.md", "--by", "SPEC-000"]);
    eprintln!("own: {code}\n{out}");
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    eprintln!("snapshot: {code}\n{out}");
    let all = stdout(d, &["ledger"]);
    eprintln!("{all}");
    let e = install_entries(d);
    assert_eq!(e.len() - before, 2, "{all}");
    assert_eq!(e.iter().filter(|l| l.contains("installed PKG-FO")).count(), 1, "{all}");
    stdout(d, &["ledger", "verify"]);
}

/// The existing filter case, plus: an unowned file elsewhere still refuses.
#[test]
fn uninstall_refuses_an_unowned_file_elsewhere() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "uo", &[("specs/SPEC-000/uo/a.md", "a\n")], "PKG-UO");
    stdout(d, &["install", pkg.to_str().unwrap()]);
    fs::write(d.join("specs/SPEC-000/stray.md"), "x\n").unwrap();
    let (code, out) = run(d, &["uninstall", "PKG-UO"]);
    eprintln!("uninstall: {code}\n{out}");
    assert_eq!(code, 1, "{out}");
    assert!(d.join("specs/SPEC-000/uo/a.md").exists());
    assert!(!d.join(".cp/planes/main/ledger.pending").exists());
}

/// A file the user owned by the package (present, outside its manifest):
/// no finding before, but the uninstall keeps its ownership row naming a
/// package no longer registered. Does the uninstall end sealed, or remove
/// the files and say "nothing was written"?
#[test]
fn uninstall_with_a_present_package_owned_extra_file() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "ux", &[("specs/SPEC-000/ux/a.md", "a\n")], "PKG-UX");
    stdout(d, &["install", pkg.to_str().unwrap()]);
    fs::write(d.join("specs/SPEC-000/ux/notes.md"), "notes\n").unwrap();
    stdout(d, &["own", "specs/SPEC-000/ux/notes.md", "--by", "PKG-UX"]);
    stdout(d, &["snapshot", "-m", "notes"]);
    let before = stdout(d, &["ledger"]);
    let (code, out) = run(d, &["uninstall", "PKG-UX"]);
    eprintln!("uninstall: {code}\n{out}");
    let after = stdout(d, &["ledger"]);
    let gone = !d.join("specs/SPEC-000/ux/a.md").exists();
    let intent = d.join(".cp/planes/main/ledger.pending").exists();
    eprintln!("a.md gone {gone}, intent {intent}\n{after}");
    assert!(
        code == 0 || (!gone && before == after),
        "uninstall exit {code} removed the files (gone={gone}) with the ledger unchanged={} intent kept={intent}:\n{out}",
        before == after
    );
}

/// A registry made unparseable while the install is paused after writing
/// its files (step `registry`): the ownership step fails with a
/// non-Refused error. Is the intent kept (files were written)?
#[test]
fn install_failing_after_its_files_with_bad_config_keeps_its_intent() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "bc", &[("specs/SPEC-000/bc/a.md", "a\n")], "PKG-BC");
    let marker = d.join(".cp/planes/main/paused");
    let child = common::packages::install_paused_at(d, &pkg, "registry");
    let reg = d.join(".file_registry.csv");
    let mut text = fs::read_to_string(&reg).unwrap();
    text.push_str("\"unbalanced,quote\n");
    fs::write(&reg, text).unwrap();
    fs::remove_file(&marker).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let written = d.join("specs/SPEC-000/bc/a.md").exists();
    let pending = d.join(".cp/planes/main/install.pending").exists();
    let intent = d.join(".cp/planes/main/ledger.pending").exists();
    eprintln!(
        "exit {:?} written {written} install.pending {pending} intent {intent}\n{err}",
        o.status.code()
    );
    // The user fixes the registry and puts the plane back.
    let fixed: String = fs::read_to_string(&reg)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("unbalanced"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&reg, fixed).unwrap();
    let (code, out) = run(d, &["rollback", "HEAD"]);
    eprintln!("rollback: {code}\n{out}");
    let all = stdout(d, &["ledger"]);
    eprintln!("{all}");
    assert!(
        !written || intent,
        "files written, intent dropped; install entries after rollback: {}:\n{err}",
        install_entries(d).len()
    );
}

/// After an InstallPending, a later command refused by the pending install:
/// what its JSON says.
#[test]
fn json_of_a_command_refused_by_a_pending_install() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "jl", &[("specs/SPEC-000/jl/a.md", "a\n")], "PKG-JL");
    let stray = d.join("specs/SPEC-000/stray.md");
    let o = install_paused(d, &[], &pkg, || fs::write(&stray, "x\n").unwrap());
    assert_eq!(o.status.code(), Some(1));
    let o = common::cplane(d)
        .args(["--json", "snapshot", "-m", "x"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!(
        "exit {:?}\nstdout {out}\nstderr {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        v.to_string().contains("install"),
        "the JSON never says an install is pending: {v}"
    );
}
