//! `cplane rollback`.

use super::diff::change_json;
use super::{CmdResult, Ctx, output};
use cplane::checkout::{Applied, CheckoutReport};
use serde_json::{Value, json};
use std::io::Write;

/// Make the plane's files exactly those of REF, losing nothing
///
/// First seals the current state as a rescue checkpoint (RESCUE-…), so the
/// rollback can itself be undone with `cplane rollback RESCUE-…`. Then
/// rewrites only what differs — bytes, modes, owners, symlinks, hard links —
/// creates missing directories (empty ones too), removes files and
/// directories REF does not have, and sets directory modes after their
/// contents. Every object is verified and every file staged (unnamed, beside
/// its destination) before anything changes; a journal lets an interrupted
/// rollback be finished by the next cplane command. HEAD becomes a new
/// checkpoint whose root equals REF's root; history is never rewritten.
/// When the files already are as REF has them, no rescue is kept, and when
/// HEAD records that state too it says "already as REF: nothing to do" and
/// creates no checkpoint.
/// Owners can only be put back by root (or with CAP_CHOWN); each one that
/// could not be is reported (CP111) and the exit code is 1. On a governed
/// plane, a REF that fails pass 0 (ownership) or 2 (chain) is refused before
/// anything is written (`--force` rolls back anyway).
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// Snapshot to restore: checkpoint name, HEAD~N, id prefix, ...
    pub r#ref: String,
    /// Roll back even when REF is a governed state that fails pass 0
    /// (ownership) or 2 (chain)
    #[arg(long)]
    pub force: bool,
}

/// Refuses (writing nothing) a checkout to a governed state with pass-0 or
/// pass-2 findings; `--force` skips the check.
pub fn refuse_failing_checks(action: &'static str, findings: Vec<cplane::finding::Finding>) -> cplane::Result<()> {
    if findings.is_empty() {
        Ok(())
    } else {
        Err(cplane::Error::Refused { action, findings })
    }
}

/// The problems a checkout reports: owners and modes it could not set.
fn problems_json(a: &Applied) -> Value {
    let list: Vec<Value> = a
        .problems
        .iter()
        .map(|p| {
            let mut m = output::path_obj(p.path.as_bytes());
            m.insert("code".into(), "CP111".into());
            m.insert(
                "message".into(),
                format!("could not set {}: {}", p.what, p.error).into(),
            );
            Value::Object(m)
        })
        .collect();
    Value::Array(list)
}

/// "N written, N removed, N directories created, N paths set (mode or owner)".
pub fn counts(a: &Applied) -> String {
    format!(
        "{} written, {} removed, {} created, {} set (mode or owner)",
        a.written,
        a.removed,
        output::count(a.created_dirs, "directory"),
        output::count(a.meta_set, "path")
    )
}

/// The JSON of a finished checkout: plane, target, what was done, changes,
/// problems, `clean`; `extra` adds the command's own fields (rescue, head, paths).
pub fn checkout_json(
    plane: &str,
    target: &cplane::revision::Resolved,
    r: &CheckoutReport,
    extra: serde_json::Map<String, Value>,
) -> Value {
    let list: Vec<Value> = r.changes.iter().filter(|c| c.is_reported()).map(change_json).collect();
    let a = &r.applied;
    let mut v = json!({
        "plane": plane,
        "target": {"snapshot": target.id.to_hex(), "checkpoint": target.snapshot.name},
        "written": a.written,
        "removed": a.removed,
        "created_dirs": a.created_dirs,
        "meta_set": a.meta_set,
        "changes": list,
        "problems": problems_json(a),
        "changed_meanwhile": a.changed_meanwhile.iter().map(|p| p.display()).collect::<Vec<_>>(),
        "special": r.special.iter().map(super::finding_json).collect::<Vec<_>>(),
        "clean": done(r),
        "seconds": r.seconds,
    });
    if let Value::Object(m) = &mut v {
        m.extend(extra);
    }
    v
}

/// True when the checkout did everything it may: no owner or mode it was not
/// allowed to set (exit 1 otherwise). Paths another process changed while it
/// ran are left as they are and listed, but do not make it incomplete: the
/// result is the same as if that process had written just after the
/// checkout, which a concurrent writer could always have done.
pub fn complete(a: &Applied) -> bool {
    a.problems.is_empty()
}

/// True when the checkout did everything it may ([`complete`]) and found no
/// FIFO, socket or device it had to leave in place (exit 1 otherwise).
pub fn done(r: &CheckoutReport) -> bool {
    complete(&r.applied) && r.special.is_empty()
}

/// Writes the FIFOs, sockets and devices a checkout left in place (CP106
/// lines, with what to do) to `out`; returns the exit code of the whole
/// checkout ([`done`]).
pub fn print_special(out: &mut dyn Write, r: &CheckoutReport) -> std::io::Result<u8> {
    for f in &r.special {
        writeln!(
            out,
            "CP106 {}: {}; left in place, everything else was restored",
            output::path(f.path.as_bytes()),
            f.message
        )?;
    }
    if !r.special.is_empty() {
        writeln!(out, "hint: {}", cplane::finding::Code::SpecialFile.remedy())?;
    }
    Ok(super::findings_code(done(r)))
}

/// Writes what a checkout could not do (CP111 lines) and what it left alone
/// (notes) to `out`; returns the exit code (1 when anything could not be done).
pub fn print_problems(out: &mut dyn Write, a: &Applied) -> std::io::Result<u8> {
    for p in &a.problems {
        writeln!(
            out,
            "CP111 {}: could not set {}: {}",
            output::path(p.path.as_bytes()),
            p.what,
            p.error
        )?;
    }
    for p in &a.changed_meanwhile {
        writeln!(
            out,
            "note: {} was left as it is: another process changed it while the checkout ran (it is not in any checkpoint; snapshot it, or run the command again)",
            output::path(p.as_bytes())
        )?;
    }
    for d in &a.left_in_place {
        writeln!(
            out,
            "note: {}/ is not in the target but was left in place: something not in the plane's state is inside",
            output::path(d.as_bytes())
        )?;
    }
    Ok(super::findings_code(complete(a)))
}

pub fn cmd_rollback(ctx: &mut Ctx, args: RollbackArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let target = cplane::revision::resolve(&store, &plane, &args.r#ref)?;
    if !args.force {
        refuse_failing_checks(
            "rollback",
            cplane::governance::plane::check_rollback(&store, &target.snapshot.root)?,
        )?;
    }
    let bar = ctx.bar("rollback");
    let hooks = ctx.hooks(&store, &plane);
    let r = cplane::rollback::rollback(&mut store, &lock, &plane, &target, hooks.as_ref(), ctx.control(&bar))?;
    drop(bar);
    let j = &r.journal;
    let Some((new_head, new_name)) = j.new_head.clone() else {
        // Already as the target, and HEAD records it: nothing sealed, nothing recorded.
        let head = store.head(&plane.name)?;
        if ctx.json {
            let mut extra = serde_json::Map::new();
            extra.insert("nothing_to_do".into(), json!(true));
            extra.insert("rescue".into(), Value::Null);
            let head = match head {
                Some(id) => {
                    let s = store.read_snapshot(&id)?;
                    json!({"snapshot": id.to_hex(), "checkpoint": s.name, "root": s.root.to_hex()})
                }
                None => Value::Null,
            };
            extra.insert("head".into(), head);
            writeln!(ctx.out, "{}", checkout_json(&plane.name, &target, &r, extra))?;
        } else {
            writeln!(
                ctx.out,
                "already as {} ({}): nothing to do",
                target.snapshot.name,
                target.id.short(12)
            )?;
        }
        return Ok(super::exit::CLEAN);
    };
    // The rescue is kept only when the rollback wrote something.
    let rescue = (!j.ops.is_empty() || store.checkpoint(&plane.name, &j.rescue_name)?.is_some())
        .then_some((j.rescue, j.rescue_name.as_str()));
    let head = store.read_snapshot(&new_head)?;
    let mut refs = vec!["HEAD".into()];
    refs.extend(rescue.map(|(_, n)| format!("checkpoints/{n}")));
    refs.push(format!("checkpoints/{new_name}"));
    ctx.record(
        &store,
        &lock,
        &plane,
        cplane::ledger::Event {
            op: cplane::ledger::Op::Rollback,
            refs,
            paths: ctx.changed_paths(&store, Some(j.rescue), &new_head),
            snapshot: Some(new_head),
            key: None,
            message: format!(
                "rollback to {} ({}); {}",
                target.snapshot.name,
                target.id.short(12),
                match rescue {
                    Some((_, n)) => format!("rescue {n}"),
                    None => "nothing to write (no rescue)".into(),
                }
            ),
        },
    )?;
    if ctx.json {
        let mut extra = serde_json::Map::new();
        extra.insert("nothing_to_do".into(), json!(false));
        extra.insert(
            "rescue".into(),
            match rescue {
                Some((id, n)) => json!({"snapshot": id.to_hex(), "checkpoint": n}),
                None => Value::Null,
            },
        );
        extra.insert(
            "head".into(),
            json!({"snapshot": new_head.to_hex(), "checkpoint": new_name, "root": head.root.to_hex()}),
        );
        writeln!(ctx.out, "{}", checkout_json(&plane.name, &target, &r, extra))?;
        return Ok(super::findings_code(done(&r)));
    }
    match rescue {
        Some((id, n)) => writeln!(
            ctx.out,
            "rescue checkpoint {n} ({}) holds the state before; undo with `cplane rollback {n}`",
            id.short(12),
        )?,
        None => writeln!(
            ctx.out,
            "the files were already as {} has them: nothing written, no rescue checkpoint",
            target.snapshot.name
        )?,
    }
    writeln!(
        ctx.out,
        "rolled back plane {} to {} ({}): {}",
        plane.name,
        target.snapshot.name,
        target.id.short(12),
        counts(&r.applied)
    )?;
    writeln!(
        ctx.out,
        "HEAD is now checkpoint {new_name} (root {})",
        head.root.short(12)
    )?;
    if head.root != target.snapshot.root {
        writeln!(
            ctx.out,
            "(parts of {} that now belong to nested planes, that exempt globs or exclusion rules leave out, or where a FIFO, socket or device sits, were not written)",
            target.snapshot.name
        )?;
    }
    print_problems(ctx.out.findings(), &r.applied)?;
    Ok(print_special(ctx.out.findings(), &r)?)
}
