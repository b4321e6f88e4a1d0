//! What Unix users expect of a CLI (issue 11): shell completions and a man
//! page generated from the clap definitions, `--json` before or after the
//! subcommand, `-q`/`--quiet` for cron, usage errors as JSON naming the
//! argument, and `plane remove`. The real binary.

mod common;

use common::{cplane, stdout, stdout_code, write};
use serde_json::Value;
use std::fs;
use std::path::Path;

/// A store with plane `main` over two files, sealed.
fn plane() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "a.txt", "alpha\n");
    write(t.path(), "sub/b.txt", "beta\n");
    stdout(t.path(), &["init"]);
    t
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    let t = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = stdout(t.path(), &["completions", shell]);
        assert!(!out.trim().is_empty(), "{shell}: empty completion script");
        for sub in ["snapshot", "rollback", "verify", "plane", "completions"] {
            assert!(out.contains(sub), "{shell} completions do not mention `{sub}`");
        }
    }
    // A shell clap_complete does not know is a usage error naming the value.
    let out = stdout_code(t.path(), &["--json", "completions", "tcsh"], 2);
    let v = json(&out);
    assert_eq!(v["kind"], "invalid_value");
    assert_eq!(v["value"], "tcsh");
}

#[test]
fn man_page_is_roff_with_every_subcommand() {
    let t = tempfile::tempdir().unwrap();
    let out = stdout(t.path(), &["man"]);
    let th = out.lines().find(|l| l.starts_with(".TH")).expect("a .TH title line");
    assert!(th.starts_with(".TH cplane 1"), "{th}");
    // Only roff requests, escapes and text: nothing before the title but
    // string definitions (clap_mangen's quote macro).
    for l in out.lines().take_while(|l| !l.starts_with(".TH")) {
        assert!(l.starts_with(".ie") || l.starts_with(".el"), "before .TH: {l}");
    }
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH \"CPLANE SNAPSHOT\"",
        ".SH \"CPLANE PLANE REMOVE\"",
    ] {
        assert!(out.contains(section), "man page lacks {section}");
    }
    assert!(out.contains("\\-\\-quiet"), "the global --quiet is documented");
}

#[test]
fn json_is_accepted_before_and_after_the_subcommand() {
    let t = plane();
    let before = json(&stdout(t.path(), &["--json", "status"]));
    let after = json(&stdout(t.path(), &["status", "--json"]));
    assert_eq!(before["clean"], true);
    assert_eq!(before, after);
    // A nested subcommand too.
    let before = json(&stdout(t.path(), &["--json", "plane", "list"]));
    let after = json(&stdout(t.path(), &["plane", "list", "--json"]));
    assert_eq!(before, after);
    assert_eq!(before[0]["name"], "main");
    // An error after the subcommand's --json is JSON too.
    let v = json(&stdout_code(t.path(), &["--json", "diff", "NO-SUCH-CHECKPOINT"], 2));
    assert_eq!(v["exit_code"], 2);
}

#[test]
fn quiet_silences_informational_output() {
    let t = plane();
    write(t.path(), "c.txt", "gamma\n");
    for args in [&["-q", "snapshot"][..], &["snapshot", "--quiet", "--allow-unchanged"]] {
        let out = cplane(t.path()).args(args).assert().success().get_output().clone();
        assert!(
            out.stdout.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A clean check prints nothing at all; without -q it says so.
    for cmd in ["status", "verify", "fsck"] {
        assert!(stdout(t.path(), &["-q", cmd]).is_empty(), "{cmd} -q printed something");
        assert!(!stdout(t.path(), &[cmd]).is_empty());
    }
    // Findings and differences still print, with their exit code.
    write(t.path(), "a.txt", "changed\n");
    let out = stdout_code(t.path(), &["-q", "verify"], 1);
    assert!(out.contains("CP101 a.txt"), "{out}");
    assert!(
        !out.contains("verify failed"),
        "the summary line is informational: {out}"
    );
    let out = stdout_code(t.path(), &["-q", "status"], 1);
    assert_eq!(out, "M  a.txt\n");
    // Asked-for JSON is data: -q keeps it.
    let v = json(&stdout(t.path(), &["-q", "--json", "snapshot"]));
    assert!(v["checkpoint"].is_string());
    // Errors still print.
    cplane(t.path())
        .args(["-q", "rollback", "NO-SUCH-CHECKPOINT"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("error:"));
}

#[test]
fn json_usage_error_names_the_argument() {
    let t = plane();
    for (args, kind, argument) in [
        (
            &["--json", "status", "--frobnicate"][..],
            "unknown_argument",
            "--frobnicate",
        ),
        (
            &["status", "--frobnicate", "--json"],
            "unknown_argument",
            "--frobnicate",
        ),
        (&["--json", "diff"], "missing_required_argument", "<A>"),
        (&["--json", "no-such-command"], "invalid_subcommand", "no-such-command"),
        (&["--json", "log", "-n", "many"], "value_validation", "--max-count <N>"),
    ] {
        let out = cplane(t.path()).args(args).assert().code(2).get_output().clone();
        let v = json(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(v["kind"], kind, "{args:?}: {v}");
        assert_eq!(v["argument"], argument, "{args:?}: {v}");
        assert_eq!(v["exit_code"], 2);
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains(argument.trim_start_matches('<').trim_end_matches('>'))
        );
        // clap's own text stays on stderr.
        assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    }
    // Without --json, stdout stays empty.
    cplane(t.path())
        .args(["status", "--frobnicate"])
        .assert()
        .code(2)
        .stdout("");
}

fn plane_names(dir: &Path) -> Vec<String> {
    json(&stdout(dir, &["plane", "list", "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn main_head_has(dir: &Path, path: &str) -> bool {
    cplane(dir)
        .args(["cat", &format!("main:HEAD:{path}")])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn plane_remove_keeps_files_and_archives_history() {
    let t = plane();
    write(t.path(), "docs/guide.md", "# guide\n");
    stdout(t.path(), &["plane", "add", "docs", "docs"]);
    assert!(!main_head_has(t.path(), "docs/guide.md"), "carved out of main");
    let out = stdout(t.path(), &["plane", "remove", "docs"]);
    assert!(out.contains("removed plane docs"), "{out}");
    // Its files stay; plane list no longer lists it.
    assert_eq!(fs::read_to_string(t.path().join("docs/guide.md")).unwrap(), "# guide\n");
    assert_eq!(plane_names(t.path()), ["main"]);
    // Its refs are archived, not deleted.
    let archived: Vec<_> = fs::read_dir(t.path().join(".cp/planes-removed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert!(archived[0].starts_with("docs-"), "{archived:?}");
    assert!(
        t.path()
            .join(".cp/planes-removed")
            .join(&archived[0])
            .join("HEAD")
            .exists()
    );
    assert!(!t.path().join(".cp/planes/docs").exists());
    // main covers docs/ again: its next snapshot records the files.
    assert!(out.contains("main"), "{out}");
    let status = stdout_code(t.path(), &["status"], 1);
    assert!(status.contains("A  docs/guide.md"), "{status}");
    stdout(t.path(), &["snapshot"]);
    assert!(main_head_has(t.path(), "docs/guide.md"));
    // main's ledger records the removal.
    let entries = json(&stdout(t.path(), &["ledger", "--json", "--op", "plane-remove"]));
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    stdout(t.path(), &["ledger", "verify"]);
    stdout(t.path(), &["fsck"]);
}

#[test]
fn plane_remove_delete_history_drops_its_refs() {
    let t = plane();
    write(t.path(), "srv/app.conf", "port=80\n");
    stdout(t.path(), &["plane", "add", "srv", "srv"]);
    let v = json(&stdout(
        t.path(),
        &["plane", "remove", "srv", "--delete-history", "--json"],
    ));
    assert_eq!(v["plane"], "srv");
    assert_eq!(v["archived"], Value::Null);
    assert_eq!(v["parent"], "main");
    assert!(!t.path().join(".cp/planes/srv").exists());
    assert!(!t.path().join(".cp/planes-removed").exists());
    assert_eq!(fs::read_to_string(t.path().join("srv/app.conf")).unwrap(), "port=80\n");
    assert_eq!(plane_names(t.path()), ["main"]);
    stdout(t.path(), &["snapshot"]);
    assert!(main_head_has(t.path(), "srv/app.conf"));
    stdout(t.path(), &["fsck"]);
    // The name can be used again.
    stdout(t.path(), &["plane", "add", "srv", "srv"]);
    assert_eq!(plane_names(t.path()), ["main", "srv"]);
}

#[test]
fn plane_remove_refusals() {
    let t = plane();
    // The only plane.
    let out = cplane(t.path())
        .args(["plane", "remove", "main"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("only plane"), "{out:?}");
    // An unknown plane.
    cplane(t.path()).args(["plane", "remove", "nope"]).assert().code(2);
    assert_eq!(plane_names(t.path()), ["main"]);
}

#[test]
fn plane_remove_refuses_a_plane_with_an_unfinished_checkout() {
    let t = plane();
    write(t.path(), "docs/guide.md", "# guide\n");
    stdout(t.path(), &["plane", "add", "docs", "docs"]);
    stdout(t.path(), &["snapshot", "--name", "base", "--allow-unchanged"]);
    for i in 0..8 {
        write(t.path(), &format!("more/f{i}"), &format!("{i}\n"));
    }
    write(t.path(), "a.txt", "changed\n");
    stdout(t.path(), &["snapshot"]);
    common::kill_after_ops(t.path(), &["rollback", "base"], 1, &[]);
    let out = cplane(t.path())
        .args(["plane", "remove", "main"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not finished"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(plane_names(t.path()), ["main", "docs"]);
    // Any command in the plane finishes the checkout; then main can go. No
    // plane covers its files any more, and the entry is in docs' ledger
    // (the first plane left: main itself is gone).
    stdout(t.path(), &["status"]);
    let v = json(&stdout(t.path(), &["--json", "plane", "remove", "main"]));
    assert_eq!(v["parent"], Value::Null);
    assert_eq!(v["recorded_in"], "docs");
    assert_eq!(plane_names(t.path()), ["docs"]);
    assert_eq!(fs::read_to_string(t.path().join("a.txt")).unwrap(), "alpha\n");
    let entries = json(&stdout(
        &t.path().join("docs"),
        &["ledger", "--json", "--op", "plane-remove"],
    ));
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
}

#[test]
fn trace_perf_times_each_phase_on_stderr_and_is_silent_without_it() {
    let t = plane();
    let restore = |trace: Option<&str>| {
        fs::write(t.path().join("a.txt"), "edited\n").unwrap();
        let mut c = cplane(t.path());
        c.args(["restore", "HEAD", "a.txt"]);
        if let Some(v) = trace {
            c.env("CPLANE_TRACE_PERF", v);
        } else {
            c.env_remove("CPLANE_TRACE_PERF");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(fs::read_to_string(t.path().join("a.txt")).unwrap(), "alpha\n");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (plain_out, plain_err) = restore(None);
    assert!(!plain_err.contains("cplane perf"), "{plain_err}");
    let (off_out, off_err) = restore(Some("0"));
    assert!(!off_err.contains("cplane perf"), "{off_err}");
    let (traced_out, traced_err) = restore(Some("1"));
    // Standard output is the same either way (only the rescue name differs).
    assert_eq!(plain_out.lines().count(), traced_out.lines().count());
    assert_eq!(off_out.lines().count(), traced_out.lines().count());
    let phases: Vec<&str> = traced_err
        .lines()
        .filter_map(|l| l.strip_prefix("cplane perf:"))
        .map(|l| l.rsplit("ms)").next().unwrap().trim())
        .collect();
    for want in [
        "start",
        "restore: rescue sealed",
        "checkout: plan",
        "checkout: apply",
        "done",
    ] {
        assert!(phases.contains(&want), "no {want:?} in {traced_err}");
    }
    assert_eq!(phases.first(), Some(&"start"));
    assert_eq!(phases.last(), Some(&"done"));
}
