//! Stand-in for the NVML source when the `gpu` feature is off: never available.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::gpu_types::{
    ErrorCounters, GpmInterval, GpuReading, GpuStatus, GpuUnavailable, NvmlLibrary,
};

#[derive(Debug)]
pub(crate) struct GpuSource;

/// Never made: no GPU, no GPM.
#[derive(Debug)]
pub(crate) enum GpmHandle {}

#[derive(Debug)]
pub(crate) struct Gpm<'n>(PhantomData<&'n ()>);

/// Never made: no GPU.
#[derive(Clone, Debug)]
pub(crate) enum MemoryReader {}

impl MemoryReader {
    pub(crate) fn max_used(&self) -> Option<u64> {
        match *self {}
    }
}

impl Gpm<'_> {
    pub(crate) fn new(handle: &GpmHandle, _interval: Duration) -> Self {
        match *handle {}
    }

    pub(crate) fn read(
        &mut self,
        _now: Instant,
        _force: bool,
        _errors: &ErrorCounters,
    ) -> Option<GpmInterval> {
        None
    }
}

impl GpuSource {
    pub(crate) fn start(
        library: NvmlLibrary,
        _process_interval: Duration,
        _process_utilization_interval: Duration,
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

    pub(crate) fn memory_reader(&self) -> Option<MemoryReader> {
        None
    }

    pub(crate) fn gpm_handle(&self) -> Option<GpmHandle> {
        None
    }

    pub(crate) fn generation(&self) -> u64 {
        0
    }

    pub(crate) fn read(&mut self, _now: Instant, _errors: &ErrorCounters) -> GpuReading {
        GpuReading::default()
    }
}
