//! The resource monitor, wired into the builder (features `system` and `gpu`).

use std::sync::Arc;
use std::time::Duration;

pub use vidperf_sampler::{GpuStatus, GpuUnavailable, MonitorConfig, NvmlLibrary, ResourceMonitor};

use crate::env::{env_number, env_switch, env_text};
use crate::error::BuildError;
use crate::parts::{Part, PartFailure, Stopped, Wiring};

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

/// Starts the monitor (unless turned off), attaches its windows to the layer and its
/// health to the statistics, and hands the alert rules its GPU memory limit.
pub(crate) fn start(setting: &Setting, wiring: &mut Wiring) -> Result<(), BuildError> {
    let Some(config) = config(setting, wiring.read_env)? else {
        return Ok(());
    };
    let monitor = Arc::new(ResourceMonitor::start(config)?);
    wiring.stats.add_health_source(monitor.clone());
    let layer = std::mem::take(&mut wiring.layer);
    wiring.layer = layer.resources(monitor.clone());
    let limit = monitor.clone();
    wiring.signals = std::mem::take(&mut wiring.signals)
        .with_gpu_memory_limit(move || limit.health().gpu_memory_limit());
    wiring.parts.push(Arc::new(MonitorPart(monitor)));
    Ok(())
}

fn config(setting: &Setting, read_env: bool) -> Result<Option<MonitorConfig>, BuildError> {
    Ok(Some(match setting {
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
                if let Some(lib) = env_text(ENV_NVML_LIBRARY)?.filter(|l| !l.trim().is_empty()) {
                    config = config.with_nvml(if lib.trim().eq_ignore_ascii_case("off") {
                        NvmlLibrary::Disabled
                    } else {
                        NvmlLibrary::Path(lib.trim().into())
                    });
                }
            }
            config
        }
    }))
}

/// The running monitor, as a part.
#[derive(Debug)]
pub(crate) struct MonitorPart(pub(crate) Arc<ResourceMonitor>);

impl Part for MonitorPart {
    fn name(&self) -> &'static str {
        "monitor"
    }

    fn shutdown(&self, timeout: Duration) -> Stopped {
        self.0
            .shutdown(timeout)
            .map_err(|_| PartFailure::Timeout {
                part: "monitor",
                timeout,
            })
            .into()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
