//! A service that joins the caller's trace and passes it on: what the W3C Trace Context
//! conformance suite (<https://github.com/w3c/trace-context/tree/main/test>) tests, built
//! on vidperf's documented API only.
//!
//! Every `POST /` carries a JSON array of `{"url": …, "arguments": …}`. The service
//! extracts the caller's `traceparent` and `tracestate` from the request headers, opens
//! its request span under them, and for each element sends `arguments` as JSON to `url`
//! from a child span of its own, with that span's `traceparent` and `tracestate`
//! injected; it answers once every call is made.
//!
//! ```text
//! cargo run --example tracecontext -- 127.0.0.1:4000
//! # in a checkout of w3c/trace-context (Python 3 with aiohttp):
//! STRICT_LEVEL=2 SPEC_LEVEL=2 python test/test.py http://127.0.0.1:4000/
//! ```

// reason: an example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tracing::info_span;
use vidperf::{SpanExt, TraceContext};

/// One call to make: where, and what to send.
fn calls(body: &[u8]) -> Vec<(String, serde_json::Value)> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(body) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let url = item.get("url")?.as_str()?.to_owned();
            let arguments = item
                .get("arguments")
                .cloned()
                .unwrap_or(serde_json::Value::Array(Vec::new()));
            Some((url, arguments))
        })
        .collect()
}

/// Joins the caller's trace and makes each call from a child span.
fn handle(headers: &HeaderMap, body: &[u8], agent: &ureq::Agent) {
    let request = info_span!(
        "request",
        operation = "request",
        strategy = "tracecontext",
        otel.kind = "server"
    );
    if let Some(caller) = TraceContext::extract(headers) {
        request.set_parent(caller);
    }
    request.in_scope(|| {
        for (url, arguments) in calls(body) {
            let call = info_span!(
                "call",
                operation = "call",
                strategy = "tracecontext",
                otel.kind = "client"
            );
            let mut outgoing: Vec<(String, String)> = Vec::new();
            if let Some(here) = call.context() {
                here.inject(&mut outgoing);
            }
            let _entered = call.enter();
            let mut post = agent.post(&url).header("content-type", "application/json");
            for (name, value) in &outgoing {
                post = post.header(name.as_str(), value.as_str());
            }
            if let Err(e) = post.send(arguments.to_string()) {
                vidperf::record_error(&call, &e.to_string());
            }
        }
    });
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4000".to_owned())
        .parse()?;
    let vidperf = vidperf::builder().without_resource_monitor().install()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let app = axum::Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: Bytes| {
            let agent = agent.clone();
            async move {
                // The calls block: made on the blocking pool, answered when all are done.
                let done = tokio::task::spawn_blocking(move || handle(&headers, &body, &agent));
                match done.await {
                    Ok(()) => StatusCode::OK,
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "tracecontext: listening on http://{}/",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let _ = vidperf.shutdown(Duration::from_secs(5));
    Ok(())
}
