//! Integration tests of the core: the layer, the statistics, the three ways in and the
//! export formats, each run under a scoped subscriber.

mod export;
mod layer;
mod stats;
mod ways_in;

use tracing_subscriber::prelude::*;
use vidperf::{Builder, Vidperf};

/// Runs `f` with a fresh vidperf as the thread's default subscriber. The resource
/// monitor is off here so that records are deterministic; tests/resources.rs covers it.
pub(crate) fn run_with(builder: Builder, f: impl FnOnce()) -> Vidperf {
    let (layer, vidperf) = builder
        .without_env()
        .without_resource_monitor()
        .build()
        .expect("valid configuration");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f);
    vidperf
}

pub(crate) fn run(f: impl FnOnce()) -> Vidperf {
    run_with(vidperf::builder(), f)
}

/// A minimal executor for the async tests: polls on this thread until ready.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
