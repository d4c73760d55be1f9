//! A frontend process hands a job to a worker process, and the trace follows it.
//!
//! The frontend opens an `api_request` span, writes its W3C `traceparent` into the job
//! (here: a command-line argument of the worker process it starts; in production a
//! queue message's headers), and waits for the worker. The worker's `background_job`
//! span takes that `traceparent` as its remote parent, so in your APM the job appears
//! under the request that caused it, across the process boundary.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --example distributed
//! ```
//!
//! Without an OTLP endpoint both processes still print the trace ids they used.

// reason: an example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::time::Duration;

use tracing::field::Empty;
use tracing::info_span;
use vidperf::{SpanExt, TraceParent};

fn frontend() -> Result<(), Box<dyn std::error::Error>> {
    let vidperf = vidperf::init()?;
    let request = info_span!(
        "api_request",
        operation = "api_request",
        strategy = "seedvr2",
        job_id = "job-7",
        otel.kind = "server",
        error = Empty
    );
    let carrier = request.in_scope(|| {
        // What travels with the job.
        let mut headers = HashMap::new();
        if let Some(here) = request.context() {
            here.inject(&mut headers);
        }
        headers
    });
    let traceparent = carrier
        .get(vidperf::propagation::TRACEPARENT)
        .cloned()
        .unwrap_or_default();
    println!("frontend: request {traceparent}");
    let status = Command::new(std::env::current_exe()?)
        .args(["worker", &traceparent])
        .status()?;
    if !status.success() {
        request.record("error", format!("worker failed: {status}").as_str());
    }
    drop(request);
    vidperf.shutdown(Duration::from_secs(5))?;
    Ok(())
}

fn worker(traceparent: &str) -> Result<(), Box<dyn std::error::Error>> {
    let vidperf = vidperf::init()?;
    let mut headers = HashMap::new();
    headers.insert(
        vidperf::propagation::TRACEPARENT.to_owned(),
        traceparent.to_owned(),
    );
    let job = info_span!(
        "background_job",
        operation = "background_job",
        strategy = "seedvr2",
        otel.kind = "consumer",
        frames_processed = Empty
    );
    if let Some(parent) = TraceParent::extract(&headers) {
        job.set_parent(parent); // before any child span is created
    }
    job.in_scope(|| {
        info_span!(
            "upscale",
            strategy = "seedvr2",
            operation = "enhancement",
            frames_processed = 24
        )
        .in_scope(|| {
            std::thread::sleep(Duration::from_millis(20));
        });
    });
    job.record("frames_processed", 24);
    if let Some(here) = job.context() {
        println!("worker: job {here}");
    }
    drop(job);
    vidperf.shutdown(Duration::from_secs(5))?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => frontend(),
        [mode, traceparent] if mode == "worker" => worker(traceparent),
        _ => {
            eprintln!("usage: distributed            (runs the frontend, which starts the worker)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
