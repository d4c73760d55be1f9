//! Without the `system` and `gpu` features there is no resource monitor; these
//! stand-ins keep the builder's code free of feature conditions.

use std::time::Duration;

use vidperf_core::{PerfLayerBuilder, Stats};

use crate::builder::{BuildError, env_switch, env_text};
use crate::handle::ShutdownError;

#[derive(Debug, Clone, Default)]
pub(crate) struct Setting;

#[derive(Debug, Clone)]
pub(crate) enum Never {}

pub(crate) type Monitor = Never;

/// No monitor; a variable that asks for one is an error.
pub(crate) fn start(_: &Setting, read_env: bool) -> Result<Option<Monitor>, BuildError> {
    if read_env {
        let not_built = |var| BuildError::FeatureNotBuilt {
            var,
            feature: "system` or `gpu",
        };
        if env_switch("VIDPERF_RESOURCE_MONITOR")? == Some(true) {
            return Err(not_built("VIDPERF_RESOURCE_MONITOR"));
        }
        for var in [
            "VIDPERF_SAMPLE_INTERVAL_MS",
            "VIDPERF_NVML_LIBRARY",
            "VIDPERF_BOUNDARY_READS",
        ] {
            if env_text(var)?.is_some() {
                return Err(not_built(var));
            }
        }
    }
    Ok(None)
}

pub(crate) fn attach(layer: PerfLayerBuilder, _: Option<&Monitor>, _: &Stats) -> PerfLayerBuilder {
    layer
}

pub(crate) fn signals(
    signals: vidperf_watch::Signals,
    _: Option<&Monitor>,
) -> vidperf_watch::Signals {
    signals
}

pub(crate) fn shutdown(monitor: &Monitor, _: Duration) -> Result<(), ShutdownError> {
    match *monitor {}
}

/// The metric families this part exports.
pub(crate) fn family_defs() -> Vec<vidperf_core::metrics::FamilyDef> {
    Vec::new()
}
