//! `cplane plane add|list`.

use super::{CmdResult, Ctx, output};
use cplane::object::SnapshotKind;
use cplane::snapshot::{SealOptions, seal, seal_carve_out};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// Manage planes: named, non-overlapping trees in one store
#[derive(clap::Args, Debug)]
pub struct PlaneArgs {
    #[command(subcommand)]
    cmd: PlaneCmd,
}

#[derive(clap::Subcommand, Debug)]
enum PlaneCmd {
    /// Add plane NAME rooted at PATH and seal its first checkpoint
    ///
    /// PATH must be an existing directory under the store root (--create
    /// makes it, and any missing parents, first). A plane nested
    /// inside another is carved out of it: the outer plane stops covering PATH
    /// and records that at once as a new checkpoint made from its HEAD (nothing
    /// else is rescanned), so its `status` stays as it was. PATH must not be
    /// a symlink.
    Add {
        /// Plane name (letters, digits, `.`, `_`, `-`)
        name: String,
        /// Root directory of the plane
        path: PathBuf,
        /// Tier label, e.g. ho1, ho2
        #[arg(long)]
        tier: Option<String>,
        /// Leave out paths matching GLOB (gitignore syntax, relative to
        /// PATH; repeatable), recorded for the plane
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Create PATH when it does not exist (otherwise refused)
        #[arg(long)]
        create: bool,
    },
    /// List planes with their roots, tiers and HEADs
    ///
    /// One line per plane: name, root (relative to the store root), tier and
    /// HEAD checkpoint. A plane nested in another is not part of it.
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn cmd_plane(ctx: &mut Ctx, args: PlaneArgs) -> CmdResult {
    match args.cmd {
        PlaneCmd::Add {
            name,
            path,
            tier,
            exclude,
            create,
        } => {
            let mut store = ctx.store()?;
            let lock = store.lock(super::interrupt_flag())?;
            // A pending checkout was planned with the old planes: finish it first.
            for p in store.planes() {
                ctx.finish_journal(&mut store, &lock, &p)?;
            }
            // The plane it would be carved out of records the carve-out: its
            // ledger must be able to take the entry, signed as it requires.
            let signing = super::key::signing_key(&store)?;
            if let Ok(outer) = store.plane_containing(&ctx.cwd.join(&path)) {
                ctx.check_ledger(&store, &lock, &outer, signing.as_ref())?;
            }
            let before = store.config().clone();
            let plane = store.add_plane_excluding(&name, &ctx.cwd.join(&path), tier, exclude, create)?;
            let opts = SealOptions {
                message: "plane add".into(),
                kind: SnapshotKind::Init,
                ..SealOptions::default()
            };
            let r = match seal(
                &mut store,
                &lock,
                &plane,
                opts,
                ctx.control(&cplane::progress::NoProgress),
            ) {
                Ok(r) => r,
                Err(e) => {
                    store.save_config(before)?;
                    return Err(e.into());
                }
            };
            ctx.record(
                &store,
                &lock,
                &plane,
                cplane::ledger::Event {
                    op: cplane::ledger::Op::PlaneAdd,
                    refs: vec!["HEAD".into(), format!("checkpoints/{}", r.snapshot.name)],
                    paths: Vec::new(),
                    snapshot: Some(r.id),
                    key: None,
                    message: format!(
                        "plane {} added at {}",
                        plane.name,
                        if plane.path.is_empty() { "." } else { &plane.path }
                    ),
                },
            )?;
            writeln!(
                ctx.out,
                "added plane {} at {} (checkpoint {}, {}, {})",
                plane.name,
                if plane.path.is_empty() { "." } else { &plane.path },
                r.snapshot.name,
                output::count(r.snapshot.files, "file"),
                output::size(r.snapshot.bytes)
            )?;
            // The plane it was carved out of records that, from its HEAD (nothing rescanned).
            if let Some(parent) = plane.root.parent()
                && let Ok(outer) = store.plane_containing(parent)
                && outer.name != plane.name
                && let Some((id, s)) = seal_carve_out(&mut store, &lock, &outer, &plane.name)?
            {
                ctx.record(
                    &store,
                    &lock,
                    &outer,
                    cplane::ledger::Event {
                        op: cplane::ledger::Op::PlaneAdd,
                        refs: vec!["HEAD".into(), format!("checkpoints/{}", s.name)],
                        paths: vec![plane.path.clone()],
                        snapshot: Some(id),
                        key: None,
                        message: format!("carved out plane {} at {}", plane.name, plane.path),
                    },
                )?;
                writeln!(
                    ctx.out,
                    "plane {} no longer covers {}: recorded as its checkpoint {} ({} files)",
                    outer.name, plane.path, s.name, s.files
                )?;
            }
            Ok(0)
        }
        PlaneCmd::List { json } => {
            let store = ctx.store()?;
            let mut rows = Vec::new();
            for p in store.planes() {
                let head = store.head(&p.name)?;
                let head_s = match head {
                    Some(id) => Some((id, store.read_snapshot(&id)?)),
                    None => None,
                };
                rows.push((p, head_s));
            }
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(p, h)| {
                        json!({
                            "name": p.name, "path": p.path, "root": p.root.display().to_string(), "tier": p.tier,
                            "head": output::head(h.as_ref()),
                        })
                    })
                    .collect();
                writeln!(ctx.out, "{}", serde_json::Value::Array(list))?;
            } else {
                for (p, h) in &rows {
                    writeln!(
                        ctx.out,
                        "{:<12} {:<24} tier {:<6} HEAD {}",
                        p.name,
                        if p.path.is_empty() { "." } else { &p.path },
                        p.tier.as_deref().unwrap_or("-"),
                        h.as_ref()
                            .map_or("(none)".to_string(), |(id, s)| format!("{} ({})", s.name, id.short(12)))
                    )?;
                }
            }
            Ok(0)
        }
    }
}
