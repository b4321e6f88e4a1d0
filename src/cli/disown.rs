//! `cplane disown`.

use super::{CmdResult, Ctx, findings_code, output, plane_path};
use serde_json::json;
use std::io::Write;

/// Remove the ownership rows of files, e.g. after deleting them
///
/// Deletes every .file_registry.csv row that declares PATH or a path below
/// it — the files need not exist any more: after `rm old.py`, `cplane
/// disown old.py` clears its row (CP002 otherwise). The rows of the
/// .file_registry.csv files themselves are kept unless one is named. Then
/// the ownership registry is compiled. A file that still exists becomes
/// unmapped (CP001): give it another owner with `cplane own`, or move it
/// out. Nothing is sealed: `cplane snapshot` records the change.
#[derive(clap::Args, Debug)]
pub struct DisownArgs {
    /// Files or directories (relative to the plane root, or to the current
    /// directory when they start with ./ or ../)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<std::ffi::OsString>,
}

pub fn cmd_disown(ctx: &mut Ctx, args: DisownArgs) -> CmdResult {
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
        cplane::ledger::Op::Disown,
        format!(
            "disown {}",
            paths.iter().map(|p| p.display()).collect::<Vec<_>>().join(" ")
        ),
    )?;
    let r = ctx.settle(
        &store,
        &plane,
        cplane::governance::edit::disown(&store, &plane, &paths, ctx.control(&cplane::progress::NoProgress)),
    )?;
    if !r.removed.is_empty() {
        let mut ev = cplane::ledger::Event::new(
            cplane::ledger::Op::Disown,
            format!("{} disowned", output::count(r.removed.len() as u64, "path")),
        );
        ev.paths = r.removed.iter().map(|(p, _, _)| p.display()).collect();
        ctx.record(&store, &lock, &plane, ev)?;
    } else {
        ctx.unchanged(&store, &plane);
    }
    drop(lock);
    if ctx.json {
        let removed: Vec<_> = r
            .removed
            .iter()
            .map(|(p, o, reg)| json!({"path": p.display(), "owner": o, "registry": reg.display()}))
            .collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "removed": removed,
                "compiled": {"rows": r.compile.rows, "written": r.compile.written},
                "findings": super::compile::findings_json(&r.compile),
            })
        )?;
    } else {
        for (p, o, reg) in &r.removed {
            writeln!(
                ctx.out,
                "disowned {} (was {o}; {})",
                output::path(p.as_bytes()),
                reg.display()
            )?;
        }
        super::compile::print_after_edit(&mut ctx.out, &r.compile)?;
    }
    Ok(findings_code(r.compile.findings.is_empty()))
}
