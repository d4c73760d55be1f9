//! The handlers.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use vidperf_core::SnapshotOptions;
use vidperf_core::export;

use crate::error::ApiError;
use crate::{ApiState, TokenScope, query};

const STATS_PARAMS: &[&str] = &["recent", "strategy", "operation", "window", "parent"];
const EXPORT_PARAMS: &[&str] = &["format"];
const FORMATS: &[&str] = &["json", "csv"];

/// `GET /performance/stats`.
pub(crate) async fn stats(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref(), STATS_PARAMS)?;
    let recent = match params.get("recent") {
        None => 10,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n <= state.config.max_recent => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_recent",
                    format!(
                        "recent must be a whole number from 0 to {}",
                        state.config.max_recent
                    ),
                ));
            }
        },
    };
    let mut options = SnapshotOptions::default().with_recent(recent);
    if let Some(text) = params.get("parent") {
        let parent = vidperf_core::SpanId::from_hex(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parent",
                format!("parent must be a span id, 16 hex digits; got {text:?}"),
            )
        })?;
        options = options.with_parent(parent);
    }
    if let Some(text) = params.get("window") {
        let max = state.stats.max_window();
        let window = query::duration(text)
            .filter(|w| state.stats.check_window(*w).is_ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_window",
                    format!(
                        "window must be a duration such as 30s, 5m or 1h, longer than zero and at most {}s; got {text:?}",
                        max.as_secs_f64()
                    ),
                )
            })?;
        options = options.with_window(window);
    }
    // A document with a thousand records takes milliseconds to build and encode: do it
    // on the blocking pool, a few at a time, so the serving thread stays free.
    let permit = state
        .encoders
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("the server is shutting down"))?;
    let stats = state.stats.clone();
    let (strategy, operation) = (
        params.get("strategy").cloned(),
        params.get("operation").cloned(),
    );
    let body = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let snapshot = stats.filtered_snapshot(options, strategy.as_deref(), operation.as_deref());
        serde_json::to_vec(&snapshot)
    })
    .await
    .map_err(|e| ApiError::internal(format!("statistics task failed: {e}")))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// `POST /performance/export?format=json|csv`.
pub(crate) async fn export(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref(), EXPORT_PARAMS)?;
    let format = match params.get("format").map(String::as_str) {
        Some(f @ ("json" | "csv")) => f.to_owned(),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("unknown export format {other:?}"),
            )
            .accepting(FORMATS));
        }
        None => {
            return Err(ApiError::bad_request(
                "missing_format",
                "the format parameter is required",
            )
            .accepting(FORMATS));
        }
    };
    // At most a few exports encode at once; the rest wait briefly, then get a 503.
    let Ok(Ok(permit)) = tokio::time::timeout(
        state.config.export_wait,
        state.exports.clone().acquire_owned(),
    )
    .await
    else {
        // A slot frees when an export finishes or, at the latest, when a client that
        // stopped reading is cut off: the stall timeout, rounded up.
        let retry = state.config.download_stall_timeout.as_secs().max(1) + 1;
        return Err(ApiError::unavailable(
            "exports_busy",
            format!(
                "{} exports are being written; retry in {retry} s",
                state.config.max_concurrent_exports
            ),
            retry,
        ));
    };

    // A snapshot of the compact rows, taken now; records are built and encoded one at
    // a time and streamed in chunks, so memory holds the rows and one chunk, not the
    // whole body.
    let mut view = state.stats.export_view();
    let omitted = view.keep_newest(state.config.max_export_rows);
    let rows = view.len();
    let json = format == "json";
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = ChunkWriter::new(tx.clone());
        let written = if json {
            vidperf_core::export::write_view_json(&mut out, &view)
        } else {
            vidperf_core::export::write_view_csv(&mut out, &view)
        };
        let finished = written
            .map_err(std::io::Error::other)
            .and_then(|()| out.finish());
        if let Err(e) = finished {
            // The client is gone, or encoding failed: end the body with an error, so
            // the response is cut rather than passed off as complete.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let (content_type, file) = if json {
        ("application/json", export::JSON_FILE_NAME)
    } else {
        ("text/csv; charset=utf-8", export::CSV_FILE_NAME)
    };
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert("x-vidperf-export-rows", HeaderValue::from(rows));
    headers.insert("x-vidperf-export-omitted-rows", HeaderValue::from(omitted));
    Ok(response)
}

/// Collects encoded bytes into chunks of [`CHUNK`] and hands each to the response body,
/// waiting while the client is slow (the channel holds two chunks).
struct ChunkWriter {
    buffer: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

const CHUNK: usize = 64 * 1024;

impl ChunkWriter {
    fn new(tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Self {
        Self {
            buffer: Vec::with_capacity(CHUNK),
            tx,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /performance/stream`: Server-Sent Events (see `stream.rs`).
pub(crate) async fn stream(
    State(state): State<ApiState>,
    closing: Option<axum::Extension<crate::serve::Closing>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query::parse(raw.as_deref(), STREAM_PARAMS)?;
    let (interval, window) = crate::stream::parse(&params, &state.stats)?;
    let closing = closing.map(|axum::Extension(c)| c.0);
    crate::stream::respond(state, interval, window, closing).await
}

const STREAM_PARAMS: &[&str] = &["interval", "window"];

/// The built-in dashboard: one static page that reads the stream.
const DASHBOARD: &str = include_str!("dashboard.html");

/// `GET /` and `GET /dashboard`.
pub(crate) async fn dashboard(RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    // The page passes its own `interval` and `window` on to the stream.
    query::parse(raw.as_deref(), STREAM_PARAMS)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                ),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        DASHBOARD,
    )
        .into_response())
}

/// `GET /performance/alerts`: the alerts pending or firing, when alert rules run.
pub(crate) async fn alerts(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    query::parse(raw.as_deref(), &[])?;
    let document = state.watch.as_ref().map_or_else(
        || serde_json::json!({"evaluated_at": null, "rules": 0, "alerts": []}),
        |w| w.alerts(),
    );
    let body = serde_json::to_vec(&document).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// `GET /performance/regressions`: the last comparison of the live window with the
/// baseline; 404 without one.
pub(crate) async fn regressions(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    query::parse(raw.as_deref(), &[])?;
    let document = state
        .watch
        .as_ref()
        .and_then(|w| w.regressions())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_baseline",
                "no baseline is loaded (VIDPERF_BASELINE, or Builder::baseline)",
            )
        })?;
    let body = serde_json::to_vec(&document).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// `GET /metrics`: every metric family of the statistics and the parts
/// ([`Stats::metrics`](vidperf_core::Stats::metrics)), in the classic text format, or in
/// OpenMetrics (with exemplars) when the scraper prefers it.
pub(crate) async fn metrics(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    query::parse(raw.as_deref(), &[])?;
    let metrics = state.stats.metrics();
    let (text, content_type) = if prefers_openmetrics(headers.get(header::ACCEPT)) {
        (
            vidperf_core::metrics::encode_openmetrics(&metrics),
            vidperf_core::metrics::OPENMETRICS_CONTENT_TYPE,
        )
    } else {
        (
            vidperf_core::metrics::encode_prometheus(&metrics),
            vidperf_core::metrics::PROMETHEUS_CONTENT_TYPE,
        )
    };
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        text,
    )
        .into_response())
}

/// Whether an `Accept` header ranks OpenMetrics above the classic text format (as
/// Prometheus sends it: `application/openmetrics-text;version=1.0.0,…,text/plain;
/// version=0.0.4;q=0.5,*/*;q=0.1`).
pub(crate) fn prefers_openmetrics(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let quality = |wanted: &str| -> f64 {
        accept
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';').map(str::trim);
                let media = parts.next()?;
                if !media.eq_ignore_ascii_case(wanted) {
                    return None;
                }
                let q = parts
                    .filter_map(|p| p.strip_prefix("q="))
                    .find_map(|q| q.parse::<f64>().ok())
                    .unwrap_or(1.0);
                Some(q)
            })
            .fold(0.0, f64::max)
    };
    let open = quality("application/openmetrics-text");
    open > 0.0 && open >= quality("text/plain")
}

/// `GET /healthz`.
pub(crate) async fn healthz(RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    query::parse(raw.as_deref(), &[])?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "{\"status\":\"ok\"}",
    )
        .into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found()
}

pub(crate) async fn only_get() -> ApiError {
    ApiError::method_not_allowed("GET, HEAD")
}

pub(crate) async fn only_post() -> ApiError {
    ApiError::method_not_allowed("POST")
}

/// Checks the query size and, where configured, the bearer token, before routing.
pub(crate) async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if request
        .uri()
        .query()
        .is_some_and(|q| q.len() > state.config.max_query_bytes)
    {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "query_too_long",
            format!(
                "the query string is limited to {} bytes",
                state.config.max_query_bytes
            ),
        )
        .into_response();
    }
    if let Some(token) = &state.config.token {
        let protected = match state.config.token_scope {
            TokenScope::AllRoutes => true,
            TokenScope::RecordRoutes => RECORD_ROUTES.contains(&request.uri().path()),
        };
        if protected && !authorized(&request, token) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// The routes that return operation records or their metadata.
const RECORD_ROUTES: [&str; 3] = [
    "/performance/stats",
    "/performance/export",
    crate::STREAM_PATH,
];

fn authorized(request: &Request, token: &str) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    // `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
    let value = value.as_bytes();
    let Some((scheme, given)) = value
        .iter()
        .position(|b| *b == b' ')
        .map(|space| (&value[..space], value[space + 1..].trim_ascii_start()))
    else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return false;
    }
    // Constant time in the token's content (lengths are not secret).
    given.ct_eq(token.as_bytes()).into()
}
