//! `cplane verify`.

use super::{CmdResult, Ctx, finding_json, findings_code, output};
use serde_json::{Value, json};
use std::io::Write;

/// Re-hash every file of the plane and compare with HEAD, trusting nothing
///
/// Reads every byte (in parallel) and reports each modified (CP101), added
/// (CP102), deleted (CP103) and kind-changed (CP104) path, each mode (CP108),
/// owner (CP109) and hard-link (CP110) change, and each file that cannot be
/// read (CP105), is special (CP106) or keeps changing (CP107). Exit 1 on any
/// finding.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Print JSON: one object with `findings` and `stats`
    #[arg(long)]
    pub json: bool,
    /// Print files, bytes, seconds and MB/s
    #[arg(long)]
    pub stats: bool,
}

pub fn cmd_verify(ctx: &mut Ctx, args: VerifyArgs) -> CmdResult {
    let (store, plane) = ctx.open()?;
    let bar = output::Bar::new("verify");
    let r = cplane::worktree::verify(&store, &plane, ctx.control(&bar))?;
    drop(bar);
    let findings = r.all_findings();
    let mbps = if r.seconds > 0.0 {
        r.scan.bytes as f64 / 1e6 / r.seconds
    } else {
        0.0
    };
    let head = r.head.as_ref();
    if args.json {
        let list: Vec<Value> = findings.iter().map(finding_json).collect();
        let changes: Vec<Value> = r.reported().map(super::diff::change_json).collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "head": output::head(head),
                "clean": findings.is_empty(),
                "findings": list,
                "changes": changes,
                "stats": {"files": r.scan.files, "bytes": r.scan.bytes, "seconds": r.seconds, "mb_per_s": mbps},
            })
        )?;
    } else {
        for f in &findings {
            writeln!(ctx.out, "{} {}: {}", f.code, output::path(f.path.as_bytes()), f.message)?;
        }
        let at = head.map_or("no snapshot".to_string(), |(id, s)| {
            format!("{} ({})", s.name, id.short(12))
        });
        if findings.is_empty() {
            writeln!(
                ctx.out,
                "verify ok: {} of plane {} match HEAD {at}",
                output::count(r.scan.files, "file"),
                plane.name
            )?;
        } else {
            writeln!(
                ctx.out,
                "verify failed: {} finding{} in plane {} against HEAD {at}",
                findings.len(),
                if findings.len() == 1 { "" } else { "s" },
                plane.name
            )?;
        }
        if args.stats {
            writeln!(
                ctx.out,
                "stats: {} files, {} bytes, {:.3} s, {mbps:.1} MB/s",
                r.scan.files, r.scan.bytes, r.seconds
            )?;
        }
    }
    let code = findings_code(findings.is_empty());
    // Freeing 100,000 tree entries one by one costs more than the exit does.
    std::mem::forget(r);
    Ok(code)
}
