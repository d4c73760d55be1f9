//! Time windows: a ring of fixed slots, each the [`Aggregate`] of the operations that
//! ended in one interval (slot `n` covers `[n, n + 1) × slot length` since the Unix
//! epoch). Recording is O(1): the slot an operation falls in is found by division, and
//! a slot whose interval has passed is cleared in place when it is reused, so the ring
//! needs no timer and an idle gap of any length is handled (its slots are simply
//! stale). Reading a window merges the slots inside it, exactly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::aggregate::{Aggregate, Measured};

/// A slot never written.
const NEVER: u64 = u64::MAX;

/// Nanoseconds since the Unix epoch (0 before it), in u64 arithmetic (a u128 division
/// costs a library call on the span path): they fit until the year 2554.
pub(crate) fn epoch_nanos(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    since
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(since.subsec_nanos()))
}

/// The slot numbering: slot length and count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slots {
    pub(crate) nanos: u64,
    pub(crate) count: usize,
}

impl Slots {
    pub(crate) fn new(length: Duration, count: usize) -> Self {
        Self {
            nanos: u64::try_from(length.as_nanos()).unwrap_or(u64::MAX).max(1),
            count,
        }
    }

    /// The slot `time` falls in (0 before the epoch).
    pub(crate) fn number(&self, time: SystemTime) -> u64 {
        self.number_at(epoch_nanos(time))
    }

    /// The slot of a time given as nanoseconds since the Unix epoch.
    pub(crate) fn number_at(&self, nanos: u64) -> u64 {
        (nanos / self.nanos).min(NEVER - 1)
    }

    /// When slot `n` starts.
    pub(crate) fn start(&self, n: u64) -> SystemTime {
        let nanos = u128::from(n) * u128::from(self.nanos);
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        UNIX_EPOCH + Duration::new(secs, (nanos % 1_000_000_000) as u32)
    }

    /// The whole slots making up a window of `length` that ends at `now`: from the
    /// first to the last slot number, inclusive.
    pub(crate) fn window(&self, length: Duration, now: SystemTime) -> (u64, u64) {
        let last = self.number(now);
        let wanted = length.as_nanos().div_ceil(u128::from(self.nanos)).max(1);
        let k = u64::try_from(wanted)
            .unwrap_or(u64::MAX)
            .min(self.count as u64);
        (last.saturating_sub(k - 1), last)
    }

    /// The longest window the ring can answer.
    pub(crate) fn span(&self) -> Duration {
        Duration::from_nanos(self.nanos.saturating_mul(self.count as u64))
    }
}

#[derive(Clone, Debug)]
struct Slot {
    number: u64,
    aggregate: Aggregate,
}

/// One key's ring of slots. Empty (no allocation) until the key first records.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ring {
    slots: Vec<Slot>,
}

impl Ring {
    /// Adds an operation that ended in slot `n`; false when that slot is older than
    /// the ring holds (the operation is then left out of the windows).
    pub(crate) fn record(&mut self, slots: &Slots, n: u64, m: &Measured) -> bool {
        if slots.count == 0 {
            return true;
        }
        if self.slots.is_empty() {
            self.slots = vec![
                Slot {
                    number: NEVER,
                    aggregate: Aggregate::default(),
                };
                slots.count
            ];
        }
        let Some(slot) = self.slots.get_mut((n % slots.count as u64) as usize) else {
            return false;
        };
        if slot.number != n {
            if slot.number != NEVER && slot.number > n {
                return false;
            }
            slot.number = n;
            slot.aggregate.clear();
        }
        slot.aggregate.record(m);
        true
    }

    /// Merges the slots numbered `first..=last` into `out`.
    pub(crate) fn merge_into(&self, out: &mut Aggregate, first: u64, last: u64) {
        let inside = || {
            self.slots
                .iter()
                .filter(move |s| s.number != NEVER && (first..=last).contains(&s.number))
        };
        // One widening of the histogram for the whole window, then plain additions.
        let (lo, hi) = inside()
            .filter_map(|s| s.aggregate.histogram_range())
            .fold((u32::MAX, 0), |(lo, hi), (l, h)| (lo.min(l), hi.max(h)));
        out.reserve_histogram_range(lo, hi);
        for slot in inside() {
            out.merge(&slot.aggregate);
        }
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self
                .slots
                .iter()
                .map(|s| s.aggregate.heap_bytes())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(nanos: u64) -> Measured {
        Measured {
            nanos,
            success: true,
            ..Measured::default()
        }
    }

    #[test]
    fn windows_cover_whole_slots_and_skip_stale_ones() {
        let slots = Slots::new(Duration::from_secs(10), 6);
        let mut ring = Ring::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for s in 0..6u64 {
            let n = slots.number(t0 + Duration::from_secs(10 * s));
            assert!(ring.record(&slots, n, &op(s + 1)));
        }
        let now = t0 + Duration::from_secs(55);
        let count = |length: u64| {
            let (first, last) = slots.window(Duration::from_secs(length), now);
            let mut out = Aggregate::default();
            ring.merge_into(&mut out, first, last);
            out.count()
        };
        assert_eq!(count(10), 1);
        assert_eq!(count(11), 2);
        assert_eq!(count(60), 6);
        assert_eq!(count(3_600), 6, "clamped to the ring");
        // An idle gap longer than the ring: nothing is in the window any more.
        let later = now + Duration::from_secs(20 * 60);
        let (first, last) = slots.window(Duration::from_secs(60), later);
        let mut out = Aggregate::default();
        ring.merge_into(&mut out, first, last);
        assert_eq!(out.count(), 0);
        // Too old for the ring: refused.
        assert!(!ring.record(&slots, slots.number(t0) - 1, &op(1)));
    }
}
