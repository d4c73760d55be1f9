//! The handshake between operations opening windows and the monitor thread, which parks
//! when no window has been open for a while and must wake as soon as one opens.
//!
//! Opening a window is on the span hot path: it takes the lock only when it may have to
//! wake a parked thread. Deciding that without the lock is a store-buffering race (the
//! opener counts itself then looks at `parked`; the parker sets `parked` then looks at
//! the count): with plain acquire loads on both sides both may read the old value, the
//! opener skips the wake-up and the monitor sleeps through the window. Both sides
//! therefore read the other's variable with a read-modify-write, which always sees the
//! latest value and orders the two. `tests` below checks this with loom
//! (`RUSTFLAGS="--cfg loom" cargo test -p vidperf-sampler --release --lib gate`).

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::{Condvar, Mutex, MutexGuard};

use std::sync::PoisonError;
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Gate {
    /// Windows open now.
    open: AtomicUsize,
    /// The monitor thread is parked (or about to be).
    parked: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            open: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// A window opened: wakes the monitor if it is parked.
    pub(crate) fn enter(&self) {
        if self.open.fetch_add(1, Ordering::AcqRel) == 0
            && self.parked.fetch_or(false, Ordering::AcqRel)
        {
            let _guard = self.guard();
            self.wake.notify_all();
        }
    }

    /// A window closed.
    pub(crate) fn leave(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Windows open now.
    pub(crate) fn open_windows(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Whether the monitor is parked.
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.load(Ordering::Acquire)
    }

    /// Parks the calling (monitor) thread until a window opens or `stop()` is true.
    /// `stop` must be set before [`Gate::notify`] is called.
    pub(crate) fn park(&self, stop: impl Fn() -> bool) {
        let mut guard = self.guard();
        self.parked.swap(true, Ordering::AcqRel);
        // A read-modify-write, not a load: see the module documentation.
        while self.open.fetch_add(0, Ordering::AcqRel) == 0 && !stop() {
            guard = self.wait(guard, Duration::from_secs(1));
        }
        self.parked.store(false, Ordering::Release);
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
