//! Checkout hooks for the integration tests, in debug builds only (release
//! builds always get [`cplane::checkout::NoHooks`]). Environment:
//!
//! * `CPLANE_TEST_PAUSE_AFTER_OPS=N`: after the N-th applied journal
//!   operation, create `.cp/planes/<plane>/paused` and sleep (the test kills
//!   the process there);
//! * `CPLANE_TEST_PAUSE_STAGED=1`: when everything is staged (nothing in the
//!   plane changed yet), create `.cp/planes/<plane>/staged` and wait until the
//!   test deletes it (at most 60 s);
//! * `CPLANE_TEST_NO_TMPFILE=1`: never stage unnamed (`O_TMPFILE`), as on a
//!   filesystem without it: files are written under `.cplane-staging~` at apply time;
//! * `CPLANE_TEST_FAIL_FLUSH=1`: the flush of a checkout's staged data
//!   fails as with `EIO` ([`CheckoutHooks::fail_flush`]);
//! * `CPLANE_TEST_PAUSE_AT_STEP=NAME`: at the named step after a checkout
//!   ([`CheckoutHooks::step`]), create `.cp/planes/<plane>/paused` and wait
//!   until the test deletes it (or kills the process; at most 300 s);
//! * `CPLANE_TEST_GC_PAUSE=STEP`: when `cplane gc` reaches STEP (`planned`,
//!   `packed`, `caches-pruned`, `removing`, `removed`: [`cplane::gc::GcStep`]),
//!   create `.cp/gc-paused` and sleep (the test kills the process there).

use cplane::checkout::CheckoutHooks;
use cplane::plane::Plane;
use cplane::store::Store;

#[cfg(debug_assertions)]
struct EnvHooks {
    dir: std::path::PathBuf,
    pause_after: Option<usize>,
    pause_staged: bool,
    no_tmpfile: bool,
    pause_step: Option<String>,
    fail_flush: bool,
}

#[cfg(debug_assertions)]
impl CheckoutHooks for EnvHooks {
    fn staged(&self) {
        if self.pause_staged {
            let marker = self.dir.join("staged");
            let _ = std::fs::write(&marker, b"");
            let t0 = std::time::Instant::now();
            while marker.exists() && t0.elapsed() < std::time::Duration::from_secs(60) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    fn stage_unnamed(&self) -> bool {
        !self.no_tmpfile
    }

    fn fail_flush(&self) -> bool {
        self.fail_flush
    }

    fn step(&self, name: &str) {
        if self.pause_step.as_deref() == Some(name) {
            let marker = self.dir.join("paused");
            let _ = std::fs::write(&marker, b"");
            let t0 = std::time::Instant::now();
            while marker.exists() && t0.elapsed() < std::time::Duration::from_secs(300) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    fn applied(&self, done: usize) {
        if self.pause_after == Some(done) {
            let _ = std::fs::write(self.dir.join("paused"), b"");
            std::thread::sleep(std::time::Duration::from_secs(300));
        }
    }
}

/// The hooks for a checkout of `plane`.
pub fn for_plane(store: &Store, plane: &Plane) -> Box<dyn CheckoutHooks> {
    #[cfg(debug_assertions)]
    {
        let pause_after = std::env::var("CPLANE_TEST_PAUSE_AFTER_OPS")
            .ok()
            .and_then(|v| v.parse().ok());
        let pause_staged = std::env::var_os("CPLANE_TEST_PAUSE_STAGED").is_some();
        let no_tmpfile = std::env::var_os("CPLANE_TEST_NO_TMPFILE").is_some();
        let pause_step = std::env::var("CPLANE_TEST_PAUSE_AT_STEP").ok();
        let fail_flush = std::env::var_os("CPLANE_TEST_FAIL_FLUSH").is_some();
        if pause_after.is_some() || pause_staged || no_tmpfile || pause_step.is_some() || fail_flush {
            // Markers of an earlier (killed) run would wake the test too early.
            let dir = store.plane_dir(&plane.name);
            let _ = std::fs::remove_file(dir.join("paused"));
            let _ = std::fs::remove_file(dir.join("staged"));
            return Box::new(EnvHooks {
                dir: store.plane_dir(&plane.name),
                pause_after,
                pause_staged,
                no_tmpfile,
                pause_step,
                fail_flush,
            });
        }
    }
    let _ = (store, plane);
    Box::new(cplane::checkout::NoHooks)
}

/// Pauses a gc at `step` when `CPLANE_TEST_GC_PAUSE` names it (debug builds only).
pub fn gc_pause(store: &Store, step: cplane::gc::GcStep) {
    #[cfg(debug_assertions)]
    if std::env::var("CPLANE_TEST_GC_PAUSE").is_ok_and(|v| v == step.name()) {
        let _ = std::fs::write(store.dir().join("gc-paused"), b"");
        std::thread::sleep(std::time::Duration::from_secs(300));
    }
    let _ = (store, step);
}

/// No remote hooks.
pub struct NoRemote;

impl cplane::remote::RemoteHooks for NoRemote {}

/// Pauses a push or pull where `CPLANE_TEST_REMOTE_PAUSE` says (debug builds).
#[cfg(debug_assertions)]
struct RemotePause {
    marker: std::path::PathBuf,
    step: String,
}

#[cfg(debug_assertions)]
impl cplane::remote::RemoteHooks for RemotePause {
    fn at(&self, step: &str) {
        if step == self.step {
            let _ = std::fs::write(&self.marker, b"");
            std::thread::sleep(std::time::Duration::from_secs(300));
        }
    }
}

/// The hooks of a push or pull: in debug builds, `CPLANE_TEST_REMOTE_PAUSE=STEP`
/// (`pack-uploaded`, `index-uploaded`, `head-moved`, `imported`) creates
/// `.cp/remote-paused` at STEP and sleeps (the test kills the process there).
pub fn remote_hooks(store: &Store) -> Box<dyn cplane::remote::RemoteHooks> {
    #[cfg(debug_assertions)]
    if let Ok(step) = std::env::var("CPLANE_TEST_REMOTE_PAUSE") {
        let marker = store.dir().join("remote-paused");
        let _ = std::fs::remove_file(&marker);
        return Box::new(RemotePause { marker, step });
    }
    let _ = store;
    Box::new(NoRemote)
}
