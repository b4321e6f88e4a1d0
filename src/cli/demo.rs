//! `cplane demo`: the main job end to end on an embedded example plane.

use super::{CmdResult, Ctx};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Run the main job end to end on an example tree: init, edit, status, restore, rollback, fsck
///
/// Builds a small example plane in a temporary directory and runs the real
/// `cplane` binary on it, printing each command and its output: init,
/// snapshot, then edits, a chmod and an empty directory; status, verify and
/// diff report them; `cat` reads an old version, `restore` puts one file
/// back, `rollback` puts back everything; verify, diff, log and fsck
/// confirm. Exits 0 when every step behaved as expected.
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
    let mut run = |ctx: &mut Ctx, argv: &[&str], expect: i32| -> std::io::Result<()> {
        writeln!(ctx.out, "\n$ cplane {}", argv.join(" "))?;
        let out = Command::new(&exe).args(argv).current_dir(&root).output()?;
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
    run(ctx, &["init"], 0)?;
    run(ctx, &["snapshot", "-m", "baseline", "--name", "baseline"], 0)?;
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
    run(ctx, &["status"], 1)?;
    run(ctx, &["verify", "--stats"], 1)?;
    run(ctx, &["diff", "baseline"], 1)?;
    run(ctx, &["cat", "baseline:config/app.toml"], 0)?;
    run(ctx, &["restore", "baseline", "config/secrets.env"], 0)?;
    run(ctx, &["status"], 1)?;
    run(ctx, &["rollback", "baseline"], 0)?;
    run(ctx, &["verify"], 0)?;
    run(ctx, &["diff", "baseline", "HEAD"], 0)?;
    run(ctx, &["log"], 0)?;
    run(ctx, &["fsck"], 0)?;
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
