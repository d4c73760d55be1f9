//! Without the `http-api` feature there is no HTTP server; these stand-ins keep the
//! builder's code free of feature conditions.

use std::time::Duration;

use crate::builder::BuildError;
use crate::handle::Vidperf;

#[derive(Debug, Clone, Default)]
pub(crate) struct Setting;

#[derive(Debug, Clone)]
pub(crate) enum Never {}

pub(crate) type Server = Never;

pub(crate) fn start(_: &Setting, _: bool, _: &Vidperf) -> Result<Option<Server>, BuildError> {
    Ok(None)
}

pub(crate) fn shutdown(server: &Server, _: Duration) -> Result<(), String> {
    match *server {}
}
