//! Governance, tested from the spec (`governance.md`, `src/finding.rs`, the
//! `--help` texts) through the real binary: every finding code on a small
//! governed plane and its repair, strict CSV reading, pass order, snapshot
//! refusing to seal a broken plane, ownership committed to the root, the
//! example control plane, and ungoverned planes left as they were.
//!
//! Fake secrets are built at runtime by concatenation so this file never
//! holds a secret-looking literal.

mod common;

use common::{cplane, write};
use serde_json::Value;
use std::fs;
use std::path::Path;
use tempfile::TempDir;

// ---------------------------------------------------------------- helpers

const FRAMEWORKS: &str = "registries/frameworks_registry.csv";
const SPECS: &str = "registries/specs_registry.csv";
const PACKAGES: &str = "registries/packages_registry.csv";
const COMPILED: &str = "registries/file_ownership_registry.csv";

/// The rules of FMWK-001 in the base plane: one `required_files` gate.
const APP_RULES: &str = r#"{"gates": [{"id": "spec-files", "kind": "required_files", "files": ["README.md"]}]}"#;

/// Runs `cplane ARGS` in `dir`; returns (exit code, stdout, stderr) and
/// fails the test if the binary panicked.
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = cplane(dir).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "cplane {args:?} panicked:\n{stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Runs `cplane ARGS`, which must exit `code`; returns stdout.
fn expect(dir: &Path, args: &[&str], code: i32) -> String {
    let (c, out, err) = run(dir, args);
    assert_eq!(
        c, code,
        "cplane {args:?} exited {c}, want {code}\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

/// `cplane verify --json EXTRA`, which must exit `code`; the parsed document.
fn verify_json(dir: &Path, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["verify", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&expect(dir, &args, code)).unwrap()
}

fn findings(v: &Value) -> &Vec<Value> {
    v["findings"].as_array().expect("verify --json has findings")
}

fn codes(v: &Value) -> Vec<String> {
    findings(v)
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn describe(v: &Value) -> String {
    serde_json::to_string_pretty(&v["findings"]).unwrap()
}

/// The finding with `code` and `path`, which must exist.
fn finding<'a>(v: &'a Value, code: &str, path: &str) -> &'a Value {
    findings(v)
        .iter()
        .find(|f| f["code"] == code && f["path"] == path)
        .unwrap_or_else(|| panic!("no {code} at {path} in:\n{}", describe(v)))
}

/// A fresh plane laid down by `cplane init --governed` (which must verify clean).
fn governed() -> TempDir {
    let t = tempfile::tempdir().unwrap();
    expect(t.path(), &["init", "--governed"], 0);
    t
}

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap()
}

/// Replaces the one occurrence of `from` in `dir/rel` by `to`.
fn edit(dir: &Path, rel: &str, from: &str, to: &str) {
    let body = read(dir, rel);
    assert_eq!(
        body.matches(from).count(),
        1,
        "{from:?} not exactly once in {rel}:\n{body}"
    );
    fs::write(dir.join(rel), body.replacen(from, to, 1)).unwrap();
}

/// Appends one row to the registry `rel`, with cells given by column name
/// (columns not named are empty), in the order of the file's own header
/// (the order of columns is free, `governance.md`).
fn add_row(dir: &Path, rel: &str, cells: &[(&str, &str)]) {
    let mut body = read(dir, rel);
    let header: Vec<&str> = body.lines().next().unwrap().split(',').collect();
    for (k, _) in cells {
        assert!(header.contains(k), "{rel} has no column {k}: {header:?}");
    }
    let row: Vec<&str> = header
        .iter()
        .map(|h| cells.iter().find(|(k, _)| k == h).map_or("", |(_, v)| v))
        .collect();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    body.push_str(&row.join(","));
    body.push('\n');
    fs::write(dir.join(rel), body).unwrap();
}

/// Declares `file` (relative to `dir/registry_dir`) owned by `owner` in that
/// directory's `.file_registry.csv` (created, itself owned by SPEC-000, if absent).
fn own(dir: &Path, registry_dir: &str, file: &str, owner: &str, kind: &str) {
    let reg = if registry_dir.is_empty() {
        ".file_registry.csv".to_string()
    } else {
        format!("{registry_dir}/.file_registry.csv")
    };
    if !dir.join(&reg).exists() {
        write(
            dir,
            &reg,
            "file_path,owner_id,owner_kind\n.file_registry.csv,SPEC-000,spec\n",
        );
    }
    add_row(
        dir,
        &reg,
        &[("file_path", file), ("owner_id", owner), ("owner_kind", kind)],
    );
}

/// Removes the one line equal to `line` from `dir/rel`.
fn drop_line(dir: &Path, rel: &str, line: &str) {
    let body = read(dir, rel);
    let kept: Vec<&str> = body.lines().filter(|l| *l != line).collect();
    assert_eq!(
        kept.len() + 1,
        body.lines().count(),
        "{line:?} not exactly once in {rel}"
    );
    fs::write(dir.join(rel), kept.join("\n") + "\n").unwrap();
}

/// A governed plane with one application framework and spec, sealed and clean:
///
/// * FMWK-001 (rules: gate `spec-files`, required_files README.md) allows
///   entity type `component`, requires metadata `owner`, authorizes `app/**`;
/// * SPEC-001 (component, owner=team) owns `app/main.py` (through
///   `app/.file_registry.csv`);
/// * SPEC-000 owns the framework and spec documents and the registries.
fn app_plane() -> TempDir {
    let t = governed();
    let d = t.path();
    write(d, "frameworks/FMWK-001/framework.md", "# App framework\n");
    write(d, "frameworks/FMWK-001/rules.json", APP_RULES);
    add_row(
        d,
        FRAMEWORKS,
        &[
            ("id", "FMWK-001"),
            ("name", "App"),
            ("version", "1.0"),
            ("purpose", "Application code"),
            ("artifact_path", "frameworks/FMWK-001/framework.md"),
            ("allowed_spec_types", "component"),
            ("required_gates", "spec-files"),
            ("required_metadata", "owner"),
            ("authorizes", "app/**"),
            ("rules_path", "frameworks/FMWK-001/rules.json"),
        ],
    );
    write(d, "specs/SPEC-001/spec.md", "# SPEC-001\n");
    write(d, "specs/SPEC-001/README.md", "# SPEC-001\n\n## Purpose\n\nThe app.\n");
    add_spec(d, "SPEC-001");
    write(d, "app/main.py", "print('hello')\n");
    own(d, "app", "main.py", "SPEC-001", "spec");
    for f in [
        "frameworks/FMWK-001/framework.md",
        "frameworks/FMWK-001/rules.json",
        "specs/SPEC-001/spec.md",
        "specs/SPEC-001/README.md",
    ] {
        own(d, "", f, "SPEC-000", "spec");
    }
    expect(d, &["snapshot"], 0);
    expect(d, &["verify"], 0);
    t
}

/// Adds spec `id` of FMWK-001 (component, owner=team) with document specs/SPEC-001/spec.md.
fn add_spec(d: &Path, id: &str) {
    add_row(
        d,
        SPECS,
        &[
            ("id", id),
            ("framework_id", "FMWK-001"),
            ("entity_type", "component"),
            ("artifact_path", "specs/SPEC-001/spec.md"),
            ("metadata", "owner=team"),
        ],
    );
}

/// Seals the plane as it is now, problems included, by starting the store
/// over with a plain `cplane init` (which adopts the registries, seals, and
/// reports the governance findings with exit 1). Pass 1 is then clean, so a
/// plain `verify` reaches passes 2 and 3.
fn reseal(d: &Path) {
    fs::remove_dir_all(d.join(".cp")).unwrap();
    expect(d, &["init"], 1);
}

// ----------------------------------------------- every finding code, and its repair

struct Case {
    code: &'static str,
    pass: u8,
    /// Where the finding is.
    path: &'static str,
    /// Its owner (spec, package or framework id), when it has one.
    owner: Option<&'static str>,
    breaks: fn(&Path),
    repair: fn(&Path),
}

/// The table: how to trigger each code on [`app_plane`], and how to repair it.
fn case(code: &'static str) -> Case {
    let c = |pass, path, owner, breaks: fn(&Path), repair: fn(&Path)| Case {
        code,
        pass,
        path,
        owner,
        breaks,
        repair,
    };
    match code {
        // ---- pass 0, ownership
        "CP001" => c(
            0,
            "app/extra.py",
            None,
            |d| write(d, "app/extra.py", "x = 1\n"),
            |d| own(d, "app", "extra.py", "SPEC-001", "spec"),
        ),
        "CP002" => c(
            0,
            "app/gone.py",
            Some("SPEC-001"),
            |d| own(d, "app", "gone.py", "SPEC-001", "spec"),
            |d| drop_line(d, "app/.file_registry.csv", "gone.py,SPEC-001,spec"),
        ),
        "CP003" => c(
            0,
            "app/main.py",
            Some("SPEC-001"),
            |d| own(d, "", "app/main.py", "SPEC-001", "spec"),
            |d| drop_line(d, ".file_registry.csv", "app/main.py,SPEC-001,spec"),
        ),
        "CP004" => c(
            0,
            "app/main.py",
            Some("SPEC-404"),
            |d| edit(d, "app/.file_registry.csv", "main.py,SPEC-001", "main.py,SPEC-404"),
            |d| edit(d, "app/.file_registry.csv", "main.py,SPEC-404", "main.py,SPEC-001"),
        ),
        "CP005" => c(
            0,
            SPECS,
            None,
            |d| edit(d, SPECS, "owner=team", "owner=\"team\""),
            |d| edit(d, SPECS, "owner=\"team\"", "owner=team"),
        ),
        "CP006" => c(
            0,
            "app/new.py",
            Some("SPEC-001"),
            |d| {
                write(d, "app/new.py", "y = 2\n");
                own(d, "app", "new.py", "SPEC-001", "spec");
            },
            |d| {
                expect(d, &["compile"], 0);
            },
        ),
        // ---- pass 2, chain
        "CP201" => c(
            2,
            SPECS,
            Some("SPEC-002"),
            |d| {
                add_spec(d, "SPEC-002");
                edit(d, SPECS, "SPEC-002,FMWK-001", "SPEC-002,FMWK-404");
            },
            |d| edit(d, SPECS, "SPEC-002,FMWK-404", "SPEC-002,FMWK-001"),
        ),
        "CP202" => c(
            2,
            SPECS,
            Some("SPEC-001"),
            |d| edit(d, SPECS, "FMWK-001,component", "FMWK-001,service"),
            |d| edit(d, SPECS, "FMWK-001,service", "FMWK-001,component"),
        ),
        "CP203" => c(
            2,
            SPECS,
            Some("SPEC-001"),
            |d| edit(d, SPECS, "owner=team", "team=owner"),
            |d| edit(d, SPECS, "team=owner", "owner=team"),
        ),
        "CP204" => c(
            2,
            "docs/notes.md",
            Some("SPEC-001"),
            |d| {
                write(d, "docs/notes.md", "notes\n");
                own(d, "", "docs/notes.md", "SPEC-001", "spec");
            },
            |d| edit(d, FRAMEWORKS, ",app/**,", ",app/**;docs/*.md,"),
        ),
        "CP205" => c(
            2,
            PACKAGES,
            Some("PKG-001"),
            |d| add_package(d, "SPEC-404", "installed"),
            |d| edit(d, PACKAGES, ",SPEC-404,", ",SPEC-001,"),
        ),
        "CP206" => c(
            2,
            "app/pkg.py",
            Some("PKG-001"),
            |d| {
                add_package(d, "SPEC-001", "uninstalled");
                write(d, "app/pkg.py", "z = 3\n");
                own(d, "app", "pkg.py", "PKG-001", "package");
            },
            |d| edit(d, PACKAGES, ",uninstalled", ",installed"),
        ),
        "CP207" => c(
            2,
            "specs/SPEC-001/missing.md",
            Some("SPEC-001"),
            |d| edit(d, SPECS, "specs/SPEC-001/spec.md", "specs/SPEC-001/missing.md"),
            |d| edit(d, SPECS, "specs/SPEC-001/missing.md", "specs/SPEC-001/spec.md"),
        ),
        "CP208" => c(
            2,
            "app/asset.txt",
            Some("SPEC-001"),
            |d| edit(d, SPECS, "spec.md,,", "spec.md,app/asset.txt,"),
            |d| {
                write(d, "app/asset.txt", "asset\n");
                own(d, "app", "asset.txt", "SPEC-001", "spec");
            },
        ),
        "CP209" => c(
            2,
            "frameworks/FMWK-001/rules.json",
            Some("FMWK-001"),
            |d| {
                edit(
                    d,
                    "frameworks/FMWK-001/rules.json",
                    "{\"gates\"",
                    "{\"colour\": 1, \"gates\"",
                )
            },
            |d| write(d, "frameworks/FMWK-001/rules.json", APP_RULES),
        ),
        "CP210" => c(
            2,
            FRAMEWORKS,
            Some("FMWK-001"),
            |d| edit(d, FRAMEWORKS, ",spec-files,", ",spec-files;no-such-gate,"),
            |d| edit(d, FRAMEWORKS, ",spec-files;no-such-gate,", ",spec-files,"),
        ),
        // ---- pass 3, gates
        "CP301" => c(
            3,
            "app/config.py",
            Some("SPEC-001"),
            |d| {
                add_gate(
                    d,
                    r#"{"id": "no-secrets", "kind": "forbidden_content", "default_secrets": true}"#,
                );
                write(d, "app/config.py", &format!("KEY = '{}'\n", fake_aws_key()));
                own(d, "app", "config.py", "SPEC-001", "spec");
            },
            |d| write(d, "app/config.py", "KEY = os.environ['KEY']\n"),
        ),
        "CP302" => c(
            3,
            "app/big.py",
            Some("SPEC-001"),
            |d| {
                add_gate(d, r#"{"id": "size", "kind": "max_size", "max_bytes": 100}"#);
                write(d, "app/big.py", &format!("# {}\n", "x".repeat(200)));
                own(d, "app", "big.py", "SPEC-001", "spec");
            },
            |d| write(d, "app/big.py", "# small\n"),
        ),
        "CP303" => c(
            3,
            "app/long.py",
            Some("SPEC-001"),
            |d| {
                add_gate(d, r#"{"id": "lines", "kind": "max_size", "max_lines": 5}"#);
                write(d, "app/long.py", &"pass\n".repeat(10));
                own(d, "app", "long.py", "SPEC-001", "spec");
            },
            |d| write(d, "app/long.py", &"pass\n".repeat(5)),
        ),
        "CP304" => c(
            3,
            "app/README.md",
            Some("SPEC-001"),
            |d| {
                add_gate(
                    d,
                    r#"{"id": "readme", "kind": "readme_sections", "sections": ["Purpose", "Usage"], "paths": ["**/README.md"]}"#,
                );
                write(d, "app/README.md", "# App\n\n## Purpose\n\nIt runs.\n");
                own(d, "app", "README.md", "SPEC-001", "spec");
            },
            |d| {
                write(
                    d,
                    "app/README.md",
                    "# App\n\n## Purpose\n\nIt runs.\n\n##  usage \n\nRun it.\n",
                )
            },
        ),
        "CP305" => c(
            3,
            "specs/SPEC-001/README.md",
            Some("SPEC-001"),
            |d| {
                fs::remove_file(d.join("specs/SPEC-001/README.md")).unwrap();
                drop_line(d, ".file_registry.csv", "specs/SPEC-001/README.md,SPEC-000,spec");
            },
            |d| {
                write(d, "specs/SPEC-001/README.md", "# SPEC-001\n");
                own(d, "", "specs/SPEC-001/README.md", "SPEC-000", "spec");
            },
        ),
        "CP306" => c(
            3,
            "app/main.py",
            Some("SPEC-001"),
            |d| {
                add_gate(
                    d,
                    r#"{"id": "layout", "kind": "allowed_paths", "globs": ["app/src/**", "app/*.csv"]}"#,
                );
            },
            |d| {
                fs::create_dir_all(d.join("app/src")).unwrap();
                fs::rename(d.join("app/main.py"), d.join("app/src/main.py")).unwrap();
                edit(d, "app/.file_registry.csv", "main.py,", "src/main.py,");
            },
        ),
        other => panic!("no case for {other}"),
    }
}

/// Adds package PKG-001 of FMWK-001 implementing `spec`.
fn add_package(d: &Path, spec: &str, status: &str) {
    add_row(
        d,
        PACKAGES,
        &[
            ("id", "PKG-001"),
            ("version", "1.0"),
            ("spec_id", spec),
            ("framework_id", "FMWK-001"),
            ("status", status),
        ],
    );
}

/// Adds `gate` (JSON) to FMWK-001's rules and to its required gates.
fn add_gate(d: &Path, gate: &str) {
    let id = serde_json::from_str::<Value>(gate).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rules = read(d, "frameworks/FMWK-001/rules.json");
    let at = rules.rfind(']').unwrap();
    fs::write(
        d.join("frameworks/FMWK-001/rules.json"),
        format!("{}, {gate}{}", &rules[..at], &rules[at..]),
    )
    .unwrap();
    edit(d, FRAMEWORKS, ",spec-files,", &format!(",spec-files;{id},"));
}

/// Triggers the case's code on a clean plane, checks the finding in
/// `verify --json` (exit 1, only findings of its pass), repairs, seals and
/// checks that `verify` exits 0.
fn check_case(code: &'static str) {
    let case = case(code);
    let t = app_plane();
    let d = t.path();
    (case.breaks)(d);
    if case.pass > 0 {
        reseal(d);
    }
    let v = verify_json(d, &[], 1);
    assert_eq!(v["clean"], false);
    let f = finding(&v, case.code, case.path);
    assert_eq!(f["pass"], case.pass, "{}", describe(&v));
    match case.owner {
        Some(o) => assert_eq!(f["owner"], o, "{}", describe(&v)),
        None => assert!(f["owner"].is_null(), "{}", describe(&v)),
    }
    assert!(!f["message"].as_str().unwrap().is_empty());
    assert!(!f["remedy"].as_str().unwrap().is_empty());
    for other in findings(&v) {
        assert_eq!(
            other["pass"],
            case.pass,
            "verify went past the failing pass: {}",
            describe(&v)
        );
    }
    let passes = v["passes"].as_array().unwrap();
    for p in passes {
        let n = p["pass"].as_u64().unwrap();
        assert_eq!(p["ran"], n <= u64::from(case.pass), "{p}");
    }
    (case.repair)(d);
    expect(d, &["snapshot"], 0);
    let v = verify_json(d, &[], 0);
    assert_eq!(v["clean"], true, "{}", describe(&v));
    expect(d, &["verify", "--all-passes"], 0);
}

macro_rules! code_tests {
    ($($(#[$attr:meta])* $name:ident => $code:literal;)*) => {
        $( $(#[$attr])* #[test] fn $name() { check_case($code); } )*
    };
}

code_tests! {
    cp001_unmapped_file => "CP001";
    cp002_declared_but_missing => "CP002";
    cp003_two_owners => "CP003";
    cp004_unknown_owner => "CP004";
    cp005_bad_registry => "CP005";
    cp006_stale_compiled => "CP006";
    cp201_unknown_framework => "CP201";
    cp202_entity_type_not_allowed => "CP202";
    cp203_metadata_missing => "CP203";
    cp204_not_authorized => "CP204";
    cp205_package_chain => "CP205";
    cp206_package_not_installed => "CP206";
    cp207_artifact_missing => "CP207";
    cp208_required_asset_missing => "CP208";
    cp209_bad_rules => "CP209";
    cp210_unknown_gate => "CP210";
    cp301_forbidden_content => "CP301";
    cp302_too_large => "CP302";
    cp303_too_many_lines => "CP303";
    cp304_readme_section_missing => "CP304";
    cp305_required_file_missing => "CP305";
    cp306_path_not_allowed => "CP306";
}

// ------------------------------------------------------------ fake secrets

/// An AWS access key id (AKIA + 16 upper-case letters and digits), built at runtime.
fn fake_aws_key() -> String {
    ["AK", "IA", "QWERTYUIOP", "ASDFGH"].concat()
}

/// A GitHub personal access token shape (ghp_ + 36), built at runtime.
fn fake_github_token() -> String {
    ["gh", "p_", &"a1B2c3D4e5".repeat(3), "F6g7H8"].concat()
}

/// A Slack bot token shape, built at runtime.
fn fake_slack_token() -> String {
    [
        "xo",
        "xb-",
        "123456789012",
        "-",
        "1234567890123",
        "-",
        "AbCdEfGhIjKlMnOpQrStUvWx",
    ]
    .concat()
}

/// An Anthropic API key shape, built at runtime.
fn fake_anthropic_key() -> String {
    ["sk", "-ant-", "api03-", &"Ab1Cd2Ef3Gh4".repeat(8), "-AbCdEf"].concat()
}

/// An OpenAI API key shape (sk- + 48), built at runtime.
fn fake_openai_key() -> String {
    ["sk", "-", &"Ab1Cd2Ef3G".repeat(4), "h4Ij5Kl6"].concat()
}

/// A private-key PEM block, built at runtime.
fn fake_pem() -> String {
    let dashes = "-".repeat(5);
    format!(
        "{dashes}BEGIN RSA {k}{dashes}\nMIIEowIBAAKCAQEA{body}\n{dashes}END RSA {k}{dashes}\n",
        k = ["PRIVATE", " KEY"].concat(),
        body = "q".repeat(48)
    )
}

/// A hard-coded password assignment, built at runtime.
fn fake_password() -> String {
    format!(
        "{} = \"{}\"",
        ["pass", "word"].concat(),
        ["hunter", "2hunter2"].concat()
    )
}

/// Every default secret kind `governance.md` promises is found by a
/// `forbidden_content` gate with `default_secrets`, each in its own file;
/// a file without secrets (and a binary file holding one) is not reported.
#[test]
fn cp301_every_default_secret_kind() {
    let t = app_plane();
    let d = t.path();
    add_gate(
        d,
        r#"{"id": "no-secrets", "kind": "forbidden_content", "default_secrets": true}"#,
    );
    let secrets = [
        ("pem.txt", fake_pem()),
        ("aws.py", format!("KEY = '{}'\n", fake_aws_key())),
        ("github.py", format!("TOKEN = '{}'\n", fake_github_token())),
        ("slack.py", format!("TOKEN = '{}'\n", fake_slack_token())),
        ("anthropic.py", format!("KEY = '{}'\n", fake_anthropic_key())),
        ("openai.py", format!("KEY = '{}'\n", fake_openai_key())),
        ("password.cfg", format!("{}\n", fake_password())),
    ];
    for (name, body) in &secrets {
        write(d, &format!("app/{name}"), body);
        own(d, "app", name, "SPEC-001", "spec");
    }
    let mut bin = b"\0\x01binary ".to_vec();
    bin.extend_from_slice(fake_aws_key().as_bytes());
    fs::write(d.join("app/blob.bin"), bin).unwrap();
    own(d, "app", "blob.bin", "SPEC-001", "spec");
    reseal(d);
    let v = verify_json(d, &[], 1);
    for (name, _) in &secrets {
        let f = finding(&v, "CP301", &format!("app/{name}"));
        assert_eq!(f["owner"], "SPEC-001");
    }
    assert_eq!(codes(&v), vec!["CP301"; secrets.len()], "{}", describe(&v));
    assert!(v["stats"]["binary_skipped"].as_u64().unwrap() >= 1, "{v}");
}

/// A framework's own named pattern is enforced, and only on the gate's `paths`.
#[test]
fn cp301_custom_pattern_with_paths() {
    let t = app_plane();
    let d = t.path();
    add_gate(
        d,
        r#"{"id": "hosts", "kind": "forbidden_content", "patterns": [{"name": "internal-host", "regex": "corp\\.internal"}], "paths": ["app/*.py"]}"#,
    );
    write(d, "app/net.py", "HOST = 'db.corp.internal'\n");
    own(d, "app", "net.py", "SPEC-001", "spec");
    write(d, "app/notes.txt", "see db.corp.internal\n");
    own(d, "app", "notes.txt", "SPEC-001", "spec");
    reseal(d);
    let v = verify_json(d, &[], 1);
    finding(&v, "CP301", "app/net.py");
    assert_eq!(codes(&v), ["CP301"], "{}", describe(&v));
}

// ------------------------------------------------- more variants of some codes

/// CP006 also covers a compiled registry that is missing altogether.
#[test]
fn cp006_compiled_registry_missing() {
    let t = app_plane();
    let d = t.path();
    fs::remove_file(d.join(COMPILED)).unwrap();
    let v = verify_json(d, &[], 1);
    let f = finding(&v, "CP006", COMPILED);
    assert_eq!(f["pass"], 0);
    expect(d, &["compile"], 0);
    assert!(d.join(COMPILED).exists());
    expect(d, &["verify"], 0);
}

/// CP207 for a framework's document names the framework.
#[test]
fn cp207_framework_artifact_missing() {
    let t = app_plane();
    let d = t.path();
    edit(
        d,
        FRAMEWORKS,
        "frameworks/FMWK-001/framework.md",
        "frameworks/FMWK-001/gone.md",
    );
    reseal(d);
    let v = verify_json(d, &[], 1);
    assert_eq!(finding(&v, "CP207", "frameworks/FMWK-001/gone.md")["owner"], "FMWK-001");
}

/// CP210 for a gate named by a spec names the spec.
#[test]
fn cp210_spec_names_unknown_gate() {
    let t = app_plane();
    let d = t.path();
    edit(d, SPECS, "spec.md,,,owner=team", "spec.md,,no-such-gate,owner=team");
    reseal(d);
    let v = verify_json(d, &[], 1);
    assert_eq!(finding(&v, "CP210", SPECS)["owner"], "SPEC-001");
}

/// CP209: an unknown key in a rules file names the file, line and column.
#[test]
fn cp209_unknown_key_names_line_and_column() {
    let t = app_plane();
    let d = t.path();
    write(
        d,
        "frameworks/FMWK-001/rules.json",
        "{\n  \"gates\": [],\n  \"colour\": 1\n}\n",
    );
    reseal(d);
    let v = verify_json(d, &[], 1);
    let msg = finding(&v, "CP209", "frameworks/FMWK-001/rules.json")["message"]
        .as_str()
        .unwrap()
        .to_string();
    // `FILE:LINE:COLUMN` or words: either way line 3 and its column.
    assert!(
        msg.contains("rules.json:3:") || msg.contains("line 3") && msg.contains("column"),
        "{msg}"
    );
    assert!(msg.contains("colour"), "{msg}");
}

/// CP209: a rules file that is missing.
#[test]
fn cp209_rules_file_missing() {
    let t = app_plane();
    let d = t.path();
    edit(
        d,
        FRAMEWORKS,
        "frameworks/FMWK-001/rules.json",
        "frameworks/FMWK-001/none.json",
    );
    reseal(d);
    let v = verify_json(d, &[], 1);
    assert_eq!(
        finding(&v, "CP209", "frameworks/FMWK-001/none.json")["owner"],
        "FMWK-001"
    );
}

// ------------------------------------------------------------ malformed CSV

/// How to spoil a registry, the line the finding must name (None: the file
/// as a whole, e.g. an empty one), and the code.
struct Bad {
    name: &'static str,
    file: &'static str,
    spoil: fn(&Path),
    line: Option<u32>,
    code: &'static str,
}

fn bad_cases() -> Vec<Bad> {
    vec![
        Bad {
            name: "missing column",
            file: SPECS,
            spoil: |d| {
                let body = read(d, SPECS);
                // Drop the `metadata` column (the last one of the genesis header
                // or not: remove it by name from the header and each row).
                let header: Vec<&str> = body.lines().next().unwrap().split(',').collect();
                let at = header.iter().position(|h| *h == "metadata").unwrap();
                let out: Vec<String> = body
                    .lines()
                    .map(|l| {
                        let mut cells: Vec<&str> = l.split(',').collect();
                        cells.remove(at);
                        cells.join(",")
                    })
                    .collect();
                fs::write(d.join(SPECS), out.join("\n") + "\n").unwrap();
            },
            line: Some(1),
            code: "CP005",
        },
        Bad {
            name: "unknown column",
            file: FRAMEWORKS,
            spoil: |d| {
                let body = read(d, FRAMEWORKS);
                let out: Vec<String> = body
                    .lines()
                    .enumerate()
                    .map(|(i, l)| format!("{l},{}", if i == 0 { "colour" } else { "blue" }))
                    .collect();
                fs::write(d.join(FRAMEWORKS), out.join("\n") + "\n").unwrap();
            },
            line: Some(1),
            code: "CP005",
        },
        Bad {
            name: "duplicate id",
            file: SPECS,
            spoil: |d| {
                let body = read(d, SPECS);
                let row = body.lines().nth(1).unwrap().to_string();
                fs::write(d.join(SPECS), format!("{body}{row}\n")).unwrap();
            },
            line: Some(3),
            code: "CP005",
        },
        Bad {
            name: "duplicate column",
            file: PACKAGES,
            spoil: |d| {
                let body = read(d, PACKAGES);
                let header = body.lines().next().unwrap();
                fs::write(d.join(PACKAGES), format!("{header},status\n")).unwrap();
            },
            line: Some(1),
            code: "CP005",
        },
        Bad {
            name: "dangling foreign key",
            file: SPECS,
            spoil: |d| {
                let body = read(d, SPECS);
                let row = body
                    .lines()
                    .nth(1)
                    .unwrap()
                    .replace("SPEC-000,FMWK-000", "SPEC-009,FMWK-404");
                fs::write(d.join(SPECS), format!("{body}{row}\n")).unwrap();
            },
            line: Some(3),
            code: "CP201",
        },
        Bad {
            name: "byte-order mark",
            file: FRAMEWORKS,
            spoil: |d| {
                let body = read(d, FRAMEWORKS);
                fs::write(d.join(FRAMEWORKS), format!("\u{feff}{body}")).unwrap();
            },
            line: Some(1),
            code: "CP005",
        },
        Bad {
            name: "CRLF line ends",
            file: SPECS,
            spoil: |d| {
                let body = read(d, SPECS).replace('\n', "\r\n");
                fs::write(d.join(SPECS), body).unwrap();
            },
            line: Some(1),
            code: "CP005",
        },
        Bad {
            name: "CR in the last row only",
            file: ".file_registry.csv",
            spoil: |d| {
                let mut body = read(d, ".file_registry.csv");
                body.pop();
                body.push_str("\r\n");
                fs::write(d.join(".file_registry.csv"), body).unwrap();
            },
            line: Some(9),
            code: "CP005",
        },
        Bad {
            name: "quoted cell",
            file: ".file_registry.csv",
            spoil: |d| {
                let body = read(d, ".file_registry.csv").replacen(
                    "\nspecs/SPEC-000/spec.md,",
                    "\n\"specs/SPEC-000/spec.md\",",
                    1,
                );
                fs::write(d.join(".file_registry.csv"), body).unwrap();
            },
            line: Some(9),
            code: "CP005",
        },
        Bad {
            name: "blank line",
            file: SPECS,
            spoil: |d| {
                let body = read(d, SPECS);
                let (h, rest) = body.split_once('\n').unwrap();
                fs::write(d.join(SPECS), format!("{h}\n\n{rest}")).unwrap();
            },
            line: Some(2),
            code: "CP005",
        },
        Bad {
            name: "short row",
            file: PACKAGES,
            spoil: |d| {
                let body = read(d, PACKAGES);
                fs::write(d.join(PACKAGES), format!("{body}PKG-001,1.0\n")).unwrap();
            },
            line: Some(2),
            code: "CP005",
        },
        Bad {
            name: "empty file",
            file: SPECS,
            spoil: |d| fs::write(d.join(SPECS), "").unwrap(),
            line: None,
            code: "CP005",
        },
        Bad {
            name: "10 MB cell",
            file: SPECS,
            spoil: |d| {
                let body = read(d, SPECS);
                let row = body.lines().nth(1).unwrap().replace("SPEC-000,", "SPEC-001,");
                let big = format!("{row}note={}", "x".repeat(10 << 20));
                fs::write(d.join(SPECS), format!("{body}{big}\n")).unwrap();
            },
            line: Some(3),
            code: "CP005",
        },
    ]
}

/// Each malformed registry is one finding naming the file and the line, in
/// one short sentence; never a panic. A CP005 also makes compile refuse,
/// writing nothing.
#[test]
fn malformed_csv_is_one_finding_naming_file_and_line() {
    for bad in bad_cases() {
        let t = governed();
        let d = t.path();
        let compiled_before = fs::read(d.join(COMPILED)).unwrap();
        (bad.spoil)(d);
        let v = verify_json(d, &["--all-passes"], 1);
        let hits: Vec<&Value> = findings(&v).iter().filter(|f| f["path"] == bad.file).collect();
        assert!(
            hits.iter().any(|f| f["code"] == bad.code),
            "{}: no {} at {} in:\n{}",
            bad.name,
            bad.code,
            bad.file,
            describe(&v)
        );
        let f = hits.iter().find(|f| f["code"] == bad.code).unwrap();
        let msg = f["message"].as_str().unwrap();
        assert!(
            !msg.contains('\n') && msg.len() < 500,
            "{}: not one short line: {msg:.600}",
            bad.name
        );
        if let Some(n) = bad.line {
            assert!(
                msg.starts_with(&format!("line {n}:")) || msg.contains(&format!("line {n} ")),
                "{}: message does not name line {n}: {msg}",
                bad.name
            );
        }
        // The text report names the file on the finding's line.
        let (code, text, _) = run(d, &["verify", "--all-passes"]);
        assert_eq!(code, 1, "{}", bad.name);
        assert!(
            text.lines().any(|l| l.contains(bad.code) && l.contains(bad.file)),
            "{}: text report does not name {}:\n{text:.2000}",
            bad.name,
            bad.file
        );
        if bad.code == "CP005" {
            let (code, _, err) = run(d, &["compile"]);
            assert_eq!(code, 1, "{}: compile must refuse", bad.name);
            assert!(err.contains("CP005"), "{}: {err}", bad.name);
            assert_eq!(
                fs::read(d.join(COMPILED)).unwrap(),
                compiled_before,
                "{}: compile wrote",
                bad.name
            );
        }
    }
}

/// compile refuses two owners (CP003) too, writing nothing, and `--json`
/// names the finding.
#[test]
fn compile_refuses_two_owners_writing_nothing() {
    let t = app_plane();
    let d = t.path();
    write(d, "app/extra.py", "x = 1\n");
    own(d, "app", "extra.py", "SPEC-001", "spec");
    own(d, "", "app/extra.py", "SPEC-001", "spec");
    let before = fs::read(d.join(COMPILED)).unwrap();
    let (code, out, _) = run(d, &["compile", "--json"]);
    assert_eq!(code, 1);
    assert!(out.contains("CP003") && out.contains("app/extra.py"), "{out}");
    assert_eq!(fs::read(d.join(COMPILED)).unwrap(), before);
}

/// compile writes a sorted registry with one row per owned file and the
/// files' BLAKE3; running it again changes nothing.
#[test]
fn compile_writes_sorted_deterministic_registry() {
    let t = app_plane();
    let d = t.path();
    for name in ["zz.py", "a.py", "M.py", "b/c.py"] {
        write(d, &format!("app/{name}"), name);
        own(d, "app", name, "SPEC-001", "spec");
    }
    expect(d, &["compile"], 0);
    let first = fs::read(d.join(COMPILED)).unwrap();
    let text = String::from_utf8(first.clone()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("path,owner_id,owner_kind,blake3"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let paths: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    let mut sorted = paths.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(paths, sorted);
    for r in &rows {
        if r[0] == COMPILED {
            assert_eq!(r[3], "", "the compiled registry's own row has no hash");
        } else {
            let want = blake3::hash(&fs::read(d.join(r[0])).unwrap()).to_hex().to_string();
            assert_eq!(r[3], want, "{}", r[0]);
        }
    }
    assert!(paths.contains(&"app/b/c.py") && paths.contains(&"app/M.py"));
    expect(d, &["compile"], 0);
    assert_eq!(fs::read(d.join(COMPILED)).unwrap(), first);
}

// ------------------------------------------------------------ pass order

/// A plane with a pass-0 problem (an unmapped file) and a pass-2 problem (an
/// entity type the framework does not allow): verify stops after pass 0;
/// with `--all-passes` it reports both.
#[test]
fn verify_stops_after_first_failing_pass_unless_all_passes() {
    let t = app_plane();
    let d = t.path();
    edit(d, SPECS, "FMWK-001,component", "FMWK-001,service");
    reseal(d);
    write(d, "app/stray.txt", "stray\n");

    let v = verify_json(d, &[], 1);
    finding(&v, "CP001", "app/stray.txt");
    assert!(findings(&v).iter().all(|f| f["pass"] == 0), "{}", describe(&v));
    let ran: Vec<bool> = v["passes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ran"] == true)
        .collect();
    assert_eq!(ran, [true, false, false, false]);

    let v = verify_json(d, &["--all-passes"], 1);
    finding(&v, "CP001", "app/stray.txt");
    assert_eq!(finding(&v, "CP202", SPECS)["owner"], "SPEC-001");
    let passes = v["passes"].as_array().unwrap();
    assert!(passes.iter().all(|p| p["ran"] == true), "{v}");
    let count = |n: u64| {
        passes.iter().find(|p| p["pass"] == n).unwrap()["findings"]
            .as_u64()
            .unwrap()
    };
    assert!(count(0) >= 1 && count(2) >= 1, "{v}");
    // The text report says which passes did not run.
    let text = expect(d, &["verify"], 1);
    assert!(
        text.lines().any(|l| l.starts_with("pass 2") && l.contains("not run")),
        "{text}"
    );
}

// ------------------------------------------------------------ snapshot fails closed

/// `cplane show HEAD --json` and `cplane log`, to compare before and after.
fn head_and_log(d: &Path) -> (String, String) {
    (expect(d, &["show", "HEAD", "--json"], 0), expect(d, &["log"], 0))
}

fn snapshot_refused_then_sealed(breaks: fn(&Path), repair: fn(&Path), code: &str) {
    let t = app_plane();
    let d = t.path();
    let before = head_and_log(d);
    breaks(d);
    let (c, out, err) = run(d, &["snapshot"]);
    assert_eq!(c, 1, "snapshot must refuse:\n{out}\n{err}");
    assert!(
        err.contains(code) || out.contains(code),
        "refusal does not name {code}:\n{out}\n{err}"
    );
    assert_eq!(head_and_log(d), before, "a refused snapshot moved HEAD or the log");
    let (c, out, _) = run(d, &["snapshot", "--json"]);
    assert_eq!(c, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["code"] == code)),
        "{v}"
    );
    assert_eq!(head_and_log(d), before);
    repair(d);
    let out = expect(d, &["snapshot"], 0);
    let after = head_and_log(d);
    if out.contains("unchanged since HEAD") {
        // The repair put the tree back exactly as HEAD has it: nothing to record.
        assert_eq!(after, before, "an unchanged snapshot moved HEAD or the log");
    } else {
        assert_ne!(after.0, before.0, "HEAD did not move after the repair");
    }
    expect(d, &["verify"], 0);
}

#[test]
fn snapshot_refuses_unmapped_file() {
    snapshot_refused_then_sealed(case("CP001").breaks, case("CP001").repair, "CP001");
}

#[test]
fn snapshot_refuses_chain_finding() {
    snapshot_refused_then_sealed(case("CP202").breaks, case("CP202").repair, "CP202");
}

#[test]
fn snapshot_refuses_unknown_owner() {
    snapshot_refused_then_sealed(case("CP004").breaks, case("CP004").repair, "CP004");
}

#[test]
fn snapshot_refuses_required_file_missing() {
    snapshot_refused_then_sealed(case("CP305").breaks, case("CP305").repair, "CP305");
}

/// A refused snapshot writes nothing in the plane either: the compiled
/// registry is left as it was.
#[test]
fn refused_snapshot_leaves_compiled_registry_alone() {
    let t = app_plane();
    let d = t.path();
    let before = fs::read(d.join(COMPILED)).unwrap();
    write(d, "app/new.py", "n = 1\n");
    own(d, "app", "new.py", "SPEC-001", "spec");
    edit(d, SPECS, "FMWK-001,component", "FMWK-001,service");
    expect(d, &["snapshot"], 1);
    assert_eq!(fs::read(d.join(COMPILED)).unwrap(), before);
}

// ------------------------------------------------------------ ownership commits to the root

fn root_of_head(d: &Path) -> String {
    let v: Value = serde_json::from_str(&expect(d, &["show", "HEAD", "--json"], 0)).unwrap();
    v["root"].as_str().unwrap().to_string()
}

/// Moving a file to another spec of an authorizing framework, and nothing
/// else, seals a different root, and the sealed compiled registry names the
/// new owner.
#[test]
fn changing_only_an_owner_changes_the_root() {
    let t = app_plane();
    let d = t.path();
    add_spec(d, "SPEC-002");
    expect(d, &["snapshot"], 0);
    let root = root_of_head(d);
    let main_py = fs::read(d.join("app/main.py")).unwrap();
    edit(d, "app/.file_registry.csv", "main.py,SPEC-001,", "main.py,SPEC-002,");
    expect(d, &["snapshot"], 0);
    expect(d, &["verify"], 0);
    assert_ne!(root_of_head(d), root);
    assert_eq!(fs::read(d.join("app/main.py")).unwrap(), main_py);
    let sealed = expect(d, &["cat", &format!("HEAD:{COMPILED}")], 0);
    assert!(
        sealed.lines().any(|l| l.starts_with("app/main.py,SPEC-002,spec,")),
        "{sealed}"
    );
}

// ------------------------------------------------------------ the example control plane

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ty.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), dest).unwrap();
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn example_control_plane_verifies_clean_after_init() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("cp");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/control-plane"),
        &d,
    );
    assert!(!d.join(".cp").exists());
    expect(&d, &["init"], 0);
    let v = verify_json(&d, &[], 0);
    assert_eq!(v["governed"], true);
    assert_eq!(v["clean"], true);
    for plane in ["ho1", "ho2"] {
        let v = verify_json(&d, &["--plane", plane], 0);
        assert_eq!(v["plane"], plane);
        assert_eq!(v["governed"], true, "{plane} is governed on its own");
        expect(&d, &["verify", "--all-passes", "--plane", plane], 0);
    }
    let list: Value = serde_json::from_str(&expect(&d, &["plane", "list", "--json"], 0)).unwrap();
    let planes: Vec<(String, Value, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["tier"].clone(),
                p["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let names: Vec<&str> = planes.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["main", "ho1", "ho2"], "{list}");
    // Tiers come from registries/planes_registry.csv.
    let registry = read(&d, "registries/planes_registry.csv");
    for line in registry.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let p = planes
            .iter()
            .find(|p| p.0 == cells[0])
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(p.1, cells[2], "tier of {}", cells[0]);
        assert_eq!(p.2, cells[1], "path of {}", cells[0]);
    }
    // A second snapshot of each plane seals too (nothing to refuse).
    for plane in ["main", "ho1", "ho2"] {
        expect(&d, &["snapshot", "--plane", plane], 0);
    }
}

// ------------------------------------------------------------ ungoverned planes

/// A plane without registries: verify has no pass lines and its JSON no
/// `passes` key; snapshot and compile behave as before governance.
#[test]
fn plane_without_registries_is_ungoverned() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "a\n");
    write(d, "dir/b.txt", "b\n");
    expect(d, &["init"], 0);
    assert!(
        !d.join("registries").exists(),
        "plain init must not lay down registries"
    );
    let text = expect(d, &["verify"], 0);
    assert!(!text.lines().any(|l| l.starts_with("pass ")), "{text}");
    let v = verify_json(d, &[], 0);
    assert!(v.get("passes").is_none(), "{v}");
    assert_ne!(v["governed"], true, "{v}");
    // A stray file is a plain content finding, not CP001.
    write(d, "c.txt", "c\n");
    let v = verify_json(d, &[], 1);
    assert_eq!(codes(&v), ["CP102"], "{v}");
    assert!(v.get("passes").is_none(), "{v}");
    let text = expect(d, &["verify"], 1);
    assert!(!text.lines().any(|l| l.starts_with("pass ")), "{text}");
    expect(d, &["snapshot"], 0);
    expect(d, &["verify"], 0);
    assert!(!d.join(COMPILED).exists());
}

/// `init --governed` lays the genesis down only in a tree without
/// registries: on a tree that has them it never overwrites them (it refuses
/// or adopts them as they are).
#[test]
fn init_governed_never_overwrites_existing_registries() {
    let t = app_plane();
    let d = t.path();
    fs::remove_dir_all(d.join(".cp")).unwrap();
    let before: Vec<Vec<u8>> = [FRAMEWORKS, SPECS, PACKAGES, ".file_registry.csv"]
        .iter()
        .map(|f| fs::read(d.join(f)).unwrap())
        .collect();
    let (code, out, err) = run(d, &["init", "--governed"]);
    assert!(code == 0 || code == 2, "exit {code}\n{out}\n{err}");
    let after: Vec<Vec<u8>> = [FRAMEWORKS, SPECS, PACKAGES, ".file_registry.csv"]
        .iter()
        .map(|f| fs::read(d.join(f)).unwrap())
        .collect();
    assert!(before == after, "init --governed rewrote the registries");
    if code == 0 {
        expect(d, &["verify"], 0);
    }
}
