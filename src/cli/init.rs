//! `cplane init`.

use super::{CmdResult, Ctx, output};
use cplane::object::SnapshotKind;
use cplane::progress::Progress;
use cplane::snapshot::{SealOptions, seal};
use cplane::store::Store;
use std::io::Write;
use std::path::PathBuf;

/// Create a store in DIR and seal plane `main` as its first checkpoint
///
/// Creates `DIR/.cp` (objects, refs, stat cache, lock), defines plane `main`
/// covering DIR, and snapshots every file below it. If some file cannot be
/// stored (unreadable, a FIFO, socket or device), init reports it and leaves
/// no store behind.
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
        return Err(cplane::Error::invalid(format!("{}: is a file, not a directory", dir.display())).into());
    }
    if !dir.is_dir() {
        return Err(cplane::Error::invalid(format!("{}: no such directory; create it first", dir.display())).into());
    }
    let mut store = Store::init(&dir)?;
    let store_dir = store.dir().to_path_buf();
    let result = (|| {
        let lock = store.lock()?;
        let plane = store.plane("main")?;
        let bar = output::Bar::new("init");
        let opts = SealOptions {
            message: "init".into(),
            kind: SnapshotKind::Init,
            ..SealOptions::default()
        };
        let r = seal(&mut store, &lock, &plane, opts, &bar as &dyn Progress)?;
        Ok::<_, cplane::Error>((plane, r))
    })();
    let (plane, r) = match result {
        Ok(x) => x,
        Err(e) => {
            // Nothing half-made stays behind.
            let _ = std::fs::remove_dir_all(&store_dir);
            return Err(e.refused_as("init").into());
        }
    };
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
    }
    Ok(0)
}
