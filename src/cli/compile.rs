//! `cplane compile`.

use super::{CmdResult, Ctx, finding_json, findings_code, output};
use serde_json::{Value, json};
use std::io::Write;

/// Build registries/file_ownership_registry.csv from every .file_registry.csv
///
/// Reads each per-directory `.file_registry.csv` of the plane (rows
/// `file_path,owner_id,owner_kind`, paths relative to that directory) and
/// writes the compiled registry: one row per declared file, sorted by path
/// bytes, with its owner and its BLAKE3 (the registry's own row has no
/// hash). The bytes depend only on the registries and the files, never on
/// directory-listing order; the file is rewritten only when it changes.
/// Refuses, writing nothing, when a registry is malformed (CP005) or a path
/// has two owners (CP003). Unmapped files (CP001), declared files that are
/// missing (CP002) and unknown owners (CP004) are reported (exit 1) but do
/// not stop the compile. `cplane snapshot` compiles on its own before it
/// seals; run this to see the result first.
#[derive(clap::Args, Debug)]
pub struct CompileArgs {}

pub fn cmd_compile(ctx: &mut Ctx, _args: CompileArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let bar = ctx.bar("compile");
    ctx.intend(&store, &lock, &plane, cplane::ledger::Op::Compile, "compile".into())?;
    let r = ctx.settle(
        &store,
        &plane,
        cplane::governance::plane::compile_worktree(&store, &plane, ctx.control(&bar)),
    )?;
    drop(bar);
    if r.written {
        let mut ev = cplane::ledger::Event::new(cplane::ledger::Op::Compile, format!("compiled {} rows", r.rows));
        ev.paths = vec![cplane::governance::COMPILED.to_string()];
        ctx.record(&store, &lock, &plane, ev)?;
    } else {
        ctx.unchanged(&store, &plane);
    }
    drop(lock);
    if ctx.json {
        let list = findings_json(&r);
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "registry": cplane::governance::COMPILED,
                "rows": r.rows,
                "written": r.written,
                "exempt": r.exempt,
                "findings": list,
            })
        )?;
    } else {
        for f in &r.findings {
            write!(ctx.out.findings(), "{}", output::finding(f))?;
        }
        writeln!(
            ctx.out,
            "{} {}: {}{}",
            if r.written { "compiled" } else { "unchanged" },
            cplane::governance::COMPILED,
            output::count(r.rows as u64, "row"),
            if r.exempt > 0 {
                format!(" ({} exempt)", r.exempt)
            } else {
                String::new()
            }
        )?;
    }
    Ok(findings_code(r.findings.is_empty()))
}

/// The findings a compile left, as JSON.
pub fn findings_json(r: &cplane::governance::plane::CompileReport) -> Vec<Value> {
    r.findings.iter().map(finding_json).collect()
}

/// What `own` and `disown` print after they edited registries: the findings
/// the compile left, and the compiled registry's size.
pub fn print_after_edit(out: &mut output::Out, r: &cplane::governance::plane::CompileReport) -> std::io::Result<()> {
    for f in &r.findings {
        write!(out.findings(), "{}", output::finding(f))?;
    }
    writeln!(
        out,
        "compiled {}: {}; `cplane snapshot` records the change",
        cplane::governance::COMPILED,
        output::count(r.rows as u64, "row")
    )
}
