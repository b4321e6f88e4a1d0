//! `cplane log` and `cplane checkpoints`.

use super::{CmdResult, Ctx, output};
use cplane::id::SnapshotId;
use cplane::object::Snapshot;
use cplane::timefmt::rfc3339;
use serde_json::{Value, json};
use std::io::Write;

/// List the plane's history: HEAD, then each parent, newest first
///
/// Each line: checkpoint name, snapshot id (12 hex digits), UTC time, kind
/// (init, checkpoint, rescue, rollback), files, size and message. History
/// ends at a parent whose checkpoint was deleted or pruned: the last line
/// then says "… history before this was pruned" (`history_pruned` in JSON).
#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Show at most N snapshots
    #[arg(short = 'n', long, value_name = "N")]
    pub max_count: Option<usize>,
}

/// List every named checkpoint of the plane, oldest first
///
/// Every snapshot is a checkpoint: the ones `snapshot` sealed (VER-… or your
/// --name), the RESCUE-… ones `rollback` and `restore` sealed before changing
/// anything, and the one each `rollback` made its HEAD. HEAD is marked `*`.
/// Any of these names is a ref for `diff`, `show`, `cat`, `restore` and
/// `rollback`. `cplane checkpoints delete NAME...` and `cplane prune`
/// remove them (restic's retention: see `cplane prune --help`).
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CheckpointsArgs {
    #[command(subcommand)]
    pub cmd: Option<CheckpointsCmd>,
}

/// `cplane checkpoints SUBCOMMAND`.
#[derive(clap::Subcommand, Debug)]
pub enum CheckpointsCmd {
    Delete(super::retention::DeleteArgs),
}

/// True for the listing, false for `checkpoints delete` (see `--quiet`).
pub fn checkpoints_prints_data(a: &CheckpointsArgs) -> bool {
    a.cmd.is_none()
}

/// A snapshot as JSON.
pub fn snapshot_json(id: &SnapshotId, s: &Snapshot) -> Value {
    let mut v = json!({
        "snapshot": id.to_hex(),
        "checkpoint": s.name,
        "plane": s.plane,
        "kind": s.kind.label(),
        "time": rfc3339(s.time_unix_ns),
        "time_unix_ns": s.time_unix_ns,
        "root": s.root.to_hex(),
        "parent": s.parent.map(|p| p.to_hex()),
        "files": s.files,
        "bytes": s.bytes,
        "message": s.message,
    });
    if let cplane::object::SnapshotKind::Rollback { target } = &s.kind {
        v["target"] = json!(target.to_hex());
    }
    v
}

fn line(id: &SnapshotId, s: &Snapshot) -> String {
    let mut l = format!(
        "{:<24} {}  {}  {:<10} {:>7} {:<5} {:>9}",
        s.name,
        id.short(12),
        rfc3339(s.time_unix_ns),
        s.kind.label(),
        s.files,
        if s.files == 1 { "file" } else { "files" },
        output::size(s.bytes)
    );
    if !s.message.is_empty() {
        l.push_str("  ");
        l.push_str(&s.message);
    }
    l
}

pub fn cmd_log(ctx: &mut Ctx, args: LogArgs) -> CmdResult {
    let (store, plane) = ctx.open_store_only()?;
    let retained = cplane::retention::retained(&store, &plane.name)?;
    let mut cur = store.head(&plane.name)?;
    let mut rows = Vec::new();
    // Set when the walk stopped at a parent that is no longer retained.
    let mut pruned = false;
    while let Some(id) = cur {
        if args.max_count.is_some_and(|n| rows.len() >= n) {
            break;
        }
        let s = store.read_snapshot(&id)?;
        cur = cplane::retention::retained_parent(&store, &retained, &s);
        pruned = cplane::retention::pruned_before(&store, &retained, &s);
        rows.push((id, s));
    }
    let pruned = pruned && cur.is_none();
    if ctx.json {
        let last = rows.len().saturating_sub(1);
        let list: Vec<Value> = rows
            .iter()
            .enumerate()
            .map(|(i, (id, s))| {
                let mut v = snapshot_json(id, s);
                v["history_pruned"] = json!(i == last && pruned);
                v
            })
            .collect();
        writeln!(ctx.out, "{}", Value::Array(list))?;
    } else {
        for (id, s) in &rows {
            writeln!(ctx.out, "{}", line(id, s))?;
        }
        if pruned {
            writeln!(ctx.out, "… history before this was pruned")?;
        }
    }
    Ok(0)
}

pub fn cmd_checkpoints(ctx: &mut Ctx, args: CheckpointsArgs) -> CmdResult {
    if let Some(CheckpointsCmd::Delete(d)) = args.cmd {
        return super::retention::cmd_checkpoints_delete(ctx, d);
    }
    let (store, plane) = ctx.open_store_only()?;
    let mut rows = Vec::new();
    for (_, id) in store.checkpoints(&plane.name)? {
        let s = store.read_snapshot(&id)?;
        rows.push((id, s));
    }
    rows.sort_by(|a, b| (a.1.time_unix_ns, &a.1.name).cmp(&(b.1.time_unix_ns, &b.1.name)));
    let head = store.head(&plane.name)?;
    if ctx.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|(id, s)| {
                let mut v = snapshot_json(id, s);
                v["head"] = json!(Some(*id) == head);
                v
            })
            .collect();
        writeln!(ctx.out, "{}", Value::Array(list))?;
    } else {
        for (id, s) in &rows {
            let mark = if Some(*id) == head { "* " } else { "  " };
            writeln!(ctx.out, "{mark}{}", line(id, s))?;
        }
    }
    Ok(0)
}
