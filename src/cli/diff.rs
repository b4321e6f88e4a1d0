//! `cplane diff`, and change rendering shared with `status`.

use super::{CmdResult, Ctx, finding_json, findings_code, output};
use cplane::diff::{Change, ChangeKind, TreeSource, diff_states};
use cplane::object::EntryKind;
use cplane::revision::resolve;
use serde_json::{Value, json};
use std::io::Write;

/// Show what differs between two snapshots, or a snapshot and the working tree
///
/// A and B are refs: a checkpoint name, HEAD, HEAD~N, PLANE:REF (another
/// plane's snapshot; paths are relative to each plane's root) or a snapshot id
/// prefix of 8+ hex digits. With only A, B is the plane's working tree. Only
/// subtrees whose ids differ are read, so the cost follows the change, not the
/// tree. Letters: A added, D deleted, M modified (bytes), T kind changed
/// (file/symlink, same bytes), P permission bits changed, O owner or group
/// changed, L hard links changed; a directory is listed (with a trailing
/// `/`) when it is empty or its mode or owner changed. Exit 1 when anything
/// differs.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Old side
    pub a: String,
    /// New side (default: the working tree)
    pub b: Option<String>,
    /// Print only `LETTER<TAB>PATH` lines
    #[arg(long)]
    pub name_status: bool,
}

/// One change as JSON: status letter, change kind, path, old and new sides.
pub fn change_json(c: &Change) -> Value {
    let mut m = output::path_obj(c.path.as_bytes());
    m.insert("status".into(), c.kind.letter().to_string().into());
    m.insert("change".into(), c.kind.name().into());
    m.insert("old".into(), c.old.as_ref().map_or(Value::Null, output::side));
    m.insert("new".into(), c.new.as_ref().map_or(Value::Null, output::side));
    Value::Object(m)
}

/// One change for humans: `M  path` (a directory ends in `/`), with a note
/// for kind, mode and owner changes.
pub fn change_line(c: &Change) -> String {
    let is_dir = c.old.or(c.new).is_some_and(|s| s.kind == EntryKind::Dir);
    let mut l = format!(
        "{}  {}{}",
        c.kind.letter(),
        output::path(c.path.as_bytes()),
        if is_dir { "/" } else { "" }
    );
    if let (Some(o), Some(n)) = (c.old, c.new) {
        let mut notes = Vec::new();
        if o.kind != n.kind {
            notes.push(format!("{} -> {}", o.kind.name(), n.kind.name()));
        }
        let md = o.meta.diff(&n.meta);
        // A symlink has no mode of its own: a file <-> symlink change is its kind.
        let no_symlink = o.kind != EntryKind::Symlink && n.kind != EntryKind::Symlink;
        if md.mode && no_symlink {
            notes.push(format!("mode {} -> {}", o.meta.mode_string(), n.meta.mode_string()));
        }
        if md.owner {
            notes.push(format!("owner {} -> {}", o.meta.owner_string(), n.meta.owner_string()));
        }
        if c.kind == ChangeKind::LinksChanged {
            notes.push("hard links".into());
        }
        if !notes.is_empty() {
            l.push_str(&format!("  ({})", notes.join(", ")));
        }
    }
    l
}

/// "3 changes: 1 modified, 1 added, 1 deleted".
pub fn summary<'a>(changes: impl Iterator<Item = &'a Change>) -> String {
    use ChangeKind::*;
    let changes: Vec<&Change> = changes.collect();
    let count = |k| changes.iter().filter(|c| c.kind == k).count();
    let parts: Vec<String> = [
        (Modified, "modified"),
        (Added, "added"),
        (Deleted, "deleted"),
        (KindChanged, "kind changed"),
        (ModeChanged, "mode changed"),
        (OwnerChanged, "owner changed"),
        (LinksChanged, "links changed"),
    ]
    .into_iter()
    .filter(|(k, _)| count(*k) > 0)
    .map(|(k, n)| format!("{} {n}", count(k)))
    .collect();
    format!(
        "{} change{}: {}",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

pub fn cmd_diff(ctx: &mut Ctx, args: DiffArgs) -> CmdResult {
    let (mut store, plane) = if args.b.is_some() {
        ctx.open_store_only()?
    } else {
        ctx.open()?
    };
    let a = resolve(&store, &plane, &args.a)?;
    let (mut changes, findings, b_label) = match &args.b {
        Some(b) => {
            let b = resolve(&store, &plane, b)?;
            let changes = diff_states(
                &TreeSource::store(&store),
                (&a.snapshot.root, &a.snapshot.links),
                (&b.snapshot.root, &b.snapshot.links),
            )?;
            let side = json!({"snapshot": b.id.to_hex(), "checkpoint": b.snapshot.name, "plane": b.plane.name, "root": b.snapshot.root.to_hex()});
            (changes, Vec::new(), side)
        }
        None => {
            let wt_plane = a.plane.clone();
            ctx.recover(&mut store, &wt_plane)?;
            let bar = ctx.bar("scanning");
            let wt = cplane::worktree::against(&store, &wt_plane, &a.snapshot, ctx.control(&bar))?;
            drop(bar);
            let side = json!({"working_tree": true, "plane": wt_plane.name, "root": wt.scan.root.to_hex()});
            (wt.changes, wt.scan.findings, side)
        }
    };
    changes.retain(|c| c.is_reported());
    let clean = changes.is_empty() && findings.is_empty();
    if ctx.json {
        let list: Vec<Value> = changes.iter().map(change_json).collect();
        let f: Vec<Value> = findings.iter().map(finding_json).collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "a": {"snapshot": a.id.to_hex(), "checkpoint": a.snapshot.name, "plane": a.plane.name, "root": a.snapshot.root.to_hex()},
                "clean": clean,
                "b": b_label,
                "changes": list,
                "findings": f,
            })
        )?;
    } else if args.name_status {
        for c in &changes {
            let is_dir = c.old.or(c.new).is_some_and(|s| s.kind == EntryKind::Dir);
            writeln!(
                ctx.out,
                "{}\t{}{}",
                c.kind.letter(),
                output::path(c.path.as_bytes()),
                if is_dir { "/" } else { "" }
            )?;
        }
    } else {
        for c in &changes {
            writeln!(ctx.out, "{}", change_line(c))?;
        }
        if !changes.is_empty() {
            writeln!(ctx.out, "{}", summary(changes.iter()))?;
        }
    }
    if !ctx.json {
        for f in &findings {
            eprintln!("{} {}: {}", f.code, output::path(f.path.as_bytes()), f.message);
        }
    }
    Ok(findings_code(clean))
}
