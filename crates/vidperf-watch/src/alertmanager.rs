//! Delivering alerts to a Prometheus Alertmanager through its API v2
//! (`POST /api/v2/alerts`), on a thread of its own: the evaluation only hands
//! notifications over and never waits.
//!
//! Notifications are kept by alert (its label set): a newer state replaces an older one
//! not yet sent, and they are posted in batches of [`BATCH`], so a healthy Alertmanager
//! receives every firing alert however many there are. While Alertmanager is down (a
//! delivery failed and is being retried), the queue holds at most one entry per alert
//! and at most [`MAX_PENDING`] alerts — beyond, the newest are dropped and counted — and
//! what reaches it at last is each alert's latest state. A failed delivery (unreachable,
//! or any answer but 2xx) is retried with exponential backoff (1 s doubling to 30 s).
//! Every delivery, failure and drop is counted ([`DeliveryHealth`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use crate::health::DeliveryHealth;

use vidperf_core::worker::{StopTimeout, Worker};

use crate::Notification;

/// Alerts waiting to be delivered at most while Alertmanager is down (one entry per
/// alert).
pub const MAX_PENDING: usize = 1024;
/// Alerts per request to Alertmanager.
pub const BATCH: usize = 500;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why delivery could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertmanagerError {
    /// The URL is not an `http://` URL with a host.
    #[error(
        "{url:?} is not an Alertmanager URL: expected http://host:port (https is not supported; use a local proxy)"
    )]
    InvalidUrl {
        /// The URL given.
        url: String,
    },
    /// The delivery thread could not start.
    #[error("cannot start the Alertmanager delivery thread: {0}")]
    Thread(String),
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed_attempts: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
    last_error: Mutex<Option<String>>,
}

enum Message {
    Send(Vec<Notification>),
    Stop,
}

/// A running delivery to one Alertmanager.
#[derive(Debug)]
pub struct Alertmanager {
    url: String,
    tx: SyncSender<Message>,
    counters: Arc<Counters>,
    worker: Worker,
}

impl Alertmanager {
    /// Starts delivering to the Alertmanager at `url` (e.g. `http://127.0.0.1:9093`).
    pub fn start(url: &str) -> Result<Self, AlertmanagerError> {
        let base = url.trim_end_matches('/');
        let host = base.strip_prefix("http://").unwrap_or_default();
        if host.is_empty() || host.starts_with(['/', ':']) {
            return Err(AlertmanagerError::InvalidUrl {
                url: url.to_owned(),
            });
        }
        let endpoint = format!("{base}/api/v2/alerts");
        let counters = Arc::new(Counters::default());
        let (tx, rx) = sync_channel(64);
        let worker_counters = counters.clone();
        let worker = Worker::spawn("vidperf-alertmanager", move || {
            deliver(&endpoint, &rx, &worker_counters);
        })
        .map_err(|e| AlertmanagerError::Thread(e.to_string()))?;
        Ok(Self {
            url: base.to_owned(),
            tx,
            counters,
            worker,
        })
    }

    /// The Alertmanager's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Hands notifications over; never blocks (when the hand-over queue is full, they
    /// are dropped and counted).
    pub fn send(&self, notifications: Vec<Notification>) {
        if notifications.is_empty() {
            return;
        }
        let n = notifications.len() as u64;
        match self.tx.try_send(Message::Send(notifications)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// What became of the notifications so far.
    pub fn health(&self) -> DeliveryHealth {
        let c = &self.counters;
        DeliveryHealth {
            url: self.url.clone(),
            sent: c.sent.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// Sends what is pending (one last attempt) and stops, waiting at most `timeout`;
    /// [`StopTimeout`] when the delivery thread did not stop in time (an Alertmanager
    /// that does not answer).
    pub fn shutdown(&self, timeout: Duration) -> Result<(), StopTimeout> {
        let _ = self.tx.try_send(Message::Stop);
        self.worker.join(timeout)
    }

    /// Why the delivery thread ended in a panic, if it did.
    pub fn panicked(&self) -> Option<String> {
        self.worker.panicked()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.shutdown(Duration::from_secs(2));
    }
}

/// The delivery loop: merge what arrives by alert, post it, back off on failure.
fn deliver(endpoint: &str, rx: &Receiver<Message>, counters: &Counters) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut pending: BTreeMap<BTreeMap<String, String>, Notification> = BTreeMap::new();
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let wait = match retry_at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None if pending.is_empty() => Duration::from_secs(3600),
            None => Duration::ZERO,
        };
        // The bound is for an outage: while deliveries succeed, every alert is taken.
        let outage = retry_at.is_some();
        let take = |list: Vec<Notification>, pending: &mut BTreeMap<_, Notification>| {
            for n in list {
                if outage && pending.len() >= MAX_PENDING && !pending.contains_key(&n.labels) {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                pending.insert(n.labels.clone(), n);
            }
        };
        match rx.recv_timeout(wait) {
            Ok(Message::Send(list)) => {
                take(list, &mut pending);
                // Take everything already waiting before posting.
                while let Ok(message) = rx.try_recv() {
                    match message {
                        Message::Send(list) => take(list, &mut pending),
                        Message::Stop => stopping = true,
                    }
                }
            }
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
            Err(RecvTimeoutError::Timeout) => {}
        }
        counters
            .queued
            .store(pending.len() as u64, Ordering::Relaxed);
        let due = retry_at.is_none_or(|at| Instant::now() >= at);
        if !pending.is_empty() && (due || stopping) {
            // In batches; what a failed batch left stays pending, the bound applying
            // from then on.
            while !pending.is_empty() {
                let keys: Vec<BTreeMap<String, String>> =
                    pending.keys().take(BATCH).cloned().collect();
                let batch: Vec<&Notification> =
                    keys.iter().filter_map(|k| pending.get(k)).collect();
                match post(&agent, endpoint, &batch) {
                    Ok(()) => {
                        counters
                            .sent
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        for k in &keys {
                            pending.remove(k);
                        }
                        backoff = FIRST_BACKOFF;
                        retry_at = None;
                    }
                    Err(e) => {
                        counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                        *counters
                            .last_error
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(e);
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        // An outage now: keep at most the bound.
                        while pending.len() > MAX_PENDING {
                            if let Some(last) = pending.keys().next_back().cloned() {
                                pending.remove(&last);
                                counters.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        break;
                    }
                }
            }
            counters
                .queued
                .store(pending.len() as u64, Ordering::Relaxed);
        }
        if stopping {
            counters
                .dropped
                .fetch_add(pending.len() as u64, Ordering::Relaxed);
            counters.queued.store(0, Ordering::Relaxed);
            return;
        }
    }
}

fn post(agent: &ureq::Agent, endpoint: &str, batch: &[&Notification]) -> Result<(), String> {
    let body = serde_json::to_string(batch).map_err(|e| e.to_string())?;
    let response = agent
        .post(endpoint)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| format!("{endpoint}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = response.into_body().read_to_string().unwrap_or_default();
        Err(format!("{endpoint} answered {status}: {}", text.trim()))
    }
}
