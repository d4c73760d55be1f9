//! Serving the router: our own accept loop on hyper, so that slow clients time out and
//! a connection cap holds, and shutdown is graceful and bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::{ApiConfig, ApiState, router};

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
    /// Shutdown did not finish in time; the server thread was left to finish alone.
    #[error("the HTTP server did not stop within {0:?}")]
    ShutdownTimeout(Duration),
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (up to 5 s). Runs on the caller's tokio runtime.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream); // over the connection cap: refuse rather than queue
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let header_timeout = config.header_timeout;
        let lifetime = config.connection_timeout;
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closing.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(GRACE, connection).await;
                }
                () = tokio::time::sleep(lifetime) => {} // dropped: the connection closes
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

/// A server running on its own thread (with its own single-threaded tokio runtime, so
/// it works in programs without one).
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<(JoinHandle<()>, Receiver<()>)>,
}

/// Binds `addr` now (so a taken port is an error here, not later) and serves the API on
/// a background thread named `vidperf-http`. A non-loopback `addr` is served, with a
/// warning: the statistics and exports then reach the network.
pub fn spawn(addr: SocketAddr, state: ApiState) -> Result<ServerHandle, ServeError> {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            target: "vidperf::http",
            %addr,
            "the vidperf HTTP API listens on a non-loopback address; protect it with a token"
        );
    }
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener.local_addr().map_err(ServeError::Start)?;
    listener.set_nonblocking(true).map_err(ServeError::Start)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(ServeError::Start)?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = sync_channel(1);
    let config = state.config().clone();
    let app = router(state);
    let thread = std::thread::Builder::new()
        .name("vidperf-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => {
                        let stop = async move {
                            let _ = stop_rx.wait_for(|stop| *stop).await;
                        };
                        serve(listener, app, &config, stop).await;
                    }
                    Err(e) => tracing::warn!(target: "vidperf::http", error = %e, "cannot serve the HTTP API"),
                }
            });
            let _ = done_tx.send(());
        })
        .map_err(ServeError::Start)?;
    Ok(ServerHandle {
        local_addr,
        stop: Some(stop_tx),
        thread: Some((thread, done_rx)),
    })
}

impl ServerHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish, and waits at most `timeout`.
    pub fn shutdown(&mut self, timeout: Duration) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        let Some((thread, done)) = self.thread.take() else {
            return Ok(());
        };
        match done.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => Err(ServeError::ShutdownTimeout(timeout)),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown(GRACE + Duration::from_secs(1));
    }
}
