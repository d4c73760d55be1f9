//! A sink of your own next to the statistics: here, an alert on slow or failed
//! operations that hands its messages to a background thread over a bounded channel
//! (sinks run on the thread that closes the span and must not block or do I/O).
//!
//! ```text
//! cargo run --example custom_sink
//! ```

// reason: an example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use vidperf::{FinishedSpan, Sink};

/// Sends an alert for every failed or slow operation; counts what it had to drop.
struct SlowOperationAlert {
    threshold: Duration,
    alerts: SyncSender<String>,
    dropped: AtomicU64,
}

impl Sink for SlowOperationAlert {
    fn on_finish(&self, span: &FinishedSpan) {
        let Some(key) = &span.operation else { return };
        let message = match &span.error {
            Some(error) => format!("{} {} failed: {error}", key.strategy, key.operation_type),
            None if span.duration > self.threshold => {
                format!(
                    "{} {} took {:?}",
                    key.strategy, key.operation_type, span.duration
                )
            }
            None => return,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.alerts.try_send(message)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn alert_printer(alerts: Receiver<String>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        for alert in alerts {
            println!("ALERT: {alert}");
            n += 1;
        }
        n
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (tx, rx) = sync_channel(1024);
    let printer = alert_printer(rx);
    let alert = SlowOperationAlert {
        threshold: Duration::from_millis(20),
        alerts: tx,
        dropped: AtomicU64::new(0),
    };
    let vidperf = vidperf::builder().sink(alert).install()?;

    for (strategy, millis, fail) in [
        ("vsrm", 5, false),
        ("seedvr2", 40, false),
        ("ditvr", 1, true),
    ] {
        let span = tracing::info_span!("enhance", strategy, error = tracing::field::Empty);
        span.in_scope(|| std::thread::sleep(Duration::from_millis(millis)));
        if fail {
            span.record("error", "CUDA out of memory");
        }
    }

    println!(
        "{} operations recorded",
        vidperf.snapshot().summary.total_operations
    );
    // The sink (and its sender) lives inside the global subscriber for the whole
    // process, so stop reading once the expected alerts arrived.
    drop(printer);
    std::thread::sleep(Duration::from_millis(50));
    Ok(())
}
