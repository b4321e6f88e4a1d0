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
///
/// On a governed plane (one with registries/frameworks_registry.csv) the
/// four passes run in order and verify stops after the first that fails:
/// 0 ownership (CP001-CP006: every file owned exactly once, by a known
/// owner, and the compiled registry current), 1 content (the checks above),
/// 2 chain (CP201-CP210: spec -> framework -> authorizing glob, metadata,
/// artifacts, packages), 3 gates (CP301-CP306: secrets, sizes, README
/// sections, required files, allowed paths). Each finding names its path,
/// its owner and what to do. Every byte is re-hashed; a file unchanged
/// since a governed checkpoint (HEAD), under unchanged registries and rules
/// files, keeps that checkpoint's gate verdict instead of being scanned
/// again (`--full` scans every file).
///
/// Then, on every plane, the ledger: its chain and Merkle tree, the head
/// HEAD's snapshot recorded, HEAD recorded in it, and its signatures
/// against the keys it trusts (CP401 broken, CP402 signature or trusted-key
/// registry, CP403 HEAD unrecorded).
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Print files, bytes, seconds and MB/s
    #[arg(long)]
    pub stats: bool,
    /// On a governed plane, run every pass even after one fails
    #[arg(long)]
    pub all_passes: bool,
    /// On a governed plane, run every content gate on every file, even on
    /// files byte-identical (BLAKE3) to a governed checkpoint whose gates all
    /// passed under the same registries and rules
    #[arg(long)]
    pub full: bool,
}

/// The ledger check that follows the passes: chain, Merkle tree, HEAD
/// recorded, signatures against the plane's trusted keys (`CP4xx`).
fn ledger_findings(
    store: &mut cplane::store::Store,
    plane: &cplane::plane::Plane,
) -> Result<Vec<cplane::finding::Finding>, super::CliError> {
    let ledger = cplane::ledger::Ledger::of(store, &plane.name);
    // A registry that does not read is reported, never a reason to skip
    // checking the chain.
    let (signers, registry_problem) = match super::key::trusted(plane) {
        Ok(s) => (s, None),
        Err(super::CliError::Usage(m, _)) => (Vec::new(), Some(m)),
        Err(e) => return Err(e),
    };
    let head = store.head(&plane.name)?;
    let recorded = match &head {
        Some(id) => store.read_snapshot(id)?.ledger,
        None => None,
    };
    let mut r = ledger.verify(head.as_ref(), recorded, &signers)?;
    if let Some(m) = registry_problem {
        r.registry_mismatch = Some(m);
    }
    super::ledger::settle_head(store, &plane.name, &ledger, &mut r);
    Ok(r.findings(ledger.path()))
}

pub fn cmd_verify(ctx: &mut Ctx, args: VerifyArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let bar = ctx.bar("verify");
    let (r, passes) = cplane::governance::plane::verify(&store, &plane, args.all_passes, args.full, ctx.control(&bar))?;
    let ledger = ledger_findings(&mut store, &plane)?;
    if let Some(passes) = passes {
        drop(bar);
        return governed(ctx, &args, &plane, &r, &passes, &ledger);
    }
    drop(bar);
    let mut findings = r.all_findings();
    findings.extend(ledger);
    let mbps = if r.seconds > 0.0 {
        r.scan.bytes as f64 / 1e6 / r.seconds
    } else {
        0.0
    };
    let head = r.head.as_ref();
    if ctx.json {
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
                "stats": {"files": r.scan.files, "bytes": r.scan.bytes, "excluded": r.scan.excluded, "seconds": r.seconds, "mb_per_s": mbps},
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
                ctx.out.info(),
                "verify ok: {} of plane {} match HEAD {at}",
                output::count(r.scan.files, "file"),
                plane.name
            )?;
        } else {
            writeln!(
                ctx.out.info(),
                "verify failed: {} finding{} in plane {} against HEAD {at}",
                findings.len(),
                if findings.len() == 1 { "" } else { "s" },
                plane.name
            )?;
        }
        if args.stats {
            writeln!(
                ctx.out.info(),
                "stats: {} files, {} bytes, {} excluded, {:.3} s, {mbps:.1} MB/s",
                r.scan.files,
                r.scan.bytes,
                r.scan.excluded,
                r.seconds
            )?;
        }
    }
    let code = findings_code(findings.is_empty());
    // Freeing 100,000 tree entries one by one costs more than the exit does.
    std::mem::forget(r);
    Ok(code)
}

fn governed(
    ctx: &mut Ctx,
    args: &VerifyArgs,
    plane: &cplane::plane::Plane,
    r: &cplane::worktree::WorktreeReport,
    p: &cplane::governance::plane::PassReport,
    ledger: &[cplane::finding::Finding],
) -> CmdResult {
    use cplane::governance::plane::PASS_NAMES;
    let total = p.findings().count() + ledger.len();
    let head = r.head.as_ref();
    if ctx.json {
        let list: Vec<Value> = p.findings().chain(ledger).map(finding_json).collect();
        let passes: Vec<Value> = p
            .passes
            .iter()
            .enumerate()
            .map(|(i, f)| {
                json!({
                    "pass": i,
                    "name": PASS_NAMES[i],
                    "ran": f.is_some(),
                    "findings": f.as_ref().map(Vec::len),
                    "incomplete": p.incomplete[i],
                })
            })
            .collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "head": output::head(head),
                "governed": true,
                "clean": total == 0,
                "passes": passes,
                "findings": list,
                "stats": {
                    "files": r.scan.files,
                    "bytes": r.scan.bytes,
                    "owned": p.owned,
                    "exempt": p.exempt.len() as u64 + r.scan.exempt,
                    "excluded": r.scan.excluded,
                    "binary_skipped": p.binary_skipped.len(),
                    "seconds": r.seconds,
                },
            })
        )?;
    } else {
        for (i, f) in p.passes.iter().enumerate() {
            match f {
                None => writeln!(
                    ctx.out,
                    "pass {i} {}: not run (an earlier pass failed; --all-passes runs it)",
                    PASS_NAMES[i]
                )?,
                Some(f) if f.is_empty() => match &p.incomplete[i] {
                    None => writeln!(ctx.out.info(), "pass {i} {}: ok", PASS_NAMES[i])?,
                    Some(why) => writeln!(
                        ctx.out,
                        "pass {i} {}: no findings, but incomplete: {why}",
                        PASS_NAMES[i]
                    )?,
                },
                Some(f) => {
                    writeln!(
                        ctx.out,
                        "pass {i} {}: {}",
                        PASS_NAMES[i],
                        output::count(f.len() as u64, "finding")
                    )?;
                    for f in f {
                        write!(
                            ctx.out,
                            "  {}",
                            output::finding(f).replace("\n      fix:", "\n        fix:")
                        )?;
                    }
                }
            }
        }
        if ledger.is_empty() {
            writeln!(ctx.out.info(), "ledger: ok")?;
        } else {
            writeln!(ctx.out, "ledger: {}", output::count(ledger.len() as u64, "finding"))?;
            for f in ledger {
                write!(
                    ctx.out,
                    "  {}",
                    output::finding(f).replace("\n      fix:", "\n        fix:")
                )?;
            }
        }
        if !p.binary_skipped.is_empty() {
            writeln!(
                ctx.out.info(),
                "note: content gates skipped {} (a NUL byte, as ripgrep decides)",
                output::count(p.binary_skipped.len() as u64, "binary file")
            )?;
        }
        let at = head.map_or("no snapshot".to_string(), |(id, s)| {
            format!("{} ({})", s.name, id.short(12))
        });
        let exempt_count = p.exempt.len() as u64 + r.scan.exempt;
        let exempt = if exempt_count == 0 {
            String::new()
        } else {
            format!(", {exempt_count} exempt")
        };
        if total == 0 {
            writeln!(
                ctx.out.info(),
                "verify ok: governed plane {}: {} owned{exempt}, all four passes clean against HEAD {at}",
                plane.name,
                output::count(p.owned as u64, "file"),
            )?;
        } else {
            writeln!(
                ctx.out.info(),
                "verify failed: {} in governed plane {} (first failing {})",
                output::count(total as u64, "finding"),
                plane.name,
                p.first_failed()
                    .map_or("check: the ledger".to_string(), |i| format!("pass: {}", PASS_NAMES[i])),
            )?;
        }
        if args.stats {
            writeln!(
                ctx.out.info(),
                "stats: {} files, {} bytes, {} excluded, {:.3} s",
                r.scan.files,
                r.scan.bytes,
                r.scan.excluded,
                r.seconds
            )?;
        }
    }
    Ok(findings_code(total == 0))
}
