//! `cplane fsck`.

use super::exit;
use super::{CmdResult, Ctx, output};
use std::io::Write;

/// Check the store: every object re-hashes to its id, everything refs reach is present
///
/// Reads and re-hashes every object in every pack (in parallel), checks each
/// pack index's checksum, then walks from every plane's HEAD and checkpoints
/// through snapshots, trees and blobs. Each damaged or missing object is named
/// with the refs (and paths) that reach it. Exit 3 on any damage.
///
/// With --remote NAME, checks the remote instead: every pack index is read,
/// and every object a remote ref reaches must be in one; --read-data also
/// downloads every pack and re-hashes every object.
#[derive(clap::Args, Debug)]
pub struct FsckArgs {
    /// Check remote NAME instead of this store
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
    /// With --remote: download every pack and re-hash every object
    #[arg(long, requires = "remote")]
    pub read_data: bool,
}

pub fn cmd_fsck(ctx: &mut Ctx, args: FsckArgs) -> CmdResult {
    let store = ctx.store()?;
    if let Some(name) = &args.remote {
        return remote_fsck(ctx, &store, name, args.read_data);
    }
    let bar = ctx.bar("fsck");
    let r = cplane::fsck::fsck(&store, &bar)?;
    drop(bar);
    if ctx.json {
        let mut v = serde_json::to_value(&r).expect("report serialises");
        v["clean"] = r.is_clean().into();
        writeln!(ctx.out, "{v}")?;
    } else {
        for d in &r.damage {
            let what = if d.id.is_empty() {
                format!("{} {}", d.problem, d.location)
            } else {
                format!("{} {} {}", d.problem, d.kind, d.id)
            };
            writeln!(ctx.out, "{what}: {}", d.reason)?;
            if !d.id.is_empty() && !d.location.is_empty() {
                writeln!(ctx.out, "  at {}", d.location)?;
            }
            const SHOWN: usize = 5;
            for by in d.reached_by.iter().take(SHOWN) {
                writeln!(ctx.out, "  reached by {by}")?;
            }
            if d.reached_by.len() > SHOWN {
                writeln!(
                    ctx.out,
                    "  ... and {} more (all in `cplane fsck --json`)",
                    d.reached_by.len() - SHOWN
                )?;
            }
        }
        for l in &r.leftovers {
            writeln!(
                ctx.out.info(),
                "note: leftover of an interrupted write (the next writer removes it): {l}"
            )?;
        }
        writeln!(
            ctx.out.info(),
            "checked {} objects ({} stored) in {} packs and {} refs in {:.2} s: {}",
            r.objects,
            output::size(r.bytes),
            r.packs,
            r.refs,
            r.seconds,
            verdict(r.damage.len())
        )?;
    }
    Ok(if r.is_clean() { exit::CLEAN } else { exit::DAMAGE })
}

/// The end of fsck's summary line: "no damage" or "N problems".
fn verdict(problems: usize) -> String {
    if problems == 0 {
        "no damage".to_string()
    } else {
        output::count(problems as u64, "problem")
    }
}

fn print_damage(out: &mut dyn Write, d: &cplane::fsck::Damage) -> std::io::Result<()> {
    let what = if d.id.is_empty() {
        format!("{} {}", d.problem, d.location)
    } else {
        format!("{} {} {}", d.problem, d.kind, d.id)
    };
    writeln!(out, "{what}: {}", d.reason)?;
    if !d.id.is_empty() && !d.location.is_empty() {
        writeln!(out, "  at {}", d.location)?;
    }
    for by in d.reached_by.iter().take(5) {
        writeln!(out, "  reached by {by}")?;
    }
    if d.reached_by.len() > 5 {
        writeln!(
            out,
            "  ... and {} more (all in `cplane fsck --json`)",
            d.reached_by.len() - 5
        )?;
    }
    Ok(())
}

fn remote_fsck(ctx: &mut Ctx, store: &cplane::store::Store, name: &str, read_data: bool) -> CmdResult {
    let backend = cplane::remote::open(store, name)?;
    let bar = ctx.bar("fsck");
    let r = cplane::remote::check::check(store, &backend, read_data, ctx.control(&bar))?;
    drop(bar);
    if ctx.json {
        let mut v = serde_json::to_value(&r).expect("report serialises");
        v["clean"] = r.is_clean().into();
        writeln!(ctx.out, "{v}")?;
    } else {
        for d in &r.damage {
            print_damage(&mut ctx.out, d)?;
        }
        for n in &r.notes {
            writeln!(ctx.out.info(), "note: {n}")?;
        }
        writeln!(
            ctx.out.info(),
            "checked remote {name}: {} packs, {} objects listed{}, {} refs in {:.2} s: {}",
            r.packs,
            r.objects,
            if read_data {
                format!(" ({} re-hashed)", r.objects_read)
            } else {
                String::new()
            },
            r.refs,
            r.seconds,
            verdict(r.damage.len())
        )?;
    }
    Ok(if r.is_clean() { exit::CLEAN } else { exit::DAMAGE })
}
