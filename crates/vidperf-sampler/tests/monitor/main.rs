//! The resource monitor against the fake NVML (the real nvml-wrapper code path over a
//! scripted C library) and against this machine's real process figures.

mod fake;
mod figures;
mod real;

use std::time::{Duration, Instant};

/// Polls `cond` every millisecond for up to `limit`; true when it held.
pub(crate) fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}
