//! `cplane rollback`.

use super::diff::change_json;
use super::{CmdResult, Ctx, output};
use serde_json::{Value, json};
use std::io::Write;

/// Make the plane's files exactly those of REF, losing nothing
///
/// First seals the current state as a rescue checkpoint (RESCUE-…), so the
/// rollback can itself be undone with `cplane rollback RESCUE-…`. Then
/// rewrites only what differs — bytes, exec bits, symlinks — removes files
/// REF does not have and prunes directories left empty. Every object is
/// verified before anything changes; a journal lets an interrupted rollback be
/// finished by the next cplane command. HEAD becomes a new checkpoint whose
/// root equals REF's root; history is never rewritten.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// Snapshot to restore: checkpoint name, HEAD~N, id prefix, ...
    pub r#ref: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn cmd_rollback(ctx: &mut Ctx, args: RollbackArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let target = cplane::revision::resolve(&store, &plane, &args.r#ref)?;
    let bar = output::Bar::new("rollback");
    let r = cplane::rollback::rollback(&mut store, &lock, &plane, &target, &bar)?;
    drop(bar);
    let j = &r.journal;
    if args.json {
        let list: Vec<Value> = r.changes.iter().map(change_json).collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "target": {"snapshot": target.id.to_hex(), "checkpoint": target.snapshot.name},
                "rescue": {"snapshot": j.rescue.to_hex(), "checkpoint": j.rescue_name},
                "head": {"snapshot": j.new_head.to_hex(), "checkpoint": j.new_name, "root": store.read_snapshot(&j.new_head)?.root.to_hex()},
                "written": r.written,
                "removed": r.removed,
                "changes": list,
                "seconds": r.seconds,
            })
        )?;
    } else {
        writeln!(
            ctx.out,
            "rescue checkpoint {} ({}) holds the state before; undo with `cplane rollback {}`",
            j.rescue_name,
            j.rescue.short(12),
            j.rescue_name
        )?;
        writeln!(
            ctx.out,
            "rolled back plane {} to {} ({}): {} written, {} removed",
            plane.name,
            target.snapshot.name,
            target.id.short(12),
            r.written,
            r.removed
        )?;
        let head = store.read_snapshot(&j.new_head)?;
        writeln!(
            ctx.out,
            "HEAD is now checkpoint {} (root {})",
            j.new_name,
            head.root.short(12)
        )?;
        if head.root != target.snapshot.root {
            writeln!(
                ctx.out,
                "(parts of {} that now belong to nested planes were left to those planes)",
                target.snapshot.name
            )?;
        }
    }
    Ok(0)
}
