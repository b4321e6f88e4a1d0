//! `cplane init`.

use super::{CliError, CmdResult, Ctx, output};
use std::io::Write;
use std::path::PathBuf;

/// Create a store in DIR and seal plane `main` as its first checkpoint
///
/// Creates `DIR/.cp` (objects, refs, stat cache, lock), defines plane `main`
/// covering DIR, and snapshots everything below it: bytes, modes, owners,
/// symlinks, empty directories and hard links. The store is built under a
/// temporary name and becomes `.cp` only once the first checkpoint is
/// durable: if some file cannot be stored (unreadable, a FIFO, socket or
/// device), or the disk fills up, init reports it and leaves no store behind.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Directory to govern (default: the current directory)
    #[arg(value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn cmd_init(ctx: &mut Ctx, args: InitArgs) -> CmdResult {
    let dir = match &args.directory {
        Some(d) => ctx.cwd.join(d),
        None => ctx.cwd.clone(),
    };
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::Usage(
            format!("{}: is a file, not a directory", dir.display()),
            None,
        ));
    }
    if !dir.is_dir() {
        return Err(CliError::Usage(
            format!("{}: no such directory", dir.display()),
            Some("create it first (mkdir -p)".into()),
        ));
    }
    let bar = output::Bar::new("init");
    let (store, plane, r) = cplane::snapshot::init(&dir, ctx.control(&bar))?;
    drop(bar);
    if args.json {
        writeln!(
            ctx.out,
            "{}",
            serde_json::json!({
                "store": store.dir().display().to_string(),
                "plane": plane.name,
                "checkpoint": r.snapshot.name,
                "snapshot": r.id.to_hex(),
                "root": r.snapshot.root.to_hex(),
                "files": r.snapshot.files,
                "dirs": r.dirs,
                "bytes": r.snapshot.bytes,
            })
        )?;
    } else {
        writeln!(ctx.out, "initialized cplane store {}", store.dir().display())?;
        writeln!(
            ctx.out,
            "plane main: checkpoint {} (root {}, {}, {})",
            r.snapshot.name,
            r.snapshot.root.short(12),
            output::count(r.snapshot.files, "file"),
            output::size(r.snapshot.bytes)
        )?;
        output::nested_store_notes(&mut ctx.out, &r.nested_stores)?;
    }
    Ok(0)
}
