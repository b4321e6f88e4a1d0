//! Checkouts of more files than the descriptor budget lets the engine stage
//! at once (`CPLANE_TEST_FD_BUDGET`, read by debug builds): the files past
//! the first round are staged in rounds as the apply step reaches them, with
//! one flush at the end. Every byte and mode must come back, and a checkout
//! killed between rounds must be finished exactly by the next command.

mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Budget of 16 descriptors: rounds of 14 files.
const BUDGET: (&str, &str) = ("CPLANE_TEST_FD_BUDGET", "16");

/// 240 files in 12 directories, every fifth executable, every seventh empty.
fn populate(d: &Path) {
    for i in 0..240 {
        let rel = format!("dir{:02}/f{i:03}.txt", i % 12);
        let body = if i % 7 == 0 {
            String::new()
        } else {
            format!("file {i}\n").repeat(i + 1)
        };
        write(d, &rel, &body);
        if i % 5 == 0 {
            fs::set_permissions(d.join(&rel), fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

fn run(d: &Path, args: &[&str]) -> std::process::Output {
    let mut c = cplane(d);
    c.args(args).env(BUDGET.0, BUDGET.1);
    c.output().unwrap()
}

#[test]
fn a_rollback_of_many_more_files_than_the_budget_restores_every_byte_and_mode() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    populate(d);
    stdout(d, &["init"]);
    let want = tree(d);
    // Everything gone or changed: 240 writes, 17 rounds.
    for i in 0..12 {
        fs::remove_dir_all(d.join(format!("dir{i:02}"))).unwrap();
    }
    write(d, "dir03/f003.txt", "not what HEAD has");
    let out = run(d, &["rollback", "HEAD"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(tree(d), want);
    assert!(stdout(d, &["status"]).contains("clean"));
}

#[test]
fn a_rollback_killed_between_rounds_is_finished_by_the_next_command() {
    for after in [1, 20, 100, 175] {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        populate(d);
        stdout(d, &["init"]);
        let want = tree(d);
        for i in (0..240).step_by(2) {
            fs::remove_file(d.join(format!("dir{:02}/f{i:03}.txt", i % 12))).unwrap();
        }
        for i in (1..240).step_by(4) {
            write(d, &format!("dir{:02}/f{i:03}.txt", i % 12), "edited\n");
        }
        kill_after_ops(d, &["rollback", "HEAD"], after, &[BUDGET]);
        // The next command replays the journal (re-hashing what was written).
        let out = run(d, &["status"]);
        assert!(
            out.status.success(),
            "after {after}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(tree(d), want, "killed after {after} operations");
    }
}
