//! `cplane cat`.

use super::{CliError, CmdResult, Ctx, output};
use cplane::diff::{TreeSource, lookup_path};
use cplane::object::EntryKind;
use std::io::Write;

/// Write one file's bytes at REF to stdout
///
/// Like `git show REF:path` and `restic dump`: `cplane cat HEAD~2:etc/hosts`.
/// The bytes are verified against their BLAKE3 id before any is written (a
/// corrupt object writes nothing and exits 3), then streamed from the store.
/// A symlink prints its target; a directory lists its entries (`cplane show
/// REF PATH` says more). PATH is relative to the plane root, or to the
/// current directory when it starts with `./` or `../`; `REF:` alone lists
/// the root. REF may name another plane: `docs:HEAD:index.md`.
#[derive(clap::Args, Debug)]
pub struct CatArgs {
    /// REF:PATH, e.g. HEAD:README, VER-20261130120000:src/main.rs, docs:HEAD:index.md
    #[arg(value_name = "REF:PATH")]
    pub spec: std::ffi::OsString,
}

/// Splits `[PLANE:]REF:PATH` (the path may be any bytes). With two or more
/// colons and a first part that is a plane name, the first part is the plane.
fn split(store: &cplane::store::Store, spec: &[u8]) -> Option<(String, Vec<u8>)> {
    let colon = |b: &[u8]| b.iter().position(|&c| c == b':');
    let i = colon(spec)?;
    let (first, rest) = (std::str::from_utf8(&spec[..i]).ok()?, &spec[i + 1..]);
    if let Some(j) = colon(rest)
        && store.plane(first).is_ok()
    {
        let rev = std::str::from_utf8(&rest[..j]).ok()?;
        return Some((format!("{first}:{rev}"), rest[j + 1..].to_vec()));
    }
    Some((first.to_string(), rest.to_vec()))
}

pub fn cmd_cat(ctx: &mut Ctx, args: CatArgs) -> CmdResult {
    use std::os::unix::ffi::OsStrExt;
    let (store, plane) = ctx.open_store_only()?;
    let Some((rev, path)) = split(&store, args.spec.as_bytes()) else {
        return Err(CliError::Usage(
            format!("`{}` is not REF:PATH", args.spec.to_string_lossy()),
            Some("write e.g. `cplane cat HEAD:README` (REF:PATH, as `git show` takes it)".into()),
        ));
    };
    let resolved = cplane::revision::resolve(&store, &plane, &rev)?;
    let rel = super::plane_path(ctx, &store, &resolved.plane, std::ffi::OsStr::from_bytes(&path), false)?;
    let src = TreeSource::store(&store);
    let tree_id = if rel.is_root() {
        Some(resolved.snapshot.root)
    } else {
        let entry = lookup_path(&src, &resolved.snapshot.root, &rel)?.ok_or_else(|| cplane::Error::NoSuchPath {
            path: rel.display(),
            what: format!("snapshot {} ({})", resolved.snapshot.name, resolved.id.short(12)),
        })?;
        match entry.kind {
            EntryKind::Dir => Some(entry.tree_id()),
            EntryKind::Symlink => {
                let target = store.read(&entry.id, cplane::object::ObjectKind::Blob)?;
                ctx.out.write_all(&target)?;
                ctx.out.write_all(b"\n")?;
                None
            }
            EntryKind::File => {
                // Verify the whole blob first: a damaged object never reaches stdout
                // (`cplane cat REF:f > f` must not leave a damaged copy behind).
                store.read_blob_to(&entry.id, &mut std::io::sink(), std::path::Path::new("stdout"))?;
                match store.read_blob_to(&entry.id, &mut ctx.out, std::path::Path::new("stdout")) {
                    Ok(_) => {}
                    // A closed pipe (`| head`) ends quietly, as it does for cat.
                    Err(cplane::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(0);
                    }
                    Err(e) => return Err(e.into()),
                }
                None
            }
        }
    };
    if let Some(id) = tree_id {
        let t = store.read_tree(&id)?;
        for e in &t.entries {
            let slash = if e.kind == EntryKind::Dir { "/" } else { "" };
            writeln!(ctx.out, "{}{slash}", output::path(&e.name))?;
        }
    }
    Ok(0)
}
