//! `cplane plane add|list|remove`.

use super::{CmdResult, Ctx, output};
use cplane::ledger::Op;
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
    /// Remove plane NAME: its files stay, its history is archived
    ///
    /// The plane's entry leaves the configuration; its files stay on disk.
    /// A plane it was carved out of covers them again: that plane's next
    /// `snapshot` records them (`status` shows them as added). The plane's
    /// refs, stat cache and ledger move to
    /// `.cp/planes-removed/NAME-YYYYMMDDTHHMMSSZ` (UTC), whose checkpoints
    /// stay gc roots; `--delete-history` deletes them instead (their
    /// objects become garbage for a gc). Recorded as `plane-remove` in the
    /// ledger of the plane that covers the files again, else of `main`
    /// (else of the first plane left); once the ledger trusts keys, only
    /// an admin key may sign it. Refused (exit 2) for the only plane of the
    /// store and for a plane with a checkout or install not finished.
    Remove {
        /// Plane name
        name: String,
        /// Delete the plane's refs, stat cache and ledger instead of
        /// archiving them
        #[arg(long)]
        delete_history: bool,
    },
    /// List planes with their roots, tiers and HEADs
    ///
    /// One line per plane: name, root (relative to the store root), tier and
    /// HEAD checkpoint. A plane nested in another is not part of it.
    List,
}

/// True for `plane list`, whose output is data (see `--quiet`).
pub fn prints_data(args: &PlaneArgs) -> bool {
    matches!(args.cmd, PlaneCmd::List)
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
                // What its ledger missed (an interrupted command's intent)
                // comes before the carve-out's entry, which would drop it.
                cplane::ledger::reconcile(&store, &lock, &outer.name, signing.as_ref())?;
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
        PlaneCmd::Remove { name, delete_history } => remove(ctx, &name, delete_history),
        PlaneCmd::List => {
            let json = ctx.json;
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

/// `cplane plane remove NAME [--delete-history]`.
fn remove(ctx: &mut Ctx, name: &str, delete_history: bool) -> CmdResult {
    use cplane::plane::RemovedHistory;
    let mut store = ctx.store()?;
    let lock = store.lock(super::interrupt_flag())?;
    let plane = store.removable_plane(name)?;
    // The entry goes to the plane that covers the files again, else to
    // `main`, else to the first plane left.
    let recorder = match store.parent_plane(&plane) {
        Some(p) => p,
        None => {
            let others: Vec<_> = store.planes().into_iter().filter(|p| p.name != plane.name).collect();
            match others.iter().find(|p| p.name == "main") {
                Some(m) => m.clone(),
                None => others.into_iter().next().expect("removable_plane: not the only plane"),
            }
        }
    };
    // A pending checkout of the recorder was planned with the old carve-outs.
    ctx.finish_journal(&mut store, &lock, &recorder)?;
    let signing = super::key::signing_key(&store)?;
    ctx.check_ledger(&store, &lock, &recorder, signing.as_ref())?;
    check_admin(&store, &recorder, signing.as_ref())?;
    // What its ledger missed (an interrupted command's intent) comes
    // before this command's intent, which would replace it.
    cplane::ledger::reconcile(&store, &lock, &recorder.name, signing.as_ref())?;
    let history = if delete_history {
        RemovedHistory::Delete
    } else {
        RemovedHistory::Archive
    };
    let shown_path = if plane.path.is_empty() { "." } else { &plane.path };
    let intent = format!("removing plane {} at {shown_path}", plane.name);
    ctx.intend(&store, &lock, &recorder, Op::PlaneRemove, intent)?;
    let r = match store.remove_plane(&lock, name, history) {
        Ok(r) => r,
        Err(e) => {
            if matches!(
                e,
                cplane::Error::PlaneRemoveRefused { .. } | cplane::Error::NoSuchPlane { .. }
            ) {
                ctx.unchanged(&store, &recorder);
            }
            return Err(e.into());
        }
    };
    let archived = r
        .archived
        .as_ref()
        .map(|p| p.strip_prefix(store.root()).unwrap_or(p).display().to_string());
    let message = format!(
        "removed plane {} at {shown_path}; {}",
        plane.name,
        match &archived {
            Some(a) => format!("its history is archived in {a}"),
            None => "its history was deleted".to_string(),
        }
    );
    ctx.record(
        &store,
        &lock,
        &recorder,
        cplane::ledger::Event {
            op: Op::PlaneRemove,
            refs: Vec::new(),
            paths: vec![plane.path.clone()],
            snapshot: None,
            key: None,
            message: message.clone(),
        },
    )?;
    if ctx.json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "path": plane.path,
                "archived": archived,
                "history": if delete_history { "deleted" } else { "archived" },
                "parent": r.parent.as_ref().map(|p| p.name.clone()),
                "recorded_in": recorder.name,
            })
        )?;
        return Ok(super::exit::CLEAN);
    }
    writeln!(ctx.out, "{message}; its files stay where they are")?;
    match &r.parent {
        Some(p) => writeln!(
            ctx.out,
            "plane {} covers {shown_path} again: its next `cplane snapshot` records the files (`cplane status --plane {}` shows them as added)",
            p.name, p.name
        )?,
        None => writeln!(ctx.out, "no plane covers {shown_path} now")?,
    }
    Ok(super::exit::CLEAN)
}

/// Once `plane`'s ledger trusts keys, a `plane-remove` entry must be signed
/// by a trusted admin key (`Op::allowed_roles`): refused before anything changes.
fn check_admin(
    store: &cplane::store::Store,
    plane: &cplane::plane::Plane,
    signing: Option<&cplane::keys::PrivateKey>,
) -> cplane::Result<()> {
    let ledger = cplane::ledger::Ledger::of(store, &plane.name);
    let trust = ledger.trust()?;
    if trust.admin_since.is_none() {
        return Ok(());
    }
    let admin = signing.is_some_and(|k| {
        trust
            .signers
            .iter()
            .any(|s| s.key.key_data() == k.public_key().key_data() && s.role == cplane::keys::Role::Admin)
    });
    if admin {
        return Ok(());
    }
    Err(cplane::Error::BadConfig {
        path: ledger.path().to_path_buf(),
        reason: format!(
            "removing a plane is recorded in the ledger of plane {}, which trusts signing keys: it must be signed by a trusted admin key; sign with `cplane key use FILE` (or CPLANE_SIGNING_KEY=FILE)",
            plane.name
        ),
    })
}
