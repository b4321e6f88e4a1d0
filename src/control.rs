//! What a long operation is given besides its inputs: where to report progress
//! and a cancellation token to poll.
//!
//! Library code never installs signal handlers or reads global state: the
//! caller (the CLI, a test, an embedder) owns an [`AtomicBool`] and sets it to
//! ask the operation to stop, as gitoxide's `should_interrupt: &AtomicBool`
//! does. Operations poll [`Control::check`] at safe points — between
//! directories while scanning, before a snapshot's refs move, before a
//! checkout's journal is written — and stop with
//! [`crate::Error::Interrupted`], having changed nothing visible. Past a
//! commit point (refs moving, a journal being applied) they run to the end.

use crate::error::{Error, Result};
use crate::progress::{NoProgress, Progress};
use std::sync::atomic::{AtomicBool, Ordering};

/// Progress sink and cancellation token for one operation.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    /// Receives progress; must be cheap and thread-safe.
    pub progress: &'a dyn Progress,
    /// Set (by anyone, from any thread or a signal handler) to ask the operation to stop.
    pub interrupt: &'a AtomicBool,
}

/// Never set: the interrupt flag of operations that cannot be interrupted.
pub(crate) static NEVER: AtomicBool = AtomicBool::new(false);

impl<'a> Control<'a> {
    /// Progress to `progress`, stopping when `interrupt` becomes true.
    pub fn new(progress: &'a dyn Progress, interrupt: &'a AtomicBool) -> Self {
        Control { progress, interrupt }
    }

    /// True once someone asked the operation to stop.
    pub fn is_interrupted(&self) -> bool {
        self.interrupt.load(Ordering::Relaxed)
    }

    /// Stops at a safe point when asked to.
    ///
    /// # Errors
    /// [`Error::Interrupted`].
    pub fn check(&self) -> Result<()> {
        if self.is_interrupted() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

impl Control<'static> {
    /// No progress, never interrupted: for tests and one-shot library calls.
    pub fn quiet() -> Self {
        Control {
            progress: &NoProgress,
            interrupt: &NEVER,
        }
    }
}

impl std::fmt::Debug for Control<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("interrupted", &self.is_interrupted())
            .finish()
    }
}
