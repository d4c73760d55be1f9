//! Wall-clock timestamps from the monotonic clock.
//!
//! Every operation reads the monotonic clock at start and close (for its duration).
//! Reading the wall clock as well would be a third clock read per span; instead each
//! thread keeps an anchor pair (monotonic, wall) taken at most a second ago and derives
//! wall time from it, so timestamps stay within the clock's drift over one second of
//! `SystemTime::now()`, and start + duration = end exactly.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

const REANCHOR: Duration = Duration::from_secs(1);

thread_local! {
    static ANCHOR: Cell<Option<(Instant, SystemTime)>> = const { Cell::new(None) };
}

/// The wall-clock time corresponding to `now` (a just-read monotonic instant).
pub(crate) fn wall_time(now: Instant) -> SystemTime {
    let anchored = ANCHOR
        .try_with(|cell| {
            if let Some((mono, wall)) = cell.get()
                && let Some(since) = now.checked_duration_since(mono)
                && since < REANCHOR
            {
                return wall + since;
            }
            let wall = SystemTime::now();
            cell.set(Some((now, wall)));
            wall
        })
        .ok();
    anchored.unwrap_or_else(SystemTime::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_wall_time_tracks_the_system_clock() {
        // Bracketed by system-clock reads, so that being descheduled between the
        // reads widens the bracket instead of failing the test; the slack is for the
        // anchor pair, itself two reads.
        let slack = Duration::from_millis(5);
        for _ in 0..3 {
            let before = SystemTime::now();
            let derived = wall_time(Instant::now());
            let after = SystemTime::now();
            assert!(
                before - slack <= derived && derived <= after + slack,
                "{derived:?} outside {before:?}..{after:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
