//! The HTTP API, wired into the builder (feature `http-api`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use vidperf_server::{
    ApiConfig, ApiError, ApiState, METRICS_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, ServeError,
    ServerHandle, TokenScope, encode_metrics, encode_openmetrics, router, serve, spawn,
};

use crate::env::env_text;
use crate::error::BuildError;
use crate::parts::{Part, PartFailure, Stopped, Wiring};

/// `VIDPERF_HTTP_ADDR`: serve the HTTP API on this address (e.g. `127.0.0.1:9464`).
pub const ENV_HTTP_ADDR: &str = "VIDPERF_HTTP_ADDR";
/// `VIDPERF_HTTP_TOKEN`: bearer token required on the routes that return operation
/// records (stats, export, stream); `/metrics`, `/healthz` and the dashboard page stay
/// open.
pub const ENV_HTTP_TOKEN: &str = "VIDPERF_HTTP_TOKEN";

#[derive(Debug, Clone, Default)]
pub(crate) struct Setting {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) config: Option<ApiConfig>,
}

/// Serves the API when an address is configured (or `VIDPERF_HTTP_ADDR` is set), with
/// the alert watcher's documents when one runs.
pub(crate) fn start(setting: &Setting, wiring: &mut Wiring) -> Result<(), BuildError> {
    let read_env = wiring.read_env;
    let addr = match setting.addr {
        Some(addr) => Some(addr),
        None if read_env => match env_text(ENV_HTTP_ADDR)? {
            None => None,
            Some(text) => Some(text.trim().parse().map_err(|_| BuildError::InvalidEnv {
                var: ENV_HTTP_ADDR,
                value: text,
                expected: "an IP address and port, e.g. 127.0.0.1:9464",
            })?),
        },
        None => None,
    };
    let Some(addr) = addr else { return Ok(()) };
    let config = match &setting.config {
        Some(config) => config.clone(),
        None => {
            let token = if read_env {
                env_text(ENV_HTTP_TOKEN)?
            } else {
                None
            };
            match token {
                Some(token) => {
                    if let Err(expected) = vidperf_server::check_token(&token) {
                        return Err(BuildError::InvalidEnv {
                            var: ENV_HTTP_TOKEN,
                            value: token,
                            expected,
                        });
                    }
                    ApiConfig::default().with_token(token, TokenScope::RecordRoutes)
                }
                None => ApiConfig::default(),
            }
        }
    };
    let mut state = ApiState::new(wiring.stats.clone(), config);
    if let Some(watch) = &wiring.watch {
        state = state.with_watch(watch.clone());
    }
    let server = spawn(addr, state)?;
    wiring.warnings.extend(server.warning().map(str::to_owned));
    wiring.parts.push(Arc::new(HttpPart {
        addr: server.local_addr(),
        server: Mutex::new(Some(server)),
    }));
    Ok(())
}

/// The running server, as a part.
#[derive(Debug)]
pub(crate) struct HttpPart {
    addr: SocketAddr,
    server: Mutex<Option<ServerHandle>>,
}

impl HttpPart {
    /// Where the server listens, while it runs.
    pub(crate) fn serving_addr(&self) -> Option<SocketAddr> {
        let serving = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        serving.then_some(self.addr)
    }
}

impl Part for HttpPart {
    fn name(&self) -> &'static str {
        "http"
    }

    fn shutdown(&self, timeout: Duration) -> Stopped {
        let taken = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match taken {
            Some(mut server) => server
                .shutdown(timeout)
                .map_err(|_| PartFailure::Timeout {
                    part: "http",
                    timeout,
                })
                .into(),
            None => Ok(()).into(),
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
