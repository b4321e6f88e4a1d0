//! `cplane init`.

use super::{CliError, CmdResult, Ctx, output};
use std::io::Write;
use std::path::PathBuf;

/// Create a store in DIR and seal plane `main` as its first checkpoint
///
/// Creates `DIR/.cp` (objects, refs, stat cache, lock), defines plane `main`
/// covering DIR, and snapshots everything below it: bytes, modes, owners,
/// symlinks, empty directories and hard links. The store is built under a
/// temporary name and becomes `.cp` only once the first checkpoint is
/// durable: if some file cannot be stored (unreadable, a FIFO, socket or
/// device), or the disk fills up, init reports it and leaves no store behind.
///
/// A tree that already has registries (registries/frameworks_registry.csv)
/// is adopted as it is: every plane its registries/planes_registry.csv
/// declares (name, path, tier) becomes a plane, each governed plane's
/// ownership registry is compiled, every plane is sealed, and each governed
/// one is verified at once (exit 1, with the findings, when one fails; the
/// checkpoints are kept). `--governed` lays down a genesis framework and
/// registries first in a tree that has none.
///
/// Paths that a `.cpignore` (gitignore syntax, in DIR or any directory below
/// it) or an `--exclude` pattern excludes are neither stored, compared nor
/// touched by rollback or restore; `cplane check-ignore PATH` names the rule.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Directory to govern (default: the current directory)
    #[arg(value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Lay down a genesis framework (FMWK-000), its spec (SPEC-000) and the
    /// registries first, so the plane is governed and verifies clean at once
    /// (only in a tree without registries)
    #[arg(long)]
    pub governed: bool,
    /// Leave out paths matching GLOB (gitignore syntax, relative to DIR;
    /// repeatable): recorded for the plane, so every later command honours
    /// it; `.cpignore` files in the tree add rules of their own
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
}

pub fn cmd_init(ctx: &mut Ctx, args: InitArgs) -> CmdResult {
    let dir = match &args.directory {
        Some(d) => ctx.cwd.join(d),
        None => ctx.cwd.clone(),
    };
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::Usage(
            format!("{}: is a file, not a directory", dir.display()),
            None,
        ));
    }
    if !dir.is_dir() {
        return Err(CliError::Usage(
            format!("{}: no such directory", dir.display()),
            Some("create it first (mkdir -p)".into()),
        ));
    }
    // A signing key that does not load stops init before it creates anything.
    if let Some(p) = std::env::var_os(super::key::SIGNING_KEY_ENV).filter(|p| !p.is_empty()) {
        cplane::keys::load_private(std::path::Path::new(&p)).map_err(|e| {
            CliError::Usage(
                format!(
                    "{} is the signing key ({}), but {e}",
                    std::path::Path::new(&p).display(),
                    super::key::SIGNING_KEY_ENV
                ),
                Some(format!("fix it, or unset {}", super::key::SIGNING_KEY_ENV)),
            )
        })?;
    }
    let bar = ctx.bar("init");
    let opts = cplane::snapshot::InitOptions {
        governed: args.governed,
        exclude: args.exclude.clone(),
    };
    let mut r = cplane::snapshot::init(&dir, opts, ctx.control(&bar))?;
    let lock = r.store.lock(super::interrupt_flag())?;
    for (plane, s) in &r.planes {
        ctx.record(
            &r.store,
            &lock,
            plane,
            cplane::ledger::Event {
                op: cplane::ledger::Op::Init,
                refs: vec!["HEAD".into(), format!("checkpoints/{}", s.snapshot.name)],
                paths: Vec::new(),
                snapshot: Some(s.id),
                key: None,
                message: format!(
                    "first checkpoint {} ({})",
                    s.snapshot.name,
                    output::count(s.snapshot.files, "file")
                ),
            },
        )?;
    }
    drop(lock);
    // Every governed plane is verified at once: adopting registries with findings
    // still seals the tree as it was, and says what is wrong (exit 1).
    let mut checks = Vec::new();
    for (plane, _) in &r.planes {
        let (_, passes) = cplane::governance::plane::verify(&r.store, plane, false, true, ctx.control(&bar))?;
        checks.push(passes);
    }
    drop(bar);
    let clean = checks.iter().flatten().all(|p| p.is_clean());
    if ctx.json {
        let planes: Vec<_> = r
            .planes
            .iter()
            .zip(&checks)
            .map(|((plane, s), check)| {
                serde_json::json!({
                    "plane": plane.name,
                    "path": plane.path,
                    "tier": plane.tier,
                    "checkpoint": s.snapshot.name,
                    "snapshot": s.id.to_hex(),
                    "root": s.snapshot.root.to_hex(),
                    "files": s.snapshot.files,
                    "dirs": s.dirs,
                    "bytes": s.snapshot.bytes,
                    "governed": check.is_some(),
                    "findings": check.as_ref().map(|c| c.findings().map(super::finding_json).collect::<Vec<_>>()),
                })
            })
            .collect();
        let main = &r.planes[0].1;
        writeln!(
            ctx.out,
            "{}",
            serde_json::json!({
                "store": r.store.dir().display().to_string(),
                "plane": "main",
                "checkpoint": main.snapshot.name,
                "snapshot": main.id.to_hex(),
                "root": main.snapshot.root.to_hex(),
                "files": main.snapshot.files,
                "dirs": main.dirs,
                "bytes": main.snapshot.bytes,
                "genesis": r.genesis,
                "planes": planes,
                "clean": clean,
            })
        )?;
    } else {
        writeln!(ctx.out, "initialized cplane store {}", r.store.dir().display())?;
        if !r.genesis.is_empty() {
            writeln!(
                ctx.out,
                "laid down the genesis: framework FMWK-000 and spec SPEC-000 own {}",
                output::count(r.genesis.len() as u64 + 1, "governance file")
            )?;
        }
        for ((plane, s), check) in r.planes.iter().zip(&checks) {
            writeln!(
                ctx.out,
                "plane {}{}: checkpoint {} (root {}, {}, {})",
                plane.name,
                if plane.path.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", plane.path)
                },
                s.snapshot.name,
                s.snapshot.root.short(12),
                output::count(s.snapshot.files, "file"),
                output::size(s.snapshot.bytes)
            )?;
            output::nested_store_notes(&mut ctx.out, &s.nested_stores)?;
            if let Some(c) = check {
                if c.is_clean() {
                    writeln!(
                        ctx.out,
                        "  governed: {} owned, verify ok (passes 0-3)",
                        output::count(c.owned as u64, "file")
                    )?;
                } else {
                    writeln!(
                        ctx.out,
                        "  governed: verify failed in pass {} ({}); run `cplane verify{}` for details",
                        c.first_failed().unwrap_or(0),
                        output::count(c.findings().count() as u64, "finding"),
                        if plane.name == "main" {
                            String::new()
                        } else {
                            format!(" --plane {}", plane.name)
                        }
                    )?;
                    for f in c.findings() {
                        write!(ctx.out.findings(), "  {}", output::finding(f))?;
                    }
                    if !r.genesis.is_empty() && c.findings().any(|f| f.code == cplane::finding::Code::Unmapped) {
                        writeln!(
                            ctx.out,
                            "next: the files above were here before governance. Add a framework that authorizes their paths\n      (registries/frameworks_registry.csv) and a spec bound to it (registries/specs_registry.csv), then\n      `cplane own PATH --by SPEC-…` them; or move them out with `cplane quarantine`. governance.md has the columns."
                        )?;
                    }
                }
            }
        }
    }
    Ok(super::findings_code(clean))
}
