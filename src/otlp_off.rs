//! Without the `otlp` feature there is no OTLP export; these stand-ins keep the
//! builder's code free of feature conditions. The `OTEL_*` variables are left alone:
//! other OpenTelemetry SDKs in the same process may read them.

use std::time::Duration;

use vidperf_core::{PerfLayerBuilder, Stats};

use crate::builder::BuildError;
use crate::handle::ShutdownError;

#[derive(Debug, Clone, Default)]
pub(crate) struct Setting;

#[derive(Debug, Clone)]
pub(crate) enum Never {}

pub(crate) type Pipeline = Never;

pub(crate) fn start(
    _: &Setting,
    _: bool,
    _: &std::sync::Arc<Stats>,
) -> Result<Option<Pipeline>, BuildError> {
    Ok(None)
}

pub(crate) fn attach(layer: PerfLayerBuilder, _: Option<&Pipeline>, _: &Stats) -> PerfLayerBuilder {
    layer
}

pub(crate) fn signals(
    signals: vidperf_watch::Signals,
    _: Option<&Pipeline>,
) -> vidperf_watch::Signals {
    signals
}

pub(crate) fn shutdown(otel: &Pipeline, _: Duration) -> Result<(), ShutdownError> {
    match *otel {}
}

pub(crate) fn flush(otel: &Pipeline) -> Result<(), ShutdownError> {
    match *otel {}
}

/// The metric families this part exports.
pub(crate) fn family_defs() -> Vec<vidperf_core::metrics::FamilyDef> {
    Vec::new()
}
