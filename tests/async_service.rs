//! A tokio service (multi-thread runtime) instrumented as the README's async section
//! says: requests that complete, time out, are aborted or are abandoned — each counted
//! under its own outcome, exactly, the cancelled ones with the time until the drop; the
//! operations that overlapped marked so; every enhancement under its request.
#![cfg(feature = "macros")]

use std::time::Duration;

use tracing::Instrument as _;
use vidperf::{CancelExt as _, Operation, OperationRecord};

#[vidperf::track(strategy = "seedvr2", operation = "enhancement")]
async fn enhance(ms: u64) -> Result<(), std::io::Error> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

#[tracing::instrument(fields(strategy = "plain", operation = "enhancement"))]
async fn plain(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn request(kind: usize) {
    match kind {
        // Completes within its deadline.
        0 => {
            let _ = tokio::time::timeout(Duration::from_millis(500), enhance(30)).await;
        }
        // Cut short by its deadline.
        1 => {
            let _ = tokio::time::timeout(Duration::from_millis(60), enhance(2_000)).await;
        }
        // Aborted after 60 ms.
        2 => {
            let task = tokio::spawn(enhance(2_000).in_current_span());
            tokio::time::sleep(Duration::from_millis(60)).await;
            task.abort();
            let _ = task.await;
        }
        // An operation held across an await and abandoned by a timeout.
        3 => {
            let work = async {
                let op = Operation::start("enhancement", "manual");
                tokio::time::sleep(Duration::from_millis(2_000)).await;
                op.finish();
            };
            let _ = tokio::time::timeout(Duration::from_millis(60), work).await;
        }
        // A spawned future made cancel-aware in one line.
        4 => {
            let work = tokio::time::sleep(Duration::from_millis(2_000))
                .instrument(tracing::info_span!(
                    "upscale",
                    strategy = "spawned",
                    operation = "enhancement"
                ))
                .cancel_aware();
            let _ = tokio::time::timeout(Duration::from_millis(60), work).await;
        }
        // A plain `#[instrument]` span cut short: tracing cannot tell it from completion.
        _ => {
            let _ = tokio::time::timeout(Duration::from_millis(60), plain(2_000)).await;
        }
    }
}

fn records() -> Vec<OperationRecord> {
    vidperf::global().expect("installed").stats().records()
}

#[test]
fn timeouts_and_aborts_are_cancelled_overlaps_marked_parents_kept() {
    let vidperf = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .install()
        .expect("install");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..60usize {
            let span = tracing::info_span!(
                "api_request",
                strategy = "auto",
                operation = "api_request",
                n = i
            );
            tasks.push(tokio::spawn(request(i % 6).instrument(span)));
        }
        for t in tasks {
            t.await.expect("request");
        }
        // One operation alone, after everything else.
        enhance(10).await.expect("alone");
    });
    let snapshot = vidperf.snapshot();
    let by = |s: &str| snapshot.by_strategy[s].clone();
    let seedvr2 = by("seedvr2");
    assert_eq!(
        (
            seedvr2.count,
            seedvr2.successes,
            seedvr2.failures,
            seedvr2.cancelled
        ),
        (31, 11, 0, 20),
        "10 completed + the lone one; 10 timed out and 10 aborted"
    );
    let manual = by("manual");
    assert_eq!((manual.count, manual.cancelled), (10, 10));
    let spawned = by("spawned");
    assert_eq!((spawned.count, spawned.cancelled), (10, 10));
    let plain = by("plain");
    assert_eq!(
        (plain.count, plain.successes, plain.cancelled),
        (10, 10, 0),
        "the documented limit of a plain #[instrument] span"
    );
    // Cancelled durations are the time until the drop; the duration figures leave them
    // out: seedvr2's are the completed ones (30 ms, and 10 ms alone).
    let records = records();
    for r in records.iter().filter(|r| r.cancelled) {
        assert!(!r.success);
        assert_eq!(r.error_message.as_deref(), Some("cancelled"));
        assert!(
            (0.055..0.5).contains(&r.duration_seconds),
            "{} {}: {} s",
            r.strategy,
            r.operation_id,
            r.duration_seconds
        );
    }
    let d = seedvr2.duration.expect("timed");
    assert!(
        d.max_seconds < 0.5,
        "the 2 s the cancelled ones asked for never count: {d:?}"
    );
    // Parents: every enhancement ran under its request (the lone one under none).
    let requests: std::collections::HashSet<&str> = records
        .iter()
        .filter(|r| r.strategy == "auto")
        .map(|r| r.operation_id.as_str())
        .collect();
    assert_eq!(requests.len(), 60);
    for r in records.iter().filter(|r| r.strategy != "auto") {
        match &r.parent_span_id {
            Some(parent) => assert!(requests.contains(parent.as_str()), "{r:?}"),
            None => assert!(r.duration_seconds < 0.05, "only the lone one: {r:?}"),
        }
    }
    // Overlaps: 60 requests ran at once; the lone operation had the process to itself.
    let alone = records
        .iter()
        .rev()
        .find(|r| r.strategy == "seedvr2")
        .expect("the lone one");
    assert_eq!(alone.overlapping_operations, Some(0), "{alone:?}");
    assert!(
        records
            .iter()
            .filter(|r| r.strategy == "auto")
            .all(|r| r.overlapping_operations.is_some_and(|n| n >= 1))
    );
    assert!(seedvr2.exclusive_operations >= 1);
    // /metrics carries the outcome.
    let metrics = vidperf::metrics::encode_prometheus(&vidperf.stats().metrics());
    assert!(
        metrics.contains("vidperf_outcome=\"cancelled\""),
        "{}",
        &metrics[..2000.min(metrics.len())]
    );
    drop(runtime);
}
