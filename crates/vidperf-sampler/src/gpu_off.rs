//! Stand-in for the NVML source when the `gpu` feature is off: never available.

use std::time::{Duration, Instant};

use crate::gpu_types::{ErrorCounters, GpuReading, GpuStatus, GpuUnavailable, NvmlLibrary};

#[derive(Debug)]
pub(crate) struct GpuSource;

impl GpuSource {
    pub(crate) fn start(
        library: NvmlLibrary,
        _process_interval: Duration,
        _base_backoff: Duration,
    ) -> Result<(Self, GpuStatus), GpuUnavailable> {
        Err(match library {
            NvmlLibrary::Disabled => GpuUnavailable::Disabled,
            _ => GpuUnavailable::NotBuilt,
        })
    }

    pub(crate) fn device_count(&self) -> usize {
        0
    }

    pub(crate) fn read(&mut self, _now: Instant, _errors: &ErrorCounters) -> GpuReading {
        GpuReading::default()
    }
}
