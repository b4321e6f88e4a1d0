//! What the ledger says of an install that was interrupted or refused at
//! its seal (every attempt recorded: its intent late, its completion when
//! a later command finishes it), what a refusal while an install is
//! pending says (text and JSON), and uninstall's up-front checks: two
//! reviews' reproducers.
mod common;

use common::packages::{Setup, install_paused_before_seal, install_pending, intent_pending, pack_with, run, setup};
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
    assert!(install_pending(d));
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
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    assert_eq!(code, 0, "{out}");
    let all = stdout(d, &["ledger"]);
    stdout(d, &["ledger", "verify"]);
    let e = install_entries(d);
    assert_eq!(e.len(), 1, "the interrupted install of PKG-RB is in no entry:\n{all}");
    assert!(e[0].contains("recorded late") && e[0].contains("pkg-rb.cppkg"), "{all}");
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
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("finished an interrupted install of PKG-OWN"), "{out}");
    let all = stdout(d, &["ledger"]);
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
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("finished an interrupted install of PKG-GC"), "{out}");
    let all = stdout(d, &["ledger"]);
    stdout(d, &["ledger", "verify"]);
    // The attempt (its intent, recorded late by gc) and its completion.
    let entries = install_entries(d);
    assert_eq!(
        entries.iter().filter(|e| e.contains("installed PKG-GC")).count(),
        1,
        "one completion, entries:\n{all}"
    );
    assert_eq!(entries.len(), 2, "entries:\n{all}");
    let late = entries
        .iter()
        .position(|e| e.contains("recorded late"))
        .expect("intent late");
    let done = entries
        .iter()
        .position(|e| e.contains("installed PKG-GC"))
        .expect("install entry");
    assert!(late < done, "{all}");
}

/// An install killed when staged (install.pending written, no file in
/// place): the next command records its intent late, once.
#[test]
fn install_killed_before_its_files_is_recorded_late_once() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "st", &[("specs/SPEC-000/st/sub/a.md", "a\n")], "PKG-ST");
    kill_install(d, &pkg, (common::PAUSE_STAGED, "1"), "staged");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    assert_eq!(code, 0, "{out}");
    assert!(!install_pending(d));
    assert!(!intent_pending(d));
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
    assert_eq!(code, 0, "{out}");
    stdout(d, &["snapshot", "-m", "notes"]);
    fs::remove_file(d.join("specs/SPEC-000/un/notes.md")).unwrap();
    let before = stdout(d, &["ledger"]);
    let (code, out) = run(d, &["uninstall", "PKG-UN"]);
    assert_eq!(code, 1, "{out}");
    let after = stdout(d, &["ledger"]);
    assert!(
        d.join("specs/SPEC-000/un/a.md").exists(),
        "a refused uninstall removed a.md"
    );
    assert_eq!(before, after, "a refused uninstall changed the ledger");
    assert!(!intent_pending(d));
}

/// Two planes, a refused pending install in main only: a command on the
/// other plane runs; `plane add` carving a plane out of main (a directory
/// main's HEAD has files in) records the carve-out in main's ledger, after
/// the install's attempt (its intent, recorded late), which stays recorded
/// through a rollback.
#[test]
fn plane_add_out_of_main_keeps_the_install_recorded() {
    let s = setup();
    let d = s.plane.path();
    fs::create_dir_all(d.join("specs/SPEC-000/side")).unwrap();
    fs::write(d.join("specs/SPEC-000/side/f.md"), "f\n").unwrap();
    stdout(d, &["own", "specs/SPEC-000/side/f.md", "--by", "SPEC-000"]);
    stdout(d, &["snapshot", "-m", "side"]);
    kill_at_registry(&s, "PKG-PA");
    fs::write(d.join("specs/SPEC-000/stray.md"), "stray\n").unwrap();
    let (code, out) = run(d, &["plane", "add", "side", "specs/SPEC-000/side"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "--plane", "side", "-m", "s", "--allow-unchanged"]);
    assert_eq!(code, 0, "{out}");
    let all = stdout(d, &["ledger"]);
    assert_eq!(install_entries(d).len(), 1, "install PKG-PA unrecorded:\n{all}");
    let at = |needle: &str| all.find(needle).unwrap_or_else(|| panic!("no {needle:?} in\n{all}"));
    assert!(
        at("recorded late") < at("carved out plane side at specs/SPEC-000/side"),
        "{all}"
    );
    // (The carved-out file's row stays in main's registry: --force.)
    let (code, out) = run(d, &["rollback", "--force", "HEAD"]);
    assert_eq!(code, 0, "{out}");
    let all = stdout(d, &["ledger"]);
    assert_eq!(install_entries(d).len(), 1, "install PKG-PA unrecorded:\n{all}");
    stdout(d, &["ledger", "verify"]);
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
    let out = install_paused_before_seal(d, &pkg, || fs::write(&stray, "x\n").unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(d.join("specs/SPEC-000/sr/a.md").exists());
    let intent = intent_pending(d);
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

/// `--json install` refused at its seal by a stray file: one JSON object,
/// exit code 1, an error saying the install stays pending, the stray among
/// its findings and a hint that the next command finishes the install; the
/// intent is kept.
#[test]
fn json_install_pending_has_findings() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "js", &[("specs/SPEC-000/js/a.md", "a\n")], "PKG-JS");
    let stray = d.join("specs/SPEC-000/stray.md");
    let o = install_paused(d, &["--json"], &pkg, || fs::write(&stray, "x\n").unwrap());
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
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
    assert!(intent_pending(d), "intent kept");
}

/// Refused at its seal, the stray removed, the next command finishes it:
/// the intent late, then one install entry; nothing else of op install.
#[test]
fn refused_at_seal_then_finished_records_intent_then_install() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "fin", &[("specs/SPEC-000/fin/a.md", "a\n")], "PKG-FIN");
    let stray = d.join("specs/SPEC-000/stray.md");
    let o = install_paused_before_seal(d, &pkg, || fs::write(&stray, "x\n").unwrap());
    assert_eq!(o.status.code(), Some(1));
    let before = install_entries(d).len();
    fs::remove_file(&stray).unwrap();
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("finished an interrupted install of PKG-FIN"), "{out}");
    let all = stdout(d, &["ledger"]);
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
    let o = install_paused_before_seal(d, &pkg, || fs::write(&stray, "x\n").unwrap());
    assert_eq!(o.status.code(), Some(1));
    let before = install_entries(d).len();
    let (code, out) = run(d, &["own", "specs/SPEC-000/stray.md", "--by", "SPEC-000"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(d, &["snapshot", "-m", "next", "--allow-unchanged"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("finished an interrupted install of PKG-FO"), "{out}");
    let all = stdout(d, &["ledger"]);
    let e = install_entries(d);
    assert_eq!(e.len() - before, 2, "{all}");
    assert_eq!(e.iter().filter(|l| l.contains("installed PKG-FO")).count(), 1, "{all}");
    assert_eq!(all.matches("recorded late").count(), 1, "{all}");
    let at = |needle: &str| all.find(needle).unwrap_or_else(|| panic!("no {needle:?} in\n{all}"));
    assert!(at("recorded late") < at("owned"), "{all}");
    assert!(at("owned") < at("installed PKG-FO"), "{all}");
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
    assert_eq!(code, 1, "{out}");
    assert!(d.join("specs/SPEC-000/uo/a.md").exists());
    assert!(!intent_pending(d));
}

/// A file the user owned by the package (present, outside its manifest):
/// the uninstall would leave its ownership row naming a package no longer
/// registered, so it is refused up front (CP004, "is owned by package
/// PKG-UX but is not one of its files"), exit 1: nothing removed, the
/// ledger unchanged, no intent left.
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
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("CP004 specs/SPEC-000/ux/notes.md")
            && out.contains("is owned by package PKG-UX but is not one of its files"),
        "{out}"
    );
    assert!(
        d.join("specs/SPEC-000/ux/a.md").exists(),
        "a refused uninstall removed a.md"
    );
    assert!(d.join("specs/SPEC-000/ux/notes.md").exists());
    assert_eq!(stdout(d, &["ledger"]), before, "a refused uninstall changed the ledger");
    assert!(!intent_pending(d));
}

/// A registry made unparseable while the install is paused after writing
/// its files (step `registry`): the ownership step fails with a
/// non-Refused error (exit 2). The files were written, so the install
/// stays pending with its intent kept; once the registry is fixed, the next
/// command (here `rollback HEAD`) finishes it: the intent recorded late,
/// then the install.
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
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(d.join("specs/SPEC-000/bc/a.md").exists(), "{err}");
    assert!(install_pending(d), "{err}");
    assert!(intent_pending(d), "files written, intent dropped: {err}");
    // The user fixes the registry and puts the plane back.
    let fixed: String = fs::read_to_string(&reg)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("unbalanced"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&reg, fixed).unwrap();
    let (code, out) = run(d, &["rollback", "HEAD"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("finished an interrupted install of PKG-BC"), "{out}");
    assert!(!install_pending(d));
    assert!(!intent_pending(d));
    let all = stdout(d, &["ledger"]);
    let e = install_entries(d);
    assert_eq!(e.len(), 2, "{all}");
    assert!(e[0].contains("recorded late"), "{all}");
    assert!(
        e[1].contains("installed PKG-BC") && e[1].contains("finished after the install was interrupted"),
        "{all}"
    );
    stdout(d, &["ledger", "verify"]);
}

/// After an InstallPending, `--json snapshot` is refused by the pending
/// install: exit code 1, and its JSON says the install stays pending,
/// names the stray among its findings and hints that the next command
/// finishes the install.
#[test]
fn json_of_a_command_refused_by_a_pending_install() {
    let s = setup();
    let d = s.plane.path();
    let pkg = pack(&s, "jl", &[("specs/SPEC-000/jl/a.md", "a\n")], "PKG-JL");
    let stray = d.join("specs/SPEC-000/stray.md");
    let o = install_paused_before_seal(d, &pkg, || fs::write(&stray, "x\n").unwrap());
    assert_eq!(o.status.code(), Some(1));
    let o = common::cplane(d)
        .args(["--json", "snapshot", "-m", "x"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["exit_code"], 1, "{v}");
    assert!(v["error"].as_str().unwrap().contains("stays pending"), "{v}");
    let f = v["findings"].as_array().expect("findings");
    assert!(f.iter().any(|f| f["path"] == "specs/SPEC-000/stray.md"), "{v}");
    assert!(
        v["hint"].as_str().is_some_and(|h| h.contains("finishes the install")),
        "{v}"
    );
    assert!(install_pending(d));
}
