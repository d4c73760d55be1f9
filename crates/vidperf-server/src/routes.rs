//! The handlers.

use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use vidperf_core::SnapshotOptions;
use vidperf_core::export;

use crate::error::ApiError;
use crate::{ApiState, TokenScope, prom, query};

const STATS_PARAMS: &[&str] = &["recent", "strategy", "operation", "window"];
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
    let snapshot = state.stats.filtered_snapshot(
        options,
        params.get("strategy").map(String::as_str),
        params.get("operation").map(String::as_str),
    );
    let body = serde_json::to_vec(&snapshot).map_err(|e| ApiError::internal(e.to_string()))?;
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
    let max_rows = state.config.max_export_rows;
    // Encoding many rows takes milliseconds: keep it off the threads serving /metrics.
    let encoded = tokio::task::spawn_blocking(move || {
        let (snapshot, mut records) = state.stats.snapshot_and_records(SnapshotOptions::default());
        let omitted = records.len().saturating_sub(max_rows);
        records.drain(..omitted); // keep the newest rows
        let mut body = Vec::with_capacity(256 * (records.len() + 1));
        let written = if format == "json" {
            export::write_json(&mut body, &snapshot, &records)
        } else {
            export::write_csv(&mut body, &records)
        };
        written.map(|()| (format, body, records.len(), omitted))
    })
    .await
    .map_err(|e| ApiError::internal(format!("export task failed: {e}")))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let (format, body, rows, omitted) = encoded;
    let (content_type, file) = if format == "json" {
        ("application/json", export::JSON_FILE_NAME)
    } else {
        ("text/csv; charset=utf-8", export::CSV_FILE_NAME)
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert("x-vidperf-export-rows", HeaderValue::from(rows));
    headers.insert("x-vidperf-export-omitted-rows", HeaderValue::from(omitted));
    Ok(response)
}

/// `GET /metrics`.
pub(crate) async fn metrics(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    query::parse(raw.as_deref(), &[])?;
    let snapshot = state
        .stats
        .snapshot_with(SnapshotOptions::default().with_recent(0).with_active(0));
    let text = prom::encode(&snapshot).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prom::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

/// `GET /healthz`.
pub(crate) async fn healthz() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "{\"status\":\"ok\"}",
    )
        .into_response()
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
            TokenScope::ExportOnly => request.uri().path() == "/performance/export",
        };
        if protected && !authorized(&request, token) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

fn authorized(request: &Request, token: &str) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else {
        return false;
    };
    // Constant time in the token's content (lengths are not secret).
    given.ct_eq(token.as_bytes()).into()
}
