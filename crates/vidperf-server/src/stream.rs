//! `GET /performance/stream`: Server-Sent Events with the windowed statistics, the
//! operations finished since the previous event, the operations running now and the
//! SDK's health — one event per interval.
//!
//! Every client of one (interval, window) shares one publisher: a task that builds the
//! event once per tick (on the blocking pool) and publishes it, serialised, in a
//! `watch` channel. A client holds a receiver and a reference to the newest event, so
//! its memory is fixed however slow it is, and a hundred clients cost one snapshot per
//! tick. A client that falls behind (it reads slower than events are made) misses
//! events and, past a few, is disconnected; one that stops reading altogether is cut by
//! the connection's write-stall watchdog (see `serve`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::watch;
use vidperf_core::stats::RecordsSince;
use vidperf_core::{OperationRecord, SnapshotOptions, Stats, StatsSnapshot};

use crate::ApiState;
use crate::error::ApiError;

/// Finished operations listed per event at most.
pub(crate) const MAX_FINISHED: usize = 100;
/// Events a client may miss in a row before it is disconnected.
const MAX_MISSED: u64 = 3;

/// One event's payload.
#[derive(Serialize)]
struct Payload<'a> {
    sequence: u64,
    snapshot: &'a StatsSnapshot,
    finished: &'a [OperationRecord],
    finished_omitted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regressions: Option<serde_json::Value>,
}

/// A published event.
#[derive(Debug)]
pub(crate) struct Published {
    sequence: u64,
    json: String,
}

/// Where a publisher puts its newest event.
type Slot = watch::Sender<Option<Arc<Published>>>;

/// The publishers running, by (interval, window).
#[derive(Debug, Default)]
pub(crate) struct Publishers {
    running: Mutex<HashMap<(Duration, Duration), Arc<Slot>>>,
}

impl Publishers {
    /// A receiver of the events of (interval, window), starting the publisher when none
    /// runs. Must be called inside a tokio runtime.
    fn subscribe(
        self: &Arc<Self>,
        state: &ApiState,
        interval: Duration,
        window: Duration,
    ) -> watch::Receiver<Option<Arc<Published>>> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = running.get(&(interval, window)) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(None);
        let sender = Arc::new(sender);
        running.insert((interval, window), sender.clone());
        // From now on, what finishes goes into the publisher's first update.
        let watermark = state.stats.recorded();
        tokio::spawn(publish(
            self.clone(),
            state.clone(),
            sender,
            (interval, window),
            watermark,
        ));
        receiver
    }
}

/// Builds one event: the windowed snapshot and what finished since `watermark`.
fn build(
    stats: &Stats,
    state: &ApiState,
    window: Duration,
    sequence: u64,
    since: u64,
) -> Result<(String, u64), serde_json::Error> {
    let options = SnapshotOptions::default()
        .with_window(window)
        .with_recent(0);
    let snapshot = stats.snapshot_with(options);
    let RecordsSince {
        records,
        omitted,
        watermark,
        ..
    } = stats.records_since(since, MAX_FINISHED);
    let payload = Payload {
        sequence,
        snapshot: &snapshot,
        finished: &records,
        finished_omitted: omitted,
        alerts: state.alerts_document(),
        regressions: state.regressed_document(),
    };
    Ok((serde_json::to_string(&payload)?, watermark))
}

async fn publish(
    publishers: Arc<Publishers>,
    state: ApiState,
    sender: Arc<Slot>,
    (interval, window): (Duration, Duration),
    mut watermark: u64,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sequence = 0u64;
    loop {
        ticker.tick().await;
        {
            let mut running = publishers
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if sender.receiver_count() == 0 {
                running.remove(&(interval, window));
                return;
            }
        }
        sequence += 1;
        let (stats, st) = (state.stats.clone(), state.clone());
        let since = watermark;
        let built =
            tokio::task::spawn_blocking(move || build(&stats, &st, window, sequence, since));
        if let Ok(Ok((json, next))) = built.await {
            watermark = next;
            sender.send_replace(Some(Arc::new(Published { sequence, json })));
        }
    }
}

/// The stream's query: `interval` (at least 250 ms, at most 60 s; default 1 s) and
/// `window` (default 1 min, at most the statistics' longest window).
pub(crate) fn parse(
    params: &std::collections::BTreeMap<&'static str, String>,
    stats: &Stats,
) -> Result<(Duration, Duration), ApiError> {
    let interval = match params.get("interval") {
        None => Duration::from_secs(1),
        Some(text) => crate::query::duration(text)
            .filter(|d| (Duration::from_millis(250)..=Duration::from_secs(60)).contains(d))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_interval",
                    format!(
                        "interval must be a duration from 250ms to 60s, such as 1s; got {text:?}"
                    ),
                )
            })?,
    };
    let window = match params.get("window") {
        None => Duration::from_secs(60).min(stats.max_window()),
        Some(text) => crate::query::duration(text)
            .filter(|w| stats.check_window(*w).is_ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_window",
                    format!(
                        "window must be a duration such as 30s, 5m or 1h, longer than zero and at most {}s; got {text:?}",
                        stats.max_window().as_secs_f64()
                    ),
                )
            })?,
    };
    Ok((interval, window))
}

/// The response: the first event at once (a fresh snapshot, with the last operations
/// as `finished`), then the shared publisher's events.
pub(crate) async fn respond(
    state: ApiState,
    interval: Duration,
    window: Duration,
    closing: Option<watch::Receiver<bool>>,
) -> Result<Response, ApiError> {
    let Ok(permit) = state.streams.clone().try_acquire_owned() else {
        return Err(ApiError::unavailable(
            "too_many_streams",
            format!(
                "{} live streams are open, the most this server allows; retry shortly",
                state.config.max_streams
            ),
            5,
        ));
    };
    let receiver = state.publishers.subscribe(&state, interval, window);
    let (stats, st) = (state.stats.clone(), state.clone());
    let since = stats.recorded().saturating_sub(10);
    let (first, _) = tokio::task::spawn_blocking(move || build(&stats, &st, window, 0, since))
        .await
        .map_err(|e| ApiError::internal(format!("stream task failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    struct Client {
        receiver: watch::Receiver<Option<Arc<Published>>>,
        first: Option<String>,
        last: u64,
        missed: u64,
        /// The server closing: the stream ends (its last chunk written).
        closing: Option<watch::Receiver<bool>>,
        _permit: tokio::sync::OwnedSemaphorePermit,
    }
    let client = Client {
        receiver,
        closing,
        first: Some(first),
        last: 0,
        missed: 0,
        _permit: permit,
    };
    let events = futures_util::stream::unfold(client, |mut client| async move {
        if let Some(json) = client.first.take() {
            let event = Event::default()
                .event("snapshot")
                .id("0")
                .retry(Duration::from_secs(2))
                .data(json);
            return Some((Ok::<_, Infallible>(event), client));
        }
        loop {
            let closed = async {
                match client.closing.as_mut() {
                    Some(closing) => {
                        let _ = closing.wait_for(|closed| *closed).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = client.receiver.changed() => changed.ok()?,
                () = closed => return None,
            }
            let Some(published) = client.receiver.borrow_and_update().clone() else {
                continue;
            };
            if client.last > 0 && published.sequence > client.last + 1 {
                client.missed += published.sequence - client.last - 1;
                if client.missed > MAX_MISSED {
                    return None; // too slow: let it reconnect rather than fall further behind
                }
            }
            client.last = published.sequence;
            let event = Event::default()
                .event("update")
                .id(published.sequence.to_string())
                .data(published.json.clone());
            return Some((Ok(event), client));
        }
    });
    let mut response = Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
