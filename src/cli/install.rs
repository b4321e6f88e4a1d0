//! `cplane install`.

use super::{CliError, CmdResult, Ctx, exit, output};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// Install a signed package into a governed plane
///
/// Before anything is written, checks the archive (the signature, by a key
/// the plane's ledger trusts as maintainer or admin; the manifest against
/// every member; path safety; size and decompression bounds), the chain
/// (the spec and framework in the plane's registries and bound to each
/// other, the framework authorizing every path, every dependency installed
/// at an acceptable version), and that no path is owned by another owner or
/// exists already. Then writes the files through the checkout engine
/// (journaled; a RESCUE checkpoint holds the state before), adds the
/// package to registries/packages_registry.csv, owns its files by it, seals
/// a checkpoint and records the install in the ledger.
///
/// A newer version of an installed package upgrades it in one step (files
/// the new version lacks are removed, the others replaced; the installed
/// files must be as the old version left them). An older version is
/// refused unless --allow-downgrade (a validly signed old release may carry
/// a known hole), and a second package under an installed id and version
/// with other contents is refused.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The package (a .cppkg file from `cplane pack`)
    pub file: PathBuf,
    /// Install an older version than the one installed
    #[arg(long)]
    pub allow_downgrade: bool,
}

pub fn cmd_install(ctx: &mut Ctx, args: InstallArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    let trust = cplane::ledger::Ledger::of(&store, &plane.name).trust()?;
    if trust.signers.is_empty() {
        return Err(CliError::Usage(
            format!(
                "plane {} trusts no keys, so no package signature can be checked",
                plane.name
            ),
            Some("trust the package's signer first: cplane key trust PUBKEY --role maintainer".into()),
        ));
    }
    let file = ctx.cwd.join(&args.file);
    ctx.intend(
        &store,
        &lock,
        &plane,
        cplane::ledger::Op::Install,
        format!("install {}", file.display()),
    )?;
    let bar = ctx.bar("install");
    let hooks = ctx.hooks(&store, &plane);
    // Refused before anything was written: the intent goes with it.
    let r = cplane::package::install::install(
        &mut store,
        &lock,
        &plane,
        &file,
        cplane::package::install::InstallOptions {
            trusted: &trust.signers,
            allow_downgrade: args.allow_downgrade,
        },
        hooks.as_ref(),
        ctx.control(&bar),
    );
    // A failure after the files were written (the install is pending)
    // changed the plane: its intent stays, for the ledger to record it.
    let pending = store
        .plane_dir(&plane.name)
        .join(cplane::package::install::INSTALL_PENDING)
        .exists();
    let r = if r.is_err() && pending {
        r?
    } else {
        ctx.settle(&store, &plane, r)?
    };
    drop(bar);
    let m = &r.manifest;
    let ev = package_event(
        cplane::ledger::Op::Install,
        m,
        &r.checkpoint,
        &[],
        format!(
            "{} {} {} (spec {}, {} files, manifest {}, signed by {})",
            match &r.replaced {
                Some(v) => format!("upgraded from {v} to"),
                None => "installed".to_string(),
            },
            m.id,
            m.version,
            m.spec_id,
            m.files.len(),
            r.manifest_digest.short(12),
            r.signer.fingerprint()
        ),
    );
    ctx.record(&store, &lock, &plane, ev)?;
    if ctx.json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "package": m.id,
                "version": m.version.to_string(),
                "spec": m.spec_id,
                "files": m.files.len(),
                "manifest_digest": r.manifest_digest.to_hex(),
                "signer": r.signer.fingerprint(),
                "checkpoint": r.checkpoint.1,
                "snapshot": r.checkpoint.0.to_hex(),
                "rescue": r.rescue,
                "replaced": r.replaced,
            })
        )?;
    } else {
        writeln!(
            ctx.out,
            "{} {} {} into plane {}: {}, signed by {} ({}); HEAD is checkpoint {}; the state before is {}",
            match &r.replaced {
                Some(v) => format!("upgraded from {v}:"),
                None => "installed".to_string(),
            },
            m.id,
            m.version,
            plane.name,
            output::count(m.files.len() as u64, "file"),
            r.signer.fingerprint(),
            r.signer.principals.join(","),
            r.checkpoint.1,
            r.rescue
        )?;
    }
    Ok(exit::CLEAN)
}

/// Remove an installed package's files
///
/// Refused while another installed package depends on it, and (unless
/// --force) when one of its files was edited since install: --force keeps
/// the edited bytes in the rescue checkpoint and says where. The files are
/// removed through the checkout engine (a RESCUE checkpoint holds the state
/// before), the package's registry row and ownership rows go, a checkpoint
/// is sealed and the uninstall is recorded in the ledger.
#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// The package id (PKG-…)
    pub id: String,
    /// Remove it even though files were edited (their bytes stay in the rescue checkpoint)
    #[arg(long)]
    pub force: bool,
}

pub fn cmd_uninstall(ctx: &mut Ctx, args: UninstallArgs) -> CmdResult {
    let (mut store, plane) = ctx.open()?;
    let (lock, plane) = ctx.lock_plane(&mut store, &plane)?;
    ctx.intend(
        &store,
        &lock,
        &plane,
        cplane::ledger::Op::Uninstall,
        format!("uninstall {}", args.id),
    )?;
    let bar = ctx.bar("uninstall");
    let hooks = ctx.hooks(&store, &plane);
    // Refused before anything was written: the intent goes with it.
    let r = cplane::package::install::uninstall(
        &mut store,
        &lock,
        &plane,
        &args.id,
        args.force,
        hooks.as_ref(),
        ctx.control(&bar),
    );
    let r = ctx.settle(&store, &plane, r)?;
    drop(bar);
    let m = &r.manifest;
    let ev = package_event(
        cplane::ledger::Op::Uninstall,
        m,
        &r.checkpoint,
        &[&r.rescue],
        format!(
            "uninstalled {} {} ({} files{}); rescue {}",
            m.id,
            m.version,
            m.files.len(),
            if r.edited.is_empty() {
                String::new()
            } else {
                format!(", {} edited, kept in the rescue", r.edited.len())
            },
            r.rescue
        ),
    );
    ctx.record(&store, &lock, &plane, ev)?;
    if ctx.json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "package": m.id,
                "version": m.version.to_string(),
                "files": m.files.len(),
                "edited": r.edited,
                "checkpoint": r.checkpoint.1,
                "rescue": r.rescue,
            })
        )?;
    } else {
        writeln!(
            ctx.out,
            "uninstalled {} {} from plane {}: {} removed; HEAD is checkpoint {}; the state before is {}",
            m.id,
            m.version,
            plane.name,
            output::count(m.files.len() as u64, "file"),
            r.checkpoint.1,
            r.rescue
        )?;
        if !r.edited.is_empty() {
            writeln!(
                ctx.out,
                "{} edited since install: their bytes are in {} (cplane restore {} PATH brings one back)",
                output::count(r.edited.len() as u64, "file"),
                r.rescue,
                r.rescue
            )?;
        }
    }
    Ok(exit::CLEAN)
}

/// The ledger entry of an install or uninstall of `m`: HEAD and the
/// checkpoint it sealed (and the checkpoints `more`) as refs, the package's
/// files as paths, the sealed snapshot.
pub(crate) fn package_event(
    op: cplane::ledger::Op,
    m: &cplane::package::Manifest,
    checkpoint: &(cplane::id::SnapshotId, String),
    more: &[&str],
    message: String,
) -> cplane::ledger::Event {
    let mut ev = cplane::ledger::Event::new(op, message);
    ev.refs = ["HEAD".to_string(), format!("checkpoints/{}", checkpoint.1)]
        .into_iter()
        .chain(more.iter().map(|c| format!("checkpoints/{c}")))
        .collect();
    ev.paths = m.files.iter().map(|f| f.path.clone()).collect();
    ev.snapshot = Some(checkpoint.0);
    ev
}
