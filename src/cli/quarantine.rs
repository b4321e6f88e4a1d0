//! `cplane quarantine`.

use super::{CmdResult, Ctx, output};
use serde_json::json;
use std::io::Write;

/// Move unmapped files out of the plane into the store, restorably
///
/// Seals the plane as it is, unmapped files (CP001) included, as a
/// checkpoint QUARANTINE-YYYYMMDDHHMMSS that HEAD does not move to, then
/// removes each unmapped file whose bytes still match what was sealed (and
/// directories that leaves empty, unless HEAD has them). Nothing is lost:
/// the printed `cplane restore --force QUARANTINE-… PATH…` brings files
/// back (`--force` because they have no owner; `cplane own` them after). A
/// file changed after it was sealed is left in place and listed.
#[derive(clap::Args, Debug)]
pub struct QuarantineArgs {}

pub fn cmd_quarantine(ctx: &mut Ctx, _args: QuarantineArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let bar = ctx.bar("quarantine");
    ctx.intend(
        &store,
        &lock,
        &plane,
        cplane::ledger::Op::Quarantine,
        "quarantine".into(),
    )?;
    let r = cplane::governance::edit::quarantine(&mut store, &lock, &plane, ctx.control(&bar));
    let r = ctx.settle(&store, &plane, r)?;
    drop(bar);
    if let Some((id, name)) = &r.checkpoint {
        let mut ev = cplane::ledger::Event::new(
            cplane::ledger::Op::Quarantine,
            format!(
                "{} moved out; checkpoint {name} holds them",
                output::count(r.moved.len() as u64, "unmapped file")
            ),
        );
        ev.refs = vec![format!("checkpoints/{name}")];
        ev.paths = r.moved.iter().map(|p| p.display()).collect();
        ev.snapshot = Some(*id);
        ctx.record(&store, &lock, &plane, ev)?;
    } else {
        ctx.unchanged(&store, &plane);
    }
    let restore = r.checkpoint.as_ref().map(|(_, name)| {
        // --force: the files are unmapped, which restore otherwise refuses.
        let mut cmd = format!("cplane restore --force {name}");
        if plane.name != "main" {
            cmd = format!("cplane --plane {} restore --force {name}", plane.name);
        }
        for p in &r.moved {
            cmd.push(' ');
            cmd.push_str(&shell_quote(&p.display()));
        }
        cmd
    });
    if ctx.json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "checkpoint": r.checkpoint.as_ref().map(|(id, name)| json!({"snapshot": id.to_hex(), "checkpoint": name})),
                "moved": r.moved.iter().map(|p| p.display()).collect::<Vec<_>>(),
                "changed_meanwhile": r.changed_meanwhile.iter().map(|p| p.display()).collect::<Vec<_>>(),
                "restore": restore,
            })
        )?;
    } else if let Some((id, name)) = &r.checkpoint {
        for p in &r.moved {
            writeln!(ctx.out, "quarantined {}", output::path(p.as_bytes()))?;
        }
        for p in &r.changed_meanwhile {
            writeln!(
                ctx.out,
                "note: {} changed after it was sealed and was left in place",
                output::path(p.as_bytes())
            )?;
        }
        writeln!(
            ctx.out,
            "{} moved into checkpoint {name} ({}); bring them back with (then give them owners with `cplane own`):\n  {}",
            output::count(r.moved.len() as u64, "file"),
            id.short(12),
            restore.unwrap_or_default()
        )?;
    } else {
        writeln!(
            ctx.out,
            "nothing to quarantine: every file of plane {} has an owner",
            plane.name
        )?;
    }
    Ok(super::findings_code(r.changed_meanwhile.is_empty()))
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/+=:,@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
