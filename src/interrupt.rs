//! Cooperative interruption (Ctrl-C, SIGTERM, SIGHUP).
//!
//! The binary installs [`install_handler`]; the signal only sets a flag.
//! Long operations poll [`check`] at safe points — between directories while
//! scanning, before a snapshot's refs move, before a rollback's journal is
//! written — and stop with [`crate::Error::Interrupted`], having changed
//! nothing visible. Once a commit point is passed (refs moving, a journal
//! being applied), the operation runs to the end and the signal is honoured
//! after it.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT, SIGTERM and SIGHUP to the flag instead of killing the process.
pub fn install_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is an `extern "C"` function that only performs an
        // atomic store, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// True once a signal has asked the process to stop.
pub fn is_set() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Marks the process as interrupted (for tests and embedders).
pub fn set() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Stops at a safe point when a signal arrived.
///
/// # Errors
/// [`crate::Error::Interrupted`].
pub fn check() -> crate::Result<()> {
    if is_set() {
        Err(crate::Error::Interrupted)
    } else {
        Ok(())
    }
}
