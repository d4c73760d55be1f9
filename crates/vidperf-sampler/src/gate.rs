//! The handshake between operations opening windows and the monitor thread, which parks
//! when no window has been open for a while and must wake as soon as one opens.
//!
//! Opening a window is on the span hot path: it takes the lock only when it may have to
//! wake a parked thread. The count of open windows and the monitor's "parked" flag live
//! in one atomic word, so each side learns the other's state from the value its own
//! read-modify-write returns: every operation on one location is totally ordered, and
//! there is no store-buffering race between an opener counting itself and the parker
//! raising its flag (with two variables both could read the other's old value, and the
//! monitor would sleep through the window). Opening and closing a window are one
//! read-modify-write each. `tests` below checks this with loom
//! (`RUSTFLAGS="--cfg loom" cargo test -p vidperf-sampler --release --lib gate`).

#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::{Condvar, Mutex, MutexGuard};

use std::sync::PoisonError;
use std::time::Duration;

/// The "parked" flag, in the state word's top bit; the rest counts open windows.
const PARKED: usize = 1 << (usize::BITS - 1);

#[derive(Debug)]
pub(crate) struct Gate {
    /// Open windows, plus [`PARKED`] while the monitor is parked (or about to be).
    state: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// A window opened: wakes the monitor if it is parked.
    pub(crate) fn enter(&self) {
        if self.state.fetch_add(1, Ordering::AcqRel) & PARKED != 0 {
            let _guard = self.guard();
            self.wake.notify_all();
        }
    }

    /// A window closed. Every `leave` pairs with an earlier `enter` (a window is closed
    /// only by whoever opened it), so the count cannot go below zero.
    pub(crate) fn leave(&self) {
        self.state.fetch_sub(1, Ordering::AcqRel);
    }

    /// Windows open now.
    pub(crate) fn open_windows(&self) -> usize {
        self.state.load(Ordering::Acquire) & !PARKED
    }

    /// Whether the monitor is parked.
    pub(crate) fn is_parked(&self) -> bool {
        self.state.load(Ordering::Acquire) & PARKED != 0
    }

    /// Parks the calling (monitor) thread until a window opens or `stop()` is true.
    /// `stop` must be set before [`Gate::notify`] is called.
    pub(crate) fn park(&self, stop: impl Fn() -> bool) {
        let mut guard = self.guard();
        // Raising the flag returns the count: an opener that counted itself before
        // this saw no flag and will not notify, so it must be seen here; one that
        // counts itself after sees the flag and notifies under the lock.
        let mut open = self.state.fetch_or(PARKED, Ordering::AcqRel) & !PARKED;
        while open == 0 && !stop() {
            guard = self.wait(guard, Duration::from_secs(1));
            open = self.open_windows();
        }
        self.state.fetch_and(!PARKED, Ordering::AcqRel);
    }

    /// Sleeps the calling thread for at most `timeout`, unless `stop()` is already true;
    /// [`Gate::notify`] ends it early.
    pub(crate) fn sleep(&self, timeout: Duration, stop: impl Fn() -> bool) {
        let guard = self.guard();
        if !stop() {
            drop(self.wait(guard, timeout));
        }
    }

    /// Wakes the monitor thread wherever it waits (after setting its stop flag).
    pub(crate) fn notify(&self) {
        let _guard = self.guard();
        self.wake.notify_all();
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(not(loom))]
    fn wait<'a>(&self, guard: MutexGuard<'a, ()>, timeout: Duration) -> MutexGuard<'a, ()> {
        match self.wake.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    /// Under loom the wait has no timeout, so a missed wake-up is a deadlock loom
    /// reports instead of a one-second delay.
    #[cfg(loom)]
    fn wait<'a>(&self, guard: MutexGuard<'a, ()>, _timeout: Duration) -> MutexGuard<'a, ()> {
        self.wake.wait(guard).expect("loom condvar")
    }
}

#[cfg(all(test, loom))]
mod tests {
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn an_opening_window_always_wakes_a_parking_monitor() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            let monitor = {
                let gate = gate.clone();
                loom::thread::spawn(move || gate.park(|| false))
            };
            gate.enter();
            monitor.join().expect("the monitor woke");
            gate.leave();
            assert_eq!(gate.open_windows(), 0);
        });
    }

    #[test]
    fn stop_always_wakes_a_parking_monitor() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            let stop = Arc::new(AtomicBool::new(false));
            let monitor = {
                let (gate, stop) = (gate.clone(), stop.clone());
                loom::thread::spawn(move || gate.park(|| stop.load(Ordering::Acquire)))
            };
            stop.store(true, Ordering::Release);
            gate.notify();
            monitor.join().expect("the monitor stopped");
        });
    }
}
