//! Per-metric monotonic stacks: the maximum of every sample from a given sequence
//! number to the newest, in O(log n), with O(1) amortised pushes.
//!
//! Each stack keeps `(seq, value)` pairs whose values strictly decrease from the oldest
//! entry to the newest. Pushing a sample pops every newer-or-equal-valued entry it
//! dominates; the maximum over samples `seq >= s` is then the value of the first entry
//! with `seq >= s`. A sample that was popped can never be the answer to such a query,
//! because a later sample at least as large covers every window that contains it.

use std::collections::VecDeque;

/// A monotonic stack for one metric.
#[derive(Debug)]
pub(crate) struct MaxStack {
    entries: VecDeque<(u64, u64)>,
    cap: usize,
    merged: u64,
}

impl MaxStack {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            cap: cap.max(2),
            merged: 0,
        }
    }

    /// Adds sample `seq` (strictly greater than every earlier one) with `value`.
    pub(crate) fn push(&mut self, seq: u64, value: u64) {
        while self.entries.back().is_some_and(|&(_, v)| v <= value) {
            self.entries.pop_back();
        }
        self.entries.push_back((seq, value));
        if self.entries.len() > self.cap {
            // Only a long strictly decreasing run gets here. Merge the two oldest
            // entries, keeping the larger value at the later position: windows starting
            // between them may then see a value from just before their start.
            if let (Some((_, oldest)), Some(next)) =
                (self.entries.pop_front(), self.entries.front_mut())
            {
                next.1 = oldest;
                self.merged += 1;
            }
        }
    }

    /// The maximum of the samples with sequence number `>= from`, if any.
    pub(crate) fn max_since(&self, from: u64) -> Option<u64> {
        let i = self.entries.partition_point(|&(seq, _)| seq < from);
        self.entries.get(i).map(|&(_, v)| v)
    }

    /// Entries merged because the stack was full (each may have made one window's peak
    /// an over-estimate).
    pub(crate) fn merged(&self) -> u64 {
        self.merged
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator, so the check covers many shapes.
    fn values(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % 1000
            })
            .collect()
    }

    #[test]
    fn matches_a_naive_maximum_for_every_start() {
        for seed in 1..40 {
            let vals = values(seed, 300);
            let mut stack = MaxStack::new(1 << 20);
            for (seq, v) in vals.iter().enumerate() {
                stack.push(seq as u64, *v);
                let now = seq;
                for from in 0..=now + 1 {
                    let naive = vals[from.min(vals.len())..=now].iter().copied().max();
                    let naive = if from > now { None } else { naive };
                    assert_eq!(
                        stack.max_since(from as u64),
                        naive,
                        "seed {seed} from {from} now {now}"
                    );
                }
            }
        }
    }

    #[test]
    fn stays_bounded_on_a_decreasing_run() {
        let mut stack = MaxStack::new(16);
        for seq in 0..1000u64 {
            stack.push(seq, 10_000 - seq);
        }
        assert!(stack.len() <= 16);
        assert!(stack.merged() > 0);
        // The newest values are still exact.
        assert_eq!(stack.max_since(999), Some(10_000 - 999));
        assert_eq!(stack.max_since(990), Some(10_000 - 990));
    }
}
