//! Phase timings for whoever is making a command faster, in the spirit of
//! git's `GIT_TRACE_PERFORMANCE`: with `CPLANE_TRACE_PERF=1` in the
//! environment, every [`phase`] mark writes one line to standard error,
//!
//! ```text
//! cplane perf:    12.3 ms  (+   4.1 ms)  install: read
//! ```
//!
//! the milliseconds since the first mark of the process and since the one
//! before. Without the variable a mark costs one relaxed atomic load.
//! The lines are for people, not scripts: their wording may change.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

/// 0: not looked at yet, 1: off, 2: on.
static ENABLED: AtomicU8 = AtomicU8::new(0);
/// (first mark, last mark).
static MARKS: Mutex<Option<(Instant, Instant)>> = Mutex::new(None);

/// Whether `CPLANE_TRACE_PERF` is set to something other than `0` or empty.
pub fn enabled() -> bool {
    match ENABLED.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = std::env::var_os("CPLANE_TRACE_PERF").is_some_and(|v| !v.is_empty() && v != "0");
            ENABLED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// Marks the end of the phase `what` (see the module documentation).
pub fn phase(what: &str) {
    if !enabled() {
        return;
    }
    let now = Instant::now();
    let mut marks = MARKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (first, last) = marks.get_or_insert((now, now));
    let line = format!(
        "cplane perf: {:9.1} ms  (+{:7.1} ms)  {what}\n",
        now.duration_since(*first).as_secs_f64() * 1e3,
        now.duration_since(*last).as_secs_f64() * 1e3,
    );
    *last = now;
    drop(marks);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
