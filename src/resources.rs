//! The resource monitor, wired into the builder (features `system` and `gpu`).

use std::sync::Arc;
use std::time::Duration;

use vidperf_core::PerfLayerBuilder;
use vidperf_core::stats::MonitorHealth;
pub use vidperf_sampler::{GpuStatus, GpuUnavailable, MonitorConfig, NvmlLibrary, ResourceMonitor};

use crate::builder::{BuildError, Builder, env_number, env_text};

/// `VIDPERF_RESOURCE_MONITOR`: `off` disables the resource monitor.
pub const ENV_RESOURCE_MONITOR: &str = "VIDPERF_RESOURCE_MONITOR";
/// `VIDPERF_SAMPLE_INTERVAL_MS`: milliseconds between resource samples.
pub const ENV_SAMPLE_INTERVAL_MS: &str = "VIDPERF_SAMPLE_INTERVAL_MS";
/// `VIDPERF_NVML_LIBRARY`: a path to `libnvidia-ml.so`, or `off`.
pub const ENV_NVML_LIBRARY: &str = "VIDPERF_NVML_LIBRARY";

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
    /// of the `VIDPERF_SAMPLE_INTERVAL_MS` / `VIDPERF_NVML_LIBRARY` variables).
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
            if read_env && env_text(ENV_RESOURCE_MONITOR)?.is_some_and(|v| is_off(&v)) {
                return Ok(None);
            }
            let mut config = MonitorConfig::default();
            if read_env {
                if let Some(ms) = env_number(ENV_SAMPLE_INTERVAL_MS)? {
                    config = config.with_interval(Duration::from_millis(ms as u64));
                }
                if let Some(lib) = env_text(ENV_NVML_LIBRARY)? {
                    config = config.with_nvml(if is_off(&lib) {
                        NvmlLibrary::Disabled
                    } else {
                        NvmlLibrary::Path(lib.into())
                    });
                }
            }
            config
        }
    };
    let monitor = ResourceMonitor::start(config).map_err(|e| BuildError::Monitor(e.to_string()))?;
    Ok(Some(Arc::new(monitor)))
}

fn is_off(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "off" | "false" | "0" | "disabled" | "none"
    )
}

pub(crate) fn attach(layer: PerfLayerBuilder, monitor: Option<&Monitor>) -> PerfLayerBuilder {
    match monitor {
        Some(m) => layer.resources(m.clone()),
        None => layer,
    }
}

pub(crate) fn health(monitor: &Monitor) -> MonitorHealth {
    monitor.health()
}

pub(crate) fn shutdown(monitor: &Monitor, timeout: Duration) -> Result<(), String> {
    monitor.shutdown(timeout).map_err(|e| e.to_string())
}
