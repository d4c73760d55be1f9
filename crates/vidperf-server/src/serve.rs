//! Serving the router: our own accept loop on hyper, so that slow clients time out and
//! a connection cap holds, and shutdown is graceful and bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use vidperf_core::worker::Worker;

use crate::error::ApiError;
use crate::{ApiConfig, ApiState, head, router};

/// Set to `true` when the server starts closing; a live stream's body ends on it.
#[derive(Clone, Debug)]
pub(crate) struct Closing(pub(crate) watch::Receiver<bool>);

/// How long a live stream may take to write its end once shutdown starts.
const STREAM_GRACE: Duration = Duration::from_millis(500);

/// How long in-flight requests may finish once shutdown starts.
const GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The server's runtime or thread could not be created.
    #[error("cannot start the HTTP server: {0}")]
    Start(#[source] std::io::Error),
    /// The configured token cannot be sent by a client (see [`check_token`]).
    #[error("the HTTP API token is invalid: expected {0}")]
    InvalidToken(&'static str),
    /// Shutdown did not finish in time; the server thread was left to finish alone.
    #[error("the HTTP server did not stop within {0:?}")]
    ShutdownTimeout(Duration),
}

/// What a bearer token may hold: 1 to 4096 visible ASCII characters (`!` to `~`), what
/// an HTTP header carries intact and a browser will send (RFC 6750's `b64token` is
/// narrower; anything visible is accepted). `Err` says what is expected.
pub fn check_token(token: &str) -> Result<(), &'static str> {
    const EXPECTED: &str =
        "1 to 4096 visible ASCII characters (no spaces, no line breaks, no letters beyond ASCII)";
    let visible = token.bytes().all(|b| b.is_ascii_graphic());
    if token.is_empty() || token.len() > 4096 || !visible {
        return Err(EXPECTED);
    }
    Ok(())
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (up to 5 s). Runs on the caller's tokio runtime.
///
/// Each connection serves one request. Its head is read first, under
/// [`ApiConfig::header_timeout`], by a task that holds only a *pending* slot
/// ([`ApiConfig::max_pending_connections`]); a malformed head is answered with a JSON
/// error. Only a complete head takes a *serving* slot ([`ApiConfig::max_connections`]),
/// so clients that send their headers slowly never crowd out the scraper. A connection
/// over either cap is answered `503` with `Retry-After` at once, never reset.
///
/// One request per connection is a decision: every answer says `connection: close`, so
/// a client that pipelines resends the rest on new connections (RFC 9112 §9.3.2); with
/// keep-alive one client could hold a serving slot across requests, past the stall and
/// lifetime limits that keep `/metrics` answering. At shutdown a live stream ends with
/// its last chunk, a clean end of stream its client reconnects from.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()>,
) {
    let pending = Arc::new(Semaphore::new(config.max_pending_connections));
    let serving = Arc::new(Semaphore::new(config.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    // Live streams watch it too, to end with their last chunk when the server closes.
    let app = app.layer(axum::Extension(Closing(closing_rx.clone())));
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let limits = head::Limits {
        request_line: config.max_request_line_bytes,
        head: config.max_head_bytes,
    };
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, _peer)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(waiting) = pending.clone().try_acquire_owned() else {
            connections.spawn(async move {
                let busy = ApiError::unavailable(
                    "too_many_connections",
                    "the server is at its connection limit; retry shortly",
                    1,
                );
                head::answer(&mut stream, &busy, Some(1), ERROR_WRITE).await;
            });
            continue;
        };
        let (service, serving, config) =
            (app.clone(), serving.clone(), ConnectionLimits::of(config));
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let read = tokio::time::timeout(config.header, head::read(&mut stream, limits)).await;
            let head = match read {
                Ok(Ok(Some(head))) => head,
                Ok(Ok(None)) => return,
                Ok(Err(error)) => {
                    head::answer(&mut stream, &error, None, ERROR_WRITE).await;
                    return;
                }
                Err(_) => {
                    let slow = ApiError::new(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        "the request headers did not arrive in time",
                    );
                    head::answer(&mut stream, &slow, None, ERROR_WRITE).await;
                    return;
                }
            };
            drop(waiting);
            let Ok(_slot) = serving.try_acquire_owned() else {
                let busy = ApiError::unavailable(
                    "too_many_connections",
                    "the server is at its connection limit; retry shortly",
                    1,
                );
                head::answer(&mut stream, &busy, Some(1), ERROR_WRITE).await;
                return;
            };
            // A live stream runs for as long as its own limit, and ends when its client
            // stops reading (no write progress for `STREAM_STALL`); a request, for the
            // connection lifetime.
            let is_stream = head.path == crate::STREAM_PATH;
            let lifetime = if is_stream {
                config.stream
            } else {
                config.lifetime
            };
            if is_stream {
                // A small send buffer: a client that stops reading stalls the stream's
                // writes within seconds (and holds little kernel memory) instead of after
                // megabytes of events.
                let _ = socket2::SockRef::from(&stream).set_send_buffer_size(STREAM_SEND_BUFFER);
            }
            let progress = head::Progress::new();
            let watchdog = {
                let progress = progress.clone();
                async move {
                    // A stream writes at least a keep-alive every 15 s: no progress at all
                    // for the stall time means its client stopped reading. A download
                    // (an export, a large document) only counts while a write waits for
                    // its client, so the time spent encoding never counts.
                    let (stall, stalled): (Duration, fn(&head::Progress) -> Duration) = if is_stream
                    {
                        (config.stall, head::Progress::stalled_for)
                    } else {
                        (config.download_stall, head::Progress::blocked_for)
                    };
                    loop {
                        tokio::time::sleep(stall / 4).await;
                        if stalled(&progress) > stall {
                            return;
                        }
                    }
                }
            };
            let io = TokioIo::new(head::Prefixed::new(head.bytes, stream, progress));
            let service = TowerToHyperService::new(service);
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(config.header)
                .keep_alive(false);
            let connection = builder.serve_connection(io, service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closing.changed() => {
                    // A request gets the grace period to finish; a live stream ends
                    // itself on the same signal (its body's last chunk, then the client
                    // reconnects) and gets a moment to write it.
                    connection.as_mut().graceful_shutdown();
                    let grace = if is_stream { STREAM_GRACE } else { GRACE };
                    let _ = tokio::time::timeout(grace, connection).await;
                }
                () = tokio::time::sleep(lifetime) => {} // dropped: the connection closes
                () = watchdog => {} // a client that stopped reading
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(GRACE, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
}

/// The kernel send buffer of a live stream's socket, bytes.
const STREAM_SEND_BUFFER: usize = 64 * 1024;

/// How long an error answer may take to write before the connection is dropped.
const ERROR_WRITE: Duration = Duration::from_secs(1);

/// The per-connection times, copied out of the configuration.
#[derive(Clone, Copy)]
struct ConnectionLimits {
    header: Duration,
    lifetime: Duration,
    stream: Duration,
    stall: Duration,
    download_stall: Duration,
}

impl ConnectionLimits {
    fn of(config: &ApiConfig) -> Self {
        Self {
            header: config.header_timeout,
            lifetime: config.connection_timeout,
            stream: config.stream_max_duration,
            stall: config.stream_stall_timeout.max(Duration::from_millis(100)),
            download_stall: config
                .download_stall_timeout
                .max(Duration::from_millis(100)),
        }
    }
}

/// The warning [`spawn`] gives for `addr` with `config`, if any: a non-loopback address
/// puts the statistics (and, without a token, the records and exports) on the network.
pub(crate) fn exposure_warning(addr: SocketAddr, config: &ApiConfig) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    let protection = if config.token.is_some() {
        "a bearer token is required as configured"
    } else {
        "no token: set VIDPERF_HTTP_TOKEN (or ApiConfig::with_token) to protect records and exports"
    };
    Some(format!(
        "the vidperf HTTP API listens on {addr}, a non-loopback address, so other machines can reach it ({protection})"
    ))
}

/// A server running on its own thread (with its own single-threaded tokio runtime, so
/// it works in programs without one).
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    worker: Worker,
    warning: Option<String>,
}

/// Binds `addr` now (so a taken port is an error here, not later) and serves the API on
/// a background thread named `vidperf-http`. A non-loopback `addr` is served, with a
/// warning: the statistics and exports then reach the network.
pub fn spawn(addr: SocketAddr, state: ApiState) -> Result<ServerHandle, ServeError> {
    if let Some(token) = &state.config().token {
        check_token(token).map_err(ServeError::InvalidToken)?;
    }
    let warning = exposure_warning(addr, state.config());
    if let Some(warning) = &warning {
        tracing::warn!(target: "vidperf::http", %addr, "{warning}");
    }
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener.local_addr().map_err(ServeError::Start)?;
    listener.set_nonblocking(true).map_err(ServeError::Start)?;
    // One thread serves every connection; encoding exports and large statistics
    // documents runs on a small blocking pool, so /metrics never queues behind them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(state.config().max_blocking_threads())
        .thread_name("vidperf-http-work")
        .build()
        .map_err(ServeError::Start)?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let config = state.config().clone();
    let app = router(state);
    let worker = Worker::spawn("vidperf-http", move || {
        runtime.block_on(async move {
            // A listener the runtime cannot take has nothing to serve: the thread ends
            // (`ServerHandle::is_running` says so).
            if let Ok(listener) = TcpListener::from_std(listener) {
                let stop = async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                };
                serve(listener, app, &config, stop).await;
            }
        });
    })
    .map_err(ServeError::Start)?;
    Ok(ServerHandle {
        local_addr,
        stop: Some(stop_tx),
        worker,
        warning,
    })
}

impl ServerHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What [`spawn`] warned about (an address beyond loopback without a token), also
    /// emitted as a `WARN` event on `vidperf::http`.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Whether the server thread is serving (false once stopped, or if it ended in a
    /// panic: [`ServerHandle::panicked`]).
    pub fn is_running(&self) -> bool {
        self.worker.is_running()
    }

    /// Why the server thread ended in a panic, if it did.
    pub fn panicked(&self) -> Option<String> {
        self.worker.panicked()
    }

    /// Stops accepting, lets in-flight requests finish, and waits at most `timeout`.
    pub fn shutdown(&mut self, timeout: Duration) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        self.worker
            .join(timeout)
            .map_err(|_| ServeError::ShutdownTimeout(timeout))
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown(GRACE + Duration::from_secs(1));
    }
}
