//! `cplane diff`, and change rendering shared with `status`.

use super::{CmdResult, Ctx, finding_json, findings_code, output};
use cplane::diff::{Change, TreeSource, diff_trees};
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
/// (file/executable/symlink, same bytes). Exit 1 when anything differs.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Old side
    pub a: String,
    /// New side (default: the working tree)
    pub b: Option<String>,
    /// Print only `LETTER<TAB>PATH` lines
    #[arg(long)]
    pub name_status: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// One change as JSON: status letter, change kind, path, old and new sides.
pub fn change_json(c: &Change) -> Value {
    let mut m = output::path_obj(&c.path);
    m.insert("status".into(), c.kind.letter().to_string().into());
    m.insert(
        "change".into(),
        match c.kind {
            cplane::diff::ChangeKind::Added => "added",
            cplane::diff::ChangeKind::Deleted => "deleted",
            cplane::diff::ChangeKind::Modified => "modified",
            cplane::diff::ChangeKind::KindChanged => "kind_changed",
        }
        .into(),
    );
    m.insert("old".into(), c.old.as_ref().map_or(Value::Null, output::side));
    m.insert("new".into(), c.new.as_ref().map_or(Value::Null, output::side));
    Value::Object(m)
}

/// One change for humans: `M  path` plus a note for kind changes.
pub fn change_line(c: &Change) -> String {
    let mut l = format!("{}  {}", c.kind.letter(), output::path(&c.path));
    if let (Some(o), Some(n)) = (c.old, c.new)
        && o.kind != n.kind
    {
        l.push_str(&format!("  ({} -> {})", o.kind.name(), n.kind.name()));
    }
    l
}

/// "3 changes: 1 modified, 1 added, 1 deleted".
pub fn summary(changes: &[Change]) -> String {
    use cplane::diff::ChangeKind::*;
    let count = |k| changes.iter().filter(|c| c.kind == k).count();
    let parts: Vec<String> = [
        (Modified, "modified"),
        (Added, "added"),
        (Deleted, "deleted"),
        (KindChanged, "kind changed"),
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
    let (changes, findings, b_label) = match &args.b {
        Some(b) => {
            let b = resolve(&store, &plane, b)?;
            let changes = diff_trees(&TreeSource::store(&store), &a.snapshot.root, &b.snapshot.root)?;
            let side = json!({"snapshot": b.id.to_hex(), "checkpoint": b.snapshot.name, "plane": b.plane.name, "root": b.snapshot.root.to_hex()});
            (changes, Vec::new(), side)
        }
        None => {
            let wt_plane = a.plane.clone();
            ctx.recover(&mut store, &wt_plane)?;
            let bar = output::Bar::new("scanning");
            let mut wt = cplane::worktree::working_tree(&store, &wt_plane, &bar)?;
            drop(bar);
            let src = TreeSource::with_overlay(&store, &wt.scan.trees);
            let changes = diff_trees(&src, &a.snapshot.root, &wt.scan.root)?;
            let findings = std::mem::take(&mut wt.scan.findings);
            let side = json!({"working_tree": true, "plane": wt_plane.name, "root": wt.scan.root.to_hex()});
            (changes, findings, side)
        }
    };
    let clean = changes.is_empty() && findings.is_empty();
    if args.json {
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
            writeln!(ctx.out, "{}\t{}", c.kind.letter(), output::path(&c.path))?;
        }
    } else {
        for c in &changes {
            writeln!(ctx.out, "{}", change_line(c))?;
        }
        if !changes.is_empty() {
            writeln!(ctx.out, "{}", summary(&changes))?;
        }
    }
    if !args.json {
        for f in &findings {
            eprintln!("{} {}: {}", f.code, output::path(&f.path), f.message);
        }
    }
    Ok(findings_code(clean))
}
