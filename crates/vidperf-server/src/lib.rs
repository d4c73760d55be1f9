//! The HTTP API of [vidperf](https://docs.rs/vidperf): statistics, exports and
//! Prometheus metrics over HTTP, as an axum `Router` to mount in your own
//! service ([`router`]) or as a ready server on its own thread ([`spawn`]).
//!
//! | route | answers |
//! |---|---|
//! | `GET /performance/stats` | the statistics snapshot as JSON; `?window=5m` (the last 5 minutes: `ms`, `s`, `m` or `h`, at most the statistics' longest window, 10 minutes by default), `?recent=N` (default 10, at most [`ApiConfig::max_recent`]), `?strategy=`, `?operation=` |
//! | `POST /performance/export?format=json\|csv` | every record held, as a download (`Content-Disposition: attachment`) |
//! | `GET /metrics` | Prometheus text exposition format 0.0.4 |
//! | `GET /healthz` | `{"status":"ok"}` |
//!
//! Every error is JSON, `{"error": {"status", "code", "message", "accepted"?}}`, with
//! the right status: 400 for an unknown, repeated or invalid parameter (listing the
//! accepted values), 401 for a missing or wrong bearer token, 404 for an unknown path,
//! 405 for a wrong method (with `Allow`), 414 for an oversized query string. Nothing
//! panics, and a download is built whole before the first byte is sent.
//!
//! **Exports larger than [`ApiConfig::max_export_rows`]** keep the newest rows; the
//! response says so in `X-Vidperf-Export-Rows` and `X-Vidperf-Export-Omitted-Rows`
//! (the JSON export's `statistics` still count every operation).
//!
//! **Safe by default.** [`spawn`] binds where it is told, and logs a warning when that is
//! not a loopback address; vidperf's builder binds `127.0.0.1` unless configured
//! otherwise. A bearer token ([`ApiConfig::token`]) protects the export route, or every
//! route ([`TokenScope::AllRoutes`]); it is compared in constant time. Connections that
//! do not send their headers within [`ApiConfig::header_timeout`] are closed, every
//! connection ends after [`ApiConfig::connection_timeout`], and at most
//! [`ApiConfig::max_connections`] are served at once, so slow clients cannot starve
//! `/metrics`.

#![forbid(unsafe_code)]
#![cfg_attr(test, deny(warnings))]

mod error;
mod prom;
mod query;
mod routes;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use vidperf_core::Stats;

/// The axum version the router is built with.
pub use axum;
pub use error::ApiError;
pub use prom::{
    CONTENT_TYPE as METRICS_CONTENT_TYPE, EncodeError, encode as encode_metrics,
    family_names as metric_family_names,
};
pub use serve::{ServeError, ServerHandle, serve, spawn};

/// Which routes need the bearer token, when one is configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenScope {
    /// Only `POST /performance/export` (the full per-operation records).
    #[default]
    ExportOnly,
    /// Every route.
    AllRoutes,
}

/// Limits and security settings of the API.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ApiConfig {
    /// Bearer token required by [`ApiConfig::token_scope`]'s routes. Default: none.
    pub token: Option<String>,
    /// Which routes need the token. Default: the export route.
    pub token_scope: TokenScope,
    /// Rows an export holds at most (the newest are kept). Default 100,000.
    pub max_export_rows: usize,
    /// Largest `?recent=`. Default 1,000.
    pub max_recent: usize,
    /// Longest query string, bytes (longer: 414). Default 2,048.
    pub max_query_bytes: usize,
    /// Time a client has to send its request headers. Default 5 s.
    pub header_timeout: Duration,
    /// Longest life of one connection. Default 120 s.
    pub connection_timeout: Duration,
    /// Connections served at once; more are closed on accept. Default 512.
    pub max_connections: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token: None,
            token_scope: TokenScope::ExportOnly,
            max_export_rows: 100_000,
            max_recent: 1_000,
            max_query_bytes: 2_048,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(120),
            max_connections: 512,
        }
    }
}

impl ApiConfig {
    /// Requires `token` on the routes of `scope`.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>, scope: TokenScope) -> Self {
        self.token = Some(token.into());
        self.token_scope = scope;
        self
    }

    /// Sets [`ApiConfig::max_export_rows`].
    #[must_use]
    pub fn with_max_export_rows(mut self, rows: usize) -> Self {
        self.max_export_rows = rows;
        self
    }

    /// Sets [`ApiConfig::header_timeout`] and [`ApiConfig::connection_timeout`].
    #[must_use]
    pub fn with_timeouts(mut self, header: Duration, connection: Duration) -> Self {
        self.header_timeout = header;
        self.connection_timeout = connection;
        self
    }

    /// Sets [`ApiConfig::max_connections`].
    #[must_use]
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }
}

/// The router's state: the statistics every route reads (their health includes
/// whatever sources were registered with them), and the limits.
#[derive(Clone)]
pub struct ApiState {
    stats: Arc<Stats>,
    config: Arc<ApiConfig>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State over `stats` with `config`.
    pub fn new(stats: Arc<Stats>, config: ApiConfig) -> Self {
        Self {
            stats,
            config: Arc::new(config),
        }
    }

    /// The statistics served.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }
}

/// The API as an axum router, to serve with [`serve`] / [`spawn`] or to mount in your
/// own service (`Router::merge` or `nest`).
///
/// ```
/// use std::sync::Arc;
/// use vidperf_core::Stats;
/// use vidperf_server::{ApiConfig, ApiState, router};
///
/// let stats = Arc::new(Stats::default());
/// let app: axum::Router = router(ApiState::new(stats, ApiConfig::default()));
/// ```
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/performance/stats",
            get(routes::stats).fallback(routes::only_get),
        )
        .route(
            "/performance/export",
            post(routes::export).fallback(routes::only_post),
        )
        .route("/metrics", get(routes::metrics).fallback(routes::only_get))
        .route("/healthz", get(routes::healthz).fallback(routes::only_get))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routes::guard,
        ))
        .with_state(state)
}
