//! [`Worker`]: the one way vidperf's background parts run a thread of their own — the
//! resource monitor, the HTTP server, the alert watcher, the Alertmanager delivery, the
//! OTLP metrics export. A worker is a named thread that
//!
//! - runs under no `tracing` subscriber (what it does never feeds the statistics it
//!   reports, nor loops back through the layer) — unless it exists to tell the
//!   application something through its subscribers, as the alert watcher does
//!   ([`Worker::spawn_reporting`]);
//! - never takes the host down: a panic in it is caught, and the worker says so
//!   ([`Worker::panicked`], reported in its part's health) instead of dying silently;
//! - stops within a deadline: [`Worker::join`] waits for the thread on a done channel
//!   and answers [`StopTimeout`] when it did not end in time (it is then left to end on
//!   its own), which every part's shutdown reports.
//!
//! How to tell the thread to stop is the part's business (a channel, a flag); the
//! worker only runs it and waits for it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A part's thread that did not stop within its deadline.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {thread} thread did not stop within {timeout:?}")]
#[non_exhaustive]
pub struct StopTimeout {
    /// The thread's name.
    pub thread: &'static str,
    /// How long it was given.
    pub timeout: Duration,
}

impl StopTimeout {
    /// `thread` did not stop within `timeout`.
    pub const fn new(thread: &'static str, timeout: Duration) -> Self {
        Self { thread, timeout }
    }
}

/// A named background thread with a bounded join and a caught panic.
#[derive(Debug)]
pub struct Worker {
    name: &'static str,
    thread: Mutex<Option<(JoinHandle<()>, Receiver<()>)>>,
    panic: Arc<Mutex<Option<String>>>,
}

impl Worker {
    /// Runs `body` on a new thread named `name`, under no `tracing` subscriber.
    pub fn spawn(
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Self> {
        Self::start(name, true, body)
    }

    /// Runs `body` on a new thread named `name`, under the global subscriber: for a
    /// part whose events are meant for the application (alerts that fire).
    pub fn spawn_reporting(
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Self> {
        Self::start(name, false, body)
    }

    fn start(
        name: &'static str,
        quiet: bool,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (done_tx, done) = sync_channel(1);
        let panic = Arc::new(Mutex::new(None));
        let caught = panic.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let outcome = if quiet {
                    let none = tracing::subscriber::NoSubscriber::default();
                    tracing::subscriber::with_default(none, || catch_unwind(AssertUnwindSafe(body)))
                } else {
                    catch_unwind(AssertUnwindSafe(body))
                };
                if let Err(payload) = outcome {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".to_owned());
                    *caught.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
                }
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            name,
            thread: Mutex::new(Some((handle, done))),
            panic,
        })
    }

    /// The thread's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Why the thread ended in a panic, if it did (the part stops working; its health
    /// says so).
    pub fn panicked(&self) -> Option<String> {
        self.panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(handle, _)| !handle.is_finished())
    }

    /// Waits at most `timeout` for the thread to end (after the part told it to stop).
    /// `Ok` once it has ended (and on every later call); [`StopTimeout`] when it did not
    /// end in time — it is then left to end on its own, and a later call may wait again.
    pub fn join(&self, timeout: Duration) -> Result<(), StopTimeout> {
        let mut slot = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((_, done)) = slot.as_ref() else {
            return Ok(());
        };
        match done.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some((handle, _)) = slot.take() {
                    let _ = handle.join();
                }
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => Err(StopTimeout {
                thread: self.name,
                timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn a_worker_stops_within_its_deadline_or_says_it_did_not() {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let worker = Worker::spawn("test-worker", move || {
            while !flag.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .expect("spawn");
        assert!(worker.is_running());
        let late = worker
            .join(Duration::from_millis(20))
            .expect_err("still running");
        assert_eq!(late.thread, "test-worker");
        stop.store(true, Ordering::Release);
        worker.join(Duration::from_secs(5)).expect("stops");
        worker.join(Duration::ZERO).expect("and stays stopped");
        assert!(!worker.is_running());
        assert_eq!(worker.panicked(), None);
    }

    #[test]
    fn a_panic_is_caught_and_named() {
        let worker =
            Worker::spawn("test-panics", || panic!("driver call exploded")).expect("spawn");
        worker.join(Duration::from_secs(5)).expect("ends");
        assert_eq!(worker.panicked().as_deref(), Some("driver call exploded"));
    }
}
