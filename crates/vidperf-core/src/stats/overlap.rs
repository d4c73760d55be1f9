//! How many operations overlapped each one at most: every start is an event numbered in
//! order with the number of operations then running; the most running at any time in
//! an operation's life is the largest count among the events from its own start on,
//! kept as a stack of decreasing counts (a start pops the smaller ones behind it), so
//! the answer is the first entry at or after the operation's start — exact, O(log n).

use std::collections::{BTreeSet, VecDeque};

#[derive(Debug, Default)]
pub(crate) struct Overlap {
    /// The last event's number.
    seq: u64,
    /// Operations running now (those over the active table's cap too).
    running: u64,
    /// (event, operations running after it), counts strictly decreasing.
    peaks: VecDeque<(u64, u64)>,
    /// The events of the operations still running, to prune the stack below the
    /// oldest.
    open: BTreeSet<u64>,
}

impl Overlap {
    /// An operation starts; its event number.
    pub(crate) fn start(&mut self) -> u64 {
        self.seq += 1;
        self.running += 1;
        while self.peaks.back().is_some_and(|(_, n)| *n <= self.running) {
            self.peaks.pop_back();
        }
        self.peaks.push_back((self.seq, self.running));
        self.open.insert(self.seq);
        self.seq
    }

    /// An operation that is not tracked (the active table is full) starts: it still
    /// counts as running for the others.
    pub(crate) fn start_untracked(&mut self) {
        let seq = self.start();
        self.open.remove(&seq);
    }

    /// The operation started at event `seq` ends: how many others ran alongside it at
    /// most.
    pub(crate) fn finish(&mut self, seq: u64) -> u32 {
        let at = self.peaks.partition_point(|(s, _)| *s < seq);
        let most = self.peaks.get(at).map_or(1, |(_, n)| *n);
        self.finish_untracked();
        self.open.remove(&seq);
        let oldest = self.open.first().copied().unwrap_or(u64::MAX);
        while self.peaks.front().is_some_and(|(s, _)| *s < oldest) && self.peaks.len() > 1 {
            self.peaks.pop_front();
        }
        u32::try_from(most.saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// An operation ends without its event (untracked, or recorded directly).
    pub(crate) fn finish_untracked(&mut self) {
        self.running = self.running.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_gets_the_most_that_ran_alongside_it() {
        let mut o = Overlap::default();
        let a = o.start(); // a alone
        let b = o.start(); // a, b
        assert_eq!(o.finish(b), 1);
        let c = o.start(); // a, c
        let d = o.start(); // a, c, d
        assert_eq!(o.finish(c), 2, "c overlapped a and d");
        assert_eq!(o.finish(a), 2, "a overlapped c and d at once at most");
        let e = o.start(); // d, e
        assert_eq!(o.finish(d), 2, "d ran with a and c");
        assert_eq!(o.finish(e), 1);
        let f = o.start();
        assert_eq!(o.finish(f), 0, "alone");
        assert!(o.peaks.len() <= 1 && o.open.is_empty());
    }
}
