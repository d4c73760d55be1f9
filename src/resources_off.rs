//! Without the `system` and `gpu` features there is no resource monitor; these
//! stand-ins keep the builder's code free of feature conditions.

use std::time::Duration;

use vidperf_core::PerfLayerBuilder;
use vidperf_core::stats::MonitorHealth;

use crate::builder::BuildError;

#[derive(Debug, Clone, Default)]
pub(crate) struct Setting;

#[derive(Debug, Clone)]
pub(crate) enum Never {}

pub(crate) type Monitor = Never;

pub(crate) fn start(_: &Setting, _: bool) -> Result<Option<Monitor>, BuildError> {
    Ok(None)
}

pub(crate) fn attach(layer: PerfLayerBuilder, _: Option<&Monitor>) -> PerfLayerBuilder {
    layer
}

pub(crate) fn health(monitor: &Monitor) -> MonitorHealth {
    match *monitor {}
}

pub(crate) fn shutdown(monitor: &Monitor, _: Duration) -> Result<(), String> {
    match *monitor {}
}
