//! Finishing an interrupted checkout: replaying its journal from the start
//! (every operation is idempotent; staged files, being gone, are extracted
//! again from the store; after a failed flush, [`super::UNFLUSHED`], every
//! file is, flushed one by one).

use super::journal::{self, Journal, journal_path};
use super::{Applied, CheckoutHooks, apply, finish};
use crate::control::Control;
use crate::error::Result;
use crate::scope::Scope;
use crate::store::Store;
use crate::store::lock::WorktreeLock;
use std::collections::HashMap;

/// What finishing an interrupted checkout did.
#[derive(Debug)]
pub struct Recovered {
    /// The journal that was finished.
    pub journal: Journal,
    /// What the replay wrote (or found already in place), removed and set,
    /// and what it could not.
    pub applied: Applied,
}

/// Replays the journal of an interrupted checkout of `scope`'s plane. The
/// caller holds the store lock and has sealed what it found in the plane
/// (edits made since the crash are kept in that checkpoint).
///
/// # Errors
/// [`crate::Error::DamagedFile`] for a damaged journal; I/O or store errors while applying.
pub fn recover(store: &Store, scope: &Scope, hooks: &dyn CheckoutHooks, ctl: Control<'_>) -> Result<Option<Recovered>> {
    let jp = journal_path(store, scope.plane());
    let mark = store.plane_dir(scope.plane()).join(super::UNFLUSHED);
    if !jp.exists() {
        return Ok(None);
    }
    let j = journal::load(&jp)?;
    let _writing = WorktreeLock::exclusive(&store.plane_dir(scope.plane()), ctl.interrupt)?;
    let mut applier = apply::Applier::new(store, scope, HashMap::new(), None, hooks, ctl);
    // The checkout's flush failed: what reads back may be only in memory.
    // (A mark that cannot be looked at counts as there.)
    applier.rewrite_all = mark.try_exists().unwrap_or(true);
    applier.run(&j.ops)?;
    let mut applied = applier.out;
    // What the replay found whole may be whole only in the page cache (the
    // process was killed before its flush ended): flushed before the
    // journal goes.
    applied.unsynced_data = true;
    finish(store, scope, &j, &applied)?;
    Ok(Some(Recovered { journal: j, applied }))
}
