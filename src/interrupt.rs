//! Cooperative interruption (Ctrl-C, SIGTERM, SIGHUP).
//!
//! The binary installs [`install_handler`]; the signal only sets a flag.
//! Long operations poll [`check`] at safe points — between directories while
//! scanning, before a snapshot's refs move, before a rollback's journal is
//! written — and stop with [`crate::Error::Interrupted`], having changed
//! nothing visible. Once a commit point is passed (refs moving, a journal
//! being applied), the operation runs to the end and the signal is honoured
//! after it. A second signal kills the process (the default action is
//! restored by the first), which is safe: every write is atomic or journalled.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    // An atomic store and signal(2), both async-signal-safe. Restoring the
    // default action means a second signal ends the process at once.
    INTERRUPTED.store(true, Ordering::SeqCst);
    // SAFETY: signal(2) is async-signal-safe; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
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
