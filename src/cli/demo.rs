//! `cplane demo`: the main job end to end on an embedded example plane.

use super::{CmdResult, Ctx};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Run the main job end to end on example trees: the store, then governance
///
/// Part 1 builds a small example plane in a temporary directory and runs the
/// real `cplane` binary on it, printing each command and its output: init,
/// snapshot, then edits, a chmod and an empty directory; status, verify and
/// diff report them; `cat` reads an old version, `restore` puts one file
/// back, `rollback` puts back everything; verify, diff, log and fsck
/// confirm. Part 2 copies the governed example control plane
/// (examples/control-plane: frameworks, specs, registries, planes ho1 and
/// ho2) and shows governance: init adopts it and verifies clean; an
/// unmapped file fails pass 0 (CP001) until `own` gives it an owner; a
/// planted secret fails its gate (CP301) and snapshot refuses; removing it
/// lets the snapshot seal; `explain` shows the file's whole chain. Exits 0
/// when every step behaved as expected.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Keep the example directory instead of deleting it
    #[arg(long)]
    pub keep: bool,
}

/// The embedded example plane: (path, contents, executable).
const EXAMPLE: &[(&str, &str, bool)] = &[
    ("README.md", "# example control plane\n\nGoverned by cplane.\n", false),
    ("config/app.toml", "[server]\nport = 8080\nworkers = 4\n", false),
    ("config/limits.toml", "[limits]\nmax_agents = 16\n", false),
    ("lib/agent.py", "def run(task):\n    return task.upper()\n", false),
    ("lib/policy.py", "ALLOWED = {'read', 'write'}\n", false),
    ("scripts/deploy.sh", "#!/bin/sh\nset -eu\necho deploying\n", true),
    (
        "docs/guide.md",
        "# Guide\n\nRun `cplane verify` before every deploy.\n",
        false,
    ),
];

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/control_plane.rs"));
}

fn write_control_plane(root: &Path) -> std::io::Result<()> {
    for (path, body, mode) in embedded::CONTROL_PLANE {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("example paths have a parent"))?;
        std::fs::write(&p, body)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}

fn write_hello_package(root: &Path) -> std::io::Result<()> {
    for (path, body, mode) in embedded::HELLO_PACKAGE {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("package paths have a parent"))?;
        std::fs::write(&p, body)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}

fn write_example(root: &Path) -> std::io::Result<()> {
    for (path, body, exec) in EXAMPLE {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("example paths have a parent"))?;
        std::fs::write(&p, body)?;
        if *exec {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    std::os::unix::fs::symlink("guide.md", root.join("docs/latest.md"))?;
    std::fs::create_dir(root.join("cache"))?;
    std::fs::write(root.join("config/secrets.env"), "TOKEN=redacted\n")?;
    std::fs::set_permissions(root.join("config/secrets.env"), std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

pub fn cmd_demo(ctx: &mut Ctx, args: DemoArgs) -> CmdResult {
    let exe = std::env::current_exe()?;
    let tmp = tempfile::Builder::new().prefix("cplane-demo-").tempdir()?;
    let root = tmp.path().join("plane");
    std::fs::create_dir(&root)?;
    write_example(&root)?;
    writeln!(ctx.out, "# example plane in {}", root.display())?;
    let mut failures = Vec::new();
    // One step: run the real binary in `dir`, print what it printed, note a surprise.
    let mut run = |ctx: &mut Ctx, dir: &Path, argv: &[&str], expect: i32| -> std::io::Result<()> {
        writeln!(ctx.out, "\n$ cplane {}", argv.join(" "))?;
        let out = Command::new(&exe).args(argv).current_dir(dir).output()?;
        ctx.out.write_all(&out.stdout)?;
        ctx.out.write_all(&out.stderr)?;
        let code = out.status.code().unwrap_or(-1);
        writeln!(ctx.out, "[exit {code}]")?;
        if code != expect {
            failures.push(format!("`cplane {}` exited {code}, expected {expect}", argv.join(" ")));
        }
        Ok(())
    };
    let edit = |ctx: &mut Ctx, what: &str, f: &dyn Fn() -> std::io::Result<()>| -> std::io::Result<()> {
        writeln!(ctx.out, "\n# {what}")?;
        f()
    };
    run(ctx, &root, &["init"], 0)?;
    // Nothing changed since init: a plain snapshot records nothing; naming
    // the state anyway takes --allow-unchanged.
    run(ctx, &root, &["snapshot"], 0)?;
    run(
        ctx,
        &root,
        &["snapshot", "-m", "baseline", "--name", "baseline", "--allow-unchanged"],
        0,
    )?;
    edit(ctx, "edit config/app.toml", &|| {
        std::fs::write(root.join("config/app.toml"), "[server]\nport = 9999\nworkers = 4\n")
    })?;
    edit(ctx, "add notes.txt", &|| {
        std::fs::write(root.join("notes.txt"), "scratch\n")
    })?;
    edit(ctx, "delete lib/policy.py", &|| {
        std::fs::remove_file(root.join("lib/policy.py"))
    })?;
    edit(ctx, "chmod -x scripts/deploy.sh; chmod 644 config/secrets.env", &|| {
        std::fs::set_permissions(root.join("scripts/deploy.sh"), std::fs::Permissions::from_mode(0o644))?;
        std::fs::set_permissions(root.join("config/secrets.env"), std::fs::Permissions::from_mode(0o644))
    })?;
    edit(ctx, "rmdir cache (an empty directory); mkdir logs", &|| {
        std::fs::remove_dir(root.join("cache"))?;
        std::fs::create_dir(root.join("logs"))
    })?;
    run(ctx, &root, &["status"], 1)?;
    run(ctx, &root, &["verify", "--stats"], 1)?;
    run(ctx, &root, &["diff", "baseline"], 1)?;
    run(ctx, &root, &["cat", "baseline:config/app.toml"], 0)?;
    run(ctx, &root, &["restore", "baseline", "config/secrets.env"], 0)?;
    run(ctx, &root, &["status"], 1)?;
    run(ctx, &root, &["rollback", "baseline"], 0)?;
    run(ctx, &root, &["verify"], 0)?;
    run(ctx, &root, &["diff", "baseline", "HEAD"], 0)?;
    run(ctx, &root, &["log"], 0)?;
    run(ctx, &root, &["fsck"], 0)?;

    // Part 2: governance on the example control plane.
    let gov = tmp.path().join("control-plane");
    write_control_plane(&gov)?;
    writeln!(
        ctx.out,
        "\n# part 2: the governed example control plane in {}",
        gov.display()
    )?;
    run(ctx, &gov, &["init"], 0)?;
    run(ctx, &gov, &["plane", "list"], 0)?;
    edit(ctx, "add lib/agents/critic.py, a file nobody owns", &|| {
        std::fs::write(
            gov.join("lib/agents/critic.py"),
            "\"\"\"Scores an agent step.\"\"\"\n\n\ndef score(step):\n    return len(step)\n",
        )
    })?;
    run(ctx, &gov, &["verify"], 1)?;
    run(ctx, &gov, &["own", "lib/agents/critic.py", "--by", "SPEC-102"], 0)?;
    run(ctx, &gov, &["verify"], 1)?;
    edit(ctx, "plant a secret in config/runtime.yaml", &|| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(gov.join("config/runtime.yaml"))?;
        // Built at run time so this source holds nothing a scanner would flag.
        writeln!(f, "{}: \"correct-horse-battery\"", ["pass", "word"].concat())
    })?;
    run(ctx, &gov, &["verify", "--all-passes"], 1)?;
    run(ctx, &gov, &["snapshot", "-m", "with a secret"], 1)?;
    edit(ctx, "remove the secret again", &|| {
        let p = gov.join("config/runtime.yaml");
        let text = std::fs::read_to_string(&p)?;
        let kept: Vec<&str> = text.lines().filter(|l| !l.contains("correct-horse")).collect();
        std::fs::write(&p, kept.join("\n") + "\n")
    })?;
    run(ctx, &gov, &["snapshot", "-m", "critic owned by SPEC-102"], 0)?;
    run(ctx, &gov, &["verify"], 0)?;
    run(ctx, &gov, &["explain", "lib/agents/critic.py"], 0)?;
    // Part 3: keys, and a signed package installed and removed.
    writeln!(
        ctx.out,
        "\n# part 3: a signing key, and the hello package packed, installed and uninstalled"
    )?;
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys)?;
    let key = keys.join("admin");
    let key_s = key.to_string_lossy().into_owned();
    run(
        ctx,
        &gov,
        &["key", "generate", "--out", &key_s, "--comment", "demo-admin"],
        0,
    )?;
    run(ctx, &gov, &["key", "use", &key_s], 0)?;
    run(
        ctx,
        &gov,
        &["key", "trust", &format!("{key_s}.pub"), "--role", "admin"],
        0,
    )?;
    run(ctx, &gov, &["snapshot", "-m", "trust the demo admin key"], 0)?;
    let files = tmp.path().join("hello-files");
    write_hello_package(&files)?;
    let pkg = tmp.path().join("hello.cppkg").to_string_lossy().into_owned();
    let files_s = files.to_string_lossy().into_owned();
    run(
        ctx,
        &gov,
        &[
            "pack",
            "--spec",
            "SPEC-HELLO-001",
            "--from",
            &files_s,
            "--id",
            "PKG-HELLO-001",
            "--version",
            "1.0.0",
            "-o",
            &pkg,
        ],
        0,
    )?;
    run(ctx, &gov, &["install", &pkg], 0)?;
    run(ctx, &gov, &["verify"], 0)?;
    run(ctx, &gov, &["explain", "lib/agents/hello.py"], 0)?;
    run(ctx, &gov, &["uninstall", "PKG-HELLO-001"], 0)?;
    run(ctx, &gov, &["verify"], 0)?;
    // Every change above is in the plane's ledger, hash-chained, signed from
    // the key's trust on, and provable.
    run(ctx, &gov, &["ledger"], 0)?;
    run(ctx, &gov, &["ledger", "verify"], 0)?;
    if args.keep {
        let kept = tmp.keep();
        writeln!(ctx.out, "\n# kept {}", kept.display())?;
    }
    if failures.is_empty() {
        writeln!(ctx.out, "\n# demo ok: every step behaved as expected")?;
        Ok(0)
    } else {
        for f in &failures {
            writeln!(ctx.out, "# unexpected: {f}")?;
        }
        Ok(1)
    }
}
