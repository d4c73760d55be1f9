//! Events emitted re-entrantly — from a `Debug` impl while vidperf records a field, from
//! another layer's callbacks, from a sink — under a *global* default subscriber, where
//! tracing does not guard against re-entrancy (it does for scoped dispatchers). vidperf
//! must neither deadlock nor lose or duplicate an event. The global default is
//! process-wide, so this file holds one test.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber, info_span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use vidperf::{FinishedSpan, Sink, SpanInterest};

/// Message → how many times it was seen.
type Tally = Arc<Mutex<BTreeMap<String, usize>>>;

fn bump(tally: &Tally, message: &str) {
    if let Ok(mut t) = tally.lock() {
        *t.entry(message.to_owned()).or_default() += 1;
    }
}

struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.0);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Counts every event inside a span, as the reference: tracing calls each layer once
/// per event.
struct Reference(Tally);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Reference {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if ctx.event_span(event).is_some() {
            let mut message = Message(String::new());
            event.record(&mut message);
            bump(&self.0, &message.0);
        }
    }
}

/// Another layer that logs whenever an `upscale` span closes.
struct ChattyOnClose;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ChattyOnClose {
    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        if ctx.span(&id).is_some_and(|s| s.name() == "upscale") {
            tracing::info!("chatty layer saw a close");
        }
    }
}

/// A value whose `Debug` logs.
struct Loud;

impl fmt::Debug for Loud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::warn!("formatting a loud value");
        f.write_str("loud")
    }
}

/// A sink that keeps what vidperf recorded and logs from inside `on_finish`.
struct Recorded(Tally);

impl Sink for Recorded {
    fn on_finish(&self, span: &FinishedSpan) {
        for event in &span.events {
            bump(&self.0, &event.name);
        }
        if span.name == "upscale" {
            tracing::info!("sink saw a finished upscale");
        }
    }
    fn interest(&self) -> SpanInterest {
        SpanInterest::All
    }
}

const OPERATIONS: usize = 50;

#[test]
fn re_entrant_events_under_a_global_default_are_recorded_once_each() {
    let reference = Tally::default();
    let recorded = Tally::default();
    let (layer, vidperf) = vidperf::builder()
        .without_env()
        .without_resource_monitor()
        .sink(Recorded(recorded.clone()))
        .build()
        .expect("build");
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(layer)
            .with(Reference(reference.clone()))
            .with(ChattyOnClose),
    )
    .expect("the only global default in this process");

    // A deadlock would hang the test: run it on a thread and give up after a minute.
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        info_span!("batch").in_scope(|| {
            for i in 0..OPERATIONS {
                let span = info_span!(
                    "upscale",
                    strategy = "vsrm",
                    frames_processed = i,
                    note = tracing::field::Empty
                );
                span.in_scope(|| {
                    tracing::info!(value = ?Loud, "event with a loud field");
                    span.record("note", tracing::field::debug(Loud));
                    if i % 5 == 0 {
                        tracing::error!(detail = ?Loud, "failed with a loud field");
                    }
                });
            }
        });
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("no deadlock: every operation finished");

    let reference = reference.lock().expect("reference").clone();
    let recorded = recorded.lock().expect("recorded").clone();
    assert_eq!(reference["event with a loud field"], OPERATIONS);
    assert_eq!(reference["failed with a loud field"], OPERATIONS / 5);
    assert_eq!(reference["chatty layer saw a close"], OPERATIONS);
    assert_eq!(reference["sink saw a finished upscale"], OPERATIONS);
    assert!(reference["formatting a loud value"] >= OPERATIONS);
    assert_eq!(
        recorded, reference,
        "vidperf recorded every event inside a span exactly once"
    );

    let snapshot = vidperf.snapshot();
    assert_eq!(snapshot.summary.total_operations, OPERATIONS as u64);
    assert_eq!(
        snapshot.summary.failures,
        (OPERATIONS / 5) as u64,
        "errors logged inside operations are failures"
    );
    assert_eq!(snapshot.summary.active_operations, 0);
}
