//! `cplane explain`.

use super::{CmdResult, Ctx, finding_json, output, plane_path};
use serde_json::json;
use std::io::Write;

/// Answer for one file: what it is, who owns it, why it is allowed
///
/// Prints the file's blob id, kind and mode (now and in HEAD), its owner and
/// the .file_registry.csv row that declares it, the owner's spec and
/// framework, the framework glob that authorizes the path, every gate that
/// applies with its result, the checkpoints in which it last changed, and
/// the ledger entries that touched it.
/// Exit 1 when the file has findings (unowned, unauthorized, a failed
/// gate), 0 otherwise.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The file (relative to the plane root, or to the current directory
    /// when it starts with ./ or ../)
    pub path: std::ffi::OsString,
}

fn side_json(s: &Option<cplane::diff::Side>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => {
            json!({"kind": s.kind.name(), "blob": s.id.to_hex(), "size": s.size, "mode": s.meta.mode_string(), "uid": s.meta.uid, "gid": s.meta.gid})
        }
    }
}

pub fn cmd_explain(ctx: &mut Ctx, args: ExplainArgs) -> CmdResult {
    let (store, plane) = ctx.open()?;
    let path = plane_path(ctx, &store, &plane, &args.path, true)?;
    let x = cplane::governance::explain::explain(&store, &plane, &path, ctx.control(&cplane::progress::NoProgress))?;
    let code = super::findings_code(x.findings.is_empty());
    // The ledger entries that touched the file: those naming it (or a
    // directory above it), and those that produced a snapshot it changed in.
    let changed: std::collections::HashSet<String> = x.changes.iter().map(|c| c.id.to_hex()).collect();
    let wanted = x.path.display();
    // A damaged ledger is said so; it does not stop explaining the file.
    let ledger: Vec<cplane::ledger::Entry> = match cplane::ledger::Ledger::of(&store, &plane.name).entries() {
        Ok(all) => all
            .into_iter()
            .filter(|e| e.touches(&wanted) || e.snapshot.as_ref().is_some_and(|s| changed.contains(s)))
            .collect(),
        Err(e) => {
            eprintln!("warning: {e}");
            Vec::new()
        }
    };
    if ctx.json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "path": x.path.display(),
                "current": side_json(&x.current),
                "head": side_json(&x.head),
                "governed": x.governed,
                "exempt": x.exempt,
                "owners": x.declarations.iter().map(|d| json!({"owner": &*d.owner_id, "kind": d.owner_kind.as_str(), "registry": d.source.display(), "line": d.line})).collect::<Vec<_>>(),
                "spec": x.spec.as_ref().map(|s| json!({"id": s.id, "entity_type": s.entity_type, "artifact_path": s.artifact_path, "framework": s.framework_id})),
                "framework": x.framework.as_ref().map(|f| json!({"id": f.id, "name": f.name, "version": f.version, "artifact_path": f.artifact_path})),
                "authorized_by": x.glob,
                "gates": x.gates.iter().map(|g| json!({"framework": g.framework, "id": g.id, "kind": g.kind, "pass": g.findings.is_empty(), "findings": g.findings.iter().map(finding_json).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                "findings": x.findings.iter().map(finding_json).collect::<Vec<_>>(),
                "changes": x.changes.iter().map(|c| json!({"snapshot": c.id.to_hex(), "checkpoint": c.name, "time": cplane::timefmt::rfc3339(c.time_unix_ns), "what": c.what})).collect::<Vec<_>>(),
                "ledger": ledger,
            })
        )?;
        return Ok(code);
    }
    let o = &mut ctx.out;
    writeln!(o, "{}", output::path(x.path.as_bytes()))?;
    let side = |s: &Option<cplane::diff::Side>| match s {
        None => "absent".to_string(),
        Some(s) => format!(
            "{} {} mode {} ({})",
            s.kind.name(),
            s.id.short(16),
            s.meta.mode_string(),
            output::size(s.size)
        ),
    };
    writeln!(o, "  now        {}", side(&x.current))?;
    let same = match (&x.current, &x.head) {
        (Some(a), Some(b)) => a.id == b.id && a.kind == b.kind && a.meta == b.meta,
        (None, None) => true,
        _ => false,
    };
    writeln!(
        o,
        "  HEAD       {}",
        if same && x.head.is_some() {
            "the same".to_string()
        } else {
            side(&x.head)
        }
    )?;
    if !x.governed {
        writeln!(
            o,
            "  governance none: plane {} has no registries/frameworks_registry.csv",
            plane.name
        )?;
    } else if x.exempt {
        writeln!(
            o,
            "  governance exempt: an `exempt` glob of a rules file leaves it out (counted, not owned)"
        )?;
    } else {
        match x.declarations.first() {
            None => writeln!(o, "  owner      none (CP001: no .file_registry.csv row declares it)")?,
            Some(d) => {
                writeln!(
                    o,
                    "  owner      {} ({}; {}:{})",
                    d.owner_id,
                    d.owner_kind.as_str(),
                    d.source.display(),
                    d.line
                )?;
                for other in &x.declarations[1..] {
                    writeln!(
                        o,
                        "  also       {} ({}:{}) — two owners (CP003)",
                        other.owner_id,
                        other.source.display(),
                        other.line
                    )?;
                }
            }
        }
        if let Some(s) = &x.spec {
            writeln!(
                o,
                "  spec       {}: {} (entity type {})",
                s.id, s.artifact_path, s.entity_type
            )?;
        }
        if let Some(f) = &x.framework {
            writeln!(o, "  framework  {} {} {}: {}", f.id, f.name, f.version, f.artifact_path)?;
            match &x.glob {
                Some(g) => writeln!(o, "  allowed by {g} (authorizes of {})", f.id)?,
                None => writeln!(
                    o,
                    "  allowed by nothing: no authorizes glob of {} matches (CP204)",
                    f.id
                )?,
            }
        }
        for g in &x.gates {
            writeln!(
                o,
                "  gate       {} ({}, {}): {}",
                g.id,
                g.kind,
                g.framework,
                if g.findings.is_empty() {
                    "pass".to_string()
                } else {
                    format!("FAIL ({})", g.findings.len())
                }
            )?;
        }
        for f in &x.findings {
            write!(o, "  {}", output::finding(f))?;
        }
    }
    if x.changes.is_empty() {
        writeln!(o, "  changed    in no checkpoint of plane {}", plane.name)?;
    }
    for (i, c) in x.changes.iter().enumerate() {
        writeln!(
            o,
            "  {}    {} {} ({}, {})",
            if i == 0 { "changed" } else { "       " },
            c.what,
            c.name,
            c.id.short(12),
            cplane::timefmt::rfc3339(c.time_unix_ns)
        )?;
    }
    for (i, e) in ledger.iter().enumerate() {
        writeln!(
            o,
            "  {}     {} {} {} by {}: {}",
            if i == 0 { "ledger" } else { "      " },
            e.seq,
            e.time.get(..19).unwrap_or(&e.time),
            e.op,
            e.actor,
            e.message
        )?;
    }
    Ok(code)
}
