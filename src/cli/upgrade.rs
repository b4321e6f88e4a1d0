//! `cplane upgrade`.

use super::{CmdResult, Ctx};
use serde_json::json;
use std::io::Write;

/// Convert a store of an older format to the current one, in place
///
/// Format 1 recorded only whether a file was executable; format 2 records
/// full permission bits, owner and group, empty directories and hard links,
/// and keeps owners out of tree entries. The upgrade re-encodes every tree
/// and snapshot a ref reaches (file contents are not touched) and moves each
/// ref to its converted snapshot. What format 1 did not record stays
/// "unknown" and is neither compared nor restored until the next snapshot
/// records it. Crash-safe: the new objects are durable before any ref moves,
/// every ref names a valid snapshot at every moment, and the format number
/// changes last; running it again finishes an interrupted upgrade. Checkpoint
/// names stay; snapshot ids change (`--json` lists old and new).
#[derive(clap::Args, Debug)]
pub struct UpgradeArgs {}

pub fn cmd_upgrade(ctx: &mut Ctx, _args: UpgradeArgs) -> CmdResult {
    let root = cplane::store::Store::find_root(&ctx.cwd)?;
    let interrupt = super::interrupt_flag();
    let r = cplane::upgrade::upgrade(&root, interrupt)?;
    if ctx.json {
        let refs: Vec<_> = r
            .refs
            .iter()
            .map(|(plane, name, old, new)| json!({"plane": plane, "ref": name, "old": old, "new": new}))
            .collect();
        writeln!(
            ctx.out,
            "{}",
            json!({"store": root.display().to_string(), "from": r.from, "to": r.to, "snapshots": r.snapshots, "trees": r.trees, "refs": refs})
        )?;
    } else if r.from == r.to {
        writeln!(
            ctx.out,
            "store {} is already format {}; nothing to do",
            root.display(),
            r.to
        )?;
    } else {
        writeln!(
            ctx.out,
            "upgraded store {} from format {} to {}: {} and {} converted, {} moved",
            root.display(),
            r.from,
            r.to,
            super::output::count(r.snapshots, "snapshot"),
            super::output::count(r.trees, "tree"),
            super::output::count(r.refs.len() as u64, "ref")
        )?;
        writeln!(
            ctx.out,
            "modes other than the execute bit and owners were not recorded by format {}; the next `cplane snapshot` records them",
            r.from
        )?;
    }
    Ok(0)
}
