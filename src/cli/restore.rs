//! `cplane restore`.

use super::rollback::{checkout_json, counts, done, print_problems, print_special};
use super::{CmdResult, Ctx, output, plane_path};
use serde_json::{Value, json};
use std::io::Write;

/// Make some paths exactly as REF has them, without moving HEAD
///
/// Like `git restore --source=REF PATH`: each PATH (a file, symlink or
/// directory) gets REF's bytes, mode, owner, symlink target and hard links; a
/// directory also loses the entries REF does not have; a path REF lacks is
/// removed. Only the named paths are read and written, through the same
/// staged, journalled checkout as `rollback`. What is overwritten is kept
/// first in a rescue checkpoint (RESCUE-…: HEAD with these paths as they
/// were), so `cplane restore RESCUE-… PATH` undoes it. HEAD does not move:
/// `cplane status` then shows the restored paths as differences from HEAD
/// wherever HEAD differs from REF.
///
/// PATH is relative to the plane root, or to the current directory when it
/// starts with `./` or `../`. On a governed plane, a restore whose result
/// would fail pass 0 or 2 (an unowned file brought back, a registry row
/// that points nowhere) is refused before anything is written.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot to take the paths from: checkpoint name, HEAD, HEAD~N, id prefix
    pub r#ref: String,
    /// Paths to restore
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<std::ffi::OsString>,
    /// Restore even when the result would be a governed state that fails
    /// pass 0 (ownership) or 2 (chain)
    #[arg(long)]
    pub force: bool,
}

pub fn cmd_restore(ctx: &mut Ctx, args: RestoreArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let target = cplane::revision::resolve(&store, &plane, &args.r#ref)?;
    let mut paths = args
        .paths
        .iter()
        .map(|p| plane_path(ctx, &store, &plane, p, true))
        .collect::<Result<Vec<_>, _>>()?;
    paths.sort();
    paths.dedup();
    if !args.force {
        super::rollback::refuse_failing_checks(
            "restore",
            cplane::governance::plane::check_restore(
                &store,
                &plane,
                &target.snapshot.root,
                &paths,
                ctx.control(&cplane::progress::NoProgress),
            )?,
        )?;
    }
    let bar = ctx.bar("restore");
    let hooks = ctx.hooks(&store, &plane);
    ctx.intend(
        &store,
        &lock,
        &plane,
        cplane::ledger::Op::Restore,
        format!(
            "restore {} {}",
            target.snapshot.name,
            paths.iter().map(|p| p.display()).collect::<Vec<_>>().join(" ")
        ),
    )?;
    let r = cplane::restore::restore(
        &mut store,
        &lock,
        &plane,
        &target,
        &paths,
        hooks.as_ref(),
        ctx.control(&bar),
    );
    let r = ctx.settle(&store, &plane, r)?;
    drop(bar);
    let j = &r.journal;
    let reported: Vec<&cplane::diff::Change> = r.changes.iter().filter(|c| c.is_reported()).collect();
    if !j.ops.is_empty() {
        ctx.record(
            &store,
            &lock,
            &plane,
            cplane::ledger::Event {
                op: cplane::ledger::Op::Restore,
                refs: vec![format!("checkpoints/{}", j.rescue_name)],
                paths: reported.iter().map(|c| c.path.display()).collect(),
                snapshot: Some(j.rescue),
                key: None,
                message: format!(
                    "restore {} from {} ({}); rescue {}",
                    output::count(paths.len() as u64, "path"),
                    target.snapshot.name,
                    target.id.short(12),
                    j.rescue_name
                ),
            },
        )?;
    } else {
        ctx.unchanged(&store, &plane);
    }
    if ctx.json {
        let mut extra = serde_json::Map::new();
        extra.insert(
            "rescue".into(),
            if j.ops.is_empty() {
                Value::Null
            } else {
                json!({"snapshot": j.rescue.to_hex(), "checkpoint": j.rescue_name})
            },
        );
        extra.insert(
            "paths".into(),
            json!(paths.iter().map(|p| p.display()).collect::<Vec<_>>()),
        );
        writeln!(ctx.out, "{}", checkout_json(&plane.name, &target, &r, extra))?;
        return Ok(super::findings_code(done(&r)));
    }
    if j.ops.is_empty() {
        writeln!(
            ctx.out,
            "already as {} ({}): nothing to do ({} unchanged, no rescue checkpoint){}",
            target.snapshot.name,
            target.id.short(12),
            paths.iter().map(|p| p.display()).collect::<Vec<_>>().join(" "),
            if r.special.is_empty() {
                ""
            } else {
                "; special files are left in place:"
            }
        )?;
        return Ok(print_special(ctx.out.findings(), &r)?);
    }
    for c in &reported {
        writeln!(ctx.out, "{}", super::diff::change_line(c))?;
    }
    writeln!(
        ctx.out,
        "restored {} from {} ({}): {}; HEAD unchanged",
        output::count(paths.len() as u64, "path"),
        target.snapshot.name,
        target.id.short(12),
        counts(&r.applied)
    )?;
    writeln!(
        ctx.out,
        "rescue checkpoint {} holds what was overwritten; undo with `cplane restore {} {}`",
        j.rescue_name,
        j.rescue_name,
        args.paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    print_problems(ctx.out.findings(), &r.applied)?;
    Ok(print_special(ctx.out.findings(), &r)?)
}
