//! Without the `otlp` feature there is no OTLP export; these stand-ins keep the
//! builder's code free of feature conditions.

use std::time::Duration;

use vidperf_core::PerfLayerBuilder;
use vidperf_core::stats::ExportHealth;

use crate::builder::BuildError;

#[derive(Debug, Clone, Default)]
pub(crate) struct Setting;

#[derive(Debug, Clone)]
pub(crate) enum Never {}

pub(crate) type Pipeline = Never;

pub(crate) fn start(_: &Setting, _: bool) -> Result<Option<Pipeline>, BuildError> {
    Ok(None)
}

pub(crate) fn attach(layer: PerfLayerBuilder, _: Option<&Pipeline>) -> PerfLayerBuilder {
    layer
}

pub(crate) fn health(otel: &Pipeline) -> ExportHealth {
    match *otel {}
}

pub(crate) fn shutdown(otel: &Pipeline, _: Duration) -> Result<(), String> {
    match *otel {}
}

pub(crate) fn flush(otel: &Pipeline) -> Result<(), String> {
    match *otel {}
}
