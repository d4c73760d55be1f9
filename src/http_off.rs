//! Without the `http-api` feature there is no HTTP server; these stand-ins keep the
//! builder's code free of feature conditions.

use std::sync::Arc;
use std::time::Duration;

use vidperf_core::Stats;

use crate::builder::{BuildError, env_text};
use crate::handle::ShutdownError;

#[derive(Debug, Clone, Default)]
pub(crate) struct Setting;

#[derive(Debug, Clone)]
pub(crate) enum Never {}

pub(crate) type Server = Never;

/// No server; a variable that asks for one is an error.
pub(crate) fn start(
    _: &Setting,
    read_env: bool,
    _: &Arc<Stats>,
    _: Option<&crate::watch::Running>,
    _: &mut Vec<String>,
) -> Result<Option<Server>, BuildError> {
    if read_env {
        for var in ["VIDPERF_HTTP_ADDR", "VIDPERF_HTTP_TOKEN"] {
            if env_text(var)?.is_some() {
                return Err(BuildError::FeatureNotBuilt {
                    var,
                    feature: "http-api",
                });
            }
        }
    }
    Ok(None)
}

pub(crate) fn shutdown(server: &Server, _: Duration) -> Result<(), ShutdownError> {
    match *server {}
}
