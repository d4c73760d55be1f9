//! The HTTP API of [vidperf](https://docs.rs/vidperf): statistics, exports and
//! Prometheus metrics over HTTP, as an axum `Router` to mount in your own
//! service ([`router`]) or as a ready server on its own thread ([`spawn`]).
//!
//! | route | answers |
//! |---|---|
//! | `GET /performance/stats` | the statistics snapshot as JSON; `?window=5m` (the last 5 minutes: `ms`, `s`, `m` or `h`, at most the statistics' longest window, 10 minutes by default), `?recent=N` (default 10, at most [`ApiConfig::max_recent`]), `?strategy=`, `?operation=` |
//! | `POST /performance/export?format=json\|csv` | every record held, as a download (`Content-Disposition: attachment`) |
//! | `GET /metrics` | Prometheus text exposition format 0.0.4, or OpenMetrics 1.0 with exemplars when the scraper asks for it (`Accept: application/openmetrics-text`) |
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
mod head;
mod query;
mod routes;
mod serve;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use vidperf_core::Stats;

/// The axum version the router is built with.
pub use axum;
pub use error::ApiError;
pub use serve::{ServeError, ServerHandle, check_token, serve, spawn};
pub use vidperf_core::metrics::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE as METRICS_CONTENT_TYPE, encode_openmetrics,
    encode_prometheus as encode_metrics,
};

/// Which routes need the bearer token, when one is configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenScope {
    /// The routes that return operation records or their metadata (video paths, user
    /// data): `GET /performance/stats`, `POST /performance/export` and
    /// `GET /performance/stream`. `/metrics`, `/healthz` and the dashboard page stay
    /// open, so scrapers and health checks need no secret.
    #[default]
    RecordRoutes,
    /// Every route.
    AllRoutes,
}

/// The path of the live stream (a connection serving it is not cut by
/// [`ApiConfig::connection_timeout`]).
pub(crate) const STREAM_PATH: &str = "/performance/stream";

/// Limits and security settings of the API.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ApiConfig {
    /// Bearer token required by [`ApiConfig::token_scope`]'s routes. Default: none.
    pub token: Option<String>,
    /// Which routes need the token. Default: [`TokenScope::RecordRoutes`].
    pub token_scope: TokenScope,
    /// Rows an export holds at most (the newest are kept). Default 100,000.
    pub max_export_rows: usize,
    /// Exports encoded at once; more wait up to [`ApiConfig::export_wait`], then get
    /// `503` with `Retry-After`. Each holds a copy of the history's compact rows (about
    /// 2 MB for 10,000 operations) and one blocking thread while it streams. Default 2.
    pub max_concurrent_exports: usize,
    /// How long an export waits for its turn. Default 2 s.
    pub export_wait: Duration,
    /// Largest `?recent=`. Default 1,000.
    pub max_recent: usize,
    /// Longest query string, bytes (longer: 414). Default 2,048.
    pub max_query_bytes: usize,
    /// Longest request line, bytes (longer: 414). Default 16 KiB.
    pub max_request_line_bytes: usize,
    /// Longest request head, bytes (longer: 431). Default 64 KiB.
    pub max_head_bytes: usize,
    /// Time a client has to send its request head. Default 5 s.
    pub header_timeout: Duration,
    /// Longest life of one connection. Default 120 s.
    pub connection_timeout: Duration,
    /// Longest life of one live stream (`/performance/stream`); clients reconnect.
    /// Default 1 h.
    pub stream_max_duration: Duration,
    /// Live streams at once; more get `503`. Default 16.
    pub max_streams: usize,
    /// A live stream whose client stops reading — no write makes progress for this long
    /// (a healthy stream writes at least a keep-alive every 15 s) — is disconnected.
    /// Default 30 s.
    pub stream_stall_timeout: Duration,
    /// A response whose client stops reading — a write waits this long without progress
    /// (a download of an export read 4 KiB and left hanging) — is disconnected, and its
    /// export slot freed. Default 10 s.
    pub download_stall_timeout: Duration,
    /// Connections with a complete request, served at once; more get `503`. Default 512.
    pub max_connections: usize,
    /// Connections still sending their request head; more get `503`. Default 1,024.
    pub max_pending_connections: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token: None,
            token_scope: TokenScope::RecordRoutes,
            max_export_rows: 100_000,
            max_concurrent_exports: 2,
            export_wait: Duration::from_secs(2),
            max_recent: 1_000,
            max_query_bytes: 2_048,
            max_request_line_bytes: 16 * 1024,
            max_head_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(120),
            stream_max_duration: Duration::from_secs(3600),
            max_streams: 16,
            stream_stall_timeout: Duration::from_secs(30),
            download_stall_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_pending_connections: 1024,
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

    /// Sets [`ApiConfig::max_concurrent_exports`] (at least 1) and
    /// [`ApiConfig::export_wait`].
    #[must_use]
    pub fn with_export_limits(mut self, concurrent: usize, wait: Duration) -> Self {
        self.max_concurrent_exports = concurrent.max(1);
        self.export_wait = wait;
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

    /// Sets [`ApiConfig::download_stall_timeout`].
    #[must_use]
    pub fn with_download_stall_timeout(mut self, stall: Duration) -> Self {
        self.download_stall_timeout = stall;
        self
    }

    /// Sets [`ApiConfig::max_streams`] and [`ApiConfig::stream_stall_timeout`].
    #[must_use]
    pub fn with_stream_limits(mut self, max_streams: usize, stall: Duration) -> Self {
        self.max_streams = max_streams;
        self.stream_stall_timeout = stall;
        self
    }

    /// The blocking threads the server's runtime may use: the exports, plus a few for
    /// large statistics documents.
    pub(crate) fn max_blocking_threads(&self) -> usize {
        self.max_concurrent_exports + STATS_ENCODERS
    }
}

/// Statistics documents encoded at once off the serving thread.
pub(crate) const STATS_ENCODERS: usize = 4;

/// The router's state: the statistics every route reads (their health includes
/// whatever sources were registered with them), and the limits.
#[derive(Clone)]
pub struct ApiState {
    stats: Arc<Stats>,
    config: Arc<ApiConfig>,
    exports: Arc<tokio::sync::Semaphore>,
    encoders: Arc<tokio::sync::Semaphore>,
    streams: Arc<tokio::sync::Semaphore>,
    publishers: Arc<stream::Publishers>,
    watch: Option<Arc<dyn Watch>>,
}

/// What the service's alert rules and baseline show over HTTP
/// (`GET /performance/alerts`, `GET /performance/regressions`, the stream's `alerts`),
/// from whoever evaluates them (the `vidperf` facade hands its alert watcher in).
pub trait Watch: Send + Sync + 'static {
    /// The alerts document: when the rules were last evaluated, how many there are, and
    /// the alerts pending or firing.
    fn alerts(&self) -> serde_json::Value;

    /// The alerts pending or firing, as the stream carries them.
    fn alert_list(&self) -> serde_json::Value;

    /// The last comparison of the live window with the baseline; `None` without one.
    fn regressions(&self) -> Option<serde_json::Value>;

    /// The figures regressed against the baseline now, as the stream carries them: an
    /// array of `{operation_type, strategy, figure, change, test}` (`change` relative,
    /// `0.12` = 12% worse, or a difference for a rate or score; `test` `windowed` or
    /// `sequential`); `None` without a baseline. The default lists none.
    fn regressed(&self) -> Option<serde_json::Value> {
        None
    }
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
            exports: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_exports.max(1),
            )),
            encoders: Arc::new(tokio::sync::Semaphore::new(STATS_ENCODERS)),
            streams: Arc::new(tokio::sync::Semaphore::new(config.max_streams)),
            publishers: Arc::default(),
            watch: None,
            config: Arc::new(config),
        }
    }

    /// Serves the alerts and the baseline comparison of `watch` too
    /// (`/performance/alerts`, `/performance/regressions`, the stream's `alerts`).
    #[must_use]
    pub fn with_watch(mut self, watch: Arc<dyn Watch>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// The alerts the stream shows, when alert rules run.
    pub(crate) fn alerts_document(&self) -> Option<serde_json::Value> {
        Some(self.watch.as_ref()?.alert_list())
    }

    /// The figures regressed now, when a baseline is loaded.
    pub(crate) fn regressed_document(&self) -> Option<serde_json::Value> {
        self.watch.as_ref()?.regressed()
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
        .route(STREAM_PATH, get(routes::stream).fallback(routes::only_get))
        .route("/", get(routes::dashboard).fallback(routes::only_get))
        .route(
            "/dashboard",
            get(routes::dashboard).fallback(routes::only_get),
        )
        .route(
            "/performance/alerts",
            get(routes::alerts).fallback(routes::only_get),
        )
        .route(
            "/performance/regressions",
            get(routes::regressions).fallback(routes::only_get),
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
