//! `cplane checkpoints delete` and `cplane prune`: retention with restic's
//! semantics (the library side is `cplane::retention`).

use super::{CmdResult, Ctx, output};
use cplane::ledger::{Event, Op};
use cplane::retention::{Decision, Item, Keep, Policy, Rule};
use cplane::timefmt::rfc3339;
use serde_json::{Value, json};
use std::io::Write;

/// Delete checkpoints by name (their refs; the data goes at the next gc)
///
/// Removes each named checkpoint ref of the plane. As with `restic forget`,
/// a checkpoint is the only thing that keeps a snapshot's data: once deleted,
/// its objects are free for a later gc even when a newer snapshot names it
/// as its parent, and `log` shows history ending there. Refuses (deleting
/// nothing) an unknown name, HEAD's checkpoint and a rescue checkpoint of an
/// unfinished checkout. Recorded in the plane's ledger (`checkpoint-delete`).
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Checkpoints to delete
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Say what would be deleted; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

fn parse_keep(s: &str) -> Result<Keep, String> {
    Keep::parse(s).ok_or_else(|| format!("`{s}` is not a count: give a whole number, or `unlimited`"))
}

/// Remove the checkpoints a keep policy does not keep (restic's `forget`)
///
/// restic's policy, bucket for bucket: the checkpoints are sorted newest
/// first; each --keep-RULE N keeps the newest checkpoint of each of the last
/// N distinct hours, days, ISO weeks, months or years that have one
/// (--keep-last N: the N newest), and also the oldest checkpoint when the
/// rule still has count left on reaching it. A checkpoint is kept when any
/// rule keeps it. Buckets are computed in UTC (restic uses local time).
/// HEAD's checkpoint and the rescue checkpoints of an unfinished checkout
/// are always kept. N may be `unlimited`. At least one keep option is
/// required.
///
/// Only refs are removed: the objects stay in the store until a gc, and a
/// parent link is history, not a reason to keep data (`log` shows where
/// the retained history ends). --dry-run lists what would go and what stays
/// and which rule keeps it. Recorded in the plane's ledger (`prune`).
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Keep the N newest checkpoints
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub keep_last: Option<Keep>,
    /// Keep the newest checkpoint of each of the last N UTC hours that have one
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub keep_hourly: Option<Keep>,
    /// Keep the newest checkpoint of each of the last N UTC days that have one
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub keep_daily: Option<Keep>,
    /// Keep the newest checkpoint of each of the last N ISO weeks (UTC) that have one
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub keep_weekly: Option<Keep>,
    /// Keep the newest checkpoint of each of the last N UTC months that have one
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub keep_monthly: Option<Keep>,
    /// Keep the newest checkpoint of each of the last N UTC years that have one
    #[arg(long, value_name = "N", value_parser = parse_keep)]
    pub keep_yearly: Option<Keep>,
    /// List what would be removed and what kept, and why; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

impl PruneArgs {
    fn policy(&self) -> Policy {
        let mut p = Policy::default();
        for (rule, keep) in [
            (Rule::Last, self.keep_last),
            (Rule::Hourly, self.keep_hourly),
            (Rule::Daily, self.keep_daily),
            (Rule::Weekly, self.keep_weekly),
            (Rule::Monthly, self.keep_monthly),
            (Rule::Yearly, self.keep_yearly),
        ] {
            if let Some(k) = keep {
                p.set(rule, k);
            }
        }
        p
    }
}

fn item_json(i: &Item) -> Value {
    json!({
        "checkpoint": i.name,
        "snapshot": i.id.to_hex(),
        "kind": i.kind,
        "time": rfc3339(i.time_unix_ns),
        "time_unix_ns": i.time_unix_ns,
    })
}

fn item_line(i: &Item) -> String {
    format!(
        "{:<24} {}  {}  {:<10}",
        i.name,
        i.id.short(12),
        rfc3339(i.time_unix_ns),
        i.kind
    )
}

/// `A, B, C and 7 more`: at most 10 names, for one-line messages.
fn names(items: &[&Item]) -> String {
    let shown: Vec<&str> = items.iter().take(10).map(|i| i.name.as_str()).collect();
    let mut s = shown.join(", ");
    if items.len() > shown.len() {
        s.push_str(&format!(" and {} more", items.len() - shown.len()));
    }
    s
}

/// Removes `gone` under the lock and records `op` in the ledger (an intent
/// first, as for every change that does not move HEAD).
fn remove_and_record(
    ctx: &Ctx,
    store: &cplane::store::Store,
    lock: &cplane::store::lock::StoreLock,
    plane: &cplane::plane::Plane,
    op: Op,
    gone: &[Item],
    message: String,
) -> cplane::Result<()> {
    ctx.intend(store, lock, plane, op, message.clone())?;
    if let Err(e) = cplane::retention::remove(store, lock, &plane.name, gone) {
        if matches!(e, cplane::Error::CheckpointProtected { .. }) {
            ctx.unchanged(store, plane);
        }
        return Err(e);
    }
    ctx.record(
        store,
        lock,
        plane,
        Event {
            op,
            refs: gone.iter().map(|i| format!("checkpoints/{}", i.name)).collect(),
            paths: Vec::new(),
            snapshot: None,
            key: None,
            message,
        },
    )
}

pub fn cmd_checkpoints_delete(ctx: &mut Ctx, args: DeleteArgs) -> CmdResult {
    let (mut store, plane) = ctx.open_store_only()?;
    let lock = if args.dry_run {
        None
    } else {
        let (lock, p) = ctx.lock_plane(&mut store, &plane)?;
        Some((lock, p))
    };
    let plane = lock.as_ref().map_or(plane, |(_, p)| p.clone());
    let gone = cplane::retention::plan_delete(&store, &plane.name, &args.names)?;
    if let Some((lock, _)) = &lock {
        let refs: Vec<&Item> = gone.iter().collect();
        remove_and_record(
            ctx,
            &store,
            lock,
            &plane,
            Op::CheckpointDelete,
            &gone,
            format!(
                "deleted {}: {}",
                output::count(gone.len() as u64, "checkpoint"),
                names(&refs)
            ),
        )?;
    }
    if ctx.json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "dry_run": args.dry_run,
                "deleted": gone.iter().map(item_json).collect::<Vec<_>>(),
            })
        )?;
        return Ok(super::exit::CLEAN);
    }
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    for i in &gone {
        writeln!(ctx.out, "{verb} {}", item_line(i))?;
    }
    if !args.dry_run {
        writeln!(
            ctx.out,
            "{} deleted from plane {}; their objects stay in the store until a gc",
            output::count(gone.len() as u64, "checkpoint"),
            plane.name
        )?;
    }
    Ok(super::exit::CLEAN)
}

pub fn cmd_prune(ctx: &mut Ctx, args: PruneArgs) -> CmdResult {
    let policy = args.policy();
    if policy.is_empty() {
        return Err(cplane::Error::NoKeepPolicy.into());
    }
    let (mut store, plane) = ctx.open_store_only()?;
    let lock = if args.dry_run {
        None
    } else {
        Some(ctx.lock_plane(&mut store, &plane)?)
    };
    let plane = lock.as_ref().map_or(plane, |(_, p)| p.clone());
    let decisions = cplane::retention::plan_prune(&store, &plane.name, &policy)?;
    let (kept, gone): (Vec<&Decision>, Vec<&Decision>) = decisions.iter().partition(|d| d.keep);
    let gone_items: Vec<Item> = gone.iter().map(|d| d.item.clone()).collect();
    if let Some((lock, _)) = &lock
        && !gone_items.is_empty()
    {
        let refs: Vec<&Item> = gone_items.iter().collect();
        remove_and_record(
            ctx,
            &store,
            lock,
            &plane,
            Op::Prune,
            &gone_items,
            format!(
                "prune ({}, UTC buckets): removed {}: {}",
                policy.describe(),
                output::count(gone_items.len() as u64, "checkpoint"),
                names(&refs)
            ),
        )?;
    }
    if ctx.json {
        let keep: Vec<Value> = kept
            .iter()
            .map(|d| {
                let mut v = item_json(&d.item);
                v["reasons"] = json!(d.reasons);
                v
            })
            .collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "policy": policy.describe(),
                "time_zone": "UTC",
                "dry_run": args.dry_run,
                "keep": keep,
                "remove": gone_items.iter().map(item_json).collect::<Vec<_>>(),
            })
        )?;
        return Ok(super::exit::CLEAN);
    }
    writeln!(ctx.out, "plane {}: {} (buckets in UTC)", plane.name, policy.describe())?;
    for d in &decisions {
        if d.keep {
            writeln!(ctx.out, "keep   {}  {}", item_line(&d.item), d.reasons.join(", "))?;
        } else {
            writeln!(
                ctx.out,
                "{} {}",
                if args.dry_run { "would remove" } else { "remove" },
                item_line(&d.item)
            )?;
        }
    }
    writeln!(
        ctx.out,
        "{} {}, kept {}{}",
        if args.dry_run { "would remove" } else { "removed" },
        output::count(gone_items.len() as u64, "checkpoint"),
        kept.len(),
        if !args.dry_run && !gone_items.is_empty() {
            "; their objects stay in the store until a gc"
        } else {
            ""
        }
    )?;
    Ok(super::exit::CLEAN)
}
