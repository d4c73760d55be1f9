//! A frontend process hands a job to a worker process, and the trace follows it.
//!
//! The frontend opens an `api_request` span (joining the caller's trace when given its
//! `traceparent` and `tracestate`), adds its own `tracestate` entry, writes the W3C
//! headers into the job (here: command-line arguments of the worker process it starts;
//! in production a queue message's headers), and waits for the worker. The worker's
//! `background_job` span takes them as its remote parent, so in your APM the job appears
//! under the request that caused it, across the process boundary; the sampling decision
//! and the `tracestate` travel with it.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --example distributed
//! # as if called by an upstream service that did not sample the trace:
//! cargo run --example distributed -- \
//!     --traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 \
//!     --tracestate congo=t61rcWkgMzE
//! ```
//!
//! Without an OTLP endpoint both processes still print the headers they used.

// reason: an example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::time::Duration;

use tracing::field::Empty;
use tracing::info_span;
use vidperf::{SpanExt, TraceContext};

/// The headers as `name=value` arguments, and back.
fn to_args(headers: &HashMap<String, String>) -> Vec<String> {
    let mut args: Vec<String> = headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
    args.sort();
    args
}

fn from_args(args: &[String]) -> HashMap<String, String> {
    args.iter()
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn frontend(upstream: &HashMap<String, String>) -> Result<(), Box<dyn std::error::Error>> {
    let vidperf = vidperf::init()?;
    let request = info_span!(
        "api_request",
        operation = "api_request",
        strategy = "seedvr2",
        job_id = "job-7",
        otel.kind = "server",
        error = Empty
    );
    if let Some(caller) = TraceContext::extract(upstream) {
        request.set_parent(caller);
    }
    // This service's own tracestate entry, at the front; the caller's stay behind it.
    if let Some(here) = request.context()
        && let Ok(state) = here.state.insert("vidperf", "frontend")
    {
        request.set_trace_state(state);
    }
    let carrier = request.in_scope(|| {
        // What travels with the job.
        let mut headers = HashMap::new();
        if let Some(here) = request.context() {
            here.inject(&mut headers);
        }
        headers
    });
    println!("frontend: job headers {}", to_args(&carrier).join(" "));
    let status = Command::new(std::env::current_exe()?)
        .arg("worker")
        .args(to_args(&carrier))
        .status()?;
    if !status.success() {
        request.record("error", format!("worker failed: {status}").as_str());
    }
    drop(request);
    vidperf.shutdown(Duration::from_secs(5))?;
    Ok(())
}

fn worker(headers: &HashMap<String, String>) -> Result<(), Box<dyn std::error::Error>> {
    let vidperf = vidperf::init()?;
    let job = info_span!(
        "background_job",
        operation = "background_job",
        strategy = "seedvr2",
        otel.kind = "consumer",
        frames_processed = Empty
    );
    if let Some(parent) = TraceContext::extract(headers) {
        job.set_parent(parent); // before any child span is created
    }
    let downstream = job.in_scope(|| {
        info_span!(
            "upscale",
            strategy = "seedvr2",
            operation = "enhancement",
            frames_processed = 24
        )
        .in_scope(|| {
            std::thread::sleep(Duration::from_millis(20));
            // What a call to the next service would carry.
            let mut next = HashMap::new();
            if let Some(here) = tracing::Span::current().context() {
                here.inject(&mut next);
            }
            next
        })
    });
    job.record("frames_processed", 24);
    println!(
        "worker: downstream headers {}",
        to_args(&downstream).join(" ")
    );
    drop(job);
    vidperf.shutdown(Duration::from_secs(5))?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [mode, headers @ ..] if mode == "worker" => worker(&from_args(headers)),
        options => {
            let mut upstream = HashMap::new();
            let mut options = options.iter();
            while let Some(option) = options.next() {
                let name = match option.as_str() {
                    "--traceparent" => "traceparent",
                    "--tracestate" => "tracestate",
                    _ => {
                        eprintln!(
                            "usage: distributed [--traceparent T] [--tracestate S]   (runs the frontend, which starts the worker)"
                        );
                        return ExitCode::from(2);
                    }
                };
                let Some(value) = options.next() else {
                    eprintln!("{option} needs a value");
                    return ExitCode::from(2);
                };
                upstream.insert(name.to_owned(), value.clone());
            }
            frontend(&upstream)
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
