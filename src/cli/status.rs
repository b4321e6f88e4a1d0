//! `cplane status`.

use super::diff::{entries, entry_json, entry_line, entry_summary};
use super::{CmdResult, Ctx, finding_json, findings_code, output};
use serde_json::{Value, json};
use std::io::Write;

/// Report drift from HEAD quickly, using the stat cache
///
/// Every file and directory is stat'ed; files whose size, mtime, ctime,
/// inode and mode match the cache are not read, others are hashed. Files
/// changed within 2 s of the last scan are always hashed (the "racy" case),
/// so a same-second edit is never missed. Letters as in `cplane diff` (M
/// bytes, A added, D deleted, T kind, P mode, O owner, L hard links, R
/// renamed, C copied: exact renames and copies by blob id among the changes,
/// `R  old -> new`; --no-renames turns that off). Exit 1
/// when anything drifted. For a full re-hash that trusts nothing, use
/// `cplane verify`.
///
/// On a governed plane, status also runs pass 0 (ownership) on what
/// changed: an added file no registry owns (CP001), an owned file gone
/// (CP002) — from the ownership registry HEAD sealed when no registry
/// changed, in full otherwise. Paths an `exempt` glob leaves out are counted,
/// and so are paths a `.cpignore` or `--exclude` rule excludes (neither
/// compared nor stored; `cplane check-ignore PATH` names the rule).
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Report every path on its own: no renames (R) or copies (C)
    #[arg(long)]
    pub no_renames: bool,
    /// Do not refresh the stat cache (by default, files status had to
    /// re-read are recorded when the store lock is free, without waiting,
    /// so the next status need not read them; as `git --no-optional-locks`)
    #[arg(long)]
    pub no_optional_locks: bool,
}

pub fn cmd_status(ctx: &mut Ctx, args: StatusArgs) -> CmdResult {
    let (store, plane) = ctx.open()?;
    let bar = ctx.bar("status");
    let r = cplane::worktree::status_with(&store, &plane, !args.no_optional_locks, ctx.control(&bar))?;
    let governed = cplane::governance::plane::status_findings(&store, &plane, &r)?;
    drop(bar);
    let head = r.head.as_ref();
    let gov: &[cplane::finding::Finding] = governed.as_deref().unwrap_or_default();
    let clean = r.is_clean() && gov.is_empty();
    let entries = entries(r.reported().cloned().collect(), args.no_renames);
    if ctx.json {
        let list: Vec<Value> = entries.iter().map(entry_json).collect();
        // Unscannable paths and (governed) ownership findings, one list as in `verify`.
        let f: Vec<Value> = r.scan.findings.iter().chain(gov).map(finding_json).collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "head": output::head(head),
                "clean": clean,
                "changes": list,
                "findings": f,
                "files": r.scan.files,
                "hashed_files": r.scan.hashed_files,
                "listed_dirs": r.scan.listed_dirs,
                "exempt": r.scan.exempt,
                "excluded": r.scan.excluded,
                "governed": governed.is_some(),
            })
        )?;
    } else {
        match head {
            Some((id, s)) => writeln!(ctx.out.info(), "plane {} at {} ({})", plane.name, s.name, id.short(12))?,
            None => writeln!(ctx.out.info(), "plane {} has no snapshot yet", plane.name)?,
        }
        for e in &entries {
            writeln!(ctx.out, "{}", entry_line(e))?;
        }
        for f in &r.scan.findings {
            writeln!(
                ctx.out,
                "!  {}  {} {}",
                output::path(f.path.as_bytes()),
                f.code,
                f.message
            )?;
        }
        for f in gov {
            write!(ctx.out, "{}", output::finding(f))?;
        }
        if r.scan.exempt > 0 {
            writeln!(
                ctx.out.info(),
                "note: {} left out by exempt globs (neither owned nor stored)",
                output::count(r.scan.exempt, "path")
            )?;
        }
        if r.scan.excluded > 0 {
            writeln!(
                ctx.out.info(),
                "note: {} excluded by .cpignore or --exclude (neither compared nor stored)",
                output::count(r.scan.excluded, "path")
            )?;
        }
        if r.is_clean() && gov.is_empty() {
            writeln!(
                ctx.out.info(),
                "clean: {} {} HEAD",
                output::count(r.scan.files, "file"),
                if r.scan.files == 1 { "matches" } else { "match" }
            )?;
        } else if !r.changes.is_empty() {
            writeln!(ctx.out.info(), "{}", entry_summary(entries.iter()))?;
        }
    }
    let code = findings_code(clean);
    // Freeing 100,000 tree entries one by one costs more than the exit does.
    std::mem::forget(r);
    Ok(code)
}
