//! `cplane snapshot`.

use super::{CmdResult, Ctx, output};
use cplane::ledger::{Event, Op};
use cplane::snapshot::SealOptions;
use std::io::Write;
use std::time::Instant;

/// Seal the plane's current files as a new checkpoint and move HEAD to it
///
/// Records every file's bytes, mode and owner, symlinks, empty directories
/// and hard links. Only files whose stat changed since the last scan are
/// read; new content is stored once (content-addressed), in one pack per
/// worker thread. Paths deleted by another process while the plane is read
/// are simply not recorded (a note says how many). The default
/// name is VER-YYYYMMDDHHMMSS (UTC), made unique. When nothing changed since
/// HEAD (same root, hard links and ownership), nothing is recorded: it says
/// "unchanged since HEAD (CHECKPOINT)" and exits 0, with no new checkpoint
/// and no ledger entry, unless --allow-unchanged. Refuses, writing nothing,
/// if a file is unreadable, special (FIFO, socket, device) or keeps changing
/// while hashed.
#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    /// Message stored in the snapshot
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Checkpoint name (letters, digits, `.`, `_`, `-`); must not exist yet
    #[arg(long)]
    pub name: Option<String>,
    /// Seal even though HEAD is governed and registries/frameworks_registry.csv
    /// is gone: the plane stops being governed (otherwise refused, CP005)
    #[arg(long)]
    pub ungoverned: bool,
    /// Record a new checkpoint even when nothing changed since HEAD
    #[arg(long)]
    pub allow_unchanged: bool,
}

pub fn cmd_snapshot(ctx: &mut Ctx, args: SnapshotArgs) -> CmdResult {
    let t0 = Instant::now();
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let bar = ctx.bar("snapshot");
    let opts = SealOptions {
        name: args.name,
        message: args.message,
        skip_unchanged: !args.allow_unchanged,
        ..SealOptions::default()
    };
    let (r, governed) =
        cplane::governance::plane::snapshot(&mut store, &lock, &plane, opts, args.ungoverned, ctx.control(&bar))?;
    drop(bar);
    let s = &r.snapshot;
    if r.unchanged {
        if ctx.json {
            writeln!(
                ctx.out,
                "{}",
                serde_json::json!({
                    "plane": plane.name,
                    "unchanged": true,
                    "checkpoint": s.name,
                    "snapshot": r.id.to_hex(),
                    "root": s.root.to_hex(),
                    "files": s.files,
                    "bytes": s.bytes,
                    "hashed_files": r.hashed_files,
                    "hashed_bytes": r.hashed_bytes,
                    "seconds": t0.elapsed().as_secs_f64(),
                })
            )?;
        } else {
            writeln!(ctx.out, "unchanged since HEAD ({}): nothing recorded", s.name)?;
        }
        // Freeing every file's stat row one by one costs more than the exit does.
        std::mem::forget(r);
        return Ok(super::exit::CLEAN);
    }
    ctx.record(
        &store,
        &lock,
        &plane,
        Event {
            op: Op::Snapshot,
            refs: vec!["HEAD".into(), format!("checkpoints/{}", s.name)],
            paths: ctx.changed_paths(&store, s.parent, &r.id),
            snapshot: Some(r.id),
            key: None,
            message: format!(
                "checkpoint {}{}",
                s.name,
                if s.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.message)
                }
            ),
        },
    )?;
    let secs = t0.elapsed().as_secs_f64();
    if ctx.json {
        writeln!(
            ctx.out,
            "{}",
            serde_json::json!({
                "plane": plane.name,
                "unchanged": false,
                "checkpoint": s.name,
                "snapshot": r.id.to_hex(),
                "root": s.root.to_hex(),
                "parent": s.parent.map(|p| p.to_hex()),
                "files": s.files,
                "bytes": s.bytes,
                "dirs": r.dirs,
                "vanished": r.vanished,
                "hashed_files": r.hashed_files,
                "hashed_bytes": r.hashed_bytes,
                "new_objects": r.write.new_objects,
                "new_bytes": r.write.new_bytes,
                "seconds": secs,
                "governed": governed.as_ref().map(|g| serde_json::json!({
                    "owned": g.owned,
                    "exempt": g.exempt,
                    "compiled_written": g.compiled_written,
                })),
            })
        )?;
    } else {
        if let Some(g) = &governed {
            writeln!(
                ctx.out,
                "governed: {} owned{}, passes 0, 2 and 3 clean{}",
                output::count(g.owned as u64, "file"),
                if g.exempt > 0 {
                    format!(", {} exempt", g.exempt)
                } else {
                    String::new()
                },
                if g.compiled_written {
                    "; registries/file_ownership_registry.csv recompiled"
                } else {
                    ""
                }
            )?;
        }
        writeln!(ctx.out, "checkpoint {}", s.name)?;
        writeln!(ctx.out, "snapshot   {}", r.id)?;
        writeln!(ctx.out, "root       {}", s.root)?;
        writeln!(
            ctx.out,
            "{} ({}); hashed {} ({}); stored {} ({}) in {secs:.2} s",
            output::count(s.files, "file"),
            output::size(s.bytes),
            r.hashed_files,
            output::size(r.hashed_bytes),
            output::count(r.write.new_objects, "new object"),
            output::size(r.write.new_bytes)
        )?;
        output::nested_store_notes(&mut ctx.out, &r.nested_stores)?;
        if r.vanished > 0 {
            writeln!(
                ctx.out,
                "note: {} disappeared while the plane was read and {} not recorded",
                output::count(r.vanished, "path"),
                if r.vanished == 1 { "is" } else { "are" }
            )?;
        }
    }
    // Freeing the 100,000-entry stat cache one by one costs more than the exit does.
    std::mem::forget(r);
    Ok(0)
}
