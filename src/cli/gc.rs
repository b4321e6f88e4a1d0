//! `cplane gc`: remove the objects no checkpoint reaches (the library side
//! is `cplane::gc`).

use super::{CmdResult, Ctx, exit, key, output};
use cplane::gc::{GcHooks, GcReport, GcStep};
use cplane::ledger::{Event, Op};
use cplane::plane::Plane;
use cplane::store::Store;
use std::cell::Cell;
use std::io::Write;

/// Remove objects no checkpoint reaches, by rewriting the packs that hold them
///
/// Keeps exactly what the store's roots reach: every plane's HEAD and
/// checkpoints (and a pending rollback's or install's snapshots and
/// blobs), their trees, blobs and ownership registries, and the manifests
/// and attestations of the packages their registries list. As with
/// `restic prune`, a snapshot's parent keeps nothing: the data of a deleted
/// or pruned checkpoint is removed even when a later snapshot names it as
/// its parent, so a secret snapshotted by mistake is really gone.
///
/// Packs that hold only reachable objects are kept as they are; the
/// reachable objects of every other pack are verified and copied, still
/// compressed, into one new pack, which is made durable before any old pack
/// is deleted: a kill at any point leaves a sound store. Readers running
/// meanwhile keep reading the packs they opened. Holds the store lock for
/// the whole run. Recorded in every plane's ledger (`gc`) when something
/// was removed.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Say what would be removed; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// Records the ledger intents at [`GcStep::Planned`] and, in debug builds,
/// pauses where `CPLANE_TEST_GC_PAUSE` says (see `hooks.rs`).
struct Hooks<'a> {
    ctx: &'a Ctx,
    store: &'a Store,
    lock: &'a cplane::store::lock::StoreLock,
    planes: &'a [Plane],
    reached: Cell<Option<GcStep>>,
}

impl GcHooks for Hooks<'_> {
    fn at(&self, step: GcStep) -> cplane::Result<()> {
        self.reached.set(Some(step));
        if step == GcStep::Planned {
            for p in self.planes {
                self.ctx.intend(
                    self.store,
                    self.lock,
                    p,
                    Op::Gc,
                    "gc: remove unreachable objects".into(),
                )?;
            }
        }
        super::hooks::gc_pause(self.store, step);
        Ok(())
    }
}

fn message(r: &GcReport) -> String {
    format!(
        "gc: removed {} ({} of records), {} reclaimed; kept {} in {}",
        output::count(r.removed_objects, "object"),
        output::size(r.removed_bytes),
        output::size(r.bytes_reclaimed),
        output::count(r.reachable_objects, "reachable object"),
        output::count(r.packs_after, "pack"),
    )
}

pub fn cmd_gc(ctx: &mut Ctx, args: GcArgs) -> CmdResult {
    let mut store = ctx.store()?;
    let lock = store.lock(super::interrupt_flag())?;
    let planes = store.planes();
    if !args.dry_run {
        // Every plane's ledger must be able to take its entry before anything
        // changes; what earlier commands left unrecorded is recorded first.
        let signing = key::signing_key(&store)?;
        for p in &planes {
            ctx.check_ledger(&store, &lock, p, signing.as_ref())?;
            let late = cplane::ledger::reconcile(&store, &lock, &p.name, signing.as_ref())?;
            if !late.is_empty() {
                eprintln!(
                    "cplane: recorded {} in the ledger of plane {} that an earlier command left unrecorded",
                    output::count(late.len() as u64, "entry"),
                    p.name
                );
            }
        }
    }
    let bar = ctx.bar("gc");
    let r = {
        let hooks = Hooks {
            ctx,
            store: &store,
            lock: &lock,
            planes: &planes,
            reached: Cell::new(None),
        };
        // `gc` needs the store mutably; the hooks only read it (intents are
        // files of their own), so it runs on a second handle of the same store.
        let mut work = ctx.store()?;
        work.reload()?;
        let r = cplane::gc::gc(&mut work, &lock, args.dry_run, &hooks, ctx.control(&bar));
        if r.is_err() && hooks.reached.get().is_none_or(|s| s < GcStep::Removing) {
            // Nothing was deleted: the intents go with the attempt.
            for p in &planes {
                ctx.unchanged(&store, p);
            }
        }
        r?
    };
    drop(bar);
    if !args.dry_run && r.removed_objects > 0 {
        for p in &planes {
            ctx.record(
                &store,
                &lock,
                p,
                Event {
                    op: Op::Gc,
                    refs: Vec::new(),
                    paths: Vec::new(),
                    snapshot: None,
                    key: None,
                    message: message(&r),
                },
            )?;
        }
    }
    if ctx.json {
        writeln!(ctx.out, "{}", serde_json::to_value(&r).expect("report serialises"))?;
        return Ok(exit::CLEAN);
    }
    let would = if r.dry_run { "would remove" } else { "removed" };
    writeln!(
        ctx.out,
        "{} from {}: {} reachable ({} of records)",
        output::count(r.roots, "root"),
        output::count(planes.len() as u64, "plane"),
        output::count(r.reachable_objects, "object"),
        output::size(r.reachable_bytes),
    )?;
    if r.removed_objects == 0 {
        writeln!(ctx.out, "nothing to remove: every stored object is reachable")?;
        return Ok(exit::CLEAN);
    }
    writeln!(
        ctx.out,
        "{would} {} ({} of records{}); {} rewritten, {} kept as they are",
        output::count(r.removed_objects, "object"),
        output::size(r.removed_bytes),
        if r.duplicates_removed > 0 {
            format!(", {} of them second copies", r.duplicates_removed)
        } else {
            String::new()
        },
        output::count(r.packs_rewritten, "pack"),
        output::count(r.packs_kept, "pack"),
    )?;
    writeln!(
        ctx.out,
        "{} {}: packs {} -> {} in {:.2} s",
        if r.dry_run { "would reclaim about" } else { "reclaimed" },
        output::size(r.bytes_reclaimed),
        output::size(r.store_bytes_before),
        output::size(r.store_bytes_after),
        r.seconds,
    )?;
    Ok(exit::CLEAN)
}
