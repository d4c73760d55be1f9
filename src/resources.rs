//! The resource monitor, wired into the builder (features `system` and `gpu`).

use std::sync::Arc;
use std::time::Duration;

use vidperf_core::{PerfLayerBuilder, Stats};
pub use vidperf_sampler::{GpuStatus, GpuUnavailable, MonitorConfig, NvmlLibrary, ResourceMonitor};

use crate::builder::{BuildError, Builder, env_number, env_switch, env_text};
use crate::handle::ShutdownError;

/// `VIDPERF_RESOURCE_MONITOR`: `on` (default) or `off` (also `true`/`false`, `1`/`0`).
pub const ENV_RESOURCE_MONITOR: &str = "VIDPERF_RESOURCE_MONITOR";
/// `VIDPERF_SAMPLE_INTERVAL_MS`: milliseconds between resource samples.
pub const ENV_SAMPLE_INTERVAL_MS: &str = "VIDPERF_SAMPLE_INTERVAL_MS";
/// `VIDPERF_NVML_LIBRARY`: a path to `libnvidia-ml.so`, or `off`.
pub const ENV_NVML_LIBRARY: &str = "VIDPERF_NVML_LIBRARY";
/// `VIDPERF_BOUNDARY_READS`: `on` to also read memory on the operation's own thread at
/// its start and end ([`MonitorConfig::boundary_reads`]); `off` (default).
pub const ENV_BOUNDARY_READS: &str = "VIDPERF_BOUNDARY_READS";

/// What the builder does about the monitor.
#[derive(Debug, Clone, Default)]
pub(crate) enum Setting {
    /// Start one with the defaults and the environment.
    #[default]
    Default,
    /// Start one with this configuration (the environment is not read).
    Config(MonitorConfig),
    /// No monitor.
    Off,
}

pub(crate) type Monitor = Arc<ResourceMonitor>;

#[cfg_attr(docsrs, doc(cfg(any(feature = "system", feature = "gpu"))))]
impl Builder {
    /// Samples resources with this configuration instead of the defaults (and instead
    /// of the `VIDPERF_SAMPLE_INTERVAL_MS` / `VIDPERF_NVML_LIBRARY` /
    /// `VIDPERF_BOUNDARY_READS` variables).
    pub fn resource_monitor(mut self, config: MonitorConfig) -> Self {
        self.monitor = Setting::Config(config);
        self
    }

    /// No resource monitor: the resource columns stay empty.
    pub fn without_resource_monitor(mut self) -> Self {
        self.monitor = Setting::Off;
        self
    }
}

pub(crate) fn start(setting: &Setting, read_env: bool) -> Result<Option<Monitor>, BuildError> {
    let config = match setting {
        Setting::Off => return Ok(None),
        Setting::Config(config) => config.clone(),
        Setting::Default => {
            if read_env && env_switch(ENV_RESOURCE_MONITOR)? == Some(false) {
                return Ok(None);
            }
            let mut config = MonitorConfig::default();
            if read_env {
                if let Some(ms) = env_number(ENV_SAMPLE_INTERVAL_MS)? {
                    config = config.with_interval(Duration::from_millis(ms as u64));
                }
                if let Some(on) = env_switch(ENV_BOUNDARY_READS)? {
                    config = config.with_boundary_reads(on);
                }
                if let Some(lib) = env_text(ENV_NVML_LIBRARY)? {
                    config = config.with_nvml(if lib.trim().eq_ignore_ascii_case("off") {
                        NvmlLibrary::Disabled
                    } else {
                        NvmlLibrary::Path(lib.into())
                    });
                }
            }
            config
        }
    };
    Ok(Some(Arc::new(ResourceMonitor::start(config)?)))
}

/// Attaches the monitor's peaks to operations and its state to the statistics' health.
pub(crate) fn attach(
    layer: PerfLayerBuilder,
    monitor: Option<&Monitor>,
    stats: &Stats,
) -> PerfLayerBuilder {
    match monitor {
        Some(m) => {
            stats.add_health_source(m.clone());
            layer.resources(m.clone())
        }
        None => layer,
    }
}

/// The figures of the monitor that alert rules read.
pub(crate) fn signals(
    signals: vidperf_watch::Signals,
    monitor: Option<&Monitor>,
) -> vidperf_watch::Signals {
    match monitor {
        Some(m) => {
            let m = m.clone();
            signals.with_gpu_memory_limit(move || m.health().gpu_memory_limit())
        }
        None => signals,
    }
}

pub(crate) fn shutdown(monitor: &Monitor, timeout: Duration) -> Result<(), ShutdownError> {
    Ok(monitor.shutdown(timeout)?)
}

/// The metric families this part exports.
pub(crate) fn family_defs() -> Vec<vidperf_core::metrics::FamilyDef> {
    vidperf_sampler::family_defs()
}
