//! `cplane own`.

use super::{CmdResult, Ctx, findings_code, output, plane_path};
use serde_json::json;
use std::io::Write;

/// Give files an owner: add or change their rows in .file_registry.csv
///
/// Each file PATH gets OWNER (a spec or package id that is in
/// registries/specs_registry.csv or packages_registry.csv); a directory PATH
/// gives OWNER to every file below it that has no owner yet (files owned by
/// someone else are left alone and counted: name them to change them). A
/// file that already has a row keeps that row, with the owner changed; a
/// file without one gets a row in the nearest .file_registry.csv (its own
/// directory's, else the closest one above it). When no directory above it
/// has one, a .file_registry.csv is created in the file's directory, owning
/// itself (by the owner of the registries above, or the genesis spec).
/// Then the ownership registry is compiled (as `cplane compile`). Nothing
/// is sealed: `cplane snapshot` records the change.
#[derive(clap::Args, Debug)]
pub struct OwnArgs {
    /// Files or directories (relative to the plane root, or to the current
    /// directory when they start with ./ or ../)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<std::ffi::OsString>,
    /// The owner: a spec (SPEC-…) or package (PKG-…) id
    #[arg(long = "by", value_name = "OWNER")]
    pub owner: String,
}

pub fn cmd_own(ctx: &mut Ctx, args: OwnArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let paths = args
        .paths
        .iter()
        .map(|p| plane_path(ctx, &store, &plane, p, true))
        .collect::<Result<Vec<_>, _>>()?;
    ctx.intend(
        &store,
        &lock,
        &plane,
        cplane::ledger::Op::Own,
        format!(
            "own {} --by {}",
            paths.iter().map(|p| p.display()).collect::<Vec<_>>().join(" "),
            args.owner
        ),
    )?;
    let r = ctx.settle(
        &store,
        &plane,
        cplane::governance::edit::own(
            &store,
            &plane,
            &paths,
            &args.owner,
            ctx.control(&cplane::progress::NoProgress),
        ),
    )?;
    if !r.owned.is_empty() {
        let mut ev = cplane::ledger::Event::new(
            cplane::ledger::Op::Own,
            format!(
                "{} owned by {}",
                output::count(r.owned.len() as u64, "path"),
                args.owner
            ),
        );
        ev.paths = r.owned.iter().map(|o| o.path.display()).collect();
        ctx.record(&store, &lock, &plane, ev)?;
    } else {
        ctx.unchanged(&store, &plane);
    }
    drop(lock);
    if ctx.json {
        let owned: Vec<_> = r
            .owned
            .iter()
            .map(|o| json!({"path": o.path.display(), "was": o.was, "registry": o.registry.display()}))
            .collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "owner": args.owner,
                "owned": owned,
                "unchanged": r.unchanged,
                "kept": r.kept,
                "created": r.created.iter().map(|p| p.display()).collect::<Vec<_>>(),
                "compiled": {"rows": r.compile.rows, "written": r.compile.written},
                "findings": super::compile::findings_json(&r.compile),
            })
        )?;
    } else {
        for p in &r.created {
            writeln!(ctx.out, "created {}", output::path(p.as_bytes()))?;
        }
        for o in &r.owned {
            writeln!(
                ctx.out,
                "{} {} -> {} ({})",
                if o.was.is_some() { "changed" } else { "owned  " },
                output::path(o.path.as_bytes()),
                args.owner,
                match &o.was {
                    Some(w) => format!("was {w}; {}", o.registry.display()),
                    None => o.registry.display(),
                }
            )?;
        }
        if r.kept > 0 {
            writeln!(
                ctx.out,
                "{} below the given directories already have other owners and were left alone (name a file to change its owner)",
                output::count(r.kept as u64, "file")
            )?;
        }
        if r.unchanged > 0 {
            writeln!(
                ctx.out,
                "{} already owned by {}",
                output::count(r.unchanged as u64, "file"),
                args.owner
            )?;
        }
        super::compile::print_after_edit(&mut ctx.out, &r.compile)?;
    }
    Ok(findings_code(r.compile.findings.is_empty()))
}
