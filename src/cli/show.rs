//! `cplane show`.

use super::log::snapshot_json;
use super::{CmdResult, Ctx, output};
use cplane::diff::{TreeSource, lookup_path};
use cplane::id::{MIN_PREFIX_LEN_HEX, ObjectId, TreeId, is_hex};
use cplane::object::{EntryKind, ObjectKind, Tree, TreeEntry};
use cplane::store::Store;
use cplane::timefmt::rfc3339;
use serde_json::{Value, json};
use std::io::Write;

/// Show a snapshot, a path inside it, or any object by id
///
/// REF is a checkpoint name, HEAD, HEAD~N, PLANE:REF, or an id prefix (8+ hex
/// digits). For a snapshot: its metadata and file count. With PATH: that
/// path's entry in the snapshot (a directory lists its entries). An id prefix
/// of a tree or blob shows that object.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The snapshot or object to show
    pub r#ref: String,
    /// A path inside the snapshot, relative to the plane root (or `./…` to the current directory)
    pub path: Option<std::ffi::OsString>,
    /// With a package id (PKG-…): print its attestation instead of its manifest
    #[arg(long)]
    pub attestation: bool,
}

/// `cplane show PKG-…`: the installed package's manifest (or attestation),
/// as install stored it.
fn show_package(
    ctx: &mut Ctx,
    store: &cplane::store::Store,
    plane: &cplane::plane::Plane,
    id: &str,
    attestation: bool,
) -> super::CmdResult {
    let scope = cplane::scope::Scope::open(plane)?;
    let manifest = cplane::package::install::installed_manifest(store, &scope, id)?.ok_or_else(|| {
        super::CliError::Usage(
            format!(
                "no installed package {id} in {} of plane {}",
                cplane::governance::PACKAGES,
                plane.name
            ),
            Some("`cplane install FILE` installs one".into()),
        )
    })?;
    let body = if attestation {
        cplane::governance::plane::read_blob(store, &manifest.attestation)?
    } else {
        manifest.to_canonical_bytes()
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    writeln!(ctx.out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
    Ok(0)
}

fn entry_json(e: &TreeEntry, path: &[u8]) -> Value {
    let mut m = output::path_obj(path);
    let side = output::side(&(e.into()));
    if let Value::Object(side) = side {
        m.extend(side);
    }
    Value::Object(m)
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        b.to_vec()
    } else {
        [a, b"/", b].concat()
    }
}

fn print_tree(ctx: &mut Ctx, tree: &Tree, prefix: &[u8], json: bool) -> std::io::Result<()> {
    if json {
        let list: Vec<Value> = tree
            .entries
            .iter()
            .map(|e| entry_json(e, &join(prefix, &e.name)))
            .collect();
        writeln!(ctx.out, "{}", json!({"kind": "directory", "entries": list}))
    } else {
        for e in &tree.entries {
            let slash = if e.kind == EntryKind::Dir { "/" } else { "" };
            let mode = if e.kind == EntryKind::Symlink {
                "    ".to_string()
            } else if e.meta.is_legacy_mode() {
                "?".repeat(4)
            } else {
                format!("{:04o}", e.meta.perm())
            };
            writeln!(
                ctx.out,
                "{:<9} {mode} {:>11}  {}  {:>9}  {}{slash}",
                e.kind.name(),
                e.meta.owner_string(),
                e.id.short(12),
                output::size(e.size),
                output::path(&e.name)
            )?;
        }
        Ok(())
    }
}

fn show_object(ctx: &mut Ctx, store: &Store, id: ObjectId, kind: ObjectKind, json: bool) -> super::CmdResult {
    match kind {
        ObjectKind::Tree => {
            let t = store.read_tree(&TreeId(id))?;
            print_tree(ctx, &t, b"", json)?;
        }
        ObjectKind::Blob => {
            let mut sink = std::io::sink();
            let size = store.read_blob_to(&id, &mut sink, store.dir())?;
            if json {
                writeln!(ctx.out, "{}", json!({"kind": "blob", "id": id.to_hex(), "size": size}))?;
            } else {
                writeln!(ctx.out, "blob {id}\nsize {size} bytes")?;
            }
        }
        ObjectKind::Snapshot => unreachable!("snapshots resolve through revision::resolve"),
    }
    Ok(0)
}

pub fn cmd_show(ctx: &mut Ctx, args: ShowArgs) -> CmdResult {
    let (store, plane) = ctx.open_store_only()?;
    if args.r#ref.starts_with("PKG-") && args.path.is_none() {
        return show_package(ctx, &store, &plane, &args.r#ref, args.attestation);
    }
    let resolved = match cplane::revision::resolve(&store, &plane, &args.r#ref) {
        Ok(r) => r,
        Err(e @ cplane::Error::RefNotFound { .. }) => {
            // Perhaps an id prefix of a tree or blob.
            if args.path.is_none() && is_hex(&args.r#ref) && args.r#ref.len() >= MIN_PREFIX_LEN_HEX {
                let found = store.find_prefix(&args.r#ref, None);
                match found.as_slice() {
                    [(id, kind)] => return show_object(ctx, &store, *id, *kind, ctx.json),
                    [] => {}
                    many => {
                        return Err(cplane::Error::AmbiguousRef {
                            spec: args.r#ref.clone(),
                            candidates: many.iter().map(|(id, k)| format!("{} {id}", k.name())).collect(),
                        }
                        .into());
                    }
                }
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let s = &resolved.snapshot;
    if let Some(p) = &args.path {
        let rel = super::plane_path(ctx, &store, &resolved.plane, p, false)?;
        let src = TreeSource::store(&store);
        let entry = if rel.is_root() {
            None
        } else {
            lookup_path(&src, &s.root, &rel)?
        };
        let tree = match &entry {
            None if rel.is_root() => Some(store.read_tree(&s.root)?),
            Some(e) if e.kind == EntryKind::Dir => Some(store.read_tree(&e.tree_id())?),
            _ => None,
        };
        match (entry, tree) {
            (_, Some(t)) => print_tree(ctx, &t, rel.as_bytes(), ctx.json)?,
            (Some(e), None) => {
                if ctx.json {
                    writeln!(ctx.out, "{}", entry_json(&e, rel.as_bytes()))?;
                } else {
                    writeln!(ctx.out, "path   {}", output::path(rel.as_bytes()))?;
                    writeln!(ctx.out, "kind   {}", e.kind_label())?;
                    writeln!(ctx.out, "blob   {}", e.id)?;
                    writeln!(ctx.out, "size   {} bytes", e.size)?;
                    if e.kind == EntryKind::Symlink {
                        let target = store.read(&e.id, cplane::object::ObjectKind::Blob)?;
                        writeln!(ctx.out, "target {}", output::path(&target))?;
                    } else {
                        writeln!(ctx.out, "mode   {}", e.meta.mode_string())?;
                    }
                    writeln!(ctx.out, "owner  {}", e.meta.owner_string())?;
                }
            }
            (None, None) => {
                return Err(cplane::Error::NoSuchPath {
                    path: rel.display(),
                    what: format!("snapshot {} ({})", s.name, resolved.id.short(12)),
                }
                .into());
            }
        }
        return Ok(0);
    }
    if ctx.json {
        writeln!(ctx.out, "{}", snapshot_json(&resolved.id, s))?;
    } else {
        writeln!(ctx.out, "snapshot   {}", resolved.id)?;
        writeln!(ctx.out, "checkpoint {}", s.name)?;
        writeln!(ctx.out, "plane      {}", s.plane)?;
        writeln!(ctx.out, "kind       {}", s.kind.label())?;
        if let cplane::object::SnapshotKind::Rollback { target } = &s.kind {
            writeln!(ctx.out, "target     {target}")?;
        }
        writeln!(ctx.out, "time       {}", rfc3339(s.time_unix_ns))?;
        writeln!(ctx.out, "root       {}", s.root)?;
        match s.parent {
            Some(p) => {
                let retained = cplane::retention::retained(&store, &s.plane)?;
                let pruned = cplane::retention::pruned_before(&store, &retained, s);
                writeln!(
                    ctx.out,
                    "parent     {p}{}",
                    if pruned {
                        " (pruned: history before this was deleted)"
                    } else {
                        ""
                    }
                )?
            }
            None => writeln!(ctx.out, "parent     (none)")?,
        }
        writeln!(ctx.out, "files      {}", s.files)?;
        writeln!(ctx.out, "bytes      {} ({})", s.bytes, output::size(s.bytes))?;
        if !s.message.is_empty() {
            writeln!(ctx.out, "message    {}", s.message)?;
        }
    }
    Ok(0)
}
